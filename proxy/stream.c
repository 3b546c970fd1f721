/* proxy/stream.c
 * One request/response exchange: the filter chain (filters/registry.c) with the router as its
 * terminal step, forwarding with re-serialized heads, body streaming with backpressure, local
 * replies. See stream.h for ownership, docs/filters.md for the chain.
 *
 * Framing is always Petrel's own: the request goes upstream with Content-Length when the client
 * sent one, chunked when the client's body was chunked, and nothing otherwise; the response goes
 * downstream with the upstream's Content-Length, or chunked (HTTP/1.1 clients) when the upstream
 * sent chunked or close-delimited, or close-delimited (HTTP/1.0 clients). Bytes of a head are
 * never relayed as received, so a framing disagreement between the client and the upstream
 * (request smuggling) has nothing to ride on. */
#include "stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "../filters/registry.h"
#include "breaker.h"
#include "capture.h"
#include "grpc.h"
#include "log.h"
#include "mirror.h"
#include "outlier.h"
#include "retry.h"
#include "route_action.h"
#include "router.h"
#include "trace_export.h"
#include "upstream.h"
#include "worker.h"

/* Each reason flag with Envoy's RESPONSE_CODE_DETAILS for it: the one table that says why a
 * stream ended as it did. NULL details: it depends on who answered (via_upstream when the
 * upstream's response went out, else the flag's local reply). */
static const struct {
    const char *name;
    const char *details;
} flags[] = {
    [PT_FLAG_NONE] = {"-", NULL},
    [PT_FLAG_UH] = {"UH", "no_healthy_upstream"},
    [PT_FLAG_UF] = {"UF", "upstream_reset_before_response_started{connection_failure}"},
    [PT_FLAG_UT] = {"UT", "upstream_response_timeout"},
    [PT_FLAG_UC] = {"UC", "upstream_reset_after_response_started{connection_termination}"},
    [PT_FLAG_URX] = {"URX", "upstream_reset_before_response_started{connection_termination}"},
    [PT_FLAG_UPE] = {"UPE", "upstream_reset_before_response_started{protocol_error}"},
    [PT_FLAG_NR] = {"NR", "route_not_found"},
    [PT_FLAG_DC] = {"DC", "downstream_remote_disconnect"},
    [PT_FLAG_DPE] = {"DPE", "http1.codec_error"},
    [PT_FLAG_FI] = {"FI", "fault_filter_abort"},
    [PT_FLAG_DI] = {"DI", NULL},
    [PT_FLAG_DI_FI] = {"DI,FI", "fault_filter_abort"},
    [PT_FLAG_UO] = {"UO", "upstream_reset_before_response_started{overflow}"},
    [PT_FLAG_RBAC] = {"RBAC", "rbac_access_denied_matched_policy[none]"},
};

const char *pt_flag_name(pt_flag_t f)
{
    return (unsigned)f < sizeof(flags) / sizeof(flags[0]) ? flags[f].name : "-";
}

const char *pt_stream_response_code_details(const pt_stream_t *st)
{
    if (st->details != NULL)
        return st->details;
    bool upstream_answered = st->upstream_ms != UINT64_MAX;
    if (st->flag == PT_FLAG_URX && upstream_answered)
        return "via_upstream"; /* the last attempt's response, after the retry limit */
    if (st->flag == PT_FLAG_DPE && st->status == 408)
        return "request_header_timeout";
    if ((unsigned)st->flag < sizeof(flags) / sizeof(flags[0]) && flags[st->flag].details != NULL)
        return flags[st->flag].details;
    if (upstream_answered)
        return "via_upstream";
    /* A route's directResponse or redirect (httpsRedirect too): answered here, as Envoy's. */
    return st->status != 0 ? "direct_response" : NULL;
}

static pt_worker_t *worker_of(pt_stream_t *st)
{
    return st->worker;
}

static bool request_has_body(const pt_stream_t *st)
{
    return st->request != NULL && st->request->has_body;
}

/* True once some byte of the response went to the client: after that, a failure can only
 * close the connection. */
static bool response_bytes_written(const pt_stream_t *st)
{
    return st->response_head_sent && st->downstream->is_response_started(st->exchange);
}

static bool is_head_request(const pt_stream_t *st)
{
    return st->request != NULL && st->request->method_id == HTTP_HEAD;
}

/* The end of the call: the route timeout's or the client's grpc-timeout's, whichever comes
 * first; 0: none (yet). */
static uint64_t call_deadline(const pt_stream_t *st)
{
    if (st->deadline_ms == 0 ||
        (st->grpc_deadline_ms != 0 && st->grpc_deadline_ms < st->deadline_ms))
        return st->grpc_deadline_ms;
    return st->deadline_ms;
}

/* Milliseconds from now to deadline, at least 1 (0 would stop a timer). */
static uint64_t ms_until(const pt_stream_t *st, uint64_t deadline)
{
    uint64_t now = uv_now(st->timer.loop);
    return deadline > now ? deadline - now : 1;
}

/* --- the stream's own timer --- */

static void on_resume(pt_stream_t *st);
static void on_upstream_ready(void *ctx, bool is_reused);
static void pt_stream_on_upstream_error(pt_stream_t *st, pt_codec_reset_t why, bool was_reused);
static const pt_codec_stream_cbs_t upstream_cbs;
static void on_retry_timer(pt_stream_t *st);
static void on_timeout(pt_stream_t *st);

static void on_timer(uv_timer_t *t)
{
    pt_stream_t *st = t->data;
    pt_stream_timer_t kind = st->timer_kind;
    st->timer_kind = PT_STREAM_TIMER_NONE;
    switch (kind) {
    case PT_STREAM_TIMER_ROUTE: on_timeout(st); break;
    case PT_STREAM_TIMER_RESUME: on_resume(st); break;
    case PT_STREAM_TIMER_RETRY: on_retry_timer(st); break;
    case PT_STREAM_TIMER_NONE: break;
    }
}

static void start_timer(pt_stream_t *st, pt_stream_timer_t kind, uint64_t ms)
{
    if (kind == PT_STREAM_TIMER_RESUME) {
        /* The loop's clock is read once per iteration and in whole milliseconds (the reading
         * truncated): a fresh reading and one millisecond more keep an injected delay from
         * ending short of fixedDelay. Pauses are rare. */
        uv_update_time(st->timer.loop);
        ms++;
    }
    st->timer_kind = kind;
    uv_timer_start(&st->timer, on_timer, ms, 0);
}

static void stop_timer(pt_stream_t *st)
{
    st->timer_kind = PT_STREAM_TIMER_NONE;
    uv_timer_stop(&st->timer);
}

/* --- allocation: a per-worker cache of streams whose timers are closed --- */

/* A cached stream keeps its arena's first chunk (pt_arena_reset): a request that fits in it
 * costs no malloc for its copies. */

#define STREAM_CACHE_MAX 64

static void on_timer_closed(uv_handle_t *h)
{
    pt_stream_t *st = h->data;
    pt_worker_t *w = st->worker;
    if (w->n_cached_streams >= STREAM_CACHE_MAX) {
        pt_arena_dispose(&st->arena);
        free(st);
        return;
    }
    st->next_cached = w->cached_streams;
    w->cached_streams = st;
    w->n_cached_streams++;
}

void pt_stream_free_cache(pt_worker_t *w)
{
    while (w->cached_streams != NULL) {
        pt_stream_t *st = w->cached_streams;
        w->cached_streams = st->next_cached;
        pt_arena_dispose(&st->arena);
        free(st);
    }
    w->n_cached_streams = 0;
}

pt_stream_t *pt_stream_new(const pt_server_codec_ops_t *ops, void *exchange,
                           const pt_conn_info_t *c)
{
    pt_worker_t *w = c->worker;
    pt_stream_t *st = w->cached_streams;
    pt_arena_t arena;
    if (st != NULL) {
        w->cached_streams = st->next_cached;
        w->n_cached_streams--;
        arena = st->arena;
    } else if ((st = malloc(sizeof(*st))) != NULL) {
        pt_arena_init(&arena, 4096);
    } else {
        abort();
    }
    memset(st, 0, sizeof(*st));
    st->worker = w;
    uv_timer_init(&w->loop, &st->timer);
    st->timer.data = st;
    st->arena = arena;
    st->conn = c;
    st->downstream = ops;
    st->exchange = exchange;
    st->config = w->config;
    w->config_borrows++; /* a reference of its own only if the worker's config changes */
    st->listener = pt_capture_route_table(st->config, c);
    st->pending_tail = &st->pending_body;
    st->kept_tail = &st->kept_body;
    pt_list_init(&st->pending_link);
    st->upstream_ms = UINT64_MAX;
    st->grpc_status = -1;
    st->start_ms = uv_now(&w->loop);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    st->start_time_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    st->start_ns = uv_hrtime();
    for (size_t i = 0; i < pt_n_filters; i++)
        if (pt_filters[i]->instance_size > 0)
            st->filter_instances[i] = pt_arena_calloc(&st->arena, pt_filters[i]->instance_size);
    st->is_active = true;
    return st;
}

/* --- the access log line and the stream's end --- */

static void free_pending_body(pt_stream_t *st)
{
    for (pt_body_piece_t *p = st->pending_body; p != NULL; p = p->next)
        pt_buf_unref(p->pin);
    st->pending_body = NULL;
    st->pending_tail = &st->pending_body;
}

static void free_kept_body(pt_stream_t *st)
{
    for (pt_body_piece_t *p = st->kept_body; p != NULL; p = p->next)
        pt_buf_unref(p->pin);
    st->kept_body = NULL;
    st->kept_tail = &st->kept_body;
    st->kept_bytes = 0;
}

static void stop_waiting(pt_stream_t *st)
{
    st->is_waiting_for_connection = false;
    if (pt_list_is_linked(&st->pending_link))
        pt_list_remove(&st->pending_link);
}

/* The cluster's breaker counts this stream holds end with it. */
static void release_breaker_slots(pt_stream_t *st)
{
    pt_cluster_state_t *cs = st->cluster != NULL ? st->cluster->state : NULL;
    if (cs == NULL)
        return;
    if (st->holds_request_slot)
        pt_breaker_release(&cs->requests);
    if (st->holds_retry_slot)
        pt_breaker_release(&cs->retries);
    if (st->holds_pending_slot)
        pt_breaker_release(&cs->pending);
    st->holds_request_slot = st->holds_retry_slot = st->holds_pending_slot = false;
}

/* Lets go of the upstream exchange before its end: its connection is not reused. */
static void drop_upstream(pt_stream_t *st)
{
    pt_exchange_t *x = st->upstream;
    st->upstream = NULL;
    pt_exchange_release(x, false);
}

static void finish(pt_stream_t *st)
{
    pt_worker_t *w = st->worker;
    stop_timer(st);
    stop_waiting(st);
    release_breaker_slots(st);
    free_kept_body(st);
    if (st->retries_exhausted && st->flag == PT_FLAG_NONE)
        st->flag = PT_FLAG_URX; /* Envoy: the last response came after the retry limit */
    if (st->upstream != NULL)
        drop_upstream(st);
    free_pending_body(st);
    if (st->mirror != NULL) { /* the copies go on alone, or are abandoned if the request was cut */
        pt_mirror_detach(st->mirror, st->request_complete);
        st->mirror = NULL;
    }
    if (st->endpoint != NULL && st->cluster != NULL) /* ends pick_endpoint()'s count */
        pt_worker_release_endpoint(w, st->config, st->cluster, st->endpoint);
    if (st->status >= 100 && st->status < 600)
        pt_stats_add(&w->stats, PT_STAT_downstream_rq_1xx + (st->status / 100 - 1), 1);
    for (size_t i = pt_n_filters; i-- > 0;) /* reverse: the outcome settles, then is recorded */
        if (pt_filters[i]->on_log != NULL)
            pt_filters[i]->on_log(st, st->filter_instances[i]);
    for (size_t i = 0; st->body_filters != 0 && i < pt_n_filters; i++)
        if ((st->body_filters & (1u << i)) && pt_filters[i]->on_destroy != NULL)
            pt_filters[i]->on_destroy(st, st->filter_instances[i]);
    if (st->config == w->config)
        w->config_borrows--; /* started under it: borrowed (pt_stream_new) */
    else
        pt_config_unref(st->config);
    pt_arena_reset(&st->arena);
    st->is_active = false;
    /* The memory goes back once the timer is closed, after this call stack has unwound: the
     * callers up the stack still read st->is_active. */
    uv_close((uv_handle_t *)&st->timer, on_timer_closed);
    st->downstream->done(st->exchange); /* last: the codec may go on with the next request */
}

static void maybe_finish(pt_stream_t *st)
{
    if (!st->is_active || !st->response_complete)
        return;
    /* A request without a body completes within the same parse: wait for it. What is still
     * coming of a body is the codec's to drop (its done op). */
    if (!st->request_complete && st->request != NULL && !request_has_body(st))
        return;
    finish(st);
}

/* --- local replies --- */

/* A local reply: status, the headers given (x-envoy-overloaded added when st->overloaded) and
 * body (a static string or one in the config snapshot, which the write outlives, so it is
 * copied into a slab the write owns).
 *
 * Every local reply to a gRPC call (or one given grpc_status >= 0) goes out as a gRPC
 * trailers-only response, as Envoy's local replies do: HTTP 200, content-type application/grpc,
 * grpc-status (grpc_status, or the one Envoy maps from status) and the body as grpc-message. A
 * gRPC client reads the outcome from those fields alone; the access log and metrics keep the
 * status Petrel decided and add the grpc-status. */
static void respond(pt_stream_t *st, int status, int grpc_status, const pt_header_t *headers,
                    size_t n_headers, const char *body, pt_flag_t flag)
{
    if (!st->is_active)
        return;
    if (st->response_head_sent && st->downstream->cancel_head(st->exchange)) {
        /* The upstream's head is still only buffered: nothing reached the client, so the
         * local reply replaces it. */
        st->response_head_sent = false;
        st->is_tunnel = false;
        st->bytes_sent = 0;
    }
    if (st->response_head_sent) {
        /* Too late for a status: the client sees the response fail mid-way. */
        if (st->flag == PT_FLAG_NONE)
            st->flag = flag;
        st->downstream->reset(st->exchange);
        return;
    }
    if (st->upstream != NULL)
        drop_upstream(st);
    st->flag = flag;
    st->status = status;
    if (grpc_status < 0 && pt_grpc_is_request(st->request))
        grpc_status = pt_grpc_status_for_http(status);
    pt_header_t *all = pt_arena_alloc(&st->arena, (n_headers + 4) * sizeof(*all));
    size_t n = 0;
    if (grpc_status >= 0) {
        st->grpc_status = grpc_status;
        all[n++] = (pt_header_t){PT_STR_LIT("content-type"), PT_STR_LIT("application/grpc"), 0};
        all[n++] = (pt_header_t){PT_STR_LIT("grpc-status"),
                                 pt_str(pt_arena_printf(&st->arena, "%d", grpc_status)), 0};
        if (*body != '\0') {
            size_t cap = 3 * strlen(body) + 1;
            char *message = pt_grpc_message_encode(body, pt_arena_alloc(&st->arena, cap), cap);
            all[n++] = (pt_header_t){PT_STR_LIT("grpc-message"), pt_str(message), 0};
        }
        body = "";
    }
    for (size_t i = 0; i < n_headers; i++) /* a redirect's location, ... */
        if (grpc_status < 0 || !pt_str_ieq_lit(headers[i].name, "content-type"))
            all[n++] = headers[i];
    if (st->overloaded)
        all[n++] = (pt_header_t){PT_STR_LIT("x-envoy-overloaded"), PT_STR_LIT("true"), 0};
    size_t body_len = strlen(body);
    pt_http_msg_t reply = {.status = grpc_status >= 0 ? 200 : status,
                           .version = PT_HTTP_11,
                           .headers = all,
                           .n_headers = n,
                           .content_length = (int64_t)body_len,
                           .has_body = body_len > 0};
    st->downstream->send_head(st->exchange, st->request, &reply);
    st->response_head_sent = true;
    if (body_len > 0) {
        pt_buf_t *slab = pt_buf_new_sized(body_len);
        memcpy(slab->data, body, body_len);
        if (st->downstream->send_data(st->exchange, slab->data, body_len, slab))
            st->bytes_sent = body_len;
        pt_buf_unref(slab);
    }
    st->downstream->send_end(st->exchange, NULL, 0);
    st->response_complete = true;
    maybe_finish(st);
}

void pt_stream_respond(pt_stream_t *st, int status, const char *body, pt_flag_t flag)
{
    static const pt_header_t text = {PT_STR_LIT("content-type"), PT_STR_LIT("text/plain"), 0};
    respond(st, status, -1, &text, 1, body != NULL ? body : "", flag);
}

void pt_stream_respond_headers(pt_stream_t *st, int status, const pt_header_t *hs, size_t n,
                               pt_flag_t flag)
{
    respond(st, status, -1, hs, n, "", flag);
}

void pt_stream_respond_grpc(pt_stream_t *st, int grpc_status, const char *message, pt_flag_t flag)
{
    /* A trailers-only response (gRPC over HTTP/2, "Trailers-Only"): on HTTP/1 the trailers
     * are the head's fields, as gRPC-Web and Envoy's local replies write them. */
    respond(st, 200, grpc_status, NULL, 0, message != NULL ? message : "", flag);
}

void pt_stream_reset(pt_stream_t *st, pt_flag_t flag)
{
    if (!st->is_active)
        return;
    st->flag = flag;
    st->response_complete = true;        /* over on purpose: not counted as a client that left */
    st->downstream->reset(st->exchange); /* ends the stream (pt_stream_abort), flag kept */
}

/* --- routing --- */

/* The cluster's load balancer picks (proxy/lb.c): hash policies read the request head and the
 * client's address. A least-request pick counts the stream as active on the endpoint until
 * finish() releases it. */
static const pt_endpoint_t *pick_endpoint(pt_stream_t *st, const pt_cluster_t *cl)
{
    if (cl->is_original_dst) /* sidecar passthrough (capture.c); none off the sidecar */
        return st->conn->capture != NULL ? &st->conn->capture->destination : NULL;
    return pt_worker_pick_endpoint(worker_of(st), st->config, cl, st->request, st->conn->peer_ip,
                                   true);
}

/* Tells outlier detection (proxy/outlier.c) how the attempt on st->endpoint went. */
static void report_outlier(pt_stream_t *st, pt_outlier_result_t r, int status)
{
    if (st->endpoint != NULL && st->cluster != NULL && st->cluster->outlier_state != NULL)
        pt_outlier_report(st->cluster, (size_t)(st->endpoint - st->cluster->endpoints), r, status,
                          &worker_of(st)->stats);
}

/* x-request-id is kept when it is a plausible id (1..128 visible characters without quotes or
 * separators that would break logs), and generated (a UUID v4) otherwise. */
static bool is_valid_request_id(pt_str_t v)
{
    if (v.len == 0 || v.len > 128)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.base[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            return false;
    }
    return true;
}

static const char *make_request_id(pt_stream_t *st)
{
    const pt_header_t *h = pt_http_msg_find_header(st->request, "x-request-id");
    if (h != NULL && is_valid_request_id(h->value))
        return pt_arena_strndup(&st->arena, h->value.base, h->value.len);
    pt_worker_t *w = worker_of(st);
    uint32_t r[4] = {pt_worker_random(w), pt_worker_random(w), pt_worker_random(w),
                     pt_worker_random(w)};
    r[1] = (r[1] & 0xffff0fffu) | 0x00004000u; /* version 4 */
    r[2] = (r[2] & 0x3fffffffu) | 0x80000000u; /* variant 10 */
    /* 8-4-4-4-12 hex digits of r[0..3], most significant first (no printf: see str.h) */
    char *id = pt_arena_alloc(&st->arena, 37);
    static const char hex[] = "0123456789abcdef";
    char *p = id;
    for (int i = 0; i < 4; i++) {
        for (int shift = 28; shift >= 0; shift -= 4)
            *p++ = hex[r[i] >> shift & 15];
    }
    /* then the groups after the first move right to make room for the dashes */
    memmove(id + 24, id + 20, 12);
    memmove(id + 19, id + 16, 4);
    memmove(id + 14, id + 12, 4);
    memmove(id + 9, id + 8, 4);
    id[8] = id[13] = id[18] = id[23] = '-';
    id[36] = '\0';
    return id;
}

/* --- request forwarding: the attempt loop --- */

/* A request waiting for a maxConnections slot is woken when its worker gives a slot back, and
 * looks again this often for one freed by another worker (that is not announced). */
#define PENDING_POLL_MS 10

void pt_stream_wake_pending(pt_worker_t *w, const pt_cluster_state_t *cs)
{
    for (pt_list_t *n = w->pending.next; n != &w->pending; n = n->next) {
        pt_stream_t *st = PT_CONTAINER_OF(n, pt_stream_t, pending_link);
        if (st->cluster->state == cs) {
            start_timer(st, PT_STREAM_TIMER_RETRY,
                        1); /* from the loop, not from inside upstream.c */
            return;
        }
    }
}

static void respond_overloaded(pt_stream_t *st, pt_stat_t stat)
{
    stop_waiting(st);
    pt_stats_add(&worker_of(st)->stats, stat, 1);
    st->overloaded = true;
    pt_stream_respond(st, 503,
                      "upstream connect error or disconnect/reset before headers. reset reason: "
                      "overflow",
                      PT_FLAG_UO);
}

/* Whether a retry may be made now, and if so counts it (maxRetries, the budget, the stats).
 * Nothing is made yet: the caller detaches the failed attempt, then start_backoff(). */
static bool reserve_retry(pt_stream_t *st, pt_stat_t reason)
{
    pt_worker_t *w = worker_of(st);
    const pt_retry_policy_t *p = st->retry;
    const pt_cluster_t *cl = st->cluster;
    pt_cluster_state_t *cs = cl->state;
    uint64_t now = uv_now(&w->loop);
    if (response_bytes_written(st) || st->request->is_upgrade)
        return false;
    if (st->retries >= p->attempts) {
        if (p->attempts > 0) {
            st->retries_exhausted = true;
            PT_STAT_INC(&w->stats, retries_exhausted);
        }
        return false;
    }
    if (st->body_too_large) {
        PT_STAT_INC(&w->stats, retry_body_too_large);
        return false;
    }
    if (call_deadline(st) != 0 && now >= call_deadline(st))
        return false;
    if (!st->holds_retry_slot) {
        if (!pt_breaker_try_acquire(&cs->retries, cl->pool.max_retries)) {
            PT_STAT_INC(&w->stats, upstream_overflow_retries);
            return false;
        }
        st->holds_retry_slot = true;
    }
    bool allowed =
        cl->pool.has_retry_budget
            ? pt_retry_budget_concurrency_allows(
                  cl->pool.budget_percent, cl->pool.budget_min_concurrency,
                  atomic_load_explicit(&cs->requests, memory_order_relaxed),
                  atomic_load_explicit(&cs->retries, memory_order_relaxed) - 1 /* this one */)
            : pt_retry_budget_withdraw(&cs->budget, now);
    if (!allowed) {
        PT_STAT_INC(&w->stats, retry_budget_exhausted);
        return false;
    }
    st->retries++;
    pt_stats_add(&w->stats, reason, 1);
    return true;
}

/* The failed attempt is detached: waits out the backoff on the connection's timer, holding no
 * upstream connection; on_retry_timer() makes the retry. */
static void start_backoff(pt_stream_t *st)
{
    pt_worker_t *w = worker_of(st);
    uint64_t now = uv_now(&w->loop);
    if (st->n_tried < PT_STREAM_MAX_TRIED)
        st->tried[st->n_tried++] = st->endpoint;
    uint64_t wait = pt_retry_backoff_ms(st->retry, st->retries, pt_worker_random(w));
    uint64_t deadline = call_deadline(st);
    if (deadline != 0 && now + wait > deadline)
        wait = deadline > now ? deadline - now : 0;
    st->is_backing_off = true;
    if (request_has_body(st) && !st->request_complete)
        st->downstream->pause(st->exchange);
    start_timer(st, PT_STREAM_TIMER_RETRY, wait > 0 ? wait : 1); /* 0 would stop the timer */
}

static bool was_tried(const pt_stream_t *st, const pt_endpoint_t *ep)
{
    for (unsigned i = 0; i < st->n_tried; i++)
        if (st->tried[i] == ep)
            return true;
    return false;
}

/* The balancer is asked again, up to 5 times as Istio configures Envoy's previous-hosts
 * predicate, for an endpoint not tried yet; with one endpoint it is that one again. False when
 * there is none: outlier detection has ejected every endpoint since the last attempt. */
static bool pick_retry_endpoint(pt_stream_t *st)
{
    pt_worker_t *w = worker_of(st);
    pt_worker_release_endpoint(w, st->config, st->cluster, st->endpoint);
    const pt_endpoint_t *ep = pick_endpoint(st, st->cluster);
    for (int i = 1; i < 5 && ep != NULL && st->retry->ignore_previous_hosts && was_tried(st, ep);
         i++) {
        pt_worker_release_endpoint(w, st->config, st->cluster, ep);
        ep = pick_endpoint(st, st->cluster);
    }
    st->endpoint = ep;
    return ep != NULL;
}

static void forward(pt_stream_t *st, bool fresh)
{
    pt_worker_t *w = worker_of(st);
    const pt_cluster_t *cl = st->cluster;
    pt_cluster_state_t *cs = cl->state;
    bool ready = false;
    /* http2MaxRequests: the cluster's requests in flight, one per request whatever its
     * attempts. */
    if (!st->holds_request_slot) {
        if (!pt_breaker_try_acquire(&cs->requests, cl->pool.max_requests)) {
            respond_overloaded(st, PT_STAT_upstream_overflow_requests);
            return;
        }
        st->holds_request_slot = true;
        pt_retry_budget_deposit(&cs->budget);
    }
    /* faultPerAttempt: the route's abort is decided for each attempt, and an aborted attempt
     * is retried as the policy says. */
    const pt_http_fault_t *fault = st->route->fault;
    if (st->config->proxy.fault_per_attempt && fault != NULL && fault->abort_status != 0 &&
        pt_fault_fires(fault->abort_ppm, pt_worker_random(w))) {
        st->attempts++;
        if (pt_retry_on_response(st->retry, fault->abort_status,
                                 fault->is_grpc_abort ? fault->abort_grpc_status : -1, false) &&
            reserve_retry(st, PT_STAT_retries_status)) {
            start_backoff(st);
            return;
        }
        if (fault->is_grpc_abort)
            pt_stream_respond_grpc(st, fault->abort_grpc_status, "fault filter abort", PT_FLAG_FI);
        else
            pt_stream_respond(st, fault->abort_status, "fault filter abort", PT_FLAG_FI);
        return;
    }
    /* maxConnections: a connection carrying a request holds a slot; without one the request
     * waits as one of at most http1MaxPendingRequests, and beyond that is refused at once.
     * HTTP/2 multiplexes: its requests are bounded by http2MaxRequests alone. */
    bool http2 = pt_upstream_is_http2(w, cl, st->endpoint, st->request);
    if (!http2 && !pt_breaker_try_acquire(&cs->connections, cl->pool.max_connections)) {
        if (!st->holds_pending_slot) {
            if (!pt_breaker_try_acquire(&cs->pending, cl->pool.max_pending)) {
                respond_overloaded(st, PT_STAT_upstream_overflow_pending);
                return;
            }
            st->holds_pending_slot = true;
            st->pending_since_ms = uv_now(&w->loop);
            PT_STAT_INC(&w->stats, upstream_overflow_connections);
        }
        st->is_waiting_for_connection = true;
        if (!pt_list_is_linked(&st->pending_link))
            pt_list_insert_tail(&w->pending, &st->pending_link);
        st->wait_fresh = fresh;
        if (request_has_body(st) && !st->request_complete)
            st->downstream->pause(st->exchange);
        start_timer(st, PT_STREAM_TIMER_RETRY, PENDING_POLL_MS);
        return;
    }
    if (st->holds_pending_slot) {
        pt_breaker_release(&cs->pending);
        st->holds_pending_slot = false;
    }
    stop_waiting(st);
    st->attempts++;
    /* Every attempt after the first passes here (the replay on a fresh connection today; the
     * retry policy's attempts too): the span's attempt event. */
    if (st->attempts > 1)
        pt_trace_stream_event(st, PT_TRACE_EVENT_UPSTREAM_ATTEMPT, st->attempts);
    PT_STAT_INC(&w->stats, upstream_rq_total);
    size_t alen = strlen(st->endpoint->address);
    char *host = pt_arena_alloc(&st->arena, alen + 7); /* "address:port" */
    memcpy(host, st->endpoint->address, alen);
    host[alen] = ':';
    host[alen + 1 + pt_put_u64(host + alen + 1, st->endpoint->port)] = '\0';
    st->upstream_host = host;
    /* Until the upstream is ready, body bytes wait in pending_body and reading stops. */
    if (request_has_body(st) && !st->request_complete)
        st->downstream->pause(st->exchange);
    st->upstream =
        pt_upstream_acquire(w, cl, st->endpoint, &upstream_cbs, st, fresh, http2, &ready);
    /* A gRPC call's deadline runs on while the connection opens and the request streams (the
     * route timeout only from the request's end, end_request_upstream()). */
    if (st->grpc_deadline_ms != 0) {
        st->per_try_timer = false;
        start_timer(st, PT_STREAM_TIMER_ROUTE, ms_until(st, st->grpc_deadline_ms));
    }
    if (ready)
        on_upstream_ready(st, true);
}

static void on_retry_timer(pt_stream_t *st)
{
    if (!st->is_active)
        return;
    pt_worker_t *w = worker_of(st);
    uint64_t now = uv_now(&w->loop);
    if (st->is_waiting_for_connection) {
        /* A pending request waits up to the connect timeout; a retry, once the route
         * timeout runs, up to its end. */
        uint64_t connect_ms = st->cluster->pool.connect_timeout_ms > 0
                                  ? st->cluster->pool.connect_timeout_ms
                                  : st->config->proxy.connect_timeout_ms;
        if (call_deadline(st) != 0 ? now >= call_deadline(st)
                                   : now - st->pending_since_ms >= connect_ms) {
            respond_overloaded(st, PT_STAT_upstream_overflow_pending);
            return;
        }
        forward(st, st->wait_fresh);
        return;
    }
    if (!st->is_backing_off)
        return;
    st->is_backing_off = false;
    if (call_deadline(st) != 0 && now >= call_deadline(st)) {
        on_timeout(st);
        return;
    }
    if (!pick_retry_endpoint(st)) {
        PT_STAT_INC(&worker_of(st)->stats, upstream_rq_no_healthy);
        pt_stream_respond(st, 503, "no healthy upstream", PT_FLAG_UH);
        return;
    }
    forward(st, false);
}

/* The request body is kept (slabs pinned, not copied) while it fits retryBodyLimit, so that a
 * retry can send it again. */
static void keep_body_piece(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin)
{
    if (st->kept_bytes + len > st->config->proxy.retry_body_limit) {
        free_kept_body(st);
        st->keeps_body = false;
        st->body_too_large = true;
        return;
    }
    pt_body_piece_t *p = pt_arena_alloc(&st->arena, sizeof(*p));
    p->next = NULL;
    p->data = data;
    p->len = len;
    p->pin = pin;
    pt_buf_ref(pin);
    *st->kept_tail = p;
    st->kept_tail = &p->next;
    st->kept_bytes += len;
}

const pt_http_route_t *pt_stream_route(pt_stream_t *st)
{
    if (st->is_route_cached)
        return st->route;
    st->is_route_cached = true;
    if (st->listener == NULL || st->listener->protocol != PT_LISTENER_HTTP)
        return NULL;
    const pt_http_msg_t *head = st->request;
    const pt_http_route_t *r = pt_router_match_detail(st->listener, head, &st->route_match);
    if (r == NULL)
        return NULL;
    st->route = r;
    /* An explicit policy is honoured for every method; without one, Petrel's safe default. */
    st->retry = r->retry != NULL                                 ? r->retry
                : pt_retry_method_is_idempotent(head->method_id) ? &pt_retry_default_idempotent
                                                                 : &pt_retry_default_unsafe;
    st->keeps_body = request_has_body(st) && st->retry->attempts > 0 && !head->is_upgrade;
    return r;
}

/* The router, the chain's terminal step: the route (or 404), the weighted destination, the
 * endpoint, the mirror's copies and the first attempt (forward()). */
static void route_request(pt_stream_t *st)
{
    pt_worker_t *w = worker_of(st);
    if (st->listener == NULL || st->listener->protocol != PT_LISTENER_HTTP) {
        /* A reload removed this port (or made it TCP) while the connection stayed open. */
        st->downstream->close_after(st->exchange);
        pt_stream_respond(st, 404, "no route", PT_FLAG_NR);
        return;
    }
    const pt_http_route_t *r = pt_stream_route(st);
    if (r == NULL) {
        PT_STAT_INC(&w->stats, downstream_rq_no_route);
        pt_stream_respond(st, 404, "", PT_FLAG_NR);
        return;
    }
    st->destination = pt_router_pick_destination(r, pt_worker_random(w));
    st->cluster = st->destination->cluster;
    if (st->cluster->n_endpoints == 0 && !st->cluster->is_original_dst) {
        PT_STAT_INC(&w->stats, upstream_rq_no_healthy);
        pt_stream_respond(st, 503, "no healthy upstream", PT_FLAG_UH);
        return;
    }
    st->endpoint = pick_endpoint(st, st->cluster);
    if (st->endpoint == NULL) { /* outlier detection ejected every endpoint */
        PT_STAT_INC(&w->stats, upstream_rq_no_healthy);
        pt_stream_respond(st, 503, "no healthy upstream", PT_FLAG_UH);
        return;
    }
    pt_mirror_start(st);
    forward(st, false);
}

/* The filters' on_request_headers from index i on, in registry order, then the router. A
 * filter that paused is called again when its pause ends (its instance says what it did). */
static void run_request_filters(pt_stream_t *st, size_t i)
{
    for (; i < pt_n_filters; i++) {
        const pt_filter_ops_t *f = pt_filters[i];
        if (f->on_request_headers == NULL)
            continue;
        pt_filter_status_t s = f->on_request_headers(st, st->filter_instances[i], st->request);
        if (s == PT_FILTER_RESPONDED) {
            maybe_finish(st);
            return;
        }
        if (s == PT_FILTER_PAUSE) {
            st->is_filter_paused = true;
            st->next_filter = (uint8_t)i; /* called again when the pause ends */
            /* The retry policy decides whether body bytes read during the pause are kept. */
            pt_stream_route(st);
            if (request_has_body(st) && !st->request_complete)
                st->downstream->pause(st->exchange);
            return;
        }
    }
    route_request(st);
}

void pt_stream_start(pt_stream_t *st, pt_http_msg_t *head)
{
    pt_worker_t *w = worker_of(st);
    st->request = head;
    st->start_ms = uv_now(&w->loop);
    PT_STAT_INC(&w->stats, downstream_rq_total);
    st->request_id = make_request_id(st);
    /* A gRPC client's deadline (grpc-timeout, PROTOCOL-HTTP2.md) bounds the whole call, from its
     * head on; a malformed value is ignored, as Envoy ignores it. */
    const pt_header_t *timeout =
        pt_grpc_is_request(head) ? pt_http_msg_find_header(head, "grpc-timeout") : NULL;
    uint64_t timeout_ms;
    if (timeout != NULL && pt_grpc_timeout_parse(timeout->value, &timeout_ms))
        st->grpc_deadline_ms = st->start_ms + timeout_ms;
    run_request_filters(st, 0);
}

void pt_stream_resume_after(pt_stream_t *st, uint64_t ms)
{
    start_timer(st, PT_STREAM_TIMER_RESUME, ms);
}

void pt_stream_filter_body(pt_stream_t *st, const struct pt_filter_ops *ops)
{
    for (size_t i = 0; i < pt_n_filters; i++)
        if (pt_filters[i] == ops)
            st->body_filters |= (uint16_t)(1u << i);
}

static void end_response_pause(pt_stream_t *st);
static bool run_response_data_filters(pt_stream_t *st, size_t below, const char *data, size_t len,
                                      pt_buf_t *pin);

static void on_resume(pt_stream_t *st)
{
    if (!st->is_active)
        return;
    if (st->is_response_paused) {
        size_t i = st->response_filter;
        if (pt_filters[i]->on_response_data(st, st->filter_instances[i], NULL, 0, NULL) ==
            PT_FILTER_CONTINUE)
            end_response_pause(st);
        return;
    }
    if (!st->is_filter_paused)
        return;
    st->is_filter_paused = false;
    run_request_filters(st, st->next_filter);
}

static bool is_hop_or_rewritten(const pt_header_t *h)
{
    /* `te: trailers` stays, still flagged hop-by-hop: the HTTP/1 codec drops it, the HTTP/2
     * codec sends it (gRPC needs it). */
    if (pt_str_ieq_lit(h->name, "te"))
        return !pt_str_ieq_lit(h->value, "trailers");
    if (h->flags & (PT_HEADER_HOP | PT_HEADER_FRAMING))
        return true;
    return pt_str_ieq_lit(h->name, "host") || pt_str_ieq_lit(h->name, "x-forwarded-for") ||
           pt_str_ieq_lit(h->name, "x-forwarded-proto") ||
           pt_str_ieq_lit(h->name, "x-request-id") || pt_str_ieq_lit(h->name, "expect") ||
           pt_str_ieq_lit(h->name, "x-envoy-attempt-count");
}

/* Petrel's trace context headers, as pt_trace_write_headers() renders them, as fields. */
static size_t trace_headers(pt_stream_t *st, pt_header_t **out)
{
    char *text = pt_arena_alloc(&st->arena, pt_trace_headers_size(&st->trace->ctx));
    char *end = pt_trace_write_headers(&st->trace->ctx, text);
    size_t n = 0;
    for (const char *p = text; p < end; p++)
        n += *p == '\n';
    pt_header_t *f = pt_arena_alloc(&st->arena, n * sizeof(*f));
    char *p = text;
    for (size_t i = 0; i < n; i++) {
        char *colon = memchr(p, ':', (size_t)(end - p));
        char *eol = memchr(colon, '\r', (size_t)(end - colon));
        f[i] = (pt_header_t){.name = {p, (size_t)(colon - p)},
                             .value = {colon + 2, (size_t)(eol - colon - 2)}};
        p = eol + 2;
    }
    *out = f;
    return n;
}

pt_http_msg_t *pt_stream_request_head(pt_stream_t *st, pt_str_t authority)
{
    const pt_http_msg_t *h = st->request;
    pt_http_msg_t *m = pt_arena_alloc(&st->arena, sizeof(*m));
    *m = *h;
    m->version = PT_HTTP_11;
    m->scheme = PT_STR_LIT("");
    m->authority = authority;
    /* The route's rewrites and request header mutations (route_action.c). */
    m->path = pt_route_action_path(st);
    const pt_header_t *hs;
    size_t n_hs = pt_route_action_request_headers(st, &hs);
    pt_header_t *trace = NULL;
    size_t n_trace = st->trace != NULL ? trace_headers(st, &trace) : 0;
    pt_header_t *out = pt_arena_alloc(&st->arena, (n_hs + n_trace + 4) * sizeof(*out));
    size_t n = 0;
    for (size_t i = 0; i < n_hs; i++)
        if (!is_hop_or_rewritten(&hs[i]) &&
            !(st->trace != NULL && pt_trace_is_context_header(hs[i].name)))
            out[n++] = hs[i];
    /* the client's trace headers are replaced by Petrel's span */
    for (size_t i = 0; i < n_trace; i++)
        out[n++] = trace[i];
    /* x-forwarded-for, as Envoy and HAProxy write it: the client's list (every line of it,
     * RFC 9110 §5.3), then the client's own address. */
    pt_str_t peer = pt_str(st->conn->peer_ip);
    size_t xff_len = peer.len;
    for (size_t i = 0; i < h->n_headers; i++)
        if (pt_str_ieq_lit(h->headers[i].name, "x-forwarded-for"))
            xff_len += h->headers[i].value.len + 2;
    char *xff = pt_arena_alloc(&st->arena, xff_len), *p = xff;
    for (size_t i = 0; i < h->n_headers; i++) {
        const pt_header_t *hd = &h->headers[i];
        if (hd->value.len == 0 || !pt_str_ieq_lit(hd->name, "x-forwarded-for"))
            continue;
        memcpy(p, hd->value.base, hd->value.len);
        p += hd->value.len;
        *p++ = ',';
        *p++ = ' ';
    }
    memcpy(p, peer.base, peer.len);
    p += peer.len;
    out[n++] = (pt_header_t){PT_STR_LIT("x-forwarded-for"), {xff, (size_t)(p - xff)}, 0};
    /* As Envoy: the scheme of the client's connection to Petrel (mesh mTLS included). */
    out[n++] = (pt_header_t){PT_STR_LIT("x-forwarded-proto"),
                             st->conn->is_tls ? PT_STR_LIT("https") : PT_STR_LIT("http"), 0};
    out[n++] = (pt_header_t){PT_STR_LIT("x-request-id"), pt_str(st->request_id), 0};
    /* Istio turns on Envoy's includeRequestAttemptCount on every virtual host. A mirror's copy
     * goes before the first attempt and counts as it. */
    int attempt = st->attempts > 0 ? st->attempts : 1;
    pt_str_t count = attempt <= 9 ? (pt_str_t){&"123456789"[attempt - 1], 1} /* no printf */
                                  : pt_str(pt_arena_printf(&st->arena, "%d", attempt));
    out[n++] = (pt_header_t){PT_STR_LIT("x-envoy-attempt-count"), count, 0};
    m->headers = out;
    m->n_headers = n;
    return m;
}

static void end_request_upstream(pt_stream_t *st)
{
    pt_exchange_send_end(st->upstream, st->request_trailers, st->n_request_trailers);
    /* Istio's default is no route timeout; then idleTimeout bounds the wait for the response
     * head, so that a silent upstream cannot hold a client forever. The route timeout runs
     * from the first attempt's request end and bounds every retry; perTryTimeout bounds one
     * attempt. */
    uint64_t now = uv_now(&worker_of(st)->loop);
    if (st->deadline_ms == 0 && st->route->timeout_ms > 0)
        st->deadline_ms = now + st->route->timeout_ms;
    if (st->response_head_sent) {
        /* The head came while the request streamed (gRPC bidirectional): only a deadline is
         * left to bound the rest. */
        if (call_deadline(st) != 0)
            start_timer(st, PT_STREAM_TIMER_ROUTE, ms_until(st, call_deadline(st)));
        return;
    }
    uint64_t timeout_ms = call_deadline(st) != 0 ? ms_until(st, call_deadline(st))
                                                 : st->config->proxy.idle_timeout_ms;
    st->per_try_timer = false;
    if (st->retry->per_try_timeout_ms > 0 && st->retry->per_try_timeout_ms < timeout_ms) {
        timeout_ms = st->retry->per_try_timeout_ms;
        st->per_try_timer = true;
    }
    start_timer(st, PT_STREAM_TIMER_ROUTE, timeout_ms);
}

static void on_upstream_ready(void *ctx, bool is_reused)
{
    pt_stream_t *st = ctx;
    pt_exchange_t *x = st->upstream;
    pt_worker_t *w = worker_of(st);
    if (is_reused)
        PT_STAT_INC(&w->stats, upstream_rq_reused_connection);
    if (pt_exchange_send_head(x, pt_stream_request_head(st, pt_route_action_authority(st)),
                              &st->arena) != 0) {
        drop_upstream(st); /* the request could not go: the connection is not reused */
        pt_stream_on_upstream_error(st, PT_CODEC_RESET_CLOSED, is_reused);
        return;
    }
    st->upstream_head_sent = true;
    st->upstream_start_ms = uv_now(&w->loop);
    /* A retry sends the kept body from its start; what came during the backoff is in it. */
    for (pt_body_piece_t *p = st->retries > 0 ? st->kept_body : st->pending_body; p != NULL;
         p = p->next)
        pt_exchange_send_data(x, p->data, p->len, p->pin);
    free_pending_body(st);
    if (!pt_exchange_is_write_congested(x))
        st->downstream->resume(st->exchange);
    if (st->request_complete) {
        end_request_upstream(st);
        return;
    }
    /* Petrel answers Expect: 100-continue itself once the upstream is reachable (the header is
     * not forwarded), so a request refused before that point costs the client no upload. */
    st->downstream->send_continue(st->exchange, st->request);
}

/* The watching filters' on_request_data, in registry order; true when one answered. */
static bool run_request_data_filters(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin)
{
    for (size_t i = 0; i < pt_n_filters; i++)
        if ((st->body_filters & (1u << i)) && pt_filters[i]->on_request_data != NULL &&
            pt_filters[i]->on_request_data(st, st->filter_instances[i], data, len, pin) ==
                PT_FILTER_RESPONDED)
            return true;
    return false;
}

void pt_stream_on_request_body(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin)
{
    st->bytes_received += len;
    if (st->body_filters != 0 && !st->response_complete &&
        run_request_data_filters(st, data, len, pin))
        return;
    if (st->mirror != NULL)
        pt_mirror_body(st->mirror, data, len, pin);
    if (st->response_complete)
        return;
    if (st->keeps_body)
        keep_body_piece(st, data, len, pin);
    if (!st->upstream_head_sent) {
        if (st->upstream == NULL && !st->is_filter_paused && !st->is_backing_off &&
            !st->is_waiting_for_connection)
            return; /* answered locally; the body is dropped */
        pt_body_piece_t *p = pt_arena_alloc(&st->arena, sizeof(*p));
        p->next = NULL;
        p->data = data;
        p->len = len;
        p->pin = pin;
        pt_buf_ref(pin);
        *st->pending_tail = p;
        st->pending_tail = &p->next;
        return;
    }
    pt_exchange_send_data(st->upstream, data, len, pin);
    if (pt_exchange_is_write_congested(st->upstream))
        st->downstream->pause(st->exchange);
}

void pt_stream_on_request_trailers(pt_stream_t *st, pt_header_t *t, size_t n)
{
    for (size_t i = 0; st->body_filters != 0 && i < pt_n_filters; i++)
        if ((st->body_filters & (1u << i)) && pt_filters[i]->on_request_trailers != NULL &&
            pt_filters[i]->on_request_trailers(st, st->filter_instances[i], t, n) ==
                PT_FILTER_RESPONDED)
            return;
    st->request_trailers = t;
    st->n_request_trailers = n;
}

void pt_stream_on_request_complete(pt_stream_t *st)
{
    st->request_complete = true;
    if (st->mirror != NULL)
        pt_mirror_end(st->mirror);
    if (st->upstream_head_sent && st->upstream != NULL && !st->response_complete)
        end_request_upstream(st);
    maybe_finish(st);
}

static void on_upstream_drained(void *ctx)
{
    pt_stream_t *st = ctx;
    if (st->upstream_head_sent)
        st->downstream->resume(st->exchange);
}

/* The upstream's reads go on once the downstream is not congested and a filter holding the
 * response body holds at most PT_STREAM_RESPONSE_HELD_MAX bytes. */
static void resume_upstream_reading(pt_stream_t *st)
{
    if (st->is_upstream_read_paused && st->upstream != NULL &&
        st->response_held_bytes <= PT_STREAM_RESPONSE_HELD_MAX &&
        !st->downstream->is_write_congested(st->exchange)) {
        st->is_upstream_read_paused = false;
        pt_exchange_resume(st->upstream);
    }
}

void pt_stream_on_downstream_drained(pt_stream_t *st)
{
    resume_upstream_reading(st);
}

/* --- failures --- */

/* The upstream failed: connect failure (UF), reset or EOF before the response (URX, retried
 * once on a fresh connection when the failed one was reused and the request is replayable),
 * invalid response (UPE, 502), a stream the upstream refused unprocessed (URX, retried under
 * refused-stream). After the response head went downstream the client's connection is closed
 * instead (UC), so a cut response never looks complete. The codec has already let go of the
 * exchange. */
static void pt_stream_on_upstream_error(pt_stream_t *st, pt_codec_reset_t why, bool was_reused)
{
    pt_worker_t *w = worker_of(st);
    pt_flag_t flag = why == PT_CODEC_RESET_CONNECT_FAILURE  ? PT_FLAG_UF
                     : why == PT_CODEC_RESET_PROTOCOL_ERROR ? PT_FLAG_UPE
                                                            : PT_FLAG_URX;
    int status = flag == PT_FLAG_UPE ? 502 : 503;
    st->upstream = NULL; /* the codec let go of it already */
    st->upstream_head_sent = false;
    if (response_bytes_written(st)) {
        st->flag = PT_FLAG_UC;
        PT_STAT_INC(&w->stats, upstream_rq_reset);
        st->downstream->reset(st->exchange);
        return;
    }
    /* A head that only sat in the buffer is no answer: the reset is the outcome, logged as
     * upstream_reset_before_response_started, not via_upstream. */
    st->upstream_ms = UINT64_MAX;
    /* A pooled connection the upstream closed just as we reused it: the request never reached
     * an application, and one without a body is replayed on a fresh connection as is. */
    if (flag == PT_FLAG_URX && was_reused && !request_has_body(st) && !st->replayed_reused) {
        st->replayed_reused = true;
        PT_STAT_INC(&w->stats, upstream_rq_reused_connection_retry);
        forward(st, true);
        return;
    }
    report_outlier(st, PT_OUTLIER_CONNECT_FAILED, status);
    const char *body = "upstream connect error or disconnect/reset before headers. reset reason: "
                       "connection termination";
    if (flag == PT_FLAG_UF) {
        PT_STAT_INC(&w->stats, upstream_cx_connect_fail);
        body = "upstream connect error or disconnect/reset before headers. reset reason: "
               "connection failure";
        if (pt_retry_on_failure(st->retry, PT_RETRY_FAIL_CONNECT) &&
            reserve_retry(st, PT_STAT_retries_connect_failure)) {
            start_backoff(st);
            return;
        }
    } else if (flag == PT_FLAG_UPE) {
        PT_STAT_INC(&w->stats, upstream_rq_protocol_error);
        body = "upstream sent an invalid response";
    } else if (why == PT_CODEC_RESET_REFUSED) {
        PT_STAT_INC(&w->stats, upstream_rq_reset);
        body = "upstream connect error or disconnect/reset before headers. reset reason: "
               "remote refused stream reset";
        if (pt_retry_on_failure(st->retry, PT_RETRY_FAIL_REFUSED_STREAM) &&
            reserve_retry(st, PT_STAT_retries_reset)) {
            start_backoff(st);
            return;
        }
    } else {
        PT_STAT_INC(&w->stats, upstream_rq_reset);
        if (pt_retry_on_failure(st->retry, PT_RETRY_FAIL_RESET) &&
            reserve_retry(st, PT_STAT_retries_reset)) {
            start_backoff(st);
            return;
        }
    }
    pt_stream_respond(st, status, body, flag);
}

static void on_timeout(pt_stream_t *st)
{
    PT_STAT_INC(&worker_of(st)->stats, upstream_rq_timeout);
    if (!response_bytes_written(st) && st->upstream_head_sent)
        report_outlier(st, PT_OUTLIER_TIMEOUT, 504);
    if (response_bytes_written(st)) {
        st->flag = PT_FLAG_UT;
        st->downstream->reset(st->exchange);
        return;
    }
    if (st->per_try_timer && !st->response_head_sent && st->upstream != NULL) {
        /* perTryTimeout: this attempt is abandoned (its connection closed), and retried when
         * the policy and the budget allow. */
        st->per_try_timer = false;
        if (pt_retry_on_failure(st->retry, PT_RETRY_FAIL_PER_TRY_TIMEOUT) &&
            reserve_retry(st, PT_STAT_retries_per_try_timeout)) {
            st->upstream_head_sent = false;
            drop_upstream(st);
            start_backoff(st);
            return;
        }
    }
    pt_stream_respond(st, 504, "upstream request timeout", PT_FLAG_UT);
}

void pt_stream_abort(pt_stream_t *st, pt_flag_t flag)
{
    if (!st->is_active)
        return;
    if (st->flag == PT_FLAG_NONE && !st->response_complete)
        st->flag = flag;
    if (flag == PT_FLAG_DC && !st->response_complete)
        PT_STAT_INC(&worker_of(st)->stats, downstream_rq_client_closed);
    finish(st);
}

/* --- the response --- */

/* A response head the policy retries (status, grpc-status of a trailers-only response,
 * x-envoy-ratelimited), when a retry is allowed now (counted by reserve_retry). */
/* The grpc-status among headers (a trailers-only head, or trailers): 0..99, -1 when absent or
 * not a number. */
static int grpc_status_of(const pt_header_t *headers, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const pt_header_t *g = &headers[k];
        if (!pt_str_ieq_lit(g->name, "grpc-status"))
            continue;
        if (g->value.len == 0 || g->value.len > 2)
            return -1;
        int v = 0;
        for (size_t i = 0; i < g->value.len; i++) {
            char ch = g->value.base[i];
            if (ch < '0' || ch > '9')
                return -1;
            v = v * 10 + (ch - '0');
        }
        return v;
    }
    return -1;
}

static bool should_retry_response(pt_stream_t *st, const pt_http_msg_t *h)
{
    bool ratelimited = pt_http_msg_find_header(h, "x-envoy-ratelimited") != NULL;
    return pt_retry_on_response(st->retry, h->status, grpc_status_of(h->headers, h->n_headers),
                                ratelimited) &&
           reserve_retry(st, PT_STAT_retries_status);
}

static int pt_stream_on_response_head(pt_stream_t *st, pt_http_msg_t *h)
{
    pt_worker_t *w = st->worker;
    if (h->status < 200 && h->status != 101)
        return 0; /* interim responses are not relayed: Petrel answered 100 itself */
    report_outlier(st, PT_OUTLIER_RESPONSE, h->status);
    if (h->status != 101 && should_retry_response(st, h)) {
        st->upstream_head_sent = false;
        drop_upstream(st); /* its body is not read: the connection closes */
        stop_timer(st);
        start_backoff(st);
        return -1;
    }
    for (size_t i = pt_n_filters; i-- > 0;)
        if (pt_filters[i]->on_response_headers != NULL)
            pt_filters[i]->on_response_headers(st, st->filter_instances[i], h);
    st->upstream_ms = uv_now(&w->loop) - st->upstream_start_ms;
    if (st->route->timeout_ms == 0 && st->grpc_deadline_ms == 0)
        stop_timer(st);         /* only the wait for the head was bounded */
    else if (st->per_try_timer) /* the body is bounded by the call's deadline */
        start_timer(st, PT_STREAM_TIMER_ROUTE, ms_until(st, call_deadline(st)));
    if (h->status == 101 && !st->request->is_upgrade) {
        drop_upstream(st);
        pt_stream_respond(st, 502, "upstream sent an invalid response", PT_FLAG_UPE);
        return -1;
    }
    st->status = h->status;
    st->grpc_status = grpc_status_of(h->headers, h->n_headers);
    st->downstream->send_head(st->exchange, st->request, h);
    st->response_head_sent = true;
    if (h->status == 101)
        st->is_tunnel = true;
    return is_head_request(st) ? PT_CODEC_SKIP_BODY : 0;
}

static void pause_upstream_reading(pt_stream_t *st)
{
    if (!st->is_upstream_read_paused && st->upstream != NULL) {
        st->is_upstream_read_paused = true;
        pt_exchange_pause(st->upstream);
    }
}

void pt_stream_send_response_data(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin)
{
    st->response_held_bytes -= len < st->response_held_bytes ? len : st->response_held_bytes;
    if (run_response_data_filters(st, st->response_filter, data, len, pin) ||
        !st->downstream->send_data(st->exchange, data, len, pin))
        return;
    st->bytes_sent += len;
    if (st->downstream->is_write_congested(st->exchange))
        pause_upstream_reading(st);
    else
        resume_upstream_reading(st);
}

/* The watching filters' on_response_data below index below, in reverse registry order; true
 * when one took the bytes (it paused the body). */
static bool run_response_data_filters(pt_stream_t *st, size_t below, const char *data, size_t len,
                                      pt_buf_t *pin)
{
    for (size_t i = below; i-- > 0;) {
        if (!(st->body_filters & (1u << i)) || pt_filters[i]->on_response_data == NULL)
            continue;
        if (pt_filters[i]->on_response_data(st, st->filter_instances[i], data, len, pin) ==
            PT_FILTER_PAUSE) {
            st->is_response_paused = true;
            st->response_filter = (uint8_t)i;
            st->response_held_bytes += len;
            if (st->response_held_bytes > PT_STREAM_RESPONSE_HELD_MAX)
                pause_upstream_reading(st);
            return true;
        }
    }
    return false;
}

static void on_response_data(void *ctx, const char *data, size_t len, pt_buf_t *pin)
{
    pt_stream_t *st = ctx;
    if (st->body_filters != 0 && run_response_data_filters(st, pt_n_filters, data, len, pin))
        return;
    if (!st->downstream->send_data(st->exchange, data, len, pin))
        return;
    st->bytes_sent += len;
    if (!st->is_upstream_read_paused && st->downstream->is_write_congested(st->exchange)) {
        st->is_upstream_read_paused = true;
        pt_exchange_pause(st->upstream);
    }
}

static void on_response_trailers(void *ctx, pt_header_t *t, size_t n)
{
    pt_stream_t *st = ctx;
    for (size_t i = pt_n_filters; st->body_filters != 0 && i-- > 0;)
        if ((st->body_filters & (1u << i)) && pt_filters[i]->on_response_trailers != NULL)
            pt_filters[i]->on_response_trailers(st, st->filter_instances[i], t, n);
    st->response_trailers = t;
    st->n_response_trailers = n;
    int grpc_status = grpc_status_of(t, n);
    if (grpc_status >= 0)
        st->grpc_status = grpc_status;
}

/* The response is whole downstream: its end (and trailers) written. */
static void end_response(pt_stream_t *st)
{
    st->response_complete = true;
    st->downstream->send_end(st->exchange, st->response_trailers, st->n_response_trailers);
}

/* The filter holding the response body passed all of it on: the route timeout (which the
 * pause's timer replaced) runs on, or the response ends. */
static void end_response_pause(pt_stream_t *st)
{
    st->is_response_paused = false;
    if (st->is_response_end_pending) {
        end_response(st);
        maybe_finish(st);
        return;
    }
    if (call_deadline(st) != 0)
        start_timer(st, PT_STREAM_TIMER_ROUTE, ms_until(st, call_deadline(st)));
    resume_upstream_reading(st);
}

static void on_response_end(void *ctx)
{
    pt_stream_t *st = ctx;
    pt_exchange_t *x = st->upstream;
    if (st->is_response_paused) {
        st->is_response_end_pending = true; /* the filter holding the body ends it */
    } else {
        stop_timer(st);
        end_response(st);
    }
    st->upstream = NULL;
    if (st->is_tunnel) {
        st->tunnel = st->downstream->hand_off_to_tunnel(st->exchange, x->up);
        finish(st);
        return;
    }
    /* The connection goes back to the pool only if the upstream got the whole request. */
    pt_exchange_release(x, st->request_complete);
    maybe_finish(st);
}

/* --- the upstream exchange's events (proxy/codec.h) --- */

static int on_response_head(void *ctx, pt_http_msg_t *head)
{
    return pt_stream_on_response_head(ctx, head);
}

static void on_upstream_reset(void *ctx, pt_codec_reset_t why, bool was_reused)
{
    pt_stream_on_upstream_error(ctx, why, was_reused);
}

static const pt_codec_stream_cbs_t upstream_cbs = {
    .on_ready = on_upstream_ready,
    .on_head = on_response_head,
    .on_data = on_response_data,
    .on_trailers = on_response_trailers,
    .on_end = on_response_end,
    .on_reset = on_upstream_reset,
    .on_drained = on_upstream_drained,
};
