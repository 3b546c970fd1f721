/* config/hostname.c
 * Short-name completion and the request host forms of a Kubernetes service, and the address
 * blocks that name services by address (see hostname.h). */
#include "hostname.h"

#include <arpa/inet.h>
#include <stdlib.h>
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

bool pt_cidr_parse(const char *s, pt_cidr_t *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    out->prefix_len = (uint8_t)max;
    if (slash != NULL) {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || v > max)
            return false;
        out->prefix_len = (uint8_t)v;
    }
    return true;
}

bool pt_cidr_contains(const pt_cidr_t *cidr, const struct sockaddr_storage *addr)
{
    const uint8_t *b;
    if (addr->ss_family != cidr->family)
        return false;
    if (addr->ss_family == AF_INET)
        b = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
    else
        b = (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
    unsigned full = cidr->prefix_len / 8, rest = cidr->prefix_len % 8;
    if (memcmp(b, cidr->bytes, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (b[full] & mask) == (cidr->bytes[full] & mask);
}
