#include "meridian/chat_emit.h"

#include "meridian/buf.h"
#include "meridian/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const mr_conv_caps_t mr_chat_emit_caps = {
    .name = "openai",
    .n_max = 128,
    .choices_max = 128,
    .max_output_limit = 100000000,
    .image_url = 1,
    .audio_in = 1,
    .json_object = 1,
    .json_schema = 1,
    .penalties = 1,
    .seed = 1,
    .call_needs_id = 1,
    .logprobs = 1,
    .audio_out = 1,
};

/* ------------------------------------------------------------ content */

/* "data:<media type>;base64,<data>" */
static json_t *data_url(const mr_conv_media_t *m)
{
    size_t tn = m->media_type.n, dn = m->data.n;
    char *s = malloc(5 + tn + 8 + dn + 1);
    json_t *j;

    if (!s)
        return NULL;
    memcpy(s, "data:", 5);
    memcpy(s + 5, m->media_type.p, tn);
    memcpy(s + 5 + tn, ";base64,", 8);
    memcpy(s + 13 + tn, m->data.p, dn);
    s[13 + tn + dn] = '\0';
    j = json_stringn(s, 13 + tn + dn);
    free(s);
    return j;
}

static json_t *url_of(const mr_conv_media_t *m)
{
    return m->source == MR_CONV_SRC_BASE64 ? data_url(m) : mr_codec_str(m->url);
}

/* "wav" from the part's format, else from "audio/wav" */
static json_t *audio_format(const mr_conv_media_t *m)
{
    const char *slash;

    if (m->format.p)
        return mr_codec_str(m->format);
    slash = m->media_type.p ? strchr(m->media_type.p, '/') : NULL;
    return json_string(slash ? slash + 1 : "");
}

/* One checked user part: text, image, audio or file. */
static json_t *user_part(const mr_conv_part_t *p)
{
    switch (p->kind) {
    case MR_CONV_IMAGE:
        return json_pack("{s:s, s:{s:o}}", "type", "image_url", "image_url", "url",
                         url_of(&p->u.media));
    case MR_CONV_AUDIO:
        return json_pack("{s:s, s:{s:o, s:o}}", "type", "input_audio", "input_audio", "data",
                         mr_codec_str(p->u.media.data), "format", audio_format(&p->u.media));
    case MR_CONV_FILE:
        return json_pack("{s:s, s:{s:o}}", "type", "file", "file", "file_data",
                         data_url(&p->u.media));
    default:
        return json_pack("{s:s, s:o}", "type", "text", "text", mr_codec_str(p->u.text));
    }
}

/* One text part as a string, anything else as an array of parts. */
static json_t *content(const mr_conv_part_t *parts, size_t n)
{
    json_t *arr;

    if (n == 0)
        return json_string("");
    if (n == 1 && parts[0].kind == MR_CONV_TEXT)
        return mr_codec_str(parts[0].u.text);
    if (!(arr = json_array()))
        return NULL;
    for (size_t k = 0; k < n; k++)
        if (json_array_append_new(arr, user_part(&parts[k])) < 0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

/* The text and refusal parts joined (NULL when there are none). */
static json_t *joined_text(const mr_conv_part_t *parts, size_t n, int *any)
{
    mr_buf_t text;
    json_t *j = NULL;

    *any = 0;
    for (size_t k = 0; k < n && !*any; k++)
        *any = parts[k].kind == MR_CONV_TEXT || parts[k].kind == MR_CONV_REFUSAL;
    mr_buf_init(&text, (size_t)-1);
    if (mr_conv_join_text(parts, n, &text) == 0)
        j = json_stringn(mr_buf_ptr(&text), mr_buf_len(&text));
    mr_buf_free(&text);
    return j;
}

static json_t *call_json(const mr_conv_tool_call_t *c)
{
    json_t *args = c->args.p ? mr_codec_str(c->args) : NULL;

    if (!args) {
        char *s = json_dumps(c->args_json, MR_CONV_JSON_FLAGS);
        args = json_string(s ? s : "{}");
        free(s);
    }
    return json_pack("{s:o, s:s, s:{s:o, s:o}}", "id", mr_codec_str(c->id), "type", "function",
                     "function", "name", mr_codec_str(c->name), "arguments", args);
}

/* Text (joined; null when the turn only calls tools), then tool_calls.
 * Reasoning parts have no member in the chat dialect. */
static json_t *assistant_msg(const mr_conv_turn_t *t)
{
    json_t *calls = json_array(), *msg;
    int any_text;
    json_t *text = joined_text(t->parts, t->n_parts, &any_text);

    for (size_t k = 0; calls && k < t->n_parts; k++)
        if (t->parts[k].kind == MR_CONV_TOOL_CALL &&
            json_array_append_new(calls, call_json(&t->parts[k].u.call)) < 0) {
            json_decref(calls);
            calls = NULL;
        }
    if (!calls || !text) {
        json_decref(calls);
        json_decref(text);
        return NULL;
    }
    if (!any_text && json_array_size(calls)) {
        json_decref(text);
        text = json_null();
    }
    msg = json_pack("{s:s, s:o}", "role", "assistant", "content", text);
    if (msg && json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    json_decref(calls);
    return msg;
}

static json_t *tool_msg(const mr_conv_tool_result_t *res)
{
    json_t *c;
    int any;

    if (res->as_string)
        c = joined_text(res->content, res->n_content, &any);
    else
        c = content(res->content, res->n_content);
    return json_pack("{s:s, s:o, s:o}", "role", "tool", "tool_call_id", mr_codec_str(res->call_id),
                     "content", c);
}

static json_t *message(const mr_conv_turn_t *t)
{
    switch (t->role) {
    case MR_CONV_ROLE_SYSTEM:
    case MR_CONV_ROLE_DEVELOPER: /* "developer" is OpenAI's alone: "system" everywhere */
        return json_pack("{s:s, s:o}", "role", "system", "content", content(t->parts, t->n_parts));
    case MR_CONV_ROLE_ASSISTANT:
        return assistant_msg(t);
    case MR_CONV_ROLE_TOOL:
        return tool_msg(&t->parts[0].u.result);
    default: /* user; other roles were refused by the check */
        return json_pack("{s:s, s:o}", "role", "user", "content", content(t->parts, t->n_parts));
    }
}

static json_t *messages(const mr_conv_req_t *r)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr && i < r->n_turns; i++)
        if (json_array_append_new(arr, message(&r->turns[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    return arr;
}

/* ------------------------------------------------------------ parameters */

static json_t *tools(const mr_conv_req_t *r)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr && i < r->n_tools; i++) {
        const mr_conv_tool_t *t = &r->tools[i];
        json_t *fn = json_pack("{s:o}", "name", mr_codec_str(t->name));
        if (fn && t->description.p)
            json_object_set_new(fn, "description", mr_codec_str(t->description));
        if (fn && t->parameters)
            json_object_set(fn, "parameters", (json_t *)(uintptr_t)t->parameters);
        if (fn && t->strict >= 0)
            json_object_set_new(fn, "strict", json_boolean(t->strict));
        if (json_array_append_new(
                arr, json_pack("{s:s, s:o}", "type", "function", "function", fn)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static json_t *tool_choice(const mr_conv_tool_choice_t *c)
{
    switch (c->mode) {
    case MR_CONV_CHOICE_AUTO:
        return json_string("auto");
    case MR_CONV_CHOICE_NONE:
        return json_string("none");
    case MR_CONV_CHOICE_REQUIRED:
        return json_string("required");
    case MR_CONV_CHOICE_FUNCTION:
        return json_pack("{s:s, s:{s:o}}", "type", "function", "function", "name",
                         mr_codec_str(c->name));
    default:
        return NULL;
    }
}

static json_t *response_format(const mr_conv_format_t *f)
{
    json_t *js;

    switch (f->kind) {
    case MR_CONV_FORMAT_TEXT:
        return json_pack("{s:s}", "type", "text");
    case MR_CONV_FORMAT_JSON_OBJECT:
        return json_pack("{s:s}", "type", "json_object");
    case MR_CONV_FORMAT_JSON_SCHEMA:
        /* chat requires a name; the other dialects may give none */
        js =
            json_pack("{s:o}", "name", f->name.p ? mr_codec_str(f->name) : json_string("response"));
        if (js && f->schema)
            json_object_set(js, "schema", (json_t *)(uintptr_t)f->schema);
        if (js && f->strict >= 0)
            json_object_set_new(js, "strict", json_boolean(f->strict));
        return json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js);
    default:
        return NULL;
    }
}

static void set_num(json_t *root, const char *key, const mr_conv_num_t *v)
{
    if (v->state == MR_CONV_SET)
        json_object_set_new(root, key,
                            v->integer ? json_integer((json_int_t)v->v) : json_real(v->v));
}

/* The effort values OpenAI-compatible APIs read; Anthropic's "max" is
 * their "high". */
static json_t *effort(mr_conv_str_t e)
{
    static const char *const known[] = {"none", "minimal", "low", "medium", "high", "xhigh"};

    if (mr_conv_eq(e, "max"))
        return json_string("high");
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (mr_conv_eq(e, known[i]))
            return json_string(known[i]);
    return NULL;
}

static void sampling(const mr_conv_req_t *r, const mr_chat_emit_opts_t *o, json_t *root)
{
    json_t *j;

    set_num(root, "temperature", &r->temperature);
    set_num(root, "top_p", &r->top_p);
    set_num(root, "presence_penalty", &r->presence_penalty);
    set_num(root, "frequency_penalty", &r->frequency_penalty);
    set_num(root, "seed", &r->seed);
    if (r->n.state == MR_CONV_SET && r->n.v != 1)
        set_num(root, "n", &r->n);
    set_num(root, o->max_tokens_key ? o->max_tokens_key : "max_tokens", &r->max_output);
    if (r->n_stop && (j = json_array())) {
        for (size_t i = 0; i < r->n_stop; i++)
            json_array_append_new(j, mr_codec_str(r->stop[i]));
        json_object_set_new(root, "stop", j);
    }
    if (r->logprobs)
        json_object_set_new(root, "logprobs", json_true());
    set_num(root, "top_logprobs", &r->top_logprobs);
    if ((j = response_format(&r->format)))
        json_object_set_new(root, "response_format", j);
    if (r->reasoning.effort_name.p && (j = effort(r->reasoning.effort_name)))
        json_object_set_new(root, "reasoning_effort", j);
}

int mr_chat_emit(const mr_conv_req_t *r, const mr_chat_emit_opts_t *o, json_t **out,
                 mr_error_t *err)
{
    json_t *root = json_pack("{s:s}", "model", o->model ? o->model : ""), *j;

    *out = NULL;
    if (!root || !(j = messages(r)) || json_object_set_new(root, "messages", j) < 0)
        goto oom;
    sampling(r, o, root);
    if (r->n_tools) {
        if (!(j = tools(r)))
            goto oom;
        json_object_set_new(root, "tools", j);
        if ((j = tool_choice(&r->tool_choice)))
            json_object_set_new(root, "tool_choice", j);
        if (r->parallel_tool_calls >= 0)
            json_object_set_new(root, "parallel_tool_calls", json_boolean(r->parallel_tool_calls));
    }
    if (r->user.p)
        json_object_set_new(root, "user", mr_codec_str(r->user));
    if (r->prompt_cache_key.p)
        json_object_set_new(root, "prompt_cache_key", mr_codec_str(r->prompt_cache_key));
    if (o->stream) {
        json_object_set_new(root, "stream", json_true());
        json_object_set_new(root, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    *out = root;
    return 0;
oom:
    json_decref(root);
    mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
    return -1;
}

int mr_chat_emit_body(const mr_conv_req_t *r, const mr_chat_emit_opts_t *o, char **body,
                      size_t *len, mr_error_t *err)
{
    json_t *root;

    *body = NULL;
    if (mr_conv_check(r, &mr_chat_emit_caps, err) < 0 || mr_chat_emit(r, o, &root, err) < 0)
        return -1;
    *body = json_dumps(root, MR_CONV_JSON_FLAGS);
    json_decref(root);
    if (!*body) {
        mr_error_set(err, 500, "api_error", "internal_error", NULL, "out of memory");
        return -1;
    }
    *len = strlen(*body);
    return 0;
}
