/* config/hostname.c
 * Short-name completion and the request host forms of a Kubernetes service (see hostname.h). */
#include "hostname.h"

#include <string.h>

const char *pt_host_complete(pt_arena_t *a, const char *host, const char *ns)
{
    if (host == NULL || host[0] == '\0' || strchr(host, '.') != NULL || strchr(host, '*') != NULL ||
        strchr(host, ':') != NULL)
        return host;
    return pt_arena_printf(a, "%s.%s" PT_HOST_DOMAIN_SUFFIX, host, ns);
}

size_t pt_host_domains(pt_arena_t *a, const char *fqdn, const char *workload_ns, const char **out)
{
    size_t n = 0;
    out[n++] = fqdn;
    size_t len = strlen(fqdn), suffix = strlen(PT_HOST_DOMAIN_SUFFIX);
    if (len <= suffix || strcmp(fqdn + len - suffix, PT_HOST_DOMAIN_SUFFIX) != 0 || fqdn[0] == '*')
        return n;
    /* "<name>.<ns>" before the suffix: exactly one dot, with text on both sides. */
    size_t stem = len - suffix;
    const char *dot = memchr(fqdn, '.', stem);
    if (dot == NULL || dot == fqdn || (size_t)(dot - fqdn) + 1 >= stem ||
        memchr(dot + 1, '.', stem - (size_t)(dot - fqdn) - 1) != NULL)
        return n;
    out[n++] = pt_arena_printf(a, "%.*s.svc", (int)stem, fqdn);
    out[n++] = pt_arena_strndup(a, fqdn, stem);
    size_t ns_len = stem - (size_t)(dot - fqdn) - 1;
    if (strlen(workload_ns) == ns_len && memcmp(dot + 1, workload_ns, ns_len) == 0)
        out[n++] = pt_arena_strndup(a, fqdn, (size_t)(dot - fqdn));
    return n;
}
