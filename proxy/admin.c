/* proxy/admin.c
 * The admin listeners (see admin.h): one request per connection, answered from the main
 * thread's view of the process (the config snapshot in force, the workers' counters read
 * without locks). The process itself (drain, exit) belongs to main.c, reached via on_quit. */
#include "admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/inject.h"
#include "../config/regex.h"
#include "../filters/l4_registry.h"
#include "../tls/tls.h"
#include "http1.h"
#include "log.h"
#include "outlier.h"

typedef struct admin_conn {
    uv_tcp_t tcp;
    pt_admin_role_t role; /* of the listener it came from */
    pt_list_t link;
    pt_admin_t *admin;
    pt_http1_parser_t parser;
    pt_arena_t arena;
    pt_http_msg_t *head;
    pt_app_probe_t *probe; /* an app probe in flight for this request, or NULL */
    bool answered;
    char *body; /* the chaos role's request body (malloc'd), body_len bytes */
    size_t body_len;
    char buf[4096];
} admin_conn_t;

#define ADMIN_BODY_MAX (1024 * 1024)

static void on_conn_close(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    if (c->probe != NULL)
        pt_app_probe_cancel(c->probe);
    pt_list_remove(&c->link);
    pt_arena_dispose(&c->arena);
    free(c->body);
    free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    admin_conn_t *c = req->data;
    free(req);
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

/* Counter k summed over the workers and the main thread. */
static uint64_t stat_sum(const pt_admin_t *a, int k)
{
    uint64_t sum = a->main_stats != NULL
                       ? atomic_load_explicit(&a->main_stats->v[k], memory_order_relaxed)
                       : 0;
    for (size_t i = 0; i < a->n_workers; i++)
        sum += atomic_load_explicit(&a->workers[i].stats.v[k], memory_order_relaxed);
    return sum;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static void respond_typed(admin_conn_t *c, int status, const char *reason, const char *type,
                          const char *body, size_t len)
{
    char head[160];
    /* A 204 has no body and no content-length (RFC 9110, 8.6). */
    int n = status == 204 ? snprintf(head, sizeof(head),
                                     "HTTP/1.1 204 %s\r\nconnection: close\r\n\r\n", reason)
                          : snprintf(head, sizeof(head),
                                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                                     "connection: close\r\n\r\n",
                                     status, reason, type, len);
    /* A HEAD answer has the GET answer's head (content-length included) and no body. */
    if (c->head != NULL && c->head->method_id == HTTP_HEAD)
        len = 0;
    size_t total = (size_t)n + len;
    uv_write_t *req = malloc(sizeof(*req) + total);
    if (req == NULL) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    char *data = (char *)(req + 1);
    memcpy(data, head, (size_t)n);
    memcpy(data + n, body, len);
    uv_buf_t b = uv_buf_init(data, (unsigned)total);
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(req);
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    uv_shutdown_t *sreq = malloc(sizeof(*sreq));
    if (sreq == NULL || uv_shutdown(sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sreq);
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    sreq->data = c;
}

static void respond(admin_conn_t *c, int status, const char *reason, const char *body, size_t len)
{
    respond_typed(c, status, reason, "text/plain", body, len);
}

static const char *workload_label(const pt_workload_t *w, const char *key)
{
    for (size_t i = 0; i < w->n_labels; i++)
        if (strcmp(w->labels[2 * i], key) == 0)
            return w->labels[2 * i + 1];
    return "unknown";
}

/* The retry counters again as one family labelled by reason, for dashboards. */
static size_t format_retries_by_reason(pt_admin_t *a, char *out, size_t cap)
{
    static const struct {
        pt_stat_t stat;
        const char *reason;
    } reasons[] = {
        {PT_STAT_retries_connect_failure, "connect_failure"},
        {PT_STAT_retries_reset, "reset"},
        {PT_STAT_retries_per_try_timeout, "per_try_timeout"},
        {PT_STAT_retries_status, "status"},
    };
    size_t off = (size_t)snprintf(out, cap,
                                  "# HELP petrel_retries_total Retries made, by what ended the "
                                  "attempt before.\n# TYPE petrel_retries_total counter\n");
    for (size_t r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < a->n_workers; i++)
            sum +=
                atomic_load_explicit(&a->workers[i].stats.v[reasons[r].stat], memory_order_relaxed);
        off += (size_t)snprintf(out + off, cap - off,
                                "petrel_retries_total{reason=\"%s\"} %" PRIu64 "\n",
                                reasons[r].reason, sum);
    }
    return off;
}

/* Prometheus text: the istio_* per-request metrics, then Petrel's own counters as petrel_*. */
static void serve_prometheus(admin_conn_t *c, pt_str_t query)
{
    pt_admin_t *a = c->admin;
    const pt_workload_t *wl = &a->config->proxy.workload;
    const pt_identity_settings_t *ident = &a->config->proxy.identity;
    char principal[256] = "unknown"; /* with an identity: Istio's form of its SPIFFE ID */
    if (ident->certificate_chain != NULL && wl->service_account != NULL)
        snprintf(principal, sizeof(principal), "%s/ns/%s/sa/%s", ident->trust_domain,
                 wl->ns ? wl->ns : "default", wl->service_account);
    pt_metrics_identity_t id = {.workload = wl->name ? wl->name : "unknown",
                                .namespace_ = wl->ns ? wl->ns : "unknown",
                                .principal = principal,
                                .app = workload_label(wl, "app"),
                                .version = workload_label(wl, "version")};
    size_t cap = 320 * PT_STAT__COUNT + 2048, off = 0;
    char *extra = malloc(cap);
    pt_metrics_t **m = calloc(a->n_workers + 1, sizeof(*m));
    if (extra == NULL || m == NULL)
        abort();
    for (int k = 0; k < PT_STAT__COUNT; k++) {
        uint64_t sum = stat_sum(a, k);
        /* Prometheus names counters with _total; Petrel's own names mostly lack it. */
        const char *name = pt_stat_names[k];
        size_t nl = strlen(name);
        bool is_counter = strcmp(pt_stat_kinds[k], "counter") == 0;
        const char *suffix =
            is_counter && (nl < 6 || strcmp(name + nl - 6, "_total") != 0) ? "_total" : "";
        off += (size_t)snprintf(
            extra + off, cap - off,
            "# HELP petrel_%s%s %s\n# TYPE petrel_%s%s %s\npetrel_%s%s %" PRIu64 "\n", name, suffix,
            pt_stat_helps[k], name, suffix, pt_stat_kinds[k], name, suffix, sum);
    }
    off += format_retries_by_reason(a, extra + off, cap - off);
    snprintf(extra + off, cap - off,
             "# HELP petrel_config_reloads_accepted_total Config reloads published.\n"
             "# TYPE petrel_config_reloads_accepted_total counter\n"
             "petrel_config_reloads_accepted_total %" PRIu64 "\n"
             "# HELP petrel_config_reloads_refused_total Config reloads refused; the running "
             "config stayed.\n"
             "# TYPE petrel_config_reloads_refused_total counter\n"
             "petrel_config_reloads_refused_total %" PRIu64 "\n",
             a->reloads_accepted, a->reloads_refused);
    if (a->chaos != NULL) {
        size_t extra_len = strlen(extra);
        pt_chaos_store_format_metrics(a->chaos, &extra, &extra_len);
    }
    for (size_t i = 0; i < a->n_workers; i++)
        m[i] = &a->workers[i].metrics;
    size_t len;
    char *body = pt_metrics_format(m, a->n_workers, &id, extra, &len);
    respond_typed(c, 200, "OK", "text/plain; version=0.0.4", body, len);
    free(body);
    free(m);
    free(extra);
}

/* A growing response body. Out of memory aborts, as the arenas do. */
typedef struct body {
    char *data;
    size_t len, cap;
} body_t;

static void body_printf(body_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void body_printf(body_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data != NULL ? b->data + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 256;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            abort();
        b->data = d;
        b->cap = cap;
    }
}

/* s as a JSON string, quotes included; NULL as null. */
static void body_json_str(body_t *b, const char *s)
{
    if (s == NULL) {
        body_printf(b, "null");
        return;
    }
    body_printf(b, "\"");
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            body_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            body_printf(b, "\\u%04x", ch);
        else
            body_printf(b, "%c", ch);
    }
    body_printf(b, "\"");
}

static void respond_body(admin_conn_t *c, const char *type, body_t *b)
{
    respond_typed(c, 200, "OK", type, b->data != NULL ? b->data : "", b->len);
    free(b->data);
}

/* The value of key in a query string ("a=1&b"), percent-decoded into c's arena; NULL when the
 * key is absent, "" for a key without a value. */
static const char *query_param(admin_conn_t *c, pt_str_t query, const char *key)
{
    size_t key_len = strlen(key);
    const char *p = query.base, *end = query.base + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        const char *name_end = eq != NULL ? eq : item_end;
        if ((size_t)(name_end - p) == key_len && memcmp(p, key, key_len) == 0) {
            const char *v = eq != NULL ? eq + 1 : item_end;
            char *out = pt_arena_alloc(&c->arena, (size_t)(item_end - v) + 1);
            size_t n = 0;
            for (; v < item_end; v++) {
                int hi, lo;
                if (*v == '%' && item_end - v >= 3 && (hi = hex_digit(v[1])) >= 0 &&
                    (lo = hex_digit(v[2])) >= 0) {
                    out[n++] = (char)(hi * 16 + lo);
                    v += 2;
                } else {
                    out[n++] = *v == '+' ? ' ' : *v;
                }
            }
            out[n] = '\0';
            return out;
        }
        p = item_end + 1;
    }
    return NULL;
}

/* GET /ready: 200 LIVE, or 503 DRAINING (SIGTERM, /drain, /drain_listeners). */
static void serve_ready(admin_conn_t *c, pt_str_t query)
{
    if (c->admin->is_draining)
        respond(c, 503, "Service Unavailable", "DRAINING\n", 9);
    else
        respond(c, 200, "OK", "LIVE\n", 5);
}

/* GET /healthz/ready, Istio's 15021 probe: an empty 200, or 503 while draining. */
static const char *not_ready(const pt_admin_t *a);

/* GET /healthz/ready: 200 when ready (not_ready), else 503 with the reason. */
static void serve_healthz(admin_conn_t *c, pt_str_t query)
{
    const char *why = not_ready(c->admin);
    if (why != NULL) {
        char body[64];
        int n = snprintf(body, sizeof(body), "%s\n", why);
        respond(c, 503, "Service Unavailable", body, (size_t)n);
    } else {
        respond(c, 200, "OK", "", 0);
    }
}

/* GET /stats: every counter summed over the workers, then the config counters, as Envoy's
 * "name: value" lines, or {"stats":[{"name","value"}]} with format=json. filter=REGEX keeps the
 * stats whose name the regex matches anywhere (Envoy's partial match); usedonly keeps those
 * that are not zero. */
static void serve_stats(admin_conn_t *c, pt_str_t query)
{
    pt_admin_t *a = c->admin;
    const char *filter = query_param(c, query, "filter");
    const char *format = query_param(c, query, "format");
    bool used_only = query_param(c, query, "usedonly") != NULL;
    bool is_json = format != NULL && strcmp(format, "json") == 0;
    if (format != NULL && !is_json && strcmp(format, "text") != 0) {
        static const char msg[] = "unknown format; use format=json or format=text\n";
        respond(c, 400, "Bad Request", msg, sizeof(msg) - 1);
        return;
    }
    pt_regex_t *re = NULL;
    if (filter != NULL) {
        char err[160];
        re = pt_regex_compile(&c->arena, filter, strlen(filter), false, err, sizeof(err));
        if (re == NULL) {
            char msg[256];
            int n = snprintf(msg, sizeof(msg), "invalid regex in filter: %s\n", err);
            respond(c, 400, "Bad Request", msg, (size_t)n);
            return;
        }
    }
    struct {
        const char *name;
        uint64_t value;
    } config_stats[] = {{"config_generation", a->config_generation},
                        {"config_reloads_accepted", a->reloads_accepted},
                        {"config_reloads_refused", a->reloads_refused},
                        {"workers", a->n_workers}};
    size_t n_config = sizeof(config_stats) / sizeof(config_stats[0]);
    body_t b = {0};
    body_printf(&b, "%s", is_json ? "{\"stats\":[" : "");
    bool first = true;
    for (size_t k = 0; k < PT_STAT__COUNT + n_config; k++) {
        bool is_config = k >= PT_STAT__COUNT;
        const char *name = is_config ? config_stats[k - PT_STAT__COUNT].name : pt_stat_names[k];
        uint64_t value = is_config ? config_stats[k - PT_STAT__COUNT].value : stat_sum(a, (int)k);
        if ((used_only && value == 0) || (re != NULL && !pt_regex_match(re, name, strlen(name))))
            continue;
        if (is_json)
            body_printf(&b, "%s{\"name\":\"%s\",\"value\":%" PRIu64 "}", first ? "" : ",", name,
                        value);
        else
            body_printf(&b, "%s: %" PRIu64 "\n", name, value);
        first = false;
    }
    if (is_json)
        body_printf(&b, "]}\n");
    respond_body(c, is_json ? "application/json" : "text/plain", &b);
}

/* GET /config_dump: {"generation": N, "resources": [{"source", "line", "resource"}, ...]} */
static void serve_config_dump(admin_conn_t *c, pt_str_t query)
{
    const pt_config_t *cfg = c->admin->config;
    body_t b = {0};
    body_printf(&b, "{\"generation\":%" PRIu64 ",\"resources\":%.*s}\n", cfg->generation,
                (int)cfg->resources_json_len, cfg->resources_json);
    respond_body(c, "application/json", &b);
}

/* One line per endpoint, in Envoy's /clusters text form:
 *   outbound|80||web.local::127.0.0.1:8080::weight::1
 *   outbound|80||web.local::127.0.0.1:8080::health_flags::healthy
 *   outbound|80||web.local::127.0.0.1:8080::hostname::web.example (resolution DNS)
 * and a cluster without endpoints as "outbound|80||x::no_endpoints". An endpoint that outlier
 * detection has ejected shows "health_flags::/failed_outlier_check", as in Envoy; a cluster
 * with outlier detection adds "...::outlier_ejections::N" per endpoint. */
static void serve_clusters(admin_conn_t *c, pt_str_t query)
{
    const pt_config_t *cfg = c->admin->config;
    body_t b = {0};
    for (size_t i = 0; i < cfg->n_clusters; i++) {
        const pt_cluster_t *cl = cfg->clusters[i];
        if (cl->n_endpoints == 0)
            body_printf(&b, "%s::no_endpoints\n", cl->name);
        for (size_t k = 0; k < cl->n_endpoints; k++) {
            const pt_endpoint_t *ep = &cl->endpoints[k];
            bool ejected;
            uint64_t n_ejections;
            pt_outlier_endpoint_info(cl, k, &ejected, &n_ejections);
            body_printf(&b, "%s::%s:%u::weight::%u\n%s::%s:%u::health_flags::%s\n", cl->name,
                        ep->address, (unsigned)ep->port, ep->weight, cl->name, ep->address,
                        (unsigned)ep->port, ejected ? "/failed_outlier_check" : "healthy");
            if (cl->outlier_state != NULL)
                body_printf(&b, "%s::%s:%u::outlier_ejections::%" PRIu64 "\n", cl->name,
                            ep->address, (unsigned)ep->port, n_ejections);
            if (ep->hostname != NULL)
                body_printf(&b, "%s::%s:%u::hostname::%s\n", cl->name, ep->address,
                            (unsigned)ep->port, ep->hostname);
        }
    }
    respond_body(c, "text/plain", &b);
}

/* GET /listeners: the listeners in force, one "name::address:port::what it serves" line each
 * (Envoy's text form plus what the listener serves), or with format=json Envoy's
 * {"listener_statuses": [{"name", "local_address": {"socket_address": {...}}}]} plus "serves".
 * The Prometheus and health listeners are listed as Istio lists its 15090 and 15021 ones; the
 * admin listener is not, as in Envoy. */
static void serve_listeners(admin_conn_t *c, pt_str_t query)
{
    const pt_admin_t *a = c->admin;
    const pt_proxy_settings_t *ps = &a->config->proxy;
    const char *format = query_param(c, query, "format");
    bool is_json = format != NULL && strcmp(format, "json") == 0;
    body_t b = {0};
    body_printf(&b, "%s", is_json ? "{\"listener_statuses\":[" : "");
    size_t n = a->config->n_listeners;
    bool first = true;
    for (size_t i = 0; i < n + 2; i++) {
        const char *name, *serves, *address = ps->bind_address;
        unsigned port;
        if (i < n) {
            const pt_listener_config_t *l = &a->config->listeners[i];
            name = l->name;
            port = l->port;
            serves = pt_listener_protocol_name(l->protocol);
            if (l->protocol == PT_LISTENER_CAPTURE_OUTBOUND ||
                l->protocol == PT_LISTENER_CAPTURE_INBOUND)
                address = "0.0.0.0"; /* as worker.c binds them, for iptables REDIRECT */
        } else {
            pt_admin_role_t role = i == n ? PT_ADMIN_PROMETHEUS : PT_ADMIN_HEALTH;
            if (!a->listeners[role].is_open)
                continue;
            name = role == PT_ADMIN_PROMETHEUS ? "prometheus" : "health";
            port = role == PT_ADMIN_PROMETHEUS ? ps->prometheus_port : ps->health_port;
            serves = role == PT_ADMIN_PROMETHEUS ? "/stats/prometheus" : "/healthz/ready";
        }
        if (is_json) {
            body_printf(&b, "%s{\"name\":", first ? "" : ",");
            body_json_str(&b, name);
            body_printf(&b,
                        ",\"local_address\":{\"socket_address\":{\"address\":\"%s\","
                        "\"port_value\":%u}},\"serves\":\"%s\"}",
                        address, port, serves);
        } else {
            body_printf(&b, "%s::%s:%u::%s\n", name, address, port, serves);
        }
        first = false;
    }
    if (is_json)
        body_printf(&b, "]}\n");
    respond_body(c, is_json ? "application/json" : "text/plain", &b);
}

/* Istio's form of a duration in /server_info: whole seconds, "12s". */
static void body_json_seconds(body_t *b, uint64_t ms)
{
    body_printf(b, "\"%" PRIu64 "s\"", ms / 1000);
}

/* GET /server_info, Envoy's fields: version, state (LIVE or DRAINING: the admin listener
 * opens once the workers are up, so Envoy's PRE_INITIALIZING is never seen), uptimes (one epoch:
 * Petrel has no hot restart), the command line, and the node as Istio names it
 * ("sidecar~<ip>~<workload>.<ns>~<ns>.svc.cluster.local", or "router~..." for a gateway) with the
 * workload identity Petrel knows. */
static void serve_server_info(admin_conn_t *c, pt_str_t query)
{
    const pt_admin_t *a = c->admin;
    const pt_proxy_settings_t *ps = &a->config->proxy;
    const pt_workload_t *wl = &ps->workload;
    const char *state = a->is_draining ? "DRAINING" : "LIVE";
    uint64_t uptime_ms = uv_now(a->loop) - a->start_ms;
    body_t b = {0};
    body_printf(&b, "{\"version\":");
    body_json_str(&b, a->version);
    body_printf(&b, ",\"state\":\"%s\",\"uptime_current_epoch\":", state);
    body_json_seconds(&b, uptime_ms);
    body_printf(&b, ",\"uptime_all_epochs\":");
    body_json_seconds(&b, uptime_ms);
    body_printf(&b, ",\"command_line_options\":{\"argv\":[");
    for (int i = 0; i < a->argc; i++) {
        body_printf(&b, "%s", i > 0 ? "," : "");
        body_json_str(&b, a->argv[i]);
    }
    body_printf(&b, "],\"log_level\":\"%s\",\"concurrency\":%zu,\"drain_time\":",
                pt_log_level_name(pt_log_get_level()), a->n_workers);
    body_json_seconds(&b, ps->drain_timeout_ms);
    const char *ns = wl->ns != NULL ? wl->ns : "default";
    char id[512];
    snprintf(id, sizeof(id), "%s~%s~%s.%s~%s.svc.cluster.local",
             ps->sidecar.enabled ? "sidecar" : "router", ps->bind_address,
             wl->name != NULL ? wl->name : "petrel", ns, ns);
    body_printf(&b, "},\"node\":{\"id\":");
    body_json_str(&b, id);
    body_printf(&b, ",\"metadata\":{\"NAME\":");
    body_json_str(&b, wl->name);
    body_printf(&b, ",\"NAMESPACE\":");
    body_json_str(&b, ns);
    body_printf(&b, ",\"SERVICE_ACCOUNT\":");
    body_json_str(&b, wl->service_account);
    body_printf(&b, ",\"LABELS\":{");
    for (size_t i = 0; i < wl->n_labels; i++) {
        body_printf(&b, "%s", i > 0 ? "," : "");
        body_json_str(&b, wl->labels[2 * i]);
        body_printf(&b, ":");
        body_json_str(&b, wl->labels[2 * i + 1]);
    }
    body_printf(&b, "},\"SPIFFE_ID\":");
    if (ps->identity.certificate_chain != NULL && wl->service_account != NULL) {
        char spiffe[512];
        snprintf(spiffe, sizeof(spiffe), "spiffe://%s/ns/%s/sa/%s", ps->identity.trust_domain, ns,
                 wl->service_account);
        body_json_str(&b, spiffe);
    } else {
        body_json_str(&b, NULL);
    }
    body_printf(&b, "}}}\n");
    respond_body(c, "application/json", &b);
}

/* Envoy's level names, each to the Petrel level that shows the same lines. Petrel has no level
 * quieter than error: critical and off keep error lines. */
static const struct {
    const char *name;
    pt_log_level_t level;
} envoy_levels[] = {
    {"trace", PT_LOG_DEBUG},    {"debug", PT_LOG_DEBUG}, {"info", PT_LOG_INFO},
    {"warning", PT_LOG_WARN},   {"warn", PT_LOG_WARN},   {"error", PT_LOG_ERROR},
    {"critical", PT_LOG_ERROR}, {"off", PT_LOG_ERROR},
};

/* /logging, as Envoy's: POST /logging?level=L sets the process log level; GET /logging and
 * POST /logging without a query answer the level in force. Only "level" is known: Petrel has
 * one logger, not Envoy's per-component ones. Changing state needs POST, so a crawler or a
 * browser prefetch cannot turn debug logging on. */
static void serve_logging(admin_conn_t *c, pt_str_t query)
{
    if (query.len > 0) {
        if (c->head->method_id != HTTP_POST) {
            respond(c, 405, "Method Not Allowed", "use POST to change the level\n", 29);
            return;
        }
        const char *name = query_param(c, query, "level");
        size_t i = 0, n = sizeof(envoy_levels) / sizeof(envoy_levels[0]);
        while (name != NULL && i < n && strcmp(envoy_levels[i].name, name) != 0)
            i++;
        if (name == NULL || i == n) {
            body_t b = {0};
            body_printf(&b, "unknown level; usage: POST /logging?level=L where L is one of:");
            for (size_t k = 0; k < n; k++)
                body_printf(&b, "%s %s", k > 0 ? "," : "", envoy_levels[k].name);
            body_printf(&b, "\n");
            respond_typed(c, 400, "Bad Request", "text/plain", b.data, b.len);
            free(b.data);
            return;
        }
        pt_log_level_t level = envoy_levels[i].level;
        /* The change is logged at info under whichever of the two levels shows info lines. */
        pt_log_level_t was = pt_log_get_level();
        if (level < PT_LOG_INFO)
            pt_log_info("log level %s (was %s), set by the admin API", pt_log_level_name(level),
                        pt_log_level_name(was));
        pt_log_set_level(level);
        if (level >= PT_LOG_INFO)
            pt_log_info("log level %s (was %s), set by the admin API", pt_log_level_name(level),
                        pt_log_level_name(was));
    }
    char body[64];
    int n = snprintf(body, sizeof(body), "level: %s\n", pt_log_level_name(pt_log_get_level()));
    respond(c, 200, "OK", body, (size_t)n);
}

/* NULL when this proxy is ready for traffic, else why not. Readiness means: the config is
 * loaded and every listener bound (the admin listeners open only after both), not draining,
 * and the workload certificate valid now (an expired one would fail every mTLS handshake). */
static const char *not_ready(const pt_admin_t *a)
{
    if (a->is_draining)
        return "draining";
    if (a->config == NULL)
        return "no configuration";
    if (a->config->mesh_server_tls != NULL)
        return pt_tls_ctx_certificate_problem(a->config->mesh_server_tls);
    return NULL;
}

static void on_app_probe_done(void *arg, int status, const char *reason)
{
    admin_conn_t *c = arg;
    c->probe = NULL;
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return; /* the asker left while the probe finished */
    if (status == 200)
        respond(c, 200, "OK", "", 0);
    else
        respond(c, 503, "Service Unavailable", reason, strlen(reason));
}

/* GET /app-health/<container>/<kind>: the app's own probe, made now (app_probe.h). */
static void serve_app_probe(admin_conn_t *c, pt_str_t path)
{
    const pt_app_prober_t *prober =
        pt_app_probers_find(&c->admin->app_probers, path.base, path.len);
    if (prober == NULL) {
        respond(c, 404, "Not Found", "no such app probe\n", 18);
        return;
    }
    c->probe = pt_app_probe_start(c->admin->loop, prober, on_app_probe_done, c);
    if (c->probe == NULL)
        respond(c, 503, "Service Unavailable", "cannot start the app probe\n", 27);
}

/* POST /drain and POST /quitquitquit: both the SIGTERM drain (one mechanism: on_quit): /ready
 * turns 503, listeners close, in-flight requests finish, then the process exits 0. A second
 * call while draining is answered 200 and changes nothing. */
static void serve_quit(admin_conn_t *c, pt_str_t query)
{
    if (pt_str_eq(c->head->path, PT_STR_LIT("/drain")))
        respond(c, 200, "OK", "draining\n", 9);
    else
        respond(c, 200, "OK", "OK\n", 3);
    if (c->admin->on_quit != NULL)
        c->admin->on_quit(c->admin->arg);
}

/* POST /drain_listeners (Envoy's; ?graceful and ?inboundonly are accepted, the drain is always
 * graceful and takes every listener): the listeners stop accepting, in-flight requests and
 * keep-alive connections finish (keep-alive ones answered with Connection: close) within
 * drainTimeout, and the process keeps running with its admin API: state DRAINING. */
static void serve_drain_listeners(admin_conn_t *c, pt_str_t query)
{
    respond(c, 200, "OK", "OK\n", 3);
    if (c->admin->on_drain_listeners != NULL)
        c->admin->on_drain_listeners(c->admin->arg);
}

static void serve_help(admin_conn_t *c, pt_str_t query);

/* The one table of admin endpoints: /help lists it, serve() dispatches from it. */
typedef enum admin_method {
    ADMIN_GET,         /* GET or HEAD */
    ADMIN_POST,        /* it changes state: GET answers 405 */
    ADMIN_GET_OR_POST, /* reads with GET, changes with POST (the handler checks) */
} admin_method_t;

static const struct admin_route {
    const char *path;
    admin_method_t method;
    void (*serve)(admin_conn_t *c, pt_str_t query);
    const char *help;
} admin_routes[] = {
    {"/help", ADMIN_GET, serve_help, "this list of endpoints"},
    {"/ready", ADMIN_GET, serve_ready, "200 LIVE, or 503 DRAINING"},
    {"/healthz/ready", ADMIN_GET, serve_healthz,
     "Istio's readiness probe: 200, or 503 with the reason (draining, certificate)"},
    {"/server_info", ADMIN_GET, serve_server_info,
     "JSON: version, state, uptime, command line, node identity"},
    {"/stats", ADMIN_GET, serve_stats,
     "counters; ?filter=REGEX (partial match), ?usedonly, ?format=json"},
    {"/stats/prometheus", ADMIN_GET, serve_prometheus, "Prometheus text: istio_* and petrel_*"},
    {"/listeners", ADMIN_GET, serve_listeners, "listeners in force; ?format=json"},
    {"/clusters", ADMIN_GET, serve_clusters, "clusters, endpoints, health and ejections"},
    {"/config_dump", ADMIN_GET, serve_config_dump,
     "JSON: the resources in force with their source file:line"},
    {"/logging", ADMIN_GET_OR_POST, serve_logging,
     "GET: the log level; POST ?level=trace|debug|info|warning|warn|error|critical|off"},
    {"/drain_listeners", ADMIN_POST, serve_drain_listeners,
     "stop accepting, finish in-flight requests, keep running (?graceful)"},
    {"/drain", ADMIN_POST, serve_quit, "drain, then exit 0 (as SIGTERM)"},
    {"/quitquitquit", ADMIN_POST, serve_quit, "drain, then exit 0 (as SIGTERM)"},
};
#define N_ADMIN_ROUTES (sizeof(admin_routes) / sizeof(admin_routes[0]))

static void serve_help(admin_conn_t *c, pt_str_t query)
{
    body_t b = {0};
    body_printf(&b, "admin commands are:\n");
    for (size_t i = 0; i < N_ADMIN_ROUTES; i++)
        body_printf(&b, "  %s%s: %s\n", admin_routes[i].method == ADMIN_POST ? "POST " : "",
                    admin_routes[i].path, admin_routes[i].help);
    respond_body(c, "text/plain", &b);
}

static void serve(admin_conn_t *c)
{
    pt_http_msg_t *h = c->head;
    pt_str_t path = h->path, query = {NULL, 0};
    const char *q = memchr(path.base, '?', path.len);
    if (q != NULL) {
        query.base = q + 1;
        query.len = path.len - (size_t)(q + 1 - path.base);
        path.len = (size_t)(q - path.base);
    }
    bool is_get = h->method_id == HTTP_GET || h->method_id == HTTP_HEAD;
    bool is_post = h->method_id == HTTP_POST;
    /* The app's own probes, rewritten by petrel inject to the health port (app_probe.h). */
    if (c->role != PT_ADMIN_PROMETHEUS && is_get && path.len > 12 &&
        memcmp(path.base, "/app-health/", 12) == 0) {
        serve_app_probe(c, path);
        return;
    }
    /* Kubernetes' probe and Prometheus' scraper get their own ports, as in Istio, and those
     * ports answer nothing else. */
    const char *only = c->role == PT_ADMIN_HEALTH       ? "/healthz/ready"
                       : c->role == PT_ADMIN_PROMETHEUS ? "/stats/prometheus"
                                                        : NULL;
    const struct admin_route *r = NULL;
    for (size_t i = 0; i < N_ADMIN_ROUTES && r == NULL; i++)
        if (pt_str_eq(path, pt_str(admin_routes[i].path)) &&
            (only == NULL || strcmp(only, admin_routes[i].path) == 0))
            r = &admin_routes[i];
    if (r == NULL) {
        static const char body[] = "not found; GET /help lists the endpoints\n";
        if (only != NULL)
            respond(c, 404, "Not Found", "not found\n", 10);
        else
            respond(c, 404, "Not Found", body, sizeof(body) - 1);
        return;
    }
    if (r->method == ADMIN_GET && !is_get) {
        respond(c, 405, "Method Not Allowed", "use GET\n", 8);
        return;
    }
    if (r->method == ADMIN_POST && !is_post) {
        respond(c, 405, "Method Not Allowed", "use POST\n", 9);
        return;
    }
    if (r->method == ADMIN_GET_OR_POST && !is_get && !is_post) {
        respond(c, 405, "Method Not Allowed", "use GET or POST\n", 16);
        return;
    }
    r->serve(c, query);
}

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *head)
{
    admin_conn_t *c = p->data;
    c->head = head;
    return 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (c->role != PT_ADMIN_CHAOS || c->answered)
        return 0; /* other endpoints take no body */
    if (c->body_len + len > ADMIN_BODY_MAX) {
        respond(c, 413, "Payload Too Large", "request body over 1 MiB\n", 24);
        return -1;
    }
    char *grown = realloc(c->body, c->body_len + len);
    if (grown == NULL)
        return -1;
    c->body = grown;
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

/* The chaos role: every path goes to the Toxiproxy-compatible API. */
static void serve_chaos(admin_conn_t *c)
{
    pt_http_msg_t *h = c->head;
    size_t path_len = h->path.len;
    const char *q = memchr(h->path.base, '?', path_len);
    if (q != NULL)
        path_len = (size_t)(q - h->path.base);
    int status;
    char *out;
    size_t out_len;
    const char *type;
    pt_chaos_api_serve(c->admin->chaos, h->method_id, h->path.base, path_len, c->body, c->body_len,
                       &status, &out, &out_len, &type);
    const char *reason = status == 200   ? "OK"
                         : status == 201 ? "Created"
                         : status == 204 ? "No Content"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 409 ? "Conflict"
                                         : "Internal Server Error";
    respond_typed(c, status, reason, type, out != NULL ? out : "", out_len);
    free(out);
}

static int on_complete(pt_http1_parser_t *p)
{
    admin_conn_t *c = p->data;
    if (c->role == PT_ADMIN_CHAOS)
        serve_chaos(c);
    else
        serve(c);
    return 0;
}

static const pt_http1_callbacks_t admin_callbacks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_complete = on_complete,
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    admin_conn_t *c = h->data;
    *out = uv_buf_init(c->buf, sizeof(c->buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    admin_conn_t *c = s->data;
    if (nread == 0 || c->answered)
        return;
    if (nread < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    size_t consumed;
    int r = pt_http1_parser_execute(&c->parser, b->base, (size_t)nread, &consumed);
    if (r < 0 && !c->answered) {
        int status = c->parser.error_status ? c->parser.error_status : 400;
        respond(c, status, "Bad Request", "bad request\n", 12);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    pt_admin_listener_t *l = server->data;
    pt_admin_t *a = l->admin;
    if (status < 0)
        return;
    admin_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->admin = a;
    c->role = l->role;
    pt_list_insert_tail(&a->conns, &c->link);
    uv_tcp_init(a->loop, &c->tcp);
    c->tcp.data = c;
    pt_arena_init(&c->arena, 2048);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    pt_http1_parser_init(&c->parser, false, &admin_callbacks, c, NULL);
    pt_http1_parser_set_arena(&c->parser, &c->arena);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int pt_admin_start(pt_admin_t *a, uv_loop_t *loop, const char *address, uint16_t port,
                   pt_admin_role_t role)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(address, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(address, port, (struct sockaddr_in6 *)&ss) != 0)
        return UV_EINVAL;
    if (a->loop == NULL) {
        a->loop = loop;
        pt_list_init(&a->conns);
    }
    const char *probers = getenv(PT_INJECT_PROBERS_ENV);
    if (role == PT_ADMIN_HEALTH && probers != NULL) {
        char err[256];
        if (pt_app_probers_parse(probers, &a->app_probers, err, sizeof(err)) != 0) {
            pt_log_error("%s: %s", PT_INJECT_PROBERS_ENV, err);
            return UV_EINVAL;
        }
    }
    pt_admin_listener_t *l = &a->listeners[role];
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    l->admin = a;
    l->role = role;
    l->is_open = true;
    int err = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&l->tcp, 128, on_connection);
    return err;
}

void pt_admin_stop(pt_admin_t *a)
{
    if (a->loop == NULL)
        return; /* never started (adminPort: 0, or start-up failed first) */
    for (int r = 0; r < PT_ADMIN__ROLES; r++) {
        if (a->listeners[r].is_open) {
            a->listeners[r].is_open = false;
            uv_close((uv_handle_t *)&a->listeners[r].tcp, NULL);
        }
    }
    for (pt_list_t *n = a->conns.next; n != &a->conns; n = n->next) {
        admin_conn_t *c = PT_CONTAINER_OF(n, admin_conn_t, link);
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_conn_close);
    }
    /* Probes in flight were cancelled with their connections and never read these again. */
    pt_app_probers_dispose(&a->app_probers);
}
