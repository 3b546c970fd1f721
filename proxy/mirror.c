/* proxy/mirror.c
 * Mirrored requests (see mirror.h). A pt_mirror_t is one copy: malloc'd because it outlives the
 * stream that started it, with an exchange on the worker's pools (proxy/upstream.h) like any
 * attempt, its own arena (the copied request head, the response head) and a timer for the
 * copy's deadline; freed once the timer is closed and the stream has let go. Until the
 * exchange is ready, body pieces wait in a list holding refs on their slabs; that list, then
 * the connection's write queue, are what PT_MIRROR_MAX_QUEUED bounds.
 *
 * The response is parsed by the connection's client codec to know where it ends, and dropped;
 * a connection whose copy went through whole goes back to the pool for the next request, a
 * mirror's or a primary's. */
#include "mirror.h"

#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "conn.h"
#include "list.h"
#include "log.h"
#include "route_action.h"
#include "stream.h"
#include "upstream.h"
#include "worker.h"

typedef struct mirror_piece {
    struct mirror_piece *next;
    const char *data;
    size_t len;
    pt_buf_t *pin;
} mirror_piece_t;

struct pt_mirror {
    uv_timer_t timer; /* the copy's deadline */
    pt_worker_t *worker;
    pt_list_t link;          /* this worker's live mirrors */
    pt_mirror_t *next;       /* the stream's next mirror */
    pt_exchange_t *upstream; /* the exchange; NULL once it ended */
    pt_arena_t arena;        /* the request head copied, the response head */
    pt_http_msg_t *request;
    mirror_piece_t *pending; /* body waiting for the exchange to be ready */
    mirror_piece_t **pending_tail;
    size_t pending_bytes;
    uint8_t holds;        /* the timer and the stream: freed when both let go */
    bool is_ready;        /* the request head went out */
    bool is_closing;      /* the copy is over */
    bool is_request_done; /* the client's request is complete */
    bool is_head;         /* the copy is a HEAD request: no response body */
};

static _Thread_local pt_list_t live_mirrors;

static pt_list_t *live_list(void)
{
    if (live_mirrors.next == NULL)
        pt_list_init(&live_mirrors);
    return &live_mirrors;
}

static void free_pending(pt_mirror_t *m)
{
    mirror_piece_t *p = m->pending;
    while (p != NULL) {
        mirror_piece_t *next = p->next;
        pt_buf_unref(p->pin);
        free(p);
        p = next;
    }
    m->pending = NULL;
    m->pending_tail = &m->pending;
    m->pending_bytes = 0;
}

static void let_go(pt_mirror_t *m)
{
    if (--m->holds == 0)
        free(m);
}

static void on_timer_closed(uv_handle_t *h)
{
    let_go(h->data);
}

/* The copy is over: counted as outcome; its connection goes back to the pool when reusable. */
static void finish(pt_mirror_t *m, pt_stat_t outcome, bool reusable)
{
    if (m->is_closing)
        return;
    m->is_closing = true;
    pt_stats_add(&m->worker->stats, outcome, 1);
    pt_stats_add(&m->worker->stats, PT_STAT_mirror_active, -1);
    if (m->upstream != NULL) {
        pt_exchange_t *x = m->upstream;
        m->upstream = NULL;
        pt_exchange_release(x, reusable);
    }
    pt_list_remove(&m->link);
    free_pending(m);
    pt_arena_dispose(&m->arena);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

static void abandon(pt_mirror_t *m)
{
    if (!m->is_closing)
        pt_log_debug("mirror abandoned (queue over %u bytes or request cut)", PT_MIRROR_MAX_QUEUED);
    finish(m, PT_STAT_mirror_abandoned, false);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, PT_STAT_mirror_failed, false);
}

/* --- the exchange's events (proxy/codec.h) --- */

static void on_ready(void *ctx, bool is_reused)
{
    pt_mirror_t *m = ctx;
    m->is_ready = true;
    if (pt_exchange_send_head(m->upstream, m->request, &m->arena) != 0) {
        finish(m, PT_STAT_mirror_failed, false);
        return;
    }
    for (mirror_piece_t *p = m->pending; p != NULL && m->upstream != NULL; p = p->next)
        pt_exchange_send_data(m->upstream, p->data, p->len, p->pin);
    free_pending(m);
    if (m->is_request_done && m->upstream != NULL)
        pt_exchange_send_end(m->upstream, NULL, 0);
}

static int on_head(void *ctx, pt_http_msg_t *head)
{
    pt_mirror_t *m = ctx;
    return m->is_head && head->status >= 200 ? PT_CODEC_SKIP_BODY : 0;
}

static void on_data(void *ctx, const char *data, size_t len, pt_buf_t *pin)
{
    /* dropped */
}

static void on_trailers(void *ctx, pt_header_t *t, size_t n)
{
}

static void on_end(void *ctx)
{
    pt_mirror_t *m = ctx;
    /* Reusable only if the upstream got the whole request. */
    finish(m, PT_STAT_mirror_responses, m->is_request_done);
}

static void on_reset(void *ctx, pt_codec_reset_t why, bool was_reused)
{
    pt_mirror_t *m = ctx;
    m->upstream = NULL; /* it let go already */
    finish(m, PT_STAT_mirror_failed, false);
}

static void on_drained(void *ctx)
{
    /* nothing waits: the mirror never holds the client back */
}

static const pt_codec_stream_cbs_t mirror_cbs = {
    .on_ready = on_ready,
    .on_head = on_head,
    .on_data = on_data,
    .on_trailers = on_trailers,
    .on_end = on_end,
    .on_reset = on_reset,
    .on_drained = on_drained,
};

/* --- the client's request, teed --- */

static void queue_piece(pt_mirror_t *m, const char *data, size_t len, pt_buf_t *pin)
{
    if (m->is_closing)
        return;
    if (m->is_ready) {
        /* The connection's write watermark is the mirror's queue bound. */
        if (pt_exchange_is_write_congested(m->upstream))
            abandon(m);
        else
            pt_exchange_send_data(m->upstream, data, len, pin);
        return;
    }
    if (m->pending_bytes + len > PT_MIRROR_MAX_QUEUED) {
        abandon(m);
        return;
    }
    mirror_piece_t *p = malloc(sizeof(*p));
    if (p == NULL)
        abort();
    *p = (mirror_piece_t){NULL, data, len, pin};
    pt_buf_ref(pin);
    *m->pending_tail = p;
    m->pending_tail = &p->next;
    m->pending_bytes += len;
}

size_t pt_mirror_shadow_host(const char *a, size_t len, char *out, size_t cap)
{
    /* The port, if any, stays last: "h:80" -> "h-shadow:80"; "[::1]:80" -> "[::1]-shadow:80". */
    size_t host_end = len;
    for (size_t i = len; i > 0; i--) {
        char c = a[i - 1];
        if (c == ':') {
            host_end = i - 1;
            break;
        }
        if (c < '0' || c > '9')
            break;
    }
    if (host_end > 0 && a[0] == '[' && a[host_end - 1] != ']')
        host_end = len; /* an IPv6 literal without a port */
    static const char suffix[] = "-shadow";
    size_t n = len + sizeof(suffix) - 1;
    if (n > cap)
        return 0;
    memcpy(out, a, host_end);
    memcpy(out + host_end, suffix, sizeof(suffix) - 1);
    memcpy(out + host_end + sizeof(suffix) - 1, a + host_end, len - host_end);
    return n;
}

/* The head the primary gets (stream.c builds both), with the shadow Host. */
static pt_http_msg_t *build_head(pt_stream_t *st)
{
    pt_str_t authority = pt_route_action_authority(st);
    if (!st->config->proxy.mirror_keep_host) {
        size_t cap = authority.len + 8;
        char *shadow = pt_arena_alloc(&st->arena, cap);
        authority.len = pt_mirror_shadow_host(authority.base, authority.len, shadow, cap);
        authority.base = shadow;
    }
    return pt_stream_request_head(st, authority);
}

static pt_mirror_t *start_one(pt_stream_t *st, const pt_http_mirror_t *hm)
{
    pt_worker_t *w = st->conn->worker;
    const pt_cluster_t *cl = hm->cluster;
    PT_STAT_INC(&w->stats, mirror_requests);
    const pt_endpoint_t *ep =
        cl->n_endpoints == 0
            ? NULL
            : pt_worker_pick_endpoint(w, st->config, cl, st->request, st->conn->peer_ip, false);
    /* A copy holds one of the mirror cluster's maxConnections slots like any request; the
     * pool gives it back. */
    if (ep == NULL || !pt_breaker_try_acquire(&cl->state->connections, cl->pool.max_connections)) {
        PT_STAT_INC(&w->stats, mirror_failed);
        return NULL;
    }
    pt_mirror_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    m->worker = w;
    m->pending_tail = &m->pending;
    m->is_head = st->request->method_id == HTTP_HEAD;
    m->holds = 2; /* the timer, and the stream (released by detach) */
    pt_arena_init(&m->arena, 1024);
    m->request = pt_http_msg_copy(&m->arena, build_head(st));
    uv_timer_init(&w->loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(
        &m->timer, on_timeout,
        st->route->timeout_ms > 0 ? st->route->timeout_ms : st->config->proxy.idle_timeout_ms, 0);
    pt_list_insert_tail(live_list(), &m->link);
    PT_STAT_INC(&w->stats, mirror_active);
    bool ready;
    m->upstream = pt_upstream_acquire(w, cl, ep, &mirror_cbs, m, false,
                                      pt_upstream_is_http2(w, cl, ep, m->request), &ready);
    if (ready)
        on_ready(m, true);
    return m;
}

void pt_mirror_start(pt_stream_t *st)
{
    const pt_http_route_t *r = st->route;
    if (r == NULL || r->n_mirrors == 0 || st->request->is_upgrade)
        return;
    pt_worker_t *w = st->conn->worker;
    for (size_t i = 0; i < r->n_mirrors; i++) {
        if (!pt_fault_fires(r->mirrors[i].ppm, pt_worker_random(w)))
            continue;
        pt_mirror_t *m = start_one(st, &r->mirrors[i]);
        if (m == NULL)
            continue;
        for (pt_body_piece_t *p = st->pending_body; p != NULL; p = p->next)
            queue_piece(m, p->data, p->len, p->pin);
        m->next = st->mirror;
        st->mirror = m;
    }
    if (st->request_complete && st->mirror != NULL)
        pt_mirror_end(st->mirror);
}

void pt_mirror_body(pt_mirror_t *m, const char *data, size_t len, pt_buf_t *pin)
{
    for (; m != NULL; m = m->next)
        if (len > 0)
            queue_piece(m, data, len, pin);
}

void pt_mirror_end(pt_mirror_t *m)
{
    for (; m != NULL; m = m->next) {
        if (m->is_request_done)
            continue;
        m->is_request_done = true;
        if (m->is_ready && !m->is_closing)
            pt_exchange_send_end(m->upstream, NULL, 0);
    }
}

void pt_mirror_detach(pt_mirror_t *m, bool request_complete)
{
    while (m != NULL) {
        pt_mirror_t *next = m->next;
        if (!request_complete || !m->is_request_done)
            abandon(m);
        let_go(m);
        m = next;
    }
}

void pt_mirror_close_all(pt_worker_t *w)
{
    pt_list_t *l = live_list();
    while (!pt_list_is_empty(l))
        finish(PT_CONTAINER_OF(l->next, pt_mirror_t, link), PT_STAT_mirror_abandoned, false);
}
