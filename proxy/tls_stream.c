/* proxy/tls_stream.c
 * The downstream TLS transport (see tls_stream.h). A connection's TLS state is allocated only
 * on listeners that terminate TLS, so a plaintext connection pays one NULL pointer.
 *
 * The server is chosen from the ClientHello before OpenSSL sees a byte (tls/client_hello.h):
 * each Gateway server has a context of its own (certificate, versions, suites, client CA), so
 * choosing first is simpler and stricter than switching contexts inside OpenSSL's SNI callback,
 * which would carry over the first context's versions and verify settings. On a Gateway TLS
 * server (tcp[] routes) the connection goes to l4_proxy.c once the handshake is checked. On a
 * port shared by HTTPS, terminated TLS and PASSTHROUGH servers, this is where its one
 * ClientHello is read: a PASSTHROUGH server's connection goes to l4_proxy.c with the bytes
 * read so far, before any engine exists. A direct session's connection (an explicit upstream,
 * no listener in the snapshot) has its one context from the start and goes to l4_proxy.c the
 * same way. */
#include "tls_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "../tls/client_hello.h"
#include "../tls/tls.h"
#include "conn.h"
#include "http2_server.h"
#include "l4_proxy.h"
#include "log.h"
#include "router.h"
#include "scratch.h"

struct pt_tls_stream {
    pt_tls_t tls;
    pt_write_done_cb done;
    pt_config_t *config; /* held from the ClientHello to the end of the handshake */
    const pt_tls_server_t *server;
    bool is_started; /* the ClientHello was read and the engine set up */
    bool is_failed;
    bool is_mesh;             /* sidecar inbound: the workload identity, PeerAuthentication */
    bool is_permissive;       /* mesh PERMISSIVE: plaintext is served too */
    bool is_waiting_extended; /* mesh STRICT: the detection timer became headerTimeout */
    bool is_tcp_route;        /* a Gateway TLS server: after the handshake, l4_proxy.c relays */
    char principal[256];      /* the verified peer's SPIFFE ID without "spiffe://" */
    /* A direct session's (pt_conn_accept_tls): the context given, one ref, instead of a server
     * chosen by SNI, and what l4_proxy.c relays to once the handshake is done. */
    SSL_CTX *direct_ctx;
    pt_l4_direct_t *direct;
};

int pt_tls_stream_start(pt_conn_t *c, pt_write_done_cb done)
{
    c->tls = calloc(1, sizeof(*c->tls));
    if (c->tls == NULL)
        return -1;
    c->tls->done = done;
    return 0;
}

int pt_tls_stream_start_direct(pt_conn_t *c, SSL_CTX *ctx, pt_l4_direct_t *direct,
                               pt_write_done_cb done)
{
    if (pt_tls_stream_start(c, done) != 0) {
        free(direct);
        return -1;
    }
    SSL_CTX_up_ref(ctx);
    c->tls->direct_ctx = ctx;
    c->tls->direct = direct;
    c->tls->is_tcp_route = true;
    return 0;
}

static void release_config(pt_tls_stream_t *ts)
{
    if (ts->config != NULL)
        pt_config_unref(ts->config);
    ts->config = NULL;
    ts->server = NULL;
}

void pt_tls_stream_free(pt_conn_t *c)
{
    if (c->tls == NULL)
        return;
    pt_tls_dispose(&c->tls->tls);
    release_config(c->tls);
    if (c->tls->direct_ctx != NULL)
        SSL_CTX_free(c->tls->direct_ctx);
    free(c->tls->direct);
    free(c->tls);
    c->tls = NULL;
    c->peer_principal = NULL;
}

char *pt_tls_stream_read_space(pt_conn_t *c, size_t *size)
{
    if (!c->tls->is_started)
        return pt_rbuf_space(&c->in, size);
    *size = sizeof(pt_scratch()->in);
    return pt_scratch()->in;
}

/* Sends the ciphertext the engine produced. */
static int flush(pt_conn_t *c)
{
    return pt_write_tls_output((uv_stream_t *)&c->tcp, &c->tls->tls, c->tls->done, c);
}

/* A TLS failure: counted, logged, the alert (if any) flushed, the connection closed. */
static void fail(pt_conn_t *c, bool in_handshake, const char *why)
{
    pt_tls_stream_t *ts = c->tls;
    ts->is_failed = true;
    if (in_handshake)
        PT_STAT_INC(&c->worker->stats, ssl_handshake_error);
    else
        PT_STAT_INC(&c->worker->stats, ssl_connection_error);
    pt_log_debug("downstream %s: TLS %s failed: %s", c->peer_ip,
                 in_handshake ? "handshake" : "connection", why);
    if (ts->is_started)
        flush(c);
    /* Graceful: the shutdown goes after the alert, so the client learns why. */
    pt_conn_close(c, true);
}

/* Istio's server choice: an exact host, else the longest wildcard, else (no SNI, or no server
 * names it) the first server. On a port of several kinds (is_sni_mixed) there is no first
 * server: as Envoy finds no filter chain, NULL, unless a server's host "*" takes it. */
static const pt_tls_server_t *pick_server(const pt_listener_config_t *lc, const char *sni,
                                          size_t len)
{
    const pt_listener_tls_t *lt = lc->tls;
    const pt_tls_server_t *best = NULL;
    size_t best_score = 0;
    for (size_t i = 0; i < lt->n_servers && (len > 0 || lc->is_sni_mixed); i++)
        for (size_t h = 0; h < lt->servers[i].n_hosts; h++) {
            size_t score = pt_sni_match_score(lt->servers[i].hosts[h], sni, len);
            if (score == SIZE_MAX)
                return &lt->servers[i];
            if (score > best_score) {
                best = &lt->servers[i];
                best_score = score;
            }
        }
    return best != NULL || lc->is_sni_mixed ? best : &lt->servers[0];
}

/* Whether the peer certificate carries one of the names (DNS, URI, email or IP SANs, as
 * written), as Istio's subjectAltNames asks. */
static bool peer_has_san(const pt_tls_stream_t *ts)
{
    X509 *cert = SSL_get0_peer_certificate(ts->tls.ssl);
    if (cert == NULL)
        return false;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return false;
    bool found = false;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char text[256];
        const ASN1_STRING *s = NULL;
        if (g->type == GEN_DNS || g->type == GEN_URI || g->type == GEN_EMAIL) {
            s = g->d.ia5;
            size_t n = (size_t)ASN1_STRING_length(s);
            if (n >= sizeof(text))
                continue;
            memcpy(text, ASN1_STRING_get0_data(s), n);
            text[n] = '\0';
        } else if (g->type == GEN_IPADD) {
            s = g->d.iPAddress;
            int af = ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6;
            if (ASN1_STRING_length(s) != 4 && ASN1_STRING_length(s) != 16)
                continue;
            if (uv_inet_ntop(af, ASN1_STRING_get0_data(s), text, sizeof(text)) != 0)
                continue;
        } else {
            continue;
        }
        for (size_t k = 0; k < ts->server->n_subject_alt_names && !found; k++)
            found = strcmp(ts->server->subject_alt_names[k], text) == 0;
    }
    GENERAL_NAMES_free(names);
    return found;
}

/* Mesh mTLS: the peer's certificate must carry a SPIFFE ID of the identity's trust domain. */
static bool check_mesh_peer(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    char id[sizeof(ts->principal) + 9];
    pt_spiffe_id_t parts;
    const char *td = ts->config->proxy.identity.trust_domain;
    if (!pt_tls_peer_spiffe_id(&ts->tls, id, sizeof(id)) ||
        !pt_spiffe_parse(id, strlen(id), &parts)) {
        fail(c, true, "the client certificate has no SPIFFE ID");
        return false;
    }
    if (parts.trust_domain_len != strlen(td) || memcmp(parts.trust_domain, td, strlen(td)) != 0) {
        fail(c, true, "the client's SPIFFE ID is not of the identity's trust domain");
        return false;
    }
    return true;
}

/* The handshake is complete: the server's subjectAltNames, then the peer's identity. */
static bool on_handshake_done(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    if (ts->is_mesh && !check_mesh_peer(c))
        return false;
    bool has_cert = SSL_get0_peer_certificate(ts->tls.ssl) != NULL;
    if (has_cert && ts->server != NULL && ts->server->n_subject_alt_names > 0 &&
        !peer_has_san(ts)) {
        fail(c, true, "the client certificate carries none of the server's subjectAltNames");
        return false;
    }
    PT_STAT_INC(&c->worker->stats, ssl_handshake);
    char id[sizeof(ts->principal) + 9];
    if (pt_tls_peer_spiffe_id(&ts->tls, id, sizeof(id))) {
        snprintf(ts->principal, sizeof(ts->principal), "%s", id + 9);
        c->peer_principal = ts->principal;
    }
    /* HTTPS servers offer h2; the mesh inbound also answers a peer sidecar's istio-h2. */
    if (pt_tls_alpn_is_h2(&ts->tls))
        c->codec_ops = &pt_http2_server_conn_ops;
    release_config(ts);
    return true;
}

/* Decrypts what the engine holds into the read slab while the slab has room. A full slab is not
 * copied into a fresh one: the rest waits in the engine until the codec has consumed what is
 * there (conn.c then calls pt_tls_stream_pump()). */
static unsigned decrypt(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    unsigned got = 0;
    for (;;) {
        if (c->in.buf != NULL && c->in.buf->cap - c->in.len < 2048 && c->in.off < c->in.len)
            break;
        size_t size;
        char *at = pt_rbuf_space(&c->in, &size);
        if (size == 0)
            break;
        ssize_t n = pt_tls_read(&ts->tls, at, size);
        if (n > 0) {
            c->in.len += (size_t)n;
            got |= PT_TLS_STREAM_DATA;
            continue;
        }
        if (n == -(ssize_t)PT_TLS_CLOSED)
            got |= PT_TLS_STREAM_EOF;
        else if (n == -(ssize_t)PT_TLS_ERROR) {
            fail(c, false, ts->tls.error);
            return 0;
        }
        break;
    }
    pt_rbuf_drop_consumed(&c->in);
    if (flush(c) != 0) /* TLS 1.3 may answer a read (a key update) */
        return 0;
    return got;
}

static unsigned advance(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    if (!ts->tls.is_handshake_done) {
        pt_tls_status_t st = pt_tls_handshake(&ts->tls);
        if (st == PT_TLS_ERROR) {
            fail(c, true, ts->tls.error);
            return 0;
        }
        if (flush(c) != 0 || st != PT_TLS_OK || !on_handshake_done(c))
            return 0;
        if (ts->direct != NULL) {
            pt_l4_direct_t *direct = ts->direct;
            ts->direct = NULL; /* l4_proxy.c's now */
            pt_l4_proxy_accept_terminated_direct(c, direct);
            return 0;
        }
        if (ts->is_tcp_route) {
            /* Plaintext already decrypted stays in the engine: the relay drains it. */
            const char *sni = pt_tls_sni(&ts->tls);
            pt_l4_proxy_accept_terminated(c, sni, sni != NULL ? strlen(sni) : 0);
            return 0;
        }
    }
    return decrypt(c);
}

/* The ClientHello is in c->in: choose the server and hand the bytes to a new engine. */
static unsigned start_engine(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    pt_client_hello_t hello;
    const uint8_t *data = (const uint8_t *)c->in.buf->data + c->in.off;
    size_t len = c->in.len - c->in.off;
    if (ts->is_mesh && len > 0 && !pt_hello_may_be_tls(data[0])) {
        if (!ts->is_permissive) {
            fail(c, true, "plaintext refused (PeerAuthentication STRICT)");
            return 0;
        }
        pt_tls_stream_free(c); /* PERMISSIVE: plaintext, served as without mTLS */
        return PT_TLS_STREAM_DATA;
    }
    pt_hello_status_t st = pt_client_hello_parse(data, len, pt_scratch()->hello, &hello);
    if (st == PT_HELLO_NEED_MORE && len < PT_BUF_SIZE - 2048)
        return 0;
    if (st != PT_HELLO_OK) {
        char why[80];
        snprintf(why, sizeof(why), "not a TLS ClientHello (%s)", pt_hello_status_name(st));
        fail(c, true, why);
        return 0;
    }
    SSL_CTX *ctx;
    if (ts->is_mesh) {
        ctx = c->worker->config->mesh_server_tls;
        if (ctx == NULL) {
            fail(c, true, "no workload identity any more");
            return 0;
        }
        /* The handshake is bounded like a request head, not like protocol detection. */
        pt_conn_start_capture_timer(c, c->worker->config->proxy.header_timeout_ms);
    } else if (ts->direct_ctx != NULL) {
        ctx = ts->direct_ctx; /* one server, whatever the SNI */
    } else {
        /* An HTTP chaos proxy's table is found by its name: the store's socket has no port
         * in the config. */
        const pt_config_t *cfg = c->worker->config;
        const pt_listener_config_t *lc = c->chaos_proxy != NULL
                                             ? pt_config_chaos_listener(cfg, c->chaos_proxy)
                                             : pt_router_listener(cfg, c->listener_port);
        if (lc == NULL || lc->tls == NULL || lc->tls->n_servers == 0) {
            fail(c, true, "the listener no longer terminates TLS");
            return 0;
        }
        ts->server = pick_server(lc, hello.sni, hello.sni_len);
        if (ts->server == NULL) {
            PT_STAT_INC(&c->worker->stats, tls_sni_no_route);
            pt_log_debug("%s: no server for SNI \"%.*s\": connection closed", lc->name,
                         (int)hello.sni_len, hello.sni != NULL ? hello.sni : "");
            ts->is_failed = true;
            pt_conn_close(c, false);
            return 0;
        }
        if (ts->server->kind == PT_TLS_SERVER_PASSTHROUGH) {
            /* Never decrypted: the bytes read so far stay in c->in, relayed first. */
            pt_tls_stream_free(c);
            pt_l4_proxy_accept_passthrough(c, hello.sni, hello.sni_len);
            return 0;
        }
        ts->is_tcp_route = ts->server->kind == PT_TLS_SERVER_TERMINATE;
        ctx = ts->server->ctx;
    }
    ts->config = c->worker->config;
    pt_config_ref(ts->config);
    if (pt_tls_init(&ts->tls, ctx, true, NULL, NULL) != 0) {
        fail(c, true, "out of memory");
        return 0;
    }
    ts->is_started = true;
    pt_tls_feed(&ts->tls, data, len);
    pt_rbuf_release(&c->in);
    return advance(c);
}

unsigned pt_tls_stream_on_read(pt_conn_t *c, size_t nread)
{
    pt_tls_stream_t *ts = c->tls;
    if (ts->is_failed)
        return 0;
    if (!ts->is_started) {
        c->in.len += nread;
        return start_engine(c);
    }
    pt_tls_feed(&ts->tls, pt_scratch()->in, nread);
    return advance(c);
}

pt_tls_t *pt_tls_stream_engine(pt_conn_t *c)
{
    return &c->tls->tls;
}

unsigned pt_tls_stream_pump(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    if (ts->is_failed || !ts->tls.is_handshake_done ||
        (SSL_pending(ts->tls.ssl) == 0 && BIO_ctrl_pending(ts->tls.in) == 0))
        return 0;
    return decrypt(c);
}

int pt_tls_stream_write(pt_conn_t *c, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
                        unsigned n, const char *suffix)
{
    pt_tls_stream_t *ts = c->tls;
    if (ts->is_failed || !ts->tls.is_handshake_done)
        return UV_ECANCELED;
    size_t suffix_len = suffix != NULL ? strlen(suffix) : 0;
    size_t total = prefix_len + suffix_len;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    pt_tls_status_t st = PT_TLS_OK;
    /* Records are at most 16 KiB: small pieces of one write are copied together into one. */
    char *coalesce = pt_scratch()->records;
    if (total <= sizeof(pt_scratch()->records)) {
        size_t at = 0;
        if (prefix_len > 0)
            memcpy(coalesce, prefix, prefix_len);
        at += prefix_len;
        for (unsigned i = 0; i < n; i++) {
            if (bufs[i].len > 0)
                memcpy(coalesce + at, bufs[i].base, bufs[i].len);
            at += bufs[i].len;
        }
        if (suffix_len > 0)
            memcpy(coalesce + at, suffix, suffix_len);
        st = pt_tls_write(&ts->tls, coalesce, total);
    } else {
        st = pt_tls_write(&ts->tls, prefix, prefix_len);
        for (unsigned i = 0; i < n && st == PT_TLS_OK; i++)
            st = pt_tls_write(&ts->tls, bufs[i].base, bufs[i].len);
        if (st == PT_TLS_OK)
            st = pt_tls_write(&ts->tls, suffix, suffix_len);
    }
    if (st != PT_TLS_OK) {
        pt_log_debug("downstream %s: TLS write failed: %s", c->peer_ip, ts->tls.error);
        PT_STAT_INC(&c->worker->stats, ssl_connection_error);
        ts->is_failed = true;
        return UV_EPROTO;
    }
    return flush(c);
}

void pt_tls_stream_close_notify(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    if (ts->is_failed || !ts->tls.is_handshake_done)
        return;
    pt_tls_shutdown(&ts->tls);
    flush(c);
}

void pt_tls_stream_on_header_timeout(pt_conn_t *c)
{
    if (c->tls->tls.is_handshake_done || c->tls->is_failed)
        return;
    PT_STAT_INC(&c->worker->stats, ssl_handshake_error);
    pt_log_debug("downstream %s: TLS handshake not finished within headerTimeout", c->peer_ip);
}

static const pt_http_redirect_t to_https = {.scheme = "https", .code = 301};
const pt_http_route_t pt_https_redirect_route = {.name = "https-redirect", .redirect = &to_https};

bool pt_tls_stream_is_https_redirect(const pt_listener_config_t *l, const pt_http_msg_t *head)
{
    if (l->n_https_redirect_hosts == 0)
        return false;
    char host[256];
    size_t len = head->authority.len;
    const char *colon = memrchr(head->authority.base, ':', len);
    if (colon != NULL && memchr(head->authority.base, ']', len) == NULL)
        len = (size_t)(colon - head->authority.base);
    if (len >= sizeof(host))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = head->authority.base[i];
        host[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    for (size_t i = 0; i < l->n_https_redirect_hosts; i++)
        if (pt_sni_match_score(l->https_redirect_hosts[i], host, len) > 0)
            return true;
    return false;
}

int pt_tls_stream_start_inbound(pt_conn_t *c, uint16_t original_port, pt_write_done_cb done)
{
    const pt_config_t *cfg = c->worker->config;
    pt_mtls_mode_t mode = pt_peer_auth_mode(&cfg->peer_auth, original_port);
    if (mode == PT_MTLS_DISABLE || cfg->mesh_server_tls == NULL)
        return 0;
    if (pt_tls_stream_start(c, done) != 0)
        return -1;
    c->tls->is_mesh = true;
    c->tls->is_permissive = mode == PT_MTLS_PERMISSIVE;
    return 0;
}

bool pt_tls_stream_may_relay(pt_conn_t *c)
{
    pt_tls_stream_t *ts = c->tls;
    if (ts->is_mesh && !ts->is_started && ts->is_permissive) {
        pt_tls_stream_free(c); /* nothing sent yet: a server-first protocol, in plaintext */
        return true;
    }
    if (ts->is_mesh && !ts->is_started && !ts->is_waiting_extended && !ts->is_failed) {
        /* STRICT and no ClientHello yet: wait for it as long as for a request head. */
        ts->is_waiting_extended = true;
        pt_conn_start_capture_timer(c, c->worker->config->proxy.header_timeout_ms);
        return false;
    }
    if (!ts->is_failed) {
        if (!ts->tls.is_handshake_done)
            PT_STAT_INC(&c->worker->stats, ssl_handshake_error);
        pt_log_debug("downstream %s: %s", c->peer_ip,
                     ts->tls.is_handshake_done
                         ? "not HTTP/1 inside mesh mTLS: TCP relaying of it is not supported"
                         : "no TLS handshake in time (PeerAuthentication STRICT)");
    }
    pt_conn_close(c, false);
    return false;
}
