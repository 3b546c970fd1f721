/* config/policy_types.h
 * The compiled policy types that config/ fills and the request path in proxy/ reads: a route's
 * retry policy, a cluster's connection-pool limits and its shared breaker state, and the
 * AuthorizationPolicy tables. Types and constants only: config/policy.h builds them at load
 * time; proxy/retry.c, proxy/breaker.c and proxy/authz.c act on them per request. */
#ifndef PT_POLICY_TYPES_H
#define PT_POLICY_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "regex.h"

/* ---- retries (VirtualService http[].retries) ---- */

/* retryOn conditions (bits). */
#define PT_RETRY_ON_5XX (1u << 0)
#define PT_RETRY_ON_GATEWAY_ERROR (1u << 1)
#define PT_RETRY_ON_RESET (1u << 2)
#define PT_RETRY_ON_CONNECT_FAILURE (1u << 3)
#define PT_RETRY_ON_RETRIABLE_4XX (1u << 4)
#define PT_RETRY_ON_REFUSED_STREAM (1u << 5)
#define PT_RETRY_ON_STATUS_CODES (1u << 6) /* retriable-status-codes */
#define PT_RETRY_ON_RETRIABLE_HEADERS (1u << 7)
#define PT_RETRY_ON_RESET_BEFORE_REQUEST (1u << 8)
#define PT_RETRY_ON_ENVOY_RATELIMITED (1u << 9)
#define PT_RETRY_ON_GRPC_CANCELLED (1u << 10)
#define PT_RETRY_ON_GRPC_DEADLINE_EXCEEDED (1u << 11)
#define PT_RETRY_ON_GRPC_INTERNAL (1u << 12)
#define PT_RETRY_ON_GRPC_RESOURCE_EXHAUSTED (1u << 13)
#define PT_RETRY_ON_GRPC_UNAVAILABLE (1u << 14)

#define PT_RETRY_MAX_CODES 16

typedef struct pt_retry_policy {
    uint32_t attempts;                  /* retries after the first try (Istio's attempts) */
    uint64_t per_try_timeout_ms;        /* 0: each try is bounded by the route timeout only */
    uint32_t on;                        /* PT_RETRY_ON_* */
    uint16_t codes[PT_RETRY_MAX_CODES]; /* retriable-status-codes / plain codes */
    uint8_t n_codes;
    uint64_t backoff_base_ms;   /* 25 (Envoy's default) or retries.backoff */
    uint64_t backoff_max_ms;    /* 10 x base: 250 */
    bool ignore_previous_hosts; /* retryIgnorePreviousHosts, true by default (Istio) */
    bool is_explicit;           /* written in the route: honoured for every method */
} pt_retry_policy_t;

/* Linkerd's budget: every request deposits ratio of a retry, and min_per_s retries per second
 * are granted whatever the traffic; a retry withdraws one. Deposits older than the TTL expire,
 * which a cap of (ratio x requests + min_per_s) x ttl approximates: the bucket never holds
 * more than ttl seconds of what it would earn at min_per_s plus the cap on deposits. Shared by
 * every worker: the fields are atomics, updated with compare-and-swap loops. */
#define PT_RETRY_BUDGET_RATIO_MILLI 200u /* 20 % */
#define PT_RETRY_BUDGET_MIN_PER_S 10u
#define PT_RETRY_BUDGET_TTL_S 10u
#define PT_RETRY_TOKEN 1000 /* one retry, in milli-tokens */

typedef struct pt_retry_budget {
    _Atomic int64_t tokens;     /* milli-retries available */
    _Atomic uint64_t refill_ms; /* when the per-second floor was last added */
} pt_retry_budget_t;

/* ---- circuit breakers (DestinationRule connectionPool) ---- */

#define PT_BREAKER_UNLIMITED UINT32_MAX /* Istio's default for every limit: 2^32 - 1 */

/* DestinationRule trafficPolicy.connectionPool (+ retryBudget), resolved for one cluster. */
/* DestinationRule connectionPool.http.h2UpgradePolicy (and the Proxy's mesh-wide default). */
enum {
    PT_H2_UPGRADE_DEFAULT = 0, /* the Proxy's h2UpgradePolicy decides */
    PT_H2_DO_NOT_UPGRADE,
    PT_H2_UPGRADE,
};
#define PT_H2_UPGRADE_NAMES                                                                        \
    {                                                                                              \
        "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"                                                     \
    }

typedef struct pt_conn_pool_settings {
    uint32_t max_connections;            /* tcp.maxConnections */
    uint64_t connect_timeout_ms;         /* tcp.connectTimeout; 0: the Proxy's connectTimeout */
    uint64_t max_connection_duration_ms; /* tcp.maxConnectionDuration; 0: none */
    bool has_keepalive;                  /* tcp.tcpKeepalive given */
    uint32_t keepalive_probes;           /* 0: the system's */
    uint32_t keepalive_time_s;           /* 0: the system's */
    uint32_t keepalive_interval_s;       /* 0: the system's */
    uint32_t max_pending;                /* http.http1MaxPendingRequests */
    uint32_t max_requests;               /* http.http2MaxRequests: active requests of the cluster */
    uint32_t max_requests_per_connection; /* 0: unlimited */
    uint32_t max_retries;                 /* http.maxRetries: retries in flight */
    uint64_t idle_timeout_ms;             /* http.idleTimeout; 0: the Proxy's upstreamIdleTimeout */
    uint8_t h2_upgrade;                   /* http.h2UpgradePolicy: PT_H2_UPGRADE_* */
    bool use_client_protocol;             /* http.useClientProtocol */
    bool has_retry_budget;                /* trafficPolicy.retryBudget given */
    double budget_percent;                /* retryBudget.percent: 20 by default */
    uint32_t budget_min_concurrency;      /* retryBudget.minRetryConcurrency: 3 by default */
} pt_conn_pool_settings_t;

typedef struct pt_cluster_state {
    struct pt_cluster_state *next; /* registry chain */
    char *key;
    _Atomic uint32_t connections; /* upstream connections open (connecting included) */
    _Atomic uint32_t pending;     /* requests waiting for a connection */
    _Atomic uint32_t requests;    /* requests in flight (an attempt holds one) */
    _Atomic uint32_t retries;     /* retries in flight (from the decision to the end) */
    pt_retry_budget_t budget;     /* Linkerd-style default budget */
} pt_cluster_state_t;

/* ---- AuthorizationPolicy ---- */

/* What a condition looks at. Those from PT_AUTHZ_HOST on exist only in HTTP requests. */
typedef enum pt_authz_attr {
    PT_AUTHZ_PRINCIPAL, /* principals, source.principal: the verified peer certificate */
    PT_AUTHZ_NAMESPACE, /* namespaces, source.namespace: the principal's "/ns/<ns>/" part */
    PT_AUTHZ_SOURCE_IP, /* ipBlocks, source.ip: the connection's peer */
    PT_AUTHZ_REMOTE_IP, /* remoteIpBlocks, remote.ip: the peer too (no trusted proxy hops) */
    PT_AUTHZ_DEST_IP,   /* destination.ip: the address the connection came in on */
    PT_AUTHZ_DEST_PORT, /* ports, destination.port: the listener's port */
    PT_AUTHZ_SNI,       /* connection.sni: the TLS ClientHello's server name */
    PT_AUTHZ_HOST,      /* hosts: the request's authority, case-insensitive */
    PT_AUTHZ_METHOD,
    PT_AUTHZ_PATH,   /* paths: without the query, dot segments removed (Envoy's BASE) */
    PT_AUTHZ_HEADER, /* request.headers[name] */
} pt_authz_attr_t;

typedef enum pt_authz_value_kind {
    PT_AUTHZ_EXACT = 1,
    PT_AUTHZ_PREFIX,  /* "abc*" */
    PT_AUTHZ_SUFFIX,  /* "*abc" */
    PT_AUTHZ_PRESENT, /* "*": any non-empty value */
    PT_AUTHZ_REGEX,   /* path templates {*} / {**}, serviceAccounts: full match */
    PT_AUTHZ_CIDR,
    PT_AUTHZ_PORT,
} pt_authz_value_kind_t;

typedef struct pt_authz_value {
    pt_authz_value_kind_t kind;
    const char *s; /* EXACT / PREFIX / SUFFIX: the text without the '*' */
    size_t len;
    const pt_regex_t *re;
    uint8_t addr[16]; /* CIDR: network address, IPv4 in the first 4 bytes */
    uint8_t prefix_len;
    bool is_ipv6;
    uint16_t port;
} pt_authz_value_t;

/* One field of a source or operation, or one half of a when condition: true when any value
 * matches, or, negated (notPrincipals, notValues...), when none does. */
typedef struct pt_authz_cond {
    pt_authz_attr_t attr;
    bool negate;
    const char *header; /* PT_AUTHZ_HEADER: lower-case name */
    size_t header_len;
    const pt_authz_value_t *values;
    size_t n_values;
} pt_authz_cond_t;

/* Conditions that must all hold: one source, one operation, one when entry. */
typedef struct pt_authz_clause {
    const pt_authz_cond_t *conds;
    size_t n_conds;
} pt_authz_clause_t;

/* Clauses of which one must hold: a rule's from[] or to[]; a when entry is a group of one. */
typedef struct pt_authz_group {
    const pt_authz_clause_t *clauses;
    size_t n_clauses;
} pt_authz_group_t;

typedef struct pt_authz_rule {
    const char *name;               /* Envoy's policy name: "ns[foo]-policy[deny-get]-rule[0]" */
    const pt_authz_group_t *groups; /* all must hold; none: the rule matches everything */
    size_t n_groups;
} pt_authz_rule_t;

typedef enum pt_authz_action {
    PT_AUTHZ_ALLOW = 0,
    PT_AUTHZ_DENY,
    PT_AUTHZ_AUDIT,
} pt_authz_action_t;

typedef struct pt_authz_policy {
    const char *name; /* "<namespace>/<name>" */
    pt_authz_action_t action;
    bool dry_run;                 /* istio.io/dry-run: evaluated and counted, never enforced */
    const pt_authz_rule_t *rules; /* none: the policy matches nothing */
    size_t n_rules;
} pt_authz_policy_t;

/* The policies that apply to this proxy, in load order within each action. */
typedef struct pt_authz {
    const pt_authz_policy_t *deny, *allow, *audit;
    size_t n_deny, n_allow, n_audit;
    bool has_enforced_allow; /* an ALLOW policy that is not dry-run: requests must match one */
    bool has_shadow_deny, has_shadow_allow; /* dry-run DENY / ALLOW policies */
} pt_authz_t;

#endif
