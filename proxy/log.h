/* proxy/log.h
 * Diagnostic logging to stderr (the access log is separate: proxy/access_log.h). A line is
 * "<time> <level> <message>"; one write() per line so workers' lines never interleave. */
#ifndef PT_LOG_H
#define PT_LOG_H

typedef enum pt_log_level {
    PT_LOG_ERROR = 0,
    PT_LOG_WARN,
    PT_LOG_INFO,
    PT_LOG_DEBUG,
} pt_log_level_t;

extern pt_log_level_t pt_log_level;

void pt_log(pt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pt_log_error(...) pt_log(PT_LOG_ERROR, __VA_ARGS__)
#define pt_log_warn(...) pt_log(PT_LOG_WARN, __VA_ARGS__)
#define pt_log_info(...) pt_log(PT_LOG_INFO, __VA_ARGS__)
#define pt_log_debug(...)                                                                          \
    do {                                                                                           \
        if (pt_log_level >= PT_LOG_DEBUG)                                                          \
            pt_log(PT_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
