/* tests/unit/proxy/keep_alive.c
 * The Keep-Alive header's timeout parameter (proxy/keep_alive.c) and the pooled idle time
 * Petrel derives from it. */
#include <string.h>

#include "proxy/keep_alive.h"
#include "test.h"

static int64_t parse(const char *v)
{
    return pt_keep_alive_timeout_s(v, strlen(v));
}

TEST(timeout_parameter_is_read)
{
    ASSERT_EQ(parse("timeout=5, max=100"), 5);
    ASSERT_EQ(parse("max=100, timeout=15"), 15);
    ASSERT_EQ(parse("Timeout=3"), 3);
    ASSERT_EQ(parse("timeout = 7 ,max=2"), 7);
    ASSERT_EQ(parse("max=3; timeout=\"60\""), 60);
    ASSERT_EQ(parse("timeout=0"), 0);
}

TEST(malformed_or_absent_timeout_is_none)
{
    ASSERT_EQ(parse(""), -1);
    ASSERT_EQ(parse("max=100"), -1);
    ASSERT_EQ(parse("timeout="), -1);
    ASSERT_EQ(parse("timeout=5x"), -1);
    ASSERT_EQ(parse("timeout=-1"), -1);
    ASSERT_EQ(parse("timeouts=5"), -1);
    ASSERT_EQ(parse("xtimeout=5"), -1);
    /* A value cut mid-buffer is read only up to len. */
    ASSERT_EQ(pt_keep_alive_timeout_s("timeout=5", 8), -1);
}

TEST(huge_timeout_is_capped_at_a_day)
{
    ASSERT_EQ(parse("timeout=99999999999999999999999"), 86400);
}

TEST(idle_time_is_one_second_under_the_upstreams)
{
    ASSERT_EQ(pt_keep_alive_idle_ms(60000, -1), 60000u); /* nothing announced */
    ASSERT_EQ(pt_keep_alive_idle_ms(60000, 5), 4000u);
    ASSERT_EQ(pt_keep_alive_idle_ms(60000, 2), 1000u);
    ASSERT_EQ(pt_keep_alive_idle_ms(60000, 1), 500u);  /* the floor */
    ASSERT_EQ(pt_keep_alive_idle_ms(3000, 75), 3000u); /* the configured limit is smaller */
    ASSERT_EQ(pt_keep_alive_idle_ms(60000, 0), 0u);    /* timeout=0: do not pool */
}
