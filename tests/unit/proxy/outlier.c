/* tests/unit/proxy/outlier.c
 * Outlier detection (proxy/outlier.c): the ejection arithmetic (multiplier growth and decay,
 * ejection times, the maxEjectionPercent cap, minHealthPercent panic), the counting of
 * consecutive errors over a config loaded from YAML (5xx vs gateway errors, local-origin
 * failures with and without the split), the balancer skipping ejected endpoints, state kept
 * across snapshots, and the precedence of outlierDetection settings. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "proxy/lb.h"
#include "proxy/outlier.h"
#include "test.h"

TEST(multiplier_grows_up_to_the_max)
{
    /* Envoy: +1 while base × multiplier < max + base. base 30 s, max 300 s: up to 11. */
    uint32_t m = 0;
    for (int i = 0; i < 20; i++)
        m = pt_outlier_next_multiplier(m, 30000, 300000);
    ASSERT_EQ(m, 11u);
    ASSERT_EQ(pt_outlier_next_multiplier(0, 30000, 300000), 1u);
    ASSERT_EQ(pt_outlier_next_multiplier(10, 30000, 300000), 11u);
    ASSERT_EQ(pt_outlier_next_multiplier(11, 30000, 300000), 11u);
}

TEST(ejection_time_is_base_times_multiplier_capped)
{
    ASSERT_EQ(pt_outlier_ejection_ms(1, 30000, 300000), 30000u);
    ASSERT_EQ(pt_outlier_ejection_ms(3, 30000, 300000), 90000u);
    ASSERT_EQ(pt_outlier_ejection_ms(11, 30000, 300000), 300000u);
    /* A base above the max: the max is raised to the base. */
    ASSERT_EQ(pt_outlier_ejection_ms(2, 400000, 300000), 400000u);
}

TEST(multiplier_decays_one_per_healthy_sweep)
{
    /* base 30 s, interval 10 s: nothing before 30 s of health, then one per sweep. */
    ASSERT_EQ(pt_outlier_decay(3, 29999, 30000, 10000), 3u);
    ASSERT_EQ(pt_outlier_decay(3, 30000, 30000, 10000), 2u);
    ASSERT_EQ(pt_outlier_decay(3, 39999, 30000, 10000), 2u);
    ASSERT_EQ(pt_outlier_decay(3, 40000, 30000, 10000), 1u);
    ASSERT_EQ(pt_outlier_decay(3, 50000, 30000, 10000), 0u);
    ASSERT_EQ(pt_outlier_decay(3, 900000, 30000, 10000), 0u);
    ASSERT_EQ(pt_outlier_decay(0, 900000, 30000, 10000), 0u);
}

TEST(max_ejection_percent_caps_the_share)
{
    /* Envoy: eject while (ejected + 1) / total stays within the max. */
    ASSERT(!pt_outlier_may_eject(0, 3, 10)); /* Istio's 10 % of 3: 33 % is over */
    ASSERT(pt_outlier_may_eject(0, 10, 10));
    ASSERT(!pt_outlier_may_eject(1, 10, 10));
    ASSERT(pt_outlier_may_eject(0, 3, 34));
    ASSERT(!pt_outlier_may_eject(1, 3, 34));
    ASSERT(pt_outlier_may_eject(2, 3, 100));
    ASSERT(!pt_outlier_may_eject(0, 3, 0));
    ASSERT(!pt_outlier_may_eject(0, 0, 100));
}

TEST(panic_below_min_health_percent)
{
    ASSERT(!pt_outlier_is_panic(3, 3, 0)); /* 0 %: never */
    ASSERT(pt_outlier_is_panic(2, 4, 60));
    ASSERT(!pt_outlier_is_panic(2, 4, 50));
    ASSERT(pt_outlier_is_panic(1, 4, 100));
    ASSERT(!pt_outlier_is_panic(0, 4, 100));
}

/* A config with cluster web.local:80 over n endpoints 127.0.0.1:9001.. and the given
 * outlierDetection body (flow-style YAML map contents). */
static pt_config_t *load(int n, const char *od, const char *extra_policy)
{
    char yaml[4096];
    char eps[1024] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(eps);
        snprintf(eps + l, sizeof(eps) - l, "  - {address: 127.0.0.1, ports: {http: %d}}\n",
                 9001 + i);
    }
    snprintf(yaml, sizeof(yaml),
             "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
             "spec:\n  servers:\n  - port: {number: 8080, protocol: HTTP, name: http}\n"
             "    hosts: ['*']\n---\n"
             "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\n"
             "spec:\n  hosts: ['*']\n  gateways: [gw]\n  http:\n"
             "  - route: [{destination: {host: web.local, port: {number: 80}}}]\n---\n"
             "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: web}\n"
             "spec:\n  hosts: [web.local]\n  resolution: STATIC\n"
             "  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints:\n%s---\n"
             "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\n"
             "spec:\n  host: web.local\n  trafficPolicy:\n    outlierDetection: {%s}\n%s",
             eps, od, extra_policy ? extra_policy : "");
    pt_config_errors_t e = {0};
    pt_config_source_t src = {"od.yaml", yaml, strlen(yaml)};
    pt_config_t *c = pt_config_load_buffers(&src, 1, NULL, &e);
    if (c != NULL)
        pt_outlier_bind(c); /* as proxy/main.c does with each snapshot */
    for (size_t i = 0; i < e.n; i++)
        fprintf(stderr, "    error: %s\n", e.lines[i]);
    pt_config_errors_dispose(&e);
    return c;
}

static const pt_cluster_t *web(const pt_config_t *c)
{
    for (size_t i = 0; i < c->n_clusters; i++)
        if (strcmp(c->clusters[i]->name, "outbound|80||web.local") == 0)
            return c->clusters[i];
    return NULL;
}

static bool ejected(const pt_cluster_t *cl, size_t i)
{
    bool e;
    uint64_t n;
    pt_outlier_endpoint_info(cl, i, &e, &n);
    return e;
}

TEST(istio_defaults)
{
    pt_config_t *c = load(2, "", NULL);
    ASSERT(c != NULL);
    const pt_outlier_config_t *od = web(c)->outlier;
    ASSERT(od != NULL);
    ASSERT_EQ(od->consecutive_5xx, 5u);
    ASSERT_EQ(od->consecutive_gateway, 0u);
    ASSERT_EQ(od->consecutive_local, 5u);
    ASSERT(!od->split_local_origin);
    ASSERT_EQ(od->interval_ms, 10000u);
    ASSERT_EQ(od->base_ejection_ms, 30000u);
    ASSERT_EQ(od->max_ejection_percent, 10u);
    ASSERT_EQ(od->min_health_percent, 0u);
    pt_config_unref(c);
}

TEST(consecutive_5xx_ejects_and_a_success_resets)
{
    pt_config_t *c = load(2, "consecutive5xxErrors: 3, maxEjectionPercent: 50", NULL);
    ASSERT(c != NULL);
    const pt_cluster_t *cl = web(c);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 500, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 500, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 200, NULL); /* resets */
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 500, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 501, NULL);
    ASSERT(!ejected(cl, 0));
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 503, NULL);
    ASSERT(ejected(cl, 0));
    ASSERT(!ejected(cl, 1));
    /* The balancer skips it: every pick goes to endpoint 1. */
    uint64_t rng = 7;
    uint32_t pos = 0;
    pt_lb_state_t s = {&pos, NULL, &rng, NULL};
    for (int i = 0; i < 50; i++)
        ASSERT_EQ(pt_lb_pick(cl, &s, NULL), 1u);
    /* A second one would pass 50 %: refused. */
    for (int i = 0; i < 3; i++)
        pt_outlier_report(cl, 1, PT_OUTLIER_RESPONSE, 500, NULL);
    ASSERT(!ejected(cl, 1));
    pt_config_unref(c);
}

TEST(gateway_errors_count_only_502_503_504)
{
    pt_config_t *c = load(4,
                          "consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, "
                          "maxEjectionPercent: 100",
                          NULL);
    ASSERT(c != NULL);
    const pt_cluster_t *cl = web(c);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 502, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 500, NULL); /* a 5xx, not a gateway error */
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 504, NULL);
    ASSERT(!ejected(cl, 0));
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 503, NULL);
    ASSERT(ejected(cl, 0));
    /* 500s never eject with consecutive5xxErrors 0. */
    for (int i = 0; i < 20; i++)
        pt_outlier_report(cl, 1, PT_OUTLIER_RESPONSE, 500, NULL);
    ASSERT(!ejected(cl, 1));
    /* Connect failures count as 503 without the split. */
    pt_outlier_report(cl, 2, PT_OUTLIER_CONNECT_FAILED, 503, NULL);
    pt_outlier_report(cl, 2, PT_OUTLIER_TIMEOUT, 504, NULL);
    ASSERT(ejected(cl, 2));
    pt_config_unref(c);
}

TEST(split_local_origin_failures_have_their_own_count)
{
    pt_config_t *c = load(4,
                          "consecutive5xxErrors: 2, splitExternalLocalOriginErrors: true, "
                          "consecutiveLocalOriginFailures: 3, maxEjectionPercent: 100",
                          NULL);
    ASSERT(c != NULL);
    const pt_cluster_t *cl = web(c);
    /* Local failures do not touch the 5xx count... */
    pt_outlier_report(cl, 0, PT_OUTLIER_CONNECT_FAILED, 503, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_CONNECT_FAILED, 503, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 200, NULL); /* a response resets them */
    pt_outlier_report(cl, 0, PT_OUTLIER_CONNECT_FAILED, 503, NULL);
    pt_outlier_report(cl, 0, PT_OUTLIER_TIMEOUT, 504, NULL);
    ASSERT(!ejected(cl, 0));
    pt_outlier_report(cl, 0, PT_OUTLIER_CONNECT_FAILED, 503, NULL);
    ASSERT(ejected(cl, 0));
    /* ...and 5xx responses still count on their own. */
    pt_outlier_report(cl, 1, PT_OUTLIER_RESPONSE, 500, NULL);
    pt_outlier_report(cl, 1, PT_OUTLIER_RESPONSE, 500, NULL);
    ASSERT(ejected(cl, 1));
    pt_config_unref(c);
}

TEST(state_outlives_a_snapshot_and_is_freed_with_the_last)
{
    pt_config_t *a = load(2, "consecutive5xxErrors: 1, maxEjectionPercent: 50", NULL);
    ASSERT(a != NULL);
    pt_outlier_report(web(a), 1, PT_OUTLIER_RESPONSE, 500, NULL);
    ASSERT(ejected(web(a), 1));
    /* A reload with one more endpoint: the ejection stays with the address. */
    pt_config_t *b = load(3, "consecutive5xxErrors: 1, maxEjectionPercent: 50", NULL);
    ASSERT(b != NULL);
    ASSERT(web(b)->outlier_state == web(a)->outlier_state);
    ASSERT(ejected(web(b), 1));
    ASSERT(!ejected(web(b), 0));
    ASSERT(!ejected(web(b), 2));
    pt_config_unref(a);
    ASSERT(ejected(web(b), 1));
    pt_config_unref(b); /* LeakSanitizer (make asan) checks the registry is empty now */
}

TEST(every_endpoint_ejected_without_panic_is_none)
{
    pt_config_t *c = load(2, "consecutive5xxErrors: 1, maxEjectionPercent: 100", NULL);
    ASSERT(c != NULL);
    const pt_cluster_t *cl = web(c);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 500, NULL);
    pt_outlier_report(cl, 1, PT_OUTLIER_RESPONSE, 500, NULL);
    uint64_t rng = 7;
    pt_lb_state_t s = {NULL, NULL, &rng, NULL};
    ASSERT_EQ(pt_lb_pick(cl, &s, NULL), PT_LB_NONE);
    pt_config_unref(c);
    /* With minHealthPercent 60, one of two ejected (50 % healthy) is panic: both are used. */
    c = load(2, "consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 60", NULL);
    ASSERT(c != NULL);
    cl = web(c);
    pt_outlier_report(cl, 0, PT_OUTLIER_RESPONSE, 500, NULL);
    ASSERT(ejected(cl, 0));
    int seen[2] = {0, 0};
    for (int i = 0; i < 200; i++)
        seen[pt_lb_pick(cl, &s, NULL)]++;
    ASSERT(seen[0] > 0 && seen[1] > 0);
    pt_config_unref(c);
}

TEST(port_level_and_invalid_settings)
{
    pt_config_t *c = load(2, "consecutive5xxErrors: 7",
                          "    portLevelSettings:\n"
                          "    - port: {number: 80}\n"
                          "      outlierDetection: {consecutive5xxErrors: 2, interval: 1s}\n");
    ASSERT(c != NULL);
    ASSERT_EQ(web(c)->outlier->consecutive_5xx, 2u);
    ASSERT_EQ(web(c)->outlier->interval_ms, 1000u);
    pt_config_unref(c);
    ASSERT(load(2, "maxEjectionPercent: 101", NULL) == NULL);
    ASSERT(load(2, "baseEjectionTime: 0s", NULL) == NULL);
    ASSERT(load(2, "splitExternalLocalOriginErrors: yes", NULL) == NULL);
    ASSERT(load(2, "consecutive5xxErrors: -1", NULL) == NULL);
}
