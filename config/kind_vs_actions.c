/* config/kind_vs_actions.c
 * A VirtualService HTTP route's actions: header mutations (of the route and of each route[]
 * destination), rewrite, redirect and fault injection. Everything is checked here, so that the
 * request path (proxy/route_action.c) writes the results as they are: header names are tokens
 * that are not framing, hop-by-hop or Petrel's own headers, values have no CR/LF, paths and
 * authorities are visible ASCII. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kinds.h"
#include "regex.h"

/* HTTPFaultInjection: read by pt__cfg_read_fault(). */
static const pt_cfg_field_t fault_percent_fields[] = {{.name = "value", .status = S}};
enum { FD_PERCENTAGE, FD_PERCENT, FD_FIXED, FD_EXPONENTIAL, FD__N };
static const pt_cfg_field_t delay_fields[FD__N] = {
    [FD_PERCENTAGE] = {.name = "percentage", .status = S},
    [FD_PERCENT] = {.name = "percent", .status = S}, /* deprecated integer form */
    [FD_FIXED] = {.name = "fixedDelay", .status = S},
    [FD_EXPONENTIAL] = {"exponentialDelay", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { FA_PERCENTAGE, FA_HTTP, FA_GRPC, FA_HTTP2, FA__N };
static const pt_cfg_field_t abort_fields[FA__N] = {
    [FA_PERCENTAGE] = {.name = "percentage", .status = S},
    [FA_HTTP] = {.name = "httpStatus", .status = S},
    [FA_GRPC] = {.name = "grpcStatus", .status = S},
    [FA_HTTP2] = {"http2Error", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { FLT_DELAY, FLT_ABORT, FLT__N };
static const pt_cfg_field_t fault_fields[FLT__N] = {
    [FLT_DELAY] = {.name = "delay", .status = S},
    [FLT_ABORT] = {.name = "abort", .status = S},
};

/* Headers, HeaderOperations */
enum { HDR_REQUEST, HDR_RESPONSE, HDR__N };
static const pt_cfg_field_t headers_fields[HDR__N] = {
    [HDR_REQUEST] = {.name = "request", .status = S},
    [HDR_RESPONSE] = {.name = "response", .status = S},
};
enum { HOP_SET, HOP_ADD, HOP_REMOVE, HOP__N };
static const pt_cfg_field_t header_ops_fields[HOP__N] = {
    [HOP_SET] = {.name = "set", .status = S},
    [HOP_ADD] = {.name = "add", .status = S},
    [HOP_REMOVE] = {.name = "remove", .status = S},
};
/* HTTPRewrite, RegexRewrite, HTTPRedirect */
enum { RW_URI, RW_AUTHORITY, RW_URI_REGEX, RW__N };
static const pt_cfg_field_t rewrite_fields[RW__N] = {
    [RW_URI] = {.name = "uri", .status = S},
    [RW_AUTHORITY] = {.name = "authority", .status = S},
    [RW_URI_REGEX] = {.name = "uriRegexRewrite", .status = S},
};
enum { RR_MATCH, RR_REWRITE, RR__N };
static const pt_cfg_field_t regex_rewrite_fields[RR__N] = {
    [RR_MATCH] = {.name = "match", .status = S},
    [RR_REWRITE] = {.name = "rewrite", .status = S},
};
enum { RD_URI, RD_AUTHORITY, RD_PORT, RD_DERIVE_PORT, RD_SCHEME, RD_CODE, RDR__N };
static const pt_cfg_field_t redirect_fields[RDR__N] = {
    [RD_URI] = {.name = "uri", .status = S},
    [RD_AUTHORITY] = {.name = "authority", .status = S},
    [RD_PORT] = {.name = "port", .status = S},
    [RD_DERIVE_PORT] = {.name = "derivePort", .status = S},
    [RD_SCHEME] = {.name = "scheme", .status = S},
    [RD_CODE] = {.name = "redirectCode", .status = S},
};

/* Headers a route may not change: Petrel writes them itself (framing, Host, the forwarding
 * headers), or they belong to one hop. */
static const char *const reserved_request_headers[] = {"host",
                                                       "content-length",
                                                       "transfer-encoding",
                                                       "connection",
                                                       "keep-alive",
                                                       "proxy-connection",
                                                       "te",
                                                       "trailer",
                                                       "upgrade",
                                                       "expect",
                                                       "x-forwarded-for",
                                                       "x-forwarded-proto",
                                                       "x-request-id",
                                                       NULL};
static const char *const reserved_response_headers[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
    "trailer",        "upgrade",           NULL};

static bool check_mutation_name(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                const char *name, size_t len, bool request)
{
    if (!pt__cfg_is_token(name, len)) {
        pt__cfg_error(cx, n, path, "not a valid header name");
        return false;
    }
    for (const char *const *r = request ? reserved_request_headers : reserved_response_headers;
         *r != NULL; r++)
        if (strlen(*r) == len && strncasecmp(*r, name, len) == 0) {
            if (request && strcmp(*r, "host") == 0)
                pt__cfg_error(cx, n, path, "Host cannot be set here: use rewrite.authority");
            else
                pt__cfg_error(cx, n, path,
                              "%s is written by Petrel itself and cannot be changed by a route",
                              *r);
            return false;
        }
    return true;
}

/* Visible ASCII and spaces/tabs inside, as a header value may hold (never CR, LF, NUL). */
static bool is_header_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Visible ASCII only: what can go into a request line or a Location. */
static bool is_visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static void read_header_ops(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                            bool request, pt_header_ops_t *ops)
{
    const pt_cfg_node_t *f[HOP__N];
    if (!MAP(cx, n, path, header_ops_fields, f))
        return;
    for (int which = HOP_SET; which <= HOP_ADD; which++) {
        const pt_cfg_node_t *m = f[which];
        if (m == NULL)
            continue;
        pt_cfg_path_t p = PT_PATH_KEY(path, header_ops_fields[which].name);
        if (!pt__cfg_string_map(cx, m, &p) || m->n_pairs == 0)
            continue;
        pt_header_op_t *v = pt_arena_calloc(cx->out, m->n_pairs * sizeof(*v));
        size_t k = 0;
        for (size_t i = 0; i < m->n_pairs; i++) {
            const pt_cfg_node_t *key = m->pairs[i].key, *val = m->pairs[i].value;
            pt_cfg_path_t kp = PT_PATH_KEY(&p, key->str);
            if (!check_mutation_name(cx, key, &kp, key->str, key->len, request))
                continue;
            const char *value = val->type == PT_CFG_NULL ? "" : val->str;
            size_t value_len = val->type == PT_CFG_NULL ? 0 : val->len;
            if (!is_header_value(value, value_len)) {
                pt__cfg_error(cx, val, &kp, "not a valid header value (control characters)");
                continue;
            }
            v[k++] = (pt_header_op_t){pt__cfg_out_lower(cx, key->str), key->len,
                                      pt__cfg_out_str(cx, value), value_len};
        }
        if (which == HOP_SET) {
            ops->set = v;
            ops->n_set = k;
        } else {
            ops->add = v;
            ops->n_add = k;
        }
    }
    if (f[HOP_REMOVE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "remove");
        const pt_cfg_node_t *l = f[HOP_REMOVE];
        if (pt__cfg_is_seq(cx, l, &p) && l->n_items > 0) {
            pt_header_op_t *v = pt_arena_calloc(cx->out, l->n_items * sizeof(*v));
            size_t k = 0;
            for (size_t i = 0; i < l->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const char *s;
                if (!pt__cfg_nonempty_str(cx, l->items[i], &ip, &s) ||
                    !check_mutation_name(cx, l->items[i], &ip, s, l->items[i]->len, request))
                    continue;
                v[k++] = (pt_header_op_t){pt__cfg_out_lower(cx, s), l->items[i]->len, NULL, 0};
            }
            ops->remove = v;
            ops->n_remove = k;
        }
    }
}

/* Istio's Headers {request, response}; NULL when it changes nothing. */
const pt_header_mutations_t *pt__cfg_read_headers(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                                  const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[HDR__N];
    if (!MAP(cx, n, path, headers_fields, f))
        return NULL;
    pt_header_mutations_t *hm = pt_arena_calloc(cx->out, sizeof(*hm));
    if (f[HDR_REQUEST] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "request");
        read_header_ops(cx, f[HDR_REQUEST], &p, true, &hm->request);
    }
    if (f[HDR_RESPONSE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "response");
        read_header_ops(cx, f[HDR_RESPONSE], &p, false, &hm->response);
    }
    const pt_header_ops_t *q = &hm->request, *r = &hm->response;
    if (q->n_set + q->n_add + q->n_remove + r->n_set + r->n_add + r->n_remove == 0)
        return NULL;
    return hm;
}

/* host[:port] as it may appear in Host or a Location: no spaces, slashes, controls. */
static bool is_authority(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || strchr("-._~%!$&'()*+,;=:[]", c) != NULL))
            return false;
    }
    return true;
}

static bool read_authority(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           const char **out, size_t *out_len)
{
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return false;
    if (!is_authority(s, n->len)) {
        pt__cfg_error(cx, n, path, "not a valid authority (host[:port]): \"%s\"", s);
        return false;
    }
    *out = pt__cfg_out_str(cx, s);
    *out_len = n->len;
    return true;
}

/* A path for a rewrite or a redirect: starts with '/', visible ASCII only. */
static bool read_uri(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                     const char **out, size_t *out_len)
{
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return false;
    if (s[0] != '/' || !is_visible_ascii(s, n->len)) {
        pt__cfg_error(cx, n, path,
                      "must be a path starting with \"/\", without spaces or control characters");
        return false;
    }
    *out = pt__cfg_out_str(cx, s);
    *out_len = n->len;
    return true;
}

const pt_http_rewrite_t *pt__cfg_read_rewrite(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                              const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[RW__N];
    if (!MAP(cx, n, path, rewrite_fields, f))
        return NULL;
    pt_http_rewrite_t *rw = pt_arena_calloc(cx->out, sizeof(*rw));
    bool ok = true;
    if (f[RW_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        ok &= read_uri(cx, f[RW_URI], &p, &rw->uri, &rw->uri_len);
    }
    if (f[RW_AUTHORITY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "authority");
        ok &= read_authority(cx, f[RW_AUTHORITY], &p, &rw->authority, &rw->authority_len);
    }
    if (f[RW_URI_REGEX] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uriRegexRewrite");
        const pt_cfg_node_t *rf[RR__N];
        if (!MAP(cx, f[RW_URI_REGEX], &p, regex_rewrite_fields, rf)) {
            ok = false;
        } else {
            pt_cfg_path_t mp = PT_PATH_KEY(&p, "match"), rp = PT_PATH_KEY(&p, "rewrite");
            const char *s;
            if (rf[RR_MATCH] == NULL) {
                pt__cfg_error(cx, f[RW_URI_REGEX], &mp, "required");
                ok = false;
            } else if (pt__cfg_nonempty_str(cx, rf[RR_MATCH], &mp, &s)) {
                char err[320];
                rw->uri_regex =
                    pt_regex_compile(cx->out, s, rf[RR_MATCH]->len, false, err, sizeof(err));
                if (rw->uri_regex == NULL) {
                    pt__cfg_error(cx, rf[RR_MATCH], &mp, "%s", err);
                    ok = false;
                }
            } else {
                ok = false;
            }
            if (rf[RR_REWRITE] == NULL) {
                pt__cfg_error(cx, f[RW_URI_REGEX], &rp, "required");
                ok = false;
            } else if (pt__cfg_str(cx, rf[RR_REWRITE], &rp, &s)) {
                size_t len = rf[RR_REWRITE]->len;
                uint32_t groups = rw->uri_regex ? pt_regex_groups(rw->uri_regex) : 9;
                for (size_t i = 0; i < len && ok; i++) {
                    if (s[i] != '\\')
                        continue;
                    if (i + 1 == len) {
                        pt__cfg_error(cx, rf[RR_REWRITE], &rp, "ends with a lone backslash");
                        ok = false;
                    } else if (s[i + 1] >= '0' && s[i + 1] <= '9' &&
                               (uint32_t)(s[i + 1] - '0') > groups) {
                        pt__cfg_error(cx, rf[RR_REWRITE], &rp,
                                      "refers to group \\%c but the regex has %u", s[i + 1],
                                      (unsigned)groups);
                        ok = false;
                    }
                    i++;
                }
                if (ok && !is_visible_ascii(s, len)) {
                    pt__cfg_error(cx, rf[RR_REWRITE], &rp,
                                  "must not contain spaces or control characters");
                    ok = false;
                }
                rw->uri_regex_rewrite = pt__cfg_out_str(cx, s);
                rw->uri_regex_rewrite_len = len;
            } else {
                ok = false;
            }
        }
        if (f[RW_URI] != NULL) {
            pt__cfg_error(cx, n, path, "give only one of uri or uriRegexRewrite");
            ok = false;
        }
    }
    if (f[RW_URI] == NULL && f[RW_AUTHORITY] == NULL && f[RW_URI_REGEX] == NULL) {
        pt__cfg_error(cx, n, path, "needs uri, authority or uriRegexRewrite");
        ok = false;
    }
    return ok ? rw : NULL;
}

const pt_http_redirect_t *pt__cfg_read_redirect(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                                const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[RDR__N];
    if (!MAP(cx, n, path, redirect_fields, f))
        return NULL;
    pt_http_redirect_t *rd = pt_arena_calloc(cx->out, sizeof(*rd));
    rd->code = 301;
    bool ok = true;
    long long v;
    if (f[RD_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        ok &= read_uri(cx, f[RD_URI], &p, &rd->uri, &rd->uri_len);
    }
    if (f[RD_AUTHORITY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "authority");
        ok &= read_authority(cx, f[RD_AUTHORITY], &p, &rd->authority, &rd->authority_len);
    }
    if (f[RD_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "port");
        if (pt__cfg_int(cx, f[RD_PORT], &p, 1, 65535, &v))
            rd->port = (uint16_t)v;
        else
            ok = false;
    }
    if (f[RD_DERIVE_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "derivePort");
        const char *s;
        if (!pt__cfg_str(cx, f[RD_DERIVE_PORT], &p, &s)) {
            ok = false;
        } else if (strcmp(s, "FROM_REQUEST_PORT") == 0) {
            rd->port_from_request = true;
        } else if (strcmp(s, "FROM_PROTOCOL_DEFAULT") != 0) {
            pt__cfg_error(cx, f[RD_DERIVE_PORT], &p,
                          "unknown value \"%s\" (expected FROM_PROTOCOL_DEFAULT or "
                          "FROM_REQUEST_PORT)",
                          s);
            ok = false;
        }
        if (f[RD_PORT] != NULL) {
            pt__cfg_error(cx, n, path, "give only one of port or derivePort");
            ok = false;
        }
    }
    if (f[RD_SCHEME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "scheme");
        const char *s;
        if (pt__cfg_nonempty_str(cx, f[RD_SCHEME], &p, &s)) {
            bool valid = isalpha((unsigned char)s[0]);
            for (size_t i = 1; valid && s[i]; i++)
                valid = isalnum((unsigned char)s[i]) || strchr("+-.", s[i]) != NULL;
            if (valid) {
                rd->scheme = pt__cfg_out_lower(cx, s);
            } else {
                pt__cfg_error(cx, f[RD_SCHEME], &p, "not a valid URI scheme: \"%s\"", s);
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    if (f[RD_CODE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "redirectCode");
        if (!pt__cfg_int(cx, f[RD_CODE], &p, 100, 999, &v)) {
            ok = false;
        } else if (v != 301 && v != 302 && v != 303 && v != 307 && v != 308) {
            pt__cfg_error(cx, f[RD_CODE], &p, "must be 301, 302, 303, 307 or 308, got %lld", v);
            ok = false;
        } else {
            rd->code = (int)v;
        }
    }
    if (f[RD_URI] == NULL && f[RD_AUTHORITY] == NULL && f[RD_SCHEME] == NULL &&
        f[RD_PORT] == NULL && f[RD_DERIVE_PORT] == NULL) {
        pt__cfg_error(cx, n, path, "needs uri, authority, scheme, port or derivePort");
        ok = false;
    }
    return ok ? rd : NULL;
}

/* percentage {value: 0..100, fractions allowed} in parts per million. */
bool pt__cfg_read_percentage(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             uint32_t *out_ppm)
{
    const pt_cfg_node_t *f[1];
    if (!MAP(cx, n, path, fault_percent_fields, f))
        return false;
    *out_ppm = 0; /* Istio: a percentage without a value is 0 */
    if (f[0] == NULL)
        return true;
    pt_cfg_path_t vp = PT_PATH_KEY(path, "value");
    const char *s;
    if (!pt__cfg_str(cx, f[0], &vp, &s))
        return false;
    char *end = NULL;
    double v = strtod(s, &end);
    if (*s == '\0' || end == NULL || *end != '\0' || !(v >= 0.0 && v <= 100.0)) {
        pt__cfg_error(cx, f[0], &vp, "must be a number from 0 to 100");
        return false;
    }
    *out_ppm = (uint32_t)(v * (PT_FAULT_SCALE / 100) + 0.5);
    return true;
}

/* The gRPC status codes by name, in code order (the gRPC project's doc/statuscodes.md). */
static const char *const grpc_status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* abort.grpcStatus: a code's name as Istio's API takes it ("UNAVAILABLE"), or its number as
 * older configurations wrote it (14). */
static bool read_grpc_status(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             int *out)
{
    const char *v;
    size_t n_names = sizeof(grpc_status_names) / sizeof(grpc_status_names[0]);
    if (!pt__cfg_str(cx, n, path, &v))
        return false;
    if (*v < '0' || *v > '9')
        return pt__cfg_enum(cx, n, path, grpc_status_names, n_names, out);
    char *end;
    long code = strtol(v, &end, 10);
    if (*end != '\0' || code >= (long)n_names) {
        pt__cfg_error(cx, n, path,
                      "\"%s\" is not a gRPC status code (0..%zu, or a name such as "
                      "UNAVAILABLE)",
                      v, n_names - 1);
        return false;
    }
    *out = (int)code;
    return true;
}

/* fault: delay then abort, as Envoy's fault filter runs them. As in Istio, a delay or abort
 * without a percentage applies to no request (Istio passes the integer `percent`, 0 when
 * unset, and Envoy reads an unset fraction as 0); the deprecated `percent` is read as a
 * percentage when `percentage` is absent. */
const pt_http_fault_t *pt__cfg_read_fault(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                          const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[FLT__N];
    if (!MAP(cx, n, path, fault_fields, f))
        return NULL;
    pt_http_fault_t *flt = pt_arena_calloc(cx->out, sizeof(*flt));
    if (f[FLT_DELAY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "delay");
        const pt_cfg_node_t *df[FD__N];
        if (MAP(cx, f[FLT_DELAY], &p, delay_fields, df)) {
            flt->delay_ppm = 0;
            if (df[FD_PERCENTAGE] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "percentage");
                pt__cfg_read_percentage(cx, df[FD_PERCENTAGE], &pp, &flt->delay_ppm);
            } else if (df[FD_PERCENT] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "percent");
                long long v;
                if (pt__cfg_int(cx, df[FD_PERCENT], &pp, 0, 100, &v))
                    flt->delay_ppm = (uint32_t)v * (PT_FAULT_SCALE / 100);
                pt__cfg_warn(cx, df[FD_PERCENT], &pp,
                             "deprecated: use percentage.value (read as that)");
            }
            pt_cfg_path_t fp = PT_PATH_KEY(&p, "fixedDelay");
            if (df[FD_FIXED] == NULL) {
                if (df[FD_EXPONENTIAL] == NULL)
                    pt__cfg_error(cx, f[FLT_DELAY], &fp, "required");
            } else if (pt__cfg_duration(cx, df[FD_FIXED], &fp, &flt->delay_ms) &&
                       flt->delay_ms == 0) {
                pt__cfg_error(cx, df[FD_FIXED], &fp, "must be greater than 0");
            }
        }
    }
    if (f[FLT_ABORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "abort");
        const pt_cfg_node_t *af[FA__N];
        if (MAP(cx, f[FLT_ABORT], &p, abort_fields, af)) {
            uint32_t ppm = 0;
            if (af[FA_PERCENTAGE] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "percentage");
                pt__cfg_read_percentage(cx, af[FA_PERCENTAGE], &pp, &ppm);
            }
            int kinds = (af[FA_HTTP] != NULL) + (af[FA_GRPC] != NULL) + (af[FA_HTTP2] != NULL);
            if (kinds == 0)
                pt__cfg_error(cx, f[FLT_ABORT], &p,
                              "needs one of httpStatus, grpcStatus or http2Error");
            else if (kinds > 1)
                pt__cfg_error(cx, f[FLT_ABORT], &p,
                              "httpStatus, grpcStatus and http2Error are exclusive: give one");
            if (af[FA_HTTP] != NULL) {
                pt_cfg_path_t sp = PT_PATH_KEY(&p, "httpStatus");
                long long v;
                if (pt__cfg_int(cx, af[FA_HTTP], &sp, 200, 599, &v)) {
                    flt->abort_status = (int)v;
                    flt->abort_ppm = ppm;
                }
            }
            if (af[FA_GRPC] != NULL) {
                /* A trailers-only reply: HTTP 200 with the grpc-status. */
                pt_cfg_path_t sp = PT_PATH_KEY(&p, "grpcStatus");
                if (read_grpc_status(cx, af[FA_GRPC], &sp, &flt->abort_grpc_status)) {
                    flt->is_grpc_abort = true;
                    flt->abort_status = 200;
                    flt->abort_ppm = ppm;
                }
            }
        }
    }
    return flt->delay_ms > 0 || flt->abort_status != 0 ? flt : NULL;
}
