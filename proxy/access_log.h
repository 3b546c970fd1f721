/* proxy/access_log.h
 * One line per request, in Envoy's default text format, so existing log parsers fit:
 *   [START_TIME] "METHOD PATH PROTOCOL" STATUS FLAGS BYTES_RECEIVED BYTES_SENT DURATION_MS
 *   UPSTREAM_MS "X-FORWARDED-FOR" "USER-AGENT" "X-REQUEST-ID" "AUTHORITY" "UPSTREAM_HOST"
 * Each worker buffers its lines and writes them with one write() when the buffer fills or on a
 * short timer, so logging costs no syscall per request. The file is opened by the main thread
 * with O_APPEND; every flush is a single write of whole lines. */
#ifndef PT_ACCESS_LOG_H
#define PT_ACCESS_LOG_H

#include <stddef.h>
#include <uv.h>

#define PT_ACCESS_LOG_BUF_BYTES (32 * 1024)
#define PT_ACCESS_LOG_FLUSH_MS 100

typedef struct pt_access_log {
    int fd;           /* -1: logging off; not owned */
    uv_timer_t timer; /* flush timer, armed while len > 0 */
    size_t len;
    char buf[PT_ACCESS_LOG_BUF_BYTES];
} pt_access_log_t;

void pt_access_log_init(pt_access_log_t *log, uv_loop_t *loop, int fd);
/* Appends one line (the caller includes the '\n'). */
void pt_access_log_append(pt_access_log_t *log, const char *line, size_t len);
void pt_access_log_flush(pt_access_log_t *log);
/* Flushes and closes the timer handle (its close callback is not needed: the log is embedded
 * in the worker, which outlives its loop). */
void pt_access_log_close(pt_access_log_t *log);

#endif
