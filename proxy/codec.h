/* proxy/codec.h
 * The codec interface: what a protocol codec (HTTP/1 today, HTTP/2 later) tells the stream
 * above it, and what the stream asks of it. A codec turns bytes into codec-neutral messages
 * (pt_http_msg_t, http_msg.h), body pieces, trailers and an end, and writes the same back in
 * its own framing; the stream never learns which protocol carries it.
 *
 * The events are the same for both sides: a server codec delivers requests from a downstream
 * connection, a client codec responses from an upstream one. Each event names the exchange by
 * the ctx pointer its owner registered, so one connection may carry many exchanges at once
 * (HTTP/2) or one after another (HTTP/1).
 *
 * Backpressure is per exchange: pause stops delivery (HTTP/1 stops reading the socket; HTTP/2
 * withholds window updates), resume restarts it, and on_drained says the write side fell under
 * its low watermark after being congested. */
#ifndef PT_CODEC_H
#define PT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "http_msg.h"

typedef struct pt_worker pt_worker_t;
typedef struct pt_capture pt_capture_t;
typedef struct pt_upstream pt_upstream_t;
typedef struct pt_relay pt_relay_t;

/* Why an exchange ended before its message did. */
typedef enum pt_codec_reset {
    PT_CODEC_RESET_CONNECT_FAILURE = 1, /* the connection (or its TLS handshake) never came up */
    PT_CODEC_RESET_CLOSED,              /* the peer closed or reset the exchange mid-way */
    PT_CODEC_RESET_PROTOCOL_ERROR,      /* the peer broke the protocol (an invalid message) */
    PT_CODEC_RESET_REFUSED, /* the peer refused the stream unprocessed (HTTP/2 REFUSED_STREAM, or
                               above a GOAWAY's last stream id): safe to retry */
} pt_codec_reset_t;

/* on_head results besides 0 (go on). */
#define PT_CODEC_SKIP_BODY 1 /* the message has no body whatever its head says (reply to HEAD) */
#define PT_CODEC_STOP -1     /* the stream let go of the exchange: deliver nothing more */

/* Events a codec delivers to the owner of one exchange (ctx). Each runs on the loop of the
 * connection; none may free the connection under the codec (a release is acted on after the
 * codec returns). */
typedef struct pt_codec_stream_cbs {
    /* client side: the connection can carry the request now; is_reused when it carried one
     * before (a failure then may be a race with the peer's idle close). */
    void (*on_ready)(void *ctx, bool is_reused);
    /* The message head, built in the arena the exchange was given. Returns 0,
     * PT_CODEC_SKIP_BODY or PT_CODEC_STOP. Interim (1xx other than 101) heads come too. */
    int (*on_head)(void *ctx, pt_http_msg_t *head);
    /* A body piece; pin is the slab data points into (take a ref to keep it). */
    void (*on_data)(void *ctx, const char *data, size_t len, pt_buf_t *pin);
    /* Trailers, before on_end; they live in the exchange's arena. */
    void (*on_trailers)(void *ctx, pt_header_t *t, size_t n);
    /* The message is complete. The client side's owner must release the exchange here. */
    void (*on_end)(void *ctx);
    /* The exchange ended early; the codec has already let go of it. */
    void (*on_reset)(void *ctx, pt_codec_reset_t why, bool was_reused);
    /* The write side fell under its low watermark. */
    void (*on_drained)(void *ctx);
} pt_codec_stream_cbs_t;

/* --- the server side: what a stream reads of its downstream connection and asks of it --- */

/* The facts of the downstream connection an exchange arrived on, filled by the server codec
 * from its connection, the same for every exchange on it and valid while any of them runs. */
typedef struct pt_conn_info {
    pt_worker_t *worker;    /* the loop the connection and its exchanges run on */
    const uv_tcp_t *tcp;    /* the socket, for the peer and local addresses (authorization) */
    char peer_ip[48];       /* the client's address, for x-forwarded-for, hashing and logs */
    uint16_t listener_port; /* the listener it was accepted on */
    /* The verified TLS peer certificate's SPIFFE ID without "spiffe://" (Istio's principal,
     * "cluster.local/ns/a/sa/b"), in memory the connection owns; NULL without one. */
    const char *peer_principal;
    const pt_capture_t *capture; /* sidecar capture (direction, original destination), or NULL */
    const char *chaos_proxy;     /* an HTTP chaos proxy's connection: its name; else NULL */
    bool is_tls;                 /* TLS terminated here: x-forwarded-proto is https */
} pt_conn_info_t;

/* What a stream asks of the server codec that carries it; exchange is the codec's handle for
 * the one exchange (pt_stream_t.exchange). Every call runs on the connection's loop. A call
 * that ends the exchange (reset, or a write failure) aborts the stream before it returns. */
typedef struct pt_server_codec_ops {
    /* The response head for req (NULL: a request that could not be parsed). Held until the
     * first body bytes or the end, so that both go out together. */
    void (*send_head)(void *exchange, const pt_http_msg_t *req, const pt_http_msg_t *resp);
    /* A body piece (pin: the slab data points into; the codec takes its own ref). False when
     * the response has no body (a reply to HEAD, 204, 304): nothing was written. */
    bool (*send_data)(void *exchange, const char *data, size_t len, pt_buf_t *pin);
    /* The end of the response, with its trailers (n may be 0). */
    void (*send_end)(void *exchange, const pt_header_t *trailers, size_t n);
    /* The interim 100 Continue, when req asked for it and its body has not started. */
    void (*send_continue)(void *exchange, const pt_http_msg_t *req);
    /* Drops a response head not written yet (another answer replaces it); false when some
     * of the response already went. */
    bool (*cancel_head)(void *exchange);
    /* Some byte of the response went to the client: a failure now can only reset. */
    bool (*is_response_started)(const void *exchange);
    /* The client reads slower than the response comes: the producer should pause until the
     * stream's pt_stream_on_downstream_drained(). */
    bool (*is_write_congested)(void *exchange);
    /* Stop / restart delivering this exchange's request body (HTTP/1 stops reading). */
    void (*pause)(void *exchange);
    void (*resume)(void *exchange);
    /* The connection ends after this exchange (its listener went away in a reload). */
    void (*close_after)(void *exchange);
    /* The stream finished: the codec lets go of it (the rest of a request body the answer
     * did not need is read and dropped, or the connection closes). */
    void (*done)(void *exchange);
    /* The exchange cannot end well (a response cut mid-way): the client must see it fail. */
    void (*reset)(void *exchange);
    /* HTTP/1 only (NULL otherwise): after a 101, the socket with its unread bytes and the
     * upstream's become a relay, which is returned. */
    pt_relay_t *(*hand_off_to_tunnel)(void *exchange, pt_upstream_t *up);
} pt_server_codec_ops_t;

/* --- the client side: one exchange (request out, response in) on a pooled connection --- */

typedef struct pt_exchange pt_exchange_t;
struct pt_upstream;

/* What the owner of an exchange asks of the client codec that carries it. The sends return 0
 * or a libuv error. release ends the exchange: the owner hears nothing more of it, and the
 * codec decides what becomes of the connection (reusable: the owner saw the whole exchange). */
typedef struct pt_client_codec_ops {
    int (*send_head)(pt_exchange_t *x, const pt_http_msg_t *req, pt_arena_t *arena);
    int (*send_data)(pt_exchange_t *x, const char *data, size_t len, pt_buf_t *pin);
    int (*send_end)(pt_exchange_t *x, const pt_header_t *trailers, size_t n);
    bool (*is_write_congested)(pt_exchange_t *x);
    void (*pause)(pt_exchange_t *x);
    void (*resume)(pt_exchange_t *x);
    void (*release)(pt_exchange_t *x, bool reusable);
} pt_client_codec_ops_t;

/* An exchange as its owner holds it. HTTP/1 has one per connection (inside it); HTTP/2 one
 * per stream, several on one connection. */
struct pt_exchange {
    const pt_client_codec_ops_t *ops;
    struct pt_upstream *up;           /* the connection carrying it */
    void *owner;                      /* the cbs' ctx; NULL once released */
    const pt_codec_stream_cbs_t *cbs; /* the owner's events */
    bool is_reused;                   /* the connection carried a request before this one */
};

static inline int pt_exchange_send_head(pt_exchange_t *x, const pt_http_msg_t *req,
                                        pt_arena_t *arena)
{
    return x->ops->send_head(x, req, arena);
}

static inline int pt_exchange_send_data(pt_exchange_t *x, const char *data, size_t len,
                                        pt_buf_t *pin)
{
    return x->ops->send_data(x, data, len, pin);
}

static inline int pt_exchange_send_end(pt_exchange_t *x, const pt_header_t *trailers, size_t n)
{
    return x->ops->send_end(x, trailers, n);
}

static inline bool pt_exchange_is_write_congested(pt_exchange_t *x)
{
    return x->ops->is_write_congested(x);
}

static inline void pt_exchange_pause(pt_exchange_t *x)
{
    x->ops->pause(x);
}

static inline void pt_exchange_resume(pt_exchange_t *x)
{
    x->ops->resume(x);
}

static inline void pt_exchange_release(pt_exchange_t *x, bool reusable)
{
    x->ops->release(x, reusable);
}

#endif
