/* proxy/outlier.h
 * Outlier detection (Istio DestinationRule trafficPolicy.outlierDetection, with Envoy's
 * semantics): endpoints that keep failing are ejected from their cluster's load balancing for
 * a time that grows with each ejection and decays while they stay healthy.
 *
 * State is per endpoint and shared by every worker: consecutive-error counts, the time an
 * ejection ends and the ejection multiplier are atomics, so a failure seen by any worker counts
 * and an ejection applies to all at once. It lives in a process-wide registry keyed by cluster
 * name ("outbound|port|subset|host") and endpoint address, not in a snapshot: a reload keeps
 * every count and ejection of the endpoints that stay. A snapshot binds its clusters to the
 * registry when it is built (pt_outlier_bind, main thread, under the registry's lock) and lets
 * go when freed; the request path takes no lock.
 *
 * Consecutive-error ejections happen at once, on the worker that saw the failure that reached
 * the threshold (as in Envoy, where they run inline). An ejection ends exactly at its time:
 * the next pick on the cluster after that moment returns the endpoint (Envoy waits for its
 * next interval sweep); `interval` paces the decay of the multiplier. */
#ifndef PT_OUTLIER_H
#define PT_OUTLIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"
#include "stats.h"

/* Envoy's max_ejection_time default, which Istio leaves as is. */
#define PT_OUTLIER_MAX_EJECTION_MS 300000u

typedef struct pt_outlier_host pt_outlier_host_t;

/* One endpoint's shared state. */
struct pt_outlier_host {
    pt_outlier_host_t *next; /* in its cluster's list; set before the host is published */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char name[64]; /* "address:port", for logs */
    _Atomic uint32_t consecutive_5xx;
    _Atomic uint32_t consecutive_gateway;
    _Atomic uint32_t consecutive_local;
    _Atomic uint64_t ejected_until_ms; /* 0: not ejected */
    _Atomic uint64_t unejected_at_ms;  /* 0: never ejected */
    _Atomic uint32_t multiplier;       /* Envoy's ejection time backoff */
    _Atomic uint64_t n_ejections;
};

/* One cluster's shared state. */
struct pt_outlier_cluster {
    struct pt_outlier_cluster *next; /* in the registry */
    char *name;
    unsigned refs;                      /* snapshots bound to it; under the registry's lock */
    _Atomic(pt_outlier_host_t *) hosts; /* every endpoint ever bound, newest first */
    _Atomic uint32_t n_ejected;         /* hosts with ejected_until_ms != 0 */
    _Atomic uint64_t next_uneject_ms;   /* earliest end of an ejection; UINT64_MAX: none */
};

static inline uint32_t pt_outlier_n_ejected(const struct pt_outlier_cluster *oc)
{
    return atomic_load_explicit(&oc->n_ejected, memory_order_relaxed);
}

/* What one upstream attempt came to, as outlier detection counts it. */
typedef enum pt_outlier_result {
    PT_OUTLIER_RESPONSE,       /* a response head with a status */
    PT_OUTLIER_CONNECT_FAILED, /* connect failure or timeout, reset, invalid response */
    PT_OUTLIER_TIMEOUT,        /* no response head within the route timeout */
} pt_outlier_result_t;

/* Binds every cluster of c that has outlier detection to its shared state (creating it on
 * first use); the snapshot lets go of it when its arena is disposed. Called by proxy/main.c on
 * each snapshot it compiles, before any worker sees it. Main thread; idempotent per snapshot. */
void pt_outlier_bind(pt_config_t *c);

/* Records one attempt's outcome on endpoint i of cl, and ejects the endpoint when it reaches a
 * threshold. No-op for a cluster without outlier detection. Any worker; stats: its own. */
void pt_outlier_report(const pt_cluster_t *cl, size_t i, pt_outlier_result_t r, int status,
                       pt_stats_t *stats);

/* True when some endpoint of cl may be ejected: only then does the balancer look further. */
static inline bool pt_outlier_may_skip(const pt_cluster_t *cl)
{
    return cl->outlier_state != NULL && pt_outlier_n_ejected(cl->outlier_state) > 0;
}

/* Whether endpoint i of cl is ejected now; un-ejects it when its time is over. */
bool pt_outlier_is_ejected(const pt_cluster_t *cl, size_t i, uint64_t now_ms, pt_stats_t *stats);

/* Whether cl is in panic (healthy share below minHealthPercent: use every endpoint). Also
 * un-ejects every endpoint whose time is over, at most once per due time. */
bool pt_outlier_begin_pick(const pt_cluster_t *cl, uint64_t now_ms, pt_stats_t *stats);

/* Milliseconds of a monotonic clock shared by all threads. */
uint64_t pt_outlier_now_ms(void);

/* For /clusters: whether endpoint i is ejected, and how many times it has been. */
void pt_outlier_endpoint_info(const pt_cluster_t *cl, size_t i, bool *ejected,
                              uint64_t *n_ejections);

/* ---- the arithmetic, pure (unit-tested) ---- */

/* The ejection multiplier after `healthy_ms` of health since the last un-ejection: Envoy takes
 * one off at each interval sweep that finds the endpoint healthy for at least base_ms. */
uint32_t pt_outlier_decay(uint32_t multiplier, uint64_t healthy_ms, uint64_t base_ms,
                          uint64_t interval_ms);
/* The multiplier for a new ejection (Envoy: +1 while base × multiplier is below max + base). */
uint32_t pt_outlier_next_multiplier(uint32_t multiplier, uint64_t base_ms, uint64_t max_ms);
/* How long an ejection lasts: base × multiplier, at most max (and at least base). */
uint64_t pt_outlier_ejection_ms(uint32_t multiplier, uint64_t base_ms, uint64_t max_ms);
/* Whether one more ejection is allowed with `ejected` of `total` already out (Envoy: the share
 * after ejecting, (ejected + 1) / total, may not pass max_percent). */
bool pt_outlier_may_eject(size_t ejected, size_t total, uint32_t max_percent);
/* Whether `ejected` of `total` leaves the healthy share below min_percent (panic). */
bool pt_outlier_is_panic(size_t ejected, size_t total, uint32_t min_percent);

#endif
