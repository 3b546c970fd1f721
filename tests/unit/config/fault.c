/* tests/unit/config/fault.c
 * VirtualService http[].fault: the per-request decision (pt_fault_fires, pure), the compiled
 * form (percentages in parts per million, the deprecated integer percent, absent = 100%), and
 * the errors and warnings. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "load_helpers.h"
#include "test.h"

TEST(fault_fires_bounds_and_fractions)
{
    ASSERT(!pt_fault_fires(0, 0));
    ASSERT(!pt_fault_fires(0, UINT32_MAX));
    ASSERT(pt_fault_fires(PT_FAULT_SCALE, 0));
    ASSERT(pt_fault_fires(PT_FAULT_SCALE, UINT32_MAX));
    /* 0.1% = 1000 ppm: draws 0..999 (mod 1e6) fire, 1000 does not */
    ASSERT(pt_fault_fires(1000, 999));
    ASSERT(!pt_fault_fires(1000, 1000));
    ASSERT(pt_fault_fires(1000, PT_FAULT_SCALE + 5));
    /* over a full sweep of residues, exactly ppm of them fire */
    unsigned hits = 0;
    for (uint32_t r = 0; r < PT_FAULT_SCALE; r++)
        hits += pt_fault_fires(123456, r);
    ASSERT_EQ(hits, 123456u);
}

static const char *vs_with(const char *fault, char *buf, size_t size)
{
    snprintf(buf, size,
             "apiVersion: networking.istio.io/v1\n"
             "kind: VirtualService\n"
             "metadata: {name: v}\n"
             "spec:\n"
             "  hosts: [a.com]\n"
             "  gateways: [g]\n"
             "  http:\n"
             "  - fault: %s\n"
             "    route: [{destination: {host: a, port: {number: 1}}}]\n"
             "---\n"
             "apiVersion: networking.istio.io/v1\n"
             "kind: Gateway\n"
             "metadata: {name: g}\n"
             "spec:\n"
             "  servers: [{port: {number: 80, protocol: HTTP}, hosts: [a.com]}]\n",
             fault);
    return buf;
}

static const pt_http_fault_t *fault_of(pt_config_t *c)
{
    return c->listeners[0].vhosts[0].routes[0].fault;
}

TEST(fault_compiles)
{
    char buf[2048];
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str(
        "f.yaml",
        vs_with("{delay: {fixedDelay: 1.5s, percentage: {value: 0.1}}, abort: {httpStatus: 503}}",
                buf, sizeof(buf)),
        &e);
    ASSERT(c != NULL);
    const pt_http_fault_t *f = fault_of(c);
    ASSERT(f != NULL);
    ASSERT_EQ(f->delay_ms, 1500u);
    ASSERT_EQ(f->delay_ppm, 1000u);
    ASSERT_EQ(f->abort_status, 503);
    ASSERT_EQ(f->abort_ppm, 0u); /* no percentage: no request (Istio) */
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    pt_config_errors_t e2 = {0};
    c = load_str("f.yaml", vs_with("{delay: {fixedDelay: 2ms, percent: 25}}", buf, sizeof(buf)),
                 &e2);
    ASSERT(c != NULL);
    ASSERT_EQ(fault_of(c)->delay_ppm, 250000u);
    ASSERT_EQ(fault_of(c)->abort_status, 0);
    ASSERT(has_warning_containing(&e2, "spec.http[0].fault.delay.percent: deprecated"));
    pt_config_unref(c);
    pt_config_errors_dispose(&e2);
}

TEST(fault_grpc_status_by_name_or_number)
{
    static const struct {
        const char *fault;
        int code;
    } cases[] = {
        {"{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}}", 14},
        {"{abort: {grpcStatus: \"PERMISSION_DENIED\"}}", 7},
        {"{abort: {grpcStatus: 8}}", 8},
        {"{abort: {grpcStatus: \"0\"}}", 0},
        {"{abort: {grpcStatus: 16}}", 16},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[2048];
        pt_config_errors_t e = {0};
        pt_config_t *c = load_str("f.yaml", vs_with(cases[i].fault, buf, sizeof(buf)), &e);
        ASSERT(c != NULL);
        ASSERT_EQ(e.n, 0u);
        ASSERT(!has_warning_containing(&e, "grpcStatus"));
        const pt_http_fault_t *f = fault_of(c);
        ASSERT(f != NULL);
        ASSERT(f->is_grpc_abort);
        ASSERT_EQ(f->abort_grpc_status, cases[i].code);
        ASSERT_EQ(f->abort_status, 200); /* a trailers-only reply is HTTP 200 */
        ASSERT_EQ(f->abort_ppm, i == 0 ? 500000u : 0u);
        pt_config_unref(c);
        pt_config_errors_dispose(&e);
    }
}

TEST(fault_grpc_status_errors_name_the_field)
{
    static const char *const bad[] = {
        "{abort: {grpcStatus: UNAVAILABL}}", "{abort: {grpcStatus: unavailable}}",
        "{abort: {grpcStatus: 17}}",         "{abort: {grpcStatus: 1x}}",
        "{abort: {grpcStatus: [14]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[2048];
        pt_config_errors_t e = {0};
        pt_config_t *c = load_str("f.yaml", vs_with(bad[i], buf, sizeof(buf)), &e);
        if (c != NULL)
            fprintf(stderr, "    accepted: %s\n", bad[i]);
        ASSERT(c == NULL);
        ASSERT(has_error_containing(&e, "spec.http[0].fault.abort.grpcStatus"));
        pt_config_errors_dispose(&e);
    }
    char buf[2048];
    pt_config_errors_t e = {0};
    ASSERT(load_str("f.yaml", vs_with("{abort: {grpcStatus: UNAVAILABL}}", buf, sizeof(buf)), &e) ==
           NULL);
    ASSERT(has_error_containing(&e, "did you mean \"UNAVAILABLE\""));
    pt_config_errors_dispose(&e);
}

TEST(fault_errors)
{
    static const char *const bad[] = {
        "{abort: {httpStatus: 199}}",
        "{abort: {httpStatus: 500, percentage: {value: 100.5}}}",
        "{abort: {httpStatus: 500, percentage: {value: -1}}}",
        "{abort: {httpStatus: 500, percentage: {value: nan}}}",
        "{abort: {percentage: {value: 1}}}",
        "{abort: {httpStatus: 500, grpcStatus: UNAVAILABLE}}",
        "{delay: {percentage: {value: 1}}}",
        "{delay: {fixedDelay: 0s}}",
        "{delay: {fixedDelay: 1s, percent: 101}}",
        "{delay: {fixedDelay: 1s, bogus: 1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[2048];
        pt_config_errors_t e = {0};
        pt_config_t *c = load_str("f.yaml", vs_with(bad[i], buf, sizeof(buf)), &e);
        if (c != NULL)
            fprintf(stderr, "    accepted: %s\n", bad[i]);
        ASSERT(c == NULL);
        ASSERT(has_error_containing(&e, "spec.http[0].fault"));
        pt_config_errors_dispose(&e);
    }
}
