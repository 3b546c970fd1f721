/* proxy/mirror.c
 * Mirrored requests (see mirror.h). Each copy is a pt_mirror_t with its own socket and timer,
 * malloc'd because it outlives the stream that started it; it is freed in the close callback
 * of its last handle, like every connection. Until the connection is up, body pieces wait in a
 * list holding refs on their slabs; the bytes waiting there plus libuv's write queue are what
 * PT_MIRROR_MAX_QUEUED bounds. */
#include "mirror.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "list.h"
#include "log.h"
#include "route_action.h"
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

struct pt_mirror {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timer; /* connect timeout, then the whole exchange's */
    pt_worker_t *worker;
    pt_list_t link;    /* this worker's live mirrors */
    pt_mirror_t *next; /* the stream's next mirror */
    pt_buf_t *head;    /* the request head, until written */
    size_t head_len;
    mirror_piece_t *pending; /* body waiting for the connection */
    mirror_piece_t **pending_tail;
    size_t pending_bytes;
    uint64_t timeout_ms;
    char status_line[13]; /* "HTTP/1.1 200" */
    size_t status_len;
    uint8_t handles_open;
    bool is_chunked;
    bool is_connected;
    bool is_closing;
    bool is_request_done; /* the whole request is queued */
    bool is_detached;     /* its stream has ended */
};

static _Thread_local pt_list_t live_mirrors;
static _Thread_local char discard[16384];

static pt_list_t *live_list(void)
{
    if (live_mirrors.next == NULL)
        pt_list_init(&live_mirrors);
    return &live_mirrors;
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

/* Ends the mirror; the outcome is counted once here. */
static void finish(pt_mirror_t *m, pt_stat_t outcome)
{
    if (m->is_closing)
        return;
    m->is_closing = true;
    stat_inc(m, outcome, 1);
    stat_inc(m, PT_STAT_mirror_active, -1);
    pt_list_remove(&m->link);
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
    *out = uv_buf_init(discard, sizeof(discard));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt_mirror_t *m = s->data;
    if (nread > 0) {
        size_t take = (size_t)nread;
        if (take > sizeof(m->status_line) - 1 - m->status_len)
            take = sizeof(m->status_line) - 1 - m->status_len;
        memcpy(m->status_line + m->status_len, b->base, take);
        m->status_len += take;
        return;
    }
    if (nread == 0)
        return;
    /* The mirror said connection: close, so the end of the response is the end of the
     * connection. Only a status line counts as a response. */
    bool answered = m->status_len >= 12 && memcmp(m->status_line, "HTTP/1.", 7) == 0;
    finish(m, answered ? PT_STAT_mirror_responses : PT_STAT_mirror_failed);
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
    if (!m->is_closing)
        uv_read_start((uv_stream_t *)&m->tcp, on_alloc, on_read);
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

static bool is_rewritten(const pt_header_t *h)
{
    if (h->flags & (PT_HEADER_HOP | PT_HEADER_FRAMING))
        return true;
    return pt_str_ieq_lit(h->name, "host") || pt_str_ieq_lit(h->name, "x-forwarded-for") ||
           pt_str_ieq_lit(h->name, "x-forwarded-proto") ||
           pt_str_ieq_lit(h->name, "x-request-id") || pt_str_ieq_lit(h->name, "expect");
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The head the primary gets, with the shadow Host and `connection: close`. */
static pt_buf_t *build_head(pt_stream_t *st, size_t *out_len)
{
    const pt_http1_head_t *h = st->request;
    pt_str_t path = pt_route_action_path(st), authority = pt_route_action_authority(st);
    const pt_header_t *hs;
    size_t n_hs = pt_route_action_request_headers(st, &hs);
    const char *peer = st->conn->peer_ip;
    size_t size =
        h->method.len + path.len + authority.len + 320 + strlen(peer) + strlen(st->request_id);
    for (size_t i = 0; i < n_hs; i++)
        size += hs[i].name.len + hs[i].value.len + 4;
    for (size_t i = 0; i < h->n_headers; i++)
        if (pt_str_ieq_lit(h->headers[i].name, "x-forwarded-for"))
            size += h->headers[i].value.len + 2;
    pt_buf_t *slab = pt_buf_new_sized(size);
    char *p = slab->data;
    p = put(p, h->method.base, h->method.len);
    *p++ = ' ';
    p = put(p, path.base, path.len);
    p = put(p, " HTTP/1.1\r\nhost: ", 17);
    if (st->config->proxy.mirror_keep_host)
        p = put(p, authority.base, authority.len);
    else
        p += pt_mirror_shadow_host(authority.base, authority.len, p, authority.len + 8);
    p = put(p, "\r\n", 2);
    for (size_t i = 0; i < n_hs; i++) {
        if (is_rewritten(&hs[i]))
            continue;
        p = put(p, hs[i].name.base, hs[i].name.len);
        p = put(p, ": ", 2);
        p = put(p, hs[i].value.base, hs[i].value.len);
        p = put(p, "\r\n", 2);
    }
    p = put(p, "x-forwarded-for: ", 17);
    for (size_t i = 0; i < h->n_headers; i++) {
        const pt_header_t *hd = &h->headers[i];
        if (hd->value.len == 0 || !pt_str_ieq_lit(hd->name, "x-forwarded-for"))
            continue;
        p = put(p, hd->value.base, hd->value.len);
        p = put(p, ", ", 2);
    }
    p += sprintf(p, "%s\r\nx-forwarded-proto: http\r\nx-request-id: %s\r\n", peer, st->request_id);
    if (h->content_length >= 0)
        p += sprintf(p, "content-length: %" PRId64 "\r\n", h->content_length);
    else if (h->is_chunked)
        p = put(p, "transfer-encoding: chunked\r\n", 28);
    p = put(p, "connection: close\r\n\r\n", 21);
    *out_len = (size_t)(p - slab->data);
    return slab;
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
    pt_mirror_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    m->worker = w;
    m->pending_tail = &m->pending;
    m->is_chunked = st->request->is_chunked;
    m->timeout_ms =
        st->route->timeout_ms > 0 ? st->route->timeout_ms : st->config->proxy.idle_timeout_ms;
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
        release(m);
        m = next;
    }
}

void pt_mirror_close_all(pt_worker_t *w)
{
    pt_list_t *l = live_list();
    while (!pt_list_is_empty(l))
        finish(PT_CONTAINER_OF(l->next, pt_mirror_t, link), PT_STAT_mirror_abandoned);
}
