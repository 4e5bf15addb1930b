#include "meridian/responses.h"

#include "meridian/intake.h"
#include "meridian/responses_inbound.h"
#include "meridian/responses_parse.h"
#include "meridian/responses_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define INPUT_ITEMS_LIMIT 20 /* the API's default page */
#define INPUT_ITEMS_MAX 100

/* A get's answer, copied out of the callback (the value is borrowed there). */
typedef struct found {
    int answered;
    mr_respstore_status_t st;
    json_t *entry;
} found_t;

static void on_found(void *arg, mr_respstore_status_t st, const char *val, size_t len)
{
    found_t *f = arg;

    f->answered = 1;
    f->st = st;
    if (st == MR_RESPSTORE_OK)
        f->entry = json_loadb(val, len, 0, NULL);
}

static const mr_respstore_backend_t *store_of(const mr_request_t *r)
{
    return r->gen->snap->env.responses;
}

static const char *scope_of(const mr_request_t *r)
{
    return r->key ? r->key->name : "";
}

/* The entry of id under the caller's key: 0 and *entry, or -1 with the
 * answer queued in *ret (404 naming `param`, 503). */
static int lookup(mr_request_t *r, const char *id, const char *param, json_t **entry,
                  enum MHD_Result *ret)
{
    const mr_respstore_backend_t *be = store_of(r);
    found_t f = {0};

    if (be && mr_respstore_id_ok(id))
        mr_respstore_get(be, scope_of(r), id, on_found, &f);
    if (be && f.answered && f.st == MR_RESPSTORE_OK && json_is_object(f.entry)) {
        *entry = f.entry;
        return 0;
    }
    json_decref(f.entry);
    if (be && mr_respstore_id_ok(id) && (!f.answered || f.st == MR_RESPSTORE_UNAVAILABLE))
        *ret = mr_request_errorf(r, 503, "store_unavailable", param,
                                 "the response store cannot answer now; retry shortly");
    else if (param)
        *ret = mr_request_errorf(r, 404, "previous_response_not_found", param,
                                 "Previous response with id '%.128s' not found (it was made with "
                                 "store: false, by another key, or has expired).",
                                 id);
    else
        *ret = mr_request_errorf(r, 404, "response_not_found", NULL,
                                 "Response with id '%.128s' not found.", id);
    return -1;
}

/* body's input preceded by the entry's items; the body re-serialised into
 * r->body. -1 with the answer in *ret. */
static int prepend_history(mr_request_t *r, json_t *body, const json_t *entry, enum MHD_Result *ret)
{
    json_t *items = mr_responses_history(entry), *input = mr_responses_input_items(body);
    char *s = NULL;
    int rc = -1;

    if (!items || !input || json_array_extend(items, input) < 0 ||
        json_object_set(body, "input", items) < 0 ||
        !(s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        *ret = MHD_NO;
        goto done;
    }
    mr_buf_reset(&r->body);
    if (strlen(s) > mr_buf_room(&r->body)) {
        *ret = mr_request_errorf(r, 413, "request_too_large", "previous_response_id",
                                 "the conversation with the history of previous_response_id "
                                 "exceeds %zu bytes (limits.max_body_bytes)",
                                 r->gen->cfg->limits.max_body_bytes);
        goto done;
    }
    if (mr_buf_append(&r->body, s, strlen(s)) < 0) {
        r->retry_after_out = 1; /* the worker's memory budget would not hold it: soon */
        *ret = mr_request_errorf(r, 503, "overloaded", NULL,
                                 "the gateway is holding as much request and answer data as it "
                                 "may (limits.worker_memory_bytes); retry shortly");
        goto done;
    }
    rc = 0;
done:
    free(s);
    json_decref(items);
    json_decref(input);
    return rc;
}

/* store and previous_response_id as the API types them. */
static int check_members(mr_request_t *r, const json_t *body, enum MHD_Result *ret)
{
    const json_t *store = json_object_get(body, "store");
    const json_t *prev = json_object_get(body, "previous_response_id");

    if (store && !json_is_boolean(store) && !json_is_null(store)) {
        *ret = mr_request_errorf(r, 400, "invalid_type", "store", "store must be a boolean");
        return -1;
    }
    if (prev && !json_is_null(prev) && !json_is_string(prev)) {
        *ret = mr_request_errorf(r, 400, "invalid_type", "previous_response_id",
                                 "previous_response_id must be a string");
        return -1;
    }
    return 0;
}

/* The body's one scan and its parse tree, charged to the worker's budget
 * (intake.h): a new reference to the tree, or NULL with the refusal
 * answered in *ret. */
static json_t *read_body(mr_request_t *r, enum MHD_Result *ret)
{
    mr_error_t e;

    if (mr_intake_read(r, &e) < 0 || mr_intake_routing_tree(r, false, &e) < 0) {
        if (e.status == 503) /* the worker's memory budget: soon */
            r->retry_after_out = 1;
        *ret = mr_request_error(r, &e);
        return NULL;
    }
    return json_incref(r->json);
}

int mr_responses_prepare(mr_request_t *r, enum MHD_Result *ret)
{
    json_t *body = read_body(r, ret), *entry = NULL;
    const char *prev = json_string_value(json_object_get(body, "previous_response_id"));
    unsigned char rnd[16];
    char id[MR_RESPSTORE_ID_MAX + 1];
    int keep;

    if (!body)
        return -1;
    if (check_members(r, body, ret) < 0 ||
        (prev && lookup(r, prev, "previous_response_id", &entry, ret) < 0))
        goto fail;
    if (entry && prepend_history(r, body, entry, ret) < 0)
        goto fail;
    if (entry) /* the proxy reads the new body */
        mr_intake_body_changed(r);
    json_decref(entry);
    entry = NULL;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        *ret = mr_request_errorf(r, 500, "internal_error", NULL, "no randomness for a response id");
        goto fail;
    }
    mr_respstore_new_id(rnd, id);
    keep = !json_is_false(json_object_get(body, "store"));
    r->client_ctx =
        mr_responses_req_new(body, id, (long long)time(NULL), keep ? store_of(r) : NULL,
                             scope_of(r), (uint64_t)r->gen->cfg->responses.ttl_s * 1000u);
    r->client_ctx_free = mr_responses_req_free;
    json_decref(body);
    if (!r->client_ctx) {
        *ret = MHD_NO;
        return -1;
    }
    return 0;
fail:
    json_decref(entry);
    json_decref(body);
    return -1;
}

/* ---- GET / DELETE ------------------------------------------------------- */

static enum MHD_Result answer_json(mr_request_t *r, json_t *root)
{
    char *body = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(root);
    if (!body)
        return MHD_NO;
    return mr_request_queue(r, 200, body, strlen(body), "application/json");
}

static json_t *item_id_or_null(const json_t *item)
{
    const char *id = json_string_value(json_object_get(item, "id"));
    return id ? json_string(id) : json_null();
}

/* ?order=asc|desc (desc by default, as the API), ?limit=1..100 (20). */
static json_t *input_list(mr_request_t *r, const json_t *entry)
{
    const char *order = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "order");
    const char *lim = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    const json_t *input = json_object_get(entry, "input");
    size_t n = json_array_size(input), limit = INPUT_ITEMS_LIMIT;
    int asc = order && !strcmp(order, "asc");
    json_t *data = json_array();

    if (lim) {
        long v = strtol(lim, NULL, 10);
        limit = v < 1 ? 1 : v > INPUT_ITEMS_MAX ? INPUT_ITEMS_MAX : (size_t)v;
    }
    for (size_t k = 0; data && k < n && k < limit; k++)
        json_array_append(data, json_array_get(input, asc ? k : n - 1 - k));
    if (!data)
        return NULL;
    return json_pack("{s:s, s:o, s:o, s:o, s:b}", "object", "list", "data", data, "first_id",
                     item_id_or_null(json_array_get(data, 0)), "last_id",
                     item_id_or_null(json_array_get(data, json_array_size(data) - 1)), "has_more",
                     n > limit);
}

static void on_deleted(void *arg, mr_respstore_status_t st, const char *val, size_t len)
{
    (void)val;
    (void)len;
    *(mr_respstore_status_t *)arg = st;
}

static enum MHD_Result delete_item(mr_request_t *r, const char *id)
{
    const mr_respstore_backend_t *be = store_of(r);
    mr_respstore_status_t st = MR_RESPSTORE_UNAVAILABLE;

    if (be && mr_respstore_id_ok(id))
        mr_respstore_del(be, scope_of(r), id, on_deleted, &st);
    else
        st = MR_RESPSTORE_NOT_FOUND;
    if (st == MR_RESPSTORE_NOT_FOUND)
        return mr_request_errorf(r, 404, "response_not_found", NULL,
                                 "Response with id '%.128s' not found.", id);
    if (st != MR_RESPSTORE_OK)
        return mr_request_errorf(r, 503, "store_unavailable", NULL,
                                 "the response store cannot answer now; retry shortly");
    return answer_json(r,
                       json_pack("{s:s, s:s, s:b}", "id", id, "object", "response", "deleted", 1));
}

enum MHD_Result mr_responses_item(mr_request_t *r, int del)
{
    char id[sizeof(r->path_arg)];
    const char *sub = strchr(r->path_arg, '/');
    enum MHD_Result ret;
    json_t *entry, *out;

    snprintf(id, sizeof(id), "%.*s", (int)(sub ? (size_t)(sub - r->path_arg) : strlen(r->path_arg)),
             r->path_arg);
    if (sub && (del || strcmp(sub, "/input_items") != 0))
        return mr_request_errorf(r, 404, "unknown_url", NULL,
                                 "unknown path; use /v1/responses/{id} or "
                                 "/v1/responses/{id}/input_items");
    if (del)
        return delete_item(r, id);
    if (lookup(r, id, NULL, &entry, &ret) < 0)
        return ret;
    out = sub ? input_list(r, entry) : json_incref(json_object_get(entry, "response"));
    json_decref(entry);
    return answer_json(r, out);
}
