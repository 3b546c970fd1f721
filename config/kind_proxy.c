/* config/kind_proxy.c
 * Petrel's own kind, petrel.io/v1alpha1 Proxy: the process settings (bind address, ports,
 * limits, timeouts, access log) over Petrel's defaults, and spec.workload, who this proxy is
 * for sourceLabels / sourceNamespace matches. */
#include <string.h>

#include "kinds.h"

/* Petrel's own kind (petrel.io/v1alpha1 Proxy). */
enum {
    PX_BIND,
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
    PX_SIDECAR,
    PX__N
};
static const pt_cfg_field_t proxy_fields[PX__N] = {
    [PX_BIND] = {.name = "bindAddress", .status = S},
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
    [PX_SIDECAR] = {.name = "sidecar", .status = S},
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

void pt__cfg_proxy_defaults(pt_proxy_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->bind_address = "127.0.0.1";
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
    s->access_log = "/dev/stdout";
    s->workload.ns = "default";
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

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
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
        const char *a;
        if (pt__cfg_nonempty_str(cx, f[PX_BIND], &fp_PX_BIND, &a)) {
            if (pt__cfg_is_ip_literal(a, NULL, NULL))
                s->bind_address = a;
            else
                pt__cfg_error(cx, f[PX_BIND], &fp_PX_BIND,
                              "must be an IPv4 or IPv6 address, got \"%s\"", a);
        }
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
    if (f[PX_ACCESS_LOG] != NULL) {
        FIELD_PATH(PX_ACCESS_LOG);
        const char *a;
        if (pt__cfg_str(cx, f[PX_ACCESS_LOG], &fp_PX_ACCESS_LOG, &a))
            s->access_log = a;
    }
    if (f[PX_WORKLOAD] != NULL)
        read_workload(cx, f[PX_WORKLOAD], &sp, &s->workload);
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
    if (f[PX_SIDECAR] != NULL)
        read_sidecar(cx, f[PX_SIDECAR], &sp, &s->sidecar);
#undef FIELD_PATH
#undef INT_FIELD
#undef DURATION_FIELD
}
