/* proxy/http1_client.h
 * The HTTP/1 client codec: the client side of proxy/codec.h on one upstream connection. It
 * frames requests (the request line, Host, the message's end-to-end headers, Content-Length
 * or chunked, the upgrade request; body pieces as chunks when the length is unknown; the last
 * chunk with the trailers) and parses responses (proxy/http1.h), handing heads, body pieces,
 * trailers and the end to the exchange's owner through its pt_codec_stream_cbs_t. HTTP/1
 * carries one exchange at a time, so the codec lives inside its connection (upstream.c owns
 * it) and writes through it.
 *
 * The request writer is also what the mirror's copies go out with
 * (pt_http1_client_serialize_head): Petrel has one HTTP/1 request writer. */
#ifndef PT_HTTP1_CLIENT_H
#define PT_HTTP1_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"
#include "http1.h"

typedef struct pt_upstream pt_upstream_t;

typedef struct pt_http1_client {
    pt_http1_parser_t parser; /* responses */
    bool is_request_chunked;  /* the current request's body goes as chunks */
    bool is_response_done;    /* the parser completed the current response */
    bool is_keep_alive;       /* the current response allows another request */
    int last_status;          /* status of the last response head */
    int64_t keep_alive_s;     /* the last response's `Keep-Alive: timeout=`; -1: none */
} pt_http1_client_t;

/* Sets up the codec of connection up, and its one exchange (up->x) with the codec's ops. */
void pt_http1_client_init(pt_http1_client_t *c, pt_upstream_t *up);
/* The request head in HTTP/1.1 framing, with req->authority as its Host: a new slab (the
 * caller's ref), its length in *len. */
pt_buf_t *pt_http1_client_serialize_head(const pt_http_msg_t *req, size_t *len);
/* Parses what the connection read (up->in) and delivers it to the exchange. */
void pt_http1_client_on_bytes(pt_http1_client_t *c);
/* The upstream closed its side: completes a close-delimited response or resets the exchange. */
void pt_http1_client_on_eof(pt_http1_client_t *c);

#endif
