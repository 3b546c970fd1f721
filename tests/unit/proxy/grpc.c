/* tests/unit/proxy/grpc.c
 * proxy/grpc.c: which requests are gRPC calls, the HTTP status to gRPC status map of local
 * replies, the grpc-timeout grammar (units, bounds, rounding, malformed values) and the
 * grpc-message percent-encoding. */
#include <string.h>

#include "proxy/grpc.h"
#include "test.h"

static bool is_grpc_with(const char *content_type)
{
    pt_header_t h = {pt_str(content_type), pt_str(content_type), 0};
    h.name = PT_STR_LIT("Content-Type");
    pt_http_msg_t m = {.headers = &h, .n_headers = 1};
    return pt_grpc_is_request(&m);
}

TEST(grpc_request_by_content_type)
{
    ASSERT(is_grpc_with("application/grpc"));
    ASSERT(is_grpc_with("application/grpc+proto"));
    ASSERT(is_grpc_with("Application/GRPC;charset=utf-8"));
    ASSERT(!is_grpc_with("application/grpc-web"));
    ASSERT(!is_grpc_with("application/grpc-web+proto"));
    ASSERT(!is_grpc_with("application/json"));
    ASSERT(!is_grpc_with("application/grp"));
    pt_http_msg_t none = {0};
    ASSERT(!pt_grpc_is_request(&none));
    ASSERT(!pt_grpc_is_request(NULL));
}

TEST(grpc_status_for_http_status_as_envoy_maps_it)
{
    ASSERT_EQ(pt_grpc_status_for_http(400), 13);
    ASSERT_EQ(pt_grpc_status_for_http(401), 16);
    ASSERT_EQ(pt_grpc_status_for_http(403), 7);
    ASSERT_EQ(pt_grpc_status_for_http(404), 12);
    ASSERT_EQ(pt_grpc_status_for_http(429), 14);
    ASSERT_EQ(pt_grpc_status_for_http(502), 14);
    ASSERT_EQ(pt_grpc_status_for_http(503), 14);
    ASSERT_EQ(pt_grpc_status_for_http(504), 4);
    ASSERT_EQ(pt_grpc_status_for_http(500), 2);
    ASSERT_EQ(pt_grpc_status_for_http(301), 2);
    ASSERT_EQ(pt_grpc_status_for_http(431), 2);
}

static uint64_t timeout_of(const char *v)
{
    uint64_t ms = 12345;
    return pt_grpc_timeout_parse(pt_str(v), &ms) ? ms : UINT64_MAX;
}

TEST(grpc_timeout_units_and_rounding)
{
    ASSERT_EQ(timeout_of("2H"), 7200000u);
    ASSERT_EQ(timeout_of("3M"), 180000u);
    ASSERT_EQ(timeout_of("20S"), 20000u);
    ASSERT_EQ(timeout_of("250m"), 250u);
    ASSERT_EQ(timeout_of("1500u"), 2u); /* rounded up: the deadline is never early */
    ASSERT_EQ(timeout_of("1000u"), 1u);
    ASSERT_EQ(timeout_of("1n"), 1u);
    ASSERT_EQ(timeout_of("99999999n"), 100u);
    ASSERT_EQ(timeout_of("99999999H"), 99999999ull * 3600000u); /* 8 digits of hours fit */
    ASSERT_EQ(timeout_of("00000001S"), 1000u);
}

TEST(grpc_timeout_malformed_values_are_refused)
{
    static const char *const bad[] = {"",     "S",   "1",     "1s",        "1h",
                                      "1x",   "-1S", "+1S",   " 1S",       "1S ",
                                      "1.5S", "0S",  "0000m", "123456789S" /* 9 digits */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (timeout_of(bad[i]) != UINT64_MAX)
            fprintf(stderr, "    accepted: \"%s\"\n", bad[i]);
        ASSERT_EQ(timeout_of(bad[i]), UINT64_MAX);
    }
}

TEST(grpc_message_percent_encoding)
{
    char out[64];
    ASSERT_STREQ(pt_grpc_message_encode("no healthy upstream", out, sizeof(out)),
                 "no healthy upstream");
    ASSERT_STREQ(pt_grpc_message_encode("100% done\r\nx", out, sizeof(out)), "100%25 done%0D%0Ax");
    ASSERT_STREQ(pt_grpc_message_encode("caf\xc3\xa9", out, sizeof(out)), "caf%C3%A9");
    /* 3 * strlen + 1 always fits, and a smaller buffer is cut at a whole character */
    char small[6];
    ASSERT_STREQ(pt_grpc_message_encode("%%%", small, sizeof(small)), "%25");
    ASSERT_STREQ(pt_grpc_message_encode("", out, sizeof(out)), "");
}
