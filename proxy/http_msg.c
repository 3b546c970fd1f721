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
