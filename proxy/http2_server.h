/* proxy/http2_server.h
 * The HTTP/2 server codec: the server side of proxy/codec.h on one downstream connection, on
 * nghttp2 (HPACK, flow control, stream states and the protocol's checks: pseudo-headers,
 * connection-specific headers, content-length against DATA, each refused with RST_STREAM
 * PROTOCOL_ERROR). conn.c hands it the bytes it reads (pt_http2_server_conn_ops) once the
 * client's first bytes are the HTTP/2 preface (h2c with prior knowledge). Every request stream
 * becomes a pt_stream_t driven through the same ops as HTTP/1 (pt_http2_server_ops), so no
 * filter or policy knows which protocol carried it.
 *
 * Flow control: a request body's bytes are acknowledged (WINDOW_UPDATE) only while its stream
 * is not paused, so a slow upstream holds the client back per stream. A response's bytes wait
 * in a per-stream queue until nghttp2 sends them within the client's windows; the stream is
 * told it may produce more when that queue falls under the low watermark. Frames of every
 * stream ready at one time go out in one write.
 *
 * Limits, on by default: 100 concurrent streams, a header list of 60 KiB and 100 fields
 * (the Proxy's maxHeaderBytes / maxHeaders, as HTTP/1: 431 over them), nghttp2's rapid-reset
 * rate limit (GOAWAY ENHANCE_YOUR_CALM) and its cap on CONTINUATION frames.
 *
 * Lifetime: allocated when the preface is recognised, freed with the connection. */
#ifndef PT_HTTP2_SERVER_H
#define PT_HTTP2_SERVER_H

#include <stdbool.h>

#include "codec.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_worker pt_worker_t;
typedef struct pt_conn_codec_ops pt_conn_codec_ops_t;

/* The client connection preface (RFC 9113 §3.4). */
#define PT_HTTP2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PT_HTTP2_PREFACE_LEN 24

/* How conn.c drives the codec (conn.h); c->codec is NULL until the first bytes arrive. */
extern const pt_conn_codec_ops_t pt_http2_server_conn_ops;

/* Frees the worker's cache of request streams (after its loop has ended). */
void pt_http2_server_free_cache(pt_worker_t *w);

#endif
