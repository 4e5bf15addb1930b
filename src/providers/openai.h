/*
 * openai — the OpenAI dialect's answer, stream and error functions, for the
 * dialects that speak it under another URL and key header (azure). Private
 * to src/providers/; the contract of each is mr_adapter_t's (adapter.h).
 */
#ifndef MERIDIAN_PROVIDERS_OPENAI_H
#define MERIDIAN_PROVIDERS_OPENAI_H

#include "meridian/adapter.h"

/* The adapters' build functions, shared with the targets of other client
 * dialects (chat_conv.c). */
int mr__openai_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err);
int mr__azure_build(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err);
/* The upstream body: the client's bytes for a chat client
 * (mr_openai_body), a chat request emitted from the conversation model for
 * the others. */
int mr__openai_request_body(const mr_adapter_in_t *in, mr_adapter_req_t *out, mr_error_t *err);

int mr__openai_translate(const mr_adapter_in_t *in, const char *body, size_t len, mr_buf_t *out,
                         mr_usage_t *usage, mr_error_t *err);
mr_stream_xlate_t *mr__openai_stream_new(const mr_adapter_in_t *in);
int mr__openai_stream_feed(mr_stream_xlate_t *x, const char *p, size_t n, mr_buf_t *out);
int mr__openai_stream_end(mr_stream_xlate_t *x, mr_buf_t *out);
void mr__openai_stream_usage(const mr_stream_xlate_t *x, mr_usage_t *usage);
int mr__openai_stream_content(const mr_stream_xlate_t *x);
void mr__openai_stream_free(mr_stream_xlate_t *x);
int mr__openai_retryable(long status, const char *body, size_t len);
void mr__openai_translate_error(const mr_provider_t *p, long status, const char *body, size_t len,
                                mr_buf_t *out);

#endif
