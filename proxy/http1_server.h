/* proxy/http1_server.h
 * The HTTP/1 server codec: the server side of proxy/codec.h on one downstream connection.
 * conn.c hands it the bytes it reads (pt_http1_server_conn_ops); it parses requests (the
 * parser in proxy/http1.h), one exchange at a time: each request gets a stream, and the
 * pipelined requests behind it wait in the read slab, unparsed, until its response is done
 * (RFC 9112 §9.3.2), so a client cannot queue unbounded work. It answers requests it cannot
 * parse, performs the upgrade hand-shake and "100 Continue", and writes responses in HTTP/1.1
 * framing: the status line with the upstream's reason phrase or the standard one, end-to-end
 * headers, then Content-Length, chunked (trailers kept) or close-delimited as the response and
 * the client's version allow; no body for HEAD, 204, 304 and 101. The head is held until the
 * first body bytes or the end, so that both go out in one write.
 *
 * A response that ends before its request body did (an upstream or a local reply that did not
 * wait for it) leaves the connection usable: the rest of the body is read and dropped, up to
 * PT_HTTP1_DISCARD_MAX_BYTES; a body longer than that, or chunked, gets "Connection: close"
 * in the response instead.
 *
 * Lifetime: a connection takes one codec from a per-worker cache when a request begins and
 * gives it back once idle, so an idle keep-alive connection holds none. */
#ifndef PT_HTTP1_SERVER_H
#define PT_HTTP1_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "codec.h"
#include "http1.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_conn_codec_ops pt_conn_codec_ops_t;
typedef struct pt_stream pt_stream_t;

/* The most of a request body read and dropped after its response to keep the connection. */
#define PT_HTTP1_DISCARD_MAX_BYTES (256 * 1024)

typedef struct pt_http1_server {
    pt_http1_parser_t parser;            /* requests */
    pt_conn_t *conn;                     /* the connection it serves */
    pt_stream_t *stream;                 /* the exchange in progress; NULL: none (or dropping
                                            the rest of a body its response did not need) */
    pt_conn_info_t info;                 /* what the streams read of the connection */
    struct pt_http1_server *next_cached; /* in the worker's cache */
    uint64_t body_bytes;                 /* request body bytes read so far */
    /* the response being written */
    pt_buf_t *head; /* serialized head not written yet */
    size_t head_len;
    bool is_parsing;         /* inside the parser: it must not be dropped */
    bool is_head_written;    /* some byte of the response reached the socket's queue */
    bool is_chunked;         /* framing: chunked */
    bool is_close_delimited; /* framing: ends with the connection */
    bool is_no_body;         /* HEAD / 204 / 304 / 101 */
    bool is_body_started;    /* the client sent request body bytes (no 100 Continue then) */
    bool sent_continue;
    bool is_discarding; /* the response is done; the rest of its request's body is dropped */
} pt_http1_server_t;

/* How conn.c drives the codec (conn.h). */
extern const pt_conn_codec_ops_t pt_http1_server_conn_ops;
/* What a stream asks of it (codec.h). */
extern const pt_server_codec_ops_t pt_http1_server_ops;

/* Frees the worker's cache once its loop has ended. */
void pt_http1_server_free_cache(pt_worker_t *w);

/* The standard reason phrase for status ("Unknown" if none). */
const char *pt_http1_reason_phrase(int status);

#endif
