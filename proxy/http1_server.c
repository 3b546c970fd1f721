/* proxy/http1_server.c
 * The HTTP/1 server codec (see http1_server.h): the request loop over the connection's read
 * slab, the exchange's ops the stream calls, and the response framing. */
#include "http1_server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "stream.h"
#include "worker.h"

#define SERVER_CACHE_MAX 64

static pt_http1_server_t *codec_of(const pt_conn_t *c)
{
    return c->codec;
}

/* --- the codec's memory: taken when a request begins, given back when the connection is
 * idle (a per-worker cache) --- */

static const pt_http1_callbacks_t request_callbacks;

static void clear_response(pt_http1_server_t *s)
{
    if (s->head != NULL) {
        pt_buf_unref(s->head);
        s->head = NULL;
    }
    s->is_head_written = s->is_chunked = s->is_close_delimited = s->is_no_body = false;
    s->is_body_started = s->sent_continue = s->is_discarding = false;
    s->body_bytes = 0;
}

static pt_http1_server_t *take(pt_conn_t *c)
{
    pt_worker_t *w = c->worker;
    pt_http1_server_t *s = w->cached_servers;
    if (s != NULL) {
        w->cached_servers = s->next_cached;
        w->n_cached_servers--;
    } else if ((s = malloc(sizeof(*s))) == NULL) {
        abort();
    }
    const pt_proxy_settings_t *ps = &w->config->proxy;
    pt_http1_limits_t limits = {ps->max_request_line_bytes, ps->max_header_bytes, ps->max_headers};
    pt_http1_parser_init(&s->parser, false, &request_callbacks, s, &limits);
    s->conn = c;
    s->stream = NULL;
    s->is_parsing = false;
    s->head = NULL;
    clear_response(s);
    s->info = (pt_conn_info_t){.worker = w,
                               .tcp = &c->tcp,
                               .listener_port = c->listener_port,
                               .peer_principal = c->peer_principal,
                               .capture = c->capture,
                               .chaos_proxy = c->chaos_proxy,
                               .is_tls = c->tls != NULL};
    memcpy(s->info.peer_ip, c->peer_ip, sizeof(s->info.peer_ip));
    c->codec = s;
    return s;
}

static void drop(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s == NULL)
        return;
    c->codec = NULL;
    clear_response(s);
    pt_worker_t *w = c->worker;
    if (w->n_cached_servers >= SERVER_CACHE_MAX) {
        free(s);
        return;
    }
    s->next_cached = w->cached_servers;
    w->cached_servers = s;
    w->n_cached_servers++;
}

void pt_http1_server_free_cache(pt_worker_t *w)
{
    while (w->cached_servers != NULL) {
        pt_http1_server_t *s = w->cached_servers;
        w->cached_servers = s->next_cached;
        free(s);
    }
    w->n_cached_servers = 0;
}

static bool in_message(const pt_conn_t *c)
{
    return codec_of(c) != NULL && pt_http1_parser_in_message(&codec_of(c)->parser);
}

static bool is_idle(const pt_conn_t *c)
{
    return (codec_of(c) == NULL || codec_of(c)->stream == NULL) && !in_message(c);
}

/* Nothing of a request is in progress: the codec goes, unless its parser is running (a stream
 * that finished inside one of its callbacks) or has seen the start of the next request. */
static void drop_if_idle(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s != NULL && !s->is_parsing && s->stream == NULL &&
        pt_http1_parser_holds_nothing(&s->parser))
        drop(c);
}

/* --- the parser's events --- */

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *head)
{
    pt_http1_server_t *s = p->data;
    pt_conn_t *c = s->conn;
    if (c->timer_mode == PT_CONN_TIMER_HEADER)
        pt_conn_set_timer(c, PT_CONN_TIMER_NONE);
    if (!p->framing.is_keep_alive || c->worker->is_draining)
        c->close_after_response = true;
    pt_stream_start(s->stream, head);
    return c->is_closing ? -1 : 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    pt_http1_server_t *s = p->data;
    s->is_body_started = true;
    s->body_bytes += len;
    /* A stream that answered before the request ended has gone: the rest is dropped. */
    if (s->stream != NULL)
        pt_stream_on_request_body(s->stream, at, len, s->conn->in.buf);
    return s->conn->is_closing ? -1 : 0;
}

static int on_trailers(pt_http1_parser_t *p, pt_header_t *t, size_t n)
{
    pt_http1_server_t *s = p->data;
    if (s->stream != NULL)
        pt_stream_on_request_trailers(s->stream, t, n);
    return s->conn->is_closing ? -1 : 0;
}

static int on_complete(pt_http1_parser_t *p)
{
    pt_http1_server_t *s = p->data;
    if (s->stream != NULL)
        pt_stream_on_request_complete(s->stream);
    return s->conn->is_closing ? -1 : 0;
}

static const pt_http1_callbacks_t request_callbacks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_trailers = on_trailers,
    .on_complete = on_complete,
};

/* --- the request loop --- */

static void reject(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    PT_STAT_INC(&c->worker->stats, downstream_rq_invalid);
    c->close_after_response = true;
    int status = s->parser.error_status ? s->parser.error_status : 400;
    pt_log_debug("downstream %s: request refused with %d: %s", c->peer_ip, status,
                 s->parser.error_reason ? s->parser.error_reason : "invalid");
    if (s->is_discarding) {
        /* The rest of an answered request's body was being dropped: the answer stands. */
        pt_conn_close(c, true);
        return;
    }
    if (s->stream != NULL && s->stream->response_head_sent) {
        /* The request was already answered in part (an early reply): just close. */
        pt_conn_close(c, false);
        return;
    }
    if (s->stream == NULL)
        s->stream = pt_stream_new(&pt_http1_server_ops, s, &s->info);
    pt_stream_respond(s->stream, status, s->parser.error_reason, PT_FLAG_DPE);
}

static void begin_message(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s == NULL)
        s = take(c);
    s->stream = pt_stream_new(&pt_http1_server_ops, s, &s->info);
    pt_http1_parser_set_arena(&s->parser, &s->stream->arena);
    clear_response(s);
    pt_conn_set_timer(c, PT_CONN_TIMER_HEADER);
}

static void on_bytes(pt_conn_t *c)
{
    while (!c->is_closing && !c->is_handed_off && c->in.buf != NULL && c->in.off < c->in.len &&
           !(c->pause & PT_CONN_PAUSE_PIPELINE)) {
        pt_http1_server_t *s = codec_of(c);
        if ((s == NULL || s->stream == NULL) && !in_message(c)) {
            if (c->close_after_response) {
                /* Bytes after a request that ends the connection are never parsed. */
                c->in.off = c->in.len;
                break;
            }
            begin_message(c);
            s = codec_of(c);
        }
        size_t consumed = 0;
        s->is_parsing = true;
        int r = pt_http1_parser_execute(&s->parser, c->in.buf->data + c->in.off,
                                        c->in.len - c->in.off, &consumed);
        s->is_parsing = false;
        c->in.off += consumed;
        if (r == PT_HTTP1_OK)
            break;
        if (r == PT_HTTP1_PAUSED) {
            if (s->parser.is_upgraded) {
                /* The rest is tunnel data for the upstream if it accepts the upgrade. */
                c->pause |= PT_CONN_PAUSE_PIPELINE | PT_CONN_PAUSE_TUNNEL;
                if (s->stream == NULL)
                    pt_conn_close(c, true);
                break;
            }
            if (s->stream != NULL) {
                c->pause |= PT_CONN_PAUSE_PIPELINE;
                break;
            }
            pt_http1_parser_resume(&s->parser);
            continue;
        }
        if (r == PT_HTTP1_EINVALID)
            reject(c);
        else if (!c->is_closing)
            pt_conn_close(c, false);
        break;
    }
    if (!c->is_handed_off)
        pt_rbuf_drop_consumed(&c->in);
    if (c->is_closing || c->is_handed_off)
        return;
    /* A stream answered within this parse (a direct response) leaves the connection idle. */
    if (is_idle(c)) {
        if (c->close_after_response) { /* a drain that waited for a dropped body's end */
            pt_conn_close(c, true);
            return;
        }
        drop_if_idle(c);
        if (c->timer_mode == PT_CONN_TIMER_NONE)
            pt_conn_set_timer(c, PT_CONN_TIMER_IDLE);
    }
    pt_conn_update_reading(c);
}

static void on_peer_eof(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s != NULL && s->stream != NULL) {
        /* A client may half-close after its last request and still read the responses: the
         * requests already read are answered first (see done()). */
        if (!s->stream->request_complete)
            pt_conn_close(c, false);
        return;
    }
    /* A partial request head is dropped without an answer, as the peer has gone; an answered
     * request whose body was being dropped keeps its answer. */
    pt_conn_close(c, !in_message(c) || s->is_discarding);
}

static void on_header_timeout(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s == NULL || s->stream == NULL) {
        /* Not a byte of a request yet: nothing to answer. */
        pt_conn_close(c, false);
        return;
    }
    /* RFC 9110 §15.5.9: 408 tells the client the server gave up waiting. */
    c->close_after_response = true;
    pt_stream_respond(s->stream, 408, "request header timeout", PT_FLAG_DPE);
}

static void on_drained(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s != NULL && s->stream != NULL)
        pt_stream_on_downstream_drained(s->stream);
}

static void on_close(pt_conn_t *c)
{
    pt_http1_server_t *s = codec_of(c);
    if (s != NULL && s->stream != NULL)
        pt_stream_abort(s->stream, PT_FLAG_DC);
}

const pt_conn_codec_ops_t pt_http1_server_conn_ops = {
    .on_bytes = on_bytes,
    .on_peer_eof = on_peer_eof,
    .on_header_timeout = on_header_timeout,
    .on_drained = on_drained,
    .on_close = on_close,
    .is_idle = is_idle,
    .free = drop,
};

/* --- the exchange's ops (codec.h) --- */

static bool cancel_head(void *exchange);

/* A response that does not wait for its request's body: the rest of the body can be read and
 * dropped after it when its length is known and short, so the connection stays usable (as
 * HAProxy and Envoy drain it); otherwise the connection ends with the response. */
static bool may_discard_rest(const pt_http1_server_t *s, const pt_http_msg_t *req)
{
    return !s->parser.framing.is_chunked && req->content_length >= 0 &&
           (uint64_t)req->content_length - s->body_bytes <= PT_HTTP1_DISCARD_MAX_BYTES;
}

const char *pt_http1_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static void send_head(void *exchange, const pt_http_msg_t *req, const pt_http_msg_t *h)
{
    pt_http1_server_t *s = exchange;
    pt_conn_t *c = s->conn;
    bool is_head = req != NULL && req->method_id == HTTP_HEAD;
    cancel_head(s);
    s->is_head_written = s->is_chunked = s->is_close_delimited = false;
    s->is_no_body = is_head || h->status == 204 || h->status == 304 || h->status == 101;
    if (req != NULL && req->is_upgrade && h->status != 101)
        c->close_after_response = true; /* the client may have sent tunnel bytes already */
    if (req != NULL && req->has_body && pt_http1_parser_in_message(&s->parser) &&
        !may_discard_rest(s, req))
        c->close_after_response = true;
    if (!s->is_no_body && h->content_length < 0) {
        if (req == NULL || req->version >= PT_HTTP_11)
            s->is_chunked = true;
        else
            s->is_close_delimited = true;
    }
    if (s->is_close_delimited || c->worker->is_draining)
        c->close_after_response = true;

    size_t size = 64 + h->reason.len + 64 + 24; /* + room for a first chunk-size line */
    for (size_t i = 0; i < h->n_headers; i++)
        size += h->headers[i].name.len + h->headers[i].value.len + 4;
    size += h->upgrade.len;
    pt_buf_t *slab = pt_buf_new_sized(size);
    char *p = slab->data;
    pt_str_t reason = h->reason.len > 0 ? h->reason : pt_str(pt_http1_reason_phrase(h->status));
    memcpy(p, "HTTP/1.1 ", 9);
    p += 9;
    p += pt_put_i64(p, h->status);
    *p++ = ' ';
    memcpy(p, reason.base, reason.len);
    p += reason.len;
    *p++ = '\r';
    *p++ = '\n';
    for (size_t i = 0; i < h->n_headers; i++)
        if (!(h->headers[i].flags & (PT_HEADER_HOP | PT_HEADER_FRAMING)))
            p = pt_http1_put_field(p, h->headers[i].name, h->headers[i].value);
    if (h->status == 101) {
        p += sprintf(p, "connection: upgrade\r\n");
        p = pt_http1_put_field(p, PT_STR_LIT("upgrade"), h->upgrade);
    } else {
        /* A HEAD or 304 answer keeps the Content-Length of what it describes (RFC 9110 §8.6). */
        if (h->content_length >= 0 && h->status != 204)
            p = pt_http1_put_content_length(p, h->content_length);
        else if (s->is_chunked)
            p += sprintf(p, "transfer-encoding: chunked\r\n");
        if (c->close_after_response)
            p += sprintf(p, "connection: close\r\n");
        else if (req != NULL && req->version == PT_HTTP_10)
            p += sprintf(p, "connection: keep-alive\r\n");
    }
    *p++ = '\r';
    *p++ = '\n';
    s->head = slab;
    s->head_len = (size_t)(p - slab->data);
}

static bool send_data(void *exchange, const char *data, size_t len, pt_buf_t *pin)
{
    pt_http1_server_t *s = exchange;
    pt_conn_t *c = s->conn;
    if (s->is_no_body || len == 0)
        return false;
    uv_buf_t body = uv_buf_init((char *)data, (unsigned)len);
    if (s->head != NULL) {
        pt_buf_t *head = s->head;
        size_t head_len = s->head_len;
        if (s->is_chunked)
            head_len += (size_t)sprintf(head->data + head_len, "%zx\r\n", len);
        s->head = NULL;
        s->is_head_written = true;
        pt_conn_write2(c, uv_buf_init(head->data, (unsigned)head_len), head, body, pin,
                       s->is_chunked ? "\r\n" : NULL);
        pt_buf_unref(head);
    } else if (s->is_chunked) {
        pt_conn_write_chunk(c, data, len, pin);
    } else {
        pt_conn_write(c, NULL, 0, &body, 1, NULL, pin);
    }
    return true;
}

static void send_end(void *exchange, const pt_header_t *trailers, size_t n)
{
    pt_http1_server_t *s = exchange;
    pt_conn_t *c = s->conn;
    uv_buf_t last = uv_buf_init(NULL, 0);
    pt_buf_t *last_slab = NULL;
    if (s->is_chunked)
        last_slab = pt_http1_last_chunk(trailers, n, &last);
    if (s->head != NULL) {
        pt_buf_t *head = s->head;
        s->head = NULL;
        s->is_head_written = true;
        pt_conn_write2(c, uv_buf_init(head->data, (unsigned)s->head_len), head, last, last_slab,
                       NULL);
        pt_buf_unref(head);
    } else if (last_slab != NULL) {
        pt_conn_write(c, NULL, 0, &last, 1, NULL, last_slab);
    }
    if (last_slab != NULL)
        pt_buf_unref(last_slab);
}

static void send_continue(void *exchange, const pt_http_msg_t *req)
{
    pt_http1_server_t *s = exchange;
    /* RFC 9110 §10.1.1: the client waits for 100 before sending the body. */
    if (!req->expects_continue || req->version != PT_HTTP_11 || s->sent_continue ||
        s->is_body_started)
        return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
    pt_conn_write(s->conn, NULL, 0, &b, 1, NULL, NULL);
    s->sent_continue = true;
}

static bool cancel_head(void *exchange)
{
    pt_http1_server_t *s = exchange;
    if (s->head != NULL) {
        pt_buf_unref(s->head);
        s->head = NULL;
    }
    return !s->is_head_written;
}

static bool is_response_started(const void *exchange)
{
    const pt_http1_server_t *s = exchange;
    return s->is_head_written;
}

static bool is_write_congested(void *exchange)
{
    pt_http1_server_t *s = exchange;
    return pt_conn_is_write_congested(s->conn);
}

static void pause_exchange(void *exchange)
{
    pt_http1_server_t *s = exchange;
    pt_conn_pause_reading(s->conn, PT_CONN_PAUSE_UPSTREAM);
}

static void resume_exchange(void *exchange)
{
    pt_http1_server_t *s = exchange;
    pt_conn_resume_reading(s->conn, PT_CONN_PAUSE_UPSTREAM);
}

static void close_after(void *exchange)
{
    pt_http1_server_t *s = exchange;
    s->conn->close_after_response = true;
}

/* HTTP/1 cannot end one response early and go on: the connection closes, so that a cut
 * response never looks complete. */
static void reset(void *exchange)
{
    pt_http1_server_t *s = exchange;
    pt_conn_close(s->conn, false);
}

static pt_relay_t *hand_off_to_tunnel(void *exchange, pt_upstream_t *up)
{
    pt_http1_server_t *s = exchange;
    return pt_conn_hand_off_to_tunnel(s->conn, up);
}

/* The stream let go: the connection goes on with the next request (pipelined ones are parsed
 * now), drops the rest of a body its response did not need, or closes. */
static void done(void *exchange)
{
    pt_http1_server_t *s = exchange;
    pt_conn_t *c = s->conn;
    bool was_parsing = s->is_parsing;
    cancel_head(s); /* a response cut before its first byte went */
    s->stream = NULL;
    c->pause &= ~(unsigned)PT_CONN_PAUSE_UPSTREAM; /* a pause for the stream ends with it */
    if (c->is_closing || c->is_handed_off)
        return;
    if (c->close_after_response || c->worker->is_draining) {
        pt_conn_close(c, true);
        return;
    }
    if (pt_http1_parser_in_message(&s->parser)) {
        /* send_head made sure what is left is short; the client has idleTimeout to send it. */
        s->is_discarding = true;
        pt_conn_set_timer(c, PT_CONN_TIMER_IDLE);
    }
    if (c->pause & PT_CONN_PAUSE_PIPELINE) {
        /* An upgrade the upstream declined goes on as HTTP/1. */
        c->pause &= ~(unsigned)(PT_CONN_PAUSE_PIPELINE | PT_CONN_PAUSE_TUNNEL);
        pt_http1_parser_resume(&s->parser);
        on_bytes(c);
    }
    /* Inside the parser, the loop that runs it reads on. */
    if (!was_parsing)
        pt_conn_pump_tls(c); /* pipelined plaintext left in the engine when the slab was full */
    if (c->is_closing)
        return;
    if (c->peer_eof && (codec_of(c) == NULL || codec_of(c)->stream == NULL)) {
        pt_conn_close(c, true);
        return;
    }
    if (is_idle(c)) {
        drop_if_idle(c);
        pt_conn_set_timer(c, PT_CONN_TIMER_IDLE);
    }
    pt_conn_update_reading(c);
}

const pt_server_codec_ops_t pt_http1_server_ops = {
    .send_head = send_head,
    .send_data = send_data,
    .send_end = send_end,
    .send_continue = send_continue,
    .cancel_head = cancel_head,
    .is_response_started = is_response_started,
    .is_write_congested = is_write_congested,
    .pause = pause_exchange,
    .resume = resume_exchange,
    .close_after = close_after,
    .done = done,
    .reset = reset,
    .hand_off_to_tunnel = hand_off_to_tunnel,
};
