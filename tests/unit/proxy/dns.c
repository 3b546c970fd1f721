/* tests/unit/proxy/dns.c
 * The resolver's pure arithmetic (proxy/dns.c): refresh after the TTL clamped to
 * [minRefresh, maxRefresh], failure backoff, the smallest TTL along a CNAME chain, IPv4
 * preferred over IPv6, and answer comparison regardless of order. */
#include <ares.h>
#include <arpa/inet.h>
#include <string.h>

#include "proxy/dns.h"
#include "test.h"

static struct sockaddr_storage v4(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    inet_pton(AF_INET, s, &in->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;
    in->sin6_family = AF_INET6;
    inet_pton(AF_INET6, s, &in->sin6_addr);
    return ss;
}

TEST(refresh_follows_the_ttl_within_bounds)
{
    ASSERT_EQ(pt_dns_refresh_ms(30, 5000, 300000), 30000u);
    ASSERT_EQ(pt_dns_refresh_ms(0, 5000, 300000), 5000u);       /* TTL 0: the floor */
    ASSERT_EQ(pt_dns_refresh_ms(1, 5000, 300000), 5000u);       /* below the floor */
    ASSERT_EQ(pt_dns_refresh_ms(86400, 5000, 300000), 300000u); /* above the ceiling */
    ASSERT_EQ(pt_dns_refresh_ms(UINT32_MAX, 1000, UINT64_MAX), (uint64_t)UINT32_MAX * 1000);
}

TEST(failures_back_off_exponentially_to_a_cap)
{
    ASSERT_EQ(pt_dns_retry_ms(1, 1000, 300000), 1000u);
    ASSERT_EQ(pt_dns_retry_ms(2, 1000, 300000), 2000u);
    ASSERT_EQ(pt_dns_retry_ms(4, 1000, 300000), 8000u);
    ASSERT_EQ(pt_dns_retry_ms(5, 1000, 300000), 10000u); /* 10 x minRefresh */
    ASSERT_EQ(pt_dns_retry_ms(1000, 1000, 300000), 10000u);
    ASSERT_EQ(pt_dns_retry_ms(9, 5000, 20000), 20000u); /* maxRefresh when lower */
}

TEST(min_ttl_covers_records_and_the_cname_chain)
{
    struct ares_addrinfo_node n2 = {.ai_ttl = 300};
    struct ares_addrinfo_node n1 = {.ai_ttl = 60, .ai_next = &n2};
    struct ares_addrinfo_cname c2 = {.ttl = 7};
    struct ares_addrinfo_cname c1 = {.ttl = 3600, .next = &c2};
    struct ares_addrinfo ai = {.nodes = &n1};
    ASSERT_EQ(pt_dns_min_ttl(&ai), 60u);
    ai.cnames = &c1;
    ASSERT_EQ(pt_dns_min_ttl(&ai), 7u);
    struct ares_addrinfo empty = {0};
    ASSERT_EQ(pt_dns_min_ttl(&empty), 0u);
    ASSERT_EQ(pt_dns_min_ttl(NULL), 0u);
}

TEST(ipv4_first_then_ipv6_without_duplicates)
{
    struct sockaddr_storage v[] = {v6("::1"), v4("10.0.0.2"), v4("10.0.0.1"), v4("10.0.0.2")};
    size_t n = pt_dns_prefer_ipv4(v, 4);
    ASSERT_EQ(n, 2u);
    ASSERT_EQ(((struct sockaddr_in *)&v[0])->sin_addr.s_addr, inet_addr("10.0.0.2"));
    ASSERT_EQ(((struct sockaddr_in *)&v[1])->sin_addr.s_addr, inet_addr("10.0.0.1"));
    struct sockaddr_storage only6[] = {v6("2001:db8::1"), v6("2001:db8::2")};
    ASSERT_EQ(pt_dns_prefer_ipv4(only6, 2), 2u);
    ASSERT_EQ(only6[0].ss_family, AF_INET6);
}

TEST(answers_compare_as_sets)
{
    struct sockaddr_storage a[] = {v4("10.0.0.1"), v4("10.0.0.2")};
    struct sockaddr_storage b[] = {v4("10.0.0.2"), v4("10.0.0.1")};
    struct sockaddr_storage c[] = {v4("10.0.0.2"), v4("10.0.0.3")};
    ASSERT(pt_dns_same_addrs(a, 2, b, 2));
    ASSERT(!pt_dns_same_addrs(a, 2, c, 2));
    ASSERT(!pt_dns_same_addrs(a, 2, b, 1));
    ASSERT(pt_dns_same_addrs(a, 0, b, 0));
    struct sockaddr_storage d[] = {v6("::ffff:10.0.0.1"), v4("10.0.0.2")};
    ASSERT(!pt_dns_same_addrs(a, 2, d, 2));
}
