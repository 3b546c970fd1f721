/* proxy/upstream.h
 * Upstream connections and the per-worker keep-alive pools they live in between exchanges.
 * A pool is keyed by the endpoint's address and TLS settings (as text), not by a config
 * object, so pooled connections outlive config snapshots; a plaintext and a TLS connection, or
 * two with different SNIs or certificates, never share one. An idle pooled connection keeps
 * reading (into no buffer of its own) so that an upstream close is noticed and the socket
 * dropped at once.
 *
 * Each connection owns one client codec (proxy/codec.h; HTTP/1: http1_client.c), which frames
 * requests, parses responses and delivers them to the exchange's owner through the callbacks
 * that owner gave pt_upstream_acquire(). The API hands out an exchange (codec.h), not a
 * connection: acquire starts one, its ops send the request, and its release ends it. An
 * HTTP/1 connection carries one exchange at a time (up->x); a multiplexing codec hands out
 * one per stream on a shared connection.
 *
 * Lifetime: a pt_upstream_t is freed in the close callback of its last handle. While an
 * exchange runs, up->x.owner is its owner's ctx; the exchange's release gives it back. */
#ifndef PT_UPSTREAM_H
#define PT_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../config/config.h"
#include "buf.h"
#include "codec.h"
#include "http1_client.h"
#include "list.h"
#include "worker.h"

typedef struct pt_upstream pt_upstream_t;

struct pt_pool {
    pt_pool_t *next; /* bucket chain */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    pt_list_t idle; /* pt_upstream_t.link, most recently used first */
    uint32_t n_idle;
    pt_list_t shared;        /* HTTP/2 connections carrying streams (pt_upstream_t.link): new
                                streams join one with room before a connection is opened */
    bool is_http2;           /* part of the key: what its connections speak */
    uint32_t h2_max_streams; /* the upstream's last SETTINGS_MAX_CONCURRENT_STREAMS: what a
                                new connection assumes until its own SETTINGS come; 0: none
                                seen (PT_HTTP2_ASSUMED_MAX_STREAMS) */
    uint64_t h2_refused_ms;  /* mesh mTLS: when a peer last chose no HTTP/2 by ALPN (uv_now;
                                0: never); for PT_H2_REFUSAL_MS its requests go as HTTP/1.1 */
    uint32_t n_busy;         /* connections serving a stream now */
    uint32_t peak_busy;      /* most connections busy at once in this purge period */
    uint32_t est_need;       /* recent demand: the peak, halving each quieter period but never
                                below 1 once used (HAProxy's estimate of needed connections) */
    /* The TLS settings' pool_key (malloc'd); NULL: plaintext. */
    char *tls_key;
};

struct pt_upstream {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timer;   /* connect timeout, then idle timeout while pooled */
    uv_check_t flusher; /* HTTP/2 only: sends what the streams queued, once per loop turn */
    pt_worker_t *worker;
    pt_pool_t *pool;
    pt_list_t link;             /* in pool->idle while idle; HTTP/2: in pool->shared while busy */
    pt_exchange_t x;            /* HTTP/1: the exchange it carries; x.owner NULL: idle, closing */
    pt_http1_client_t codec;    /* HTTP/1: frames requests, parses responses */
    struct pt_http2_client *h2; /* HTTP/2: the session and its exchanges; NULL: HTTP/1 */
    pt_rbuf_t in;               /* bytes read from the upstream (plaintext) */
    uint64_t requests;          /* requests sent on this connection */
    uint8_t handles_open;
    bool is_connected;
    bool is_busy; /* counted in pool->n_busy: a stream uses it */
    bool is_closing;
    bool is_read_paused;
    bool is_handed_off;          /* the socket belongs to a relay now */
    bool is_peer_eof;            /* the upstream closed its side */
    int connect_error;           /* a connect that failed at once, reported from the timer */
    pt_cluster_state_t *counted; /* holds a maxConnections slot of this cluster while in use;
                                    NULL: none (idle in the pool) */
    uint32_t max_requests;       /* maxRequestsPerConnection; 0: unlimited */
    uint64_t idle_timeout_ms;    /* how long it may wait in the pool */
    uint64_t expires_ms;         /* maxConnectionDuration's end (uv_now); 0: never */
    bool has_keepalive;          /* tcpKeepalive: set once connected, 0 = the system's value */
    uint32_t keepalive_time_s, keepalive_interval_s, keepalive_probes;
    /* TLS origination (proxy/tls_upstream.c); NULL: plaintext. */
    struct pt_tls_upstream *tls;
};

/* Starts an exchange with ep (an endpoint of cl) for the owner ctx, whose events go to cbs:
 * on a pooled connection that can take it now (then *is_ready is true and the caller goes on at
 * once) or on a new one (cbs->on_ready or on_reset follow later). Never NULL. fresh forces a
 * new connection. The request goes out and the exchange ends through its ops (codec.h). The
 * maxConnections slot the caller took is given back when the connection goes idle or is
 * freed. The cluster's connectionPool sets the connect and idle timeouts, keep-alive, the
 * request and age limits. */
pt_exchange_t *pt_upstream_acquire(pt_worker_t *w, const pt_cluster_t *cl, const pt_endpoint_t *ep,
                                   const pt_codec_stream_cbs_t *cbs, void *ctx, bool fresh,
                                   bool http2, bool *is_ready);
/* Whether a request to ep (an endpoint of cl) goes as HTTP/2: cl->protocol, or over mesh
 * mTLS cl->mesh_protocol (useClientProtocol follows the request's own version), unless that
 * peer recently chose no HTTP/2 by ALPN (its pool's h2_refused_ms). An upgrade request always
 * goes as HTTP/1.1. */
bool pt_upstream_is_http2(pt_worker_t *w, const pt_cluster_t *cl, const pt_endpoint_t *ep,
                          const pt_http_msg_t *req);
/* How long a mesh peer that chose no HTTP/2 gets HTTP/1.1 before HTTP/2 is offered again. */
#define PT_H2_REFUSAL_MS (60 * 1000)
/* After a 101: gives up the socket to a relay, with what was read past the response (the
 * slab passes to the caller). The relay calls pt_upstream_on_tunnel_closed() when it has
 * closed the socket. */
pt_rbuf_t pt_upstream_take_unread(pt_upstream_t *up);
void pt_upstream_on_tunnel_closed(void *up);
/* Every PT_POOL_PURGE_MS while some connection is idle: each pool keeps as many idle
 * connections as its recent demand (est_need) could use and closes the rest, so a burst's
 * connections go within seconds instead of lingering for the whole idle timeout, while a
 * pool with sporadic traffic keeps one warm connection until upstreamIdleTimeout. */
#define PT_POOL_PURGE_MS 1000
uint32_t pt_upstream_purge_idle(pt_worker_t *w); /* returns the idle connections left */
/* Closes every idle connection of the worker (drain). */
void pt_upstream_close_idle(pt_worker_t *w);
/* Frees the worker's pools once its loop has ended. */
void pt_upstream_free_pools(pt_worker_t *w);

/* For the connection's codec (http1_client.c): raw bytes out (TLS-encrypted when the
 * connection is), a close, a close that resets the exchange, reading paused or not, and the
 * connection's exchange over (it is pooled when reusable; keep_alive_s: the upstream's
 * announced idle timeout, -1 for none). */
int pt__upstream_write(pt_upstream_t *up, const char *prefix, size_t prefix_len,
                       const uv_buf_t *bufs, unsigned n, const char *suffix, pt_buf_t *pin);
void pt__upstream_close(pt_upstream_t *up);
void pt__upstream_fail(pt_upstream_t *up, pt_codec_reset_t why);
void pt__upstream_set_read_paused(pt_upstream_t *up, bool paused);
bool pt__upstream_is_write_congested(pt_upstream_t *up);
void pt__upstream_release(pt_upstream_t *up, bool reusable, int64_t keep_alive_s);
/* For the HTTP/2 codec: its exchanges or its room changed (a stream ended or was let go, a
 * GOAWAY came): the connection joins, leaves or goes back to the pool accordingly. */
void pt__upstream_h2_changed(pt_upstream_t *up);
/* For tls_upstream.c: the mesh peer of HTTP/2 connection up chose no HTTP/2 by ALPN. Its
 * pool remembers it and the connection fails its streams as refused (nothing was sent), which
 * the retry policy's refused-stream sends again, as HTTP/1.1. */
void pt__upstream_h2_refused(pt_upstream_t *up);
/* Someone wants the bytes the connection reads: an HTTP/1 exchange, or any HTTP/2 session
 * (it answers PINGs and SETTINGS while idle). */
static inline bool pt__upstream_wants_bytes(const pt_upstream_t *up)
{
    return up->h2 != NULL || up->x.owner != NULL;
}

#endif
