/*
 * reqlog — what a finished request leaves behind: one access-log line and
 * one provenance (audit) record.
 *
 * The gateway describes a finished request in an mr_request_rec_t (every
 * pointer borrowed for the duration of the call); reqlog formats it as JSON
 * and hands the line to a logsink, whose writer thread does the I/O. The
 * access log names the key, never its secret; the audit record carries
 * SHA-256 digests of the bodies and the bodies themselves only with
 * audit.bodies. Provider keys never appear in either. Whatever bytes the
 * strings and bodies hold, each line is valid JSON: strings go through
 * mr_json_escape, a body that is not UTF-8 is written as `<name>_base64`,
 * and a response copy cut at its bound is cut on a character boundary and
 * marked (response_bytes, response_body_truncated). A record the audit sink
 * does not take is counted there and logged as an error naming the request.
 *
 * One mr_reqlog_t per process, shared by the workers: call from worker
 * `worker`'s thread only with that index.
 */
#ifndef MERIDIAN_REQLOG_H
#define MERIDIAN_REQLOG_H

#include "meridian/adapter.h"
#include "meridian/buf.h"
#include "meridian/config.h"
#include "meridian/failure.h"
#include "meridian/metrics.h"
#include "meridian/router.h"

#include <stdint.h>

/* One upstream attempt, as the gateway records it while routing. */
typedef struct mr_attempt_rec {
    const mr_provider_t *provider;
    const char *model;
    long status;     /* HTTP status, 0 when none */
    char error[128]; /* transport or validation failure, "" when none */
    uint32_t ms;
    mr_attempt_outcome_t outcome;
    mr_failure_t failure;        /* why it ended (MR_FAIL_NONE: used as answered) */
    unsigned signatures_dropped; /* foreign reasoning signatures not sent to it */
    unsigned resends;            /* times the transport re-sent it by itself */
    /* what the target did not get of the client's request (adapter.h) */
    const char *dropped[MR_ADAPTER_DROPPED_MAX];
    unsigned n_dropped;
    char betas_dropped[MR_ADAPTER_BETAS_MAX];
} mr_attempt_rec_t;

typedef struct mr_request_rec {
    const char *id;
    const char *key;       /* gateway key name, NULL without keys */
    const char *endpoint;  /* "/v1/chat/completions" ... */
    const char *dialect;   /* the client's: "chat", "messages" (inbound.h) */
    const char *model;     /* as the client asked, NULL when absent */
    const mr_plan_t *plan; /* NULL when the request was refused before routing */
    int stream;
    int status; /* HTTP status sent, 0 when the client left first */
    const mr_attempt_rec_t *attempts;
    unsigned n_attempts;
    unsigned skipped_open, skipped_busy;
    const mr_provider_t *served_by; /* NULL: the gateway answered */
    const char *served_model;
    mr_usage_t usage;
    const char *usage_source; /* "reported", "estimated"; NULL: no answer served */
    const char *outcome;      /* failure name of the last attempt ("none"); NULL: none */
    double cost_usd;          /* -1 when the target has no price */
    uint64_t total_us;
    uint64_t ttfb_us;               /* UINT64_MAX when no byte went out */
    double unix_time;               /* arrival */
    const uint8_t *request_sha256;  /* 32 bytes, NULL when no body */
    const uint8_t *response_sha256; /* 32 bytes, NULL when nothing was sent */
    const char *request_body;       /* with audit.bodies only */
    size_t request_len;
    const char *response_body; /* a prefix of what was sent (bounded copy) */
    size_t response_len;
    /* Bytes sent in all; more than response_len when the copy was cut at its
     * bound (the record marks it truncated). 0: response_len. */
    uint64_t response_bytes;
} mr_request_rec_t;

typedef struct mr_reqlog mr_reqlog_t;

/* Opens what the config asks for (access_log, audit.path); with neither,
 * *out is still a valid object that writes nothing. 0, or -1 + err. */
int mr_reqlog_open(const mr_config_t *cfg, unsigned n_workers, mr_reqlog_t **out, char *err,
                   size_t errlen);
/* Flushes and closes. NULL ok. */
void mr_reqlog_close(mr_reqlog_t *l);
/* SIGUSR1: reopen both files (logrotate). */
void mr_reqlog_reopen(mr_reqlog_t *l);

int mr_reqlog_wants_access(const mr_reqlog_t *l);
int mr_reqlog_wants_audit(const mr_reqlog_t *l);
int mr_reqlog_wants_bodies(const mr_reqlog_t *l);

void mr_reqlog_write(mr_reqlog_t *l, unsigned worker, const mr_request_rec_t *rec);

/* The sinks' counters in exposition format, for /metrics. */
void mr_reqlog_metrics(const mr_reqlog_t *l, mr_buf_t *out);

#endif
