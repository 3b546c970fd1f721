/* proxy/http2_client.c
 * The HTTP/2 client codec (see http2_client.h). nghttp2 runs the protocol; this file maps its
 * callbacks onto the exchanges' events and the exchanges' ops onto its submit calls. Nothing
 * is written from inside nghttp2's callbacks: what the owners ask for while the session is
 * parsing or sending is sent once it returns (flush). What the owners ask for from their own
 * events (request heads, body pieces, resets) waits for the end of the loop turn, so that the
 * streams of many downstream connections leave in one write (the connection's flusher). */
#include "http2_client.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h" /* the write watermarks */
#include "log.h"
#include "upstream.h"

/* The window each stream grants the upstream (what a paused exchange may have in flight), and
 * the connection's, shared by its streams. */
#define STREAM_WINDOW (256 * 1024)
#define CONNECTION_WINDOW (4 * 1024 * 1024)
/* What nghttp2's output is gathered into before one write. */
#define SEND_SLAB (16 * 1024)

typedef struct body_piece {
    struct body_piece *next;
    const char *data;
    size_t len;
    pt_buf_t *pin;
} body_piece_t;

typedef struct h2x {
    pt_exchange_t x; /* first: the handle its owner holds */
    pt_http2_client_t *c;
    pt_list_t link;      /* c->exchanges */
    int32_t id;          /* 0 until its HEADERS are submitted */
    pt_arena_t *arena;   /* the owner's: the response head and trailers go there */
    pt_http_msg_t *head; /* the header block being received */
    size_t cap_headers;
    body_piece_t *body; /* request body nghttp2 has not taken yet */
    body_piece_t **body_tail;
    size_t body_off;             /* bytes of the first piece taken */
    size_t queued;               /* bytes in body */
    const pt_header_t *trailers; /* the request's, in the owner's arena */
    size_t n_trailers;
    size_t unacked; /* DATA delivered while paused: acknowledged on resume */
    bool is_request_ended;
    bool is_request_sent; /* END_STREAM went (or will go) out */
    bool is_data_deferred;
    bool is_paused;
    bool is_remote_ended; /* the response's END_STREAM arrived */
    bool is_closed;       /* nghttp2 closed the stream */
    bool is_head_sent;    /* its HEADERS left nghttp2: the upstream may have acted on it */
    bool has_final_head;
    bool is_ready_sent;
    bool wants_drained;
} h2x_t;

struct pt_http2_client {
    nghttp2_session *session;
    pt_upstream_t *up;
    pt_list_t exchanges;  /* h2x_t.link */
    uint32_t n_exchanges; /* on the list: has_room is asked for every request */
    uint32_t n_owned;
    uint32_t n_drained_waiters; /* exchanges with wants_drained: flush walks only if any */
    h2x_t *receiving;           /* whose header block nghttp2 is handing over field by field */
    h2x_t *spare;               /* freed exchanges, linked through link.next: malloc and free */
    uint32_t n_spare;           /* were 1 % of an h2c request */
    bool is_connected;
    bool is_going_away;    /* a GOAWAY arrived */
    bool has_error;        /* the session failed */
    bool in_session;       /* inside nghttp2 (recv or send): what is asked is sent after */
    bool is_flush_pending; /* the flusher runs at the end of this loop turn */
    /* upstreamHttp2Keepalive, copied from the snapshot the connection was opened under. One
     * timer runs both steps: the wait for the next PING, then the wait for its answer. */
    uv_timer_t keepalive_timer; /* only when keepalive_interval_ms > 0; data: the upstream */
    uint64_t keepalive_interval_ms;
    uint64_t keepalive_timeout_ms;
    uint64_t ping_sent_ms;    /* when the unanswered PING went (uv_now) */
    bool is_ping_outstanding; /* a PING awaits its ACK */
};

/* Freed exchanges a connection keeps for reuse, up to as many streams as it assumes it may
 * open (about 200 bytes each, held only by a connection that had that many in flight). */
#define PT_H2_CLIENT_SPARE PT_HTTP2_ASSUMED_MAX_STREAMS

static h2x_t *h2x_of(pt_exchange_t *x)
{
    return (h2x_t *)x;
}

static void free_body(h2x_t *x)
{
    body_piece_t *p = x->body;
    while (p != NULL) {
        body_piece_t *next = p->next;
        pt_buf_unref(p->pin);
        free(p);
        p = next;
    }
    x->body = NULL;
    x->body_tail = &x->body;
    x->queued = 0;
}

static void free_exchange(h2x_t *x)
{
    if (x->c->receiving == x)
        x->c->receiving = NULL;
    pt_list_remove(&x->link);
    x->c->n_exchanges--;
    x->c->n_drained_waiters -= x->wants_drained;
    free_body(x);
    if (x->c->n_spare < PT_H2_CLIENT_SPARE) { /* kept for the connection's next request */
        x->link.next = (pt_list_t *)x->c->spare;
        x->c->spare = x;
        x->c->n_spare++;
        return;
    }
    free(x);
}

/* The owner lets go (release) or is let go (reset): the connection may go idle. */
static void disown(h2x_t *x)
{
    x->x.owner = NULL;
    x->c->n_owned--;
}

/* --- writing --- */

/* The first exchange for which pick() holds, or NULL. Owners called back may let go of
 * other exchanges, so walks that call them start over after each. */
static h2x_t *find_exchange(pt_http2_client_t *c, bool (*pick)(const h2x_t *))
{
    for (pt_list_t *l = c->exchanges.next; l != &c->exchanges; l = l->next)
        if (pick(PT_CONTAINER_OF(l, h2x_t, link)))
            return PT_CONTAINER_OF(l, h2x_t, link);
    return NULL;
}

static bool is_owned(const h2x_t *x)
{
    return x->x.owner != NULL;
}

/* Every owner hears that the connection is lost, and the exchanges are let go. When the peer
 * went silent (no answer to a PING), streams whose HEADERS never left were not processed
 * anywhere: refused, retried as refused-stream. The others may have been: reset, retried only
 * as the route's policy allows, and not replayed as a pooled connection's race with an idle
 * close (was_reused false), since a request sent to a peer that stopped answering would most
 * likely hang again. */
static void fail_owners(pt_http2_client_t *c, pt_codec_reset_t why, bool is_peer_silent)
{
    h2x_t *x;
    while ((x = find_exchange(c, is_owned)) != NULL) {
        void *owner = x->x.owner;
        const pt_codec_stream_cbs_t *cbs = x->x.cbs;
        disown(x);
        if (!is_peer_silent)
            cbs->on_reset(owner, why, x->x.is_reused);
        else if (x->is_head_sent)
            cbs->on_reset(owner, PT_CODEC_RESET_CLOSED, false);
        else
            cbs->on_reset(owner, PT_CODEC_RESET_REFUSED, x->x.is_reused);
    }
}

static bool is_drained_waiter(const h2x_t *x)
{
    return x->wants_drained && x->x.owner != NULL && x->queued <= PT_WRITE_LOW_WATERMARK;
}

static void notify_drained(pt_http2_client_t *c)
{
    h2x_t *x;
    while (c->n_drained_waiters > 0 && !pt__upstream_is_write_congested(c->up) &&
           (x = find_exchange(c, is_drained_waiter)) != NULL) {
        x->wants_drained = false;
        c->n_drained_waiters--;
        x->x.cbs->on_drained(x->x.owner);
    }
}

/* Sends what the session has to say, gathered into slabs of one write each. */
static void flush(pt_http2_client_t *c)
{
    if (c->in_session || !c->is_connected || c->up->is_closing)
        return; /* on_bytes and on_connected flush when they are done */
    c->in_session = true;
    pt_buf_t *slab = NULL;
    size_t len = 0;
    int err = 0;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            pt_log_debug("upstream HTTP/2 session: %s", nghttp2_strerror((int)n));
            err = UV_EPROTO;
            break;
        }
        if (slab != NULL && (n == 0 || len + (size_t)n > slab->cap)) {
            uv_buf_t b = uv_buf_init(slab->data, (unsigned)len);
            err = pt__upstream_write(c->up, NULL, 0, &b, 1, NULL, slab);
            pt_buf_unref(slab);
            slab = NULL;
            if (err != 0)
                break;
        }
        if (n == 0)
            break;
        if (slab == NULL) {
            slab = pt_buf_new_sized((size_t)n > SEND_SLAB ? (size_t)n : SEND_SLAB);
            len = 0;
        }
        memcpy(slab->data + len, data, (size_t)n);
        len += (size_t)n;
    }
    if (slab != NULL)
        pt_buf_unref(slab);
    c->in_session = false;
    if (err != 0) {
        /* The owners hear of it from the read side (an error or EOF follows), never from
         * inside the op that flushed. */
        pt_http2_client_on_write_error(c);
        return;
    }
    notify_drained(c);
}

static void on_flusher(uv_check_t *h)
{
    pt_upstream_t *up = h->data;
    uv_check_stop(h);
    up->h2->is_flush_pending = false;
    flush(up->h2);
}

/* Sends at the end of the loop turn, with whatever the other streams queue until then. */
static void schedule_flush(pt_http2_client_t *c)
{
    if (c->is_flush_pending || c->up->is_closing)
        return;
    c->is_flush_pending = true;
    uv_check_start(&c->up->flusher, on_flusher);
}

/* --- receiving: nghttp2's callbacks --- */

static h2x_t *stream_exchange(nghttp2_session *s, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(s, id) : NULL;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    h2x_t *x = stream_exchange(s, f->hd.stream_id);
    if (f->hd.type != NGHTTP2_HEADERS || x == NULL || x->x.owner == NULL)
        return 0;
    pt_http_msg_t *m = pt_arena_calloc(x->arena, sizeof(*m));
    m->version = PT_HTTP_20;
    m->content_length = -1;
    x->head = m;
    x->cap_headers = 0;
    x->c->receiving = x;
    return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user)
{
    pt_http2_client_t *c = user;
    h2x_t *x = c->receiving; /* found once per header block, as the server codec does */
    if (x == NULL || x->id != f->hd.stream_id)
        x = stream_exchange(s, f->hd.stream_id);
    if (f->hd.type != NGHTTP2_HEADERS || x == NULL || x->x.owner == NULL || x->head == NULL)
        return 0;
    pt_http_msg_t *m = x->head;
    if (name_len > 0 && name[0] == ':') {
        if (name_is(name, name_len, ":status") && value_len == 3) {
            m->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        }
        return 0; /* nghttp2 has checked the pseudo-headers */
    }
    m->headers =
        pt_arena_grow(x->arena, m->headers, m->n_headers, &x->cap_headers, sizeof(*m->headers));
    pt_header_t *h = &m->headers[m->n_headers++];
    *h = pt_header_copy(x->arena, name, name_len, value, value_len, 0);
    if (name_is(name, name_len, "content-length")) {
        /* nghttp2 has checked it is a number, and will check it against the DATA. */
        int64_t n = 0;
        for (size_t i = 0; i < value_len && n < INT64_MAX / 10; i++)
            n = n * 10 + (value[i] - '0');
        m->content_length = n;
        h->flags = PT_HEADER_FRAMING;
    }
    return 0;
}

/* The response is complete: its owner releases the exchange in on_end. */
static void deliver_end(h2x_t *x)
{
    x->is_remote_ended = true;
    if (x->x.owner != NULL)
        x->x.cbs->on_end(x->x.owner);
}

static void deliver_headers(h2x_t *x, const nghttp2_frame *f)
{
    pt_http_msg_t *m = x->head;
    x->head = NULL;
    bool ends = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (m == NULL || x->x.owner == NULL)
        return;
    if (x->has_final_head) {
        x->x.cbs->on_trailers(x->x.owner, m->headers, m->n_headers);
    } else {
        if (m->status < 200)
            return; /* interim: the final head follows */
        x->has_final_head = true;
        m->has_body = !ends;
        if (x->x.cbs->on_head(x->x.owner, m) == PT_CODEC_STOP || x->x.owner == NULL)
            return;
    }
    if (ends)
        deliver_end(x);
}

/* --- keepalive PINGs (upstreamHttp2Keepalive) --- */

static void on_keepalive_timer(uv_timer_t *t);

/* The PING is answered: the next one goes an interval after it was sent. */
static void on_ping_ack(pt_http2_client_t *c)
{
    c->is_ping_outstanding = false;
    if (c->up->is_closing)
        return; /* an owner called back earlier in this read let the connection go */
    uint64_t now = uv_now(c->keepalive_timer.loop);
    uint64_t next = c->ping_sent_ms + c->keepalive_interval_ms;
    uv_timer_start(&c->keepalive_timer, on_keepalive_timer, next > now ? next - now : 0, 0);
}

/* Nothing answered the PING: the peer is gone (a half-open connection, a hung process). The
 * connection closes; an idle one just leaves the pool. */
static void keepalive_failed(pt_http2_client_t *c)
{
    pt_upstream_t *up = c->up;
    PT_STAT_INC(&up->worker->stats, upstream_cx_h2_keepalive_timeout);
    pt_log_debug("upstream HTTP/2 connection: no answer to a PING within %llu ms, closed",
                 (unsigned long long)c->keepalive_timeout_ms);
    c->has_error = true;
    pt__upstream_close(up);
    fail_owners(c, PT_CODEC_RESET_CLOSED, true);
}

static void on_keepalive_timer(uv_timer_t *t)
{
    pt_upstream_t *up = t->data;
    pt_http2_client_t *c = up->h2;
    if (up->is_closing)
        return;
    if (c->is_ping_outstanding) {
        keepalive_failed(c);
        return;
    }
    if (nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) != 0)
        abort(); /* only out of memory */
    c->is_ping_outstanding = true;
    c->ping_sent_ms = uv_now(t->loop);
    uv_timer_start(t, on_keepalive_timer, c->keepalive_timeout_ms, 0);
    flush(c);
}

/* Bytes arrived: while a PING waits, its deadline moves on, as Envoy's does, since a peer
 * that is sending is alive and the ACK may sit behind a large response (head-of-line). */
static void keepalive_heard(pt_http2_client_t *c)
{
    if (c->is_ping_outstanding)
        uv_timer_start(&c->keepalive_timer, on_keepalive_timer, c->keepalive_timeout_ms, 0);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    pt_http2_client_t *c = user;
    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
        /* The next connection to this upstream assumes the same limit until told. */
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            c->up->pool->h2_max_streams =
                nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        return 0;
    case NGHTTP2_PING:
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) && c->is_ping_outstanding)
            on_ping_ack(c);
        return 0;
    case NGHTTP2_GOAWAY:
        /* No new stream here; nghttp2 closes those above last_stream_id as refused next. */
        c->is_going_away = true;
        pt__upstream_h2_changed(c->up);
        return 0;
    case NGHTTP2_HEADERS: {
        h2x_t *x = stream_exchange(s, f->hd.stream_id);
        if (x != NULL)
            deliver_headers(x, f);
        return 0;
    }
    case NGHTTP2_DATA: {
        h2x_t *x = stream_exchange(s, f->hd.stream_id);
        if (x != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            deliver_end(x);
        return 0;
    }
    default: return 0;
    }
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    pt_http2_client_t *c = user;
    h2x_t *x = stream_exchange(s, id);
    /* The connection's window reopens at once: a paused stream holds back only its own. */
    nghttp2_session_consume_connection(s, len);
    if (x == NULL || x->x.owner == NULL)
        return 0;
    x->x.cbs->on_data(x->x.owner, (const char *)data, len, c->up->in.buf);
    if (x->x.owner == NULL || x->is_closed)
        return 0;
    if (x->is_paused)
        x->unacked += len;
    else
        nghttp2_session_consume_stream(s, id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    pt_http2_client_t *c = user;
    h2x_t *x = stream_exchange(s, id);
    if (x == NULL)
        return 0;
    x->is_closed = true;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    if (x->x.owner != NULL) {
        /* Closed before the response ended: refused streams (a GOAWAY's, or RST_STREAM
         * REFUSED_STREAM) never reached the application. */
        void *owner = x->x.owner;
        const pt_codec_stream_cbs_t *cbs = x->x.cbs;
        bool was_reused = x->x.is_reused;
        disown(x);
        pt_codec_reset_t why = error_code == NGHTTP2_REFUSED_STREAM ? PT_CODEC_RESET_REFUSED
                               : error_code == NGHTTP2_PROTOCOL_ERROR
                                   ? PT_CODEC_RESET_PROTOCOL_ERROR
                                   : PT_CODEC_RESET_CLOSED;
        cbs->on_reset(owner, why, was_reused);
    }
    free_exchange(x);
    pt__upstream_h2_changed(c->up);
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    h2x_t *x = stream_exchange(s, f->hd.stream_id);
    if (f->hd.type == NGHTTP2_HEADERS && x != NULL)
        x->is_head_sent = true;
    return 0;
}

/* --- the request body: nghttp2 pulls it --- */

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    h2x_t *x = source->ptr;
    size_t n = 0;
    while (n < length && x->body != NULL) {
        body_piece_t *p = x->body;
        size_t take = p->len - x->body_off;
        if (take > length - n)
            take = length - n;
        memcpy(buf + n, p->data + x->body_off, take);
        n += take;
        x->body_off += take;
        x->queued -= take;
        if (x->body_off == p->len) {
            x->body = p->next;
            if (x->body == NULL)
                x->body_tail = &x->body;
            x->body_off = 0;
            pt_buf_unref(p->pin);
            free(p);
        }
    }
    if (x->body == NULL && x->is_request_ended && x->x.owner != NULL) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        x->is_request_sent = true;
        if (x->n_trailers > 0) {
            nghttp2_nv *nva = pt_arena_alloc(x->arena, x->n_trailers * sizeof(*nva));
            size_t k = 0;
            for (size_t i = 0; i < x->n_trailers; i++) {
                const pt_header_t *t = &x->trailers[i];
                nva[k++] = (nghttp2_nv){(uint8_t *)t->name.base, (uint8_t *)t->value.base,
                                        t->name.len, t->value.len, NGHTTP2_NV_FLAG_NONE};
            }
            if (nghttp2_submit_trailer(s, id, nva, k) == 0)
                *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        return (ssize_t)n;
    }
    if (n == 0) {
        x->is_data_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* --- the exchange's ops (codec.h) --- */

/* Connection-specific headers (RFC 9113 §8.2.2) and Host (it becomes :authority). */
static bool is_dropped(const pt_header_t *h)
{
    static const pt_str_t names[] = {
        PT_STR_LIT("connection"),        PT_STR_LIT("keep-alive"), PT_STR_LIT("proxy-connection"),
        PT_STR_LIT("transfer-encoding"), PT_STR_LIT("upgrade"),    PT_STR_LIT("host")};
    /* te is hop-by-hop in HTTP/1, but "trailers" crosses to HTTP/2 (gRPC needs it). */
    if (h->name.len == 2 && strncasecmp(h->name.base, "te", 2) == 0)
        return !(h->value.len == 8 && strncasecmp(h->value.base, "trailers", 8) == 0);
    if (h->flags & (PT_HEADER_HOP | PT_HEADER_FRAMING))
        return true;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (pt_str_ieq(h->name, names[i]))
            return true;
    return false;
}

static nghttp2_nv nv(const char *name, size_t name_len, const char *value, size_t value_len)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, name_len, value_len,
                        pt_http_field_is_per_message(name, name_len) ? NGHTTP2_NV_FLAG_NO_INDEX
                                                                     : NGHTTP2_NV_FLAG_NONE};
}

static int send_head(pt_exchange_t *xp, const pt_http_msg_t *req, pt_arena_t *arena)
{
    h2x_t *x = h2x_of(xp);
    pt_http2_client_t *c = x->c;
    x->arena = arena;
    nghttp2_nv *nva = pt_arena_alloc(arena, (req->n_headers + 5) * sizeof(*nva));
    size_t n = 0;
    pt_str_t scheme = c->up->tls != NULL ? PT_STR_LIT("https") : PT_STR_LIT("http");
    nva[n++] = nv(":method", 7, req->method.base, req->method.len);
    nva[n++] = nv(":scheme", 7, scheme.base, scheme.len);
    nva[n++] = nv(":authority", 10, req->authority.base, req->authority.len);
    nva[n++] = nv(":path", 5, req->path.base, req->path.len);
    for (size_t i = 0; i < req->n_headers; i++) {
        const pt_header_t *h = &req->headers[i];
        if (is_dropped(h))
            continue;
        /* as received: nghttp2 lowers the names it copies (nghttp2_submit_request) */
        nva[n++] = nv(h->name.base, h->name.len, h->value.base, h->value.len);
    }
    if (req->content_length >= 0 && req->has_body) {
        pt_str_t cl = pt_http_msg_decimal(arena, req->content_length);
        nva[n++] = nv("content-length", 14, cl.base, cl.len);
    }
    nghttp2_data_provider body = {.source.ptr = x, .read_callback = read_body};
    x->is_request_sent = !req->has_body;
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, n, req->has_body ? &body : NULL, x);
    if (id < 0) {
        pt_log_debug("upstream HTTP/2 request refused by nghttp2: %s", nghttp2_strerror(id));
        return UV_EPROTO;
    }
    x->id = id;
    schedule_flush(c);
    return 0;
}

static void resume_body(h2x_t *x)
{
    if (x->is_data_deferred && x->id > 0 && !x->is_closed) {
        x->is_data_deferred = false;
        nghttp2_session_resume_data(x->c->session, x->id);
    }
    schedule_flush(x->c);
}

static int send_data(pt_exchange_t *xp, const char *data, size_t len, pt_buf_t *pin)
{
    h2x_t *x = h2x_of(xp);
    if (len == 0 || x->is_closed)
        return 0;
    body_piece_t *p = malloc(sizeof(*p));
    if (p == NULL)
        abort();
    *p = (body_piece_t){NULL, data, len, pin};
    pt_buf_ref(pin);
    *x->body_tail = p;
    x->body_tail = &p->next;
    x->queued += len;
    resume_body(x);
    return 0;
}

static int send_end(pt_exchange_t *xp, const pt_header_t *trailers, size_t n)
{
    h2x_t *x = h2x_of(xp);
    x->is_request_ended = true;
    x->trailers = trailers;
    x->n_trailers = n;
    resume_body(x);
    return 0;
}

static bool is_write_congested(pt_exchange_t *xp)
{
    h2x_t *x = h2x_of(xp);
    bool congested =
        x->queued > PT_WRITE_HIGH_WATERMARK || pt__upstream_is_write_congested(x->c->up);
    if (congested && !x->wants_drained) {
        x->wants_drained = true;
        x->c->n_drained_waiters++;
    }
    return congested;
}

static void pause_exchange(pt_exchange_t *xp)
{
    h2x_of(xp)->is_paused = true;
}

static void resume_exchange(pt_exchange_t *xp)
{
    h2x_t *x = h2x_of(xp);
    x->is_paused = false;
    if (x->unacked > 0 && !x->is_closed) {
        nghttp2_session_consume_stream(x->c->session, x->id, x->unacked);
        x->unacked = 0;
        schedule_flush(x->c);
    }
}

static void release(pt_exchange_t *xp, bool reusable)
{
    h2x_t *x = h2x_of(xp);
    pt_http2_client_t *c = x->c;
    disown(x);
    if (x->id == 0) {
        free_exchange(x); /* nothing was sent */
    } else if (!x->is_closed && !(x->is_remote_ended && x->is_request_sent)) {
        /* Ended early (or the request was cut): the stream is cancelled, the connection
         * goes on. nghttp2 frees it through on_stream_close. */
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, x->id, NGHTTP2_CANCEL);
        schedule_flush(c);
    }
    pt__upstream_h2_changed(c->up);
}

static const pt_client_codec_ops_t exchange_ops = {
    .send_head = send_head,
    .send_data = send_data,
    .send_end = send_end,
    .is_write_congested = is_write_congested,
    .pause = pause_exchange,
    .resume = resume_exchange,
    .release = release,
};

/* --- the connection --- */

pt_http2_client_t *pt_http2_client_new(pt_upstream_t *up)
{
    pt_http2_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->up = up;
    pt_list_init(&c->exchanges);
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        abort();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    /* Window updates follow what the owners took (pause holds them back). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1); /* kept only for RFC 7540 priorities */
    uint32_t assumed = up->pool->h2_max_streams;
    nghttp2_option_set_peer_max_concurrent_streams(
        opt, assumed != 0 ? assumed : PT_HTTP2_ASSUMED_MAX_STREAMS);
    nghttp2_mem mem = pt_h2_mem_of(&up->worker->h2_mem);
    int r = nghttp2_session_client_new3(&c->session, cbs, c, opt, &mem);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (r != 0)
        abort();
    const pt_h2_keepalive_settings_t *ka = &up->worker->config->proxy.upstream_h2_keepalive;
    c->keepalive_interval_ms = ka->interval_ms;
    c->keepalive_timeout_ms = ka->timeout_ms;
    return c;
}

bool pt_http2_client_init_keepalive(pt_http2_client_t *c, uv_loop_t *loop)
{
    if (c->keepalive_interval_ms == 0)
        return false;
    uv_timer_init(loop, &c->keepalive_timer);
    c->keepalive_timer.data = c->up; /* upstream.c's close callback takes the connection */
    return true;
}

void pt_http2_client_close_keepalive(pt_http2_client_t *c, uv_close_cb cb)
{
    if (c->keepalive_interval_ms > 0)
        uv_close((uv_handle_t *)&c->keepalive_timer, cb);
}

void pt_http2_client_free(pt_http2_client_t *c)
{
    if (c == NULL)
        return;
    while (!pt_list_is_empty(&c->exchanges))
        free_exchange(PT_CONTAINER_OF(c->exchanges.next, h2x_t, link));
    nghttp2_session_del(c->session);
    while (c->spare != NULL) {
        h2x_t *x = c->spare;
        c->spare = (h2x_t *)x->link.next;
        free(x);
    }
    free(c);
}

pt_exchange_t *pt_http2_client_open(pt_http2_client_t *c, const pt_codec_stream_cbs_t *cbs,
                                    void *owner)
{
    h2x_t *x = c->spare;
    if (x != NULL) {
        c->spare = (h2x_t *)x->link.next;
        c->n_spare--;
        memset(x, 0, sizeof(*x));
    } else if ((x = calloc(1, sizeof(*x))) == NULL) {
        abort();
    }
    x->x.ops = &exchange_ops;
    x->x.up = c->up;
    x->x.owner = owner;
    x->x.cbs = cbs;
    x->c = c;
    x->body_tail = &x->body;
    x->is_ready_sent = c->is_connected; /* the caller goes on at once */
    pt_list_insert_tail(&c->exchanges, &x->link);
    c->n_exchanges++;
    c->n_owned++;
    return &x->x;
}

uint32_t pt_http2_client_n_owned(const pt_http2_client_t *c)
{
    return c->n_owned;
}

bool pt_http2_client_has_room(const pt_http2_client_t *c)
{
    if (c->is_going_away || c->has_error)
        return false;
    return c->n_exchanges <
           nghttp2_session_get_remote_settings(c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool pt_http2_client_is_reusable(const pt_http2_client_t *c)
{
    return !c->is_going_away && !c->has_error;
}

static bool is_waiting_for_ready(const h2x_t *x)
{
    return !x->is_ready_sent && x->x.owner != NULL;
}

void pt_http2_client_on_connected(pt_http2_client_t *c)
{
    c->is_connected = true;
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings,
                            sizeof(settings) / sizeof(settings[0]));
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
    if (c->keepalive_interval_ms > 0)
        uv_timer_start(&c->keepalive_timer, on_keepalive_timer, c->keepalive_interval_ms, 0);
    flush(c);
    /* Each exchange that waited for the connection goes now. */
    h2x_t *x;
    while (!c->up->is_closing && (x = find_exchange(c, is_waiting_for_ready)) != NULL) {
        x->is_ready_sent = true;
        x->x.cbs->on_ready(x->x.owner, false);
    }
}

void pt_http2_client_on_bytes(pt_http2_client_t *c)
{
    pt_upstream_t *up = c->up;
    if (up->in.buf == NULL || up->in.off >= up->in.len)
        return;
    c->in_session = true;
    ssize_t n = nghttp2_session_mem_recv(c->session, (const uint8_t *)up->in.buf->data + up->in.off,
                                         up->in.len - up->in.off);
    c->in_session = false;
    if (up->is_closing)
        return;
    if (n < 0) {
        pt_log_debug("upstream HTTP/2 session: %s", nghttp2_strerror((int)n));
        c->has_error = true;
        pt__upstream_fail(up, PT_CODEC_RESET_PROTOCOL_ERROR);
        return;
    }
    up->in.off += (size_t)n;
    pt_rbuf_drop_consumed(&up->in);
    keepalive_heard(c);
    flush(c);
    if (!up->is_closing && !nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session))
        pt__upstream_fail(up, PT_CODEC_RESET_CLOSED); /* the session is over (GOAWAY done) */
}

void pt_http2_client_on_write_error(pt_http2_client_t *c)
{
    c->has_error = true;
    pt__upstream_h2_changed(c->up);
}

void pt_http2_client_on_drained(pt_http2_client_t *c)
{
    flush(c);
}

void pt_http2_client_fail_all(pt_http2_client_t *c, pt_codec_reset_t why)
{
    fail_owners(c, why, false);
}
