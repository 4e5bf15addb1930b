#include "meridian/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

void mr_log(mr_log_level_t level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level < threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* A short or failed write to stderr has nowhere better to be reported. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
