/* tls/tls.c
 * The TLS engine behind tls.h: OpenSSL with two memory BIOs per connection. Reads from the
 * input BIO return "retry" when it is empty (BIO_set_mem_eof_return), so OpenSSL asks for more
 * instead of seeing an end of file; the output BIO grows without bound, so a write never has
 * to wait, and the owner drains it into the socket with its own backpressure. */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TLS 1.2: ECDHE key exchange and AEAD ciphers only. TLS 1.3 suites are all of that kind. */
#define PT_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* The first queued OpenSSL error as text, and the queue emptied. */
static void take_error(char *out, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[120] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(out, cap, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

/* The server's ALPN list, kept with its context (freed with it through ex_data). */
static int alpn_index = -1;

static void free_alpn(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

typedef struct alpn_list {
    size_t len;
    unsigned char wire[];
} alpn_list_t;

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned int in_len, void *arg)
{
    const alpn_list_t *ours = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
    unsigned char *sel;
    if (ours == NULL || SSL_select_next_proto(&sel, out_len, ours->wire, (unsigned)ours->len, in,
                                              in_len) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: carry on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* What server and client contexts share: versions, suites, options, chain, trust anchors. */
static SSL_CTX *new_ctx(const SSL_METHOD *method, const pt_tls_ctx_opts_t *o, char *err,
                        size_t err_cap)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        take_error(err, err_cap, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    uint16_t min = o->min_version ? o->min_version : TLS1_2_VERSION;
    if (min < TLS1_2_VERSION) {
        snprintf(err, err_cap, "TLS versions below 1.2 are not allowed");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, min) ||
        (o->max_version && !SSL_CTX_set_max_proto_version(ctx, o->max_version))) {
        take_error(err, err_cap, "invalid TLS version range");
        goto fail;
    }
    if (!SSL_CTX_set_cipher_list(ctx, o->ciphers ? o->ciphers : PT_TLS12_CIPHERS)) {
        take_error(err, err_cap, "no usable cipher suite in the list");
        goto fail;
    }
    if (o->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            char what[300];
            snprintf(what, sizeof(what), "%s: cannot read the certificate chain", o->cert_file);
            take_error(err, err_cap, what);
            goto fail;
        }
        if (o->key_file == NULL ||
            SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            char what[300];
            snprintf(what, sizeof(what), "%s: cannot read the private key",
                     o->key_file ? o->key_file : "(none given)");
            take_error(err, err_cap, what);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            char what[300];
            snprintf(what, sizeof(what), "%s: the key does not match the certificate %s",
                     o->key_file, o->cert_file);
            take_error(err, err_cap, what);
            goto fail;
        }
    }
    if (o->ca_file != NULL && SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
        char what[300];
        snprintf(what, sizeof(what), "%s: cannot read the trust anchors", o->ca_file);
        take_error(err, err_cap, what);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *pt_tls_server_ctx(const pt_tls_ctx_opts_t *o, char *err, size_t err_cap)
{
    if (o->cert_file == NULL) {
        snprintf(err, err_cap, "a TLS server needs a certificate and a key");
        return NULL;
    }
    if (pt_openssl_load(err, err_cap) != 0) /* the first context loads OpenSSL */
        return NULL;
    SSL_CTX *ctx = new_ctx(TLS_server_method(), o, err, err_cap);
    if (ctx == NULL)
        return NULL;
    /* Resumed sessions must stay tied to this context (required once clients are verified). */
    static const unsigned char sid_ctx[] = "petrel";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (o->ca_file != NULL) {
        int mode = SSL_VERIFY_PEER | (o->require_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
        SSL_CTX_set_verify(ctx, mode, NULL);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (o->alpn != NULL && o->alpn_len > 0) {
        if (alpn_index < 0) /* first use, on the main thread (contexts are built there) */
            alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_alpn);
        alpn_list_t *l = malloc(sizeof(*l) + o->alpn_len);
        if (l == NULL || alpn_index < 0 || !SSL_CTX_set_ex_data(ctx, alpn_index, l)) {
            free(l);
            snprintf(err, err_cap, "out of memory (ALPN)");
            SSL_CTX_free(ctx);
            return NULL;
        }
        l->len = o->alpn_len;
        memcpy(l->wire, o->alpn, o->alpn_len);
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    }
    return ctx;
}

SSL_CTX *pt_tls_client_ctx(const pt_tls_ctx_opts_t *o, char *err, size_t err_cap)
{
    if (pt_openssl_load(err, err_cap) != 0) /* the first context loads OpenSSL */
        return NULL;
    SSL_CTX *ctx = new_ctx(TLS_client_method(), o, err, err_cap);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_verify(ctx, o->ca_file != NULL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (o->alpn != NULL && o->alpn_len > 0 &&
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)o->alpn, (unsigned)o->alpn_len) != 0) {
        snprintf(err, err_cap, "invalid ALPN list");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int pt_tls_init(pt_tls_t *t, SSL_CTX *ctx, bool is_server, const char *sni, const char *verify_name)
{
    memset(t, 0, sizeof(*t));
    t->is_server = is_server;
    t->ssl = SSL_new(ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        memset(t, 0, sizeof(*t));
        ERR_clear_error();
        return -1;
    }
    BIO_set_mem_eof_return(t->in, -1); /* empty: "retry", not end of file */
    SSL_set_bio(t->ssl, t->in, t->out);
    if (is_server) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (sni != NULL && sni[0] != '\0')
        SSL_set_tlsext_host_name(t->ssl, sni);
    if (verify_name != NULL && verify_name[0] != '\0') {
        unsigned char ip[16];
        X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
        if (inet_pton(AF_INET, verify_name, ip) == 1 || inet_pton(AF_INET6, verify_name, ip) == 1)
            X509_VERIFY_PARAM_set1_ip_asc(p, verify_name);
        else
            SSL_set1_host(t->ssl, verify_name);
    }
    return 0;
}

void pt_tls_dispose(pt_tls_t *t)
{
    if (t->ssl != NULL)
        SSL_free(t->ssl); /* frees both BIOs */
    memset(t, 0, sizeof(*t));
}

void pt_tls_feed(pt_tls_t *t, const void *data, size_t len)
{
    if (len > 0)
        BIO_write(t->in, data, (int)len);
}

/* Turns an OpenSSL result into a status, keeping the first error's text. */
static pt_tls_status_t status_of(pt_tls_t *t, int ret, const char *what)
{
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: ERR_clear_error(); return PT_TLS_WANT_READ;
    case SSL_ERROR_ZERO_RETURN: ERR_clear_error(); return PT_TLS_CLOSED;
    default:
        if (t->error[0] == '\0') {
            long v = SSL_get_verify_result(t->ssl);
            if (v != X509_V_OK) {
                snprintf(t->error, sizeof(t->error), "%s: certificate verification failed: %s",
                         what, X509_verify_cert_error_string(v));
                ERR_clear_error();
            } else {
                take_error(t->error, sizeof(t->error), what);
            }
        }
        return PT_TLS_ERROR;
    }
}

pt_tls_status_t pt_tls_handshake(pt_tls_t *t)
{
    if (t->is_handshake_done)
        return PT_TLS_OK;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->is_handshake_done = true;
        return PT_TLS_OK;
    }
    return status_of(t, r, "TLS handshake");
}

ssize_t pt_tls_read(pt_tls_t *t, void *buf, size_t cap)
{
    if (!t->is_handshake_done) {
        pt_tls_status_t s = pt_tls_handshake(t);
        if (s != PT_TLS_OK)
            return -(ssize_t)s;
    }
    size_t n = 0;
    int r = SSL_read_ex(t->ssl, buf, cap, &n);
    if (r == 1)
        return (ssize_t)n;
    return -(ssize_t)status_of(t, r, "TLS read");
}

pt_tls_status_t pt_tls_write(pt_tls_t *t, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        size_t n = 0;
        int r = SSL_write_ex(t->ssl, p, len, &n);
        if (r != 1) /* all or nothing (no partial writes): WANT_READ before the handshake */
            return status_of(t, r, "TLS write");
        p += n;
        len -= n;
    }
    return PT_TLS_OK;
}

void pt_tls_shutdown(pt_tls_t *t)
{
    if (t->is_handshake_done)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t pt_tls_output_len(const pt_tls_t *t)
{
    return BIO_ctrl_pending(t->out);
}

size_t pt_tls_take_output(pt_tls_t *t, void *buf, size_t cap)
{
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    int n = BIO_read(t->out, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

const char *pt_tls_alpn(const pt_tls_t *t, size_t *len)
{
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    *len = n;
    return p != NULL ? (const char *)p : "";
}

bool pt_tls_alpn_is_h2(const pt_tls_t *t)
{
    size_t len;
    const char *p = pt_tls_alpn(t, &len);
    return (len == 2 && memcmp(p, "h2", 2) == 0) || (len == 8 && memcmp(p, "istio-h2", 8) == 0);
}

const char *pt_tls_version(const pt_tls_t *t)
{
    return SSL_get_version(t->ssl);
}

const char *pt_tls_sni(const pt_tls_t *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

bool pt_tls_peer_spiffe_id(const pt_tls_t *t, char *out, size_t cap)
{
    /* Only a certificate that was asked for and verified names the peer. */
    if (!(SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) ||
        SSL_get_verify_result(t->ssl) != X509_V_OK)
        return false;
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert == NULL)
        return false;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return false;
    int found = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const char *s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        size_t n = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (n < 9 || strncmp(s, "spiffe://", 9) != 0)
            continue;
        if (++found == 1 && n < cap && memchr(s, '\0', n) == NULL) {
            memcpy(out, s, n);
            out[n] = '\0';
        }
    }
    GENERAL_NAMES_free(names);
    return found == 1 && out[0] != '\0';
}

static bool is_id_char(char c, bool is_domain)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           (!is_domain && c >= 'A' && c <= 'Z');
}

/* The next path segment of s[*i..len) made of id characters, up to '/' or the end. */
static bool segment(const char *s, size_t len, size_t *i, bool is_domain, const char **out,
                    size_t *out_len)
{
    size_t start = *i;
    while (*i < len && s[*i] != '/') {
        if (!is_id_char(s[*i], is_domain))
            return false;
        (*i)++;
    }
    *out = s + start;
    *out_len = *i - start;
    return *out_len > 0;
}

static bool literal(const char *s, size_t len, size_t *i, const char *lit)
{
    size_t n = strlen(lit);
    if (len - *i < n || memcmp(s + *i, lit, n) != 0)
        return false;
    *i += n;
    return true;
}

const char *pt_tls_ctx_certificate_problem(SSL_CTX *ctx)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (cert == NULL)
        return "no certificate";
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0)
        return "certificate not yet valid";
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
        return "certificate expired";
    return NULL;
}

bool pt_spiffe_parse(const char *id, size_t len, pt_spiffe_id_t *out)
{
    size_t i = 0;
    return literal(id, len, &i, "spiffe://") &&
           segment(id, len, &i, true, &out->trust_domain, &out->trust_domain_len) &&
           literal(id, len, &i, "/ns/") && segment(id, len, &i, false, &out->ns, &out->ns_len) &&
           literal(id, len, &i, "/sa/") && segment(id, len, &i, false, &out->sa, &out->sa_len) &&
           i == len;
}
