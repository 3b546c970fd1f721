/* tests/unit/proxy/log.c: the rate limit of repeated log lines. */
#include "../../../proxy/log.h"
#include "test.h"

TEST(log_limit_passes_first_then_one_per_interval)
{
    pt_log_limit_t lim = {0};
    uint64_t suppressed = 99;
    ASSERT_EQ(pt_log_limit_pass(&lim, 10000, 5000, &suppressed), true);
    ASSERT_EQ(suppressed, 0);
    ASSERT_EQ(pt_log_limit_pass(&lim, 10001, 5000, &suppressed), false);
    ASSERT_EQ(pt_log_limit_pass(&lim, 14999, 5000, &suppressed), false);
    ASSERT_EQ(pt_log_limit_pass(&lim, 15000, 5000, &suppressed), true);
    ASSERT_EQ(suppressed, 2);
    ASSERT_EQ(pt_log_limit_pass(&lim, 30000, 5000, &suppressed), true);
    ASSERT_EQ(suppressed, 0);
}

TEST(log_limit_counts_each_call_site_apart)
{
    pt_log_limit_t a = {0}, b = {0};
    uint64_t suppressed;
    ASSERT_EQ(pt_log_limit_pass(&a, 1000, 1000, &suppressed), true);
    ASSERT_EQ(pt_log_limit_pass(&b, 1000, 1000, &suppressed), true);
    for (int i = 0; i < 81; i++)
        ASSERT_EQ(pt_log_limit_pass(&a, 1500, 1000, &suppressed), false);
    ASSERT_EQ(pt_log_limit_pass(&b, 2000, 1000, &suppressed), true);
    ASSERT_EQ(suppressed, 0);
    ASSERT_EQ(pt_log_limit_pass(&a, 2000, 1000, &suppressed), true);
    ASSERT_EQ(suppressed, 81);
}
