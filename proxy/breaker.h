/* proxy/breaker.h
 * Per-cluster runtime state shared by every worker: the circuit-breaker counts of a
 * DestinationRule connectionPool (connections, pending requests, active requests, active
 * retries) and the cluster's retry budget.
 *
 * This state outlives config snapshots (DESIGN.md §3): compile looks it up
 * (pt_cluster_state_get, config/policy.c) by a key made of the cluster name and the limits that
 * govern it, so a reload that does not change a cluster hands the new snapshot the same
 * counters, and a request of the old snapshot still in flight decrements the counter it
 * incremented. Entries live in one process-wide registry and are
 * never freed (a few hundred bytes per cluster identity ever loaded). Counts are atomics;
 * the registry's lock is taken at compile time only, never on the request path. */
#ifndef PT_BREAKER_H
#define PT_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../config/policy.h"

/* Takes one unit of counter if it stays within limit; false (nothing taken) otherwise. */
bool pt_breaker_try_acquire(_Atomic uint32_t *counter, uint32_t limit);
void pt_breaker_release(_Atomic uint32_t *counter);

#endif
