/* proxy/log_writer.h
 * The access-log writer: one thread per process that does every write() of access-log lines,
 * so that a slow disk (or a pipe nobody reads) stalls that thread and never a worker.
 *
 * Each worker has a lane: PT_LOG_LANE_BUFS fixed buffers that it fills in turn. A full (or
 * timer-due) buffer is queued for the writer under a mutex held for a few instructions, about
 * once every hundred lines; the writer writes it and gives it back with an atomic store. When
 * the worker's next buffer is still queued (the writer is behind), the caller drops lines: the
 * worker never waits and memory never grows. The writer writes buffers in the order they were
 * queued, each as whole lines, and is the only writer of the file, so lines never interleave. */
#ifndef PT_LOG_WRITER_H
#define PT_LOG_WRITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PT_LOG_BUF_BYTES (32 * 1024)
#define PT_LOG_LANE_BUFS 4
/* At exit the writer gets this long to write what is queued; a file that cannot take it in
 * that time (a pipe nobody reads) loses the rest rather than hang the stop. */
#define PT_LOG_WRITER_EXIT_WAIT_MS 3000

typedef struct pt_log_writer pt_log_writer_t;

typedef struct pt_log_buf {
    struct pt_log_buf *next; /* in the writer's queue, under its lock */
    _Atomic bool is_queued;  /* true from hand-off until written: the writer's */
    size_t len;
    char data[PT_LOG_BUF_BYTES];
} pt_log_buf_t;

typedef struct pt_log_lane {
    pt_log_writer_t *writer;
    unsigned current;              /* index into bufs of the buffer being filled */
    struct pt_log_lane *next_lane; /* the writer's list, for freeing */
    pt_log_buf_t bufs[PT_LOG_LANE_BUFS];
} pt_log_lane_t;

/* Starts the writer thread on fd (not owned); NULL if the thread cannot start. */
pt_log_writer_t *pt_log_writer_start(int fd);
/* A new lane for one worker, owned by the writer; any thread, before the worker uses it. */
pt_log_lane_t *pt_log_writer_lane(pt_log_writer_t *w);
/* After every lane's last hand-off: writes what is queued (waiting up to
 * PT_LOG_WRITER_EXIT_WAIT_MS), stops the thread and frees the writer and its lanes. Returns the
 * bytes that could not be written in time (0 normally). */
size_t pt_log_writer_stop(pt_log_writer_t *w);

/* The buffer to append to, or NULL while the writer still holds it (drop the line). */
static inline pt_log_buf_t *pt_log_lane_buffer(pt_log_lane_t *lane)
{
    pt_log_buf_t *b = &lane->bufs[lane->current];
    return atomic_load_explicit(&b->is_queued, memory_order_acquire) ? NULL : b;
}

/* Queues the current buffer for the writer when it holds any bytes, and moves to the next. */
void pt_log_lane_hand_off(pt_log_lane_t *lane);

#endif
