/* proxy/outlier.c
 * Outlier detection (see outlier.h): the registry of shared per-endpoint state, the counting
 * of consecutive errors, ejection and un-ejection, and the arithmetic of ejection times.
 *
 * Counting follows Envoy's HTTP router. A response with a 5xx status adds to the consecutive
 * 5xx count, and a 502, 503 or 504 also to the gateway count; any other status resets both.
 * Local-origin failures (connect failure, reset, timeout) count as a 503 (a timeout as a 504)
 * unless splitExternalLocalOriginErrors is set; then they have their own count, which a
 * response resets, and they do not touch the 5xx and gateway counts. Reaching a threshold
 * ejects the endpoint (if it is not already out and maxEjectionPercent allows) and resets
 * that count. */
#include "outlier.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../config/policy.h"
#include "log.h"

/* Chains by cluster-name hash: binding and unbinding a config with tens of thousands of
 * clusters under outlier detection stays linear. */
#define REGISTRY_BUCKETS 1024
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pt_outlier_cluster *registry[REGISTRY_BUCKETS];

static struct pt_outlier_cluster **bucket_of(const char *name)
{
    return &registry[pt_lb_hash(name, strlen(name)) % REGISTRY_BUCKETS];
}

/* Counters go to the calling worker's set; a caller without one (a unit test) passes NULL. */
static void stat_add(pt_stats_t *stats, pt_stat_t k, int d)
{
    if (stats != NULL)
        pt_stats_add(stats, k, d);
}

uint64_t pt_outlier_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- arithmetic ---------------------------------------------------------------------- */

uint32_t pt_outlier_decay(uint32_t multiplier, uint64_t healthy_ms, uint64_t base_ms,
                          uint64_t interval_ms)
{
    if (multiplier == 0 || healthy_ms < base_ms || interval_ms == 0)
        return multiplier;
    /* Sweeps come every interval; each one from base_ms of health on takes one off. */
    uint64_t sweeps = (healthy_ms - base_ms) / interval_ms + 1;
    return sweeps >= multiplier ? 0 : multiplier - (uint32_t)sweeps;
}

uint32_t pt_outlier_next_multiplier(uint32_t multiplier, uint64_t base_ms, uint64_t max_ms)
{
    if ((uint64_t)multiplier * base_ms < max_ms + base_ms)
        return multiplier + 1;
    return multiplier;
}

uint64_t pt_outlier_ejection_ms(uint32_t multiplier, uint64_t base_ms, uint64_t max_ms)
{
    uint64_t ms = (uint64_t)(multiplier ? multiplier : 1) * base_ms;
    if (max_ms < base_ms)
        max_ms = base_ms; /* Envoy: max_ejection_time below base is raised to base */
    return ms < max_ms ? ms : max_ms;
}

bool pt_outlier_may_eject(size_t ejected, size_t total, uint32_t max_percent)
{
    if (total == 0)
        return false;
    return (uint64_t)(ejected + 1) * 100u <= (uint64_t)max_percent * total;
}

bool pt_outlier_is_panic(size_t ejected, size_t total, uint32_t min_percent)
{
    if (total == 0 || min_percent == 0)
        return false;
    size_t healthy = ejected >= total ? 0 : total - ejected;
    return (uint64_t)healthy * 100u < (uint64_t)min_percent * total;
}

/* ---- the registry (main thread, under registry_lock) --------------------------------- */

static struct pt_outlier_cluster *get_cluster(const char *name)
{
    struct pt_outlier_cluster **bucket = bucket_of(name);
    for (struct pt_outlier_cluster *oc = *bucket; oc != NULL; oc = oc->next)
        if (strcmp(oc->name, name) == 0)
            return oc;
    struct pt_outlier_cluster *oc = calloc(1, sizeof(*oc));
    if (oc == NULL || (oc->name = strdup(name)) == NULL)
        abort();
    atomic_init(&oc->hosts, NULL);
    atomic_init(&oc->n_ejected, 0);
    atomic_init(&oc->next_uneject_ms, UINT64_MAX);
    oc->next = *bucket;
    *bucket = oc;
    return oc;
}

static pt_outlier_host_t *get_host(struct pt_outlier_cluster *oc, const pt_endpoint_t *ep)
{
    pt_outlier_host_t *head = atomic_load_explicit(&oc->hosts, memory_order_acquire);
    for (pt_outlier_host_t *h = head; h != NULL; h = h->next)
        if (h->addr_len == ep->addr_len && memcmp(&h->addr, &ep->addr, ep->addr_len) == 0)
            return h;
    pt_outlier_host_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        abort();
    memcpy(&h->addr, &ep->addr, ep->addr_len);
    h->addr_len = ep->addr_len;
    snprintf(h->name, sizeof(h->name), "%s:%u", ep->address ? ep->address : "", (unsigned)ep->port);
    h->next = head;
    /* Workers walk the list without the lock: publish the host whole. */
    atomic_store_explicit(&oc->hosts, h, memory_order_release);
    return h;
}

/* Run when the snapshot's arena is disposed: a short lock, taken only by snapshots coming and
 * going. */
static void unbind(void *arg)
{
    pt_config_t *c = arg;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < c->n_clusters; i++) {
        struct pt_outlier_cluster *oc = c->clusters[i]->outlier_state;
        if (oc == NULL)
            continue;
        c->clusters[i]->outlier_state = NULL;
        if (--oc->refs > 0)
            continue;
        /* No snapshot, so no worker, can reach it any more. */
        for (struct pt_outlier_cluster **p = bucket_of(oc->name); *p != NULL; p = &(*p)->next)
            if (*p == oc) {
                *p = oc->next;
                break;
            }
        pt_outlier_host_t *h = atomic_load_explicit(&oc->hosts, memory_order_relaxed);
        while (h != NULL) {
            pt_outlier_host_t *next = h->next;
            free(h);
            h = next;
        }
        free(oc->name);
        free(oc);
    }
    pthread_mutex_unlock(&registry_lock);
}

void pt_outlier_bind(pt_config_t *c)
{
    bool bound = false;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < c->n_clusters; i++) {
        pt_cluster_t *cl = c->clusters[i];
        if (cl->outlier == NULL || cl->outlier_state != NULL)
            continue;
        cl->outlier_state = get_cluster(cl->name);
        cl->outlier_state->refs++;
        cl->outlier_hosts =
            pt_arena_calloc(&c->arena, (cl->n_endpoints + 1) * sizeof(*cl->outlier_hosts));
        for (size_t k = 0; k < cl->n_endpoints; k++)
            cl->outlier_hosts[k] = get_host(cl->outlier_state, &cl->endpoints[k]);
        bound = true;
    }
    pthread_mutex_unlock(&registry_lock);
    if (bound)
        pt_arena_on_free(&c->arena, unbind, c);
}

/* ---- ejection ------------------------------------------------------------------------ */

static void lower_next_uneject(struct pt_outlier_cluster *oc, uint64_t t)
{
    uint64_t cur = atomic_load_explicit(&oc->next_uneject_ms, memory_order_relaxed);
    while (t < cur &&
           !atomic_compare_exchange_weak_explicit(&oc->next_uneject_ms, &cur, t,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

typedef enum { EJECT_5XX, EJECT_GATEWAY, EJECT_LOCAL } eject_reason_t;

static void eject(const pt_cluster_t *cl, pt_outlier_host_t *h, eject_reason_t why,
                  pt_stats_t *stats)
{
    const pt_outlier_config_t *oc = cl->outlier;
    struct pt_outlier_cluster *st = cl->outlier_state;
    if (atomic_load_explicit(&h->ejected_until_ms, memory_order_acquire) != 0)
        return; /* already out */
    /* Take a place among the ejected first, so that concurrent ejections respect the cap. */
    uint32_t n = atomic_load_explicit(&st->n_ejected, memory_order_relaxed);
    do {
        if (!pt_outlier_may_eject(n, cl->n_endpoints, oc->max_ejection_percent)) {
            stat_add(stats, PT_STAT_outlier_ejections_overflow, 1);
            /* Every failing request of a cluster at its cap gets here: one line per interval. */
            static pt_log_limit_t limit;
            pt_log_limited(&limit, PT_LOG_REPEAT_INTERVAL_MS, PT_LOG_INFO,
                           "outlier detection: %s of %s not ejected: maxEjectionPercent %u "
                           "reached",
                           h->name, cl->name, oc->max_ejection_percent);
            return;
        }
    } while (!atomic_compare_exchange_weak_explicit(&st->n_ejected, &n, n + 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    uint64_t now = pt_outlier_now_ms();
    uint32_t m = atomic_load_explicit(&h->multiplier, memory_order_relaxed);
    uint64_t unejected = atomic_load_explicit(&h->unejected_at_ms, memory_order_relaxed);
    if (unejected != 0)
        m = pt_outlier_decay(m, now - unejected, oc->base_ejection_ms, oc->interval_ms);
    m = pt_outlier_next_multiplier(m, oc->base_ejection_ms, PT_OUTLIER_MAX_EJECTION_MS);
    uint64_t ms = pt_outlier_ejection_ms(m, oc->base_ejection_ms, PT_OUTLIER_MAX_EJECTION_MS);
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&h->ejected_until_ms, &expected, now + ms,
                                                 memory_order_acq_rel, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&st->n_ejected, 1, memory_order_acq_rel); /* lost a race */
        return;
    }
    atomic_store_explicit(&h->multiplier, m, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->n_ejections, 1, memory_order_relaxed);
    lower_next_uneject(st, now + ms);
    stat_add(stats, PT_STAT_outlier_ejections, 1);
    stat_add(stats, PT_STAT_outlier_ejections_active, 1);
    static const char *const reasons[] = {"consecutive 5xx", "consecutive gateway errors",
                                          "consecutive local-origin failures"};
    if (why == EJECT_5XX)
        stat_add(stats, PT_STAT_outlier_ejections_consecutive_5xx, 1);
    else if (why == EJECT_GATEWAY)
        stat_add(stats, PT_STAT_outlier_ejections_consecutive_gateway, 1);
    else
        stat_add(stats, PT_STAT_outlier_ejections_consecutive_local_origin, 1);
    pt_log_warn("outlier detection: ejected %s of %s for %llu ms (%s, ejection %u)", h->name,
                cl->name, (unsigned long long)ms, reasons[why], m);
}

/* Ends h's ejection if its time is over; true if h is (still) ejected. */
static bool check_uneject(const pt_cluster_t *cl, pt_outlier_host_t *h, uint64_t now,
                          pt_stats_t *stats)
{
    uint64_t until = atomic_load_explicit(&h->ejected_until_ms, memory_order_acquire);
    if (until == 0)
        return false;
    if (now < until)
        return true;
    if (atomic_compare_exchange_strong_explicit(&h->ejected_until_ms, &until, 0,
                                                memory_order_acq_rel, memory_order_relaxed)) {
        atomic_store_explicit(&h->unejected_at_ms, now, memory_order_relaxed);
        atomic_store_explicit(&h->consecutive_5xx, 0, memory_order_relaxed);
        atomic_store_explicit(&h->consecutive_gateway, 0, memory_order_relaxed);
        atomic_store_explicit(&h->consecutive_local, 0, memory_order_relaxed);
        atomic_fetch_sub_explicit(&cl->outlier_state->n_ejected, 1, memory_order_acq_rel);
        stat_add(stats, PT_STAT_outlier_unejections, 1);
        stat_add(stats, PT_STAT_outlier_ejections_active, -1);
        pt_log_info("outlier detection: %s of %s back in service", h->name, cl->name);
    }
    return false;
}

bool pt_outlier_is_ejected(const pt_cluster_t *cl, size_t i, uint64_t now_ms, pt_stats_t *stats)
{
    if (cl->outlier_hosts == NULL || i >= cl->n_endpoints)
        return false;
    return check_uneject(cl, cl->outlier_hosts[i], now_ms, stats);
}

bool pt_outlier_begin_pick(const pt_cluster_t *cl, uint64_t now_ms, pt_stats_t *stats)
{
    struct pt_outlier_cluster *st = cl->outlier_state;
    uint64_t due = atomic_load_explicit(&st->next_uneject_ms, memory_order_relaxed);
    /* One worker claims the sweep (the others see the new due time and go on). */
    if (now_ms >= due &&
        atomic_compare_exchange_strong_explicit(&st->next_uneject_ms, &due, UINT64_MAX,
                                                memory_order_relaxed, memory_order_relaxed)) {
        for (pt_outlier_host_t *h = atomic_load_explicit(&st->hosts, memory_order_acquire);
             h != NULL; h = h->next)
            if (check_uneject(cl, h, now_ms, stats))
                lower_next_uneject(
                    st, atomic_load_explicit(&h->ejected_until_ms, memory_order_relaxed));
    }
    /* Ejected endpoints of this snapshot (the registry may hold some it no longer has). */
    size_t ejected = 0;
    if (pt_outlier_n_ejected(st) == 0 || cl->outlier->min_health_percent == 0)
        return false;
    for (size_t k = 0; k < cl->n_endpoints; k++)
        if (atomic_load_explicit(&cl->outlier_hosts[k]->ejected_until_ms, memory_order_relaxed))
            ejected++;
    return pt_outlier_is_panic(ejected, cl->n_endpoints, cl->outlier->min_health_percent);
}

/* ---- counting ------------------------------------------------------------------------ */

/* Adds one to a count; true when it reaches threshold (which then resets it). */
static bool count_up(_Atomic uint32_t *count, uint32_t threshold)
{
    uint32_t n = atomic_fetch_add_explicit(count, 1, memory_order_relaxed) + 1;
    if (threshold == 0 || n != threshold)
        return false;
    atomic_store_explicit(count, 0, memory_order_relaxed);
    return true;
}

static void reset(_Atomic uint32_t *count)
{
    /* Most responses succeed: skip the store (and the cache-line write) when already 0. */
    if (atomic_load_explicit(count, memory_order_relaxed) != 0)
        atomic_store_explicit(count, 0, memory_order_relaxed);
}

static void put_status(const pt_cluster_t *cl, pt_outlier_host_t *h, int status, pt_stats_t *stats)
{
    const pt_outlier_config_t *oc = cl->outlier;
    if (status < 500 || status > 599) {
        reset(&h->consecutive_5xx);
        reset(&h->consecutive_gateway);
        return;
    }
    if (status >= 502 && status <= 504) {
        if (count_up(&h->consecutive_gateway, oc->consecutive_gateway))
            eject(cl, h, EJECT_GATEWAY, stats);
    } else {
        reset(&h->consecutive_gateway);
    }
    if (count_up(&h->consecutive_5xx, oc->consecutive_5xx))
        eject(cl, h, EJECT_5XX, stats);
}

void pt_outlier_report(const pt_cluster_t *cl, size_t i, pt_outlier_result_t r, int status,
                       pt_stats_t *stats)
{
    if (cl->outlier_state == NULL || cl->outlier_hosts == NULL || i >= cl->n_endpoints)
        return;
    pt_outlier_host_t *h = cl->outlier_hosts[i];
    const pt_outlier_config_t *oc = cl->outlier;
    if (r == PT_OUTLIER_RESPONSE) {
        if (oc->split_local_origin)
            reset(&h->consecutive_local);
        put_status(cl, h, status, stats);
        return;
    }
    if (!oc->split_local_origin) {
        put_status(cl, h, r == PT_OUTLIER_TIMEOUT ? 504 : 503, stats);
        return;
    }
    if (count_up(&h->consecutive_local, oc->consecutive_local))
        eject(cl, h, EJECT_LOCAL, stats);
}

void pt_outlier_endpoint_info(const pt_cluster_t *cl, size_t i, bool *ejected,
                              uint64_t *n_ejections)
{
    *ejected = false;
    *n_ejections = 0;
    if (cl->outlier_state == NULL || cl->outlier_hosts == NULL || i >= cl->n_endpoints)
        return;
    const pt_outlier_host_t *h = cl->outlier_hosts[i];
    uint64_t until = atomic_load_explicit(&h->ejected_until_ms, memory_order_relaxed);
    *ejected = until != 0 && pt_outlier_now_ms() < until;
    *n_ejections = atomic_load_explicit(&h->n_ejections, memory_order_relaxed);
}
