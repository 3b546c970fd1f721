/* config/policy.h
 * What compile does to the policy types of policy_types.h at load time: Petrel's and Istio's
 * defaults, the retryOn grammar, a cluster's load-balancer tables and the lookup of its shared
 * breaker state. The request path in proxy/ (retry.c, breaker.c, lb.c) then only reads what
 * these built. */
#ifndef PT_POLICY_H
#define PT_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "policy_types.h"

/* ---- retries ---- */

/* Petrel's defaults for a route without retries (see docs/config.md): Istio's default policy
 * for idempotent methods; for the others, only what never reached the upstream. */
extern const pt_retry_policy_t pt_retry_default_idempotent;
extern const pt_retry_policy_t pt_retry_default_unsafe;

/* Istio's default policy when a route has none: 2 retries on connect-failure, refused-stream,
 * unavailable, cancelled and retriable-status-codes 503. */
void pt_retry_policy_default(pt_retry_policy_t *p);

/* Parses a retryOn string: comma-separated Envoy conditions and plain HTTP status codes
 * (Istio turns "503" into retriable-status-codes with 503). Blanks around items are allowed.
 * Returns 0, or -1 with *bad pointing at the offending item in s and *bad_len its length. */
int pt_retry_on_parse(const char *s, pt_retry_policy_t *p, const char **bad, size_t *bad_len);

/* A full budget (the per-second floor) as of now_ms. */
void pt_retry_budget_init(pt_retry_budget_t *b, uint64_t now_ms);

/* ---- connection pool and breaker state ---- */

void pt_conn_pool_settings_default(pt_conn_pool_settings_t *s);

/* The state for cluster name under settings s: the same object for the same name and limits
 * across snapshots. Thread-safe; called at compile time. Never NULL. */
pt_cluster_state_t *pt_cluster_state_get(const char *name, const pt_conn_pool_settings_t *s);

/* ---- load balancing (config/lb_build.c) ---- */

/* Builds cl->lb's tables from cl->endpoints (address, port, weight) and the policy fields
 * already set in cl->lb (policy, min_ring_size, maglev_table_size). Everything goes into a
 * (the snapshot arena); scratch memory is freed before it returns. A zero min_ring_size or
 * maglev_table_size takes Istio's default (1024, 65537). Safe with 0 endpoints. */
void pt_lb_build(pt_arena_t *a, pt_cluster_t *cl);

/* The 64-bit hash used for keys and ring points (FNV-1a with a final avalanche mix). */
uint64_t pt_lb_hash(const void *data, size_t len);

#endif
