/* proxy/retry.c
 * The retry decision for one attempt's outcome, backoff and budgets. See retry.h; the attempt
 * loop that uses them is in stream.c, the retryOn grammar in config/policy.c. */
#include "retry.h"

#include <llhttp.h>
#include <string.h>

bool pt_retry_on_response(const pt_retry_policy_t *p, int status, int grpc_status, bool ratelimited)
{
    uint32_t on = p->on;
    if ((on & PT_RETRY_ON_5XX) && status >= 500 && status <= 599)
        return true;
    if ((on & PT_RETRY_ON_GATEWAY_ERROR) && status >= 502 && status <= 504)
        return true;
    if ((on & PT_RETRY_ON_RETRIABLE_4XX) && status == 409)
        return true;
    if ((on & PT_RETRY_ON_ENVOY_RATELIMITED) && ratelimited)
        return true;
    if (on & PT_RETRY_ON_STATUS_CODES)
        for (unsigned i = 0; i < p->n_codes; i++)
            if (p->codes[i] == status)
                return true;
    /* gRPC status codes (grpc-status in a trailers-only response head) */
    switch (grpc_status) {
    case 1: return (on & PT_RETRY_ON_GRPC_CANCELLED) != 0;
    case 4: return (on & PT_RETRY_ON_GRPC_DEADLINE_EXCEEDED) != 0;
    case 8: return (on & PT_RETRY_ON_GRPC_RESOURCE_EXHAUSTED) != 0;
    case 13: return (on & PT_RETRY_ON_GRPC_INTERNAL) != 0;
    case 14: return (on & PT_RETRY_ON_GRPC_UNAVAILABLE) != 0;
    default: return false;
    }
}

bool pt_retry_on_failure(const pt_retry_policy_t *p, pt_retry_failure_t f)
{
    /* As Envoy: 5xx and gateway-error cover every failure to get a response; reset covers
     * resets and timeouts; connect-failure only connections that never opened. */
    uint32_t any = PT_RETRY_ON_5XX | PT_RETRY_ON_GATEWAY_ERROR | PT_RETRY_ON_RESET;
    switch (f) {
    case PT_RETRY_FAIL_CONNECT:
        return (p->on & (any | PT_RETRY_ON_CONNECT_FAILURE | PT_RETRY_ON_RESET_BEFORE_REQUEST)) !=
               0;
    case PT_RETRY_FAIL_RESET:
    case PT_RETRY_FAIL_PER_TRY_TIMEOUT: return (p->on & any) != 0;
    case PT_RETRY_FAIL_REFUSED_STREAM: return (p->on & (any | PT_RETRY_ON_REFUSED_STREAM)) != 0;
    }
    return false;
}

uint64_t pt_retry_backoff_ms(const pt_retry_policy_t *p, unsigned n, uint32_t random)
{
    if (p->backoff_base_ms == 0)
        return 0;
    uint64_t range = p->backoff_max_ms;
    if (n < 32) {
        uint64_t mult = (UINT64_C(1) << n) - 1;
        if (mult * p->backoff_base_ms < range)
            range = mult * p->backoff_base_ms;
    }
    return range == 0 ? 0 : random % range;
}

static const int64_t budget_cap =
    (int64_t)PT_RETRY_BUDGET_MIN_PER_S * PT_RETRY_BUDGET_TTL_S * PT_RETRY_TOKEN;

static void budget_add(pt_retry_budget_t *b, int64_t add)
{
    int64_t cur = atomic_load_explicit(&b->tokens, memory_order_relaxed);
    for (;;) {
        int64_t next = cur + add > budget_cap ? budget_cap : cur + add;
        if (next <= cur)
            return;
        if (atomic_compare_exchange_weak_explicit(&b->tokens, &cur, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

void pt_retry_budget_deposit(pt_retry_budget_t *b)
{
    budget_add(b, PT_RETRY_BUDGET_RATIO_MILLI);
}

bool pt_retry_budget_withdraw(pt_retry_budget_t *b, uint64_t now_ms)
{
    /* The per-second floor, for the time since the last refill: whoever moves refill_ms
     * forward adds what that span earned. */
    uint64_t last = atomic_load_explicit(&b->refill_ms, memory_order_relaxed);
    while (now_ms > last) {
        if (atomic_compare_exchange_weak_explicit(&b->refill_ms, &last, now_ms,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            uint64_t span = now_ms - last;
            if (span > (uint64_t)PT_RETRY_BUDGET_TTL_S * 1000)
                span = (uint64_t)PT_RETRY_BUDGET_TTL_S * 1000;
            budget_add(b, (int64_t)span * PT_RETRY_BUDGET_MIN_PER_S); /* milli per ms */
            break;
        }
    }
    int64_t cur = atomic_load_explicit(&b->tokens, memory_order_relaxed);
    while (cur >= PT_RETRY_TOKEN)
        if (atomic_compare_exchange_weak_explicit(&b->tokens, &cur, cur - PT_RETRY_TOKEN,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    return false;
}

bool pt_retry_budget_concurrency_allows(double percent, uint32_t min_concurrency,
                                        uint64_t active_requests, uint64_t active_retries)
{
    double limit = (double)active_requests * percent / 100.0;
    if (limit < (double)min_concurrency)
        limit = (double)min_concurrency;
    return (double)active_retries < limit;
}

bool pt_retry_method_is_idempotent(int method_id)
{
    switch (method_id) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_TRACE: return true;
    default: return false;
    }
}
