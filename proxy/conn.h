/* proxy/conn.h
 * A downstream connection: its socket, reads into refcounted slabs, TLS (tls_stream.c),
 * protocol detection on captured traffic (capture.c), the connection's limits and timers
 * (header read, idle, capture), writes, and hand-offs of the socket to a relay. What the bytes
 * mean is its server codec's (pt_conn_codec_ops_t; HTTP/1: http1_server.c), which runs the
 * streams.
 *
 * Lifetime: created on accept, freed in the close callback of its last handle (the socket, and
 * a capture relay's socket while it has one), never before: libuv may still hold write
 * requests until then. Between requests it holds no stream, no parser and no read slab; its
 * timer is a deadline in one of its worker's lists (conn.c). */
#ifndef PT_CONN_H
#define PT_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "capture.h"
#include "list.h"
#include "relay.h"
#include "worker.h"

/* Why reading is paused: reading resumes when no reason is left. */
#define PT_CONN_PAUSE_PIPELINE 0x1 /* a request is complete; the next waits for its turn */
#define PT_CONN_PAUSE_UPSTREAM 0x2 /* the upstream is not ready or its write queue is full */
#define PT_CONN_PAUSE_CLOSING 0x4
#define PT_CONN_PAUSE_TUNNEL 0x8 /* an upgrade awaits its answer: the rest is tunnel data */

/* Write queue watermarks, bytes: over HIGH the other side stops reading, below LOW it resumes. */
#define PT_WRITE_HIGH_WATERMARK (256 * 1024)
#define PT_WRITE_LOW_WATERMARK (64 * 1024)

typedef enum pt_conn_timer_mode {
    PT_CONN_TIMER_NONE = 0,
    PT_CONN_TIMER_IDLE,    /* keep-alive idle between requests */
    PT_CONN_TIMER_HEADER,  /* the request head must complete */
    PT_CONN_TIMER_CAPTURE, /* sidecar capture: protocol detection, then the relay's connect */
    PT_CONN_TIMER_STALL,   /* the client reads nothing of a response (idleTimeout) */
} pt_conn_timer_mode_t;

/* The server codec a connection owns, as the connection drives it. The codec keeps its state
 * in c->codec, and may hold none while the connection is idle. */
typedef struct pt_conn_codec_ops {
    void (*on_bytes)(pt_conn_t *c);          /* c->in holds bytes not parsed yet */
    void (*on_peer_eof)(pt_conn_t *c);       /* the client finished sending */
    void (*on_header_timeout)(pt_conn_t *c); /* a request head took over headerTimeout */
    void (*on_drained)(pt_conn_t *c);        /* the write queue fell under its low watermark */
    void (*on_close)(pt_conn_t *c);          /* the connection closes: every exchange ends */
    bool (*is_idle)(const pt_conn_t *c);     /* no exchange, nothing of a request read */
    void (*free)(pt_conn_t *c);              /* the connection's memory goes */
} pt_conn_codec_ops_t;

struct pt_conn {
    uv_tcp_t tcp;
    pt_worker_t *worker;
    uint16_t listener_port;               /* the stream finds its listener in its own snapshot */
    pt_list_t link;                       /* in worker->conns */
    const pt_conn_codec_ops_t *codec_ops; /* the server codec */
    void *codec;                          /* its state; NULL while it holds none */
    pt_rbuf_t in;                         /* bytes read from the client */
    char peer_ip[48];                     /* downstream address, for x-forwarded-for and logs */
    /* The verified peer certificate's SPIFFE ID without "spiffe://" (Istio's principal form,
     * "cluster.local/ns/a/sa/b"), set by mTLS once the handshake verified it, in memory the
     * connection owns; NULL when the peer has none. AuthorizationPolicy principals read only
     * this, never a header. */
    const char *peer_principal;
    unsigned pause; /* PT_CONN_PAUSE_* */
    pt_conn_timer_mode_t timer_mode;
    pt_list_t timer_link; /* in worker->conn_deadlines[timer_mode - 1] while a timer runs */
    uint64_t deadline_ms; /* when it fires (uv_now) */
    uint8_t handles_open; /* the socket (and a capture relay's); freed at 0 */
    bool is_reading;
    bool is_closing;
    bool close_after_response; /* Connection: close, HTTP/1.0, drain, or a broken request */
    bool peer_eof;             /* the client finished sending */
    bool is_handed_off;        /* the socket belongs to a relay now */
    bool may_be_h2c;           /* plaintext HTTP: the first bytes may be the HTTP/2 preface */
    pt_capture_t *capture;     /* sidecar capture listeners only (capture.h); else NULL */
    /* An HTTP chaos proxy's connection: the proxy's name (malloc'd, freed with the connection),
     * by which its streams find the route table (pt_config_chaos_listener) in their own
     * snapshot, as others find theirs by listener_port. NULL otherwise. */
    char *chaos_proxy;

    struct pt_tls_stream *tls; /* TLS terminated here (tls_stream.h); NULL: plaintext */
};

/* Serves fd, a connection just accepted on listener lc (worker.c's accept loop calls this; the
 * descriptor is owned from then on, closed on every path). lc may be an HTTP chaos proxy's route
 * table (lc->chaos_proxy set; the chaos harness accepted fd on the proxy's socket). */
void pt_conn_accept(pt_worker_t *w, int fd, const pt_listener_config_t *lc);

/* Serves fd, a connection accepted for an explicit upstream (l4_proxy.c's direct sessions) that
 * terminates TLS with ctx (a ref is taken; no listener in the snapshot chooses a server): once
 * the handshake is done, the connection goes to pt_l4_proxy_accept_terminated_direct() with
 * direct (malloc'd, owned from then on, freed on every path). fd is owned from then on. */
struct ssl_ctx_st;
struct pt_l4_direct;
void pt_conn_accept_tls(pt_worker_t *w, int fd, struct ssl_ctx_st *ctx,
                        struct pt_l4_direct *direct);

/* Queues bytes downstream (see pt_write). Returns 0 or a libuv error. */
int pt_conn_write(pt_conn_t *c, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
                  unsigned n, const char *suffix, pt_buf_t *pin);
int pt_conn_write_chunk(pt_conn_t *c, const char *data, size_t len, pt_buf_t *pin);
/* Writes head (in head_pin) and body (in body_pin) as one write. */
int pt_conn_write2(pt_conn_t *c, uv_buf_t head, pt_buf_t *head_pin, uv_buf_t body,
                   pt_buf_t *body_pin, const char *suffix);
/* True while the write queue is over the high watermark: the producer should pause. A client
 * that stays that congested for idleTimeout (it reads nothing) has its connection closed. */
bool pt_conn_is_write_congested(pt_conn_t *c);

/* Reading stops while any PT_CONN_PAUSE_* reason is set (PIPELINE: only once the read slab is
 * nearly full) and restarts when none is left. */
void pt_conn_pause_reading(pt_conn_t *c, unsigned reason);
void pt_conn_resume_reading(pt_conn_t *c, unsigned reason);

/* Sets what the reading state should be after the codec changed c->pause or consumed bytes. */
void pt_conn_update_reading(pt_conn_t *c);
/* The codec made room in the read slab: plaintext the TLS engine still holds is decrypted into
 * it and parsed. */
void pt_conn_pump_tls(pt_conn_t *c);
/* Starts the connection's timer for mode (HEADER: headerTimeout, IDLE: idleTimeout, from the
 * worker's config), replacing the one running; NONE stops it. */
void pt_conn_set_timer(pt_conn_t *c, pt_conn_timer_mode_t mode);
/* Closes at once (RST-free: writes already queued are flushed by a shutdown when graceful). */
void pt_conn_close(pt_conn_t *c, bool graceful);
/* After an accepted upgrade: hands the socket, with the unread bytes, and the upstream's to a
 * relay (returned). */
pt_relay_t *pt_conn_hand_off_to_tunnel(pt_conn_t *c, pt_upstream_t *up);
/* Hands the socket, with the bytes read and not parsed, to a relay with peer through the L4
 * filters given (capture.c's TCP passthrough). peer_closed(peer_owner) runs when the relay has
 * closed peer. */
pt_relay_t *pt_conn_hand_off(pt_conn_t *c, uv_tcp_t *peer, void (*peer_closed)(void *),
                             void *peer_owner, const pt_l4_filter_t *filters, size_t n_filters);
/* Stops serving HTTP on c (TLS terminated for a tcp[] route, l4_proxy.c): no more reading,
 * parsing or timers; the socket and the TLS engine wait for pt_conn_relay_end() or
 * pt_conn_close_detached(). */
void pt_conn_detach(pt_conn_t *c);
void pt_conn_close_detached(pt_conn_t *c);
/* c's side of a relay (detached first): its socket, TLS engine and unparsed plaintext; the
 * relay's close frees c. */
pt_relay_end_t pt_conn_relay_end(pt_conn_t *c);
/* Capture timer: detection, then the relay's connect (capture.c); 0 stops it. */
void pt_conn_start_capture_timer(pt_conn_t *c, uint64_t ms);
/* A handle someone else added to c->handles_open is closed: frees c after the last one. */
void pt_conn_release_handle(pt_conn_t *c);
/* Sets up the worker's connection timer and deadline lists (worker start). */
void pt_conn_init_timers(pt_worker_t *w);
/* Worker drain: idle connections close now, busy ones after their response. */
void pt_conn_drain(pt_conn_t *c);

#endif
