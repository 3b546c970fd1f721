/* proxy/conn.c
 * The downstream HTTP/1 connection. Reading, parsing and the connection's timers live here;
 * what a request means lives in stream.c. One stream runs at a time: when a request is
 * complete the parser pauses and reading stops, so pipelined requests wait in the read slab and
 * are answered in order (RFC 9112 §9.3.2), and a client cannot queue unbounded work.
 *
 * An idle keep-alive connection holds no read slab (the slab is dropped as soon as every byte
 * in it was parsed; body slices still being written keep their own refs), no stream and no
 * parser (both come from per-worker caches when a request begins), and no timer handle (its
 * deadline sits in a worker list). */
#include "conn.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "relay.h"
#include "tls_stream.h"
#include "tls_upstream.h"
#include "upstream.h"
#include "write.h"

/* Connections of the whole process, against proxy.max_connections. */
static _Atomic uint32_t n_conns;

static void process(pt_conn_t *c);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void drop_codec(pt_conn_t *c);
static void set_timer(pt_conn_t *c, pt_conn_timer_mode_t mode, uint64_t ms);

static void on_handle_closed(pt_conn_t *c)
{
    if (--c->handles_open != 0)
        return;
    pt_worker_t *w = c->worker;
    pt_rbuf_release(&c->in);
    drop_codec(c);
    if (pt_list_is_linked(&c->timer_link))
        pt_list_remove(&c->timer_link);
    pt_tls_stream_free(c);
    atomic_fetch_sub(&n_conns, 1);
    PT_STAT_DEC(&w->stats, downstream_cx_active);
    free(c->capture);
    free(c);
    pt_worker_check_drained(w);
}

static void on_close(uv_handle_t *h)
{
    on_handle_closed(h->data);
}

static void on_tunnel_side_closed(void *owner)
{
    on_handle_closed(owner);
}

void pt_conn_release_handle(pt_conn_t *c)
{
    on_handle_closed(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    pt_conn_t *c = req->data;
    free(req);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void pt_conn_close(pt_conn_t *c, bool graceful)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    c->pause |= PT_CONN_PAUSE_CLOSING;
    if (c->stream != NULL)
        pt_stream_abort(c->stream, PT_FLAG_DC);
    pt_list_remove(&c->link);
    if (c->capture != NULL)
        pt_capture_on_conn_close(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->is_reading = false;
    set_timer(c, PT_CONN_TIMER_NONE, 0);
    if (graceful && c->tls != NULL)
        pt_tls_stream_close_notify(c);
    if (graceful) {
        /* uv_shutdown completes after the queued writes: the response goes out whole. */
        uv_shutdown_t *req = malloc(sizeof(*req));
        if (req != NULL) {
            req->data = c;
            if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
                return;
            free(req);
        }
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* --- the connection's timer ---
 * A connection has one deadline at a time (header read, keep-alive idle, capture), kept in one
 * of its worker's lists, one per kind, in deadline order, under one libuv timer per worker: an
 * idle connection carries 24 bytes for it instead of a uv_timer_t. Within a kind every
 * connection waits as long, so a new deadline goes at the tail (a reload that changes a
 * timeout, or capture's two waits, insert a few places earlier). */

static void fire(pt_conn_t *c, pt_conn_timer_mode_t mode);

static pt_conn_t *first_due(pt_list_t *list)
{
    return pt_list_is_empty(list) ? NULL : PT_CONTAINER_OF(list->next, pt_conn_t, timer_link);
}

static void on_worker_timer(uv_timer_t *t);

static void arm_worker_timer(pt_worker_t *w)
{
    uint64_t due = UINT64_MAX;
    for (unsigned i = 0; i < PT_WORKER_CONN_TIMER_LISTS; i++) {
        pt_conn_t *c = first_due(&w->conn_deadlines[i]);
        if (c != NULL && c->deadline_ms < due)
            due = c->deadline_ms;
    }
    w->conn_timer_due = due;
    if (due == UINT64_MAX) {
        uv_timer_stop(&w->conn_timer);
        return;
    }
    uint64_t now = uv_now(&w->loop);
    uv_timer_start(&w->conn_timer, on_worker_timer, due > now ? due - now : 0, 0);
}

/* A deadline that was removed is not taken off the worker's timer: it fires early at worst
 * and is re-armed for the next one. */
static void on_worker_timer(uv_timer_t *t)
{
    pt_worker_t *w = t->data;
    uint64_t now = uv_now(&w->loop);
    for (unsigned i = 0; i < PT_WORKER_CONN_TIMER_LISTS; i++) {
        pt_conn_t *c;
        while ((c = first_due(&w->conn_deadlines[i])) != NULL && c->deadline_ms <= now) {
            pt_conn_timer_mode_t mode = c->timer_mode;
            pt_list_remove(&c->timer_link);
            c->timer_mode = PT_CONN_TIMER_NONE;
            fire(c, mode);
        }
    }
    arm_worker_timer(w);
}

void pt_conn_init_timers(pt_worker_t *w)
{
    uv_timer_init(&w->loop, &w->conn_timer);
    w->conn_timer.data = w;
    w->conn_timer_due = UINT64_MAX;
    for (unsigned i = 0; i < PT_WORKER_CONN_TIMER_LISTS; i++)
        pt_list_init(&w->conn_deadlines[i]);
}

static void set_timer(pt_conn_t *c, pt_conn_timer_mode_t mode, uint64_t ms)
{
    pt_worker_t *w = c->worker;
    if (pt_list_is_linked(&c->timer_link))
        pt_list_remove(&c->timer_link);
    c->timer_mode = PT_CONN_TIMER_NONE;
    if (mode == PT_CONN_TIMER_NONE || ms == 0)
        return;
    c->timer_mode = mode;
    c->deadline_ms = uv_now(&w->loop) + ms;
    pt_list_t *list = &w->conn_deadlines[mode - 1], *at = list->prev;
    while (at != list && PT_CONTAINER_OF(at, pt_conn_t, timer_link)->deadline_ms > c->deadline_ms)
        at = at->prev;
    pt_list_insert_head(at, &c->timer_link);
    if (c->deadline_ms < w->conn_timer_due)
        arm_worker_timer(w);
}

static void fire(pt_conn_t *c, pt_conn_timer_mode_t mode)
{
    switch (mode) {
    case PT_CONN_TIMER_IDLE:
        PT_STAT_INC(&c->worker->stats, downstream_cx_idle_timeout);
        pt_conn_close(c, false);
        break;
    case PT_CONN_TIMER_HEADER:
        PT_STAT_INC(&c->worker->stats, downstream_cx_header_timeout);
        if (c->tls != NULL)
            pt_tls_stream_on_header_timeout(c);
        if (c->stream == NULL) {
            /* Not a byte of a request yet: nothing to answer. */
            pt_conn_close(c, false);
            break;
        }
        /* RFC 9110 §15.5.9: 408 tells the client the server gave up waiting. */
        c->close_after_response = true;
        pt_stream_respond(c->stream, 408, "request header timeout", PT_FLAG_DPE);
        break;
    case PT_CONN_TIMER_CAPTURE: pt_capture_on_timer(c); break;
    case PT_CONN_TIMER_NONE: break;
    }
}

void pt_conn_start_capture_timer(pt_conn_t *c, uint64_t ms)
{
    set_timer(c, ms > 0 ? PT_CONN_TIMER_CAPTURE : PT_CONN_TIMER_NONE, ms);
}

/* --- codec callbacks --- */

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *head)
{
    pt_conn_t *c = p->data;
    if (c->timer_mode == PT_CONN_TIMER_HEADER)
        set_timer(c, PT_CONN_TIMER_NONE, 0);
    if (!p->framing.is_keep_alive || c->worker->is_draining)
        c->close_after_response = true;
    pt_stream_start(c->stream, head);
    return c->is_closing ? -1 : 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    c->codec->is_body_started = true;
    /* A stream that answered before the request ended has gone; the connection closes after
     * its response, and the rest of the body is dropped. */
    if (c->stream != NULL)
        pt_stream_on_request_body(c->stream, at, len, c->in.buf);
    return c->is_closing ? -1 : 0;
}

static int on_trailers(pt_http1_parser_t *p, pt_header_t *t, size_t n)
{
    pt_conn_t *c = p->data;
    if (c->stream != NULL)
        pt_stream_on_request_trailers(c->stream, t, n);
    return c->is_closing ? -1 : 0;
}

static int on_complete(pt_http1_parser_t *p)
{
    pt_conn_t *c = p->data;
    if (c->stream != NULL)
        pt_stream_on_request_complete(c->stream);
    return c->is_closing ? -1 : 0;
}

static const pt_http1_callbacks_t request_callbacks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_trailers = on_trailers,
    .on_complete = on_complete,
};

/* --- the server codec: taken when a request begins, given back when the connection is idle,
 * so an idle keep-alive connection holds none (http1_server.c keeps a per-worker cache). */

static bool in_message(const pt_conn_t *c)
{
    return c->codec != NULL && pt_http1_parser_in_message(&c->codec->parser);
}

static void take_codec(pt_conn_t *c)
{
    if (c->codec == NULL)
        c->codec = pt_http1_server_take(c, &request_callbacks);
}

static void drop_codec(pt_conn_t *c)
{
    if (c->codec == NULL)
        return;
    pt_http1_server_drop(c->worker, c->codec);
    c->codec = NULL;
}

/* Nothing of a request is in progress: the parser goes, unless it is running (a stream that
 * finished inside one of its callbacks) or has seen the start of the next request. */
static void drop_idle_codec(pt_conn_t *c)
{
    if (!c->is_parsing && c->codec != NULL && pt_http1_parser_holds_nothing(&c->codec->parser))
        drop_codec(c);
}

/* --- reading --- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    pt_conn_t *c = h->data;
    size_t size;
    char *at = c->tls != NULL ? pt_tls_stream_read_space(c, &size) : pt_rbuf_space(&c->in, &size);
    *out = uv_buf_init(at, (unsigned)size);
}

/* A complete request waiting for its response does not stop reading by itself: the next
 * pipelined bytes (and a client's EOF) are read into the slab while there is room, which spares
 * two epoll_ctl calls per request. Reading stops when the slab is nearly full. */
static bool slab_has_room(const pt_conn_t *c)
{
    return c->in.buf == NULL || c->in.buf->cap - c->in.len >= 4096 || c->in.off > 0;
}

static void update_reading(pt_conn_t *c)
{
    unsigned hard = c->pause & ~(unsigned)PT_CONN_PAUSE_PIPELINE;
    bool want =
        hard == 0 && !c->peer_eof && !c->is_closing && !c->is_handed_off &&
        (!(c->pause & PT_CONN_PAUSE_PIPELINE) || slab_has_room(c)) &&
        !(c->codec != NULL && c->codec->parser.is_upgraded && (c->pause & PT_CONN_PAUSE_PIPELINE));
    if (want && !c->is_reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->is_reading = true;
    } else if (!want && c->is_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->is_reading = false;
    }
}

void pt_conn_pause_reading(pt_conn_t *c, unsigned reason)
{
    c->pause |= reason;
    update_reading(c);
}

void pt_conn_resume_reading(pt_conn_t *c, unsigned reason)
{
    c->pause &= ~reason;
    update_reading(c);
}

static void reject(pt_conn_t *c)
{
    PT_STAT_INC(&c->worker->stats, downstream_rq_invalid);
    c->close_after_response = true;
    int status = c->codec->parser.error_status ? c->codec->parser.error_status : 400;
    pt_log_debug("downstream %s: request refused with %d: %s", c->peer_ip, status,
                 c->codec->parser.error_reason ? c->codec->parser.error_reason : "invalid");
    if (c->stream != NULL && c->stream->response_head_sent) {
        /* The request was already answered in part (an early reply): just close. */
        pt_conn_close(c, false);
        return;
    }
    if (c->stream == NULL)
        c->stream = pt_stream_new(c);
    pt_stream_respond(c->stream, status, c->codec->parser.error_reason, PT_FLAG_DPE);
}

static void begin_message(pt_conn_t *c)
{
    c->stream = pt_stream_new(c);
    take_codec(c);
    pt_http1_server_begin(c->codec, &c->stream->arena);
    set_timer(c, PT_CONN_TIMER_HEADER, c->worker->config->proxy.header_timeout_ms);
}

static void process(pt_conn_t *c)
{
    /* A captured connection is parsed once its first bytes look like HTTP/1. */
    if (c->capture != NULL && c->capture->state != PT_CAPTURE_IDLE &&
        (c->in.buf == NULL || c->in.off == c->in.len || !pt_capture_on_bytes(c)))
        return;
    while (!c->is_closing && !c->is_handed_off && c->in.buf != NULL && c->in.off < c->in.len &&
           !(c->pause & PT_CONN_PAUSE_PIPELINE)) {
        if (c->stream == NULL && !in_message(c)) {
            if (c->close_after_response) {
                /* Bytes after a request that ends the connection are never parsed. */
                c->in.off = c->in.len;
                break;
            }
            begin_message(c);
        }
        size_t consumed = 0;
        c->is_parsing = true;
        int r = pt_http1_parser_execute(&c->codec->parser, c->in.buf->data + c->in.off,
                                        c->in.len - c->in.off, &consumed);
        c->is_parsing = false;
        c->in.off += consumed;
        if (r == PT_HTTP1_OK)
            break;
        if (r == PT_HTTP1_PAUSED) {
            if (c->codec->parser.is_upgraded) {
                /* The rest is tunnel data for the upstream if it accepts the upgrade. */
                c->pause |= PT_CONN_PAUSE_PIPELINE;
                if (c->stream == NULL)
                    pt_conn_close(c, true);
                break;
            }
            if (c->stream != NULL) {
                c->pause |= PT_CONN_PAUSE_PIPELINE;
                break;
            }
            pt_http1_parser_resume(&c->codec->parser);
            continue;
        }
        if (r == PT_HTTP1_EINVALID)
            reject(c);
        else if (!c->is_closing)
            pt_conn_close(c, false);
        break;
    }
    if (!c->is_handed_off)
        pt_rbuf_drop_consumed(&c->in);
    if (c->is_closing || c->is_handed_off)
        return;
    /* A stream answered within this parse (a direct response) leaves the connection idle. */
    if (c->stream == NULL && !in_message(c)) {
        drop_idle_codec(c);
        if (c->timer_mode == PT_CONN_TIMER_NONE)
            set_timer(c, PT_CONN_TIMER_IDLE, c->worker->config->proxy.idle_timeout_ms);
    }
    update_reading(c);
}

static void on_peer_eof(pt_conn_t *c)
{
    c->peer_eof = true;
    update_reading(c);
    if (c->capture != NULL && c->capture->state == PT_CAPTURE_DETECTING) {
        pt_capture_on_eof(c);
        return;
    }
    if (c->stream != NULL) {
        /* A client may half-close after its last request and still read the responses: the
         * requests already read are answered first (see pt_conn_on_stream_done). */
        if (!c->stream->request_complete)
            pt_conn_close(c, false);
        return;
    }
    /* A partial request head is dropped without an answer, as the peer has gone. */
    pt_conn_close(c, !in_message(c));
}

/* TLS: plaintext the engine still holds once the codec made room in the read slab. */
static void pump_tls(pt_conn_t *c)
{
    while (c->tls != NULL && !c->is_closing && !c->is_handed_off &&
           !(c->pause & PT_CONN_PAUSE_PIPELINE)) {
        unsigned got = pt_tls_stream_pump(c);
        if (got & PT_TLS_STREAM_DATA)
            process(c);
        if ((got & PT_TLS_STREAM_EOF) && !c->is_closing)
            on_peer_eof(c);
        if (!(got & PT_TLS_STREAM_DATA))
            break;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt_conn_t *c = s->data;
    if (nread > 0) {
        unsigned got = PT_TLS_STREAM_DATA;
        if (c->tls != NULL)
            got = pt_tls_stream_on_read(c, (size_t)nread); /* plaintext into c->in */
        else
            c->in.len += (size_t)nread;
        if ((got & PT_TLS_STREAM_DATA) && (c->pause & PT_CONN_PAUSE_PIPELINE))
            update_reading(c); /* kept for later; stop when the slab fills */
        else if (got & PT_TLS_STREAM_DATA)
            process(c);
        if ((got & PT_TLS_STREAM_EOF) && !c->is_closing)
            on_peer_eof(c);
        if (c->tls != NULL)
            pump_tls(c);
        return;
    }
    pt_rbuf_drop_consumed(&c->in);
    if (nread == 0)
        return;
    if (nread == UV_EOF)
        on_peer_eof(c);
    else
        pt_conn_close(c, false);
}

/* --- writing --- */

static void on_write_done(void *owner, int status)
{
    pt_conn_t *c = owner;
    if (c->is_closing || c->is_handed_off)
        return;
    if (status < 0) {
        pt_conn_close(c, false);
        return;
    }
    if (c->stream != NULL &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= PT_WRITE_LOW_WATERMARK)
        pt_stream_on_downstream_drained(c->stream);
}

int pt_conn_write(pt_conn_t *c, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
                  unsigned n, const char *suffix, pt_buf_t *pin)
{
    if (c->is_closing)
        return UV_ECANCELED;
    if (c->tls != NULL)
        return pt_tls_stream_write(c, prefix, prefix_len, bufs, n, suffix);
    return pt_write((uv_stream_t *)&c->tcp, prefix, prefix_len, bufs, n, suffix, pin, on_write_done,
                    c);
}

int pt_conn_write2(pt_conn_t *c, uv_buf_t head, pt_buf_t *head_pin, uv_buf_t body,
                   pt_buf_t *body_pin, const char *suffix)
{
    if (c->is_closing)
        return UV_ECANCELED;
    uv_buf_t v[2] = {head, body};
    if (c->tls != NULL)
        return pt_tls_stream_write(c, NULL, 0, v, 2, suffix);
    return pt_write2((uv_stream_t *)&c->tcp, NULL, 0, v, 2, suffix, head_pin, body_pin,
                     on_write_done, c);
}

int pt_conn_write_chunk(pt_conn_t *c, const char *data, size_t len, pt_buf_t *pin)
{
    if (c->is_closing)
        return UV_ECANCELED;
    if (c->tls != NULL) {
        char line[24];
        int n = snprintf(line, sizeof(line), "%zx\r\n", len);
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        return pt_tls_stream_write(c, line, (size_t)n, &b, 1, "\r\n");
    }
    return pt_write_chunk((uv_stream_t *)&c->tcp, data, len, pin, on_write_done, c);
}

void pt_conn_send_head(pt_conn_t *c, const pt_http_msg_t *req, const pt_http_msg_t *resp)
{
    pt_http1_server_send_head(c->codec, c, req, resp);
}

bool pt_conn_send_data(pt_conn_t *c, const char *data, size_t len, pt_buf_t *pin)
{
    return pt_http1_server_send_data(c->codec, c, data, len, pin);
}

void pt_conn_send_end(pt_conn_t *c, const pt_header_t *trailers, size_t n)
{
    pt_http1_server_send_end(c->codec, c, trailers, n);
}

void pt_conn_send_continue(pt_conn_t *c, const pt_http_msg_t *req)
{
    pt_http1_server_send_continue(c->codec, c, req);
}

bool pt_conn_cancel_head(pt_conn_t *c)
{
    return c->codec == NULL || pt_http1_server_cancel_head(c->codec);
}

bool pt_conn_is_response_started(const pt_conn_t *c)
{
    return c->codec != NULL && c->codec->is_head_written;
}

bool pt_conn_is_write_congested(pt_conn_t *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > PT_WRITE_HIGH_WATERMARK;
}

/* --- lifecycle --- */

void pt_conn_on_stream_done(pt_conn_t *c)
{
    if (c->is_closing || c->is_handed_off)
        return;
    if (c->close_after_response || c->worker->is_draining) {
        pt_conn_close(c, true);
        return;
    }
    if (c->pause & PT_CONN_PAUSE_PIPELINE) {
        c->pause &= ~PT_CONN_PAUSE_PIPELINE;
        pt_http1_parser_resume(&c->codec->parser);
        process(c);
    }
    /* Pipelined plaintext left in the engine when the slab was full. */
    pump_tls(c);
    if (c->is_closing)
        return;
    if (c->peer_eof && c->stream == NULL) {
        pt_conn_close(c, true);
        return;
    }
    if (c->stream == NULL && !in_message(c)) {
        drop_idle_codec(c);
        set_timer(c, PT_CONN_TIMER_IDLE, c->worker->config->proxy.idle_timeout_ms);
    }
    update_reading(c);
}

void pt_conn_drain(pt_conn_t *c)
{
    if (c->stream == NULL && !in_message(c))
        pt_conn_close(c, true);
    else
        c->close_after_response = true;
}

void pt_conn_detach(pt_conn_t *c)
{
    if (c->is_handed_off)
        return;
    c->is_handed_off = true;
    pt_list_remove(&c->link);
    if (c->is_reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->is_reading = false;
    set_timer(c, PT_CONN_TIMER_NONE, 0);
}

void pt_conn_close_detached(pt_conn_t *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

pt_relay_end_t pt_conn_relay_end(pt_conn_t *c)
{
    pt_conn_detach(c);
    pt_relay_end_t e = {.tcp = &c->tcp,
                        .tls = c->tls != NULL ? pt_tls_stream_engine(c) : NULL,
                        .in = c->in,
                        .on_closed = on_tunnel_side_closed,
                        .owner = c};
    c->in = (pt_rbuf_t){0};
    return e;
}

pt_relay_t *pt_conn_hand_off_to_tunnel(pt_conn_t *c, pt_upstream_t *up)
{
    PT_STAT_INC(&c->worker->stats, tunnel_total);
    pt_relay_end_t peer = {.tcp = &up->tcp,
                           .tls = pt_tls_upstream_engine(up),
                           .in = pt_upstream_take_unread(up),
                           .on_closed = pt_upstream_on_tunnel_closed,
                           .owner = up};
    return pt_relay_start(c->worker, pt_conn_relay_end(c), peer,
                          c->worker->config->proxy.idle_timeout_ms);
}

pt_relay_t *pt_conn_hand_off(pt_conn_t *c, uv_tcp_t *peer, void (*peer_closed)(void *),
                             void *peer_owner)
{
    pt_relay_end_t e = {.tcp = peer, .on_closed = peer_closed, .owner = peer_owner};
    return pt_relay_start(c->worker, pt_conn_relay_end(c), e,
                          c->worker->config->proxy.idle_timeout_ms);
}

void pt_conn_accept(pt_worker_t *w, int fd, const pt_listener_config_t *lc)
{
    pt_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    c->handles_open = 1;
    pt_list_init(&c->timer_link);
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        c->worker = w;
        atomic_fetch_add(&n_conns, 1);
        PT_STAT_INC(&w->stats, downstream_cx_active);
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    c->worker = w;
    c->listener_port = lc->port;
    pt_list_init(&c->link);
    PT_STAT_INC(&w->stats, downstream_cx_total);
    PT_STAT_INC(&w->stats, downstream_cx_active);
    uint32_t now = atomic_fetch_add(&n_conns, 1) + 1;
    if (now > w->config->proxy.max_connections || w->is_draining) {
        PT_STAT_INC(&w->stats, downstream_cx_overflow);
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    pt_list_insert_tail(&w->conns, &c->link);

    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
    }
    const pt_proxy_settings_t *ps = &w->config->proxy;
    if (lc->tls != NULL && pt_tls_stream_start(c, on_write_done) != 0) {
        pt_conn_close(c, false);
        return;
    }
    if (lc->protocol == PT_LISTENER_CAPTURE_OUTBOUND ||
        lc->protocol == PT_LISTENER_CAPTURE_INBOUND) {
        if (pt_capture_start(c, lc) != 0 ||
            (c->capture->direction == PT_CAPTURE_INBOUND &&
             pt_tls_stream_start_inbound(c, c->capture->original_port, on_write_done) != 0)) {
            pt_conn_close(c, false);
            return;
        }
        if (c->capture->state == PT_CAPTURE_DETECTING)
            set_timer(c, PT_CONN_TIMER_CAPTURE, ps->sidecar.protocol_detection_timeout_ms);
        else if (c->capture->state == PT_CAPTURE_IDLE)
            set_timer(c, PT_CONN_TIMER_HEADER, ps->header_timeout_ms); /* declared HTTP */
    } else {
        /* The first request must arrive as promptly as any request head. */
        set_timer(c, PT_CONN_TIMER_HEADER, ps->header_timeout_ms);
    }
    update_reading(c);
}
