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

/* A line is written straight into the lane's buffer, without a bounds check per field: its
 * longest possible length is known first, the fixed text with every number at its longest
 * (PT_ACCESS_LOG_FIXED_MAX) plus each value at its longest (JSON writes a byte as at most
 * six). A line that could outgrow an empty buffer has its values cut to an equal share of it
 * first (values of kilobytes: a very long path or user agent). */
#define JSON_BYTES_PER_BYTE 6 /* "\u001f" */

enum {
    V_METHOD,
    V_PATH,
    V_PROTOCOL,
    V_FLAGS,
    V_DETAILS,
    V_XFF,
    V_USER_AGENT,
    V_REQUEST_ID,
    V_AUTHORITY,
    V_UPSTREAM_HOST,
    V_CLUSTER,
    V_ROUTE,
    V_PRINCIPAL,
    N_VALUES
};

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* The start time as "2026-12-07T15:23:47.123Z". */
static char *put_time(pt_access_log_t *log, char *p, uint64_t time_us)
{
    uint64_t secs = time_us / 1000000u;
    if (secs != log->date_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        log->date_len = (size_t)snprintf(
            log->date, sizeof(log->date), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        log->date_secs = secs;
    }
    unsigned ms = (unsigned)(time_us % 1000000u / 1000u);
    p = put(p, log->date, log->date_len);
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    return p;
}

/* The value as text, or "-" when absent. */
static char *put_text(char *p, pt_str_t v)
{
    if (v.base == NULL) {
        *p++ = '-';
        return p;
    }
    return put(p, v.base, v.len);
}

/* The value as a quoted, escaped JSON string, or null when absent. */
static char *put_json(char *p, pt_str_t v)
{
    if (v.base == NULL)
        return PUT_LIT(p, "null");
    *p++ = '"';
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            p = PUT_LIT(p, "\\u00");
            *p++ = "0123456789abcdef"[c >> 4];
            *p++ = "0123456789abcdef"[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    return p;
}

static char *put_u64(char *p, uint64_t v)
{
    return p + pt_put_u64(p, v);
}

static char *put_int(char *p, int v)
{
    return p + pt_put_i64(p, v);
}

static char *write_json(pt_access_log_t *log, char *p, const pt_access_log_entry_t *e,
                        const pt_str_t *v)
{
    p = PUT_LIT(p, "{\"start_time\":\"");
    p = put_time(log, p, e->start_time_us);
    p = PUT_LIT(p, "\",\"method\":");
    p = put_json(p, v[V_METHOD]);
    p = PUT_LIT(p, ",\"path\":");
    p = put_json(p, v[V_PATH]);
    p = PUT_LIT(p, ",\"protocol\":");
    p = put_json(p, v[V_PROTOCOL]);
    p = PUT_LIT(p, ",\"response_code\":");
    p = put_int(p, e->status);
    p = PUT_LIT(p, ",\"response_flags\":");
    p = put_json(p, v[V_FLAGS]);
    p = PUT_LIT(p, ",\"response_code_details\":");
    p = put_json(p, v[V_DETAILS]);
    p = PUT_LIT(p, ",\"bytes_received\":");
    p = put_u64(p, e->bytes_received);
    p = PUT_LIT(p, ",\"bytes_sent\":");
    p = put_u64(p, e->bytes_sent);
    p = PUT_LIT(p, ",\"duration\":");
    p = put_u64(p, e->duration_ms);
    p = PUT_LIT(p, ",\"upstream_service_time\":");
    p = e->upstream_ms == UINT64_MAX ? PUT_LIT(p, "null") : put_u64(p, e->upstream_ms);
    p = PUT_LIT(p, ",\"x_forwarded_for\":");
    p = put_json(p, v[V_XFF]);
    p = PUT_LIT(p, ",\"user_agent\":");
    p = put_json(p, v[V_USER_AGENT]);
    p = PUT_LIT(p, ",\"request_id\":");
    p = put_json(p, v[V_REQUEST_ID]);
    p = PUT_LIT(p, ",\"authority\":");
    p = put_json(p, v[V_AUTHORITY]);
    p = PUT_LIT(p, ",\"upstream_host\":");
    p = put_json(p, v[V_UPSTREAM_HOST]);
    p = PUT_LIT(p, ",\"upstream_cluster\":");
    p = put_json(p, v[V_CLUSTER]);
    p = PUT_LIT(p, ",\"route_name\":");
    p = put_json(p, v[V_ROUTE]);
    p = PUT_LIT(p, ",\"upstream_request_attempt_count\":");
    p = put_int(p, e->attempts);
    if (e->has_grpc_status) {
        p = PUT_LIT(p, ",\"grpc_status\":");
        p = put_int(p, e->grpc_status);
    }
    if (v[V_PRINCIPAL].base != NULL) { /* Envoy's DOWNSTREAM_PEER_URI_SAN, Istio's form */
        p = PUT_LIT(p, ",\"downstream_peer_principal\":");
        p = put_json(p, v[V_PRINCIPAL]);
    }
    *p++ = '}';
    return p;
}

/* Envoy's default with Istio's additions (access_log.h): [START_TIME] "METHOD PATH PROTOCOL"
 * CODE FLAGS DETAILS RX TX DURATION UPSTREAM_TIME "XFF" "UA" "REQUEST_ID" "AUTHORITY"
 * "UPSTREAM_HOST" UPSTREAM_CLUSTER ROUTE_NAME */
static char *write_text(pt_access_log_t *log, char *p, const pt_access_log_entry_t *e,
                        const pt_str_t *v)
{
    *p++ = '[';
    p = put_time(log, p, e->start_time_us);
    p = PUT_LIT(p, "] \"");
    p = put_text(p, v[V_METHOD]);
    *p++ = ' ';
    p = put_text(p, v[V_PATH]);
    *p++ = ' ';
    p = put_text(p, v[V_PROTOCOL]);
    p = PUT_LIT(p, "\" ");
    p = put_int(p, e->status);
    *p++ = ' ';
    p = put_text(p, v[V_FLAGS]);
    *p++ = ' ';
    p = put_text(p, v[V_DETAILS]);
    *p++ = ' ';
    p = put_u64(p, e->bytes_received);
    *p++ = ' ';
    p = put_u64(p, e->bytes_sent);
    *p++ = ' ';
    p = put_u64(p, e->duration_ms);
    *p++ = ' ';
    p = e->upstream_ms == UINT64_MAX ? PUT_LIT(p, "-") : put_u64(p, e->upstream_ms);
    static const int quoted[] = {V_XFF, V_USER_AGENT, V_REQUEST_ID, V_AUTHORITY, V_UPSTREAM_HOST};
    for (size_t i = 0; i < sizeof(quoted) / sizeof(quoted[0]); i++) {
        p = PUT_LIT(p, " \"");
        p = put_text(p, v[quoted[i]]);
        *p++ = '"';
    }
    *p++ = ' ';
    p = put_text(p, v[V_CLUSTER]);
    *p++ = ' ';
    return put_text(p, v[V_ROUTE]);
}

void pt_access_log_write(pt_access_log_t *log, const pt_access_log_entry_t *e, bool is_json)
{
    if (log->lane == NULL)
        return;
    pt_str_t v[N_VALUES] = {
        [V_METHOD] = e->method,
        [V_PATH] = e->path,
        [V_PROTOCOL] = e->protocol,
        [V_FLAGS] = pt_str(e->flags),
        [V_DETAILS] = pt_str(e->details),
        [V_XFF] = e->x_forwarded_for,
        [V_USER_AGENT] = e->user_agent,
        [V_REQUEST_ID] = e->request_id,
        [V_AUTHORITY] = e->authority,
        [V_UPSTREAM_HOST] = e->upstream_host,
        [V_CLUSTER] = pt_str(e->upstream_cluster),
        [V_ROUTE] = pt_str(e->route_name),
        [V_PRINCIPAL] = pt_str(e->peer_principal),
    };
    size_t per_byte = is_json ? JSON_BYTES_PER_BYTE : 1, sum = 0;
    for (size_t i = 0; i < N_VALUES; i++)
        sum += v[i].len;
    if (sum > (PT_LOG_BUF_BYTES - PT_ACCESS_LOG_FIXED_MAX) / per_byte) {
        size_t share = (PT_LOG_BUF_BYTES - PT_ACCESS_LOG_FIXED_MAX) / per_byte / N_VALUES;
        sum = 0;
        for (size_t i = 0; i < N_VALUES; i++) {
            if (v[i].len > share)
                v[i].len = share;
            sum += v[i].len;
        }
    }
    size_t longest = PT_ACCESS_LOG_FIXED_MAX + sum * per_byte;
    pt_log_buf_t *b = pt_log_lane_buffer(log->lane);
    if (b != NULL && sizeof(b->data) - b->len < longest) {
        pt_access_log_flush(log);
        b = pt_log_lane_buffer(log->lane);
    }
    if (b == NULL) { /* the writer still holds the buffer the line would go to */
        PT_STAT_INC(log->stats, access_log_dropped);
        return;
    }
    char *start = b->data + b->len;
    char *p = is_json ? write_json(log, start, e, v) : write_text(log, start, e, v);
    *p++ = '\n';
    if (b->len == 0)
        uv_timer_start(&log->timer, on_flush_timer, PT_ACCESS_LOG_FLUSH_MS, 0);
    b->len += (size_t)(p - start);
}
