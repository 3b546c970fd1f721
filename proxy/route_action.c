/* proxy/route_action.c
 * Route actions on the request path: header mutations, rewrites, redirects. Nothing here
 * parses or validates config (config/kind_vs_actions.c did: names are lower-case tokens that are
 * not framing, hop-by-hop or Petrel's own headers; values have no CR/LF; paths and
 * authorities are visible ASCII), so the results can be written as they are.
 *
 * Where Istio (Envoy) leaves room:
 *  - rewrite.uri replaces the matched prefix when the match[] entry that held matched the URI
 *    by prefix, and the whole path otherwise (exact, regex, or no uri condition). The query
 *    string is kept either way. uriRegexRewrite replaces every match in the path (RE2
 *    GlobalReplace), query kept.
 *  - A redirect's Location: scheme (redirect.scheme, else "http": listeners are plaintext),
 *    host (redirect.authority, else the request's, whose port is dropped when a port is given
 *    or when it is :80 and the scheme changes), port (redirect.port, or the listener's with
 *    derivePort FROM_REQUEST_PORT), path (redirect.uri, which keeps the request's query unless
 *    it has its own, else the request's path). */
#include "route_action.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../config/regex.h"
#include "buf.h"

/* --- headers --- */

static bool op_names(const pt_header_op_t *ops, size_t n, pt_str_t name)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].name_len == name.len && strncasecmp(ops[i].name, name.base, name.len) == 0)
            return true;
    return false;
}

size_t pt_route_action_apply_ops(pt_arena_t *a, const pt_header_t *in, size_t n,
                                 const pt_header_ops_t *ops, const pt_header_t **out)
{
    *out = in;
    if (ops->n_set + ops->n_add + ops->n_remove == 0)
        return n;
    pt_header_t *v = pt_arena_alloc(a, (n + ops->n_set + ops->n_add + 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!op_names(ops->remove, ops->n_remove, in[i].name) &&
            !op_names(ops->set, ops->n_set, in[i].name))
            v[k++] = in[i];
    for (size_t i = 0; i < ops->n_set; i++)
        v[k++] = (pt_header_t){{ops->set[i].name, ops->set[i].name_len},
                               {ops->set[i].value, ops->set[i].value_len},
                               0};
    for (size_t i = 0; i < ops->n_add; i++)
        v[k++] = (pt_header_t){{ops->add[i].name, ops->add[i].name_len},
                               {ops->add[i].value, ops->add[i].value_len},
                               0};
    *out = v;
    return k;
}

size_t pt_route_action_request_headers(pt_stream_t *st, const pt_header_t **out)
{
    const pt_header_t *h = st->request->headers;
    size_t n = st->request->n_headers;
    if (st->destination != NULL && st->destination->headers != NULL)
        n = pt_route_action_apply_ops(&st->arena, h, n, &st->destination->headers->request, &h);
    if (st->route != NULL && st->route->headers != NULL)
        n = pt_route_action_apply_ops(&st->arena, h, n, &st->route->headers->request, &h);
    *out = h;
    return n;
}

void pt_route_action_response_headers(pt_stream_t *st, pt_http_msg_t *h)
{
    const pt_header_t *v = h->headers;
    size_t n = h->n_headers;
    if (st->destination != NULL && st->destination->headers != NULL)
        n = pt_route_action_apply_ops(&st->arena, v, n, &st->destination->headers->response, &v);
    if (st->route != NULL && st->route->headers != NULL)
        n = pt_route_action_apply_ops(&st->arena, v, n, &st->route->headers->response, &v);
    h->headers = (pt_header_t *)v; /* a copy in the arena whenever anything changed */
    h->n_headers = n;
}

/* --- rewrites --- */

pt_str_t pt_route_action_rewrite_path_of(pt_arena_t *a, const pt_http_rewrite_t *rw,
                                         const pt_http_match_t *matched, pt_str_t path)
{
    if (rw == NULL || (rw->uri == NULL && rw->uri_regex == NULL) || path.len == 0 ||
        path.base[0] != '/')
        return path;
    const char *q = memchr(path.base, '?', path.len);
    size_t plen = q != NULL ? (size_t)(q - path.base) : path.len;
    size_t qlen = path.len - plen; /* with its '?' */
    const char *head;
    size_t head_len;
    size_t keep_from = plen; /* the part of the old path kept after the new head */
    if (rw->uri != NULL) {
        head = rw->uri;
        head_len = rw->uri_len;
        if (matched != NULL && matched->has_uri && matched->uri.kind == PT_MATCH_PREFIX &&
            matched->uri.len <= plen)
            keep_from = matched->uri.len;
    } else {
        head = pt_regex_replace_all(rw->uri_regex, a, path.base, plen, rw->uri_regex_rewrite,
                                    rw->uri_regex_rewrite_len, &head_len);
        if (head_len == 0) {
            head = "/";
            head_len = 1;
        }
    }
    size_t len = head_len + (plen - keep_from) + qlen;
    char *p = pt_arena_alloc(a, len + 1);
    memcpy(p, head, head_len);
    memcpy(p + head_len, path.base + keep_from, plen - keep_from);
    memcpy(p + head_len + (plen - keep_from), path.base + plen, qlen);
    p[len] = '\0';
    return (pt_str_t){p, len};
}

pt_str_t pt_route_action_path(pt_stream_t *st)
{
    return pt_route_action_rewrite_path_of(&st->arena, st->route ? st->route->rewrite : NULL,
                                           st->route_match, st->request->path);
}

pt_str_t pt_route_action_authority(const pt_stream_t *st)
{
    const pt_http_rewrite_t *rw = st->route ? st->route->rewrite : NULL;
    if (rw != NULL && rw->authority != NULL)
        return (pt_str_t){rw->authority, rw->authority_len};
    return st->request->authority;
}

/* --- redirects --- */

/* Where the ":port" of host starts ([v6]:port understood), or len when it has none. */
static size_t port_start(const char *host, size_t len)
{
    size_t i = len;
    while (i > 0 && host[i - 1] >= '0' && host[i - 1] <= '9')
        i--;
    if (i == 0 || i == len || host[i - 1] != ':')
        return len;
    i--;
    if (host[0] == '[')
        return i > 0 && host[i - 1] == ']' ? i : len;
    return memchr(host, ':', i) == NULL ? i : len; /* a bare IPv6 address has no port */
}

pt_str_t pt_route_action_location_of(pt_arena_t *a, const pt_http_redirect_t *rd,
                                     const pt_http_msg_t *h, uint16_t listener_port)
{
    const char *scheme = rd->scheme != NULL ? rd->scheme : "http";
    char port[8] = "";
    if (rd->port != 0)
        snprintf(port, sizeof(port), ":%u", (unsigned)rd->port);
    else if (rd->port_from_request)
        snprintf(port, sizeof(port), ":%u", (unsigned)listener_port);
    pt_str_t host;
    if (rd->authority != NULL) {
        host = (pt_str_t){rd->authority, rd->authority_len};
        if (port[0] != '\0')
            host.len = port_start(host.base, host.len);
    } else {
        host = h->authority;
        size_t ps = port_start(host.base, host.len);
        bool default_port = host.len - ps == 3 && memcmp(host.base + ps, ":80", 3) == 0;
        if (port[0] != '\0' || (strcmp(scheme, "http") != 0 && default_port))
            host.len = ps;
    }
    pt_str_t path = h->path, query = {"", 0};
    if (rd->uri != NULL) {
        path = (pt_str_t){rd->uri, rd->uri_len};
        const char *q = memchr(h->path.base, '?', h->path.len);
        if (memchr(rd->uri, '?', rd->uri_len) == NULL && q != NULL)
            query = (pt_str_t){q, h->path.len - (size_t)(q - h->path.base)};
    }
    char *s = pt_arena_printf(a, "%s://%.*s%s%.*s%.*s", scheme, (int)host.len, host.base, port,
                              (int)path.len, path.base, (int)query.len, query.base);
    return pt_str(s);
}

void pt_route_action_redirect(pt_stream_t *st)
{
    const pt_http_redirect_t *rd = st->route->redirect;
    const pt_http_msg_t *req = st->request;
    pt_header_t loc = {PT_STR_LIT("location"),
                       pt_route_action_location_of(&st->arena, rd, req, st->conn->listener_port),
                       0};
    const pt_header_t *hs = &loc;
    size_t n = 1;
    if (st->route->headers != NULL)
        n = pt_route_action_apply_ops(&st->arena, hs, n, &st->route->headers->response, &hs);
    pt_stream_respond_headers(st, rd->code, hs, n, PT_FLAG_NONE);
}
