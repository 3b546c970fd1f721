/* proxy/relay.c
 * Byte relay (see relay.h). A plaintext side's bytes are written to the other side straight
 * from the slab they were read into; each write pins the slab. A TLS side's ciphertext is read
 * into one per-thread buffer and fed to its engine at once, and the plaintext is decrypted into
 * the side's slab, from where it goes on the same way. L4 filters see the plaintext between the
 * read and the write; the session's filter instances live in the relay's own allocation. */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "scratch.h"
#include "write.h"

static void relay_close(pt_relay_t *r, bool reset);
static void start_reading(pt_relay_side_t *s);
static void drain_tls(pt_relay_side_t *src);

static pt_relay_side_t *other(pt_relay_side_t *s)
{
    pt_relay_t *r = s->relay;
    return s == &r->side[0] ? &r->side[1] : &r->side[0];
}

static void relay_handle_closed(pt_relay_t *r)
{
    if (--r->handles_open != 0)
        return;
    pt_worker_t *w = r->worker;
    pt_list_remove(&r->link);
    for (size_t i = 0; i < r->n_filters; i++)
        if (r->filters[i].ops->on_destroy != NULL)
            r->filters[i].ops->on_destroy(r, r->filters[i].inst, r->filters[i].conf);
    if (r->log_entry != NULL) {
        r->log_entry->bytes_received += r->side[0].bytes_read;
        r->log_entry->bytes_sent += r->side[1].bytes_read;
        r->log_entry->duration_ms = uv_now(&w->loop) - r->log_start_ms;
        pt_access_log_write(&w->access_log, r->log_entry, r->log_json);
        free(r->log_entry);
    }
    free(r);
    pt_worker_check_drained(w);
}

static void on_side_closed(uv_handle_t *h)
{
    pt_relay_t *r = h->data;
    pt_relay_side_t *s = (uv_tcp_t *)h == r->side[0].tcp ? &r->side[0] : &r->side[1];
    s->is_closed = true;
    pt_rbuf_release(&s->in);
    s->tls = NULL; /* its owner frees it */
    if (s->on_closed != NULL)
        s->on_closed(s->owner);
    relay_handle_closed(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    relay_handle_closed(h->data);
}

static void relay_close(pt_relay_t *r, bool reset)
{
    if (r->is_closing)
        return;
    r->is_closing = true;
    for (size_t i = 0; i < r->n_filters; i++)
        if (r->filters[i].ops->on_close != NULL)
            r->filters[i].ops->on_close(r, r->filters[i].inst, r->filters[i].conf);
    uv_close((uv_handle_t *)&r->idle_timer, on_timer_closed);
    /* A reset is refused while a shutdown is pending: that side gets a plain close. */
    for (int i = 0; i < 2; i++)
        if (!reset || uv_tcp_close_reset(r->side[i].tcp, on_side_closed) != 0)
            uv_close((uv_handle_t *)r->side[i].tcp, on_side_closed);
}

void pt_relay_log_at_close(pt_relay_t *r, const pt_access_log_entry_t *e, uint64_t start_ms,
                           bool is_json)
{
    r->log_entry = pt_access_log_entry_copy(e);
    r->log_start_ms = start_ms;
    r->log_json = is_json;
}

void pt_relay_close(pt_relay_t *r)
{
    relay_close(r, false);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    pt_relay_side_t *s = req->data;
    pt_relay_t *r = s->relay;
    if (r->is_closing)
        return;
    s->write_shut = true;
    if (status < 0 || (r->side[0].write_shut && r->side[1].write_shut))
        relay_close(r, false);
}

static void on_write_done(void *owner, int status)
{
    pt_relay_side_t *dst = owner; /* the side written to */
    pt_relay_t *r = dst->relay;
    if (r->is_closing)
        return;
    if (status < 0) {
        relay_close(r, false);
        return;
    }
    pt_relay_side_t *src = other(dst);
    if (src->is_read_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)dst->tcp) <= PT_WRITE_LOW_WATERMARK) {
        src->is_read_paused = false;
        if (src->tls != NULL)
            drain_tls(src); /* plaintext the engine kept while dst was congested goes first */
        start_reading(src);
    }
}

/* Sends the ciphertext s's engine produced, from slabs of its own. */
static int flush_tls(pt_relay_side_t *s)
{
    return pt_write_tls_output((uv_stream_t *)s->tcp, s->tls, on_write_done, s);
}

static void forward(pt_relay_side_t *src, const char *data, size_t len, pt_buf_t *pin)
{
    pt_relay_t *r = src->relay;
    pt_relay_side_t *dst = other(src);
    src->bytes_read += len;
    int err;
    if (dst->tls != NULL) {
        err = pt_tls_write(dst->tls, data, len) == PT_TLS_OK ? flush_tls(dst) : UV_EPROTO;
        if (err == UV_EPROTO)
            pt_log_debug("relay: TLS write failed: %s", dst->tls->error);
    } else {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        err = pt_write((uv_stream_t *)dst->tcp, NULL, 0, &b, 1, NULL, pin, on_write_done, dst);
    }
    if (err != 0) {
        relay_close(r, false);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)dst->tcp) > PT_WRITE_HIGH_WATERMARK) {
        src->is_read_paused = true;
        uv_read_stop((uv_stream_t *)src->tcp);
        src->is_reading = false;
    }
}

/* Runs src's bytes through the filters from index from on, then forwards them. */
static void run_data(pt_relay_side_t *src, size_t from, const char *data, size_t len, pt_buf_t *pin)
{
    pt_relay_t *r = src->relay;
    pt_l4_direction_t dir = src == &r->side[0] ? PT_L4_UPSTREAM : PT_L4_DOWNSTREAM;
    for (size_t i = from; i < r->n_filters; i++) {
        if (r->filters[i].ops->on_data == NULL)
            continue;
        int st = r->filters[i].ops->on_data(r, r->filters[i].inst, r->filters[i].conf, dir, data,
                                            len, pin);
        if (st == PT_L4_CLOSE)
            relay_close(r, false);
        if (st != PT_L4_CONTINUE || r->is_closing)
            return;
    }
    forward(src, data, len, pin);
}

static pt_relay_side_t *side_of(uv_handle_t *h)
{
    pt_relay_t *r = h->data;
    return (uv_tcp_t *)h == r->side[0].tcp ? &r->side[0] : &r->side[1];
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    pt_relay_side_t *s = side_of(h);
    if (s->tls != NULL) {
        *out = uv_buf_init(pt_scratch()->in, sizeof(pt_scratch()->in));
        return;
    }
    size_t size;
    char *at = pt_rbuf_space(&s->in, &size);
    *out = uv_buf_init(at, (unsigned)size);
}

/* Sends what src has read and not yet passed on. */
static void forward_unconsumed(pt_relay_side_t *src)
{
    pt_rbuf_t *in = &src->in;
    if (in->buf == NULL || in->off == in->len)
        return;
    size_t off = in->off;
    in->off = in->len;
    run_data(src, 0, in->buf->data + off, in->len - off, in->buf);
    /* The next read then gets a whole slab rather than this one's tail: a 64 KiB burst is
     * read (and written) in one piece, not two. Writes still queued keep their own refs. */
    pt_rbuf_drop_consumed(in);
}

/* Half-close: src is done sending; its end goes to the other side once our writes to it are out
 * (close_notify first when it speaks TLS). */
static void pass_end(pt_relay_side_t *src)
{
    pt_relay_t *r = src->relay;
    if (src->is_eof_passed || r->is_closing)
        return;
    src->is_eof_passed = true;
    pt_relay_side_t *dst = other(src);
    if (dst->tls != NULL) {
        pt_tls_shutdown(dst->tls);
        if (flush_tls(dst) != 0) {
            relay_close(r, false);
            return;
        }
    }
    int i = dst == &r->side[0] ? 0 : 1;
    r->shutdown_req[i].data = dst;
    if (uv_shutdown(&r->shutdown_req[i], (uv_stream_t *)dst->tcp, on_shutdown) != 0)
        relay_close(r, false);
}

/* Runs the end of src's sending through the filters from index from on, then passes it. */
static void run_eof(pt_relay_side_t *src, size_t from)
{
    pt_relay_t *r = src->relay;
    pt_l4_direction_t dir = src == &r->side[0] ? PT_L4_UPSTREAM : PT_L4_DOWNSTREAM;
    for (size_t i = from; i < r->n_filters; i++) {
        if (r->filters[i].ops->on_eof == NULL)
            continue;
        int st = r->filters[i].ops->on_eof(r, r->filters[i].inst, r->filters[i].conf, dir);
        if (st == PT_L4_CLOSE)
            relay_close(r, false);
        if (st != PT_L4_CONTINUE || r->is_closing)
            return;
    }
    pass_end(src);
}

/* src sent FIN (or close_notify): it is read no more. */
static void on_side_eof(pt_relay_side_t *src)
{
    if (src->read_eof)
        return;
    src->read_eof = true;
    if (src->is_reading)
        uv_read_stop((uv_stream_t *)src->tcp);
    src->is_reading = false;
    run_eof(src, 0);
}

/* Relays the plaintext src's engine holds, as long as the other side takes it. */
static void drain_tls(pt_relay_side_t *src)
{
    pt_relay_t *r = src->relay;
    while (!r->is_closing && !src->is_read_paused && !src->read_eof) {
        size_t size;
        char *at = pt_rbuf_space(&src->in, &size);
        ssize_t n = pt_tls_read(src->tls, at, size);
        if (n > 0) {
            src->in.len += (size_t)n;
            forward_unconsumed(src);
            continue;
        }
        if (n == -(ssize_t)PT_TLS_CLOSED) {
            on_side_eof(src);
        } else if (n == -(ssize_t)PT_TLS_ERROR) {
            pt_log_debug("relay: TLS read failed: %s", src->tls->error);
            relay_close(r, false);
            return;
        }
        break;
    }
    /* TLS 1.3 may answer a read (a key update). */
    if (!r->is_closing && pt_tls_output_len(src->tls) > 0 && flush_tls(src) != 0)
        relay_close(r, false);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
    pt_relay_t *r = h->data;
    pt_relay_side_t *s = side_of((uv_handle_t *)h);
    if (nread > 0) {
        r->last_activity_ms = uv_now(&r->worker->loop);
        if (s->tls != NULL) {
            pt_tls_feed(s->tls, b->base, (size_t)nread);
            drain_tls(s);
            return;
        }
        s->in.len += (size_t)nread;
        forward_unconsumed(s);
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF) {
        relay_close(r, false);
        return;
    }
    on_side_eof(s); /* a FIN without close_notify ends a TLS side's sending just the same */
}

static void start_reading(pt_relay_side_t *s)
{
    if (s->is_reading || s->read_eof || s->is_read_paused || s->is_read_held ||
        s->relay->is_closing)
        return;
    if (uv_read_start((uv_stream_t *)s->tcp, on_alloc, on_read) == 0)
        s->is_reading = true;
}

static void on_idle_timer(uv_timer_t *t)
{
    pt_relay_t *r = t->data;
    uint64_t now = uv_now(&r->worker->loop);
    uint64_t idle = now - r->last_activity_ms;
    if (idle >= r->idle_timeout_ms) {
        relay_close(r, false);
        return;
    }
    uv_timer_start(t, on_idle_timer, r->idle_timeout_ms - idle, 0);
}

static void init_side(pt_relay_t *r, pt_relay_side_t *s, const pt_relay_end_t *e)
{
    *s = (pt_relay_side_t){.relay = r,
                           .tcp = e->tcp,
                           .tls = e->tls,
                           .in = e->in,
                           .on_closed = e->on_closed,
                           .owner = e->owner};
    e->tcp->data = r;
}

#define INSTANCE_ALIGN 16

pt_relay_t *pt_relay_start(pt_worker_t *w, pt_relay_end_t a, pt_relay_end_t b,
                           uint64_t idle_timeout_ms)
{
    return pt_relay_start_filtered(w, a, b, idle_timeout_ms, NULL, 0);
}

pt_relay_t *pt_relay_start_filtered(pt_worker_t *w, pt_relay_end_t a, pt_relay_end_t b,
                                    uint64_t idle_timeout_ms, const pt_l4_filter_t *filters,
                                    size_t n_filters)
{
    /* The filters' instances follow the struct in the same allocation, each aligned. */
    size_t head = (sizeof(pt_relay_t) + INSTANCE_ALIGN - 1) & ~(size_t)(INSTANCE_ALIGN - 1);
    size_t total = head;
    for (size_t i = 0; i < n_filters; i++)
        total +=
            (filters[i].ops->instance_size + INSTANCE_ALIGN - 1) & ~(size_t)(INSTANCE_ALIGN - 1);
    pt_relay_t *r = calloc(1, total);
    if (r == NULL)
        abort();
    char *at = (char *)r + head;
    for (size_t i = 0; i < n_filters && i < PT_L4_MAX_FILTERS; i++) {
        r->filters[i].ops = filters[i].ops;
        r->filters[i].conf = filters[i].conf;
        r->filters[i].inst = at;
        at += (filters[i].ops->instance_size + INSTANCE_ALIGN - 1) & ~(size_t)(INSTANCE_ALIGN - 1);
        r->n_filters++;
    }
    r->worker = w;
    r->idle_timeout_ms = idle_timeout_ms;
    r->last_activity_ms = uv_now(&w->loop);
    init_side(r, &r->side[0], &a);
    init_side(r, &r->side[1], &b);
    uv_timer_init(&w->loop, &r->idle_timer);
    r->idle_timer.data = r;
    r->handles_open = 3;
    pt_list_insert_tail(&w->tunnels, &r->link);
    if (idle_timeout_ms > 0)
        uv_timer_start(&r->idle_timer, on_idle_timer, idle_timeout_ms, 0);
    for (size_t i = 0; i < r->n_filters && !r->is_closing; i++)
        if (r->filters[i].ops->on_connect != NULL &&
            r->filters[i].ops->on_connect(r, r->filters[i].inst, r->filters[i].conf) != 0)
            relay_close(r, false);
    if (r->is_closing)
        return r;
    for (int i = 0; i < 2; i++) {
        forward_unconsumed(&r->side[i]);
        if (r->side[i].tls != NULL)
            drain_tls(&r->side[i]); /* plaintext decrypted before the hand-over */
    }
    start_reading(&r->side[0]);
    start_reading(&r->side[1]);
    return r;
}

bool pt_relay_accept_allows(const pt_l4_filter_t *filters, size_t n_filters,
                            const pt_l4_accept_t *a)
{
    for (size_t i = 0; i < n_filters; i++)
        if (filters[i].ops->on_accept != NULL &&
            filters[i].ops->on_accept(a, filters[i].conf) != PT_L4_CONTINUE)
            return false;
    return true;
}

/* The L4 filter API (filters/l4_filter.h). */

static size_t filter_index(const pt_relay_t *r, const void *inst)
{
    for (size_t i = 0; i < r->n_filters; i++)
        if (r->filters[i].inst == inst)
            return i;
    abort(); /* not a filter of this session: a bug in the filter */
}

void pt_l4_session_pass(pt_l4_session_t *r, const void *inst, pt_l4_direction_t dir,
                        const char *data, size_t len, pt_buf_t *pin)
{
    if (r->is_closing || len == 0)
        return;
    run_data(&r->side[dir], filter_index(r, inst) + 1, data, len, pin);
}

void pt_l4_session_pass_eof(pt_l4_session_t *r, const void *inst, pt_l4_direction_t dir)
{
    if (r->is_closing)
        return;
    run_eof(&r->side[dir], filter_index(r, inst) + 1);
}

void pt_l4_session_finish(pt_l4_session_t *r)
{
    for (int i = 0; i < 2 && !r->is_closing; i++) {
        pt_relay_side_t *s = &r->side[i];
        if (!s->read_eof) {
            s->read_eof = true;
            if (s->is_reading)
                uv_read_stop((uv_stream_t *)s->tcp);
            s->is_reading = false;
        }
        pass_end(s);
    }
}

void pt_l4_session_close(pt_l4_session_t *r, bool reset)
{
    relay_close(r, reset);
}

void pt_l4_session_hold_reading(pt_l4_session_t *r, pt_l4_direction_t dir, bool hold)
{
    pt_relay_side_t *s = &r->side[dir];
    s->is_read_held = hold;
    if (hold && s->is_reading) {
        uv_read_stop((uv_stream_t *)s->tcp);
        s->is_reading = false;
    } else if (!hold) {
        start_reading(s);
    }
}

void pt_l4_session_timer_init(pt_l4_session_t *r, uv_timer_t *t)
{
    uv_timer_init(&r->worker->loop, t);
    r->handles_open++;
}

void pt_l4_session_close_handle(pt_l4_session_t *r, uv_handle_t *h)
{
    h->data = r; /* a closing handle's callback never runs again */
    uv_close(h, on_timer_closed);
}

pt_worker_t *pt_l4_session_worker(pt_l4_session_t *r)
{
    return r->worker;
}

bool pt_l4_session_is_closing(const pt_l4_session_t *r)
{
    return r->is_closing;
}
