#include "meridian/dispatch.h"

#include "meridian/admit.h"
#include "meridian/auth.h"
#include "meridian/guard.h"
#include "meridian/intake.h"
#include "meridian/intent.h"
#include "meridian/policy.h"
#include "meridian/proxy.h"
#include "meridian/responses.h"
#include "meridian/router_explain.h"
#include "meridian/status_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define M_GET 1u
#define M_HEAD 2u
#define M_POST 4u
#define M_DELETE 8u

typedef enum {
    AUTH_KEY,     /* a gateway key when keys are configured */
    AUTH_NONE,    /* liveness probes */
    AUTH_OBSERVE, /* a key unless public_metrics */
} auth_t;

typedef enum {
    PATH_API,     /* "/v1" + path, or path alone */
    PATH_EXACT,   /* path as written */
    PATH_PREFIX,  /* as PATH_API, followed by one more segment (r->path_arg) */
    PATH_PREFIX2, /* ... by one or two more segments */
} path_match_t;

typedef struct mr_dispatch_row {
    const char *path;
    path_match_t match;
    unsigned methods;
    auth_t auth;
    mr_endpoint_t endpoint; /* an API endpoint, or MR_EP_COUNT */
    enum MHD_Result (*handler)(mr_request_t *r);
} row_t;

/* ---- handlers ---------------------------------------------------------- */

/* The worker holds as much in-flight data as limits.worker_memory_bytes lets it. */
static enum MHD_Result answer_overloaded(mr_request_t *r)
{
    r->retry_after_out = 1;
    return mr_request_errorf(r, 503, "overloaded", NULL,
                             "the gateway is holding as much request and answer data as it may "
                             "(limits.worker_memory_bytes); retry shortly");
}

static enum MHD_Result answer_proxy(mr_request_t *r)
{
    if (r->body_refused)
        return answer_overloaded(r);
    if (r->body_too_large) {
        mr_error_t e;
        mr_error_set(&e, 413, NULL, "request_too_large", NULL,
                     "request body exceeds %zu bytes (limits.max_body_bytes)",
                     r->gen->cfg->limits.max_body_bytes);
        return mr_request_error(r, &e);
    }
    return mr_proxy_begin(r);
}

/* POST /v1/responses: the response's id and store, previous_response_id's
 * history (responses.h), then the proxy as for every generation. */
static enum MHD_Result answer_responses(mr_request_t *r)
{
    enum MHD_Result ret;

    if (!r->body_too_large && !r->body_refused && mr_responses_prepare(r, &ret) < 0)
        return ret;
    return answer_proxy(r);
}

static enum MHD_Result answer_response_item(mr_request_t *r)
{
    return mr_responses_item(r, r->method == M_DELETE);
}

/* Anthropic's SDKs and Claude Code send anthropic-version: their list shape. */
static enum MHD_Result answer_models(mr_request_t *r)
{
    const mr_models_bodies_t *m = &r->gen->snap->models; /* held by the request */

    if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "anthropic-version"))
        return mr_request_queue_static(r, 200, m->anthropic, m->anthropic_len, "application/json");
    return mr_request_queue_static(r, 200, m->openai, m->openai_len, "application/json");
}

static enum MHD_Result answer_healthz(mr_request_t *r)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    return mr_request_queue_static(r, 200, ok, sizeof(ok) - 1, "application/json");
}

static enum MHD_Result answer_status_page(mr_request_t *r)
{
    return mr_request_queue_static(r, 200, (const char *)mr_status_page_html,
                                   mr_status_page_html_len, "text/html; charset=utf-8");
}

static enum MHD_Result answer_json(mr_request_t *r, json_t *root, size_t flags)
{
    char *body = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | flags) : NULL;
    json_decref(root);
    if (!body)
        return MHD_NO;
    return mr_request_queue(r, 200, body, strlen(body), "application/json");
}

/* ?needs=tools,vision: the capabilities a request would need. */
static int explain_needs(const char *list, uint32_t *needs)
{
    char name[32];

    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        uint32_t bit;
        snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), p);
        if (mr_capability_parse(name, &bit) < 0)
            return -1;
        *needs |= bit;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* ?session= (or x-meridian-session): the conversation's pin, if any. */
static json_t *explain_session(mr_request_t *r, const char *model, mr_policy_stack_t *st)
{
    const char *s = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "session");
    uint64_t key, expires;
    uint32_t id;

    if (!s)
        s = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-meridian-session");
    if (!s || !*s)
        return NULL;
    if (!mr_intent_session_pin(r, model, s, strlen(s), &key, &id, &expires))
        return json_pack("{s:b}", "pinned", 0);
    st->request.has_pin = true;
    st->request.pin = id;
    return json_pack("{s:b, s:I}", "pinned", 1, "expires_in_ms",
                     (json_int_t)(expires - uv_now(r->env->loop)));
}

static enum MHD_Result answer_explain(mr_request_t *r)
{
    mr_policy_stack_t st;
    mr_error_t e;
    json_t *out = NULL, *session;
    const char *model = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "model");
    const char *policy = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "policy");
    const char *needs = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "needs");

    if (!policy)
        policy = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-meridian-policy");
    if (!model || !*model)
        return mr_request_errorf(r, 400, "missing_required_parameter", "model",
                                 "GET /v1/gateway/route needs ?model=ROUTE_OR_PROVIDER/MODEL");
    const char *models[1] = {model};
    if (mr_policy_stack_init(&st, r->gen->cfg, r->key, policy, NULL, &e) < 0)
        return mr_request_error(r, &e);
    if (explain_needs(needs, &st.request.needs) < 0)
        return mr_request_errorf(r, 400, "invalid_value", "needs",
                                 "needs must list capabilities: tools, vision, audio, files, "
                                 "json_object, json_schema, reasoning, prompt_cache");
    session = explain_session(r, model, &st);
    if (mr_router_explain(r->gen->cfg, &st, models, 1, r->gen->ss, uv_now(r->env->loop), &out, &e) <
        0) {
        json_decref(session);
        return mr_request_error(r, &e);
    }
    if (session)
        json_object_set_new(out, "session", session);
    return answer_json(r, out, 0);
}

/* GET /v1/gateway/providers: every route target's breaker and latency, and
 * the retry budget (process-wide: every worker shares them). */
static enum MHD_Result answer_providers(mr_request_t *r)
{
    const mr_config_t *cfg = r->gen->cfg;
    uint64_t now = uv_now(r->env->loop), n[3];
    char *seen = calloc(cfg->n_target_ids ? cfg->n_target_ids : 1, 1);
    json_t *data = json_array(), *root = json_object();
    mr_retry_budget_t *b = &r->gen->snap->retry_budget;

    mr_generation_sync_hints(r->gen, now); /* breakers other instances opened */

    for (size_t i = 0; seen && i < cfg->n_routes; i++)
        for (size_t t = 0; t < cfg->routes[i].n_targets; t++) {
            const mr_target_t *tg = &cfg->routes[i].targets[t];
            if (seen[tg->id])
                continue;
            seen[tg->id] = 1;
            json_t *o = mr_health_json(r->gen->health, tg->id, now);
            if (!o)
                continue;
            json_object_set_new(o, "provider", json_string(tg->provider->name));
            json_object_set_new(o, "model", json_string(tg->model));
            json_object_set_new(o, "enabled", json_boolean(tg->provider->enabled));
            json_array_append_new(data, o);
        }
    free(seen);
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "worker", json_integer(r->env->worker));
    json_object_set_new(root, "now_ms", json_integer((json_int_t)now));
    mr_retry_budget_stats(b, n);
    json_object_set_new(root, "retry_budget",
                        json_pack("{s:I,s:I,s:I,s:f,s:I,s:I}", "requests", (json_int_t)n[0],
                                  "retries", (json_int_t)n[1], "denied", (json_int_t)n[2], "ratio",
                                  b->opts.ratio, "window_s", (json_int_t)b->opts.window_s,
                                  "min_retries_per_s", (json_int_t)b->opts.min_retries_per_s));
    json_object_set_new(root, "data", data);
    return answer_json(r, root, JSON_REAL_PRECISION(6));
}

/* GET /metrics: every worker's series, summed. */
static enum MHD_Result answer_metrics(mr_request_t *r)
{
    mr_buf_t out;
    size_t len;

    mr_buf_init(&out, SIZE_MAX);
    if (mr_metrics_render(r->env->metrics, &out) < 0) {
        mr_buf_free(&out);
        return MHD_NO;
    }
    mr_reqlog_metrics(r->env->reqlog, &out);
    if (r->gen->limits)
        mr_limits_render_metrics(r->gen->limits, &out);
    char *body = mr_buf_steal(&out, &len);
    mr_buf_free(&out);
    if (!body)
        return MHD_NO;
    return mr_request_queue(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result answer_status_json(mr_request_t *r)
{
    size_t len;
    json_t *extra = r->gen->limits ? mr_limits_status_json(r->gen->limits) : NULL;
    char *body = mr_status_json(r->env->status, r->gen->cfg, extra, &len);
    json_decref(extra);
    if (!body)
        return MHD_NO;
    return mr_request_queue(r, 200, body, len, "application/json");
}

/* GET /v1/gateway/keys/NAME: the key's limits, its usage in the current
 * windows and its remaining budget; for the key itself or an admin key. */
static enum MHD_Result key_answer(mr_request_t *r)
{
    return answer_json(r, mr_admit_key_json(r, r->info_key), JSON_REAL_PRECISION(12));
}

static void on_key_read(mr_request_t *r)
{
    json_t *o = mr_admit_key_json(r, r->info_key);
    char *body =
        o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) : NULL;

    json_decref(o);
    free(r->out_body);
    r->out_body = body;
    r->out_len = body ? strlen(body) : 0;
    r->out_status = 200;
    r->out_ctype = "application/json";
    mr_proxy_respond(r);
}

static enum MHD_Result answer_key(mr_request_t *r)
{
    const mr_config_t *cfg = r->gen->cfg;
    size_t i = 0;

    while (i < cfg->n_keys && strcmp(cfg->keys[i].name, r->path_arg) != 0)
        i++;
    if (i == cfg->n_keys || !r->path_arg[0])
        return mr_request_errorf(r, 404, "key_not_found", NULL,
                                 "no gateway key is named \"%s\" (keys in the config)",
                                 r->path_arg);
    if (r->key != &cfg->keys[i] && !(r->key && r->key->admin))
        return mr_request_errorf(r, 403, "permission_denied", NULL,
                                 "key \"%s\" may be read with itself or with an admin key "
                                 "(keys.NAME.admin)",
                                 cfg->keys[i].name);
    r->info_key = i;
    if (mr_admit_key_refresh(r, i, on_key_read) == MR_LIMITS_PENDING) {
        mr_proxy_wait(r);
        return MHD_YES;
    }
    return key_answer(r);
}

/* ---- the table ---------------------------------------------------------- */

static const row_t rows[] = {
    {"/chat/completions", PATH_API, M_POST, AUTH_KEY, MR_EP_CHAT, answer_proxy},
    {"/completions", PATH_API, M_POST, AUTH_KEY, MR_EP_COMPLETIONS, answer_proxy},
    {"/embeddings", PATH_API, M_POST, AUTH_KEY, MR_EP_EMBEDDINGS, answer_proxy},
    {"/messages", PATH_API, M_POST, AUTH_KEY, MR_EP_MESSAGES, answer_proxy},
    {"/messages/count_tokens", PATH_API, M_POST, AUTH_KEY, MR_EP_COUNT_TOKENS, answer_proxy},
    {"/responses", PATH_API, M_POST, AUTH_KEY, MR_EP_RESPONSES, answer_responses},
    {"/responses/", PATH_PREFIX2, M_GET | M_DELETE, AUTH_KEY, MR_EP_RESPONSES,
     answer_response_item},
    {"/models", PATH_API, M_GET | M_HEAD, AUTH_KEY, MR_EP_COUNT, answer_models},
    {"/gateway/route", PATH_API, M_GET, AUTH_KEY, MR_EP_COUNT, answer_explain},
    {"/gateway/providers", PATH_API, M_GET, AUTH_KEY, MR_EP_COUNT, answer_providers},
    {"/gateway/keys/", PATH_PREFIX, M_GET, AUTH_KEY, MR_EP_COUNT, answer_key},
    {"/healthz", PATH_EXACT, M_GET | M_HEAD, AUTH_NONE, MR_EP_COUNT, answer_healthz},
    {"/metrics", PATH_EXACT, M_GET | M_HEAD, AUTH_OBSERVE, MR_EP_COUNT, answer_metrics},
    {"/status", PATH_EXACT, M_GET | M_HEAD, AUTH_OBSERVE, MR_EP_COUNT, answer_status_page},
    {"/status.json", PATH_EXACT, M_GET | M_HEAD, AUTH_OBSERVE, MR_EP_COUNT, answer_status_json},
};

/* A prefix row's last segments: `segments` of them, none empty. */
static bool prefix_match(const char *path, const char *prefix, int segments, char *arg, size_t cap)
{
    size_t n = strlen(prefix), rest;
    const char *slash = strchr(path + (strncmp(path, prefix, n) ? 0 : n), '/');

    if (strncmp(path, prefix, n) != 0 || !path[n] || path[n] == '/')
        return false;
    if (slash && (segments < 2 || !slash[1] || strchr(slash + 1, '/')))
        return false;
    rest = strlen(path + n);
    snprintf(arg, cap, "%s", rest < cap ? path + n : "");
    return true;
}

static const row_t *find_row(mr_request_t *r, const char *url)
{
    /* both base URLs clients use: ".../v1" and the bare host */
    const char *api = strncmp(url, "/v1/", 4) == 0 ? url + 3 : url;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].match == PATH_PREFIX || rows[i].match == PATH_PREFIX2) {
            if (prefix_match(api, rows[i].path, rows[i].match == PATH_PREFIX2 ? 2 : 1, r->path_arg,
                             sizeof(r->path_arg)))
                return &rows[i];
        } else if (strcmp(rows[i].match == PATH_API ? api : url, rows[i].path) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

static unsigned method_bit(const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
        return M_GET;
    if (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
        return M_HEAD;
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
        return M_POST;
    if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0)
        return M_DELETE;
    return 0;
}

static enum MHD_Result header_bytes_it(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    size_t *sum = cls;
    (void)kind;
    *sum += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static int json_content_type(const char *ct)
{
    size_t n = strlen("application/json");
    /* absent is refused: a page's Blob body has none, and needs no preflight */
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Over the connection or header limits: answered, -1. */
static int over_limits(mr_request_t *r, enum MHD_Result *ret)
{
    const mr_limits_t *l = &r->gen->cfg->limits;
    size_t hdr = 0;
    mr_error_t e;

    if (mr_server_over_limit(r->env->server)) {
        r->close_connection = 1;
        mr_error_set(&e, 503, NULL, "too_many_connections", NULL,
                     "the gateway holds %u connections, its limit is %u "
                     "(limits.max_connections); retry shortly",
                     mr_server_connections(r->env->server), l->max_connections);
        *ret = mr_request_error(r, &e);
        return -1;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, header_bytes_it, &hdr);
    if (hdr > l->max_header_bytes) {
        mr_error_set(&e, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, NULL, "headers_too_large", NULL,
                     "request headers are %zu bytes; the limit is %zu (limits.max_header_bytes)",
                     hdr, l->max_header_bytes);
        *ret = mr_request_error(r, &e);
        return -1;
    }
    return 0;
}

static const char *header(const mr_request_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Host, Origin and CORS preflights (guard.h), before authentication: a
 * browser's preflight carries no key. Refused: answered, -1. */
static int check_browser(mr_request_t *r, const char *method, enum MHD_Result *ret)
{
    const mr_config_t *cfg = r->gen->cfg;
    const char *host = header(r, MHD_HTTP_HEADER_HOST), *origin = header(r, "Origin");

    if (!mr_guard_host_ok(cfg, host)) {
        *ret = mr_request_errorf(r, 421, "misdirected_request", NULL,
                                 "Host \"%.64s\" does not name this gateway; use its address or "
                                 "localhost, or add the name to server_names",
                                 host);
        return -1;
    }
    if (!origin)
        return 0;
    if (!mr_guard_origin_ok(cfg, origin, host)) {
        *ret = mr_request_errorf(r, 403, "origin_not_allowed", NULL,
                                 "requests from web pages at %.80s are refused; to allow them "
                                 "add the origin to cors.allow_origins",
                                 origin);
        return -1;
    }
    r->cors_origin = origin;
    r->preflight = !strcmp(method, MHD_HTTP_METHOD_OPTIONS) &&
                   header(r, "Access-Control-Request-Method") != NULL;
    return 0;
}

/* Answered on the call after the (empty) body, like every non-refusal. */
static enum MHD_Result answer_preflight(mr_request_t *r)
{
    char allowed[512];

    return mr_request_queue_preflight(
        r,
        r->row->methods & M_POST     ? "POST"
        : r->row->methods & M_DELETE ? "GET, DELETE"
                                     : "GET, HEAD",
        mr_guard_allow_headers(header(r, "Access-Control-Request-Headers"), allowed,
                               sizeof(allowed)));
}

/* A POST body must be JSON and, when declared, within limits.max_body_bytes. */
static enum MHD_Result check_upload(mr_request_t *r)
{
    size_t max = r->gen->cfg->limits.max_body_bytes;

    if (!json_content_type(
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return mr_request_errorf(r, 415, "unsupported_media_type", NULL,
                                 "Content-Type must be application/json");
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
    if (n > max) {
        mr_error_t e;
        r->body_too_large = 1;
        mr_error_set(&e, 413, NULL, "request_too_large", NULL,
                     "request body exceeds %zu bytes (limits.max_body_bytes)", max);
        return mr_request_error(r, &e);
    }
    /* a declared body is taken from the budget whole, at once, with its
     * upstream copy, and held in one allocation of its size */
    if (n && (mr_buf_reserve(&r->body, (size_t)n) < 0 || mr_intake_hold_copy(r, (size_t)n) < 0)) {
        r->body_refused = 1;
        mr_buf_free(&r->body); /* with its charge: nothing of the body is kept */
        /* Answered now only to a client waiting for "100 Continue". Any
         * other is already sending its body, and answering then closing
         * with body bytes unread makes the kernel reset the connection,
         * which can destroy the 503 before the client reads it: its body is
         * read and dropped, then answered (answer_proxy). */
        const char *expect =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if (expect && !strcasecmp(expect, "100-continue"))
            return answer_overloaded(r);
    }
    return MHD_YES;
}

enum MHD_Result mr_dispatch_first(mr_request_t *r, const char *url, const char *method)
{
    enum MHD_Result ret;
    mr_error_t e;

    mr_server_request_begins(r->env->server, r->conn);
    /* known first: every answer, refusals included, takes the row's shape */
    const row_t *row = find_row(r, url);
    r->inbound = mr_inbound_of(row ? row->endpoint : MR_EP_COUNT);
    if (over_limits(r, &ret) < 0 || check_browser(r, method, &ret) < 0)
        return ret;
    /* known early: refusals of API calls are counted too */
    r->row = row;
    r->endpoint = row && !r->preflight ? row->endpoint : MR_EP_COUNT;
    r->allow = row && (row->methods & M_POST)     ? "POST"
               : row && (row->methods & M_DELETE) ? "GET, DELETE"
                                                  : "GET";
    r->method = method_bit(method);
    if (r->preflight)
        return row ? MHD_YES
                   : mr_request_errorf(r, 404, "unknown_url", NULL, "unknown path %s", url);
    auth_t auth = row ? row->auth : AUTH_KEY;
    if (auth == AUTH_KEY || (auth == AUTH_OBSERVE && !r->gen->cfg->public_metrics)) {
        /* Bearer (OpenAI SDKs, ANTHROPIC_AUTH_TOKEN) or x-api-key
         * (Anthropic SDKs, ANTHROPIC_API_KEY) */
        if (mr_auth_check_request(r->gen->cfg, header(r, MHD_HTTP_HEADER_AUTHORIZATION),
                                  header(r, "x-api-key"), &r->key, &e) < 0)
            return mr_request_error(r, &e);
    }
    if (!row)
        return mr_request_errorf(r, 404, "unknown_url", NULL,
                                 "unknown path %s; Meridian serves /v1/chat/completions, "
                                 "/v1/completions, /v1/embeddings, /v1/messages, "
                                 "/v1/messages/count_tokens, /v1/responses and /v1/models",
                                 url);
    if (!(row->methods & method_bit(method)))
        return mr_request_errorf(r, 405, "method_not_allowed", NULL,
                                 "%s is not allowed here; use %s", method, r->allow);
    /* Anything else is answered on MHD's next call: queueing during the
     * first one makes MHD close the keep-alive connection. */
    return row->methods & M_POST ? check_upload(r) : MHD_YES;
}

enum MHD_Result mr_dispatch_body(mr_request_t *r, const char *data, size_t *size)
{
    if (*size) {
        if (!r->body_too_large && !r->body_refused && mr_buf_append(&r->body, data, *size) < 0) {
            /* past the limit, or the budget refused to grow the buffer */
            if (*size > mr_buf_room(&r->body))
                r->body_too_large = 1;
            else
                r->body_refused = 1;
        }
        *size = 0;
        return MHD_YES;
    }
    mr_server_body_received(r->env->server, r->conn);
    return r->preflight ? answer_preflight(r) : r->row->handler(r);
}
