/* proxy/http1_server.c
 * The HTTP/1 server codec (see http1_server.h). */
#include "http1_server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "worker.h"

#define SERVER_CACHE_MAX 64

pt_http1_server_t *pt_http1_server_take(pt_conn_t *c, const pt_http1_callbacks_t *cbs)
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
    pt_http1_parser_init(&s->parser, false, cbs, c, &limits);
    s->head = NULL;
    s->is_head_written = s->is_chunked = s->is_close_delimited = s->is_no_body = false;
    s->is_body_started = s->sent_continue = false;
    return s;
}

void pt_http1_server_begin(pt_http1_server_t *s, pt_arena_t *arena)
{
    pt_http1_parser_set_arena(&s->parser, arena);
    pt_http1_server_cancel_head(s);
    s->is_head_written = s->is_chunked = s->is_close_delimited = s->is_no_body = false;
    s->is_body_started = s->sent_continue = false;
}

void pt_http1_server_drop(pt_worker_t *w, pt_http1_server_t *s)
{
    pt_http1_server_cancel_head(s);
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

void pt_http1_server_send_head(pt_http1_server_t *s, pt_conn_t *c, const pt_http_msg_t *req,
                               const pt_http_msg_t *h)
{
    bool is_head = req != NULL && req->method_id == HTTP_HEAD;
    pt_http1_server_cancel_head(s);
    s->is_head_written = s->is_chunked = s->is_close_delimited = false;
    s->is_no_body = is_head || h->status == 204 || h->status == 304 || h->status == 101;
    if (req != NULL && req->is_upgrade && h->status != 101)
        c->close_after_response = true; /* the client may have sent tunnel bytes already */
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
    if (h->reason.len > 0) {
        p += sprintf(p, "HTTP/1.1 %d ", h->status);
        memcpy(p, h->reason.base, h->reason.len);
        p += h->reason.len;
        *p++ = '\r';
        *p++ = '\n';
    } else {
        p += sprintf(p, "HTTP/1.1 %d %s\r\n", h->status, pt_http1_reason_phrase(h->status));
    }
    for (size_t i = 0; i < h->n_headers; i++)
        if (!(h->headers[i].flags & (PT_HEADER_HOP | PT_HEADER_FRAMING)))
            p = pt_http1_put_field(p, h->headers[i].name, h->headers[i].value);
    if (h->status == 101) {
        p += sprintf(p, "connection: upgrade\r\n");
        p = pt_http1_put_field(p, PT_STR_LIT("upgrade"), h->upgrade);
    } else {
        /* A HEAD or 304 answer keeps the Content-Length of what it describes (RFC 9110 §8.6). */
        if (h->content_length >= 0 && h->status != 204)
            p += sprintf(p, "content-length: %" PRId64 "\r\n", h->content_length);
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

bool pt_http1_server_send_data(pt_http1_server_t *s, pt_conn_t *c, const char *data, size_t len,
                               pt_buf_t *pin)
{
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

void pt_http1_server_send_end(pt_http1_server_t *s, pt_conn_t *c, const pt_header_t *trailers,
                              size_t n)
{
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

void pt_http1_server_send_continue(pt_http1_server_t *s, pt_conn_t *c, const pt_http_msg_t *req)
{
    /* RFC 9110 §10.1.1: the client waits for 100 before sending the body. */
    if (!req->expects_continue || req->version != PT_HTTP_11 || s->sent_continue ||
        s->is_body_started)
        return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
    pt_conn_write(c, NULL, 0, &b, 1, NULL, NULL);
    s->sent_continue = true;
}

bool pt_http1_server_cancel_head(pt_http1_server_t *s)
{
    if (s->head != NULL) {
        pt_buf_unref(s->head);
        s->head = NULL;
    }
    return !s->is_head_written;
}
