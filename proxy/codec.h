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

#include "buf.h"
#include "http_msg.h"

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
