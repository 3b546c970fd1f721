/* proxy/metrics.c
 * See metrics.h for the threading rules. Bucket counts are kept per bucket and made cumulative
 * when formatted, so recording touches one bucket. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"

/* Istio's default buckets (milliseconds) for istio_request_duration_milliseconds. */
static const double duration_bounds_ms[PT_METRICS_DURATION_BUCKETS] = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
/* istio_request_bytes / istio_response_bytes: powers of ten, 1 B to 1 GB. */
static const uint64_t size_bounds[PT_METRICS_SIZE_BUCKETS] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};

#define OVERFLOW_SLOT PT_METRICS_MAX_SERIES

static inline void add(_Atomic uint64_t *c, uint64_t d)
{
    /* One writer (the worker): a plain load and store, never a locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

int pt_metrics_init(pt_metrics_t *m)
{
    m->series = calloc(PT_METRICS_MAX_SERIES + 1, sizeof(pt_series_t));
    if (m->series == NULL)
        return -1;
    pt_series_t *o = &m->series[OVERFLOW_SLOT];
    strcpy(o->service, "overflow");
    strcpy(o->code, "0");
    strcpy(o->flags, "-");
    strcpy(o->principal, "unknown");
    atomic_store(&o->is_ready, 1);
    atomic_init(&m->overflowed, 0);
    return 0;
}

void pt_metrics_dispose(pt_metrics_t *m)
{
    free(m->series);
    m->series = NULL;
}

static uint32_t key_hash(const char *service, const char *code, const char *grpc, const char *flags,
                         const char *principal, int protocol, int is_inbound)
{
    uint32_t h = 2166136261u;
    for (const char *s = grpc; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = principal; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = service; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = code; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = flags; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h ^ (uint32_t)protocol ^ ((uint32_t)is_inbound << 2);
}

static bool same_key(const pt_series_t *s, uint32_t h, const char *service, const char *code,
                     const char *grpc, const char *flags, const char *principal, int protocol,
                     int is_inbound)
{
    return s->hash == h && s->protocol == protocol && s->is_inbound == is_inbound &&
           strcmp(s->service, service) == 0 && strcmp(s->code, code) == 0 &&
           strcmp(s->grpc, grpc) == 0 && strcmp(s->flags, flags) == 0 &&
           strcmp(s->principal, principal) == 0;
}

/* The series for these labels, created on first use (worker thread). */
static pt_series_t *series_for(pt_metrics_t *m, const char *service, const char *code,
                               const char *grpc, const char *flags, const char *principal,
                               int protocol, int is_inbound)
{
    if (service == NULL || strlen(service) >= sizeof(m->series[0].service))
        service = "unknown";
    if (principal == NULL || strlen(principal) >= sizeof(m->series[0].principal))
        principal = "unknown";
    uint32_t h = key_hash(service, code, grpc, flags, principal, protocol, is_inbound);
    for (size_t probe = 0; probe < PT_METRICS_MAX_SERIES; probe++) {
        pt_series_t *s = &m->series[(h + probe) % PT_METRICS_MAX_SERIES];
        if (atomic_load_explicit(&s->is_ready, memory_order_relaxed)) {
            if (same_key(s, h, service, code, grpc, flags, principal, protocol, is_inbound))
                return s;
            continue;
        }
        s->hash = h;
        s->protocol = (uint8_t)protocol;
        s->is_inbound = (uint8_t)is_inbound;
        snprintf(s->service, sizeof(s->service), "%s", service);
        snprintf(s->code, sizeof(s->code), "%s", code);
        snprintf(s->grpc, sizeof(s->grpc), "%s", grpc);
        snprintf(s->flags, sizeof(s->flags), "%s", flags);
        snprintf(s->principal, sizeof(s->principal), "%s", principal);
        atomic_store_explicit(&s->is_ready, 1, memory_order_release);
        return s;
    }
    add(&m->overflowed, 1);
    return &m->series[OVERFLOW_SLOT];
}

void pt_metrics_record_http(pt_metrics_t *m, const char *service, int status, int grpc_status,
                            const char *flags, uint64_t duration_us, uint64_t request_bytes,
                            uint64_t response_bytes, const char *principal, bool inbound,
                            bool is_grpc)
{
    char code[4], grpc[4] = ""; /* digits by hand: a printf here was 1.5 % of an h2c request */
    code[pt_put_u64(code, status >= 100 && status <= 999 ? (uint64_t)status : 0)] = '\0';
    if (grpc_status >= 0 && grpc_status <= 99)
        grpc[pt_put_u64(grpc, (uint64_t)grpc_status)] = '\0';
    pt_series_t *s = series_for(m, service, code, grpc, flags, principal,
                                is_grpc ? PT_METRICS_GRPC : PT_METRICS_HTTP, inbound);
    add(&s->requests, 1);
    size_t b = 0;
    while (b < PT_METRICS_DURATION_BUCKETS && (double)duration_us > duration_bounds_ms[b] * 1000)
        b++;
    add(&s->duration[b], 1);
    add(&s->duration_sum_us, duration_us);
    for (b = 0; b < PT_METRICS_SIZE_BUCKETS && request_bytes > size_bounds[b]; b++)
        ;
    add(&s->request_bytes[b], 1);
    add(&s->request_bytes_sum, request_bytes);
    for (b = 0; b < PT_METRICS_SIZE_BUCKETS && response_bytes > size_bounds[b]; b++)
        ;
    add(&s->response_bytes[b], 1);
    add(&s->response_bytes_sum, response_bytes);
}

void pt_metrics_record_tcp_open(pt_metrics_t *m, const char *service)
{
    add(&series_for(m, service, "0", "", "-", NULL, PT_METRICS_TCP, 0)->tcp_opened, 1);
}

void pt_metrics_record_tcp_close(pt_metrics_t *m, const char *service, uint64_t sent,
                                 uint64_t received)
{
    pt_series_t *s = series_for(m, service, "0", "", "-", NULL, PT_METRICS_TCP, 0);
    add(&s->tcp_closed, 1);
    add(&s->tcp_sent, sent);
    add(&s->tcp_received, received);
}

/* --- formatting (main thread) --- */

typedef struct text {
    char *p;
    size_t len, cap;
} text_t;

static void appendf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (n > 0 ? (size_t)n : 0);
        char *p = realloc(t->p, cap);
        if (p == NULL)
            abort();
        t->p = p;
        t->cap = cap;
    }
}

/* The label set Istio puts on its standard metrics. */
static void labels(text_t *t, const pt_metrics_identity_t *id, const pt_series_t *s)
{
    /* destination_service_name/namespace: "<name>.<ns>.svc.cluster.local" splits; any other
     * host (a ServiceEntry's) is its own name, namespace unknown. */
    char name[96], ns[96] = "unknown";
    snprintf(name, sizeof(name), "%s", s->service);
    const char *suffix = ".svc.cluster.local";
    size_t n = strlen(s->service), sl = strlen(suffix);
    if (n > sl && strcmp(s->service + n - sl, suffix) == 0) {
        const char *dot = strchr(s->service, '.');
        if (dot != NULL && dot < s->service + n - sl) {
            snprintf(name, sizeof(name), "%.*s", (int)(dot - s->service), s->service);
            snprintf(ns, sizeof(ns), "%.*s", (int)(s->service + n - sl - dot - 1), dot + 1);
        }
    }
    /* A sidecar's inbound reports as the destination (Istio's reporter="destination"): this
     * workload is the destination, the source is the peer, known by its mTLS principal (whose
     * namespace is part of it). Anything else reports as the source. */
    const char *unknown = "unknown";
    char peer_ns[64] = "unknown";
    const char *p = strstr(s->principal, "/ns/");
    if (p != NULL) {
        const char *end = strstr(p + 4, "/sa/");
        if (end != NULL && (size_t)(end - p - 4) < sizeof(peer_ns))
            snprintf(peer_ns, sizeof(peer_ns), "%.*s", (int)(end - p - 4), p + 4);
    }
    bool in = s->is_inbound;
    appendf(t,
            "reporter=\"%s\",source_workload=\"%s\",source_workload_namespace=\"%s\","
            "source_principal=\"%s\",source_app=\"%s\",source_version=\"%s\","
            "source_cluster=\"unknown\",destination_workload=\"%s\","
            "destination_workload_namespace=\"%s\",destination_principal=\"%s\","
            "destination_app=\"%s\",destination_version=\"%s\","
            "destination_service=\"%s\",destination_service_name=\"%s\","
            "destination_service_namespace=\"%s\",destination_cluster=\"unknown\","
            "request_protocol=\"%s\",",
            in ? "destination" : "source", in ? unknown : id->workload,
            in ? peer_ns : id->namespace_, in ? s->principal : id->principal,
            in ? unknown : id->app, in ? unknown : id->version, in ? id->workload : unknown,
            in ? id->namespace_ : unknown, in ? id->principal : unknown, in ? id->app : unknown,
            in ? id->version : unknown, s->service, name, ns,
            s->protocol == PT_METRICS_TCP    ? "tcp"
            : s->protocol == PT_METRICS_GRPC ? "grpc"
                                             : "http");
    if (s->protocol != PT_METRICS_TCP)
        appendf(t, "response_code=\"%s\",grpc_response_status=\"%s\",", s->code, s->grpc);
    /* Istio's definition: the destination knows whether mTLS authenticated the client
     * ("mutual_tls" or "none"); the source reports "unknown". */
    const char *policy = !in                                    ? "unknown"
                         : strcmp(s->principal, "unknown") != 0 ? "mutual_tls"
                                                                : "none";
    appendf(t, "response_flags=\"%s\",connection_security_policy=\"%s\"", s->flags, policy);
}

static void merge(pt_series_t *into, const pt_series_t *s)
{
#define M(f) atomic_store_explicit(&into->f, get(&into->f) + get(&s->f), memory_order_relaxed)
    M(requests);
    M(duration_sum_us);
    M(request_bytes_sum);
    M(response_bytes_sum);
    M(tcp_opened);
    M(tcp_closed);
    M(tcp_sent);
    M(tcp_received);
    for (size_t b = 0; b <= PT_METRICS_DURATION_BUCKETS; b++)
        M(duration[b]);
    for (size_t b = 0; b <= PT_METRICS_SIZE_BUCKETS; b++) {
        M(request_bytes[b]);
        M(response_bytes[b]);
    }
#undef M
}

static void histogram(text_t *t, const pt_metrics_identity_t *id, const pt_series_t *s,
                      const char *name, const _Atomic uint64_t *counts, size_t n_bounds,
                      const double *bounds_d, const uint64_t *bounds_u, double sum)
{
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= n_bounds; b++) {
        cumulative += get(&counts[b]);
        appendf(t, "%s_bucket{", name);
        labels(t, id, s);
        if (b == n_bounds)
            appendf(t, ",le=\"+Inf\"} %" PRIu64 "\n", cumulative);
        else if (bounds_d != NULL)
            appendf(t, ",le=\"%g\"} %" PRIu64 "\n", bounds_d[b], cumulative);
        else
            appendf(t, ",le=\"%" PRIu64 "\"} %" PRIu64 "\n", bounds_u[b], cumulative);
    }
    appendf(t, "%s_sum{", name);
    labels(t, id, s);
    appendf(t, "} %.3f\n%s_count{", sum, name);
    labels(t, id, s);
    appendf(t, "} %" PRIu64 "\n", cumulative);
}

char *pt_metrics_format(pt_metrics_t *const *workers, size_t n_workers,
                        const pt_metrics_identity_t *id, const char *extra, size_t *len)
{
    /* Sum the workers' series into one list, by labels. */
    size_t cap = (PT_METRICS_MAX_SERIES + 1) * (n_workers ? n_workers : 1);
    pt_series_t *all = calloc(cap, sizeof(*all));
    size_t n_all = 0;
    text_t t = {malloc(65536), 0, 65536};
    if (all == NULL || t.p == NULL)
        abort();
    for (size_t w = 0; w < n_workers; w++) {
        for (size_t i = 0; i <= PT_METRICS_MAX_SERIES; i++) {
            const pt_series_t *s = &workers[w]->series[i];
            if (!atomic_load_explicit(&s->is_ready, memory_order_acquire))
                continue;
            size_t k = 0;
            while (k < n_all && !same_key(&all[k], s->hash, s->service, s->code, s->grpc, s->flags,
                                          s->principal, s->protocol, s->is_inbound))
                k++;
            if (k == n_all) {
                memcpy(all[k].service, s->service, sizeof(s->service));
                memcpy(all[k].code, s->code, sizeof(s->code));
                memcpy(all[k].grpc, s->grpc, sizeof(s->grpc));
                memcpy(all[k].flags, s->flags, sizeof(s->flags));
                memcpy(all[k].principal, s->principal, sizeof(s->principal));
                all[k].hash = s->hash;
                all[k].protocol = s->protocol;
                all[k].is_inbound = s->is_inbound;
                n_all++;
            }
            merge(&all[k], s);
        }
    }
    static const struct {
        const char *name, *help;
        size_t field;
    } tcp_counters[] = {
        {"istio_tcp_connections_opened_total", "TCP connections opened.",
         offsetof(pt_series_t, tcp_opened)},
        {"istio_tcp_connections_closed_total", "TCP connections closed.",
         offsetof(pt_series_t, tcp_closed)},
        {"istio_tcp_sent_bytes_total", "Bytes sent to the client on TCP connections.",
         offsetof(pt_series_t, tcp_sent)},
        {"istio_tcp_received_bytes_total", "Bytes received from the client on TCP connections.",
         offsetof(pt_series_t, tcp_received)},
    };
    appendf(&t, "# HELP istio_requests_total Requests handled.\n"
                "# TYPE istio_requests_total counter\n");
    for (size_t k = 0; k < n_all; k++) {
        if (all[k].protocol == PT_METRICS_TCP || get(&all[k].requests) == 0)
            continue;
        appendf(&t, "istio_requests_total{");
        labels(&t, id, &all[k]);
        appendf(&t, "} %" PRIu64 "\n", get(&all[k].requests));
    }
    static const char *const hist_names[] = {"istio_request_duration_milliseconds",
                                             "istio_request_bytes", "istio_response_bytes"};
    static const char *const hist_help[] = {"Request duration.", "Request body sizes.",
                                            "Response body sizes."};
    for (int h = 0; h < 3; h++) {
        appendf(&t, "# HELP %s %s\n# TYPE %s histogram\n", hist_names[h], hist_help[h],
                hist_names[h]);
        for (size_t k = 0; k < n_all; k++) {
            const pt_series_t *s = &all[k];
            if (s->protocol == PT_METRICS_TCP || get(&s->requests) == 0)
                continue;
            if (h == 0)
                histogram(&t, id, s, hist_names[h], s->duration, PT_METRICS_DURATION_BUCKETS,
                          duration_bounds_ms, NULL, (double)get(&s->duration_sum_us) / 1000.0);
            else if (h == 1)
                histogram(&t, id, s, hist_names[h], s->request_bytes, PT_METRICS_SIZE_BUCKETS, NULL,
                          size_bounds, (double)get(&s->request_bytes_sum));
            else
                histogram(&t, id, s, hist_names[h], s->response_bytes, PT_METRICS_SIZE_BUCKETS,
                          NULL, size_bounds, (double)get(&s->response_bytes_sum));
        }
    }
    for (size_t c = 0; c < sizeof(tcp_counters) / sizeof(tcp_counters[0]); c++) {
        appendf(&t, "# HELP %s %s\n# TYPE %s counter\n", tcp_counters[c].name, tcp_counters[c].help,
                tcp_counters[c].name);
        for (size_t k = 0; k < n_all; k++) {
            if (all[k].protocol != PT_METRICS_TCP)
                continue;
            const _Atomic uint64_t *v =
                (const _Atomic uint64_t *)((const char *)&all[k] + tcp_counters[c].field);
            appendf(&t, "%s{", tcp_counters[c].name);
            labels(&t, id, &all[k]);
            appendf(&t, "} %" PRIu64 "\n", get(v));
        }
    }
    uint64_t overflowed = 0;
    for (size_t w = 0; w < n_workers; w++)
        overflowed += get(&workers[w]->overflowed);
    appendf(&t,
            "# HELP petrel_metrics_overflow_total Requests recorded in the overflow series "
            "because a worker's series table was full.\n"
            "# TYPE petrel_metrics_overflow_total counter\npetrel_metrics_overflow_total %" PRIu64
            "\n",
            overflowed);
    if (extra != NULL)
        appendf(&t, "%s", extra);
    free(all);
    *len = t.len;
    return t.p;
}
