/* proxy/stream.h
 * A stream is one request/response exchange on a downstream connection: it runs the
 * request through the filter chain (filters/filter.h: authorization, faults, redirects, header
 * mutations, trace, metrics, access log), routes it as the chain's last step, takes an upstream
 * connection, forwards the request head (re-serialized canonically, never the client's raw
 * bytes) and streams the body both ways with backpressure, answers locally when it must (no
 * route, no endpoint, connect failure, timeout, invalid response, circuit breaker overflow),
 * retries failed attempts as the route's policy and the cluster's budget allow (proxy/retry.h,
 * proxy/breaker.h), and runs the filters' on_log when it ends.
 *
 * Ownership: a stream is allocated for one exchange (pt_stream_new, from a per-worker cache)
 * by the server codec that read its request (proxy/codec.h), which holds it until the stream
 * calls its done op. The stream knows the codec only through those ops, and the connection
 * only through its pt_conn_info_t: it never learns which protocol carries it. It owns
 * the request arena (head, header copies, routing results), one config ref and its timer (the
 * route timeout or perTryTimeout, a filter's pause, the retry backoff or the wait for a
 * connection slot: one at a time), all released when it finishes; its memory goes back once
 * the timer's close callback has run. The upstream connection is borrowed from the worker's pool
 * and given back (or closed) when the response ends. All failures become a status and a
 * reason flag here, in one place. */
#ifndef PT_STREAM_H
#define PT_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../config/arena.h"
#include "../config/config.h"
#include "buf.h"
#include "codec.h"
#include "http_msg.h"
#include "list.h"
#include "trace.h"

typedef struct pt_exchange pt_exchange_t;
typedef struct pt_upstream pt_upstream_t;
typedef struct pt_mirror pt_mirror_t;
typedef struct pt_relay pt_relay_t;
struct pt_filter_ops;

/* Reason flags, Envoy's response flags, for the access log and stats. */
typedef enum pt_flag {
    PT_FLAG_NONE = 0,
    PT_FLAG_UH,    /* no healthy upstream (no endpoint) */
    PT_FLAG_UF,    /* upstream connection failure */
    PT_FLAG_UT,    /* upstream request timeout */
    PT_FLAG_UC,    /* upstream connection terminated mid-response */
    PT_FLAG_URX,   /* upstream reset before the response */
    PT_FLAG_UPE,   /* upstream protocol error (invalid response) */
    PT_FLAG_NR,    /* no route */
    PT_FLAG_DC,    /* downstream connection terminated */
    PT_FLAG_DPE,   /* downstream protocol error (invalid request) */
    PT_FLAG_FI,    /* fault injected: aborted by the route's fault.abort */
    PT_FLAG_DI,    /* delay injected by the route's fault.delay, then forwarded */
    PT_FLAG_DI_FI, /* both: Envoy logs "DI,FI" */
    PT_FLAG_UO,    /* upstream overflow: a circuit breaker refused the request */
    PT_FLAG_RBAC,  /* refused by an AuthorizationPolicy (403) */
} pt_flag_t;

/* "UH", "UF", ...; "-" for PT_FLAG_NONE. */
const char *pt_flag_name(pt_flag_t f);

typedef struct pt_body_piece {
    struct pt_body_piece *next;
    const char *data;
    size_t len;
    pt_buf_t *pin; /* ref held until the piece is written */
} pt_body_piece_t;

#define PT_STREAM_MAX_TRIED 8    /* endpoints remembered for retryIgnorePreviousHosts */
#define PT_STREAM_MAX_FILTERS 16 /* built-in filters (filters/registry.c) */
/* Response body bytes a filter may hold (PT_FILTER_PAUSE) before the upstream's reads stop. */
#define PT_STREAM_RESPONSE_HELD_MAX (1u << 20)

/* What the stream's timer is running for. */
typedef enum pt_stream_timer {
    PT_STREAM_TIMER_NONE = 0,
    PT_STREAM_TIMER_ROUTE,  /* the route timeout, or perTryTimeout (per_try_timer) */
    PT_STREAM_TIMER_RESUME, /* a filter's pause (the fault filter's delay) */
    PT_STREAM_TIMER_RETRY,  /* a retry's backoff, or the wait for a connection slot */
} pt_stream_timer_t;

typedef struct pt_stream {
    pt_arena_t arena;                        /* request lifetime */
    const pt_conn_info_t *conn;              /* the downstream connection's facts (codec's) */
    const pt_server_codec_ops_t *downstream; /* the server codec carrying the exchange */
    void *exchange;                          /* its handle for the exchange */
    pt_worker_t *worker;                     /* the loop it runs on */
    uv_timer_t timer; /* see pt_stream_timer_t; closed when the stream finishes */
    pt_stream_timer_t timer_kind;
    struct pt_stream *next_cached; /* in the worker's cache of free streams */
    pt_config_t *config;           /* one ref for the stream's life */
    const pt_listener_config_t *listener;
    pt_http_msg_t *request;                   /* in arena */
    const pt_http_route_t *route;             /* see pt_stream_route() */
    const pt_http_match_t *route_match;       /* the match[] entry that held, or NULL */
    bool is_route_cached;                     /* route (maybe NULL) is the match's answer */
    const pt_weighted_cluster_t *destination; /* the route destination picked */
    const pt_cluster_t *cluster;
    const pt_endpoint_t *endpoint;
    pt_exchange_t *upstream;       /* the upstream exchange while forwarding; NULL otherwise */
    pt_mirror_t *mirror;           /* copies of this request (proxy/mirror.c), or NULL */
    const char *request_id;        /* x-request-id sent upstream (arena) */
    const char *upstream_host;     /* "ip:port" for the log (arena) */
    pt_body_piece_t *pending_body; /* request body read before the upstream was ready */
    pt_body_piece_t **pending_tail;
    pt_header_t *request_trailers; /* held until the upstream is ready */
    size_t n_request_trailers;
    pt_flag_t flag;             /* reason flag, or PT_FLAG_NONE */
    const char *details;        /* Envoy's response code details when the flag alone does not say
                                   them (RBAC's matched policy; arena); NULL: derived from the flag */
    uint64_t start_ms;          /* uv_now at the head */
    uint64_t start_time_us;     /* wall clock, for the log */
    uint64_t start_ns;          /* monotonic, for the duration metric */
    uint64_t upstream_start_ms; /* when the request was sent upstream */
    uint64_t upstream_ms;       /* time to the response head; UINT64_MAX: none */
    int grpc_status;            /* the response's grpc-status (trailers, or a trailers-only
                                   head); -1: none */
    uint64_t bytes_received;    /* request body bytes */
    uint64_t bytes_sent;        /* response body bytes */
    int status;                 /* status sent downstream; 0 before a head went */
    int attempts;               /* upstream attempts */
    bool is_active;
    void *filter_instances[PT_STREAM_MAX_FILTERS]; /* in arena, by registry index; NULL: none */
    uint8_t next_filter;     /* while paused: the filter called again when the pause ends */
    bool is_filter_paused;   /* a filter paused the chain (pt_stream_resume_after): no upstream */
    uint16_t body_filters;   /* registry indexes (bits) of the filters watching the bodies */
    uint8_t response_filter; /* while is_response_paused: the filter holding the body */
    bool is_response_paused; /* a filter holds response body bytes (PT_FILTER_PAUSE) */
    bool is_response_end_pending; /* the upstream's response ended during that pause */
    size_t response_held_bytes;   /* taken by that filter and not passed on yet */
    bool request_complete;
    bool upstream_head_sent; /* request head queued upstream */
    bool response_head_sent; /* response head queued downstream */
    bool response_complete;
    bool is_tunnel;               /* upgrade accepted (101): bytes relayed both ways */
    pt_relay_t *tunnel;           /* that relay, which writes the access-log line when it ends */
    bool is_upstream_read_paused; /* downstream congestion paused the upstream's reads */
    /* retries and circuit breakers (the attempt loop around forward()) */
    const pt_retry_policy_t *retry; /* the route's, or Petrel's default for the method */
    const pt_endpoint_t *tried[PT_STREAM_MAX_TRIED];
    uint8_t n_tried;
    uint32_t retries;           /* retries made */
    uint64_t deadline_ms;       /* the route timeout's end (uv_now); 0: none yet */
    uint64_t grpc_deadline_ms;  /* a gRPC call's grpc-timeout end, from its head (uv_now); 0:
                                   none */
    uint64_t pending_since_ms;  /* waiting for a connection slot since */
    pt_body_piece_t *kept_body; /* the request body so far, kept for a retry */
    pt_body_piece_t **kept_tail;
    size_t kept_bytes;
    bool keeps_body;                /* kept_body is complete so far */
    bool body_too_large;            /* over retryBodyLimit: no retry */
    bool is_backing_off;            /* waiting out a retry's backoff: no upstream */
    bool is_waiting_for_connection; /* pending: maxConnections reached */
    bool wait_fresh;                /* the connection waited for must be a new one */
    bool holds_request_slot;        /* counted in the cluster's active requests */
    bool holds_retry_slot;          /* counted in the cluster's active retries */
    bool holds_pending_slot;        /* counted in the cluster's pending requests */
    bool per_try_timer;             /* the route timer running is the perTryTimeout */
    bool retries_exhausted;         /* a retry was due with no attempt left: URX */
    bool replayed_reused;           /* replayed once after a reused connection failed */
    bool overloaded;                /* 503 UO: x-envoy-overloaded */
    pt_list_t pending_link;         /* in worker->pending while waiting for a slot */
    pt_header_t *response_trailers; /* written with the last chunk */
    size_t n_response_trailers;
    pt_trace_span_t *trace; /* Petrel's span (arena); NULL when spec.tracing is off */
} pt_stream_t;

/* --- Called by the server codec (http1_server.c) --- */

/* A new exchange, before its request head is parsed (the head goes into st->arena), carried
 * by the codec ops on exchange, on the connection conn describes (both must outlive the
 * stream, which calls ops->done last). Never NULL. */
pt_stream_t *pt_stream_new(const pt_server_codec_ops_t *ops, void *exchange,
                           const pt_conn_info_t *conn);
/* Frees the worker's cache of streams once its loop has ended. */
void pt_stream_free_cache(pt_worker_t *w);
/* A valid request head arrived: routes it and starts forwarding or answers locally. */
void pt_stream_start(pt_stream_t *st, pt_http_msg_t *head);
void pt_stream_on_request_body(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin);
void pt_stream_on_request_trailers(pt_stream_t *st, pt_header_t *t, size_t n);
void pt_stream_on_request_complete(pt_stream_t *st);
/* The downstream write queue fell below its low watermark. */
void pt_stream_on_downstream_drained(pt_stream_t *st);
/* The downstream connection went away (flag DC) or must close now: abandons the upstream
 * side and ends the stream. */
void pt_stream_abort(pt_stream_t *st, pt_flag_t flag);
/* Answers locally with status and a short text body (used for invalid requests too, before a
 * stream has a head: then head is NULL). */
void pt_stream_respond(pt_stream_t *st, int status, const char *body, pt_flag_t flag);
/* The same with the reply's own headers (hs, n; no content-type added) and no body: a
 * redirect. */
void pt_stream_respond_headers(pt_stream_t *st, int status, const pt_header_t *hs, size_t n,
                               pt_flag_t flag);

/* --- Called by filters (filters/filter.h) --- */

/* The VirtualService route the request matches, or NULL (no route, or the listener is gone):
 * matched on the first call and cached, as Envoy's route cache (st->route_match too). Also
 * fixes the retry policy, the route's or Petrel's default for the method. */
const pt_http_route_t *pt_stream_route(pt_stream_t *st);
/* For a filter that returns PT_FILTER_PAUSE: the stream's timer runs the chain on from the
 * next filter after ms milliseconds. */
void pt_stream_resume_after(pt_stream_t *st, uint64_t ms);
/* The stream calls the body callbacks (on_request_data, on_*_trailers, on_response_data) and
 * on_destroy of the filter ops for this stream from now on. */
void pt_stream_filter_body(pt_stream_t *st, const struct pt_filter_ops *ops);
/* For the filter holding the response body (on_response_data returned PT_FILTER_PAUSE): passes
 * bytes on, through the filters after it, downstream. The stream takes its own ref on pin. */
void pt_stream_send_response_data(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin);
/* Answers locally with a gRPC trailers-only reply (status 200, content-type application/grpc,
 * grpc-status and grpc-message as headers), as pt_stream_respond does otherwise. */
void pt_stream_respond_grpc(pt_stream_t *st, int grpc_status, const char *message, pt_flag_t flag);
/* Ends the exchange without an answer: the downstream connection is closed (flag set, status
 * 0 in the log). The stream is finished when this returns. */
void pt_stream_reset(pt_stream_t *st, pt_flag_t flag);
/* The request as it goes upstream, with authority as its Host: the route's rewrites and
 * header mutations, Petrel's trace context, x-forwarded-for / -proto, x-request-id and
 * x-envoy-attempt-count, in st's arena. The one request builder, for the attempts and the
 * mirror's copies alike; the client codec frames it. */
pt_http_msg_t *pt_stream_request_head(pt_stream_t *st, pt_str_t authority);
/* Envoy's RESPONSE_CODE_DETAILS for how st ended ("via_upstream", "route_not_found",
 * "upstream_reset_before_response_started{connection_failure}", ...), from its flag, or NULL
 * when nothing was answered. The string is static or in st's arena. */
const char *pt_stream_response_code_details(const pt_stream_t *st);

/* --- Called by the worker's pools (upstream.c) --- */
/* A connection slot of cs was given back on this worker: the oldest request of this worker
 * waiting for one looks again at once (upstream.c). */
void pt_stream_wake_pending(pt_worker_t *w, const pt_cluster_state_t *cs);

#endif
