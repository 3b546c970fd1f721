/* proxy/router.c */
#include "router.h"

#include <string.h>

static bool string_matches(const pt_string_match_t *m, const char *s, size_t len)
{
    if (m->kind == PT_MATCH_EXACT)
        return len == m->len && memcmp(s, m->value, len) == 0;
    return len >= m->len && memcmp(s, m->value, m->len) == 0;
}

static bool match_accepts(const pt_http_match_t *m, const pt_http1_head_t *h, size_t path_len)
{
    if (m->has_uri && !string_matches(&m->uri, h->path.base, path_len))
        return false;
    if (m->method != NULL && !pt_str_eq(h->method, pt_str(m->method)))
        return false;
    for (size_t k = 0; k < m->n_headers; k++) {
        const pt_header_t *hd = pt_http1_find_header(h, m->headers[k].name);
        if (hd == NULL || !string_matches(&m->headers[k].match, hd->value.base, hd->value.len))
            return false;
    }
    return true;
}

static bool route_accepts(const pt_http_route_t *r, const pt_http1_head_t *h)
{
    if (r->n_matches == 0)
        return true;
    /* Istio matches the URI without its query string. */
    const char *q = memchr(h->path.base, '?', h->path.len);
    size_t path_len = q != NULL ? (size_t)(q - h->path.base) : h->path.len;
    for (size_t i = 0; i < r->n_matches; i++)
        if (match_accepts(&r->matches[i], h, path_len))
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

const pt_http_route_t *pt_router_match(const pt_listener_config_t *l, const pt_http1_head_t *head)
{
    const pt_vhost_t *vh = pt_config_find_vhost(l, head->authority.base, head->authority.len);
    if (vh == NULL)
        return NULL;
    for (size_t i = 0; i < vh->n_routes; i++)
        if (route_accepts(&vh->routes[i], head))
            return &vh->routes[i];
    return NULL;
}

const pt_cluster_t *pt_router_pick_cluster(const pt_http_route_t *r, uint32_t random)
{
    if (r->n_clusters == 1)
        return r->clusters[0].cluster;
    uint32_t x = random % r->total_weight;
    for (size_t i = 0; i < r->n_clusters; i++)
        if (x < r->clusters[i].cumulative_weight)
            return r->clusters[i].cluster;
    return r->clusters[r->n_clusters - 1].cluster;
}
