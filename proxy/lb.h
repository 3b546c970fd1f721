/* proxy/lb.h
 * Load balancers: which endpoint of a cluster a request goes to. Istio's DestinationRule
 * loadBalancer policies: ROUND_ROBIN (weighted), LEAST_REQUEST (power of two choices over the
 * active requests this worker has on each endpoint), RANDOM (weighted), and consistent hashing
 * with a ring (ringHash) or a Maglev table.
 *
 * Two halves. pt_lb_build() (config/lb_build.c) runs at config compile time and builds every
 * table a cluster's policy needs (cumulative weights, the hash ring, the Maglev table) into the
 * snapshot arena, once. The pick functions run on the request path: pure functions of the
 * cluster (immutable, in the snapshot) and a small per-worker state the caller owns (a
 * round-robin position, active-request counts, a random state). They never allocate. */
#ifndef PT_LB_H
#define PT_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"
#include "../config/policy.h"
#include "http_msg.h"
#include "outlier.h"

/* Per-worker state of one cluster for one pick; the caller (the worker) owns every pointer. */
typedef struct pt_lb_state {
    uint32_t *rr_position;  /* the cluster's round-robin position; NULL: picks at random */
    const uint32_t *active; /* the cluster's active requests per endpoint (n_endpoints); NULL:
                               least request degrades to a weighted random pick */
    uint64_t *rng;          /* xorshift64 state, never 0 */
    pt_stats_t *stats;      /* the worker's counters, for outlier un-ejections; may be NULL */
} pt_lb_state_t;

/* pt_lb_pick's answer when outlier detection has ejected every endpoint and minHealthPercent
 * does not call for panic: no healthy upstream (503 UH). */
#define PT_LB_NONE SIZE_MAX

/* The endpoint index (< cl->n_endpoints, which must be > 0) for one request, skipping
 * endpoints outlier detection has ejected (or PT_LB_NONE, see above). hash is the
 * request's hash key (pt_lb_request_hash) or NULL when it has none; a hash policy without a
 * key picks a random endpoint, as Envoy does. Does not count the request as active: a caller
 * that tracks least-request counts increments the chosen endpoint's count itself. */
size_t pt_lb_pick(const pt_cluster_t *cl, pt_lb_state_t *s, const uint64_t *hash);

/* The hash key of a request for a consistent-hash policy: the named header's value (the first
 * one), the named cookie's value (from any Cookie header), the named query parameter's value
 * (as written, not decoded), or the client address source_ip. Returns false when the policy is
 * not a hash policy or the request lacks the key. req may be NULL (TCP: only useSourceIp). */
bool pt_lb_request_hash(const pt_lb_config_t *lb, const pt_http_msg_t *req, const char *source_ip,
                        uint64_t *hash);

/* A uniformly distributed 32-bit number from a xorshift64 state (never 0). */
static inline uint32_t pt_lb_random(uint64_t *rng)
{
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return (uint32_t)(x >> 32);
}

#endif
