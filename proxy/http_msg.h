/* proxy/http_msg.h
 * The codec-neutral HTTP message: what a request or response head means, whichever protocol
 * carried it. A server codec hands the stream one for each request and a client codec one for
 * each response; everything above the codecs (stream, router, authz, load balancer, mirror,
 * access log) reads this type and never a codec's own.
 *
 * Framing is not part of it: whether a body is chunked, how a connection is kept alive, the
 * request-target as written are each codec's business. The message says only how long the
 * body is when that is declared (content_length) and whether one follows (has_body).
 *
 * Ownership: the message, its strings and its header array live in the arena of the stream it
 * belongs to (the codec builds them there), NUL-terminated for the caller's convenience. */
#ifndef PT_HTTP_MSG_H
#define PT_HTTP_MSG_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../config/arena.h"
#include "str.h"

/* Header flags set by the codec that parsed the header. */
#define PT_HEADER_HOP 0x1 /* hop-by-hop, or nominated by Connection: never forwarded */
#define PT_HEADER_FRAMING                                                                          \
    0x2 /* Content-Length / Transfer-Encoding: the codec that writes the message frames it */

typedef struct pt_header {
    pt_str_t name;  /* as received (case kept), in the arena */
    pt_str_t value; /* leading and trailing OWS removed, in the arena */
    unsigned flags; /* PT_HEADER_* */
} pt_header_t;

/* A field whose name and value are copied into a, in one allocation (the HTTP/2 codecs take
 * each field from nghttp2 by itself; pt_http_headers_copy copies a whole array). */
static inline pt_header_t pt_header_copy(pt_arena_t *a, const void *name, size_t name_len,
                                         const void *value, size_t value_len, unsigned flags)
{
    char *n = pt_arena_alloc(a, name_len + value_len + 2), *v = n + name_len + 1;
    memcpy(n, name, name_len);
    n[name_len] = '\0';
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    return (pt_header_t){{n, name_len}, {v, value_len}, flags};
}

/* HTTP versions as major * 10 + minor. */
#define PT_HTTP_10 10
#define PT_HTTP_11 11
#define PT_HTTP_20 20

typedef struct pt_http_msg {
    /* requests */
    pt_str_t method;    /* "GET", ... */
    int method_id;      /* llhttp_method_t (the method registry both codecs share) */
    pt_str_t scheme;    /* "http" / "https" when the request named one (absolute-form); empty:
                           the connection's */
    pt_str_t authority; /* effective authority: absolute-form's, else Host's value */
    pt_str_t path; /* origin-form to forward: "/p?q" (from absolute-form too); "*" for OPTIONS * */
    /* responses */
    int status;      /* 100..599 */
    pt_str_t reason; /* HTTP/1 reason phrase as received, may be empty (then the standard one) */
    /* both */
    uint8_t version;      /* PT_HTTP_10, PT_HTTP_11, PT_HTTP_20 */
    pt_header_t *headers; /* in order of arrival, in the arena */
    size_t n_headers;
    int64_t content_length; /* declared body length; -1 when not declared */
    bool has_body;          /* a body follows the head (as declared: a response to HEAD says
                               so too; the stream knows better) */
    bool is_upgrade;        /* request: asks for a protocol switch; response: 101 */
    pt_str_t upgrade;       /* the protocol asked for or granted, when is_upgrade */
    bool expects_continue;  /* request: Expect: 100-continue, which the proxy answers */
} pt_http_msg_t;

/* Finds the first header named name (case-insensitive) in m; NULL if none. */
const pt_header_t *pt_http_msg_find_header(const pt_http_msg_t *m, const char *name);

/* A deep copy of m (strings and headers) in a, for a message that outlives its stream. */
pt_http_msg_t *pt_http_msg_copy(pt_arena_t *a, const pt_http_msg_t *m);
/* Copies n fields into a, their strings in one allocation (a held head is copied on every
 * HTTP/2 response with a body, gRPC's every call, and its trailers with it). */
pt_header_t *pt_http_headers_copy(pt_arena_t *a, const pt_header_t *h, size_t n);

/* "HTTP/1.0", "HTTP/1.1" or "HTTP/2", as the access log and spans name the protocol. */
pt_str_t pt_http_msg_protocol(const pt_http_msg_t *m);

/* A request's body length is not known in advance: it is framed piece by piece (HTTP/1 chunked,
 * HTTP/2 DATA frames without a content-length). */
static inline bool pt_http_msg_is_body_unsized(const pt_http_msg_t *m)
{
    return m->has_body && m->content_length < 0;
}

/* v in decimal, copied into a: an HTTP/2 :status or content-length value (no printf, str.h). */
static inline pt_str_t pt_http_msg_decimal(pt_arena_t *a, int64_t v)
{
    char tmp[24];
    size_t n = pt_put_i64(tmp, v);
    return (pt_str_t){pt_arena_strndup(a, tmp, n), n};
}

/* Whether the field named name (lower case) carries a value new on every message: a request
 * id, a trace or span id. The HTTP/2 codecs send these without HPACK indexing: each
 * one indexed would push reusable entries out of the peer's table (4 KiB), and the next
 * requests would carry their other fields as literals again. */
bool pt_http_field_is_per_message(const char *name, size_t len);

#endif
