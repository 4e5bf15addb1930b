/*
 * Shared by the request fuzzers of the inbound dialects
 * (fuzz_messages_parse.c, fuzz_responses_parse.c): the invariants of a
 * model any parser built, and every target's request built from it.
 *
 *   - every view is absent or NUL-terminated at its length; the bounds hold;
 *     a tool turn holds its one result; kept arguments are objects;
 *   - mr_conv_check answers 0 or a 400 with a message, for each target;
 *   - what passes becomes a JSON object for the chat, Anthropic and Gemini
 *     targets (or a 400 the emitter explains), the key never in a URL.
 */
#ifndef MERIDIAN_FUZZ_DIALECT_H
#define MERIDIAN_FUZZ_DIALECT_H

#include "meridian/chat_emit.h"

#include "fuzz_common.h"

static void view_ok(mr_conv_str_t s)
{
    FUZZ_CHECK(!s.p ? s.n == 0 : s.p[s.n] == '\0', "a view neither absent nor terminated");
}

static size_t parts_ok(const mr_conv_part_t *parts, size_t n)
{
    size_t total = n;

    for (size_t k = 0; k < n; k++) {
        const mr_conv_part_t *p = &parts[k];
        view_ok(p->cache.type);
        view_ok(p->cache.ttl);
        if (p->kind == MR_CONV_TEXT || p->kind == MR_CONV_REFUSAL) {
            view_ok(p->u.text);
        } else if (p->kind == MR_CONV_IMAGE || p->kind == MR_CONV_AUDIO ||
                   p->kind == MR_CONV_FILE) {
            view_ok(p->u.media.url);
            view_ok(p->u.media.data);
            FUZZ_CHECK(p->u.media.source != MR_CONV_SRC_BASE64 || p->u.media.media_type.p,
                       "base64 media without its type");
        } else if (p->kind == MR_CONV_TOOL_CALL) {
            view_ok(p->u.call.id);
            view_ok(p->u.call.name);
            view_ok(p->u.call.args);
            view_ok(p->u.call.signature);
            FUZZ_CHECK(!p->u.call.args_json || json_is_object(p->u.call.args_json),
                       "arguments kept that are not an object");
        } else if (p->kind == MR_CONV_REASONING) {
            view_ok(p->u.reasoning.text);
            view_ok(p->u.reasoning.signature);
            view_ok(p->u.reasoning.data);
            view_ok(p->u.reasoning.origin.kind);
            view_ok(p->u.reasoning.origin.model);
        } else if (p->kind == MR_CONV_TOOL_RESULT) {
            FUZZ_CHECK(0, "a tool result outside a tool turn");
        } else {
            view_ok(p->u.other.type);
        }
    }
    return total;
}

static void model_ok(const mr_conv_req_t *r)
{
    size_t total = 0;

    FUZZ_CHECK(r->n_turns <= MR_CONV_MAX_TURNS && r->n_tools <= MR_CONV_MAX_TOOLS, "bounds");
    for (size_t i = 0; i < r->n_turns; i++) {
        const mr_conv_turn_t *t = &r->turns[i];
        view_ok(t->role_name);
        if (t->role != MR_CONV_ROLE_TOOL) {
            total += parts_ok(t->parts, t->n_parts);
            continue;
        }
        FUZZ_CHECK(t->n_parts == 1 && t->parts[0].kind == MR_CONV_TOOL_RESULT,
                   "a tool turn without its one result");
        view_ok(t->parts[0].u.result.call_id);
        view_ok(t->parts[0].u.result.name);
        total += 1 + parts_ok(t->parts[0].u.result.content, t->parts[0].u.result.n_content);
    }
    FUZZ_CHECK(total <= MR_CONV_MAX_PARTS, "%zu parts", total);
    for (size_t i = 0; i < r->n_tools; i++)
        view_ok(r->tools[i].name);
    for (size_t i = 0; i < r->n_stop; i++)
        view_ok(r->stop[i]);
    for (size_t i = 0; i < r->n_dropped; i++)
        view_ok(r->dropped[i]);
    view_ok(r->previous_response_id);
    view_ok(r->thinking_type);
}

/* One target's request from the model: a JSON object without the key, or
 * a 400 / 500 with a message. */
static void target_ok(const mr_adapter_t *ad, mr_provider_kind_t kind, const json_t *body,
                      const mr_conv_req_t *r)
{
    mr_provider_t p = *fuzz_provider();
    mr_adapter_in_t in;
    mr_adapter_req_t req;
    mr_error_t err = {0};

    p.kind = kind;
    fuzz_in(&in, MR_EP_CHAT, r->stream, 1, body, NULL, 0);
    in.provider = &p;
    in.conv = r;
    if (ad->build(&in, &req, &err) < 0) {
        FUZZ_CHECK((err.status == 400 || err.status == 500) && err.message[0], "build: %d",
                   err.status);
        return;
    }
    FUZZ_CHECK(fuzz_is_json(req.body, req.body_len), "%s body is not JSON", ad->name);
    FUZZ_CHECK(!strstr(req.url, "fuzz-secret-key"), "the key in a URL");
    mr_adapter_req_free(&req);
}

static void targets_ok(const json_t *body, const mr_conv_req_t *r)
{
    mr_chat_emit_opts_t o = {.model = "fuzz-model", .stream = r->stream};
    mr_error_t err = {0};
    char *text;
    size_t len;

    model_ok(r);
    if (mr_chat_emit_body(r, &o, &text, &len, &err) == 0) {
        FUZZ_CHECK(fuzz_is_json(text, len), "chat body is not JSON");
        free(text);
    } else {
        FUZZ_CHECK((err.status == 400 || err.status == 500) && err.message[0], "chat: %d",
                   err.status);
    }
    target_ok(&mr_adapter_anthropic, MR_KIND_ANTHROPIC, body, r);
    target_ok(&mr_adapter_gemini, MR_KIND_GEMINI, body, r);
}

/* A body as the gateway accepts it: strict JSON without duplicate members. */
static json_t *fuzz_body(const uint8_t *data, size_t size)
{
    return json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
}

#endif
