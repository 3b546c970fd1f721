/* proxy/relay.c
 * Byte relay (see relay.h) and the TCP route's accept path. A side's bytes are written to the
 * other side straight from the slab they were read into; each write pins the slab. */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "write.h"

static void relay_close(pt_relay_t *r);
static void start_reading(pt_relay_side_t *s);

static pt_relay_side_t *other(pt_relay_side_t *s)
{
    pt_relay_t *r = s->relay;
    return s == &r->side[0] ? &r->side[1] : &r->side[0];
}

static void relay_handle_closed(pt_relay_t *r)
{
    if (--r->handles_open != 0)
        return;
    pt_worker_t *w = r->worker;
    pt_list_remove(&r->link);
    if (r->tcp_service[0] != '\0') {
        PT_STAT_DEC(&w->stats, tcp_cx_active);
        pt_metrics_record_tcp_close(&w->metrics, r->tcp_service, r->side[1].bytes_read,
                                    r->side[0].bytes_read);
    }
    free(r);
    pt_worker_check_drained(w);
}

static void on_side_closed(uv_handle_t *h)
{
    pt_relay_t *r = h->data;
    pt_relay_side_t *s = (uv_tcp_t *)h == r->side[0].tcp ? &r->side[0] : &r->side[1];
    s->is_closed = true;
    pt_rbuf_release(&s->in);
    if (s->on_closed != NULL)
        s->on_closed(s->owner);
    relay_handle_closed(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    relay_handle_closed(h->data);
}

static void relay_close(pt_relay_t *r)
{
    if (r->is_closing)
        return;
    r->is_closing = true;
    uv_close((uv_handle_t *)&r->idle_timer, on_timer_closed);
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)r->side[i].tcp, on_side_closed);
}

void pt_relay_close(pt_relay_t *r)
{
    relay_close(r);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    pt_relay_side_t *s = req->data;
    pt_relay_t *r = s->relay;
    if (r->is_closing)
        return;
    s->write_shut = true;
    if (status < 0 || (r->side[0].write_shut && r->side[1].write_shut))
        relay_close(r);
}

static void on_write_done(void *owner, int status)
{
    pt_relay_side_t *dst = owner; /* the side written to */
    pt_relay_t *r = dst->relay;
    if (r->is_closing)
        return;
    if (status < 0) {
        relay_close(r);
        return;
    }
    pt_relay_side_t *src = other(dst);
    if (src->is_read_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)dst->tcp) <= PT_WRITE_LOW_WATERMARK) {
        src->is_read_paused = false;
        start_reading(src);
    }
}

static void forward(pt_relay_side_t *src, const char *data, size_t len, pt_buf_t *pin)
{
    pt_relay_t *r = src->relay;
    pt_relay_side_t *dst = other(src);
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    src->bytes_read += len;
    if (r->tcp_service[0] != '\0') {
        if (src == &r->side[0])
            PT_STAT_ADD(&r->worker->stats, tcp_bytes_received, len);
        else
            PT_STAT_ADD(&r->worker->stats, tcp_bytes_sent, len);
    }
    if (pt_write((uv_stream_t *)dst->tcp, NULL, 0, &b, 1, NULL, pin, on_write_done, dst) != 0) {
        relay_close(r);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)dst->tcp) > PT_WRITE_HIGH_WATERMARK) {
        src->is_read_paused = true;
        uv_read_stop((uv_stream_t *)src->tcp);
        src->is_reading = false;
    }
}

static pt_relay_side_t *side_of(uv_handle_t *h)
{
    pt_relay_t *r = h->data;
    return (uv_tcp_t *)h == r->side[0].tcp ? &r->side[0] : &r->side[1];
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    size_t size;
    char *at = pt_rbuf_space(&side_of(h)->in, &size);
    *out = uv_buf_init(at, (unsigned)size);
}

/* Sends what src has read and not yet passed on. */
static void forward_unconsumed(pt_relay_side_t *src)
{
    pt_rbuf_t *in = &src->in;
    if (in->buf == NULL || in->off == in->len)
        return;
    size_t off = in->off;
    in->off = in->len;
    forward(src, in->buf->data + off, in->len - off, in->buf);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
    pt_relay_t *r = h->data;
    pt_relay_side_t *s = side_of((uv_handle_t *)h);
    if (nread > 0) {
        r->last_activity_ms = uv_now(&r->worker->loop);
        s->in.len += (size_t)nread;
        forward_unconsumed(s);
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF) {
        relay_close(r);
        return;
    }
    /* Half-close: the peer is done sending; pass its FIN on once our writes are out. */
    s->read_eof = true;
    uv_read_stop(h);
    s->is_reading = false;
    pt_relay_side_t *dst = other(s);
    int i = dst == &r->side[0] ? 0 : 1;
    r->shutdown_req[i].data = dst;
    if (uv_shutdown(&r->shutdown_req[i], (uv_stream_t *)dst->tcp, on_shutdown) != 0)
        relay_close(r);
}

static void start_reading(pt_relay_side_t *s)
{
    if (s->is_reading || s->read_eof || s->is_read_paused || s->relay->is_closing)
        return;
    if (uv_read_start((uv_stream_t *)s->tcp, on_alloc, on_read) == 0)
        s->is_reading = true;
}

static void on_idle_timer(uv_timer_t *t)
{
    pt_relay_t *r = t->data;
    uint64_t now = uv_now(&r->worker->loop);
    uint64_t idle = now - r->last_activity_ms;
    if (idle >= r->idle_timeout_ms) {
        relay_close(r);
        return;
    }
    uv_timer_start(t, on_idle_timer, r->idle_timeout_ms - idle, 0);
}

pt_relay_t *pt_relay_start(pt_worker_t *w, uv_tcp_t *a, pt_relay_closed_cb a_closed, void *a_owner,
                           pt_rbuf_t a_in, uv_tcp_t *b, pt_relay_closed_cb b_closed, void *b_owner,
                           pt_rbuf_t b_in, uint64_t idle_timeout_ms)
{
    pt_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    r->worker = w;
    r->idle_timeout_ms = idle_timeout_ms;
    r->last_activity_ms = uv_now(&w->loop);
    r->side[0] = (pt_relay_side_t){
        .relay = r, .tcp = a, .on_closed = a_closed, .owner = a_owner, .in = a_in};
    r->side[1] = (pt_relay_side_t){
        .relay = r, .tcp = b, .on_closed = b_closed, .owner = b_owner, .in = b_in};
    a->data = b->data = r;
    uv_timer_init(&w->loop, &r->idle_timer);
    r->idle_timer.data = r;
    r->handles_open = 3;
    pt_list_insert_tail(&w->tunnels, &r->link);
    if (idle_timeout_ms > 0)
        uv_timer_start(&r->idle_timer, on_idle_timer, idle_timeout_ms, 0);
    forward_unconsumed(&r->side[0]);
    forward_unconsumed(&r->side[1]);
    start_reading(&r->side[0]);
    start_reading(&r->side[1]);
    return r;
}

/* --- TCP routes --- */

typedef struct tcp_session {
    uv_tcp_t downstream;
    uv_tcp_t upstream;
    uv_connect_t connect_req;
    uv_timer_t connect_timer;
    pt_worker_t *worker;
    pt_list_t link; /* in worker->connecting until connected or aborted */
    uint8_t handles_open;
    bool is_closing;
    bool is_relaying;
    char service[96]; /* the route's destination host, for metrics */
} tcp_session_t;

static void session_handle_closed(void *owner)
{
    tcp_session_t *s = owner;
    if (--s->handles_open == 0)
        free(s);
}

static void on_session_close(uv_handle_t *h)
{
    session_handle_closed(h->data);
}

static void session_abort(tcp_session_t *s)
{
    if (s->is_closing)
        return;
    s->is_closing = true;
    pt_list_remove(&s->link);
    PT_STAT_DEC(&s->worker->stats, tcp_cx_active);
    uv_close((uv_handle_t *)&s->connect_timer, on_session_close);
    uv_close((uv_handle_t *)&s->downstream, on_session_close);
    uv_close((uv_handle_t *)&s->upstream, on_session_close);
    pt_worker_check_drained(s->worker);
}

void pt_tcp_proxy_abort_connecting(pt_worker_t *w)
{
    while (!pt_list_is_empty(&w->connecting))
        session_abort(PT_CONTAINER_OF(w->connecting.next, tcp_session_t, link));
}

static void on_session_connect(uv_connect_t *req, int status)
{
    tcp_session_t *s = req->data;
    if (s->is_closing)
        return;
    if (status < 0 || s->worker->is_draining) {
        if (status < 0)
            PT_STAT_INC(&s->worker->stats, upstream_cx_connect_fail);
        session_abort(s); /* a drain started while connecting: no new relay */
        return;
    }
    pt_list_remove(&s->link);
    uv_tcp_nodelay(&s->upstream, 1);
    uv_close((uv_handle_t *)&s->connect_timer, on_session_close);
    s->is_relaying = true;
    pt_rbuf_t none = {0};
    pt_relay_t *r =
        pt_relay_start(s->worker, &s->downstream, session_handle_closed, s, none, &s->upstream,
                       session_handle_closed, s, none, s->worker->config->proxy.idle_timeout_ms);
    /* From here the connection counts in the TCP route's metrics, until the relay closes. */
    snprintf(r->tcp_service, sizeof(r->tcp_service), "%s", s->service);
    pt_metrics_record_tcp_open(&s->worker->metrics, r->tcp_service);
}

static void on_session_connect_timeout(uv_timer_t *t)
{
    tcp_session_t *s = t->data;
    PT_STAT_INC(&s->worker->stats, upstream_cx_connect_timeout);
    session_abort(s);
}

void pt_tcp_proxy_accept(pt_worker_t *w, uv_stream_t *listener, const pt_listener_config_t *lc)
{
    tcp_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->worker = w;
    pt_list_init(&s->link);
    uv_tcp_init(&w->loop, &s->downstream);
    s->downstream.data = s;
    if (uv_accept(listener, (uv_stream_t *)&s->downstream) != 0) {
        s->handles_open = 1;
        s->is_closing = true;
        uv_close((uv_handle_t *)&s->downstream, on_session_close);
        return;
    }
    uv_tcp_init(&w->loop, &s->upstream);
    uv_timer_init(&w->loop, &s->connect_timer);
    s->upstream.data = s->connect_timer.data = s->connect_req.data = s;
    s->handles_open = 3;
    /* Until its upstream answers, the session is in no relay: the drain must still see it. */
    pt_list_insert_tail(&w->connecting, &s->link);
    PT_STAT_INC(&w->stats, tcp_cx_total);
    PT_STAT_INC(&w->stats, tcp_cx_active);
    const pt_cluster_t *cl = lc->tcp_cluster;
    if (cl != NULL)
        snprintf(s->service, sizeof(s->service), "%s", cl->host);
    if (cl == NULL || cl->n_endpoints == 0 || w->is_draining) {
        PT_STAT_INC(&w->stats, upstream_rq_no_healthy);
        session_abort(s);
        return;
    }
    /* The TCP balancer: no request head, so of the hash keys only useSourceIp applies; least
     * request is not counted for TCP sessions (a random pair, the first chosen). */
    char peer_ip[64] = "";
    struct sockaddr_storage peer;
    int peer_len = (int)sizeof(peer);
    if (uv_tcp_getpeername(&s->downstream, (struct sockaddr *)&peer, &peer_len) == 0) {
        if (peer.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&peer, peer_ip, sizeof(peer_ip));
        else if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, peer_ip, sizeof(peer_ip));
    }
    const pt_endpoint_t *ep = pt_worker_pick_endpoint(w, w->config, cl, NULL, peer_ip, false);
    uv_tcp_nodelay(&s->downstream, 1);
    if (ep == NULL || uv_tcp_connect(&s->connect_req, &s->upstream,
                                     (const struct sockaddr *)&ep->addr, on_session_connect) != 0) {
        PT_STAT_INC(&w->stats, upstream_cx_connect_fail);
        session_abort(s);
        return;
    }
    uv_timer_start(&s->connect_timer, on_session_connect_timeout,
                   w->config->proxy.connect_timeout_ms, 0);
}
