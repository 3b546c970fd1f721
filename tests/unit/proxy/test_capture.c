/* tests/unit/proxy/test_capture.c: the sidecar's protocol detection, Kubernetes short host
 * names, and the mesh route tables a captured connection is routed with. */
#include "test.h"

#include <arpa/inet.h>
#include <string.h>

#include "config/config.h"
#include "config/hostname.h"
#include "lib/config_yaml.h"
#include "proxy/capture.h"
#include "proxy/conn.h"
#include "proxy/router.h"

static pt_detect_result_t detect(const char *s)
{
    return pt_capture_detect(s, strlen(s));
}

TEST(detect_http1_request_lines)
{
    ASSERT_EQ(detect("GET / HTTP/1.1\r\n"), PT_DETECT_HTTP1);
    ASSERT_EQ(detect("POST /api?x=1 HTTP/1.0\r\nhost: a\r\n\r\n"), PT_DETECT_HTTP1);
    ASSERT_EQ(detect("PURGE /cache HTTP/1.1\r\n"), PT_DETECT_HTTP1); /* extension methods */
    ASSERT_EQ(detect("OPTIONS * HTTP/1.1\r\n"), PT_DETECT_HTTP1);
    ASSERT_EQ(detect("CONNECT a.example:443 HTTP/1.1\r\n"), PT_DETECT_HTTP1);
}

TEST(detect_waits_for_a_prefix_of_a_request_line)
{
    ASSERT_EQ(detect(""), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("G"), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("GET"), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("GET "), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("GET /a/b"), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("GET /a HTTP/"), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("GET /a HTTP/1."), PT_DETECT_NEED_MORE);
    ASSERT_EQ(detect("PRI * HTTP/2.0\r\n\r\nSM\r\n"), PT_DETECT_NEED_MORE); /* h2 preface */
}

TEST(detect_http2_preface)
{
    ASSERT_EQ(detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), PT_DETECT_HTTP2);
    ASSERT_EQ(detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04"), PT_DETECT_HTTP2);
    ASSERT_EQ(detect("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("PRI / HTTP/1.1\r\n"), PT_DETECT_HTTP1); /* a method named PRI */
}

TEST(detect_everything_else_is_tcp)
{
    ASSERT_EQ(pt_capture_detect("\x16\x03\x01\x02\x00", 5), PT_DETECT_OTHER); /* TLS */
    ASSERT_EQ(detect("get / HTTP/1.1\r\n"), PT_DETECT_OTHER); /* methods are upper-case */
    ASSERT_EQ(detect(" GET / HTTP/1.1\r\n"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("GET  / HTTP/1.1\r\n"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("GET / HTTP/2\r\n"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("GET / SSH-2.0"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("SSH-2.0-OpenSSH_9.6\r\n"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("HELO mail.example\r\n"), PT_DETECT_OTHER);
    ASSERT_EQ(detect("ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1"), PT_DETECT_OTHER); /* too long */
    ASSERT_EQ(pt_capture_detect("GET /\0 HTTP/1.1", 15), PT_DETECT_OTHER);
    /* A target that never ends is not worth waiting for. */
    static char long_line[8300];
    memset(long_line, 'a', sizeof(long_line));
    memcpy(long_line, "GET /", 5);
    ASSERT_EQ(pt_capture_detect(long_line, sizeof(long_line)), PT_DETECT_OTHER);
    ASSERT_EQ(pt_capture_detect(long_line, 4000), PT_DETECT_NEED_MORE);
}

TEST(short_host_names_complete_in_the_rule_namespace)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(pt_host_complete(&a, "reviews", "default"), "reviews.default.svc.cluster.local");
    ASSERT_STREQ(pt_host_complete(&a, "reviews", "shop"), "reviews.shop.svc.cluster.local");
    ASSERT_STREQ(pt_host_complete(&a, "reviews.shop", "default"), "reviews.shop");
    ASSERT_STREQ(pt_host_complete(&a, "api.example.com", "default"), "api.example.com");
    ASSERT_STREQ(pt_host_complete(&a, "*", "default"), "*");
    ASSERT_STREQ(pt_host_complete(&a, "*.example.com", "default"), "*.example.com");
    ASSERT_STREQ(pt_host_complete(&a, "::1", "default"), "::1");
    pt_arena_dispose(&a);
}

TEST(request_host_forms_of_a_service)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    const char *d[PT_HOST_MAX_DOMAINS];
    size_t n = pt_host_domains(&a, "reviews.default.svc.cluster.local", "default", d);
    ASSERT_EQ(n, 4);
    ASSERT_STREQ(d[0], "reviews.default.svc.cluster.local");
    ASSERT_STREQ(d[1], "reviews.default.svc");
    ASSERT_STREQ(d[2], "reviews.default");
    ASSERT_STREQ(d[3], "reviews");
    /* From another namespace the bare name means something else. */
    n = pt_host_domains(&a, "reviews.default.svc.cluster.local", "shop", d);
    ASSERT_EQ(n, 3);
    ASSERT_STREQ(d[2], "reviews.default");
    /* Not a Kubernetes service name: only itself. */
    ASSERT_EQ(pt_host_domains(&a, "api.example.com", "default", d), 1);
    ASSERT_EQ(pt_host_domains(&a, "a.b.c.svc.cluster.local", "default", d), 1);
    ASSERT_EQ(pt_host_domains(&a, ".svc.cluster.local", "default", d), 1);
    pt_arena_dispose(&a);
}

static const char mesh_yaml[] =
    "apiVersion: petrel.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p}\n"
    "spec: {sidecar: {}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  addresses: [10.96.0.10, 'fd00::10', 10.97.0.0/16]\n"
    "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: ratings, namespace: shop}\n"
    "spec:\n"
    "  hosts: [ratings]\n"
    "  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 81, name: other}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 10.0.1.1}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: reviews}\n"
    "spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  http: [{route: [{destination: {host: reviews, subset: v1}}]}]\n";

static pt_conn_info_t *captured(pt_capture_direction_t dir, uint16_t port)
{
    static pt_conn_info_t c;
    static pt_capture_t cap;
    memset(&c, 0, sizeof(c));
    memset(&cap, 0, sizeof(cap));
    cap.direction = dir;
    cap.original_port = port;
    c.capture = &cap;
    return &c;
}

static const pt_cluster_t *cluster_for(const pt_config_t *cfg, const pt_conn_info_t *c,
                                       const char *host)
{
    const pt_listener_config_t *l = pt_capture_route_table(cfg, c);
    ASSERT(l != NULL);
    const pt_vhost_t *vh = pt_config_find_vhost(l, host, strlen(host));
    if (vh == NULL || vh->n_routes == 0 || vh->routes[0].n_clusters == 0)
        return NULL;
    return vh->routes[0].clusters[0].cluster;
}

TEST(mesh_route_tables_by_original_port)
{
    pt_config_t *cfg = config_from_yaml_ok("mesh.yaml", mesh_yaml);
    ASSERT(cfg->proxy.sidecar.enabled);
    ASSERT_EQ(cfg->proxy.sidecar.outbound_port, 15001);
    ASSERT_EQ(cfg->proxy.sidecar.inbound_port, 15006);
    ASSERT_EQ(cfg->proxy.sidecar.protocol_detection_timeout_ms, 100);

    /* The VirtualService (bound to mesh by default) routes reviews to its subset. */
    const pt_conn_info_t *c = captured(PT_CAPTURE_OUTBOUND, 9080);
    static const char *const forms[] = {"reviews",
                                        "reviews:9080",
                                        "reviews.default",
                                        "reviews.default.svc",
                                        "REVIEWS.default.svc.cluster.local",
                                        "10.96.0.10:9080",
                                        "[fd00::10]:9080"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        const pt_cluster_t *cl = cluster_for(cfg, c, forms[i]);
        ASSERT(cl != NULL);
        ASSERT_STREQ(cl->name, "outbound|9080|v1|reviews.default.svc.cluster.local");
    }
    /* A known service with no VirtualService: its default route; another namespace's
     * service is not reachable by its bare name. */
    ASSERT_STREQ(cluster_for(cfg, c, "ratings.shop")->name,
                 "outbound|9080||ratings.shop.svc.cluster.local");
    ASSERT_STREQ(cluster_for(cfg, c, "ratings")->name, "PassthroughCluster");
    ASSERT_STREQ(cluster_for(cfg, c, "10.97.0.1")->name, "PassthroughCluster"); /* a block */
    ASSERT(cluster_for(cfg, c, "ratings")->is_original_dst);
    /* The original port picks the service port. */
    ASSERT_STREQ(cluster_for(cfg, captured(PT_CAPTURE_OUTBOUND, 81), "ratings.shop")->name,
                 "outbound|81||ratings.shop.svc.cluster.local");
    ASSERT_STREQ(cluster_for(cfg, captured(PT_CAPTURE_OUTBOUND, 81), "reviews")->name,
                 "PassthroughCluster");
    /* A port no service has: everything passes through. */
    ASSERT_STREQ(cluster_for(cfg, captured(PT_CAPTURE_OUTBOUND, 5432), "reviews")->name,
                 "PassthroughCluster");
    /* Inbound: to the local app whatever the host. */
    const pt_cluster_t *in = cluster_for(cfg, captured(PT_CAPTURE_INBOUND, 9080), "reviews");
    ASSERT_STREQ(in->name, "InboundPassthroughCluster");
    ASSERT(in->is_original_dst);
    /* The capture listeners are bound like any other. */
    size_t n_capture = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (cfg->listeners[i].protocol == PT_LISTENER_CAPTURE_OUTBOUND ||
            cfg->listeners[i].protocol == PT_LISTENER_CAPTURE_INBOUND)
            n_capture++;
    ASSERT_EQ(n_capture, 2);
    pt_config_unref(cfg);
}

TEST(sidecar_settings_are_checked)
{
    static const char yaml[] = "apiVersion: petrel.io/v1alpha1\n"
                               "kind: Proxy\n"
                               "metadata: {name: p}\n"
                               "spec:\n"
                               "  sidecar: {outboundPort: 15006, protocolDetectionTimeout: 0s,\n"
                               "            inboundPort: 15006, extra: 1}\n";
    pt_config_errors_t e = {0};
    ASSERT(config_from_yaml("p.yaml", yaml, &e) == NULL);
    int found = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (strstr(e.lines[i], "spec.sidecar.inboundPort: must differ from outboundPort") ||
            strstr(e.lines[i], "spec.sidecar.protocolDetectionTimeout: must be greater than 0") ||
            strstr(e.lines[i], "spec.sidecar.extra: unknown field"))
            found++;
        else
            fprintf(stderr, "unexpected: %s\n", e.lines[i]);
    }
    ASSERT_EQ(found, 3);
    pt_config_errors_dispose(&e);
}

TEST(original_dst_of_a_socket_that_was_not_redirected)
{
    /* A plain loopback connection has no NAT entry: the kernel says so, or (with conntrack)
     * gives the address it was sent to; pt_capture_start treats both as "not redirected". */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT(bind(l, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    ASSERT(listen(l, 1) == 0);
    socklen_t sl = sizeof(sin);
    ASSERT(getsockname(l, (struct sockaddr *)&sin, &sl) == 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    int s = accept(l, NULL, NULL);
    ASSERT(s >= 0);
    struct sockaddr_storage orig;
    socklen_t len;
    int err = pt_capture_original_dst(s, &orig, &len);
    if (err == 0) {
        ASSERT_EQ(orig.ss_family, AF_INET);
        ASSERT_EQ(((struct sockaddr_in *)&orig)->sin_port, sin.sin_port);
    } else {
        ASSERT(err < 0);
    }
    close(s);
    close(c);
    close(l);
}

static struct sockaddr_storage ip4(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_INET;
    ASSERT(inet_pton(AF_INET, s, &((struct sockaddr_in *)&ss)->sin_addr) == 1);
    return ss;
}

TEST(cidr_blocks)
{
    pt_cidr_t c;
    ASSERT(pt_cidr_parse("10.96.0.0/12", &c));
    struct sockaddr_storage in = ip4("10.100.3.4"), out = ip4("10.112.0.1");
    ASSERT(pt_cidr_contains(&c, &in));
    ASSERT(!pt_cidr_contains(&c, &out));
    ASSERT(pt_cidr_parse("10.0.0.7", &c));
    ASSERT_EQ(c.prefix_len, 32);
    struct sockaddr_storage seven = ip4("10.0.0.7"), eight = ip4("10.0.0.8");
    ASSERT(pt_cidr_contains(&c, &seven) && !pt_cidr_contains(&c, &eight));
    ASSERT(pt_cidr_parse("0.0.0.0/0", &c) && pt_cidr_contains(&c, &eight));
    ASSERT(pt_cidr_parse("fd00::/8", &c));
    ASSERT(!pt_cidr_contains(&c, &eight)); /* another family */
    ASSERT(!pt_cidr_parse("10.0.0.0/33", &c));
    ASSERT(!pt_cidr_parse("10.0.0.0/", &c));
    ASSERT(!pt_cidr_parse("reviews", &c));
    ASSERT(!pt_cidr_parse("fd00::/129", &c));
}

static const char tcp_yaml[] = "apiVersion: petrel.io/v1alpha1\n"
                               "kind: Proxy\n"
                               "metadata: {name: p}\n"
                               "spec: {sidecar: {}}\n"
                               "---\n"
                               "apiVersion: networking.istio.io/v1\n"
                               "kind: ServiceEntry\n"
                               "metadata: {name: db}\n"
                               "spec:\n"
                               "  hosts: [db]\n"
                               "  addresses: [10.96.0.20, 10.96.1.0/24]\n"
                               "  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
                               "  resolution: STATIC\n"
                               "  endpoints: [{address: 10.0.0.1}]\n"
                               "---\n"
                               "apiVersion: networking.istio.io/v1\n"
                               "kind: ServiceEntry\n"
                               "metadata: {name: db-replica}\n"
                               "spec:\n"
                               "  hosts: [db-replica]\n"
                               "  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
                               "  resolution: STATIC\n"
                               "  endpoints: [{address: 10.0.0.2}]\n"
                               "---\n"
                               "apiVersion: networking.istio.io/v1\n"
                               "kind: VirtualService\n"
                               "metadata: {name: db}\n"
                               "spec:\n"
                               "  hosts: [db]\n"
                               "  tcp:\n"
                               "  - match: [{port: 5432, destinationSubnets: [10.96.1.0/25]}]\n"
                               "    route: [{destination: {host: db-replica}}]\n"
                               "  - match: [{port: 6000}]\n"
                               "    route: [{destination: {host: db-replica}}]\n";

TEST(mesh_tcp_routes_by_original_destination)
{
    pt_config_t *cfg = config_from_yaml_ok("tcp.yaml", tcp_yaml);
    struct sockaddr_storage vip = ip4("10.96.0.20"), low = ip4("10.96.1.5"),
                            high = ip4("10.96.1.200"), other = ip4("10.96.2.1");
    const pt_cluster_t *cl = pt_capture_tcp_cluster(cfg, &vip, 5432, 0);
    ASSERT(cl != NULL);
    ASSERT_STREQ(cl->name, "outbound|5432||db.default.svc.cluster.local");
    /* destinationSubnets selects the first route for part of the service's block. */
    ASSERT_STREQ(pt_capture_tcp_cluster(cfg, &low, 5432, 0)->name,
                 "outbound|5432||db-replica.default.svc.cluster.local");
    ASSERT_STREQ(pt_capture_tcp_cluster(cfg, &high, 5432, 0)->name,
                 "outbound|5432||db.default.svc.cluster.local");
    /* Declared TCP: relayed without detection. */
    ASSERT_EQ(cfg->n_mesh_tcp, 1); /* one service, two address blocks */
    ASSERT_EQ(cfg->mesh_tcp[0].protocol, PT_PORT_OPAQUE);
    /* Not a service address, or not its port: passthrough (NULL). */
    ASSERT(pt_capture_tcp_cluster(cfg, &other, 5432, 0) == NULL);
    ASSERT(pt_capture_tcp_cluster(cfg, &vip, 6000, 0) == NULL);
    pt_config_unref(cfg);
}

TEST(service_entry_addresses_are_checked)
{
    static const char yaml[] = "apiVersion: networking.istio.io/v1\n"
                               "kind: ServiceEntry\n"
                               "metadata: {name: db}\n"
                               "spec:\n"
                               "  hosts: [db.example]\n"
                               "  addresses: [db.example]\n"
                               "  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
                               "  resolution: NONE\n";
    pt_config_errors_t e = {0};
    ASSERT(config_from_yaml("se.yaml", yaml, &e) == NULL);
    ASSERT_EQ(e.n, 1);
    ASSERT_STREQ(e.lines[0], "se.yaml:6:15: spec.addresses[0]: must be an IP address or a CIDR "
                             "block, got \"db.example\"");
    pt_config_errors_dispose(&e);
}

/* The ServiceEntry for a destination host (now looked up through a sorted index): the first
 * loaded that lists it exactly, else the longest wildcard covering it. */
TEST(service_entry_for_a_host)
{
    static const char yaml[] =
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
        "spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: wide}\n"
        "spec: {hosts: ['*.example.com'], ports: [{number: 80, name: http}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.1}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: narrow}\n"
        "spec: {hosts: ['*.a.example.com'], ports: [{number: 80, name: http}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.2}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: exact1}\n"
        "spec: {hosts: [x.a.example.com], ports: [{number: 80, name: http}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.3}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: exact2}\n"
        "spec: {hosts: [x.a.example.com], ports: [{number: 80, name: http}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.4}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
        "spec:\n  hosts: ['*']\n  gateways: [g]\n  http:\n"
        "  - {match: [{uri: {exact: /x}}], route: [{destination: {host: x.a.example.com}}]}\n"
        "  - {match: [{uri: {exact: /y}}], route: [{destination: {host: y.a.example.com}}]}\n"
        "  - {route: [{destination: {host: b.example.com}}]}\n";
    pt_config_t *c = config_from_yaml_ok("se.yaml", yaml);
    const pt_http_route_t *r = c->listeners[0].vhosts[0].routes;
    ASSERT_STREQ(r[0].clusters[0].cluster->endpoints[0].address, "10.0.0.3");
    ASSERT_STREQ(r[1].clusters[0].cluster->endpoints[0].address, "10.0.0.2");
    ASSERT_STREQ(r[2].clusters[0].cluster->endpoints[0].address, "10.0.0.1");
    pt_config_unref(c);
}

/* Istio's sidecar routes: a destination without a port, on a service with several, goes to
 * the port the request was sent to. At a Gateway the port stays required. */
TEST(mesh_destination_port_from_the_route_table)
{
    static const char yaml[] =
        "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {sidecar: {}}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\n"
        "spec: {hosts: [api], ports: [{number: 9080, name: http}, {number: 9090, name: admin}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.1, labels: {v: '1'}}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api}\n"
        "spec: {host: api, subsets: [{name: one, labels: {v: '1'}}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\n"
        "spec:\n  hosts: [api]\n"
        "  http: [{route: [{destination: {host: api, subset: one}}]}]\n";
    pt_config_t *cfg = config_from_yaml_ok("ports.yaml", yaml);
    const pt_cluster_t *a = cluster_for(cfg, captured(PT_CAPTURE_OUTBOUND, 9080), "api");
    const pt_cluster_t *b = cluster_for(cfg, captured(PT_CAPTURE_OUTBOUND, 9090), "api");
    ASSERT_STREQ(a->name, "outbound|9080|one|api.default.svc.cluster.local");
    ASSERT_STREQ(b->name, "outbound|9090|one|api.default.svc.cluster.local");
    ASSERT_EQ(b->endpoints[0].port, 9090);
    pt_config_unref(cfg);

    /* Bound to a Gateway as well: one route table for every port, so the port is required. */
    static const char gw_yaml[] =
        "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {sidecar: {}}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
        "spec: {servers: [{port: {number: 8080, protocol: HTTP}, hosts: ['*']}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\n"
        "spec: {hosts: [api], ports: [{number: 9080, name: http}, {number: 9090, name: admin}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.1}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\n"
        "spec:\n  hosts: [api]\n  gateways: [g, mesh]\n"
        "  http: [{route: [{destination: {host: api}}]}]\n";
    pt_config_errors_t e2 = {0};
    ASSERT(config_from_yaml("gw.yaml", gw_yaml, &e2) == NULL);
    ASSERT_EQ(e2.n, 1);
    ASSERT(strstr(e2.lines[0], "port: required: ServiceEntry default/api has 2 ports") != NULL);
    pt_config_errors_dispose(&e2);
}

TEST(registry_only_refuses_unknown_hosts)
{
    static const char yaml[] =
        "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
        "spec: {sidecar: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\n"
        "spec: {hosts: [api], ports: [{number: 80, name: http}],\n"
        "       resolution: STATIC, endpoints: [{address: 10.0.0.1}]}\n";
    pt_config_t *cfg = config_from_yaml_ok("ro.yaml", yaml);
    ASSERT(cfg->proxy.sidecar.registry_only);
    const pt_conn_info_t *c80 = captured(PT_CAPTURE_OUTBOUND, 80);
    ASSERT_STREQ(cluster_for(cfg, c80, "api")->name, "outbound|80||api.default.svc.cluster.local");
    const pt_listener_config_t *l = pt_capture_route_table(cfg, c80);
    const pt_vhost_t *vh = pt_config_find_vhost(l, "elsewhere.example", 17);
    ASSERT(vh != NULL && vh->routes[0].direct_status == 502);
    ASSERT_STREQ(vh->routes[0].name, "block_all");
    l = pt_capture_route_table(cfg, captured(PT_CAPTURE_OUTBOUND, 5432));
    ASSERT_EQ(pt_config_find_vhost(l, "x", 1)->routes[0].direct_status, 502);
    /* Inbound is not affected. */
    l = pt_capture_route_table(cfg, captured(PT_CAPTURE_INBOUND, 5432));
    ASSERT(pt_config_find_vhost(l, "x", 1)->routes[0].clusters[0].cluster->is_original_dst);
    pt_config_unref(cfg);

    pt_config_errors_t e = {0};
    static const char bad[] = "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                              "spec: {sidecar: {outboundTrafficPolicy: {mode: DENY}}}\n";
    ASSERT(config_from_yaml("bad.yaml", bad, &e) == NULL);
    ASSERT_EQ(e.n, 1);
    ASSERT_STREQ(e.lines[0], "bad.yaml:4:42: spec.sidecar.outboundTrafficPolicy.mode: unknown "
                             "value \"DENY\" (expected ALLOW_ANY or REGISTRY_ONLY)");
    pt_config_errors_dispose(&e);
}
