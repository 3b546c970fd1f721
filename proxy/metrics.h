/* proxy/metrics.h
 * Per-request metrics with Istio's standard names and labels (istio_requests_total,
 * istio_request_duration_milliseconds, istio_request_bytes, istio_response_bytes, istio_tcp_*),
 * so existing Istio dashboards and alerts work on Petrel.
 *
 * Each worker records into its own table of series, keyed by the labels that vary per request
 * (destination service, protocol, response code, reason flag, the client's mTLS principal).
 * The table is insert-only with a fixed capacity: its worker is the only writer (relaxed atomic
 * stores, no locked instructions), a series is published with a release store once its labels are
 * written, and the scraper on the main thread reads with acquire/relaxed loads and sums the
 * workers. So a scrape never blocks a worker, and label cardinality is bounded: requests beyond the
 * capacity land in one overflow series (destination_service="overflow") and are still counted. */
#ifndef PT_METRICS_H
#define PT_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PT_METRICS_MAX_SERIES 512
#define PT_METRICS_DURATION_BUCKETS 19 /* Istio's, in milliseconds */
#define PT_METRICS_SIZE_BUCKETS 10     /* 1 B to 1 GB, powers of ten */

/* A series' request_protocol label. */
#define PT_METRICS_HTTP 0
#define PT_METRICS_TCP 1
#define PT_METRICS_GRPC 2

typedef struct pt_series {
    _Atomic int is_ready; /* labels written; set once, with release */
    uint32_t hash;
    char service[96];   /* destination_service */
    char code[4];       /* response_code ("0": no response) */
    char grpc[4];       /* grpc_response_status ("": not gRPC) */
    char flags[8];      /* response_flags ("-": none) */
    uint8_t protocol;   /* request_protocol: PT_METRICS_HTTP / _GRPC / _TCP */
    uint8_t is_inbound; /* reporter "destination": a sidecar's inbound, else "source" */
    /* source_principal: the client's verified mTLS principal ("unknown": none) */
    char principal[96];
    _Atomic uint64_t requests;
    _Atomic uint64_t duration[PT_METRICS_DURATION_BUCKETS + 1]; /* per bucket, +Inf last */
    _Atomic uint64_t duration_sum_us;
    _Atomic uint64_t request_bytes[PT_METRICS_SIZE_BUCKETS + 1];
    _Atomic uint64_t request_bytes_sum;
    _Atomic uint64_t response_bytes[PT_METRICS_SIZE_BUCKETS + 1];
    _Atomic uint64_t response_bytes_sum;
    _Atomic uint64_t tcp_opened, tcp_closed, tcp_sent, tcp_received;
} pt_series_t;

typedef struct pt_metrics {
    pt_series_t *series; /* PT_METRICS_MAX_SERIES + 1 (the overflow series last); malloc'd */
    _Atomic uint64_t overflowed; /* requests recorded in the overflow series */
} pt_metrics_t;

/* Labels describing this proxy, the same for every series (from the Proxy kind). */
typedef struct pt_metrics_identity {
    const char *workload; /* "unknown" when not set */
    const char *namespace_;
    const char *principal; /* this workload's own ("<td>/ns/<ns>/sa/<sa>"), or "unknown" */
    const char *app;
    const char *version;
} pt_metrics_identity_t;

int pt_metrics_init(pt_metrics_t *m);
void pt_metrics_dispose(pt_metrics_t *m);

/* Worker thread only. service may be NULL ("unknown"); principal is the client's verified
 * principal (conn.h's peer_principal: connection_security_policy="mutual_tls"), or NULL;
 * inbound: the request came in through the sidecar's inbound listener (reporter
 * "destination": this workload is the destination), else this proxy is its source;
 * grpc_status: the response's grpc-status (grpc_response_status), -1 when it had none; is_grpc:
 * the request's content-type is application/grpc[+...] (request_protocol="grpc", as Istio). */
void pt_metrics_record_http(pt_metrics_t *m, const char *service, int status, int grpc_status,
                            const char *flags, uint64_t duration_us, uint64_t request_bytes,
                            uint64_t response_bytes, const char *principal, bool inbound,
                            bool is_grpc);
void pt_metrics_record_tcp_open(pt_metrics_t *m, const char *service);
void pt_metrics_record_tcp_close(pt_metrics_t *m, const char *service, uint64_t sent,
                                 uint64_t received);

/* Prometheus text exposition of every worker's series, summed; malloc'd, *len set. Main thread;
 * never blocks the workers. extra (may be NULL) is appended as is (the petrel_* counters). */
char *pt_metrics_format(pt_metrics_t *const *workers, size_t n_workers,
                        const pt_metrics_identity_t *id, const char *extra, size_t *len);

#endif
