/* proxy/relay.h
 * A byte relay between two TCP sockets: what one side sends is written to the other, with
 * backpressure (a side stops reading while the other's write queue is over the watermark) and
 * half-close (EOF from one side becomes a shutdown of the other's write side; the relay ends
 * when both directions are done, or on an error, or after the idle timeout). Used for TCP and
 * TLS routes (l4_proxy.c) and for HTTP connections after an accepted upgrade (WebSocket).
 *
 * Either side may carry TLS (a Gateway TLS server that terminates, an HTTPS connection that
 * upgraded, DestinationRule tls towards the upstream): the relay then reads ciphertext, feeds
 * the side's engine (tls/tls.h) and relays the plaintext; what it writes to that side is
 * encrypted into slabs of its own, so the write queue, and the watermarks, count ciphertext.
 * A close_notify is that side's EOF (a FIN without one too), and the other side's EOF becomes
 * close_notify before the shutdown. Plaintext the engine holds while the other side is
 * congested stays in the engine until it drains.
 *
 * L4 filters (filters/l4_filter.h) may sit on a session: bytes and ends go through them before
 * reaching the other side. A session without filters relays as if they did not exist.
 *
 * Ownership: the relay takes over both handles (their data pointers and callbacks) and closes
 * them; when both are closed it calls on_closed(owner) for each so that the structures
 * embedding them (and their TLS engines) can be freed, then frees itself. */
#ifndef PT_RELAY_H
#define PT_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../filters/l4_filter.h"
#include "../tls/tls.h"
#include "buf.h"
#include "list.h"
#include "worker.h"

typedef struct pt_relay pt_relay_t;

typedef void (*pt_relay_closed_cb)(void *owner);

/* One side as its owner hands it over. */
typedef struct pt_relay_end {
    uv_tcp_t *tcp;
    pt_tls_t *tls; /* the handshake is done; owned by owner (freed after on_closed); NULL: plain */
    pt_rbuf_t in;  /* plaintext read and not consumed: bytes [off, len) go to the other side
                      first; the relay takes the slab over */
    pt_relay_closed_cb on_closed; /* frees the structure embedding tcp */
    void *owner;
} pt_relay_end_t;

typedef struct pt_relay_side {
    pt_relay_t *relay;
    uv_tcp_t *tcp;
    pt_tls_t *tls;
    pt_rbuf_t in; /* slab plaintext is read (or decrypted) into; slices are pinned by writes */
    bool is_reading;
    bool is_read_paused;          /* the other side's write queue is full */
    bool is_read_held;            /* a filter holds what this side sent (backpressure) */
    bool is_eof_passed;           /* this side's end went through the filters to the other side */
    pt_relay_closed_cb on_closed; /* frees the structure embedding tcp */
    void *owner;
    uint64_t bytes_read; /* plaintext */
    bool read_eof;       /* this side sent FIN (or close_notify) */
    bool write_shut;     /* we shut down writing to this side */
    bool is_closed;
} pt_relay_side_t;

struct pt_relay {
    pt_worker_t *worker;
    pt_relay_side_t side[2];
    uv_timer_t idle_timer;
    uv_shutdown_t shutdown_req[2];
    pt_list_t link; /* in worker->tunnels */
    struct {
        const pt_l4_filter_ops_t *ops;
        const void *conf;
        void *inst; /* in this allocation, after the struct */
    } filters[PT_L4_MAX_FILTERS];
    size_t n_filters;
    uint64_t idle_timeout_ms;
    uint64_t last_activity_ms;
    uint8_t handles_open;
    bool is_closing;
    pt_access_log_entry_t *log_entry; /* an upgraded request's line, written at the end; malloc'd */
    uint64_t log_start_ms;            /* uv_now when that request started */
    bool log_json;
};

/* Starts relaying between a (the downstream) and b. Returns the relay (never NULL). */
pt_relay_t *pt_relay_start(pt_worker_t *w, pt_relay_end_t a, pt_relay_end_t b,
                           uint64_t idle_timeout_ms);
/* The same with n_filters (at most PT_L4_MAX_FILTERS) L4 filters run in order; their on_connect
 * runs before the first byte is relayed. Returns the relay, which may already be closing (a
 * filter refused the session). */
pt_relay_t *pt_relay_start_filtered(pt_worker_t *w, pt_relay_end_t a, pt_relay_end_t b,
                                    uint64_t idle_timeout_ms, const pt_l4_filter_t *filters,
                                    size_t n_filters);
/* Runs the on_accept of n_filters L4 filters in order on a connection not relayed yet: false
 * when one refused it (the caller closes it). */
bool pt_relay_accept_allows(const pt_l4_filter_t *filters, size_t n_filters,
                            const pt_l4_accept_t *a);
/* An upgraded HTTP request's access-log line (e, copied) is written when the relay ends, with
 * the tunnel's bytes added (side a's to bytes_received, b's to bytes_sent) and the duration
 * counted from start_ms, as Envoy logs an upgrade once the connection closes. */
void pt_relay_log_at_close(pt_relay_t *r, const pt_access_log_entry_t *e, uint64_t start_ms,
                           bool is_json);
/* Closes both sides now (drain deadline, worker stop). */
void pt_relay_close(pt_relay_t *r);

#endif
