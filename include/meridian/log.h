/*
 * log — one-line, leveled diagnostics on stderr.
 *
 * Each call formats into a stack buffer and emits the line with a single
 * write(2), so lines from several threads never interleave. The threshold is
 * process configuration, set once by main() before any worker starts and
 * only read afterwards. Callers must never pass secrets.
 *
 * One call is one line, whatever the message holds: messages quote client
 * input (model names, ids, upstream errors), so the message is escaped here,
 * where no caller can forget it. Newline, CR and tab become \n \r \t; every
 * other control byte (C0, DEL), every byte that is not part of valid UTF-8,
 * and the bytes of a C1 control or U+2028/U+2029 become \xNN. Printable
 * ASCII (backslash included, so the escapes are for safety, not a reversible
 * encoding) and other valid UTF-8 are kept. A message longer than 2047
 * bytes is cut and ends in "...".
 */
#ifndef MERIDIAN_LOG_H
#define MERIDIAN_LOG_H

typedef enum {
    MR_LOG_DEBUG = 0,
    MR_LOG_INFO,
    MR_LOG_WARN,
    MR_LOG_ERROR,
} mr_log_level_t;

/* Set before starting workers; not synchronised. */
void mr_log_set_level(mr_log_level_t level);
/* Parses "debug" | "info" | "warn" | "error"; returns -1 when unknown. */
int mr_log_parse_level(const char *name, mr_log_level_t *out);
int mr_log_enabled(mr_log_level_t level);

void mr_log(mr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mr_debug(...) mr_log(MR_LOG_DEBUG, __VA_ARGS__)
#define mr_info(...) mr_log(MR_LOG_INFO, __VA_ARGS__)
#define mr_warn(...) mr_log(MR_LOG_WARN, __VA_ARGS__)
#define mr_error(...) mr_log(MR_LOG_ERROR, __VA_ARGS__)

#endif
