/* filters/l4_authz.c
 * AuthorizationPolicy on a relayed TCP or TLS connection (an L4 filter, l4_filter.h): at
 * accept, before any upstream is connected, the snapshot's policies judge the connection by
 * its addresses, port, verified principal and SNI (proxy/authz.h evaluates and counts them).
 * A refusal closes the connection, as Istio's RBAC network filter does. */
#include "../proxy/authz.h"
#include "l4_registry.h"

static int authz_accept(const pt_l4_accept_t *a, const void *conf)
{
    (void)conf;
    return pt_authz_connection_allows(a->worker, a->config, a->port, a->tcp, a->principal, a->sni,
                                      a->sni_len)
               ? PT_L4_CONTINUE
               : PT_L4_CLOSE;
}

const pt_l4_filter_ops_t pt_l4_authz_ops = {
    .name = "authz",
    .on_accept = authz_accept,
};
