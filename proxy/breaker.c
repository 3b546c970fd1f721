/* proxy/breaker.c
 * The circuit-breaker counters. See breaker.h; the registry that hands each cluster its state
 * is in config/policy.c. */
#include "breaker.h"

bool pt_breaker_try_acquire(_Atomic uint32_t *counter, uint32_t limit)
{
    uint32_t cur = atomic_load_explicit(counter, memory_order_relaxed);
    do {
        if (cur >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(counter, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void pt_breaker_release(_Atomic uint32_t *counter)
{
    atomic_fetch_sub_explicit(counter, 1, memory_order_relaxed);
}
