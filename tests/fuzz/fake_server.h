/* tests/fuzz/fake_server.h
 * Fakes of what a server codec calls, for the server codec fuzz drivers (fuzz_http1_server.c,
 * fuzz_http2_server.c), which include their codec's .c and then this: conn.h's writes, pauses
 * and timers (every byte written is touched, nothing reaches a socket) and stream.h's events
 * (a fake stream that answers each request through the codec's ops, when its head arrives or
 * when it is complete as fake_mode chooses: a Content-Length body, a chunked one with
 * trailers, a 101 to an upgrade, a 100 Continue first, a held head replaced). Streams are kept
 * until fake_streams_free(), as the real ones outlive their done call until their timer closes. */
#ifndef PT_FUZZ_FAKE_SERVER_H
#define PT_FUZZ_FAKE_SERVER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/conn.h"
#include "proxy/stream.h"

static volatile unsigned sink;
static uint8_t fake_mode; /* how the fake stream answers (a driver sets it per input) */
static unsigned n_writes; /* bounds the work per input */

static void touch(const char *p, size_t n)
{
    unsigned h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + (unsigned char)p[i];
    sink += h;
}

/* --- the fake connection (conn.h) --- */

int pt_conn_write(pt_conn_t *c, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
                  unsigned n, const char *suffix, pt_buf_t *pin)
{
    if (c->is_closing)
        return UV_ECANCELED;
    touch(prefix, prefix_len);
    for (unsigned i = 0; i < n; i++)
        touch(bufs[i].base, bufs[i].len);
    if (suffix != NULL)
        touch(suffix, strlen(suffix));
    n_writes++;
    return 0;
}

int pt_conn_write_chunk(pt_conn_t *c, const char *data, size_t len, pt_buf_t *pin)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return pt_conn_write(c, NULL, 0, &b, 1, "\r\n", pin);
}

int pt_conn_write2(pt_conn_t *c, uv_buf_t head, pt_buf_t *head_pin, uv_buf_t body,
                   pt_buf_t *body_pin, const char *suffix)
{
    uv_buf_t v[2] = {head, body};
    return pt_conn_write(c, NULL, 0, v, 2, suffix, NULL);
}

bool pt_conn_is_write_congested(pt_conn_t *c)
{
    return (fake_mode & 0x40) != 0;
}

void pt_conn_pause_reading(pt_conn_t *c, unsigned reason)
{
    c->pause |= reason;
}

void pt_conn_resume_reading(pt_conn_t *c, unsigned reason)
{
    c->pause &= ~reason;
}

void pt_conn_update_reading(pt_conn_t *c)
{
    (void)c;
}

void pt_conn_pump_tls(pt_conn_t *c)
{
    (void)c;
}

void pt_conn_set_timer(pt_conn_t *c, pt_conn_timer_mode_t mode_)
{
    c->timer_mode = mode_;
}

void pt_conn_close(pt_conn_t *c, bool graceful)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    c->codec_ops->on_close(c);
}

void pt_conn_release_handle(pt_conn_t *c)
{
    c->handles_open--;
}

pt_relay_t *pt_conn_hand_off_to_tunnel(pt_conn_t *c, pt_upstream_t *up)
{
    c->is_handed_off = true;
    return NULL;
}

/* --- the fake stream (stream.h) --- */

static pt_stream_t **streams;
static size_t n_streams, streams_cap;

static void finish(pt_stream_t *st)
{
    if (!st->is_active)
        return;
    st->is_active = false;
    st->downstream->done(st->exchange);
}

static void maybe_finish(pt_stream_t *st)
{
    if (st->is_active && st->response_complete &&
        (st->request_complete || st->request == NULL || !st->request->has_body))
        finish(st);
}

pt_stream_t *pt_stream_new(const pt_server_codec_ops_t *ops, void *exchange,
                           const pt_conn_info_t *conn)
{
    if (n_streams == streams_cap) {
        streams_cap = streams_cap ? 2 * streams_cap : 16;
        streams = realloc(streams, streams_cap * sizeof(*streams));
    }
    pt_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL || streams == NULL)
        abort();
    streams[n_streams++] = st;
    pt_arena_init(&st->arena, 1024);
    st->downstream = ops;
    st->exchange = exchange;
    st->conn = conn;
    st->worker = conn->worker;
    st->is_active = true;
    return st;
}

/* A response through the codec's ops: the framing the input's first byte chooses. */
static void answer(pt_stream_t *st)
{
    if (!st->is_active || st->response_complete)
        return;
    const pt_server_codec_ops_t *ops = st->downstream;
    const pt_http_msg_t *req = st->request;
    pt_header_t trailer = {PT_STR_LIT("x-checksum"), PT_STR_LIT("1"), 0};
    pt_http_msg_t resp = {.status = 200, .version = PT_HTTP_11, .content_length = 5};
    bool upgrade = req != NULL && req->is_upgrade && (fake_mode & 0x04);
    if (upgrade) {
        resp.status = 101;
        resp.upgrade = req->upgrade;
        resp.content_length = -1;
    } else if (fake_mode & 0x02) {
        resp.content_length = -1; /* chunked to HTTP/1.1 clients, close-delimited to 1.0 */
    }
    if (req != NULL && (fake_mode & 0x08))
        ops->send_continue(st->exchange, req);
    ops->send_head(st->exchange, req, &resp);
    st->response_head_sent = true;
    if (fake_mode & 0x10) { /* the head replaced by another answer before it went */
        (void)ops->cancel_head(st->exchange);
        resp.status = 503;
        ops->send_head(st->exchange, req, &resp);
    }
    if (!upgrade) {
        pt_buf_t *slab = pt_buf_new_sized(5);
        memcpy(slab->data, "hello", 5);
        (void)ops->send_data(st->exchange, slab->data, 5, slab);
        pt_buf_unref(slab);
        (void)ops->is_write_congested(st->exchange);
        (void)ops->is_response_started(st->exchange);
    }
    ops->send_end(st->exchange, &trailer, (fake_mode & 0x02) ? 1 : 0);
    st->response_complete = true;
    if (upgrade) {
        st->is_tunnel = true;
        (void)ops->hand_off_to_tunnel(st->exchange, NULL);
        finish(st);
        return;
    }
    maybe_finish(st);
}

void pt_stream_start(pt_stream_t *st, pt_http_msg_t *head)
{
    st->request = head;
    if (head->has_body && (fake_mode & 0x20))
        st->downstream->pause(st->exchange);
    if (fake_mode & 0x01)
        answer(st);
}

void pt_stream_on_request_body(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin)
{
    touch(data, len);
    st->bytes_received += len;
}

void pt_stream_on_request_trailers(pt_stream_t *st, pt_header_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        touch(t[i].name.base, t[i].name.len);
        touch(t[i].value.base, t[i].value.len);
    }
}

void pt_stream_on_request_complete(pt_stream_t *st)
{
    st->request_complete = true;
    if (st->response_complete)
        maybe_finish(st);
    else
        answer(st);
}

void pt_stream_on_downstream_drained(pt_stream_t *st)
{
    (void)st;
}

void pt_stream_abort(pt_stream_t *st, pt_flag_t flag)
{
    finish(st);
}

void pt_stream_respond(pt_stream_t *st, int status, const char *body, pt_flag_t flag)
{
    if (!st->is_active)
        return;
    if (st->response_head_sent && !st->downstream->cancel_head(st->exchange)) {
        st->downstream->reset(st->exchange);
        return;
    }
    pt_http_msg_t resp = {.status = status, .version = PT_HTTP_11, .content_length = 0};
    st->downstream->send_head(st->exchange, st->request, &resp);
    st->response_head_sent = true;
    st->downstream->send_end(st->exchange, NULL, 0);
    st->response_complete = true;
    maybe_finish(st);
}


/* One connection served by the codec ops: size bytes of data fed in reads of piece bytes
 * (into the read slab, as conn.c does; kept unparsed while a pipelined request waits), then
 * the client's EOF and the close; the connection's memory goes. */
static void fake_conn_run(pt_worker_t *w, const pt_conn_codec_ops_t *ops, const char *data,
                          size_t size, size_t piece)
{
    static pt_conn_t c;
    static bool is_loop_ready;
    if (!is_loop_ready) /* a codec's own handles (HTTP/2's flusher) need a loop */
        is_loop_ready = uv_loop_init(&w->loop) == 0;
    memset(&c, 0, sizeof(c));
    c.worker = w;
    c.handles_open = 1;
    c.codec_ops = ops;
    strcpy(c.peer_ip, "127.0.0.1");
    n_writes = 0;
    size_t off = 0;
    while (off < size && !c.is_closing && !c.is_handed_off && n_writes < 4096) {
        size_t n = size - off < piece ? size - off : piece;
        size_t room;
        char *at = pt_rbuf_space(&c.in, &room);
        if (room == 0)
            break; /* the slab is full of a pipelined request waiting for its turn */
        if (n > room)
            n = room;
        memcpy(at, data + off, n);
        c.in.len += n;
        off += n;
        if (c.pause & PT_CONN_PAUSE_PIPELINE)
            continue;
        c.codec_ops->on_bytes(&c);
    }
    if (!c.is_closing && !c.is_handed_off)
        c.codec_ops->on_peer_eof(&c);
    if (!c.is_closing)
        pt_conn_close(&c, false);
    uv_run(&w->loop, UV_RUN_NOWAIT); /* the codec's handles close */
    if (c.handles_open != 1)
        abort(); /* a handle the codec opened and did not close */
    c.codec_ops->free(&c);
    pt_rbuf_release(&c.in);
}

/* Frees the streams of one input. */
static void fake_streams_free(void)
{
    for (size_t i = 0; i < n_streams; i++) {
        pt_arena_dispose(&streams[i]->arena);
        free(streams[i]);
    }
    n_streams = 0;
}

#endif
