/* proxy/conn.c
 * The downstream connection: socket, read slab, TLS, protocol detection, timers and writes.
 * What the bytes mean is the server codec's (http1_server.c), which it drives through
 * pt_conn_codec_ops_t; what a request means is stream.c's.
 *
 * An idle keep-alive connection holds no read slab (the slab is dropped as soon as every byte
 * in it was parsed; body slices still being written keep their own refs), no codec state and
 * no stream (both come from per-worker caches when a request begins), and no timer handle (its
 * deadline sits in a worker list). */
#include "conn.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http1_server.h"
#include "http2_server.h"
#include "log.h"
#include "relay.h"
#include "tls_stream.h"
#include "tls_upstream.h"
#include "upstream.h"
#include "write.h"

/* Connections of the whole process, against proxy.max_connections. */
static _Atomic uint32_t n_conns;

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void set_timer(pt_conn_t *c, pt_conn_timer_mode_t mode, uint64_t ms);

static void on_handle_closed(pt_conn_t *c)
{
    if (--c->handles_open != 0)
        return;
    pt_worker_t *w = c->worker;
    pt_rbuf_release(&c->in);
    c->codec_ops->free(c);
    if (pt_list_is_linked(&c->timer_link))
        pt_list_remove(&c->timer_link);
    pt_tls_stream_free(c);
    atomic_fetch_sub(&n_conns, 1);
    PT_STAT_DEC(&w->stats, downstream_cx_active);
    free(c->capture);
    free(c->chaos_proxy);
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
    c->codec_ops->on_close(c);
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
    case PT_CONN_TIMER_STALL:
        /* The client read nothing of the response for idleTimeout. */
        PT_STAT_INC(&c->worker->stats, downstream_cx_idle_timeout);
        pt_conn_close(c, false);
        break;
    case PT_CONN_TIMER_HEADER:
        PT_STAT_INC(&c->worker->stats, downstream_cx_header_timeout);
        if (c->tls != NULL)
            pt_tls_stream_on_header_timeout(c);
        c->codec_ops->on_header_timeout(c);
        break;
    case PT_CONN_TIMER_CAPTURE: pt_capture_on_timer(c); break;
    case PT_CONN_TIMER_NONE: break;
    }
}

void pt_conn_start_capture_timer(pt_conn_t *c, uint64_t ms)
{
    set_timer(c, ms > 0 ? PT_CONN_TIMER_CAPTURE : PT_CONN_TIMER_NONE, ms);
}

void pt_conn_set_timer(pt_conn_t *c, pt_conn_timer_mode_t mode)
{
    const pt_proxy_settings_t *ps = &c->worker->config->proxy;
    set_timer(c, mode, mode == PT_CONN_TIMER_HEADER ? ps->header_timeout_ms : ps->idle_timeout_ms);
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

void pt_conn_update_reading(pt_conn_t *c)
{
    unsigned hard = c->pause & ~(unsigned)PT_CONN_PAUSE_PIPELINE;
    bool want = hard == 0 && !c->peer_eof && !c->is_closing && !c->is_handed_off &&
                (!(c->pause & PT_CONN_PAUSE_PIPELINE) || slab_has_room(c));
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
    pt_conn_update_reading(c);
}

void pt_conn_resume_reading(pt_conn_t *c, unsigned reason)
{
    c->pause &= ~reason;
    pt_conn_update_reading(c);
}

/* h2c with prior knowledge (RFC 9113 §3.3): a client whose first bytes are the HTTP/2 preface
 * gets the HTTP/2 codec; any other first bytes, HTTP/1. False while what came is a prefix of
 * the preface. */
static bool choose_codec(pt_conn_t *c)
{
    size_t n = c->in.len - c->in.off;
    if (memcmp(c->in.buf->data + c->in.off, PT_HTTP2_PREFACE,
               n < PT_HTTP2_PREFACE_LEN ? n : PT_HTTP2_PREFACE_LEN) != 0) {
        c->may_be_h2c = false;
        return true;
    }
    if (n < PT_HTTP2_PREFACE_LEN)
        return false;
    c->may_be_h2c = false;
    c->codec_ops = &pt_http2_server_conn_ops;
    return true;
}

static void process(pt_conn_t *c)
{
    /* A captured connection is parsed once its first bytes look like HTTP/1. */
    if (c->capture != NULL && c->capture->state != PT_CAPTURE_IDLE &&
        (c->in.buf == NULL || c->in.off == c->in.len || !pt_capture_on_bytes(c)))
        return;
    if (c->may_be_h2c && c->in.buf != NULL && c->in.off < c->in.len && !choose_codec(c))
        return;
    c->codec_ops->on_bytes(c);
}

static void on_peer_eof(pt_conn_t *c)
{
    c->peer_eof = true;
    pt_conn_update_reading(c);
    if (c->capture != NULL && c->capture->state == PT_CAPTURE_DETECTING) {
        pt_capture_on_eof(c);
        return;
    }
    c->codec_ops->on_peer_eof(c);
}

void pt_conn_pump_tls(pt_conn_t *c)
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
            pt_conn_update_reading(c); /* kept for later; stop when the slab fills */
        else if (got & PT_TLS_STREAM_DATA)
            process(c);
        if ((got & PT_TLS_STREAM_EOF) && !c->is_closing)
            on_peer_eof(c);
        if (c->tls != NULL)
            pt_conn_pump_tls(c);
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
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (c->timer_mode == PT_CONN_TIMER_STALL) /* the client reads: it has not stalled */
        pt_conn_set_timer(c, queued > PT_WRITE_LOW_WATERMARK ? PT_CONN_TIMER_STALL
                                                             : PT_CONN_TIMER_NONE);
    if (queued <= PT_WRITE_LOW_WATERMARK)
        c->codec_ops->on_drained(c);
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

bool pt_conn_is_write_congested(pt_conn_t *c)
{
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= PT_WRITE_HIGH_WATERMARK)
        return false;
    /* The producer pauses; a client that never reads must not hold the exchange forever. */
    if (c->timer_mode == PT_CONN_TIMER_NONE)
        pt_conn_set_timer(c, PT_CONN_TIMER_STALL);
    return true;
}

/* --- lifecycle --- */

void pt_conn_drain(pt_conn_t *c)
{
    if (c->codec_ops->is_idle(c))
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
                             void *peer_owner, const pt_l4_filter_t *filters, size_t n_filters)
{
    pt_relay_end_t e = {.tcp = peer, .on_closed = peer_closed, .owner = peer_owner};
    return pt_relay_start_filtered(c->worker, pt_conn_relay_end(c), e,
                                   c->worker->config->proxy.idle_timeout_ms, filters, n_filters);
}

/* A connection for fd, counted, on the listener of port (0: none in the snapshot); NULL when it
 * was refused (over maxConnections, draining) or could not be opened: fd is closed then. */
static pt_conn_t *conn_open(pt_worker_t *w, int fd, uint16_t port)
{
    pt_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    c->codec_ops = &pt_http1_server_conn_ops;
    c->handles_open = 1;
    pt_list_init(&c->timer_link);
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        c->worker = w;
        atomic_fetch_add(&n_conns, 1);
        PT_STAT_INC(&w->stats, downstream_cx_active);
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return NULL;
    }
    c->worker = w;
    c->listener_port = port;
    pt_list_init(&c->link);
    PT_STAT_INC(&w->stats, downstream_cx_total);
    PT_STAT_INC(&w->stats, downstream_cx_active);
    uint32_t now = atomic_fetch_add(&n_conns, 1) + 1;
    if (now > w->config->proxy.max_connections || w->is_draining) {
        PT_STAT_INC(&w->stats, downstream_cx_overflow);
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return NULL;
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
    return c;
}

void pt_conn_accept(pt_worker_t *w, int fd, const pt_listener_config_t *lc)
{
    uint16_t port = lc->port;
    if (lc->chaos_proxy != NULL) { /* the store's socket: its port is not in the config */
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    }
    pt_conn_t *c = conn_open(w, fd, port);
    if (c == NULL)
        return;
    if (lc->chaos_proxy != NULL && (c->chaos_proxy = strdup(lc->chaos_proxy)) == NULL)
        abort();
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
        c->may_be_h2c = c->tls == NULL; /* detection finds the preface; a declared port too */
    } else {
        /* The first request must arrive as promptly as any request head. */
        set_timer(c, PT_CONN_TIMER_HEADER, ps->header_timeout_ms);
        c->may_be_h2c = lc->protocol == PT_LISTENER_HTTP && lc->tls == NULL;
    }
    pt_conn_update_reading(c);
}

void pt_conn_accept_tls(pt_worker_t *w, int fd, struct ssl_ctx_st *ctx, struct pt_l4_direct *direct)
{
    pt_conn_t *c = conn_open(w, fd, 0);
    if (c == NULL) {
        free(direct);
        return;
    }
    if (pt_tls_stream_start_direct(c, ctx, direct, on_write_done) != 0) {
        pt_conn_close(c, false);
        return;
    }
    /* The handshake is bounded like a request head, as on a Gateway TLS server. */
    set_timer(c, PT_CONN_TIMER_HEADER, w->config->proxy.header_timeout_ms);
    pt_conn_update_reading(c);
}
