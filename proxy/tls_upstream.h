/* proxy/tls_upstream.h
 * TLS origination on upstream connections (DestinationRule tls SIMPLE / MUTUAL /
 * ISTIO_MUTUAL, and auto mTLS). proxy/upstream.c connects as usual; when the endpoint has TLS
 * settings it hands the connected socket to this transport, which runs the client handshake
 * (still under the connect timeout), checks the server (chain, name or subjectAltNames, SPIFFE
 * trust domain) and then reports the connection ready. From there reads decrypt into the
 * upstream's read slab and writes encrypt into pooled slabs, so the HTTP/1.1 code above sees
 * plaintext and its backpressure (write-queue watermarks, read pausing) works unchanged.
 *
 * A handshake or check failure is a connect failure: 503 UF, counted upstream_cx_ssl_error,
 * the TLS error in the debug log. */
#ifndef PT_TLS_UPSTREAM_H
#define PT_TLS_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "../config/config.h"
#include "../tls/tls.h"
#include "buf.h"
#include "worker.h"

typedef struct pt_upstream pt_upstream_t;
typedef struct pt_tls_upstream pt_tls_upstream_t;

/* The TLS state of a new connection to an endpoint of cl with settings s; NULL when out of
 * memory; http2 offers ALPN h2 (and Istio's names over mesh mTLS). The settings are only used
 * until the handshake is done (the streams attached to the connection keep its snapshot, and
 * with it s, alive until then: an HTTP/2 connection takes no other stream before its
 * handshake ends, but one whose own snapshot holds the same s, pt_tls_upstream_uses). */
pt_tls_upstream_t *pt_tls_upstream_new(const pt_upstream_tls_t *s, const pt_cluster_t *cl,
                                       bool http2);
void pt_tls_upstream_free(pt_tls_upstream_t *t);
/* The handshake still in progress on t reads s: a stream whose snapshot holds s keeps it
 * alive as well as the streams already there, so it may join the connection now. */
bool pt_tls_upstream_uses(const pt_tls_upstream_t *t, const pt_upstream_tls_t *s);

/* The TCP connection is up: sends the ClientHello and reads the handshake. Ends with
 * pt__upstream_connected() or pt__upstream_fail(). */
void pt_tls_upstream_start(pt_upstream_t *up);
/* Starts reading (after the handshake): decrypted bytes go to up->in; plaintext OpenSSL already
 * holds is delivered from the loop, never from inside the caller. */
void pt_tls_upstream_read_start(pt_upstream_t *up);
/* Encrypts prefix, bufs and suffix (as pt_write would send them) and queues the records. */
int pt_tls_upstream_write(pt_upstream_t *up, const char *prefix, size_t prefix_len,
                          const uv_buf_t *bufs, unsigned n, const char *suffix);
/* Plaintext or records are waiting in OpenSSL (a connection with any is not pooled). */
bool pt_tls_upstream_has_pending(const pt_upstream_t *up);

/* The connection's engine (NULL without TLS): a relay takes it over after an upgrade (101). */
pt_tls_t *pt_tls_upstream_engine(pt_upstream_t *up);

/* TCP routes (proxy/l4_proxy.c): once the upstream socket is connected, a pipe runs the client
 * handshake (the session's connect timeout still running) and checks the server as above. It
 * calls on_done(owner, ok) once (begin may already): ok, and relay.c relays through
 * pt_tls_pipe_engine(); not ok (counted upstream_cx_ssl_error and upstream_cx_connect_fail),
 * and the owner closes the session. pt_tls_pipe_new() does no I/O; pt_tls_pipe_begin() takes
 * the socket's data pointer and starts. The owner frees the pipe (and so the engine) after
 * the socket's close callback. */
typedef struct pt_tls_pipe pt_tls_pipe_t;
pt_tls_pipe_t *pt_tls_pipe_new(pt_worker_t *w, uv_tcp_t *up, const pt_upstream_tls_t *s,
                               const pt_cluster_t *cl, void (*on_done)(void *owner, bool ok),
                               void *owner);
void pt_tls_pipe_begin(pt_tls_pipe_t *p);
pt_tls_t *pt_tls_pipe_engine(pt_tls_pipe_t *p);
void pt_tls_pipe_free(pt_tls_pipe_t *p);

/* Hooks in proxy/upstream.c that the transport calls. */
void pt__upstream_connected(pt_upstream_t *up);
void pt__upstream_connect_failed(pt_upstream_t *up);
/* nread bytes were placed at the free tail of up->in (> 0), or UV_EOF / an error, as libuv's
 * read callback reports them. */
void pt__upstream_on_read(pt_upstream_t *up, ssize_t nread);
void pt__upstream_on_write_done(void *owner, int status);

#endif
