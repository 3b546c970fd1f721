/* config/config.h
 * The compiled, immutable configuration snapshot that workers route with, and the entry points
 * that build one from YAML files. Pipeline: xds/ reads files -> config/ parses (libyaml, keeps
 * line:col), checks every field against the Istio / Petrel schema, then compiles listeners,
 * route tables and clusters into one pt_config_t living in one arena.
 *
 * A snapshot is refcounted: the main thread holds one ref while it is current, each worker one
 * while it serves with it, each stream one for its lifetime. Nothing in it changes once it is
 * published to the workers (proxy/ binds its runtime state, such as outlier detection, first). */
#ifndef PT_CONFIG_H
#define PT_CONFIG_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "arena.h"
#include "chaos.h"
#include "policy_types.h"

/* DestinationRule trafficPolicy.tls, resolved for one cluster (subset > port level > top
 * level), or Istio's auto mTLS for the endpoints labelled security.istio.io/tlsMode: istio.
 * compile fills the settings; config/tls_contexts.c builds ctx from the files. */
typedef enum pt_upstream_tls_mode {
    PT_UPSTREAM_TLS_DISABLE = 0,
    PT_UPSTREAM_TLS_SIMPLE,       /* verify the server (caCertificates, else the system store) */
    PT_UPSTREAM_TLS_MUTUAL,       /* SIMPLE, presenting clientCertificate */
    PT_UPSTREAM_TLS_ISTIO_MUTUAL, /* the workload identity; the server's SPIFFE ID checked */
} pt_upstream_tls_mode_t;

typedef struct pt_upstream_tls {
    pt_upstream_tls_mode_t mode;
    const char *client_certificate, *private_key; /* files; NULL: none */
    const char *ca_certificates;                  /* file; NULL: the system store (SIMPLE) */
    const char *credential_name;                  /* files under the Proxy's credentialsDirectory */
    const char *sni;                              /* sent; NULL: none (an IP literal host) */
    const char *verify_name;   /* the name the server's certificate must carry; NULL: none */
    const char *const *sans;   /* subjectAltNames: any one must be in the certificate */
    size_t n_sans;             /* (replaces verify_name) */
    bool insecure_skip_verify; /* no chain or name check */
    const char *trust_domain;  /* ISTIO_MUTUAL: the server's SPIFFE ID must be in it */
    const char *pool_key;      /* the settings as text: connections share a pool only when
                                  their address and pool_key are equal */
    struct ssl_ctx_st *ctx;    /* built by config/tls_contexts.c, owned by the snapshot */
    const void *node;          /* the tls map (errors about its files); NULL: auto mTLS */
    const char *path;
} pt_upstream_tls_t;

typedef struct pt_endpoint {
    const char *address; /* as written, e.g. "127.0.0.1" */
    uint16_t port;
    uint32_t weight;              /* 1 when not given */
    struct sockaddr_storage addr; /* resolved at compile time (STATIC) */
    socklen_t addr_len;
    const char *const *labels; /* ServiceEntry endpoints[].labels: key, value, key, value... */
    size_t n_labels;           /* pairs */
    const char *hostname;      /* resolution DNS: the name this address was resolved from */
    pt_upstream_tls_t *tls;    /* TLS to originate; NULL: plaintext */
} pt_endpoint_t;

/* DestinationRule loadBalancer, resolved for one cluster (subset > port level > top level). */
typedef enum pt_lb_policy {
    PT_LB_ROUND_ROBIN = 0, /* Istio's default (simple: UNSPECIFIED too) */
    PT_LB_LEAST_REQUEST,   /* power of two choices over this worker's active requests */
    PT_LB_RANDOM,
    PT_LB_RING_HASH,   /* consistentHash with ringHash (or minimumRingSize, or no ring given) */
    PT_LB_MAGLEV,      /* consistentHash with maglev */
    PT_LB_PASSTHROUGH, /* simple: PASSTHROUGH: the connection's original destination */
} pt_lb_policy_t;

typedef enum pt_lb_hash_key {
    PT_LB_HASH_NONE = 0,
    PT_LB_HASH_HEADER,    /* httpHeaderName */
    PT_LB_HASH_COOKIE,    /* httpCookie.name (never generated) */
    PT_LB_HASH_SOURCE_IP, /* useSourceIp */
    PT_LB_HASH_QUERY,     /* httpQueryParameterName */
} pt_lb_hash_key_t;

typedef struct pt_lb_ring_entry {
    uint64_t hash;     /* point on the ring */
    uint32_t endpoint; /* index in the cluster's endpoints */
} pt_lb_ring_entry_t;

/* The cluster's balancer with every table it needs, built once by pt_lb_build() (config/lb_build.c)
 * at compile time into the snapshot arena. The request path only reads it. */
typedef struct pt_lb_config {
    pt_lb_policy_t policy;
    pt_lb_hash_key_t hash_key; /* PT_LB_RING_HASH / PT_LB_MAGLEV only */
    const char *hash_name;     /* header (lower-case), cookie or query parameter name */
    size_t hash_name_len;
    uint64_t min_ring_size;     /* ringHash.minimumRingSize: 1024 by default */
    uint64_t maglev_table_size; /* maglev.tableSize, prime: 65537 by default */
    /* built by pt_lb_build() */
    uint64_t *cumulative;     /* running sum of endpoint weights; NULL when all weights are equal */
    uint64_t total_weight;    /* sum of the weights */
    uint64_t rr_stride;       /* weighted round robin: a stride coprime with total_weight */
    pt_lb_ring_entry_t *ring; /* sorted by hash */
    size_t n_ring;
    uint32_t *maglev; /* maglev_table_size endpoint indexes */
} pt_lb_config_t;

/* DestinationRule outlierDetection, resolved for one cluster (subset > port level > top level,
 * the first that sets it gives all of it), with Istio's defaults filled in. */
typedef struct pt_outlier_config {
    uint32_t consecutive_5xx;      /* consecutive5xxErrors: 5; 0 turns it off */
    uint32_t consecutive_gateway;  /* consecutiveGatewayErrors (502/503/504): 0, off */
    uint32_t consecutive_local;    /* consecutiveLocalOriginFailures: 5 (split only) */
    bool split_local_origin;       /* splitExternalLocalOriginErrors: false */
    uint64_t interval_ms;          /* interval: 10s */
    uint64_t base_ejection_ms;     /* baseEjectionTime: 30s */
    uint32_t max_ejection_percent; /* maxEjectionPercent: 10 */
    uint32_t min_health_percent;   /* minHealthPercent: 0 (no panic) */
} pt_outlier_config_t;

struct pt_outlier_cluster;
struct pt_outlier_host;

/* The protocol requests travel in to a cluster's endpoints. */
typedef enum pt_upstream_protocol {
    PT_UPSTREAM_HTTP1 = 0,
    PT_UPSTREAM_HTTP2,  /* h2c, or h2 by ALPN over TLS */
    PT_UPSTREAM_CLIENT, /* useClientProtocol: the client's */
} pt_upstream_protocol_t;

/* One upstream service port, or one subset of it: Istio's "outbound|<port>|<subset>|<host>". */
typedef struct pt_cluster {
    const char *name;   /* "outbound|8080||reviews.default.svc.cluster.local" */
    const char *host;   /* the ServiceEntry host */
    const char *subset; /* DestinationRule subset name; NULL for the whole service */
    uint16_t port;      /* the service port */
    pt_endpoint_t *endpoints;
    size_t n_endpoints;     /* 0: every request gets 503 UH */
    uint32_t index;         /* position in pt_config_t.clusters, for per-worker state */
    bool is_original_dst;   /* sidecar passthrough: the connection's original destination is
                               the one endpoint (proxy/capture.c), n_endpoints is 0 */
    uint32_t endpoint_base; /* first slot of its endpoints in per-worker endpoint arrays */
    pt_lb_config_t lb;
    pt_conn_pool_settings_t pool;             /* DestinationRule connectionPool (+ retryBudget) */
    pt_cluster_state_t *state;                /* breaker counts and budget; outlives the snapshot */
    const pt_outlier_config_t *outlier;       /* NULL: no outlier detection */
    struct pt_outlier_cluster *outlier_state; /* shared by workers (proxy/outlier.c) */
    struct pt_outlier_host **outlier_hosts;   /* one per endpoint, in the same order */
    pt_upstream_tls_t *tls;      /* DestinationRule tls (every endpoint); NULL: none or DISABLE */
    pt_upstream_tls_t *auto_tls; /* auto mTLS: ISTIO_MUTUAL for endpoints labelled tlsMode istio */
    pt_upstream_protocol_t protocol;      /* what requests travel as (Istio's protocol selection) */
    pt_upstream_protocol_t mesh_protocol; /* the same to endpoints reached over ISTIO_MUTUAL:
                                             HTTP/2 unless told otherwise (compile.c) */
} pt_cluster_t;

/* Istio's HeaderOperations (set, add, remove) for one direction, names lower-case. Applied
 * in Envoy's order: remove, then set (replaces every value), then add (one more line). */
typedef struct pt_header_op {
    const char *name; /* lower-case */
    size_t name_len;
    const char *value; /* NULL for remove */
    size_t value_len;
} pt_header_op_t;

typedef struct pt_header_ops {
    const pt_header_op_t *set, *add, *remove;
    size_t n_set, n_add, n_remove;
} pt_header_ops_t;

/* Istio's Headers: request and response mutations of a route or of one destination. */
typedef struct pt_header_mutations {
    pt_header_ops_t request, response;
} pt_header_mutations_t;

typedef struct pt_weighted_cluster {
    pt_cluster_t *cluster;
    uint32_t cumulative_weight;           /* running sum; a route picks r in [0, total) */
    const pt_header_mutations_t *headers; /* route[].headers; NULL: none */
} pt_weighted_cluster_t;

/* A compiled regex (proxy/regex.h), owned by the snapshot arena. */
typedef struct pt_regex pt_regex_t;

typedef enum pt_string_match_kind {
    PT_MATCH_EXACT = 1,
    PT_MATCH_PREFIX,
    PT_MATCH_REGEX,   /* full match, RE2 semantics */
    PT_MATCH_PRESENT, /* headers / queryParams given as {}: present, any value */
} pt_string_match_kind_t;

typedef struct pt_string_match {
    pt_string_match_kind_t kind;
    const char *value; /* exact / prefix text; the pattern for a regex */
    size_t len;
    const pt_regex_t *regex; /* PT_MATCH_REGEX */
    bool ignore_case;        /* exact / prefix compared ASCII case-insensitively */
} pt_string_match_t;

typedef struct pt_header_match {
    const char *name; /* lower-case */
    pt_string_match_t match;
} pt_header_match_t;

/* One entry of an HTTPRoute's match[] (all set conditions must hold). */
typedef struct pt_http_match {
    bool has_uri;
    pt_string_match_t uri; /* against the path without the query */
    const char *method;    /* method.exact, NULL otherwise (kept for readers of old) */
    pt_header_match_t *headers;
    size_t n_headers;
    bool has_method, has_scheme, has_authority;
    pt_string_match_t method_match;     /* every method StringMatch kind */
    pt_string_match_t scheme;           /* against "http" (Petrel's listeners are plaintext) */
    pt_string_match_t authority;        /* against the request's authority, as received */
    pt_header_match_t *without_headers; /* the match fails if any of these matches */
    size_t n_without_headers;
    pt_header_match_t *query_params; /* name as written; exact / regex / present */
    size_t n_query_params;
    uint16_t port; /* the listener port; 0: any */
    /* sourceLabels / sourceNamespace, kept as written; at a gateway they select the proxy's
     * own workload (Proxy spec.workload), so compile decides them once: */
    const char *const *source_labels; /* key, value, key, value... */
    size_t n_source_labels;           /* pairs */
    const char *source_namespace;     /* NULL: any */
    bool never;                       /* the source conditions exclude this proxy */
} pt_http_match_t;

typedef struct pt_http_rewrite {
    const char *uri; /* NULL: not rewritten; replaces the matched prefix, else the path */
    size_t uri_len;
    const char *authority; /* NULL: kept; else sent as Host */
    size_t authority_len;
    const pt_regex_t *uri_regex; /* uriRegexRewrite.match (searched), or NULL */
    const char *uri_regex_rewrite;
    size_t uri_regex_rewrite_len;
} pt_http_rewrite_t;

typedef struct pt_http_redirect {
    const char *uri; /* NULL: the request's path; with a '?', replaces the query too */
    size_t uri_len;
    const char *authority; /* NULL: the request's host */
    size_t authority_len;
    const char *scheme;     /* NULL: the request's ("http") */
    uint16_t port;          /* 0: none given */
    bool port_from_request; /* derivePort: FROM_REQUEST_PORT (the listener port) */
    int code;               /* 301 (default), 302, 303, 307, 308 */
} pt_http_redirect_t;

/* fault: injected per request, decided with the worker's PRNG. Percentages are kept in parts
 * per million (percentage.value 0.1 -> 1000) so fractions of a percent hold. */
#define PT_FAULT_SCALE 1000000u

/* The environment variable with a pod's terminationDrainDuration (set by petrel inject from
 * proxy.istio.io/config): it overrides Proxy spec.drainTimeout. */
#define PT_DRAIN_DURATION_ENV "PETREL_TERMINATION_DRAIN_DURATION"
typedef struct pt_http_fault {
    uint64_t delay_ms;     /* delay.fixedDelay; 0: no delay */
    uint32_t delay_ppm;    /* 0..PT_FAULT_SCALE */
    int abort_status;      /* abort.httpStatus (200 for a grpcStatus abort); 0: no abort */
    uint32_t abort_ppm;    /* 0..PT_FAULT_SCALE */
    bool is_grpc_abort;    /* abort.grpcStatus: a gRPC trailers-only reply with abort_grpc_status */
    int abort_grpc_status; /* 0..16 */
} pt_http_fault_t;

/* Whether a fault with probability ppm (parts per million) fires for the random draw r. */
static inline bool pt_fault_fires(uint32_t ppm, uint32_t r)
{
    return ppm >= PT_FAULT_SCALE || (ppm > 0 && r % PT_FAULT_SCALE < ppm);
}

/* mirror / mirrors[]: a copy of each request, with probability ppm, goes to cluster
 * (proxy/mirror.c). */
typedef struct pt_http_mirror {
    pt_cluster_t *cluster;
    uint32_t ppm; /* 0..PT_FAULT_SCALE */
} pt_http_mirror_t;

typedef struct pt_http_route {
    const char *name;            /* the route's name, or "<vs-name>.<index>" */
    const char *virtual_service; /* "<namespace>/<name>" of its VirtualService */
    pt_http_match_t *matches;    /* none: matches everything */
    size_t n_matches;
    pt_weighted_cluster_t *clusters;
    size_t n_clusters;
    uint32_t total_weight;   /* sum of weights; > 0 when n_clusters > 0 */
    uint64_t timeout_ms;     /* 0: no route timeout (Istio's default) */
    int direct_status;       /* directResponse.status; 0 when not a direct response */
    const char *direct_body; /* directResponse.body.string, may be NULL */
    size_t direct_body_len;
    const pt_header_mutations_t *headers; /* route-level headers; NULL: none */
    const pt_http_rewrite_t *rewrite;     /* NULL: none */
    const pt_http_redirect_t *redirect;   /* answered locally; NULL: not a redirect */
    const pt_http_fault_t *fault;         /* NULL: no fault injection */
    const pt_retry_policy_t *retry;       /* retries as written; NULL: Petrel's safe default */
    const pt_http_mirror_t *mirrors;      /* mirror or mirrors[] */
    size_t n_mirrors;
    const char *chaos_proxy; /* an HTTP ChaosProxy's one route: the proxy's name, whose HTTP
                                toxics filters/chaos_http.c applies; NULL otherwise */
} pt_http_route_t;

/* The routes of one VirtualService host set on one listener. */
typedef struct pt_vhost {
    const char **hosts; /* lower-case; "*" and "*.example.com" wildcards allowed */
    size_t n_hosts;
    pt_http_route_t *routes; /* evaluated in order, first match wins */
    size_t n_routes;
} pt_vhost_t;

typedef enum pt_listener_protocol {
    PT_LISTENER_HTTP = 1,
    PT_LISTENER_TCP,
    PT_LISTENER_TLS, /* Gateway protocol TLS: PASSTHROUGH (tls[] routes on SNI), or terminated
                        (tls set: tcp[] routes) */
    PT_LISTENER_CAPTURE_OUTBOUND, /* sidecar: iptables-redirected egress (proxy/capture.c) */
    PT_LISTENER_CAPTURE_INBOUND,  /* sidecar: iptables-redirected ingress */
} pt_listener_protocol_t;

/* "HTTP", "TCP", "TLS": Istio's names, for messages and logs. */
static inline const char *pt_listener_protocol_name(pt_listener_protocol_t p)
{
    return p == PT_LISTENER_HTTP               ? "HTTP"
           : p == PT_LISTENER_TCP              ? "TCP"
           : p == PT_LISTENER_TLS              ? "TLS"
           : p == PT_LISTENER_CAPTURE_OUTBOUND ? "capture outbound"
                                               : "capture inbound";
}

/* Where a connection on a TCP or TLS-passthrough listener goes: a VirtualService tcp[] or
 * tls[] route, with its weighted destinations. */
typedef struct pt_l4_route {
    const char **sni_hosts; /* tls[]: lower-case, "*.example.com" wildcards; tcp[]: none */
    size_t n_sni_hosts;
    pt_weighted_cluster_t *clusters;
    size_t n_clusters;
    uint32_t total_weight; /* > 0 */
} pt_l4_route_t;

/* Gateway TLS termination on one port (config/tls_contexts.c): a context per server, chosen by
 * the ClientHello's SNI (exact host before wildcard; no SNI or no match: the first server). On
 * a port whose servers mix HTTPS, terminated TLS and PASSTHROUGH (is_sni_mixed), every server is
 * here, the kind says where its connections go, and no SNI or no match is closed (Envoy: no
 * filter chain) unless a server's host "*" takes it. */
typedef enum pt_tls_server_kind {
    PT_TLS_SERVER_HTTPS = 0,   /* terminated, HTTP routes (vhosts) */
    PT_TLS_SERVER_TERMINATE,   /* protocol TLS, terminated, then the listener's tcp[] route */
    PT_TLS_SERVER_PASSTHROUGH, /* not decrypted: tls[] routes on SNI (l4_routes); ctx NULL */
} pt_tls_server_kind_t;

typedef struct pt_tls_server {
    const char **hosts; /* the server's hosts, lower-case, "*" and "*.example.com" allowed */
    size_t n_hosts;
    pt_tls_server_kind_t kind;
    struct ssl_ctx_st *ctx;
    const char **subject_alt_names; /* MUTUAL: the client certificate must carry one */
    size_t n_subject_alt_names;
} pt_tls_server_t;

typedef struct pt_listener_tls {
    pt_tls_server_t *servers;
    size_t n_servers;
} pt_listener_tls_t;

/* PeerAuthentication's mutual TLS mode for the sidecar's inbound (15006), as Istio resolves it
 * for this Proxy's workload (config/kind_peer_authentication.c). */
typedef enum pt_mtls_mode {
    PT_MTLS_UNSET = 0, /* inherits (the resolved mode is never UNSET) */
    PT_MTLS_DISABLE,
    PT_MTLS_PERMISSIVE,
    PT_MTLS_STRICT,
} pt_mtls_mode_t;

typedef struct pt_peer_auth_port {
    uint16_t port; /* the original destination port */
    pt_mtls_mode_t mode;
} pt_peer_auth_port_t;

typedef struct pt_peer_auth {
    pt_mtls_mode_t mode; /* ports not listed; PERMISSIVE when no policy applies */
    const pt_peer_auth_port_t *ports;
    size_t n_ports;
} pt_peer_auth_t;

/* The mode for inbound connections to port. */
static inline pt_mtls_mode_t pt_peer_auth_mode(const pt_peer_auth_t *pa, uint16_t port)
{
    for (size_t i = 0; i < pa->n_ports; i++)
        if (pa->ports[i].port == port)
            return pa->ports[i].mode;
    return pa->mode;
}

typedef struct pt_listener_config {
    const char *name; /* "<gateway-ns>/<gateway-name>/<port>" */
    uint16_t port;
    pt_listener_protocol_t protocol;
    pt_vhost_t *vhosts; /* HTTP: in VirtualService order; exact hosts before wildcards */
    size_t n_vhosts;
    pt_l4_route_t *l4_routes; /* TCP: the one route (none: refused); TLS: tried in order */
    size_t n_l4_routes;
    struct pt_vhost_index *vhost_index; /* built by config.c: exact hosts hashed */
    const pt_listener_tls_t *tls;       /* HTTPS, TLS: terminated here; NULL: plaintext */
    const char **https_redirect_hosts;  /* HTTP servers with tls.httpsRedirect: answered 301 */
    size_t n_https_redirect_hosts;
    bool is_sni_mixed; /* HTTPS / TLS servers of several kinds: tls->servers[].kind decides */
    const pt_l4_route_t *tcp_route; /* is_sni_mixed: the terminated TLS servers' tcp[] route */
    /* An HTTP ChaosProxy's route table (pt_config_t.chaos_listeners): the proxy's name. Its
     * socket is the chaos store's, not a worker's: connections come through the chaos harness
     * (filters/chaos/toxics.c), and port is 0. NULL for every other listener. */
    const char *chaos_proxy;
} pt_listener_config_t;

/* An address block: ServiceEntry addresses, VirtualService destinationSubnets. */
typedef struct pt_cidr {
    sa_family_t family; /* AF_INET or AF_INET6 */
    uint8_t prefix_len; /* 32 / 128 for one address */
    uint8_t bytes[16];  /* network order; 4 used for IPv4 */
} pt_cidr_t;

/* Whether addr (an AF_INET or AF_INET6 sockaddr) is inside cidr. */
bool pt_cidr_contains(const pt_cidr_t *cidr, const struct sockaddr_storage *addr);

/* Sidecar TCP routing: one tcp[] match of a VirtualService bound to mesh, for one service port,
 * or the service's own default (no conditions). */
typedef struct pt_mesh_tcp_route {
    uint16_t port;            /* match.port; 0: any (already filtered by the service port) */
    const pt_cidr_t *subnets; /* match.destinationSubnets; none: any */
    size_t n_subnets;
    const pt_weighted_cluster_t *clusters; /* the route's destinations, as weighted */
    size_t n_clusters;
    uint32_t total_weight;
} pt_mesh_tcp_route_t;

/* A known service port reached by address (ServiceEntry addresses), for captured traffic that
 * is not HTTP: its VirtualServices' tcp routes in order, then its own cluster. */
typedef enum pt_port_protocol {
    PT_PORT_DETECT = 0, /* no protocol declared: detected on the first bytes */
    PT_PORT_HTTP,       /* HTTP, HTTP2, GRPC, GRPC-WEB: parsed as HTTP/1 at once */
    PT_PORT_OPAQUE,     /* TCP, TLS, HTTPS, MONGO, MYSQL, REDIS...: relayed at once */
} pt_port_protocol_t;

typedef struct pt_mesh_tcp_service {
    const char *host;
    const pt_cidr_t *addresses;
    size_t n_addresses;
    uint16_t port;
    pt_port_protocol_t protocol; /* ServiceEntry ports[].protocol (Istio's protocol selection) */
    pt_mesh_tcp_route_t *routes;
    size_t n_routes;
} pt_mesh_tcp_service_t;

/* The workload this proxy runs as (Proxy spec.workload): what a VirtualService match's
 * sourceLabels / sourceNamespace select at a gateway, where the request's source is the
 * gateway itself, as in Istio. A field the Proxy leaves unset is taken from the pod (the
 * Downward API, read by xds/pod_info.h and handed to pt_config_load_buffers); labels are one
 * field: the Proxy's replace the pod's. */
typedef struct pt_workload {
    const char *name;            /* NULL when not given */
    const char *ns;              /* "default" when neither the Proxy nor the pod says */
    const char *service_account; /* NULL when not given */
    const char *const *labels;   /* key, value, key, value... */
    size_t n_labels;             /* pairs */
} pt_workload_t;

/* Proxy spec.dns: the resolver of ServiceEntries with resolution DNS / DNS_ROUND_ROBIN. */
typedef struct pt_dns_settings {
    const char *servers;     /* "ip:port,[ip6]:port" (c-ares' form); NULL: /etc/resolv.conf */
    uint64_t min_refresh_ms; /* a TTL below it is raised to it: 5000 */
    uint64_t max_refresh_ms; /* a TTL above it is lowered to it: 300000 */
    uint64_t timeout_ms;     /* one query attempt: 5000 */
} pt_dns_settings_t;

/* Proxy spec.identity: the workload's certificate for mTLS inside the mesh, as files (PEM) that
 * an agent such as cert-manager or SPIRE keeps fresh; a change to them reloads the config. */
typedef struct pt_identity_settings {
    const char *certificate_chain; /* leaf first; NULL: no identity (no mesh mTLS) */
    const char *private_key;
    const char *root_certificates; /* trust anchors for peers in the mesh */
    const char *trust_domain;      /* of the SPIFFE IDs Petrel accepts: "cluster.local" */
} pt_identity_settings_t;
/* A trace collector (Proxy spec.tracing.otlp / .zipkin): an IP literal and port, resolved when
 * the config is loaded, and the path spans are POSTed to. */
typedef struct pt_trace_collector {
    const char *address; /* "127.0.0.1:4318" as written; NULL: not configured */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const char *path; /* "/v1/traces" (OTLP), "/api/v2/spans" (Zipkin) by default */
} pt_trace_collector_t;

/* Proxy spec.tracing. Absent: no trace headers are read or written, no span is made. */
typedef struct pt_tracing_settings {
    bool enabled;
    uint32_t sampling_ppm;       /* sampling (percent, Istio's default 1.0) in parts per million */
    const char *service_name;    /* resource service.name: serviceName, else workload name */
    pt_trace_collector_t otlp;   /* OTLP/HTTP JSON */
    pt_trace_collector_t zipkin; /* Zipkin v2 JSON */
    uint32_t max_queue;          /* spans waiting per worker: 512 */
    uint32_t batch_size;         /* spans per export request: 512 */
    uint64_t flush_interval_ms;  /* 1000 */
    uint64_t export_timeout_ms;  /* one export request, connect to response: 2000 */
} pt_tracing_settings_t;
/* Proxy spec.sidecar: the capture listeners. Absent: no sidecar listeners at all. */
typedef struct pt_sidecar_settings {
    bool enabled;
    uint16_t outbound_port;                 /* 15001, Istio's */
    uint16_t inbound_port;                  /* 15006, Istio's */
    uint64_t protocol_detection_timeout_ms; /* first bytes awaited this long: 100 */
    bool registry_only; /* outboundTrafficPolicy.mode REGISTRY_ONLY: unknown outbound refused */
} pt_sidecar_settings_t;

/* Proxy spec.http2: the HTTP/2 server's limits (the flood limits are fixed, in
 * proxy/http2_server.c). */
typedef struct pt_http2_settings {
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS: 100 */
} pt_http2_settings_t;

/* Proxy spec.chaosApi: the Toxiproxy-compatible API. Absent: off. */
typedef struct pt_chaos_api_settings {
    bool enabled;
    const char *address; /* 127.0.0.1 unless set: the API opens listeners */
    uint16_t port;       /* 8474, Toxiproxy's */
} pt_chaos_api_settings_t;

/* Proxy spec.upstreamHttp2Keepalive: a PING on each upstream HTTP/2 connection every interval;
 * the connection is closed when nothing arrives within timeout of one. Absent: off. */
typedef struct pt_h2_keepalive_settings {
    uint64_t interval_ms; /* 0: off */
    uint64_t timeout_ms;
} pt_h2_keepalive_settings_t;

/* The Petrel Proxy kind's spec, with defaults filled in. */
typedef struct pt_proxy_settings {
    const char *bind_address; /* "127.0.0.1" by default */
    /* The admin listener's own address: loopback by default, as Envoy's and Istio's admin,
     * since it can drain and stop the proxy; the Prometheus and health listeners, which
     * scrapers and the kubelet reach from outside, stay on bind_address. */
    const char *admin_address;
    uint16_t admin_port;      /* 15000; 0 turns the admin listener off */
    uint16_t prometheus_port; /* /stats/prometheus alone; 0: off; a sidecar's default is 15090 */
    uint16_t health_port;     /* /healthz/ready alone; 0: off; a sidecar's default is 15021 */
    pt_chaos_api_settings_t chaos_api;
    uint32_t concurrency;              /* workers; 2 by default */
    uint32_t max_connections;          /* per process, downstream; 10000 */
    uint32_t max_request_line_bytes;   /* 8192 */
    uint32_t max_header_bytes;         /* 61440 */
    uint32_t max_headers;              /* 100 */
    uint64_t header_timeout_ms;        /* whole request head must arrive within it: 10000 */
    uint64_t idle_timeout_ms;          /* downstream keep-alive / TCP idle: 300000 */
    uint64_t upstream_idle_timeout_ms; /* pooled upstream connection kept idle: 60000 */
    uint64_t connect_timeout_ms;       /* upstream connect: 10000 */
    uint64_t drain_timeout_ms;         /* SIGTERM: in-flight requests get this long: 5000;
                                          PT_DRAIN_DURATION_ENV overrides it */
    const char *access_log;            /* "/dev/stdout" by default; "" turns it off */
    bool access_log_json;              /* accessLogFormat: json (one object a line) or text */
    bool metrics;                      /* record Istio's standard metrics: true by default */
    uint32_t retry_body_limit;         /* request body bytes kept for retries: 65536 */
    bool fault_per_attempt;            /* faultPerAttempt: fault.abort decided per attempt */
    pt_workload_t workload;            /* namespace "default", no labels */
    const char *root_namespace;        /* mesh-wide policies live here: "istio-system" */
    pt_dns_settings_t dns;
    pt_identity_settings_t identity;
    const char *credentials_directory; /* credentialName X is <dir>/X/{tls.crt,tls.key,ca.crt} */
    pt_tracing_settings_t tracing;
    bool mirror_keep_host; /* mirrorKeepHost: no "-shadow" on mirrored Hosts */
    uint8_t h2_upgrade;    /* h2UpgradePolicy, PT_H2_UPGRADE_* (meshConfig's): DEFAULT
                              upgrades over mesh mTLS only (config/compile.c) */
    pt_http2_settings_t http2;
    pt_h2_keepalive_settings_t upstream_h2_keepalive;
    pt_sidecar_settings_t sidecar;
} pt_proxy_settings_t;

typedef struct pt_config {
    atomic_uint refs;
    pt_arena_t arena;           /* owns everything below */
    uint64_t generation;        /* 1, 2, ... in load order */
    double parse_ms;            /* what loading it took: YAML parsing (libyaml) ... */
    double compile_ms;          /* ... and checking, compiling, indexing, the JSON dump */
    const char *resources_json; /* every resource in force as JSON, for the admin's /config_dump */
    size_t resources_json_len;
    pt_proxy_settings_t proxy;
    pt_listener_config_t *listeners;
    size_t n_listeners;
    /* Sidecar routing (proxy.sidecar.enabled): the outbound route table of each service port,
     * chosen by a captured connection's original port; the table of every other port (all
     * passthrough); the inbound table (everything to the local app). */
    pt_listener_config_t *mesh_listeners; /* sorted by port */
    size_t n_mesh_listeners;
    pt_listener_config_t *mesh_passthrough;
    pt_listener_config_t *mesh_inbound;
    pt_mesh_tcp_service_t *mesh_tcp; /* captured non-HTTP traffic to a service address */
    size_t n_mesh_tcp;
    pt_cluster_t **clusters; /* every cluster, indexed by pt_cluster_t.index */
    size_t n_clusters;
    size_t n_endpoint_slots;        /* sum of the clusters' n_endpoints (see endpoint_base) */
    const char **dns_hosts;         /* names the clusters' endpoints were resolved from (DNS) */
    const char **dns_host_services; /* for each of dns_hosts, "ns/name" of the first
                                       ServiceEntry naming it (for log lines) */
    size_t n_dns_hosts;
    /* TLS contexts built from the files the config names (config/tls_contexts.c), freed with
     * the snapshot; a connection's SSL keeps its context alive past that. */
    struct ssl_ctx_st *mesh_server_tls; /* spec.identity: inbound mTLS; NULL without identity */
    pt_peer_auth_t peer_auth;           /* PeerAuthentication for this workload's inbound */
    struct ssl_ctx_st *mesh_client_tls; /* spec.identity: outbound mTLS (ISTIO_MUTUAL) */
    const char **tls_files;             /* every certificate and key file read: a change to
                                           one reloads the config */
    size_t n_tls_files;
    /* AuthorizationPolicies that apply to this workload (policy_types.h); NULL: none. */
    const struct pt_authz *authz;
    /* ChaosProxy resources (chaos.h), in load order; the chaos store creates them. */
    pt_chaos_decl_t *chaos_proxies;
    size_t n_chaos_proxies;
    /* The route tables of the HTTP ones (spec.protocol HTTP), in the same order: one "*" vhost
     * whose one route goes to the cluster "chaos|<name>". Workers never open them. */
    pt_listener_config_t *chaos_listeners;
    size_t n_chaos_listeners;
} pt_config_t;

/* Config errors are collected, never fatal halfway: each one is one line
 * "file:line:col: path.to.field: message". */
typedef struct pt_config_errors {
    char **lines; /* malloc'd strings */
    size_t n, cap;
    /* Warnings, in the same line form: Istio fields and kinds that Petrel parses and checks
     * but does not enforce yet. They never make a load fail. */
    char **warnings;
    size_t n_warnings, cap_warnings;
    /* The one mode switch of a load. false (`petrel run`, reloads, `petrel validate`): a
     * security policy Petrel cannot enforce yet (RequestAuthentication, an AuthorizationPolicy
     * with CUSTOM or JWT conditions), a certificate file that is not there and an access log
     * that cannot be written are errors, so a config that validates also starts. true
     * (`petrel validate --lenient`): they are warnings, for checking Istio configs away from
     * the files and policies they will run with. */
    bool is_lenient;
} pt_config_errors_t;

void pt_config_errors_add(pt_config_errors_t *e, const char *file, int line, int col,
                          const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Adds one warning line, in the same form. */
void pt_config_warnings_add(pt_config_errors_t *e, const char *file, int line, int col,
                            const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Frees errors and warnings (is_lenient is kept). */
void pt_config_errors_dispose(pt_config_errors_t *e);

/* One YAML buffer for pt_config_load_buffers(): file is the name used in errors. The caller
 * owns both; neither is referenced after the call returns. */
typedef struct pt_config_source {
    const char *file;
    const char *data;
    size_t len;
} pt_config_source_t;

/* Parses every document of the buffers, validates all of them and compiles a snapshot.
 * pod is the workload as the pod describes it (xds/pod_info.h), filling the Proxy's
 * spec.workload fields left unset; NULL when not known. The caller owns it; the snapshot
 * copies what it uses. Returns the snapshot with one ref held by the caller, or NULL with at
 * least one line in errors. Never partially succeeds. Files are read by xds/file_source.h
 * (pt_config_load); this is also the fuzzer's and the unit tests' entry point. */
pt_config_t *pt_config_load_buffers(const pt_config_source_t *sources, size_t n_sources,
                                    const pt_workload_t *pod, pt_config_errors_t *errors);

/* Where compile finds DNS answers: the last good addresses of name (ports 0), in answer order,
 * or 0 when there is none yet. Set once by `petrel run` (proxy/dns.c answers, on the main
 * thread, which is the only one that compiles); without it a DNS cluster has no endpoints. */
typedef size_t (*pt_config_dns_lookup_fn)(void *arg, const char *name,
                                          const struct sockaddr_storage **addrs);
void pt_config_set_dns_lookup(pt_config_dns_lookup_fn fn, void *arg);

void pt_config_ref(pt_config_t *c);
void pt_config_unref(pt_config_t *c);

/* Routing helpers used on the request path. Host matching is case-insensitive and ignores a
 * ":port" suffix; an exact host beats a wildcard, a longer wildcard beats a shorter one. */
const pt_vhost_t *pt_config_find_vhost(const pt_listener_config_t *l, const char *host, size_t len);
/* The route table of the HTTP ChaosProxy named name in c, or NULL when c declares none. */
const pt_listener_config_t *pt_config_chaos_listener(const pt_config_t *c, const char *name);

#endif
