/*
 * The Anthropic Messages dialect (POST {base_url}/messages).
 *
 * Requests are rebuilt from the client's parsed body: system and developer
 * messages become `system`, tool results become user `tool_result` blocks,
 * assistant tool calls become `tool_use` blocks, and consecutive messages of
 * one role are merged (Anthropic wants user and assistant turns to
 * alternate). Answers and event streams are translated back into OpenAI's
 * chat.completion / chat.completion.chunk shapes; every parameter's fate is
 * listed in docs/providers.md.
 */
#include "meridian/adapter.h"
#include "meridian/health.h"
#include "meridian/sse.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Provider settings the configuration does not carry (yet); see
 * docs/providers.md for the proposed keys. */
#define ANTHROPIC_VERSION "2023-06-01"
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096
#define ANTHROPIC_MAX_TOKENS_LIMIT 1000000

/* ------------------------------------------------------------ requests */

/* Anthropic ids must match ^[a-zA-Z0-9_-]+$: other bytes become '_' (the
 * same mapping on both sides, so tool_use and tool_result still pair). */
static json_t *tool_id(const json_t *id)
{
    size_t n = json_string_length(id);
    char *s;
    json_t *out;

    if (!json_is_string(id) || n == 0)
        return NULL;
    s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, json_string_value(id), n);
    s[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            s[i] = '_';
    }
    out = json_stringn(s, n);
    free(s);
    return out;
}

static int add_text(json_t *blocks, const json_t *text)
{
    if (json_string_length(text) == 0) /* Anthropic rejects empty text blocks */
        return 0;
    return json_array_append_new(blocks, json_pack("{s:s, s:O}", "type", "text", "text", text));
}

/* An image_url part: data URLs become base64 sources, http(s) URLs url sources. */
static int image_block(const json_t *part, const char *where, size_t k, json_t *blocks,
                       mr_error_t *err)
{
    const json_t *iu = json_object_get(part, "image_url");
    const char *url =
        json_is_string(iu) ? json_string_value(iu) : json_string_value(json_object_get(iu, "url"));
    char mime[64];
    const char *data;

    if (!url)
        return mr__xlate_bad(err, "invalid_type", "messages",
                             "%s.content[%zu].image_url.url is missing", where, k);
    json_t *b;

    if (mr__xlate_data_url(url, mime, sizeof(mime), &data) == 0)
        b = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type", "base64",
                      "media_type", mime, "data", data);
    else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0)
        b = json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url);
    else
        return mr__xlate_bad(err, "unsupported_content", "messages",
                             "%s.content[%zu]: image URLs must be data: (base64) or http(s) "
                             "URLs",
                             where, k);
    return json_array_append_new(blocks, b) < 0 ? mr__xlate_oom(err) : 0;
}

/* A file part: base64 PDF (file_data) becomes a document block. */
static int file_block(const json_t *part, const char *where, size_t k, json_t *blocks,
                      mr_error_t *err)
{
    const char *fd = json_string_value(json_object_get(json_object_get(part, "file"), "file_data"));
    char mime[64];
    const char *data;

    if (!fd || mr__xlate_data_url(fd, mime, sizeof(mime), &data) < 0 ||
        strcmp(mime, "application/pdf") != 0)
        return mr__xlate_bad(err, "unsupported_content", "messages",
                             "%s.content[%zu]: only PDF files given inline as file_data "
                             "(data:application/pdf;base64,...) can be sent to anthropic",
                             where, k);
    if (json_array_append_new(blocks,
                              json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "document", "source",
                                        "type", "base64", "media_type", mime, "data", data)) < 0)
        return mr__xlate_oom(err);
    return 0;
}

/* User content (string or parts) -> blocks appended to `blocks`. */
static int user_blocks(const json_t *content, const char *where, json_t *blocks, mr_error_t *err)
{
    size_t k;
    const json_t *part;

    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return add_text(blocks, content) < 0 ? mr__xlate_oom(err) : 0;
    if (!json_is_array(content))
        return mr__xlate_bad(err, "invalid_type", "messages",
                             "%s.content must be a string or an array of parts", where);
    json_array_foreach(content, k, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        int rc;
        if (!type)
            return mr__xlate_bad(err, "invalid_type", "messages", "%s.content[%zu].type is missing",
                                 where, k);
        if (strcmp(type, "text") == 0) {
            const json_t *t = json_object_get(part, "text");
            if (!json_is_string(t))
                return mr__xlate_bad(err, "invalid_type", "messages",
                                     "%s.content[%zu].text must be a string", where, k);
            rc = add_text(blocks, t) < 0 ? mr__xlate_oom(err) : 0;
        } else if (strcmp(type, "image_url") == 0) {
            rc = image_block(part, where, k, blocks, err);
        } else if (strcmp(type, "file") == 0) {
            rc = file_block(part, where, k, blocks, err);
        } else {
            return mr__xlate_bad(err, "unsupported_content", "messages",
                                 "%s.content[%zu]: %s parts cannot be sent to anthropic", where, k,
                                 type);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Assistant tool_calls -> tool_use blocks. */
static int tool_use_blocks(const json_t *calls, const char *where, json_t *blocks, mr_error_t *err)
{
    size_t k;
    const json_t *c;

    if (!calls || json_is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return mr__xlate_bad(err, "invalid_type", "messages", "%s.tool_calls must be an array",
                             where);
    json_array_foreach(calls, k, c)
    {
        const json_t *fn = json_object_get(c, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        const char *type = json_string_value(json_object_get(c, "type"));
        json_t *id = tool_id(json_object_get(c, "id")), *input;

        if (!id || !json_is_string(name) || (type && strcmp(type, "function") != 0)) {
            json_decref(id);
            return mr__xlate_bad(err, "invalid_type", "messages",
                                 "%s.tool_calls[%zu] must be a function call with an id and a name",
                                 where, k);
        }
        if (!args || json_is_null(args) || json_string_length(args) == 0) {
            input = json_object();
        } else if (json_is_string(args)) {
            input = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
        } else {
            input = NULL;
        }
        if (!json_is_object(input)) {
            json_decref(id);
            json_decref(input);
            return mr__xlate_bad(err, "invalid_value", "messages",
                                 "%s.tool_calls[%zu].function.arguments must be a JSON object "
                                 "text",
                                 where, k);
        }
        if (json_array_append_new(blocks, json_pack("{s:s, s:o, s:O, s:o}", "type", "tool_use",
                                                    "id", id, "name", name, "input", input)) < 0)
            return mr__xlate_oom(err);
    }
    return 0;
}

/* A role:tool message -> one tool_result block. */
static int tool_result_block(const json_t *m, const char *where, json_t *blocks, mr_error_t *err)
{
    json_t *id = tool_id(json_object_get(m, "tool_call_id"));
    const json_t *content = json_object_get(m, "content");
    json_t *block, *c;

    if (!id)
        return mr__xlate_bad(err, "invalid_type", "messages", "%s.tool_call_id is missing", where);
    block = json_pack("{s:s, s:o}", "type", "tool_result", "tool_use_id", id);
    if (!block)
        return mr__xlate_oom(err);
    if (json_is_array(content)) {
        c = json_array();
        if (!c || user_blocks(content, where, c, err) < 0) {
            json_decref(c);
            json_decref(block);
            return -1;
        }
    } else if (mr__xlate_content_text(content, where, &c, err) < 0) {
        json_decref(block);
        return -1;
    }
    json_object_set_new(block, "content", c);
    return json_array_append_new(blocks, block) < 0 ? mr__xlate_oom(err) : 0;
}

/* Appends blocks as a `role` turn, merging into the previous turn when it
 * has the same role. Takes the reference to blocks. */
static int push_turn(json_t *msgs, const char *role, json_t *blocks)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    int rc;

    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return 0;
    }
    if (last && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
        rc = json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
        return rc;
    }
    return json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", role, "content", blocks));
}

/* tool_result blocks must lead a user turn; a lone plain text block is
 * sent as a string. */
static void tidy_turns(json_t *msgs)
{
    size_t i, k;
    json_t *m;

    json_array_foreach(msgs, i, m)
    {
        json_t *blocks = json_object_get(m, "content");
        json_t *sorted = json_array();
        const json_t *b;
        for (int pass = 0; pass < 2 && sorted; pass++)
            json_array_foreach(blocks, k, b)
            {
                int tr = strcmp(json_string_value(json_object_get(b, "type")), "tool_result") == 0;
                if (tr == (pass == 0))
                    json_array_append(sorted, (json_t *)b);
            }
        if (sorted)
            json_object_set_new(m, "content", sorted);
        blocks = json_object_get(m, "content");
        b = json_array_get(blocks, 0);
        if (json_array_size(blocks) == 1 && json_object_size(b) == 2 &&
            strcmp(json_string_value(json_object_get(b, "type")), "text") == 0)
            json_object_set(m, "content", json_object_get(b, "text"));
    }
}

static int convert_messages(const json_t *messages, json_t *root, mr_error_t *err)
{
    json_t *msgs = json_array();
    mr_buf_t system;
    size_t i;
    const json_t *m;
    int rc = -1;

    mr_buf_init(&system, (size_t)-1);
    if (!msgs)
        return mr__xlate_oom(err);
    json_array_foreach(messages, i, m)
    {
        char where[40];
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        json_t *blocks;

        snprintf(where, sizeof(where), "messages[%zu]", i);
        if (!json_is_object(m) || !role) {
            mr__xlate_bad(err, "invalid_type", "messages", "%s must be an object with a role",
                          where);
            goto done;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            json_t *t;
            if (mr__xlate_content_text(content, where, &t, err) < 0)
                goto done;
            if (json_string_length(t) &&
                ((mr_buf_len(&system) && mr_buf_append(&system, "\n\n", 2) < 0) ||
                 mr_buf_append(&system, json_string_value(t), json_string_length(t)) < 0)) {
                json_decref(t);
                mr__xlate_oom(err);
                goto done;
            }
            json_decref(t);
            continue;
        }
        if (!(blocks = json_array())) {
            mr__xlate_oom(err);
            goto done;
        }
        if (strcmp(role, "user") == 0) {
            if (user_blocks(content, where, blocks, err) < 0)
                goto fail_blocks;
        } else if (strcmp(role, "assistant") == 0) {
            json_t *t;
            if (content && !json_is_null(content)) {
                if (mr__xlate_content_text(content, where, &t, err) < 0)
                    goto fail_blocks;
                add_text(blocks, t);
                json_decref(t);
            }
            if (tool_use_blocks(json_object_get(m, "tool_calls"), where, blocks, err) < 0)
                goto fail_blocks;
        } else if (strcmp(role, "tool") == 0) {
            if (tool_result_block(m, where, blocks, err) < 0)
                goto fail_blocks;
            role = "user";
        } else {
            mr__xlate_bad(err, "unsupported_content", "messages",
                          "%s: role \"%s\" cannot be sent to anthropic", where, role);
            goto fail_blocks;
        }
        if (push_turn(msgs, role, blocks) < 0) {
            mr__xlate_oom(err);
            goto done;
        }
        continue;
    fail_blocks:
        json_decref(blocks);
        goto done;
    }
    tidy_turns(msgs);
    if (mr_buf_len(&system))
        json_object_set_new(root, "system", json_stringn(mr_buf_ptr(&system), mr_buf_len(&system)));
    json_object_set(root, "messages", msgs);
    rc = 0;
done:
    json_decref(msgs);
    mr_buf_free(&system);
    return rc;
}

static int convert_tools(const json_t *body, json_t *root, mr_error_t *err)
{
    const json_t *tools = json_object_get(body, "tools");
    const json_t *choice = json_object_get(body, "tool_choice");
    const json_t *parallel = json_object_get(body, "parallel_tool_calls");
    json_t *out, *tc = NULL;
    size_t i;
    const json_t *t;

    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return mr__xlate_bad(err, "invalid_type", "tools", "tools must be an array");
    if (json_array_size(tools) == 0)
        return 0;
    if (!(out = json_array()))
        return mr__xlate_oom(err);
    json_array_foreach(tools, i, t)
    {
        const char *type = json_string_value(json_object_get(t, "type"));
        const json_t *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *desc = json_object_get(fn, "description");
        const json_t *params = json_object_get(fn, "parameters");
        json_t *tool;

        if (!type || strcmp(type, "function") != 0 || !json_is_string(name)) {
            json_decref(out);
            return mr__xlate_bad(err, "unsupported_parameter", "tools",
                                 "tools[%zu]: only function tools with a name can be sent to "
                                 "anthropic",
                                 i);
        }
        tool = json_pack("{s:O}", "name", name);
        if (tool && json_is_string(desc))
            json_object_set(tool, "description", (json_t *)desc);
        if (tool)
            json_object_set_new(tool, "input_schema",
                                json_is_object(params)
                                    ? json_deep_copy(params)
                                    : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        if (json_array_append_new(out, tool) < 0) {
            json_decref(out);
            return mr__xlate_oom(err);
        }
    }
    json_object_set_new(root, "tools", out);

    if (json_is_string(choice)) {
        const char *c = json_string_value(choice);
        if (strcmp(c, "auto") == 0)
            tc = json_pack("{s:s}", "type", "auto");
        else if (strcmp(c, "none") == 0)
            tc = json_pack("{s:s}", "type", "none");
        else if (strcmp(c, "required") == 0)
            tc = json_pack("{s:s}", "type", "any");
        else
            return mr__xlate_bad(err, "invalid_value", "tool_choice",
                                 "tool_choice must be auto, none, required or a function");
    } else if (json_is_object(choice)) {
        const json_t *name = json_object_get(json_object_get(choice, "function"), "name");
        if (!json_is_string(name))
            return mr__xlate_bad(err, "unsupported_parameter", "tool_choice",
                                 "tool_choice must name a function");
        tc = json_pack("{s:s, s:O}", "type", "tool", "name", name);
    } else if (choice && !json_is_null(choice)) {
        return mr__xlate_bad(err, "invalid_type", "tool_choice",
                             "tool_choice must be a string or an object");
    }
    if (json_is_false(parallel) &&
        !(tc && strcmp(json_string_value(json_object_get(tc, "type")), "none") == 0)) {
        if (!tc)
            tc = json_pack("{s:s}", "type", "auto");
        if (tc)
            json_object_set_new(tc, "disable_parallel_tool_use", json_true());
    }
    if (tc)
        json_object_set_new(root, "tool_choice", tc);
    return 0;
}

/* Rejects what Anthropic cannot do rather than silently answer differently. */
static int check_unsupported(const json_t *body, mr_error_t *err)
{
    const json_t *rf = json_object_get(body, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    const json_t *mod = json_object_get(body, "modalities");
    long long n = 1;
    size_t i;
    const json_t *v;

    if (mr__xlate_get_int(body, "n", 1, 128, &n, err) < 0)
        return -1;
    if (n != 1)
        return mr__xlate_bad(err, "unsupported_parameter", "n",
                             "n > 1 is not supported by anthropic targets");
    if (json_is_true(json_object_get(body, "logprobs")))
        return mr__xlate_bad(err, "unsupported_parameter", "logprobs",
                             "logprobs are not supported by anthropic targets");
    if (rft && strcmp(rft, "text") != 0)
        return mr__xlate_bad(err, "unsupported_parameter", "response_format",
                             "response_format %s is not supported by anthropic targets", rft);
    if (json_object_get(body, "audio") && !json_is_null(json_object_get(body, "audio")))
        return mr__xlate_bad(err, "unsupported_parameter", "audio",
                             "audio output is not supported by anthropic targets");
    json_array_foreach(mod, i, v)
    {
        if (!json_is_string(v) || strcmp(json_string_value(v), "text") != 0)
            return mr__xlate_bad(err, "unsupported_parameter", "modalities",
                                 "only the text modality is supported by anthropic targets");
    }
    if (json_object_get(body, "functions") || json_object_get(body, "function_call"))
        return mr__xlate_bad(err, "unsupported_parameter", "functions",
                             "functions/function_call are deprecated: use tools/tool_choice");
    return 0;
}

static int anthropic_body(const mr_adapter_in_t *in, json_t **out, mr_error_t *err)
{
    const json_t *body = in->json;
    const json_t *messages = json_object_get(body, "messages");
    json_t *root = json_object(), *stop = NULL;
    long long max_tokens = in->provider->default_max_tokens > 0 ? in->provider->default_max_tokens
                                                                : ANTHROPIC_DEFAULT_MAX_TOKENS;
    double d;
    int rc;

    *out = NULL;
    if (!root)
        return mr__xlate_oom(err);
    if (!json_is_array(messages)) {
        json_decref(root);
        return mr__xlate_bad(err, "invalid_type", "messages", "messages must be an array");
    }
    if (check_unsupported(body, err) < 0)
        goto fail;
    json_object_set_new(root, "model", json_string(in->model));
    if (convert_messages(messages, root, err) < 0)
        goto fail;
    rc = mr__xlate_get_int(body, "max_completion_tokens", 1, ANTHROPIC_MAX_TOKENS_LIMIT,
                           &max_tokens, err);
    if (rc == 0)
        rc = mr__xlate_get_int(body, "max_tokens", 1, ANTHROPIC_MAX_TOKENS_LIMIT, &max_tokens, err);
    if (rc < 0)
        goto fail;
    json_object_set_new(root, "max_tokens", json_integer(max_tokens));
    if ((rc = mr__xlate_get_number(body, "temperature", &d, err)) < 0)
        goto fail;
    /* OpenAI's range is 0..2, Anthropic's 0..1 */
    if (rc)
        json_object_set_new(root, "temperature", json_real(d < 0 ? 0 : d > 1 ? 1 : d));
    if ((rc = mr__xlate_get_number(body, "top_p", &d, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(root, "top_p", json_real(d));
    if ((rc = mr__xlate_get_stop(body, &stop, err)) < 0)
        goto fail;
    if (rc)
        json_object_set_new(root, "stop_sequences", stop);
    if (in->stream)
        json_object_set_new(root, "stream", json_true());
    if (convert_tools(body, root, err) < 0)
        goto fail;
    if (json_is_string(json_object_get(body, "user")))
        json_object_set_new(root, "metadata",
                            json_pack("{s:O}", "user_id", json_object_get(body, "user")));
    *out = root;
    return 0;
fail:
    json_decref(root);
    return -1;
}

static int anthropic_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    const mr_provider_t *p = in->provider;
    json_t *root;
    struct curl_slist *h;

    memset(out, 0, sizeof(*out));
    if (in->endpoint != MR_EP_CHAT)
        return mr__xlate_bad(err, "unsupported_endpoint", NULL,
                             "provider %s (anthropic) serves only /v1/chat/completions, not /v1%s",
                             p->name, mr_endpoint_path(in->endpoint));
    if (!json_is_object(in->json))
        return mr__xlate_bad(err, "invalid_type", NULL, "the body must be a JSON object");
    if (anthropic_body(in, &root, err) < 0)
        return -1;
    out->body = json_dumps(root, MR_XLATE_DUMP_FLAGS);
    json_decref(root);
    if (!out->body)
        goto oom;
    out->body_len = strlen(out->body);
    if (!(out->url = mr__xlate_url(p->base_url, "/messages")))
        goto oom;
    h = mr_adapter_headers(in, "x-api-key", "");
    /* a forwarded anthropic-version (forward_headers) replaces ours */
    if (h && !mr__xlate_has_header(in, "anthropic-version"))
        h = mr_adapter_header(h, "anthropic-version",
                              in->provider->api_version ? in->provider->api_version
                                                        : ANTHROPIC_VERSION);
    if (!h)
        goto oom;
    out->headers = h;
    return 0;
oom:
    mr_adapter_req_free(out);
    return mr__xlate_oom(err);
}

/* ------------------------------------------------------------ answers */

static const char *finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return "stop";
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

static long usage_int(const json_t *u, const char *key)
{
    const json_t *v = json_object_get(u, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : -1;
}

/* Anthropic's input_tokens excludes cached input; OpenAI's prompt_tokens
 * includes it. */
static long prompt_tokens(const json_t *u, long *cached)
{
    long in = usage_int(u, "input_tokens"), cw = usage_int(u, "cache_creation_input_tokens"),
         cr = usage_int(u, "cache_read_input_tokens");
    *cached = cr;
    if (in < 0)
        return -1;
    return in + (cw > 0 ? cw : 0) + (cr > 0 ? cr : 0);
}

static int anthropic_translate(const mr_adapter_in_t *in, const char *body, size_t len,
                               mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const json_t *content = json_object_get(root, "content");
    const json_t *u = json_object_get(root, "usage");
    const json_t *jid = json_object_get(root, "id"), *jmodel = json_object_get(root, "model");
    json_t *calls = NULL, *msg = NULL, *res = NULL;
    mr_buf_t text;
    char id[MR_XLATE_ID_MAX + 32], model[MR_XLATE_ID_MAX + 32];
    long cached = -1;
    size_t i;
    const json_t *b;
    int has_text = 0, rc = -1;

    usage->prompt_tokens = usage->completion_tokens = -1;
    mr_buf_init(&text, len + 1);
    if (!json_is_object(root) || !json_is_array(content)) {
        mr_error_set(err, 502, "api_error", "upstream_malformed", NULL,
                     "provider %s: the answer is not an Anthropic message", in->provider->name);
        goto done;
    }
    if (!(calls = json_array()))
        goto oom;
    json_array_foreach(content, i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type)
            continue;
        if (strcmp(type, "text") == 0 && json_is_string(json_object_get(b, "text"))) {
            const json_t *t = json_object_get(b, "text");
            has_text = 1;
            if (mr_buf_append(&text, json_string_value(t), json_string_length(t)) < 0)
                goto oom;
        } else if (strcmp(type, "tool_use") == 0) {
            const json_t *input = json_object_get(b, "input");
            char *args =
                json_is_object(input) ? json_dumps(input, MR_XLATE_DUMP_FLAGS) : strdup("{}");
            char tid[MR_XLATE_ID_MAX + 32];
            const json_t *tj = json_object_get(b, "id");
            if (!args)
                goto oom;
            mr__xlate_safe_id(json_string_value(tj), json_string_length(tj), "toolu_", tid,
                              sizeof(tid));
            json_array_append_new(calls,
                                  json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", tid, "type",
                                            "function", "function", "name",
                                            json_is_string(json_object_get(b, "name"))
                                                ? json_string_value(json_object_get(b, "name"))
                                                : "",
                                            "arguments", args));
            free(args);
        }
        /* thinking, redacted_thinking, server tool blocks: not representable */
    }
    msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                    has_text || json_array_size(calls) == 0
                        ? json_stringn(mr_buf_ptr(&text), mr_buf_len(&text))
                        : json_null());
    if (!msg)
        goto oom;
    if (json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    json_object_set_new(msg, "refusal", json_null());
    usage->prompt_tokens = prompt_tokens(u, &cached);
    usage->completion_tokens = usage_int(u, "output_tokens");
    mr__xlate_safe_id(json_string_value(jid), json_string_length(jid), "msg_", id + 9,
                      sizeof(id) - 9);
    memcpy(id, "chatcmpl-", 9);
    mr__xlate_model(jmodel, in->model, model, sizeof(model));
    res = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:O, s:n, s:s}], s:o}", "id", id, "object",
                    "chat.completion", "created", (json_int_t)mr__xlate_created(in), "model", model,
                    "choices", "index", 0, "message", msg, "logprobs", "finish_reason",
                    finish_reason(json_string_value(json_object_get(root, "stop_reason"))), "usage",
                    mr__xlate_usage(usage->prompt_tokens, usage->completion_tokens, cached, -1));
    if (!res)
        goto oom;
    if (out && mr__xlate_append_json(out, res) < 0) {
        res = NULL;
        mr_error_set(err, 502, "api_error", "upstream_too_large", NULL,
                     "provider %s: translated answer too large", in->provider->name);
        goto done;
    }
    if (!out)
        json_decref(res);
    res = NULL;
    rc = 0;
    goto done;
oom:
    mr__xlate_oom(err);
done:
    json_decref(res);
    json_decref(msg);
    json_decref(calls);
    json_decref(root);
    mr_buf_free(&text);
    return rc;
}

/* ------------------------------------------------------------ errors */

static int anthropic_retryable(long status, const char *body, size_t len)
{
    json_t *root;
    const char *type;
    int r;

    if (mr_retryable_status(status)) /* 408, 409, 429, 5xx */
        return 1;
    root = json_loadb(body, len, 0, NULL);
    type = json_string_value(json_object_get(json_object_get(root, "error"), "type"));
    r = type && (strcmp(type, "overloaded_error") == 0 || strcmp(type, "rate_limit_error") == 0 ||
                 strcmp(type, "api_error") == 0);
    json_decref(root);
    return r;
}

static void anthropic_translate_error(const mr_provider_t *p, long status, const char *body,
                                      size_t len, mr_buf_t *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const json_t *code = json_object_get(e, "code");
    char fallback[300];

    if (!msg) {
        mr__xlate_error_fallback(p, status, body, len, fallback, sizeof(fallback));
        msg = fallback;
        type = NULL;
    }
    /* an OpenAI-shaped body (a compatible proxy) keeps its code */
    mr__xlate_error_body(out, msg, mr__xlate_error_type(type, status),
                         json_is_string(code) ? json_string_value(code)
                         : type               ? type
                                              : "upstream_error");
    json_decref(root);
}

/* ------------------------------------------------------------ streams */

enum { BLOCK_NONE, BLOCK_TEXT, BLOCK_TOOL, BLOCK_OTHER };

struct mr_stream_xlate {
    mr_sse_t sse;
    mr_buf_t *out; /* during a feed */
    const char *provider;
    const char *fallback_model;
    long long created;
    int wants_usage;
    char id[MR_XLATE_ID_MAX + 32];
    char model[MR_XLATE_ID_MAX + 32];
    int started, stopped, failed;
    long block;    /* index of the open content block, -1 none */
    int kind;      /* BLOCK_* of the open block */
    int tool;      /* OpenAI tool_calls index of the open tool block */
    int tool_args; /* bytes of arguments sent for it */
    int n_tools;
    const char *finish;
    long prompt, completion, cached;
};

static mr_stream_xlate_t *anthropic_stream_new(const mr_adapter_in_t *in)
{
    mr_stream_xlate_t *x = calloc(1, sizeof(*x));

    if (!x)
        return NULL;
    mr_sse_init(&x->sse, MR_XLATE_LINE_MAX, MR_XLATE_EVENT_MAX);
    x->provider = in->provider ? in->provider->name : "anthropic";
    x->fallback_model = in->model ? in->model : "";
    x->created = mr__xlate_created(in);
    x->wants_usage = in->client_wants_usage;
    x->block = -1;
    x->prompt = x->completion = x->cached = -1;
    return x;
}

/* Emits one chunk whose only choice carries `delta` (taken). */
static int emit_delta(mr_stream_xlate_t *x, json_t *delta, const char *finish)
{
    json_t *c = mr__xlate_chunk(x->id, x->created, x->model);
    if (!c || !delta) {
        json_decref(c);
        json_decref(delta);
        return -1;
    }
    json_object_set_new(c, "choices", json_pack("[o]", mr__xlate_choice_delta(0, delta, finish)));
    return mr__xlate_emit(x->out, c);
}

static int emit_args(mr_stream_xlate_t *x, const char *args, size_t n)
{
    x->tool_args += n > 0;
    return emit_delta(x,
                      json_pack("{s:[{s:i, s:{s:s%}}]}", "tool_calls", "index", x->tool, "function",
                                "arguments", args, n),
                      NULL);
}

static int close_block(mr_stream_xlate_t *x)
{
    int rc = 0;
    /* a tool without arguments still needs valid JSON for the client */
    if (x->kind == BLOCK_TOOL && x->tool_args == 0)
        rc = emit_args(x, "{}", 2);
    x->block = -1;
    x->kind = BLOCK_NONE;
    return rc;
}

static int finish(mr_stream_xlate_t *x)
{
    json_t *c;

    if (x->block >= 0 && close_block(x) < 0)
        return -1;
    if (emit_delta(x, json_object(), x->finish ? x->finish : "stop") < 0)
        return -1;
    if (x->wants_usage) {
        c = mr__xlate_chunk(x->id, x->created, x->model);
        if (!c)
            return -1;
        json_object_set_new(c, "choices", json_array());
        json_object_set_new(c, "usage", mr__xlate_usage(x->prompt, x->completion, x->cached, -1));
        if (mr__xlate_emit(x->out, c) < 0)
            return -1;
    }
    x->stopped = 1;
    return mr__xlate_emit_done(x->out);
}

/* Error codes of on_event beyond -1 (output too large / out of memory). */
enum { EV_MALFORMED = 1, EV_UPSTREAM_ERROR = 2, EV_TRUNCATED = 3 };

static int on_message_start(mr_stream_xlate_t *x, const json_t *ev)
{
    const json_t *m = json_object_get(ev, "message");
    const json_t *jid = json_object_get(m, "id"), *jm = json_object_get(m, "model");
    const json_t *u = json_object_get(m, "usage");

    if (x->started || !json_is_object(m))
        return EV_MALFORMED;
    x->started = 1;
    memcpy(x->id, "chatcmpl-", 9);
    mr__xlate_safe_id(json_string_value(jid), json_string_length(jid), "msg_", x->id + 9,
                      sizeof(x->id) - 9);
    mr__xlate_model(jm, x->fallback_model, x->model, sizeof(x->model));
    x->prompt = prompt_tokens(u, &x->cached);
    x->completion = usage_int(u, "output_tokens");
    return emit_delta(x, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
}

static int on_block_start(mr_stream_xlate_t *x, const json_t *ev)
{
    const json_t *idx = json_object_get(ev, "index");
    const json_t *b = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(b, "type"));

    if (!json_is_integer(idx) || !type)
        return EV_MALFORMED;
    if (x->block >= 0 && close_block(x) < 0)
        return -1;
    x->block = (long)json_integer_value(idx);
    x->tool_args = 0;
    if (strcmp(type, "text") == 0) {
        const json_t *t = json_object_get(b, "text");
        x->kind = BLOCK_TEXT;
        if (json_string_length(t))
            return emit_delta(x, json_pack("{s:O}", "content", t), NULL);
        return 0;
    }
    if (strcmp(type, "tool_use") == 0) {
        const json_t *tj = json_object_get(b, "id"), *name = json_object_get(b, "name");
        const json_t *input = json_object_get(b, "input");
        char tid[MR_XLATE_ID_MAX + 32];
        mr__xlate_safe_id(json_string_value(tj), json_string_length(tj), "toolu_", tid,
                          sizeof(tid));
        if (!json_is_string(name))
            return EV_MALFORMED;
        x->kind = BLOCK_TOOL;
        x->tool = x->n_tools++;
        if (emit_delta(x,
                       json_pack("{s:[{s:i, s:s, s:s, s:{s:O, s:s}}]}", "tool_calls", "index",
                                 x->tool, "id", tid, "type", "function", "function", "name", name,
                                 "arguments", ""),
                       NULL) < 0)
            return -1;
        /* the input normally streams as input_json_delta; a non-empty one
         * given up front is sent whole */
        if (json_object_size(input) > 0) {
            char *args = json_dumps(input, MR_XLATE_DUMP_FLAGS);
            int rc = args ? emit_args(x, args, strlen(args)) : -1;
            free(args);
            return rc;
        }
        return 0;
    }
    x->kind = BLOCK_OTHER; /* thinking, server tools: not representable */
    return 0;
}

static int on_block_delta(mr_stream_xlate_t *x, const json_t *ev)
{
    const json_t *idx = json_object_get(ev, "index");
    const json_t *d = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(d, "type"));

    if (!json_is_integer(idx) || !type || x->block < 0 || json_integer_value(idx) != x->block)
        return EV_MALFORMED;
    if (strcmp(type, "text_delta") == 0) {
        const json_t *t = json_object_get(d, "text");
        if (x->kind != BLOCK_TEXT || !json_is_string(t))
            return EV_MALFORMED;
        if (json_string_length(t) == 0)
            return 0;
        return emit_delta(x, json_pack("{s:O}", "content", t), NULL);
    }
    if (strcmp(type, "input_json_delta") == 0) {
        const json_t *pj = json_object_get(d, "partial_json");
        if (!json_is_string(pj))
            return EV_MALFORMED;
        if (x->kind != BLOCK_TOOL || json_string_length(pj) == 0)
            return 0; /* server tool inputs are not forwarded */
        return emit_args(x, json_string_value(pj), json_string_length(pj));
    }
    return 0; /* thinking_delta, signature_delta, citations_delta ... */
}

static int on_message_delta(mr_stream_xlate_t *x, const json_t *ev)
{
    const json_t *d = json_object_get(ev, "delta"), *u = json_object_get(ev, "usage");
    const json_t *sr = json_object_get(d, "stop_reason");
    long v;

    if (json_is_string(sr))
        x->finish = finish_reason(json_string_value(sr));
    if ((v = usage_int(u, "output_tokens")) >= 0)
        x->completion = v;
    if (usage_int(u, "input_tokens") >= 0) {
        long cached;
        x->prompt = prompt_tokens(u, &cached);
        if (cached >= 0)
            x->cached = cached;
    }
    return 0;
}

static int on_error(mr_stream_xlate_t *x, const json_t *ev)
{
    const json_t *e = json_object_get(ev, "error");
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *msg = json_string_value(json_object_get(e, "message"));

    mr__xlate_emit_error(x->out, mr__xlate_error_type(type, 502), type ? type : "upstream_error",
                         "%s", msg ? msg : "upstream reported an error mid-stream");
    return EV_UPSTREAM_ERROR;
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    mr_stream_xlate_t *x = ctx;
    json_t *ev;
    const char *type;
    int rc = 0;

    if (x->stopped)
        return 0; /* nothing follows message_stop */
    ev = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    type = json_string_value(json_object_get(ev, "type"));
    if (!type && ev)
        type = event; /* the data's own "type" wins over the event field */
    if (!json_is_object(ev) || !type || !*type) {
        json_decref(ev);
        return EV_MALFORMED;
    }
    if (strcmp(type, "error") == 0)
        rc = on_error(x, ev);
    else if (strcmp(type, "message_start") == 0)
        rc = on_message_start(x, ev);
    else if (strcmp(type, "ping") == 0)
        rc = 0;
    else if (!x->started)
        rc = EV_MALFORMED;
    else if (strcmp(type, "content_block_start") == 0)
        rc = on_block_start(x, ev);
    else if (strcmp(type, "content_block_delta") == 0)
        rc = on_block_delta(x, ev);
    else if (strcmp(type, "content_block_stop") == 0)
        rc = x->block >= 0 ? close_block(x) : 0;
    else if (strcmp(type, "message_delta") == 0)
        rc = on_message_delta(x, ev);
    else if (strcmp(type, "message_stop") == 0)
        rc = finish(x);
    /* unknown event types are skipped: the API may add some */
    json_decref(ev);
    return rc;
}

/* Turns a failure into the one error event the client sees. */
static int fail(mr_stream_xlate_t *x, int rc, mr_buf_t *out)
{
    if (x->failed)
        return -1;
    x->failed = 1;
    if (rc == EV_UPSTREAM_ERROR)
        return -1; /* on_error wrote it */
    if (rc == MR_SSE_TOO_LONG)
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s sent an event larger than %d bytes", x->provider,
                             MR_XLATE_EVENT_MAX);
    else if (rc == EV_TRUNCATED)
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s ended the stream before the message was complete",
                             x->provider);
    else if (rc == EV_MALFORMED)
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s sent a malformed Anthropic event stream", x->provider);
    else
        mr__xlate_emit_error(out, "api_error", "upstream_stream_error",
                             "provider %s: out of memory translating the stream", x->provider);
    return -1;
}

static int anthropic_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    int rc;

    if (x->failed)
        return -1;
    x->out = out;
    rc = mr_sse_feed(&x->sse, p, n, on_event, x);
    x->out = NULL;
    return rc ? fail(x, rc, out) : 0;
}

static int anthropic_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    int rc;

    if (x->failed)
        return -1;
    x->out = out;
    rc = mr_sse_finish(&x->sse, on_event, x);
    /* message_delta came but message_stop did not: the answer is complete */
    if (rc == 0 && !x->stopped)
        rc = x->started && x->finish ? finish(x) : EV_TRUNCATED;
    x->out = NULL;
    return rc ? fail(x, rc, out) : 0;
}

static void anthropic_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    usage->prompt_tokens = x->prompt;
    usage->completion_tokens = x->completion;
}

static void anthropic_stream_free(mr_stream_xlate_t *x)
{
    if (!x)
        return;
    mr_sse_free(&x->sse);
    free(x);
}

const mr_adapter_t mr_adapter_anthropic = {
    .name = "anthropic",
    .build = anthropic_build,
    .translate = anthropic_translate,
    .stream_new = anthropic_stream_new,
    .stream_feed = anthropic_stream_feed,
    .stream_end = anthropic_stream_end,
    .stream_usage = anthropic_stream_usage,
    .stream_free = anthropic_stream_free,
    .retryable = anthropic_retryable,
    .translate_error = anthropic_translate_error,
    .passthrough = 0,
};
