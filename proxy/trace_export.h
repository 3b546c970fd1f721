/* proxy/trace_export.h
 * Finished spans, from the workers to the collectors, off the request path.
 *
 * Each worker copies a finished, sampled span into its own bounded single-producer /
 * single-consumer ring (a copy and one release store; a full ring drops the span and counts it,
 * never blocks). The main thread's exporter drains the rings on a timer, and at once when a
 * ring holds a batch (the worker wakes it with one uv_async_send per batch, not per span), encodes
 * a batch as OTLP/HTTP JSON (POST /v1/traces) and/or Zipkin v2 JSON (POST /api/v2/spans), and sends
 * it over plain HTTP/1.1 with libuv, one request in flight per collector, each bounded by
 * exportTimeout. While a collector is busy the rings keep filling, so a slow or dead collector
 * costs drops (counted), never latency.
 *
 * Counters (proxy/stats.h): trace_spans_dropped is written by each worker for its own ring;
 * trace_spans_exported and trace_spans_export_failed are written by the exporter alone, into
 * the slot of the worker whose ring the span came from, so each counter keeps one writer. */
#ifndef PT_TRACE_EXPORT_H
#define PT_TRACE_EXPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../config/config.h"
#include "trace.h"

typedef struct pt_worker pt_worker_t;
typedef struct pt_stream pt_stream_t;

/* One finished span, copied by value into a ring slot: fixed-size text fields, truncated. */
typedef struct pt_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8];
    bool has_parent;
    bool is_client; /* SPAN_KIND_CLIENT (outbound sidecar); SERVER otherwise */
    bool is_64bit_trace;
    int status;
    uint64_t start_us, end_us; /* wall clock, microseconds since the epoch */
    pt_trace_events_t events;
    char method[16];
    char flags[8];
    char protocol[12];
    char peer_address[48];
    char upstream_address[56];
    char request_id[72];
    char authority[128];
    char user_agent[128];
    char route[128];
    char cluster[128];
    char path[256];
    char tracestate[256];
} pt_span_t;

/* Copies s into a fixed-size field, truncated to fit (always NUL-terminated). */
void pt_span_set(char *dst, size_t size, pt_str_t s);
#define PT_SPAN_SET(sp, field, s) pt_span_set((sp)->field, sizeof((sp)->field), (s))

typedef struct pt_trace_ring {
    _Atomic uint64_t head; /* next slot the worker writes */
    _Atomic uint64_t tail; /* next slot the exporter reads */
    _Atomic bool woken;    /* the exporter was woken for this ring and has not drained it */
    pt_span_t *slots;
    uint32_t mask; /* capacity - 1, a power of two */
} pt_trace_ring_t;

typedef struct pt_trace_exporter pt_trace_exporter_t;

/* Returns the exporter settings copied from the config (main thread), with n rings, one per
 * worker; NULL when tracing is off or has no collector. */
pt_trace_exporter_t *pt_trace_exporter_new(const pt_proxy_settings_t *ps, size_t n_workers);
/* Starts the flush timer on loop; workers[i] is where ring i's counters go. */
void pt_trace_exporter_start(pt_trace_exporter_t *e, uv_loop_t *loop, pt_worker_t *workers);
/* Last flush: sends what the rings hold (bounded by exportTimeout), then closes the exporter's
 * handles; it is freed when they are closed. Call after the workers stopped. */
void pt_trace_exporter_stop(pt_trace_exporter_t *e);

/* The exporter workers push to; NULL when tracing exports nothing. Set before the workers start
 * and cleared after they stop. */
extern pt_trace_exporter_t *pt_trace_exporter_current;

/* The tracing setting a reload cannot change (the exporter keeps its collectors and queues), or
 * NULL. Sampling may change: each stream reads it from its snapshot. */
const char *pt_trace_restart_only_change(const pt_tracing_settings_t *a,
                                         const pt_tracing_settings_t *b);

/* --- Worker side, called by stream.c (spec.tracing on) --- */

/* Reads the request's trace headers and decides Petrel's span and its sampling. */
void pt_trace_stream_start(pt_stream_t *st);
/* Records an event on the stream's span (when sampled), timed now. */
void pt_trace_stream_event(pt_stream_t *st, pt_trace_event_kind_t kind, int64_t value);
/* The stream ends: a sampled span goes into the worker's ring (a full ring drops and counts
 * trace_spans_dropped). Copies everything it needs; the stream's arena may go next. */
void pt_trace_finish_stream(pt_stream_t *st);

/* Encoders, exposed for the tests: append JSON for spans[0..n) to *out (malloc'd, grown). */
typedef struct pt_trace_buf {
    char *data;
    size_t len, cap;
} pt_trace_buf_t;
void pt_trace_encode_otlp(pt_trace_buf_t *out, const pt_span_t *spans, size_t n,
                          const char *service_name);
void pt_trace_encode_zipkin(pt_trace_buf_t *out, const pt_span_t *spans, size_t n,
                            const char *service_name);

#endif
