/* tests/unit/config/h2_keepalive.c: Proxy spec.upstreamHttp2Keepalive, read into
 * pt_h2_keepalive_settings_t: off when absent, the values, and errors with their field paths. */
#include "test.h"

#include "load_helpers.h"

static pt_config_t *load_proxy(const char *spec, pt_config_errors_t *e)
{
    static char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec:\n%s", spec);
    return load_str("p.yaml", yaml, e);
}

TEST(h2_keepalive_absent_is_off)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_proxy("  concurrency: 1\n", &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->proxy.upstream_h2_keepalive.interval_ms, 0u);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(h2_keepalive_values)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_proxy("  upstreamHttp2Keepalive: {interval: 30s, timeout: 500ms}\n", &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->proxy.upstream_h2_keepalive.interval_ms, 30000u);
    ASSERT_EQ(c->proxy.upstream_h2_keepalive.timeout_ms, 500u);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(h2_keepalive_errors)
{
    pt_config_errors_t e = {0};
    ASSERT(load_proxy("  upstreamHttp2Keepalive: {interval: 30s}\n", &e) == NULL);
    ASSERT(has_error_prefix(&e, "p.yaml:5:3: spec.upstreamHttp2Keepalive.timeout: is required"));
    pt_config_errors_dispose(&e);

    e = (pt_config_errors_t){0};
    ASSERT(load_proxy("  upstreamHttp2Keepalive:\n"
                      "    interval: 50ms\n"
                      "    timeout: 0s\n"
                      "    jitter: 10\n",
                      &e) == NULL);
    ASSERT(has_error_prefix(&e,
                            "p.yaml:6:5: spec.upstreamHttp2Keepalive.interval: must be at least "
                            "100ms"));
    ASSERT(has_error_containing(&e, "spec.upstreamHttp2Keepalive.timeout: must be greater than 0"));
    ASSERT(has_error_prefix(&e, "p.yaml:8:5: spec.upstreamHttp2Keepalive.jitter: unknown field"));
    pt_config_errors_dispose(&e);

    e = (pt_config_errors_t){0};
    ASSERT(load_proxy("  upstreamHttp2Keepalive: {interval: soon, timeout: 1s}\n", &e) == NULL);
    ASSERT(has_error_containing(&e, "spec.upstreamHttp2Keepalive.interval"));
    pt_config_errors_dispose(&e);
}
