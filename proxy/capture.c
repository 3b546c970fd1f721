/* proxy/capture.c
 * Sidecar capture (see capture.h): original destination, protocol detection, and the TCP relay
 * of what is not HTTP/1. Connections that turn out to be HTTP/1 stay with conn.c and stream.c;
 * only their route table and their passthrough endpoint come from here. */
#include "capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../filters/l4_registry.h"
#include "conn.h"
#include "http2_server.h"
#include "log.h"
#include "relay.h"
#include "router.h"
#include "tls_stream.h"

/* Longest request-line prefix worth waiting for (Petrel's default maxRequestLineBytes). */
#define DETECT_MAX_BYTES 8192
#define METHOD_MAX 24

pt_detect_result_t pt_capture_detect(const char *data, size_t len)
{
    static const char version[] = "HTTP/1.";
    size_t i = 0;
    if (memcmp(data, PT_HTTP2_PREFACE, len < PT_HTTP2_PREFACE_LEN ? len : PT_HTTP2_PREFACE_LEN) ==
        0)
        return len < PT_HTTP2_PREFACE_LEN ? PT_DETECT_NEED_MORE : PT_DETECT_HTTP2;
    /* method: upper-case letters (the registered methods, and extensions such as PURGE) */
    while (i < len && data[i] >= 'A' && data[i] <= 'Z') {
        if (++i > METHOD_MAX)
            return PT_DETECT_OTHER;
    }
    if (i == len)
        return PT_DETECT_NEED_MORE;
    if (i == 0 || data[i] != ' ')
        return PT_DETECT_OTHER;
    i++;
    /* request target: visible characters */
    size_t target = i;
    while (i < len && (unsigned char)data[i] > 0x20 && (unsigned char)data[i] < 0x7f)
        i++;
    if (i >= DETECT_MAX_BYTES)
        return PT_DETECT_OTHER; /* the same answer however much more arrives */
    if (i == len)
        return PT_DETECT_NEED_MORE;
    if (i == target || data[i] != ' ')
        return PT_DETECT_OTHER;
    i++;
    /* "HTTP/1." and a digit */
    for (size_t k = 0; k < sizeof(version) - 1; k++, i++) {
        if (i == len)
            return PT_DETECT_NEED_MORE;
        if (data[i] != version[k])
            return PT_DETECT_OTHER;
    }
    if (i == len)
        return PT_DETECT_NEED_MORE;
    return data[i] >= '0' && data[i] <= '9' ? PT_DETECT_HTTP1 : PT_DETECT_OTHER;
}

int pt_capture_original_dst(int fd, struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0)
        return -errno;
    memset(out, 0, sizeof(*out));
    if (local.ss_family == AF_INET) {
        *len = sizeof(struct sockaddr_in);
        if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, len) != 0)
            return -errno;
    } else if (local.ss_family == AF_INET6) {
        *len = sizeof(struct sockaddr_in6);
        if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, len) != 0)
            return -errno;
    } else {
        return -EAFNOSUPPORT;
    }
    return 0;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void start_relay(pt_conn_t *c);
static const pt_mesh_tcp_service_t *service_at(const pt_config_t *cfg,
                                               const struct sockaddr_storage *addr, uint16_t port);

int pt_capture_start(pt_conn_t *c, const pt_listener_config_t *lc)
{
    uv_os_fd_t fd;
    struct sockaddr_storage orig, local;
    socklen_t orig_len;
    int local_len = (int)sizeof(local);
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&local, &local_len) != 0)
        return -1;
    int err = pt_capture_original_dst(fd, &orig, &orig_len);
    /* Not redirected (a client that connected to the capture port itself): the original
     * destination is this very socket, and passing it through would loop into Petrel. */
    if (err != 0 || same_address(&orig, &local)) {
        pt_log_debug("capture: %s:%u: no original destination (%s), closed", c->peer_ip,
                     (unsigned)lc->port, err != 0 ? strerror(-err) : "not redirected");
        PT_STAT_INC(&c->worker->stats, capture_cx_not_redirected);
        return -1;
    }
    PT_STAT_INC(&c->worker->stats, capture_cx_total);
    /* Only captured connections carry this (freed with the connection). */
    pt_capture_t *cap = c->capture = calloc(1, sizeof(*cap));
    if (cap == NULL)
        return -1;
    cap->direction =
        lc->protocol == PT_LISTENER_CAPTURE_OUTBOUND ? PT_CAPTURE_OUTBOUND : PT_CAPTURE_INBOUND;
    cap->original_port = port_of(&orig);
    pt_endpoint_t *ep = &cap->destination;
    ep->weight = 1;
    ep->port = cap->original_port;
    if (cap->direction == PT_CAPTURE_INBOUND) {
        /* Delivered to the app on loopback, as Istio's inbound listener does. */
        uv_ip4_addr("127.0.0.1", cap->original_port, (struct sockaddr_in *)&ep->addr);
        ep->addr_len = sizeof(struct sockaddr_in);
    } else {
        ep->addr = orig;
        ep->addr_len = orig_len;
    }
    if (ep->addr.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ep->addr, cap->address, sizeof(cap->address));
    else
        uv_ip6_name((struct sockaddr_in6 *)&ep->addr, cap->address, sizeof(cap->address));
    ep->address = cap->address;
    cap->state = PT_CAPTURE_DETECTING;
    /* A protocol the service declares is not detected (Istio's protocol selection): no wait
     * for a server that speaks first, no guess about a client's bytes. */
    const pt_mesh_tcp_service_t *svc =
        cap->direction == PT_CAPTURE_OUTBOUND
            ? service_at(c->worker->config, &cap->destination.addr, cap->original_port)
            : NULL;
    if (svc != NULL && svc->protocol == PT_PORT_HTTP)
        cap->state = PT_CAPTURE_IDLE;
    else if (svc != NULL && svc->protocol == PT_PORT_OPAQUE)
        start_relay(c);
    return 0;
}

const pt_listener_config_t *pt_capture_route_table(const pt_config_t *cfg, const pt_conn_info_t *c)
{
    if (c->chaos_proxy != NULL)
        return pt_config_chaos_listener(cfg, c->chaos_proxy);
    if (c->capture == NULL)
        return pt_router_listener(cfg, c->listener_port);
    switch (c->capture->direction) {
    case PT_CAPTURE_NONE: return pt_router_listener(cfg, c->listener_port);
    case PT_CAPTURE_INBOUND: return cfg->mesh_inbound;
    case PT_CAPTURE_OUTBOUND: {
        /* mesh_listeners are sorted by port */
        size_t lo = 0, hi = cfg->n_mesh_listeners;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            uint16_t port = cfg->mesh_listeners[mid].port;
            if (port == c->capture->original_port)
                return &cfg->mesh_listeners[mid];
            if (port < c->capture->original_port)
                lo = mid + 1;
            else
                hi = mid;
        }
        return cfg->mesh_passthrough;
    }
    }
    return NULL;
}

/* --- the TCP relay of what is not HTTP/1 --- */

struct pt_capture_upstream {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    pt_conn_t *conn;  /* holds one of the connection's handle counts until tcp is closed */
    char service[96]; /* for istio_tcp_* metrics: the service, or the passthrough cluster */
};

/* The known service at addr:port (ServiceEntry addresses and ports), or NULL. */
static const pt_mesh_tcp_service_t *service_at(const pt_config_t *cfg,
                                               const struct sockaddr_storage *addr, uint16_t port)
{
    for (size_t i = 0; i < cfg->n_mesh_tcp; i++) {
        const pt_mesh_tcp_service_t *svc = &cfg->mesh_tcp[i];
        if (svc->port != port)
            continue;
        for (size_t a = 0; a < svc->n_addresses; a++)
            if (pt_cidr_contains(&svc->addresses[a], addr))
                return svc;
    }
    return NULL;
}

const pt_cluster_t *pt_capture_tcp_cluster(const pt_config_t *cfg,
                                           const struct sockaddr_storage *addr, uint16_t port,
                                           uint32_t random)
{
    const pt_mesh_tcp_service_t *svc = service_at(cfg, addr, port);
    if (svc != NULL) {
        for (size_t r = 0; r < svc->n_routes; r++) {
            const pt_mesh_tcp_route_t *rt = &svc->routes[r];
            bool in_subnets = rt->n_subnets == 0;
            for (size_t k = 0; k < rt->n_subnets && !in_subnets; k++)
                in_subnets = pt_cidr_contains(&rt->subnets[k], addr);
            if (in_subnets)
                return pt_router_pick_weighted(rt->clusters, rt->n_clusters, rt->total_weight,
                                               random)
                    ->cluster;
        }
    }
    return NULL;
}

static void on_upstream_closed(uv_handle_t *h)
{
    pt_capture_upstream_t *u = h->data;
    pt_conn_t *c = u->conn;
    free(u);
    pt_conn_release_handle(c);
}

static void on_relay_side_closed(void *owner)
{
    pt_capture_upstream_t *u = owner;
    pt_conn_t *c = u->conn;
    free(u);
    pt_conn_release_handle(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    pt_capture_upstream_t *u = req->data;
    pt_conn_t *c = u->conn;
    if (c->is_closing || status < 0 || c->worker->is_draining) {
        if (status < 0 && status != UV_ECANCELED)
            PT_STAT_INC(&c->worker->stats, upstream_cx_connect_fail);
        if (c->capture->relay == u) {
            c->capture->relay = NULL;
            uv_close((uv_handle_t *)&u->tcp, on_upstream_closed);
        }
        if (!c->is_closing)
            pt_conn_close(c, false);
        return;
    }
    c->capture->relay = NULL;
    c->capture->state = PT_CAPTURE_IDLE;
    uv_tcp_nodelay(&u->tcp, 1);
    /* Counted as a TCP session from here; the metrics filter ends the count with the relay. */
    PT_STAT_INC(&c->worker->stats, tcp_cx_total);
    PT_STAT_INC(&c->worker->stats, tcp_cx_active);
    pt_l4_filter_t metrics = {&pt_l4_tcp_metrics_ops, u->service};
    pt_conn_hand_off(c, &u->tcp, on_relay_side_closed, u, &metrics, 1);
}

/* Not HTTP/1: connect to where the bytes go, then relay (the bytes read so far first). */
static void start_relay(pt_conn_t *c)
{
    /* Mesh mTLS (tls_stream.c): the relay moves raw bytes, so only plaintext is relayed. */
    if (c->tls != NULL && !pt_tls_stream_may_relay(c))
        return;
    pt_capture_t *cap = c->capture;
    pt_worker_t *w = c->worker;
    const pt_cluster_t *cl = NULL;
    static const pt_l4_filter_t authz = {&pt_l4_authz_ops, NULL};
    pt_l4_accept_t a = {.worker = w,
                        .config = w->config,
                        .port = cap->original_port,
                        .tcp = &c->tcp,
                        .principal = c->peer_principal};
    if (cap->direction == PT_CAPTURE_INBOUND && !pt_relay_accept_allows(&authz, 1, &a)) {
        pt_conn_close(c, false); /* an AuthorizationPolicy refused it: closed, as Istio does */
        return;
    }
    if (cap->direction == PT_CAPTURE_OUTBOUND) {
        cl = pt_capture_tcp_cluster(w->config, &cap->destination.addr, cap->original_port,
                                    pt_worker_random(w));
        if (cl == NULL && w->config->proxy.sidecar.registry_only) {
            /* Envoy's BlackHoleCluster: not a known service, and nothing passes through. */
            PT_STAT_INC(&w->stats, capture_cx_blackholed);
            pt_conn_close(c, false);
            return;
        }
    }
    cap->state = PT_CAPTURE_CONNECTING;
    pt_conn_pause_reading(c, PT_CONN_PAUSE_UPSTREAM);
    pt_capture_upstream_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        pt_conn_close(c, false);
        return;
    }
    u->conn = c;
    c->handles_open++;
    uv_tcp_init(&w->loop, &u->tcp);
    u->tcp.data = u->connect_req.data = u;
    cap->relay = u;
    /* A known service's address goes to the service (its tcp routes, its endpoints); a
     * service without endpoints, or any other address, to the original destination. */
    const struct sockaddr_storage *to = &cap->destination.addr;
    const pt_endpoint_t *ep =
        cl != NULL && cl->n_endpoints > 0
            ? pt_worker_pick_endpoint(w, w->config, cl, NULL, c->peer_ip, false)
            : NULL; /* NULL too when outlier detection ejected them all */
    if (ep != NULL) {
        to = &ep->addr;
        snprintf(u->service, sizeof(u->service), "%s", cl->host);
    } else if (cl != NULL && cl->is_original_dst) {
        snprintf(u->service, sizeof(u->service), "%s", cl->host);
    } else {
        snprintf(u->service, sizeof(u->service), "%s",
                 cap->direction == PT_CAPTURE_INBOUND ? "InboundPassthroughCluster"
                                                      : "PassthroughCluster");
    }
    if (uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)to, on_connect) != 0) {
        PT_STAT_INC(&w->stats, upstream_cx_connect_fail);
        cap->relay = NULL;
        uv_close((uv_handle_t *)&u->tcp, on_upstream_closed);
        pt_conn_close(c, false);
        return;
    }
    pt_conn_start_capture_timer(c, w->config->proxy.connect_timeout_ms);
}

bool pt_capture_on_bytes(pt_conn_t *c)
{
    if (c->capture->state != PT_CAPTURE_DETECTING)
        return c->capture->state == PT_CAPTURE_IDLE;
    pt_detect_result_t r = pt_capture_detect(c->in.buf->data + c->in.off, c->in.len - c->in.off);
    if (r == PT_DETECT_NEED_MORE)
        return false;
    if (r == PT_DETECT_HTTP1 || r == PT_DETECT_HTTP2) {
        c->capture->state = PT_CAPTURE_IDLE;
        pt_conn_start_capture_timer(c, 0);
        if (r == PT_DETECT_HTTP2)
            c->codec_ops = &pt_http2_server_conn_ops;
        return true;
    }
    start_relay(c);
    return false;
}

void pt_capture_on_eof(pt_conn_t *c)
{
    /* A client that sent its bytes and closed (or sent nothing) gets them relayed: the relay
     * reads the end of stream again and passes it on. */
    start_relay(c);
}

void pt_capture_on_timer(pt_conn_t *c)
{
    if (c->capture->state == PT_CAPTURE_DETECTING) {
        PT_STAT_INC(&c->worker->stats, capture_detect_timeout);
        start_relay(c); /* a server-first protocol, or a client too slow to tell */
        return;
    }
    if (c->capture->state == PT_CAPTURE_CONNECTING) {
        PT_STAT_INC(&c->worker->stats, upstream_cx_connect_timeout);
        pt_conn_close(c, false);
    }
}

void pt_capture_on_conn_close(pt_conn_t *c)
{
    pt_capture_upstream_t *u = c->capture->relay;
    if (u == NULL)
        return;
    c->capture->relay = NULL;
    /* The pending connect completes with UV_ECANCELED; the handle's close frees u. */
    uv_close((uv_handle_t *)&u->tcp, on_upstream_closed);
}
