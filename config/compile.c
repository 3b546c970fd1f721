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
 *    then wildcard-only ones by their longest wildcard, longest first; "*" last. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../proxy/lb.h"
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
} listener_build_t;

typedef struct compiler {
    pt_cfg_cx_t *cx;
    pt_res_set_t *set;
    pt_cluster_t **clusters;
    size_t n_clusters, cap_clusters;
    /* Compiling a mesh-only VirtualService: it binds to no listener, so its destinations are
     * checked (a missing subset is a warning), not turned into clusters. */
    bool mesh_only;
    const char **dns_hosts; /* names the clusters resolve, each once (snapshot arena) */
    size_t n_dns_hosts, cap_dns_hosts;
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

/* Does pattern (a host, "*" or "*.suffix") cover host (which may itself be a wildcard)? */
static bool host_covers(const char *pattern, const char *host)
{
    if (strcmp(pattern, "*") == 0)
        return true;
    if (pattern[0] == '*') {
        size_t pl = strlen(pattern) - 1, hl = strlen(host); /* pl counts the leading '.' */
        if (strcmp(host, "*") == 0)
            return false;
        return hl > pl && strcasecmp(host + hl - pl, pattern + 1) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

/* The more specific host of an overlapping pair, or NULL when they do not overlap. */
static const char *host_intersection(const char *a, const char *b)
{
    if (host_covers(a, b))
        return b;
    if (host_covers(b, a))
        return a;
    return NULL;
}

static const pt_res_se_t *find_service_entry(compiler_t *cp, const char *host)
{
    const pt_res_se_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cp->set->n_ses; i++) {
        const pt_res_se_t *se = cp->set->ses[i];
        for (size_t j = 0; j < se->n_hosts; j++) {
            const char *h = se->hosts[j];
            if (strcmp(h, host) == 0)
                return se;
            if (h[0] == '*' && host_covers(h, host) && (best == NULL || strlen(h) > best_len)) {
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
        if (dr->host[0] == '*' && host_covers(dr->host, host) &&
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
                pt__cfg_warn_at(cp->cx, we->meta.doc, "spec.address",
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

/* The cluster of (host, port, subset), made on first use. sub is the subset's definition in dr
 * (NULL for the whole service). */
static pt_cluster_t *get_cluster(compiler_t *cp, const char *host, uint16_t port,
                                 const pt_res_dr_t *dr, const pt_res_subset_t *sub)
{
    const char *subset = sub != NULL ? sub->name : NULL;
    for (size_t i = 0; i < cp->n_clusters; i++) {
        const pt_cluster_t *c = cp->clusters[i];
        if (c->port == port && strcmp(c->host, host) == 0 &&
            (c->subset == NULL ? subset == NULL : subset != NULL && !strcmp(c->subset, subset)))
            return cp->clusters[i];
    }
    pt_cfg_cx_t *cx = cp->cx;
    pt_cluster_t *cl = pt_arena_calloc(cx->out, sizeof(*cl));
    cl->host = pt__cfg_out_str(cx, host);
    cl->subset = subset != NULL ? pt__cfg_out_str(cx, subset) : NULL;
    cl->port = port;
    cl->name = pt_arena_printf(cx->out, "outbound|%u|%s|%s", (unsigned)port,
                               subset != NULL ? subset : "", host);
    cl->index = (uint32_t)cp->n_clusters;
    const pt_res_se_t *se = find_service_entry(cp, host);
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
    pt_lb_build(cx->out, cl);
    resolve_pool(dr, sub, port, &cl->pool);
    cl->state = pt_cluster_state_get(cl->name, &cl->pool);
    resolve_tls(cp, dr, sub, cl);
    const pt_outlier_config_t *od = resolve_outlier(dr, sub, port);
    if (od != NULL) /* copied: the rule itself lives in the load's temporary arena */
        cl->outlier = memcpy(pt_arena_alloc(cx->out, sizeof(*od)), od, sizeof(*od));
    cp->clusters = pt_arena_grow(cx->tmp, cp->clusters, cp->n_clusters, &cp->cap_clusters,
                                 sizeof(*cp->clusters));
    cp->clusters[cp->n_clusters++] = cl;
    return cl;
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
        if (d->subset != NULL && find_subset(dr, d->subset) == NULL) {
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
            pt__cfg_warn_at(cp->cx, d->node, path,
                            "no ServiceEntry declares host \"%s\", so its port cannot be "
                            "inferred (Kubernetes Services are not read by Petrel yet): requests "
                            "to it get 503",
                            d->host);
            return get_cluster(cp, d->host, 0, NULL, NULL);
        }
        if (se->n_ports != 1) {
            pt__cfg_error_at(cp->cx, d->node, path,
                             "required: ServiceEntry %s/%s has %zu ports for host \"%s\"",
                             se->meta.ns, se->meta.name, se->n_ports, d->host);
            return NULL;
        }
        port = se->ports[0].number;
    }
    const pt_res_dr_t *dr = find_destination_rule(cp, d->host);
    const pt_res_subset_t *sub = NULL;
    if (d->subset != NULL) {
        sub = find_subset(dr, d->subset);
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
    for (size_t i = 0; i < hr->n_mirrors; i++) {
        pt_cluster_t *cl = resolve_dest(cp, &hr->mirror_dests[i]);
        if (cl != NULL)
            m[n++] = (pt_http_mirror_t){cl, hr->mirror_ppm[i]};
    }
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
    if (d == NULL)
        pt__cfg_warn_at(cp->cx, hr->delegate_node, path,
                        "no VirtualService %s/%s in the config: this route is left out",
                        hr->delegate_ns, hr->delegate_name);
    else
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
        pt__cfg_error_at(cx, at, "metadata.name", "duplicate %s %s/%s (first defined at %s:%d:%d)",
                         a->kind, a->ns, a->name, orig->file, pt__cfg_node_line(orig),
                         pt__cfg_node_col(orig));
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

void pt__cfg_compile(pt_cfg_cx_t *cx, pt_res_set_t *set, pt_config_t *c)
{
    compiler_t cp = {.cx = cx, .set = set, .c = c};

    /* Proxy */
    pt__cfg_proxy_defaults(&c->proxy);
    if (set->n_proxies > 0) {
        c->proxy = set->proxies[0]->settings;
        c->proxy.bind_address = pt__cfg_out_str(cx, c->proxy.bind_address);
        c->proxy.access_log = pt__cfg_out_str(cx, c->proxy.access_log);
        const pt_cfg_node_t *first = set->proxies[0]->meta.doc;
        for (size_t i = 1; i < set->n_proxies; i++)
            pt__cfg_error_at(cx, set->proxies[i]->meta.doc, "kind",
                             "only one Proxy per config set (the first is at %s:%d:%d)",
                             first->file, first->line, first->col);
    }
    select_sources(set, &c->proxy.workload);

    check_duplicates(cx, (void *const *)set->gateways, set->n_gateways,
                     offsetof(pt_res_gateway_t, meta));
    check_duplicates(cx, (void *const *)set->vss, set->n_vss, offsetof(pt_res_vs_t, meta));
    check_duplicates(cx, (void *const *)set->ses, set->n_ses, offsetof(pt_res_se_t, meta));
    check_duplicates(cx, (void *const *)set->drs, set->n_drs, offsetof(pt_res_dr_t, meta));
    check_duplicates(cx, (void *const *)set->wes, set->n_wes, offsetof(pt_res_we_t, meta));

    /* Listeners, one per port. */
    size_t max_listeners = 0;
    for (size_t i = 0; i < set->n_gateways; i++)
        max_listeners += set->gateways[i]->n_servers;
    listener_build_t *lb = pt_arena_calloc(cx->tmp, (max_listeners + 1) * sizeof(*lb));
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
    for (size_t v = 0; v < set->n_vss; v++) {
        pt_res_vs_t *vs = set->vss[v];
        size_t found = 0;
        for (size_t r = 0; r < vs->n_gateways; r++) {
            const pt_res_gateway_ref_t *ref = &vs->gateways[r];
            if (find_gateway(&cp, ref->ns, ref->name) != NULL)
                found++;
            else
                pt__cfg_warn_at(cx, ref->node, ref->path,
                                "no Gateway %s/%s in the config: this VirtualService does not "
                                "bind to it",
                                ref->ns, ref->name);
        }
        checks_only[v] = vs->mesh_only || found == 0;
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
                pt__cfg_warn_at(cx, vs->meta.doc, "spec.hosts",
                                "absent, so VirtualService %s is a delegate, and none delegates "
                                "to it: it applies nowhere",
                                vs->qname);
            cp.mesh_only = vs->is_delegate ? !vs->is_delegate_bound : checks_only[v];
            compile_vs(&cp, vs);
            cp.mesh_only = false;
        }

    /* Bind VirtualServices to listeners. */
    const char **hosts_buf = NULL;
    size_t cap_hosts = 0;
    for (size_t k = 0; k < n_lb; k++) {
        listener_build_t *b = &lb[k];
        for (size_t v = 0; v < set->n_vss; v++) {
            pt_res_vs_t *vs = set->vss[v];
            size_t n_hosts = 0;
            for (size_t bi = 0; bi < b->n_bindings; bi++) {
                const binding_t *bd = &b->bindings[bi];
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
                            if (strcmp(hosts_buf[q], x) == 0)
                                seen = true;
                        if (seen)
                            continue;
                        hosts_buf = pt_arena_grow(cx->tmp, hosts_buf, n_hosts, &cap_hosts,
                                                  sizeof(*hosts_buf));
                        hosts_buf[n_hosts++] = x;
                    }
            }
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
            } else if (b->l->protocol == PT_LISTENER_TCP && b->n_l4 == 0) {
                for (size_t t = 0; t < vs->n_tcp && b->n_l4 == 0; t++) {
                    const pt_res_tcp_route_t *tr = &vs->tcp[t];
                    bool match = tr->match_any;
                    for (size_t m = 0; m < tr->n_matches; m++)
                        if (tr->match_ports[m] == b->l->port)
                            match = true;
                    if (match && tr->compiled.n_clusters > 0) {
                        b->l4 = pt_arena_grow(cx->tmp, b->l4, 0, &b->cap_l4, sizeof(*b->l4));
                        b->l4[b->n_l4++] = tr->compiled;
                    }
                }
            } else if (b->l->protocol == PT_LISTENER_TLS) {
                bind_tls_routes(&cp, b, vs);
            }
        }
        sort_vhosts(b->vhosts, b->n_vhosts);
    }

    /* Publish into the snapshot arena. */
    c->n_listeners = n_lb;
    c->listeners = pt_arena_calloc(cx->out, (n_lb + 1) * sizeof(*c->listeners));
    for (size_t k = 0; k < n_lb; k++) {
        c->listeners[k] = *lb[k].l;
        c->listeners[k].n_vhosts = lb[k].n_vhosts;
        if (lb[k].n_vhosts)
            c->listeners[k].vhosts =
                pt_arena_memdup(cx->out, lb[k].vhosts, lb[k].n_vhosts * sizeof(pt_vhost_t));
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
    c->n_dns_hosts = cp.n_dns_hosts;
    c->n_endpoint_slots = 0;
    for (size_t i = 0; i < cp.n_clusters; i++) {
        c->clusters[i]->endpoint_base = (uint32_t)c->n_endpoint_slots;
        c->n_endpoint_slots += c->clusters[i]->n_endpoints;
    }
}
