/* tests/unit/proxy/mirror.c
 * The mirrored Host (proxy/mirror.c): Istio's "-shadow" suffix goes on the host, before the
 * port. */
#include <string.h>

#include "proxy/mirror.h"
#include "test.h"

static const char *shadow(const char *a)
{
    static char out[128];
    size_t n = pt_mirror_shadow_host(a, strlen(a), out, sizeof(out) - 1);
    out[n] = '\0';
    return out;
}

TEST(shadow_suffix_before_the_port)
{
    ASSERT_STREQ(shadow("httpbin"), "httpbin-shadow");
    ASSERT_STREQ(shadow("httpbin:8000"), "httpbin-shadow:8000");
    ASSERT_STREQ(shadow("web.example.com:80"), "web.example.com-shadow:80");
    ASSERT_STREQ(shadow("10.0.0.1:8080"), "10.0.0.1-shadow:8080");
    ASSERT_STREQ(shadow("[::1]:8080"), "[::1]-shadow:8080");
    ASSERT_STREQ(shadow("[::1]"), "[::1]-shadow");
    ASSERT_STREQ(shadow("host:"), "host-shadow:");
}

TEST(shadow_host_does_not_overflow)
{
    char out[10];
    ASSERT_EQ(pt_mirror_shadow_host("httpbin", 7, out, sizeof(out)), 0u);
    ASSERT_EQ(pt_mirror_shadow_host("abc", 3, out, sizeof(out)), 10u);
}
