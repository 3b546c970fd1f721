/* config/resources.h
 * The typed model: what each checked document says, before resources are joined together.
 * config/resources.c builds it from node trees (one pt__cfg_resources_add per document, read by
 * the kind readers of config/kind_*.c);
 * config/compile.c joins Gateways, VirtualServices and ServiceEntries into a snapshot.
 *
 * The model lives in the load's temporary arena (cx->tmp). Pieces that the snapshot keeps as
 * they are (HTTP matches, names, direct-response bodies) are built directly in the snapshot
 * arena (cx->out). Nodes and formatted paths are kept so that compile can report errors at
 * the right place. */
#ifndef PT_CONFIG_RESOURCES_H
#define PT_CONFIG_RESOURCES_H

#include "chaos.h"
#include "schema.h"

typedef struct pt_res_meta {
    const char *kind;               /* "Gateway", ... */
    const char *name, *ns;          /* tree strings */
    const pt_cfg_node_t *doc;       /* the resource's root: its document, or a List's item */
    const pt_cfg_path_t *path;      /* where doc sits: NULL, or items[i] (pt_cfg_doc_t.path) */
    const pt_cfg_node_t *name_node; /* metadata.name, for duplicate errors */
} pt_res_meta_t;

/* A Gateway server's tls that Petrel terminates (HTTPS: SIMPLE, MUTUAL, OPTIONAL_MUTUAL), or
 * an HTTP server's httpsRedirect; contexts are built by config/tls_contexts.c. */
typedef struct pt_res_server_tls {
    const pt_cfg_node_t *node; /* the tls map, for errors */
    const char *path;          /* "spec.servers[0].tls" */
    bool is_terminated;        /* HTTPS or TLS with SIMPLE / MUTUAL / OPTIONAL_MUTUAL */
    bool is_mutual;            /* MUTUAL: a client certificate is required */
    bool is_optional_mutual;   /* OPTIONAL_MUTUAL: one is verified when sent */
    bool https_redirect;
    const char *cert, *key, *ca, *credential_name; /* as written (tree strings) */
    uint16_t min_version, max_version;             /* TLS1_2_VERSION...; 0: default */
    const char *cipher_suites;                     /* ':'-joined, or NULL */
    const char **subject_alt_names;
    size_t n_subject_alt_names;
} pt_res_server_tls_t;

typedef struct pt_res_server {
    const pt_res_server_tls_t *tls;  /* NULL: no tls, or one Petrel does not terminate */
    uint16_t port;                   /* 0 when invalid (already reported) */
    pt_listener_protocol_t protocol; /* 0 when invalid or not supported (already reported) */
    const char **hosts;              /* lower-case dnsName part, "ns/" prefix removed */
    size_t n_hosts;
    const pt_cfg_node_t *port_node;     /* port map, for messages naming where a port is */
    const pt_cfg_node_t *protocol_node; /* for protocol conflicts */
    const char *port_path;
} pt_res_server_t;

typedef struct pt_res_gateway {
    pt_res_meta_t meta;
    pt_res_server_t *servers;
    size_t n_servers;
} pt_res_gateway_t;

typedef struct pt_res_dest {
    const char *host; /* lower-case; a short name completed at compile (config/hostname.c) */
    uint16_t port;    /* 0: not given */
    bool has_weight;
    uint32_t weight;
    const char *subset;                   /* destination.subset, or NULL */
    const pt_cfg_node_t *subset_node;     /* for "no such subset" errors */
    const pt_cfg_node_t *node;            /* the destination map */
    const char *path;                     /* "spec.http[0].route[1].destination" */
    const pt_header_mutations_t *headers; /* HTTP route[].headers (snapshot arena), or NULL */
} pt_res_dest_t;

typedef struct pt_res_http_route {
    pt_http_route_t route; /* matches, name, timeout, direct response filled; clusters at compile */
    pt_res_dest_t *dests;
    size_t n_dests;
    pt_res_dest_t *mirror_dests; /* mirror, or mirrors[].destination */
    uint32_t *mirror_ppm;        /* their percentages */
    size_t n_mirrors;
    const pt_cfg_node_t *node;
    const char *path;                        /* "spec.http[0]" */
    const char *delegate_ns, *delegate_name; /* delegate: the VirtualService whose routes
                                                  take this route's place; NULL: none */
    const pt_cfg_node_t *delegate_node;
    size_t compiled_index; /* compile: its route in the VirtualService's compiled[] (when it
                              does not delegate) */
} pt_res_http_route_t;

/* One tls[].match[] entry: sniHosts (required) on a port (0: any). */
typedef struct pt_res_tls_match {
    uint16_t port;
    const char **sni_hosts; /* lower-case */
    size_t n_sni_hosts;
} pt_res_tls_match_t;

typedef struct pt_res_l4_match {
    uint16_t port; /* 0: any */
    pt_cidr_t *subnets;
    size_t n_subnets;
} pt_res_l4_match_t;

/* A tcp[] or tls[] route. */
typedef struct pt_res_tcp_route {
    uint16_t *match_ports; /* tcp[]: match[].port; a match without port matches any port */
    size_t n_matches;
    bool match_any; /* tcp[]: no match[] or a match without a port (or destinationSubnets) */
    pt_res_l4_match_t *l4_matches; /* tcp[]: every match[] entry, for sidecar routing */
    size_t n_l4_matches;
    pt_res_tls_match_t *tls_matches; /* tls[] */
    size_t n_tls_matches;
    pt_res_dest_t *dests;
    size_t n_dests;
    const pt_cfg_node_t *node;
    const char *path;       /* "spec.tcp[0]" */
    pt_l4_route_t compiled; /* compile's result (clusters in the snapshot arena) */
} pt_res_tcp_route_t;

typedef struct pt_res_gateway_ref {
    const char *ns, *name; /* the Gateway it binds to */
    const pt_cfg_node_t *node;
    const char *path;
} pt_res_gateway_ref_t;

typedef struct pt_res_vs {
    pt_res_meta_t meta;
    const char *qname;  /* "<ns>/<name>" in the snapshot arena */
    const char **hosts; /* lower-case */
    size_t n_hosts;
    pt_res_gateway_ref_t *gateways; /* "mesh" left out */
    size_t n_gateways;
    bool mesh_only;         /* gateways absent or only "mesh": validated, bound to no listener */
    bool is_delegate;       /* no hosts: only used through another VirtualService's delegate */
    bool is_delegated_to;   /* some root's delegate names it (compile) */
    bool is_delegate_bound; /* ... a root bound to a loaded Gateway: it makes clusters */
    bool binds_mesh;        /* gateways absent or listing "mesh": the sidecar's routes */
    const pt_cfg_node_t *mesh_node; /* where mesh comes from, for compile's warnings */
    const char *mesh_path;
    pt_res_http_route_t *http;
    size_t n_http;
    pt_res_tcp_route_t *tcp;
    size_t n_tcp;
    pt_res_tcp_route_t *tls;
    size_t n_tls;
    /* compile's per-VS results */
    pt_http_route_t *compiled; /* n_compiled routes in the snapshot arena: n_http, with
                                  each delegating route replaced by its delegate's routes */
    size_t n_compiled;
} pt_res_vs_t;

typedef struct pt_res_se_port {
    uint16_t number;
    const char *name;     /* may be NULL */
    uint16_t target_port; /* 0: not given */
    const char *protocol; /* as written, or NULL */
} pt_res_se_port_t;

typedef struct pt_res_se_endpoint {
    const char *address;          /* an IP literal, or a DNS name (resolution DNS) */
    struct sockaddr_storage addr; /* the IP literal's; addr_len 0 for a DNS name */
    socklen_t addr_len;
    uint32_t weight;            /* 1 when not given (or 0) */
    const pt_cfg_node_t *ports; /* endpoint.ports map (checked), or NULL */
    const char **labels;        /* endpoint.labels: key, value, ... (snapshot arena) */
    size_t n_labels;            /* pairs */
} pt_res_se_endpoint_t;

typedef enum pt_res_resolution {
    PT_RES_NONE = 0,        /* Istio's default: no endpoints in Petrel yet */
    PT_RES_STATIC,          /* endpoints are IP literals */
    PT_RES_DNS,             /* every address of every endpoint's name (Envoy's STRICT_DNS) */
    PT_RES_DNS_ROUND_ROBIN, /* the first address of the name (Envoy's LOGICAL_DNS) */
} pt_res_resolution_t;

typedef struct pt_res_se {
    pt_res_meta_t meta;
    const char **hosts; /* lower-case */
    size_t n_hosts;
    pt_cidr_t *addresses; /* addresses[] (VIPs or CIDRs), in the snapshot arena */
    size_t n_addresses;
    pt_res_se_port_t *ports;
    size_t n_ports;
    pt_res_resolution_t resolution;
    pt_res_se_endpoint_t *endpoints;
    size_t n_endpoints;
    bool has_selector;     /* workloadSelector given: endpoints are the selected WorkloadEntries */
    const char **selector; /* workloadSelector.labels: key, value, ... */
    size_t n_selector;     /* pairs */
} pt_res_se_t;

/* A WorkloadEntry: one endpoint that ServiceEntries select by labels (same namespace). */
typedef struct pt_res_we {
    pt_res_meta_t meta;
    pt_res_se_endpoint_t ep;
    bool ok; /* its address is usable */
} pt_res_we_t;

/* A DestinationRule loadBalancer as written: has_* says which fields were given, so that a
 * subset's or a port's settings override only what they set. */
typedef struct pt_res_lb {
    bool is_set;       /* loadBalancer given and valid */
    pt_lb_config_t lb; /* policy, hash key, ring / table sizes */
} pt_res_lb_t;

/* A DestinationRule outlierDetection as written, with Istio's defaults filled in. */
typedef struct pt_res_outlier {
    bool is_set; /* outlierDetection given and valid */
    pt_outlier_config_t od;
} pt_res_outlier_t;

/* A DestinationRule tls block as written (ClientTLSSettings), checked. */
typedef struct pt_res_client_tls {
    bool is_set; /* tls given and valid */
    pt_upstream_tls_mode_t mode;
    const char *client_certificate, *private_key, *ca_certificates, *credential_name, *sni;
    const char **sans; /* snapshot arena */
    size_t n_sans;
    bool insecure_skip_verify;
    const pt_cfg_node_t *node; /* the tls map */
    const char *path;          /* "spec.trafficPolicy.tls" */
} pt_res_client_tls_t;

typedef struct pt_res_port_lb {
    uint16_t port;
    pt_res_lb_t lb;
    bool has_pool; /* connectionPool given: it replaces the policy's as a whole (Istio) */
    pt_conn_pool_settings_t pool;
    pt_res_outlier_t outlier;
    pt_res_client_tls_t tls;
} pt_res_port_lb_t;

typedef struct pt_res_traffic_policy {
    pt_res_lb_t lb;
    bool has_pool;
    pt_conn_pool_settings_t pool; /* connectionPool, over Istio's defaults */
    bool has_retry_budget;        /* retryBudget (top level of a policy only) */
    double budget_percent;
    uint32_t budget_min_concurrency;
    pt_res_outlier_t outlier;
    pt_res_client_tls_t tls;
    pt_res_port_lb_t *ports; /* portLevelSettings[] */
    size_t n_ports;
} pt_res_traffic_policy_t;

typedef struct pt_res_subset {
    const char *name;
    const char **labels; /* key, value, ... */
    size_t n_labels;     /* pairs */
    pt_res_traffic_policy_t policy;
} pt_res_subset_t;

typedef struct pt_res_dr {
    pt_res_meta_t meta;
    const char *host; /* lower-case; may be a wildcard; NULL when invalid */
    pt_res_traffic_policy_t policy;
    pt_res_subset_t *subsets;
    size_t n_subsets;
} pt_res_dr_t;

/* A ChaosProxy (config/kind_chaos_proxy.c); only valid ones are kept. */
typedef struct pt_res_chaos {
    pt_res_meta_t meta;
    pt_chaos_decl_t decl;
    const pt_res_server_tls_t *tls; /* spec.tls, or NULL: plaintext (tls_contexts.c builds it) */
    char where[320];                /* file:line:col */
} pt_res_chaos_t;

typedef struct pt_res_proxy {
    pt_res_meta_t meta;
    pt_proxy_settings_t settings;  /* defaults overridden by the fields given */
    const pt_cfg_node_t *identity; /* spec.identity, for errors about its files */
} pt_res_proxy_t;

/* Every resource of one load, in load order (files in the order given, a directory's files
 * in name order, documents in file order). Arrays grow in the temporary arena. */
typedef struct pt_res_set {
    pt_res_proxy_t **proxies;
    size_t n_proxies, cap_proxies;
    pt_res_gateway_t **gateways;
    size_t n_gateways, cap_gateways;
    pt_res_vs_t **vss;
    size_t n_vss, cap_vss;
    pt_res_se_t **ses;
    size_t n_ses, cap_ses;
    pt_res_dr_t **drs;
    size_t n_drs, cap_drs;
    pt_res_we_t **wes;
    size_t n_wes, cap_wes;
    struct pt_res_authz **authzs; /* config/kind_authorization_policy.c */
    size_t n_authzs, cap_authzs;
    struct pt_res_peer_authn **peer_authns;
    size_t n_peer_authns, cap_peer_authns;
    pt_res_chaos_t **chaos;
    size_t n_chaos, cap_chaos;
} pt_res_set_t;

/* Petrel's defaults for the Proxy kind (docs/config.md lists them). */
void pt__cfg_proxy_defaults(pt_proxy_settings_t *s);

/* Replaces each Kubernetes List in docs (`kind: List`, or <Kind>List, as `kubectl get -o yaml`
 * and the API server write them) by its items, each a document of its own whose path is
 * items[i] (nested Lists too). The List's own fields are checked here. */
void pt__cfg_expand_lists(pt_cfg_cx_t *cx, pt_cfg_docs_t *docs);

/* The formatted path of field (dotted, e.g. "spec.hosts") in resource m, for errors reported
 * after the walk; in the load's temporary arena. */
const char *pt__cfg_meta_path(pt_cfg_cx_t *cx, const pt_res_meta_t *m, const char *field);

/* Checks one document and adds what it describes to set (at most one resource, at the end of
 * its kind's array). Errors go to cx->errors; the resource is added even then (config.c sets
 * it aside). */
void pt__cfg_resources_add(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_cfg_doc_t *doc);

/* Builds each listener's host index (config.c), once compile has placed the vhosts. */
void pt__cfg_index_vhosts(pt_config_t *c);

/* The documents as a JSON array of {"source", "line", "resource"} objects, copied into `into`
 * (config/dump.c). */
const char *pt__cfg_dump_json(pt_arena_t *into, const pt_cfg_docs_t *docs, size_t *len);

/* One node as compact JSON, copied into `into`, as the dump writes it: an unquoted true, false
 * or number stays one, every other scalar is a string (config/dump.c). */
const char *pt__cfg_node_json(pt_arena_t *into, const pt_cfg_node_t *n);

/* Whether a resource of kind (with namespace/name; NULL: any of that kind) may exist where
 * compile cannot see it: left out of the set for its errors, or in a file that could not be
 * parsed. A reference that finds nothing is then not reported: the error that hides the
 * resource is, and the reference is checked once that is fixed. */
bool pt__cfg_may_be_unchecked(const pt_cfg_cx_t *cx, const char *kind, const char *ns,
                              const char *name);

/* The value at a dotted path of map keys under n ("spec.sidecar.inboundPort"), or NULL (n
 * NULL, or a key absent): where a check made after reading points its message. */
const pt_cfg_node_t *pt__cfg_node_at(const pt_cfg_node_t *n, const char *dotted);

/* Joins the resources into the snapshot c (listeners, vhosts, routes, clusters, proxy). */
void pt__cfg_compile(pt_cfg_cx_t *cx, pt_res_set_t *set, pt_config_t *c);

/* config/delegate.c: VirtualService delegation. Merges a root route's match with a delegate
 * route's into *out (arena a for new lists); false when they conflict. */
bool pt__cfg_merge_match(pt_arena_t *a, const pt_http_match_t *root, const pt_http_match_t *leaf,
                         pt_http_match_t *out);
/* A delegate route as it serves in place of root: the merged matches (false when every pair
 * conflicts: the route is left out) and root's timeout, headers, rewrite, fault, retries and
 * mirrors where leaf has none. */
bool pt__cfg_merge_delegate_route(pt_arena_t *a, const pt_http_route_t *root,
                                  const pt_http_route_t *leaf, pt_http_route_t *out);

/* Whether the workload w carries every label of the selector sel (key, value pairs). */
bool pt__cfg_labels_select(const char *const *sel, size_t n_sel, const pt_workload_t *w);
/* The warning for a policy (AuthorizationPolicy, PeerAuthentication) in w's scope whose selector
 * does not select w: it does nothing here, which a DENY must not do silently. */
void pt__cfg_warn_not_selected(pt_cfg_cx_t *cx, const pt_res_meta_t *meta, const char *const *sel,
                               size_t n_sel, const pt_workload_t *w);

/* config/kind_authorization_policy.c: keeps the AuthorizationPolicies that apply to c's
 * workload as c->authz (once the Proxy settings are in c). */
void pt__cfg_compile_authz(pt_cfg_cx_t *cx, pt_res_set_t *set, pt_config_t *c);
/* config/kind_peer_authentication.c: the PeerAuthentication that applies to this Proxy's
 * workload, resolved into c->peer_auth (after compile). */
void pt__cfg_resolve_peer_authentication(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c);

/* config/tls_contexts.c: reads the certificate files the resources name and builds the
 * snapshot's TLS contexts (after compile, even when it found errors elsewhere). Errors name
 * the field. */
void pt__cfg_build_tls(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c);
/* The client contexts of the clusters' DestinationRule tls and auto mTLS settings, one per
 * distinct set of files (called by pt__cfg_build_tls). */
void pt__cfg_build_upstream_tls(pt_cfg_cx_t *cx, pt_config_t *c);
/* The upstream TLS settings of cluster cl from the tls block rt (NULL: auto mTLS, ISTIO_MUTUAL
 * with the identity): SNI, the name to verify and the pool key filled in; NULL for DISABLE or
 * when ISTIO_MUTUAL has no identity (reported at rt). */
pt_upstream_tls_t *pt__cfg_upstream_tls(pt_cfg_cx_t *cx, const pt_config_t *c,
                                        const pt_res_client_tls_t *rt, const pt_cluster_t *cl);

/* The files of Istio's credentialName `name` (Gateway servers, DestinationRule tls): Kubernetes'
 * secret layout under the Proxy's credentialsDirectory, <dir>/<name>/tls.crt, tls.key and
 * ca.crt, in the snapshot arena (*ca is NULL when that file does not exist). False, with an
 * error at node/path, when no credentialsDirectory is set or the name is not a plain name. */
bool pt__cfg_credential_files(pt_cfg_cx_t *cx, pt_config_t *c, const char *name,
                              const pt_cfg_node_t *node, const char *path, const char **crt,
                              const char **key, const char **ca);

/* config/resources.c: does pattern (a host, "*" or "*.suffix") cover host (which may itself
 * be a wildcard)? Case-insensitive. */
bool pt__cfg_host_covers(const char *pattern, const char *host);

#endif
