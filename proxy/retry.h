/* proxy/retry.h
 * Retry policy of a route (VirtualService http[].retries) and the pure arithmetic the attempt
 * loop in stream.c runs on: the retryOn grammar (Envoy's x-envoy-retry-on conditions, Istio's
 * plain status codes), which outcome of an attempt a policy retries, exponential backoff with
 * full jitter, and the retry budgets (Linkerd's token bucket, Envoy's concurrency budget).
 *
 * Nothing here does I/O or keeps a clock of its own: the caller passes times and random draws,
 * so every function is tested as arithmetic (tests/unit/proxy/retry.c). */
#ifndef PT_RETRY_H
#define PT_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* retryOn conditions (bits). */
#define PT_RETRY_ON_5XX (1u << 0)
#define PT_RETRY_ON_GATEWAY_ERROR (1u << 1)
#define PT_RETRY_ON_RESET (1u << 2)
#define PT_RETRY_ON_CONNECT_FAILURE (1u << 3)
#define PT_RETRY_ON_RETRIABLE_4XX (1u << 4)
#define PT_RETRY_ON_REFUSED_STREAM (1u << 5)
#define PT_RETRY_ON_STATUS_CODES (1u << 6) /* retriable-status-codes */
#define PT_RETRY_ON_RETRIABLE_HEADERS (1u << 7)
#define PT_RETRY_ON_RESET_BEFORE_REQUEST (1u << 8)
#define PT_RETRY_ON_ENVOY_RATELIMITED (1u << 9)
#define PT_RETRY_ON_GRPC_CANCELLED (1u << 10)
#define PT_RETRY_ON_GRPC_DEADLINE_EXCEEDED (1u << 11)
#define PT_RETRY_ON_GRPC_INTERNAL (1u << 12)
#define PT_RETRY_ON_GRPC_RESOURCE_EXHAUSTED (1u << 13)
#define PT_RETRY_ON_GRPC_UNAVAILABLE (1u << 14)

#define PT_RETRY_MAX_CODES 16

typedef struct pt_retry_policy {
    uint32_t attempts;                  /* retries after the first try (Istio's attempts) */
    uint64_t per_try_timeout_ms;        /* 0: each try is bounded by the route timeout only */
    uint32_t on;                        /* PT_RETRY_ON_* */
    uint16_t codes[PT_RETRY_MAX_CODES]; /* retriable-status-codes / plain codes */
    uint8_t n_codes;
    uint64_t backoff_base_ms;   /* 25 (Envoy's default) or retries.backoff */
    uint64_t backoff_max_ms;    /* 10 x base: 250 */
    bool ignore_previous_hosts; /* retryIgnorePreviousHosts, true by default (Istio) */
    bool is_explicit;           /* written in the route: honoured for every method */
} pt_retry_policy_t;

/* What ended an attempt without a usable response head. */
typedef enum pt_retry_failure {
    PT_RETRY_FAIL_CONNECT,         /* connect refused or timed out: nothing reached the upstream */
    PT_RETRY_FAIL_RESET,           /* reset or closed before the response head */
    PT_RETRY_FAIL_PER_TRY_TIMEOUT, /* no response head within perTryTimeout */
} pt_retry_failure_t;

/* Petrel's defaults for a route without retries (see docs/config.md): Istio's default policy
 * for idempotent methods; for the others, only what never reached the upstream. */
extern const pt_retry_policy_t pt_retry_default_idempotent;
extern const pt_retry_policy_t pt_retry_default_unsafe;

/* Istio's default policy when a route has none: 2 retries on connect-failure, refused-stream,
 * unavailable, cancelled and retriable-status-codes 503. */
void pt_retry_policy_default(pt_retry_policy_t *p);

/* Parses a retryOn string: comma-separated Envoy conditions and plain HTTP status codes
 * (Istio turns "503" into retriable-status-codes with 503). Blanks around items are allowed.
 * Returns 0, or -1 with *bad pointing at the offending item in s and *bad_len its length. */
int pt_retry_on_parse(const char *s, pt_retry_policy_t *p, const char **bad, size_t *bad_len);

/* Whether a response head with status (and grpc-status, -1 when absent; ratelimited: the
 * upstream set x-envoy-ratelimited) is retried under p. */
bool pt_retry_on_response(const pt_retry_policy_t *p, int status, int grpc_status,
                          bool ratelimited);
/* Whether a failure is retried under p. */
bool pt_retry_on_failure(const pt_retry_policy_t *p, pt_retry_failure_t f);

/* Exponential backoff with full jitter, as Envoy: retry n (1, 2, ...) waits a uniform draw in
 * [0, (2^n - 1) x base), the range capped at max. random is a uniform 32-bit draw. */
uint64_t pt_retry_backoff_ms(const pt_retry_policy_t *p, unsigned n, uint32_t random);

/* Linkerd's budget: every request deposits ratio of a retry, and min_per_s retries per second
 * are granted whatever the traffic; a retry withdraws one. Deposits older than the TTL expire,
 * which a cap of (ratio x requests + min_per_s) x ttl approximates: the bucket never holds
 * more than ttl seconds of what it would earn at min_per_s plus the cap on deposits. Shared by
 * every worker: the fields are atomics, updated with compare-and-swap loops. */
#define PT_RETRY_BUDGET_RATIO_MILLI 200u /* 20 % */
#define PT_RETRY_BUDGET_MIN_PER_S 10u
#define PT_RETRY_BUDGET_TTL_S 10u
#define PT_RETRY_TOKEN 1000 /* one retry, in milli-tokens */

typedef struct pt_retry_budget {
    _Atomic int64_t tokens;     /* milli-retries available */
    _Atomic uint64_t refill_ms; /* when the per-second floor was last added */
} pt_retry_budget_t;

void pt_retry_budget_init(pt_retry_budget_t *b, uint64_t now_ms);
/* A request (first attempt) went to the cluster. */
void pt_retry_budget_deposit(pt_retry_budget_t *b);
/* Takes one retry when the budget allows it. */
bool pt_retry_budget_withdraw(pt_retry_budget_t *b, uint64_t now_ms);

/* Envoy's retry budget (Istio's DestinationRule retryBudget): retries in flight may reach
 * percent of the active requests, and never fewer than min_concurrency. */
bool pt_retry_budget_concurrency_allows(double percent, uint32_t min_concurrency,
                                        uint64_t active_requests, uint64_t active_retries);

/* GET, HEAD, OPTIONS, PUT, DELETE, TRACE (RFC 9110 §9.2.2). method_id is llhttp's. */
bool pt_retry_method_is_idempotent(int method_id);

#endif
