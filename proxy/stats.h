/* proxy/stats.h
 * Per-worker counters. Each worker writes only its own set, with relaxed atomic loads and stores
 * (a plain add on x86, no locked instruction); the admin thread sums the workers' sets when it
 * is asked. Gauges are counters that also go down. */
#ifndef PT_STATS_H
#define PT_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* X(name, kind, help): kind is counter or gauge; the help text is Prometheus' HELP line. */
#define PT_STATS_LIST(X)                                                                           \
    X(downstream_cx_total, counter, "Downstream connections accepted.")                            \
    X(downstream_cx_active, gauge, "Downstream connections open.")                                 \
    X(downstream_cx_overflow, counter,                                                             \
      "Downstream connections closed at once over maxConnections.")                                \
    X(downstream_cx_fd_exhausted, counter,                                                         \
      "Accepts that failed (EMFILE, ENFILE) or were refused for lack of file descriptors.")        \
    X(downstream_cx_header_timeout, counter,                                                       \
      "Downstream connections whose request head did not arrive within headerTimeout.")            \
    X(downstream_cx_idle_timeout, counter,                                                         \
      "Downstream keep-alive connections closed after idleTimeout.")                               \
    X(downstream_rq_total, counter, "Requests with a valid head.")                                 \
    X(downstream_rq_invalid, counter,                                                              \
      "Requests refused as invalid (400, 414, 417, 431, 501, 505).")                               \
    X(downstream_rq_1xx, counter, "Responses sent with a 1xx status.")                             \
    X(downstream_rq_2xx, counter, "Responses sent with a 2xx status.")                             \
    X(downstream_rq_3xx, counter, "Responses sent with a 3xx status.")                             \
    X(downstream_rq_4xx, counter, "Responses sent with a 4xx status.")                             \
    X(downstream_rq_5xx, counter, "Responses sent with a 5xx status.")                             \
    X(downstream_rq_no_route, counter, "Requests that matched no route (404 NR).")                 \
    X(downstream_rq_client_closed, counter,                                                        \
      "Requests whose client went away before the response ended (DC).")                           \
    X(upstream_cx_total, counter, "Upstream connections opened.")                                  \
    X(upstream_cx_active, gauge, "Upstream connections open, pooled or in use.")                   \
    X(upstream_cx_connect_fail, counter, "Upstream connection attempts that failed (UF).")         \
    X(upstream_cx_connect_timeout, counter, "Upstream connection attempts that timed out.")        \
    X(upstream_cx_idle_closed, counter, "Pooled upstream connections closed while idle.")          \
    X(upstream_cx_idle_purged, counter,                                                            \
      "Idle pooled upstream connections closed because recent demand would not use them.")         \
    X(upstream_cx_ssl_handshake, counter, "TLS handshakes completed with upstreams.")              \
    X(upstream_cx_h2_refused, counter,                                                             \
      "Mesh mTLS peers that chose no HTTP/2 by ALPN (their requests go as HTTP/1.1 for a while).") \
    X(upstream_cx_h2_keepalive_timeout, counter,                                                   \
      "Upstream HTTP/2 connections closed when a keepalive PING got no answer in time.")           \
    X(upstream_cx_ssl_error, counter,                                                              \
      "Upstream TLS handshakes that failed, or servers refused by the TLS checks (UF).")           \
    X(upstream_rq_total, counter, "Requests sent upstream, each attempt counted.")                 \
    X(upstream_rq_reused_connection, counter, "Requests sent on a pooled connection.")             \
    X(upstream_rq_reused_connection_retry, counter,                                                \
      "Requests replayed on a fresh connection after a pooled one failed before any response "     \
      "byte.")                                                                                     \
    X(upstream_rq_timeout, counter, "Requests that hit the route timeout (UT).")                   \
    X(upstream_rq_no_healthy, counter, "Requests for a cluster without endpoints (UH).")           \
    X(upstream_rq_protocol_error, counter, "Invalid upstream responses (UPE).")                    \
    X(upstream_rq_reset, counter,                                                                  \
      "Upstream connections lost before or during a response (URX, UC).")                          \
    X(retries_connect_failure, counter, "Retries after an upstream connect failure.")              \
    X(retries_reset, counter, "Retries after an upstream reset before the response head.")         \
    X(retries_per_try_timeout, counter, "Retries after a perTryTimeout.")                          \
    X(retries_status, counter, "Retries after a response status the policy retries.")              \
    X(retries_exhausted, counter,                                                                  \
      "Requests that would have been retried again but had no attempts left (URX).")               \
    X(retry_budget_exhausted, counter, "Retries refused by the cluster's retry budget.")           \
    X(retry_body_too_large, counter,                                                               \
      "Retries not made because the request body was over retryBodyLimit.")                        \
    X(upstream_overflow_connections, counter,                                                      \
      "Requests that waited as pending because maxConnections was reached.")                       \
    X(upstream_overflow_pending, counter,                                                          \
      "Requests answered 503 UO: http1MaxPendingRequests reached.")                                \
    X(upstream_overflow_requests, counter,                                                         \
      "Requests answered 503 UO: http2MaxRequests (active requests) reached.")                     \
    X(upstream_overflow_retries, counter, "Retries not made because maxRetries was reached.")      \
    X(outlier_ejections, counter, "Endpoints ejected by outlier detection.")                       \
    X(outlier_ejections_active, gauge, "Endpoints ejected by outlier detection now.")              \
    X(outlier_ejections_consecutive_5xx, counter, "Ejections for consecutive 5xx.")                \
    X(outlier_ejections_consecutive_gateway, counter,                                              \
      "Ejections for consecutive gateway errors (502, 503, 504).")                                 \
    X(outlier_ejections_consecutive_local_origin, counter,                                         \
      "Ejections for consecutive local-origin failures (splitExternalLocalOriginErrors).")         \
    X(outlier_ejections_overflow, counter,                                                         \
      "Ejections not made because maxEjectionPercent was reached.")                                \
    X(outlier_unejections, counter, "Ejected endpoints returned to service.")                      \
    X(mirror_requests, counter, "Mirrored request copies started.")                                \
    X(mirror_responses, counter, "Mirrored copies answered (the response is dropped).")            \
    X(mirror_failed, counter,                                                                      \
      "Mirrored copies that failed: no endpoint, connect failure, reset, timeout.")                \
    X(mirror_abandoned, counter,                                                                   \
      "Mirrored copies given up: queue over 256 KiB, client request cut, or drain.")               \
    X(mirror_active, gauge, "Mirrored copies in flight.")                                          \
    X(tcp_cx_total, counter, "TCP route connections accepted.")                                    \
    X(tcp_cx_active, gauge, "TCP route connections open.")                                         \
    X(tcp_bytes_received, counter, "Bytes received from clients on TCP routes.")                   \
    X(tcp_bytes_sent, counter, "Bytes sent to clients on TCP routes.")                             \
    X(tls_hello_invalid, counter,                                                                  \
      "TLS-passthrough connections closed: no valid ClientHello in time.")                         \
    X(tls_sni_no_route, counter,                                                                   \
      "TLS connections closed: no tls route (or shared-port server) for the SNI.")                 \
    X(rbac_allowed, counter,                                                                       \
      "Requests and connections AuthorizationPolicies let through (policies applied).")            \
    X(rbac_denied, counter,                                                                        \
      "Requests (403 RBAC) and connections (closed) AuthorizationPolicies refused.")               \
    X(rbac_audited, counter, "Requests and connections an AUDIT policy matched.")                  \
    X(rbac_shadow_allowed, counter, "Requests and connections dry-run policies would allow.")      \
    X(rbac_shadow_denied, counter, "Requests and connections dry-run policies would refuse.")      \
    X(ssl_handshake, counter, "Downstream TLS handshakes completed.")                              \
    X(ssl_handshake_error, counter,                                                                \
      "Downstream TLS handshakes that failed or did not finish within headerTimeout.")             \
    X(ssl_connection_error, counter, "Downstream TLS connections ended by a TLS error.")           \
    X(tunnel_total, counter, "Upgraded HTTP connections relayed as tunnels (101).")                \
    X(dns_queries, counter, "DNS queries sent for DNS ServiceEntries (main thread).")              \
    X(dns_answers, counter, "DNS answers received, empty ones (NXDOMAIN, no data) included.")      \
    X(dns_failures, counter, "DNS queries that failed; the last good answer stayed in force.")     \
    X(dns_answer_changes, counter, "DNS answers that changed a name's addresses (a republish).")   \
    X(trace_spans_exported, counter, "Spans a trace collector accepted (2xx), per collector.")     \
    X(trace_spans_dropped, counter, "Sampled spans dropped because the export queue was full.")    \
    X(trace_spans_export_failed, counter,                                                          \
      "Spans lost because a collector failed, timed out or refused the batch, per collector.")     \
    X(capture_cx_total, counter, "Connections accepted on the sidecar's capture listeners.")       \
    X(capture_cx_not_redirected, counter,                                                          \
      "Connections to a capture listener that iptables did not redirect, closed unanswered.")      \
    X(capture_detect_timeout, counter,                                                             \
      "Captured connections relayed as TCP after protocolDetectionTimeout.")                       \
    X(capture_cx_blackholed, counter,                                                              \
      "Captured TCP connections to no known service, closed (REGISTRY_ONLY).")                     \
    X(access_log_dropped, counter,                                                                 \
      "Access-log lines dropped because the log writer was behind (a slow or stalled file).")

typedef enum pt_stat {
#define PT_STAT_ENUM(name, kind, help) PT_STAT_##name,
    PT_STATS_LIST(PT_STAT_ENUM)
#undef PT_STAT_ENUM
        PT_STAT__COUNT
} pt_stat_t;

typedef struct pt_stats {
    _Atomic uint64_t v[PT_STAT__COUNT];
} pt_stats_t;

extern const char *const pt_stat_names[PT_STAT__COUNT];
extern const char *const pt_stat_kinds[PT_STAT__COUNT]; /* "counter" or "gauge" */
extern const char *const pt_stat_helps[PT_STAT__COUNT];

static inline void pt_stats_add(pt_stats_t *s, pt_stat_t k, int64_t d)
{
    uint64_t cur = atomic_load_explicit(&s->v[k], memory_order_relaxed);
    atomic_store_explicit(&s->v[k], cur + (uint64_t)d, memory_order_relaxed);
}

#define PT_STAT_INC(s, name) pt_stats_add((s), PT_STAT_##name, 1)
#define PT_STAT_DEC(s, name) pt_stats_add((s), PT_STAT_##name, -1)
#define PT_STAT_ADD(s, name, d) pt_stats_add((s), PT_STAT_##name, (int64_t)(d))

#endif
