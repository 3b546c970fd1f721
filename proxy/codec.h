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

#endif
