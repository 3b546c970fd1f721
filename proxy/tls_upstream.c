/* proxy/tls_upstream.c
 * The TLS client transport of upstream connections (see tls_upstream.h). Ciphertext is read
 * into the thread's scratch buffer (scratch.h) and fed to OpenSSL at once; plaintext is read out of
 * OpenSSL into the connection's slab only as far as the HTTP code wants it: while reading is paused
 * the rest waits inside OpenSSL, and resuming delivers it from a zero-delay timer (the
 * connection's timer, unused while a stream holds the connection). */
#include "tls_upstream.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tls/tls.h"
#include "conn.h"
#include "http2_client.h"
#include "log.h"
#include "metrics.h"
#include "scratch.h"
#include "upstream.h"
#include "write.h"

struct pt_tls_upstream {
    pt_tls_t tls;
    const pt_upstream_tls_t *settings; /* until the handshake is done */
    char cluster[96];                  /* for logs */
};

/* Ciphertext is read into the thread's scratch, a record at most at a time, and OpenSSL copies
 * it into its input BIO at once. */
#define UPSTREAM_READ_BYTES (16 * 1024 + 512)
/* An idle pooled connection decrypts into this: any plaintext there closes it. */
static _Thread_local char idle_plain[64];

/* The ALPN list a connection offers, per connection rather than per context (HTTP/1 and
 * HTTP/2 clusters share contexts), in wire format; NULL: none. Mesh mTLS offers what Istio's
 * sidecars offer: the in-mesh name of the protocol that follows ("istio-h2",
 * "istio-http/1.1"), "istio", then the standard name (the alpn_override of Istio's outbound
 * HTTP filter chain), so the peer sidecar knows the protocol before the first byte. */
static const char *upstream_alpn(const pt_upstream_tls_t *s, bool http2)
{
    if (s->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL)
        return http2 ? "\x08istio-h2\x05istio\x02h2" : "\x0eistio-http/1.1\x05istio\x08http/1.1";
    return http2 ? "\x02h2" : NULL;
}

pt_tls_upstream_t *pt_tls_upstream_new(const pt_upstream_tls_t *s, const pt_cluster_t *cl,
                                       bool http2)
{
    pt_tls_upstream_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (pt_tls_init(&t->tls, s->ctx, false, s->sni, s->verify_name) != 0) {
        free(t);
        return NULL;
    }
    const char *alpn = upstream_alpn(s, http2);
    if (alpn != NULL &&
        SSL_set_alpn_protos(t->tls.ssl, (const unsigned char *)alpn, (unsigned)strlen(alpn)) != 0) {
        pt_tls_dispose(&t->tls);
        free(t);
        return NULL;
    }
    t->settings = s;
    snprintf(t->cluster, sizeof(t->cluster), "%s", cl->name);
    return t;
}

void pt_tls_upstream_free(pt_tls_upstream_t *t)
{
    if (t == NULL)
        return;
    pt_tls_dispose(&t->tls);
    free(t);
}

bool pt_tls_upstream_uses(const pt_tls_upstream_t *t, const pt_upstream_tls_t *s)
{
    return t->settings != NULL && t->settings == s;
}

pt_tls_t *pt_tls_upstream_engine(pt_upstream_t *up)
{
    return up->tls != NULL ? &up->tls->tls : NULL;
}

bool pt_tls_upstream_has_pending(const pt_upstream_t *up)
{
    return up->tls != NULL &&
           (SSL_pending(up->tls->tls.ssl) > 0 || BIO_ctrl_pending(up->tls->tls.in) > 0);
}

/* Queues the ciphertext OpenSSL produced, in slabs that the writes pin. */
static int flush(pt_upstream_t *up, pt_write_done_cb done)
{
    return pt_write_tls_output((uv_stream_t *)&up->tcp, &up->tls->tls, done, up);
}

/* --- checks after the handshake --- */

/* Does the certificate carry name as a DNS name (wildcards as RFC 6125), an IP address or a
 * URI (a SPIFFE ID)? */
static bool cert_has_san(X509 *cert, const char *name)
{
    if (X509_check_host(cert, name, strlen(name), 0, NULL) == 1 ||
        X509_check_ip_asc(cert, name, 0) == 1)
        return true;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const ASN1_IA5STRING *uri = g->d.uniformResourceIdentifier;
        found = (size_t)uri->length == strlen(name) && memcmp(uri->data, name, strlen(name)) == 0;
    }
    GENERAL_NAMES_free(names);
    return found;
}

/* NULL when the server passes what the settings ask beyond OpenSSL's chain and name checks,
 * else why not (into why). */
static const char *check_server(pt_tls_t *tls, const pt_upstream_tls_t *s, char *why, size_t cap)
{
    if (s->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL) {
        char id[512];
        pt_spiffe_id_t parsed;
        if (!pt_tls_peer_spiffe_id(tls, id, sizeof(id)) ||
            !pt_spiffe_parse(id, strlen(id), &parsed)) {
            snprintf(why, cap, "the server's certificate has no SPIFFE ID");
            return why;
        }
        if (parsed.trust_domain_len != strlen(s->trust_domain) ||
            memcmp(parsed.trust_domain, s->trust_domain, parsed.trust_domain_len) != 0) {
            snprintf(why, cap, "the server's SPIFFE ID %s is not in trust domain %s", id,
                     s->trust_domain);
            return why;
        }
        for (size_t i = 0; i < s->n_sans; i++)
            if (strcmp(s->sans[i], id) == 0)
                return NULL;
        if (s->n_sans > 0) {
            snprintf(why, cap, "the server's SPIFFE ID %s is not in subjectAltNames", id);
            return why;
        }
        return NULL;
    }
    if (s->insecure_skip_verify || s->n_sans == 0)
        return NULL; /* the chain and verify_name were checked by OpenSSL */
    X509 *cert = SSL_get0_peer_certificate(tls->ssl);
    for (size_t i = 0; cert != NULL && i < s->n_sans; i++)
        if (cert_has_san(cert, s->sans[i]))
            return NULL;
    snprintf(why, cap, "the server's certificate matches none of subjectAltNames");
    return why;
}

/* --- the handshake --- */

static void handshake_failed(pt_upstream_t *up, const char *why)
{
    PT_STAT_INC(&up->worker->stats, upstream_cx_ssl_error);
    pt_log_debug("upstream %s: TLS handshake failed: %s", up->tls->cluster, why);
    pt__upstream_connect_failed(up);
}

static void on_handshake_write(void *owner, int status)
{
    pt_upstream_t *up = owner;
    if (status < 0 && !up->is_closing && !up->is_connected)
        handshake_failed(up, uv_strerror(status));
}

static void on_cipher_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    *out = uv_buf_init(pt_scratch()->in, UPSTREAM_READ_BYTES);
}

static void advance_handshake(pt_upstream_t *up)
{
    pt_tls_upstream_t *t = up->tls;
    pt_tls_status_t st = pt_tls_handshake(&t->tls);
    int werr = flush(up, on_handshake_write);
    if (up->is_closing)
        return;
    if (st == PT_TLS_WANT_READ && werr == 0)
        return;
    if (st != PT_TLS_OK || werr != 0) {
        handshake_failed(up, werr != 0         ? uv_strerror(werr)
                             : t->tls.error[0] ? t->tls.error
                                               : "the server closed the handshake");
        return;
    }
    char why[600];
    bool waited = up->h2 != NULL ? pt_http2_client_n_owned(up->h2) > 0 : up->x.owner != NULL;
    if (!waited || check_server(&t->tls, t->settings, why, sizeof(why)) != NULL) {
        handshake_failed(up, !waited ? "nobody waits for the connection" : why);
        return;
    }
    bool is_mesh = t->settings->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL;
    t->settings = NULL;
    PT_STAT_INC(&up->worker->stats, upstream_cx_ssl_handshake);
    uv_read_stop((uv_stream_t *)&up->tcp);
    if (up->h2 != NULL && is_mesh && !pt_tls_alpn_is_h2(&t->tls)) {
        /* Not a peer that speaks HTTP/2 (one that chose HTTP/1.1, or no ALPN). */
        pt_log_debug("upstream %s: the peer chose no HTTP/2 by ALPN: HTTP/1.1 for %d s", t->cluster,
                     PT_H2_REFUSAL_MS / 1000);
        pt__upstream_h2_refused(up);
        return;
    }
    pt__upstream_connected(up);
}

static void on_handshake_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt_upstream_t *up = s->data;
    if (up->is_closing || nread == 0)
        return;
    if (nread < 0) {
        handshake_failed(up, nread == UV_EOF ? "the server closed the connection"
                                             : uv_strerror((int)nread));
        return;
    }
    pt_tls_feed(&up->tls->tls, b->base, (size_t)nread);
    advance_handshake(up);
}

void pt_tls_upstream_start(pt_upstream_t *up)
{
    if (uv_read_start((uv_stream_t *)&up->tcp, on_cipher_alloc, on_handshake_read) != 0) {
        handshake_failed(up, "cannot read the socket");
        return;
    }
    advance_handshake(up);
}

/* --- after the handshake --- */

/* Moves plaintext out of OpenSSL for as long as the HTTP code takes it. */
static void deliver_plaintext(pt_upstream_t *up)
{
    pt_tls_t *t = &up->tls->tls;
    while (pt__upstream_wants_bytes(up) && !up->is_closing && !up->is_handed_off &&
           !up->is_read_paused) {
        size_t size;
        char *at = pt_rbuf_space(&up->in, &size);
        ssize_t n = pt_tls_read(t, at, size);
        if (n > 0) {
            pt__upstream_on_read(up, n);
            continue;
        }
        if (n == -PT_TLS_WANT_READ) {
            pt__upstream_on_read(up, 0);
        } else {
            if (n == -PT_TLS_ERROR)
                pt_log_debug("upstream %s: %s", up->tls->cluster, t->error);
            pt__upstream_on_read(up, n == -PT_TLS_CLOSED ? UV_EOF : UV_ECONNRESET);
        }
        return;
    }
    if (!pt__upstream_wants_bytes(up) && !up->is_closing && !up->is_handed_off) {
        /* Idle in the pool (now, or since the response ended): session tickets are fine;
         * data, close_notify or an error close the connection. */
        ssize_t n = pt_tls_read(t, idle_plain, sizeof(idle_plain));
        if (n != -PT_TLS_WANT_READ)
            pt__upstream_on_read(up, n > 0 ? n : UV_EOF);
    }
}

static void on_cipher_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt_upstream_t *up = s->data;
    if (up->is_closing || nread == 0)
        return;
    if (nread < 0) {
        /* Plaintext already decrypted goes first; then the end. */
        deliver_plaintext(up);
        if (!up->is_closing && !up->is_handed_off)
            pt__upstream_on_read(up, nread);
        return;
    }
    pt_tls_feed(&up->tls->tls, b->base, (size_t)nread);
    deliver_plaintext(up);
    /* OpenSSL answers some records itself (a key update): send what it produced (a relay
     * that took the connection over sends it itself). */
    if (!up->is_closing && !up->is_handed_off && pt_tls_output_len(&up->tls->tls) > 0)
        flush(up, pt__upstream_on_write_done);
}

static void on_resume_timer(uv_timer_t *timer)
{
    pt_upstream_t *up = timer->data;
    if (!up->is_closing && !up->is_handed_off && pt__upstream_wants_bytes(up) &&
        !up->is_read_paused)
        deliver_plaintext(up);
}

void pt_tls_upstream_read_start(pt_upstream_t *up)
{
    uv_read_start((uv_stream_t *)&up->tcp, on_cipher_alloc, on_cipher_read);
    if (pt__upstream_wants_bytes(up) && pt_tls_upstream_has_pending(up))
        uv_timer_start(&up->timer, on_resume_timer, 0, 0);
}

int pt_tls_upstream_write(pt_upstream_t *up, const char *prefix, size_t prefix_len,
                          const uv_buf_t *bufs, unsigned n, const char *suffix)
{
    pt_tls_t *t = &up->tls->tls;
    bool ok = prefix_len == 0 || pt_tls_write(t, prefix, prefix_len) == PT_TLS_OK;
    for (unsigned i = 0; i < n && ok; i++)
        ok = bufs[i].len == 0 || pt_tls_write(t, bufs[i].base, bufs[i].len) == PT_TLS_OK;
    if (ok && suffix != NULL && suffix[0] != '\0')
        ok = pt_tls_write(t, suffix, strlen(suffix)) == PT_TLS_OK;
    if (!ok) {
        pt_log_debug("upstream %s: %s", up->tls->cluster, t->error);
        return UV_EPROTO;
    }
    return flush(up, pt__upstream_on_write_done);
}

/* --- TCP routes: the handshake, then relay.c relays through the engine --- */

struct pt_tls_pipe {
    pt_tls_t tls;
    pt_worker_t *worker;
    uv_tcp_t *up;
    const pt_upstream_tls_t *settings;
    void (*on_done)(void *owner, bool ok);
    void *owner;
    bool is_done;
    char cluster[96];
};

static void pipe_done(pt_tls_pipe_t *p, bool ok)
{
    if (p->is_done)
        return;
    p->is_done = true;
    uv_read_stop((uv_stream_t *)p->up);
    p->on_done(p->owner, ok);
}

void pt_tls_pipe_free(pt_tls_pipe_t *p)
{
    if (p == NULL)
        return;
    pt_tls_dispose(&p->tls);
    free(p);
}

pt_tls_t *pt_tls_pipe_engine(pt_tls_pipe_t *p)
{
    return &p->tls;
}

static void pipe_on_written(void *owner, int status)
{
    pt_tls_pipe_t *p = owner;
    /* UV_ECANCELED: the session closed the socket itself (a timeout, a stop). */
    if (status < 0 && status != UV_ECANCELED && !p->is_done) {
        PT_STAT_INC(&p->worker->stats, upstream_cx_ssl_error);
        PT_STAT_INC(&p->worker->stats, upstream_cx_connect_fail);
        pipe_done(p, false);
    }
}

/* Sends the handshake's output upstream. */
static int pipe_flush(pt_tls_pipe_t *p)
{
    size_t len;
    while ((len = pt_tls_output_len(&p->tls)) > 0) {
        pt_buf_t *b = pt_buf_new_sized(len < PT_BUF_SIZE ? len : PT_BUF_SIZE);
        size_t n = pt_tls_take_output(&p->tls, b->data, b->cap);
        uv_buf_t ub = uv_buf_init(b->data, (unsigned)n);
        int r = n > 0 ? pt_write((uv_stream_t *)p->up, NULL, 0, &ub, 1, NULL, b, pipe_on_written, p)
                      : 0;
        pt_buf_unref(b);
        if (r != 0 || n == 0)
            return r;
    }
    return 0;
}

static void pipe_failed(pt_tls_pipe_t *p, const char *why)
{
    PT_STAT_INC(&p->worker->stats, upstream_cx_ssl_error);
    PT_STAT_INC(&p->worker->stats, upstream_cx_connect_fail);
    pt_log_debug("upstream %s: TLS handshake failed: %s", p->cluster, why);
    pipe_done(p, false);
}

static void pipe_advance_handshake(pt_tls_pipe_t *p)
{
    pt_tls_status_t st = pt_tls_handshake(&p->tls);
    int werr = pipe_flush(p);
    if (p->is_done || (st == PT_TLS_WANT_READ && werr == 0))
        return;
    char why[600];
    if (st != PT_TLS_OK || werr != 0) {
        pipe_failed(p, werr != 0         ? uv_strerror(werr)
                       : p->tls.error[0] ? p->tls.error
                                         : "the server closed the handshake");
        return;
    }
    if (check_server(&p->tls, p->settings, why, sizeof(why)) != NULL) {
        pipe_failed(p, why);
        return;
    }
    p->settings = NULL;
    PT_STAT_INC(&p->worker->stats, upstream_cx_ssl_handshake);
    pipe_done(p, true);
}

static void pipe_on_handshake_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pt_tls_pipe_t *p = s->data;
    if (p->is_done || nread == 0)
        return;
    if (nread < 0) {
        pipe_failed(p,
                    nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
        return;
    }
    pt_tls_feed(&p->tls, b->base, (size_t)nread);
    pipe_advance_handshake(p);
}

pt_tls_pipe_t *pt_tls_pipe_new(pt_worker_t *w, uv_tcp_t *up, const pt_upstream_tls_t *s,
                               const pt_cluster_t *cl, void (*on_done)(void *owner, bool ok),
                               void *owner)
{
    pt_tls_pipe_t *p = calloc(1, sizeof(*p));
    if (p == NULL || pt_tls_init(&p->tls, s->ctx, false, s->sni, s->verify_name) != 0)
        abort();
    /* TCP over mesh mTLS: Istio's outbound TCP cluster offers these two. */
    static const unsigned char mesh_tcp[] = "\x13istio-peer-exchange\x05istio";
    if (s->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL &&
        SSL_set_alpn_protos(p->tls.ssl, mesh_tcp, sizeof(mesh_tcp) - 1) != 0)
        abort();
    p->worker = w;
    p->up = up;
    p->settings = s;
    p->on_done = on_done;
    p->owner = owner;
    snprintf(p->cluster, sizeof(p->cluster), "%s", cl->name);
    return p;
}

void pt_tls_pipe_begin(pt_tls_pipe_t *p)
{
    p->up->data = p;
    if (uv_read_start((uv_stream_t *)p->up, on_cipher_alloc, pipe_on_handshake_read) != 0) {
        pipe_failed(p, "cannot read the socket");
        return;
    }
    pipe_advance_handshake(p);
}
