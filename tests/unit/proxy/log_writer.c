/* tests/unit/proxy/log_writer.c
 * The access-log writer's buffer hand-off (proxy/log_writer.c): buffers are written whole and
 * in hand-off order, a lane runs out of buffers (and says so) while the writer is stuck, gets
 * them back once the file takes bytes again, and a stop with a file that takes nothing returns
 * within its bound and reports what it could not write. The file is a pipe whose capacity is
 * one page, so "stuck" is exact. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/log_writer.h"
#include "test.h"

/* A pipe holding at most one page: fds[0] is read by the test, fds[1] written by the writer. */
static void small_pipe(int fds[2])
{
    ASSERT_EQ(pipe(fds), 0);
    ASSERT(fcntl(fds[1], F_SETPIPE_SZ, 4096) > 0);
}

/* Fills the lane's current buffer with numbered lines up to `bytes`; returns what it wrote. */
static size_t fill(pt_log_lane_t *lane, unsigned *next_line, size_t bytes, char *copy)
{
    pt_log_buf_t *b = pt_log_lane_buffer(lane);
    ASSERT(b != NULL);
    ASSERT_EQ(b->len, 0);
    while (b->len + 32 <= bytes) {
        int n = snprintf(b->data + b->len, 32, "line %08u\n", (*next_line)++);
        b->len += (size_t)n;
    }
    memcpy(copy, b->data, b->len);
    return b->len;
}

/* Reads exactly len bytes from fd. */
static void read_exactly(int fd, char *out, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, out + off, len - off);
        ASSERT(n > 0);
        off += (size_t)n;
    }
}

TEST(buffers_are_written_whole_in_hand_off_order)
{
    int fds[2];
    small_pipe(fds);
    pt_log_writer_t *w = pt_log_writer_start(fds[1]);
    ASSERT(w != NULL);
    pt_log_lane_t *lane = pt_log_writer_lane(w);
    static char sent[PT_LOG_LANE_BUFS * PT_LOG_BUF_BYTES], got[sizeof(sent)];
    size_t total = 0;
    unsigned line = 0;
    for (int i = 0; i < PT_LOG_LANE_BUFS; i++) {
        total += fill(lane, &line, PT_LOG_BUF_BYTES, sent + total);
        pt_log_lane_hand_off(lane);
    }
    /* Every buffer is queued or being written, and the pipe is full: nothing to fill. */
    ASSERT(pt_log_lane_buffer(lane) == NULL);
    read_exactly(fds[0], got, total);
    ASSERT_MEMEQ(sent, total, got, total);
    /* The writer gives the buffers back after their write; the first comes back first. */
    uint64_t deadline = uv_hrtime() + 5000000000u;
    while (pt_log_lane_buffer(lane) == NULL && uv_hrtime() < deadline)
        usleep(1000);
    ASSERT(pt_log_lane_buffer(lane) == &lane->bufs[0]);
    ASSERT_EQ(pt_log_writer_stop(w), 0);
    close(fds[0]);
    close(fds[1]);
}

TEST(an_empty_buffer_is_not_handed_off)
{
    int fds[2];
    small_pipe(fds);
    pt_log_writer_t *w = pt_log_writer_start(fds[1]);
    pt_log_lane_t *lane = pt_log_writer_lane(w);
    pt_log_buf_t *b = pt_log_lane_buffer(lane);
    pt_log_lane_hand_off(lane);
    ASSERT(pt_log_lane_buffer(lane) == b);
    ASSERT_EQ(lane->current, 0);
    ASSERT_EQ(pt_log_writer_stop(w), 0);
    close(fds[0]);
    close(fds[1]);
}

TEST(a_stop_writes_what_is_queued)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0); /* 64 KiB: room for both buffers below */
    pt_log_writer_t *w = pt_log_writer_start(fds[1]);
    pt_log_lane_t *a = pt_log_writer_lane(w), *b = pt_log_writer_lane(w);
    static char sent[2 * 1024], got[sizeof(sent)];
    unsigned line = 0;
    size_t na = fill(a, &line, 1024, sent);
    pt_log_lane_hand_off(a);
    size_t nb = fill(b, &line, 1024, sent + na);
    pt_log_lane_hand_off(b);
    ASSERT_EQ(pt_log_writer_stop(w), 0); /* joins the thread: everything is in the pipe */
    ASSERT_EQ(read(fds[0], got, sizeof(got)), (ssize_t)(na + nb));
    ASSERT_MEMEQ(sent, na + nb, got, na + nb);
    close(fds[0]);
    close(fds[1]);
}

TEST(a_stop_on_a_stuck_file_gives_up_and_counts_the_rest)
{
    int fds[2];
    small_pipe(fds);
    pt_log_writer_t *w = pt_log_writer_start(fds[1]);
    pt_log_lane_t *lane = pt_log_writer_lane(w);
    static char sent[PT_LOG_LANE_BUFS * PT_LOG_BUF_BYTES];
    size_t total = 0;
    unsigned line = 0;
    for (int i = 0; i < 2; i++) {
        total += fill(lane, &line, PT_LOG_BUF_BYTES, sent + total);
        pt_log_lane_hand_off(lane);
    }
    uint64_t start = uv_hrtime();
    size_t unwritten = pt_log_writer_stop(w); /* nobody reads: the writer never finishes */
    uint64_t waited_ms = (uv_hrtime() - start) / 1000000u;
    ASSERT(waited_ms >= PT_LOG_WRITER_EXIT_WAIT_MS);
    /* The first buffer is partly in the pipe; it and the second count as not written. */
    ASSERT_EQ(unwritten, total);
}
