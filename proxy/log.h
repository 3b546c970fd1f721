/* proxy/log.h
 * Diagnostic logging to stderr (the access log is separate: proxy/access_log.h). A line is
 * "<time> <level> <message>"; one write() per line so workers' lines never interleave.
 * The level is process-wide: the main thread sets it (--log-level, the admin POST /logging),
 * every thread reads it, so it is an atomic read with relaxed order (a worker seeing the new
 * level one line late is harmless). */
#ifndef PT_LOG_H
#define PT_LOG_H

#include <stdatomic.h>
#include <stddef.h>

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

#define pt_log_error(...) pt_log(PT_LOG_ERROR, __VA_ARGS__)
#define pt_log_warn(...) pt_log(PT_LOG_WARN, __VA_ARGS__)
#define pt_log_info(...) pt_log(PT_LOG_INFO, __VA_ARGS__)
#define pt_log_debug(...)                                                                          \
    do {                                                                                           \
        if (atomic_load_explicit(&pt_log_level, memory_order_relaxed) >= PT_LOG_DEBUG)             \
            pt_log(PT_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
