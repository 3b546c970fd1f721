/* config/kind_virtual_service.c
 * The VirtualService kind: hosts, gateways, http[] routes (matches, destinations, direct
 * responses, timeouts, retries) and tcp[] routes. The route actions (headers, rewrite, redirect,
 * fault) are read by config/kind_vs_actions.c. Matches are built directly in the snapshot arena;
 * destinations stay in the typed model until config/compile.c resolves them to clusters. */
#include <string.h>

#include "hostname.h"
#include "kinds.h"
#include "policy.h"
#include "regex.h"

static const pt_cfg_field_t sm_any_fields[] = {
    {"exact", A, PT_SHAPE_SCALAR, NULL, 0},
    {"prefix", A, PT_SHAPE_SCALAR, NULL, 0},
    {"regex", A, PT_SHAPE_SCALAR, NULL, 0},
};
/* HTTPRetry: read by read_retries(). */
enum { RT_ATTEMPTS, RT_PER_TRY, RT_ON, RT_REMOTE, RT_IGNORE_PREV, RT_BACKOFF, RT__N };
static const pt_cfg_field_t retries_fields[RT__N] = {
    [RT_ATTEMPTS] = {.name = "attempts", .status = S},
    [RT_PER_TRY] = {.name = "perTryTimeout", .status = S},
    [RT_ON] = {.name = "retryOn", .status = S},
    /* Petrel has no localities yet: every endpoint is as local as any other. */
    [RT_REMOTE] = {"retryRemoteLocalities", A, PT_SHAPE_SCALAR, NULL, 0},
    [RT_IGNORE_PREV] = {.name = "retryIgnorePreviousHosts", .status = S},
    [RT_BACKOFF] = {.name = "backoff", .status = S},
};

static const pt_cfg_field_t cors_fields[] = {
    {"allowOrigin", A, PT_SHAPE_SEQ, NULL, 0}, /* deprecated: plain strings */
    {"allowOrigins", A, PT_SHAPE_SEQ, SUB(sm_any_fields)},
    {"allowMethods", A, PT_SHAPE_SEQ, NULL, 0},
    {"allowHeaders", A, PT_SHAPE_SEQ, NULL, 0},
    {"exposeHeaders", A, PT_SHAPE_SEQ, NULL, 0},
    {"maxAge", A, PT_SHAPE_SCALAR, NULL, 0},
    {"allowCredentials", A, PT_SHAPE_SCALAR, NULL, 0},
    {"unmatchedPreflights", A, PT_SHAPE_SCALAR, NULL, 0},
};
enum { MP_DESTINATION, MP_PERCENTAGE, MP__N };
static const pt_cfg_field_t mirror_policy_fields[MP__N] = {
    [MP_DESTINATION] = {.name = "destination", .status = S},
    [MP_PERCENTAGE] = {.name = "percentage", .status = S},
};
enum { DG_NAME, DG_NAMESPACE, DG__N };
static const pt_cfg_field_t delegate_fields[DG__N] = {
    [DG_NAME] = {.name = "name", .status = S},
    [DG_NAMESPACE] = {.name = "namespace", .status = S},
};

/* VirtualService */
enum { VS_HOSTS, VS_GATEWAYS, VS_HTTP, VS_TCP, VS_TLS, VS_EXPORT_TO, VS__N };
static const pt_cfg_field_t vs_fields[VS__N] = {
    [VS_HOSTS] = {.name = "hosts", .status = S},
    [VS_GATEWAYS] = {.name = "gateways", .status = S},
    [VS_HTTP] = {.name = "http", .status = S},
    [VS_TCP] = {.name = "tcp", .status = S},
    [VS_TLS] = {.name = "tls", .status = S},
    [VS_EXPORT_TO] = {"exportTo", A, PT_SHAPE_SEQ, NULL, 0},
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
    HR_WEBSOCKET_UPGRADE,
    HR__N
};
static const pt_cfg_field_t http_route_fields[HR__N] = {
    [HR_NAME] = {.name = "name", .status = S},
    [HR_MATCH] = {.name = "match", .status = S},
    [HR_ROUTE] = {.name = "route", .status = S},
    [HR_DIRECT] = {.name = "directResponse", .status = S},
    [HR_TIMEOUT] = {.name = "timeout", .status = S},
    [HR_REDIRECT] = {.name = "redirect", .status = S},
    [HR_DELEGATE] = {.name = "delegate", .status = S},
    [HR_REWRITE] = {.name = "rewrite", .status = S},
    [HR_RETRIES] = {.name = "retries", .status = S},
    [HR_FAULT] = {.name = "fault", .status = S},
    [HR_MIRROR] = {.name = "mirror", .status = S},
    [HR_MIRRORS] = {.name = "mirrors", .status = S},
    [HR_MIRROR_PERCENT] = {.name = "mirrorPercent", .status = S}, /* deprecated */
    [HR_MIRROR_PERCENTAGE] = {.name = "mirrorPercentage", .status = S},
    [HR_CORS] = {"corsPolicy", U, PT_SHAPE_MAP, SUB(cors_fields)},
    [HR_HEADERS] = {.name = "headers", .status = S},
    /* Istio's legacy flag (still in its CRD): HTTP/1.1 upgrades pass through Petrel anyway. */
    [HR_WEBSOCKET_UPGRADE] = {"websocketUpgrade", A, PT_SHAPE_SCALAR, NULL, 0},
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
    [HM_NAME] = {.name = "name", .status = S},
    [HM_URI] = {.name = "uri", .status = S},
    [HM_METHOD] = {.name = "method", .status = S},
    [HM_HEADERS] = {.name = "headers", .status = S},
    [HM_SCHEME] = {.name = "scheme", .status = S},
    [HM_AUTHORITY] = {.name = "authority", .status = S},
    [HM_PORT] = {.name = "port", .status = S},
    [HM_SOURCE_LABELS] = {.name = "sourceLabels", .status = S},
    [HM_GATEWAYS] = {"gateways", U, PT_SHAPE_SEQ, NULL, 0},
    [HM_QUERY_PARAMS] = {.name = "queryParams", .status = S},
    [HM_IGNORE_URI_CASE] = {.name = "ignoreUriCase", .status = S},
    [HM_WITHOUT_HEADERS] = {.name = "withoutHeaders", .status = S},
    [HM_SOURCE_NAMESPACE] = {.name = "sourceNamespace", .status = S},
    [HM_STAT_PREFIX] = {"statPrefix", U, PT_SHAPE_SCALAR, NULL, 0},
};
/* StringMatch (uri, scheme, method, authority, headers, queryParams: Istio refuses prefix
 * for queryParams, which read_http_match reports). */
enum { SM_EXACT, SM_PREFIX, SM_REGEX, SM__N };
static const pt_cfg_field_t string_match_fields[SM__N] = {
    [SM_EXACT] = {.name = "exact", .status = S},
    [SM_PREFIX] = {.name = "prefix", .status = S},
    [SM_REGEX] = {.name = "regex", .status = S},
};
enum { HD_DESTINATION, HD_WEIGHT, HD_HEADERS, HD__N };
static const pt_cfg_field_t http_dest_fields[HD__N] = {
    [HD_DESTINATION] = {.name = "destination", .status = S},
    [HD_WEIGHT] = {.name = "weight", .status = S},
    [HD_HEADERS] = {.name = "headers", .status = S},
};
enum { DST_HOST, DST_PORT, DST_SUBSET, DST__N };
static const pt_cfg_field_t destination_fields[DST__N] = {
    [DST_HOST] = {.name = "host", .status = S},
    [DST_PORT] = {.name = "port", .status = S},
    [DST_SUBSET] = {.name = "subset", .status = S},
};
enum { DR_STATUS, DR_BODY, DR__N };
static const pt_cfg_field_t direct_response_fields[DR__N] = {
    [DR_STATUS] = {.name = "status", .status = S},
    [DR_BODY] = {.name = "body", .status = S},
};
enum { BODY_STRING, BODY_BYTES, BODY__N };
static const pt_cfg_field_t body_fields[BODY__N] = {
    [BODY_STRING] = {.name = "string", .status = S},
    [BODY_BYTES] = {"bytes", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { TR_MATCH, TR_ROUTE, TR__N };
static const pt_cfg_field_t tcp_route_fields[TR__N] = {
    [TR_MATCH] = {.name = "match", .status = S},
    [TR_ROUTE] = {.name = "route", .status = S},
};
enum { L4_PORT, L4_DEST_SUBNETS, L4_SOURCE_LABELS, L4_GATEWAYS, L4_SOURCE_NAMESPACE, L4__N };
static const pt_cfg_field_t l4_match_fields[L4__N] = {
    [L4_PORT] = {.name = "port", .status = S},
    [L4_DEST_SUBNETS] = {.name = "destinationSubnets", .status = S},
    [L4_SOURCE_LABELS] = {"sourceLabels", U, PT_SHAPE_MAP, NULL, 0},
    [L4_GATEWAYS] = {"gateways", U, PT_SHAPE_SEQ, NULL, 0},
    [L4_SOURCE_NAMESPACE] = {"sourceNamespace", U, PT_SHAPE_SCALAR, NULL, 0},
};
/* tls[]: routed on the ClientHello's SNI at TLS-passthrough listeners. */
enum { TM_SNI_HOSTS, TM_PORT, TM_DEST_SUBNETS, TM_SOURCE_LABELS, TM_GATEWAYS, TM_SOURCE_NS, TM__N };
static const pt_cfg_field_t tls_match_fields[TM__N] = {
    [TM_SNI_HOSTS] = {.name = "sniHosts", .status = S},
    [TM_PORT] = {.name = "port", .status = S},
    [TM_DEST_SUBNETS] = {"destinationSubnets", U, PT_SHAPE_SEQ, NULL, 0},
    [TM_SOURCE_LABELS] = {"sourceLabels", U, PT_SHAPE_MAP, NULL, 0},
    [TM_GATEWAYS] = {"gateways", U, PT_SHAPE_SEQ, NULL, 0},
    [TM_SOURCE_NS] = {"sourceNamespace", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { RD_DESTINATION, RD_WEIGHT, RD__N };
static const pt_cfg_field_t route_dest_fields[RD__N] = {
    [RD_DESTINATION] = {.name = "destination", .status = S},
    [RD_WEIGHT] = {.name = "weight", .status = S},
};

/* How a StringMatch may be written where it is read. */
enum {
    SMF_ALLOW_EMPTY = 1, /* {} means "present" (headers, withoutHeaders, queryParams) */
    SMF_NO_PREFIX = 2,   /* queryParams: Istio matches them by exact or regex only */
};

/* Reads a StringMatch: exactly one of exact, prefix, regex (or none, written {}, when
 * SMF_ALLOW_EMPTY). A regex is compiled here, once, for a full match (RE2 semantics). Returns
 * true when *out was filled. */
static bool read_string_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                              unsigned flags, pt_string_match_t *out)
{
    const pt_cfg_node_t *f[SM__N];
    memset(out, 0, sizeof(*out));
    if (!MAP(cx, n, path, string_match_fields, f))
        return false;
    size_t count = 0, which = 0;
    for (size_t i = 0; i < SM__N; i++)
        if (f[i] != NULL) {
            count++;
            which = i;
        }
    if (count == 0) {
        if (flags & SMF_ALLOW_EMPTY) {
            out->kind = PT_MATCH_PRESENT;
            out->value = "";
            return true;
        }
        /* An empty value (`exact: ""` is fine, `exact:` alone is null) or no field at all. */
        pt__cfg_error(cx, n, path, "needs exactly one of exact, prefix or regex");
        return false;
    }
    if (count > 1) {
        pt__cfg_error(cx, n, path, "give only one of exact, prefix or regex");
        return false;
    }
    pt_cfg_path_t vp = PT_PATH_KEY(path, string_match_fields[which].name);
    if (which == SM_PREFIX && (flags & SMF_NO_PREFIX)) {
        pt__cfg_error(cx, f[which], &vp,
                      "not supported for query parameters (Istio matches them by exact or regex)");
        return false;
    }
    const char *s;
    if (!pt__cfg_str(cx, f[which], &vp, &s))
        return false;
    /* All len bytes: a YAML "\0" inside the value must not leave a copy shorter than len. */
    out->value = pt_arena_strndup(cx->out, s, f[which]->len);
    out->len = f[which]->len;
    if (which == SM_REGEX) {
        char err[320];
        out->regex = pt_regex_compile(cx->out, s, f[which]->len, true, err, sizeof(err));
        if (out->regex == NULL) {
            pt__cfg_error(cx, f[which], &vp, "%s", err);
            return false;
        }
        out->kind = PT_MATCH_REGEX;
    } else {
        out->kind = which == SM_EXACT ? PT_MATCH_EXACT : PT_MATCH_PREFIX;
    }
    return true;
}

/* headers / withoutHeaders (header names, lower-cased) or queryParams (names as written):
 * name -> StringMatch, {} meaning "present". */
static pt_header_match_t *read_name_matches(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                            const pt_cfg_path_t *path, bool is_query, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_map(cx, n, path) || n->n_pairs == 0)
        return NULL;
    pt_header_match_t *v = pt_arena_calloc(cx->out, n->n_pairs * sizeof(*v));
    for (size_t i = 0; i < n->n_pairs; i++) {
        const pt_cfg_node_t *k = n->pairs[i].key;
        pt_cfg_path_t kp = PT_PATH_KEY(path, k->str);
        if (!is_query && !pt__cfg_is_token(k->str, k->len)) {
            pt__cfg_error(cx, k, &kp, "not a valid header name");
            continue;
        }
        if (is_query && k->len == 0) {
            pt__cfg_error(cx, k, &kp, "must not be empty");
            continue;
        }
        pt_header_match_t *hm = &v[*out_n];
        unsigned flags = SMF_ALLOW_EMPTY | (is_query ? SMF_NO_PREFIX : 0);
        if (read_string_match(cx, n->pairs[i].value, &kp, flags, &hm->match)) {
            hm->name = is_query ? pt__cfg_out_str(cx, k->str) : pt__cfg_out_lower(cx, k->str);
            (*out_n)++;
        }
    }
    return v;
}

void pt__cfg_read_http_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             bool is_toxic, pt_http_match_t *m)
{
    const pt_cfg_node_t *f[HM__N];
    if (!MAP(cx, n, path, http_match_fields, f))
        return;
    if (is_toxic) {
        /* A toxic's route or proxy already decided the listener and the source: what is left
         * to select by is the request itself. */
        static const int not_on_toxic[] = {HM_PORT, HM_SOURCE_LABELS, HM_SOURCE_NAMESPACE,
                                           HM_GATEWAYS, HM_STAT_PREFIX};
        for (size_t i = 0; i < NF(not_on_toxic); i++) {
            int k = not_on_toxic[i];
            if (f[k] == NULL)
                continue;
            pt_cfg_path_t p = PT_PATH_KEY(path, http_match_fields[k].name);
            pt__cfg_error(cx, f[k], &p,
                          "not on a toxic's match (it selects requests by uri, scheme, method, "
                          "authority, headers, withoutHeaders, queryParams, ignoreUriCase)");
            f[k] = NULL;
        }
    }
    const char *s;
    if (f[HM_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "name");
        pt__cfg_str(cx, f[HM_NAME], &p, &s);
    }
    if (f[HM_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        m->has_uri = read_string_match(cx, f[HM_URI], &p, 0, &m->uri);
    }
    if (f[HM_SCHEME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "scheme");
        m->has_scheme = read_string_match(cx, f[HM_SCHEME], &p, 0, &m->scheme);
    }
    if (f[HM_AUTHORITY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "authority");
        m->has_authority = read_string_match(cx, f[HM_AUTHORITY], &p, 0, &m->authority);
    }
    if (f[HM_METHOD] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "method");
        pt_string_match_t sm;
        if (read_string_match(cx, f[HM_METHOD], &p, 0, &sm)) {
            if (sm.kind == PT_MATCH_EXACT && sm.len == 0) {
                pt_cfg_path_t ep = PT_PATH_KEY(&p, "exact");
                pt__cfg_error(cx, f[HM_METHOD], &ep, "must not be empty");
            }
            m->has_method = true;
            m->method_match = sm;
            if (sm.kind == PT_MATCH_EXACT)
                m->method = sm.value;
        }
    }
    if (f[HM_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "headers");
        m->headers = read_name_matches(cx, f[HM_HEADERS], &p, false, &m->n_headers);
    }
    if (f[HM_WITHOUT_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "withoutHeaders");
        m->without_headers =
            read_name_matches(cx, f[HM_WITHOUT_HEADERS], &p, false, &m->n_without_headers);
    }
    if (f[HM_QUERY_PARAMS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "queryParams");
        m->query_params = read_name_matches(cx, f[HM_QUERY_PARAMS], &p, true, &m->n_query_params);
    }
    if (f[HM_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "port");
        long long v;
        if (pt__cfg_int(cx, f[HM_PORT], &p, 1, 65535, &v))
            m->port = (uint16_t)v;
    }
    if (f[HM_IGNORE_URI_CASE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "ignoreUriCase");
        bool b = false;
        /* Istio: only exact and prefix URI matches ignore case; a regex says so itself. */
        if (pt__cfg_read_bool(cx, f[HM_IGNORE_URI_CASE], &p, &b) && b && m->has_uri)
            m->uri.ignore_case = m->uri.kind != PT_MATCH_REGEX;
    }
    if (f[HM_SOURCE_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "sourceLabels");
        m->source_labels = pt__cfg_read_labels(cx, f[HM_SOURCE_LABELS], &p, &m->n_source_labels);
    }
    if (f[HM_SOURCE_NAMESPACE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "sourceNamespace");
        if (pt__cfg_nonempty_str(cx, f[HM_SOURCE_NAMESPACE], &p, &s))
            m->source_namespace = pt__cfg_out_str(cx, s);
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
        if (MAP(cx, f[DST_PORT], &pp, pt__cfg_port_selector_fields, pf)) {
            pt_cfg_path_t np = PT_PATH_KEY(&pp, "number");
            long long v;
            if (pf[PS_NUMBER] == NULL)
                pt__cfg_error(cx, f[DST_PORT], &np, "required");
            else if (pt__cfg_int(cx, pf[PS_NUMBER], &np, 1, 65535, &v))
                d->port = (uint16_t)v;
        }
    }
    if (f[DST_SUBSET] != NULL) {
        pt_cfg_path_t sp = PT_PATH_KEY(path, "subset");
        const char *s;
        if (pt__cfg_nonempty_str(cx, f[DST_SUBSET], &sp, &s)) {
            d->subset = pt__cfg_out_str(cx, s);
            d->subset_node = f[DST_SUBSET];
        }
    }
}

/* mirror (+ mirrorPercentage, or the deprecated integer mirrorPercent) or mirrors[]
 * ({destination, percentage}); a mirror without a percentage mirrors every request (Istio). */
static void read_mirrors(pt_cfg_cx_t *cx, const pt_cfg_node_t *const *f, const pt_cfg_path_t *path,
                         pt_res_http_route_t *hr)
{
    if (f[HR_MIRROR] != NULL && f[HR_MIRRORS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "mirrors");
        pt__cfg_error(cx, f[HR_MIRRORS], &p, "give only one of mirror or mirrors");
        return;
    }
    if (f[HR_MIRROR] == NULL) {
        const char *stray = f[HR_MIRROR_PERCENTAGE] ? "mirrorPercentage"
                            : f[HR_MIRROR_PERCENT]  ? "mirrorPercent"
                                                    : NULL;
        if (stray != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(path, stray);
            pt__cfg_warn(cx,
                         f[HR_MIRROR_PERCENTAGE] ? f[HR_MIRROR_PERCENTAGE] : f[HR_MIRROR_PERCENT],
                         &p, "without mirror it has no effect");
        }
    }
    if (f[HR_MIRROR] != NULL) {
        hr->mirror_dests = pt_arena_calloc(cx->tmp, sizeof(*hr->mirror_dests));
        hr->mirror_ppm = pt_arena_calloc(cx->tmp, sizeof(*hr->mirror_ppm));
        pt_cfg_path_t p = PT_PATH_KEY(path, "mirror");
        read_destination(cx, f[HR_MIRROR], &p, &hr->mirror_dests[0]);
        hr->mirror_ppm[0] = PT_FAULT_SCALE;
        if (f[HR_MIRROR_PERCENTAGE] != NULL) {
            pt_cfg_path_t pp = PT_PATH_KEY(path, "mirrorPercentage");
            pt__cfg_read_percentage(cx, f[HR_MIRROR_PERCENTAGE], &pp, &hr->mirror_ppm[0]);
        } else if (f[HR_MIRROR_PERCENT] != NULL) {
            pt_cfg_path_t pp = PT_PATH_KEY(path, "mirrorPercent");
            long long v;
            if (pt__cfg_int(cx, f[HR_MIRROR_PERCENT], &pp, 0, 100, &v))
                hr->mirror_ppm[0] = (uint32_t)v * (PT_FAULT_SCALE / 100);
            pt__cfg_warn(cx, f[HR_MIRROR_PERCENT], &pp,
                         "deprecated: use mirrorPercentage.value (read as that)");
        }
        hr->n_mirrors = 1;
        return;
    }
    if (f[HR_MIRRORS] == NULL)
        return;
    pt_cfg_path_t mp = PT_PATH_KEY(path, "mirrors");
    const pt_cfg_node_t *m = f[HR_MIRRORS];
    if (!pt__cfg_is_seq(cx, m, &mp) || m->n_items == 0)
        return;
    hr->mirror_dests = pt_arena_calloc(cx->tmp, m->n_items * sizeof(*hr->mirror_dests));
    hr->mirror_ppm = pt_arena_calloc(cx->tmp, m->n_items * sizeof(*hr->mirror_ppm));
    for (size_t i = 0; i < m->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(&mp, i);
        const pt_cfg_node_t *mf[MP__N];
        if (!MAP(cx, m->items[i], &ip, mirror_policy_fields, mf))
            continue;
        pt_cfg_path_t dp = PT_PATH_KEY(&ip, "destination");
        if (mf[MP_DESTINATION] == NULL) {
            pt__cfg_error(cx, m->items[i], &dp, "required");
            continue;
        }
        size_t k = hr->n_mirrors++;
        read_destination(cx, mf[MP_DESTINATION], &dp, &hr->mirror_dests[k]);
        hr->mirror_ppm[k] = PT_FAULT_SCALE;
        if (mf[MP_PERCENTAGE] != NULL) {
            pt_cfg_path_t pp = PT_PATH_KEY(&ip, "percentage");
            pt__cfg_read_percentage(cx, mf[MP_PERCENTAGE], &pp, &hr->mirror_ppm[k]);
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
        if (table == http_dest_fields && f[HD_HEADERS] != NULL) {
            pt_cfg_path_t hp = PT_PATH_KEY(&ip, "headers");
            d->headers = pt__cfg_read_headers(cx, f[HD_HEADERS], &hp);
        }
        d->node = n->items[i];
        d->path = pt__cfg_path_dup(cx->tmp, &ip);
        (*out_n)++;
    }
    return dests;
}

/* retries: Istio's HTTPRetry over Istio's defaults (2 attempts when attempts is absent,
 * retryOn "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" with
 * 503 when absent). A route with retries written is honoured for every method. */
static const pt_retry_policy_t *read_retries(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                             const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[RT__N];
    if (!MAP(cx, n, path, retries_fields, f))
        return NULL;
    pt_retry_policy_t *p = pt_arena_calloc(cx->out, sizeof(*p));
    pt_retry_policy_default(p);
    p->is_explicit = true;
    bool ok = true;
    if (f[RT_ATTEMPTS] != NULL) {
        pt_cfg_path_t ap = PT_PATH_KEY(path, "attempts");
        long long v;
        if (pt__cfg_int(cx, f[RT_ATTEMPTS], &ap, 0, 100, &v))
            p->attempts = (uint32_t)v;
        else
            ok = false;
    }
    if (f[RT_PER_TRY] != NULL) {
        pt_cfg_path_t tp = PT_PATH_KEY(path, "perTryTimeout");
        ok = pt__cfg_duration(cx, f[RT_PER_TRY], &tp, &p->per_try_timeout_ms) && ok;
    }
    if (f[RT_ON] != NULL) {
        pt_cfg_path_t op = PT_PATH_KEY(path, "retryOn");
        const char *s, *bad;
        size_t bad_len;
        if (!pt__cfg_nonempty_str(cx, f[RT_ON], &op, &s))
            ok = false;
        else if (pt_retry_on_parse(s, p, &bad, &bad_len) != 0) {
            pt__cfg_error(cx, f[RT_ON], &op,
                          "unknown retry condition \"%.*s\" (expected Envoy's x-envoy-retry-on "
                          "conditions, gRPC conditions or HTTP status codes)",
                          (int)bad_len, bad);
            ok = false;
        }
    }
    if (f[RT_REMOTE] != NULL) {
        pt_cfg_path_t rp = PT_PATH_KEY(path, "retryRemoteLocalities");
        pt__cfg_warn(cx, f[RT_REMOTE], &rp,
                     "Petrel has no localities yet: every endpoint is a candidate for a retry");
    }
    if (f[RT_IGNORE_PREV] != NULL) {
        pt_cfg_path_t ip = PT_PATH_KEY(path, "retryIgnorePreviousHosts");
        ok = pt__cfg_read_bool(cx, f[RT_IGNORE_PREV], &ip, &p->ignore_previous_hosts) && ok;
    }
    if (f[RT_BACKOFF] != NULL) {
        /* Envoy's base interval; its maximum stays ten times the base, as Envoy's default. */
        pt_cfg_path_t bp = PT_PATH_KEY(path, "backoff");
        uint64_t ms;
        if (pt__cfg_duration(cx, f[RT_BACKOFF], &bp, &ms)) {
            p->backoff_base_ms = ms;
            p->backoff_max_ms = ms * 10;
        } else {
            ok = false;
        }
    }
    return ok ? p : NULL;
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
                pt__cfg_read_http_match(cx, m->items[i], &ip, false, &hr->route.matches[i]);
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
    if (f[HR_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "headers");
        hr->route.headers = pt__cfg_read_headers(cx, f[HR_HEADERS], &p);
    }
    if (f[HR_REWRITE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "rewrite");
        hr->route.rewrite = pt__cfg_read_rewrite(cx, f[HR_REWRITE], &p);
    }
    if (f[HR_RETRIES] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "retries");
        hr->route.retry = read_retries(cx, f[HR_RETRIES], &p);
    }
    if (f[HR_FAULT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "fault");
        hr->route.fault = pt__cfg_read_fault(cx, f[HR_FAULT], &p);
    }
    read_mirrors(cx, f, path, hr);
    bool has_redirect = f[HR_REDIRECT] != NULL;
    if (has_redirect) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "redirect");
        hr->route.redirect = pt__cfg_read_redirect(cx, f[HR_REDIRECT], &p);
    }
    /* delegate: this route's place is taken by the routes of another VirtualService (one
     * without hosts), merged with this route's match and defaults by config/delegate.c. */
    if (f[HR_DELEGATE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "delegate");
        const pt_cfg_node_t *df[DG__N];
        if (MAP(cx, f[HR_DELEGATE], &p, delegate_fields, df)) {
            pt_cfg_path_t np = PT_PATH_KEY(&p, "name");
            const char *name, *ns = vs->meta.ns;
            if (df[DG_NAME] == NULL)
                pt__cfg_error(cx, f[HR_DELEGATE], &np, "required");
            else if (pt__cfg_nonempty_str(cx, df[DG_NAME], &np, &name)) {
                hr->delegate_name = name;
                hr->delegate_node = f[HR_DELEGATE];
            }
            if (df[DG_NAMESPACE] != NULL) {
                pt_cfg_path_t nsp = PT_PATH_KEY(&p, "namespace");
                if (pt__cfg_nonempty_str(cx, df[DG_NAMESPACE], &nsp, &ns))
                    hr->delegate_ns = ns;
            }
            if (hr->delegate_ns == NULL)
                hr->delegate_ns = vs->meta.ns;
        }
        if (vs->is_delegate)
            pt__cfg_error(cx, f[HR_DELEGATE], &p,
                          "a delegate VirtualService (one without hosts) cannot delegate again: "
                          "delegation is one level deep");
        if (has_route || has_direct || has_redirect)
            pt__cfg_error(cx, n, path,
                          "delegate excludes route, redirect and directResponse: give only one");
    }
    /* Exclusions as Istio's validation has them. */
    bool other_action = f[HR_DELEGATE] != NULL;
    if (has_redirect && (has_route || has_direct))
        pt__cfg_error(cx, n, path,
                      "redirect, route and directResponse are exclusive: give exactly one");
    else if (has_redirect && f[HR_REWRITE] != NULL)
        pt__cfg_error(cx, n, path, "rewrite and redirect are exclusive: give only one");
    else if (has_route && has_direct)
        pt__cfg_error(cx, n, path, "route and directResponse are exclusive: give exactly one");
    else if (!has_route && !has_direct && !has_redirect && !other_action)
        pt__cfg_error(cx, n, path, "needs a route or a directResponse");
}

/* match[].destinationSubnets: addresses or CIDR blocks. */
static void read_subnets(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *match_path,
                         pt_res_l4_match_t *lm)
{
    pt_cfg_path_t p = PT_PATH_KEY(match_path, "destinationSubnets");
    if (!pt__cfg_is_seq(cx, n, &p))
        return;
    lm->subnets = pt_arena_calloc(cx->out, (n->n_items + 1) * sizeof(*lm->subnets));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
        const char *s;
        if (!pt__cfg_str(cx, n->items[i], &ip, &s))
            continue;
        if (pt_cidr_parse(s, &lm->subnets[lm->n_subnets]))
            lm->n_subnets++;
        else
            pt__cfg_error(cx, n->items[i], &ip, "must be an IP address or a CIDR block, got \"%s\"",
                          s);
    }
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
            tr->l4_matches = pt_arena_calloc(cx->tmp, m->n_items * sizeof(*tr->l4_matches));
            for (size_t i = 0; i < m->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const pt_cfg_node_t *lf[L4__N];
                if (!MAP(cx, m->items[i], &ip, l4_match_fields, lf))
                    continue;
                pt_res_l4_match_t *lm = &tr->l4_matches[tr->n_l4_matches++];
                if (lf[L4_DEST_SUBNETS] != NULL)
                    read_subnets(cx, lf[L4_DEST_SUBNETS], &ip, lm);
                if (lf[L4_PORT] == NULL) {
                    /* A Gateway listener has no original destination to test subnets on. */
                    if (lm->n_subnets == 0)
                        tr->match_any = true;
                    continue;
                }
                pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
                long long v;
                if (pt__cfg_int(cx, lf[L4_PORT], &pp, 1, 65535, &v)) {
                    lm->port = (uint16_t)v;
                    if (lm->n_subnets == 0)
                        tr->match_ports[tr->n_matches++] = (uint16_t)v;
                }
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

/* Istio: each sniHost must fall within one of the VirtualService's hosts. */
static bool sni_within_hosts(const pt_res_vs_t *vs, const char *sni)
{
    for (size_t i = 0; i < vs->n_hosts; i++)
        if (pt__cfg_host_covers(vs->hosts[i], sni))
            return true;
    return false;
}

static void read_tls_route(pt_cfg_cx_t *cx, const pt_res_vs_t *vs, const pt_cfg_node_t *n,
                           const pt_cfg_path_t *path, pt_res_tcp_route_t *tr)
{
    const pt_cfg_node_t *f[TR__N];
    tr->node = n;
    tr->path = pt__cfg_path_dup(cx->tmp, path);
    if (!MAP(cx, n, path, tcp_route_fields, f))
        return;
    pt_cfg_path_t mp = PT_PATH_KEY(path, "match");
    const pt_cfg_node_t *m = f[TR_MATCH];
    if (m == NULL)
        pt__cfg_error(cx, n, &mp, "required (sniHosts to route on)");
    else if (pt__cfg_is_seq(cx, m, &mp)) {
        if (m->n_items == 0)
            pt__cfg_error(cx, m, &mp, "must not be empty");
        tr->tls_matches = pt_arena_calloc(cx->tmp, (m->n_items + 1) * sizeof(*tr->tls_matches));
        for (size_t i = 0; i < m->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&mp, i);
            const pt_cfg_node_t *lf[TM__N];
            if (!MAP(cx, m->items[i], &ip, tls_match_fields, lf))
                continue;
            pt_res_tls_match_t *tm = &tr->tls_matches[tr->n_tls_matches];
            pt_cfg_path_t sp = PT_PATH_KEY(&ip, "sniHosts");
            if (lf[TM_SNI_HOSTS] == NULL) {
                pt__cfg_error(cx, m->items[i], &sp, "required");
                continue;
            }
            tm->sni_hosts = pt__cfg_read_hosts(cx, lf[TM_SNI_HOSTS], &sp, false, &tm->n_sni_hosts);
            for (size_t j = 0; j < tm->n_sni_hosts; j++)
                if (!sni_within_hosts(vs, tm->sni_hosts[j])) {
                    pt_cfg_path_t jp = PT_PATH_IDX(&sp, j);
                    pt__cfg_error(cx, lf[TM_SNI_HOSTS]->items[j], &jp,
                                  "\"%s\" is not within any of the VirtualService's hosts",
                                  tm->sni_hosts[j]);
                }
            if (lf[TM_PORT] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
                long long v;
                if (pt__cfg_int(cx, lf[TM_PORT], &pp, 1, 65535, &v))
                    tm->port = (uint16_t)v;
            }
            tr->n_tls_matches++;
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

void pt__cfg_read_virtual_service(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                  const pt_cfg_node_t *spec)
{
    pt_res_vs_t *vs = pt_arena_calloc(cx->tmp, sizeof(*vs));
    vs->meta = *meta;
    vs->qname = pt_arena_printf(cx->out, "%s/%s", meta->ns, meta->name);
    PUSH(cx, set->vss, set->n_vss, set->cap_vss, vs);

    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    const pt_cfg_node_t *f[VS__N];
    if (!MAP(cx, spec, &sp, vs_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "hosts");
    if (f[VS_HOSTS] == NULL)
        vs->is_delegate = true; /* as Istio: no hosts makes a delegate */
    else
        vs->hosts = pt__cfg_read_hosts(cx, f[VS_HOSTS], &hp, false, &vs->n_hosts);
    if (vs->is_delegate) {
        static const struct {
            int field;
            const char *name;
        } not_in_delegate[] = {{VS_GATEWAYS, "gateways"}, {VS_TCP, "tcp"}, {VS_TLS, "tls"}};
        for (size_t i = 0; i < NF(not_in_delegate); i++)
            if (f[not_in_delegate[i].field] != NULL) {
                pt_cfg_path_t p = PT_PATH_KEY(&sp, not_in_delegate[i].name);
                pt__cfg_error(cx, f[not_in_delegate[i].field], &p,
                              "a VirtualService without hosts is a delegate, which takes no %s "
                              "(give hosts to bind it yourself)",
                              not_in_delegate[i].name);
            }
    }
    if (f[VS_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[VS_EXPORT_TO], &p);
    }

    /* gateways: absent means "mesh" in Istio, i.e. the sidecars. Whether this proxy is one
     * (Proxy spec.sidecar) is known at compile, which warns when it is not. */
    pt_cfg_path_t gp = PT_PATH_KEY(&sp, "gateways");
    const pt_cfg_node_t *g = f[VS_GATEWAYS];
    if (g == NULL && vs->is_delegate) {
        /* bound wherever the VirtualServices delegating to it are */
    } else if (g == NULL) {
        vs->mesh_only = vs->binds_mesh = true;
        vs->mesh_node = spec;
        vs->mesh_path = pt__cfg_path_dup(cx->tmp, &gp);
    } else if (pt__cfg_is_seq(cx, g, &gp)) {
        vs->gateways = pt_arena_calloc(cx->tmp, (g->n_items + 1) * sizeof(*vs->gateways));
        bool any = false;
        for (size_t i = 0; i < g->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&gp, i);
            const char *s;
            if (!pt__cfg_nonempty_str(cx, g->items[i], &ip, &s))
                continue;
            any = true;
            if (strcmp(s, "mesh") == 0) {
                vs->binds_mesh = true;
                vs->mesh_node = g->items[i];
                vs->mesh_path = pt__cfg_path_dup(cx->tmp, &ip);
                continue;
            }
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
        if (any && vs->n_gateways == 0 && vs->binds_mesh)
            vs->mesh_only = true;
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
    if (f[VS_TLS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "tls");
        const pt_cfg_node_t *t = f[VS_TLS];
        if (pt__cfg_is_seq(cx, t, &p) && t->n_items > 0) {
            vs->tls = pt_arena_calloc(cx->tmp, t->n_items * sizeof(*vs->tls));
            vs->n_tls = t->n_items;
            for (size_t i = 0; i < t->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_tls_route(cx, vs, t->items[i], &ip, &vs->tls[i]);
            }
        }
    }
    if (vs->n_http == 0 && vs->n_tcp == 0 && vs->n_tls == 0 && f[VS_TLS] == NULL &&
        f[VS_HTTP] == NULL && f[VS_TCP] == NULL)
        pt__cfg_error(cx, spec, &sp, "needs http, tcp or tls routes");
}
