/* config/kind_proxy.c
 * Petrel's own kind, petrel.io/v1alpha1 Proxy: the process settings (bind address, ports,
 * limits, timeouts, access log, retry body limit, per-attempt faults, DNS, identity, tracing)
 * over Petrel's defaults, and spec.workload, who this proxy is for sourceLabels /
 * sourceNamespace matches. */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinds.h"

/* Petrel's own kind (petrel.io/v1alpha1 Proxy). */
enum {
    PX_BIND,
    PX_ADMIN_ADDR,
    PX_ADMIN,
    PX_CONC,
    PX_MAXCONN,
    PX_MAXLINE,
    PX_MAXHDRBYTES,
    PX_MAXHDRS,
    PX_HDR_TO,
    PX_IDLE_TO,
    PX_UP_IDLE_TO,
    PX_CONNECT_TO,
    PX_DRAIN_TO,
    PX_ACCESS_LOG,
    PX_WORKLOAD,
    PX_PROM_PORT,
    PX_HEALTH_PORT,
    PX_LOG_FORMAT,
    PX_DNS,
    PX_IDENTITY,
    PX_TRACING,
    PX_CREDENTIALS_DIR,
    PX_RETRY_BODY_LIMIT,
    PX_FAULT_PER_ATTEMPT,
    PX_MIRROR_KEEP_HOST,
    PX_METRICS,
    PX_SIDECAR,
    PX_ROOT_NS,
    PX_CHAOS_API,
    PX_H2_UPGRADE,
    PX_HTTP2,
    PX_UP_H2_KEEPALIVE,
    PX__N
};
static const pt_cfg_field_t proxy_fields[PX__N] = {
    [PX_BIND] = {.name = "bindAddress", .status = S},
    [PX_ADMIN_ADDR] = {.name = "adminAddress", .status = S},
    [PX_ADMIN] = {.name = "adminPort", .status = S},
    [PX_CONC] = {.name = "concurrency", .status = S},
    [PX_MAXCONN] = {.name = "maxConnections", .status = S},
    [PX_MAXLINE] = {.name = "maxRequestLineBytes", .status = S},
    [PX_MAXHDRBYTES] = {.name = "maxHeaderBytes", .status = S},
    [PX_MAXHDRS] = {.name = "maxHeaders", .status = S},
    [PX_HDR_TO] = {.name = "headerTimeout", .status = S},
    [PX_IDLE_TO] = {.name = "idleTimeout", .status = S},
    [PX_UP_IDLE_TO] = {.name = "upstreamIdleTimeout", .status = S},
    [PX_CONNECT_TO] = {.name = "connectTimeout", .status = S},
    [PX_DRAIN_TO] = {.name = "drainTimeout", .status = S},
    [PX_ACCESS_LOG] = {.name = "accessLog", .status = S},
    [PX_WORKLOAD] = {.name = "workload", .status = S},
    [PX_PROM_PORT] = {.name = "prometheusPort", .status = S},
    [PX_HEALTH_PORT] = {.name = "healthPort", .status = S},
    [PX_LOG_FORMAT] = {.name = "accessLogFormat", .status = S},
    [PX_DNS] = {.name = "dns", .status = S},
    [PX_IDENTITY] = {.name = "identity", .status = S},
    [PX_TRACING] = {.name = "tracing", .status = S},
    [PX_CREDENTIALS_DIR] = {.name = "credentialsDirectory", .status = S},
    [PX_RETRY_BODY_LIMIT] = {.name = "retryBodyLimit", .status = S},
    [PX_FAULT_PER_ATTEMPT] = {.name = "faultPerAttempt", .status = S},
    [PX_MIRROR_KEEP_HOST] = {.name = "mirrorKeepHost", .status = S},
    [PX_METRICS] = {.name = "metrics", .status = S},
    [PX_SIDECAR] = {.name = "sidecar", .status = S},
    [PX_ROOT_NS] = {.name = "rootNamespace", .status = S},
    [PX_CHAOS_API] = {.name = "chaosApi", .status = S},
    [PX_H2_UPGRADE] = {.name = "h2UpgradePolicy", .status = S},
    [PX_HTTP2] = {.name = "http2", .status = S},
    [PX_UP_H2_KEEPALIVE] = {.name = "upstreamHttp2Keepalive", .status = S},
};
/* Proxy spec.http2: the HTTP/2 server's limits (proxy/http2_server.c), named as Envoy's
 * http2_protocol_options. */
enum { H2_MAX_STREAMS, H2__N };
static const pt_cfg_field_t http2_fields[H2__N] = {
    [H2_MAX_STREAMS] = {.name = "maxConcurrentStreams", .status = S},
};
/* Proxy spec.upstreamHttp2Keepalive: PINGs on upstream HTTP/2 connections (http2_client.c). */
enum { H2KA_INTERVAL, H2KA_TIMEOUT, H2KA__N };
static const pt_cfg_field_t h2_keepalive_fields[H2KA__N] = {
    [H2KA_INTERVAL] = {.name = "interval", .status = S},
    [H2KA_TIMEOUT] = {.name = "timeout", .status = S},
};
/* Proxy spec.chaosApi: the Toxiproxy-compatible API (filters/chaos). */
enum { CA_ADDRESS, CA_PORT, CA__N };
static const pt_cfg_field_t chaos_api_fields[CA__N] = {
    [CA_ADDRESS] = {.name = "address", .status = S},
    [CA_PORT] = {.name = "port", .status = S},
};
/* Proxy spec.identity: the workload certificate for mesh mTLS (files; built into contexts by
 * config/tls_contexts.c). */
enum { ID_CHAIN, ID_KEY, ID_ROOTS, ID_TRUST_DOMAIN, ID__N };
static const pt_cfg_field_t identity_fields[ID__N] = {
    [ID_CHAIN] = {.name = "certificateChain", .status = S},
    [ID_KEY] = {.name = "privateKey", .status = S},
    [ID_ROOTS] = {.name = "rootCertificates", .status = S},
    [ID_TRUST_DOMAIN] = {.name = "trustDomain", .status = S},
};
/* Proxy spec.dns: the resolver of DNS ServiceEntries (proxy/dns.c). */
enum { DNS_SERVERS, DNS_MIN_REFRESH, DNS_MAX_REFRESH, DNS_TIMEOUT, DNS__N };
static const pt_cfg_field_t dns_fields[DNS__N] = {
    [DNS_SERVERS] = {.name = "servers", .status = S},
    [DNS_MIN_REFRESH] = {.name = "minRefresh", .status = S},
    [DNS_MAX_REFRESH] = {.name = "maxRefresh", .status = S},
    [DNS_TIMEOUT] = {.name = "timeout", .status = S},
};
/* Proxy spec.sidecar: the capture listeners (proxy/capture.c), Istio's ports by default. */
enum { SC_OUT_PORT, SC_IN_PORT, SC_DETECT_TO, SC_OUT_POLICY, SC__N };
static const pt_cfg_field_t sidecar_fields[SC__N] = {
    [SC_OUT_PORT] = {.name = "outboundPort", .status = S},
    [SC_IN_PORT] = {.name = "inboundPort", .status = S},
    [SC_DETECT_TO] = {.name = "protocolDetectionTimeout", .status = S},
    [SC_OUT_POLICY] = {.name = "outboundTrafficPolicy", .status = S},
};
/* Istio's MeshConfig.outboundTrafficPolicy. */
enum { OTP_MODE, OTP__N };
static const pt_cfg_field_t outbound_policy_fields[OTP__N] = {
    [OTP_MODE] = {.name = "mode", .status = S},
};
/* Proxy spec.workload: who this proxy is, for sourceLabels / sourceNamespace matches. */
enum { WL_NAME, WL_NS, WL_SA, WL_LABELS, WL__N };
static const pt_cfg_field_t workload_fields[WL__N] = {
    [WL_NAME] = {.name = "name", .status = S},
    [WL_NS] = {.name = "namespace", .status = S},
    [WL_SA] = {.name = "serviceAccount", .status = S},
    [WL_LABELS] = {.name = "labels", .status = S},
};

/* Proxy spec.tracing: sampling as Istio's meshConfig tracing.sampling, collectors, the queue. */
enum {
    TR_SAMPLING,
    TR_SERVICE,
    TR_OTLP,
    TR_ZIPKIN,
    TR_MAXQ,
    TR_BATCH,
    TR_FLUSH,
    TR_TIMEOUT,
    TR__N
};
static const pt_cfg_field_t tracing_fields[TR__N] = {
    [TR_SAMPLING] = {.name = "sampling", .status = S},
    [TR_SERVICE] = {.name = "serviceName", .status = S},
    [TR_OTLP] = {.name = "otlp", .status = S},
    [TR_ZIPKIN] = {.name = "zipkin", .status = S},
    [TR_MAXQ] = {.name = "maxQueue", .status = S},
    [TR_BATCH] = {.name = "batchSize", .status = S},
    [TR_FLUSH] = {.name = "flushInterval", .status = S},
    [TR_TIMEOUT] = {.name = "exportTimeout", .status = S},
};
enum { TC_ADDRESS, TC_PATH, TC__N };
static const pt_cfg_field_t collector_fields[TC__N] = {
    [TC_ADDRESS] = {.name = "address", .status = S},
    [TC_PATH] = {.name = "path", .status = S},
};

void pt__cfg_proxy_defaults(pt_proxy_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->bind_address = "127.0.0.1";
    s->admin_address = "127.0.0.1";
    s->admin_port = 15000;
    s->concurrency = 2;
    s->max_connections = 10000;
    s->max_request_line_bytes = 8192;
    s->max_header_bytes = 61440;
    s->max_headers = 100;
    s->header_timeout_ms = 10000;
    s->idle_timeout_ms = 300000;
    s->upstream_idle_timeout_ms = 60000;
    s->connect_timeout_ms = 10000;
    s->drain_timeout_ms = 5000;
    s->http2.max_concurrent_streams = 100; /* Istio's edge profile */
    s->access_log = "/dev/stdout";
    s->retry_body_limit = 65536;
    s->metrics = true;
    s->root_namespace = "istio-system"; /* Istio's meshConfig rootNamespace */
    s->dns.min_refresh_ms = 5000;       /* Envoy's dns_min_refresh_rate */
    s->dns.max_refresh_ms = 300000;
    s->dns.timeout_ms = 5000;
    s->identity.trust_domain = "cluster.local";
    s->tracing.sampling_ppm = 10000; /* Istio's default sampling: 1 % */
    s->tracing.max_queue = 512;
    s->tracing.batch_size = 512;
    s->tracing.flush_interval_ms = 1000;
    s->tracing.export_timeout_ms = 2000;
    s->tracing.otlp.path = "/v1/traces";
    s->tracing.zipkin.path = "/api/v2/spans";
}

/* A collector {address: "IP:PORT" (IPv6 in brackets), path: "/..."}. */
static void read_collector(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           pt_trace_collector_t *c)
{
    const pt_cfg_node_t *f[TC__N];
    if (!MAP(cx, n, path, collector_fields, f))
        return;
    const char *s;
    pt_cfg_path_t ap = PT_PATH_KEY(path, "address");
    if (f[TC_ADDRESS] == NULL) {
        pt__cfg_error(cx, n, &ap, "is required");
    } else if (pt__cfg_nonempty_str(cx, f[TC_ADDRESS], &ap, &s)) {
        const char *colon = strrchr(s, ':');
        char host[64];
        size_t hl = colon ? (size_t)(colon - s) : 0;
        if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
            s++, hl -= 2;
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        bool ok = colon != NULL && hl > 0 && hl < sizeof(host) && end != NULL && *end == '\0' &&
                  colon[1] != '\0' && port > 0 && port <= 65535;
        if (ok) {
            memcpy(host, s, hl);
            host[hl] = '\0';
            ok = pt__cfg_is_ip_literal(host, &c->addr, &c->addr_len);
        }
        if (ok) {
            if (c->addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&c->addr)->sin6_port = htons((uint16_t)port);
            else
                ((struct sockaddr_in *)&c->addr)->sin_port = htons((uint16_t)port);
            c->address = pt__cfg_out_str(cx, f[TC_ADDRESS]->str);
        } else {
            pt__cfg_error(cx, f[TC_ADDRESS], &ap,
                          "must be IP:PORT (an IPv4 address, or an IPv6 one in brackets)");
        }
    }
    if (f[TC_PATH] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(path, "path");
        if (pt__cfg_nonempty_str(cx, f[TC_PATH], &pp, &s)) {
            bool ok = s[0] == '/';
            for (const char *q = s; *q && ok; q++)
                ok = *q > 0x20 && *q < 0x7f;
            if (ok)
                c->path = pt__cfg_out_str(cx, s);
            else
                pt__cfg_error(cx, f[TC_PATH], &pp, "must be an absolute path without spaces");
        }
    }
}

static void read_tracing(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                         pt_tracing_settings_t *t)
{
    pt_cfg_path_t tp = PT_PATH_KEY(spec_path, "tracing");
    const pt_cfg_node_t *f[TR__N];
    if (!MAP(cx, n, &tp, tracing_fields, f))
        return;
    t->enabled = true;
    const char *s;
    long long v;
    if (f[TR_SAMPLING] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "sampling");
        if (pt__cfg_str(cx, f[TR_SAMPLING], &p, &s)) {
            char *end = NULL;
            double d = strtod(s, &end);
            if (*s == '\0' || end == NULL || *end != '\0' || !(d >= 0.0 && d <= 100.0))
                pt__cfg_error(cx, f[TR_SAMPLING], &p, "must be a percentage from 0 to 100");
            else
                t->sampling_ppm = (uint32_t)(d * 10000.0 + 0.5);
        }
    }
    if (f[TR_SERVICE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "serviceName");
        if (pt__cfg_nonempty_str(cx, f[TR_SERVICE], &p, &s))
            t->service_name = pt__cfg_out_str(cx, s);
    }
    if (f[TR_OTLP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "otlp");
        read_collector(cx, f[TR_OTLP], &p, &t->otlp);
    }
    if (f[TR_ZIPKIN] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "zipkin");
        read_collector(cx, f[TR_ZIPKIN], &p, &t->zipkin);
    }
    if (f[TR_MAXQ] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "maxQueue");
        if (pt__cfg_int(cx, f[TR_MAXQ], &p, 1, 1 << 20, &v))
            t->max_queue = (uint32_t)v;
    }
    if (f[TR_BATCH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "batchSize");
        if (pt__cfg_int(cx, f[TR_BATCH], &p, 1, 10000, &v))
            t->batch_size = (uint32_t)v;
    }
    uint64_t ms;
    if (f[TR_FLUSH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "flushInterval");
        if (pt__cfg_duration(cx, f[TR_FLUSH], &p, &ms)) {
            if (ms == 0)
                pt__cfg_error(cx, f[TR_FLUSH], &p, "must be greater than 0");
            else
                t->flush_interval_ms = ms;
        }
    }
    if (f[TR_TIMEOUT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "exportTimeout");
        if (pt__cfg_duration(cx, f[TR_TIMEOUT], &p, &ms)) {
            if (ms == 0)
                pt__cfg_error(cx, f[TR_TIMEOUT], &p, "must be greater than 0");
            else
                t->export_timeout_ms = ms;
        }
    }
}

/* spec.identity: all three files or none; the trust domain as a SPIFFE ID has it. */
static void read_identity(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                          pt_identity_settings_t *id)
{
    pt_cfg_path_t ip = PT_PATH_KEY(spec_path, "identity");
    const pt_cfg_node_t *f[ID__N];
    if (!MAP(cx, n, &ip, identity_fields, f))
        return;
    const char **dst[ID__N] = {&id->certificate_chain, &id->private_key, &id->root_certificates,
                               &id->trust_domain};
    for (int i = 0; i < ID__N; i++) {
        pt_cfg_path_t p = PT_PATH_KEY(&ip, identity_fields[i].name);
        const char *v;
        if (f[i] == NULL) {
            if (i != ID_TRUST_DOMAIN)
                pt__cfg_error(cx, n, &p, "required (the workload's mTLS identity is three files)");
            continue;
        }
        if (pt__cfg_nonempty_str(cx, f[i], &p, &v))
            *dst[i] = pt__cfg_out_str(cx, v);
    }
    for (const char *t = id->trust_domain; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '.' || *t == '-' ||
              *t == '_')) {
            pt_cfg_path_t p = PT_PATH_KEY(&ip, "trustDomain");
            pt__cfg_error(cx, f[ID_TRUST_DOMAIN], &p,
                          "must be lower-case letters, digits, '.', '-' or '_', got \"%s\"",
                          id->trust_domain);
            break;
        }
}

/* A DNS server: an IPv4 address with an optional ":port", or an IPv6 one, bracketed when a port
 * follows ("[::1]:53"). */
static bool is_dns_server(const char *s)
{
    char host[64];
    const char *port = NULL;
    size_t len = strlen(s);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return false;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port = close + 2;
    } else if (strchr(s, ':') != strrchr(s, ':') || len >= sizeof(host)) {
        return pt__cfg_is_ip_literal(s, NULL, NULL); /* bare IPv6 */
    } else {
        memcpy(host, s, len + 1);
        char *colon = strchr(host, ':');
        if (colon != NULL) {
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port != NULL) {
        char *end;
        unsigned long p = strtoul(port, &end, 10);
        if (*port == '\0' || *end != '\0' || p == 0 || p > 65535)
            return false;
    }
    return pt__cfg_is_ip_literal(host, NULL, NULL);
}

/* spec.dns: servers are joined into c-ares' "a,b" form in the snapshot arena. */
/* spec.chaosApi: present turns the API on, on loopback and Toxiproxy's port unless set, since
 * whoever reaches it can open listeners. */
static void read_chaos_api(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                           pt_chaos_api_settings_t *ca)
{
    pt_cfg_path_t cp = PT_PATH_KEY(spec_path, "chaosApi");
    const pt_cfg_node_t *f[CA__N];
    if (!MAP(cx, n, &cp, chaos_api_fields, f))
        return;
    ca->enabled = true;
    ca->address = "127.0.0.1";
    ca->port = 8474;
    if (f[CA_ADDRESS] != NULL) {
        pt_cfg_path_t ap = PT_PATH_KEY(&cp, "address");
        const char *a;
        if (pt__cfg_nonempty_str(cx, f[CA_ADDRESS], &ap, &a)) {
            if (pt__cfg_is_ip_literal(a, NULL, NULL))
                ca->address = pt__cfg_out_str(cx, a);
            else
                pt__cfg_error(cx, f[CA_ADDRESS], &ap, "must be an IPv4 or IPv6 address, got \"%s\"",
                              a);
        }
    }
    long long v;
    pt_cfg_path_t pp = PT_PATH_KEY(&cp, "port");
    if (f[CA_PORT] != NULL && pt__cfg_int(cx, f[CA_PORT], &pp, 1, 65535, &v))
        ca->port = (uint16_t)v;
}

static void read_dns(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                     pt_dns_settings_t *d)
{
    pt_cfg_path_t dp = PT_PATH_KEY(spec_path, "dns");
    const pt_cfg_node_t *f[DNS__N];
    if (!MAP(cx, n, &dp, dns_fields, f))
        return;
    if (f[DNS_SERVERS] != NULL) {
        pt_cfg_path_t sp = PT_PATH_KEY(&dp, "servers");
        const pt_cfg_node_t *seq = f[DNS_SERVERS];
        if (pt__cfg_is_seq(cx, seq, &sp)) {
            char *csv = NULL;
            for (size_t i = 0; i < seq->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&sp, i);
                const char *v;
                if (!pt__cfg_nonempty_str(cx, seq->items[i], &ip, &v))
                    continue;
                if (!is_dns_server(v)) {
                    pt__cfg_error(cx, seq->items[i], &ip,
                                  "must be an IP address with an optional port (\"10.0.0.10\", "
                                  "\"127.0.0.1:5353\", \"[::1]:53\"), got \"%s\"",
                                  v);
                    continue;
                }
                csv = csv == NULL ? pt_arena_strdup(cx->out, v)
                                  : pt_arena_printf(cx->out, "%s,%s", csv, v);
            }
            d->servers = csv;
        }
    }
    uint64_t ms;
    pt_cfg_path_t minp = PT_PATH_KEY(&dp, "minRefresh");
    if (f[DNS_MIN_REFRESH] != NULL && pt__cfg_duration(cx, f[DNS_MIN_REFRESH], &minp, &ms)) {
        if (ms < 100)
            pt__cfg_error(cx, f[DNS_MIN_REFRESH], &minp, "must be at least 100ms");
        else
            d->min_refresh_ms = ms;
    }
    pt_cfg_path_t maxp = PT_PATH_KEY(&dp, "maxRefresh");
    if (f[DNS_MAX_REFRESH] != NULL && pt__cfg_duration(cx, f[DNS_MAX_REFRESH], &maxp, &ms))
        d->max_refresh_ms = ms;
    if (d->max_refresh_ms < d->min_refresh_ms)
        pt__cfg_error(cx, f[DNS_MAX_REFRESH] ? f[DNS_MAX_REFRESH] : n, &maxp,
                      "must not be below minRefresh (%llu ms)",
                      (unsigned long long)d->min_refresh_ms);
    pt_cfg_path_t tp = PT_PATH_KEY(&dp, "timeout");
    if (f[DNS_TIMEOUT] != NULL && pt__cfg_duration(cx, f[DNS_TIMEOUT], &tp, &ms)) {
        if (ms < 10 || ms > 60000)
            pt__cfg_error(cx, f[DNS_TIMEOUT], &tp, "must be between 10ms and 60s");
        else
            d->timeout_ms = ms;
    }
}

/* spec.sidecar: present (even empty) turns the capture listeners on. */
static void read_sidecar(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                         pt_sidecar_settings_t *sc)
{
    pt_cfg_path_t scp = PT_PATH_KEY(spec_path, "sidecar");
    const pt_cfg_node_t *f[SC__N];
    sc->enabled = true;
    sc->outbound_port = 15001;
    sc->inbound_port = 15006;
    sc->protocol_detection_timeout_ms = 100;
    if (n->type == PT_CFG_NULL)
        return; /* "sidecar:" alone: every default */
    if (!MAP(cx, n, &scp, sidecar_fields, f))
        return;
    long long v;
    if (f[SC_OUT_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&scp, "outboundPort");
        if (pt__cfg_int(cx, f[SC_OUT_PORT], &p, 1, 65535, &v))
            sc->outbound_port = (uint16_t)v;
    }
    if (f[SC_IN_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&scp, "inboundPort");
        if (pt__cfg_int(cx, f[SC_IN_PORT], &p, 1, 65535, &v))
            sc->inbound_port = (uint16_t)v;
    }
    if (sc->outbound_port == sc->inbound_port) {
        pt_cfg_path_t p = PT_PATH_KEY(&scp, "inboundPort");
        pt__cfg_error(cx, f[SC_IN_PORT] ? f[SC_IN_PORT] : n, &p,
                      "must differ from outboundPort (%u)", (unsigned)sc->outbound_port);
    }
    if (f[SC_OUT_POLICY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&scp, "outboundTrafficPolicy");
        const pt_cfg_node_t *of[OTP__N];
        if (MAP(cx, f[SC_OUT_POLICY], &p, outbound_policy_fields, of) && of[OTP_MODE] != NULL) {
            pt_cfg_path_t mp = PT_PATH_KEY(&p, "mode");
            const char *mode;
            if (pt__cfg_str(cx, of[OTP_MODE], &mp, &mode)) {
                if (strcmp(mode, "REGISTRY_ONLY") == 0)
                    sc->registry_only = true;
                else if (strcmp(mode, "ALLOW_ANY") != 0)
                    pt__cfg_error(cx, of[OTP_MODE], &mp,
                                  "unknown value \"%s\" (expected ALLOW_ANY or REGISTRY_ONLY)",
                                  mode);
            }
        }
    }
    if (f[SC_DETECT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&scp, "protocolDetectionTimeout");
        uint64_t ms;
        if (pt__cfg_duration(cx, f[SC_DETECT_TO], &p, &ms)) {
            if (ms == 0 || ms > 60000)
                pt__cfg_error(cx, f[SC_DETECT_TO], &p, "must be greater than 0 and at most 60s");
            else
                sc->protocol_detection_timeout_ms = ms;
        }
    }
}

static void read_http2(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                       pt_http2_settings_t *h)
{
    pt_cfg_path_t hp = PT_PATH_KEY(spec_path, "http2");
    const pt_cfg_node_t *f[H2__N];
    if (!MAP(cx, n, &hp, http2_fields, f))
        return;
    long long v;
    pt_cfg_path_t p = PT_PATH_KEY(&hp, "maxConcurrentStreams");
    if (f[H2_MAX_STREAMS] != NULL && pt__cfg_int(cx, f[H2_MAX_STREAMS], &p, 1, INT32_MAX, &v))
        h->max_concurrent_streams = (uint32_t)v;
}

/* spec.workload: strings go straight to the snapshot arena. */
static void read_workload(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                          pt_workload_t *w)
{
    pt_cfg_path_t wp = PT_PATH_KEY(spec_path, "workload");
    const pt_cfg_node_t *f[WL__N];
    if (!MAP(cx, n, &wp, workload_fields, f))
        return;
    const char *s;
    if (f[WL_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "name");
        if (pt__cfg_nonempty_str(cx, f[WL_NAME], &p, &s))
            w->name = pt__cfg_out_str(cx, s);
    }
    if (f[WL_NS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "namespace");
        if (pt__cfg_nonempty_str(cx, f[WL_NS], &p, &s))
            w->ns = pt__cfg_out_str(cx, s);
    }
    if (f[WL_SA] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "serviceAccount");
        if (pt__cfg_nonempty_str(cx, f[WL_SA], &p, &s))
            w->service_account = pt__cfg_out_str(cx, s);
    }
    if (f[WL_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "labels");
        w->labels = pt__cfg_read_labels(cx, f[WL_LABELS], &p, &w->n_labels);
    }
}

/* `petrel run` opens the access log (appending, created if absent) before any listener and
 * stops when it cannot: checked here too, so that `petrel validate` refuses it as well (a
 * warning with --lenient, away from the machine it runs on). Nothing is created. */
static void check_access_log(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             const char *file)
{
    if (file[0] == '\0' || strcmp(file, "/dev/stdout") == 0 || strcmp(file, "/dev/stderr") == 0)
        return;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", file);
    bool exists = access(file, F_OK) == 0;
    if (exists ? access(file, W_OK) == 0 : access(dirname(dir), W_OK | X_OK) == 0)
        return;
    const char *why = strerror(errno);
    if (cx->errors->is_lenient)
        pt__cfg_warn(cx, n, path, "cannot write %s here: %s (`petrel run` needs it)", file, why);
    else
        pt__cfg_error(cx, n, path, "cannot write %s: %s", file, why);
}

/* {interval, timeout}, both required: a PING every interval, the connection closed when nothing
 * answers within timeout. A PING more often than every 100ms is a flood to most servers. */
static void read_h2_keepalive(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                              const pt_cfg_path_t *spec_path, pt_h2_keepalive_settings_t *k)
{
    pt_cfg_path_t kp = PT_PATH_KEY(spec_path, "upstreamHttp2Keepalive");
    const pt_cfg_node_t *f[H2KA__N];
    if (!MAP(cx, n, &kp, h2_keepalive_fields, f))
        return;
    uint64_t interval_ms = 0, timeout_ms = 0;
    pt_cfg_path_t ip = PT_PATH_KEY(&kp, "interval");
    pt_cfg_path_t tp = PT_PATH_KEY(&kp, "timeout");
    bool ok = true;
    if (f[H2KA_INTERVAL] == NULL) {
        pt__cfg_error(cx, n, &ip, "is required");
        ok = false;
    } else if (!pt__cfg_duration(cx, f[H2KA_INTERVAL], &ip, &interval_ms)) {
        ok = false;
    } else if (interval_ms < 100) {
        pt__cfg_error(cx, f[H2KA_INTERVAL], &ip, "must be at least 100ms");
        ok = false;
    }
    if (f[H2KA_TIMEOUT] == NULL) {
        pt__cfg_error(cx, n, &tp, "is required");
        ok = false;
    } else if (!pt__cfg_duration(cx, f[H2KA_TIMEOUT], &tp, &timeout_ms)) {
        ok = false;
    } else if (timeout_ms == 0) {
        pt__cfg_error(cx, f[H2KA_TIMEOUT], &tp, "must be greater than 0");
        ok = false;
    }
    if (ok) {
        k->interval_ms = interval_ms;
        k->timeout_ms = timeout_ms;
    }
}

/* An IPv4 or IPv6 literal to listen on, copied into the snapshot. */
static void read_address(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                         const char **out)
{
    const char *a;
    if (!pt__cfg_nonempty_str(cx, n, path, &a))
        return;
    if (pt__cfg_is_ip_literal(a, NULL, NULL))
        *out = pt__cfg_out_str(cx, a);
    else
        pt__cfg_error(cx, n, path, "must be an IPv4 or IPv6 address, got \"%s\"", a);
}

void pt__cfg_read_proxy(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                        const pt_cfg_node_t *spec)
{
    pt_res_proxy_t *p = pt_arena_calloc(cx->tmp, sizeof(*p));
    p->meta = *meta;
    pt_proxy_settings_t *s = &p->settings;
    pt__cfg_proxy_defaults(s);
    PUSH(cx, set->proxies, set->n_proxies, set->cap_proxies, p);
    if (spec == NULL)
        return; /* no spec: every default */

    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    const pt_cfg_node_t *f[PX__N];
    if (!MAP(cx, spec, &sp, proxy_fields, f))
        return;
    long long v;
#define FIELD_PATH(i) pt_cfg_path_t fp_##i = PT_PATH_KEY(&sp, proxy_fields[i].name)
#define INT_FIELD(i, lo, hi, dst)                                                                  \
    do {                                                                                           \
        FIELD_PATH(i);                                                                             \
        if (f[i] != NULL && pt__cfg_int(cx, f[i], &fp_##i, (lo), (hi), &v))                        \
            (dst) = (__typeof__(dst))v;                                                            \
    } while (0)
#define DURATION_FIELD(i, allow_zero, dst)                                                         \
    do {                                                                                           \
        FIELD_PATH(i);                                                                             \
        uint64_t ms;                                                                               \
        if (f[i] != NULL && pt__cfg_duration(cx, f[i], &fp_##i, &ms)) {                            \
            if (ms == 0 && !(allow_zero))                                                          \
                pt__cfg_error(cx, f[i], &fp_##i, "must be greater than 0");                        \
            else                                                                                   \
                (dst) = ms;                                                                        \
        }                                                                                          \
    } while (0)

    if (f[PX_BIND] != NULL) {
        FIELD_PATH(PX_BIND);
        read_address(cx, f[PX_BIND], &fp_PX_BIND, &s->bind_address);
    }
    if (f[PX_ADMIN_ADDR] != NULL) {
        FIELD_PATH(PX_ADMIN_ADDR);
        read_address(cx, f[PX_ADMIN_ADDR], &fp_PX_ADMIN_ADDR, &s->admin_address);
    }
    INT_FIELD(PX_ADMIN, 0, 65535, s->admin_port);
    INT_FIELD(PX_CONC, 1, 64, s->concurrency);
    INT_FIELD(PX_MAXCONN, 1, 1000000, s->max_connections);
    INT_FIELD(PX_MAXLINE, 256, 1048576, s->max_request_line_bytes);
    INT_FIELD(PX_MAXHDRBYTES, 1024, 1048576, s->max_header_bytes);
    INT_FIELD(PX_MAXHDRS, 1, 10000, s->max_headers);
    DURATION_FIELD(PX_HDR_TO, false, s->header_timeout_ms);
    DURATION_FIELD(PX_IDLE_TO, false, s->idle_timeout_ms);
    DURATION_FIELD(PX_UP_IDLE_TO, false, s->upstream_idle_timeout_ms);
    DURATION_FIELD(PX_CONNECT_TO, false, s->connect_timeout_ms);
    DURATION_FIELD(PX_DRAIN_TO, true, s->drain_timeout_ms);
    /* A pod's own terminationDrainDuration (proxy.istio.io/config, passed by petrel inject)
     * wins over the mesh's drainTimeout, as Istio's annotation over its mesh default. */
    const char *pod_drain = getenv(PT_DRAIN_DURATION_ENV);
    uint64_t pod_drain_ms;
    if (pod_drain != NULL && pt__cfg_parse_duration(pod_drain, &pod_drain_ms) == 0)
        s->drain_timeout_ms = pod_drain_ms;
    else if (pod_drain != NULL)
        pt__cfg_error(cx, spec, &sp,
                      "environment " PT_DRAIN_DURATION_ENV ": \"%s\" is not a duration such as "
                      "\"5s\" or \"500ms\"",
                      pod_drain);
    if (f[PX_ACCESS_LOG] != NULL) {
        FIELD_PATH(PX_ACCESS_LOG);
        const char *a;
        if (pt__cfg_str(cx, f[PX_ACCESS_LOG], &fp_PX_ACCESS_LOG, &a)) {
            s->access_log = a;
            check_access_log(cx, f[PX_ACCESS_LOG], &fp_PX_ACCESS_LOG, a);
        }
    }
    if (f[PX_WORKLOAD] != NULL)
        read_workload(cx, f[PX_WORKLOAD], &sp, &s->workload);
    if (f[PX_ROOT_NS] != NULL) {
        FIELD_PATH(PX_ROOT_NS);
        const char *a;
        if (pt__cfg_nonempty_str(cx, f[PX_ROOT_NS], &fp_PX_ROOT_NS, &a))
            s->root_namespace = pt__cfg_out_str(cx, a);
    }
    if (f[PX_DNS] != NULL)
        read_dns(cx, f[PX_DNS], &sp, &s->dns);
    if (f[PX_CHAOS_API] != NULL)
        read_chaos_api(cx, f[PX_CHAOS_API], &sp, &s->chaos_api);
    if (f[PX_IDENTITY] != NULL) {
        read_identity(cx, f[PX_IDENTITY], &sp, &s->identity);
        p->identity = f[PX_IDENTITY];
    }
    if (f[PX_TRACING] != NULL)
        read_tracing(cx, f[PX_TRACING], &sp, &s->tracing);
    if (f[PX_CREDENTIALS_DIR] != NULL) {
        FIELD_PATH(PX_CREDENTIALS_DIR);
        const char *d;
        if (pt__cfg_nonempty_str(cx, f[PX_CREDENTIALS_DIR], &fp_PX_CREDENTIALS_DIR, &d))
            s->credentials_directory = pt__cfg_out_str(cx, d);
    }
    INT_FIELD(PX_PROM_PORT, 0, 65535, s->prometheus_port);
    INT_FIELD(PX_HEALTH_PORT, 0, 65535, s->health_port);
    if (f[PX_LOG_FORMAT] != NULL) {
        FIELD_PATH(PX_LOG_FORMAT);
        const char *a;
        if (pt__cfg_str(cx, f[PX_LOG_FORMAT], &fp_PX_LOG_FORMAT, &a)) {
            if (strcmp(a, "text") == 0)
                s->access_log_json = false;
            else if (strcmp(a, "json") == 0)
                s->access_log_json = true;
            else
                pt__cfg_error(cx, f[PX_LOG_FORMAT], &fp_PX_LOG_FORMAT,
                              "unknown value \"%s\" (expected text or json)", a);
        }
    }
    INT_FIELD(PX_RETRY_BODY_LIMIT, 0, 16777216, s->retry_body_limit);
    if (f[PX_FAULT_PER_ATTEMPT] != NULL) {
        FIELD_PATH(PX_FAULT_PER_ATTEMPT);
        pt__cfg_read_bool(cx, f[PX_FAULT_PER_ATTEMPT], &fp_PX_FAULT_PER_ATTEMPT,
                          &s->fault_per_attempt);
    }
    if (f[PX_METRICS] != NULL) {
        FIELD_PATH(PX_METRICS);
        pt__cfg_read_bool(cx, f[PX_METRICS], &fp_PX_METRICS, &s->metrics);
    }
    if (f[PX_H2_UPGRADE] != NULL) {
        /* meshConfig's h2UpgradePolicy. DEFAULT (or none) is DO_NOT_UPGRADE there; here it
         * still upgrades what goes over mesh mTLS (config/compile.c), which only an explicit
         * DO_NOT_UPGRADE keeps HTTP/1.1. */
        FIELD_PATH(PX_H2_UPGRADE);
        static const char *const upgrade_names[] = PT_H2_UPGRADE_NAMES;
        int policy;
        if (pt__cfg_enum(cx, f[PX_H2_UPGRADE], &fp_PX_H2_UPGRADE, upgrade_names, 3, &policy))
            s->h2_upgrade = (uint8_t)policy;
    }
    if (f[PX_HTTP2] != NULL)
        read_http2(cx, f[PX_HTTP2], &sp, &s->http2);
    if (f[PX_UP_H2_KEEPALIVE] != NULL)
        read_h2_keepalive(cx, f[PX_UP_H2_KEEPALIVE], &sp, &s->upstream_h2_keepalive);
    if (f[PX_MIRROR_KEEP_HOST] != NULL) {
        FIELD_PATH(PX_MIRROR_KEEP_HOST);
        pt__cfg_read_bool(cx, f[PX_MIRROR_KEEP_HOST], &fp_PX_MIRROR_KEEP_HOST,
                          &s->mirror_keep_host);
    }
    /* "sidecar:" with no value turns the sidecar on with every default (the map reader
     * treats a null value as absent, so look for the key itself). */
    const pt_cfg_node_t *sidecar = f[PX_SIDECAR] ? f[PX_SIDECAR] : pt__cfg_node_at(spec, "sidecar");
    if (sidecar != NULL)
        read_sidecar(cx, sidecar, &sp, &s->sidecar);
    /* A sidecar serves Istio's scrape port and readiness probe, as istio-proxy does, so pod
     * annotations and probes written for Istio work; 0 turns either off. A gateway keeps them
     * off unless set: several gateways or harnesses may share a host. */
    if (s->sidecar.enabled && f[PX_PROM_PORT] == NULL)
        s->prometheus_port = 15090;
    if (s->sidecar.enabled && f[PX_HEALTH_PORT] == NULL)
        s->health_port = 15021;
#undef FIELD_PATH
#undef INT_FIELD
#undef DURATION_FIELD
}
