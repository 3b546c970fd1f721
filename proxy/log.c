/* proxy/log.c
 * Diagnostic lines to stderr, and the process-wide level (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int pt_log_level = PT_LOG_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void pt_log_set_level(pt_log_level_t level)
{
    atomic_store_explicit(&pt_log_level, (int)level, memory_order_relaxed);
}

pt_log_level_t pt_log_get_level(void)
{
    return (pt_log_level_t)atomic_load_explicit(&pt_log_level, memory_order_relaxed);
}

const char *pt_log_level_name(pt_log_level_t level)
{
    return (unsigned)level <= PT_LOG_DEBUG ? level_names[level] : "?";
}

int pt_log_level_parse(const char *name, size_t len, pt_log_level_t *out)
{
    for (int i = PT_LOG_ERROR; i <= PT_LOG_DEBUG; i++) {
        if (strlen(level_names[i]) == len && memcmp(level_names[i], name, len) == 0) {
            *out = (pt_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Writes one line: the time, the level, the message and suffix (may be ""). */
__attribute__((format(printf, 3, 0))) static void log_line(pt_log_level_t level, const char *suffix,
                                                           const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)tv.tv_usec / 1000, level_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    int k = snprintf(line + len, sizeof(line) - len - 1, "%s", suffix);
    len += k < 0 ? 0 : (size_t)k;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, len);
    (void)r;
}

void pt_log(pt_log_level_t level, const char *fmt, ...)
{
    if ((int)level > atomic_load_explicit(&pt_log_level, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line(level, "", fmt, ap);
    va_end(ap);
}

bool pt_log_limit_pass(pt_log_limit_t *lim, uint64_t now_ms, uint64_t interval_ms,
                       uint64_t *suppressed)
{
    uint64_t next = atomic_load_explicit(&lim->next_ms, memory_order_relaxed);
    /* Of threads racing past the same deadline, the one whose exchange succeeds logs. */
    if (now_ms < next ||
        !atomic_compare_exchange_strong(&lim->next_ms, &next, now_ms + interval_ms)) {
        atomic_fetch_add_explicit(&lim->suppressed, 1, memory_order_relaxed);
        return false;
    }
    *suppressed = atomic_exchange_explicit(&lim->suppressed, 0, memory_order_relaxed);
    return true;
}

void pt_log_limited(pt_log_limit_t *lim, uint64_t interval_ms, pt_log_level_t level,
                    const char *fmt, ...)
{
    if ((int)level > atomic_load_explicit(&pt_log_level, memory_order_relaxed))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* + interval: the first line passes even if the clock started near zero. */
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + interval_ms;
    uint64_t suppressed;
    if (!pt_log_limit_pass(lim, now_ms, interval_ms, &suppressed))
        return;
    char suffix[64] = "";
    if (suppressed > 0)
        snprintf(suffix, sizeof(suffix), " (%llu similar message%s suppressed)",
                 (unsigned long long)suppressed, suppressed == 1 ? "" : "s");
    va_list ap;
    va_start(ap, fmt);
    log_line(level, suffix, fmt, ap);
    va_end(ap);
}
