/* tls/tls.h
 * TLS on OpenSSL 3 for libuv streams, through memory BIOs: the owner of a socket feeds the
 * ciphertext it read into pt_tls_feed(), takes plaintext out with pt_tls_read(), puts plaintext
 * in with pt_tls_write(), and sends whatever pt_tls_take_output() returns. OpenSSL never
 * touches a socket, so a TLS connection lives on its worker's loop like any other.
 *
 * Contexts (SSL_CTX) are built once per snapshot or certificate change by pt_tls_server_ctx()
 * and pt_tls_client_ctx() with Petrel's policy: TLS 1.2 and 1.3 only, forward-secret AEAD
 * suites only for 1.2, no renegotiation, no compression. SSL_CTX is refcounted by OpenSSL
 * (SSL_CTX_up_ref / SSL_CTX_free); a connection keeps its context alive through its SSL.
 *
 * Identities: pt_tls_peer_spiffe_id() reads the verified peer's SPIFFE ID (a URI SAN
 * spiffe://<trust-domain>/ns/<ns>/sa/<sa>); pt_spiffe_parse() splits one. */
#ifndef PT_TLS_H
#define PT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "openssl.h"

/* Where a context's certificates come from and what it asks of the peer. Files are PEM. */
typedef struct pt_tls_ctx_opts {
    const char *cert_file;  /* chain, leaf first; required for a server, optional for a client */
    const char *key_file;   /* its private key */
    const char *ca_file;    /* trust anchors for the peer's chain; NULL: the peer is not verified
                               (a server then asks for no certificate) */
    bool require_peer_cert; /* server: a client without a (valid) certificate fails the handshake */
    uint16_t min_version;   /* TLS1_2_VERSION (default when 0) or TLS1_3_VERSION */
    uint16_t max_version;   /* 0: the highest OpenSSL has */
    const char *ciphers;    /* TLS 1.2 suites (OpenSSL names, ':'-separated); NULL: Petrel's */
    const char *alpn;       /* wire format (length-prefixed names); NULL: no ALPN */
    size_t alpn_len;
} pt_tls_ctx_opts_t;

/* A new context with one ref, or NULL with a message naming the file or setting in err. */
SSL_CTX *pt_tls_server_ctx(const pt_tls_ctx_opts_t *o, char *err, size_t err_cap);
SSL_CTX *pt_tls_client_ctx(const pt_tls_ctx_opts_t *o, char *err, size_t err_cap);

typedef enum pt_tls_status {
    PT_TLS_OK = 0,    /* done (handshake complete, or bytes moved) */
    PT_TLS_WANT_READ, /* needs more ciphertext from the peer */
    PT_TLS_CLOSED,    /* the peer sent close_notify */
    PT_TLS_ERROR,     /* fatal: see pt_tls_error() */
} pt_tls_status_t;

typedef struct pt_tls {
    SSL *ssl;
    BIO *in;  /* ciphertext from the peer, fed by pt_tls_feed() (owned by ssl) */
    BIO *out; /* ciphertext for the peer, taken by pt_tls_take_output() (owned by ssl) */
    bool is_server;
    bool is_handshake_done;
    char error[160]; /* the first fatal error, for logs */
} pt_tls_t;

/* Sets t up for one connection on ctx (the SSL takes its own ref). A client sends sni (may be
 * NULL) and, when verify_name is given, checks the server's certificate names it (a DNS name
 * or IP address SAN). Returns 0, or -1 (out of memory). */
int pt_tls_init(pt_tls_t *t, SSL_CTX *ctx, bool is_server, const char *sni,
                const char *verify_name);
void pt_tls_dispose(pt_tls_t *t);

/* Hands ciphertext read from the socket to OpenSSL. */
void pt_tls_feed(pt_tls_t *t, const void *data, size_t len);
/* Advances the handshake with what was fed. PT_TLS_OK once it is complete. */
pt_tls_status_t pt_tls_handshake(pt_tls_t *t);
/* Decrypts into buf: > 0 bytes, or -PT_TLS_WANT_READ / -PT_TLS_CLOSED / -PT_TLS_ERROR. */
ssize_t pt_tls_read(pt_tls_t *t, void *buf, size_t cap);
/* Encrypts all of data (the ciphertext waits in the output BIO): PT_TLS_OK, or PT_TLS_ERROR,
 * or PT_TLS_WANT_READ (nothing written: the handshake is not complete). */
pt_tls_status_t pt_tls_write(pt_tls_t *t, const void *data, size_t len);
/* Queues close_notify. */
void pt_tls_shutdown(pt_tls_t *t);
/* Ciphertext waiting to be sent. */
size_t pt_tls_output_len(const pt_tls_t *t);
/* Moves up to cap bytes of it into buf; returns how many. */
size_t pt_tls_take_output(pt_tls_t *t, void *buf, size_t cap);

/* The negotiated ALPN protocol ("" when none) and version name ("TLSv1.3"). */
const char *pt_tls_alpn(const pt_tls_t *t, size_t *len);
/* ALPN chose HTTP/2: "h2", or "istio-h2" (Istio's in-mesh name for it). */
bool pt_tls_alpn_is_h2(const pt_tls_t *t);
/* The mesh inbound's ALPN list (wire format), in its order of preference: Istio's in-mesh
 * names answered with the protocol they stand for, HTTP/2 first, so a peer sidecar offering
 * "istio-h2", "istio", "h2" gets h2; a client offering only istio-h2, only HTTP/1.1 or "istio"
 * gets that. "istio-peer-exchange" is never chosen: Petrel does not speak Istio's TCP
 * metadata exchange. */
#define PT_TLS_MESH_SERVER_ALPN                                                                    \
    "\x02h2\x08istio-h2\x08http/1.1\x0eistio-http/1.1\x0eistio-http/1.0\x05istio"
const char *pt_tls_version(const pt_tls_t *t);
/* The server name the client sent (server side), or NULL. */
const char *pt_tls_sni(const pt_tls_t *t);

/* The verified peer certificate's SPIFFE ID (its one spiffe:// URI SAN) into out; false when
 * the peer sent no verified certificate or it has no single SPIFFE ID. */
bool pt_tls_peer_spiffe_id(const pt_tls_t *t, char *out, size_t cap);

/* NULL when the certificate of ctx is valid now, else why not ("certificate expired",
 * "certificate not yet valid", "no certificate"). */
const char *pt_tls_ctx_certificate_problem(SSL_CTX *ctx);

/* spiffe://<trust-domain>/ns/<ns>/sa/<sa>: false when id is not of that form. The parts point
 * into id (not NUL-terminated), with their lengths. */
typedef struct pt_spiffe_id {
    const char *trust_domain, *ns, *sa;
    size_t trust_domain_len, ns_len, sa_len;
} pt_spiffe_id_t;
bool pt_spiffe_parse(const char *id, size_t len, pt_spiffe_id_t *out);

#endif
