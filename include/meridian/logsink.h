/*
 * logsink — lines written off the event loop, optionally as a tamper-evident
 * hash chain.
 *
 * Used for the access log (one JSON line per request, to "stdout" or a file)
 * and for the audit file (append-only JSONL, each record chained to the one
 * before by SHA-256). Producers are the workers: each has an index
 * 0..n_producers-1 and each index is used by exactly one thread. A producer
 * only copies its line into its own queue; a dedicated writer thread does
 * all I/O (and, in chain mode, all hashing), so a slow or full disk never
 * blocks an event loop: when a producer's queue is full its lines are
 * dropped and counted instead.
 *
 * Chain format (chain = 1): see audit.h. The producer passes a JSON object
 * text {"time":...,"id":...}; the writer emits the line
 *
 *   {"seq":N,"prev":"<64 hex>",<the producer's members>,"hash":"<64 hex>"}\n
 *
 * that is "{\"seq\":N,\"prev\":\"...\"," followed by the producer's text
 * without its leading '{', with its final '}' replaced by
 * ",\"hash\":\"...\"}". The chain is unkeyed: it shows that a file was
 * changed after it was written unless the whole tail from the change on was
 * recomputed, and it cannot show that records were removed from either end.
 * So the writer logs the chain head (mr_info: "audit.path PATH: chain head
 * seq N <64 hex> (why)") when it continues a file, at most once a minute
 * while records are written, at every reopen and at close; ship the daemon
 * log off-host and a removed tail, or a rewritten file, no longer matches a
 * head that was logged.
 *
 * Restart: opening an existing non-empty file in chain mode reads its last
 * line (backwards, in chunks; the file is never read whole) and continues
 * from its seq and digest. A file that does not end in a newline, or whose
 * last line is not a valid record, is refused with a message: the sink
 * never repairs or truncates a file it did not just write. After
 * mr_logsink_reopen (logrotate) the chain continues in the new file, so the
 * old and new files concatenated verify as one chain, and the new file alone
 * verifies when anchored to the old one (mr_audit_verify's `after`).
 *
 * Failed writes are counted (write_errors), logged once per burst with
 * mr_warn (never the line contents: they may be sensitive) and the rest of
 * that batch is dropped; the writer keeps going. In chain mode the chain
 * state rewinds to the last record that reached the file, so the file stays
 * verifiable (lost records show up in the counters, not as a broken chain).
 * A record the failed write cut in half is removed again with ftruncate; on
 * a file where that is impossible (a pipe) the next line starts with a
 * newline instead, so only the cut line is damaged.
 *
 * Threading and ownership: mr_logsink_open returns a sink owned by the
 * caller, freed by mr_logsink_close. mr_logsink_write: from producer p's
 * thread only. mr_logsink_reopen and mr_logsink_stats: any thread.
 * mr_logsink_close: once, after every other call on the sink has returned.
 */
#ifndef MERIDIAN_LOGSINK_H
#define MERIDIAN_LOGSINK_H

#include <stddef.h>
#include <stdint.h>

#define MR_LOGSINK_QUEUE_BYTES (8u << 20) /* default bound per producer */

typedef struct mr_logsink mr_logsink_t;

typedef struct mr_logsink_opts {
    /* "stdout" (fd 1, never closed) or a file path, opened
     * O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC with mode 0640. */
    const char *path;
    /* The config key, to name the sink in messages ("access_log",
     * "audit.path"); NULL: "log". */
    const char *name;
    /* 1: audit hash chain (format above); 0: plain lines. */
    int chain;
    /* Bound on bytes queued per producer and not yet written (a line counts
     * its length plus the newline; chain framing is not counted). A line
     * that would exceed it is dropped. 0 = MR_LOGSINK_QUEUE_BYTES. Memory
     * peaks at about (n_producers + 1) times this. */
    size_t queue_bytes;
    unsigned n_producers; /* >= 1 */
} mr_logsink_opts_t;

/* Opens the sink and starts its writer thread; in chain mode continues an
 * existing file's chain (see above; "stdout" and other files that cannot be
 * read back, such as devices, start a new chain). 0, or -1 with err set (e.g.
 * "audit.path /x/y: Permission denied", "audit.path /x ends in a partial
 * record (byte 1234): ..."). The opts strings are copied. */
int mr_logsink_open(const mr_logsink_opts_t *o, mr_logsink_t **out, char *err, size_t errlen);

/* Queues one line for producer p (0 <= p < n_producers; one thread per p).
 * `line` has no trailing newline (the sink adds it) and must not contain
 * one. In chain mode it must be a JSON object text "{...}" with at least one
 * member and none named "seq", "prev" or "hash", starting with '{' and
 * ending with '}' (no surrounding white space); checking it is one linear
 * scan on the caller's thread, so that every record the writer frames
 * verifies. Copies the bytes. Returns 0 when queued; -1 when the producer's
 * queue is full (or memory ran out); -2 when the line is refused (invalid,
 * or p out of range). Every line not queued is counted in `dropped`: a lost
 * record is never silent. Never blocks on I/O: one memcpy under a mutex
 * only the writer shares, and a signal to the writer only when it sleeps. */
int mr_logsink_write(mr_logsink_t *s, unsigned p, const char *line, size_t len);

/* Asks the writer to close and reopen the path (logrotate; SIGUSR1). Lines
 * queued before the call go to the old file, later ones to the new file (a
 * second call before the writer acted on the first only joins it). When the
 * path cannot be opened the writer warns and keeps the old file. Takes every
 * producer's mutex for a moment, never waits for I/O.
 * Any thread, but not a signal handler (use a uv_signal). No-op for
 * "stdout". */
void mr_logsink_reopen(mr_logsink_t *s);

typedef struct mr_logsink_stats {
    uint64_t written;      /* lines (records) that reached the file */
    uint64_t dropped;      /* lines not queued: a full queue (or no memory) or refused */
    uint64_t write_errors; /* failed write(2) calls; each drops the rest of its batch */
} mr_logsink_stats_t;

/* Any thread; lock-free relaxed reads, so the three values are each exact
 * but not necessarily from the same instant. */
void mr_logsink_stats(const mr_logsink_t *s, mr_logsink_stats_t *out);

/* Writes everything queued, stops the writer, closes the file (after
 * fdatasync in chain mode) and frees the sink. NULL ok. */
void mr_logsink_close(mr_logsink_t *s);

#endif
