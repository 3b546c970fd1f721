/* proxy/trace_export.c
 * Span queues, the OTLP/HTTP JSON and Zipkin v2 JSON encoders, and the exporter on the main
 * thread's loop (see trace_export.h). */
#include "trace_export.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "stream.h"
#include "worker.h"

#ifndef PT_VERSION
#define PT_VERSION "0.1.0"
#endif

pt_trace_exporter_t *pt_trace_exporter_current;

void pt_span_set(char *dst, size_t size, pt_str_t s)
{
    size_t n = s.len < size - 1 ? s.len : size - 1;
    if (n > 0)
        memcpy(dst, s.base, n);
    dst[n] = '\0';
}

/* --- JSON --- */

static void buf_reserve(pt_trace_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    b->data = realloc(b->data, cap);
    if (b->data == NULL)
        abort();
    b->cap = cap;
}

static void put(pt_trace_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

__attribute__((format(printf, 2, 3))) static void putf(pt_trace_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A JSON string. Bytes of peer text outside printable ASCII are escaped as \u00XX (read as
 * Latin-1), so the document is valid UTF-8 whatever the peer sent. */
static void put_str(pt_trace_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    buf_reserve(b, n * 6 + 2);
    char *p = b->data + b->len;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 0xf];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    *p++ = '"';
    b->len = (size_t)(p - b->data);
}

static void put_hex(pt_trace_buf_t *b, const uint8_t *id, size_t n)
{
    buf_reserve(b, 2 * n + 2);
    b->data[b->len++] = '"';
    pt_trace_hex(id, n, b->data + b->len);
    b->len += 2 * n;
    b->data[b->len++] = '"';
}

static const char *event_name(pt_trace_event_kind_t k)
{
    switch (k) {
    case PT_TRACE_EVENT_FAULT_DELAY: return "fault.delay";
    case PT_TRACE_EVENT_FAULT_ABORT: return "fault.abort";
    case PT_TRACE_EVENT_UPSTREAM_ATTEMPT: return "upstream.attempt";
    case PT_TRACE_EVENT_CHAOS_ABORT: return "chaos.http_abort";
    case PT_TRACE_EVENT_CHAOS_DELAY: return "chaos.http_delay";
    case PT_TRACE_EVENT_CHAOS_SLOW_BODY: return "chaos.http_slow_body";
    case PT_TRACE_EVENT_CHAOS_DROP: return "chaos.http_drop_first";
    }
    return "event";
}

static const char *event_attribute(pt_trace_event_kind_t k)
{
    switch (k) {
    case PT_TRACE_EVENT_FAULT_DELAY: return "delay_ms";
    case PT_TRACE_EVENT_FAULT_ABORT: return "http.status_code";
    case PT_TRACE_EVENT_UPSTREAM_ATTEMPT: return "attempt";
    case PT_TRACE_EVENT_CHAOS_ABORT: return "status_code";
    case PT_TRACE_EVENT_CHAOS_DELAY: return "delay_ms";
    case PT_TRACE_EVENT_CHAOS_SLOW_BODY: return "bytes_per_interval";
    case PT_TRACE_EVENT_CHAOS_DROP: return "count";
    }
    return "value";
}

/* The span's string tags, Envoy's names for them (what Istio users' Zipkin/Jaeger views show). */
typedef struct tag {
    const char *key;
    const char *value;
} tag_t;

static size_t span_tags(const pt_span_t *s, tag_t *t, char *scratch, size_t scratch_size)
{
    size_t n = 0;
    t[n++] = (tag_t){"component", "proxy"};
    if (s->method[0])
        t[n++] = (tag_t){"http.method", s->method};
    if (s->path[0]) {
        snprintf(scratch, scratch_size, "http://%s%s", s->authority, s->path);
        t[n++] = (tag_t){"http.url", scratch};
    }
    if (s->protocol[0])
        t[n++] = (tag_t){"http.protocol", s->protocol};
    if (s->user_agent[0])
        t[n++] = (tag_t){"user_agent", s->user_agent};
    if (s->peer_address[0])
        t[n++] = (tag_t){"peer.address", s->peer_address};
    if (s->request_id[0])
        t[n++] = (tag_t){"guid:x-request-id", s->request_id};
    if (s->route[0])
        t[n++] = (tag_t){"route_name", s->route};
    if (s->cluster[0])
        t[n++] = (tag_t){"upstream_cluster", s->cluster};
    if (s->upstream_address[0])
        t[n++] = (tag_t){"upstream_address", s->upstream_address};
    t[n++] = (tag_t){"response_flags", s->flags[0] ? s->flags : "-"};
    return n;
}

#define MAX_TAGS 16

static const char *span_name(const pt_span_t *s, char *out, size_t size)
{
    /* Istio's default operation name: the authority, then a slash and a star. */
    snprintf(out, size, "%s/*", s->authority[0] ? s->authority : "-");
    return out;
}

static void put_otlp_str_attr(pt_trace_buf_t *b, const char *key, const char *value, bool comma)
{
    put(b, comma ? ",{\"key\":" : "{\"key\":");
    put_str(b, key);
    put(b, ",\"value\":{\"stringValue\":");
    put_str(b, value);
    put(b, "}}");
}

/* OTLP JSON (opentelemetry-proto's JSON mapping): ids as hex strings, 64-bit integers as decimal
 * strings, enums as numbers, camelCase field names. */
void pt_trace_encode_otlp(pt_trace_buf_t *out, const pt_span_t *spans, size_t n,
                          const char *service_name)
{
    char name[160], scratch[512];
    tag_t tags[MAX_TAGS];
    put(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    put_otlp_str_attr(out, "service.name", service_name, false);
    put_otlp_str_attr(out, "telemetry.sdk.name", "petrel", true);
    put_otlp_str_attr(out, "telemetry.sdk.language", "c", true);
    put_otlp_str_attr(out, "telemetry.sdk.version", PT_VERSION, true);
    put(out, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"petrel\",\"version\":\"" PT_VERSION
             "\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        const pt_span_t *s = &spans[i];
        put(out, i ? ",{\"traceId\":" : "{\"traceId\":");
        put_hex(out, s->trace_id, 16);
        put(out, ",\"spanId\":");
        put_hex(out, s->span_id, 8);
        if (s->has_parent) {
            put(out, ",\"parentSpanId\":");
            put_hex(out, s->parent_span_id, 8);
        }
        if (s->tracestate[0]) {
            put(out, ",\"traceState\":");
            put_str(out, s->tracestate);
        }
        put(out, ",\"name\":");
        put_str(out, span_name(s, name, sizeof(name)));
        /* SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3 */
        putf(out,
             ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRIu64 "000\",\"endTimeUnixNano\":\"%" PRIu64
             "000\",\"attributes\":[",
             s->is_client ? 3 : 2, s->start_us, s->end_us);
        size_t nt = span_tags(s, tags, scratch, sizeof(scratch));
        for (size_t k = 0; k < nt; k++)
            put_otlp_str_attr(out, tags[k].key, tags[k].value, k > 0);
        if (s->status > 0)
            putf(out, ",{\"key\":\"http.status_code\",\"value\":{\"intValue\":\"%d\"}}", s->status);
        put(out, "]");
        if (s->events.n > 0) {
            put(out, ",\"events\":[");
            for (unsigned k = 0; k < s->events.n; k++) {
                const pt_trace_event_t *e = &s->events.ev[k];
                putf(out,
                     "%s{\"timeUnixNano\":\"%" PRIu64 "000\",\"name\":\"%s\",\"attributes\":[{"
                     "\"key\":\"%s\",\"value\":{\"intValue\":\"%" PRId64 "\"}}]}",
                     k ? "," : "", e->time_us, event_name(e->kind), event_attribute(e->kind),
                     e->value);
            }
            put(out, "]");
        }
        /* STATUS_CODE_ERROR = 2 for a 5xx or no response, as Envoy marks error=true */
        if (s->status >= 500 || s->status == 0)
            put(out, ",\"status\":{\"code\":2}");
        put(out, "}");
    }
    put(out, "]}]}]}");
}

/* Zipkin v2 JSON (zipkin2-api.yaml): ids as lower-hex, times in microseconds as numbers. */
void pt_trace_encode_zipkin(pt_trace_buf_t *out, const pt_span_t *spans, size_t n,
                            const char *service_name)
{
    char name[160], scratch[512];
    tag_t tags[MAX_TAGS];
    put(out, "[");
    for (size_t i = 0; i < n; i++) {
        const pt_span_t *s = &spans[i];
        put(out, i ? ",{\"traceId\":" : "{\"traceId\":");
        if (s->is_64bit_trace)
            put_hex(out, s->trace_id + 8, 8);
        else
            put_hex(out, s->trace_id, 16);
        put(out, ",\"id\":");
        put_hex(out, s->span_id, 8);
        if (s->has_parent) {
            put(out, ",\"parentId\":");
            put_hex(out, s->parent_span_id, 8);
        }
        put(out, ",\"name\":");
        put_str(out, span_name(s, name, sizeof(name)));
        uint64_t duration = s->end_us > s->start_us ? s->end_us - s->start_us : 1;
        putf(out, ",\"kind\":\"%s\",\"timestamp\":%" PRIu64 ",\"duration\":%" PRIu64,
             s->is_client ? "CLIENT" : "SERVER", s->start_us, duration);
        put(out, ",\"localEndpoint\":{\"serviceName\":");
        put_str(out, service_name);
        put(out, "}");
        if (s->peer_address[0]) {
            bool v6 = strchr(s->peer_address, ':') != NULL;
            put(out, v6 ? ",\"remoteEndpoint\":{\"ipv6\":" : ",\"remoteEndpoint\":{\"ipv4\":");
            put_str(out, s->peer_address);
            put(out, "}");
        }
        if (s->events.n > 0) {
            put(out, ",\"annotations\":[");
            for (unsigned k = 0; k < s->events.n; k++) {
                const pt_trace_event_t *e = &s->events.ev[k];
                putf(out, "%s{\"timestamp\":%" PRIu64 ",\"value\":\"%s %s=%" PRId64 "\"}",
                     k ? "," : "", e->time_us, event_name(e->kind), event_attribute(e->kind),
                     e->value);
            }
            put(out, "]");
        }
        put(out, ",\"tags\":{");
        size_t nt = span_tags(s, tags, scratch, sizeof(scratch));
        for (size_t k = 0; k < nt; k++) {
            if (k)
                put(out, ",");
            put_str(out, tags[k].key);
            put(out, ":");
            put_str(out, tags[k].value);
        }
        if (s->status > 0)
            putf(out, ",\"http.status_code\":\"%d\"", s->status);
        if (s->status >= 500 || s->status == 0)
            put(out, ",\"error\":\"true\"");
        put(out, "}}");
    }
    put(out, "]");
}

/* --- the exporter --- */

typedef struct collector {
    pt_trace_exporter_t *exporter;
    const char *kind; /* "otlp" or "zipkin", for logs */
    const pt_trace_collector_t *config;
    bool is_zipkin;
    bool is_busy;    /* a request is in flight, or its handles are closing */
    bool succeeded;  /* the collector answered 2xx */
    bool is_failing; /* the last request failed: logged once, until one succeeds */
    int handles_open;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer; /* exportTimeout of the request */
    char head[256];
    pt_trace_buf_t body;
    char response[128]; /* the status line is all Petrel reads */
    size_t response_len;
    uint32_t *counts; /* spans of the batch in flight, per worker ring */
} collector_t;

struct pt_trace_exporter {
    uv_loop_t *loop;
    pt_worker_t *workers;
    pt_trace_ring_t *rings;
    size_t n_rings;
    size_t next_ring;               /* drained first next time, so no ring starves */
    pt_tracing_settings_t settings; /* strings copied: a reload frees the snapshot's */
    const char *service_name;
    collector_t collectors[2];
    size_t n_collectors;
    pt_span_t *batch;
    uint32_t *batch_counts;
    uint32_t wake_at; /* spans in one ring that wake the exporter: a batch, or half a ring */
    uv_async_t wakeup;
    uv_timer_t flush_timer;
    uv_timer_t stop_deadline; /* bounds the last flush */
    bool is_stopping;
    int handles_open; /* wakeup, flush_timer, stop_deadline */
};

static void count(pt_trace_exporter_t *e, const uint32_t *counts, pt_stat_t k)
{
    /* The exporter is the only writer of these counters (see trace_export.h). */
    for (size_t i = 0; i < e->n_rings; i++)
        if (counts[i] != 0)
            pt_stats_add(&e->workers[i].stats, k, counts[i]);
}

static size_t ring_pending(const pt_trace_ring_t *r)
{
    return (size_t)(atomic_load_explicit(&r->head, memory_order_acquire) -
                    atomic_load_explicit(&r->tail, memory_order_relaxed));
}

static size_t pending(const pt_trace_exporter_t *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_rings; i++)
        n += ring_pending(&e->rings[i]);
    return n;
}

/* Moves up to batch_size spans from the rings into e->batch, the rings taken in turn. */
static size_t drain(pt_trace_exporter_t *e)
{
    size_t n = 0, max = e->settings.batch_size;
    memset(e->batch_counts, 0, e->n_rings * sizeof(uint32_t));
    for (size_t k = 0; k < e->n_rings && n < max; k++) {
        size_t i = (e->next_ring + k) % e->n_rings;
        pt_trace_ring_t *r = &e->rings[i];
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        while (tail != head && n < max) {
            e->batch[n++] = r->slots[tail & r->mask];
            e->batch_counts[i]++;
            tail++;
        }
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        atomic_store_explicit(&r->woken, false, memory_order_relaxed);
    }
    e->next_ring = (e->next_ring + 1) % e->n_rings;
    return n;
}

static void flush(pt_trace_exporter_t *e);
static void maybe_finish_stop(pt_trace_exporter_t *e);

static void on_collector_handle_closed(uv_handle_t *h)
{
    collector_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    c->is_busy = false;
    pt_trace_exporter_t *e = c->exporter;
    if (e->is_stopping)
        maybe_finish_stop(e);
    else if (pending(e) >= e->wake_at)
        flush(e); /* a backlog: the next batch goes now, not at the next tick */
}

/* Ends the request in flight: counts its spans and closes its handles. */
static void finish_request(collector_t *c, const char *why)
{
    if (c->handles_open == 0 || uv_is_closing((uv_handle_t *)&c->timer))
        return;
    pt_trace_exporter_t *e = c->exporter;
    if (c->succeeded) {
        count(e, c->counts, PT_STAT_trace_spans_exported);
        if (c->is_failing)
            pt_log_info("trace export to %s collector %s works again", c->kind, c->config->address);
        c->is_failing = false;
    } else {
        count(e, c->counts, PT_STAT_trace_spans_export_failed);
        /* One warning when exports start failing, not one per batch. */
        if (!c->is_failing)
            pt_log_warn("trace export to %s collector %s failed (%s); spans are counted in "
                        "trace_spans_export_failed until it works again",
                        c->kind, c->config->address, why);
        c->is_failing = true;
    }
    uv_close((uv_handle_t *)&c->timer, on_collector_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_collector_handle_closed);
}

static void on_request_timeout(uv_timer_t *t)
{
    finish_request(t->data, "timed out");
}

static void alloc_response(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    collector_t *c = h->data;
    size_t room = sizeof(c->response) - 1 - c->response_len;
    *buf = uv_buf_init(c->response + c->response_len, (unsigned)room);
}

static void on_response(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    collector_t *c = s->data;
    if (nread < 0) {
        finish_request(c,
                       nread == UV_EOF ? "closed before a status line" : uv_strerror((int)nread));
        return;
    }
    c->response_len += (size_t)nread;
    c->response[c->response_len] = '\0';
    char *eol = strstr(c->response, "\r\n");
    if (eol == NULL && c->response_len < sizeof(c->response) - 1)
        return;
    /* "HTTP/1.1 200 OK": a 2xx means the batch was accepted. */
    c->succeeded =
        strncmp(c->response, "HTTP/1.", 7) == 0 && c->response_len >= 12 && c->response[9] == '2';
    finish_request(c, c->response);
}

static void on_written(uv_write_t *w, int status)
{
    collector_t *c = w->data;
    if (status < 0) {
        finish_request(c, uv_strerror(status));
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_response, on_response);
}

static void on_connected(uv_connect_t *req, int status)
{
    collector_t *c = req->data;
    if (status < 0) {
        finish_request(c, uv_strerror(status));
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)strlen(c->head)),
                        uv_buf_init(c->body.data, (unsigned)c->body.len)};
    c->write.data = c;
    int err = uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, 2, on_written);
    if (err < 0)
        finish_request(c, uv_strerror(err));
}

/* Sends e->batch[0..n) to c: one connection per request (Connection: close), so a collector
 * that misbehaves leaves nothing behind. */
static void send_batch(collector_t *c, size_t n)
{
    pt_trace_exporter_t *e = c->exporter;
    c->body.len = 0;
    if (c->is_zipkin)
        pt_trace_encode_zipkin(&c->body, e->batch, n, e->service_name);
    else
        pt_trace_encode_otlp(&c->body, e->batch, n, e->service_name);
    snprintf(c->head, sizeof(c->head),
             "POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
             "content-length: %zu\r\nconnection: close\r\nuser-agent: petrel/" PT_VERSION
             "\r\n\r\n",
             c->config->path, c->config->address, c->body.len);
    memcpy(c->counts, e->batch_counts, e->n_rings * sizeof(uint32_t));
    c->is_busy = true;
    c->succeeded = false;
    c->response_len = 0;
    c->handles_open = 2;
    uv_tcp_init(e->loop, &c->tcp);
    uv_timer_init(e->loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect.data = c;
    uv_timer_start(&c->timer, on_request_timeout, e->settings.export_timeout_ms, 0);
    int err = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&c->config->addr,
                             on_connected);
    if (err < 0)
        finish_request(c, uv_strerror(err));
}

/* One batch to every collector, when none is still busy with the previous one: while one is,
 * spans wait in the rings (and a full ring drops). */
static void flush(pt_trace_exporter_t *e)
{
    for (size_t i = 0; i < e->n_collectors; i++)
        if (e->collectors[i].is_busy)
            return;
    size_t n = drain(e);
    if (n == 0)
        return;
    for (size_t i = 0; i < e->n_collectors; i++)
        send_batch(&e->collectors[i], n);
}

static void on_flush_timer(uv_timer_t *t)
{
    flush(t->data);
}

static void on_wakeup(uv_async_t *a)
{
    flush(a->data);
}

pt_trace_exporter_t *pt_trace_exporter_new(const pt_proxy_settings_t *ps, size_t n_workers)
{
    const pt_tracing_settings_t *t = &ps->tracing;
    if (!t->enabled || (t->otlp.address == NULL && t->zipkin.address == NULL) || n_workers == 0)
        return NULL;
    pt_trace_exporter_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        abort();
    e->settings = *t;
    e->service_name = strdup(t->service_name     ? t->service_name
                             : ps->workload.name ? ps->workload.name
                                                 : "petrel");
    pt_trace_collector_t *own[2] = {&e->settings.otlp, &e->settings.zipkin};
    for (int k = 0; k < 2; k++) {
        if (own[k]->address != NULL) {
            own[k]->address = strdup(own[k]->address);
            own[k]->path = strdup(own[k]->path);
        }
    }
    e->n_rings = n_workers;
    e->rings = calloc(n_workers, sizeof(pt_trace_ring_t));
    uint32_t cap = 1;
    while (cap < t->max_queue)
        cap <<= 1;
    for (size_t i = 0; i < n_workers; i++) {
        e->rings[i].slots = calloc(cap, sizeof(pt_span_t)); /* pages are touched only when used */
        e->rings[i].mask = cap - 1;
        if (e->rings[i].slots == NULL)
            abort();
    }
    e->wake_at = t->batch_size < cap / 2 ? t->batch_size : (cap / 2 ? cap / 2 : 1);
    e->batch = calloc(t->batch_size, sizeof(pt_span_t));
    e->batch_counts = calloc(n_workers, sizeof(uint32_t));
    const pt_trace_collector_t *cfg[2] = {&e->settings.otlp, &e->settings.zipkin};
    for (int k = 0; k < 2; k++) {
        if (cfg[k]->address == NULL)
            continue;
        collector_t *c = &e->collectors[e->n_collectors++];
        c->exporter = e;
        c->config = cfg[k];
        c->is_zipkin = k == 1;
        c->kind = k == 1 ? "zipkin" : "otlp";
        c->counts = calloc(n_workers, sizeof(uint32_t));
    }
    if (e->rings == NULL || e->batch == NULL || e->batch_counts == NULL)
        abort();
    return e;
}

void pt_trace_exporter_start(pt_trace_exporter_t *e, uv_loop_t *loop, pt_worker_t *workers)
{
    e->loop = loop;
    e->workers = workers;
    uv_async_init(loop, &e->wakeup, on_wakeup);
    uv_timer_init(loop, &e->flush_timer);
    uv_timer_init(loop, &e->stop_deadline);
    e->wakeup.data = e->flush_timer.data = e->stop_deadline.data = e;
    e->handles_open = 3;
    uv_timer_start(&e->flush_timer, on_flush_timer, e->settings.flush_interval_ms,
                   e->settings.flush_interval_ms);
    for (size_t i = 0; i < e->n_collectors; i++)
        pt_log_info("tracing: exporting spans to %s collector http://%s%s", e->collectors[i].kind,
                    e->collectors[i].config->address, e->collectors[i].config->path);
}

static void free_exporter(pt_trace_exporter_t *e)
{
    for (size_t i = 0; i < e->n_rings; i++)
        free(e->rings[i].slots);
    for (size_t i = 0; i < e->n_collectors; i++) {
        free(e->collectors[i].counts);
        free(e->collectors[i].body.data);
    }
    pt_trace_collector_t *own[2] = {&e->settings.otlp, &e->settings.zipkin};
    for (int k = 0; k < 2; k++) {
        if (own[k]->address != NULL) { /* copied by pt_trace_exporter_new */
            free((char *)own[k]->address);
            free((char *)own[k]->path);
        }
    }
    free((char *)e->service_name);
    free(e->rings);
    free(e->batch);
    free(e->batch_counts);
    free(e);
}

static void on_exporter_handle_closed(uv_handle_t *h)
{
    pt_trace_exporter_t *e = h->data;
    if (--e->handles_open == 0)
        free_exporter(e);
}

static void on_stop_deadline(uv_timer_t *t)
{
    pt_trace_exporter_t *e = t->data;
    for (size_t i = 0; i < e->n_collectors; i++)
        finish_request(&e->collectors[i], "exit deadline");
    /* What is still queued is lost: counted as failed exports. */
    while (pending(e) > 0) {
        drain(e);
        count(e, e->batch_counts, PT_STAT_trace_spans_export_failed);
    }
    maybe_finish_stop(e);
}

/* During the last flush: the next batch once every collector is free, until the rings are
 * empty; then the exporter closes. */
static void maybe_finish_stop(pt_trace_exporter_t *e)
{
    for (size_t i = 0; i < e->n_collectors; i++)
        if (e->collectors[i].is_busy)
            return;
    if (pending(e) > 0 && !uv_is_closing((uv_handle_t *)&e->stop_deadline) &&
        uv_is_active((uv_handle_t *)&e->stop_deadline)) {
        flush(e);
        return;
    }
    if (uv_is_closing((uv_handle_t *)&e->flush_timer))
        return;
    uv_close((uv_handle_t *)&e->wakeup, on_exporter_handle_closed);
    uv_close((uv_handle_t *)&e->flush_timer, on_exporter_handle_closed);
    uv_close((uv_handle_t *)&e->stop_deadline, on_exporter_handle_closed);
}

void pt_trace_exporter_stop(pt_trace_exporter_t *e)
{
    if (e == NULL || e->is_stopping)
        return;
    e->is_stopping = true;
    pt_trace_exporter_current = NULL; /* the workers have stopped */
    uv_timer_stop(&e->flush_timer);
    uv_timer_start(&e->stop_deadline, on_stop_deadline, e->settings.export_timeout_ms, 0);
    maybe_finish_stop(e);
}

const char *pt_trace_restart_only_change(const pt_tracing_settings_t *a,
                                         const pt_tracing_settings_t *b)
{
    const pt_trace_collector_t *ca[2] = {&a->otlp, &a->zipkin}, *cb[2] = {&b->otlp, &b->zipkin};
    if (a->enabled != b->enabled)
        return "spec.tracing";
    for (int k = 0; k < 2; k++) {
        if ((ca[k]->address == NULL) != (cb[k]->address == NULL) ||
            (ca[k]->address != NULL && (strcmp(ca[k]->address, cb[k]->address) != 0 ||
                                        strcmp(ca[k]->path, cb[k]->path) != 0)))
            return k == 0 ? "spec.tracing.otlp" : "spec.tracing.zipkin";
    }
    if (a->max_queue != b->max_queue || a->batch_size != b->batch_size ||
        a->flush_interval_ms != b->flush_interval_ms ||
        a->export_timeout_ms != b->export_timeout_ms)
        return "spec.tracing (queue and batch settings)";
    if ((a->service_name == NULL) != (b->service_name == NULL) ||
        (a->service_name != NULL && strcmp(a->service_name, b->service_name) != 0))
        return "spec.tracing.serviceName";
    return NULL;
}

/* --- the worker side --- */

static uint32_t worker_random(void *w)
{
    return pt_worker_random(w);
}

void pt_trace_stream_start(pt_stream_t *st)
{
    pt_trace_span_t *span = pt_arena_calloc(&st->arena, sizeof(*span));
    pt_trace_parent_t parent;
    pt_trace_extract(st->request->headers, st->request->n_headers, &parent);
    pt_trace_start(&parent, st->config->proxy.tracing.sampling_ppm, worker_random, st->conn->worker,
                   &span->ctx);
    st->trace = span;
}

void pt_trace_stream_event(pt_stream_t *st, pt_trace_event_kind_t kind, int64_t value)
{
    if (st->trace != NULL && st->trace->ctx.sampled)
        pt_trace_add_event(&st->trace->events, kind,
                           st->start_time_us + (uv_hrtime() - st->start_ns) / 1000, value);
}

/* Reserves the next free slot of ring i, or NULL when the ring is full. */
static pt_span_t *ring_reserve(pt_trace_ring_t *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail > r->mask)
        return NULL;
    return &r->slots[head & r->mask];
}

/* Publishes the reserved slot; wakes the exporter once when the ring holds wake_at spans. */
static void ring_commit(pt_trace_exporter_t *e, pt_trace_ring_t *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed) + 1;
    atomic_store_explicit(&r->head, head, memory_order_release);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (head - tail >= e->wake_at && !atomic_load_explicit(&r->woken, memory_order_relaxed) &&
        !atomic_exchange_explicit(&r->woken, true, memory_order_relaxed))
        uv_async_send(&e->wakeup);
}

static pt_str_t request_header(const pt_stream_t *st, const char *name)
{
    const pt_header_t *h = pt_http_msg_find_header(st->request, name);
    return h != NULL ? h->value : (pt_str_t){NULL, 0};
}

void pt_trace_finish_stream(pt_stream_t *st)
{
    pt_trace_exporter_t *e = pt_trace_exporter_current;
    pt_worker_t *w = st->conn->worker;
    if (st->trace == NULL || !st->trace->ctx.sampled || e == NULL || w->id >= e->n_rings)
        return;
    pt_trace_ring_t *r = &e->rings[w->id];
    pt_span_t *s = ring_reserve(r);
    if (s == NULL) {
        PT_STAT_INC(&w->stats, trace_spans_dropped);
        return;
    }
    const pt_trace_context_t *c = &st->trace->ctx;
    memcpy(s->trace_id, c->trace_id, 16);
    memcpy(s->span_id, c->span_id, 8);
    memcpy(s->parent_span_id, c->parent_span_id, 8);
    s->has_parent = c->has_parent;
    s->is_64bit_trace = c->is_64bit_trace;
    s->is_client = false; /* gateway listeners: the downstream side is SERVER (see docs) */
    s->status = st->status;
    s->start_us = st->start_time_us;
    s->end_us = st->start_time_us + (uv_hrtime() - st->start_ns) / 1000;
    s->events = st->trace->events;
    const pt_http_msg_t *h = st->request;
    PT_SPAN_SET(s, method, h->method);
    PT_SPAN_SET(s, path, h->path);
    PT_SPAN_SET(s, authority, h->authority);
    PT_SPAN_SET(s, protocol, pt_http_msg_protocol(h));
    PT_SPAN_SET(s, user_agent, request_header(st, "user-agent"));
    PT_SPAN_SET(s, peer_address, pt_str(st->conn->peer_ip));
    PT_SPAN_SET(s, request_id, pt_str(st->request_id));
    PT_SPAN_SET(s, route, pt_str(st->route ? st->route->name : NULL));
    PT_SPAN_SET(s, cluster, pt_str(st->cluster ? st->cluster->name : NULL));
    PT_SPAN_SET(s, upstream_address, pt_str(st->upstream_host));
    PT_SPAN_SET(s, flags, pt_str(pt_flag_name(st->flag)));
    /* A cut tracestate would be an invalid one: one too long for the slot is left out. */
    pt_str_t state = c->tracestate;
    if (state.len >= sizeof(s->tracestate))
        state.len = 0;
    PT_SPAN_SET(s, tracestate, state);
    ring_commit(e, r);
}
