/* tests/unit/proxy/retry.c
 * proxy/retry.c: the retryOn grammar, which outcomes a policy retries, backoff with full
 * jitter, the token-bucket budget and the concurrency budget; proxy/breaker.c: the counters
 * under contention and the registry's identity of a cluster. */
#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "proxy/breaker.h"
#include "proxy/retry.h"
#include "test.h"

static int parse(const char *s, pt_retry_policy_t *p)
{
    const char *bad;
    size_t bad_len;
    pt_retry_policy_default(p);
    return pt_retry_on_parse(s, p, &bad, &bad_len);
}

TEST(retry_on_parses_every_condition)
{
    pt_retry_policy_t p;
    ASSERT_EQ(parse("5xx,gateway-error,reset,connect-failure,retriable-4xx,refused-stream,"
                    "retriable-status-codes,retriable-headers,reset-before-request,"
                    "envoy-ratelimited,cancelled,deadline-exceeded,internal,resource-exhausted,"
                    "unavailable",
                    &p),
              0);
    ASSERT_EQ(p.on, (1u << 15) - 1);
    ASSERT_EQ(p.n_codes, 0);
}

TEST(retry_on_plain_codes_and_blanks)
{
    pt_retry_policy_t p;
    ASSERT_EQ(parse("503, connect-failure ,429", &p), 0);
    ASSERT_EQ(p.on, PT_RETRY_ON_CONNECT_FAILURE | PT_RETRY_ON_STATUS_CODES);
    ASSERT_EQ(p.n_codes, 2);
    ASSERT_EQ(p.codes[0], 503);
    ASSERT_EQ(p.codes[1], 429);
    ASSERT(pt_retry_on_response(&p, 429, -1, false));
    ASSERT(!pt_retry_on_response(&p, 500, -1, false));
}

TEST(retry_on_rejects_unknown_items)
{
    pt_retry_policy_t p;
    const char *bad;
    size_t bad_len;
    const char *s = "5xx,bogus,reset";
    ASSERT_EQ(pt_retry_on_parse(s, &p, &bad, &bad_len), -1);
    ASSERT_EQ(bad_len, 5u);
    ASSERT(memcmp(bad, "bogus", 5) == 0);
    ASSERT_EQ(parse("", &p), -1);
    ASSERT_EQ(parse("5xx,", &p), -1);
    ASSERT_EQ(parse("600", &p), -1);
    ASSERT_EQ(parse("50", &p), -1);
    ASSERT_EQ(parse("5XX", &p), -1);
}

TEST(retry_on_response_classes)
{
    pt_retry_policy_t p;
    ASSERT_EQ(parse("5xx", &p), 0);
    ASSERT(pt_retry_on_response(&p, 500, -1, false));
    ASSERT(pt_retry_on_response(&p, 599, -1, false));
    ASSERT(!pt_retry_on_response(&p, 404, -1, false));
    ASSERT_EQ(parse("gateway-error", &p), 0);
    ASSERT(!pt_retry_on_response(&p, 500, -1, false));
    ASSERT(pt_retry_on_response(&p, 502, -1, false));
    ASSERT(pt_retry_on_response(&p, 504, -1, false));
    ASSERT_EQ(parse("retriable-4xx", &p), 0);
    ASSERT(pt_retry_on_response(&p, 409, -1, false));
    ASSERT(!pt_retry_on_response(&p, 429, -1, false));
    ASSERT_EQ(parse("envoy-ratelimited", &p), 0);
    ASSERT(pt_retry_on_response(&p, 429, -1, true));
    ASSERT(!pt_retry_on_response(&p, 429, -1, false));
    ASSERT_EQ(parse("unavailable,internal", &p), 0);
    ASSERT(pt_retry_on_response(&p, 200, 14, false));
    ASSERT(pt_retry_on_response(&p, 200, 13, false));
    ASSERT(!pt_retry_on_response(&p, 200, 4, false));
    ASSERT(!pt_retry_on_response(&p, 200, -1, false));
}

TEST(retry_on_failures)
{
    pt_retry_policy_t p;
    ASSERT_EQ(parse("connect-failure", &p), 0);
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_CONNECT));
    ASSERT(!pt_retry_on_failure(&p, PT_RETRY_FAIL_RESET));
    ASSERT(!pt_retry_on_failure(&p, PT_RETRY_FAIL_PER_TRY_TIMEOUT));
    ASSERT_EQ(parse("reset", &p), 0);
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_RESET));
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_CONNECT));
    ASSERT_EQ(parse("retriable-status-codes,503", &p), 0);
    ASSERT(!pt_retry_on_failure(&p, PT_RETRY_FAIL_RESET));
    ASSERT_EQ(parse("gateway-error", &p), 0);
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_PER_TRY_TIMEOUT));
    /* A refused stream never reached the application: refused-stream, or anything that
     * retries resets. */
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_REFUSED_STREAM));
    ASSERT_EQ(parse("refused-stream", &p), 0);
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_REFUSED_STREAM));
    ASSERT(!pt_retry_on_failure(&p, PT_RETRY_FAIL_RESET));
    ASSERT_EQ(parse("connect-failure", &p), 0);
    ASSERT(!pt_retry_on_failure(&p, PT_RETRY_FAIL_REFUSED_STREAM));
}

TEST(retry_default_is_istios)
{
    pt_retry_policy_t p;
    pt_retry_policy_default(&p);
    ASSERT_EQ(p.attempts, 2u);
    ASSERT(p.ignore_previous_hosts);
    ASSERT(!p.is_explicit);
    ASSERT(pt_retry_on_response(&p, 503, -1, false));
    ASSERT(!pt_retry_on_response(&p, 500, -1, false));
    ASSERT(pt_retry_on_response(&p, 200, 14, false)); /* unavailable */
    ASSERT(pt_retry_on_response(&p, 200, 1, false));  /* cancelled */
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_CONNECT));
    ASSERT(!pt_retry_on_failure(&p, PT_RETRY_FAIL_RESET));
    ASSERT(pt_retry_on_failure(&p, PT_RETRY_FAIL_REFUSED_STREAM));
}

TEST(backoff_full_jitter_ranges)
{
    pt_retry_policy_t p;
    pt_retry_policy_default(&p);
    /* retry n draws in [0, (2^n - 1) * 25), capped at 250 */
    uint64_t max_seen[6] = {0};
    for (uint32_t r = 0; r < 100000; r++)
        for (unsigned n = 1; n <= 5; n++) {
            uint64_t b = pt_retry_backoff_ms(&p, n, r * 2654435761u);
            if (b > max_seen[n])
                max_seen[n] = b;
        }
    ASSERT_EQ(max_seen[1], 24u);
    ASSERT_EQ(max_seen[2], 74u);
    ASSERT_EQ(max_seen[3], 174u);
    ASSERT_EQ(max_seen[4], 249u);
    ASSERT_EQ(max_seen[5], 249u);
    ASSERT_EQ(pt_retry_backoff_ms(&p, 40, UINT32_MAX), UINT32_MAX % 250u);
    p.backoff_base_ms = 0;
    ASSERT_EQ(pt_retry_backoff_ms(&p, 3, 12345), 0u);
}

TEST(token_budget_ratio_and_floor)
{
    pt_retry_budget_t b;
    pt_retry_budget_init(&b, 1000);
    /* one second's floor to start with: 10 retries, then none */
    unsigned granted = 0;
    for (int i = 0; i < 50; i++)
        granted += pt_retry_budget_withdraw(&b, 1000);
    ASSERT_EQ(granted, 10u);
    /* 100 requests deposit 20 retries */
    for (int i = 0; i < 100; i++)
        pt_retry_budget_deposit(&b);
    granted = 0;
    for (int i = 0; i < 50; i++)
        granted += pt_retry_budget_withdraw(&b, 1000);
    ASSERT_EQ(granted, 20u);
    /* half a second later: 5 more from the floor */
    granted = 0;
    for (int i = 0; i < 50; i++)
        granted += pt_retry_budget_withdraw(&b, 1500);
    ASSERT_EQ(granted, 5u);
    /* a long idle spell fills at most the cap (10 s of floor) */
    granted = 0;
    for (int i = 0; i < 500; i++)
        granted += pt_retry_budget_withdraw(&b, 1000000);
    ASSERT_EQ(granted, 100u);
}

TEST(concurrency_budget)
{
    ASSERT(pt_retry_budget_concurrency_allows(20.0, 3, 0, 2));
    ASSERT(!pt_retry_budget_concurrency_allows(20.0, 3, 0, 3));
    ASSERT(pt_retry_budget_concurrency_allows(20.0, 3, 100, 19));
    ASSERT(!pt_retry_budget_concurrency_allows(20.0, 3, 100, 20));
    ASSERT(!pt_retry_budget_concurrency_allows(0.0, 0, 100, 0));
}

TEST(idempotent_methods)
{
    ASSERT(pt_retry_method_is_idempotent(HTTP_GET));
    ASSERT(pt_retry_method_is_idempotent(HTTP_PUT));
    ASSERT(pt_retry_method_is_idempotent(HTTP_DELETE));
    ASSERT(!pt_retry_method_is_idempotent(HTTP_POST));
    ASSERT(!pt_retry_method_is_idempotent(HTTP_PATCH));
}

/* Four threads take and give back slots of one counter as fast as they can: the count never
 * passes the limit and ends at zero. */
static _Atomic uint32_t shared_counter;
static _Atomic uint32_t seen_over;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        if (pt_breaker_try_acquire(&shared_counter, 3)) {
            if (atomic_load(&shared_counter) > 3)
                atomic_store(&seen_over, 1);
            pt_breaker_release(&shared_counter);
        }
    }
    return NULL;
}

TEST(breaker_limit_holds_across_threads)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&seen_over), 0u);
    ASSERT_EQ(atomic_load(&shared_counter), 0u);
    _Atomic uint32_t c = 0;
    ASSERT(pt_breaker_try_acquire(&c, 1));
    ASSERT(!pt_breaker_try_acquire(&c, 1));
    pt_breaker_release(&c);
    ASSERT(pt_breaker_try_acquire(&c, 1));
}

TEST(cluster_state_is_shared_by_name_and_limits)
{
    pt_conn_pool_settings_t s;
    pt_conn_pool_settings_default(&s);
    pt_cluster_state_t *a = pt_cluster_state_get("outbound|80||a", &s);
    ASSERT(a == pt_cluster_state_get("outbound|80||a", &s));
    s.connect_timeout_ms = 5; /* not a limit: same counters */
    ASSERT(a == pt_cluster_state_get("outbound|80||a", &s));
    s.max_connections = 7; /* another limit: fresh counters */
    ASSERT(a != pt_cluster_state_get("outbound|80||a", &s));
    pt_conn_pool_settings_default(&s);
    ASSERT(a != pt_cluster_state_get("outbound|80||b", &s));
}
