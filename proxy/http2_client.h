/* proxy/http2_client.h
 * The HTTP/2 client codec on nghttp2: the client side of proxy/codec.h for one upstream
 * connection that carries many exchanges at once, each an HTTP/2 stream. It translates the
 * codec-neutral request into HEADERS (:method, :scheme, :authority from Host, :path; the
 * connection-specific headers dropped, `te: trailers` kept), body pieces into DATA and the
 * trailers into a last HEADERS frame, and delivers response heads, DATA, trailers (gRPC's
 * grpc-status among them, trailers-only responses as a head that ends the stream) and the end
 * to each exchange's owner through its pt_codec_stream_cbs_t.
 *
 * Flow control per exchange: received DATA is acknowledged (WINDOW_UPDATE) only once its
 * owner has it and is not paused, so a slow client holds back its own stream and no other.
 *
 * The connection (upstream.c) owns the codec: it writes what nghttp2 produces through
 * pt__upstream_write and feeds it what it reads. A GOAWAY stops new streams on the
 * connection; its streams above the last stream id end with PT_CODEC_RESET_REFUSED (retried
 * as refused-stream), the others finish. */
#ifndef PT_HTTP2_CLIENT_H
#define PT_HTTP2_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "codec.h"

typedef struct pt_http2_client pt_http2_client_t;
struct pt_upstream;

/* Streams a connection assumes allowed until the upstream's SETTINGS say, when no other
 * connection to it has heard them yet (RFC 9113 recommends no fewer). */
#define PT_HTTP2_ASSUMED_MAX_STREAMS 100

pt_http2_client_t *pt_http2_client_new(struct pt_upstream *up);
/* upstreamHttp2Keepalive (the Proxy's, when the connection was made): a PING every interval
 * once connected, idle or busy; when nothing arrives within timeout of one, the connection is
 * closed, its streams end (refused when their HEADERS never left, reset otherwise) and it
 * leaves the pool. init_keepalive makes the one timer this takes, on loop, and returns whether
 * it did (the caller counts it among the connection's handles); close_keepalive closes it
 * with cb, whose handle's data is the upstream. Without keepalive neither does anything. */
bool pt_http2_client_init_keepalive(pt_http2_client_t *c, uv_loop_t *loop);
void pt_http2_client_close_keepalive(pt_http2_client_t *c, uv_close_cb cb);
/* Frees the session and whatever exchanges are left (their owners have let go). */
void pt_http2_client_free(pt_http2_client_t *c);
/* A new exchange for owner on the connection (has_room must be true). */
pt_exchange_t *pt_http2_client_open(pt_http2_client_t *c, const pt_codec_stream_cbs_t *cbs,
                                    void *owner);
/* Exchanges whose owner has not let go. */
uint32_t pt_http2_client_n_owned(const pt_http2_client_t *c);
/* The connection can take one more stream: no GOAWAY and below the upstream's
 * SETTINGS_MAX_CONCURRENT_STREAMS. */
bool pt_http2_client_has_room(const pt_http2_client_t *c);
/* No GOAWAY and no protocol error: the connection may wait in the pool. */
bool pt_http2_client_is_reusable(const pt_http2_client_t *c);
/* The connection is up: the preface and SETTINGS go out, each waiting exchange gets on_ready. */
void pt_http2_client_on_connected(pt_http2_client_t *c);
/* Feeds what the connection read (up->in) to the session and sends what it has to say. */
void pt_http2_client_on_bytes(pt_http2_client_t *c);
/* A write failed: no new stream goes here. The owners hear of it from the read side, after
 * what the upstream sent before (a GOAWAY that refuses their streams) is read. */
void pt_http2_client_on_write_error(pt_http2_client_t *c);
/* The write side drained: every owner hears it. */
void pt_http2_client_on_drained(pt_http2_client_t *c);
/* The connection is lost: every owner hears why, and the exchanges are let go. */
void pt_http2_client_fail_all(pt_http2_client_t *c, pt_codec_reset_t why);

#endif
