/*
 * intake — the client's JSON body on its way in: one strict scan (RFC 8259,
 * no member twice at any depth: json_span.h) reads what routing and limits
 * need (`model`, `stream`, `stream_options.include_usage`, `models`,
 * `provider`, the output-token caps) and where the top-level members are,
 * for the passthrough adapters to splice. No parse tree is built for a
 * request whose targets speak its dialect; a translating attempt asks for
 * the tree (and the conversation model) here, and their estimated size is
 * charged to the worker's memory budget first (memacct.h): a body that
 * would not fit is a 503 `overloaded` for that attempt, never an
 * allocation that takes the process down.
 *
 * Everything read is stored in the request (request.h: scan, json,
 * models_json, provider_json, model, stream, client_wants_usage,
 * max_output_tokens) and freed with it, or earlier by mr_intake_release.
 * Loop thread only.
 */
#ifndef MERIDIAN_INTAKE_H
#define MERIDIAN_INTAKE_H

#include "meridian/adapter.h"
#include "meridian/error.h"
#include "meridian/request.h"

#include <stdbool.h>

/* The upstream copy of a body of `len` bytes is taken from the budget with
 * the body itself (when a request is admitted, not when its attempt is
 * built), so that admitted requests cannot starve each other of their
 * copies. 0, or -1 when the budget cannot take it (answer 503). Idempotent. */
int mr_intake_hold_copy(mr_request_t *r, size_t len);
/* ... handed to the attempt about to charge its copy. */
void mr_intake_release_copy(mr_request_t *r);

/* Scans the body and reads the members routing needs, once (a second call
 * is a no-op until mr_intake_body_changed). 0, or -1 with the
 * client's 400 in *e (empty, not JSON, a duplicate member, not an object,
 * `model` missing or not a string, `stream` not a boolean). */
int mr_intake_read(mr_request_t *r, mr_error_t *e);

/* The body was replaced (a Responses history put before its input): the
 * tree and conversation go with their charge, the next read scans it anew. */
void mr_intake_body_changed(mr_request_t *r);

/* The body's `models` and `provider` members as small trees (NULL when
 * absent), parsed once and kept for the request (the plan borrows from
 * them). 0, or -1 with *e (503 `overloaded` when they do not fit). */
int mr_intake_routing(mr_request_t *r, const json_t **models, json_t **provider, mr_error_t *e);

/* The parse tree, built (and charged) before routing when routing reads
 * it: a Responses request or a session member (cache affinity), else -1
 * with *e as mr_intake_prepare's; and with `conv`, for the capabilities a
 * target may lack (intent.h), the conversation model's charge too
 * (r->conv_charge). For capabilities alone a body the budget cannot parse
 * now is routed without them (never a refusal of a request whose targets
 * need no tree): the attempts refuse what a target cannot carry. */
int mr_intake_routing_tree(mr_request_t *r, bool conv, mr_error_t *e);

/* Makes the body ready for an attempt with adapter `ad`: nothing for a
 * passthrough adapter; else the parse tree (and, for a chat request whose
 * adapter reads the conversation model, its charge), built once. 0, or -1
 * with *e: 503 `overloaded` (answer it with Retry-After) when the budget
 * cannot take it now, 413 when it never could, 400 when the body is JSON a
 * parser refuses (a number too large, a NUL in a string). */
int mr_intake_prepare(mr_request_t *r, const mr_adapter_t *ad, mr_error_t *e);

/* What a parse tree of `n` JSON values, `members` object members and
 * `string_bytes` bytes of strings costs in memory, by estimate (jansson's
 * per-value objects, member pairs and string copies, with malloc's
 * overhead). */
size_t mr_intake_tree_estimate(size_t values, size_t members, size_t string_bytes);

/* A committed request needs neither the body's tree nor its conversation
 * model any more: freed, their charge given back (the small routing trees
 * stay: the plan borrows from them). */
void mr_intake_release(mr_request_t *r);

#endif
