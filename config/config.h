/* config/config.h
 * The compiled, immutable configuration snapshot that workers route with, and the entry points
 * that build one from YAML files. Pipeline: xds/ reads files -> config/ parses (libyaml, keeps
 * line:col), checks every field against the Istio / Petrel schema, then compiles listeners,
 * route tables and clusters into one pt_config_t living in one arena.
 *
 * A snapshot is refcounted: the main thread holds one ref while it is current, each worker one
 * while it serves with it, each stream one for its lifetime. Nothing in it changes after
 * pt_config_load() returns it. */
#ifndef PT_CONFIG_H
#define PT_CONFIG_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../proxy/arena.h"

typedef struct pt_endpoint {
    const char *address; /* as written, e.g. "127.0.0.1" */
    uint16_t port;
    uint32_t weight;              /* 1 when not given */
    struct sockaddr_storage addr; /* resolved at compile time (STATIC) */
    socklen_t addr_len;
} pt_endpoint_t;

/* One upstream service port: Istio's "outbound|<port>||<host>" cluster. */
typedef struct pt_cluster {
    const char *name; /* "outbound|8080||reviews.default.svc.cluster.local" */
    const char *host; /* the ServiceEntry host */
    uint16_t port;    /* the service port */
    pt_endpoint_t *endpoints;
    size_t n_endpoints; /* 0: every request gets 503 UH */
    uint32_t index;     /* position in pt_config_t.clusters, for per-worker state */
} pt_cluster_t;

typedef struct pt_weighted_cluster {
    pt_cluster_t *cluster;
    uint32_t cumulative_weight; /* running sum; a route picks r in [0, total) */
} pt_weighted_cluster_t;

typedef enum pt_string_match_kind {
    PT_MATCH_EXACT = 1,
    PT_MATCH_PREFIX,
} pt_string_match_kind_t;

typedef struct pt_string_match {
    pt_string_match_kind_t kind;
    const char *value;
    size_t len;
} pt_string_match_t;

typedef struct pt_header_match {
    const char *name; /* lower-case */
    pt_string_match_t match;
} pt_header_match_t;

/* One entry of an HTTPRoute's match[] (all set conditions must hold). */
typedef struct pt_http_match {
    bool has_uri;
    pt_string_match_t uri; /* against the path without the query */
    const char *method;    /* NULL: any; exact, as Istio's method.exact */
    pt_header_match_t *headers;
    size_t n_headers;
} pt_http_match_t;

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
} pt_listener_protocol_t;

typedef struct pt_listener_config {
    const char *name; /* "<gateway-ns>/<gateway-name>/<port>" */
    uint16_t port;
    pt_listener_protocol_t protocol;
    pt_vhost_t *vhosts; /* HTTP: in VirtualService order; exact hosts before wildcards */
    size_t n_vhosts;
    pt_cluster_t *tcp_cluster; /* TCP: where connections go; NULL: refused */
    struct pt_vhost_index *vhost_index; /* built by config.c: exact hosts hashed */
} pt_listener_config_t;

/* The Petrel Proxy kind's spec, with defaults filled in. */
typedef struct pt_proxy_settings {
    const char *bind_address;          /* "127.0.0.1" by default */
    uint16_t admin_port;               /* 15000; 0 turns the admin listener off */
    uint32_t concurrency;              /* workers; 2 by default */
    uint32_t max_connections;          /* per process, downstream; 10000 */
    uint32_t max_request_line_bytes;   /* 8192 */
    uint32_t max_header_bytes;         /* 61440 */
    uint32_t max_headers;              /* 100 */
    uint64_t header_timeout_ms;        /* whole request head must arrive within it: 10000 */
    uint64_t idle_timeout_ms;          /* downstream keep-alive / TCP idle: 300000 */
    uint64_t upstream_idle_timeout_ms; /* pooled upstream connection kept idle: 60000 */
    uint64_t connect_timeout_ms;       /* upstream connect: 10000 */
    uint64_t drain_timeout_ms;         /* SIGTERM: in-flight requests get this long: 5000 */
    const char *access_log;            /* "/dev/stdout" by default; "" turns it off */
} pt_proxy_settings_t;

typedef struct pt_config {
    atomic_uint refs;
    pt_arena_t arena;           /* owns everything below */
    uint64_t generation;        /* 1, 2, ... in load order */
    const char *resources_json; /* every resource in force as JSON, for the admin's /config_dump */
    size_t resources_json_len;
    pt_proxy_settings_t proxy;
    pt_listener_config_t *listeners;
    size_t n_listeners;
    pt_cluster_t **clusters; /* every cluster, indexed by pt_cluster_t.index */
    size_t n_clusters;
} pt_config_t;

/* Config errors are collected, never fatal halfway: each one is one line
 * "file:line:col: path.to.field: message". */
typedef struct pt_config_errors {
    char **lines; /* malloc'd strings */
    size_t n, cap;
} pt_config_errors_t;

void pt_config_errors_add(pt_config_errors_t *e, const char *file, int line, int col,
                          const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void pt_config_errors_dispose(pt_config_errors_t *e);

/* Reads every path (a YAML file, or a directory whose *.yaml / *.yml files are read in name
 * order, not recursively), parses every document, validates all of them and compiles a
 * snapshot. Returns it with one ref held by the caller, or NULL with at least one line in
 * errors. Never partially succeeds. */
pt_config_t *pt_config_load(const char *const *paths, size_t n_paths, pt_config_errors_t *errors);

/* One YAML buffer for pt_config_load_buffers(): file is the name used in errors. The caller
 * owns both; neither is referenced after the call returns. */
typedef struct pt_config_source {
    const char *file;
    const char *data;
    size_t len;
} pt_config_source_t;

/* As pt_config_load(), from YAML already in memory (what pt_config_load does after reading
 * the files; also the fuzzer's and the unit tests' entry point). */
pt_config_t *pt_config_load_buffers(const pt_config_source_t *sources, size_t n_sources,
                                    pt_config_errors_t *errors);

void pt_config_ref(pt_config_t *c);
void pt_config_unref(pt_config_t *c);

/* Routing helpers used on the request path. Host matching is case-insensitive and ignores a
 * ":port" suffix; an exact host beats a wildcard, a longer wildcard beats a shorter one. */
const pt_vhost_t *pt_config_find_vhost(const pt_listener_config_t *l, const char *host, size_t len);

#endif
