/* proxy/breaker.h
 * Per-cluster runtime state shared by every worker: the circuit-breaker counts of a
 * DestinationRule connectionPool (connections, pending requests, active requests, active
 * retries) and the cluster's retry budget.
 *
 * This state outlives config snapshots (DESIGN.md §3): compile looks it up by a key made of
 * the cluster name and the limits that govern it, so a reload that does not change a cluster
 * hands the new snapshot the same counters, and a request of the old snapshot still in flight
 * decrements the counter it incremented. Entries live in one process-wide registry and are
 * never freed (a few hundred bytes per cluster identity ever loaded). Counts are atomics;
 * the registry's lock is taken at compile time only, never on the request path. */
#ifndef PT_BREAKER_H
#define PT_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "retry.h"

#define PT_BREAKER_UNLIMITED UINT32_MAX /* Istio's default for every limit: 2^32 - 1 */

/* DestinationRule trafficPolicy.connectionPool (+ retryBudget), resolved for one cluster. */
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
    bool has_retry_budget;                /* trafficPolicy.retryBudget given */
    double budget_percent;                /* retryBudget.percent: 20 by default */
    uint32_t budget_min_concurrency;      /* retryBudget.minRetryConcurrency: 3 by default */
} pt_conn_pool_settings_t;

void pt_conn_pool_settings_default(pt_conn_pool_settings_t *s);

typedef struct pt_cluster_state {
    struct pt_cluster_state *next; /* registry chain */
    char *key;
    _Atomic uint32_t connections; /* upstream connections open (connecting included) */
    _Atomic uint32_t pending;     /* requests waiting for a connection */
    _Atomic uint32_t requests;    /* requests in flight (an attempt holds one) */
    _Atomic uint32_t retries;     /* retries in flight (from the decision to the end) */
    pt_retry_budget_t budget;     /* Linkerd-style default budget */
} pt_cluster_state_t;

/* The state for cluster name under settings s: the same object for the same name and limits
 * across snapshots. Thread-safe; called at compile time. Never NULL. */
pt_cluster_state_t *pt_cluster_state_get(const char *name, const pt_conn_pool_settings_t *s);

/* Takes one unit of counter if it stays within limit; false (nothing taken) otherwise. */
bool pt_breaker_try_acquire(_Atomic uint32_t *counter, uint32_t limit);
void pt_breaker_release(_Atomic uint32_t *counter);

#endif
