/* proxy/http1_client.c
 * The HTTP/1 client codec (see http1_client.h). Completion is acted on after the parser
 * returns, never from inside its callbacks, so that an owner releasing the connection never
 * re-enters the parser that is running. */
#include "http1_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "keep_alive.h"
#include "log.h"
#include "upstream.h"

static pt_upstream_t *upstream_of(pt_http1_parser_t *p)
{
    return p->data;
}

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *head)
{
    pt_upstream_t *up = upstream_of(p);
    pt_http1_client_t *c = &up->codec;
    c->last_status = head->status;
    c->is_keep_alive = p->framing.is_keep_alive;
    const pt_header_t *ka = pt_http_msg_find_header(head, "keep-alive");
    c->keep_alive_s = ka != NULL ? pt_keep_alive_timeout_s(ka->value.base, ka->value.len) : -1;
    if (up->x.owner == NULL)
        return -1;
    int r = up->x.cbs->on_head(up->x.owner, head);
    return r == PT_CODEC_SKIP_BODY ? PT_HTTP1_SKIP_BODY : r;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    pt_upstream_t *up = upstream_of(p);
    if (up->x.owner == NULL)
        return -1;
    up->x.cbs->on_data(up->x.owner, at, len, up->in.buf);
    return up->x.owner == NULL ? -1 : 0;
}

static int on_trailers(pt_http1_parser_t *p, pt_header_t *t, size_t n)
{
    pt_upstream_t *up = upstream_of(p);
    if (up->x.owner != NULL)
        up->x.cbs->on_trailers(up->x.owner, t, n);
    return 0;
}

static int on_complete(pt_http1_parser_t *p)
{
    upstream_of(p)->codec.is_response_done = true;
    return 0;
}

static const pt_http1_callbacks_t response_callbacks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_trailers = on_trailers,
    .on_complete = on_complete,
};

static const pt_client_codec_ops_t exchange_ops;

void pt_http1_client_init(pt_http1_client_t *c, pt_upstream_t *up)
{
    pt_http1_parser_init(&c->parser, true, &response_callbacks, up, NULL);
    c->keep_alive_s = -1;
    up->x.ops = &exchange_ops;
    up->x.up = up;
}

/* --- requests --- */

pt_buf_t *pt_http1_client_serialize_head(const pt_http_msg_t *req, size_t *len)
{
    size_t size = req->method.len + req->path.len + req->authority.len + req->upgrade.len + 128;
    for (size_t i = 0; i < req->n_headers; i++)
        size += req->headers[i].name.len + req->headers[i].value.len + 4;
    pt_buf_t *slab = pt_buf_new_sized(size);
    char *p = slab->data;
    memcpy(p, req->method.base, req->method.len);
    p += req->method.len;
    *p++ = ' ';
    memcpy(p, req->path.base, req->path.len);
    p += req->path.len;
    memcpy(p, " HTTP/1.1\r\n", 11);
    p += 11;
    p = pt_http1_put_field(p, PT_STR_LIT("host"), req->authority);
    for (size_t i = 0; i < req->n_headers; i++)
        if (!(req->headers[i].flags & (PT_HEADER_HOP | PT_HEADER_FRAMING)))
            p = pt_http1_put_field(p, req->headers[i].name, req->headers[i].value);
    if (req->content_length >= 0)
        p = pt_http1_put_content_length(p, req->content_length);
    else if (pt_http_msg_is_body_unsized(req))
        p += sprintf(p, "transfer-encoding: chunked\r\n");
    if (req->is_upgrade) {
        p += sprintf(p, "connection: upgrade\r\n");
        p = pt_http1_put_field(p, PT_STR_LIT("upgrade"), req->upgrade);
    }
    *p++ = '\r';
    *p++ = '\n';
    *len = (size_t)(p - slab->data);
    return slab;
}

static int send_head(pt_exchange_t *x, const pt_http_msg_t *req, pt_arena_t *arena)
{
    pt_http1_client_t *c = &x->up->codec;
    pt_http1_parser_set_arena(&c->parser, arena);
    c->is_response_done = false;
    c->last_status = 0;
    c->is_request_chunked = pt_http_msg_is_body_unsized(req);
    size_t len;
    pt_buf_t *slab = pt_http1_client_serialize_head(req, &len);
    uv_buf_t b = uv_buf_init(slab->data, (unsigned)len);
    int r = pt__upstream_write(x->up, NULL, 0, &b, 1, NULL, slab);
    pt_buf_unref(slab);
    return r;
}

static int send_data(pt_exchange_t *x, const char *data, size_t len, pt_buf_t *pin)
{
    pt_http1_client_t *c = &x->up->codec;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (!c->is_request_chunked)
        return pt__upstream_write(x->up, NULL, 0, &b, 1, NULL, pin);
    char size_line[24];
    int k = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
    return pt__upstream_write(x->up, size_line, (size_t)k, &b, 1, "\r\n", pin);
}

static int send_end(pt_exchange_t *x, const pt_header_t *trailers, size_t n)
{
    pt_http1_client_t *c = &x->up->codec;
    if (!c->is_request_chunked)
        return 0;
    uv_buf_t b;
    pt_buf_t *slab = pt_http1_last_chunk(trailers, n, &b);
    int r = pt__upstream_write(x->up, NULL, 0, &b, 1, NULL, slab);
    pt_buf_unref(slab);
    return r;
}

/* --- responses --- */

static void complete_response(pt_upstream_t *up)
{
    up->codec.is_response_done = false;
    up->x.cbs->on_end(up->x.owner); /* releases or hands off up */
}

void pt_http1_client_on_bytes(pt_http1_client_t *c)
{
    pt_upstream_t *up = upstream_of(&c->parser);
    while (up->x.owner != NULL && up->in.buf != NULL && up->in.off < up->in.len) {
        size_t consumed = 0;
        int r = pt_http1_parser_execute(&c->parser, up->in.buf->data + up->in.off,
                                        up->in.len - up->in.off, &consumed);
        up->in.off += consumed;
        if (r == PT_HTTP1_OK)
            break;
        if (r == PT_HTTP1_PAUSED) {
            if (c->last_status < 200 && c->last_status != 101) {
                /* An interim response: the final one follows on the same connection. */
                c->is_response_done = false;
                pt_http1_parser_resume(&c->parser);
                continue;
            }
            complete_response(up);
            return;
        }
        if (r == PT_HTTP1_EINVALID || (r == PT_HTTP1_ECALLBACK && up->x.owner != NULL)) {
            pt_log_debug("upstream sent an invalid response: %s",
                         r == PT_HTTP1_EINVALID ? c->parser.error_reason : "refused");
            pt__upstream_fail(up, PT_CODEC_RESET_PROTOCOL_ERROR);
        } else {
            pt__upstream_close(up);
        }
        return;
    }
    pt_rbuf_drop_consumed(&up->in);
}

void pt_http1_client_on_eof(pt_http1_client_t *c)
{
    pt_upstream_t *up = upstream_of(&c->parser);
    if (pt_http1_parser_in_message(&c->parser) &&
        pt_http1_parser_finish(&c->parser) == PT_HTTP1_OK && c->is_response_done) {
        complete_response(up); /* a close-delimited body ended */
        return;
    }
    pt__upstream_fail(up, PT_CODEC_RESET_CLOSED);
}

/* True when the connection can carry another request: the response ended, allowed another,
 * and nothing unparsed is left. */
static bool is_reusable(const pt_http1_client_t *c)
{
    const pt_upstream_t *up = c->parser.data;
    return c->is_keep_alive && !pt_http1_parser_in_message(&c->parser) &&
           (up->in.buf == NULL || up->in.off >= up->in.len);
}

/* --- the exchange's ops (codec.h): the connection's one exchange --- */

static bool x_is_write_congested(pt_exchange_t *x)
{
    return pt__upstream_is_write_congested(x->up);
}

static void x_pause(pt_exchange_t *x)
{
    pt__upstream_set_read_paused(x->up, true);
}

static void x_resume(pt_exchange_t *x)
{
    pt__upstream_set_read_paused(x->up, false);
}

static void x_release(pt_exchange_t *x, bool reusable)
{
    pt_http1_client_t *c = &x->up->codec;
    x->owner = NULL;
    reusable = reusable && is_reusable(c);
    pt_http1_parser_resume(&c->parser);
    pt__upstream_release(x->up, reusable, c->keep_alive_s);
}

static const pt_client_codec_ops_t exchange_ops = {
    .send_head = send_head,
    .send_data = send_data,
    .send_end = send_end,
    .is_write_congested = x_is_write_congested,
    .pause = x_pause,
    .resume = x_resume,
    .release = x_release,
};
