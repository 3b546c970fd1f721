/* config/hostname.h
 * Kubernetes service names, as Istio reads them. A short host in a VirtualService,
 * DestinationRule or ServiceEntry ("reviews") means the service of that name in the rule's own
 * namespace ("reviews.<ns>.svc.cluster.local"); a request from a workload may name a service by
 * any of the forms Envoy's generated route domains accept ("reviews", "reviews.ns",
 * "reviews.ns.svc", the FQDN; the bare name only from the service's own namespace). */
#ifndef PT_CONFIG_HOSTNAME_H
#define PT_CONFIG_HOSTNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "config.h"

#define PT_HOST_DOMAIN_SUFFIX ".svc.cluster.local"
#define PT_HOST_MAX_DOMAINS 4

/* host completed in namespace ns: a name without a dot (not "*", not an IP literal) gets
 * ".<ns>.svc.cluster.local" (a new string in a); anything else is returned as it is. */
const char *pt_host_complete(pt_arena_t *a, const char *host, const char *ns);

/* The request hosts that name fqdn for a workload in namespace workload_ns: fqdn itself, and
 * for "<name>.<ns>.svc.cluster.local" also "<name>.<ns>.svc", "<name>.<ns>" and, when ns is
 * workload_ns, "<name>". Writes up to PT_HOST_MAX_DOMAINS strings (in a) to out; returns how
 * many. */
size_t pt_host_domains(pt_arena_t *a, const char *fqdn, const char *workload_ns, const char **out);

/* "10.96.0.10", "10.96.0.0/12", "fd00::1", "fd00::/8" into *out; false when it is none of
 * these (or the prefix is too long for the family). */
bool pt_cidr_parse(const char *s, pt_cidr_t *out);

#endif
