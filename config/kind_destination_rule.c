/* config/kind_destination_rule.c
 * The DestinationRule kind: host, subsets (labels) and traffic policies, of which Petrel
 * enforces the load balancer (simple, or consistentHash with ring hash or Maglev), the
 * connection pool (circuit breakers), outlier detection and the retry budget for the host, per
 * port and per subset, and client TLS (tls: DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, originated
 * by proxy/tls_upstream.c). The rest is checked for shape and warned about. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "policy.h"

enum {
    CT_MODE,
    CT_CERT,
    CT_KEY,
    CT_CA,
    CT_CREDENTIAL,
    CT_SANS,
    CT_SNI,
    CT_SKIP_VERIFY,
    CT_CRL,
    CT__N
};
static const pt_cfg_field_t client_tls_fields[CT__N] = {
    [CT_MODE] = {.name = "mode", .status = S},
    [CT_CERT] = {.name = "clientCertificate", .status = S},
    [CT_KEY] = {.name = "privateKey", .status = S},
    [CT_CA] = {.name = "caCertificates", .status = S},
    [CT_CREDENTIAL] = {.name = "credentialName", .status = S},
    [CT_SANS] = {.name = "subjectAltNames", .status = S},
    [CT_SNI] = {.name = "sni", .status = S},
    [CT_SKIP_VERIFY] = {.name = "insecureSkipVerify", .status = S},
    [CT_CRL] = {"caCrl", U, PT_SHAPE_SCALAR, NULL, 0}, /* revocation lists: not checked yet */
};
enum { KA_PROBES, KA_TIME, KA_INTERVAL, KA__N };
static const pt_cfg_field_t keepalive_fields[KA__N] = {
    [KA_PROBES] = {.name = "probes", .status = S},
    [KA_TIME] = {.name = "time", .status = S},
    [KA_INTERVAL] = {.name = "interval", .status = S},
};
enum { TCP_MAXCONN, TCP_CONNECT_TO, TCP_KA, TCP_MAXDUR, TCP_IDLE, TCP__N };
static const pt_cfg_field_t pool_tcp_fields[TCP__N] = {
    [TCP_MAXCONN] = {.name = "maxConnections", .status = S},
    [TCP_CONNECT_TO] = {.name = "connectTimeout", .status = S},
    [TCP_KA] = {.name = "tcpKeepalive", .status = S},
    [TCP_MAXDUR] = {.name = "maxConnectionDuration", .status = S},
    [TCP_IDLE] = {"idleTimeout", A, PT_SHAPE_SCALAR, NULL, 0}, /* TCP routes: not yet */
};
enum {
    PH_PENDING,
    PH_MAXRQ,
    PH_PER_CONN,
    PH_RETRIES,
    PH_IDLE,
    PH_H2UP,
    PH_CLIENT,
    PH_STREAMS,
    PH__N
};
/* maxConcurrentStreams is what Envoy would announce to an HTTP/2 upstream: accepted with a
 * warning (Petrel announces nghttp2's default; the upstream's own limit is honoured). */
static const pt_cfg_field_t pool_http_fields[PH__N] = {
    [PH_PENDING] = {.name = "http1MaxPendingRequests", .status = S},
    [PH_MAXRQ] = {.name = "http2MaxRequests", .status = S},
    [PH_PER_CONN] = {.name = "maxRequestsPerConnection", .status = S},
    [PH_RETRIES] = {.name = "maxRetries", .status = S},
    [PH_IDLE] = {.name = "idleTimeout", .status = S},
    [PH_H2UP] = {.name = "h2UpgradePolicy", .status = S},
    [PH_CLIENT] = {.name = "useClientProtocol", .status = S},
    [PH_STREAMS] = {"maxConcurrentStreams", A, PT_SHAPE_SCALAR, NULL, 0},
};
enum { CP_TCP, CP_HTTP, CP__N };
static const pt_cfg_field_t conn_pool_fields[CP__N] = {
    [CP_TCP] = {.name = "tcp", .status = S},
    [CP_HTTP] = {.name = "http", .status = S},
};
enum { RB_PERCENT, RB_MIN_CONC, RB__N };
static const pt_cfg_field_t retry_budget_fields[RB__N] = {
    [RB_PERCENT] = {.name = "percent", .status = S},
    [RB_MIN_CONC] = {.name = "minRetryConcurrency", .status = S},
};
enum {
    OD_SPLIT,
    OD_LOCAL,
    OD_GATEWAY,
    OD_5XX,
    OD_ERRORS,
    OD_INTERVAL,
    OD_BASE,
    OD_MAX_EJECT,
    OD_MIN_HEALTH,
    OD__N
};
static const pt_cfg_field_t outlier_fields[OD__N] = {
    [OD_SPLIT] = {.name = "splitExternalLocalOriginErrors", .status = S},
    [OD_LOCAL] = {.name = "consecutiveLocalOriginFailures", .status = S},
    [OD_GATEWAY] = {.name = "consecutiveGatewayErrors", .status = S},
    [OD_5XX] = {.name = "consecutive5xxErrors", .status = S},
    [OD_ERRORS] = {.name = "consecutiveErrors", .status = S}, /* deprecated */
    [OD_INTERVAL] = {.name = "interval", .status = S},
    [OD_BASE] = {.name = "baseEjectionTime", .status = S},
    [OD_MAX_EJECT] = {.name = "maxEjectionPercent", .status = S},
    [OD_MIN_HEALTH] = {.name = "minHealthPercent", .status = S},
};
static const pt_cfg_field_t tunnel_fields[] = {
    {"protocol", A, PT_SHAPE_SCALAR, NULL, 0},
    {"targetHost", A, PT_SHAPE_SCALAR, NULL, 0},
    {"targetPort", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t proxy_protocol_fields[] = {{"version", A, PT_SHAPE_SCALAR, NULL, 0}};
static const pt_cfg_field_t locality_lb_fields[] = {
    {"distribute", A, PT_SHAPE_SEQ, NULL, 0},
    {"failover", A, PT_SHAPE_SEQ, NULL, 0},
    {"failoverPriority", A, PT_SHAPE_SEQ, NULL, 0},
    {"enabled", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t warmup_fields[] = {
    {"duration", A, PT_SHAPE_SCALAR, NULL, 0},
    {"minimumPercent", A, PT_SHAPE_SCALAR, NULL, 0},
    {"aggression", A, PT_SHAPE_SCALAR, NULL, 0},
};

/* DestinationRule */
enum { DRF_HOST, DRF_TRAFFIC_POLICY, DRF_SUBSETS, DRF_EXPORT_TO, DRF_WORKLOAD_SELECTOR, DRF__N };
static const pt_cfg_field_t dr_fields[DRF__N] = {
    [DRF_HOST] = {.name = "host", .status = S},
    [DRF_TRAFFIC_POLICY] = {.name = "trafficPolicy", .status = S},
    [DRF_SUBSETS] = {.name = "subsets", .status = S},
    [DRF_EXPORT_TO] = {.name = "exportTo", .status = A},
    [DRF_WORKLOAD_SELECTOR] = {"workloadSelector", U, PT_SHAPE_MAP,
                               SUB(pt__cfg_match_selector_fields)},
};
enum {
    TP_LB,
    TP_CONN_POOL,
    TP_OUTLIER,
    TP_TLS,
    TP_PORT_LEVEL,
    TP_TUNNEL,
    TP_PROXY_PROTOCOL,
    TP_RETRY_BUDGET,
    TP__N
};
static const pt_cfg_field_t traffic_policy_fields[TP__N] = {
    [TP_LB] = {.name = "loadBalancer", .status = S},
    [TP_CONN_POOL] = {.name = "connectionPool", .status = S},
    [TP_OUTLIER] = {.name = "outlierDetection", .status = S},
    [TP_TLS] = {.name = "tls", .status = S},
    [TP_PORT_LEVEL] = {.name = "portLevelSettings", .status = S},
    [TP_TUNNEL] = {"tunnel", U, PT_SHAPE_MAP, SUB(tunnel_fields)},
    [TP_PROXY_PROTOCOL] = {"proxyProtocol", U, PT_SHAPE_MAP, SUB(proxy_protocol_fields)},
    [TP_RETRY_BUDGET] = {.name = "retryBudget", .status = S},
};
enum { PLS_PORT, PLS_LB, PLS_CONN_POOL, PLS_OUTLIER, PLS_TLS, PLS__N };
static const pt_cfg_field_t port_policy_fields[PLS__N] = {
    [PLS_PORT] = {.name = "port", .status = S},
    [PLS_LB] = {.name = "loadBalancer", .status = S},
    [PLS_CONN_POOL] = {.name = "connectionPool", .status = S},
    [PLS_OUTLIER] = {.name = "outlierDetection", .status = S},
    [PLS_TLS] = {.name = "tls", .status = S},
};
enum { SUB_NAME, SUB_LABELS, SUB_TRAFFIC_POLICY, SUB__N };
static const pt_cfg_field_t subset_fields[SUB__N] = {
    [SUB_NAME] = {.name = "name", .status = S},
    [SUB_LABELS] = {.name = "labels", .status = S},
    [SUB_TRAFFIC_POLICY] = {.name = "trafficPolicy", .status = S},
};
enum { LB_SIMPLE, LB_CONSISTENT_HASH, LB_LOCALITY, LB_WARMUP_SECS, LB_WARMUP, LB__N };
static const pt_cfg_field_t lb_fields[LB__N] = {
    [LB_SIMPLE] = {.name = "simple", .status = S},
    [LB_CONSISTENT_HASH] = {.name = "consistentHash", .status = S},
    [LB_LOCALITY] = {"localityLbSetting", U, PT_SHAPE_MAP, SUB(locality_lb_fields)},
    [LB_WARMUP_SECS] = {"warmupDurationSecs", U, PT_SHAPE_SCALAR, NULL, 0},
    [LB_WARMUP] = {"warmup", U, PT_SHAPE_MAP, SUB(warmup_fields)},
};
enum { CH_HEADER, CH_COOKIE, CH_SOURCE_IP, CH_QUERY, CH_RING, CH_MAGLEV, CH_MIN_RING, CH__N };
static const pt_cfg_field_t consistent_hash_fields[CH__N] = {
    [CH_HEADER] = {.name = "httpHeaderName", .status = S},
    [CH_COOKIE] = {.name = "httpCookie", .status = S},
    [CH_SOURCE_IP] = {.name = "useSourceIp", .status = S},
    [CH_QUERY] = {.name = "httpQueryParameterName", .status = S},
    [CH_RING] = {.name = "ringHash", .status = S},
    [CH_MAGLEV] = {.name = "maglev", .status = S},
    [CH_MIN_RING] = {.name = "minimumRingSize",
                     .status = S}, /* deprecated by Istio for ringHash; still read */
};
enum { CK_NAME, CK_PATH, CK_TTL, CK_ATTRIBUTES, CK__N };
static const pt_cfg_field_t cookie_fields[CK__N] = {
    [CK_NAME] = {.name = "name", .status = S},
    /* path and ttl only shape a cookie the proxy generates; Petrel does not generate one yet
     * (a request without the cookie gets a random endpoint), so ttl, which asks for it, gets
     * a warning. */
    [CK_PATH] = {.name = "path", .status = A},
    [CK_TTL] = {"ttl", U, PT_SHAPE_SCALAR, NULL, 0},
    [CK_ATTRIBUTES] = {"attributes", U, PT_SHAPE_SEQ, NULL, 0},
};
enum { RH_MIN, RH__N };
static const pt_cfg_field_t ring_hash_fields[RH__N] = {
    [RH_MIN] = {.name = "minimumRingSize", .status = S},
};
enum { MG_TABLE, MG__N };
static const pt_cfg_field_t maglev_fields[MG__N] = {
    [MG_TABLE] = {.name = "tableSize", .status = S},
};

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    for (uint64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

/* DNS-1123 label, as Istio requires of subset names. */
static bool is_dns_label(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

static void read_consistent_hash(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 pt_lb_config_t *lb, bool *ok)
{
    const pt_cfg_node_t *f[CH__N];
    if (!MAP(cx, n, path, consistent_hash_fields, f)) {
        *ok = false;
        return;
    }
    lb->policy = PT_LB_RING_HASH;
    size_t keys = 0;
    if (f[CH_HEADER] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "httpHeaderName");
        const char *s;
        keys++;
        if (pt__cfg_nonempty_str(cx, f[CH_HEADER], &p, &s)) {
            bool valid = true;
            for (const char *c = s; *c && valid; c++)
                valid = pt__cfg_is_token_char((unsigned char)*c);
            if (!valid) {
                pt__cfg_error(cx, f[CH_HEADER], &p, "not a valid header name");
                *ok = false;
            }
            lb->hash_key = PT_LB_HASH_HEADER;
            lb->hash_name = pt__cfg_out_lower(cx, s);
            lb->hash_name_len = strlen(s);
        } else {
            *ok = false;
        }
    }
    if (f[CH_COOKIE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "httpCookie");
        const pt_cfg_node_t *cf[CK__N];
        keys++;
        if (MAP(cx, f[CH_COOKIE], &p, cookie_fields, cf)) {
            pt_cfg_path_t np = PT_PATH_KEY(&p, "name");
            const char *s;
            if (cf[CK_NAME] == NULL) {
                pt__cfg_error(cx, f[CH_COOKIE], &np, "required");
                *ok = false;
            } else if (pt__cfg_nonempty_str(cx, cf[CK_NAME], &np, &s)) {
                lb->hash_key = PT_LB_HASH_COOKIE;
                lb->hash_name = pt__cfg_out_str(cx, s);
                lb->hash_name_len = strlen(s);
            } else {
                *ok = false;
            }
            if (cf[CK_PATH] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "path");
                pt__cfg_str(cx, cf[CK_PATH], &pp, &s);
            }
        } else {
            *ok = false;
        }
    }
    if (f[CH_SOURCE_IP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "useSourceIp");
        bool b = false;
        if (!pt__cfg_read_bool(cx, f[CH_SOURCE_IP], &p, &b))
            *ok = false;
        if (b) {
            keys++;
            lb->hash_key = PT_LB_HASH_SOURCE_IP;
        }
    }
    if (f[CH_QUERY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "httpQueryParameterName");
        const char *s;
        keys++;
        if (pt__cfg_nonempty_str(cx, f[CH_QUERY], &p, &s)) {
            lb->hash_key = PT_LB_HASH_QUERY;
            lb->hash_name = pt__cfg_out_str(cx, s);
            lb->hash_name_len = strlen(s);
        } else {
            *ok = false;
        }
    }
    if (keys == 0 && *ok) {
        pt__cfg_error(cx, n, path,
                      "needs one of httpHeaderName, httpCookie, useSourceIp or "
                      "httpQueryParameterName");
        *ok = false;
    } else if (keys > 1) {
        pt__cfg_error(cx, n, path,
                      "give only one of httpHeaderName, httpCookie, useSourceIp or "
                      "httpQueryParameterName");
        *ok = false;
    }

    long long v;
    int algos = (f[CH_RING] != NULL) + (f[CH_MAGLEV] != NULL) + (f[CH_MIN_RING] != NULL);
    if (algos > 1) {
        pt__cfg_error(cx, n, path, "give only one of ringHash, maglev or minimumRingSize");
        *ok = false;
    }
    if (f[CH_MIN_RING] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "minimumRingSize");
        if (pt__cfg_int(cx, f[CH_MIN_RING], &p, 0, 8388608, &v))
            lb->min_ring_size = (uint64_t)v;
        else
            *ok = false;
    }
    if (f[CH_RING] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "ringHash");
        const pt_cfg_node_t *rf[RH__N];
        if (MAP(cx, f[CH_RING], &p, ring_hash_fields, rf) && rf[RH_MIN] != NULL) {
            pt_cfg_path_t mp = PT_PATH_KEY(&p, "minimumRingSize");
            if (pt__cfg_int(cx, rf[RH_MIN], &mp, 0, 8388608, &v))
                lb->min_ring_size = (uint64_t)v;
            else
                *ok = false;
        }
    }
    if (f[CH_MAGLEV] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "maglev");
        const pt_cfg_node_t *mf[MG__N];
        lb->policy = PT_LB_MAGLEV;
        if (MAP(cx, f[CH_MAGLEV], &p, maglev_fields, mf) && mf[MG_TABLE] != NULL) {
            pt_cfg_path_t tp = PT_PATH_KEY(&p, "tableSize");
            if (!pt__cfg_int(cx, mf[MG_TABLE], &tp, 0, 5000011, &v)) {
                *ok = false;
            } else if (v != 0 && !is_prime((uint64_t)v)) {
                pt__cfg_error(cx, mf[MG_TABLE], &tp, "must be a prime number, got %lld", v);
                *ok = false;
            } else {
                lb->maglev_table_size = (uint64_t)v;
            }
        }
    }
}

/* loadBalancer: exactly one of simple or consistentHash. */
static void read_load_balancer(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                               pt_res_lb_t *out)
{
    const pt_cfg_node_t *f[LB__N];
    memset(out, 0, sizeof(*out));
    if (!MAP(cx, n, path, lb_fields, f))
        return;
    bool ok = true;
    if (f[LB_SIMPLE] != NULL && f[LB_CONSISTENT_HASH] != NULL) {
        pt__cfg_error(cx, n, path, "give only one of simple or consistentHash");
        return;
    }
    if (f[LB_SIMPLE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "simple");
        const char *s;
        if (!pt__cfg_str(cx, f[LB_SIMPLE], &p, &s))
            return;
        if (!strcmp(s, "UNSPECIFIED") || !strcmp(s, "ROUND_ROBIN"))
            out->lb.policy = PT_LB_ROUND_ROBIN;
        else if (!strcmp(s, "LEAST_REQUEST") || !strcmp(s, "LEAST_CONN"))
            out->lb.policy = PT_LB_LEAST_REQUEST; /* LEAST_CONN: Istio's deprecated alias */
        else if (!strcmp(s, "RANDOM"))
            out->lb.policy = PT_LB_RANDOM;
        else if (!strcmp(s, "PASSTHROUGH"))
            out->lb.policy = PT_LB_PASSTHROUGH; /* the sidecar's original destination */
        else {
            pt__cfg_error(cx, f[LB_SIMPLE], &p,
                          "unknown load balancer \"%s\" (expected UNSPECIFIED, ROUND_ROBIN, "
                          "LEAST_REQUEST, RANDOM or PASSTHROUGH)",
                          s);
            ok = false;
        }
    }
    if (f[LB_CONSISTENT_HASH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "consistentHash");
        read_consistent_hash(cx, f[LB_CONSISTENT_HASH], &p, &out->lb, &ok);
    }
    out->is_set = ok;
}

/* A limit of connectionPool, up to 2^32 - 1. 0 is proto3's "unset" to Istio, which then
 * keeps its default (no limit). */
static void read_limit(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                       uint32_t *out)
{
    long long v;
    if (n != NULL && pt__cfg_int(cx, n, path, 0, 4294967295LL, &v) && v > 0)
        *out = (uint32_t)v;
}

static void read_seconds(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                         uint32_t *out)
{
    uint64_t ms;
    if (n != NULL && pt__cfg_duration(cx, n, path, &ms))
        *out = (uint32_t)((ms + 999) / 1000);
}

/* connectionPool {tcp, http}: Istio's ConnectionPoolSettings over its defaults. */
static void read_conn_pool(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           pt_conn_pool_settings_t *out)
{
    pt_conn_pool_settings_default(out);
    const pt_cfg_node_t *f[CP__N];
    if (!MAP(cx, n, path, conn_pool_fields, f))
        return;
    if (f[CP_TCP] != NULL) {
        pt_cfg_path_t tp = PT_PATH_KEY(path, "tcp");
        const pt_cfg_node_t *tf[TCP__N];
        if (MAP(cx, f[CP_TCP], &tp, pool_tcp_fields, tf)) {
            pt_cfg_path_t p1 = PT_PATH_KEY(&tp, "maxConnections");
            read_limit(cx, tf[TCP_MAXCONN], &p1, &out->max_connections);
            pt_cfg_path_t p2 = PT_PATH_KEY(&tp, "connectTimeout");
            if (tf[TCP_CONNECT_TO] != NULL)
                pt__cfg_duration(cx, tf[TCP_CONNECT_TO], &p2, &out->connect_timeout_ms);
            pt_cfg_path_t p3 = PT_PATH_KEY(&tp, "maxConnectionDuration");
            if (tf[TCP_MAXDUR] != NULL)
                pt__cfg_duration(cx, tf[TCP_MAXDUR], &p3, &out->max_connection_duration_ms);
            if (tf[TCP_IDLE] != NULL) {
                pt_cfg_path_t ip = PT_PATH_KEY(&tp, "idleTimeout");
                pt__cfg_warn(cx, tf[TCP_IDLE], &ip,
                             "TCP routes do not time out idle sessions yet: ignored");
            }
            pt_cfg_path_t kp = PT_PATH_KEY(&tp, "tcpKeepalive");
            const pt_cfg_node_t *kf[KA__N];
            if (tf[TCP_KA] != NULL && MAP(cx, tf[TCP_KA], &kp, keepalive_fields, kf)) {
                out->has_keepalive = true;
                pt_cfg_path_t pp = PT_PATH_KEY(&kp, "probes");
                long long v;
                if (kf[KA_PROBES] != NULL && pt__cfg_int(cx, kf[KA_PROBES], &pp, 1, 127, &v))
                    out->keepalive_probes = (uint32_t)v;
                pt_cfg_path_t tmp = PT_PATH_KEY(&kp, "time");
                read_seconds(cx, kf[KA_TIME], &tmp, &out->keepalive_time_s);
                pt_cfg_path_t ip = PT_PATH_KEY(&kp, "interval");
                read_seconds(cx, kf[KA_INTERVAL], &ip, &out->keepalive_interval_s);
            }
        }
    }
    if (f[CP_HTTP] != NULL) {
        pt_cfg_path_t hp = PT_PATH_KEY(path, "http");
        const pt_cfg_node_t *hf[PH__N];
        if (MAP(cx, f[CP_HTTP], &hp, pool_http_fields, hf)) {
            pt_cfg_path_t p1 = PT_PATH_KEY(&hp, "http1MaxPendingRequests");
            read_limit(cx, hf[PH_PENDING], &p1, &out->max_pending);
            pt_cfg_path_t p2 = PT_PATH_KEY(&hp, "http2MaxRequests");
            read_limit(cx, hf[PH_MAXRQ], &p2, &out->max_requests);
            pt_cfg_path_t p3 = PT_PATH_KEY(&hp, "maxRequestsPerConnection");
            long long v;
            if (hf[PH_PER_CONN] != NULL && pt__cfg_int(cx, hf[PH_PER_CONN], &p3, 0, 2147483647, &v))
                out->max_requests_per_connection = (uint32_t)v; /* 0: unlimited */
            pt_cfg_path_t p4 = PT_PATH_KEY(&hp, "maxRetries");
            read_limit(cx, hf[PH_RETRIES], &p4, &out->max_retries);
            pt_cfg_path_t up = PT_PATH_KEY(&hp, "h2UpgradePolicy");
            static const char *const upgrade_names[] = PT_H2_UPGRADE_NAMES;
            int policy;
            if (hf[PH_H2UP] != NULL &&
                pt__cfg_enum(cx, hf[PH_H2UP], &up, upgrade_names, 3, &policy))
                out->h2_upgrade = (uint8_t)policy;
            pt_cfg_path_t cp = PT_PATH_KEY(&hp, "useClientProtocol");
            if (hf[PH_CLIENT] != NULL)
                pt__cfg_read_bool(cx, hf[PH_CLIENT], &cp, &out->use_client_protocol);
            if (hf[PH_STREAMS] != NULL) {
                pt_cfg_path_t wp = PT_PATH_KEY(&hp, "maxConcurrentStreams");
                pt__cfg_warn(cx, hf[PH_STREAMS], &wp,
                             "Petrel announces nghttp2's default to HTTP/2 upstreams: ignored");
            }
            pt_cfg_path_t p5 = PT_PATH_KEY(&hp, "idleTimeout");
            if (hf[PH_IDLE] != NULL)
                pt__cfg_duration(cx, hf[PH_IDLE], &p5, &out->idle_timeout_ms);
        }
    }
}

/* retryBudget {percent, minRetryConcurrency}: Envoy's concurrency budget. */
static void read_retry_budget(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                              pt_res_traffic_policy_t *tp)
{
    const pt_cfg_node_t *f[RB__N];
    if (!MAP(cx, n, path, retry_budget_fields, f))
        return;
    tp->has_retry_budget = true;
    tp->budget_percent = 20.0;
    tp->budget_min_concurrency = 3;
    if (f[RB_PERCENT] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(path, "percent");
        const pt_cfg_node_t *vn = f[RB_PERCENT];
        /* DoubleValue: a plain number, or {value: n} in its JSON object form */
        if (vn->type == PT_CFG_MAP && vn->n_pairs == 1 && !strcmp(vn->pairs[0].key->str, "value"))
            vn = vn->pairs[0].value;
        const char *s;
        if (pt__cfg_str(cx, vn, &pp, &s)) {
            char *end = NULL;
            double v = strtod(s, &end);
            if (*s == '\0' || end == NULL || *end != '\0' || !(v >= 0.0 && v <= 100.0))
                pt__cfg_error(cx, vn, &pp, "must be a number from 0 to 100");
            else
                tp->budget_percent = v;
        }
    }
    if (f[RB_MIN_CONC] != NULL) {
        pt_cfg_path_t mp = PT_PATH_KEY(path, "minRetryConcurrency");
        long long v;
        if (pt__cfg_int(cx, f[RB_MIN_CONC], &mp, 0, 4294967295LL, &v))
            tp->budget_min_concurrency = (uint32_t)v;
    }
}

/* outlierDetection, with Istio's defaults for what it leaves out. */
static void read_outlier(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                         pt_res_outlier_t *out)
{
    const pt_cfg_node_t *f[OD__N];
    if (!MAP(cx, n, path, outlier_fields, f))
        return;
    pt_outlier_config_t *od = &out->od;
    *od = (pt_outlier_config_t){.consecutive_5xx = 5,
                                .consecutive_local = 5,
                                .interval_ms = 10000,
                                .base_ejection_ms = 30000,
                                .max_ejection_percent = 10};
    bool ok = true;
    long long v;
    static const struct {
        int field;
        long long max;
    } ints[] = {{OD_5XX, UINT32_MAX},   {OD_GATEWAY, UINT32_MAX}, {OD_LOCAL, UINT32_MAX},
                {OD_ERRORS, INT32_MAX}, {OD_MAX_EJECT, 100},      {OD_MIN_HEALTH, 100}};
    long long got[OD__N];
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        int k = ints[i].field;
        got[k] = -1;
        if (f[k] == NULL)
            continue;
        pt_cfg_path_t p = PT_PATH_KEY(path, outlier_fields[k].name);
        if (pt__cfg_int(cx, f[k], &p, 0, ints[i].max, &v))
            got[k] = v;
        else
            ok = false;
    }
    if (got[OD_5XX] >= 0)
        od->consecutive_5xx = (uint32_t)got[OD_5XX];
    if (got[OD_GATEWAY] >= 0)
        od->consecutive_gateway = (uint32_t)got[OD_GATEWAY];
    if (got[OD_LOCAL] >= 0)
        od->consecutive_local = (uint32_t)got[OD_LOCAL];
    if (got[OD_MAX_EJECT] >= 0)
        od->max_ejection_percent = (uint32_t)got[OD_MAX_EJECT];
    if (got[OD_MIN_HEALTH] >= 0)
        od->min_health_percent = (uint32_t)got[OD_MIN_HEALTH];
    if (f[OD_ERRORS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "consecutiveErrors");
        /* Istio reads the old field as gateway errors (502, 503, 504), unless the new
         * fields are given. */
        if (got[OD_5XX] < 0 && got[OD_GATEWAY] < 0 && got[OD_ERRORS] >= 0) {
            od->consecutive_gateway = (uint32_t)got[OD_ERRORS];
            pt__cfg_warn(cx, f[OD_ERRORS], &p,
                         "deprecated: read as consecutiveGatewayErrors; use that or "
                         "consecutive5xxErrors");
        } else if (got[OD_ERRORS] >= 0) {
            pt__cfg_warn(cx, f[OD_ERRORS], &p,
                         "deprecated and ignored: consecutive5xxErrors or "
                         "consecutiveGatewayErrors is given");
        }
    }
    if (f[OD_SPLIT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "splitExternalLocalOriginErrors");
        ok = pt__cfg_read_bool(cx, f[OD_SPLIT], &p, &od->split_local_origin) && ok;
    }
    static const int durations[] = {OD_INTERVAL, OD_BASE};
    for (size_t i = 0; i < 2; i++) {
        int k = durations[i];
        if (f[k] == NULL)
            continue;
        pt_cfg_path_t p = PT_PATH_KEY(path, outlier_fields[k].name);
        uint64_t ms;
        if (!pt__cfg_duration(cx, f[k], &p, &ms)) {
            ok = false;
        } else if (ms == 0) {
            pt__cfg_error(cx, f[k], &p, "must be at least 1ms");
            ok = false;
        } else if (k == OD_INTERVAL) {
            od->interval_ms = ms;
        } else {
            od->base_ejection_ms = ms;
        }
    }
    out->is_set = ok;
}

/* ClientTLSSettings, with Istio's validation: MUTUAL needs a certificate and key (or a
 * credentialName), ISTIO_MUTUAL takes its files from the workload identity only. */
static void read_client_tls(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                            pt_res_client_tls_t *out)
{
    const pt_cfg_node_t *f[CT__N];
    memset(out, 0, sizeof(*out));
    if (!MAP(cx, n, path, client_tls_fields, f))
        return;
    bool ok = true;
    out->node = n;
    out->path = pt__cfg_path_dup(cx->tmp, path);
    if (f[CT_MODE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "mode");
        const char *s;
        if (!pt__cfg_str(cx, f[CT_MODE], &p, &s)) {
            ok = false;
        } else if (!strcmp(s, "DISABLE")) {
            out->mode = PT_UPSTREAM_TLS_DISABLE;
        } else if (!strcmp(s, "SIMPLE")) {
            out->mode = PT_UPSTREAM_TLS_SIMPLE;
        } else if (!strcmp(s, "MUTUAL")) {
            out->mode = PT_UPSTREAM_TLS_MUTUAL;
        } else if (!strcmp(s, "ISTIO_MUTUAL")) {
            out->mode = PT_UPSTREAM_TLS_ISTIO_MUTUAL;
        } else {
            pt__cfg_error(cx, f[CT_MODE], &p,
                          "unknown mode \"%s\" (DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL)", s);
            ok = false;
        }
    }
    static const int files[] = {CT_CERT, CT_KEY, CT_CA, CT_CREDENTIAL, CT_SNI};
    const char **dst[] = {&out->client_certificate, &out->private_key, &out->ca_certificates,
                          &out->credential_name, &out->sni};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (f[files[i]] == NULL)
            continue;
        pt_cfg_path_t p = PT_PATH_KEY(path, client_tls_fields[files[i]].name);
        const char *s;
        if (!pt__cfg_str(cx, f[files[i]], &p, &s))
            ok = false;
        else if (s[0] != '\0') /* Istio treats "" as not given */
            *dst[i] = pt__cfg_out_str(cx, s);
    }
    if (f[CT_SANS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "subjectAltNames");
        const pt_cfg_node_t *seq = f[CT_SANS];
        if (pt__cfg_is_seq(cx, seq, &p) && seq->n_items > 0) {
            out->sans = pt_arena_calloc(cx->out, seq->n_items * sizeof(*out->sans));
            for (size_t i = 0; i < seq->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const char *s;
                if (pt__cfg_nonempty_str(cx, seq->items[i], &ip, &s))
                    out->sans[out->n_sans++] = pt__cfg_out_str(cx, s);
                else
                    ok = false;
            }
        }
    }
    if (f[CT_SKIP_VERIFY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "insecureSkipVerify");
        ok = pt__cfg_read_bool(cx, f[CT_SKIP_VERIFY], &p, &out->insecure_skip_verify) && ok;
    }
    if (out->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL) {
        static const int own[] = {CT_CERT, CT_KEY, CT_CA, CT_CREDENTIAL};
        for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
            if (f[own[i]] == NULL)
                continue;
            pt_cfg_path_t p = PT_PATH_KEY(path, client_tls_fields[own[i]].name);
            pt__cfg_error(cx, f[own[i]], &p,
                          "cannot be given with mode ISTIO_MUTUAL (it uses the workload "
                          "identity's certificate and roots)");
            ok = false;
        }
    } else if (out->mode == PT_UPSTREAM_TLS_MUTUAL && out->credential_name == NULL &&
               (out->client_certificate == NULL || out->private_key == NULL)) {
        pt__cfg_error(cx, n, path,
                      "mode MUTUAL needs clientCertificate and privateKey, or credentialName");
        ok = false;
    } else if ((out->client_certificate == NULL) != (out->private_key == NULL) &&
               out->mode != PT_UPSTREAM_TLS_DISABLE) {
        pt__cfg_error(cx, n, path, "clientCertificate and privateKey go together");
        ok = false;
    }
    out->is_set = ok;
}

static void read_traffic_policy(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                pt_res_traffic_policy_t *tp)
{
    const pt_cfg_node_t *f[TP__N];
    if (!MAP(cx, n, path, traffic_policy_fields, f))
        return;
    if (f[TP_LB] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "loadBalancer");
        read_load_balancer(cx, f[TP_LB], &p, &tp->lb);
    }
    if (f[TP_CONN_POOL] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "connectionPool");
        tp->has_pool = true;
        read_conn_pool(cx, f[TP_CONN_POOL], &p, &tp->pool);
    }
    if (f[TP_RETRY_BUDGET] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "retryBudget");
        read_retry_budget(cx, f[TP_RETRY_BUDGET], &p, tp);
    }
    if (f[TP_OUTLIER] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "outlierDetection");
        read_outlier(cx, f[TP_OUTLIER], &p, &tp->outlier);
    }
    if (f[TP_TLS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "tls");
        read_client_tls(cx, f[TP_TLS], &p, &tp->tls);
    }
    if (f[TP_PORT_LEVEL] == NULL)
        return;
    pt_cfg_path_t pp = PT_PATH_KEY(path, "portLevelSettings");
    const pt_cfg_node_t *pl = f[TP_PORT_LEVEL];
    if (!pt__cfg_is_seq(cx, pl, &pp) || pl->n_items == 0)
        return;
    tp->ports = pt_arena_calloc(cx->tmp, pl->n_items * sizeof(*tp->ports));
    for (size_t i = 0; i < pl->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(&pp, i);
        const pt_cfg_node_t *pf[PLS__N];
        if (!MAP(cx, pl->items[i], &ip, port_policy_fields, pf))
            continue;
        pt_res_port_lb_t pls = {0};
        pt_cfg_path_t portp = PT_PATH_KEY(&ip, "port");
        if (pf[PLS_PORT] == NULL) {
            pt__cfg_error(cx, pl->items[i], &portp, "required");
            continue;
        }
        const pt_cfg_node_t *sf[PS__N];
        if (!MAP(cx, pf[PLS_PORT], &portp, pt__cfg_port_selector_fields, sf))
            continue;
        pt_cfg_path_t np = PT_PATH_KEY(&portp, "number");
        long long v;
        if (sf[PS_NUMBER] == NULL) {
            pt__cfg_error(cx, pf[PLS_PORT], &np, "required");
            continue;
        }
        if (!pt__cfg_int(cx, sf[PS_NUMBER], &np, 1, 65535, &v))
            continue;
        pls.port = (uint16_t)v;
        bool dup = false;
        for (size_t j = 0; j < tp->n_ports; j++)
            dup = dup || tp->ports[j].port == pls.port;
        if (dup) {
            pt__cfg_error(cx, sf[PS_NUMBER], &np, "port %u has settings already", (unsigned)v);
            continue;
        }
        if (pf[PLS_LB] != NULL) {
            pt_cfg_path_t lp = PT_PATH_KEY(&ip, "loadBalancer");
            read_load_balancer(cx, pf[PLS_LB], &lp, &pls.lb);
        }
        if (pf[PLS_CONN_POOL] != NULL) {
            pt_cfg_path_t cp = PT_PATH_KEY(&ip, "connectionPool");
            pls.has_pool = true;
            read_conn_pool(cx, pf[PLS_CONN_POOL], &cp, &pls.pool);
        }
        if (pf[PLS_OUTLIER] != NULL) {
            pt_cfg_path_t op = PT_PATH_KEY(&ip, "outlierDetection");
            read_outlier(cx, pf[PLS_OUTLIER], &op, &pls.outlier);
        }
        if (pf[PLS_TLS] != NULL) {
            pt_cfg_path_t tp2 = PT_PATH_KEY(&ip, "tls");
            read_client_tls(cx, pf[PLS_TLS], &tp2, &pls.tls);
        }
        tp->ports[tp->n_ports++] = pls;
    }
}

void pt__cfg_read_destination_rule(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                   const pt_cfg_node_t *spec)
{
    pt_res_dr_t *dr = pt_arena_calloc(cx->tmp, sizeof(*dr));
    dr->meta = *meta;
    PUSH(cx, set->drs, set->n_drs, set->cap_drs, dr);

    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    const pt_cfg_node_t *f[DRF__N];
    if (!MAP(cx, spec, &sp, dr_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "host");
    const char *host;
    if (f[DRF_HOST] == NULL) {
        pt__cfg_error(cx, spec, &hp, "required");
    } else if (pt__cfg_nonempty_str(cx, f[DRF_HOST], &hp, &host)) {
        const char *why = pt__cfg_host_problem(host);
        if (why != NULL)
            pt__cfg_error(cx, f[DRF_HOST], &hp, "invalid host \"%s\": %s", host, why);
        else
            dr->host = pt__cfg_out_lower(cx, host);
    }
    if (f[DRF_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[DRF_EXPORT_TO], &p);
    }
    if (f[DRF_TRAFFIC_POLICY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "trafficPolicy");
        read_traffic_policy(cx, f[DRF_TRAFFIC_POLICY], &p, &dr->policy);
    }
    if (f[DRF_SUBSETS] == NULL)
        return;
    pt_cfg_path_t ssp = PT_PATH_KEY(&sp, "subsets");
    const pt_cfg_node_t *ss = f[DRF_SUBSETS];
    if (!pt__cfg_is_seq(cx, ss, &ssp) || ss->n_items == 0)
        return;
    dr->subsets = pt_arena_calloc(cx->tmp, ss->n_items * sizeof(*dr->subsets));
    for (size_t i = 0; i < ss->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(&ssp, i);
        const pt_cfg_node_t *sf[SUB__N];
        if (!MAP(cx, ss->items[i], &ip, subset_fields, sf))
            continue;
        pt_res_subset_t sub = {0};
        pt_cfg_path_t np = PT_PATH_KEY(&ip, "name");
        const char *name;
        if (sf[SUB_NAME] == NULL) {
            pt__cfg_error(cx, ss->items[i], &np, "required");
            continue;
        }
        if (!pt__cfg_nonempty_str(cx, sf[SUB_NAME], &np, &name))
            continue;
        if (!is_dns_label(name)) {
            pt__cfg_error(cx, sf[SUB_NAME], &np,
                          "invalid subset name \"%s\": must be a DNS label (lower-case letters, "
                          "digits and '-', at most 63)",
                          name);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < dr->n_subsets; j++)
            dup = dup || strcmp(dr->subsets[j].name, name) == 0;
        if (dup) {
            pt__cfg_error(cx, sf[SUB_NAME], &np, "duplicate subset \"%s\"", name);
            continue;
        }
        sub.name = pt__cfg_out_str(cx, name);
        if (sf[SUB_LABELS] != NULL) {
            pt_cfg_path_t lp = PT_PATH_KEY(&ip, "labels");
            sub.labels = pt__cfg_read_labels(cx, sf[SUB_LABELS], &lp, &sub.n_labels);
        }
        if (sf[SUB_TRAFFIC_POLICY] != NULL) {
            pt_cfg_path_t tp = PT_PATH_KEY(&ip, "trafficPolicy");
            read_traffic_policy(cx, sf[SUB_TRAFFIC_POLICY], &tp, &sub.policy);
        }
        dr->subsets[dr->n_subsets++] = sub;
    }
}
