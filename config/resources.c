/* config/resources.c
 * Per-kind schema: one field table per object of the Istio / Petrel API, and the readers that
 * turn a checked document into the typed model of config/resources.h. The field names are
 * Istio's, exactly (https://istio.io/latest/docs/reference/config/networking/). A field Istio
 * has and Petrel does not implement is listed as PT_FIELD_UNSUPPORTED, so that it is reported
 * ("not supported by Petrel yet") instead of silently ignored; supporting it later means
 * flipping its status here and reading it below.
 *
 * Readers report every problem they find and keep going; they never stop at the first. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "resources.h"

#define S PT_FIELD_SUPPORTED
#define A PT_FIELD_ACCEPTED
#define U PT_FIELD_UNSUPPORTED
#define NF(t) (sizeof(t) / sizeof((t)[0]))
#define MAP(cx, n, path, t, out) pt__cfg_map((cx), (n), (path), (t), NF(t), (out))

/* ---- tables --------------------------------------------------------------------------- */

enum { DOC_API, DOC_KIND, DOC_META, DOC_SPEC, DOC__N };
static const pt_cfg_field_t doc_fields[DOC__N] = {
    [DOC_API] = {"apiVersion", S},
    [DOC_KIND] = {"kind", S},
    [DOC_META] = {"metadata", S},
    [DOC_SPEC] = {"spec", S},
};

enum { META_NAME, META_NS, META_LABELS, META_ANNOTATIONS, META__N };
static const pt_cfg_field_t meta_fields[META__N] = {
    [META_NAME] = {"name", S},
    [META_NS] = {"namespace", S},
    [META_LABELS] = {"labels", A},
    [META_ANNOTATIONS] = {"annotations", A},
};

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
    PX__N
};
static const pt_cfg_field_t proxy_fields[PX__N] = {
    [PX_BIND] = {"bindAddress", S},
    [PX_ADMIN] = {"adminPort", S},
    [PX_CONC] = {"concurrency", S},
    [PX_MAXCONN] = {"maxConnections", S},
    [PX_MAXLINE] = {"maxRequestLineBytes", S},
    [PX_MAXHDRBYTES] = {"maxHeaderBytes", S},
    [PX_MAXHDRS] = {"maxHeaders", S},
    [PX_HDR_TO] = {"headerTimeout", S},
    [PX_IDLE_TO] = {"idleTimeout", S},
    [PX_UP_IDLE_TO] = {"upstreamIdleTimeout", S},
    [PX_CONNECT_TO] = {"connectTimeout", S},
    [PX_DRAIN_TO] = {"drainTimeout", S},
    [PX_ACCESS_LOG] = {"accessLog", S},
};

/* Gateway */
enum { GW_SERVERS, GW_SELECTOR, GW__N };
static const pt_cfg_field_t gateway_fields[GW__N] = {
    [GW_SERVERS] = {"servers", S},
    /* Petrel is the gateway: every Gateway loaded applies, whatever it selects. */
    [GW_SELECTOR] = {"selector", A},
};
enum { SRV_PORT, SRV_HOSTS, SRV_NAME, SRV_BIND, SRV_TLS, SRV_DEFAULT_ENDPOINT, SRV__N };
static const pt_cfg_field_t server_fields[SRV__N] = {
    [SRV_PORT] = {"port", S}, [SRV_HOSTS] = {"hosts", S},
    [SRV_NAME] = {"name", S}, [SRV_BIND] = {"bind", U},
    [SRV_TLS] = {"tls", U},   [SRV_DEFAULT_ENDPOINT] = {"defaultEndpoint", U},
};
enum { PORT_NUMBER, PORT_PROTOCOL, PORT_NAME, PORT_TARGET, PORT__N };
static const pt_cfg_field_t gw_port_fields[PORT__N] = {
    [PORT_NUMBER] = {"number", S},
    [PORT_PROTOCOL] = {"protocol", S},
    [PORT_NAME] = {"name", S},
    [PORT_TARGET] = {"targetPort", U},
};

/* VirtualService */
enum { VS_HOSTS, VS_GATEWAYS, VS_HTTP, VS_TCP, VS_TLS, VS_EXPORT_TO, VS__N };
static const pt_cfg_field_t vs_fields[VS__N] = {
    [VS_HOSTS] = {"hosts", S}, [VS_GATEWAYS] = {"gateways", S}, [VS_HTTP] = {"http", S},
    [VS_TCP] = {"tcp", S},     [VS_TLS] = {"tls", U},           [VS_EXPORT_TO] = {"exportTo", A},
};
enum {
    HR_NAME,
    HR_MATCH,
    HR_ROUTE,
    HR_DIRECT,
    HR_TIMEOUT,
    HR_REDIRECT,
    HR_DELEGATE,
    HR_REWRITE,
    HR_RETRIES,
    HR_FAULT,
    HR_MIRROR,
    HR_MIRRORS,
    HR_MIRROR_PERCENT,
    HR_MIRROR_PERCENTAGE,
    HR_CORS,
    HR_HEADERS,
    HR__N
};
static const pt_cfg_field_t http_route_fields[HR__N] = {
    [HR_NAME] = {"name", S},
    [HR_MATCH] = {"match", S},
    [HR_ROUTE] = {"route", S},
    [HR_DIRECT] = {"directResponse", S},
    [HR_TIMEOUT] = {"timeout", S},
    [HR_REDIRECT] = {"redirect", U},
    [HR_DELEGATE] = {"delegate", U},
    [HR_REWRITE] = {"rewrite", U},
    [HR_RETRIES] = {"retries", U},
    [HR_FAULT] = {"fault", U},
    [HR_MIRROR] = {"mirror", U},
    [HR_MIRRORS] = {"mirrors", U},
    [HR_MIRROR_PERCENT] = {"mirrorPercent", U},
    [HR_MIRROR_PERCENTAGE] = {"mirrorPercentage", U},
    [HR_CORS] = {"corsPolicy", U},
    [HR_HEADERS] = {"headers", U},
};
enum {
    HM_NAME,
    HM_URI,
    HM_METHOD,
    HM_HEADERS,
    HM_SCHEME,
    HM_AUTHORITY,
    HM_PORT,
    HM_SOURCE_LABELS,
    HM_GATEWAYS,
    HM_QUERY_PARAMS,
    HM_IGNORE_URI_CASE,
    HM_WITHOUT_HEADERS,
    HM_SOURCE_NAMESPACE,
    HM_STAT_PREFIX,
    HM__N
};
static const pt_cfg_field_t http_match_fields[HM__N] = {
    [HM_NAME] = {"name", S},
    [HM_URI] = {"uri", S},
    [HM_METHOD] = {"method", S},
    [HM_HEADERS] = {"headers", S},
    [HM_SCHEME] = {"scheme", U},
    [HM_AUTHORITY] = {"authority", U},
    [HM_PORT] = {"port", U},
    [HM_SOURCE_LABELS] = {"sourceLabels", U},
    [HM_GATEWAYS] = {"gateways", U},
    [HM_QUERY_PARAMS] = {"queryParams", U},
    [HM_IGNORE_URI_CASE] = {"ignoreUriCase", U},
    [HM_WITHOUT_HEADERS] = {"withoutHeaders", U},
    [HM_SOURCE_NAMESPACE] = {"sourceNamespace", U},
    [HM_STAT_PREFIX] = {"statPrefix", U},
};
/* StringMatch, as used by uri and header values... */
enum { SM_EXACT, SM_PREFIX, SM_REGEX, SM__N };
static const pt_cfg_field_t string_match_fields[SM__N] = {
    [SM_EXACT] = {"exact", S},
    [SM_PREFIX] = {"prefix", S},
    [SM_REGEX] = {"regex", U},
};
/* ...and as used by method, where only exact is implemented. */
static const pt_cfg_field_t method_match_fields[SM__N] = {
    [SM_EXACT] = {"exact", S},
    [SM_PREFIX] = {"prefix", U},
    [SM_REGEX] = {"regex", U},
};
enum { HD_DESTINATION, HD_WEIGHT, HD_HEADERS, HD__N };
static const pt_cfg_field_t http_dest_fields[HD__N] = {
    [HD_DESTINATION] = {"destination", S},
    [HD_WEIGHT] = {"weight", S},
    [HD_HEADERS] = {"headers", U},
};
enum { DST_HOST, DST_PORT, DST_SUBSET, DST__N };
static const pt_cfg_field_t destination_fields[DST__N] = {
    [DST_HOST] = {"host", S},
    [DST_PORT] = {"port", S},
    [DST_SUBSET] = {"subset", U},
};
enum { PS_NUMBER, PS__N };
static const pt_cfg_field_t port_selector_fields[PS__N] = {
    [PS_NUMBER] = {"number", S},
};
enum { DR_STATUS, DR_BODY, DR__N };
static const pt_cfg_field_t direct_response_fields[DR__N] = {
    [DR_STATUS] = {"status", S},
    [DR_BODY] = {"body", S},
};
enum { BODY_STRING, BODY_BYTES, BODY__N };
static const pt_cfg_field_t body_fields[BODY__N] = {
    [BODY_STRING] = {"string", S},
    [BODY_BYTES] = {"bytes", U},
};
enum { TR_MATCH, TR_ROUTE, TR__N };
static const pt_cfg_field_t tcp_route_fields[TR__N] = {
    [TR_MATCH] = {"match", S},
    [TR_ROUTE] = {"route", S},
};
enum { L4_PORT, L4_DEST_SUBNETS, L4_SOURCE_LABELS, L4_GATEWAYS, L4_SOURCE_NAMESPACE, L4__N };
static const pt_cfg_field_t l4_match_fields[L4__N] = {
    [L4_PORT] = {"port", S},
    [L4_DEST_SUBNETS] = {"destinationSubnets", U},
    [L4_SOURCE_LABELS] = {"sourceLabels", U},
    [L4_GATEWAYS] = {"gateways", U},
    [L4_SOURCE_NAMESPACE] = {"sourceNamespace", U},
};
enum { RD_DESTINATION, RD_WEIGHT, RD__N };
static const pt_cfg_field_t route_dest_fields[RD__N] = {
    [RD_DESTINATION] = {"destination", S},
    [RD_WEIGHT] = {"weight", S},
};

/* ServiceEntry */
enum {
    SE_HOSTS,
    SE_ADDRESSES,
    SE_PORTS,
    SE_LOCATION,
    SE_RESOLUTION,
    SE_ENDPOINTS,
    SE_EXPORT_TO,
    SE_WORKLOAD_SELECTOR,
    SE_SUBJECT_ALT_NAMES,
    SE__N
};
static const pt_cfg_field_t se_fields[SE__N] = {
    [SE_HOSTS] = {"hosts", S},
    [SE_ADDRESSES] = {"addresses", A},
    [SE_PORTS] = {"ports", S},
    [SE_LOCATION] = {"location", S},
    [SE_RESOLUTION] = {"resolution", S},
    [SE_ENDPOINTS] = {"endpoints", S},
    [SE_EXPORT_TO] = {"exportTo", A},
    [SE_WORKLOAD_SELECTOR] = {"workloadSelector", U},
    [SE_SUBJECT_ALT_NAMES] = {"subjectAltNames", U},
};
enum { SP_NUMBER, SP_PROTOCOL, SP_NAME, SP_TARGET, SP__N };
static const pt_cfg_field_t se_port_fields[SP__N] = {
    [SP_NUMBER] = {"number", S},
    [SP_PROTOCOL] = {"protocol", S},
    [SP_NAME] = {"name", S},
    [SP_TARGET] = {"targetPort", S},
};
enum { WE_ADDRESS, WE_PORTS, WE_LABELS, WE_WEIGHT, WE_NETWORK, WE_LOCALITY, WE_SA, WE__N };
static const pt_cfg_field_t endpoint_fields[WE__N] = {
    [WE_ADDRESS] = {"address", S},   [WE_PORTS] = {"ports", S},     [WE_LABELS] = {"labels", A},
    [WE_WEIGHT] = {"weight", S},     [WE_NETWORK] = {"network", A}, [WE_LOCALITY] = {"locality", A},
    [WE_SA] = {"serviceAccount", U},
};

/* ---- helpers -------------------------------------------------------------------------- */

#define PUSH(cx, arr, n, cap, item)                                                                \
    do {                                                                                           \
        (arr) = pt_arena_grow((cx)->tmp, (arr), (n), &(cap), sizeof(*(arr)));                      \
        (arr)[(n)++] = (item);                                                                     \
    } while (0)

static bool is_ip_literal(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof(tmp));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&tmp;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&tmp;
    socklen_t l;
    if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        l = sizeof(*in4);
    } else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        l = sizeof(*in6);
    } else {
        return false;
    }
    if (ss != NULL)
        *ss = tmp;
    if (len != NULL)
        *len = l;
    return true;
}

/* A list of hosts (Istio's hosts[]), lower-cased into the snapshot arena. Gateway server hosts
 * may carry a "namespace/" prefix, which only selects which VirtualServices may bind: Petrel
 * keeps the dnsName part. */
static const char **read_hosts(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                               bool allow_ns_prefix, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_seq(cx, n, path))
        return NULL;
    if (n->n_items == 0) {
        pt__cfg_error(cx, n, path, "must not be empty");
        return NULL;
    }
    const char **hosts = pt_arena_calloc(cx->out, n->n_items * sizeof(*hosts));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const char *s;
        if (!pt__cfg_nonempty_str(cx, n->items[i], &ip, &s))
            continue;
        const char *slash = strchr(s, '/');
        if (allow_ns_prefix && slash != NULL)
            s = slash + 1;
        const char *why = pt__cfg_host_problem(s);
        if (why != NULL) {
            pt__cfg_error(cx, n->items[i], &ip, "invalid host \"%s\": %s", n->items[i]->str, why);
            continue;
        }
        hosts[(*out_n)++] = pt__cfg_out_lower(cx, s);
    }
    return hosts;
}

/* ---- metadata and kinds --------------------------------------------------------------- */

static bool read_meta(pt_cfg_cx_t *cx, const pt_cfg_node_t *root, const pt_cfg_node_t *n,
                      pt_res_meta_t *m)
{
    pt_cfg_path_t path = PT_PATH_KEY(NULL, "metadata");
    const pt_cfg_node_t *f[META__N];
    m->ns = "default";
    if (n == NULL) {
        pt__cfg_error(cx, root, &path, "required");
        return false;
    }
    if (!MAP(cx, n, &path, meta_fields, f))
        return false;
    bool ok = true;
    pt_cfg_path_t np = PT_PATH_KEY(&path, "name");
    if (f[META_NAME] == NULL) {
        pt__cfg_error(cx, n, &np, "required");
        ok = false;
    } else if (!pt__cfg_nonempty_str(cx, f[META_NAME], &np, &m->name)) {
        ok = false;
    } else if (strchr(m->name, '/') != NULL) {
        pt__cfg_error(cx, f[META_NAME], &np, "must not contain \"/\"");
        ok = false;
    }
    m->name_node = f[META_NAME];
    if (f[META_NS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "namespace");
        const char *ns;
        if (pt__cfg_nonempty_str(cx, f[META_NS], &p, &ns)) {
            if (strchr(ns, '/') != NULL)
                pt__cfg_error(cx, f[META_NS], &p, "must not contain \"/\"");
            else
                m->ns = ns;
        }
    }
    if (f[META_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "labels");
        pt__cfg_string_map(cx, f[META_LABELS], &p);
    }
    if (f[META_ANNOTATIONS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "annotations");
        pt__cfg_string_map(cx, f[META_ANNOTATIONS], &p);
    }
    return ok;
}

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
}

static void read_proxy(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
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
            if (is_ip_literal(a, NULL, NULL))
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
#undef FIELD_PATH
#undef INT_FIELD
#undef DURATION_FIELD
}

/* Istio's protocol names (case-insensitive, as Istio parses them). */
static pt_listener_protocol_t read_protocol(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                            const pt_cfg_path_t *path)
{
    static const char *const later[] = {"HTTPS", "HTTP2", "GRPC",  "GRPC-WEB", "TLS",
                                        "MONGO", "REDIS", "MYSQL", "UDP"};
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return 0;
    if (strcasecmp(s, "HTTP") == 0)
        return PT_LISTENER_HTTP;
    if (strcasecmp(s, "TCP") == 0)
        return PT_LISTENER_TCP;
    for (size_t i = 0; i < NF(later); i++)
        if (strcasecmp(s, later[i]) == 0) {
            pt__cfg_error(cx, n, path,
                          "protocol %s is not supported by Petrel yet (supported: HTTP, TCP)",
                          later[i]);
            return 0;
        }
    pt__cfg_error(cx, n, path,
                  "unknown protocol \"%s\" (expected HTTP, HTTPS, HTTP2, GRPC, TLS or TCP)", s);
    return 0;
}

static void read_gateway(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                         const pt_cfg_node_t *spec)
{
    pt_res_gateway_t *g = pt_arena_calloc(cx->tmp, sizeof(*g));
    g->meta = *meta;
    PUSH(cx, set->gateways, set->n_gateways, set->cap_gateways, g);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[GW__N];
    if (!MAP(cx, spec, &sp, gateway_fields, f))
        return;
    if (f[GW_SELECTOR] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "selector");
        pt__cfg_string_map(cx, f[GW_SELECTOR], &p);
    }
    pt_cfg_path_t svp = PT_PATH_KEY(&sp, "servers");
    const pt_cfg_node_t *servers = f[GW_SERVERS];
    if (servers == NULL) {
        pt__cfg_error(cx, spec, &svp, "required");
        return;
    }
    if (!pt__cfg_is_seq(cx, servers, &svp))
        return;
    if (servers->n_items == 0) {
        pt__cfg_error(cx, servers, &svp, "must not be empty");
        return;
    }
    g->servers = pt_arena_calloc(cx->tmp, servers->n_items * sizeof(*g->servers));
    for (size_t i = 0; i < servers->n_items; i++) {
        const pt_cfg_node_t *sn = servers->items[i];
        pt_cfg_path_t ip = PT_PATH_IDX(&svp, i);
        const pt_cfg_node_t *sf[SRV__N];
        if (!MAP(cx, sn, &ip, server_fields, sf))
            continue;
        pt_res_server_t *srv = &g->servers[g->n_servers++];
        const char *name;
        if (sf[SRV_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&ip, "name");
            pt__cfg_str(cx, sf[SRV_NAME], &p, &name);
        }
        pt_cfg_path_t hp = PT_PATH_KEY(&ip, "hosts");
        if (sf[SRV_HOSTS] == NULL)
            pt__cfg_error(cx, sn, &hp, "required");
        else
            srv->hosts = read_hosts(cx, sf[SRV_HOSTS], &hp, true, &srv->n_hosts);

        pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
        if (sf[SRV_PORT] == NULL) {
            pt__cfg_error(cx, sn, &pp, "required");
            continue;
        }
        const pt_cfg_node_t *pf[PORT__N];
        if (!MAP(cx, sf[SRV_PORT], &pp, gw_port_fields, pf))
            continue;
        srv->port_node = sf[SRV_PORT];
        srv->port_path = pt__cfg_path_dup(cx->tmp, &pp);
        pt_cfg_path_t np = PT_PATH_KEY(&pp, "number");
        long long v;
        if (pf[PORT_NUMBER] == NULL)
            pt__cfg_error(cx, sf[SRV_PORT], &np, "required");
        else if (pt__cfg_int(cx, pf[PORT_NUMBER], &np, 1, 65535, &v))
            srv->port = (uint16_t)v;
        pt_cfg_path_t prp = PT_PATH_KEY(&pp, "protocol");
        if (pf[PORT_PROTOCOL] == NULL)
            pt__cfg_error(cx, sf[SRV_PORT], &prp, "required");
        else
            srv->protocol = read_protocol(cx, pf[PORT_PROTOCOL], &prp);
        srv->protocol_node = pf[PORT_PROTOCOL];
        if (pf[PORT_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&pp, "name");
            pt__cfg_str(cx, pf[PORT_NAME], &p, &name);
        }
    }
}

/* Reads a StringMatch with the given table; exactly one of its fields must be set. Returns
 * true when *out was filled (the field set is supported). */
static bool read_string_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                              const pt_cfg_field_t *table, pt_string_match_t *out)
{
    const pt_cfg_node_t *f[SM__N];
    if (!pt__cfg_map(cx, n, path, table, SM__N, f))
        return false;
    size_t count = 0, which = 0;
    for (size_t i = 0; i < SM__N; i++)
        if (f[i] != NULL) {
            count++;
            which = i;
        }
    if (count == 0) {
        /* An empty value (`exact: ""` is fine, `exact:` alone is null) or no field at all. */
        pt__cfg_error(cx, n, path, "needs exactly one of exact, prefix or regex");
        return false;
    }
    if (count > 1) {
        pt__cfg_error(cx, n, path, "give only one of exact, prefix or regex");
        return false;
    }
    if (table[which].status != PT_FIELD_SUPPORTED)
        return false; /* already reported by pt__cfg_map */
    pt_cfg_path_t vp = PT_PATH_KEY(path, table[which].name);
    const char *s;
    if (!pt__cfg_str(cx, f[which], &vp, &s))
        return false;
    out->kind = which == SM_EXACT ? PT_MATCH_EXACT : PT_MATCH_PREFIX;
    out->value = pt__cfg_out_str(cx, s);
    out->len = f[which]->len;
    return true;
}

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void read_http_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                            pt_http_match_t *m)
{
    const pt_cfg_node_t *f[HM__N];
    if (!MAP(cx, n, path, http_match_fields, f))
        return;
    if (f[HM_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "name");
        const char *s;
        pt__cfg_str(cx, f[HM_NAME], &p, &s);
    }
    if (f[HM_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        m->has_uri = read_string_match(cx, f[HM_URI], &p, string_match_fields, &m->uri);
    }
    if (f[HM_METHOD] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "method");
        pt_string_match_t sm;
        if (read_string_match(cx, f[HM_METHOD], &p, method_match_fields, &sm)) {
            if (sm.len == 0) {
                pt_cfg_path_t ep = PT_PATH_KEY(&p, "exact");
                pt__cfg_error(cx, f[HM_METHOD], &ep, "must not be empty");
            }
            m->method = sm.value;
        }
    }
    if (f[HM_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "headers");
        const pt_cfg_node_t *h = f[HM_HEADERS];
        if (pt__cfg_is_map(cx, h, &p) && h->n_pairs > 0) {
            m->headers = pt_arena_calloc(cx->out, h->n_pairs * sizeof(*m->headers));
            for (size_t i = 0; i < h->n_pairs; i++) {
                const pt_cfg_node_t *k = h->pairs[i].key;
                pt_cfg_path_t kp = PT_PATH_KEY(&p, k->str);
                bool ok = k->len > 0;
                for (size_t j = 0; ok && j < k->len; j++)
                    ok = is_token_char((unsigned char)k->str[j]);
                if (!ok) {
                    pt__cfg_error(cx, k, &kp, "not a valid header name");
                    continue;
                }
                pt_header_match_t *hm = &m->headers[m->n_headers];
                if (read_string_match(cx, h->pairs[i].value, &kp, string_match_fields,
                                      &hm->match)) {
                    hm->name = pt__cfg_out_lower(cx, k->str);
                    m->n_headers++;
                }
            }
        }
    }
}

static void read_destination(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             pt_res_dest_t *d)
{
    const pt_cfg_node_t *f[DST__N];
    d->node = n;
    d->path = pt__cfg_path_dup(cx->tmp, path);
    if (!MAP(cx, n, path, destination_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(path, "host");
    const char *host;
    if (f[DST_HOST] == NULL) {
        pt__cfg_error(cx, n, &hp, "required");
    } else if (pt__cfg_nonempty_str(cx, f[DST_HOST], &hp, &host)) {
        const char *why = pt__cfg_host_problem(host);
        if (why == NULL && host[0] == '*')
            why = "a destination cannot be a wildcard";
        if (why != NULL)
            pt__cfg_error(cx, f[DST_HOST], &hp, "invalid host \"%s\": %s", host, why);
        else
            d->host = pt__cfg_out_lower(cx, host);
    }
    if (f[DST_PORT] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(path, "port");
        const pt_cfg_node_t *pf[PS__N];
        if (MAP(cx, f[DST_PORT], &pp, port_selector_fields, pf)) {
            pt_cfg_path_t np = PT_PATH_KEY(&pp, "number");
            long long v;
            if (pf[PS_NUMBER] == NULL)
                pt__cfg_error(cx, f[DST_PORT], &np, "required");
            else if (pt__cfg_int(cx, pf[PS_NUMBER], &np, 1, 65535, &v))
                d->port = (uint16_t)v;
        }
    }
}

/* route[] of an HTTP or TCP route: {destination, weight}. */
static pt_res_dest_t *read_dests(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 const pt_cfg_field_t *table, size_t n_fields, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_seq(cx, n, path) || n->n_items == 0)
        return NULL;
    pt_res_dest_t *dests = pt_arena_calloc(cx->tmp, n->n_items * sizeof(*dests));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const pt_cfg_node_t *f[4]; /* HD__N and RD__N are both <= 4 */
        if (!pt__cfg_map(cx, n->items[i], &ip, table, n_fields, f))
            continue;
        /* Both tables start with destination, weight. */
        pt_res_dest_t *d = &dests[*out_n];
        pt_cfg_path_t dp = PT_PATH_KEY(&ip, "destination");
        if (f[0] == NULL) {
            pt__cfg_error(cx, n->items[i], &dp, "required");
            continue;
        }
        read_destination(cx, f[0], &dp, d);
        if (f[1] != NULL) {
            pt_cfg_path_t wp = PT_PATH_KEY(&ip, "weight");
            long long v;
            if (pt__cfg_int(cx, f[1], &wp, 0, 2147483647, &v)) {
                d->has_weight = true;
                d->weight = (uint32_t)v;
            } else {
                d->has_weight = true; /* reported; don't add "weight required" */
            }
        }
        d->node = n->items[i];
        d->path = pt__cfg_path_dup(cx->tmp, &ip);
        (*out_n)++;
    }
    return dests;
}

static void read_http_route(pt_cfg_cx_t *cx, pt_res_vs_t *vs, const pt_cfg_node_t *n,
                            const pt_cfg_path_t *path, size_t index, pt_res_http_route_t *hr)
{
    const pt_cfg_node_t *f[HR__N];
    hr->node = n;
    hr->path = pt__cfg_path_dup(cx->tmp, path);
    hr->route.virtual_service = vs->qname;
    hr->route.name = pt_arena_printf(cx->out, "%s.%zu", vs->meta.name, index);
    if (!MAP(cx, n, path, http_route_fields, f))
        return;
    if (f[HR_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "name");
        const char *s;
        if (pt__cfg_nonempty_str(cx, f[HR_NAME], &p, &s))
            hr->route.name = pt__cfg_out_str(cx, s);
    }
    if (f[HR_MATCH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "match");
        const pt_cfg_node_t *m = f[HR_MATCH];
        if (pt__cfg_is_seq(cx, m, &p) && m->n_items > 0) {
            hr->route.matches = pt_arena_calloc(cx->out, m->n_items * sizeof(pt_http_match_t));
            hr->route.n_matches = m->n_items;
            for (size_t i = 0; i < m->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_http_match(cx, m->items[i], &ip, &hr->route.matches[i]);
            }
        }
    }
    if (f[HR_TIMEOUT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "timeout");
        pt__cfg_duration(cx, f[HR_TIMEOUT], &p, &hr->route.timeout_ms);
    }
    bool has_route = false, has_direct = f[HR_DIRECT] != NULL;
    if (f[HR_ROUTE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "route");
        hr->dests = read_dests(cx, f[HR_ROUTE], &p, http_dest_fields, HD__N, &hr->n_dests);
        has_route = f[HR_ROUTE]->type != PT_CFG_SEQ || f[HR_ROUTE]->n_items > 0;
    }
    if (has_direct) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "directResponse");
        const pt_cfg_node_t *df[DR__N];
        if (MAP(cx, f[HR_DIRECT], &p, direct_response_fields, df)) {
            pt_cfg_path_t sp = PT_PATH_KEY(&p, "status");
            long long v;
            if (df[DR_STATUS] == NULL)
                pt__cfg_error(cx, f[HR_DIRECT], &sp, "required");
            else if (pt__cfg_int(cx, df[DR_STATUS], &sp, 200, 599, &v))
                hr->route.direct_status = (int)v;
            if (df[DR_BODY] != NULL) {
                pt_cfg_path_t bp = PT_PATH_KEY(&p, "body");
                const pt_cfg_node_t *bf[BODY__N];
                if (MAP(cx, df[DR_BODY], &bp, body_fields, bf) && bf[BODY_STRING] != NULL) {
                    pt_cfg_path_t stp = PT_PATH_KEY(&bp, "string");
                    const char *s;
                    if (pt__cfg_str(cx, bf[BODY_STRING], &stp, &s)) {
                        hr->route.direct_body = pt__cfg_out_str(cx, s);
                        hr->route.direct_body_len = bf[BODY_STRING]->len;
                    }
                }
            }
        }
    }
    /* redirect and delegate are actions too: when one is given (and reported as unsupported),
     * "needs route or directResponse" would only be noise. */
    bool other_action = f[HR_REDIRECT] != NULL || f[HR_DELEGATE] != NULL;
    if (has_route && has_direct)
        pt__cfg_error(cx, n, path, "route and directResponse are exclusive: give exactly one");
    else if (!has_route && !has_direct && !other_action)
        pt__cfg_error(cx, n, path, "needs a route or a directResponse");
}

static void read_tcp_route(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           pt_res_tcp_route_t *tr)
{
    const pt_cfg_node_t *f[TR__N];
    tr->node = n;
    tr->path = pt__cfg_path_dup(cx->tmp, path);
    tr->match_any = true;
    if (!MAP(cx, n, path, tcp_route_fields, f))
        return;
    if (f[TR_MATCH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "match");
        const pt_cfg_node_t *m = f[TR_MATCH];
        if (pt__cfg_is_seq(cx, m, &p) && m->n_items > 0) {
            tr->match_any = false;
            tr->match_ports = pt_arena_calloc(cx->tmp, m->n_items * sizeof(uint16_t));
            for (size_t i = 0; i < m->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const pt_cfg_node_t *lf[L4__N];
                if (!MAP(cx, m->items[i], &ip, l4_match_fields, lf))
                    continue;
                if (lf[L4_PORT] == NULL) {
                    tr->match_any = true;
                    continue;
                }
                pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
                long long v;
                if (pt__cfg_int(cx, lf[L4_PORT], &pp, 1, 65535, &v))
                    tr->match_ports[tr->n_matches++] = (uint16_t)v;
            }
        }
    }
    pt_cfg_path_t rp = PT_PATH_KEY(path, "route");
    if (f[TR_ROUTE] == NULL)
        pt__cfg_error(cx, n, &rp, "required");
    else {
        tr->dests = read_dests(cx, f[TR_ROUTE], &rp, route_dest_fields, RD__N, &tr->n_dests);
        if (f[TR_ROUTE]->type == PT_CFG_SEQ && f[TR_ROUTE]->n_items == 0)
            pt__cfg_error(cx, f[TR_ROUTE], &rp, "must not be empty");
    }
}

static void read_virtual_service(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                 const pt_cfg_node_t *spec)
{
    pt_res_vs_t *vs = pt_arena_calloc(cx->tmp, sizeof(*vs));
    vs->meta = *meta;
    vs->qname = pt_arena_printf(cx->out, "%s/%s", meta->ns, meta->name);
    PUSH(cx, set->vss, set->n_vss, set->cap_vss, vs);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[VS__N];
    if (!MAP(cx, spec, &sp, vs_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "hosts");
    if (f[VS_HOSTS] == NULL)
        pt__cfg_error(cx, spec, &hp, "required");
    else
        vs->hosts = read_hosts(cx, f[VS_HOSTS], &hp, false, &vs->n_hosts);
    if (f[VS_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[VS_EXPORT_TO], &p);
    }

    /* gateways: absent means "mesh" in Istio, i.e. sidecar routing, which Petrel does not do
     * yet. "mesh" next to real gateways is left out (it would bind the sidecars). */
    pt_cfg_path_t gp = PT_PATH_KEY(&sp, "gateways");
    const pt_cfg_node_t *g = f[VS_GATEWAYS];
    if (g == NULL) {
        pt__cfg_error(cx, spec, &gp,
                      "mesh (sidecar) routing is not supported by Petrel yet (no gateways "
                      "given means mesh): bind this VirtualService to a Gateway");
    } else if (pt__cfg_is_seq(cx, g, &gp)) {
        vs->gateways = pt_arena_calloc(cx->tmp, (g->n_items + 1) * sizeof(*vs->gateways));
        bool any = false;
        for (size_t i = 0; i < g->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&gp, i);
            const char *s;
            if (!pt__cfg_nonempty_str(cx, g->items[i], &ip, &s))
                continue;
            any = true;
            if (strcmp(s, "mesh") == 0)
                continue;
            pt_res_gateway_ref_t *r = &vs->gateways[vs->n_gateways];
            const char *slash = strchr(s, '/');
            if (slash != NULL) {
                r->ns = pt_arena_strndup(cx->tmp, s, (size_t)(slash - s));
                r->name = slash + 1;
            } else {
                r->ns = meta->ns;
                r->name = s;
            }
            if (r->ns[0] == '\0' || r->name[0] == '\0' || strchr(r->name, '/') != NULL) {
                pt__cfg_error(cx, g->items[i], &ip,
                              "must be \"<namespace>/<name>\" or \"<name>\", got \"%s\"", s);
                continue;
            }
            r->node = g->items[i];
            r->path = pt__cfg_path_dup(cx->tmp, &ip);
            vs->n_gateways++;
        }
        if (any && vs->n_gateways == 0)
            pt__cfg_error(cx, g, &gp, "mesh (sidecar) routing is not supported by Petrel yet");
        else if (!any)
            pt__cfg_error(cx, g, &gp, "must not be empty");
    }

    if (f[VS_HTTP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "http");
        const pt_cfg_node_t *h = f[VS_HTTP];
        if (pt__cfg_is_seq(cx, h, &p) && h->n_items > 0) {
            vs->http = pt_arena_calloc(cx->tmp, h->n_items * sizeof(*vs->http));
            vs->n_http = h->n_items;
            for (size_t i = 0; i < h->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_http_route(cx, vs, h->items[i], &ip, i, &vs->http[i]);
            }
        }
    }
    if (f[VS_TCP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "tcp");
        const pt_cfg_node_t *t = f[VS_TCP];
        if (pt__cfg_is_seq(cx, t, &p) && t->n_items > 0) {
            vs->tcp = pt_arena_calloc(cx->tmp, t->n_items * sizeof(*vs->tcp));
            vs->n_tcp = t->n_items;
            for (size_t i = 0; i < t->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_tcp_route(cx, t->items[i], &ip, &vs->tcp[i]);
            }
        }
    }
    if (vs->n_http == 0 && vs->n_tcp == 0 && f[VS_TLS] == NULL && f[VS_HTTP] == NULL &&
        f[VS_TCP] == NULL)
        pt__cfg_error(cx, spec, &sp, "needs http or tcp routes");
}

static void read_service_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                               const pt_cfg_node_t *spec)
{
    pt_res_se_t *se = pt_arena_calloc(cx->tmp, sizeof(*se));
    se->meta = *meta;
    PUSH(cx, set->ses, set->n_ses, set->cap_ses, se);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[SE__N];
    if (!MAP(cx, spec, &sp, se_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "hosts");
    if (f[SE_HOSTS] == NULL)
        pt__cfg_error(cx, spec, &hp, "required");
    else
        se->hosts = read_hosts(cx, f[SE_HOSTS], &hp, false, &se->n_hosts);

    if (f[SE_ADDRESSES] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "addresses");
        if (pt__cfg_is_seq(cx, f[SE_ADDRESSES], &p))
            for (size_t i = 0; i < f[SE_ADDRESSES]->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const char *s;
                pt__cfg_str(cx, f[SE_ADDRESSES]->items[i], &ip, &s);
            }
    }
    if (f[SE_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[SE_EXPORT_TO], &p);
    }
    if (f[SE_LOCATION] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "location");
        const char *s;
        if (pt__cfg_str(cx, f[SE_LOCATION], &p, &s) && strcmp(s, "MESH_EXTERNAL") != 0 &&
            strcmp(s, "MESH_INTERNAL") != 0)
            pt__cfg_error(cx, f[SE_LOCATION], &p,
                          "unknown location \"%s\" (expected MESH_EXTERNAL or MESH_INTERNAL)", s);
    }

    /* resolution: Istio's default is NONE (pass through to the address the client asked
     * for), which needs traffic capture: not supported yet, and neither is DNS. */
    pt_cfg_path_t rp = PT_PATH_KEY(&sp, "resolution");
    if (f[SE_RESOLUTION] == NULL) {
        pt__cfg_error(cx, spec, &rp,
                      "resolution NONE (the default) is not supported by Petrel yet: use STATIC");
    } else {
        const char *s;
        if (pt__cfg_str(cx, f[SE_RESOLUTION], &rp, &s) && strcmp(s, "STATIC") != 0) {
            if (!strcmp(s, "NONE") || !strcmp(s, "DNS") || !strcmp(s, "DNS_ROUND_ROBIN"))
                pt__cfg_error(cx, f[SE_RESOLUTION], &rp,
                              "resolution %s is not supported by Petrel yet: use STATIC", s);
            else
                pt__cfg_error(cx, f[SE_RESOLUTION], &rp,
                              "unknown resolution \"%s\" (expected NONE, STATIC, DNS or "
                              "DNS_ROUND_ROBIN)",
                              s);
        }
    }

    if (f[SE_PORTS] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "ports");
        const pt_cfg_node_t *pn = f[SE_PORTS];
        if (pt__cfg_is_seq(cx, pn, &pp) && pn->n_items > 0) {
            se->ports = pt_arena_calloc(cx->tmp, pn->n_items * sizeof(*se->ports));
            for (size_t i = 0; i < pn->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&pp, i);
                const pt_cfg_node_t *pf[SP__N];
                if (!MAP(cx, pn->items[i], &ip, se_port_fields, pf))
                    continue;
                pt_res_se_port_t port = {0};
                long long v;
                pt_cfg_path_t np = PT_PATH_KEY(&ip, "number");
                if (pf[SP_NUMBER] == NULL)
                    pt__cfg_error(cx, pn->items[i], &np, "required");
                else if (pt__cfg_int(cx, pf[SP_NUMBER], &np, 1, 65535, &v))
                    port.number = (uint16_t)v;
                if (pf[SP_TARGET] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "targetPort");
                    if (pt__cfg_int(cx, pf[SP_TARGET], &tp, 1, 65535, &v))
                        port.target_port = (uint16_t)v;
                }
                if (pf[SP_NAME] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "name");
                    pt__cfg_str(cx, pf[SP_NAME], &tp, &port.name);
                }
                if (pf[SP_PROTOCOL] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "protocol");
                    const char *s;
                    pt__cfg_str(cx, pf[SP_PROTOCOL], &tp, &s);
                }
                if (port.number == 0)
                    continue;
                bool dup = false;
                for (size_t j = 0; j < se->n_ports; j++)
                    if (se->ports[j].number == port.number ||
                        (port.name && se->ports[j].name && !strcmp(port.name, se->ports[j].name)))
                        dup = true;
                if (dup) {
                    pt__cfg_error(cx, pn->items[i], &ip, "duplicate port number or name");
                    continue;
                }
                se->ports[se->n_ports++] = port;
            }
        }
    }

    if (f[SE_ENDPOINTS] != NULL) {
        pt_cfg_path_t ep = PT_PATH_KEY(&sp, "endpoints");
        const pt_cfg_node_t *en = f[SE_ENDPOINTS];
        if (pt__cfg_is_seq(cx, en, &ep) && en->n_items > 0) {
            se->endpoints = pt_arena_calloc(cx->tmp, en->n_items * sizeof(*se->endpoints));
            for (size_t i = 0; i < en->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&ep, i);
                const pt_cfg_node_t *wf[WE__N];
                if (!MAP(cx, en->items[i], &ip, endpoint_fields, wf))
                    continue;
                pt_res_se_endpoint_t e = {.weight = 1};
                bool ok = true;
                pt_cfg_path_t ap = PT_PATH_KEY(&ip, "address");
                if (wf[WE_ADDRESS] == NULL) {
                    pt__cfg_error(cx, en->items[i], &ap, "required");
                    ok = false;
                } else if (!pt__cfg_nonempty_str(cx, wf[WE_ADDRESS], &ap, &e.address)) {
                    ok = false;
                } else if (strncmp(e.address, "unix://", 7) == 0) {
                    pt__cfg_error(cx, wf[WE_ADDRESS], &ap,
                                  "unix domain socket endpoints are not supported by Petrel yet");
                    ok = false;
                } else if (!is_ip_literal(e.address, &e.addr, &e.addr_len)) {
                    pt__cfg_error(cx, wf[WE_ADDRESS], &ap,
                                  "must be an IPv4 or IPv6 address with resolution STATIC, got "
                                  "\"%s\"",
                                  e.address);
                    ok = false;
                }
                if (wf[WE_PORTS] != NULL) {
                    pt_cfg_path_t pp = PT_PATH_KEY(&ip, "ports");
                    const pt_cfg_node_t *m = wf[WE_PORTS];
                    if (pt__cfg_is_map(cx, m, &pp)) {
                        for (size_t j = 0; j < m->n_pairs; j++) {
                            pt_cfg_path_t kp = PT_PATH_KEY(&pp, m->pairs[j].key->str);
                            long long v;
                            if (!pt__cfg_int(cx, m->pairs[j].value, &kp, 1, 65535, &v))
                                ok = false;
                        }
                        e.ports = m;
                    }
                }
                if (wf[WE_WEIGHT] != NULL) {
                    pt_cfg_path_t wp = PT_PATH_KEY(&ip, "weight");
                    long long v;
                    if (pt__cfg_int(cx, wf[WE_WEIGHT], &wp, 0, 4294967295LL, &v) && v > 0)
                        e.weight = (uint32_t)v;
                }
                if (wf[WE_LABELS] != NULL) {
                    pt_cfg_path_t lp = PT_PATH_KEY(&ip, "labels");
                    pt__cfg_string_map(cx, wf[WE_LABELS], &lp);
                }
                if (ok)
                    se->endpoints[se->n_endpoints++] = e;
            }
        }
    }
}

/* ---- documents ------------------------------------------------------------------------ */

typedef void (*reader_fn)(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                          const pt_cfg_node_t *spec);

static const char *const istio_networking_versions[] = {
    "networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3", NULL};
static const char *const petrel_versions[] = {"petrel.io/v1alpha1", NULL};

static const struct {
    const char *kind;
    const char *const *versions;
    reader_fn read;
    bool spec_optional;
} kinds[] = {
    {"Proxy", petrel_versions, read_proxy, true},
    {"Gateway", istio_networking_versions, read_gateway, false},
    {"VirtualService", istio_networking_versions, read_virtual_service, false},
    {"ServiceEntry", istio_networking_versions, read_service_entry, false},
};

/* Istio kinds Petrel knows of and does not implement yet. */
static const char *const later_kinds[] = {
    "DestinationRule", "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication",
    "Sidecar",         "WorkloadEntry",      "WorkloadGroup",       "EnvoyFilter",
    "ProxyConfig",     "Telemetry",          "WasmPlugin",
};

void pt__cfg_resources_add(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_cfg_doc_t *doc)
{
    const pt_cfg_node_t *root = doc->root;
    const pt_cfg_node_t *f[DOC__N];
    if (root->type != PT_CFG_MAP) {
        pt__cfg_error(cx, root, NULL,
                      "a document must be a map (apiVersion, kind, metadata, spec)");
        return;
    }
    MAP(cx, root, NULL, doc_fields, f);

    pt_cfg_path_t kp = PT_PATH_KEY(NULL, "kind");
    const char *kind;
    if (f[DOC_KIND] == NULL) {
        pt__cfg_error(cx, root, &kp, "required");
        return;
    }
    if (!pt__cfg_nonempty_str(cx, f[DOC_KIND], &kp, &kind))
        return;
    size_t k = 0;
    while (k < NF(kinds) && strcmp(kinds[k].kind, kind) != 0)
        k++;
    if (k == NF(kinds)) {
        for (size_t i = 0; i < NF(later_kinds); i++)
            if (strcmp(later_kinds[i], kind) == 0) {
                pt__cfg_error(cx, f[DOC_KIND], &kp, "kind %s is not supported by Petrel yet", kind);
                return;
            }
        pt__cfg_error(cx, f[DOC_KIND], &kp,
                      "unknown kind \"%s\" (expected Proxy, Gateway, VirtualService, "
                      "ServiceEntry)",
                      kind);
        return;
    }

    pt_cfg_path_t ap = PT_PATH_KEY(NULL, "apiVersion");
    const char *api;
    if (f[DOC_API] == NULL) {
        pt__cfg_error(cx, root, &ap, "required");
    } else if (pt__cfg_nonempty_str(cx, f[DOC_API], &ap, &api)) {
        const char *const *v = kinds[k].versions;
        while (*v != NULL && strcmp(*v, api) != 0)
            v++;
        if (*v == NULL) {
            char expected[256] = "";
            for (v = kinds[k].versions; *v != NULL; v++) {
                strncat(expected, *v, sizeof(expected) - strlen(expected) - 1);
                if (v[1] != NULL)
                    strncat(expected, ", ", sizeof(expected) - strlen(expected) - 1);
            }
            pt__cfg_error(cx, f[DOC_API], &ap,
                          "unknown apiVersion \"%s\" for kind %s (expected %s)", api, kind,
                          expected);
        }
    }

    pt_res_meta_t meta = {.kind = kinds[k].kind, .doc = root};
    bool meta_ok = read_meta(cx, root, f[DOC_META], &meta);
    const pt_cfg_node_t *spec = f[DOC_SPEC];
    if (spec == NULL && !kinds[k].spec_optional) {
        pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
        pt__cfg_error(cx, root, &sp, "required");
        return;
    }
    if (!meta_ok)
        meta.name = "<unnamed>";
    kinds[k].read(cx, set, &meta, spec);
}
