/* proxy/authz.c
 * AuthorizationPolicy evaluation (see authz.h): compares a request or a connection against the
 * tables compile built, and the two entry points the listeners call, one per HTTP request
 * before routing, one per TCP / TLS-passthrough connection before it is relayed.
 *
 * On a connection without HTTP, conditions on HTTP attributes (hosts, methods, paths,
 * request.headers) are Istio's way: an ALLOW rule holding one never matches (a narrower
 * allow), a DENY or AUDIT rule is evaluated without them (a wider deny). */
#include "authz.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../config/config.h"
#include "log.h"
#include "worker.h"

bool pt_authz_value_matches(const pt_authz_value_t *v, const char *s, size_t len, bool ignore_case)
{
    int (*cmp)(const char *, const char *, size_t) = ignore_case ? strncasecmp : strncmp;
    switch (v->kind) {
    case PT_AUTHZ_EXACT: return len == v->len && cmp(s, v->s, len) == 0;
    case PT_AUTHZ_PREFIX: return len >= v->len && cmp(s, v->s, v->len) == 0;
    case PT_AUTHZ_SUFFIX: return len >= v->len && cmp(s + len - v->len, v->s, v->len) == 0;
    case PT_AUTHZ_PRESENT: return len > 0;
    case PT_AUTHZ_REGEX: return pt_regex_match(v->re, s, len);
    default: return false;
    }
}

/* What a check works out once, when a condition first asks: addresses, the path. */
typedef struct addr_cache {
    int peer_state, dest_state; /* 0 unread, 1 read, -1 unavailable */
    uint8_t peer[16], dest[16];
    bool peer_v6, dest_v6;
    const char *path; /* without the query, dot segments removed; NULL: not yet */
    size_t path_len;
} addr_cache_t;

static bool parse_ip(const char *s, uint8_t out[16], bool *v6)
{
    memset(out, 0, 16);
    if (inet_pton(AF_INET, s, out) == 1) {
        *v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *v6 = true;
        return true;
    }
    return false;
}

static bool sockaddr_ip(const struct sockaddr_storage *ss, uint8_t out[16], bool *v6)
{
    memset(out, 0, 16);
    if (ss->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        *v6 = false;
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) { /* an IPv4 client on a dual-stack socket */
            memcpy(out, a + 12, 4);
            *v6 = false;
        } else {
            memcpy(out, a, 16);
            *v6 = true;
        }
        return true;
    }
    return false;
}

static bool read_addr(const pt_authz_request_t *req, addr_cache_t *ac, bool dest)
{
    int *state = dest ? &ac->dest_state : &ac->peer_state;
    if (*state != 0)
        return *state > 0;
    *state = -1;
    if (!dest && req->peer_ip != NULL && req->peer_ip[0] != '\0') {
        if (parse_ip(req->peer_ip, ac->peer, &ac->peer_v6))
            *state = 1;
        return *state > 0;
    }
    if (req->tcp == NULL)
        return false;
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    int rc = dest ? uv_tcp_getsockname(req->tcp, (struct sockaddr *)&ss, &len)
                  : uv_tcp_getpeername(req->tcp, (struct sockaddr *)&ss, &len);
    if (rc == 0 && sockaddr_ip(&ss, dest ? ac->dest : ac->peer, dest ? &ac->dest_v6 : &ac->peer_v6))
        *state = 1;
    return *state > 0;
}

static bool cidr_matches(const pt_authz_value_t *v, const uint8_t ip[16], bool v6)
{
    if (v->is_ipv6 != v6)
        return false;
    unsigned bits = v->prefix_len, full = bits / 8, rest = bits % 8;
    if (memcmp(ip, v->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (ip[full] & mask) == (v->addr[full] & mask);
}

/* The namespace of a principal "<trust-domain>/ns/<ns>/sa/<sa>". */
static bool principal_namespace(const char *p, const char **ns, size_t *len)
{
    const char *at = strstr(p, "/ns/");
    if (at == NULL)
        return false;
    *ns = at + 4;
    const char *end = strchr(*ns, '/');
    *len = end ? (size_t)(end - *ns) : strlen(*ns);
    return true;
}

/* The value of the header name, several lines joined with "," as Envoy does; false when
 * absent. */
static bool header_of(const pt_authz_request_t *req, const pt_authz_cond_t *c, pt_str_t *out)
{
    const pt_http_msg_t *h = req->head;
    size_t found = 0, total = 0;
    for (size_t i = 0; i < h->n_headers; i++)
        if (h->headers[i].name.len == c->header_len &&
            strncasecmp(h->headers[i].name.base, c->header, c->header_len) == 0) {
            if (found++ == 0)
                *out = h->headers[i].value;
            total += h->headers[i].value.len + 1;
        }
    if (found > 1 && req->arena != NULL) {
        char *buf = pt_arena_alloc(req->arena, total);
        size_t n = 0;
        for (size_t i = 0; i < h->n_headers; i++)
            if (h->headers[i].name.len == c->header_len &&
                strncasecmp(h->headers[i].name.base, c->header, c->header_len) == 0) {
                if (n > 0)
                    buf[n++] = ',';
                memcpy(buf + n, h->headers[i].value.base, h->headers[i].value.len);
                n += h->headers[i].value.len;
            }
        *out = (pt_str_t){buf, n};
    }
    return found > 0;
}

/* RFC 3986 remove_dot_segments on path[0..len) (which starts with '/') into out, which has
 * room for len + 1 bytes; returns the new length. Envoy's path normalization (Istio's
 * default, BASE) does this before RBAC, so "/public/../admin" is matched as "/admin". */
static size_t remove_dot_segments(const char *path, size_t len, char *out)
{
    size_t o = 0, i = 1;
    while (i <= len) {
        size_t end = i;
        while (end < len && path[end] != '/')
            end++;
        size_t seg = end - i;
        bool last = end >= len;
        if (seg == 1 && path[i] == '.') {
            /* dropped */
        } else if (seg == 2 && path[i] == '.' && path[i + 1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, path + i, seg);
            o += seg;
            i = end + 1;
            continue;
        }
        if (last)
            out[o++] = '/';
        i = end + 1;
    }
    if (o == 0)
        out[o++] = '/';
    return o;
}

/* The request's path without its query, dot segments removed (once per check). */
static void request_path(const pt_authz_request_t *req, addr_cache_t *ac, const char **s,
                         size_t *len)
{
    if (ac->path != NULL) {
        *s = ac->path;
        *len = ac->path_len;
        return;
    }
    const char *p = req->head->path.base;
    size_t n = req->head->path.len;
    const char *q = memchr(p, '?', n);
    if (q != NULL)
        n = (size_t)(q - p);
    if (n > 0 && p[0] == '/' && req->arena != NULL && memmem(p, n, "/.", 2) != NULL) {
        char *out = pt_arena_alloc(req->arena, n + 1);
        n = remove_dot_segments(p, n, out);
        p = out;
    }
    ac->path = p;
    ac->path_len = n;
    *s = p;
    *len = n;
}

/* Whether any value of c matches what the request has (before negation). */
static bool any_value_matches(const pt_authz_cond_t *c, const pt_authz_request_t *req,
                              addr_cache_t *ac)
{
    const char *s = NULL;
    size_t len = 0;
    bool ignore_case = false;
    switch (c->attr) {
    case PT_AUTHZ_PRINCIPAL:
        if (req->principal == NULL)
            return false; /* no verified peer: no principal matches, not even "*" */
        s = req->principal;
        len = strlen(s);
        break;
    case PT_AUTHZ_NAMESPACE:
        if (req->principal == NULL || !principal_namespace(req->principal, &s, &len))
            return false;
        break;
    case PT_AUTHZ_SOURCE_IP:
    case PT_AUTHZ_REMOTE_IP:
    case PT_AUTHZ_DEST_IP: {
        bool dest = c->attr == PT_AUTHZ_DEST_IP;
        if (!read_addr(req, ac, dest))
            return false;
        for (size_t i = 0; i < c->n_values; i++)
            if (cidr_matches(&c->values[i], dest ? ac->dest : ac->peer,
                             dest ? ac->dest_v6 : ac->peer_v6))
                return true;
        return false;
    }
    case PT_AUTHZ_DEST_PORT:
        for (size_t i = 0; i < c->n_values; i++)
            if (c->values[i].port == req->dest_port)
                return true;
        return false;
    case PT_AUTHZ_SNI:
        s = req->sni != NULL ? req->sni : "";
        len = req->sni != NULL ? req->sni_len : 0;
        break;
    case PT_AUTHZ_HOST:
        s = req->head->authority.base;
        len = req->head->authority.len;
        ignore_case = true;
        break;
    case PT_AUTHZ_METHOD:
        s = req->head->method.base;
        len = req->head->method.len;
        break;
    case PT_AUTHZ_PATH: request_path(req, ac, &s, &len); break;
    case PT_AUTHZ_HEADER: {
        pt_str_t v = {NULL, 0};
        if (!header_of(req, c, &v))
            return false; /* an absent header matches no value, not even "*" */
        s = v.base;
        len = v.len;
        break;
    }
    }
    /* "*" on a header (hosts, methods, request.headers) is Envoy's presence match: a header
     * sent with an empty value is present. Elsewhere it means a non-empty value. */
    bool is_header = c->attr >= PT_AUTHZ_HOST && c->attr != PT_AUTHZ_PATH;
    for (size_t i = 0; i < c->n_values; i++)
        if ((is_header && c->values[i].kind == PT_AUTHZ_PRESENT) ||
            pt_authz_value_matches(&c->values[i], s, len, ignore_case))
            return true;
    return false;
}

typedef enum tri { NO = 0, YES, SKIP } tri_t;

/* A condition on req: YES / NO, or SKIP for an HTTP attribute on a connection without HTTP
 * (the caller decides by action what that means). */
static tri_t cond_holds(const pt_authz_cond_t *c, const pt_authz_request_t *req, addr_cache_t *ac)
{
    if (c->attr >= PT_AUTHZ_HOST && req->head == NULL)
        return SKIP;
    bool m = any_value_matches(c, req, ac);
    return m != c->negate ? YES : NO;
}

static bool rule_matches(const pt_authz_rule_t *r, pt_authz_action_t action,
                         const pt_authz_request_t *req, addr_cache_t *ac)
{
    for (size_t g = 0; g < r->n_groups; g++) {
        const pt_authz_group_t *grp = &r->groups[g];
        bool any = false;
        for (size_t k = 0; k < grp->n_clauses && !any; k++) {
            const pt_authz_clause_t *cl = &grp->clauses[k];
            bool all = true;
            for (size_t i = 0; i < cl->n_conds && all; i++) {
                tri_t t = cond_holds(&cl->conds[i], req, ac);
                if (t == SKIP && action == PT_AUTHZ_ALLOW)
                    return false; /* Istio drops an ALLOW rule with HTTP fields on TCP */
                all = t != NO;    /* DENY / AUDIT: the HTTP field is left out */
            }
            any = all;
        }
        if (!any)
            return false;
    }
    return true;
}

static const pt_authz_rule_t *policies_match(const pt_authz_policy_t *ps, size_t n,
                                             const pt_authz_request_t *req, addr_cache_t *ac,
                                             bool enforced)
{
    for (size_t p = 0; p < n; p++) {
        if (ps[p].dry_run == enforced)
            continue;
        for (size_t r = 0; r < ps[p].n_rules; r++)
            if (rule_matches(&ps[p].rules[r], ps[p].action, req, ac))
                return &ps[p].rules[r];
    }
    return NULL;
}

pt_authz_result_t pt_authz_check(const pt_authz_t *az, const pt_authz_request_t *req)
{
    pt_authz_result_t res = {PT_AUTHZ_PASS, NULL, false};
    if (az == NULL)
        return res;
    addr_cache_t ac = {0};
    if (az->n_audit > 0)
        res.audited = policies_match(az->audit, az->n_audit, req, &ac, true) != NULL;
    res.rule = policies_match(az->deny, az->n_deny, req, &ac, true);
    if (res.rule != NULL) {
        res.verdict = PT_AUTHZ_DENIED;
        return res;
    }
    if (az->has_enforced_allow) {
        res.rule = policies_match(az->allow, az->n_allow, req, &ac, true);
        if (res.rule == NULL)
            res.verdict = PT_AUTHZ_NOT_ALLOWED;
    }
    return res;
}

/* Dry-run policies: what they would have decided, for the shadow counters and the log. */
static pt_authz_verdict_t shadow_verdict(const pt_authz_t *az, const pt_authz_request_t *req,
                                         const pt_authz_rule_t **rule)
{
    addr_cache_t ac = {0};
    *rule = policies_match(az->deny, az->n_deny, req, &ac, false);
    if (*rule != NULL)
        return PT_AUTHZ_DENIED;
    if (az->has_shadow_allow && policies_match(az->allow, az->n_allow, req, &ac, false) == NULL)
        return PT_AUTHZ_NOT_ALLOWED;
    return PT_AUTHZ_PASS;
}

const char *pt_authz_details(const pt_authz_result_t *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "rbac_access_denied_matched_policy[%s]",
             r->verdict == PT_AUTHZ_DENIED && r->rule != NULL ? r->rule->name : "none");
    return buf;
}

/* Counters and logs of one decision; true when the request or connection may go on. */
static bool account(pt_worker_t *w, const pt_authz_t *az, const pt_authz_request_t *req,
                    const pt_authz_result_t *res, const char *who)
{
    if (az->has_shadow_deny || az->has_shadow_allow) {
        const pt_authz_rule_t *rule;
        pt_authz_verdict_t v = shadow_verdict(az, req, &rule);
        if (v == PT_AUTHZ_PASS) {
            PT_STAT_INC(&w->stats, rbac_shadow_allowed);
        } else {
            PT_STAT_INC(&w->stats, rbac_shadow_denied);
            pt_log_debug("rbac dry-run: %s would be denied (%s)", who,
                         rule != NULL ? rule->name : "no ALLOW policy matched");
        }
    }
    if (res->audited)
        PT_STAT_INC(&w->stats, rbac_audited);
    if (res->verdict == PT_AUTHZ_PASS) {
        PT_STAT_INC(&w->stats, rbac_allowed);
        return true;
    }
    PT_STAT_INC(&w->stats, rbac_denied);
    char details[256];
    pt_log_debug("%s: %s", who, pt_authz_details(res, details, sizeof(details)));
    return false;
}

bool pt_authz_request_allows(pt_worker_t *w, const pt_authz_t *az, const pt_authz_request_t *req,
                             pt_authz_result_t *res)
{
    *res = pt_authz_check(az, req);
    return account(w, az, req, res, "request");
}

bool pt_authz_connection_allows(pt_worker_t *w, const pt_config_t *config, uint16_t port,
                                const uv_tcp_t *tcp, const char *principal, const char *sni,
                                size_t sni_len)
{
    const pt_authz_t *az = config->authz;
    if (az == NULL)
        return true;
    pt_authz_request_t req = {
        .principal = principal,
        .sni = sni,
        .sni_len = sni_len,
        .dest_port = port,
        .tcp = tcp,
    };
    pt_authz_result_t res = pt_authz_check(az, &req);
    return account(w, az, &req, &res, "connection");
}
