/* tests/unit/tls/tls.c: the memory-BIO TLS engine (tls/tls.c) between a client and a server in
 * one process, on certificates made by tests/unit/tls/certs.h: handshakes, data both ways,
 * ALPN, name checks, client certificates and SPIFFE IDs, refused versions, close_notify. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "certs.h"
#include "tls/tls.h"

/* Moves every pending byte each way until neither side has any: a loopback "network". */
static void pump(pt_tls_t *a, pt_tls_t *b)
{
    char buf[65536];
    for (int round = 0; round < 20; round++) {
        size_t moved = 0, n;
        while ((n = pt_tls_take_output(a, buf, sizeof(buf))) > 0) {
            pt_tls_feed(b, buf, n);
            moved += n;
        }
        pt_tls_handshake(b);
        while ((n = pt_tls_take_output(b, buf, sizeof(buf))) > 0) {
            pt_tls_feed(a, buf, n);
            moved += n;
        }
        pt_tls_handshake(a);
        if (moved == 0)
            return;
    }
}

typedef struct pair {
    SSL_CTX *sctx, *cctx;
    pt_tls_t s, c;
} pair_t;

static void connect_pair(pair_t *p, const pt_tls_ctx_opts_t *so, const pt_tls_ctx_opts_t *co,
                         const char *sni, const char *verify_name)
{
    char err[300];
    p->sctx = pt_tls_server_ctx(so, err, sizeof(err));
    if (p->sctx == NULL)
        fprintf(stderr, "server ctx: %s\n", err);
    ASSERT(p->sctx != NULL);
    p->cctx = pt_tls_client_ctx(co, err, sizeof(err));
    if (p->cctx == NULL)
        fprintf(stderr, "client ctx: %s\n", err);
    ASSERT(p->cctx != NULL);
    ASSERT_EQ(pt_tls_init(&p->s, p->sctx, true, NULL, NULL), 0);
    ASSERT_EQ(pt_tls_init(&p->c, p->cctx, false, sni, verify_name), 0);
    pt_tls_handshake(&p->c); /* the ClientHello */
    pump(&p->c, &p->s);
}

static void free_pair(pair_t *p)
{
    pt_tls_dispose(&p->s);
    pt_tls_dispose(&p->c);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
}

TEST(handshake_data_both_ways_alpn_and_sni)
{
    test_ca_t ca = test_ca_new("test ca");
    char ca_crt[256], crt[256], key[256];
    test_ca_write(&ca, "ca", ca_crt);
    test_leaf_write(&ca, "server", "DNS:a.test", -1, 10, crt, key);
    pt_tls_ctx_opts_t so = {
        .cert_file = crt, .key_file = key, .alpn = "\x02h2\x08http/1.1", .alpn_len = 12};
    pt_tls_ctx_opts_t co = {.ca_file = ca_crt, .alpn = "\x08http/1.1", .alpn_len = 9};
    pair_t p;
    connect_pair(&p, &so, &co, "a.test", "a.test");
    ASSERT(p.s.is_handshake_done && p.c.is_handshake_done);
    ASSERT_STREQ(pt_tls_version(&p.c), "TLSv1.3");
    ASSERT_STREQ(pt_tls_sni(&p.s), "a.test");
    size_t n;
    const char *alpn = pt_tls_alpn(&p.s, &n);
    ASSERT(n == 8 && memcmp(alpn, "http/1.1", 8) == 0);

    /* 200 KB from the client, 1 byte back */
    static char big[200000], got[200000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    ASSERT_EQ(pt_tls_write(&p.c, big, sizeof(big)), PT_TLS_OK);
    pump(&p.c, &p.s);
    size_t have = 0;
    ssize_t r;
    while ((r = pt_tls_read(&p.s, got + have, sizeof(got) - have)) > 0)
        have += (size_t)r;
    ASSERT_EQ(r, -PT_TLS_WANT_READ);
    ASSERT_EQ(have, sizeof(big));
    ASSERT(memcmp(big, got, have) == 0);
    ASSERT_EQ(pt_tls_write(&p.s, "!", 1), PT_TLS_OK);
    pump(&p.s, &p.c);
    char one;
    ASSERT_EQ(pt_tls_read(&p.c, &one, 1), 1);
    ASSERT_EQ(one, '!');
    /* no client certificate was asked for: no peer identity */
    char id[256] = "";
    ASSERT(!pt_tls_peer_spiffe_id(&p.s, id, sizeof(id)));
    /* close_notify */
    pt_tls_shutdown(&p.c);
    pump(&p.c, &p.s);
    ASSERT_EQ(pt_tls_read(&p.s, &one, 1), -PT_TLS_CLOSED);
    free_pair(&p);
    test_ca_free(&ca);
    test_certs_remove();
}

/* What the mesh inbound chooses for what a client offers; "" for no ALPN. */
static void mesh_alpn_case(const char *crt, const char *key, const char *ca_crt, const char *offer,
                           size_t offer_len, const char *want, bool is_h2)
{
    pt_tls_ctx_opts_t so = {.cert_file = crt,
                            .key_file = key,
                            .alpn = PT_TLS_MESH_SERVER_ALPN,
                            .alpn_len = sizeof(PT_TLS_MESH_SERVER_ALPN) - 1};
    pt_tls_ctx_opts_t co = {.ca_file = ca_crt, .alpn = offer, .alpn_len = offer_len};
    pair_t p;
    connect_pair(&p, &so, &co, "a.test", "a.test");
    ASSERT(p.s.is_handshake_done && p.c.is_handshake_done);
    size_t n;
    const char *got = pt_tls_alpn(&p.c, &n);
    if (n != strlen(want) || memcmp(got, want, n) != 0)
        fprintf(stderr, "    offered %zu bytes: got \"%.*s\", want \"%s\"\n", offer_len, (int)n,
                got, want);
    ASSERT(n == strlen(want) && memcmp(got, want, n) == 0);
    ASSERT_EQ(pt_tls_alpn_is_h2(&p.s), is_h2);
    ASSERT_EQ(pt_tls_alpn_is_h2(&p.c), is_h2);
    free_pair(&p);
}

TEST(mesh_inbound_alpn_as_istio_sidecars_negotiate)
{
    test_ca_t ca = test_ca_new("test ca");
    char ca_crt[256], crt[256], key[256];
    test_ca_write(&ca, "ca", ca_crt);
    test_leaf_write(&ca, "server", "DNS:a.test", -1, 10, crt, key);
    /* Istio's outbound lists (alpn_override for HTTP/2 and HTTP/1.1, the TCP cluster's) */
    static const char h2[] = "\x08istio-h2\x05istio\x02h2";
    static const char h11[] = "\x0eistio-http/1.1\x05istio\x08http/1.1";
    static const char tcp[] = "\x13istio-peer-exchange\x05istio";
    mesh_alpn_case(crt, key, ca_crt, h2, sizeof(h2) - 1, "h2", true);
    mesh_alpn_case(crt, key, ca_crt, h11, sizeof(h11) - 1, "http/1.1", false);
    mesh_alpn_case(crt, key, ca_crt, tcp, sizeof(tcp) - 1, "istio", false);
    mesh_alpn_case(crt, key, ca_crt, "\x08istio-h2", 9, "istio-h2", true);
    mesh_alpn_case(crt, key, ca_crt, "\x08http/1.1", 9, "http/1.1", false);
    mesh_alpn_case(crt, key, ca_crt, NULL, 0, "", false);
    test_ca_free(&ca);
    test_certs_remove();
}

TEST(server_name_mismatch_and_unknown_ca_fail)
{
    test_ca_t ca = test_ca_new("test ca"), other = test_ca_new("other ca");
    char ca_crt[256], other_crt[256], crt[256], key[256];
    test_ca_write(&ca, "ca", ca_crt);
    test_ca_write(&other, "other", other_crt);
    test_leaf_write(&ca, "server", "DNS:a.test", -1, 10, crt, key);
    pt_tls_ctx_opts_t so = {.cert_file = crt, .key_file = key};
    pt_tls_ctx_opts_t co = {.ca_file = ca_crt};
    pair_t p;
    connect_pair(&p, &so, &co, "b.test", "b.test");
    ASSERT(!p.c.is_handshake_done);
    ASSERT(strstr(p.c.error, "hostname mismatch") != NULL);
    free_pair(&p);

    co.ca_file = other_crt;
    connect_pair(&p, &so, &co, "a.test", "a.test");
    ASSERT(!p.c.is_handshake_done);
    ASSERT(strstr(p.c.error, "certificate verification failed") != NULL);
    free_pair(&p);
    test_ca_free(&ca);
    test_ca_free(&other);
    test_certs_remove();
}

TEST(client_certificates_and_spiffe_ids)
{
    test_ca_t ca = test_ca_new("mesh ca"), other = test_ca_new("other ca");
    char ca_crt[256], crt[256], key[256], ccrt[256], ckey[256], xcrt[256], xkey[256];
    char ecrt[256], ekey[256];
    test_ca_write(&ca, "ca", ca_crt);
    test_leaf_write(&ca, "server", "URI:spiffe://cluster.local/ns/b/sa/server", -1, 10, crt, key);
    test_leaf_write(&ca, "client", "URI:spiffe://cluster.local/ns/a/sa/sleep", -1, 10, ccrt, ckey);
    test_leaf_write(&other, "stranger", "URI:spiffe://cluster.local/ns/a/sa/sleep", -1, 10, xcrt,
                    xkey);
    test_leaf_write(&ca, "expired", "URI:spiffe://cluster.local/ns/a/sa/sleep", -10, -1, ecrt,
                    ekey);
    pt_tls_ctx_opts_t so = {
        .cert_file = crt, .key_file = key, .ca_file = ca_crt, .require_peer_cert = true};
    /* a valid client: its SPIFFE ID is the peer identity, and the server's is checkable too */
    pt_tls_ctx_opts_t co = {.cert_file = ccrt, .key_file = ckey, .ca_file = ca_crt};
    pair_t p;
    connect_pair(&p, &so, &co, NULL, NULL);
    ASSERT(p.s.is_handshake_done && p.c.is_handshake_done);
    char id[256];
    ASSERT(pt_tls_peer_spiffe_id(&p.s, id, sizeof(id)));
    ASSERT_STREQ(id, "spiffe://cluster.local/ns/a/sa/sleep");
    ASSERT(pt_tls_peer_spiffe_id(&p.c, id, sizeof(id)));
    ASSERT_STREQ(id, "spiffe://cluster.local/ns/b/sa/server");
    free_pair(&p);
    /* no certificate, another CA's, an expired one: refused by the server */
    const char *bad[][2] = {{NULL, NULL}, {xcrt, xkey}, {ecrt, ekey}};
    for (int i = 0; i < 3; i++) {
        co.cert_file = bad[i][0];
        co.key_file = bad[i][1];
        connect_pair(&p, &so, &co, NULL, NULL);
        char b;
        ASSERT(pt_tls_read(&p.s, &b, 1) == -PT_TLS_ERROR || !p.s.is_handshake_done);
        ASSERT(!pt_tls_peer_spiffe_id(&p.s, id, sizeof(id)));
        free_pair(&p);
    }
    test_ca_free(&ca);
    test_ca_free(&other);
    test_certs_remove();
}

TEST(old_versions_and_weak_settings_refused)
{
    test_ca_t ca = test_ca_new("test ca");
    char crt[256], key[256], err[300];
    test_leaf_write(&ca, "server", "DNS:a.test", -1, 10, crt, key);
    pt_tls_ctx_opts_t so = {.cert_file = crt, .key_file = key};
    /* Petrel refuses to build a context below TLS 1.2 */
    pt_tls_ctx_opts_t weak = so;
    weak.min_version = TLS1_1_VERSION;
    ASSERT(pt_tls_server_ctx(&weak, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "below 1.2") != NULL);
    /* a TLS 1.1 client (plain OpenSSL, downgraded on purpose) fails against Petrel's server */
    char e2[300];
    SSL_CTX *sctx = pt_tls_server_ctx(&so, e2, sizeof(e2));
    ASSERT(sctx != NULL);
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(old, 0);
    SSL_CTX_set_min_proto_version(old, TLS1_1_VERSION);
    SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
    pt_tls_t s, c;
    ASSERT_EQ(pt_tls_init(&s, sctx, true, NULL, NULL), 0);
    ASSERT_EQ(pt_tls_init(&c, old, false, NULL, NULL), 0);
    pt_tls_handshake(&c);
    pump(&c, &s);
    ASSERT(!s.is_handshake_done && !c.is_handshake_done);
    ASSERT(s.error[0] != '\0');
    pt_tls_dispose(&s);
    pt_tls_dispose(&c);
    SSL_CTX_free(sctx);
    SSL_CTX_free(old);
    /* missing and mismatched files name the file */
    pt_tls_ctx_opts_t missing = {.cert_file = "/nonexistent.crt", .key_file = key};
    ASSERT(pt_tls_server_ctx(&missing, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "/nonexistent.crt: cannot read the certificate chain") != NULL);
    char crt2[256], key2[256];
    test_leaf_write(&ca, "other", "DNS:b.test", -1, 10, crt2, key2);
    pt_tls_ctx_opts_t mismatch = {.cert_file = crt, .key_file = key2};
    ASSERT(pt_tls_server_ctx(&mismatch, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "does not match") != NULL || strstr(err, "cannot read the private key"));
    test_ca_free(&ca);
    test_certs_remove();
}

TEST(spiffe_ids_parse_strictly)
{
    pt_spiffe_id_t s;
    const char *ok = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
    ASSERT(pt_spiffe_parse(ok, strlen(ok), &s));
    ASSERT(s.trust_domain_len == 13 && memcmp(s.trust_domain, "cluster.local", 13) == 0);
    ASSERT(s.ns_len == 7 && memcmp(s.ns, "default", 7) == 0);
    ASSERT(s.sa_len == 20 && memcmp(s.sa, "bookinfo-productpage", 20) == 0);
    const char *bad[] = {"spiffe://cluster.local/ns/default/sa/",
                         "spiffe://cluster.local/ns//sa/x",
                         "spiffe:///ns/a/sa/b",
                         "spiffe://Cluster.local/ns/a/sa/b",
                         "spiffe://td/ns/a/sa/b/extra",
                         "http://td/ns/a/sa/b",
                         "spiffe://td/sa/b/ns/a",
                         "spiffe://td/ns/a b/sa/c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT(!pt_spiffe_parse(bad[i], strlen(bad[i]), &s));
}
