/* proxy/tls_stream.h
 * TLS on a downstream connection (conn.c), for Gateway HTTPS servers. Until the ClientHello is
 * whole, the connection reads into its read slab as usual; the listener's server is then chosen
 * by SNI, and from there ciphertext is read into a per-thread buffer, fed to the engine
 * (tls/tls.h), and the plaintext lands in the connection's read slab, where the HTTP/1 codec
 * finds it as on a plaintext connection. Writes are encrypted at once (the caller's slabs are
 * copied into TLS records, so nothing stays pinned) and the ciphertext goes out from slabs of
 * its own through pt_write(): libuv's write queue, and so the watermarks, count ciphertext.
 * Gateway TLS servers (protocol TLS, a mode that terminates) use the same handshake, then hand
 * the connection to l4_proxy.c, whose relay decrypts and encrypts through the same engine. */
#ifndef PT_TLS_STREAM_H
#define PT_TLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "../config/config.h"
#include "http_msg.h"
#include "write.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_tls_stream pt_tls_stream_t;

/* What pt_tls_stream_on_read() found. */
#define PT_TLS_STREAM_DATA 0x1 /* plaintext was added to c->in */
#define PT_TLS_STREAM_EOF 0x2  /* the peer sent close_notify */

/* Makes c a TLS connection (at accept, on a listener with tls); writes report to done.
 * Returns 0, or -1 when out of memory. */
int pt_tls_stream_start(pt_conn_t *c, pt_write_done_cb done);
/* Makes c a TLS connection served with ctx (a ref is taken) whatever the SNI, which goes to
 * pt_l4_proxy_accept_terminated_direct() with direct once the handshake is done (conn.c's
 * pt_conn_accept_tls). direct is owned from then on, freed on failure too. Returns 0, or -1 when
 * out of memory. */
struct pt_l4_direct;
int pt_tls_stream_start_direct(pt_conn_t *c, struct ssl_ctx_st *ctx, struct pt_l4_direct *direct,
                               pt_write_done_cb done);
/* Where the socket reads next (libuv's alloc callback). */
char *pt_tls_stream_read_space(pt_conn_t *c, size_t *size);
/* nread bytes were read there: handshake, decryption. Returns PT_TLS_STREAM_* flags; on a TLS
 * failure c is closed (counted and logged at debug) and 0 is returned. */
unsigned pt_tls_stream_on_read(pt_conn_t *c, size_t nread);
/* Moves plaintext already decrypted but left in the engine (the read slab was full) into c->in.
 * Returns PT_TLS_STREAM_* flags as pt_tls_stream_on_read(). */
unsigned pt_tls_stream_pump(pt_conn_t *c);
/* Encrypts prefix, bufs and suffix (as pt_write takes them) and sends the records. Returns 0
 * or a libuv error. */
int pt_tls_stream_write(pt_conn_t *c, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
                        unsigned n, const char *suffix);
/* The connection's engine, for a relay that takes the connection over (an upgrade, a Gateway
 * TLS server's tcp[] route); it stays the connection's, freed with it. */
struct pt_tls;
struct pt_tls *pt_tls_stream_engine(pt_conn_t *c);
/* Queues close_notify (before a graceful close's shutdown). */
void pt_tls_stream_close_notify(pt_conn_t *c);
/* headerTimeout ran out: a handshake not finished by then counts as failed. */
void pt_tls_stream_on_header_timeout(pt_conn_t *c);
/* Sidecar inbound (conn.c, once capture.c has the original destination): starts mesh mTLS on c when
 * PeerAuthentication's mode for the original destination port asks for it (STRICT: TLS only;
 * PERMISSIVE: the first byte tells TLS from plaintext) and the Proxy has an identity. Returns 0, or
 * -1 when out of memory. */
int pt_tls_stream_start_inbound(pt_conn_t *c, uint16_t original_port, pt_write_done_cb done);
/* Capture wants to relay c as TCP: true when it may (PERMISSIVE and nothing read: TLS is
 * dropped); otherwise c keeps waiting for a ClientHello (STRICT, once) or is closed. */
bool pt_tls_stream_may_relay(pt_conn_t *c);
/* Gateway httpsRedirect: whether the request's Host is one of the listener's HTTP servers that
 * redirect to https://; pt_https_redirect_route is the 301 they answer. */
bool pt_tls_stream_is_https_redirect(const pt_listener_config_t *l, const pt_http_msg_t *head);
extern const pt_http_route_t pt_https_redirect_route;
/* With the connection: the engine and the TLS state. */
void pt_tls_stream_free(pt_conn_t *c);

#endif
