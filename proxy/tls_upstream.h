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
#include "buf.h"
#include "worker.h"

typedef struct pt_upstream pt_upstream_t;
typedef struct pt_tls_upstream pt_tls_upstream_t;

/* The TLS state of a new connection to an endpoint of cl with settings s; NULL when out of
 * memory. The settings are only used until the handshake is done (the stream attached to the
 * connection keeps its snapshot, and with it s, alive until then). */
pt_tls_upstream_t *pt_tls_upstream_new(const pt_upstream_tls_t *s, const pt_cluster_t *cl);
void pt_tls_upstream_free(pt_tls_upstream_t *t);

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

/* TCP routes (proxy/l4_proxy.c): once the upstream socket is connected, a pipe runs the
 * handshake (the session's timer, the connect timeout, still running), then relays between the
 * downstream (plaintext) and the upstream (TLS) with backpressure, half-close (close_notify
 * and FIN both ways) and the idle timeout on that timer. early is what the downstream sent
 * before (the pipe takes the slab). pt_tls_pipe_new() does no I/O; pt_tls_pipe_begin() takes
 * the handles' data pointers and starts. When the pipe is done, or the handshake fails
 * (upstream_cx_ssl_error), it calls on_end(owner) once (begin may already), and the owner
 * closes the three handles, calls pt_tls_pipe_stop() (also when it aborts the session
 * itself) and, after their close callbacks, pt_tls_pipe_free(). */
typedef struct pt_tls_pipe pt_tls_pipe_t;
pt_tls_pipe_t *pt_tls_pipe_new(pt_worker_t *w, uv_tcp_t *down, uv_tcp_t *up, uv_timer_t *timer,
                               pt_rbuf_t early, const pt_upstream_tls_t *s, const pt_cluster_t *cl,
                               const char *service, uint64_t idle_timeout_ms,
                               void (*on_end)(void *owner), void *owner);
void pt_tls_pipe_begin(pt_tls_pipe_t *p);
void pt_tls_pipe_stop(pt_tls_pipe_t *p);
void pt_tls_pipe_free(pt_tls_pipe_t *p);

/* Hooks in proxy/upstream.c that the transport calls. */
void pt__upstream_connected(pt_upstream_t *up);
void pt__upstream_connect_failed(pt_upstream_t *up);
/* nread bytes were placed at the free tail of up->in (> 0), or UV_EOF / an error, as libuv's
 * read callback reports them. */
void pt__upstream_on_read(pt_upstream_t *up, ssize_t nread);
void pt__upstream_on_write_done(void *owner, int status);

#endif
