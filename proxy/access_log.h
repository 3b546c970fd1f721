/* proxy/access_log.h
 * One line per request, in Envoy's default text format with the fields Istio's default adds, in
 * the places Istio's has them, so existing log parsers fit:
 *   [START_TIME] "METHOD PATH PROTOCOL" STATUS FLAGS RESPONSE_CODE_DETAILS BYTES_RECEIVED
 *   BYTES_SENT DURATION_MS UPSTREAM_MS "X-FORWARDED-FOR" "USER-AGENT" "X-REQUEST-ID"
 *   "AUTHORITY" "UPSTREAM_HOST" UPSTREAM_CLUSTER ROUTE_NAME
 * or, with accessLogFormat: json, one JSON object a line with Istio's JSON key names
 * (start_time, method, path, protocol, response_code, response_flags, response_code_details,
 * bytes_received, bytes_sent, duration, upstream_service_time, x_forwarded_for, user_agent,
 * request_id, authority, upstream_host, upstream_cluster, route_name,
 * upstream_request_attempt_count; an absent value is null), and
 * downstream_peer_principal ("<trust-domain>/ns/<ns>/sa/<sa>") when the client presented a
 * verified certificate with a SPIFFE ID (Gateway MUTUAL, mesh mTLS on the sidecar's inbound).
 * Each worker formats its lines into a buffer of its lane (proxy/log_writer.h) and hands the
 * buffer to the log-writer thread when it fills or on a short timer: the worker makes no
 * syscall per request and never waits for the disk. Lines the writer has no room for (it is
 * behind) are dropped and counted (access_log_dropped). The file is opened by the main thread
 * with O_APPEND. */
#ifndef PT_ACCESS_LOG_H
#define PT_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log_writer.h"
#include "stats.h"
#include "str.h"

#define PT_ACCESS_LOG_FLUSH_MS 100
/* The most a line takes besides its values: field names, separators, and every number at its
 * longest (tests/unit/proxy/access_log.c holds both formats to it). */
#define PT_ACCESS_LOG_FIXED_MAX 1024

typedef struct pt_access_log {
    pt_log_lane_t *lane; /* NULL: logging off; owned by the writer */
    pt_stats_t *stats;   /* the worker's, for access_log_dropped */
    uv_timer_t timer;    /* hand-off timer, armed while the current buffer holds lines */
    /* The last line's second as text ("2026-12-07T15:23:47"): lines of one second share it,
     * so gmtime and its formatting run once a second, not once a line. */
    uint64_t date_secs;
    char date[64];
    size_t date_len;
} pt_access_log_t;

/* One request's fields. A string with a NULL base is absent ("-", or null in JSON). */
typedef struct pt_access_log_entry {
    uint64_t start_time_us; /* wall clock */
    pt_str_t method, path, protocol;
    int status;        /* 0: no response */
    const char *flags; /* "-" when none */
    uint64_t bytes_received, bytes_sent;
    uint64_t duration_ms;
    uint64_t upstream_ms; /* UINT64_MAX: no upstream response */
    pt_str_t x_forwarded_for, user_agent, request_id, authority, upstream_host;
    const char *peer_principal; /* the verified TLS peer's principal; NULL: none */
    int attempts; /* upstream attempts (Envoy's UPSTREAM_REQUEST_ATTEMPT_COUNT); JSON only */
    const char *route_name;       /* ROUTE_NAME: the VirtualService http route's; NULL: none */
    const char *upstream_cluster; /* UPSTREAM_CLUSTER: "outbound|80|v1|web.local"; NULL: none */
    const char *details;          /* RESPONSE_CODE_DETAILS: "via_upstream", ...; NULL: none */
    bool has_grpc_status;         /* a gRPC response: grpc_status (GRPC_STATUS_NUMBER); JSON */
    int grpc_status;
} pt_access_log_entry_t;

/* A malloc'd copy of e whose strings live in the same block (one free() releases it), for a
 * line written later than the request's memory lives. Aborts when out of memory. */
pt_access_log_entry_t *pt_access_log_entry_copy(const pt_access_log_entry_t *e);

/* writer NULL: logging off. */
void pt_access_log_init(pt_access_log_t *log, uv_loop_t *loop, pt_log_writer_t *writer,
                        pt_stats_t *stats);
static inline bool pt_access_log_is_on(const pt_access_log_t *log)
{
    return log->lane != NULL;
}
/* Formats e as one line (text, or JSON when is_json) and appends it. */
void pt_access_log_write(pt_access_log_t *log, const pt_access_log_entry_t *e, bool is_json);
/* Hands the lines buffered so far to the writer thread. */
void pt_access_log_flush(pt_access_log_t *log);
/* Flushes and closes the timer handle (its close callback is not needed: the log is embedded
 * in the worker, which outlives its loop). */
void pt_access_log_close(pt_access_log_t *log);

#endif
