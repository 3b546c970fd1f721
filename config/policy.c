/* config/policy.c
 * The policies' defaults, the retryOn grammar and the registry of per-cluster breaker state
 * (see policy.h). */
#include "policy.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- retries ---- */

const pt_retry_policy_t pt_retry_default_idempotent = {
    .attempts = 2,
    .on = PT_RETRY_ON_CONNECT_FAILURE | PT_RETRY_ON_REFUSED_STREAM | PT_RETRY_ON_GRPC_UNAVAILABLE |
          PT_RETRY_ON_GRPC_CANCELLED | PT_RETRY_ON_STATUS_CODES,
    .codes = {503},
    .n_codes = 1,
    .backoff_base_ms = 25,
    .backoff_max_ms = 250,
    .ignore_previous_hosts = true,
};

const pt_retry_policy_t pt_retry_default_unsafe = {
    .attempts = 2,
    .on = PT_RETRY_ON_CONNECT_FAILURE | PT_RETRY_ON_REFUSED_STREAM,
    .backoff_base_ms = 25,
    .backoff_max_ms = 250,
    .ignore_previous_hosts = true,
};

void pt_retry_policy_default(pt_retry_policy_t *p)
{
    *p = pt_retry_default_idempotent;
}

static const struct {
    const char *name;
    uint32_t bit;
} conditions[] = {
    {"5xx", PT_RETRY_ON_5XX},
    {"gateway-error", PT_RETRY_ON_GATEWAY_ERROR},
    {"reset", PT_RETRY_ON_RESET},
    {"reset-before-request", PT_RETRY_ON_RESET_BEFORE_REQUEST},
    {"connect-failure", PT_RETRY_ON_CONNECT_FAILURE},
    {"retriable-4xx", PT_RETRY_ON_RETRIABLE_4XX},
    {"refused-stream", PT_RETRY_ON_REFUSED_STREAM},
    {"retriable-status-codes", PT_RETRY_ON_STATUS_CODES},
    {"retriable-headers", PT_RETRY_ON_RETRIABLE_HEADERS},
    {"envoy-ratelimited", PT_RETRY_ON_ENVOY_RATELIMITED},
    {"cancelled", PT_RETRY_ON_GRPC_CANCELLED},
    {"deadline-exceeded", PT_RETRY_ON_GRPC_DEADLINE_EXCEEDED},
    {"internal", PT_RETRY_ON_GRPC_INTERNAL},
    {"resource-exhausted", PT_RETRY_ON_GRPC_RESOURCE_EXHAUSTED},
    {"unavailable", PT_RETRY_ON_GRPC_UNAVAILABLE},
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int pt_retry_on_parse(const char *s, pt_retry_policy_t *p, const char **bad, size_t *bad_len)
{
    p->on = 0;
    p->n_codes = 0;
    const char *at = s;
    for (;;) {
        const char *end = strchr(at, ',');
        if (end == NULL)
            end = at + strlen(at);
        const char *b = at, *e = end;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        size_t len = (size_t)(e - b);
        bool ok = false;
        for (size_t i = 0; i < sizeof(conditions) / sizeof(conditions[0]) && !ok; i++)
            if (strlen(conditions[i].name) == len && memcmp(conditions[i].name, b, len) == 0) {
                p->on |= conditions[i].bit;
                ok = true;
            }
        if (!ok && len == 3 && b[0] >= '1' && b[0] <= '5' && b[1] >= '0' && b[1] <= '9' &&
            b[2] >= '0' && b[2] <= '9' && p->n_codes < PT_RETRY_MAX_CODES) {
            p->codes[p->n_codes++] =
                (uint16_t)((b[0] - '0') * 100 + (b[1] - '0') * 10 + b[2] - '0');
            p->on |= PT_RETRY_ON_STATUS_CODES;
            ok = true;
        }
        if (!ok) {
            *bad = b;
            *bad_len = len;
            return -1;
        }
        if (*end == '\0')
            return 0;
        at = end + 1;
    }
}

void pt_retry_budget_init(pt_retry_budget_t *b, uint64_t now_ms)
{
    atomic_init(&b->tokens, (int64_t)PT_RETRY_BUDGET_MIN_PER_S * PT_RETRY_TOKEN);
    atomic_init(&b->refill_ms, now_ms);
}

/* ---- connection pool and breaker state ---- */

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

/* Chains by key hash: a config with tens of thousands of clusters finds each in a few steps.
 * Entries live as long as the process. */
#define REGISTRY_BUCKETS 1024
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pt_cluster_state_t *registry[REGISTRY_BUCKETS];

pt_cluster_state_t *pt_cluster_state_get(const char *name, const pt_conn_pool_settings_t *s)
{
    /* The limits that change what the counters mean are part of the identity; timeouts and
     * keep-alive settings are not. */
    char key[512];
    snprintf(key, sizeof(key), "%s|%u|%u|%u|%u|%d|%.3f|%u", name, s->max_connections,
             s->max_pending, s->max_requests, s->max_retries, s->has_retry_budget,
             s->budget_percent, s->budget_min_concurrency);
    pt_cluster_state_t **bucket = &registry[pt_lb_hash(key, strlen(key)) % REGISTRY_BUCKETS];
    pthread_mutex_lock(&registry_lock);
    pt_cluster_state_t *st = *bucket;
    while (st != NULL && strcmp(st->key, key) != 0)
        st = st->next;
    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL || (st->key = strdup(key)) == NULL)
            abort();
        pt_retry_budget_init(&st->budget, uv_hrtime() / 1000000);
        st->next = *bucket;
        *bucket = st;
    }
    pthread_mutex_unlock(&registry_lock);
    return st;
}
