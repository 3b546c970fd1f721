/* proxy/relay.h
 * A byte relay between two TCP sockets: what one side sends is written to the other, with
 * backpressure (a side stops reading while the other's write queue is over the watermark) and
 * half-close (EOF from one side becomes a shutdown of the other's write side; the relay ends
 * when both directions are done, or on an error, or after the idle timeout). Used for TCP and
 * TLS-passthrough routes (l4_proxy.c) and for HTTP connections after an accepted upgrade
 * (WebSocket).
 *
 * Ownership: the relay takes over both handles (their data pointers and callbacks) and closes
 * them; when both are closed it calls on_closed(arg, which) for each so that the structures
 * embedding them can be freed, then frees itself. */
#ifndef PT_RELAY_H
#define PT_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "list.h"
#include "worker.h"

typedef struct pt_relay pt_relay_t;

typedef void (*pt_relay_closed_cb)(void *owner);

typedef struct pt_relay_side {
    pt_relay_t *relay;
    uv_tcp_t *tcp;
    pt_rbuf_t in; /* slab being read into; slices of it are pinned by writes */
    bool is_reading;
    bool is_read_paused;          /* the other side's write queue is full */
    pt_relay_closed_cb on_closed; /* frees the structure embedding tcp */
    void *owner;
    uint64_t bytes_read;
    bool read_eof;   /* this side sent FIN */
    bool write_shut; /* we shut down writing to this side */
    bool is_closed;
} pt_relay_side_t;

struct pt_relay {
    pt_worker_t *worker;
    pt_relay_side_t side[2];
    uv_timer_t idle_timer;
    uv_shutdown_t shutdown_req[2];
    pt_list_t link; /* in worker->tunnels */
    uint64_t idle_timeout_ms;
    uint64_t last_activity_ms;
    uint8_t handles_open;
    bool is_closing;
    char tcp_service[96]; /* a TCP route's destination host (tcp_* stats and metrics); "" else */
};

/* Starts relaying between a and b. a_in and b_in are what each side had read and not yet
 * consumed (bytes [off, len) go to the other side first); the relay takes their slabs over.
 * Returns the relay (never NULL). */
pt_relay_t *pt_relay_start(pt_worker_t *w, uv_tcp_t *a, pt_relay_closed_cb a_closed, void *a_owner,
                           pt_rbuf_t a_in, uv_tcp_t *b, pt_relay_closed_cb b_closed, void *b_owner,
                           pt_rbuf_t b_in, uint64_t idle_timeout_ms);
/* Closes both sides now (drain deadline, worker stop). */
void pt_relay_close(pt_relay_t *r);

#endif
