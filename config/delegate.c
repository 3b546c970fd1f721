/* config/delegate.c
 * VirtualService delegation (http[].delegate), as Istio merges it: a root route whose action is
 * `delegate` is replaced by the routes of the named VirtualService (one without hosts), each
 * one's match[] merged with the root route's, and each one taking the root's timeout, headers,
 * rewrite, fault, retries and mirrors when it has none of its own.
 *
 * Merging a root match R with a delegate match D gives D's conditions plus R's, or nothing when
 * they conflict (then that pair is left out, as Istio leaves it out):
 *  - uri, method, scheme, authority: one side alone is kept; both given must agree: an exact
 *    value equal to the root's exact value, or starting with the root's prefix; a prefix that
 *    starts with the root's prefix; a regex only when the root's is the same regex;
 *  - headers, withoutHeaders, queryParams, sourceLabels: the union; a name in both must have
 *    the same condition;
 *  - port and sourceNamespace: equal when both are given. */
#include <string.h>

#include "resources.h"

static bool same_string_match(const pt_string_match_t *a, const pt_string_match_t *b)
{
    return a->kind == b->kind && a->len == b->len && a->ignore_case == b->ignore_case &&
           (a->len == 0 || memcmp(a->value, b->value, a->len) == 0);
}

/* Whether a delegate's condition leaf can be narrowed under the root's condition root. */
static bool string_match_fits(const pt_string_match_t *root, const pt_string_match_t *leaf)
{
    switch (root->kind) {
    case PT_MATCH_PREFIX:
        return (leaf->kind == PT_MATCH_EXACT || leaf->kind == PT_MATCH_PREFIX) &&
               leaf->len >= root->len && memcmp(leaf->value, root->value, root->len) == 0;
    case PT_MATCH_EXACT:
    case PT_MATCH_REGEX:
    case PT_MATCH_PRESENT: return same_string_match(root, leaf);
    }
    return false;
}

/* One optional string condition: *out is the merged one. False on a conflict. */
static bool merge_string(bool root_has, const pt_string_match_t *root, bool leaf_has,
                         const pt_string_match_t *leaf, bool *out_has, pt_string_match_t *out)
{
    if (root_has && leaf_has && !string_match_fits(root, leaf))
        return false;
    *out_has = root_has || leaf_has;
    *out = leaf_has ? *leaf : *root;
    return true;
}

/* The union of two header-like lists; a name on both sides must carry the same condition. */
static bool merge_named(pt_arena_t *a, const pt_header_match_t *root, size_t n_root,
                        const pt_header_match_t *leaf, size_t n_leaf, pt_header_match_t **out,
                        size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (n_root + n_leaf == 0)
        return true;
    pt_header_match_t *m = pt_arena_calloc(a, (n_root + n_leaf) * sizeof(*m));
    size_t n = 0;
    for (size_t i = 0; i < n_leaf; i++)
        m[n++] = leaf[i];
    for (size_t i = 0; i < n_root; i++) {
        bool found = false;
        for (size_t j = 0; j < n_leaf && !found; j++) {
            if (strcmp(root[i].name, leaf[j].name) != 0)
                continue;
            if (!same_string_match(&root[i].match, &leaf[j].match))
                return false;
            found = true;
        }
        if (!found)
            m[n++] = root[i];
    }
    *out = m;
    *n_out = n;
    return true;
}

static bool merge_labels(pt_arena_t *a, const char *const *root, size_t n_root,
                         const char *const *leaf, size_t n_leaf, const char *const **out,
                         size_t *n_out)
{
    const char **m = pt_arena_calloc(a, 2 * (n_root + n_leaf + 1) * sizeof(*m));
    size_t n = 0;
    for (size_t i = 0; i < n_leaf; i++) {
        m[2 * n] = leaf[2 * i];
        m[2 * n + 1] = leaf[2 * i + 1];
        n++;
    }
    for (size_t i = 0; i < n_root; i++) {
        bool found = false;
        for (size_t j = 0; j < n_leaf && !found; j++) {
            if (strcmp(root[2 * i], leaf[2 * j]) != 0)
                continue;
            if (strcmp(root[2 * i + 1], leaf[2 * j + 1]) != 0)
                return false;
            found = true;
        }
        if (!found) {
            m[2 * n] = root[2 * i];
            m[2 * n + 1] = root[2 * i + 1];
            n++;
        }
    }
    *out = m;
    *n_out = n;
    return true;
}

bool pt__cfg_merge_match(pt_arena_t *a, const pt_http_match_t *root, const pt_http_match_t *leaf,
                         pt_http_match_t *out)
{
    *out = *leaf;
    if (!merge_string(root->has_uri, &root->uri, leaf->has_uri, &leaf->uri, &out->has_uri,
                      &out->uri) ||
        !merge_string(root->has_method, &root->method_match, leaf->has_method, &leaf->method_match,
                      &out->has_method, &out->method_match) ||
        !merge_string(root->has_scheme, &root->scheme, leaf->has_scheme, &leaf->scheme,
                      &out->has_scheme, &out->scheme) ||
        !merge_string(root->has_authority, &root->authority, leaf->has_authority, &leaf->authority,
                      &out->has_authority, &out->authority))
        return false;
    out->method = leaf->method != NULL ? leaf->method : root->method;
    if (!merge_named(a, root->headers, root->n_headers, leaf->headers, leaf->n_headers,
                     &out->headers, &out->n_headers) ||
        !merge_named(a, root->without_headers, root->n_without_headers, leaf->without_headers,
                     leaf->n_without_headers, &out->without_headers, &out->n_without_headers) ||
        !merge_named(a, root->query_params, root->n_query_params, leaf->query_params,
                     leaf->n_query_params, &out->query_params, &out->n_query_params) ||
        !merge_labels(a, root->source_labels, root->n_source_labels, leaf->source_labels,
                      leaf->n_source_labels, &out->source_labels, &out->n_source_labels))
        return false;
    if (root->port != 0 && leaf->port != 0 && root->port != leaf->port)
        return false;
    if (out->port == 0)
        out->port = root->port;
    if (root->source_namespace != NULL && leaf->source_namespace != NULL &&
        strcmp(root->source_namespace, leaf->source_namespace) != 0)
        return false;
    if (out->source_namespace == NULL)
        out->source_namespace = root->source_namespace;
    out->never = root->never || leaf->never;
    return true;
}

bool pt__cfg_merge_delegate_route(pt_arena_t *a, const pt_http_route_t *root,
                                  const pt_http_route_t *leaf, pt_http_route_t *out)
{
    *out = *leaf;
    if (root->n_matches > 0 && leaf->n_matches > 0) {
        pt_http_match_t *m = pt_arena_calloc(a, root->n_matches * leaf->n_matches * sizeof(*m));
        size_t n = 0;
        for (size_t i = 0; i < root->n_matches; i++)
            for (size_t j = 0; j < leaf->n_matches; j++)
                if (pt__cfg_merge_match(a, &root->matches[i], &leaf->matches[j], &m[n]))
                    n++;
        if (n == 0)
            return false; /* every pair conflicts: this delegate route is left out */
        out->matches = m;
        out->n_matches = n;
    } else if (root->n_matches > 0) {
        out->matches = root->matches;
        out->n_matches = root->n_matches;
    }
    if (out->timeout_ms == 0)
        out->timeout_ms = root->timeout_ms;
    if (out->headers == NULL)
        out->headers = root->headers;
    if (out->rewrite == NULL && out->redirect == NULL)
        out->rewrite = root->rewrite;
    if (out->fault == NULL)
        out->fault = root->fault;
    if (out->retry == NULL)
        out->retry = root->retry;
    if (out->n_mirrors == 0) {
        out->mirrors = root->mirrors;
        out->n_mirrors = root->n_mirrors;
    }
    return true;
}
