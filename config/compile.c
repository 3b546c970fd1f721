/* config/compile.c
 * Joins the typed resources of one load into a snapshot: listeners from Gateway servers,
 * virtual hosts and routes from VirtualServices, clusters and endpoints from ServiceEntries.
 * Everything written here goes into the snapshot arena (cx->out); scratch goes to cx->tmp.
 *
 * Choices where Istio leaves room, or where Petrel does less than Istio for now:
 *  - Listeners: one per distinct Gateway server port over all Gateways, named after the first
 *    Gateway that declares it ("<ns>/<name>/<port>"). Two servers on one port with different
 *    protocols are an error.
 *  - A VirtualService bound to a Gateway applies to each listener of that Gateway whose server
 *    hosts overlap the VirtualService's hosts ("*" overlaps everything). The virtual host gets
 *    the more specific host of each overlapping pair (VS "*" on a server "a.com" gives "a.com"),
 *    as Istio does. http routes go to HTTP listeners, tcp routes to TCP listeners.
 *  - A reference to a Gateway that is not in the config set is a warning, and ignored, as
 *    Istio ignores it (a typo is still visible, and a file can be validated on its own).
 *  - Clusters: one per (destination host, port), "outbound|<port>||<host>", in first-use order.
 *    Hosts are used as written, lower-cased: no Kubernetes short-name expansion.
 *    The ServiceEntry for a host is the first (in load order) that lists it exactly, else the
 *    first with the longest wildcard host matching it. Endpoints come from that ServiceEntry's
 *    port with the same number: endpoint.ports[port.name], else port.targetPort, else
 *    port.number. No ServiceEntry, no such port, or no endpoints: a cluster with 0 endpoints
 *    (503 UH at runtime), not an error. With a workloadSelector the endpoints are the selected
 *    WorkloadEntries of the ServiceEntry's namespace; with resolution DNS and no endpoints,
 *    the host itself. A DNS name contributes the resolver's last good answer (proxy/dns.c,
 *    through pt_config_set_dns_lookup): nothing before the first answer.
 *  - DestinationRule: the one whose host is the destination host exactly (first loaded), else
 *    the longest wildcard covering it. A destination with a subset gets its own cluster
 *    "outbound|<port>|<subset>|<host>" with the endpoints whose labels include the subset's;
 *    a subset the rule does not define is an error at the destination's subset field. The
 *    loadBalancer is the first set of: the subset's port-level, the subset's, the rule's
 *    port-level, the rule's (Istio's merge); its tables are built here by pt_lb_build().
 *    tls follows the same precedence (resolve_tls; auto mTLS when none sets it).
 *  - Destination port omitted: the ServiceEntry's only port. Several ports or no ports: an
 *    error ("port required"). No ServiceEntry (a Kubernetes Service, which Petrel does not
 *    read): a warning and a cluster on port 0 without endpoints (503 UH).
 *  - Weights (HTTP): one destination takes all traffic whatever its weight. Several
 *    destinations: each needs a weight, the total must be > 0, each gets weight/total.
 *  - TCP: a TCP listener forwards to the first tcp route (VirtualServices in load order, routes
 *    in order) whose match has no port or the listener's port. TLS (passthrough): a listener
 *    gets every tls route of its bound VirtualServices with the sniHosts of their match
 *    entries for its port; proxy/l4_proxy.c picks among them on SNI. Weights as for HTTP.
 *  - Delegation: VirtualServices without hosts are delegates, compiled first; a root's
 *    delegating route is replaced by its delegate's routes, merged by config/delegate.c.
 *  - A mesh-only VirtualService (no gateways, or only "mesh") binds to nothing: its routes are
 *    checked, its destinations make no clusters (a missing subset is only a warning).
 *  - Virtual hosts in a listener are ordered: those with an exact host first (in load order),
 *    then wildcard-only ones by their longest wildcard, longest first; "*" last.
 *  - An HTTP ChaosProxy (spec.protocol HTTP) gets a cluster "chaos|<name>" for its upstream and
 *    a route table of its own (pt_config_t.chaos_listeners, never opened by workers) with one
 *    catch-all route named after it; no DestinationRule applies to that cluster. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hostname.h"
#include "policy.h"
#include "resources.h"

typedef struct binding {
    const pt_res_gateway_t *gw;
    const pt_res_server_t *srv;
} binding_t;

typedef struct listener_build {
    pt_listener_config_t *l;
    const pt_res_server_t *first; /* the server that created it, for conflict messages */
    const pt_res_gateway_t *first_gw;
    binding_t *bindings;
    size_t n_bindings, cap_bindings;
    pt_vhost_t *vhosts;
    size_t n_vhosts, cap_vhosts;
    pt_l4_route_t *l4; /* TCP: at most one; TLS: in VirtualService and route order */
    size_t n_l4, cap_l4;
    /* A port of TLS-based servers of several kinds (HTTPS, terminated TLS, PASSTHROUGH), and
     * the first plain-HTTP and the first TLS server on it, for the message when both are. */
    unsigned kinds; /* 1 << pt_tls_server_kind_t */
    const pt_res_server_t *plain_http, *tls_proto;
    const pt_res_gateway_t *plain_http_gw, *tls_proto_gw;
    pt_l4_route_t tcp_route; /* mixed: the terminated TLS servers' tcp[] route */
    bool has_tcp_route;
} listener_build_t;

/* What a Gateway server is on a port that TLS-based servers may share; -1: plain HTTP or TCP. */
static int server_kind(const pt_res_server_t *srv)
{
    if (srv->protocol == PT_LISTENER_TLS)
        return srv->tls != NULL ? PT_TLS_SERVER_TERMINATE : PT_TLS_SERVER_PASSTHROUGH;
    if (srv->protocol == PT_LISTENER_HTTP && srv->tls != NULL && srv->tls->is_terminated)
        return PT_TLS_SERVER_HTTPS;
    return -1;
}

typedef struct compiler {
    pt_cfg_cx_t *cx;
    pt_res_set_t *set;
    pt_cluster_t **clusters;
    size_t n_clusters, cap_clusters;
    /* clusters by name, open addressing, never more than half full: get_cluster in O(1), so
     * that a config with as many services as the node limit allows compiles in linear time */
    pt_cluster_t **cluster_slots;
    size_t cluster_mask; /* slots - 1; 0 before the first cluster */
    /* Compiling a mesh-only VirtualService: it binds to no listener, so its destinations are
     * checked (a missing subset is a warning), not turned into clusters. */
    bool mesh_only;
    const char **dns_hosts; /* names the clusters resolve, each once (snapshot arena) */
    size_t n_dns_hosts, cap_dns_hosts;
    const char **dns_host_services; /* for each of dns_hosts, "ns/name" of its ServiceEntry */
    size_t cap_dns_host_services;
    /* Compiling a VirtualService bound to the sidecar alone: a destination without a port,
     * on a service with several, takes the port of each route table (Istio's sidecar
     * routes), so its cluster is chosen per port in compile_mesh (see PORT_PER_TABLE). */
    bool port_per_table;
    /* Sidecar tables: ServiceEntry exact hosts, sorted, so that thousands of services
     * compile in O(n log n) (see mesh_service). */
    struct host_entry *se_hosts;
    size_t n_se_hosts;
    bool has_wildcard_se;
    const pt_config_t *c; /* the snapshot being built (its proxy settings are filled first) */
} compiler_t;

/* DNS answers: set by `petrel run` (proxy/dns.c); compile runs on the main thread only. */
static pt_config_dns_lookup_fn dns_lookup;
static void *dns_lookup_arg;

void pt_config_set_dns_lookup(pt_config_dns_lookup_fn fn, void *arg)
{
    dns_lookup = fn;
    dns_lookup_arg = arg;
}

/* The more specific host of an overlapping pair, or NULL when they do not overlap. */
static const char *host_intersection(const char *a, const char *b)
{
    if (pt__cfg_host_covers(a, b))
        return b;
    if (pt__cfg_host_covers(b, a))
        return a;
    return NULL;
}

static const pt_res_se_t *mesh_service(compiler_t *cp, const char *host);

static const pt_res_se_t *find_service_entry(compiler_t *cp, const char *host)
{
    if (cp->se_hosts != NULL) /* indexed: an exact host in O(log n) */
        return mesh_service(cp, host);
    const pt_res_se_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cp->set->n_ses; i++) {
        const pt_res_se_t *se = cp->set->ses[i];
        for (size_t j = 0; j < se->n_hosts; j++) {
            const char *h = se->hosts[j];
            if (strcmp(h, host) == 0)
                return se;
            if (h[0] == '*' && pt__cfg_host_covers(h, host) &&
                (best == NULL || strlen(h) > best_len)) {
                best = se;
                best_len = strlen(h);
            }
        }
    }
    return best;
}

/* The DestinationRule for host: the first (in load order) whose host is host exactly, else
 * the first with the longest wildcard host covering it. */
static const pt_res_dr_t *find_destination_rule(compiler_t *cp, const char *host)
{
    const pt_res_dr_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cp->set->n_drs; i++) {
        const pt_res_dr_t *dr = cp->set->drs[i];
        if (dr->host == NULL)
            continue;
        if (strcmp(dr->host, host) == 0)
            return dr;
        if (dr->host[0] == '*' && pt__cfg_host_covers(dr->host, host) &&
            (best == NULL || strlen(dr->host) > best_len)) {
            best = dr;
            best_len = strlen(dr->host);
        }
    }
    return best;
}

static const pt_res_subset_t *find_subset(const pt_res_dr_t *dr, const char *name)
{
    for (size_t i = 0; dr != NULL && i < dr->n_subsets; i++)
        if (strcmp(dr->subsets[i].name, name) == 0)
            return &dr->subsets[i];
    return NULL;
}

/* The loadBalancer of a traffic policy for port: its portLevelSettings entry for the port
 * when that sets one, else its own; NULL when neither does. */
static const pt_res_lb_t *policy_lb(const pt_res_traffic_policy_t *tp, uint16_t port)
{
    for (size_t i = 0; i < tp->n_ports; i++)
        if (tp->ports[i].port == port && tp->ports[i].lb.is_set)
            return &tp->ports[i].lb;
    return tp->lb.is_set ? &tp->lb : NULL;
}

/* Istio's precedence: the subset's traffic policy over the rule's, and within each the port's
 * settings over the policy's own; the first that sets a loadBalancer gives all of it. */
static void resolve_lb(const pt_res_dr_t *dr, const pt_res_subset_t *sub, uint16_t port,
                       pt_lb_config_t *out)
{
    const pt_res_lb_t *lb = NULL;
    if (sub != NULL)
        lb = policy_lb(&sub->policy, port);
    if (lb == NULL && dr != NULL)
        lb = policy_lb(&dr->policy, port);
    memset(out, 0, sizeof(*out));
    if (lb != NULL)
        *out = lb->lb;
}

/* connectionPool with the same precedence as the load balancer: the subset's policy (its port's
 * settings, then its own) over the rule's (its port's, then its own), each given block as a
 * whole. retryBudget comes from the subset's policy, else the rule's. */
static const pt_conn_pool_settings_t *policy_pool(const pt_res_traffic_policy_t *tp, uint16_t port)
{
    for (size_t i = 0; i < tp->n_ports; i++)
        if (tp->ports[i].port == port && tp->ports[i].has_pool)
            return &tp->ports[i].pool;
    return tp->has_pool ? &tp->pool : NULL;
}

static void resolve_pool(const pt_res_dr_t *dr, const pt_res_subset_t *sub, uint16_t port,
                         pt_conn_pool_settings_t *out)
{
    const pt_conn_pool_settings_t *p = NULL;
    if (sub != NULL)
        p = policy_pool(&sub->policy, port);
    if (p == NULL && dr != NULL)
        p = policy_pool(&dr->policy, port);
    if (p != NULL)
        *out = *p;
    else
        pt_conn_pool_settings_default(out);
    const pt_res_traffic_policy_t *budget =
        sub != NULL && sub->policy.has_retry_budget ? &sub->policy
        : dr != NULL && dr->policy.has_retry_budget ? &dr->policy
                                                    : NULL;
    if (budget != NULL) {
        out->has_retry_budget = true;
        out->budget_percent = budget->budget_percent;
        out->budget_min_concurrency = budget->budget_min_concurrency;
    }
}

/* Istio's precedence for outlierDetection, as for the load balancer: the subset's policy over
 * the rule's, the port's settings over the policy's own; NULL when none sets it. */
static const pt_outlier_config_t *resolve_outlier(const pt_res_dr_t *dr, const pt_res_subset_t *sub,
                                                  uint16_t port)
{
    const pt_res_traffic_policy_t *tps[2] = {sub ? &sub->policy : NULL, dr ? &dr->policy : NULL};
    for (int k = 0; k < 2; k++) {
        const pt_res_traffic_policy_t *tp = tps[k];
        for (size_t i = 0; tp != NULL && i < tp->n_ports; i++)
            if (tp->ports[i].port == port && tp->ports[i].outlier.is_set)
                return &tp->ports[i].outlier.od;
        if (tp != NULL && tp->outlier.is_set)
            return &tp->outlier.od;
    }
    return NULL;
}

/* DestinationRule tls with the same precedence as the load balancer. None at all and a workload
 * identity: Istio's auto mTLS, ISTIO_MUTUAL to the endpoints labelled
 * security.istio.io/tlsMode: istio and plaintext to the others. */
static void resolve_tls(compiler_t *cp, const pt_res_dr_t *dr, const pt_res_subset_t *sub,
                        pt_cluster_t *cl)
{
    const pt_res_client_tls_t *t = NULL;
    const pt_res_traffic_policy_t *tps[2] = {sub ? &sub->policy : NULL, dr ? &dr->policy : NULL};
    for (int k = 0; k < 2 && t == NULL; k++) {
        const pt_res_traffic_policy_t *tp = tps[k];
        for (size_t i = 0; tp != NULL && i < tp->n_ports && t == NULL; i++)
            if (tp->ports[i].port == cl->port && tp->ports[i].tls.is_set)
                t = &tp->ports[i].tls;
        if (t == NULL && tp != NULL && tp->tls.is_set)
            t = &tp->tls;
    }
    if (t != NULL)
        cl->tls = pt__cfg_upstream_tls(cp->cx, cp->c, t, cl);
    else if (cp->c->proxy.identity.certificate_chain != NULL)
        cl->auto_tls = pt__cfg_upstream_tls(cp->cx, cp->c, NULL, cl);
    for (size_t i = 0; i < cl->n_endpoints; i++) {
        pt_endpoint_t *ep = &cl->endpoints[i];
        ep->tls = cl->tls;
        for (size_t j = 0; cl->auto_tls != NULL && j < ep->n_labels; j++)
            if (!strcmp(ep->labels[2 * j], "security.istio.io/tlsMode") &&
                !strcmp(ep->labels[2 * j + 1], "istio"))
                ep->tls = cl->auto_tls;
    }
}

/* Does the endpoint carry every label of the subset (key and value)? */
static bool labels_match(const pt_res_se_endpoint_t *e, const pt_res_subset_t *sub)
{
    for (size_t i = 0; i < sub->n_labels; i++) {
        bool found = false;
        for (size_t j = 0; j < e->n_labels && !found; j++)
            found = strcmp(e->labels[2 * j], sub->labels[2 * i]) == 0 &&
                    strcmp(e->labels[2 * j + 1], sub->labels[2 * i + 1]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static uint16_t endpoint_port(const pt_res_se_endpoint_t *e, const pt_res_se_port_t *p)
{
    if (e->ports != NULL && p->name != NULL)
        for (size_t i = 0; i < e->ports->n_pairs; i++)
            if (strcmp(e->ports->pairs[i].key->str, p->name) == 0)
                return (uint16_t)strtoul(e->ports->pairs[i].value->str, NULL, 10);
    return p->target_port ? p->target_port : p->number;
}

/* Do a WorkloadEntry's labels include every label of a workloadSelector? */
static bool selects(const pt_res_se_t *se, const pt_res_se_endpoint_t *e)
{
    for (size_t i = 0; i < se->n_selector; i++) {
        bool found = false;
        for (size_t j = 0; j < e->n_labels && !found; j++)
            found = strcmp(e->labels[2 * j], se->selector[2 * i]) == 0 &&
                    strcmp(e->labels[2 * j + 1], se->selector[2 * i + 1]) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Where a ServiceEntry's endpoints come from, as Istio: its endpoints[]; with a
 * workloadSelector, the WorkloadEntries of its namespace it selects; with resolution DNS and
 * neither, the host itself (on the port's targetPort, else number). NONE: none. */
static const pt_res_se_endpoint_t *service_endpoints(compiler_t *cp, const pt_res_se_t *se,
                                                     const char *host, size_t *n)
{
    *n = 0;
    if (se->resolution == PT_RES_NONE)
        return NULL;
    if (se->has_selector) {
        pt_res_se_endpoint_t *v = pt_arena_calloc(cp->cx->tmp, (cp->set->n_wes + 1) * sizeof(*v));
        for (size_t i = 0; i < cp->set->n_wes; i++) {
            const pt_res_we_t *we = cp->set->wes[i];
            if (!we->ok || strcmp(we->meta.ns, se->meta.ns) != 0 || !selects(se, &we->ep))
                continue;
            if (se->resolution == PT_RES_STATIC && we->ep.addr_len == 0) {
                pt__cfg_warn_at(cp->cx, we->meta.doc,
                                pt__cfg_meta_path(cp->cx, &we->meta, "spec.address"),
                                "a DNS name cannot be an endpoint of ServiceEntry %s/%s "
                                "(resolution STATIC): WorkloadEntry ignored",
                                se->meta.ns, se->meta.name);
                continue;
            }
            v[(*n)++] = we->ep;
        }
        return v;
    }
    if (se->n_endpoints > 0 || se->resolution == PT_RES_STATIC) {
        *n = se->n_endpoints;
        return se->endpoints;
    }
    pt_res_se_endpoint_t *self = pt_arena_calloc(cp->cx->tmp, sizeof(*self));
    self->address = host;
    self->weight = 1;
    *n = 1;
    return self;
}

/* The addresses of one endpoint: its IP literal, or the last good DNS answer for its name (all
 * of it with DNS, the first address with DNS_ROUND_ROBIN; none before the first answer). A
 * name is recorded in the snapshot so that the resolver keeps it fresh. */
static size_t endpoint_addrs(compiler_t *cp, const pt_res_se_t *se, const pt_res_se_endpoint_t *e,
                             const struct sockaddr_storage **out)
{
    if (e->addr_len > 0) {
        if (out != NULL)
            *out = &e->addr;
        return 1;
    }
    bool seen = false;
    for (size_t i = 0; i < cp->n_dns_hosts && !seen; i++)
        seen = strcmp(cp->dns_hosts[i], e->address) == 0;
    if (!seen) {
        cp->dns_hosts = pt_arena_grow(cp->cx->out, cp->dns_hosts, cp->n_dns_hosts,
                                      &cp->cap_dns_hosts, sizeof(*cp->dns_hosts));
        cp->dns_host_services =
            pt_arena_grow(cp->cx->out, cp->dns_host_services, cp->n_dns_hosts,
                          &cp->cap_dns_host_services, sizeof(*cp->dns_host_services));
        cp->dns_host_services[cp->n_dns_hosts] =
            pt_arena_printf(cp->cx->out, "%s/%s", se->meta.ns, se->meta.name);
        cp->dns_hosts[cp->n_dns_hosts++] = pt__cfg_out_str(cp->cx, e->address);
    }
    const struct sockaddr_storage *addrs = NULL;
    size_t n = dns_lookup != NULL ? dns_lookup(dns_lookup_arg, e->address, &addrs) : 0;
    if (se->resolution == PT_RES_DNS_ROUND_ROBIN && n > 1)
        n = 1;
    if (out != NULL)
        *out = addrs;
    return n;
}

/* The slot of the cluster named name in cp->cluster_slots, or of the NULL where it goes. */
static pt_cluster_t **cluster_slot(compiler_t *cp, const char *name)
{
    size_t i = (size_t)pt_lb_hash(name, strlen(name)) & cp->cluster_mask;
    while (cp->cluster_slots[i] != NULL && strcmp(cp->cluster_slots[i]->name, name) != 0)
        i = (i + 1) & cp->cluster_mask;
    return &cp->cluster_slots[i];
}

/* Adds cl to the index, doubling it (in the load's temporary arena) past half full. */
static void index_cluster(compiler_t *cp, pt_cluster_t *cl)
{
    if (2 * (cp->n_clusters + 1) > cp->cluster_mask) {
        size_t old_slots = cp->cluster_mask ? cp->cluster_mask + 1 : 0;
        pt_cluster_t **old = cp->cluster_slots;
        cp->cluster_mask = old_slots ? 2 * old_slots - 1 : 63;
        cp->cluster_slots =
            pt_arena_calloc(cp->cx->tmp, (cp->cluster_mask + 1) * sizeof(*cp->cluster_slots));
        for (size_t i = 0; i < old_slots; i++)
            if (old[i] != NULL)
                *cluster_slot(cp, old[i]->name) = old[i];
    }
    *cluster_slot(cp, cl->name) = cl;
}

/* The declared protocol of a ServiceEntry port: its protocol, else its name's prefix
 * ("grpc-web-x", "http2-x", "grpc", as Kubernetes names ports); NULL: none. */
static const char *declared_protocol(const pt_res_se_port_t *sp, char *buf, size_t cap)
{
    if (sp == NULL)
        return NULL;
    if (sp->protocol != NULL && sp->protocol[0] != '\0')
        return sp->protocol;
    if (sp->name == NULL)
        return NULL;
    if (strncasecmp(sp->name, "grpc-web", 8) == 0 && (sp->name[8] == '\0' || sp->name[8] == '-'))
        return "GRPC-WEB";
    size_t n = strcspn(sp->name, "-");
    snprintf(buf, cap, "%.*s", (int)n, sp->name);
    return buf;
}

/* Istio's upstream protocol: the client's with useClientProtocol; HTTP/2 on HTTP2, GRPC and
 * GRPC-WEB ports; on HTTP ports (or undeclared ones), HTTP/2 when h2UpgradePolicy is UPGRADE
 * (DEFAULT: the Proxy's h2UpgradePolicy); HTTP/1.1 otherwise.
 *
 * Over mesh mTLS (is_mesh: an ISTIO_MUTUAL endpoint, a peer sidecar) a policy left at DEFAULT
 * on both the DestinationRule and the Proxy upgrades, where Istio's DO_NOT_UPGRADE default
 * would keep the app's HTTP/1.1: the peer is a sidecar that serves HTTP/2 whatever its app
 * speaks, and one multiplexed connection replaces one connection per app connection. The
 * ALPN offered (proxy/tls_upstream.c) tells the peer which protocol comes. */
static pt_upstream_protocol_t upstream_protocol(const pt_res_se_port_t *sp,
                                                const pt_conn_pool_settings_t *pool,
                                                uint8_t mesh_policy, bool is_mesh)
{
    if (pool->use_client_protocol)
        return PT_UPSTREAM_CLIENT;
    char buf[32];
    const char *p = declared_protocol(sp, buf, sizeof(buf));
    if (p != NULL && (strcasecmp(p, "HTTP2") == 0 || strcasecmp(p, "GRPC") == 0 ||
                      strcasecmp(p, "GRPC-WEB") == 0))
        return PT_UPSTREAM_HTTP2;
    uint8_t policy = pool->h2_upgrade != PT_H2_UPGRADE_DEFAULT ? pool->h2_upgrade : mesh_policy;
    bool upgrade = policy == PT_H2_UPGRADE || (policy == PT_H2_UPGRADE_DEFAULT && is_mesh);
    if (upgrade && (p == NULL || strcasecmp(p, "HTTP") == 0))
        return PT_UPSTREAM_HTTP2;
    return PT_UPSTREAM_HTTP1;
}

static pt_cluster_t *make_cluster(compiler_t *cp, const char *name, const char *host, uint16_t port,
                                  const pt_res_se_t *se, const pt_res_dr_t *dr,
                                  const pt_res_subset_t *sub);

/* The cluster of (host, port, subset), made on first use. sub is the subset's definition in dr
 * (NULL for the whole service). */
static pt_cluster_t *get_cluster(compiler_t *cp, const char *host, uint16_t port,
                                 const pt_res_dr_t *dr, const pt_res_subset_t *sub)
{
    const char *subset = sub != NULL ? sub->name : NULL;
    /* The name says host, port and subset (a host has no "|"): it is the key. */
    char *name = pt_arena_printf(cp->cx->tmp, "outbound|%u|%s|%s", (unsigned)port,
                                 subset != NULL ? subset : "", host);
    pt_cluster_t *found = cp->cluster_mask != 0 ? *cluster_slot(cp, name) : NULL;
    if (found != NULL)
        return found;
    return make_cluster(cp, name, host, port, find_service_entry(cp, host), dr, sub);
}

/* A new cluster named name for (host, port, subset), its endpoints from se (NULL: none). */
static pt_cluster_t *make_cluster(compiler_t *cp, const char *name, const char *host, uint16_t port,
                                  const pt_res_se_t *se, const pt_res_dr_t *dr,
                                  const pt_res_subset_t *sub)
{
    const char *subset = sub != NULL ? sub->name : NULL;
    pt_cfg_cx_t *cx = cp->cx;
    pt_cluster_t *cl = pt_arena_calloc(cx->out, sizeof(*cl));
    cl->host = pt__cfg_out_str(cx, host);
    cl->subset = subset != NULL ? pt__cfg_out_str(cx, subset) : NULL;
    cl->port = port;
    cl->name = pt_arena_strdup(cx->out, name);
    cl->index = (uint32_t)cp->n_clusters;
    const pt_res_se_port_t *sp = NULL;
    for (size_t i = 0; se != NULL && i < se->n_ports; i++)
        if (se->ports[i].number == port)
            sp = &se->ports[i];
    if (sp != NULL) {
        size_t n_src;
        const pt_res_se_endpoint_t *src = service_endpoints(cp, se, host, &n_src);
        /* Two passes over the answers: count, then fill. */
        size_t cap = 0;
        for (size_t i = 0; i < n_src; i++)
            if (sub == NULL || labels_match(&src[i], sub))
                cap += endpoint_addrs(cp, se, &src[i], NULL);
        cl->endpoints = pt_arena_calloc(cx->out, (cap + 1) * sizeof(*cl->endpoints));
        for (size_t i = 0; i < n_src; i++) {
            const pt_res_se_endpoint_t *e = &src[i];
            if (sub != NULL && !labels_match(e, sub))
                continue;
            const struct sockaddr_storage *addrs;
            size_t n = endpoint_addrs(cp, se, e, &addrs);
            for (size_t k = 0; k < n && cl->n_endpoints < cap; k++) {
                pt_endpoint_t *ep = &cl->endpoints[cl->n_endpoints++];
                ep->labels = e->labels;
                ep->n_labels = e->n_labels;
                ep->port = endpoint_port(e, sp);
                ep->weight = e->weight;
                ep->addr = addrs[k];
                if (e->addr_len > 0) {
                    ep->address = pt__cfg_out_str(cx, e->address);
                    ep->addr_len = e->addr_len;
                } else {
                    char text[INET6_ADDRSTRLEN];
                    const void *raw =
                        addrs[k].ss_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)&addrs[k])->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)&addrs[k])->sin6_addr;
                    inet_ntop(addrs[k].ss_family, raw, text, sizeof(text));
                    ep->address = pt__cfg_out_str(cx, text);
                    ep->hostname = pt__cfg_out_str(cx, e->address);
                    ep->addr_len = addrs[k].ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                                 : sizeof(struct sockaddr_in6);
                }
                if (ep->addr.ss_family == AF_INET)
                    ((struct sockaddr_in *)&ep->addr)->sin_port = htons(ep->port);
                else
                    ((struct sockaddr_in6 *)&ep->addr)->sin6_port = htons(ep->port);
            }
        }
    }
    resolve_lb(dr, sub, port, &cl->lb);
    /* resolution NONE, or a PASSTHROUGH balancer: each connection's original destination
     * (captured traffic); elsewhere there is none and the request gets 503 UH. */
    if ((se != NULL && se->resolution == PT_RES_NONE) || cl->lb.policy == PT_LB_PASSTHROUGH) {
        cl->is_original_dst = true;
        cl->n_endpoints = 0;
        cl->lb.policy = PT_LB_ROUND_ROBIN;
    }
    pt_lb_build(cx->out, cl);
    resolve_pool(dr, sub, port, &cl->pool);
    cl->state = pt_cluster_state_get(cl->name, &cl->pool);
    cl->protocol = upstream_protocol(sp, &cl->pool, cp->c->proxy.h2_upgrade, false);
    cl->mesh_protocol = upstream_protocol(sp, &cl->pool, cp->c->proxy.h2_upgrade, true);
    resolve_tls(cp, dr, sub, cl);
    const pt_outlier_config_t *od = resolve_outlier(dr, sub, port);
    if (od != NULL) /* copied: the rule itself lives in the load's temporary arena */
        cl->outlier = memcpy(pt_arena_alloc(cx->out, sizeof(*od)), od, sizeof(*od));
    index_cluster(cp, cl);
    cp->clusters = pt_arena_grow(cx->tmp, cp->clusters, cp->n_clusters, &cp->cap_clusters,
                                 sizeof(*cp->clusters));
    cp->clusters[cp->n_clusters++] = cl;
    return cl;
}

/* Stands for a destination's cluster until compile_mesh picks it per port. Never published:
 * every route table holds real clusters. */
static pt_cluster_t port_per_table_cluster;
#define PORT_PER_TABLE (&port_per_table_cluster)

static const pt_res_subset_t *find_subset(const pt_res_dr_t *dr, const char *name);

/* A destination this proxy routes to whose host (or host and port) no ServiceEntry declares
 * gets a cluster without endpoints: every request routed there is answered 503, so it is
 * shown. A ServiceEntry with resolution NONE sends to the original destination, any port. */
static void check_declared(compiler_t *cp, const pt_res_dest_t *d)
{
    const pt_res_se_t *se = find_service_entry(cp, d->host);
    char path[600];
    if (se == NULL) {
        if (pt__cfg_may_be_unchecked(cp->cx, "ServiceEntry", NULL, NULL))
            return;
        snprintf(path, sizeof(path), "%s.destination.host", d->path);
        pt__cfg_warn_at(cp->cx, d->node, path,
                        "no ServiceEntry declares host \"%s\" (Kubernetes Services are not read "
                        "by Petrel yet): requests routed to it get 503",
                        d->host);
        return;
    }
    for (size_t i = 0; i < se->n_ports; i++)
        if (se->ports[i].number == d->port)
            return;
    if (se->resolution == PT_RES_NONE)
        return;
    snprintf(path, sizeof(path), "%s.destination.port.number", d->path);
    pt__cfg_warn_at(cp->cx, d->node, path,
                    "ServiceEntry %s/%s does not declare port %u for host \"%s\": requests "
                    "routed to it get 503",
                    se->meta.ns, se->meta.name, (unsigned)d->port, d->host);
}

/* The cluster of one destination, or NULL (error reported, or already reported earlier). */
static pt_cluster_t *resolve_dest(compiler_t *cp, const pt_res_dest_t *d)
{
    if (d->host == NULL)
        return NULL; /* invalid host, reported by kind_virtual_service.c */
    uint16_t port = d->port;
    if (cp->mesh_only) {
        /* Kubernetes short names and ports come from the cluster's Services, which Petrel
         * does not see: only a subset that a DestinationRule here should define is checked. */
        const pt_res_dr_t *dr = find_destination_rule(cp, d->host);
        if (d->subset != NULL && find_subset(dr, d->subset) == NULL &&
            !pt__cfg_may_be_unchecked(cp->cx, "DestinationRule", NULL, NULL)) {
            char path[600];
            snprintf(path, sizeof(path), "%s.destination.subset", d->path);
            pt__cfg_warn_at(cp->cx, d->subset_node ? d->subset_node : d->node, path,
                            "no DestinationRule in the config defines subset \"%s\" for host "
                            "\"%s\"",
                            d->subset, d->host);
        }
        return NULL;
    }
    if (port == 0) {
        const pt_res_se_t *se = find_service_entry(cp, d->host);
        char path[600];
        snprintf(path, sizeof(path), "%s.port", d->path);
        if (se == NULL) {
            /* Istio takes the port from the Kubernetes Service, which Petrel does not read:
             * the destination gets a cluster without endpoints (503 UH), as an unknown host
             * does. */
            if (!pt__cfg_may_be_unchecked(cp->cx, "ServiceEntry", NULL, NULL))
                pt__cfg_warn_at(
                    cp->cx, d->node, path,
                    "no ServiceEntry declares host \"%s\", so its port cannot be "
                    "inferred (Kubernetes Services are not read by Petrel yet): requests "
                    "to it get 503",
                    d->host);
            return get_cluster(cp, d->host, 0, NULL, NULL);
        }
        if (se->n_ports > 1 && cp->port_per_table &&
            (d->subset == NULL || find_subset(find_destination_rule(cp, d->host), d->subset)))
            return PORT_PER_TABLE;
        if (se->n_ports != 1) {
            pt__cfg_error_at(cp->cx, d->node, path,
                             "required: ServiceEntry %s/%s has %zu ports for host \"%s\"",
                             se->meta.ns, se->meta.name, se->n_ports, d->host);
            return NULL;
        }
        port = se->ports[0].number;
    }
    if (d->port != 0)
        check_declared(cp, d);
    const pt_res_dr_t *dr = find_destination_rule(cp, d->host);
    const pt_res_subset_t *sub = NULL;
    if (d->subset != NULL) {
        sub = find_subset(dr, d->subset);
        if (sub == NULL && pt__cfg_may_be_unchecked(cp->cx, "DestinationRule", NULL, NULL))
            return NULL;
        if (sub == NULL) {
            char path[600];
            snprintf(path, sizeof(path), "%s.destination.subset", d->path);
            const pt_cfg_node_t *at = d->subset_node ? d->subset_node : d->node;
            if (dr == NULL)
                pt__cfg_error_at(cp->cx, at, path,
                                 "no DestinationRule for host \"%s\" defines subset \"%s\"",
                                 d->host, d->subset);
            else
                pt__cfg_error_at(cp->cx, at, path,
                                 "subset \"%s\" is not defined by DestinationRule %s/%s (%s:%d) "
                                 "for host \"%s\"",
                                 d->subset, dr->meta.ns, dr->meta.name, dr->meta.doc->file,
                                 dr->meta.doc->line, d->host);
            return NULL;
        }
    }
    return get_cluster(cp, d->host, port, dr, sub);
}

/* route->mirrors from the route's mirror destinations (proxy/mirror.c sends the copies). */
static void compile_mirrors(compiler_t *cp, pt_res_http_route_t *hr)
{
    if (hr->n_mirrors == 0)
        return;
    pt_http_mirror_t *m = pt_arena_calloc(cp->cx->out, hr->n_mirrors * sizeof(*m));
    size_t n = 0;
    /* A mirror has one cluster for every route table: its port cannot follow the table's. */
    bool port_per_table = cp->port_per_table;
    cp->port_per_table = false;
    for (size_t i = 0; i < hr->n_mirrors; i++) {
        pt_cluster_t *cl = resolve_dest(cp, &hr->mirror_dests[i]);
        if (cl != NULL)
            m[n++] = (pt_http_mirror_t){cl, hr->mirror_ppm[i]};
    }
    cp->port_per_table = port_per_table;
    hr->route.mirrors = m;
    hr->route.n_mirrors = n;
}

/* Fills route->clusters from the destinations; reports weight problems. */
static void compile_weights(compiler_t *cp, pt_res_dest_t *dests, size_t n,
                            pt_weighted_cluster_t **out, size_t *n_out, uint32_t *total,
                            const char *route_path, const pt_cfg_node_t *route_node)
{
    *out = NULL;
    *n_out = 0;
    *total = 0;
    if (n == 0)
        return;
    pt_weighted_cluster_t *wc = pt_arena_calloc(cp->cx->out, n * sizeof(*wc));
    uint64_t sum = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        pt_cluster_t *cl = resolve_dest(cp, &dests[i]);
        if (cl == NULL)
            ok = false;
        uint64_t w = 100;
        if (n > 1) {
            if (!dests[i].has_weight) {
                char path[600];
                snprintf(path, sizeof(path), "%s.weight", dests[i].path);
                pt__cfg_error_at(cp->cx, dests[i].node, path,
                                 "required when a route has several destinations");
                ok = false;
            }
            w = dests[i].weight;
        }
        sum += w;
        wc[i].cluster = cl;
        wc[i].headers = dests[i].headers;
        wc[i].cumulative_weight = (uint32_t)(sum > UINT32_MAX ? UINT32_MAX : sum);
    }
    if (ok && sum == 0) {
        pt__cfg_error_at(cp->cx, route_node, route_path, "the total weight must be > 0");
        ok = false;
    }
    if (ok && sum > UINT32_MAX) {
        pt__cfg_error_at(cp->cx, route_node, route_path, "the total weight is too large");
        ok = false;
    }
    if (!ok)
        return;
    *out = wc;
    *n_out = n;
    *total = (uint32_t)sum;
}

static void compile_l4(compiler_t *cp, pt_res_tcp_route_t *tr, bool is_tls_route)
{
    char path[600];
    snprintf(path, sizeof(path), "%s.route", tr->path);
    compile_weights(cp, tr->dests, tr->n_dests, &tr->compiled.clusters, &tr->compiled.n_clusters,
                    &tr->compiled.total_weight, path, tr->node);
    for (size_t i = 0; is_tls_route && i < tr->compiled.n_clusters; i++)
        if (tr->compiled.clusters[i].cluster->tls != NULL)
            pt__cfg_warn_at(cp->cx, tr->node, path,
                            "DestinationRule tls for %s is not applied on TLS-passthrough routes: "
                            "the client's TLS is relayed as it is",
                            tr->compiled.clusters[i].cluster->name);
}

static pt_res_vs_t *find_vs(compiler_t *cp, const char *ns, const char *name)
{
    for (size_t i = 0; i < cp->set->n_vss; i++) {
        pt_res_vs_t *vs = cp->set->vss[i];
        if (strcmp(vs->meta.ns, ns) == 0 && strcmp(vs->meta.name, name) == 0)
            return vs;
    }
    return NULL;
}

/* The delegate VirtualService a root route names, or NULL (reported) when there is none. */
static const pt_res_vs_t *delegate_of(compiler_t *cp, const pt_res_http_route_t *hr, bool report)
{
    const pt_res_vs_t *d = find_vs(cp, hr->delegate_ns, hr->delegate_name);
    if (!report || (d != NULL && d->is_delegate))
        return d != NULL && d->is_delegate ? d : NULL;
    char path[600];
    snprintf(path, sizeof(path), "%s.delegate", hr->path);
    if (d == NULL &&
        !pt__cfg_may_be_unchecked(cp->cx, "VirtualService", hr->delegate_ns, hr->delegate_name))
        pt__cfg_warn_at(cp->cx, hr->delegate_node, path,
                        "no VirtualService %s/%s in the config: this route is left out",
                        hr->delegate_ns, hr->delegate_name);
    else if (d != NULL)
        pt__cfg_error_at(cp->cx, hr->delegate_node, path,
                         "VirtualService %s/%s has hosts: only one without hosts can be "
                         "delegated to",
                         hr->delegate_ns, hr->delegate_name);
    return NULL;
}

/* The routes taking the place of root route hr: its delegate's, merged (config/delegate.c),
 * appended to routes[*n...]. */
static void expand_delegate(compiler_t *cp, const pt_res_http_route_t *hr, pt_http_route_t *routes,
                            size_t *n)
{
    const pt_res_vs_t *d = delegate_of(cp, hr, true);
    if (d == NULL)
        return;
    size_t before = *n;
    for (size_t j = 0; j < d->n_compiled; j++)
        if (pt__cfg_merge_delegate_route(cp->cx->out, &hr->route, &d->compiled[j], &routes[*n]))
            (*n)++;
    if (*n == before && d->n_compiled > 0) {
        char path[600];
        snprintf(path, sizeof(path), "%s.delegate", hr->path);
        pt__cfg_warn_at(cp->cx, hr->delegate_node, path,
                        "no route of %s/%s fits this route's match: the route is left out",
                        hr->delegate_ns, hr->delegate_name);
    }
}

static void compile_vs(compiler_t *cp, pt_res_vs_t *vs)
{
    size_t cap = 0;
    for (size_t i = 0; i < vs->n_http; i++) {
        const pt_res_vs_t *d =
            vs->http[i].delegate_name ? delegate_of(cp, &vs->http[i], false) : NULL;
        cap += vs->http[i].delegate_name == NULL ? 1 : d != NULL ? d->n_compiled : 0;
    }
    pt_http_route_t *routes = cap ? pt_arena_calloc(cp->cx->out, cap * sizeof(*routes)) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < vs->n_http; i++) {
        pt_res_http_route_t *hr = &vs->http[i];
        compile_mirrors(cp, hr);
        if (hr->delegate_name != NULL) {
            expand_delegate(cp, hr, routes, &n);
            continue;
        }
        hr->compiled_index = n;
        pt_http_route_t *r = &routes[n++];
        *r = hr->route;
        char path[600];
        snprintf(path, sizeof(path), "%s.route", hr->path);
        compile_weights(cp, hr->dests, hr->n_dests, &r->clusters, &r->n_clusters, &r->total_weight,
                        path, hr->node);
    }
    vs->compiled = routes;
    vs->n_compiled = n;
    for (size_t i = 0; i < vs->n_tcp; i++)
        compile_l4(cp, &vs->tcp[i], false);
    for (size_t i = 0; i < vs->n_tls; i++)
        compile_l4(cp, &vs->tls[i], true);
}

/* The tls[] routes of vs that apply on a listener's port, appended to the listener's list:
 * each with the sniHosts of its match[] entries for that port. */
/* The hosts vs serves on b's port: its hosts intersected with those of the servers, of the
 * given kind (-1: any), of the Gateways it binds to; kept in *buf. */
static size_t bound_hosts(compiler_t *cp, const listener_build_t *b, const pt_res_vs_t *vs,
                          int kind, const char ***buf, size_t *cap)
{
    size_t n_hosts = 0;
    for (size_t bi = 0; bi < b->n_bindings; bi++) {
        const binding_t *bd = &b->bindings[bi];
        if (kind >= 0 && server_kind(bd->srv) != kind)
            continue;
        bool bound = false;
        for (size_t r = 0; r < vs->n_gateways; r++)
            if (strcmp(vs->gateways[r].ns, bd->gw->meta.ns) == 0 &&
                strcmp(vs->gateways[r].name, bd->gw->meta.name) == 0)
                bound = true;
        if (!bound)
            continue;
        for (size_t h = 0; h < vs->n_hosts; h++)
            for (size_t sh = 0; sh < bd->srv->n_hosts; sh++) {
                const char *x = host_intersection(vs->hosts[h], bd->srv->hosts[sh]);
                if (x == NULL)
                    continue;
                bool seen = false;
                for (size_t q = 0; q < n_hosts; q++)
                    if (strcmp((*buf)[q], x) == 0)
                        seen = true;
                if (seen)
                    continue;
                *buf = pt_arena_grow(cp->cx->tmp, *buf, n_hosts, cap, sizeof(**buf));
                (*buf)[n_hosts++] = x;
            }
    }
    return n_hosts;
}

/* vs's first tcp[] route for port, or NULL. */
static const pt_l4_route_t *first_tcp_route(const pt_res_vs_t *vs, uint16_t port)
{
    for (size_t t = 0; t < vs->n_tcp; t++) {
        const pt_res_tcp_route_t *tr = &vs->tcp[t];
        bool match = tr->match_any;
        for (size_t m = 0; m < tr->n_matches; m++)
            if (tr->match_ports[m] == port)
                match = true;
        if (match && tr->compiled.n_clusters > 0)
            return &tr->compiled;
    }
    return NULL;
}

static void bind_tls_routes(compiler_t *cp, listener_build_t *b, const pt_res_vs_t *vs);
static void sort_vhosts(pt_vhost_t *v, size_t n);

/* A port shared by HTTPS, terminated TLS and PASSTHROUGH servers: each VirtualService binds by
 * the kind of the servers whose hosts it shares, as it would on a port of that kind alone. */
static void bind_mixed(compiler_t *cp, listener_build_t *b)
{
    const char **buf = NULL;
    size_t cap = 0;
    for (size_t v = 0; v < cp->set->n_vss; v++) {
        const pt_res_vs_t *vs = cp->set->vss[v];
        size_t n = bound_hosts(cp, b, vs, PT_TLS_SERVER_HTTPS, &buf, &cap);
        if (n > 0 && vs->n_compiled > 0) {
            b->vhosts = pt_arena_grow(cp->cx->tmp, b->vhosts, b->n_vhosts, &b->cap_vhosts,
                                      sizeof(*b->vhosts));
            pt_vhost_t *vh = &b->vhosts[b->n_vhosts++];
            vh->hosts = pt_arena_memdup(cp->cx->out, buf, n * sizeof(*buf));
            vh->n_hosts = n;
            vh->routes = vs->compiled;
            vh->n_routes = vs->n_compiled;
        }
        const pt_l4_route_t *tr = first_tcp_route(vs, b->l->port);
        if (!b->has_tcp_route && tr != NULL &&
            bound_hosts(cp, b, vs, PT_TLS_SERVER_TERMINATE, &buf, &cap) > 0) {
            b->tcp_route = *tr;
            b->has_tcp_route = true;
        }
        if (bound_hosts(cp, b, vs, PT_TLS_SERVER_PASSTHROUGH, &buf, &cap) > 0)
            bind_tls_routes(cp, b, vs);
    }
    sort_vhosts(b->vhosts, b->n_vhosts);
}

static void bind_tls_routes(compiler_t *cp, listener_build_t *b, const pt_res_vs_t *vs)
{
    for (size_t t = 0; t < vs->n_tls; t++) {
        const pt_res_tcp_route_t *tr = &vs->tls[t];
        if (tr->compiled.n_clusters == 0)
            continue;
        size_t n = 0;
        for (size_t m = 0; m < tr->n_tls_matches; m++)
            if (tr->tls_matches[m].port == 0 || tr->tls_matches[m].port == b->l->port)
                n += tr->tls_matches[m].n_sni_hosts;
        if (n == 0)
            continue;
        const char **sni = pt_arena_calloc(cp->cx->out, n * sizeof(*sni));
        n = 0;
        for (size_t m = 0; m < tr->n_tls_matches; m++)
            if (tr->tls_matches[m].port == 0 || tr->tls_matches[m].port == b->l->port)
                for (size_t h = 0; h < tr->tls_matches[m].n_sni_hosts; h++)
                    sni[n++] = tr->tls_matches[m].sni_hosts[h];
        b->l4 = pt_arena_grow(cp->cx->tmp, b->l4, b->n_l4, &b->cap_l4, sizeof(*b->l4));
        pt_l4_route_t *r = &b->l4[b->n_l4++];
        *r = tr->compiled;
        r->sni_hosts = sni;
        r->n_sni_hosts = n;
    }
}

/* Kubernetes short names ("reviews") mean a service in the rule's own namespace, as Istio
 * reads them: completed here, once, so that everything below compares FQDNs. */
static void complete_short_hosts(pt_cfg_cx_t *cx, pt_res_set_t *set)
{
    for (size_t v = 0; v < set->n_vss; v++) {
        pt_res_vs_t *vs = set->vss[v];
        const char *ns = vs->meta.ns;
        for (size_t h = 0; h < vs->n_hosts; h++)
            vs->hosts[h] = pt_host_complete(cx->out, vs->hosts[h], ns);
        for (size_t i = 0; i < vs->n_http; i++) {
            for (size_t d = 0; d < vs->http[i].n_dests; d++)
                vs->http[i].dests[d].host =
                    pt_host_complete(cx->out, vs->http[i].dests[d].host, ns);
            for (size_t d = 0; d < vs->http[i].n_mirrors; d++)
                vs->http[i].mirror_dests[d].host =
                    pt_host_complete(cx->out, vs->http[i].mirror_dests[d].host, ns);
        }
        for (size_t i = 0; i < vs->n_tcp; i++)
            for (size_t d = 0; d < vs->tcp[i].n_dests; d++)
                vs->tcp[i].dests[d].host = pt_host_complete(cx->out, vs->tcp[i].dests[d].host, ns);
        for (size_t i = 0; i < vs->n_tls; i++)
            for (size_t d = 0; d < vs->tls[i].n_dests; d++)
                vs->tls[i].dests[d].host = pt_host_complete(cx->out, vs->tls[i].dests[d].host, ns);
    }
    for (size_t i = 0; i < set->n_drs; i++)
        set->drs[i]->host = pt_host_complete(cx->out, set->drs[i]->host, set->drs[i]->meta.ns);
    for (size_t i = 0; i < set->n_ses; i++)
        for (size_t h = 0; h < set->ses[i]->n_hosts; h++)
            set->ses[i]->hosts[h] =
                pt_host_complete(cx->out, set->ses[i]->hosts[h], set->ses[i]->meta.ns);
}

/* A route to a cluster whose one endpoint is each connection's original destination. */
static pt_http_route_t *original_dst_route(pt_cfg_cx_t *cx, const char *cluster_name,
                                           const char *route_name)
{
    pt_cluster_t *cl = pt_arena_calloc(cx->out, sizeof(*cl));
    cl->name = cluster_name;
    cl->host = cluster_name; /* Istio reports passthrough traffic under the cluster's name */
    cl->is_original_dst = true;
    /* Istio's defaults for the pool, and breaker state like any cluster's (stream.c counts
     * every request in its cluster's state). */
    pt_conn_pool_settings_default(&cl->pool);
    cl->state = pt_cluster_state_get(cl->name, &cl->pool);
    pt_http_route_t *r = pt_arena_calloc(cx->out, sizeof(*r));
    r->name = route_name;
    r->clusters = pt_arena_calloc(cx->out, sizeof(*r->clusters));
    r->clusters[0].cluster = cl;
    r->clusters[0].cumulative_weight = 1;
    r->n_clusters = 1;
    r->total_weight = 1;
    return r;
}

/* A vhost "*" with one route, added last to a table. */
static void add_catch_all(pt_cfg_cx_t *cx, pt_vhost_t **vhosts, size_t *n, size_t *cap,
                          pt_http_route_t *r)
{
    *vhosts = pt_arena_grow(cx->tmp, *vhosts, *n, cap, sizeof(**vhosts));
    pt_vhost_t *vh = &(*vhosts)[(*n)++];
    vh->hosts = pt_arena_calloc(cx->out, sizeof(*vh->hosts));
    vh->hosts[0] = "*";
    vh->n_hosts = 1;
    vh->routes = r;
    vh->n_routes = 1;
}

static void add_domains(pt_cfg_cx_t *cx, const char *host, const char *workload_ns,
                        const char ***buf, size_t *n, size_t *cap)
{
    const char *d[PT_HOST_MAX_DOMAINS];
    size_t nd = pt_host_domains(cx->out, host, workload_ns, d);
    for (size_t i = 0; i < nd; i++) {
        bool seen = false;
        for (size_t q = 0; q < *n && !seen; q++)
            seen = strcmp((*buf)[q], d[i]) == 0;
        if (seen)
            continue;
        *buf = pt_arena_grow(cx->tmp, *buf, *n, cap, sizeof(**buf));
        (*buf)[(*n)++] = d[i];
    }
}

typedef struct host_entry {
    const char *host;
    const pt_res_se_t *se;
    size_t order; /* load order: the first ServiceEntry listing a host wins */
} host_entry_t;

static int compare_host_entries(const void *x, const void *y)
{
    const host_entry_t *a = x, *b = y;
    int c = strcmp(a->host, b->host);
    return c != 0 ? c : (a->order > b->order) - (a->order < b->order);
}

static int compare_strings(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int compare_ports(const void *x, const void *y)
{
    uint16_t a = *(const uint16_t *)x, b = *(const uint16_t *)y;
    return (a > b) - (a < b);
}

static void index_service_hosts(compiler_t *cp)
{
    size_t n = 0;
    for (size_t i = 0; i < cp->set->n_ses; i++)
        n += cp->set->ses[i]->n_hosts;
    cp->se_hosts = pt_arena_calloc(cp->cx->tmp, (n + 1) * sizeof(*cp->se_hosts));
    for (size_t i = 0; i < cp->set->n_ses; i++) {
        const pt_res_se_t *se = cp->set->ses[i];
        for (size_t h = 0; h < se->n_hosts; h++) {
            if (se->hosts[h][0] == '*')
                cp->has_wildcard_se = true;
            else
                cp->se_hosts[cp->n_se_hosts++] = (host_entry_t){se->hosts[h], se, cp->n_se_hosts};
        }
    }
    qsort(cp->se_hosts, cp->n_se_hosts, sizeof(*cp->se_hosts), compare_host_entries);
}

/* find_service_entry() through the sorted index (the linear search only when some
 * ServiceEntry host is a wildcard and no exact one matched). */
static const pt_res_se_t *mesh_service(compiler_t *cp, const char *host)
{
    size_t lo = 0, hi = cp->n_se_hosts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(cp->se_hosts[mid].host, host) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < cp->n_se_hosts && strcmp(cp->se_hosts[lo].host, host) == 0)
        return cp->se_hosts[lo].se;
    if (!cp->has_wildcard_se)
        return NULL;
    const pt_res_se_t *best = NULL; /* the longest wildcard covering host */
    size_t best_len = 0;
    for (size_t i = 0; i < cp->set->n_ses; i++) {
        const pt_res_se_t *se = cp->set->ses[i];
        for (size_t j = 0; j < se->n_hosts; j++) {
            const char *h = se->hosts[j];
            if (h[0] == '*' && pt__cfg_host_covers(h, host) &&
                (best == NULL || strlen(h) > best_len)) {
                best = se;
                best_len = strlen(h);
            }
        }
    }
    return best;
}

static bool service_has_port(const pt_res_se_t *se, uint16_t port)
{
    for (size_t p = 0; se != NULL && p < se->n_ports; p++)
        if (se->ports[p].number == port)
            return true;
    return false;
}

/* A VirtualService routes a port's traffic when one of its hosts is a service with that port
 * (Istio builds a port's routes from its services); one naming no known service at all applies
 * to every port. */
static bool vs_applies_to_port(compiler_t *cp, const pt_res_vs_t *vs, uint16_t port)
{
    bool names_a_service = false;
    for (size_t h = 0; h < vs->n_hosts; h++) {
        const pt_res_se_t *se = mesh_service(cp, vs->hosts[h]);
        if (se == NULL)
            continue;
        names_a_service = true;
        if (service_has_port(se, port))
            return true;
    }
    return !names_a_service;
}

/* A service's single addresses (ServiceEntry addresses without a shorter prefix) are request
 * hosts too, as in Envoy's generated domains: a client that dials the VIP by number sends
 * it as Host. IPv6 in brackets, as a Host header carries it. */
static void add_address_domains(pt_cfg_cx_t *cx, const pt_res_se_t *se, const char ***buf,
                                size_t *n, size_t *cap)
{
    for (size_t a = 0; se != NULL && a < se->n_addresses; a++) {
        const pt_cidr_t *ad = &se->addresses[a];
        char text[INET6_ADDRSTRLEN + 2];
        if (ad->prefix_len != (ad->family == AF_INET ? 32 : 128))
            continue;
        if (ad->family == AF_INET) {
            inet_ntop(AF_INET, ad->bytes, text, sizeof(text));
        } else {
            text[0] = '[';
            inet_ntop(AF_INET6, ad->bytes, text + 1, sizeof(text) - 2);
            strcat(text, "]");
        }
        bool seen = false;
        for (size_t q = 0; q < *n && !seen; q++)
            seen = strcmp((*buf)[q], text) == 0;
        if (seen)
            continue;
        *buf = pt_arena_grow(cx->tmp, *buf, *n, cap, sizeof(**buf));
        (*buf)[(*n)++] = pt__cfg_out_str(cx, text);
    }
}

/* The cluster standing for PORT_PER_TABLE in a route table for port. */
static pt_cluster_t *cluster_for_port(compiler_t *cp, const pt_res_dest_t *d, uint16_t port)
{
    const pt_res_dr_t *dr = find_destination_rule(cp, d->host);
    return get_cluster(cp, d->host, port, dr, d->subset ? find_subset(dr, d->subset) : NULL);
}

/* vs's compiled routes for the table of port: shared as they are, or, when a destination
 * takes the table's port, a copy with that port's clusters. */
static pt_http_route_t *routes_for_port(compiler_t *cp, const pt_res_vs_t *vs, uint16_t port)
{
    bool per_port = false;
    for (size_t i = 0; i < vs->n_compiled && !per_port; i++)
        for (size_t j = 0; j < vs->compiled[i].n_clusters; j++)
            per_port |= vs->compiled[i].clusters[j].cluster == PORT_PER_TABLE;
    if (!per_port)
        return vs->compiled;
    pt_cfg_cx_t *cx = cp->cx;
    pt_http_route_t *routes =
        pt_arena_memdup(cx->out, vs->compiled, vs->n_compiled * sizeof(*vs->compiled));
    /* Only a VirtualService's own routes can hold PORT_PER_TABLE (delegates compile without
     * it): each knows where it was compiled to. */
    for (size_t i = 0; i < vs->n_http; i++) {
        const pt_res_http_route_t *hr = &vs->http[i];
        if (hr->delegate_name != NULL)
            continue;
        pt_http_route_t *r = &routes[hr->compiled_index];
        if (r->n_clusters == 0)
            continue;
        r->clusters = pt_arena_memdup(cx->out, r->clusters, r->n_clusters * sizeof(*r->clusters));
        for (size_t j = 0; j < r->n_clusters; j++)
            if (r->clusters[j].cluster == PORT_PER_TABLE)
                r->clusters[j].cluster = cluster_for_port(cp, &hr->dests[j], port);
    }
    return routes;
}

static pt_listener_config_t *table(pt_cfg_cx_t *cx, pt_listener_config_t *l, const char *name,
                                   uint16_t port, pt_vhost_t *vhosts, size_t n_vhosts)
{
    l->name = name;
    l->port = port;
    l->protocol = PT_LISTENER_HTTP;
    l->vhosts = pt_arena_memdup(cx->out, vhosts, n_vhosts * sizeof(*vhosts));
    l->n_vhosts = n_vhosts;
    return l;
}

/* The sidecar's route tables (Proxy spec.sidecar). Outbound, one per service port (the
 * ServiceEntry ports), as Envoy's per-port route configurations: the VirtualServices bound to
 * mesh that name a service with that port (vs_applies_to_port), then a
 * default route for each service host that no VirtualService names, then "*" to
 * PassthroughCluster. Any other port: passthrough alone. Inbound: everything to the local
 * app, 127.0.0.1:<original port> (proxy/capture.c sets the endpoint). */
static void compile_mesh_tcp(compiler_t *cp, pt_config_t *c);

static void compile_mesh(compiler_t *cp, pt_config_t *c)
{
    pt_cfg_cx_t *cx = cp->cx;
    pt_res_set_t *set = cp->set;
    const char *wns = c->proxy.workload.ns;
    pt_http_route_t *passthrough = original_dst_route(cx, "PassthroughCluster", "allow_any");
    if (c->proxy.sidecar.registry_only) {
        /* REGISTRY_ONLY: a host no table knows is refused, as Istio's block_all route does. */
        passthrough = pt_arena_calloc(cx->out, sizeof(*passthrough));
        passthrough->name = "block_all";
        passthrough->direct_status = 502;
    }
    uint16_t *ports = NULL;
    size_t n_ports = 0, cap_ports = 0;
    for (size_t i = 0; i < set->n_ses; i++)
        for (size_t p = 0; p < set->ses[i]->n_ports; p++) {
            uint16_t port = set->ses[i]->ports[p].number;
            bool seen = port == 0;
            for (size_t k = 0; k < n_ports && !seen; k++)
                seen = ports[k] == port;
            if (seen)
                continue;
            ports = pt_arena_grow(cx->tmp, ports, n_ports, &cap_ports, sizeof(*ports));
            ports[n_ports++] = port;
        }
    if (n_ports > 1) /* by port: proxy/capture.c finds a connection's table by bisection */
        qsort(ports, n_ports, sizeof(*ports), compare_ports);
    c->mesh_listeners = pt_arena_calloc(cx->out, (n_ports + 1) * sizeof(*c->mesh_listeners));
    c->n_mesh_listeners = n_ports;
    for (size_t k = 0; k < n_ports; k++) {
        uint16_t port = ports[k];
        pt_vhost_t *vhosts = NULL;
        size_t n_vhosts = 0, cap_vhosts = 0;
        const char **named = NULL; /* hosts some VirtualService routes */
        size_t n_named = 0, cap_named = 0;
        for (size_t v = 0; v < set->n_vss; v++) {
            const pt_res_vs_t *vs = set->vss[v];
            if (!vs->binds_mesh || vs->n_compiled == 0 || !vs_applies_to_port(cp, vs, port))
                continue;
            const char **hosts = NULL;
            size_t n_hosts = 0, cap_hosts = 0;
            for (size_t h = 0; h < vs->n_hosts; h++) {
                add_domains(cx, vs->hosts[h], wns, &hosts, &n_hosts, &cap_hosts);
                add_address_domains(cx, mesh_service(cp, vs->hosts[h]), &hosts, &n_hosts,
                                    &cap_hosts);
                named = pt_arena_grow(cx->tmp, named, n_named, &cap_named, sizeof(*named));
                named[n_named++] = vs->hosts[h];
            }
            vhosts = pt_arena_grow(cx->tmp, vhosts, n_vhosts, &cap_vhosts, sizeof(*vhosts));
            pt_vhost_t *vh = &vhosts[n_vhosts++];
            vh->hosts = pt_arena_memdup(cx->out, hosts, n_hosts * sizeof(*hosts));
            vh->n_hosts = n_hosts;
            vh->routes = routes_for_port(cp, vs, port);
            vh->n_routes = vs->n_compiled;
        }
        if (n_named > 0)
            qsort(named, n_named, sizeof(*named), compare_strings);
        for (size_t i = 0; i < set->n_ses; i++) {
            const pt_res_se_t *se = set->ses[i];
            bool has_port = service_has_port(se, port);
            for (size_t h = 0; has_port && h < se->n_hosts; h++) {
                if (se->hosts[h][0] == '*' ||
                    (n_named > 0 &&
                     bsearch(&se->hosts[h], named, n_named, sizeof(*named), compare_strings)))
                    continue;
                const pt_res_dr_t *dr = find_destination_rule(cp, se->hosts[h]);
                pt_http_route_t *r = pt_arena_calloc(cx->out, sizeof(*r));
                r->name = "default";
                r->clusters = pt_arena_calloc(cx->out, sizeof(*r->clusters));
                r->clusters[0].cluster = get_cluster(cp, se->hosts[h], port, dr, NULL);
                r->clusters[0].cumulative_weight = 1;
                r->n_clusters = 1;
                r->total_weight = 1;
                const char **hosts = NULL;
                size_t n_hosts = 0, cap_hosts = 0;
                add_domains(cx, se->hosts[h], wns, &hosts, &n_hosts, &cap_hosts);
                add_address_domains(cx, se, &hosts, &n_hosts, &cap_hosts);
                vhosts = pt_arena_grow(cx->tmp, vhosts, n_vhosts, &cap_vhosts, sizeof(*vhosts));
                pt_vhost_t *vh = &vhosts[n_vhosts++];
                vh->hosts = pt_arena_memdup(cx->out, hosts, n_hosts * sizeof(*hosts));
                vh->n_hosts = n_hosts;
                vh->routes = r;
                vh->n_routes = 1;
            }
        }
        sort_vhosts(vhosts, n_vhosts);
        add_catch_all(cx, &vhosts, &n_vhosts, &cap_vhosts, passthrough);
        table(cx, &c->mesh_listeners[k], pt_arena_printf(cx->out, "0.0.0.0_%u", (unsigned)port),
              port, vhosts, n_vhosts);
    }
    pt_vhost_t *vhosts = NULL;
    size_t n_vhosts = 0, cap_vhosts = 0;
    add_catch_all(cx, &vhosts, &n_vhosts, &cap_vhosts, passthrough);
    c->mesh_passthrough = table(cx, pt_arena_calloc(cx->out, sizeof(pt_listener_config_t)),
                                "PassthroughCluster", 0, vhosts, n_vhosts);
    vhosts = NULL;
    n_vhosts = cap_vhosts = 0;
    add_catch_all(cx, &vhosts, &n_vhosts, &cap_vhosts,
                  original_dst_route(cx, "InboundPassthroughCluster", "inbound"));
    c->mesh_inbound = table(cx, pt_arena_calloc(cx->out, sizeof(pt_listener_config_t)),
                            "virtualInbound", 0, vhosts, n_vhosts);
    compile_mesh_tcp(cp, c);
}

/* Istio's protocol selection from a declared port protocol. */
static pt_port_protocol_t port_protocol(const char *p)
{
    if (p == NULL || p[0] == '\0')
        return PT_PORT_DETECT;
    static const char *const http[] = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"};
    for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++)
        if (strcasecmp(p, http[i]) == 0)
            return PT_PORT_HTTP;
    return PT_PORT_OPAQUE;
}

/* Captured traffic that is not HTTP is routed by its original destination: a ServiceEntry
 * address and port make a known service, whose VirtualServices' tcp routes (bound to mesh,
 * naming the host) apply in order, match.port and destinationSubnets tested against the
 * original destination, then the service's own cluster. Anything else passes through. */
static void compile_mesh_tcp(compiler_t *cp, pt_config_t *c)
{
    pt_cfg_cx_t *cx = cp->cx;
    pt_res_set_t *set = cp->set;
    size_t n = 0, n_vs_hosts = 0;
    for (size_t i = 0; i < set->n_ses; i++)
        if (set->ses[i]->n_addresses > 0)
            n += set->ses[i]->n_hosts * set->ses[i]->n_ports;
    if (n == 0)
        return;
    /* The hosts of mesh VirtualServices with tcp routes, sorted (order: load order). */
    for (size_t v = 0; v < set->n_vss; v++)
        if (set->vss[v]->binds_mesh && set->vss[v]->n_tcp > 0)
            n_vs_hosts += set->vss[v]->n_hosts;
    host_entry_t *vs_hosts = pt_arena_calloc(cx->tmp, (n_vs_hosts + 1) * sizeof(*vs_hosts));
    n_vs_hosts = 0;
    for (size_t v = 0; v < set->n_vss; v++)
        for (size_t k = 0;
             set->vss[v]->binds_mesh && set->vss[v]->n_tcp > 0 && k < set->vss[v]->n_hosts; k++)
            vs_hosts[n_vs_hosts++] = (host_entry_t){set->vss[v]->hosts[k], NULL, v};
    qsort(vs_hosts, n_vs_hosts, sizeof(*vs_hosts), compare_host_entries);
    c->mesh_tcp = pt_arena_calloc(cx->out, (n + 1) * sizeof(*c->mesh_tcp));
    for (size_t i = 0; i < set->n_ses; i++) {
        const pt_res_se_t *se = set->ses[i];
        for (size_t h = 0; se->n_addresses > 0 && h < se->n_hosts; h++) {
            const char *host = se->hosts[h];
            if (host[0] == '*')
                continue;
            for (size_t p = 0; p < se->n_ports; p++) {
                uint16_t port = se->ports[p].number;
                pt_mesh_tcp_route_t *routes = NULL;
                size_t n_routes = 0, cap_routes = 0;
                size_t lo = 0, hi = n_vs_hosts;
                while (lo < hi) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (strcmp(vs_hosts[mid].host, host) < 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                for (size_t e = lo; e < n_vs_hosts && strcmp(vs_hosts[e].host, host) == 0; e++) {
                    size_t v = vs_hosts[e].order;
                    const pt_res_vs_t *vs = set->vss[v];
                    if (e > lo && vs_hosts[e - 1].order == v)
                        continue; /* a VirtualService listing the host twice */
                    for (size_t t = 0; t < vs->n_tcp; t++) {
                        const pt_res_tcp_route_t *tr = &vs->tcp[t];
                        if (tr->compiled.n_clusters == 0)
                            continue;
                        /* The route's weighted clusters, with this port's where a destination
                         * takes the port of the table (PORT_PER_TABLE). */
                        pt_weighted_cluster_t *wc = tr->compiled.clusters;
                        for (size_t d = 0; d < tr->compiled.n_clusters; d++)
                            if (tr->compiled.clusters[d].cluster == PORT_PER_TABLE) {
                                if (wc == tr->compiled.clusters)
                                    wc = pt_arena_memdup(cx->out, wc,
                                                         tr->compiled.n_clusters * sizeof(*wc));
                                wc[d].cluster = cluster_for_port(cp, &tr->dests[d], port);
                            }
                        pt_res_l4_match_t any = {0};
                        const pt_res_l4_match_t *ms = tr->n_l4_matches ? tr->l4_matches : &any;
                        size_t n_ms = tr->n_l4_matches ? tr->n_l4_matches : 1;
                        for (size_t m = 0; m < n_ms; m++) {
                            if (ms[m].port != 0 && ms[m].port != port)
                                continue;
                            routes = pt_arena_grow(cx->tmp, routes, n_routes, &cap_routes,
                                                   sizeof(*routes));
                            routes[n_routes++] = (pt_mesh_tcp_route_t){
                                ms[m].port, ms[m].subnets,           ms[m].n_subnets,
                                wc,         tr->compiled.n_clusters, tr->compiled.total_weight};
                        }
                    }
                }
                routes = pt_arena_grow(cx->tmp, routes, n_routes, &cap_routes, sizeof(*routes));
                pt_weighted_cluster_t *own = pt_arena_calloc(cx->out, sizeof(*own));
                own->cluster = get_cluster(cp, host, port, find_destination_rule(cp, host), NULL);
                own->cumulative_weight = 1;
                routes[n_routes++] = (pt_mesh_tcp_route_t){0, NULL, 0, own, 1, 1};
                pt_mesh_tcp_service_t *svc = &c->mesh_tcp[c->n_mesh_tcp++];
                svc->host = pt__cfg_out_str(cx, host);
                svc->addresses = se->addresses;
                svc->n_addresses = se->n_addresses;
                svc->port = port;
                svc->protocol = port_protocol(se->ports[p].protocol);
                svc->routes = pt_arena_memdup(cx->out, routes, n_routes * sizeof(*routes));
                svc->n_routes = n_routes;
            }
        }
    }
}

static const pt_res_gateway_t *find_gateway(compiler_t *cp, const char *ns, const char *name)
{
    for (size_t i = 0; i < cp->set->n_gateways; i++) {
        const pt_res_gateway_t *g = cp->set->gateways[i];
        if (strcmp(g->meta.ns, ns) == 0 && strcmp(g->meta.name, name) == 0)
            return g;
    }
    return NULL;
}

typedef struct named {
    const pt_res_meta_t *meta;
    size_t order; /* position in load order */
} named_t;

static int compare_named(const void *x, const void *y)
{
    const named_t *a = x, *b = y;
    int c = strcmp(a->meta->ns, b->meta->ns);
    if (c == 0)
        c = strcmp(a->meta->name, b->meta->name);
    if (c == 0)
        c = a->order < b->order ? -1 : a->order > b->order;
    return c;
}

/* Reports every resource whose namespace/name an earlier one of the same kind has. Sorting
 * makes this O(n log n): a config with tens of thousands of resources stays fast to load. */
static void check_duplicates(pt_cfg_cx_t *cx, void *const *list, size_t n, size_t meta_offset)
{
    if (n < 2)
        return;
    named_t *v = pt_arena_alloc(cx->tmp, n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (named_t){(const pt_res_meta_t *)((const char *)list[i] + meta_offset), i};
    qsort(v, n, sizeof(*v), compare_named);
    size_t first = 0;
    for (size_t i = 1; i < n; i++) {
        const pt_res_meta_t *a = v[i].meta, *b = v[first].meta;
        if (strcmp(a->ns, b->ns) != 0 || strcmp(a->name, b->name) != 0) {
            first = i;
            continue;
        }
        const pt_cfg_node_t *at = a->name_node ? a->name_node : a->doc;
        const pt_cfg_node_t *orig = b->name_node ? b->name_node : b->doc;
        pt__cfg_error_at(cx, at, pt__cfg_meta_path(cx, a, "metadata.name"),
                         "duplicate %s %s/%s (first defined at %s:%d:%d)", a->kind, a->ns, a->name,
                         orig->file, pt__cfg_node_line(orig), pt__cfg_node_col(orig));
    }
}

/* ChaosProxy resources into the snapshot: names are the API's, one flat space across
 * namespaces, so two of one name are an error wherever they sit. */
static void compile_chaos(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c)
{
    if (set->n_chaos == 0)
        return;
    pt_chaos_decl_t *out = pt_arena_calloc(cx->out, set->n_chaos * sizeof(*out));
    for (size_t i = 0; i < set->n_chaos; i++) {
        const pt_res_chaos_t *r = set->chaos[i];
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            if (strcmp(set->chaos[j]->decl.name, r->decl.name) != 0)
                continue;
            const pt_cfg_node_t *at = r->meta.name_node ? r->meta.name_node : r->meta.doc;
            pt__cfg_error_at(cx, at, pt__cfg_meta_path(cx, &r->meta, "metadata.name"),
                             "duplicate ChaosProxy %s (first defined at %s)", r->decl.name,
                             set->chaos[j]->where);
            dup = true;
        }
        out[c->n_chaos_proxies] = r->decl;
        out[c->n_chaos_proxies++].where = pt__cfg_out_str(cx, r->where);
    }
    c->chaos_proxies = out;
}

/* An HTTP chaos proxy is routed as if its user had written a ServiceEntry for its upstream
 * (STATIC for an IP literal, DNS for a name, kept fresh by the resolver like any) and a
 * VirtualService with one catch-all route to it, bound to a listener of its own. No retries:
 * the proxy shows what the upstream does, with the toxics on top. */
static const pt_retry_policy_t chaos_no_retries = {.is_explicit = true};

static void compile_chaos_http(compiler_t *cp, const pt_res_set_t *set, pt_config_t *c)
{
    pt_cfg_cx_t *cx = cp->cx;
    size_t n = 0;
    for (size_t i = 0; i < c->n_chaos_proxies; i++)
        n += c->chaos_proxies[i].is_http;
    if (n == 0)
        return;
    c->chaos_listeners = pt_arena_calloc(cx->out, n * sizeof(*c->chaos_listeners));
    for (size_t i = 0; i < c->n_chaos_proxies; i++) {
        const pt_chaos_decl_t *d = &c->chaos_proxies[i];
        if (!d->is_http)
            continue;
        const pt_res_chaos_t *r = NULL;
        for (size_t k = 0; k < set->n_chaos && r == NULL; k++)
            if (strcmp(set->chaos[k]->decl.name, d->name) == 0)
                r = set->chaos[k];
        /* "host:port" or "[v6]:port", checked by the reader. */
        const char *colon = strrchr(d->upstream, ':');
        size_t host_len = (size_t)(colon - d->upstream);
        const char *host_start = d->upstream;
        if (host_len >= 2 && host_start[0] == '[' && host_start[host_len - 1] == ']') {
            host_start++;
            host_len -= 2;
        }
        char *host = pt_arena_alloc(cx->tmp, host_len + 1);
        for (size_t k = 0; k < host_len; k++)
            host[k] = (char)tolower((unsigned char)host_start[k]);
        host[host_len] = '\0';
        uint16_t port = (uint16_t)strtoul(colon + 1, NULL, 10);

        pt_res_se_t *se = pt_arena_calloc(cx->tmp, sizeof(*se));
        se->meta = r->meta;
        se->ports = pt_arena_calloc(cx->tmp, sizeof(*se->ports));
        se->ports[0] = (pt_res_se_port_t){.number = port, .name = "http", .protocol = "HTTP"};
        se->n_ports = 1;
        pt_res_se_endpoint_t *ep = pt_arena_calloc(cx->tmp, sizeof(*ep));
        ep->address = host;
        ep->weight = 1;
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ep->addr;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ep->addr;
        if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            ep->addr_len = sizeof(*v4);
        } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            ep->addr_len = sizeof(*v6);
        }
        se->resolution = ep->addr_len > 0 ? PT_RES_STATIC : PT_RES_DNS;
        se->endpoints = ep;
        se->n_endpoints = ep->addr_len > 0 ? 1 : 0; /* DNS: the host itself */
        char *name = pt_arena_printf(cx->tmp, "chaos|%s", d->name);
        pt_cluster_t *cl = make_cluster(cp, name, host, port, se, NULL, NULL);

        pt_http_route_t *route = pt_arena_calloc(cx->out, sizeof(*route));
        route->name = d->name;
        route->chaos_proxy = d->name;
        route->clusters = pt_arena_calloc(cx->out, sizeof(*route->clusters));
        route->clusters[0] = (pt_weighted_cluster_t){.cluster = cl, .cumulative_weight = 1};
        route->n_clusters = 1;
        route->total_weight = 1;
        route->retry = &chaos_no_retries;
        pt_vhost_t *vh = pt_arena_calloc(cx->out, sizeof(*vh));
        vh->hosts = pt_arena_calloc(cx->out, sizeof(*vh->hosts));
        vh->hosts[0] = "*";
        vh->n_hosts = 1;
        vh->routes = route;
        vh->n_routes = 1;
        pt_listener_config_t *l = &c->chaos_listeners[c->n_chaos_listeners++];
        l->name = pt_arena_printf(cx->out, "chaos/%s", d->name);
        l->protocol = PT_LISTENER_HTTP;
        l->vhosts = vh;
        l->n_vhosts = 1;
        l->chaos_proxy = d->name;
    }
}

/* Sort key of a vhost: 0 when it has an exact host; else the length of its longest wildcard
 * host, negated so that longer sorts first; "*" gives the largest key. */
static long vhost_rank(const pt_vhost_t *v)
{
    long best = 1;
    for (size_t i = 0; i < v->n_hosts; i++) {
        const char *h = v->hosts[i];
        if (h[0] != '*')
            return 0;
        long k = -(long)strlen(h) + 1; /* "*" -> 0, "*.a.com" -> -6 */
        if (k < best)
            best = k;
    }
    return best == 1 ? 0 : 100000 + best;
}

static void sort_vhosts(pt_vhost_t *v, size_t n)
{
    /* Insertion sort: stable, and a listener has few virtual hosts. */
    for (size_t i = 1; i < n; i++) {
        pt_vhost_t x = v[i];
        long kx = vhost_rank(&x);
        size_t j = i;
        while (j > 0 && vhost_rank(&v[j - 1]) > kx) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* sourceLabels / sourceNamespace of HTTP matches. At a gateway the source of a request, as
 * Istio sees it, is the gateway workload itself: the answer is the same for every request,
 * so it is decided here, once, and a match that does not select this proxy never matches. */
static void select_sources(pt_res_set_t *set, const pt_workload_t *w)
{
    for (size_t v = 0; v < set->n_vss; v++)
        for (size_t i = 0; i < set->vss[v]->n_http; i++) {
            pt_http_route_t *r = &set->vss[v]->http[i].route;
            for (size_t k = 0; k < r->n_matches; k++) {
                pt_http_match_t *m = &r->matches[k];
                bool ok = m->source_namespace == NULL || strcmp(m->source_namespace, w->ns) == 0;
                for (size_t l = 0; ok && l < m->n_source_labels; l++) {
                    bool found = false;
                    for (size_t j = 0; j < w->n_labels && !found; j++)
                        found = strcmp(w->labels[2 * j], m->source_labels[2 * l]) == 0 &&
                                strcmp(w->labels[2 * j + 1], m->source_labels[2 * l + 1]) == 0;
                    ok = found;
                }
                m->never = !ok;
            }
        }
}

/* The Proxy's own listeners (admin, Prometheus, health, the sidecar's capture ports) and the
 * Gateway servers all listen on bindAddress (capture on every address): two of them on one
 * port would fail at start with "address already in use", so the config is refused here,
 * where `petrel validate` sees it. An error names both places. */
/* Whether the chaos API listens where the Proxy's other listeners do: the same address, or
 * either one every address (0.0.0.0 and 127.0.0.1 on one port cannot both be bound). */
static bool chaos_api_shares_address(const pt_proxy_settings_t *ps)
{
    const char *a = ps->chaos_api.address, *b = ps->bind_address;
    if (!ps->chaos_api.enabled)
        return false;
    return strcmp(a, b) == 0 || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 ||
           strcmp(b, "0.0.0.0") == 0 || strcmp(b, "::") == 0;
}

static void check_port_conflicts(pt_cfg_cx_t *cx, const pt_res_set_t *set,
                                 const pt_proxy_settings_t *ps)
{
    const struct {
        const char *path;
        uint16_t port;
    } own[] = {
        {"spec.adminPort", ps->admin_port},
        {"spec.prometheusPort", ps->prometheus_port},
        {"spec.healthPort", ps->health_port},
        {"spec.chaosApi.port", chaos_api_shares_address(ps) ? ps->chaos_api.port : 0},
        {"spec.sidecar.outboundPort", ps->sidecar.enabled ? ps->sidecar.outbound_port : 0},
        {"spec.sidecar.inboundPort", ps->sidecar.enabled ? ps->sidecar.inbound_port : 0},
    };
    enum { N_OWN = sizeof(own) / sizeof(own[0]), FIRST_CAPTURE = 4 };
    const pt_cfg_node_t *doc = set->n_proxies > 0 ? set->proxies[0]->meta.doc : NULL;
    char where[N_OWN][320];
    for (size_t i = 0; i < N_OWN; i++) {
        const pt_cfg_node_t *n = pt__cfg_node_at(doc, own[i].path);
        if (n != NULL)
            snprintf(where[i], sizeof(where[i]), "%s:%d:%d", n->file, pt__cfg_node_line(n),
                     pt__cfg_node_col(n));
        else
            snprintf(where[i], sizeof(where[i]), "its default");
    }
    /* outboundPort and inboundPort are compared where the Proxy is read. */
    for (size_t i = 1; i < N_OWN; i++)
        for (size_t j = 0; j < i; j++)
            if (own[i].port != 0 && own[i].port == own[j].port && j < FIRST_CAPTURE) {
                const pt_cfg_node_t *n = pt__cfg_node_at(doc, own[i].path);
                pt__cfg_error_at(cx, n ? n : doc,
                                 pt__cfg_meta_path(cx, &set->proxies[0]->meta, own[i].path),
                                 "port %u is also the Proxy's %s (%s): two listeners cannot "
                                 "share a port",
                                 (unsigned)own[i].port, own[j].path, where[j]);
            }
    for (size_t g = 0; g < set->n_gateways; g++)
        for (size_t s = 0; s < set->gateways[g]->n_servers; s++) {
            const pt_res_server_t *srv = &set->gateways[g]->servers[s];
            for (size_t i = 0; i < N_OWN && srv->port != 0; i++)
                if (srv->port == own[i].port) {
                    const pt_cfg_node_t *n = pt__cfg_node_at(srv->port_node, "number");
                    char path[600];
                    snprintf(path, sizeof(path), "%s.number", srv->port_path);
                    pt__cfg_error_at(cx, n, path,
                                     "port %u is also the Proxy's %s (%s): two listeners cannot "
                                     "share a port",
                                     (unsigned)srv->port, own[i].path, where[i]);
                }
        }
}

/* A VirtualService binds to a Gateway's servers only where its hosts and theirs meet (see
 * bound_hosts): one whose hosts meet none of its Gateways' hosts routes nothing. */
static void check_meets_gateways(compiler_t *cp, const pt_res_vs_t *vs)
{
    char served[512] = "";
    size_t n = 0;
    for (size_t r = 0; r < vs->n_gateways; r++) {
        const pt_res_gateway_t *g = find_gateway(cp, vs->gateways[r].ns, vs->gateways[r].name);
        for (size_t s = 0; g != NULL && s < g->n_servers; s++)
            for (size_t sh = 0; sh < g->servers[s].n_hosts; sh++) {
                for (size_t h = 0; h < vs->n_hosts; h++)
                    if (host_intersection(vs->hosts[h], g->servers[s].hosts[sh]) != NULL)
                        return;
                if (n < sizeof(served))
                    n += (size_t)snprintf(served + n, sizeof(served) - n, "%s%s", n ? ", " : "",
                                          g->servers[s].hosts[sh]);
            }
    }
    const pt_cfg_node_t *at = pt__cfg_node_at(vs->meta.doc, "spec.hosts");
    pt__cfg_warn_at(cp->cx, at ? at : vs->meta.doc,
                    pt__cfg_meta_path(cp->cx, &vs->meta, "spec.hosts"),
                    "no host of VirtualService %s/%s is a host of its Gateways (they serve %s): "
                    "it routes nothing",
                    vs->meta.ns, vs->meta.name, served);
}

static bool dests_covered(const char *pattern, const pt_res_dest_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i].host != NULL && host_intersection(pattern, d[i].host) != NULL)
            return true;
    return false;
}

/* A DestinationRule applies to the traffic sent to its host: one whose host is no
 * ServiceEntry's and no route's destination (of any VirtualService, bound here or not)
 * applies to nothing. A Kubernetes service name is left alone: Petrel does not read the
 * cluster's Services, and a rule for one is often loaded ahead of the routes to it. */
static void check_destination_rules_apply(compiler_t *cp)
{
    const pt_res_set_t *set = cp->set;
    if (pt__cfg_may_be_unchecked(cp->cx, "ServiceEntry", NULL, NULL) ||
        pt__cfg_may_be_unchecked(cp->cx, "VirtualService", NULL, NULL))
        return;
    for (size_t i = 0; i < set->n_drs; i++) {
        const pt_res_dr_t *dr = set->drs[i];
        size_t len = dr->host != NULL ? strlen(dr->host) : 0, sl = strlen(PT_HOST_DOMAIN_SUFFIX);
        bool used = dr->host == NULL || /* invalid: reported where it was read */
                    (len > sl && strcmp(dr->host + len - sl, PT_HOST_DOMAIN_SUFFIX) == 0);
        for (size_t s = 0; s < set->n_ses && !used; s++)
            for (size_t h = 0; h < set->ses[s]->n_hosts && !used; h++)
                used = host_intersection(dr->host, set->ses[s]->hosts[h]) != NULL;
        for (size_t v = 0; v < set->n_vss && !used; v++) {
            const pt_res_vs_t *vs = set->vss[v];
            for (size_t r = 0; r < vs->n_http && !used; r++)
                used = dests_covered(dr->host, vs->http[r].dests, vs->http[r].n_dests) ||
                       dests_covered(dr->host, vs->http[r].mirror_dests, vs->http[r].n_mirrors);
            for (size_t r = 0; r < vs->n_tcp && !used; r++)
                used = dests_covered(dr->host, vs->tcp[r].dests, vs->tcp[r].n_dests);
            for (size_t r = 0; r < vs->n_tls && !used; r++)
                used = dests_covered(dr->host, vs->tls[r].dests, vs->tls[r].n_dests);
        }
        if (used)
            continue;
        const pt_cfg_node_t *at = pt__cfg_node_at(dr->meta.doc, "spec.host");
        pt__cfg_warn_at(cp->cx, at ? at : dr->meta.doc,
                        pt__cfg_meta_path(cp->cx, &dr->meta, "spec.host"),
                        "DestinationRule %s/%s applies to nothing: no ServiceEntry declares host "
                        "\"%s\" and no route sends to it",
                        dr->meta.ns, dr->meta.name, dr->host);
    }
}

/* The Proxy's spec.workload fields left unset come from the pod (the Downward API); an
 * explicit field wins, labels as a whole. The namespace is "default" when neither says. */
static void complete_workload(pt_cfg_cx_t *cx, pt_workload_t *w)
{
    const pt_workload_t *pod = cx->pod;
    if (pod != NULL) {
        if (w->name == NULL && pod->name != NULL)
            w->name = pt__cfg_out_str(cx, pod->name);
        if (w->ns == NULL && pod->ns != NULL)
            w->ns = pt__cfg_out_str(cx, pod->ns);
        if (w->service_account == NULL && pod->service_account != NULL)
            w->service_account = pt__cfg_out_str(cx, pod->service_account);
        if (w->labels == NULL && pod->n_labels > 0) {
            const char **labels = pt_arena_calloc(cx->out, 2 * pod->n_labels * sizeof(*labels));
            for (size_t i = 0; i < 2 * pod->n_labels; i++)
                labels[i] = pt__cfg_out_str(cx, pod->labels[i]);
            w->labels = labels;
            w->n_labels = pod->n_labels;
        }
    }
    if (w->ns == NULL)
        w->ns = "default";
}

void pt__cfg_compile(pt_cfg_cx_t *cx, pt_res_set_t *set, pt_config_t *c)
{
    compiler_t cp = {.cx = cx, .set = set, .c = c};

    /* Proxy */
    pt__cfg_proxy_defaults(&c->proxy);
    if (set->n_proxies > 0) {
        c->proxy = set->proxies[0]->settings;
        c->proxy.access_log = pt__cfg_out_str(cx, c->proxy.access_log);
        const pt_cfg_node_t *first = set->proxies[0]->meta.doc;
        for (size_t i = 1; i < set->n_proxies; i++)
            pt__cfg_error_at(cx, set->proxies[i]->meta.doc,
                             pt__cfg_meta_path(cx, &set->proxies[i]->meta, "kind"),
                             "only one Proxy per config set (the first is at %s:%d:%d)",
                             first->file, first->line, first->col);
    }
    complete_workload(cx, &c->proxy.workload);
    select_sources(set, &c->proxy.workload);
    complete_short_hosts(cx, set);
    bool sidecar = c->proxy.sidecar.enabled;
    index_service_hosts(&cp);
    pt__cfg_compile_authz(cx, set, c);

    check_duplicates(cx, (void *const *)set->gateways, set->n_gateways,
                     offsetof(pt_res_gateway_t, meta));
    check_duplicates(cx, (void *const *)set->vss, set->n_vss, offsetof(pt_res_vs_t, meta));
    check_duplicates(cx, (void *const *)set->ses, set->n_ses, offsetof(pt_res_se_t, meta));
    check_duplicates(cx, (void *const *)set->drs, set->n_drs, offsetof(pt_res_dr_t, meta));
    check_duplicates(cx, (void *const *)set->wes, set->n_wes, offsetof(pt_res_we_t, meta));
    compile_chaos(cx, set, c);

    /* Listeners, one per port. */
    size_t max_listeners = 0;
    for (size_t i = 0; i < set->n_gateways; i++)
        max_listeners += set->gateways[i]->n_servers;
    listener_build_t *lb = pt_arena_calloc(cx->tmp, (max_listeners + 3) * sizeof(*lb));
    size_t n_lb = 0;
    for (size_t i = 0; i < set->n_gateways; i++) {
        const pt_res_gateway_t *g = set->gateways[i];
        for (size_t s = 0; s < g->n_servers; s++) {
            const pt_res_server_t *srv = &g->servers[s];
            if (srv->port == 0 || srv->protocol == 0)
                continue;
            listener_build_t *b = NULL;
            for (size_t k = 0; k < n_lb; k++)
                if (lb[k].l->port == srv->port)
                    b = &lb[k];
            if (b == NULL) {
                b = &lb[n_lb++];
                b->l = pt_arena_calloc(cx->out, sizeof(*b->l));
                b->l->port = srv->port;
                b->l->protocol = srv->protocol;
                b->l->name = pt_arena_printf(cx->out, "%s/%s/%u", g->meta.ns, g->meta.name,
                                             (unsigned)srv->port);
                b->first = srv;
                b->first_gw = g;
            }
            int kind = server_kind(srv);
            if (kind >= 0)
                b->kinds |= 1u << kind;
            if (srv->protocol == PT_LISTENER_HTTP && kind < 0 && b->plain_http == NULL) {
                b->plain_http = srv;
                b->plain_http_gw = g;
            } else if (srv->protocol == PT_LISTENER_TLS && b->tls_proto == NULL) {
                b->tls_proto = srv;
                b->tls_proto_gw = g;
            }
            bool tls_based =
                kind >= 0 && (b->l->protocol == PT_LISTENER_TLS ||
                              (b->l->protocol == PT_LISTENER_HTTP && b->plain_http == NULL));
            if (b->plain_http != NULL && b->tls_proto != NULL &&
                (srv == b->plain_http || srv == b->tls_proto)) {
                /* Envoy cannot tell plaintext HTTP from a ClientHello by SNI either. */
                const pt_res_server_t *o = srv == b->plain_http ? b->tls_proto : b->plain_http;
                const pt_res_gateway_t *og =
                    srv == b->plain_http ? b->tls_proto_gw : b->plain_http_gw;
                char path[600];
                snprintf(path, sizeof(path), "%s.protocol", srv->port_path);
                pt__cfg_error_at(cx, srv->protocol_node, path,
                                 "port %u is %s here but %s in Gateway %s/%s (%s:%d): plaintext "
                                 "HTTP cannot share a port with TLS servers",
                                 (unsigned)srv->port, pt_listener_protocol_name(srv->protocol),
                                 pt_listener_protocol_name(o->protocol), og->meta.ns, og->meta.name,
                                 o->port_node->file, pt__cfg_node_line(o->port_node));
                continue;
            } else if (b->l->protocol != srv->protocol && tls_based) {
                /* HTTPS and TLS servers share the port: HTTP routes need an HTTP listener. */
                if (kind == PT_TLS_SERVER_HTTPS)
                    b->l->protocol = PT_LISTENER_HTTP;
            } else if (b->l->protocol != srv->protocol) {
                char path[600];
                snprintf(path, sizeof(path), "%s.protocol", srv->port_path);
                pt__cfg_error_at(cx, srv->protocol_node, path,
                                 "port %u is %s here but %s in Gateway %s/%s (%s:%d): one port "
                                 "has one protocol",
                                 (unsigned)srv->port, pt_listener_protocol_name(srv->protocol),
                                 pt_listener_protocol_name(b->l->protocol), b->first_gw->meta.ns,
                                 b->first_gw->meta.name, b->first->port_node->file,
                                 pt__cfg_node_line(b->first->port_node));
                continue;
            }
            b->bindings = pt_arena_grow(cx->tmp, b->bindings, b->n_bindings, &b->cap_bindings,
                                        sizeof(*b->bindings));
            b->bindings[b->n_bindings++] = (binding_t){g, srv};
        }
    }

    /* Routes and clusters, per VirtualService (once, whatever it binds to). A Gateway named
     * but not loaded is ignored, as Istio does (the VirtualService may be applied before or
     * apart from it): a VirtualService left with no Gateway binds to nothing and is checked as
     * a mesh-only one. */
    bool *checks_only = pt_arena_calloc(cx->tmp, (set->n_vss + 1) * sizeof(bool));
    bool *port_per_table = pt_arena_calloc(cx->tmp, (set->n_vss + 1) * sizeof(bool));
    for (size_t v = 0; v < set->n_vss; v++) {
        pt_res_vs_t *vs = set->vss[v];
        size_t found = 0;
        for (size_t r = 0; r < vs->n_gateways; r++) {
            const pt_res_gateway_ref_t *ref = &vs->gateways[r];
            if (find_gateway(&cp, ref->ns, ref->name) != NULL)
                found++;
            else if (!pt__cfg_may_be_unchecked(cx, "Gateway", ref->ns, ref->name))
                pt__cfg_warn_at(cx, ref->node, ref->path,
                                "no Gateway %s/%s in the config: this VirtualService does not "
                                "bind to it",
                                ref->ns, ref->name);
        }
        if (found > 0 && !vs->is_delegate)
            check_meets_gateways(&cp, vs);
        if (vs->binds_mesh && !sidecar)
            pt__cfg_warn_at(cx, vs->mesh_node, vs->mesh_path,
                            "mesh routing needs a Proxy with spec.sidecar: this VirtualService "
                            "applies %s%s",
                            found > 0 ? "to its Gateways only" : "to no listener",
                            vs->gateways == NULL ? " (no gateways means mesh)" : "");
        checks_only[v] = (vs->mesh_only || found == 0) && !(sidecar && vs->binds_mesh);
        port_per_table[v] = sidecar && vs->binds_mesh && found == 0;
        for (size_t i = 0; i < vs->n_http && !vs->is_delegate; i++) {
            const pt_res_http_route_t *hr = &vs->http[i];
            pt_res_vs_t *d =
                hr->delegate_name ? find_vs(&cp, hr->delegate_ns, hr->delegate_name) : NULL;
            if (d != NULL) {
                d->is_delegated_to = true;
                d->is_delegate_bound |= !checks_only[v];
            }
        }
    }
    /* Delegates first: a root's routes are made of its delegates' compiled routes. A delegate
     * makes clusters when a root bound to a loaded Gateway uses it. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t v = 0; v < set->n_vss; v++) {
            pt_res_vs_t *vs = set->vss[v];
            if (vs->is_delegate != (pass == 0))
                continue;
            if (vs->is_delegate && !vs->is_delegated_to)
                pt__cfg_warn_at(cx, vs->meta.doc, pt__cfg_meta_path(cx, &vs->meta, "spec.hosts"),
                                "absent, so VirtualService %s is a delegate, and none delegates "
                                "to it: it applies nowhere",
                                vs->qname);
            cp.mesh_only = vs->is_delegate ? !vs->is_delegate_bound : checks_only[v];
            cp.port_per_table = !vs->is_delegate && port_per_table[v];
            compile_vs(&cp, vs);
            cp.mesh_only = cp.port_per_table = false;
        }

    /* Bind VirtualServices to listeners. */
    const char **hosts_buf = NULL;
    size_t cap_hosts = 0;
    for (size_t k = 0; k < n_lb; k++) {
        listener_build_t *b = &lb[k];
        b->l->is_sni_mixed = (b->kinds & (b->kinds - 1)) != 0;
        if (b->l->is_sni_mixed) {
            bind_mixed(&cp, b);
            continue;
        }
        /* A TLS server that terminates routes the plaintext by tcp[] routes, as a TCP one. */
        bool by_tcp_routes = b->l->protocol == PT_LISTENER_TCP;
        for (size_t bi = 0; bi < b->n_bindings; bi++)
            if (b->l->protocol == PT_LISTENER_TLS && b->bindings[bi].srv->tls != NULL &&
                b->bindings[bi].srv->tls->is_terminated)
                by_tcp_routes = true;
        for (size_t v = 0; v < set->n_vss; v++) {
            pt_res_vs_t *vs = set->vss[v];
            size_t n_hosts = bound_hosts(&cp, b, vs, -1, &hosts_buf, &cap_hosts);
            if (n_hosts == 0)
                continue;
            if (b->l->protocol == PT_LISTENER_HTTP && vs->n_compiled > 0) {
                b->vhosts = pt_arena_grow(cx->tmp, b->vhosts, b->n_vhosts, &b->cap_vhosts,
                                          sizeof(*b->vhosts));
                pt_vhost_t *vh = &b->vhosts[b->n_vhosts++];
                vh->hosts = pt_arena_memdup(cx->out, hosts_buf, n_hosts * sizeof(*hosts_buf));
                vh->n_hosts = n_hosts;
                vh->routes = vs->compiled;
                vh->n_routes = vs->n_compiled;
            } else if (by_tcp_routes && b->n_l4 == 0) {
                const pt_l4_route_t *tr = first_tcp_route(vs, b->l->port);
                if (tr != NULL) {
                    b->l4 = pt_arena_grow(cx->tmp, b->l4, 0, &b->cap_l4, sizeof(*b->l4));
                    b->l4[b->n_l4++] = *tr;
                }
            } else if (b->l->protocol == PT_LISTENER_TLS && !by_tcp_routes) {
                bind_tls_routes(&cp, b, vs);
            }
        }
        sort_vhosts(b->vhosts, b->n_vhosts);
    }

    /* The sidecar's capture listeners, after the Gateways' ports. */
    if (sidecar) {
        compile_mesh(&cp, c);
        const pt_sidecar_settings_t *sc = &c->proxy.sidecar;
        const uint16_t cports[2] = {sc->outbound_port, sc->inbound_port};
        for (int i = 0; i < 2; i++) {
            listener_build_t *b = &lb[n_lb++];
            b->l = pt_arena_calloc(cx->out, sizeof(*b->l));
            b->l->port = cports[i];
            b->l->protocol = i == 0 ? PT_LISTENER_CAPTURE_OUTBOUND : PT_LISTENER_CAPTURE_INBOUND;
            b->l->name = i == 0 ? "virtualOutbound" : "virtualInbound";
        }
    }

    compile_chaos_http(&cp, set, c);
    check_port_conflicts(cx, set, &c->proxy);
    check_destination_rules_apply(&cp);

    /* Publish into the snapshot arena. */
    c->n_listeners = n_lb;
    c->listeners = pt_arena_calloc(cx->out, (n_lb + 1) * sizeof(*c->listeners));
    for (size_t k = 0; k < n_lb; k++) {
        c->listeners[k] = *lb[k].l;
        c->listeners[k].n_vhosts = lb[k].n_vhosts;
        if (lb[k].n_vhosts)
            c->listeners[k].vhosts =
                pt_arena_memdup(cx->out, lb[k].vhosts, lb[k].n_vhosts * sizeof(pt_vhost_t));
        if (lb[k].has_tcp_route)
            c->listeners[k].tcp_route =
                pt_arena_memdup(cx->out, &lb[k].tcp_route, sizeof(lb[k].tcp_route));
        c->listeners[k].n_l4_routes = lb[k].n_l4;
        if (lb[k].n_l4)
            c->listeners[k].l4_routes =
                pt_arena_memdup(cx->out, lb[k].l4, lb[k].n_l4 * sizeof(pt_l4_route_t));
    }
    c->n_clusters = cp.n_clusters;
    c->clusters = pt_arena_calloc(cx->out, (cp.n_clusters + 1) * sizeof(*c->clusters));
    if (cp.n_clusters)
        memcpy(c->clusters, cp.clusters, cp.n_clusters * sizeof(*c->clusters));
    c->dns_hosts = cp.dns_hosts;
    c->dns_host_services = cp.dns_host_services;
    c->n_dns_hosts = cp.n_dns_hosts;
    c->n_endpoint_slots = 0;
    for (size_t i = 0; i < cp.n_clusters; i++) {
        c->clusters[i]->endpoint_base = (uint32_t)c->n_endpoint_slots;
        c->n_endpoint_slots += c->clusters[i]->n_endpoints;
    }
}
