/* tests/unit/config/retries.c
 * VirtualService http[].retries compiled into the route's policy (Istio's defaults for what is
 * left out), DestinationRule connectionPool / retryBudget resolved per cluster with Istio's
 * precedence, and the errors. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "load_helpers.h"
#include "proxy/retry.h"
#include "test.h"

static const char *vs_with(const char *retries, const char *dr, char *buf, size_t size)
{
    snprintf(buf, size,
             "apiVersion: networking.istio.io/v1\n"
             "kind: VirtualService\n"
             "metadata: {name: v}\n"
             "spec:\n"
             "  hosts: [a.com]\n"
             "  gateways: [g]\n"
             "  http:\n"
             "  - retries: %s\n"
             "    route: [{destination: {host: a, port: {number: 1}, subset: s1}}]\n"
             "---\n"
             "apiVersion: networking.istio.io/v1\n"
             "kind: Gateway\n"
             "metadata: {name: g}\n"
             "spec:\n"
             "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a.com]}]\n"
             "---\n"
             "apiVersion: networking.istio.io/v1\n"
             "kind: DestinationRule\n"
             "metadata: {name: d}\n"
             "spec:\n"
             "  host: a\n"
             "  %s\n",
             retries, dr);
    return buf;
}

static const pt_http_route_t *route_of(pt_config_t *c)
{
    return &c->listeners[0].vhosts[0].routes[0];
}

TEST(retries_compile_over_istio_defaults)
{
    char buf[4096];
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str(
        "f.yaml",
        vs_with("{attempts: 3, perTryTimeout: 200ms, retryOn: \"5xx,connect-failure,429\"}",
                "subsets: [{name: s1}]", buf, sizeof(buf)),
        &e);
    dump(&e);
    ASSERT(c != NULL);
    const pt_retry_policy_t *p = route_of(c)->retry;
    ASSERT(p != NULL);
    ASSERT(p->is_explicit);
    ASSERT_EQ(p->attempts, 3u);
    ASSERT_EQ(p->per_try_timeout_ms, 200u);
    ASSERT_EQ(p->on, PT_RETRY_ON_5XX | PT_RETRY_ON_CONNECT_FAILURE | PT_RETRY_ON_STATUS_CODES);
    ASSERT_EQ(p->n_codes, 1);
    ASSERT_EQ(p->codes[0], 429);
    ASSERT(p->ignore_previous_hosts);
    ASSERT_EQ(p->backoff_base_ms, 25u);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    pt_config_errors_t e2 = {0};
    c = load_str("f.yaml",
                 vs_with("{attempts: 0, retryIgnorePreviousHosts: false, backoff: 10ms}",
                         "subsets: [{name: s1}]", buf, sizeof(buf)),
                 &e2);
    ASSERT(c != NULL);
    p = route_of(c)->retry;
    ASSERT_EQ(p->attempts, 0u);
    ASSERT(!p->ignore_previous_hosts);
    ASSERT_EQ(p->backoff_base_ms, 10u);
    ASSERT_EQ(p->backoff_max_ms, 100u);
    ASSERT(pt_retry_on_response(p, 503, -1, false)); /* Istio's default retryOn */
    pt_config_unref(c);
    pt_config_errors_dispose(&e2);
}

TEST(retries_errors)
{
    static const char *const bad[] = {
        "{attempts: -1}",
        "{attempts: x}",
        "{perTryTimeout: 1parsec}",
        "{retryOn: \"5xx,nope\"}",
        "{retryOn: \"\"}",
        "{retryIgnorePreviousHosts: maybe}",
        "{bogus: 1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[4096];
        pt_config_errors_t e = {0};
        pt_config_t *c =
            load_str("f.yaml", vs_with(bad[i], "subsets: [{name: s1}]", buf, sizeof(buf)), &e);
        if (c != NULL)
            fprintf(stderr, "    accepted: %s\n", bad[i]);
        ASSERT(c == NULL);
        ASSERT(has_error_containing(&e, "spec.http[0].retries"));
        pt_config_errors_dispose(&e);
    }
}

TEST(connection_pool_precedence_and_state)
{
    char buf[4096];
    pt_config_errors_t e = {0};
    const char *dr =
        "trafficPolicy:\n"
        "    connectionPool: {tcp: {maxConnections: 7}, http: {http1MaxPendingRequests: 2}}\n"
        "    retryBudget: {percent: 50, minRetryConcurrency: 1}\n"
        "    portLevelSettings:\n"
        "    - port: {number: 2}\n"
        "      connectionPool: {tcp: {maxConnections: 5}}\n"
        "  subsets:\n"
        "  - name: s1\n"
        "    trafficPolicy:\n"
        "      portLevelSettings:\n"
        "      - port: {number: 1}\n"
        "        connectionPool: {tcp: {maxConnections: 3}}\n"
        "      connectionPool: {tcp: {maxConnections: 1, connectTimeout: 2s},\n"
        "                       http: {maxRequestsPerConnection: 1, maxRetries: 4,\n"
        "                              http2MaxRequests: 9, idleTimeout: 3s}}";
    pt_config_t *c = load_str("f.yaml", vs_with("{attempts: 1}", dr, buf, sizeof(buf)), &e);
    dump(&e);
    ASSERT(c != NULL);
    const pt_cluster_t *cl = route_of(c)->clusters[0].cluster;
    /* the subset's port-level connectionPool wins, as a whole */
    ASSERT_EQ(cl->pool.max_connections, 3u);
    ASSERT_EQ(cl->pool.max_pending, PT_BREAKER_UNLIMITED);
    ASSERT_EQ(cl->pool.connect_timeout_ms, 0u);
    ASSERT(cl->pool.has_retry_budget);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    /* without it, the subset's own connectionPool replaces the rule's as a whole */
    const char *dr2 =
        "trafficPolicy:\n"
        "    connectionPool: {tcp: {maxConnections: 7}, http: {http1MaxPendingRequests: 2}}\n"
        "    retryBudget: {percent: 50, minRetryConcurrency: 1}\n"
        "  subsets:\n"
        "  - name: s1\n"
        "    trafficPolicy:\n"
        "      connectionPool: {tcp: {maxConnections: 1, connectTimeout: 2s},\n"
        "                       http: {maxRequestsPerConnection: 1, maxRetries: 4,\n"
        "                              http2MaxRequests: 9, idleTimeout: 3s}}";
    c = load_str("f.yaml", vs_with("{attempts: 1}", dr2, buf, sizeof(buf)), &e);
    dump(&e);
    ASSERT(c != NULL);
    cl = route_of(c)->clusters[0].cluster;
    ASSERT_EQ(cl->pool.max_connections, 1u);
    ASSERT_EQ(cl->pool.max_pending, PT_BREAKER_UNLIMITED);
    ASSERT_EQ(cl->pool.connect_timeout_ms, 2000u);
    ASSERT_EQ(cl->pool.max_requests_per_connection, 1u);
    ASSERT_EQ(cl->pool.max_retries, 4u);
    ASSERT_EQ(cl->pool.max_requests, 9u);
    ASSERT_EQ(cl->pool.idle_timeout_ms, 3000u);
    ASSERT(cl->pool.has_retry_budget);
    ASSERT(cl->pool.budget_percent == 50.0);
    ASSERT_EQ(cl->pool.budget_min_concurrency, 1u);
    ASSERT(cl->state != NULL);
    /* a reload with the same cluster and limits gets the same counters */
    pt_config_errors_t e2 = {0};
    pt_config_t *c2 = load_str("f.yaml", vs_with("{attempts: 2}", dr2, buf, sizeof(buf)), &e2);
    ASSERT(c2 != NULL);
    ASSERT(route_of(c2)->clusters[0].cluster->state == cl->state);
    pt_config_unref(c2);
    pt_config_errors_dispose(&e2);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}
