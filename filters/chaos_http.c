/* filters/chaos_http.c
 * The chaos harness's HTTP toxics (filters/chaos/chaos.h, pt_chaos_route_t): set at runtime on
 * a VirtualService route through the chaos API (POST /routes/{vs}/{route}/toxics), so a request
 * is chosen by the route's own match rules, or on an HTTP chaos proxy (its ChaosProxy's toxics,
 * or POST /proxies/{name}/toxics), whose one route the config marks with the proxy's name
 * (pt_http_route_t.chaos_proxy), and applied per request:
 *   http_delay      the request waits delay +- jitter ms before it is routed (a pause);
 *   http_drop_first the first count requests are cut: the connection closes, no answer;
 *   http_abort      answered locally: status, or a gRPC trailers-only reply (grpc_status);
 *   http_slow_body  the response body goes out at most bytes per interval ms (on_response_data
 *                   holds what is early and paces it with the stream's timer; the upstream's
 *                   reads stop meanwhile).
 * A toxic with a match[] of its own (Istio's HTTPMatchRequest, compiled by config/chaos_match.c
 * and tested by the router's code) applies only to the requests it matches; the others neither
 * roll it nor count. Each rolls its toxicity once per request, then its cap (max_hits; for
 * http_drop_first its count too); a dry run counts and does nothing. The delay comes first, then
 * the toxics in the route's order: the first drop or abort that fires ends the request. Hits are
 * counted in the toxic's counters (petrel_chaos_* metrics), recorded as span events, and flagged
 * in the access log (DI for a delay, FI for the others, with "chaos:<toxic>" as response code
 * details for a drop or abort).
 *
 * A request that meets no toxic costs one test (no chaos snapshot, or one without routes). One
 * that some toxic applies to holds a ref on the chaos snapshot (its toxics' settings, counters
 * and matches) until it ends, so an API change never moves them under it. */
#include <stdio.h>

#include "../proxy/router.h"
#include "../proxy/trace_export.h"
#include "../proxy/worker.h"
#include "chaos/chaos.h"
#include "filter.h"

typedef struct chaos_http {
    pt_chaos_snapshot_t *snap; /* a ref while the request's toxics are in use, or NULL */
    const pt_toxic_t *toxics;  /* the route's (or HTTP chaos proxy's) toxics, in snap */
    size_t n_toxics;
    uint32_t selected;      /* bit i: toxics[i] applies to this request (its match[] holds) */
    bool is_delayed;        /* an http_delay fired: the request waited (flag DI) */
    const pt_toxic_t *slow; /* the http_slow_body that fired, in snap, or NULL */
    pt_body_piece_t *held;  /* response body bytes waiting for their slice (refs) */
    pt_body_piece_t **held_tail;
    size_t held_offset;     /* bytes of held's first piece already sent */
    uint64_t next_slice_ms; /* the loop's uv_now when the current window ends */
    size_t slice_left;      /* bytes the current window still lets through */
    bool is_pacing;         /* bytes are held and the stream's timer runs for their slice */
} chaos_http_t;

_Static_assert(PT_CHAOS_MAX_TOXICS <= 32, "chaos_http_t.selected has one bit per toxic");

extern const pt_filter_ops_t pt_filter_chaos_http_ops;

static void set_details(pt_stream_t *st, const pt_toxic_t *t)
{
    st->details = pt_arena_printf(&st->arena, "chaos:%s", t->name);
}

/* The route's toxics for this request, or none: looked up once, on the first call, with the
 * ones whose match[] selects head (none when no toxic applies to it). */
static bool find_toxics(pt_stream_t *st, chaos_http_t *c, const pt_http_msg_t *head)
{
    if (st->worker->ext == NULL)
        return false; /* no chaos proxy or API: the common case, without a call */
    pt_chaos_snapshot_t *snap = pt_chaos_worker_snapshot(st->worker);
    if (snap == NULL || (snap->n_routes == 0 && st->conn->chaos_proxy == NULL))
        return false;
    const pt_http_route_t *r = pt_stream_route(st);
    if (r == NULL || r->name == NULL)
        return false;
    const pt_toxic_t *toxics;
    size_t n;
    if (r->chaos_proxy != NULL) {
        /* An API proxy of that name (TCP) has nothing to do with this route. */
        const pt_chaos_proxy_t *p = pt_chaos_snapshot_find_name(snap, r->chaos_proxy);
        if (p == NULL || !p->is_http || p->n_toxics == 0)
            return false;
        toxics = p->toxics;
        n = p->n_toxics;
    } else {
        const pt_chaos_route_t *t = r->virtual_service != NULL
                                        ? pt_chaos_snapshot_route(snap, r->virtual_service, r->name)
                                        : NULL;
        if (t == NULL || t->n_toxics == 0)
            return false;
        toxics = t->toxics;
        n = t->n_toxics;
    }
    /* A toxic's match[] is a route's (the router's code): it has no port condition. */
    uint32_t selected = 0;
    for (size_t i = 0; i < n; i++) {
        const pt_toxic_match_t *m = toxics[i].match;
        if (m == NULL || pt_router_matches_any(m->matches, m->n_matches, 0, head))
            selected |= 1u << i;
    }
    if (selected == 0)
        return false;
    c->toxics = toxics;
    c->n_toxics = n;
    c->selected = selected;
    pt_chaos_snapshot_ref(snap);
    c->snap = snap;
    c->held_tail = &c->held;
    pt_stream_filter_body(st, &pt_filter_chaos_http_ops); /* on_destroy drops the ref */
    return true;
}

static uint64_t delay_of(pt_worker_t *w, const pt_toxic_t *t)
{
    if (t->jitter_ms == 0)
        return (uint64_t)t->delay_ms;
    int64_t spread = (int64_t)(pt_worker_random(w) % (uint64_t)(2 * t->jitter_ms + 1));
    int64_t ms = t->delay_ms - t->jitter_ms + spread;
    return ms > 0 ? (uint64_t)ms : 0;
}

/* Whether toxics[i] applies to the request: only those roll, count and act. */
static bool selects(const chaos_http_t *c, size_t i)
{
    return (c->selected >> i) & 1u;
}

static pt_filter_status_t chaos_http_request_headers(pt_stream_t *st, void *inst,
                                                     pt_http_msg_t *head)
{
    chaos_http_t *c = inst;
    pt_worker_t *w = st->worker;
    if (c->toxics == NULL) { /* the first call; the second comes after a delay */
        if (!find_toxics(st, c, head))
            return PT_FILTER_CONTINUE;
        for (size_t i = 0; i < c->n_toxics; i++) {
            const pt_toxic_t *t = &c->toxics[i];
            if (selects(c, i) && t->type == PT_TOXIC_HTTP_DELAY && pt_chaos_roll(w, t, 0)) {
                uint64_t ms = delay_of(w, t);
                c->is_delayed = true;
                pt_trace_stream_event(st, PT_TRACE_EVENT_CHAOS_DELAY, (int64_t)ms);
                pt_stream_resume_after(st, ms);
                return PT_FILTER_PAUSE;
            }
        }
    }
    for (size_t i = 0; i < c->n_toxics; i++) {
        const pt_toxic_t *t = &c->toxics[i];
        if (!selects(c, i))
            continue;
        switch (t->type) {
        case PT_TOXIC_HTTP_DROP_FIRST: {
            int64_t cap = t->max_hits > 0 && t->max_hits < t->count ? t->max_hits : t->count;
            if (!pt_chaos_roll(w, t, cap))
                break;
            pt_trace_stream_event(st, PT_TRACE_EVENT_CHAOS_DROP, t->count);
            set_details(st, t);
            pt_stream_reset(st, PT_FLAG_FI);
            return PT_FILTER_RESPONDED;
        }
        case PT_TOXIC_HTTP_ABORT:
            if (!pt_chaos_roll(w, t, 0))
                break;
            set_details(st, t);
            if (t->grpc_status > 0) {
                pt_trace_stream_event(st, PT_TRACE_EVENT_CHAOS_ABORT, t->grpc_status);
                pt_stream_respond_grpc(st, (int)t->grpc_status, "fault filter abort", PT_FLAG_FI);
            } else {
                int status = t->http_status >= 200 ? (int)t->http_status : 503;
                pt_trace_stream_event(st, PT_TRACE_EVENT_CHAOS_ABORT, status);
                pt_stream_respond(st, status, "fault filter abort", PT_FLAG_FI);
            }
            return PT_FILTER_RESPONDED;
        case PT_TOXIC_HTTP_SLOW_BODY:
            if (c->slow == NULL && pt_chaos_roll(w, t, 0)) {
                c->slow = t;
                pt_trace_stream_event(st, PT_TRACE_EVENT_CHAOS_SLOW_BODY, t->bytes);
            }
            break;
        default: break;
        }
    }
    return PT_FILTER_CONTINUE;
}

/* A new slice window once the last one is over: bytes more may go until next_slice_ms. */
static void refill(chaos_http_t *c, uint64_t now)
{
    if (now >= c->next_slice_ms) {
        c->slice_left = (size_t)c->slow->bytes;
        c->next_slice_ms = now + (uint64_t)c->slow->interval_ms;
    }
}

/* Sends what the window still allows of what is held, through the rest of the chain. */
static void send_slice(pt_stream_t *st, chaos_http_t *c)
{
    while (c->slice_left > 0 && c->held != NULL) {
        pt_body_piece_t *p = c->held;
        size_t n = p->len - c->held_offset;
        if (n > c->slice_left)
            n = c->slice_left;
        pt_stream_send_response_data(st, p->data + c->held_offset, n, p->pin);
        c->slice_left -= n;
        c->held_offset += n;
        if (c->held_offset < p->len)
            break;
        c->held = p->next;
        c->held_offset = 0;
        pt_buf_unref(p->pin);
    }
    if (c->held == NULL)
        c->held_tail = &c->held;
}

/* At most bytes per interval: each window lets bytes through, what is early is held (a ref on
 * its slab) and the stream's timer brings the next window. A chunk that fits in the window
 * passes untouched; once nothing is held the pause ends. */
static pt_filter_status_t chaos_http_response_data(pt_stream_t *st, void *inst, const char *data,
                                                   size_t len, pt_buf_t *pin)
{
    chaos_http_t *c = inst;
    if (c->slow == NULL)
        return PT_FILTER_CONTINUE;
    uint64_t now = uv_now(&st->worker->loop);
    if (len > 0) {
        if (!c->is_pacing) {
            refill(c, now);
            if (len <= c->slice_left) {
                c->slice_left -= len;
                return PT_FILTER_CONTINUE;
            }
        }
        pt_body_piece_t *p = pt_arena_alloc(&st->arena, sizeof(*p));
        *p = (pt_body_piece_t){.data = data, .len = len, .pin = pin};
        pt_buf_ref(pin);
        *c->held_tail = p;
        c->held_tail = &p->next;
        if (c->is_pacing)
            return PT_FILTER_PAUSE;
    } else { /* the stream's timer: the next window is open */
        c->is_pacing = false;
        if (c->held == NULL)
            return PT_FILTER_CONTINUE;
        refill(c, now);
    }
    send_slice(st, c);
    if (c->held == NULL) /* only on the timer's call: a chunk taken above outlasts the window */
        return PT_FILTER_CONTINUE;
    c->is_pacing = true;
    pt_stream_resume_after(st, c->next_slice_ms - now);
    return PT_FILTER_PAUSE;
}

/* Runs before the observers record the flag (on_log runs in reverse registry order). */
static void chaos_http_log(pt_stream_t *st, void *inst)
{
    const chaos_http_t *c = inst;
    if (c->slow != NULL && st->flag == PT_FLAG_NONE)
        st->flag = PT_FLAG_FI;
    if (!c->is_delayed)
        return;
    if (st->flag == PT_FLAG_NONE)
        st->flag = PT_FLAG_DI;
    else if (st->flag == PT_FLAG_FI)
        st->flag = PT_FLAG_DI_FI;
}

static void chaos_http_destroy(pt_stream_t *st, void *inst)
{
    (void)st;
    chaos_http_t *c = inst;
    for (pt_body_piece_t *p = c->held; p != NULL; p = p->next)
        pt_buf_unref(p->pin);
    c->held = NULL;
    pt_chaos_snapshot_unref(c->snap);
    c->snap = NULL;
}

const pt_filter_ops_t pt_filter_chaos_http_ops = {
    .name = "chaos_http",
    .instance_size = sizeof(chaos_http_t),
    .on_request_headers = chaos_http_request_headers,
    .on_response_data = chaos_http_response_data,
    .on_log = chaos_http_log,
    .on_destroy = chaos_http_destroy,
};
