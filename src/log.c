#include "meridian/log.h"

#include "meridian/json_span.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The message as formatted, and the line it becomes once escaped (each
 * byte becomes at most 4: "\xNN"). */
#define MSG_MAX 2048
#define LINE_MAX (64 + 4 * MSG_MAX)

/* Written once at start-up, read-only once workers run (see log.h). */
static mr_log_level_t threshold = MR_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void mr_log_set_level(mr_log_level_t level)
{
    threshold = level;
}

int mr_log_parse_level(const char *name, mr_log_level_t *out)
{
    for (int i = 0; i <= MR_LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (mr_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int mr_log_enabled(mr_log_level_t level)
{
    return level >= threshold;
}

/* Whether the valid UTF-8 character c[0..n) is one a terminal or a log
 * viewer acts on: a C1 control (U+0080..U+009F) or U+2028/U+2029. */
static int is_unsafe_char(const unsigned char *c, size_t n)
{
    return (n == 2 && c[0] == 0xC2 && c[1] < 0xA0) ||
           (n == 3 && c[0] == 0xE2 && c[1] == 0x80 && (c[2] == 0xA8 || c[2] == 0xA9));
}

/* Appends msg[0..len) to out[o..cap) as log.h describes; returns the new
 * length. cap holds 4 bytes per input byte; a piece that would not fit
 * anyway ends the line. */
static size_t escape(const char *msg, size_t len, char *out, size_t o, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)msg, *end = p + len;

    while (p < end) {
        char e[16];
        size_t in = 1, k = 0;

        if (*p >= 0x20 && *p < 0x7F) {
            e[k++] = (char)*p;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            e[k++] = '\\';
            e[k++] = (char)(*p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
        } else {
            in = *p < 0x80 ? 0 : mr_utf8_char_len((const char *)p, (size_t)(end - p));
            if (in && !is_unsafe_char(p, in)) {
                memcpy(e, p, in);
                k = in;
            } else {
                in = in ? in : 1; /* an unsafe character's bytes, or one bad byte */
                for (size_t i = 0; i < in; i++) {
                    e[k++] = '\\';
                    e[k++] = 'x';
                    e[k++] = hex[p[i] >> 4];
                    e[k++] = hex[p[i] & 15];
                }
            }
        }
        if (o + k > cap)
            break;
        memcpy(out + o, e, k);
        o += k;
        p += in;
    }
    return o;
}

void mr_log(mr_log_level_t level, const char *fmt, ...)
{
    char msg[MSG_MAX], line[LINE_MAX];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    size_t len, o;
    int n, m;

    if (level < threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level]);
    va_start(ap, fmt);
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    len = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    o = escape(msg, len, line, (size_t)n, sizeof(line) - 4);
    if (m >= (int)sizeof(msg)) { /* vsnprintf cut the message */
        memcpy(line + o, "...", 3);
        o += 3;
    }
    line[o++] = '\n';
    /* A short or failed write to stderr has nowhere better to be reported. */
    if (write(STDERR_FILENO, line, o) < 0)
        return;
}
