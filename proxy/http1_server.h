/* proxy/http1_server.h
 * The HTTP/1 server codec: the server side of proxy/codec.h on one downstream connection. It
 * owns the request parser (proxy/http1.h) and writes responses in HTTP/1.1 framing: the status
 * line with the upstream's reason phrase or the standard one, end-to-end headers, then
 * Content-Length, chunked (trailers kept) or close-delimited as the response and the client's
 * version allow; no body for HEAD, 204, 304 and 101; the upgrade hand-shake; the interim
 * "100 Continue". The head is held until the first body bytes or the end, so that both go out
 * in one write.
 *
 * Lifetime: HTTP/1 runs one exchange at a time, so a connection takes one codec from a
 * per-worker cache when a request begins and gives it back once idle: an idle keep-alive
 * connection holds none. */
#ifndef PT_HTTP1_SERVER_H
#define PT_HTTP1_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "http1.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_worker pt_worker_t;

typedef struct pt_http1_server {
    pt_http1_parser_t parser;            /* requests */
    struct pt_http1_server *next_cached; /* in the worker's cache */
    /* the response being written */
    pt_buf_t *head; /* serialized head not written yet */
    size_t head_len;
    bool is_head_written;    /* some byte of the response reached the socket's queue */
    bool is_chunked;         /* framing: chunked */
    bool is_close_delimited; /* framing: ends with the connection */
    bool is_no_body;         /* HEAD / 204 / 304 / 101 */
    bool is_body_started;    /* the client sent request body bytes (no 100 Continue then) */
    bool sent_continue;
} pt_http1_server_t;

/* Takes a codec for c from the worker's cache (its parser delivers to cbs with c as data). */
pt_http1_server_t *pt_http1_server_take(pt_conn_t *c, const pt_http1_callbacks_t *cbs);
/* Gives it back (a held response head is dropped). */
void pt_http1_server_drop(pt_worker_t *w, pt_http1_server_t *s);
/* A new exchange begins: its request head goes into arena. */
void pt_http1_server_begin(pt_http1_server_t *s, pt_arena_t *arena);
/* Frees the worker's cache once its loop has ended. */
void pt_http1_server_free_cache(pt_worker_t *w);

/* The response head for req (NULL: a request that could not be parsed) on connection c. May
 * set c->close_after_response (close-delimited framing, drain, a refused upgrade), and then
 * says so in the head. Held until the first body bytes or the end. */
void pt_http1_server_send_head(pt_http1_server_t *s, pt_conn_t *c, const pt_http_msg_t *req,
                               const pt_http_msg_t *resp);
/* A body piece; false when the response has no body (nothing written). */
bool pt_http1_server_send_data(pt_http1_server_t *s, pt_conn_t *c, const char *data, size_t len,
                               pt_buf_t *pin);
/* The end: the head if still held, the last chunk with the trailers when chunked. */
void pt_http1_server_send_end(pt_http1_server_t *s, pt_conn_t *c, const pt_header_t *trailers,
                              size_t n);
/* "100 Continue" for a request that asked for it, once, and only before its body started. */
void pt_http1_server_send_continue(pt_http1_server_t *s, pt_conn_t *c, const pt_http_msg_t *req);
/* Drops a head not written yet, so that another answer can replace it; false when some of
 * the response already went. */
bool pt_http1_server_cancel_head(pt_http1_server_t *s);

/* The standard reason phrase for status ("Unknown" if none). */
const char *pt_http1_reason_phrase(int status);

#endif
