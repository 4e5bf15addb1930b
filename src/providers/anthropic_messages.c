/*
 * Anthropic targets for Anthropic Messages clients (inbound.h): the
 * client's bytes go to {base_url}/messages with only `model` changed (and
 * the gateway's own members removed), so thinking signatures, cache_control,
 * tools and fields newer than this gateway arrive exactly as sent; the
 * answer comes back byte for byte. Streams are forwarded event by event,
 * whole, while the gateway reads on the way what it needs: the usage
 * (message_start, message_delta), the first content (the commit point) and
 * message_stop (a stream without it is truncated); an upstream `event:
 * error` is forwarded and ends the stream. count_tokens goes to
 * {base_url}/messages/count_tokens the same way.
 *
 * Headers: the provider's key as x-api-key; anthropic-version is the
 * provider's api_version when set, else the client's, else 2023-06-01;
 * anthropic-beta carries the client's flags that the provider's
 * anthropic_beta list accepts (the others are recorded, not sent).
 */
#include "meridian/adapter.h"
#include "meridian/inbound.h"
#include "meridian/json_span.h"
#include "meridian/sse.h"
#include "anthropic.h"
#include "xlate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_VERSION "2023-06-01"
#define FLAGS_MAX 2048 /* the anthropic-beta header sent upstream */

static const char *client_header(const mr_adapter_in_t *in, const char *name)
{
    return in->client_header ? in->client_header(in->client_header_ud, name) : NULL;
}

static struct curl_slist *headers(const mr_adapter_in_t *in, mr_adapter_req_t *out)
{
    const char *version = in->provider->api_version;
    char flags[FLAGS_MAX];
    struct curl_slist *h = mr_adapter_headers(in, "x-api-key", "");

    if (!version)
        version = client_header(in, "anthropic-version");
    if (h)
        h = mr_adapter_header(h, "anthropic-version", version ? version : ANTHROPIC_VERSION);
    mr__xlate_flags(in, flags, sizeof(flags), out);
    if (h && flags[0])
        h = mr_adapter_header(h, "anthropic-beta", flags);
    return h;
}

/* The client's body with the target's model: the openai splice without its
 * stream_options (a chat-only member). */
static int build_at(const mr_adapter_in_t *in, const char *path, mr_adapter_req_t *out,
                    mr_error_t *err)
{
    mr_adapter_in_t plain = *in;

    memset(out, 0, sizeof(*out));
    plain.stream = 0;
    if (mr_openai_body(&plain, 1, &out->body, &out->body_len, err) < 0)
        return -1;
    if (!(out->url = mr__xlate_url(in->provider->base_url, "%s", path)) ||
        !(out->headers = headers(in, out))) {
        mr_adapter_req_free(out);
        return mr__xlate_oom(err);
    }
    return 0;
}

static int messages_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    return build_at(in, "/messages", out, err);
}

static int count_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    return build_at(in, "/messages/count_tokens", out, err);
}

/* Targets of the other kinds have no count_tokens: not an attempt (the
 * gateway answers an estimate when no target of the route has one). */
static int none_count_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    return mr_error_bad(err, "unsupported_endpoint", NULL,
                        "provider %s (%s) has no count_tokens endpoint", in->provider->name,
                        mr_provider_kind_name(in->provider->kind));
}

/* ---- answers ------------------------------------------------------------ */

static void usage_of(const json_t *u, mr_usage_t *usage)
{
    mr_conv_usage_t c = MR_CONV_USAGE_UNKNOWN;

    mr__anthropic_usage(u, &c);
    mr__xlate_usage(&c, usage);
}

/* Only the usage object is parsed: the body goes to the client as it is. */
static int messages_translate(const mr_adapter_in_t *in, const char *body, size_t len,
                              mr_buf_t *out, mr_usage_t *usage, mr_error_t *err)
{
    (void)in;
    return mr_adapter_passthrough_answer(body, len, usage_of, out, usage, err);
}

/* Counting tokens costs nothing: zero, not an estimate from its size. */
static int count_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                           mr_usage_t *usage, mr_error_t *err)
{
    int rc = messages_translate(in, body, len, out, usage, err);

    *usage = (mr_usage_t){0, 0, -1, -1, -1};
    return rc;
}

/* Anthropic's own error bodies reach the client as they are; anything
 * else gets a message that names the provider (the gateway gives it
 * Anthropic's shape). */
static void messages_translate_error(const mr_provider_t *p, long status, const char *body,
                                     size_t len, mr_buf_t *out)
{
    char msg[300];

    if (len && mr_json_validate(body, len) == 0 && body[0] == '{' &&
        mr_buf_append_force(out, body, len) == 0)
        return;
    mr__xlate_error_fallback(p, status, body, len, msg, sizeof(msg));
    mr__xlate_error_body(out, msg, mr__xlate_error_type(NULL, status), "upstream_error");
}

/* ---- streams ------------------------------------------------------------ */

struct mr_stream_xlate {
    mr_buf_t ev; /* an event still missing its blank line */
    mr_sse_t sse;
    mr_conv_sink_t sink;
    const char *provider;
    int done;    /* message_stop came */
    int errored; /* the upstream sent `event: error` */
    int content; /* a content event came: the commit point */
    int blind;   /* the parser could not follow: forwarded unread */
    mr_usage_t usage;
    max_align_t parser[]; /* mr__anthropic_parser's state */
};

static int watch_event(void *ctx, const mr_conv_event_t *ev)
{
    mr_stream_xlate_t *x = ctx;

    switch (ev->kind) {
    case MR_CONV_EV_TEXT:
    case MR_CONV_EV_REASONING:
    case MR_CONV_EV_SIGNATURE:
    case MR_CONV_EV_REASONING_DATA:
    case MR_CONV_EV_TOOL_START:
        x->content = 1;
        break;
    case MR_CONV_EV_USAGE:
        mr__xlate_usage(ev->usage, &x->usage);
        break;
    default:
        break;
    }
    return 0;
}

static mr_stream_xlate_t *messages_stream_new(const mr_adapter_in_t *in)
{
    mr_stream_xlate_t *x = calloc(1, sizeof(*x) + mr__anthropic_parser.stream_size);

    if (!x)
        return NULL;
    mr_buf_init(&x->ev, MR_XLATE_EVENT_MAX);
    mr_sse_init(&x->sse, MR_XLATE_LINE_MAX, MR_XLATE_EVENT_MAX);
    x->sink = (mr_conv_sink_t){watch_event, x};
    x->provider = in->provider ? in->provider->name : "?";
    x->usage = MR_USAGE_UNKNOWN;
    mr__anthropic_parser.stream_init(x->parser, in);
    return x;
}

/* What the gateway reads of one upstream event. The parser's verdict on
 * the stream's shape is not the client's business here: an event it cannot
 * follow is forwarded all the same, and from then on the stream is only
 * watched for its terminal and error events. */
static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    mr_stream_xlate_t *x = ctx;

    if (strcmp(event, "error") == 0) {
        x->errored = 1;
        return 1;
    }
    if (strcmp(event, "message_stop") == 0)
        x->done = 1;
    if (!x->blind && mr__anthropic_parser.stream_event(x->parser, event, data, len, &x->sink) != 0)
        x->blind = x->content = 1;
    return 0;
}

/* One whole event: read, then forwarded as it came. */
static int forward(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    int rc = x->done ? 0 : mr_sse_feed(&x->sse, p, n, on_event, x);

    if (mr_buf_append_force(out, p, n) < 0)
        return -1;
    return x->errored || rc < 0 ? -1 : 0;
}

/* Ends the client's stream with Anthropic's error event. */
static void stream_fail(mr_stream_xlate_t *x, mr_buf_t *out, const char *why)
{
    char msg[200];

    snprintf(msg, sizeof(msg), "provider %s %s", x->provider, why);
    mr_inbound_messages.stream_error(out, "api_error", NULL, msg);
}

static int messages_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out)
{
    size_t end;

    if (mr_buf_append(&x->ev, p, n) < 0) {
        stream_fail(x, out, "sent an event larger than 1 MiB");
        return -1;
    }
    while ((end = mr_sse_event_end(mr_buf_ptr(&x->ev), mr_buf_len(&x->ev))) > 0) {
        int rc = forward(x, mr_buf_ptr(&x->ev), end, out);
        x->ev.start += end;
        if (rc < 0)
            return -1;
    }
    if (x->ev.start == x->ev.end)
        mr_buf_reset(&x->ev);
    return 0;
}

static int messages_stream_end(mr_stream_xlate_t *x, mr_buf_t *out)
{
    if (mr_buf_len(&x->ev) && forward(x, mr_buf_ptr(&x->ev), mr_buf_len(&x->ev), out) < 0)
        return -1;
    mr_buf_reset(&x->ev);
    /* a last event without its blank line (a server that closed at once) */
    if (!x->done && (mr_sse_finish(&x->sse, on_event, x) < 0 || x->errored))
        return -1;
    if (x->done)
        return 0;
    /* HTTP cannot tell an early close from the end: without message_stop
     * the answer may be cut anywhere */
    stream_fail(x, out, "ended the stream before message_stop");
    return MR_ADAPTER_TRUNCATED;
}

static void messages_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage)
{
    *usage = x->usage;
}

static int messages_stream_content(const mr_stream_xlate_t *x)
{
    return x->content;
}

static void messages_stream_free(mr_stream_xlate_t *x)
{
    if (!x)
        return;
    mr_buf_free(&x->ev);
    mr_sse_free(&x->sse);
    free(x);
}

#define MESSAGES_ADAPTER(BUILD, TRANSLATE)                                                         \
    {                                                                                              \
        .name = "anthropic", .build = BUILD, .translate = TRANSLATE,                               \
        .stream_new = messages_stream_new, .stream_feed = messages_stream_feed,                    \
        .stream_end = messages_stream_end, .stream_usage = messages_stream_usage,                  \
        .stream_content = messages_stream_content, .stream_free = messages_stream_free,            \
        .retryable = mr__anthropic_retryable, .translate_error = messages_translate_error,         \
        .unsupported = NULL, .passthrough = 1, .uses_conv = 0,                                     \
    }

const mr_adapter_t mr_adapter_anthropic_messages =
    MESSAGES_ADAPTER(messages_build, messages_translate);
const mr_adapter_t mr_adapter_anthropic_count = MESSAGES_ADAPTER(count_build, count_translate);
const mr_adapter_t mr_adapter_none_count = MESSAGES_ADAPTER(none_count_build, count_translate);
