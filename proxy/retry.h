/* proxy/retry.h
 * Retry policy of a route (VirtualService http[].retries) and the pure arithmetic the attempt
 * loop in stream.c runs on (the policy type and the retryOn grammar are in config/policy.h):
 * which outcome of an attempt a policy retries, exponential backoff with full jitter, and the retry
 * budgets (Linkerd's token bucket, Envoy's concurrency budget).
 *
 * Nothing here does I/O or keeps a clock of its own: the caller passes times and random draws,
 * so every function is tested as arithmetic (tests/unit/proxy/retry.c). */
#ifndef PT_RETRY_H
#define PT_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/policy.h"

/* What ended an attempt without a usable response head. */
typedef enum pt_retry_failure {
    PT_RETRY_FAIL_CONNECT,         /* connect refused or timed out: nothing reached the upstream */
    PT_RETRY_FAIL_RESET,           /* reset or closed before the response head */
    PT_RETRY_FAIL_PER_TRY_TIMEOUT, /* no response head within perTryTimeout */
    PT_RETRY_FAIL_REFUSED_STREAM,  /* HTTP/2: the upstream refused the stream unprocessed */
} pt_retry_failure_t;

/* Whether a response head with status (and grpc-status, -1 when absent; ratelimited: the
 * upstream set x-envoy-ratelimited) is retried under p. */
bool pt_retry_on_response(const pt_retry_policy_t *p, int status, int grpc_status,
                          bool ratelimited);
/* Whether a failure is retried under p. */
bool pt_retry_on_failure(const pt_retry_policy_t *p, pt_retry_failure_t f);

/* Exponential backoff with full jitter, as Envoy: retry n (1, 2, ...) waits a uniform draw in
 * [0, (2^n - 1) x base), the range capped at max. random is a uniform 32-bit draw. */
uint64_t pt_retry_backoff_ms(const pt_retry_policy_t *p, unsigned n, uint32_t random);

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
