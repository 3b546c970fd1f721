/* proxy/http_msg.c
 * Helpers on the codec-neutral message (http_msg.h). */
#include "http_msg.h"

#include <string.h>
#include <strings.h>

const pt_header_t *pt_http_msg_find_header(const pt_http_msg_t *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < m->n_headers; i++) {
        const pt_header_t *h = &m->headers[i];
        if (h->name.len == n && strncasecmp(h->name.base, name, n) == 0)
            return h;
    }
    return NULL;
}

pt_str_t pt_http_msg_protocol(const pt_http_msg_t *m)
{
    switch (m->version) {
    case PT_HTTP_10: return PT_STR_LIT("HTTP/1.0");
    case PT_HTTP_20: return PT_STR_LIT("HTTP/2");
    default: return PT_STR_LIT("HTTP/1.1");
    }
}

/* Copies s (absent stays absent) to *p with its NUL, advancing *p. */
static pt_str_t copy_into(char **p, pt_str_t s)
{
    if (s.base == NULL)
        return s;
    char *d = *p;
    memcpy(d, s.base, s.len);
    d[s.len] = '\0';
    *p += s.len + 1;
    return (pt_str_t){d, s.len};
}

static pt_str_t copy_str(pt_arena_t *a, pt_str_t s)
{
    if (s.base == NULL)
        return s; /* absent stays absent */
    return (pt_str_t){pt_arena_strndup(a, s.base, s.len), s.len};
}

pt_http_msg_t *pt_http_msg_copy(pt_arena_t *a, const pt_http_msg_t *m)
{
    pt_http_msg_t *c = pt_arena_alloc(a, sizeof(*c));
    *c = *m;
    c->method = copy_str(a, m->method);
    c->scheme = copy_str(a, m->scheme);
    c->authority = copy_str(a, m->authority);
    c->path = copy_str(a, m->path);
    c->reason = copy_str(a, m->reason);
    c->upgrade = copy_str(a, m->upgrade);
    c->headers = pt_http_headers_copy(a, m->headers, m->n_headers);
    return c;
}

pt_header_t *pt_http_headers_copy(pt_arena_t *a, const pt_header_t *h, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += h[i].name.len + h[i].value.len + 2;
    pt_header_t *c = pt_arena_alloc(a, n * sizeof(*c));
    char *p = pt_arena_alloc(a, bytes);
    for (size_t i = 0; i < n; i++)
        c[i] = (pt_header_t){copy_into(&p, h[i].name), copy_into(&p, h[i].value), h[i].flags};
    return c;
}

bool pt_http_field_is_per_message(const char *name, size_t len)
{
    switch (len) {
    case 2: return memcmp(name, "b3", 2) == 0;
    case 11: return memcmp(name, "traceparent", 11) == 0 || memcmp(name, "x-b3-spanid", 11) == 0;
    case 12: return memcmp(name, "x-request-id", 12) == 0 || memcmp(name, "x-b3-traceid", 12) == 0;
    case 17: return memcmp(name, "x-b3-parentspanid", 17) == 0;
    default: return false;
    }
}
