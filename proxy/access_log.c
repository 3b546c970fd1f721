/* proxy/access_log.c
 * Formats access-log lines into the worker's lane; proxy/log_writer.c writes them. */
#include "access_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void on_flush_timer(uv_timer_t *t)
{
    pt_access_log_flush(t->data);
}

void pt_access_log_init(pt_access_log_t *log, uv_loop_t *loop, pt_log_writer_t *writer,
                        pt_stats_t *stats)
{
    log->lane = writer != NULL ? pt_log_writer_lane(writer) : NULL;
    log->stats = stats;
    log->date_secs = UINT64_MAX;
    uv_timer_init(loop, &log->timer);
    log->timer.data = log;
    uv_unref((uv_handle_t *)&log->timer);
}

void pt_access_log_flush(pt_access_log_t *log)
{
    if (log->lane != NULL)
        pt_log_lane_hand_off(log->lane);
    uv_timer_stop(&log->timer);
}

/* Appends one line (the caller includes the '\n'), or drops it when the writer still holds the
 * buffer it would go to. */
static void append(pt_access_log_t *log, const char *line, size_t len)
{
    pt_log_buf_t *b = pt_log_lane_buffer(log->lane);
    if (b != NULL && b->len + len > sizeof(b->data)) {
        pt_access_log_flush(log);
        b = pt_log_lane_buffer(log->lane);
    }
    if (b == NULL) {
        PT_STAT_INC(log->stats, access_log_dropped);
        return;
    }
    if (len > sizeof(b->data))
        len = sizeof(b->data);
    memcpy(b->data + b->len, line, len);
    if (b->len == 0)
        uv_timer_start(&log->timer, on_flush_timer, PT_ACCESS_LOG_FLUSH_MS, 0);
    b->len += len;
}

void pt_access_log_close(pt_access_log_t *log)
{
    pt_access_log_flush(log);
    uv_close((uv_handle_t *)&log->timer, NULL);
}

/* Copies s (when present) to *p, advancing it; returns the copy. */
static pt_str_t copy_str(char **p, pt_str_t s)
{
    if (s.base == NULL)
        return s;
    memcpy(*p, s.base, s.len);
    (*p)[s.len] = '\0';
    pt_str_t out = {*p, s.len};
    *p += s.len + 1;
    return out;
}

static const char *copy_cstr(char **p, const char *s)
{
    return copy_str(p, pt_str(s)).base;
}

pt_access_log_entry_t *pt_access_log_entry_copy(const pt_access_log_entry_t *e)
{
    const pt_str_t strs[] = {e->method,
                             e->path,
                             e->protocol,
                             e->x_forwarded_for,
                             e->user_agent,
                             e->request_id,
                             e->authority,
                             e->upstream_host,
                             pt_str(e->flags),
                             pt_str(e->peer_principal),
                             pt_str(e->details),
                             pt_str(e->route_name),
                             pt_str(e->upstream_cluster)};
    size_t size = sizeof(*e);
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        size += strs[i].len + 1;
    pt_access_log_entry_t *c = malloc(size);
    if (c == NULL)
        abort();
    *c = *e;
    char *p = (char *)(c + 1);
    c->method = copy_str(&p, e->method);
    c->path = copy_str(&p, e->path);
    c->protocol = copy_str(&p, e->protocol);
    c->x_forwarded_for = copy_str(&p, e->x_forwarded_for);
    c->user_agent = copy_str(&p, e->user_agent);
    c->request_id = copy_str(&p, e->request_id);
    c->authority = copy_str(&p, e->authority);
    c->upstream_host = copy_str(&p, e->upstream_host);
    c->flags = copy_cstr(&p, e->flags);
    c->peer_principal = copy_cstr(&p, e->peer_principal);
    c->details = copy_cstr(&p, e->details);
    c->route_name = copy_cstr(&p, e->route_name);
    c->upstream_cluster = copy_cstr(&p, e->upstream_cluster);
    return c;
}

typedef struct line {
    char buf[4096];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    if (n > sizeof(l->buf) - 2 - l->len)
        n = sizeof(l->buf) - 2 - l->len; /* an over-long line is cut, never split */
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_lit(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_u64(line_t *l, uint64_t v)
{
    char tmp[20];
    put(l, tmp, pt_put_u64(tmp, v));
}

static void put_int(line_t *l, int v)
{
    char tmp[21];
    put(l, tmp, pt_put_i64(tmp, v));
}

/* Appends the start time as "2026-12-07T15:23:47.123Z". */
static void put_time(pt_access_log_t *log, line_t *l, uint64_t time_us)
{
    uint64_t secs = time_us / 1000000u;
    if (secs != log->date_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(log->date, sizeof(log->date), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        log->date_secs = secs;
    }
    unsigned ms = (unsigned)(time_us % 1000000u / 1000u);
    char frac[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                    'Z'};
    put_lit(l, log->date);
    put(l, frac, sizeof(frac));
}

/* text: the value or "-"; JSON: a quoted, escaped string or null. */
static void put_value(line_t *l, pt_str_t v, bool is_json)
{
    if (v.base == NULL) {
        put(l, is_json ? "null" : "-", is_json ? 4 : 1);
        return;
    }
    if (!is_json) {
        put(l, v.base, v.len);
        return;
    }
    put(l, "\"", 1);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(l, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {
                '\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
            put(l, esc, sizeof(esc));
        } else {
            put(l, (const char *)&v.base[i], 1);
        }
    }
    put(l, "\"", 1);
}

void pt_access_log_write(pt_access_log_t *log, const pt_access_log_entry_t *e, bool is_json)
{
    if (log->lane == NULL)
        return;
    pt_str_t flags = pt_str(e->flags);
    line_t l;
    l.len = 0;
    if (is_json) {
        put_lit(&l, "{\"start_time\":\"");
        put_time(log, &l, e->start_time_us);
        put_lit(&l, "\",\"method\":");
        put_value(&l, e->method, true);
        put_lit(&l, ",\"path\":");
        put_value(&l, e->path, true);
        put_lit(&l, ",\"protocol\":");
        put_value(&l, e->protocol, true);
        put_lit(&l, ",\"response_code\":");
        put_int(&l, e->status);
        put_lit(&l, ",\"response_flags\":");
        put_value(&l, flags, true);
        put_lit(&l, ",\"response_code_details\":");
        put_value(&l, pt_str(e->details), true);
        put_lit(&l, ",\"bytes_received\":");
        put_u64(&l, e->bytes_received);
        put_lit(&l, ",\"bytes_sent\":");
        put_u64(&l, e->bytes_sent);
        put_lit(&l, ",\"duration\":");
        put_u64(&l, e->duration_ms);
        put_lit(&l, ",\"upstream_service_time\":");
        if (e->upstream_ms == UINT64_MAX)
            put_lit(&l, "null");
        else
            put_u64(&l, e->upstream_ms);
        const struct {
            const char *key; /* with its quotes and colon */
            pt_str_t v;
        } rest[] = {{",\"x_forwarded_for\":", e->x_forwarded_for},
                    {",\"user_agent\":", e->user_agent},
                    {",\"request_id\":", e->request_id},
                    {",\"authority\":", e->authority},
                    {",\"upstream_host\":", e->upstream_host},
                    {",\"upstream_cluster\":", pt_str(e->upstream_cluster)},
                    {",\"route_name\":", pt_str(e->route_name)}};
        for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++) {
            put_lit(&l, rest[i].key);
            put_value(&l, rest[i].v, true);
        }
        put_lit(&l, ",\"upstream_request_attempt_count\":");
        put_int(&l, e->attempts);
        if (e->has_grpc_status) {
            put_lit(&l, ",\"grpc_status\":");
            put_int(&l, e->grpc_status);
        }
        if (e->peer_principal != NULL) { /* Envoy's DOWNSTREAM_PEER_URI_SAN, Istio's form */
            put_lit(&l, ",\"downstream_peer_principal\":");
            put_value(&l, pt_str(e->peer_principal), true);
        }
        put(&l, "}", 1);
    } else {
        /* Envoy's default with Istio's additions (access_log.h): [START_TIME] "METHOD PATH
         * PROTOCOL" CODE FLAGS DETAILS RX TX DURATION UPSTREAM_TIME "XFF" "UA" "REQUEST_ID"
         * "AUTHORITY" "UPSTREAM_HOST" UPSTREAM_CLUSTER ROUTE_NAME */
        put(&l, "[", 1);
        put_time(log, &l, e->start_time_us);
        put(&l, "] \"", 3);
        put_value(&l, e->method, false);
        put(&l, " ", 1);
        put_value(&l, e->path, false);
        put(&l, " ", 1);
        put_value(&l, e->protocol, false);
        put(&l, "\" ", 2);
        put_int(&l, e->status);
        put(&l, " ", 1);
        put_value(&l, flags, false);
        put(&l, " ", 1);
        put_value(&l, pt_str(e->details), false);
        put(&l, " ", 1);
        put_u64(&l, e->bytes_received);
        put(&l, " ", 1);
        put_u64(&l, e->bytes_sent);
        put(&l, " ", 1);
        put_u64(&l, e->duration_ms);
        put(&l, " ", 1);
        if (e->upstream_ms == UINT64_MAX)
            put(&l, "-", 1);
        else
            put_u64(&l, e->upstream_ms);
        const pt_str_t quoted[] = {e->x_forwarded_for, e->user_agent, e->request_id, e->authority,
                                   e->upstream_host};
        for (size_t i = 0; i < sizeof(quoted) / sizeof(quoted[0]); i++) {
            put(&l, " \"", 2);
            put_value(&l, quoted[i], false);
            put(&l, "\"", 1);
        }
        put(&l, " ", 1);
        put_value(&l, pt_str(e->upstream_cluster), false);
        put(&l, " ", 1);
        put_value(&l, pt_str(e->route_name), false);
    }
    l.buf[l.len++] = '\n';
    append(log, l.buf, l.len);
}
