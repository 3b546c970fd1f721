/* proxy/access_log.c */
#include "access_log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static void on_flush_timer(uv_timer_t *t)
{
    pt_access_log_flush(t->data);
}

void pt_access_log_init(pt_access_log_t *log, uv_loop_t *loop, int fd)
{
    log->fd = fd;
    log->len = 0;
    uv_timer_init(loop, &log->timer);
    log->timer.data = log;
    uv_unref((uv_handle_t *)&log->timer);
}

void pt_access_log_flush(pt_access_log_t *log)
{
    size_t off = 0;
    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk loses log lines, never requests */
        off += (size_t)n;
    }
    log->len = 0;
    uv_timer_stop(&log->timer);
}

void pt_access_log_append(pt_access_log_t *log, const char *line, size_t len)
{
    if (log->fd < 0)
        return;
    if (log->len + len > sizeof(log->buf))
        pt_access_log_flush(log);
    if (len > sizeof(log->buf))
        len = sizeof(log->buf);
    memcpy(log->buf + log->len, line, len);
    if (log->len == 0)
        uv_timer_start(&log->timer, on_flush_timer, PT_ACCESS_LOG_FLUSH_MS, 0);
    log->len += len;
}

void pt_access_log_close(pt_access_log_t *log)
{
    if (log->fd >= 0 && log->len > 0)
        pt_access_log_flush(log);
    uv_close((uv_handle_t *)&log->timer, NULL);
}
