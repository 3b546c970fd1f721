/* proxy/log.h
 * Diagnostic logging to stderr (the access log is separate: proxy/access_log.h). A line is
 * "<time> <level> <message>"; one write() per line so workers' lines never interleave.
 * The level is process-wide: the main thread sets it (--log-level, the admin POST /logging),
 * every thread reads it, so it is an atomic read with relaxed order (a worker seeing the new
 * level one line late is harmless). */
#ifndef PT_LOG_H
#define PT_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pt_log_level {
    PT_LOG_ERROR = 0,
    PT_LOG_WARN,
    PT_LOG_INFO,
    PT_LOG_DEBUG,
} pt_log_level_t;

/* A pt_log_level_t. Prefer pt_log_set_level()/pt_log_get_level(); a plain assignment or read
 * is still correct (sequentially consistent), only slower. */
extern _Atomic int pt_log_level;

void pt_log_set_level(pt_log_level_t level);
pt_log_level_t pt_log_get_level(void);
/* "error", "warning", "info" or "debug" (the names --log-level and /logging take). */
const char *pt_log_level_name(pt_log_level_t level);
/* Parses one of those names (len bytes, not NUL-terminated); returns 0, or -1 if unknown. */
int pt_log_level_parse(const char *name, size_t len, pt_log_level_t *out);

void pt_log(pt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit for one kind of message that may repeat per request or per connection: declare
 * one zeroed (static) per call site, shared by every thread. */
typedef struct pt_log_limit {
    _Atomic uint64_t next_ms;    /* monotonic time before which lines are suppressed */
    _Atomic uint64_t suppressed; /* lines dropped since the last one written */
} pt_log_limit_t;

/* The interval of the call sites that repeat per request or per connection. */
#define PT_LOG_REPEAT_INTERVAL_MS 10000

/* Logs like pt_log(), at most once per interval_ms for lim; the lines in between are dropped
 * and counted, and the next line written ends with " (N similar messages suppressed)". Safe
 * from any thread. */
void pt_log_limited(pt_log_limit_t *lim, uint64_t interval_ms, pt_log_level_t level,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The decision of pt_log_limited() at now_ms (unit-tested): true when a line is written, with
 * *suppressed set to the lines dropped since the last one; false counts one more dropped. */
bool pt_log_limit_pass(pt_log_limit_t *lim, uint64_t now_ms, uint64_t interval_ms,
                       uint64_t *suppressed);

#define pt_log_error(...) pt_log(PT_LOG_ERROR, __VA_ARGS__)
#define pt_log_warn(...) pt_log(PT_LOG_WARN, __VA_ARGS__)
#define pt_log_info(...) pt_log(PT_LOG_INFO, __VA_ARGS__)
#define pt_log_debug(...)                                                                          \
    do {                                                                                           \
        if (atomic_load_explicit(&pt_log_level, memory_order_relaxed) >= PT_LOG_DEBUG)             \
            pt_log(PT_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
