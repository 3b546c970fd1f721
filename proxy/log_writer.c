/* proxy/log_writer.c
 * The access-log writer thread and the workers' buffer lanes (see log_writer.h). */
#include "log_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

struct pt_log_writer {
    int fd;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t has_work;     /* queued or is_stopping: wakes the thread */
    uv_cond_t has_finished; /* is_finished: wakes pt_log_writer_stop */
    /* Under lock: */
    pt_log_buf_t *head; /* queued buffers, oldest first */
    pt_log_buf_t **tail;
    size_t unwritten; /* bytes queued or being written */
    bool is_stopping, is_finished;
    pt_log_lane_t *lanes;
    pt_log_writer_t *next_abandoned;
};

/* Writers given up at exit (their file took nothing): kept reachable, as their thread may
 * still be inside write() on one of their buffers when the process ends. */
static pt_log_writer_t *abandoned;

/* Writes all of data unless the file refuses it: a full disk loses log lines, never requests. */
static void write_all(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

static void writer_main(void *arg)
{
    pt_log_writer_t *w = arg;
    uv_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->is_stopping)
            uv_cond_wait(&w->has_work, &w->lock);
        pt_log_buf_t *batch = w->head;
        if (batch == NULL)
            break; /* stopping, and all written */
        w->head = NULL;
        w->tail = &w->head;
        uv_mutex_unlock(&w->lock);
        size_t written = 0;
        for (pt_log_buf_t *b = batch, *next; b != NULL; b = next) {
            next = b->next; /* read before the release: the worker may queue b again at once */
            write_all(w->fd, b->data, b->len);
            written += b->len;
            b->len = 0;
            atomic_store_explicit(&b->is_queued, false, memory_order_release);
        }
        uv_mutex_lock(&w->lock);
        w->unwritten -= written;
    }
    w->is_finished = true;
    uv_cond_signal(&w->has_finished);
    uv_mutex_unlock(&w->lock);
}

pt_log_writer_t *pt_log_writer_start(int fd)
{
    pt_log_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->fd = fd;
    w->tail = &w->head;
    uv_mutex_init(&w->lock);
    uv_cond_init(&w->has_work);
    uv_cond_init(&w->has_finished);
    if (uv_thread_create(&w->thread, writer_main, w) != 0) {
        uv_cond_destroy(&w->has_finished);
        uv_cond_destroy(&w->has_work);
        uv_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

pt_log_lane_t *pt_log_writer_lane(pt_log_writer_t *w)
{
    /* calloc: the buffers' pages are only touched (and count in RSS) once lines fill them. */
    pt_log_lane_t *lane = calloc(1, sizeof(*lane));
    if (lane == NULL)
        abort();
    lane->writer = w;
    uv_mutex_lock(&w->lock);
    lane->next_lane = w->lanes;
    w->lanes = lane;
    uv_mutex_unlock(&w->lock);
    return lane;
}

void pt_log_lane_hand_off(pt_log_lane_t *lane)
{
    pt_log_buf_t *b = pt_log_lane_buffer(lane);
    if (b == NULL || b->len == 0)
        return;
    pt_log_writer_t *w = lane->writer;
    atomic_store_explicit(&b->is_queued, true, memory_order_relaxed);
    b->next = NULL;
    uv_mutex_lock(&w->lock);
    *w->tail = b;
    w->tail = &b->next;
    w->unwritten += b->len;
    uv_cond_signal(&w->has_work);
    uv_mutex_unlock(&w->lock);
    lane->current = (lane->current + 1) % PT_LOG_LANE_BUFS;
}

size_t pt_log_writer_stop(pt_log_writer_t *w)
{
    uv_mutex_lock(&w->lock);
    w->is_stopping = true;
    uv_cond_signal(&w->has_work);
    uint64_t deadline = uv_hrtime() + (uint64_t)PT_LOG_WRITER_EXIT_WAIT_MS * 1000000u;
    while (!w->is_finished) {
        uint64_t now = uv_hrtime();
        if (now >= deadline || uv_cond_timedwait(&w->has_finished, &w->lock, deadline - now) != 0)
            break;
    }
    bool is_finished = w->is_finished;
    size_t unwritten = w->unwritten;
    uv_mutex_unlock(&w->lock);
    if (!is_finished) {
        w->next_abandoned = abandoned;
        abandoned = w;
        return unwritten;
    }
    uv_thread_join(&w->thread);
    while (w->lanes != NULL) {
        pt_log_lane_t *next = w->lanes->next_lane;
        free(w->lanes);
        w->lanes = next;
    }
    uv_cond_destroy(&w->has_finished);
    uv_cond_destroy(&w->has_work);
    uv_mutex_destroy(&w->lock);
    free(w);
    return 0;
}
