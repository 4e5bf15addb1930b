/*
 * libFuzzer target: the whole request path, from a raw client body to the
 * upstream requests, through the public calls the gateway makes in order
 * (src/dispatch.c mr_dispatch_first, src/proxy.c mr_proxy_begin and plan_request,
 * src/attempt.c mr_attempt_build):
 *
 *   mr_auth_check                    Authorization
 *   mr_json_scan (src/intake.c)      strict JSON, no duplicate member, the
 *                                    top-level members located; checked
 *                                    against json_loadb(JSON_REJECT_DUPLICATES)
 *                                    object / model / stream checks
 *   mr_router_models_from_request    model + the body's `models`
 *   mr_policy_stack_init             key policy, x-meridian-policy, `provider`
 *   mr_router_plan_policy            with an in-memory soft state
 *   mr_adapter_for(kind)->build      for every candidate, with the gateway's
 *                                    mr_adapter_in_t (strip provider, models;
 *                                    the scan; the tree only for translating
 *                                    adapters, as mr_intake_prepare)
 *
 * Input: a client body, optionally preceded by header lines
 *   "authorization: VALUE\n" and/or "x-meridian-policy: VALUE\n"
 * (case-insensitive names, in any order, each at most once). Without such
 * lines the headers are picked from a small table by a hash of the body, so
 * plain JSON seeds (tests/fuzz/corpus/request_path/) exercise keys and
 * policies too. The endpoint (chat, completions, embeddings) is hashed too.
 *
 * Invariants (abort() = a crash libFuzzer reports with the input):
 *   - every error is a 4xx/5xx with a message, and mr_error_body makes JSON;
 *   - every built upstream body is one JSON value, bounded by the input;
 *   - openai/azure bodies are valid (mr_json_validate), carry no duplicate
 *     member, never the gateway-only members (`provider`, `models`) at top
 *     level, the candidate's upstream model as `model`, and for streams
 *     stream_options.include_usage true;
 *   - the URL is the provider's base_url plus a path without white space,
 *     control bytes or dot segments; header lines carry no CR/LF;
 *   - a provider key is in the headers, never in the URL or the body (unless
 *     the input itself contains it); a gateway key is never forwarded.
 * Leaks are caught by LeakSanitizer (libFuzzer's default).
 */
#include "meridian/adapter.h"
#include "meridian/auth.h"
#include "meridian/config.h"
#include "meridian/error.h"
#include "meridian/json_span.h"
#include "meridian/policy.h"
#include "meridian/router.h"
#include "meridian/router_explain.h"
#include "meridian/softstate.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant failed: %s: ", #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Gateway keys (their SHA-256 is in the config below). */
#define GW_KEY_OPEN "mgw-fuzz-open-4c81d2"
#define GW_KEY_EU "mgw-fuzz-eu-a93f07"

/* Every kind, policies of every sort, keys, a disabled provider, a keyless
 * one. Provider keys are literals so the checks know them. */
static const char config_json[] =
    "{\"listen\":\"127.0.0.1:0\",\"max_attempts\":4,"
    " \"providers\":{"
    "  \"oa\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
    "        \"api_key\":\"sk-FUZZ-oa-1f2e3d4c\",\"vendor\":\"va\",\"region\":\"eu\","
    "        \"jurisdiction\":\"FR\",\"tags\":{\"license\":\"apache-2.0\"},"
    "        \"forward_headers\":[\"openai-organization\"]},"
    "  \"oa2\":{\"kind\":\"openai\",\"base_url\":\"https://api.example.com/openai/v1\","
    "         \"api_key\":\"sk-FUZZ-oa2-5a6b7c8d\",\"vendor\":\"vb\",\"region\":\"us\","
    "         \"jurisdiction\":\"US\",\"retains_data\":true},"
    "  \"an\":{\"kind\":\"anthropic\",\"base_url\":\"http://127.0.0.1:9/v1\","
    "        \"api_key\":\"sk-FUZZ-an-8d9e0f1a\",\"vendor\":\"anthropic\",\"region\":\"us\","
    "        \"jurisdiction\":\"US\",\"api_version\":\"2023-06-01\",\"default_max_tokens\":1024},"
    "  \"ge\":{\"kind\":\"gemini\",\"base_url\":\"http://127.0.0.1:9/v1beta\","
    "        \"api_key\":\"sk-FUZZ-ge-2b3c4d5e\",\"vendor\":\"google\",\"region\":\"eu\","
    "        \"jurisdiction\":\"DE\",\"zdr\":true},"
    "  \"az\":{\"kind\":\"azure\",\"base_url\":\"http://127.0.0.1:9\","
    "        \"api_key\":\"sk-FUZZ-az-6e7f8a9b\",\"vendor\":\"microsoft\",\"region\":\"eu\","
    "        \"jurisdiction\":\"SE\",\"api_version\":\"2024-10-21\"},"
    "  \"local\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:11434/v1\","
    "           \"vendor\":\"ollama\",\"region\":\"local\",\"zdr\":true},"
    "  \"off\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
    "         \"api_key\":\"${MERIDIAN_FUZZ_UNSET_KEY}\",\"vendor\":\"vc\",\"region\":\"eu\","
    "         \"jurisdiction\":\"IT\"}},"
    " \"routes\":{"
    "  \"chat\":{\"targets\":["
    "    {\"provider\":\"oa\",\"model\":\"oa-small\",\"creator\":\"va\",\"open_weights\":true,"
    "     \"input_per_mtok\":0.2,\"output_per_mtok\":0.6,\"weight\":3},"
    "    {\"provider\":\"an\",\"model\":\"claude-x\",\"input_per_mtok\":3,\"output_per_mtok\":15},"
    "    {\"provider\":\"ge\",\"model\":\"gemini-x\",\"input_per_mtok\":0.1,"
    "     \"output_per_mtok\":0.4,\"tags\":{\"license\":\"mit\"}},"
    "    {\"provider\":\"az\",\"model\":\"gpt-deploy\",\"weight\":2},"
    "    {\"provider\":\"oa2\",\"model\":\"gpt-x\",\"input_per_mtok\":2.5,\"output_per_mtok\":10},"
    "    {\"provider\":\"off\",\"model\":\"off-m\",\"open_weights\":true}]},"
    "  \"eu\":{\"max_attempts\":2,\"targets\":["
    "    "
    "{\"provider\":\"az\",\"model\":\"eu-deploy\"},{\"provider\":\"ge\",\"model\":\"gemini-eu\"},"
    "    {\"provider\":\"oa\",\"model\":\"oa-eu\"}]},"
    "  \"embed\":{\"targets\":["
    "    "
    "{\"provider\":\"oa\",\"model\":\"oa-embed\"},{\"provider\":\"ge\",\"model\":\"text-embedding-"
    "004\"},"
    "    {\"provider\":\"az\",\"model\":\"embed-deploy\"}]},"
    "  \"vendor/slash\":{\"targets\":[{\"provider\":\"oa2\",\"model\":\"slash-m\"}]},"
    "  \"local\":{\"targets\":[{\"provider\":\"local\",\"model\":\"llama3.2\"}]},"
    "  \"dead\":{\"targets\":[{\"provider\":\"off\",\"model\":\"off-m\"}]}},"
    " \"policies\":{"
    "  \"eu-only\":{\"allow\":{\"region\":[\"eu\"]}},"
    "  \"cheap\":{\"strategy\":\"cheapest\",\"max_price\":{\"input\":3,\"output\":15}},"
    "  \"fast\":{\"strategy\":\"least_latency\"},"
    "  \"wr\":{\"strategy\":\"weighted\",\"fallback_diversity\":\"jurisdiction\"},"
    "  \"rr\":{\"strategy\":\"round_robin\",\"fallback_diversity\":\"vendor\"},"
    "  \"share\":{\"max_vendor_share\":0.5,\"share_window_s\":10,"
    "            \"fallback_diversity\":\"region\"},"
    "  \"nodc\":{\"data_collection\":\"deny\",\"deny\":{\"jurisdiction\":[\"CN\"]}},"
    "  \"open\":{\"open_weights_only\":true},"
    "  \"lic\":{\"allow\":{\"license\":[\"apache-2.0\",\"mit\"]}}},"
    " \"default_policy\":\"share\","
    " \"keys\":{"
    "  \"open\":{\"sha256\":\"5f310f291f0778b89ef00abb3c9334467222014d272beb55ae8b36f5e037c0f2\"},"
    "  \"eu\":{\"sha256\":\"2bb01d142e8a90eb7b4250a3cdcc42f237ee02f46038e2fc664641532496521e\","
    "        \"policy\":\"eu-only\"}}}";

/* Members only the gateway reads (attempt.c gateway_only_members). */
static const char *const gateway_only_members[] = {"provider", "models", NULL};
/* The top-level members intake.c's scan locates (what the adapters look up). */
static const char *const scanned_keys[] = {"model",  "stream",   "stream_options",
                                           "models", "provider", NULL};

static mr_config_t *cfg;
static mr_softstate_mem_t ss;
static uint64_t clock_ms = 1000000;

static uint64_t hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int contains(const void *hay, size_t n, const char *needle)
{
    return needle && *needle && memmem(hay, n, needle, strlen(needle)) != NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[1024];

    (void)argc;
    (void)argv;
    unsetenv("MERIDIAN_FUZZ_UNSET_KEY");
    if (mr_config_load_string(config_json, "fuzz_request_path", &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_request_path: config: %s\n", err);
        abort();
    }
    if (mr_softstate_mem_init(&ss, cfg, 42) < 0)
        abort();
    return 0;
}

static const uint8_t *cur_data; /* the whole input of the current run */
static size_t cur_size;

/* A secret the input itself does not carry must not show up in `s`. */
static void check_no_secret(const char *s, size_t n, const char *secret, const char *what)
{
    if (secret && *secret && !contains(cur_data, cur_size, secret))
        CHECK(!contains(s, n, secret), "%s", what);
}

static void check_error(const mr_error_t *e, const char *where)
{
    CHECK(e->status >= 400 && e->status < 600 && e->message[0], "%s: status %d, message \"%s\"",
          where, e->status, e->message);
    check_no_secret(e->message, strlen(e->message), GW_KEY_OPEN, "gateway key in an error");
    check_no_secret(e->message, strlen(e->message), GW_KEY_EU, "gateway key in an error");
    for (size_t i = 0; i < cfg->n_providers; i++)
        check_no_secret(e->message, strlen(e->message), cfg->providers[i].api_key,
                        "provider key in an error");
    size_t len = 0;
    char *body = mr_error_body(e, NULL, NULL, &len);
    CHECK(body && mr_json_validate(body, len) == 0, "%s: error body is not JSON", where);
    free(body);
}

/* Takes one "name: value\n" line off the front of the input if its name is
 * `name`; *value is a NUL-terminated copy (value ends at '\n' or NUL; MHD
 * strips the white space before a value). */
static int take_header(const char **p, size_t *n, const char *name, char **value)
{
    size_t nl = strlen(name);
    if (*value || *n < nl + 1 || strncasecmp(*p, name, nl) != 0 || (*p)[nl] != ':')
        return 0;
    const char *v = *p + nl + 1, *end = memchr(v, '\n', *n - nl - 1);
    if (!end)
        return 0;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    *value = strndup(v, (size_t)(end - v)); /* stops at a NUL too */
    if (!*value)
        abort();
    *n -= (size_t)(end + 1 - *p);
    *p = end + 1;
    return 1;
}

static void check_request(const mr_candidate_t *c, const mr_adapter_in_t *in,
                          const mr_adapter_req_t *req, const uint8_t *data, size_t size)
{
    const mr_provider_t *p = c->provider;
    const char *name = p->name;

    CHECK(req->url && req->body && req->headers, "%s: incomplete request", name);
    CHECK(req->body_len <= 64 * in->body_len + 65536, "%s: %zu bytes out of %zu", name,
          req->body_len, in->body_len);
    json_t *up = json_loadb(req->body, req->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(up, "%s: upstream body is not JSON", name);
    json_decref(up);

    /* URL: base_url + a clean path */
    size_t blen = strlen(p->base_url);
    CHECK(strncmp(req->url, p->base_url, blen) == 0 && req->url[blen] == '/',
          "%s: URL %s is not under %s", name, req->url, p->base_url);
    for (const unsigned char *u = (const unsigned char *)req->url; *u; u++)
        CHECK(*u > 0x20 && *u < 0x7f, "%s: byte 0x%02x in the URL", name, *u);
    const char *path = req->url + blen, *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    for (size_t i = 0; i < plen; i++) {
        if (path[i] != '/')
            continue;
        size_t s = i + 1, e = s;
        while (e < plen && path[e] != '/' && path[e] != ':')
            e++;
        CHECK(!((e - s == 1 && path[s] == '.') ||
                (e - s == 2 && path[s] == '.' && path[s + 1] == '.')),
              "%s: dot segment in the URL %s", name, req->url);
    }

    /* headers: no injected lines; the provider key only here */
    int key_in_headers = 0;
    for (const struct curl_slist *h = req->headers; h; h = h->next) {
        CHECK(!strpbrk(h->data, "\r\n"), "%s: CR/LF in header line", name);
        key_in_headers |= contains(h->data, strlen(h->data), p->api_key);
        if (!contains(data, size, GW_KEY_OPEN) && !contains(data, size, GW_KEY_EU))
            CHECK(!strstr(h->data, GW_KEY_OPEN) && !strstr(h->data, GW_KEY_EU),
                  "%s: the client's gateway key was forwarded", name);
    }
    if (p->api_key && p->api_key[0]) {
        CHECK(key_in_headers, "%s: provider key missing from the headers", name);
        if (!contains(data, size, p->api_key)) {
            CHECK(!strstr(req->url, p->api_key), "%s: provider key in the URL", name);
            CHECK(!contains(req->body, req->body_len, p->api_key), "%s: provider key in the body",
                  name);
        }
    }

    if (p->kind != MR_KIND_OPENAI && p->kind != MR_KIND_AZURE)
        return;
    /* OpenAI-shaped: the client's bytes, edited */
    CHECK(mr_json_validate(req->body, req->body_len) == 0, "%s: invalid upstream JSON: %.*s", name,
          (int)req->body_len, req->body);
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(json_is_object(o), "%s: upstream body not an object without duplicates (%s): %.*s", name,
          jerr.text, (int)req->body_len, req->body);
    for (const char *const *k = gateway_only_members; *k; k++)
        CHECK(!json_object_get(o, *k), "%s: gateway-only member \"%s\" forwarded: %.*s", name, *k,
              (int)req->body_len, req->body);
    const char *model = json_string_value(json_object_get(o, "model"));
    CHECK(model && strcmp(model, c->model) == 0, "%s: upstream model %s, expected %s", name,
          model ? model : "(none)", c->model);
    if (in->stream)
        CHECK(json_is_true(json_object_get(json_object_get(o, "stream_options"), "include_usage")),
              "%s: stream without stream_options.include_usage: %.*s", name, (int)req->body_len,
              req->body);
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mr_endpoint_t eps[] = {MR_EP_CHAT, MR_EP_CHAT, MR_EP_COMPLETIONS,
                                        MR_EP_EMBEDDINGS};
    static const char *const auths[] = {"Bearer " GW_KEY_OPEN, "Bearer " GW_KEY_EU,
                                        "Bearer " GW_KEY_OPEN, NULL, "Bearer wrong-key"};
    static const char *const policies[] = {NULL,   NULL, "",     "eu-only", "cheap", "rr",
                                           "fast", "wr", "open", "lic",     "nodc",  "nope"};
    const char *p = (const char *)data;
    size_t n = size;
    char *auth_in = NULL, *policy_in = NULL;
    const char *auth, *policy;
    mr_plan_t plan = {0};         /* released at done: */
    mr_adapter_conv_t conv = {0}; /* the request's model, freed at done: */
    mr_error_t e;
    const mr_key_t *key = NULL;
    json_t *root = NULL;
    char *model_copy = NULL;

    cur_data = data;
    cur_size = size;
    while (take_header(&p, &n, "authorization", &auth_in) ||
           take_header(&p, &n, "x-meridian-policy", &policy_in))
        ;
    uint64_t h = hash((const uint8_t *)p, n);
    if (auth_in || policy_in) {
        auth = auth_in;
        policy = policy_in;
    } else {
        auth = auths[(h >> 8) % (sizeof(auths) / sizeof(auths[0]))];
        policy = policies[(h >> 16) % (sizeof(policies) / sizeof(policies[0]))];
    }
    mr_endpoint_t ep = eps[h % 4];
    clock_ms += 1 + (h >> 40) % 3000; /* soft-state windows slide */

    /* mr_dispatch_first: the key */
    memset(&e, 0, sizeof(e));
    if (mr_auth_check(cfg, auth, &key, &e) < 0) {
        CHECK(e.status == 401, "auth: status %d", e.status);
        check_error(&e, "auth");
        goto done;
    }
    /* mr_proxy_begin: the body */
    if (n == 0)
        goto done;
    mr_json_scan_t scan = {.keys = scanned_keys};
    int scanned = mr_json_scan(p, n, &scan) == 0;
    root = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
    /* the scan accepts what jansson accepts when it is strict JSON, and
     * nothing that is not JSON; jansson may refuse valid JSON (a number
     * past its range, \u0000), which a translating attempt then refuses */
    CHECK(!root || scanned || mr_json_validate(p, n) < 0, "scan refused what jansson took: %s",
          scan.error);
    CHECK(!scanned || mr_json_validate(p, n) == 0, "scan accepted invalid JSON");
    if (!scanned || !json_is_object(root))
        goto done;
    json_t *model = json_object_get(root, "model"), *stream = json_object_get(root, "stream");
    if (!json_is_string(model) || json_string_length(model) == 0)
        goto done;
    if (stream && !json_is_boolean(stream) && !json_is_null(stream))
        goto done;
    int is_stream = ep != MR_EP_EMBEDDINGS && json_is_true(stream);
    int wants_usage =
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
    if (!(model_copy = strdup(json_string_value(model))))
        abort();

    /* plan_request */
    const char *models[MR_MAX_MODELS];
    size_t n_models = 0;
    mr_policy_stack_t st;
    memset(&e, 0, sizeof(e));
    if (mr_router_models_from_request(model_copy, json_object_get(root, "models"), models,
                                      &n_models, &e) < 0) {
        check_error(&e, "models");
        goto done;
    }
    CHECK(n_models >= 1 && n_models <= MR_MAX_MODELS && models[0] == model_copy, "%zu models",
          n_models);
    if (mr_policy_stack_init(&st, cfg, key, policy, json_object_get(root, "provider"), &e) < 0) {
        check_error(&e, "policy");
        goto done;
    }
    if (mr_router_plan_policy(cfg, &st, models, n_models, &ss.super, clock_ms, &plan, &e) < 0) {
        check_error(&e, "plan");
        if (e.status == 403) { /* respond_plan_error */
            json_t *excluded = mr_plan_exclusions_json(&plan);
            size_t len = 0;
            char *body = mr_error_body(&e, "excluded", excluded, &len);
            CHECK(body && mr_json_validate(body, len) == 0, "403 body is not JSON");
            free(body);
            json_decref(excluded);
        }
        goto done;
    }
    CHECK(plan.n_candidates >= 1 && plan.n_candidates <= MR_MAX_CANDIDATES &&
              plan.max_attempts >= 1 && plan.max_attempts <= plan.n_candidates,
          "plan: %zu candidates, max_attempts %u", plan.n_candidates, plan.max_attempts);

    /* mr_attempt_build, for every candidate: the conversation model is
     * parsed once, at the first translating one, and shared by the others */
    const char *fwd[] = {NULL};
    for (size_t i = 0; i < plan.n_candidates; i++) {
        const mr_candidate_t *c = &plan.candidates[i];
        CHECK(c->provider && c->provider->enabled && c->model && *c->model,
              "candidate %zu is not usable", i);
        const mr_adapter_t *ad = mr_adapter_for(c->provider->kind);
        CHECK(ad, "no adapter for kind %d", (int)c->provider->kind);
        mr_adapter_in_t in = {
            .provider = c->provider,
            .endpoint = ep,
            .model = c->model,
            .stream = is_stream,
            .client_wants_usage = wants_usage,
            .body = p,
            .body_len = n,
            .scan = &scan,
            .json = ad->passthrough ? NULL : root,
            .strip = gateway_only_members,
            .extra_headers = fwd,
            .created = 1700000000,
        };
        mr_adapter_req_t req;
        memset(&req, 0, sizeof(req));
        memset(&e, 0, sizeof(e));
        if (mr_adapter_conv(ad, &conv, &in, &e) < 0 || ad->build(&in, &req, &e) < 0) {
            check_error(&e, ad->name);
            continue;
        }
        check_request(c, &in, &req, data, size);
        if (is_stream) {
            mr_stream_xlate_t *x = ad->stream_new(&in);
            CHECK(x, "%s: stream_new failed", ad->name);
            ad->stream_free(x);
        }
        mr_adapter_req_free(&req);
    }
    /* what the gateway feeds back: a served request and a first byte */
    mr_router_record_served(&ss.super, &plan, &plan.candidates[0], clock_ms);
    mr_router_record_ttfb(&ss.super, &plan.candidates[h % plan.n_candidates],
                          (uint32_t)((h >> 24) % 5000), clock_ms);
done:
    mr_adapter_conv_free(&conv);
    mr_plan_release(&plan);
    free(model_copy);
    json_decref(root);
    free(auth_in);
    free(policy_in);
    return 0;
}
