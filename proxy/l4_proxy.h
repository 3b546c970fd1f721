/* proxy/l4_proxy.h
 * Connections on TCP and TLS-passthrough listeners: each one is routed without HTTP (a TCP
 * listener's tcp[] route; for TLS, the tls[] route whose sniHosts match the ClientHello's
 * SNI), connected to an endpoint of the route's weighted cluster, and handed to a relay
 * (relay.h) that moves the bytes both ways. TLS is never decrypted: the ClientHello is only
 * read (tls/client_hello.h) and then relayed as it came. */
#ifndef PT_L4_PROXY_H
#define PT_L4_PROXY_H

#include <uv.h>

#include "../config/config.h"
#include "worker.h"

/* Accepts a connection on a TCP or TLS listener and proxies it. */
void pt_l4_proxy_accept(pt_worker_t *w, uv_stream_t *listener, const pt_listener_config_t *lc);

/* Closes the sessions not relaying yet: reading a ClientHello or connecting upstream (drain
 * deadline, worker stop). */
void pt_l4_proxy_abort_pending(pt_worker_t *w);

/* The route for a ClientHello's SNI on a TLS listener: an exact sniHost first, then the
 * longest wildcard ("*.example.com" covers "a.example.com", "*" everything); NULL when none
 * matches (or the client sent no SNI). */
const pt_l4_route_t *pt_l4_route_for_sni(const pt_listener_config_t *lc, const char *sni,
                                         size_t sni_len);

#endif
