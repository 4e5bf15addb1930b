#include "meridian/responses_write.h"

#include "meridian/responses_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ITEM_NONE, ITEM_MESSAGE, ITEM_REASONING, ITEM_CALL };

/* ------------------------------------------------------------ pieces */

/* "msg_<id>_<n>": item ids made from the response's own */
static void item_id(const mr_responses_ctx_t *ctx, const char *prefix, size_t n, char *dst,
                    size_t cap)
{
    const char *core = ctx->id ? ctx->id : "";

    if (strncmp(core, "resp_", 5) == 0)
        core += 5;
    snprintf(dst, cap, "%s_%.*s_%zu", prefix, MR_CODEC_ID_MAX, core, n);
}

static json_t *usage_json(const mr_conv_usage_t *u)
{
    long in = u->prompt > 0 ? u->prompt : 0, out = u->completion > 0 ? u->completion : 0;

    return json_pack(
        "{s:I, s:{s:I}, s:I, s:{s:I}, s:I}", "input_tokens", (json_int_t)in, "input_tokens_details",
        "cached_tokens", (json_int_t)(u->cached > 0 ? u->cached : 0), "output_tokens",
        (json_int_t)out, "output_tokens_details", "reasoning_tokens",
        (json_int_t)(u->reasoning > 0 ? u->reasoning : 0), "total_tokens", (json_int_t)in + out);
}

static json_t *text_part(const char *p, size_t n)
{
    return json_pack("{s:s, s:s%, s:[]}", "type", "output_text", "text", p ? p : "", n,
                     "annotations");
}

static json_t *message_item(const char *id, const char *status, json_t *content)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "type", "message", "status", status,
                     "role", "assistant", "content", content ? content : json_array());
}

static json_t *summary_part(const char *p, size_t n)
{
    return json_pack("{s:s, s:s%}", "type", "summary_text", "text", p ? p : "", n);
}

/* summary: the reasoning text (none when empty); sealed: the seal or NULL */
static json_t *reasoning_item(const char *id, const char *text, size_t n, const char *sealed)
{
    json_t *it = json_pack("{s:s, s:s, s:[]}", "id", id, "type", "reasoning", "summary");

    if (it && n)
        json_array_append_new(json_object_get(it, "summary"), summary_part(text, n));
    if (it && sealed)
        json_object_set_new(it, "encrypted_content", json_string(sealed));
    return it;
}

static json_t *call_item(const char *id, const char *status, const char *call_id, const char *name,
                         const char *args, size_t n)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s%}", "id", id, "type", "function_call", "status",
                     status, "call_id", call_id, "name", name, "arguments", args ? args : "", n);
}

/* The items as the client sees them: seals only when it asked for them. */
static json_t *client_items(const json_t *sealed, int include)
{
    json_t *out = json_deep_copy(sealed), *it;
    size_t i;

    json_array_foreach(out, i, it)
    {
        if (!include)
            json_object_del(it, "encrypted_content");
    }
    return out;
}

/* A request member echoed, or `dflt` (taken) when absent. */
static void echo(json_t *resp, const json_t *req, const char *key, json_t *dflt)
{
    const json_t *v = json_object_get(req, key);

    if (v && !json_is_null(v)) {
        json_object_set(resp, key, (json_t *)(uintptr_t)v);
        json_decref(dflt);
    } else {
        json_object_set_new(resp, key, dflt ? dflt : json_null());
    }
}

static json_t *reasoning_echo(const json_t *req)
{
    const json_t *r = json_object_get(req, "reasoning");
    json_t *e = json_object_get(r, "effort"), *s = json_object_get(r, "summary");

    return json_pack("{s:O, s:O}", "effort", e ? e : json_null(), "summary", s ? s : json_null());
}

/* The response object; output (taken) as given, usage NULL: null. */
static json_t *response_object(const mr_responses_ctx_t *ctx, const char *model, const char *status,
                               json_t *output, const mr_conv_usage_t *usage, json_t *error,
                               const char *incomplete)
{
    const json_t *req = ctx->request;
    json_t *r = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", ctx->id ? ctx->id : "", "object",
                          "response", "created_at", (json_int_t)ctx->created_at, "status", status,
                          "error", error ? error : json_null(), "incomplete_details",
                          incomplete ? json_pack("{s:s}", "reason", incomplete) : json_null());

    if (!r) {
        json_decref(output);
        return NULL;
    }
    echo(r, req, "instructions", NULL);
    echo(r, req, "max_output_tokens", NULL);
    json_object_set_new(r, "model", json_string(model ? model : ""));
    json_object_set_new(r, "output", output ? output : json_array());
    echo(r, req, "parallel_tool_calls", json_true());
    echo(r, req, "previous_response_id", NULL);
    json_object_set_new(r, "reasoning", reasoning_echo(req));
    echo(r, req, "store", json_true());
    echo(r, req, "temperature", json_real(1.0));
    echo(r, req, "text", json_pack("{s:{s:s}}", "format", "type", "text"));
    echo(r, req, "tool_choice", json_string("auto"));
    echo(r, req, "tools", json_array());
    echo(r, req, "top_p", json_real(1.0));
    echo(r, req, "truncation", json_string("disabled"));
    json_object_set_new(r, "usage", usage ? usage_json(usage) : json_null());
    echo(r, req, "user", NULL);
    echo(r, req, "metadata", json_object());
    return r;
}

static const char *incomplete_reason(mr_conv_finish_t f)
{
    if (f == MR_CONV_FINISH_LENGTH)
        return "max_output_tokens";
    return f == MR_CONV_FINISH_CONTENT_FILTER ? "content_filter" : NULL;
}

/* ------------------------------------------------------------ answers */

static int wants_seals(const json_t *request)
{
    size_t i;
    const json_t *s;

    json_array_foreach(json_object_get(request, "include"), i, s)
    {
        if (mr_conv_eq(mr_conv_str(s), "reasoning.encrypted_content"))
            return 1;
    }
    return 0;
}

/* The seal of a reasoning part (or of a tool call's signature: call_id);
 * its origin model, when it names none, is the answer's. */
static char *seal_of(const mr_conv_reasoning_t *r, mr_conv_str_t model, mr_conv_str_t call_id)
{
    mr_conv_reasoning_t with = *r;

    if (!with.origin.model.p)
        with.origin.model = model;
    return r->signature.p || r->data.p ? mr_responses_seal(&with, call_id) : NULL;
}

/* One part into the items: text runs share a message item. */
static int answer_item(const mr_responses_ctx_t *ctx, const mr_conv_answer_t *a,
                       const mr_conv_part_t *p, const char *status, json_t *items)
{
    mr_conv_reasoning_t sig = {.origin.kind = {ctx->origin, ctx->origin ? strlen(ctx->origin) : 0}};
    json_t *last = json_array_get(items, json_array_size(items) - 1), *c;
    size_t n = json_array_size(items);
    char id[MR_CODEC_ID_MAX + 32], *seal;

    switch (p->kind) {
    case MR_CONV_TEXT:
    case MR_CONV_REFUSAL:
        if (!last || strcmp(json_string_value(json_object_get(last, "type")), "message") != 0) {
            item_id(ctx, "msg", n, id, sizeof(id));
            if (json_array_append_new(items, last = message_item(id, status, NULL)) < 0)
                return -1;
        }
        c = p->kind == MR_CONV_TEXT
                ? text_part(p->u.text.p, p->u.text.n)
                : json_pack("{s:s, s:o}", "type", "refusal", "refusal", mr_codec_str(p->u.text));
        return json_array_append_new(json_object_get(last, "content"), c);
    case MR_CONV_REASONING:
        item_id(ctx, "rs", n, id, sizeof(id));
        seal = seal_of(&p->u.reasoning, a->model, (mr_conv_str_t){0});
        c = reasoning_item(id, p->u.reasoning.text.p, p->u.reasoning.text.n, seal);
        free(seal);
        return json_array_append_new(items, c);
    case MR_CONV_TOOL_CALL:
        /* a call's own signature (Gemini) travels in a reasoning item before it */
        sig.signature = p->u.call.signature;
        if ((seal = seal_of(&sig, a->model, p->u.call.id))) {
            item_id(ctx, "rs", n++, id, sizeof(id));
            c = reasoning_item(id, NULL, 0, seal);
            free(seal);
            if (json_array_append_new(items, c) < 0)
                return -1;
        }
        item_id(ctx, "fc", n, id, sizeof(id));
        return json_array_append_new(items, call_item(id, "completed",
                                                      p->u.call.id.p ? p->u.call.id.p : "",
                                                      p->u.call.name.p ? p->u.call.name.p : "",
                                                      p->u.call.args.p, p->u.call.args.n));
    default:
        return 0;
    }
}

json_t *mr_responses_entry(const json_t *request, const json_t *history, const json_t *response,
                           const json_t *sealed_output)
{
    json_t *input = json_is_array(history) ? json_deep_copy(history) : json_array();
    json_t *mine = mr_responses_input_items(request);

    if (!input || !mine || json_array_extend(input, mine) < 0) {
        json_decref(input);
        json_decref(mine);
        return NULL;
    }
    json_decref(mine);
    return json_pack("{s:O, s:o, s:O}", "response", response, "input", input, "output",
                     sealed_output);
}

json_t *mr_responses_history(const json_t *entry)
{
    const json_t *input = json_object_get(entry, "input"),
                 *output = json_object_get(entry, "output");
    json_t *h;

    if (!json_is_array(input) || !json_is_array(output) || !(h = json_deep_copy(input)))
        return NULL;
    if (json_array_extend(h, (json_t *)(uintptr_t)output) < 0) {
        json_decref(h);
        return NULL;
    }
    return h;
}

int mr_responses_write_answer(const mr_conv_answer_t *a, const mr_responses_ctx_t *ctx,
                              const json_t *history, mr_buf_t *out, json_t **entry, mr_error_t *err)
{
    const mr_conv_choice_t *ch = a->n_choices ? &a->choices[0] : NULL;
    mr_conv_finish_t f = ch ? ch->finish : MR_CONV_FINISH_STOP;
    const char *incomplete = incomplete_reason(f);
    int include = wants_seals(ctx->request);
    json_t *sealed = json_array(), *resp = NULL;
    int rc = -1;

    if (entry)
        *entry = NULL;
    for (size_t k = 0; sealed && ch && k < ch->n_parts; k++)
        if (answer_item(ctx, a, &ch->parts[k], incomplete ? "incomplete" : "completed", sealed) < 0)
            goto oom;
    if (!sealed ||
        !(resp = response_object(ctx, a->model.p ? a->model.p : ctx->model,
                                 incomplete ? "incomplete" : "completed",
                                 client_items(sealed, include), &a->usage, NULL, incomplete)))
        goto oom;
    if (entry && !(*entry = mr_responses_entry(ctx->request, history, resp, sealed)))
        goto oom;
    if (mr_codec_append_json(out, json_incref(resp)) < 0) {
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "the translated answer is too large");
        goto done;
    }
    rc = 0;
    goto done;
oom:
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
done:
    if (rc < 0 && entry) {
        json_decref(*entry);
        *entry = NULL;
    }
    json_decref(resp);
    json_decref(sealed);
    return rc;
}

/* ------------------------------------------------------------ streams */

int mr_responses_writer_init(mr_responses_writer_t *w, const mr_responses_ctx_t *ctx)
{
    memset(w, 0, sizeof(*w));
    w->ctx = *ctx;
    w->_include = wants_seals(ctx->request);
    w->_usage = MR_CONV_USAGE_UNKNOWN;
    mr_codec_model(NULL, ctx->model, w->_model, sizeof(w->_model));
    mr_buf_init(&w->_text, MR_CONV_MAX_BYTES);
    mr_buf_init(&w->_sig, MR_CONV_MAX_BYTES);
    return (w->_output = json_array()) ? 0 : -1;
}

void mr_responses_writer_free(mr_responses_writer_t *w)
{
    json_decref(w->_output);
    w->_output = NULL;
    mr_buf_free(&w->_text);
    mr_buf_free(&w->_sig);
}

/* A new event object {type, sequence_number}. */
static json_t *ev_new(mr_responses_writer_t *w, const char *type)
{
    return json_pack("{s:s, s:I}", "type", type, "sequence_number", (json_int_t)w->_seq++);
}

/* {type, sequence_number, [item_id,] output_index}: the open item's */
static json_t *ev_at(mr_responses_writer_t *w, const char *type, int with_id)
{
    json_t *ev = ev_new(w, type);

    if (ev && with_id)
        json_object_set_new(ev, "item_id", json_string(w->_item_id));
    if (ev)
        json_object_set_new(ev, "output_index",
                            json_integer((json_int_t)json_array_size(w->_output)));
    return ev;
}

static json_t *ev_item(mr_responses_writer_t *w, const char *type)
{
    return ev_at(w, type, 1);
}

static int ev_emit(mr_responses_writer_t *w, json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    return type ? mr_codec_sse(w->out, type, ev) : (json_decref(ev), -1);
}

/* ev (taken) with member `key` set to v (taken), then emitted */
static int emit_with(mr_responses_writer_t *w, json_t *ev, const char *key, json_t *v)
{
    if (!ev || !v || json_object_set_new(ev, key, v) < 0) {
        json_decref(ev);
        return -1;
    }
    return ev_emit(w, ev);
}

static int emit_response(mr_responses_writer_t *w, const char *type, json_t *resp)
{
    return emit_with(w, ev_new(w, type), "response", resp);
}

static int start(mr_responses_writer_t *w)
{
    if (w->_started)
        return 0;
    w->_started = 1;
    if (emit_response(w, "response.created",
                      response_object(&w->ctx, w->_model, "in_progress", NULL, NULL, NULL, NULL)) <
        0)
        return -1;
    return emit_response(
        w, "response.in_progress",
        response_object(&w->ctx, w->_model, "in_progress", NULL, NULL, NULL, NULL));
}

static int emit_part(mr_responses_writer_t *w, const char *type, const char *index_key,
                     json_t *part)
{
    json_t *ev = ev_item(w, type);

    if (ev)
        json_object_set_new(ev, index_key, json_integer(0));
    return emit_with(w, ev, "part", part);
}

static int open_item(mr_responses_writer_t *w, int kind, json_t *item)
{
    int rc;

    w->_kind = kind;
    mr_buf_reset(&w->_text);
    mr_buf_reset(&w->_sig);
    rc = emit_with(w, ev_at(w, "response.output_item.added", 0), "item", item);
    if (rc == 0 && kind == ITEM_MESSAGE)
        rc = emit_part(w, "response.content_part.added", "content_index", text_part("", 0));
    if (rc == 0 && kind == ITEM_REASONING)
        rc = emit_part(w, "response.reasoning_summary_part.added", "summary_index",
                       summary_part("", 0));
    return rc;
}

/* The open item's closing events, its done item and its place in output. */
static json_t *close_message(mr_responses_writer_t *w, const char *status)
{
    const char *t = mr_buf_ptr(&w->_text);
    size_t n = mr_buf_len(&w->_text);
    json_t *ev = ev_item(w, "response.output_text.done");

    if (ev) {
        json_object_set_new(ev, "content_index", json_integer(0));
        json_object_set_new(ev, "logprobs", json_array());
    }
    if (emit_with(w, ev, "text", json_stringn(t, n)) < 0 ||
        emit_part(w, "response.content_part.done", "content_index", text_part(t, n)) < 0)
        return NULL;
    return message_item(w->_item_id, status, json_pack("[o]", text_part(t, n)));
}

static json_t *close_reasoning(mr_responses_writer_t *w)
{
    const char *t = mr_buf_ptr(&w->_text);
    size_t n = mr_buf_len(&w->_text);
    mr_conv_reasoning_t r = {.signature = {mr_buf_ptr(&w->_sig), mr_buf_len(&w->_sig)}};
    json_t *ev = ev_item(w, "response.reasoning_summary_text.done"), *item;
    char *seal;

    if (ev)
        json_object_set_new(ev, "summary_index", json_integer(0));
    if (emit_with(w, ev, "text", json_stringn(t, n)) < 0 ||
        emit_part(w, "response.reasoning_summary_part.done", "summary_index", summary_part(t, n)) <
            0)
        return NULL;
    r.origin.kind = (mr_conv_str_t){w->ctx.origin, w->ctx.origin ? strlen(w->ctx.origin) : 0};
    r.origin.model = (mr_conv_str_t){w->_model, strlen(w->_model)};
    if (!r.signature.n)
        r.signature.p = NULL;
    seal = seal_of(&r, r.origin.model, (mr_conv_str_t){0});
    item = reasoning_item(w->_item_id, t, n, seal);
    free(seal);
    return item;
}

static json_t *close_call(mr_responses_writer_t *w)
{
    const char *a = mr_buf_ptr(&w->_text);
    size_t n = mr_buf_len(&w->_text);
    json_t *ev = ev_item(w, "response.function_call_arguments.done");

    if (ev)
        json_object_set_new(ev, "name", json_string(w->_name));
    if (emit_with(w, ev, "arguments", json_stringn(a, n)) < 0)
        return NULL;
    return call_item(w->_item_id, "completed", w->_call_id, w->_name, a, n);
}

static int close_item(mr_responses_writer_t *w, const char *status)
{
    json_t *item = NULL, *shown;
    int kind = w->_kind;

    if (kind == ITEM_NONE)
        return 0;
    w->_kind = ITEM_NONE;
    if (kind == ITEM_MESSAGE)
        item = close_message(w, status);
    else if (kind == ITEM_REASONING)
        item = close_reasoning(w);
    else
        item = close_call(w);
    shown = item ? json_deep_copy(item) : NULL;
    if (shown && !w->_include)
        json_object_del(shown, "encrypted_content");
    if (emit_with(w, ev_at(w, "response.output_item.done", 0), "item", shown) < 0 ||
        json_array_append_new(w->_output, item) < 0)
        return -1;
    w->_bytes += mr_buf_len(&w->_text) + mr_buf_len(&w->_sig);
    return 0;
}

/* The terminal event, after on_final saw the response. */
static int finish(mr_responses_writer_t *w, const char *type, const char *status, json_t *error,
                  const char *incomplete)
{
    json_t *resp;

    w->_ended = 1;
    resp = response_object(&w->ctx, w->_model, status, client_items(w->_output, w->_include),
                           w->_usage.prompt >= 0 || w->_usage.completion >= 0 ? &w->_usage : NULL,
                           error, incomplete);
    if (!resp)
        return -1;
    if (w->on_final)
        w->on_final(w->on_final_arg, resp, w->_output);
    w->final_at = mr_buf_len(w->out);
    return emit_response(w, type, resp);
}

/* response.failed; the message is a view (events carry views). */
static int failed(mr_responses_writer_t *w, const char *code, mr_conv_str_t message)
{
    json_t *msg;

    if (w->_ended)
        return 0;
    if (start(w) < 0)
        return -1;
    w->_kind = ITEM_NONE; /* an item cut short is not part of the output */
    w->_failed = 1;
    if (!(msg = json_stringn(message.p ? message.p : "", message.n)))
        msg = json_string("the upstream's error message is not valid UTF-8");
    return finish(w, "response.failed", "failed",
                  json_pack("{s:s, s:o}", "code", code ? code : "server_error", "message", msg),
                  NULL);
}

int mr_responses_writer_content(const mr_responses_writer_t *w)
{
    return w->_kind != ITEM_NONE || json_array_size(w->_output) > 0;
}

int mr_responses_writer_failed(const mr_responses_writer_t *w)
{
    return w->_failed;
}

mr_conv_usage_t mr_responses_writer_usage(const mr_responses_writer_t *w)
{
    return w->_usage;
}

int mr_responses_write_failed(mr_responses_writer_t *w, const char *code, const char *message)
{
    return failed(w, code, (mr_conv_str_t){message, message ? strlen(message) : 0});
}

static int append(mr_responses_writer_t *w, mr_buf_t *b, mr_conv_str_t s)
{
    if (w->_bytes + mr_buf_len(&w->_text) + s.n > MR_CONV_MAX_BYTES ||
        mr_buf_append(b, s.p, s.n) < 0)
        return mr_responses_write_failed(w, "server_error", "the answer is too large to translate");
    return 1;
}

static int on_text(mr_responses_writer_t *w, int kind, mr_conv_str_t s)
{
    const char *id = w->_item_id;
    json_t *ev;
    int rc;

    if (s.n == 0)
        return 0;
    if (w->_kind != kind) {
        if (close_item(w, "completed") < 0)
            return -1;
        item_id(&w->ctx, kind == ITEM_MESSAGE ? "msg" : "rs", json_array_size(w->_output),
                w->_item_id, sizeof(w->_item_id));
        if (open_item(w, kind,
                      kind == ITEM_MESSAGE ? message_item(id, "in_progress", NULL)
                                           : json_pack("{s:s, s:s, s:[]}", "id", id, "type",
                                                       "reasoning", "summary")) < 0)
            return -1;
    }
    if ((rc = append(w, &w->_text, s)) != 1)
        return rc;
    ev = ev_item(w, kind == ITEM_MESSAGE ? "response.output_text.delta"
                                         : "response.reasoning_summary_text.delta");
    if (ev && kind == ITEM_MESSAGE) {
        json_object_set_new(ev, "content_index", json_integer(0));
        json_object_set_new(ev, "logprobs", json_array());
    } else if (ev) {
        json_object_set_new(ev, "summary_index", json_integer(0));
    }
    return emit_with(w, ev, "delta", mr_codec_str(s));
}

static int on_args(mr_responses_writer_t *w, mr_conv_str_t s)
{
    int rc;

    if (s.n == 0)
        return 0;
    if ((rc = append(w, &w->_text, s)) != 1)
        return rc;
    return emit_with(w, ev_item(w, "response.function_call_arguments.delta"), "delta",
                     mr_codec_str(s));
}

static int on_tool(mr_responses_writer_t *w, const mr_conv_event_t *ev)
{
    size_t n;

    if (close_item(w, "completed") < 0)
        return -1;
    n = json_array_size(w->_output);
    item_id(&w->ctx, "fc", n, w->_item_id, sizeof(w->_item_id));
    mr_codec_safe_id(ev->id.p, ev->id.n, "call_", w->_call_id, sizeof(w->_call_id));
    snprintf(w->_name, sizeof(w->_name), "%.*s", (int)ev->name.n, ev->name.p ? ev->name.p : "");
    w->_tool = ev->index;
    if (open_item(w, ITEM_CALL,
                  call_item(w->_item_id, "in_progress", w->_call_id, w->_name, "", 0)) < 0)
        return -1;
    return on_args(w, ev->text);
}

static int on_end(mr_responses_writer_t *w)
{
    const char *incomplete = incomplete_reason(w->_finish);

    if (start(w) < 0 || close_item(w, incomplete ? "incomplete" : "completed") < 0)
        return -1;
    return finish(w, incomplete ? "response.incomplete" : "response.completed",
                  incomplete ? "incomplete" : "completed", NULL, incomplete);
}

static int on_content(mr_responses_writer_t *w, const mr_conv_event_t *ev)
{
    if (start(w) < 0)
        return -1;
    switch (ev->kind) {
    case MR_CONV_EV_TEXT:
        return on_text(w, ITEM_MESSAGE, ev->text);
    case MR_CONV_EV_REASONING:
        return on_text(w, ITEM_REASONING, ev->text);
    case MR_CONV_EV_SIGNATURE:
        return w->_kind == ITEM_REASONING && append(w, &w->_sig, ev->text) < 0 ? -1 : 0;
    case MR_CONV_EV_TOOL_START:
        return on_tool(w, ev);
    case MR_CONV_EV_TOOL_ARGS:
        if (w->_kind != ITEM_CALL || w->_tool != ev->index)
            return ev->text.n ? mr_responses_write_failed(
                                    w, "server_error",
                                    "the upstream interleaved the arguments of two tool calls")
                              : 0;
        return on_args(w, ev->text);
    default: /* FINISH */
        w->_finish = ev->finish;
        return close_item(w, incomplete_reason(ev->finish) ? "incomplete" : "completed");
    }
}

int mr_responses_write_event(void *ctx, const mr_conv_event_t *ev)
{
    mr_responses_writer_t *w = ctx;

    if (w->_ended)
        return 0;
    switch (ev->kind) {
    case MR_CONV_EV_START:
        if (ev->choice == 0 && !w->_started && ev->name.p)
            mr_codec_view_copy(ev->name, w->_model, sizeof(w->_model));
        return ev->choice == 0 ? start(w) : 0;
    case MR_CONV_EV_USAGE:
        w->_usage = *ev->usage;
        return 0;
    case MR_CONV_EV_END:
        return on_end(w);
    case MR_CONV_EV_ERROR:
        return failed(w,
                      ev->err_type && strcmp(ev->err_type, "rate_limit_error") == 0
                          ? "rate_limit_exceeded"
                          : "server_error",
                      ev->text);
    default:
        return ev->choice == 0 ? on_content(w, ev) : 0;
    }
}
