/* proxy/router.c
 * VirtualService matching on the request path, for routes and for the chaos harness's HTTP
 * toxics, whose own match[] the same reader compiled (config/chaos_match.c). Everything was
 * prepared by compile: strings are lower-cased where Istio compares case-insensitively, regexes
 * are compiled, the source conditions (sourceLabels, sourceNamespace) are already decided into
 * pt_http_match_t.never. Conditions are tested cheapest first.
 *
 * Where Istio (Envoy) leaves a choice: a header that appears several times is matched by its
 * first occurrence; query parameters are compared as received (not percent-decoded), the
 * first occurrence of a name deciding, and a parameter without "=" has the value "". */
#include "router.h"

#include <string.h>
#include <strings.h>

#include "../config/regex.h"

static bool string_matches(const pt_string_match_t *m, const char *s, size_t len)
{
    switch (m->kind) {
    case PT_MATCH_EXACT:
        if (len != m->len)
            return false;
        return m->ignore_case ? strncasecmp(s, m->value, len) == 0 : memcmp(s, m->value, len) == 0;
    case PT_MATCH_PREFIX:
        if (len < m->len)
            return false;
        return m->ignore_case ? strncasecmp(s, m->value, m->len) == 0
                              : memcmp(s, m->value, m->len) == 0;
    case PT_MATCH_REGEX: return pt_regex_match(m->regex, s, len);
    case PT_MATCH_PRESENT: return true;
    }
    return false;
}

static bool header_matches(const pt_header_match_t *hm, const pt_http_msg_t *h)
{
    const pt_header_t *hd = pt_http_msg_find_header(h, hm->name);
    return hd != NULL && string_matches(&hm->match, hd->value.base, hd->value.len);
}

/* The value of the first query parameter called name (query without its '?'). */
static bool find_query_param(const char *q, size_t qlen, const char *name, pt_str_t *value)
{
    size_t nlen = strlen(name);
    const char *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq != NULL ? eq : stop;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            value->base = eq != NULL ? eq + 1 : stop;
            value->len = eq != NULL ? (size_t)(stop - eq - 1) : 0;
            return true;
        }
        q = stop + 1;
    }
    return false;
}

static bool match_accepts(const pt_http_match_t *m, uint16_t port, const pt_http_msg_t *h,
                          size_t path_len)
{
    if (m->never)
        return false;
    if (m->port != 0 && m->port != port)
        return false;
    if (m->has_uri && !string_matches(&m->uri, h->path.base, path_len))
        return false;
    if (m->has_method && !string_matches(&m->method_match, h->method.base, h->method.len))
        return false;
    /* Listeners are plaintext HTTP for now, so every request's scheme is "http". */
    if (m->has_scheme && !string_matches(&m->scheme, "http", 4))
        return false;
    if (m->has_authority && !string_matches(&m->authority, h->authority.base, h->authority.len))
        return false;
    for (size_t k = 0; k < m->n_headers; k++)
        if (!header_matches(&m->headers[k], h))
            return false;
    for (size_t k = 0; k < m->n_without_headers; k++)
        if (header_matches(&m->without_headers[k], h))
            return false;
    if (m->n_query_params > 0) {
        const char *q = h->path.base + path_len;
        size_t qlen = h->path.len - path_len;
        if (qlen > 0) { /* skip the '?' */
            q++;
            qlen--;
        }
        for (size_t k = 0; k < m->n_query_params; k++) {
            pt_str_t v;
            if (!find_query_param(q, qlen, m->query_params[k].name, &v) ||
                !string_matches(&m->query_params[k].match, v.base, v.len))
                return false;
        }
    }
    return true;
}

/* The length of head's path without its query: Istio matches the URI without it. */
static size_t path_len_of(const pt_http_msg_t *head)
{
    const char *q = memchr(head->path.base, '?', head->path.len);
    return q != NULL ? (size_t)(q - head->path.base) : head->path.len;
}

bool pt_router_matches_any(const pt_http_match_t *matches, size_t n, uint16_t port,
                           const pt_http_msg_t *head)
{
    if (n == 0)
        return true;
    size_t path_len = path_len_of(head);
    for (size_t k = 0; k < n; k++)
        if (match_accepts(&matches[k], port, head, path_len))
            return true;
    return false;
}

const pt_listener_config_t *pt_router_listener(const pt_config_t *c, uint16_t port)
{
    for (size_t i = 0; i < c->n_listeners; i++)
        if (c->listeners[i].port == port)
            return &c->listeners[i];
    return NULL;
}

const pt_http_route_t *pt_router_match_detail(const pt_listener_config_t *l,
                                              const pt_http_msg_t *head,
                                              const pt_http_match_t **matched)
{
    if (matched != NULL)
        *matched = NULL;
    const pt_vhost_t *vh = pt_config_find_vhost(l, head->authority.base, head->authority.len);
    if (vh == NULL)
        return NULL;
    size_t path_len = path_len_of(head);
    for (size_t i = 0; i < vh->n_routes; i++) {
        const pt_http_route_t *r = &vh->routes[i];
        if (r->n_matches == 0)
            return r;
        for (size_t k = 0; k < r->n_matches; k++)
            if (match_accepts(&r->matches[k], l->port, head, path_len)) {
                if (matched != NULL)
                    *matched = &r->matches[k];
                return r;
            }
    }
    return NULL;
}

const pt_http_route_t *pt_router_match(const pt_listener_config_t *l, const pt_http_msg_t *head)
{
    return pt_router_match_detail(l, head, NULL);
}

const pt_weighted_cluster_t *pt_router_pick_weighted(const pt_weighted_cluster_t *wc, size_t n,
                                                     uint32_t total_weight, uint32_t random)
{
    if (n == 1)
        return &wc[0];
    uint32_t x = random % total_weight;
    for (size_t i = 0; i < n; i++)
        if (x < wc[i].cumulative_weight)
            return &wc[i];
    return &wc[n - 1];
}

const pt_weighted_cluster_t *pt_router_pick_destination(const pt_http_route_t *r, uint32_t random)
{
    return pt_router_pick_weighted(r->clusters, r->n_clusters, r->total_weight, random);
}

const pt_cluster_t *pt_router_pick_cluster(const pt_http_route_t *r, uint32_t random)
{
    return pt_router_pick_destination(r, random)->cluster;
}
