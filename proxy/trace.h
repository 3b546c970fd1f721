/* proxy/trace.h
 * Trace context: what a request's headers say about the trace it belongs to (W3C traceparent /
 * tracestate, B3 multi-header and single-header `b3`), the sampling decision, and the headers
 * Petrel sends upstream in its place. Pure functions over header slices: no I/O, no allocation
 * except the arena the caller gives.
 *
 * Every header is peer input and validated strictly: a malformed format counts as absent as a
 * whole (its ids are never half-trusted), and a format sent twice (two traceparent lines, two
 * x-b3-traceid lines) is malformed. When both W3C and B3 arrive valid, W3C is the parent. */
#ifndef PT_TRACE_H
#define PT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_msg.h"

/* Which formats came with the request; they are the formats sent upstream. */
#define PT_TRACE_FMT_W3C 0x1      /* traceparent (+ tracestate) */
#define PT_TRACE_FMT_B3_MULTI 0x2 /* x-b3-* */
#define PT_TRACE_FMT_B3_SINGLE 0x4

/* The parent's sampling decision, when it gave one. */
typedef enum pt_trace_decision {
    PT_TRACE_UNDECIDED = 0,
    PT_TRACE_SAMPLED,
    PT_TRACE_NOT_SAMPLED,
    PT_TRACE_DEBUG, /* B3 debug flag: sampled, and said so downstream with flags 1 / "d" */
} pt_trace_decision_t;

typedef struct pt_trace_parent {
    uint8_t trace_id[16]; /* B3 64-bit ids fill the last 8 bytes */
    uint8_t span_id[8];   /* the parent's span: Petrel's span is its child */
    bool has_ids;         /* a valid trace and span id came (else only a decision, or nothing) */
    bool is_64bit_trace;  /* B3 sent a 16-hex-digit trace id: kept that short in B3 */
    unsigned formats;     /* PT_TRACE_FMT_* that were present and valid */
    unsigned ids_from;    /* the format the ids were taken from */
    pt_trace_decision_t decision;
    pt_str_t tracestate; /* valid W3C tracestate (lines joined by ","), or empty */
} pt_trace_parent_t;

/* Petrel's own span for one request, after the decision. */
typedef struct pt_trace_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];        /* Petrel's span, sent upstream as the parent */
    uint8_t parent_span_id[8]; /* valid when has_parent */
    bool has_parent;
    bool is_64bit_trace;
    bool sampled;
    bool debug;
    unsigned formats;    /* what goes upstream: the formats that came, W3C when none */
    pt_str_t tracestate; /* forwarded with traceparent */
} pt_trace_context_t;

/* Events on Petrel's span, recorded by the stream while it runs. */
#define PT_TRACE_MAX_EVENTS 4

typedef enum pt_trace_event_kind {
    PT_TRACE_EVENT_FAULT_DELAY = 1,  /* value: the delay in ms */
    PT_TRACE_EVENT_FAULT_ABORT,      /* value: the status answered (gRPC's for grpcStatus) */
    PT_TRACE_EVENT_UPSTREAM_ATTEMPT, /* value: the attempt number (2, 3, ...) */
    PT_TRACE_EVENT_CHAOS_ABORT,      /* an http_abort toxic; value: the status (gRPC's) */
    PT_TRACE_EVENT_CHAOS_DELAY,      /* an http_delay toxic; value: the delay in ms */
    PT_TRACE_EVENT_CHAOS_SLOW_BODY,  /* an http_slow_body toxic; value: bytes per interval */
    PT_TRACE_EVENT_CHAOS_DROP,       /* an http_drop_first toxic; value: its count */
} pt_trace_event_kind_t;

typedef struct pt_trace_event {
    uint64_t time_us; /* wall clock */
    pt_trace_event_kind_t kind;
    int64_t value;
} pt_trace_event_t;

typedef struct pt_trace_events {
    pt_trace_event_t ev[PT_TRACE_MAX_EVENTS];
    unsigned n; /* events past the capacity are not kept */
} pt_trace_events_t;

static inline void pt_trace_add_event(pt_trace_events_t *e, pt_trace_event_kind_t kind,
                                      uint64_t time_us, int64_t value)
{
    if (e->n < PT_TRACE_MAX_EVENTS)
        e->ev[e->n++] = (pt_trace_event_t){time_us, kind, value};
}

/* A request's span while it runs: its context (sent upstream) and its events. */
typedef struct pt_trace_span {
    pt_trace_context_t ctx;
    pt_trace_events_t events;
} pt_trace_span_t;

/* Reads every trace header of headers[0..n) into *out (zeroed first). */
void pt_trace_extract(const pt_header_t *headers, size_t n, pt_trace_parent_t *out);

/* Individual parsers (exposed for tests and the fuzzer). Each returns true only for a value
 * that is valid as a whole. */
bool pt_trace_parse_traceparent(pt_str_t v, uint8_t trace_id[16], uint8_t span_id[8],
                                bool *sampled);
bool pt_trace_valid_tracestate(pt_str_t v);
/* b3 single header: "{trace}-{span}[-{sampling}[-{parent}]]" or just "{sampling}". */
bool pt_trace_parse_b3_single(pt_str_t v, pt_trace_parent_t *out);

/* Random bits for new ids; a worker passes its PRNG. Returns 32 random bits. */
typedef uint32_t (*pt_trace_random_fn)(void *arg);

/* Petrel's span: child of the parent's ids when there are any, else a new trace. Sampled as
 * the parent decided, else with probability sampling_ppm (parts per million). */
void pt_trace_start(const pt_trace_parent_t *parent, uint32_t sampling_ppm, pt_trace_random_fn rnd,
                    void *rnd_arg, pt_trace_context_t *out);

/* Whether a header name is one Petrel replaces with its own context upstream. */
bool pt_trace_is_context_header(pt_str_t name);

/* Bytes pt_trace_write_headers() may write at most, tracestate included. */
size_t pt_trace_headers_size(const pt_trace_context_t *c);
/* Writes the context's headers ("name: value\r\n" each) at p; returns the end. */
char *pt_trace_write_headers(const pt_trace_context_t *c, char *p);

/* Lower-case hex of n bytes into out (2n characters, no NUL). */
void pt_trace_hex(const uint8_t *b, size_t n, char *out);

#endif
