/* proxy/admin.c
 * The admin listeners (see admin.h): one request per connection, answered from the main
 * thread's view of the process (the config snapshot in force, the workers' counters read
 * without locks). The process itself (drain, exit) belongs to main.c, reached via on_quit. */
#include "admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/inject.h"
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
    pt_http1_head_t *head;
    pt_app_probe_t *probe; /* an app probe in flight for this request, or NULL */
    bool answered;
    char buf[4096];
} admin_conn_t;

static void on_conn_close(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    if (c->probe != NULL)
        pt_app_probe_cancel(c->probe);
    pt_list_remove(&c->link);
    pt_arena_dispose(&c->arena);
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

/* Every counter summed over the workers, "name: value\n" lines; returns the length written
 * (truncated at size). */
static size_t format_stats(const pt_admin_t *a, char *buf, size_t size)
{
    size_t off = 0;
    for (int k = 0; k < PT_STAT__COUNT; k++) {
        uint64_t sum = stat_sum(a, k);
        int n = snprintf(buf + off, size - off, "%s: %" PRIu64 "\n", pt_stat_names[k], sum);
        if (n < 0 || (size_t)n >= size - off)
            return off;
        off += (size_t)n;
    }
    int n = snprintf(buf + off, size - off,
                     "config_generation: %" PRIu64 "\nconfig_reloads_accepted: %" PRIu64
                     "\nconfig_reloads_refused: %" PRIu64 "\nworkers: %zu\n",
                     a->config_generation, a->reloads_accepted, a->reloads_refused, a->n_workers);
    if (n > 0 && (size_t)n < size - off)
        off += (size_t)n;
    return off;
}

static void respond_typed(admin_conn_t *c, int status, const char *reason, const char *type,
                          const char *body, size_t len)
{
    char head[160];
    int n = snprintf(head, sizeof(head),
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
static void respond_prometheus(admin_conn_t *c)
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
    for (size_t i = 0; i < a->n_workers; i++)
        m[i] = &a->workers[i].metrics;
    size_t len;
    char *body = pt_metrics_format(m, a->n_workers, &id, extra, &len);
    respond_typed(c, 200, "OK", "text/plain; version=0.0.4", body, len);
    free(body);
    free(m);
    free(extra);
}

/* {"generation": N, "resources": [{"source", "line", "resource"}, ...]} */
static void respond_config_dump(admin_conn_t *c)
{
    const pt_config_t *cfg = c->admin->config;
    char head[64];
    int n =
        snprintf(head, sizeof(head), "{\"generation\":%" PRIu64 ",\"resources\":", cfg->generation);
    size_t len = (size_t)n + cfg->resources_json_len + 2;
    char *body = malloc(len + 1);
    if (body == NULL) {
        respond(c, 503, "Service Unavailable", "out of memory\n", 14);
        return;
    }
    memcpy(body, head, (size_t)n);
    memcpy(body + n, cfg->resources_json, cfg->resources_json_len);
    memcpy(body + n + cfg->resources_json_len, "}\n", 2);
    respond(c, 200, "OK", body, len);
    free(body);
}

/* One line per endpoint, in Envoy's /clusters text form:
 *   outbound|80||web.local::127.0.0.1:8080::weight::1
 *   outbound|80||web.local::127.0.0.1:8080::health_flags::healthy
 *   outbound|80||web.local::127.0.0.1:8080::hostname::web.example (resolution DNS)
 * and a cluster without endpoints as "outbound|80||x::no_endpoints". An endpoint that outlier
 * detection has ejected shows "health_flags::/failed_outlier_check", as in Envoy; a cluster
 * with outlier detection adds "...::outlier_ejections::N" per endpoint. */
static void respond_clusters(admin_conn_t *c)
{
    const pt_config_t *cfg = c->admin->config;
    size_t cap = 256, len = 0;
    for (size_t i = 0; i < cfg->n_clusters; i++)
        cap += (strlen(cfg->clusters[i]->name) + 384) * (cfg->clusters[i]->n_endpoints * 3 + 1);
    char *body = malloc(cap);
    if (body == NULL) {
        respond(c, 503, "Service Unavailable", "out of memory\n", 14);
        return;
    }
    for (size_t i = 0; i < cfg->n_clusters; i++) {
        const pt_cluster_t *cl = cfg->clusters[i];
        if (cl->n_endpoints == 0)
            len += (size_t)snprintf(body + len, cap - len, "%s::no_endpoints\n", cl->name);
        for (size_t k = 0; k < cl->n_endpoints; k++) {
            const pt_endpoint_t *ep = &cl->endpoints[k];
            bool ejected;
            uint64_t n_ejections;
            pt_outlier_endpoint_info(cl, k, &ejected, &n_ejections);
            len += (size_t)snprintf(
                body + len, cap - len, "%s::%s:%u::weight::%u\n%s::%s:%u::health_flags::%s\n",
                cl->name, ep->address, (unsigned)ep->port, ep->weight, cl->name, ep->address,
                (unsigned)ep->port, ejected ? "/failed_outlier_check" : "healthy");
            if (cl->outlier_state != NULL)
                len += (size_t)snprintf(body + len, cap - len,
                                        "%s::%s:%u::outlier_ejections::%" PRIu64 "\n", cl->name,
                                        ep->address, (unsigned)ep->port, n_ejections);
            if (ep->hostname != NULL)
                len += (size_t)snprintf(body + len, cap - len, "%s::%s:%u::hostname::%s\n",
                                        cl->name, ep->address, (unsigned)ep->port, ep->hostname);
        }
    }
    respond(c, 200, "OK", body, len);
    free(body);
}

/* /logging, as Envoy's: POST /logging?level=L sets the process log level; GET /logging and
 * POST /logging without a query answer the level in force. Only "level" is known: Petrel has
 * one logger, not Envoy's per-component ones. Changing state needs POST, so a crawler or a
 * browser prefetch cannot turn debug logging on. */
static void respond_logging(admin_conn_t *c, pt_str_t query, bool is_get)
{
    static const char usage[] =
        "usage: POST /logging?level=L where L is one of: error, warning, info, debug\n";
    bool is_post = c->head->method_id == HTTP_POST;
    if (!is_get && !is_post) {
        respond(c, 405, "Method Not Allowed", "use GET or POST\n", 16);
        return;
    }
    if (query.len > 0) {
        if (!is_post) {
            respond(c, 405, "Method Not Allowed", "use POST to change the level\n", 29);
            return;
        }
        static const char key[] = "level=";
        pt_log_level_t level;
        if (query.len < sizeof(key) - 1 || memcmp(query.base, key, sizeof(key) - 1) != 0 ||
            pt_log_level_parse(query.base + sizeof(key) - 1, query.len - (sizeof(key) - 1),
                               &level) != 0) {
            respond(c, 400, "Bad Request", usage, sizeof(usage) - 1);
            return;
        }
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

static void serve(admin_conn_t *c)
{
    pt_admin_t *a = c->admin;
    pt_http1_head_t *h = c->head;
    pt_str_t path = h->path, query = {NULL, 0};
    const char *q = memchr(path.base, '?', path.len);
    if (q != NULL) {
        query.base = q + 1;
        query.len = path.len - (size_t)(q + 1 - path.base);
        path.len = (size_t)(q - path.base);
    }
    bool is_get = h->method_id == HTTP_GET || h->method_id == HTTP_HEAD;
    /* Kubernetes' probe and Prometheus' scraper get their own ports, as in Istio, and those
     * ports answer nothing else. */
    bool is_health = pt_str_eq(path, PT_STR_LIT("/healthz/ready"));
    if (is_health && is_get) {
        const char *why = not_ready(a);
        if (why != NULL) {
            char body[64];
            int n = snprintf(body, sizeof(body), "%s\n", why);
            respond(c, 503, "Service Unavailable", body, (size_t)n);
        } else {
            respond(c, 200, "OK", "", 0);
        }
        return;
    }
    if (c->role != PT_ADMIN_PROMETHEUS && is_get && path.len > 12 &&
        memcmp(path.base, "/app-health/", 12) == 0) {
        serve_app_probe(c, path);
        return;
    }
    if ((c->role == PT_ADMIN_HEALTH) ||
        (c->role == PT_ADMIN_PROMETHEUS && !pt_str_eq(path, PT_STR_LIT("/stats/prometheus")))) {
        respond(c, 404, "Not Found", "not found\n", 10);
        return;
    }
    if (pt_str_eq(path, PT_STR_LIT("/ready")) && is_get) {
        if (a->is_draining)
            respond(c, 503, "Service Unavailable", "DRAINING\n", 9);
        else
            respond(c, 200, "OK", "LIVE\n", 5);
    } else if (pt_str_eq(path, PT_STR_LIT("/stats")) && is_get) {
        char *buf = malloc(16384);
        size_t len = buf ? format_stats(a, buf, 16384) : 0;
        respond(c, 200, "OK", buf ? buf : "", len);
        free(buf);
    } else if (pt_str_eq(path, PT_STR_LIT("/stats/prometheus")) && is_get && a->config != NULL) {
        respond_prometheus(c);
    } else if (pt_str_eq(path, PT_STR_LIT("/config_dump")) && is_get && a->config != NULL) {
        respond_config_dump(c);
    } else if (pt_str_eq(path, PT_STR_LIT("/clusters")) && is_get && a->config != NULL) {
        respond_clusters(c);
    } else if (pt_str_eq(path, PT_STR_LIT("/logging"))) {
        respond_logging(c, query, is_get);
    } else if (pt_str_eq(path, PT_STR_LIT("/quitquitquit")) ||
               pt_str_eq(path, PT_STR_LIT("/drain"))) {
        /* Both are the SIGTERM drain (one mechanism: on_quit): /ready turns 503, listeners
         * close, in-flight requests finish, then the process exits 0. A second call while
         * draining is answered 200 and changes nothing. */
        if (h->method_id != HTTP_POST) {
            respond(c, 405, "Method Not Allowed", "use POST\n", 9);
            return;
        }
        if (pt_str_eq(path, PT_STR_LIT("/drain")))
            respond(c, 200, "OK", "draining\n", 9);
        else
            respond(c, 200, "OK", "OK\n", 3);
        if (a->on_quit != NULL)
            a->on_quit(a->arg);
    } else if (pt_str_eq(path, PT_STR_LIT("/ready")) || pt_str_eq(path, PT_STR_LIT("/stats")) ||
               pt_str_eq(path, PT_STR_LIT("/config_dump")) ||
               pt_str_eq(path, PT_STR_LIT("/clusters"))) {
        respond(c, 405, "Method Not Allowed", "use GET\n", 8);
    } else {
        static const char body[] =
            "not found; try /ready, /stats, /stats/prometheus, /config_dump, /clusters, /logging, "
            "POST /drain, POST /quitquitquit\n";
        respond(c, 404, "Not Found", body, sizeof(body) - 1);
    }
}

static int on_head(pt_http1_parser_t *p, pt_http1_head_t *head)
{
    admin_conn_t *c = p->data;
    c->head = head;
    return 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    return 0;
}

static int on_complete(pt_http1_parser_t *p)
{
    admin_conn_t *c = p->data;
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
