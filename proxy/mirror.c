/* proxy/mirror.c
 * Mirrored requests (see mirror.h). A pt_mirror_t is a connection to a mirror endpoint carrying
 * one copy at a time, malloc'd because it outlives the stream that started it, and freed in the
 * close callback of its last handle like every connection. Until the connection is up, body
 * pieces wait in a list holding refs on their slabs; the bytes waiting there plus libuv's write
 * queue are what PT_MIRROR_MAX_QUEUED bounds.
 *
 * Mirror connections are kept alive: the response is parsed (its head into a small arena, its
 * body dropped), and once it is complete, the whole copy was written and the stream has let go,
 * the connection waits in this worker's idle list (at most PT_MIRROR_MAX_IDLE, each for the
 * pooled idle time of proxy/keep_alive.h) for the next copy to the same address. A copy that
 * fails or is abandoned closes its connection. */
#include "mirror.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "http1_client.h"
#include "keep_alive.h"
#include "list.h"
#include "log.h"
#include "route_action.h"
#include "scratch.h"
#include "stream.h"
#include "worker.h"
#include "write.h"

typedef struct mirror_piece {
    struct mirror_piece *next;
    const char *data;
    size_t len;
    pt_buf_t *pin;
    bool is_last_chunk; /* the "0\r\n\r\n" that ends a chunked body */
} mirror_piece_t;

#define PT_MIRROR_MAX_IDLE 64

struct pt_mirror {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timer; /* connect timeout, then the copy's, then the idle time */
    pt_worker_t *worker;
    pt_list_t link;    /* this worker's live (is_idle: idle) mirrors */
    pt_mirror_t *next; /* the stream's next mirror */
    pt_buf_t *head;    /* the request head, until written */
    size_t head_len;
    mirror_piece_t *pending; /* body waiting for the connection */
    mirror_piece_t **pending_tail;
    size_t pending_bytes;
    uint64_t timeout_ms;
    struct sockaddr_storage addr; /* the endpoint, for reuse */
    socklen_t addr_len;
    pt_http1_parser_t parser; /* responses */
    pt_arena_t arena;         /* the current response's head */
    int64_t keep_alive_s;     /* the last response's Keep-Alive timeout=; -1: none */
    uint8_t handles_open;     /* tcp, timer, and the stream's hold */
    bool is_chunked;
    bool is_connected;
    bool is_closing;
    bool is_request_done;  /* the whole request is queued */
    bool is_detached;      /* its stream has ended */
    bool is_head;          /* the copy is a HEAD request: no response body */
    bool is_counted;       /* this copy's outcome is counted */
    bool is_response_done; /* this copy's response is complete */
    bool is_keep_alive;    /* and allows another request */
    bool is_idle;          /* in the idle list, between copies */
};

static _Thread_local pt_list_t live_mirrors, idle_mirrors;
static _Thread_local size_t n_idle;

static pt_list_t *live_list(void)
{
    if (live_mirrors.next == NULL)
        pt_list_init(&live_mirrors);
    return &live_mirrors;
}

static pt_list_t *idle_list(void)
{
    if (idle_mirrors.next == NULL)
        pt_list_init(&idle_mirrors);
    return &idle_mirrors;
}

static void stat_inc(pt_mirror_t *m, pt_stat_t k, int d)
{
    pt_stats_add(&m->worker->stats, k, d);
}

static void free_pending(pt_mirror_t *m)
{
    mirror_piece_t *p = m->pending;
    while (p != NULL) {
        mirror_piece_t *next = p->next;
        if (p->pin != NULL)
            pt_buf_unref(p->pin);
        free(p);
        p = next;
    }
    m->pending = NULL;
    m->pending_tail = &m->pending;
    m->pending_bytes = 0;
}

static void on_closed(uv_handle_t *h)
{
    pt_mirror_t *m = h->data;
    if (--m->handles_open == 0)
        free(m);
}

/* Counts the current copy's outcome, once. */
static void count(pt_mirror_t *m, pt_stat_t outcome)
{
    if (m->is_counted)
        return;
    m->is_counted = true;
    stat_inc(m, outcome, 1);
    stat_inc(m, PT_STAT_mirror_active, -1);
}

/* Closes the connection, counting the copy on it (if not yet) as outcome. */
static void finish(pt_mirror_t *m, pt_stat_t outcome)
{
    if (m->is_closing)
        return;
    m->is_closing = true;
    count(m, outcome);
    pt_list_remove(&m->link);
    if (m->is_idle)
        n_idle--;
    pt_arena_dispose(&m->arena);
    free_pending(m);
    if (m->head != NULL) {
        pt_buf_unref(m->head);
        m->head = NULL;
    }
    /* The stream may still point at it: it stays allocated until detached. */
    uv_close((uv_handle_t *)&m->timer, on_closed);
    uv_close((uv_handle_t *)&m->tcp, on_closed);
}

static void release(pt_mirror_t *m)
{
    /* The stream's hold: one extra "handle" so that m outlives finish() until detached. */
    if (--m->handles_open == 0)
        free(m);
}

static void abandon(pt_mirror_t *m)
{
    if (!m->is_closing)
        pt_log_debug("mirror abandoned (queue over %u bytes or request cut)", PT_MIRROR_MAX_QUEUED);
    finish(m, PT_STAT_mirror_abandoned);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, PT_STAT_mirror_failed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    *out = uv_buf_init(pt_scratch()->in, sizeof(pt_scratch()->in));
}

/* Back to the idle list once the copy is over on every side; closed when not reusable. */
static void maybe_pool(pt_mirror_t *m)
{
    if (m->is_closing || !m->is_response_done || !m->is_detached)
        return;
    uint64_t idle_ms =
        pt_keep_alive_idle_ms(m->worker->config->proxy.upstream_idle_timeout_ms, m->keep_alive_s);
    if (!m->is_keep_alive || !m->is_request_done || idle_ms == 0 ||
        uv_stream_get_write_queue_size((uv_stream_t *)&m->tcp) > 0 || m->worker->is_draining ||
        n_idle >= PT_MIRROR_MAX_IDLE) {
        finish(m, PT_STAT_mirror_responses);
        return;
    }
    pt_list_remove(&m->link);
    pt_list_insert_head(idle_list(), &m->link);
    m->is_idle = true;
    n_idle++;
    pt_arena_dispose(&m->arena);
    uv_timer_start(&m->timer, on_timeout, idle_ms, 0);
}

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *head)
{
    pt_mirror_t *m = p->data;
    m->is_keep_alive = p->framing.is_keep_alive;
    const pt_header_t *ka = pt_http_msg_find_header(head, "keep-alive");
    m->keep_alive_s = ka != NULL ? pt_keep_alive_timeout_s(ka->value.base, ka->value.len) : -1;
    return m->is_head && head->status >= 200 ? PT_HTTP1_SKIP_BODY : 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    return 0; /* dropped */
}

static int on_complete(pt_http1_parser_t *p)
{
    return 0;
}

static const pt_http1_callbacks_t response_callbacks = {
    .on_head = on_head, .on_body = on_body, .on_complete = on_complete};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt_mirror_t *m = s->data;
    if (m->is_closing || nread == 0)
        return;
    if (m->is_idle || m->is_response_done) {
        /* Nobody asked: a close (or stray bytes) between copies. */
        finish(m, PT_STAT_mirror_responses);
        return;
    }
    if (nread < 0) {
        /* A close-delimited response ends with the connection. */
        if (nread == UV_EOF && pt_http1_parser_in_message(&m->parser) &&
            pt_http1_parser_finish(&m->parser) == PT_HTTP1_OK &&
            !pt_http1_parser_in_message(&m->parser)) {
            finish(m, PT_STAT_mirror_responses);
            return;
        }
        finish(m, PT_STAT_mirror_failed);
        return;
    }
    const char *at = b->base;
    size_t left = (size_t)nread;
    while (left > 0) {
        size_t consumed = 0;
        int r = pt_http1_parser_execute(&m->parser, at, left, &consumed);
        at += consumed;
        left -= consumed;
        if (r == PT_HTTP1_OK)
            return;
        if (r != PT_HTTP1_PAUSED) {
            finish(m, PT_STAT_mirror_failed);
            return;
        }
        pt_http1_parser_resume(&m->parser);
        if (m->parser.head.status >= 100 && m->parser.head.status < 200)
            continue; /* an interim response: the final one follows */
        m->is_response_done = true;
        count(m, PT_STAT_mirror_responses);
        if (left > 0) {
            finish(m, PT_STAT_mirror_responses); /* bytes past the response: not reusable */
            return;
        }
        uv_timer_stop(&m->timer);
        maybe_pool(m);
        return;
    }
}

static void on_write_done(void *owner, int status)
{
    pt_mirror_t *m = owner;
    if (status < 0 && !m->is_closing)
        finish(m, PT_STAT_mirror_failed);
}

static size_t queued(pt_mirror_t *m)
{
    return m->pending_bytes + uv_stream_get_write_queue_size((uv_stream_t *)&m->tcp);
}

static void write_piece(pt_mirror_t *m, const char *data, size_t len, pt_buf_t *pin,
                        bool is_last_chunk)
{
    int err;
    if (is_last_chunk) {
        static const char last[] = "0\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)last, sizeof(last) - 1);
        err = pt_write((uv_stream_t *)&m->tcp, NULL, 0, &b, 1, NULL, NULL, on_write_done, m);
    } else if (m->is_chunked) {
        err = pt_write_chunk((uv_stream_t *)&m->tcp, data, len, pin, on_write_done, m);
    } else {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        err = pt_write((uv_stream_t *)&m->tcp, NULL, 0, &b, 1, NULL, pin, on_write_done, m);
    }
    if (err != 0)
        finish(m, PT_STAT_mirror_failed);
}

static void queue_piece(pt_mirror_t *m, const char *data, size_t len, pt_buf_t *pin,
                        bool is_last_chunk)
{
    if (m->is_closing)
        return;
    if (queued(m) + len > PT_MIRROR_MAX_QUEUED) {
        abandon(m);
        return;
    }
    if (m->is_connected) {
        write_piece(m, data, len, pin, is_last_chunk);
        return;
    }
    mirror_piece_t *p = malloc(sizeof(*p));
    if (p == NULL)
        abort();
    *p = (mirror_piece_t){NULL, data, len, pin, is_last_chunk};
    if (pin != NULL)
        pt_buf_ref(pin);
    *m->pending_tail = p;
    m->pending_tail = &p->next;
    m->pending_bytes += len;
}

static void on_connect(uv_connect_t *req, int status)
{
    pt_mirror_t *m = req->data;
    if (m->is_closing)
        return;
    if (status < 0) {
        finish(m, PT_STAT_mirror_failed);
        return;
    }
    m->is_connected = true;
    uv_tcp_nodelay(&m->tcp, 1);
    uv_timer_start(&m->timer, on_timeout, m->timeout_ms, 0);
    uv_read_start((uv_stream_t *)&m->tcp, on_alloc, on_read);
    uv_buf_t b = uv_buf_init(m->head->data, (unsigned)m->head_len);
    pt_buf_t *head = m->head;
    m->head = NULL;
    int err = pt_write((uv_stream_t *)&m->tcp, NULL, 0, &b, 1, NULL, head, on_write_done, m);
    pt_buf_unref(head);
    if (err != 0) {
        finish(m, PT_STAT_mirror_failed);
        return;
    }
    mirror_piece_t *p = m->pending;
    m->pending = NULL;
    m->pending_tail = &m->pending;
    m->pending_bytes = 0;
    while (p != NULL) {
        mirror_piece_t *next = p->next;
        if (!m->is_closing)
            write_piece(m, p->data, p->len, p->pin, p->is_last_chunk);
        if (p->pin != NULL)
            pt_buf_unref(p->pin);
        free(p);
        p = next;
    }
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

/* The head the primary gets (stream.c writes both), with the shadow Host. */
static pt_buf_t *build_head(pt_stream_t *st, size_t *out_len)
{
    pt_str_t authority = pt_route_action_authority(st);
    if (!st->config->proxy.mirror_keep_host) {
        size_t cap = authority.len + 8;
        char *shadow = pt_arena_alloc(&st->arena, cap);
        authority.len = pt_mirror_shadow_host(authority.base, authority.len, shadow, cap);
        authority.base = shadow;
    }
    return pt_http1_client_serialize_head(pt_stream_request_head(st, authority), out_len);
}

/* An idle connection to ep's address, taken out of the idle list; NULL if none. */
static pt_mirror_t *take_idle(const pt_endpoint_t *ep)
{
    pt_list_t *l = idle_list();
    for (pt_list_t *n = l->next; n != l; n = n->next) {
        pt_mirror_t *m = PT_CONTAINER_OF(n, pt_mirror_t, link);
        if (m->addr_len == ep->addr_len && memcmp(&m->addr, &ep->addr, ep->addr_len) == 0) {
            pt_list_remove(&m->link);
            n_idle--;
            m->is_idle = false;
            uv_timer_stop(&m->timer);
            return m;
        }
    }
    return NULL;
}

/* The per-copy state, for a new connection or a kept-alive one. */
static void reset_for_copy(pt_mirror_t *m, pt_stream_t *st, uint64_t timeout_ms)
{
    m->next = NULL;
    m->pending = NULL;
    m->pending_tail = &m->pending;
    m->pending_bytes = 0;
    m->timeout_ms = timeout_ms;
    m->is_chunked = pt_http_msg_is_body_unsized(st->request);
    m->is_head = st->request->method_id == HTTP_HEAD;
    m->is_request_done = m->is_detached = m->is_counted = false;
    m->is_response_done = m->is_keep_alive = false;
    m->keep_alive_s = -1;
    pt_arena_init(&m->arena, 1024);
    pt_http1_parser_set_arena(&m->parser, &m->arena);
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
    if (ep == NULL) {
        PT_STAT_INC(&w->stats, mirror_failed);
        return NULL;
    }
    uint64_t timeout_ms =
        st->route->timeout_ms > 0 ? st->route->timeout_ms : st->config->proxy.idle_timeout_ms;
    pt_mirror_t *m = take_idle(ep);
    if (m != NULL) {
        /* A kept-alive connection: the head goes out at once. */
        reset_for_copy(m, st, timeout_ms);
        m->handles_open++; /* the stream's hold */
        pt_list_insert_tail(live_list(), &m->link);
        PT_STAT_INC(&w->stats, mirror_active);
        uv_timer_start(&m->timer, on_timeout, timeout_ms, 0);
        size_t len;
        pt_buf_t *head = build_head(st, &len);
        uv_buf_t b = uv_buf_init(head->data, (unsigned)len);
        if (pt_write((uv_stream_t *)&m->tcp, NULL, 0, &b, 1, NULL, head, on_write_done, m) != 0)
            finish(m, PT_STAT_mirror_failed);
        pt_buf_unref(head);
        return m;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    m->worker = w;
    memcpy(&m->addr, &ep->addr, ep->addr_len);
    m->addr_len = ep->addr_len;
    pt_http1_parser_init(&m->parser, true, &response_callbacks, m, NULL);
    reset_for_copy(m, st, timeout_ms);
    m->head = build_head(st, &m->head_len);
    uv_tcp_init(&w->loop, &m->tcp);
    uv_timer_init(&w->loop, &m->timer);
    m->tcp.data = m->timer.data = m->connect_req.data = m;
    m->handles_open = 3; /* tcp, timer, and the stream's hold (released by detach) */
    pt_list_insert_tail(live_list(), &m->link);
    PT_STAT_INC(&w->stats, mirror_active);
    int err =
        uv_tcp_connect(&m->connect_req, &m->tcp, (const struct sockaddr *)&ep->addr, on_connect);
    if (err != 0) {
        finish(m, PT_STAT_mirror_failed);
        return m;
    }
    uv_timer_start(&m->timer, on_timeout, st->config->proxy.connect_timeout_ms, 0);
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
            queue_piece(m, p->data, p->len, p->pin, false);
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
            queue_piece(m, data, len, pin, false);
}

void pt_mirror_end(pt_mirror_t *m)
{
    for (; m != NULL; m = m->next) {
        if (m->is_request_done)
            continue;
        m->is_request_done = true;
        if (m->is_chunked)
            queue_piece(m, NULL, 0, NULL, true);
    }
}

void pt_mirror_detach(pt_mirror_t *m, bool request_complete)
{
    while (m != NULL) {
        pt_mirror_t *next = m->next;
        m->is_detached = true;
        if (!request_complete || !m->is_request_done)
            abandon(m);
        else
            maybe_pool(m);
        release(m);
        m = next;
    }
}

void pt_mirror_close_all(pt_worker_t *w)
{
    pt_list_t *lists[2] = {live_list(), idle_list()};
    for (int i = 0; i < 2; i++)
        while (!pt_list_is_empty(lists[i]))
            finish(PT_CONTAINER_OF(lists[i]->next, pt_mirror_t, link), PT_STAT_mirror_abandoned);
}
