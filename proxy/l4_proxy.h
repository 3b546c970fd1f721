/* proxy/l4_proxy.h
 * Connections on TCP and TLS listeners: each one is routed without HTTP (a TCP listener's
 * tcp[] route; for TLS PASSTHROUGH, the tls[] route whose sniHosts match the ClientHello's
 * SNI; for a TLS server that terminates, its tcp[] route), connected to an endpoint of the
 * route's weighted cluster, and handed to a relay (relay.h) that moves the bytes both ways.
 * PASSTHROUGH never decrypts: the ClientHello is only read (tls/client_hello.h) and then
 * relayed as it came. A terminating server's handshake is conn.c's and tls_stream.c's, as for
 * HTTPS (server by SNI, versions, suites, client certificates); the relay then decrypts what
 * the client sends and encrypts what the upstream answers. */
#ifndef PT_L4_PROXY_H
#define PT_L4_PROXY_H

#include <uv.h>

#include "../config/config.h"
#include "../filters/l4_filter.h"
#include "worker.h"

typedef struct pt_conn pt_conn_t;

/* Proxies fd, a connection just accepted on the TCP or TLS listener lc (the descriptor is owned
 * from then on). */
void pt_l4_proxy_accept(pt_worker_t *w, int fd, const pt_listener_config_t *lc);

/* TLS terminated on a TLS listener (tls_stream.c, once the handshake is done and checked):
 * takes c over (it stops serving HTTP), checks AuthorizationPolicy with the verified principal
 * and the SNI, routes by the listener's tcp[] route and relays through c's engine. */
void pt_l4_proxy_accept_terminated(pt_conn_t *c, const char *sni, size_t sni_len);

/* A PASSTHROUGH server chosen by SNI on a port it shares with servers that terminate
 * (tls_stream.c, before any handshake): takes c over with the bytes it read (c->in, the
 * ClientHello), checks AuthorizationPolicy with the SNI, routes by the listener's tls[] routes
 * and relays the bytes as they came, the ClientHello first. */
void pt_l4_proxy_accept_passthrough(pt_conn_t *c, const char *sni, size_t sni_len);

/* What a direct session relays to: an explicit upstream and its L4 filters. */
typedef struct pt_l4_direct {
    struct sockaddr_storage upstream;
    pt_l4_filter_t filters[PT_L4_MAX_FILTERS];
    size_t n_filters;
} pt_l4_direct_t;

/* A connection accepted for an explicit upstream (a chaos proxy's): fd is connected to upstream
 * under the connect timeout and relayed through the n_filters L4 filters (copied; their conf
 * must outlive the session). With server_tls, TLS is terminated first with that context (conn.c
 * and tls_stream.c run the handshake as for a Gateway TLS server; a client that fails it never
 * reaches the upstream) and the filters see the plaintext. fd is owned from then on. */
void pt_l4_proxy_accept_direct(pt_worker_t *w, int fd, const struct sockaddr *upstream,
                               struct ssl_ctx_st *server_tls, const pt_l4_filter_t *filters,
                               size_t n_filters);

/* TLS terminated for a direct session (tls_stream.c, once the handshake is done): takes c over
 * and relays its plaintext to d's upstream through d's filters. d is freed here. */
void pt_l4_proxy_accept_terminated_direct(pt_conn_t *c, pt_l4_direct_t *d);

/* Closes the sessions not relaying yet: reading a ClientHello or connecting upstream (drain
 * deadline, worker stop). */
void pt_l4_proxy_abort_pending(pt_worker_t *w);

/* The route for a ClientHello's SNI on a TLS listener: an exact sniHost first, then the
 * longest wildcard ("*.example.com" covers "a.example.com", "*" everything); NULL when none
 * matches (or the client sent no SNI). */
const pt_l4_route_t *pt_l4_route_for_sni(const pt_listener_config_t *lc, const char *sni,
                                         size_t sni_len);

#endif
