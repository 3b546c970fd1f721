/* proxy/l4_proxy.c
 * TCP and TLS listeners (see l4_proxy.h). A session owns the downstream socket (or, when TLS
 * is terminated, the conn.c connection that did the handshake: its socket and engine), the
 * upstream socket being connected and one timer (the ClientHello deadline, then the connect
 * timeout, which also bounds a TLS handshake with the upstream); once connected, both sockets
 * go to a relay and the session only waits for their close callbacks. Until then it sits in
 * worker->connecting, so a drain sees it. It holds a ref on the snapshot its listener came
 * from: a reload while it reads a ClientHello or connects frees nothing it uses. A route whose
 * endpoint has DestinationRule tls first runs the client handshake (tls_upstream.c's pipe);
 * the relay then encrypts towards the upstream. On a port a PASSTHROUGH server shares with
 * servers that terminate, conn.c and tls_stream.c read the ClientHello and hand the connection
 * over with those bytes (pt_l4_proxy_accept_passthrough); the rest is as for a TLS listener. */
#include "l4_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../filters/l4_registry.h"
#include "../tls/client_hello.h"
#include "conn.h"
#include "log.h"
#include "relay.h"
#include "router.h"
#include "scratch.h"
#include "tls_upstream.h"

typedef struct l4_session {
    uv_tcp_t downstream; /* accepted here, unless conn is set */
    pt_conn_t *conn;     /* TLS terminated: the connection that did the handshake */
    uv_tcp_t upstream;
    uv_connect_t connect_req;
    uv_timer_t timer; /* ClientHello deadline, then connect timeout */
    pt_worker_t *worker;
    pt_config_t *config; /* one ref, released when the session is freed */
    const pt_listener_config_t *listener;
    pt_list_t link;  /* in worker->connecting until relaying or aborted */
    pt_rbuf_t hello; /* TLS: the bytes read so far, relayed upstream first */
    uint8_t handles_open;
    bool is_closing;
    bool is_awaiting_hello; /* TLS: the timer is the ClientHello deadline */
    bool is_passthrough;    /* conn set, but its ClientHello is relayed, not terminated */
    char service[96];       /* the route's destination host (the metrics filter's conf) */
    /* TLS origination: the endpoint's DestinationRule tls and its cluster (in the snapshot the
     * session holds; tls NULL: plaintext), and the pipe that runs the handshake and keeps the
     * engine the relay uses. */
    const pt_upstream_tls_t *tls;
    const pt_cluster_t *cluster;
    pt_tls_pipe_t *pipe;
    /* Its L4 filters: a routed session's are set_routed_filters()', a session of
     * pt_l4_proxy_accept_direct (no listener config nor route) has its caller's. */
    bool is_direct;
    pt_l4_filter_t filters[PT_L4_MAX_FILTERS];
    size_t n_filters;
} l4_session_t;

/* A session of a listener: AuthorizationPolicy at accept, Istio's TCP metrics while relayed. */
static void set_routed_filters(l4_session_t *s)
{
    s->filters[0] = (pt_l4_filter_t){&pt_l4_authz_ops, NULL};
    s->filters[1] = (pt_l4_filter_t){&pt_l4_tcp_metrics_ops, s->service};
    s->n_filters = 2;
}

static void session_handle_closed(void *owner)
{
    l4_session_t *s = owner;
    if (--s->handles_open != 0)
        return;
    pt_rbuf_release(&s->hello);
    pt_tls_pipe_free(s->pipe);
    if (s->config != NULL)
        pt_config_unref(s->config);
    free(s);
}

static void on_session_close(uv_handle_t *h)
{
    session_handle_closed(h->data);
}

static uv_tcp_t *down_tcp(l4_session_t *s)
{
    return s->conn != NULL ? &s->conn->tcp : &s->downstream;
}

/* The session's filters judge the accepted connection: false when one refused it. */
static bool accept_allows(l4_session_t *s, const char *principal, const char *sni, size_t sni_len)
{
    pt_l4_accept_t a = {.worker = s->worker,
                        .config = s->config,
                        .port = s->listener->port,
                        .tcp = down_tcp(s),
                        .principal = principal,
                        .sni = sni,
                        .sni_len = sni_len};
    return pt_relay_accept_allows(s->filters, s->n_filters, &a);
}

static void session_abort(l4_session_t *s)
{
    if (s->is_closing)
        return;
    s->is_closing = true;
    pt_list_remove(&s->link);
    if (!s->is_direct)
        PT_STAT_DEC(&s->worker->stats, tcp_cx_active);
    s->upstream.data = s; /* the pipe may have had it */
    uv_close((uv_handle_t *)&s->timer, on_session_close);
    if (s->conn != NULL)
        pt_conn_close_detached(s->conn); /* conn.c frees it */
    else
        uv_close((uv_handle_t *)&s->downstream, on_session_close);
    uv_close((uv_handle_t *)&s->upstream, on_session_close);
    pt_worker_check_drained(s->worker);
}

void pt_l4_proxy_abort_pending(pt_worker_t *w)
{
    while (!pt_list_is_empty(&w->connecting))
        session_abort(PT_CONTAINER_OF(w->connecting.next, l4_session_t, link));
}

/* Connected (and the upstream's TLS handshake done): both sockets go to a relay. */
static void start_relay(l4_session_t *s)
{
    pt_list_remove(&s->link);
    uv_close((uv_handle_t *)&s->timer, on_session_close);
    pt_relay_end_t down = {
        .tcp = &s->downstream, .in = s->hello, .on_closed = session_handle_closed, .owner = s};
    s->hello = (pt_rbuf_t){0}; /* the relay owns the slab now */
    if (s->conn != NULL)
        down = pt_conn_relay_end(s->conn); /* its socket and engine, freed by conn.c */
    pt_relay_end_t up = {.tcp = &s->upstream,
                         .tls = s->pipe != NULL ? pt_tls_pipe_engine(s->pipe) : NULL,
                         .on_closed = session_handle_closed,
                         .owner = s};
    pt_relay_start_filtered(s->worker, down, up,
                            s->is_direct ? 0 : s->config->proxy.idle_timeout_ms, s->filters,
                            s->n_filters);
}

static void on_pipe_done(void *owner, bool ok)
{
    l4_session_t *s = owner;
    s->upstream.data = s;
    if (!ok || s->worker->is_draining)
        session_abort(s);
    else
        start_relay(s);
}

static void on_session_connect(uv_connect_t *req, int status)
{
    l4_session_t *s = req->data;
    if (s->is_closing)
        return;
    if (status < 0 || s->worker->is_draining) {
        if (status < 0)
            PT_STAT_INC(&s->worker->stats, upstream_cx_connect_fail);
        session_abort(s); /* a drain started while connecting: no new relay */
        return;
    }
    uv_tcp_nodelay(&s->upstream, 1);
    if (s->tls != NULL) {
        /* TLS origination: the handshake runs under the connect timeout, the session still
         * in worker->connecting (a drain waits for it, a stop aborts it). */
        s->pipe = pt_tls_pipe_new(s->worker, &s->upstream, s->tls, s->cluster, on_pipe_done, s);
        pt_tls_pipe_begin(s->pipe);
        return;
    }
    start_relay(s);
}

static void on_session_timeout(uv_timer_t *t)
{
    l4_session_t *s = t->data;
    if (s->is_awaiting_hello)
        PT_STAT_INC(&s->worker->stats, tls_hello_invalid); /* no ClientHello in time */
    else
        PT_STAT_INC(&s->worker->stats, upstream_cx_connect_timeout);
    session_abort(s);
}

/* Connects to addr under the connect timeout. */
static void connect_to(l4_session_t *s, const struct sockaddr *addr)
{
    uv_tcp_nodelay(down_tcp(s), 1);
    if (uv_tcp_connect(&s->connect_req, &s->upstream, addr, on_session_connect) != 0) {
        PT_STAT_INC(&s->worker->stats, upstream_cx_connect_fail);
        session_abort(s);
        return;
    }
    uv_timer_start(&s->timer, on_session_timeout, s->config->proxy.connect_timeout_ms, 0);
}

/* Picks the route's cluster and an endpoint, and connects. */
static void connect_upstream(l4_session_t *s, const pt_l4_route_t *route)
{
    pt_worker_t *w = s->worker;
    const pt_cluster_t *cl = NULL;
    if (route != NULL)
        cl = pt_router_pick_weighted(route->clusters, route->n_clusters, route->total_weight,
                                     pt_worker_random(w))
                 ->cluster;
    if (cl != NULL)
        snprintf(s->service, sizeof(s->service), "%s", cl->host);
    if (cl == NULL || cl->n_endpoints == 0 || w->is_draining) {
        PT_STAT_INC(&w->stats, upstream_rq_no_healthy);
        session_abort(s);
        return;
    }
    /* No request head, so of the hash keys only useSourceIp applies; least request is not
     * counted for TCP sessions (a random pair, the first chosen). */
    char peer_ip[64] = "";
    struct sockaddr_storage peer;
    int peer_len = (int)sizeof(peer);
    if (uv_tcp_getpeername(down_tcp(s), (struct sockaddr *)&peer, &peer_len) == 0) {
        if (peer.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&peer, peer_ip, sizeof(peer_ip));
        else if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, peer_ip, sizeof(peer_ip));
    }
    const pt_endpoint_t *ep = pt_worker_pick_endpoint(w, s->config, cl, NULL, peer_ip, false);
    /* TLS passthrough relays the client's TLS: DestinationRule tls applies to tcp[] routes
     * (TCP listeners and TLS ones that terminate). */
    if ((s->listener->protocol == PT_LISTENER_TCP || (s->conn != NULL && !s->is_passthrough)) &&
        ep->tls != NULL && ep->tls->ctx != NULL)
        s->tls = ep->tls;
    s->cluster = cl;
    connect_to(s, (const struct sockaddr *)&ep->addr);
}

const pt_l4_route_t *pt_l4_route_for_sni(const pt_listener_config_t *lc, const char *sni,
                                         size_t sni_len)
{
    if (sni_len == 0)
        return NULL;
    const pt_l4_route_t *best = NULL;
    size_t best_score = 0;
    for (size_t i = 0; i < lc->n_l4_routes; i++) {
        const pt_l4_route_t *r = &lc->l4_routes[i];
        for (size_t h = 0; h < r->n_sni_hosts; h++) {
            size_t score = pt_sni_match_score(r->sni_hosts[h], sni, sni_len);
            if (score == SIZE_MAX)
                return r; /* exact */
            if (score > best_score) {
                best = r;
                best_score = score;
            }
        }
    }
    return best;
}

/* A passthrough session whose ClientHello named sni: AuthorizationPolicy (connection.sni), then
 * the listener's tls[] routes; closed and counted when none matches. */
static void route_passthrough(l4_session_t *s, const char *sni, size_t sni_len)
{
    pt_worker_t *w = s->worker;
    const pt_listener_config_t *lc = s->listener;
    if (!accept_allows(s, NULL, sni, sni_len)) {
        session_abort(s);
        return;
    }
    const pt_l4_route_t *route = pt_l4_route_for_sni(lc, sni, sni_len);
    if (route == NULL) {
        PT_STAT_INC(&w->stats, tls_sni_no_route);
        pt_log_debug("%s: no tls route for SNI \"%.*s\": connection closed", lc->name, (int)sni_len,
                     sni != NULL ? sni : "");
        session_abort(s);
        return;
    }
    connect_upstream(s, route);
}

static void on_hello_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    l4_session_t *s = h->data;
    size_t size;
    buf->base = pt_rbuf_space(&s->hello, &size);
    buf->len = size;
}

static void on_hello_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    l4_session_t *s = stream->data;
    pt_worker_t *w = s->worker;
    if (nread == 0)
        return;
    if (nread < 0) { /* closed or reset before a whole ClientHello */
        session_abort(s);
        return;
    }
    s->hello.len += (size_t)nread;
    pt_client_hello_t hello;
    const uint8_t *data = (const uint8_t *)s->hello.buf->data + s->hello.off;
    pt_hello_status_t st =
        pt_client_hello_parse(data, s->hello.len - s->hello.off, pt_scratch()->hello, &hello);
    if (st == PT_HELLO_NEED_MORE && s->hello.len - s->hello.off < PT_BUF_SIZE - 2048)
        return;
    uv_read_stop(stream);
    uv_timer_stop(&s->timer);
    s->is_awaiting_hello = false;
    if (st != PT_HELLO_OK) {
        PT_STAT_INC(&w->stats, tls_hello_invalid);
        pt_log_debug("%s: not a TLS ClientHello (%s): connection closed", s->listener->name,
                     pt_hello_status_name(st));
        session_abort(s);
        return;
    }
    route_passthrough(s, hello.sni, hello.sni_len);
}

/* A session for c, which conn.c read the ClientHello of (and, unless passthrough, did the
 * handshake on), counted in tcp_cx_* unless direct: NULL when out of memory (c is closed). */
static l4_session_t *adopt_conn(pt_conn_t *c, bool is_direct)
{
    pt_worker_t *w = c->worker;
    pt_conn_detach(c);
    l4_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        pt_conn_close_detached(c);
        return NULL;
    }
    s->worker = w;
    s->conn = c;
    s->is_direct = is_direct;
    s->config = w->config;
    pt_config_ref(s->config);
    uv_tcp_init(&w->loop, &s->upstream);
    uv_timer_init(&w->loop, &s->timer);
    s->upstream.data = s->timer.data = s->connect_req.data = s;
    s->handles_open = 2;
    pt_list_insert_tail(&w->connecting, &s->link);
    if (!is_direct) {
        s->listener = pt_router_listener(s->config, c->listener_port);
        set_routed_filters(s);
        PT_STAT_INC(&w->stats, tcp_cx_total);
        PT_STAT_INC(&w->stats, tcp_cx_active);
    }
    return s;
}

void pt_l4_proxy_accept_terminated(pt_conn_t *c, const char *sni, size_t sni_len)
{
    l4_session_t *s = adopt_conn(c, false);
    if (s == NULL)
        return;
    /* A reload between the ClientHello and here may have changed what the port serves. */
    const pt_listener_config_t *lc = s->listener;
    if (lc == NULL || (lc->protocol != PT_LISTENER_TLS && !lc->is_sni_mixed) || lc->tls == NULL ||
        s->worker->is_draining || !accept_allows(s, c->peer_principal, sni, sni_len)) {
        session_abort(s);
        return;
    }
    if (lc->is_sni_mixed)
        connect_upstream(s, lc->tcp_route);
    else
        connect_upstream(s, lc->n_l4_routes > 0 ? &lc->l4_routes[0] : NULL);
}

void pt_l4_proxy_accept_passthrough(pt_conn_t *c, const char *sni, size_t sni_len)
{
    l4_session_t *s = adopt_conn(c, false);
    if (s == NULL)
        return;
    s->is_passthrough = true;
    pt_worker_t *w = s->worker;
    const pt_listener_config_t *lc = s->listener; /* the snapshot tls_stream.c chose from */
    if (lc == NULL || w->is_draining) {
        session_abort(s);
        return;
    }
    route_passthrough(s, sni, sni_len);
}

/* A session for the accepted fd, counted in tcp_cx_* unless direct; NULL when fd could not be
 * taken (it is closed then). */
static l4_session_t *accept_fd(pt_worker_t *w, int fd, bool is_direct)
{
    l4_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        return NULL;
    }
    s->worker = w;
    s->is_direct = is_direct;
    pt_list_init(&s->link);
    uv_tcp_init(&w->loop, &s->downstream);
    s->downstream.data = s;
    if (uv_tcp_open(&s->downstream, fd) != 0) {
        close(fd);
        s->handles_open = 1;
        s->is_closing = true;
        uv_close((uv_handle_t *)&s->downstream, on_session_close);
        return NULL;
    }
    s->config = w->config;
    pt_config_ref(s->config);
    uv_tcp_init(&w->loop, &s->upstream);
    uv_timer_init(&w->loop, &s->timer);
    s->upstream.data = s->timer.data = s->connect_req.data = s;
    s->handles_open = 3;
    pt_list_insert_tail(&w->connecting, &s->link);
    if (!is_direct) {
        set_routed_filters(s);
        PT_STAT_INC(&w->stats, tcp_cx_total);
        PT_STAT_INC(&w->stats, tcp_cx_active);
    }
    return s;
}

void pt_l4_proxy_accept_terminated_direct(pt_conn_t *c, pt_l4_direct_t *d)
{
    l4_session_t *s = adopt_conn(c, true);
    if (s != NULL) {
        memcpy(s->filters, d->filters, d->n_filters * sizeof(d->filters[0]));
        s->n_filters = d->n_filters;
        if (s->worker->is_draining)
            session_abort(s);
        else
            connect_to(s, (const struct sockaddr *)&d->upstream);
    }
    free(d);
}

void pt_l4_proxy_accept_direct(pt_worker_t *w, int fd, const struct sockaddr *upstream,
                               struct ssl_ctx_st *server_tls, const pt_l4_filter_t *filters,
                               size_t n_filters)
{
    if (server_tls != NULL) {
        /* conn.c and tls_stream.c run the handshake and hand the connection back
         * (pt_l4_proxy_accept_terminated_direct). */
        pt_l4_direct_t *d = calloc(1, sizeof(*d));
        if (d == NULL) {
            close(fd);
            return;
        }
        memcpy(&d->upstream, upstream,
               upstream->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in));
        for (size_t i = 0; i < n_filters && i < PT_L4_MAX_FILTERS; i++)
            d->filters[d->n_filters++] = filters[i];
        pt_conn_accept_tls(w, fd, server_tls, d);
        return;
    }
    l4_session_t *s = accept_fd(w, fd, true);
    if (s == NULL)
        return;
    for (size_t i = 0; i < n_filters && i < PT_L4_MAX_FILTERS; i++)
        s->filters[s->n_filters++] = filters[i];
    if (w->is_draining) {
        session_abort(s);
        return;
    }
    connect_to(s, upstream);
}

void pt_l4_proxy_accept(pt_worker_t *w, int fd, const pt_listener_config_t *lc)
{
    if (lc->tls != NULL) {
        /* A TLS server that terminates: conn.c and tls_stream.c run the handshake as for HTTPS
         * and hand the connection back (pt_l4_proxy_accept_terminated). */
        pt_conn_accept(w, fd, lc);
        return;
    }
    l4_session_t *s = accept_fd(w, fd, false);
    if (s == NULL)
        return;
    s->listener = lc;
    if (lc->protocol != PT_LISTENER_TLS) {
        if (!accept_allows(s, NULL, NULL, 0)) {
            session_abort(s);
            return;
        }
        connect_upstream(s, lc->n_l4_routes > 0 ? &lc->l4_routes[0] : NULL);
        return;
    }
    if (w->is_draining ||
        uv_read_start((uv_stream_t *)&s->downstream, on_hello_alloc, on_hello_read) != 0) {
        session_abort(s);
        return;
    }
    /* A client that connects and sends no ClientHello holds nothing for long. */
    s->is_awaiting_hello = true;
    uv_timer_start(&s->timer, on_session_timeout, s->config->proxy.header_timeout_ms, 0);
}
