/* proxy/stats.h
 * Per-worker counters. Each worker writes only its own set, with relaxed atomic loads and stores
 * (a plain add on x86, no locked instruction); the admin thread sums the workers' sets when it
 * is asked. Gauges are counters that also go down. */
#ifndef PT_STATS_H
#define PT_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define PT_STATS_LIST(X)                                                                           \
    X(downstream_cx_total)                                                                         \
    X(downstream_cx_active)                                                                        \
    X(downstream_cx_overflow)                                                                      \
    X(downstream_cx_header_timeout)                                                                \
    X(downstream_cx_idle_timeout)                                                                  \
    X(downstream_rq_total)                                                                         \
    X(downstream_rq_invalid)                                                                       \
    X(downstream_rq_1xx)                                                                           \
    X(downstream_rq_2xx)                                                                           \
    X(downstream_rq_3xx)                                                                           \
    X(downstream_rq_4xx)                                                                           \
    X(downstream_rq_5xx)                                                                           \
    X(downstream_rq_no_route)                                                                      \
    X(downstream_rq_client_closed)                                                                 \
    X(upstream_cx_total)                                                                           \
    X(upstream_cx_active)                                                                          \
    X(upstream_cx_connect_fail)                                                                    \
    X(upstream_cx_connect_timeout)                                                                 \
    X(upstream_cx_idle_closed)                                                                     \
    X(upstream_rq_total)                                                                           \
    X(upstream_rq_reused_connection)                                                               \
    X(upstream_rq_reused_connection_retry)                                                         \
    X(upstream_rq_timeout)                                                                         \
    X(upstream_rq_no_healthy)                                                                      \
    X(upstream_rq_protocol_error)                                                                  \
    X(upstream_rq_reset)                                                                           \
    X(tcp_cx_total)                                                                                \
    X(tcp_cx_active)                                                                               \
    X(tcp_bytes_received)                                                                          \
    X(tcp_bytes_sent)                                                                              \
    X(tunnel_total)

typedef enum pt_stat {
#define PT_STAT_ENUM(name) PT_STAT_##name,
    PT_STATS_LIST(PT_STAT_ENUM)
#undef PT_STAT_ENUM
        PT_STAT__COUNT
} pt_stat_t;

typedef struct pt_stats {
    _Atomic uint64_t v[PT_STAT__COUNT];
} pt_stats_t;

extern const char *const pt_stat_names[PT_STAT__COUNT];

static inline void pt_stats_add(pt_stats_t *s, pt_stat_t k, int64_t d)
{
    uint64_t cur = atomic_load_explicit(&s->v[k], memory_order_relaxed);
    atomic_store_explicit(&s->v[k], cur + (uint64_t)d, memory_order_relaxed);
}

#define PT_STAT_INC(s, name) pt_stats_add((s), PT_STAT_##name, 1)
#define PT_STAT_DEC(s, name) pt_stats_add((s), PT_STAT_##name, -1)
#define PT_STAT_ADD(s, name, d) pt_stats_add((s), PT_STAT_##name, (int64_t)(d))

#endif
