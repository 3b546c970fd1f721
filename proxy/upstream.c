/* proxy/upstream.c
 * Upstream connections: connect with a timeout, read and write for the connection's client
 * codec (http1_client.c), and keep-alive pooling per worker and endpoint address. */
#include "upstream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "breaker.h"
#include "conn.h"
#include "grpc.h"
#include "http2_client.h"
#include "keep_alive.h"
#include "log.h"
#include "stream.h" /* pt_stream_wake_pending */
#include "tls_upstream.h"
#include "write.h"

/* Idle pooled connections read into this: any byte or EOF there closes the connection, so
 * nothing needs keeping. */
static _Thread_local char idle_scratch[64];

static void on_purge_timer(uv_timer_t *t);

static void on_handle_closed(pt_upstream_t *up)
{
    if (--up->handles_open != 0)
        return;
    pt_rbuf_release(&up->in);
    pt_http2_client_free(up->h2);
    pt_tls_upstream_free(up->tls);
    if (up->counted != NULL) {
        pt_breaker_release(&up->counted->connections);
        pt_stream_wake_pending(up->worker, up->counted);
    }
    PT_STAT_DEC(&up->worker->stats, upstream_cx_active);
    free(up);
}

static void on_close(uv_handle_t *h)
{
    on_handle_closed(h->data);
}

void pt_upstream_on_tunnel_closed(void *up)
{
    on_handle_closed(up);
}

static void begin_busy(pt_upstream_t *up)
{
    pt_pool_t *pool = up->pool;
    up->is_busy = true;
    if (++pool->n_busy > pool->peak_busy)
        pool->peak_busy = pool->n_busy;
}

static void end_busy(pt_upstream_t *up)
{
    if (up->is_busy) {
        up->is_busy = false;
        up->pool->n_busy--;
    }
}

/* Out of pool->idle, or (HTTP/2) pool->shared. */
static void unlink_idle(pt_upstream_t *up)
{
    if (pt_list_is_linked(&up->link)) {
        pt_list_remove(&up->link);
        if (!up->is_busy)
            up->pool->n_idle--;
    }
}

void pt__upstream_close(pt_upstream_t *up)
{
    if (up->is_closing)
        return;
    up->is_closing = true;
    up->x.owner = NULL;
    unlink_idle(up);
    end_busy(up);
    uv_close((uv_handle_t *)&up->timer, on_close);
    uv_close((uv_handle_t *)&up->tcp, on_close);
    if (up->h2 != NULL) {
        uv_close((uv_handle_t *)&up->flusher, on_close);
        pt_http2_client_close_keepalive(up->h2, on_close);
    }
}

/* Detaches from the exchanges, closes, and tells their owners. */
void pt__upstream_fail(pt_upstream_t *up, pt_codec_reset_t why)
{
    void *owner = up->x.owner;
    const pt_codec_stream_cbs_t *cbs = up->x.cbs;
    pt__upstream_close(up);
    if (up->h2 != NULL)
        pt_http2_client_fail_all(up->h2, why);
    else if (owner != NULL)
        cbs->on_reset(owner, why, up->x.is_reused);
}

void pt__upstream_connect_failed(pt_upstream_t *up)
{
    pt__upstream_fail(up, PT_CODEC_RESET_CONNECT_FAILURE);
}

/* --- reading --- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    pt_upstream_t *up = h->data;
    if (!pt__upstream_wants_bytes(up)) {
        *out = uv_buf_init(idle_scratch, sizeof(idle_scratch));
        return;
    }
    size_t size;
    char *at = pt_rbuf_space(&up->in, &size);
    *out = uv_buf_init(at, (unsigned)size);
}

void pt__upstream_on_read(pt_upstream_t *up, ssize_t nread)
{
    if (!pt__upstream_wants_bytes(up)) {
        /* Idle in the pool: the upstream closed it, or sent bytes nobody asked for. */
        if (nread != 0) {
            PT_STAT_INC(&up->worker->stats, upstream_cx_idle_closed);
            pt__upstream_close(up);
        }
        return;
    }
    if (nread > 0) {
        up->in.len += (size_t)nread;
        if (up->h2 != NULL)
            pt_http2_client_on_bytes(up->h2);
        else
            pt_http1_client_on_bytes(&up->codec);
        return;
    }
    pt_rbuf_drop_consumed(&up->in);
    if (nread == 0)
        return;
    up->is_peer_eof = true;
    if (nread == UV_EOF && up->h2 == NULL)
        pt_http1_client_on_eof(&up->codec);
    else
        pt__upstream_fail(up, PT_CODEC_RESET_CLOSED);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt__upstream_on_read(s->data, nread);
}

static void update_reading(pt_upstream_t *up)
{
    if (up->is_closing || up->is_handed_off || !up->is_connected)
        return;
    if (up->is_read_paused)
        uv_read_stop((uv_stream_t *)&up->tcp);
    else if (up->tls != NULL)
        pt_tls_upstream_read_start(up);
    else
        uv_read_start((uv_stream_t *)&up->tcp, on_alloc, on_read);
}

void pt__upstream_set_read_paused(pt_upstream_t *up, bool paused)
{
    up->is_read_paused = paused;
    update_reading(up);
}

/* --- writing --- */

void pt__upstream_on_write_done(void *owner, int status)
{
    pt_upstream_t *up = owner;
    if (up->is_closing || up->is_handed_off || !pt__upstream_wants_bytes(up))
        return;
    if (status < 0) {
        if (up->h2 != NULL)
            pt_http2_client_on_write_error(up->h2); /* the read side ends it (below) */
        else
            pt__upstream_fail(up, PT_CODEC_RESET_CLOSED);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&up->tcp) > PT_WRITE_LOW_WATERMARK)
        return;
    if (up->h2 != NULL)
        pt_http2_client_on_drained(up->h2);
    else
        up->x.cbs->on_drained(up->x.owner);
}

int pt__upstream_write(pt_upstream_t *up, const char *prefix, size_t prefix_len,
                       const uv_buf_t *bufs, unsigned n, const char *suffix, pt_buf_t *pin)
{
    if (up->is_closing)
        return UV_ECANCELED;
    if (up->tls != NULL)
        return pt_tls_upstream_write(up, prefix, prefix_len, bufs, n, suffix);
    return pt_write((uv_stream_t *)&up->tcp, prefix, prefix_len, bufs, n, suffix, pin,
                    pt__upstream_on_write_done, up);
}

bool pt__upstream_is_write_congested(pt_upstream_t *up)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&up->tcp) > PT_WRITE_HIGH_WATERMARK;
}

/* --- connecting and pooling --- */

static void on_timer(uv_timer_t *t)
{
    pt_upstream_t *up = t->data;
    if (!up->is_connected) {
        if (up->connect_error == 0)
            PT_STAT_INC(&up->worker->stats, upstream_cx_connect_timeout);
        pt__upstream_connect_failed(up);
        return;
    }
    if (up->h2 != NULL ? pt_http2_client_n_owned(up->h2) == 0 : up->x.owner == NULL) {
        PT_STAT_INC(&up->worker->stats, upstream_cx_idle_closed);
        pt__upstream_close(up);
    }
}

/* connectionPool.tcp.tcpKeepalive: SO_KEEPALIVE with the times given (the system's where not). */

static void set_keepalive(pt_upstream_t *up)
{
    if (!up->has_keepalive)
        return;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&up->tcp, &fd) != 0)
        return;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    int v;
    if ((v = (int)up->keepalive_time_s) > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v));
    if ((v = (int)up->keepalive_interval_s) > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v));
    if ((v = (int)up->keepalive_probes) > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v));
}

static void on_connect(uv_connect_t *req, int status)
{
    pt_upstream_t *up = req->data;
    if (up->is_closing)
        return;
    if (status < 0) {
        up->connect_error = status;
        pt__upstream_connect_failed(up);
        return;
    }
    uv_tcp_nodelay(&up->tcp, 1);
    set_keepalive(up);
    if (up->tls != NULL) {
        pt_tls_upstream_start(up); /* the connect timeout covers the handshake */
        return;
    }
    pt__upstream_connected(up);
}

void pt__upstream_connected(pt_upstream_t *up)
{
    up->is_connected = true;
    uv_timer_stop(&up->timer);
    update_reading(up);
    if (up->h2 != NULL)
        pt_http2_client_on_connected(up->h2);
    else
        up->x.cbs->on_ready(up->x.owner, false);
}

static unsigned pool_bucket(const struct sockaddr_storage *a, socklen_t len)
{
    const unsigned char *p = (const unsigned char *)a;
    unsigned h = 2166136261u;
    for (socklen_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % PT_POOL_BUCKETS;
}

/* The pool of ep's connections that speak HTTP/2 or not; NULL when there is none yet. */
static pt_pool_t *lookup_pool(const pt_worker_t *w, const pt_endpoint_t *ep, bool http2)
{
    unsigned b = pool_bucket(&ep->addr, ep->addr_len);
    const char *key = ep->tls != NULL ? ep->tls->pool_key : NULL;
    for (pt_pool_t *p = w->pools[b]; p != NULL; p = p->next)
        if (p->addr_len == ep->addr_len && memcmp(&p->addr, &ep->addr, ep->addr_len) == 0 &&
            p->is_http2 == http2 &&
            (key == NULL ? p->tls_key == NULL : p->tls_key != NULL && !strcmp(p->tls_key, key)))
            return p;
    return NULL;
}

static pt_pool_t *find_pool(pt_worker_t *w, const pt_endpoint_t *ep, bool http2)
{
    pt_pool_t *p = lookup_pool(w, ep, http2);
    if (p != NULL)
        return p;
    unsigned b = pool_bucket(&ep->addr, ep->addr_len);
    const char *key = ep->tls != NULL ? ep->tls->pool_key : NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL || (key != NULL && (p->tls_key = strdup(key)) == NULL))
        abort();
    memcpy(&p->addr, &ep->addr, ep->addr_len);
    p->addr_len = ep->addr_len;
    p->is_http2 = http2;
    pt_list_init(&p->idle);
    pt_list_init(&p->shared);
    p->next = w->pools[b];
    w->pools[b] = p;
    return p;
}

bool pt_upstream_is_http2(pt_worker_t *w, const pt_cluster_t *cl, const pt_endpoint_t *ep,
                          const pt_http_msg_t *req)
{
    if (req->is_upgrade)
        return false;
    /* Traffic relayed to its original destination (Istio's passthrough clusters: the inbound
     * to the app, an outbound address no service declares) has no declared protocol: a gRPC
     * call goes on as the client sent it, HTTP/2, the only protocol gRPC servers answer, as
     * Istio's passthrough clusters use the downstream protocol. Other requests keep HTTP/1.1,
     * which an app behind a sidecar may be limited to. */
    if (cl->is_original_dst)
        return req->version == PT_HTTP_20 && pt_grpc_is_request(req);
    bool is_mesh = ep->tls != NULL && ep->tls->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL;
    pt_upstream_protocol_t p = is_mesh ? cl->mesh_protocol : cl->protocol;
    if (p != PT_UPSTREAM_HTTP2 && !(p == PT_UPSTREAM_CLIENT && req->version == PT_HTTP_20))
        return false;
    const pt_pool_t *pool = is_mesh ? lookup_pool(w, ep, true) : NULL;
    return pool == NULL || pool->h2_refused_ms == 0 ||
           uv_now(&w->loop) - pool->h2_refused_ms >= PT_H2_REFUSAL_MS;
}

void pt__upstream_h2_refused(pt_upstream_t *up)
{
    /* uv_now is 0 only in a loop's first millisecond: 1 still says "refused". */
    uint64_t now = uv_now(&up->worker->loop);
    up->pool->h2_refused_ms = now > 0 ? now : 1;
    PT_STAT_INC(&up->worker->stats, upstream_cx_h2_refused);
    pt__upstream_fail(up, PT_CODEC_RESET_REFUSED);
}

/* An HTTP/2 connection takes one more stream to ep: below the upstream's concurrency, its
 * maxRequestsPerConnection and maxConnectionDuration, and no GOAWAY. */
static bool h2_has_room(const pt_upstream_t *up, const pt_endpoint_t *ep)
{
    /* A TLS handshake reads its settings from its streams' snapshot: a stream from another
     * snapshot waits for the connection to be up, or the settings could outlive every
     * snapshot that holds them (tls_upstream.h). A burst from one snapshot shares the
     * connection being made instead of opening one each. */
    return !up->is_closing &&
           (up->is_connected || up->tls == NULL || pt_tls_upstream_uses(up->tls, ep->tls)) &&
           pt_http2_client_has_room(up->h2) &&
           (up->max_requests == 0 || up->requests < up->max_requests) &&
           (up->expires_ms == 0 || uv_now(&up->worker->loop) < up->expires_ms);
}

/* A new stream on HTTP/2 connection up (busy, in pool->shared). */
static pt_exchange_t *open_h2_exchange(pt_upstream_t *up, const pt_codec_stream_cbs_t *cbs,
                                       void *ctx, bool *is_ready)
{
    pt_exchange_t *x = pt_http2_client_open(up->h2, cbs, ctx);
    x->is_reused = up->requests > 0;
    up->requests++;
    *is_ready = up->is_connected;
    return x;
}

static void start_busy_h2(pt_upstream_t *up)
{
    begin_busy(up);
    pt_list_insert_tail(&up->pool->shared, &up->link);
}

pt_exchange_t *pt_upstream_acquire(pt_worker_t *w, const pt_cluster_t *cl, const pt_endpoint_t *ep,
                                   const pt_codec_stream_cbs_t *cbs, void *ctx, bool fresh,
                                   bool http2, bool *is_ready)
{
    pt_pool_t *pool = find_pool(w, ep, http2);
    /* HTTP/2: a new connection only when every open one is full. */
    for (pt_list_t *l = pool->shared.next; http2 && !fresh && l != &pool->shared; l = l->next) {
        pt_upstream_t *up = PT_CONTAINER_OF(l, pt_upstream_t, link);
        if (h2_has_room(up, ep))
            return open_h2_exchange(up, cbs, ctx, is_ready);
    }
    if (!fresh && !pt_list_is_empty(&pool->idle)) {
        pt_upstream_t *up = PT_CONTAINER_OF(pool->idle.next, pt_upstream_t, link);
        unlink_idle(up);
        uv_timer_stop(&up->timer);
        if (up->h2 != NULL) {
            start_busy_h2(up);
            return open_h2_exchange(up, cbs, ctx, is_ready);
        }
        begin_busy(up);
        up->x.owner = ctx;
        up->x.cbs = cbs;
        up->counted = cl->state;
        up->x.is_reused = true;
        up->requests++;
        *is_ready = true;
        return &up->x;
    }
    pt_upstream_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        abort();
    up->worker = w;
    up->pool = pool;
    up->max_requests = cl->pool.max_requests_per_connection;
    up->idle_timeout_ms = cl->pool.idle_timeout_ms > 0 ? cl->pool.idle_timeout_ms
                                                       : w->config->proxy.upstream_idle_timeout_ms;
    if (cl->pool.max_connection_duration_ms > 0)
        up->expires_ms = uv_now(&w->loop) + cl->pool.max_connection_duration_ms;
    up->has_keepalive = cl->pool.has_keepalive;
    up->keepalive_time_s = cl->pool.keepalive_time_s;
    up->keepalive_interval_s = cl->pool.keepalive_interval_s;
    up->keepalive_probes = cl->pool.keepalive_probes;
    pt_list_init(&up->link);
    pt_exchange_t *x;
    if (http2) {
        /* Its requests are counted by http2MaxRequests, not as connections. */
        up->h2 = pt_http2_client_new(up);
        start_busy_h2(up);
        x = open_h2_exchange(up, cbs, ctx, is_ready);
    } else {
        pt_http1_client_init(&up->codec, up);
        begin_busy(up);
        up->x.owner = ctx;
        up->x.cbs = cbs;
        up->requests = 1;
        up->counted = cl->state;
        x = &up->x;
    }
    uv_tcp_init(&w->loop, &up->tcp);
    uv_timer_init(&w->loop, &up->timer);
    up->tcp.data = up->timer.data = up->connect_req.data = up;
    up->handles_open = 2;
    if (up->h2 != NULL) {
        uv_check_init(&w->loop, &up->flusher);
        up->flusher.data = up;
        up->handles_open++;
        if (pt_http2_client_init_keepalive(up->h2, &w->loop))
            up->handles_open++;
    }
    if (ep->tls != NULL && ep->tls->ctx != NULL &&
        (up->tls = pt_tls_upstream_new(ep->tls, cl, http2)) == NULL)
        abort();
    PT_STAT_INC(&w->stats, upstream_cx_total);
    PT_STAT_INC(&w->stats, upstream_cx_active);
    *is_ready = false;
    int err =
        uv_tcp_connect(&up->connect_req, &up->tcp, (const struct sockaddr *)&ep->addr, on_connect);
    if (err != 0) {
        /* Reported from the loop, never from inside the caller. */
        up->connect_error = err;
        uv_timer_start(&up->timer, on_timer, 0, 0);
    } else {
        uv_timer_start(&up->timer, on_timer,
                       cl->pool.connect_timeout_ms > 0 ? cl->pool.connect_timeout_ms
                                                       : w->config->proxy.connect_timeout_ms,
                       0);
    }
    return x;
}

void pt__upstream_h2_changed(pt_upstream_t *up)
{
    if (up->is_closing)
        return;
    bool reusable = pt_http2_client_is_reusable(up->h2);
    if (!up->is_busy) { /* idle in the pool: a GOAWAY or an error ends it */
        if (!reusable)
            pt__upstream_close(up);
        return;
    }
    if (!reusable && pt_list_is_linked(&up->link))
        pt_list_remove(&up->link); /* going away: no new stream joins it */
    if (pt_http2_client_n_owned(up->h2) > 0)
        return;
    if (pt_list_is_linked(&up->link))
        pt_list_remove(&up->link);
    pt__upstream_release(up, reusable, -1);
}

void pt__upstream_release(pt_upstream_t *up, bool reusable, int64_t keep_alive_s)
{
    pt_worker_t *w = up->worker;
    end_busy(up);
    if (up->is_closing || up->is_handed_off)
        return;
    /* Closed before the upstream's announced idle timeout can race a request written on it. */
    uint64_t idle_ms = pt_keep_alive_idle_ms(up->idle_timeout_ms, keep_alive_s);
    uint64_t now = uv_now(&w->loop);
    bool worn_out = (up->max_requests > 0 && up->requests >= up->max_requests) ||
                    (up->expires_ms > 0 && now >= up->expires_ms);
    if (!reusable || !up->is_connected || up->is_peer_eof || w->is_draining || worn_out ||
        idle_ms == 0) {
        pt__upstream_close(up);
        return;
    }
    /* An idle connection holds no maxConnections slot: idle connections on one worker must
     * not starve another worker's requests. Reusing it takes a slot again. */
    if (up->counted != NULL) {
        pt_breaker_release(&up->counted->connections);
        pt_stream_wake_pending(w, up->counted);
        up->counted = NULL;
    }
    pt_rbuf_drop_consumed(&up->in);
    up->is_read_paused = false;
    update_reading(up);
    pt_list_insert_head(&up->pool->idle, &up->link);
    up->pool->n_idle++;
    uint64_t idle = idle_ms;
    if (up->expires_ms > 0 && up->expires_ms - now < idle)
        idle = up->expires_ms - now; /* maxConnectionDuration ends its stay in the pool */
    uv_timer_start(&up->timer, on_timer, idle, 0);
    if (!uv_is_active((uv_handle_t *)&w->pool_purge_timer))
        uv_timer_start(&w->pool_purge_timer, on_purge_timer, PT_POOL_PURGE_MS, PT_POOL_PURGE_MS);
}

pt_rbuf_t pt_upstream_take_unread(pt_upstream_t *up)
{
    up->is_handed_off = true;
    up->x.owner = NULL;
    end_busy(up);
    uv_read_stop((uv_stream_t *)&up->tcp);
    uv_close((uv_handle_t *)&up->timer, on_close);
    pt_rbuf_t unread = up->in;
    up->in = (pt_rbuf_t){0};
    return unread;
}

uint32_t pt_upstream_purge_idle(pt_worker_t *w)
{
    uint32_t idle = 0;
    for (unsigned b = 0; b < PT_POOL_BUCKETS; b++) {
        for (pt_pool_t *p = w->pools[b]; p != NULL; p = p->next) {
            /* Halving rather than dropping to this period's peak: a burst's connections go in a
             * few periods, and traffic sparser than one request a period keeps a connection. */
            uint32_t decayed = (p->est_need + 1) / 2;
            p->est_need = p->peak_busy > decayed ? p->peak_busy : decayed;
            uint32_t keep = p->est_need > p->n_busy ? p->est_need - p->n_busy : 0;
            while (p->n_idle > keep) { /* the least recently used go first */
                PT_STAT_INC(&w->stats, upstream_cx_idle_purged);
                pt__upstream_close(PT_CONTAINER_OF(p->idle.prev, pt_upstream_t, link));
            }
            p->peak_busy = p->n_busy;
            idle += p->n_idle;
        }
    }
    return idle;
}

static void on_purge_timer(uv_timer_t *t)
{
    if (pt_upstream_purge_idle(t->data) == 0)
        uv_timer_stop(t); /* an idle worker does not wake up for nothing */
}

void pt_upstream_close_idle(pt_worker_t *w)
{
    for (unsigned b = 0; b < PT_POOL_BUCKETS; b++)
        for (pt_pool_t *p = w->pools[b]; p != NULL; p = p->next)
            while (!pt_list_is_empty(&p->idle))
                pt__upstream_close(PT_CONTAINER_OF(p->idle.next, pt_upstream_t, link));
}

void pt_upstream_free_pools(pt_worker_t *w)
{
    for (unsigned b = 0; b < PT_POOL_BUCKETS; b++) {
        pt_pool_t *p = w->pools[b];
        while (p != NULL) {
            pt_pool_t *next = p->next;
            free(p->tls_key);
            free(p);
            p = next;
        }
        w->pools[b] = NULL;
    }
}
