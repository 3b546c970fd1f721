/* proxy/access_log.h
 * One line per request, in Envoy's default text format, so existing log parsers fit:
 *   [START_TIME] "METHOD PATH PROTOCOL" STATUS FLAGS BYTES_RECEIVED BYTES_SENT DURATION_MS
 *   UPSTREAM_MS "X-FORWARDED-FOR" "USER-AGENT" "X-REQUEST-ID" "AUTHORITY" "UPSTREAM_HOST"
 * or, with accessLogFormat: json, one JSON object a line with Envoy's JSON key names
 * (start_time, method, path, protocol, response_code, response_flags, bytes_received,
 * bytes_sent, duration, upstream_service_time, x_forwarded_for, user_agent, request_id,
 * authority, upstream_host, upstream_request_attempt_count; an absent value is null), and
 * downstream_peer_principal ("<trust-domain>/ns/<ns>/sa/<sa>") when the client presented a
 * verified certificate with a SPIFFE ID (Gateway MUTUAL, mesh mTLS on the sidecar's inbound).
 * Each worker buffers its lines and writes them with one write() when the buffer fills or on a
 * short timer, so logging costs no syscall per request. The file is opened by the main thread
 * with O_APPEND; every flush is a single write of whole lines. */
#ifndef PT_ACCESS_LOG_H
#define PT_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "str.h"

#define PT_ACCESS_LOG_BUF_BYTES (32 * 1024)
#define PT_ACCESS_LOG_FLUSH_MS 100

typedef struct pt_access_log {
    int fd;           /* -1: logging off; not owned */
    uv_timer_t timer; /* flush timer, armed while len > 0 */
    size_t len;
    char buf[PT_ACCESS_LOG_BUF_BYTES];
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
} pt_access_log_entry_t;

void pt_access_log_init(pt_access_log_t *log, uv_loop_t *loop, int fd);
/* Formats e as one line (text, or JSON when is_json) and appends it. */
void pt_access_log_write(pt_access_log_t *log, const pt_access_log_entry_t *e, bool is_json);
void pt_access_log_flush(pt_access_log_t *log);
/* Flushes and closes the timer handle (its close callback is not needed: the log is embedded
 * in the worker, which outlives its loop). */
void pt_access_log_close(pt_access_log_t *log);

#endif
