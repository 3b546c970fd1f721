/* tests/unit/config/tracing.c: Proxy spec.tracing, read into pt_tracing_settings_t: defaults,
 * values, collector addresses (IPv4 and bracketed IPv6), and errors with their field paths. */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "load_helpers.h"

static pt_config_t *load_proxy(const char *spec, pt_config_errors_t *e)
{
    static char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec:\n%s", spec);
    return load_str("p.yaml", yaml, e);
}

TEST(tracing_absent_is_off)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_proxy("  concurrency: 1\n", &e);
    ASSERT(c != NULL);
    ASSERT(!c->proxy.tracing.enabled);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(tracing_defaults)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_proxy("  tracing: {}\n", &e);
    ASSERT(c != NULL);
    const pt_tracing_settings_t *t = &c->proxy.tracing;
    ASSERT(t->enabled);
    ASSERT_EQ(t->sampling_ppm, 10000u); /* Istio's 1 % */
    ASSERT_EQ(t->max_queue, 512u);
    ASSERT_EQ(t->batch_size, 512u);
    ASSERT_EQ(t->flush_interval_ms, 1000u);
    ASSERT_EQ(t->export_timeout_ms, 2000u);
    ASSERT(t->otlp.address == NULL && t->zipkin.address == NULL);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(tracing_values)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_proxy("  tracing:\n"
                                "    sampling: 0.25\n"
                                "    serviceName: edge\n"
                                "    otlp: {address: \"127.0.0.1:4318\"}\n"
                                "    zipkin: {address: \"[::1]:9411\", path: /zipkin/spans}\n"
                                "    maxQueue: 100\n"
                                "    batchSize: 10\n"
                                "    flushInterval: 250ms\n"
                                "    exportTimeout: 3s\n",
                                &e);
    dump(&e);
    ASSERT(c != NULL);
    const pt_tracing_settings_t *t = &c->proxy.tracing;
    ASSERT_EQ(t->sampling_ppm, 2500u);
    ASSERT_STREQ(t->service_name, "edge");
    ASSERT_STREQ(t->otlp.address, "127.0.0.1:4318");
    ASSERT_STREQ(t->otlp.path, "/v1/traces");
    ASSERT_EQ(t->otlp.addr.ss_family, AF_INET);
    ASSERT_EQ(ntohs(((const struct sockaddr_in *)&t->otlp.addr)->sin_port), 4318);
    ASSERT_EQ(t->zipkin.addr.ss_family, AF_INET6);
    ASSERT_EQ(ntohs(((const struct sockaddr_in6 *)&t->zipkin.addr)->sin6_port), 9411);
    ASSERT_STREQ(t->zipkin.path, "/zipkin/spans");
    ASSERT_EQ(t->max_queue, 100u);
    ASSERT_EQ(t->batch_size, 10u);
    ASSERT_EQ(t->flush_interval_ms, 250u);
    ASSERT_EQ(t->export_timeout_ms, 3000u);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(tracing_errors)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_proxy("  tracing:\n"
                                "    sampling: -1\n"
                                "    otlp: {address: \"localhost:4318\"}\n"
                                "    zipkin: {address: \"127.0.0.1:0\"}\n"
                                "    batchSize: 0\n"
                                "    flushInterval: 0s\n"
                                "    color: blue\n",
                                &e);
    ASSERT(c == NULL);
    ASSERT(has_error_prefix(&e, "p.yaml:6:5: spec.tracing.sampling: must be a percentage"));
    ASSERT(has_error_containing(&e, "spec.tracing.otlp.address: must be IP:PORT"));
    ASSERT(has_error_containing(&e, "spec.tracing.zipkin.address: must be IP:PORT"));
    ASSERT(has_error_containing(&e, "spec.tracing.batchSize"));
    ASSERT(has_error_containing(&e, "spec.tracing.flushInterval: must be greater than 0"));
    ASSERT(has_error_containing(&e, "spec.tracing.color"));
    pt_config_errors_dispose(&e);
}
