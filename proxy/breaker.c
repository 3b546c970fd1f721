/* proxy/breaker.c
 * The process-wide registry of per-cluster runtime state and the circuit-breaker counters.
 * See breaker.h. */
#include "breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

void pt_conn_pool_settings_default(pt_conn_pool_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_connections = PT_BREAKER_UNLIMITED;
    s->max_pending = PT_BREAKER_UNLIMITED;
    s->max_requests = PT_BREAKER_UNLIMITED;
    s->max_retries = PT_BREAKER_UNLIMITED;
    s->budget_percent = 20.0;
    s->budget_min_concurrency = 3;
}

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pt_cluster_state_t *registry;

pt_cluster_state_t *pt_cluster_state_get(const char *name, const pt_conn_pool_settings_t *s)
{
    /* The limits that change what the counters mean are part of the identity; timeouts and
     * keep-alive settings are not. */
    char key[512];
    snprintf(key, sizeof(key), "%s|%u|%u|%u|%u|%d|%.3f|%u", name, s->max_connections,
             s->max_pending, s->max_requests, s->max_retries, s->has_retry_budget,
             s->budget_percent, s->budget_min_concurrency);
    pthread_mutex_lock(&registry_lock);
    pt_cluster_state_t *st = registry;
    while (st != NULL && strcmp(st->key, key) != 0)
        st = st->next;
    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL || (st->key = strdup(key)) == NULL)
            abort();
        pt_retry_budget_init(&st->budget, uv_hrtime() / 1000000);
        st->next = registry;
        registry = st;
    }
    pthread_mutex_unlock(&registry_lock);
    return st;
}

bool pt_breaker_try_acquire(_Atomic uint32_t *counter, uint32_t limit)
{
    uint32_t cur = atomic_load_explicit(counter, memory_order_relaxed);
    do {
        if (cur >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(counter, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void pt_breaker_release(_Atomic uint32_t *counter)
{
    atomic_fetch_sub_explicit(counter, 1, memory_order_relaxed);
}
