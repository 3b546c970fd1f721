/* proxy/http2_server.c
 * The HTTP/2 server codec (see http2_server.h): nghttp2's session on the connection's read slab
 * and writes, one exchange per request stream, each carrying a pt_stream_t. */
#include "http2_server.h"

#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "stream.h"
#include "worker.h"

/* nghttp2's defence against rapid reset (CVE-2023-44487): a burst of stream resets, then so
 * many a second; over it nghttp2 ends the session (GOAWAY INTERNAL_ERROR). The premature-reset
 * count below usually ends such a client first. */
#define RESET_BURST 1000
#define RESETS_PER_SECOND 33
#define MAX_CONTINUATIONS 8 /* CONTINUATION frames per header block (the flood defence) */
/* Premature resets (a stream the client reset before its response began), as Envoy counts
 * them: from this many on, when they are half the connection's streams or more, the client is
 * abusing the server's work and the connection ends with GOAWAY ENHANCE_YOUR_CALM. */
#define PREMATURE_RESETS_MIN 100
/* Frames that cost the server work and carry nothing (RFC 9113 §10.5), limited as Envoy limits
 * them by default; over a limit the connection ends with GOAWAY ENHANCE_YOUR_CALM. */
#define MAX_CONSECUTIVE_EMPTY_DATA 1  /* DATA frames with no payload nor END_STREAM in a row */
#define MAX_PRIORITY_PER_STREAM 100   /* PRIORITY frames: this many per stream opened, plus one */
#define MAX_WINDOW_UPDATE_PER_DATA 10 /* WINDOW_UPDATE: 5 + 2 × (streams + this × DATA sent) */
/* PING and SETTINGS acknowledgements nghttp2 holds unwritten (its default, named here): flush
 * leaves frames in nghttp2 while the client does not read, so a client that sends them faster
 * than it reads the answers reaches this limit and is sent GOAWAY ENHANCE_YOUR_CALM. */
#define MAX_OUTBOUND_ACKS 1000
#define MAX_SETTINGS_ENTRIES 32 /* per SETTINGS frame (nghttp2's default: over it, GOAWAY) */

typedef struct h2_server h2_server_t;

/* A piece of response body waiting for the client's flow-control windows. */
typedef struct h2_piece {
    struct h2_piece *next;
    const char *data;
    size_t len;
    pt_buf_t *pin; /* ref held until the piece is sent */
} h2_piece_t;

/* One request stream. Freed once both the pt_stream_t let go (done) and nghttp2 closed it. */
typedef struct h2_exchange {
    h2_server_t *server;
    struct h2_exchange *next; /* in server->exchanges */
    int32_t id;
    pt_stream_t *stream; /* NULL once done */
    pt_arena_t arena;    /* what outlives the stream: the held head, the trailers */
    /* the request */
    pt_http_msg_t *request;   /* being built, then delivered (in the stream's arena) */
    size_t headers_cap;       /* of request->headers */
    size_t header_bytes;      /* name + value bytes so far, against maxHeaderBytes */
    bool is_too_large;        /* over maxHeaderBytes / maxHeaders: answered 431 */
    bool is_request_started;  /* pt_stream_start ran */
    pt_header_t *trailers_in; /* the request's trailers (in the stream's arena) */
    size_t n_trailers_in, trailers_in_cap;
    bool is_head_received; /* the request's HEADERS ended: fields after it are trailers */
    bool is_head_end;      /* that HEADERS frame ended the stream (no body) */
    bool is_end_received;  /* END_STREAM came while the stream waited to start */
    bool is_pending;       /* in server->pending: starts once the read is parsed */
    struct h2_exchange *next_pending;
    h2_piece_t *early, **early_tail; /* body bytes that came before the start */
    bool is_paused;                  /* the stream paused its body: WINDOW_UPDATE withheld */
    size_t unconsumed;               /* body bytes received and not acknowledged while paused */
    /* the response */
    const pt_http_msg_t *response; /* a head held until the first body bytes or the end */
    bool is_no_body;               /* HEAD, 204, 304 */
    bool is_submitted;             /* the head went to nghttp2 */
    bool is_end;                   /* send_end ran */
    bool is_deferred;              /* the data source waits for more */
    h2_piece_t *queue, **tail;
    size_t queued;         /* bytes in queue */
    bool is_congested;     /* the stream was told to pause (queued over the high mark) */
    pt_header_t *trailers; /* in arena */
    size_t n_trailers;
    bool is_reset;  /* RST_STREAM sent */
    bool is_closed; /* nghttp2 closed the stream */
} h2_exchange_t;

struct h2_server {
    nghttp2_session *session;
    pt_conn_t *conn;
    pt_conn_info_t info;      /* what the streams read of the connection */
    h2_exchange_t *exchanges; /* open ones */
    unsigned n_exchanges;
    h2_exchange_t *receiving;    /* whose request head nghttp2 is handing over field by field */
    uint64_t n_streams;          /* request streams begun */
    uint64_t n_premature_resets; /* of those, reset by the client before their response */
    uint64_t n_empty_data;       /* DATA frames with nothing in them, in a row */
    uint64_t n_priority;         /* PRIORITY frames received */
    uint64_t n_window_updates;   /* WINDOW_UPDATE frames received */
    uint64_t n_data_sent;        /* DATA frames sent */
    h2_exchange_t *pending, **pending_tail; /* streams begun in the read being parsed */
    uv_check_t flusher;                     /* writes what the streams queued, once per loop turn */
    bool is_flush_pending;
    bool is_going_away; /* GOAWAY sent: the streams begun end, no new one starts */
    bool is_receiving;  /* inside nghttp2_session_mem_recv: flush after it */
};

static const pt_server_codec_ops_t exchange_ops;

static h2_server_t *server_of(const pt_conn_t *c)
{
    return c->codec;
}

/* --- writing: every frame nghttp2 has ready, of every stream, in one write --- */

/* A graceful GOAWAY (RFC 9113 §6.8): the streams begun are served, then the connection ends
 * (flush closes it once nghttp2 wants neither to read nor to write). */
static void go_away(h2_server_t *s)
{
    if (s->is_going_away)
        return;
    s->is_going_away = true;
    nghttp2_submit_goaway(s->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(s->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
}

/* Every frame nghttp2 has ready goes out in one write. */
static void write_frames(h2_server_t *s)
{
    pt_conn_t *c = s->conn;
    pt_buf_t *slab = NULL;
    size_t len = 0;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s->session, &data);
        if (n < 0) {
            pt_log_debug("downstream %s: HTTP/2: %s", c->peer_ip, nghttp2_strerror((int)n));
            break;
        }
        if (n == 0)
            break;
        if (slab == NULL || slab->cap - len < (size_t)n) {
            size_t cap = slab != NULL ? 2 * slab->cap : 16384; /* doubling: copies stay linear */
            if (cap < len + (size_t)n)
                cap = len + (size_t)n;
            pt_buf_t *bigger = pt_buf_new_sized(cap);
            if (slab != NULL) {
                memcpy(bigger->data, slab->data, len);
                pt_buf_unref(slab);
            }
            slab = bigger;
        }
        memcpy(slab->data + len, data, (size_t)n);
        len += (size_t)n;
    }
    if (slab != NULL) {
        uv_buf_t b = uv_buf_init(slab->data, (unsigned)len);
        pt_conn_write(c, NULL, 0, &b, 1, NULL, slab);
        pt_buf_unref(slab);
    }
}

static void flush(h2_server_t *s)
{
    pt_conn_t *c = s->conn;
    if (s->is_receiving || c->is_closing)
        return;
    if (c->close_after_response || c->worker->is_draining)
        go_away(s); /* a drain, or the listener went away in a reload */
    /* While the client reads nothing, what is ready stays in nghttp2 (on_drained flushes):
     * its limit on unwritten acknowledgements then stops a PING or SETTINGS flood. */
    if (!pt_conn_is_write_congested(c))
        write_frames(s);
    if (!c->is_closing && !nghttp2_session_want_read(s->session) &&
        !nghttp2_session_want_write(s->session))
        pt_conn_close(c, true); /* GOAWAY sent and every stream done */
}

/* Streams answered from upstream events write at the end of the loop turn, together. */
static void on_flusher(uv_check_t *h)
{
    h2_server_t *s = h->data;
    uv_check_stop(h);
    s->is_flush_pending = false;
    flush(s);
}

static void schedule_flush(h2_server_t *s)
{
    if (s->is_flush_pending || s->conn->is_closing)
        return;
    s->is_flush_pending = true;
    uv_check_start(&s->flusher, on_flusher);
}

/* --- exchanges --- */

static h2_exchange_t *exchange_of(h2_server_t *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s->session, id);
}

static void free_pieces(h2_piece_t *p)
{
    for (h2_piece_t *next; p != NULL; p = next) {
        next = p->next;
        pt_buf_unref(p->pin);
        free(p);
    }
}

static void free_queue(h2_exchange_t *x)
{
    free_pieces(x->queue);
    free_pieces(x->early);
    x->early = NULL;
    x->early_tail = &x->early;
    x->queue = NULL;
    x->tail = &x->queue;
    x->queued = 0;
}

/* Exchanges are kept per worker for reuse with their arena's chunk, which holds a response
 * head of common size (status, a dozen headers): a stream then costs no malloc here. */
#define EXCHANGE_CACHE_MAX 64
#define EXCHANGE_ARENA_BYTES 2048

void pt_http2_server_free_cache(pt_worker_t *w)
{
    while (w->cached_h2_exchanges != NULL) {
        h2_exchange_t *x = w->cached_h2_exchanges;
        w->cached_h2_exchanges = x->next;
        pt_arena_dispose(&x->arena);
        free(x);
    }
    w->n_cached_h2_exchanges = 0;
}

static void free_exchange_if_unused(h2_exchange_t *x)
{
    if (x->stream != NULL || !x->is_closed || x->is_pending)
        return;
    h2_server_t *s = x->server;
    if (s->receiving == x)
        s->receiving = NULL;
    for (h2_exchange_t **at = &s->exchanges; *at != NULL; at = &(*at)->next) {
        if (*at == x) {
            *at = x->next;
            break;
        }
    }
    s->n_exchanges--;
    free_queue(x);
    pt_worker_t *w = s->conn->worker;
    if (w->n_cached_h2_exchanges < EXCHANGE_CACHE_MAX) {
        pt_arena_reset(&x->arena);
        x->next = w->cached_h2_exchanges;
        w->cached_h2_exchanges = x;
        w->n_cached_h2_exchanges++;
    } else {
        pt_arena_dispose(&x->arena);
        free(x);
    }
    if (s->n_exchanges == 0 && !s->conn->is_closing)
        pt_conn_set_timer(s->conn, PT_CONN_TIMER_IDLE);
}

/* --- nghttp2's callbacks: the request --- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    h2_server_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    pt_worker_t *w = s->conn->worker;
    h2_exchange_t *x = w->cached_h2_exchanges;
    pt_arena_t arena;
    if (x != NULL) {
        w->cached_h2_exchanges = x->next;
        w->n_cached_h2_exchanges--;
        arena = x->arena;
    } else if ((x = malloc(sizeof(*x))) != NULL) {
        pt_arena_init(&arena, EXCHANGE_ARENA_BYTES);
    } else {
        abort();
    }
    memset(x, 0, sizeof(*x));
    x->arena = arena;
    x->server = s;
    x->id = frame->hd.stream_id;
    x->tail = &x->queue;
    x->early_tail = &x->early;
    x->stream = pt_stream_new(&exchange_ops, x, &s->info);
    x->request = pt_arena_calloc(&x->stream->arena, sizeof(*x->request));
    x->request->version = PT_HTTP_20;
    x->request->content_length = -1;
    x->next = s->exchanges;
    s->exchanges = x;
    s->n_exchanges++;
    s->n_streams++;
    if (s->conn->timer_mode == PT_CONN_TIMER_IDLE)
        pt_conn_set_timer(s->conn, PT_CONN_TIMER_NONE);
    nghttp2_session_set_stream_user_data(session, x->id, x);
    s->receiving = x;
    return 0;
}

static pt_str_t arena_str(pt_arena_t *a, const uint8_t *p, size_t n)
{
    return (pt_str_t){pt_arena_strndup(a, (const char *)p, n), n};
}

/* The llhttp method id of a method name (the registry both codecs share); -1: none known. */
static int method_id(pt_str_t m)
{
#define METHOD(id, name, string) {#string, sizeof(#string) - 1, id},
    static const struct {
        const char *name;
        size_t len;
        int id;
    } methods[] = {HTTP_METHOD_MAP(METHOD)};
#undef METHOD
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].len == m.len && memcmp(methods[i].name, m.base, m.len) == 0)
            return methods[i].id;
    return -1;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    h2_server_t *s = user;
    /* A header block's fields come one call each, its stream's found once per block
     * (nghttp2's lookup was 1 % of an h2c request's instructions, with the client's) */
    h2_exchange_t *x = s->receiving;
    if (x == NULL || x->id != frame->hd.stream_id)
        x = exchange_of(s, frame->hd.stream_id);
    if (x == NULL || x->stream == NULL || x->is_too_large)
        return 0;
    pt_http_msg_t *r = x->request;
    pt_arena_t *a = &x->stream->arena;
    const pt_proxy_settings_t *ps = &s->conn->worker->config->proxy;
    bool is_trailer = x->is_head_received;
    x->header_bytes += namelen + valuelen;
    if (x->header_bytes > ps->max_header_bytes ||
        (is_trailer ? x->n_trailers_in : r->n_headers) >= ps->max_headers) {
        if (is_trailer) /* too late for a 431: nghttp2 resets the stream */
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        x->is_too_large = true;
        return 0;
    }
    if (!is_trailer && namelen > 0 && name[0] == ':') {
        /* nghttp2 checked them (RFC 9113 §8.3.1): each once, before the fields */
        pt_str_t v = arena_str(a, value, valuelen);
        if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
            r->method = v;
            r->method_id = method_id(v);
        } else if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
            r->authority = v;
        } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
            r->path = v;
        }
        return 0;
    }
    pt_header_t *h;
    if (is_trailer) {
        x->trailers_in =
            pt_arena_grow(a, x->trailers_in, x->n_trailers_in, &x->trailers_in_cap, sizeof(*h));
        h = &x->trailers_in[x->n_trailers_in++];
    } else {
        r->headers = pt_arena_grow(a, r->headers, r->n_headers, &x->headers_cap, sizeof(*h));
        h = &r->headers[r->n_headers++];
    }
    *h = pt_header_copy(a, name, namelen, value, valuelen, 0);
    if (is_trailer)
        return 0;
    if (namelen == 14 && memcmp(name, "content-length", 14) == 0) {
        /* nghttp2 checked it is a number and will hold DATA to it */
        int64_t n = 0;
        for (size_t i = 0; i < valuelen; i++)
            n = n * 10 + (value[i] - '0');
        r->content_length = n;
        h->flags |= PT_HEADER_FRAMING;
    } else if (namelen == 2 && memcmp(name, "te", 2) == 0) {
        h->flags |= PT_HEADER_HOP; /* "trailers" only (nghttp2 checked): HTTP/2's own */
    } else if (namelen == 6 && memcmp(name, "expect", 6) == 0) {
        /* answered here as over HTTP/1 (RFC 9110 §10.1.1), never forwarded */
        h->flags |= PT_HEADER_HOP;
        r->expects_continue = pt_str_ieq_lit(h->value, "100-continue");
    } else if (namelen == 4 && memcmp(name, "host", 4) == 0 && r->authority.len == 0) {
        r->authority = h->value;
    }
    return 0;
}

/* RFC 9113 §8.2.3: a cookie split into several fields is joined with "; " for HTTP/1.1. */
static void join_cookies(pt_arena_t *a, pt_http_msg_t *r)
{
    pt_header_t *first = NULL;
    for (size_t i = 0; i < r->n_headers; i++) {
        pt_header_t *h = &r->headers[i];
        if (!pt_str_ieq_lit(h->name, "cookie"))
            continue;
        if (first == NULL) {
            first = h;
        } else {
            char *v = pt_arena_printf(a, "%.*s; %.*s", (int)first->value.len, first->value.base,
                                      (int)h->value.len, h->value.base);
            first->value = pt_str(v);
            h->flags |= PT_HEADER_HOP; /* folded into the first: not forwarded again */
        }
    }
}

/* The request head is complete: the stream starts (or a 431 answers it). */
static void start_request(h2_exchange_t *x, bool end_stream)
{
    pt_http_msg_t *r = x->request;
    pt_stream_t *st = x->stream;
    x->is_request_started = true;
    join_cookies(&st->arena, r);
    r->has_body = !end_stream;
    if (x->is_too_large) {
        PT_STAT_INC(&x->server->conn->worker->stats, downstream_rq_invalid);
        pt_stream_respond(st, 431, "header list too large", PT_FLAG_DPE);
        return;
    }
    if (r->authority.len == 0) { /* RFC 9113 §8.3.1: as HTTP/1.1 without Host */
        PT_STAT_INC(&x->server->conn->worker->stats, downstream_rq_invalid);
        pt_stream_respond(st, 400, "missing :authority", PT_FLAG_DPE);
        return;
    }
    if (r->method_id < 0) { /* as HTTP/1 answers a method it does not know (RFC 9110 §9.1) */
        PT_STAT_INC(&x->server->conn->worker->stats, downstream_rq_invalid);
        pt_stream_respond(st, 501, "unknown method", PT_FLAG_DPE);
        return;
    }
    if (r->method_id == HTTP_CONNECT) {
        /* Extended CONNECT is not offered; a plain CONNECT tunnel is not carried over HTTP/2. */
        pt_stream_respond(st, 501, "CONNECT over HTTP/2 is not supported", PT_FLAG_DPE);
        return;
    }
    pt_stream_start(st, r);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    h2_server_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    h2_exchange_t *x = exchange_of(s, frame->hd.stream_id);
    if (x == NULL || x->stream == NULL)
        return 0;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !x->is_head_received) {
        x->is_head_received = true;
        x->is_head_end = end_stream;
        x->is_pending = true; /* start_pending starts it once the read is parsed */
        *s->pending_tail = x;
        s->pending_tail = &x->next_pending;
    }
    if (x->is_pending) {
        x->is_end_received |= end_stream;
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && x->n_trailers_in > 0 && x->stream->is_active)
        pt_stream_on_request_trailers(x->stream, x->trailers_in, x->n_trailers_in);
    if (end_stream && x->stream != NULL && x->stream->is_active && x->is_request_started)
        pt_stream_on_request_complete(x->stream);
    return 0;
}

/* The streams whose head came in the read just parsed start now, each with what else the read
 * brought it (body, trailers, its end): a stream the same read reset or proved malformed
 * (DATA against content-length, a rapid reset) reaches no upstream, nor does any once the
 * session ends in error. */
static void start_pending(h2_server_t *s)
{
    /* nghttp2 closes a stream it found malformed as its RST_STREAM is written */
    if (s->pending != NULL && !s->conn->is_closing)
        write_frames(s);
    bool is_open = nghttp2_session_want_read(s->session) != 0;
    while (s->pending != NULL) {
        h2_exchange_t *x = s->pending;
        s->pending = x->next_pending;
        if (x->stream != NULL && !s->conn->is_closing && is_open) {
            start_request(x, x->is_head_end);
            for (h2_piece_t *p = x->early; p != NULL && x->stream != NULL && x->stream->is_active;
                 p = p->next)
                pt_stream_on_request_body(x->stream, p->data, p->len, p->pin);
            if (x->n_trailers_in > 0 && x->stream != NULL && x->stream->is_active)
                pt_stream_on_request_trailers(x->stream, x->trailers_in, x->n_trailers_in);
            if (x->is_end_received && x->stream != NULL && x->stream->is_active)
                pt_stream_on_request_complete(x->stream);
        }
        free_pieces(x->early);
        x->early = NULL;
        x->early_tail = &x->early;
        x->is_pending = false; /* only now: x stays while the stream's calls above run */
        free_exchange_if_unused(x);
    }
    s->pending_tail = &s->pending;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    h2_server_t *s = user;
    h2_exchange_t *x = exchange_of(s, id);
    /* The connection's window reopens at once: a paused stream holds back only its own
     * window, never the other streams of the connection (a gRPC channel's calls share one). A
     * paused stream still gets what the client had the window to send; only the stream's
     * acknowledgement (WINDOW_UPDATE) waits for the resume. A stream that let go drops the
     * bytes and acknowledges them. */
    nghttp2_session_consume_connection(session, len);
    if (x != NULL && x->stream != NULL && x->is_paused)
        x->unconsumed += len;
    else
        nghttp2_session_consume_stream(session, id, len);
    if (x != NULL && x->stream != NULL && x->is_pending) { /* kept for start_pending */
        h2_piece_t *p = malloc(sizeof(*p));
        if (p == NULL)
            abort();
        *p = (h2_piece_t){NULL, (const char *)data, len, s->conn->in.buf};
        pt_buf_ref(p->pin);
        *x->early_tail = p;
        x->early_tail = &p->next;
    } else if (x != NULL && x->stream != NULL)
        pt_stream_on_request_body(x->stream, (const char *)data, len, s->conn->in.buf);
    return 0;
}

/* DATA frames sent are counted (the WINDOW_UPDATE flood bound, on_begin_frame). A response
 * that ended before its request (a local reply to a call still sending, a gRPC status answered
 * early) is followed by RST_STREAM NO_ERROR, which asks the client to stop sending without
 * error (RFC 9113 §8.1): the rest of its body would only be read and dropped, and the stream
 * would hold a slot until the client ended it. Sent once the response's last frame went, so
 * that nothing of the response is lost to it. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    h2_server_t *s = user;
    if (frame->hd.type == NGHTTP2_DATA)
        s->n_data_sent++;
    h2_exchange_t *x = (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
                               (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
                           ? exchange_of(s, frame->hd.stream_id)
                           : NULL;
    if (x != NULL && !x->is_reset && !nghttp2_session_get_stream_remote_close(session, x->id)) {
        x->is_reset = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    h2_server_t *s = user;
    h2_exchange_t *x = exchange_of(s, id);
    if (x == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    x->is_closed = true;
    if (!x->is_reset && !x->is_submitted && /* ended before any response: reset by the client */
        ++s->n_premature_resets >= PREMATURE_RESETS_MIN &&
        2 * s->n_premature_resets >= s->n_streams) {
        pt_log_debug("downstream %s: HTTP/2: %llu of %llu streams reset before their response",
                     s->conn->peer_ip, (unsigned long long)s->n_premature_resets,
                     (unsigned long long)s->n_streams);
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    if (x->stream != NULL)
        pt_stream_abort(x->stream, PT_FLAG_DC); /* reset by the client; done frees x */
    else
        free_exchange_if_unused(x);
    return 0;
}

/* Floods of frames that carry nothing (RFC 9113 §10.5), counted as each frame begins; the
 * rest of the read is not parsed. nghttp2 limits the others (resets, CONTINUATION, ACKs). */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    h2_server_t *s = user;
    bool is_flood = false;
    switch (hd->type) {
    case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM))
            is_flood = ++s->n_empty_data > MAX_CONSECUTIVE_EMPTY_DATA;
        else
            s->n_empty_data = 0;
        break;
    case NGHTTP2_PRIORITY:
        is_flood = ++s->n_priority > MAX_PRIORITY_PER_STREAM * (1 + s->n_streams);
        break;
    case NGHTTP2_WINDOW_UPDATE:
        is_flood = ++s->n_window_updates >
                   5 + 2 * (s->n_streams + MAX_WINDOW_UPDATE_PER_DATA * s->n_data_sent);
        break;
    default: break;
    }
    if (!is_flood)
        return 0;
    pt_log_debug("downstream %s: HTTP/2: flood of frames of type %u", s->conn->peer_ip,
                 (unsigned)hd->type);
    nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* --- the response's body source --- */

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    h2_exchange_t *x = source->ptr;
    size_t n = 0;
    while (n < length && x->queue != NULL) {
        h2_piece_t *p = x->queue;
        size_t k = p->len < length - n ? p->len : length - n;
        memcpy(buf + n, p->data, k);
        n += k;
        p->data += k;
        p->len -= k;
        x->queued -= k;
        if (p->len == 0) {
            x->queue = p->next;
            if (x->queue == NULL)
                x->tail = &x->queue;
            pt_buf_unref(p->pin);
            free(p);
        }
    }
    if (x->queue == NULL && x->is_end) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (x->n_trailers > 0) {
            nghttp2_nv *nv = pt_arena_alloc(&x->arena, x->n_trailers * sizeof(*nv));
            size_t k = 0;
            for (size_t i = 0; i < x->n_trailers; i++) {
                const pt_header_t *t = &x->trailers[i];
                if (t->flags & (PT_HEADER_HOP | PT_HEADER_FRAMING))
                    continue;
                nv[k++] = (nghttp2_nv){(uint8_t *)t->name.base, (uint8_t *)t->value.base,
                                       t->name.len, t->value.len, NGHTTP2_NV_FLAG_NONE};
            }
            if (k > 0 && nghttp2_submit_trailer(session, id, nv, k) == 0)
                *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    } else if (n == 0) {
        x->is_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (x->is_congested && x->queued <= PT_WRITE_LOW_WATERMARK && x->stream != NULL) {
        x->is_congested = false;
        pt_stream_on_downstream_drained(x->stream);
    }
    return (ssize_t)n;
}

/* The held head goes to nghttp2, with the body source unless nothing follows. */
static void submit_head(h2_exchange_t *x, bool has_data)
{
    const pt_http_msg_t *h = x->response;
    x->response = NULL;
    x->is_submitted = true;
    size_t n = 0;
    nghttp2_nv *nv = pt_arena_alloc(&x->arena, (h->n_headers + 2) * sizeof(*nv));
    pt_str_t status = pt_http_msg_decimal(&x->arena, h->status);
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status.base, 7, status.len,
                           NGHTTP2_NV_FLAG_NONE};
    if (h->content_length >= 0 && h->status != 204 && h->status != 304) {
        pt_str_t cl = pt_http_msg_decimal(&x->arena, h->content_length);
        nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl.base, 14, cl.len,
                               NGHTTP2_NV_FLAG_NONE};
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        const pt_header_t *f = &h->headers[i];
        if (f->flags & (PT_HEADER_HOP | PT_HEADER_FRAMING))
            continue;
        /* as received: nghttp2 lowers the names it copies (nghttp2_submit_response) */
        nv[n++] = (nghttp2_nv){
            (uint8_t *)f->name.base, (uint8_t *)f->value.base, f->name.len, f->value.len,
            pt_http_field_is_per_message(f->name.base, f->name.len) ? NGHTTP2_NV_FLAG_NO_INDEX
                                                                    : NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider body = {.source.ptr = x, .read_callback = read_body};
    int rc = nghttp2_submit_response(x->server->session, x->id, nv, n, has_data ? &body : NULL);
    if (rc != 0)
        pt_log_debug("downstream %s: HTTP/2 stream %d: %s", x->server->conn->peer_ip, x->id,
                     nghttp2_strerror(rc));
}

/* --- the exchange's ops (codec.h) --- */

static void send_head(void *exchange, const pt_http_msg_t *req, const pt_http_msg_t *resp)
{
    h2_exchange_t *x = exchange;
    x->is_no_body =
        (req != NULL && req->method_id == HTTP_HEAD) || resp->status == 204 || resp->status == 304;
    if (!resp->has_body || x->is_no_body) {
        /* Nothing follows the head (no body, no trailers): it goes now, END_STREAM on the
         * HEADERS, and nghttp2 copies its fields, so the head needs no copy of its own. */
        if (!x->is_closed && !x->is_reset) { /* else nothing is sent, as for a held head */
            x->response = resp;
            submit_head(x, false);
        }
        return;
    }
    /* Held until the first byte or the end says whether DATA follows. */
    x->response = pt_http_msg_copy(&x->arena, resp);
}

static bool send_data(void *exchange, const char *data, size_t len, pt_buf_t *pin)
{
    h2_exchange_t *x = exchange;
    if (x->is_no_body || len == 0 || x->is_closed)
        return false;
    h2_piece_t *p = malloc(sizeof(*p));
    if (p == NULL)
        abort();
    *p = (h2_piece_t){NULL, data, len, pin};
    pt_buf_ref(pin);
    *x->tail = p;
    x->tail = &p->next;
    x->queued += len;
    if (x->response != NULL)
        submit_head(x, true);
    else if (x->is_deferred) {
        x->is_deferred = false;
        nghttp2_session_resume_data(x->server->session, x->id);
    }
    schedule_flush(x->server);
    return true;
}

static void send_end(void *exchange, const pt_header_t *trailers, size_t n)
{
    h2_exchange_t *x = exchange;
    if (x->is_closed)
        return;
    x->is_end = true;
    if (n > 0 && !x->is_no_body) {
        x->trailers = pt_http_headers_copy(&x->arena, trailers, n);
        x->n_trailers = n;
    }
    if (x->response != NULL) {
        submit_head(x, !x->is_no_body && (x->queue != NULL || x->n_trailers > 0));
    } else if (x->is_deferred) {
        x->is_deferred = false;
        nghttp2_session_resume_data(x->server->session, x->id);
    }
    schedule_flush(x->server);
}

static void send_continue(void *exchange, const pt_http_msg_t *req)
{
    h2_exchange_t *x = exchange;
    if (!req->expects_continue || x->is_submitted || x->is_closed)
        return;
    nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
    nghttp2_submit_headers(x->server->session, NGHTTP2_FLAG_NONE, x->id, NULL, &nv, 1, NULL);
    schedule_flush(x->server);
}

static bool cancel_head(void *exchange)
{
    h2_exchange_t *x = exchange;
    x->response = NULL;
    return !x->is_submitted;
}

static bool is_response_started(const void *exchange)
{
    const h2_exchange_t *x = exchange;
    return x->is_submitted;
}

static bool is_write_congested(void *exchange)
{
    h2_exchange_t *x = exchange;
    if (x->queued <= PT_WRITE_HIGH_WATERMARK && !pt_conn_is_write_congested(x->server->conn))
        return false;
    x->is_congested = true;
    return true;
}

static void pause_exchange(void *exchange)
{
    h2_exchange_t *x = exchange;
    x->is_paused = true;
}

static void resume_exchange(void *exchange)
{
    h2_exchange_t *x = exchange;
    x->is_paused = false;
    if (x->unconsumed > 0 && !x->is_closed) {
        nghttp2_session_consume_stream(x->server->session, x->id, x->unconsumed);
        x->unconsumed = 0;
        schedule_flush(x->server);
    }
}

static void close_after(void *exchange)
{
    h2_exchange_t *x = exchange;
    x->server->conn->close_after_response = true; /* flush sends the GOAWAY */
}

static void reset(void *exchange)
{
    h2_exchange_t *x = exchange;
    h2_server_t *s = x->server;
    if (!x->is_closed && !x->is_reset) {
        x->is_reset = true;
        nghttp2_submit_rst_stream(s->session, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_INTERNAL_ERROR);
    }
    if (x->stream != NULL)
        pt_stream_abort(x->stream, PT_FLAG_DC); /* done may free x */
    schedule_flush(s);
}

static void done(void *exchange)
{
    h2_exchange_t *x = exchange;
    h2_server_t *s = x->server;
    x->stream = NULL;
    x->response = NULL; /* a head never sent (the connection went) */
    if (x->is_closed) {
        free_exchange_if_unused(x);
        return;
    }
    if (!x->is_end && !x->is_reset) {
        /* The response cannot end well: the client sees the stream reset. */
        x->is_reset = true;
        nghttp2_submit_rst_stream(s->session, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_CANCEL);
    }
    /* What is left of a request body the response did not wait for is acknowledged and
     * dropped as it comes (on_data_chunk). */
    if (x->unconsumed > 0) {
        nghttp2_session_consume_stream(s->session, x->id, x->unconsumed);
        x->unconsumed = 0;
    }
    schedule_flush(s);
}

static const pt_server_codec_ops_t exchange_ops = {
    .send_head = send_head,
    .send_data = send_data,
    .send_end = send_end,
    .send_continue = send_continue,
    .cancel_head = cancel_head,
    .is_response_started = is_response_started,
    .is_write_congested = is_write_congested,
    .pause = pause_exchange,
    .resume = resume_exchange,
    .close_after = close_after,
    .done = done,
    .reset = reset,
    .hand_off_to_tunnel = NULL,
};

/* --- the connection's side (conn.h) --- */

static h2_server_t *start(pt_conn_t *c)
{
    h2_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        abort();
    s->conn = c;
    s->pending_tail = &s->pending;
    s->info = (pt_conn_info_t){.worker = c->worker,
                               .tcp = &c->tcp,
                               .listener_port = c->listener_port,
                               .peer_principal = c->peer_principal,
                               .capture = c->capture,
                               .chaos_proxy = c->chaos_proxy,
                               .is_tls = c->tls != NULL};
    memcpy(s->info.peer_ip, c->peer_ip, sizeof(s->info.peer_ip));
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_stream_reset_rate_limit(opt, RESET_BURST, RESETS_PER_SECOND);
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    nghttp2_option_set_max_outbound_ack(opt, MAX_OUTBOUND_ACKS);
    nghttp2_option_set_max_settings(opt, MAX_SETTINGS_ENTRIES);
    nghttp2_option_set_no_closed_streams(opt, 1); /* kept only for RFC 7540 priorities */
    nghttp2_mem mem = pt_h2_mem_of(&c->worker->h2_mem);
    int rc = nghttp2_session_server_new3(&s->session, cbs, s, opt, &mem);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        abort();
    const pt_proxy_settings_t *ps = &c->worker->config->proxy;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ps->http2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, ps->max_header_bytes},
    };
    nghttp2_submit_settings(s->session, NGHTTP2_FLAG_NONE, settings, 2);
    uv_check_init(&c->worker->loop, &s->flusher);
    s->flusher.data = s;
    c->handles_open++; /* the connection's memory waits for the flusher's close */
    c->codec = s;
    return s;
}

static void on_bytes(pt_conn_t *c)
{
    h2_server_t *s = server_of(c);
    if (s == NULL) {
        s = start(c);
        pt_conn_set_timer(c, PT_CONN_TIMER_IDLE); /* the preface came: no header timer */
    }
    size_t n = c->in.len - c->in.off;
    s->is_receiving = true;
    ssize_t used =
        nghttp2_session_mem_recv(s->session, (const uint8_t *)c->in.buf->data + c->in.off, n);
    s->is_receiving = false;
    if (used < 0) {
        pt_log_debug("downstream %s: HTTP/2: %s", c->peer_ip, nghttp2_strerror((int)used));
        PT_STAT_INC(&c->worker->stats, downstream_rq_invalid);
        c->in.off = c->in.len;
        /* nghttp2 sends no GOAWAY of its own for a flood of ACKs or CONTINUATION frames */
        bool is_flood = used == NGHTTP2_ERR_FLOODED || used == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
        nghttp2_session_terminate_session(s->session, is_flood ? NGHTTP2_ENHANCE_YOUR_CALM
                                                               : NGHTTP2_INTERNAL_ERROR);
        /* what nghttp2 holds is bounded by its limits: written whatever the congestion, but
         * a client that reads nothing gets no graceful close */
        write_frames(s);
        pt_conn_close(c, !pt_conn_is_write_congested(c));
        start_pending(s); /* the streams begun are let go */
        return;
    }
    start_pending(s);
    c->in.off += (size_t)used;
    pt_rbuf_drop_consumed(&c->in);
    flush(s);
    pt_conn_update_reading(c);
}

static void on_peer_eof(pt_conn_t *c)
{
    pt_conn_close(c, server_of(c) == NULL || server_of(c)->n_exchanges == 0);
}

static void on_header_timeout(pt_conn_t *c)
{
    pt_conn_close(c, false);
}

static void on_drained(pt_conn_t *c)
{
    h2_server_t *s = server_of(c);
    if (s == NULL)
        return;
    flush(s); /* what waited in nghttp2 while the client read nothing */
    for (h2_exchange_t *x = s->exchanges; x != NULL; x = x->next)
        if (x->is_congested && x->queued <= PT_WRITE_LOW_WATERMARK && x->stream != NULL) {
            x->is_congested = false;
            pt_stream_on_downstream_drained(x->stream);
        }
}

static void on_flusher_closed(uv_handle_t *h)
{
    h2_server_t *s = h->data;
    pt_conn_release_handle(s->conn);
}

static void on_close(pt_conn_t *c)
{
    h2_server_t *s = server_of(c);
    if (s == NULL)
        return;
    uv_close((uv_handle_t *)&s->flusher, on_flusher_closed);
    for (h2_exchange_t *x = s->exchanges, *next; x != NULL; x = next) {
        next = x->next; /* an abort frees x */
        x->is_closed = true;
        if (x->stream != NULL)
            pt_stream_abort(x->stream, PT_FLAG_DC);
    }
}

static bool is_idle(const pt_conn_t *c)
{
    return server_of(c) == NULL || server_of(c)->n_exchanges == 0;
}

static void free_server(pt_conn_t *c)
{
    h2_server_t *s = server_of(c);
    if (s == NULL)
        return;
    c->codec = NULL;
    while (s->exchanges != NULL) {
        h2_exchange_t *x = s->exchanges;
        s->exchanges = x->next;
        free_queue(x);
        pt_arena_dispose(&x->arena);
        free(x);
    }
    nghttp2_session_del(s->session);
    free(s);
}

const pt_conn_codec_ops_t pt_http2_server_conn_ops = {
    .on_bytes = on_bytes,
    .on_peer_eof = on_peer_eof,
    .on_header_timeout = on_header_timeout,
    .on_drained = on_drained,
    .on_close = on_close,
    .is_idle = is_idle,
    .free = free_server,
};
