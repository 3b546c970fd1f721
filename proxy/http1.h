/* proxy/http1.h
 * The HTTP/1.x codec: llhttp (built in strict mode, no lenient flags) plus Petrel's own validator
 * on top. It turns bytes into a validated message head (the codec-neutral pt_http_msg_t, with
 * the HTTP/1 framing beside it in the parser), de-chunked body pieces, trailers and a
 * completion event, for requests (downstream) and responses (upstream). It knows nothing of
 * routing or sockets: callers feed it bytes and act on the callbacks.
 *
 * Ownership: the head and every header slice are copied into the arena set with
 * pt_http1_parser_set_arena(), so they outlive the read buffer. Body pieces passed to on_body
 * point into the caller's buffer and are valid only during the callback (callers that keep
 * them take a ref on their buffer).
 *
 * The parser pauses after each complete message: execute returns PT_HTTP1_PAUSED with the
 * number of bytes consumed, and the caller feeds the rest after pt_http1_parser_resume(). This is
 * how pipelined requests are answered one at a time, in order. */
#ifndef PT_HTTP1_H
#define PT_HTTP1_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>

#include <string.h>
#include <uv.h>

#include "../config/arena.h"
#include "buf.h"
#include "http_msg.h"
#include "str.h"

/* The HTTP/1 framing of the current message, beside its codec-neutral head: valid from on_head
 * until the next message begins. */
typedef struct pt_http1_framing {
    pt_str_t target;         /* request-target as received (arena) */
    bool is_chunked;         /* Transfer-Encoding: chunked */
    bool is_keep_alive;      /* the connection may carry another message after this one */
    bool is_close_delimited; /* response: body ends at EOF (no Content-Length, not chunked) */
} pt_http1_framing_t;

typedef struct pt_http1_limits {
    uint32_t max_request_line_bytes; /* request line over this: 414 (default 8 KiB) */
    uint32_t max_header_bytes;       /* start line + fields over this: 431 (default 60 KiB) */
    uint32_t max_headers;            /* more fields than this: 431 (default 100) */
} pt_http1_limits_t;

#define PT_HTTP1_LIMITS_DEFAULT ((pt_http1_limits_t){8192, 60 * 1024, 100})

typedef struct pt_http1_parser pt_http1_parser_t;

/* Every callback returns 0 to go on or a negative value to stop parsing with an error (execute
 * then returns PT_HTTP1_ECALLBACK and error_status is left 0). on_head may return
 * PT_HTTP1_SKIP_BODY for a response that has no body whatever its headers say (a reply to HEAD,
 * or a 304 the caller recognises). Callbacks must not call execute re-entrantly. */
typedef struct pt_http1_callbacks {
    int (*on_head)(pt_http1_parser_t *p, pt_http_msg_t *head);
    int (*on_body)(pt_http1_parser_t *p, const char *at, size_t len);
    int (*on_trailers)(pt_http1_parser_t *p, pt_header_t *trailers, size_t n); /* may be NULL */
    int (*on_complete)(pt_http1_parser_t *p);
} pt_http1_callbacks_t;

#define PT_HTTP1_SKIP_BODY 1

/* execute results */
#define PT_HTTP1_OK 0         /* all bytes consumed, message may be incomplete */
#define PT_HTTP1_PAUSED 1     /* a message completed; *consumed tells how far; call resume */
#define PT_HTTP1_EINVALID -1  /* peer sent something invalid: error_status, error_reason set */
#define PT_HTTP1_ECALLBACK -2 /* a callback returned an error */

struct pt_http1_parser {
    llhttp_t llhttp;
    const pt_http1_callbacks_t *cbs;
    void *data;        /* the owner's pointer, untouched by the parser */
    pt_arena_t *arena; /* where heads go; not owned */
    pt_http1_limits_t limits;
    bool is_response;
    bool is_upgraded;           /* a request or 101 response completed with an upgrade: the
                                   bytes after *consumed belong to the tunnel */
    int error_status;           /* after PT_HTTP1_EINVALID: 400, 414, 431, 501, 505 (requests),
                                   502 (responses) */
    const char *error_reason;   /* static string naming the rule broken, for logs */
    pt_http1_framing_t framing; /* the current message's (read only for callers) */
    /* private to http1.c */
    pt_http_msg_t head;
    uint32_t head_bytes; /* bytes of start line + fields seen for the current message */
    uint32_t line_bytes; /* bytes of the request line so far */
    int in_trailers;
    size_t headers_cap;
    char *cur; /* field or value being accumulated (arena) */
    size_t cur_len, cur_cap;
    int cur_kind;  /* what cur holds */
    int msg_state; /* private */
    /* private to http1.c (added with the codec): what the head pre-scan carries between reads */
    unsigned char scan_state; /* before the start line, in it, in the field lines */
    unsigned char scan_prev;  /* the last head byte scanned */
    pt_http_msg_t *held_head; /* a chunked request's head, until its buffered body is checked */
};

/* Sets up a parser for requests (is_response false) or responses. cbs must outlive it. */
void pt_http1_parser_init(pt_http1_parser_t *p, bool is_response, const pt_http1_callbacks_t *cbs,
                          void *data, const pt_http1_limits_t *limits);
/* Sets the arena the next message's head is built in; call before feeding each new message
 * (for a request, the new stream's arena). */
void pt_http1_parser_set_arena(pt_http1_parser_t *p, pt_arena_t *arena);
/* Feeds len bytes. See the PT_HTTP1_* results. *consumed is always set. */
int pt_http1_parser_execute(pt_http1_parser_t *p, const char *data, size_t len, size_t *consumed);
/* Continues after PT_HTTP1_PAUSED (not after an upgrade: the rest is tunnel data). */
void pt_http1_parser_resume(pt_http1_parser_t *p);
/* The peer closed its side. Completes a close-delimited response (on_complete runs) and returns
 * PT_HTTP1_OK; returns PT_HTTP1_OK with nothing done between messages; PT_HTTP1_EINVALID when a
 * message was cut short (error_reason says so). */
int pt_http1_parser_finish(pt_http1_parser_t *p);
/* True between the first byte of a message and its completion. */
bool pt_http1_parser_in_message(const pt_http1_parser_t *p);
/* True between messages when not even an empty line before the next one was seen: the parser
 * can be dropped and a fresh one set up for the next bytes without losing anything. */
bool pt_http1_parser_holds_nothing(const pt_http1_parser_t *p);

/* --- writing HTTP/1 (the server and client codecs share these) --- */

/* Appends the field line "name: value\r\n" at p; returns the end. */
static inline char *pt_http1_put_field(char *p, pt_str_t name, pt_str_t value)
{
    memcpy(p, name.base, name.len);
    p += name.len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value.base, value.len);
    p += value.len;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Appends "content-length: N\r\n" at p; returns the end. */
static inline char *pt_http1_put_content_length(char *p, int64_t n)
{
    memcpy(p, "content-length: ", 16);
    p += 16;
    p += pt_put_i64(p, n);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* The end of a chunked body: the last chunk, the trailers (hop-by-hop and framing ones left
 * out) and the blank line, in a new slab (the caller's ref) that *out spans. */
pt_buf_t *pt_http1_last_chunk(const pt_header_t *t, size_t n, uv_buf_t *out);

#endif
