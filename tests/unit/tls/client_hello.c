/* tests/unit/tls/client_hello.c: the ClientHello reader, on hellos made by OpenSSL itself
 * (through memory BIOs) and on hand-built ones for the malformed cases. */
#include "test.h"

#include <openssl/ssl.h>
#include <stdint.h>
#include <string.h>

#include "tls/client_hello.h"

static uint8_t scratch[PT_HELLO_MAX_BYTES];

/* The first flight of an OpenSSL client: its ClientHello records. */
static size_t openssl_hello(const char *sni, const char *alpn_wire, size_t alpn_len,
                            int max_version, uint8_t *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ASSERT(ctx != NULL);
    if (max_version != 0)
        ASSERT(SSL_CTX_set_max_proto_version(ctx, max_version) == 1);
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rbio, wbio);
    if (sni != NULL)
        ASSERT(SSL_set_tlsext_host_name(ssl, sni) == 1);
    if (alpn_wire != NULL)
        ASSERT(SSL_set_alpn_protos(ssl, (const unsigned char *)alpn_wire, (unsigned)alpn_len) == 0);
    ASSERT(SSL_connect(ssl) == -1); /* wants the server's answer */
    int n = BIO_read(wbio, out, (int)cap);
    ASSERT(n > 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return (size_t)n;
}

/* Re-wraps the handshake message of a one-record hello into records of the given sizes (the
 * last one, or a size 0, takes the rest). Returns the new length. */
static size_t split_records(const uint8_t *in, size_t in_len, const size_t *sizes, size_t n_sizes,
                            uint8_t *out)
{
    const uint8_t *msg = in + 5;
    size_t left = in_len - 5, o = 0;
    for (size_t i = 0; left > 0; i++) {
        size_t n = i < n_sizes && sizes[i] != 0 && sizes[i] < left ? sizes[i] : left;
        out[o++] = 0x16, out[o++] = 0x03, out[o++] = 0x01;
        out[o++] = (uint8_t)(n >> 8), out[o++] = (uint8_t)n;
        memcpy(out + o, msg, n);
        o += n, msg += n, left -= n;
    }
    return o;
}

TEST(openssl_tls13_hello_with_sni_and_alpn)
{
    uint8_t buf[4096];
    size_t n = openssl_hello("API.Example.com", "\x02h2\x08http/1.1", 12, 0, buf, sizeof(buf));
    pt_client_hello_t h;
    ASSERT_EQ(pt_client_hello_parse(buf, n, scratch, &h), PT_HELLO_OK);
    ASSERT_STREQ(h.sni, "api.example.com");
    ASSERT_EQ(h.sni_len, 15);
    ASSERT_EQ(h.version, 0x0304);
    ASSERT_EQ(h.n_alpn, 2);
    ASSERT(h.alpn_len[0] == 2 && memcmp(h.alpn[0], "h2", 2) == 0);
    ASSERT(h.alpn_len[1] == 8 && memcmp(h.alpn[1], "http/1.1", 8) == 0);
}

TEST(openssl_tls12_hello_and_no_sni)
{
    uint8_t buf[4096];
    size_t n = openssl_hello("reviews.default.svc.cluster.local", NULL, 0, TLS1_2_VERSION, buf,
                             sizeof(buf));
    pt_client_hello_t h;
    ASSERT_EQ(pt_client_hello_parse(buf, n, scratch, &h), PT_HELLO_OK);
    ASSERT_STREQ(h.sni, "reviews.default.svc.cluster.local");
    ASSERT_EQ(h.version, 0x0303);
    ASSERT_EQ(h.n_alpn, 0);

    n = openssl_hello(NULL, NULL, 0, 0, buf, sizeof(buf));
    ASSERT_EQ(pt_client_hello_parse(buf, n, scratch, &h), PT_HELLO_OK);
    ASSERT_EQ(h.sni_len, 0);
    ASSERT_STREQ(h.sni, "");
}

TEST(every_prefix_needs_more)
{
    uint8_t buf[4096];
    size_t n = openssl_hello("a.example", NULL, 0, 0, buf, sizeof(buf));
    pt_client_hello_t h;
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(pt_client_hello_parse(buf, i, scratch, &h), PT_HELLO_NEED_MORE);
    ASSERT_EQ(pt_client_hello_parse(buf, n, scratch, &h), PT_HELLO_OK);
}

TEST(hello_split_over_records_is_reassembled)
{
    uint8_t buf[4096], split[8192];
    size_t n = openssl_hello("split.example", "\x02h2", 3, 0, buf, sizeof(buf));
    static const size_t layouts[][3] = {{1, 2, 0}, {100, 0, 0}, {3, 50, 7}};
    for (size_t l = 0; l < 3; l++) {
        size_t m = split_records(buf, n, layouts[l], 3, split);
        pt_client_hello_t h;
        ASSERT_EQ(pt_client_hello_parse(split, m, scratch, &h), PT_HELLO_OK);
        ASSERT_STREQ(h.sni, "split.example");
        ASSERT_EQ(h.n_alpn, 1);
        for (size_t i = 0; i < m; i++)
            ASSERT_EQ(pt_client_hello_parse(split, i, scratch, &h), PT_HELLO_NEED_MORE);
    }
}

TEST(plaintext_is_not_tls)
{
    pt_client_hello_t h;
    ASSERT_EQ(pt_client_hello_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, scratch, &h),
              PT_HELLO_NOT_TLS);
    ASSERT_EQ(pt_client_hello_parse((const uint8_t *)"SSH-2.0-OpenSSH", 15, scratch, &h),
              PT_HELLO_NOT_TLS);
    ASSERT_EQ(pt_client_hello_parse((const uint8_t *)"\x16\x01", 2, scratch, &h), PT_HELLO_NOT_TLS);
    ASSERT_EQ(pt_client_hello_parse((const uint8_t *)"\x16", 1, scratch, &h), PT_HELLO_NEED_MORE);
}

/* A hand-built hello: TLS 1.2 legacy version, one cipher suite, null compression, and the
 * given extensions block (NULL: no extensions at all). */
static size_t build(const uint8_t *exts, size_t exts_len, bool with_exts, uint8_t *out)
{
    uint8_t body[2048];
    size_t b = 0;
    body[b++] = 3, body[b++] = 3;
    memset(body + b, 7, 32), b += 32;
    body[b++] = 0;                                                 /* session id */
    body[b++] = 0, body[b++] = 2, body[b++] = 0x13, body[b++] = 1; /* one suite */
    body[b++] = 1, body[b++] = 0;                                  /* compression: null */
    if (with_exts) {
        body[b++] = (uint8_t)(exts_len >> 8), body[b++] = (uint8_t)exts_len;
        memcpy(body + b, exts, exts_len), b += exts_len;
    }
    size_t o = 0, hs = b + 4;
    out[o++] = 0x16, out[o++] = 3, out[o++] = 1, out[o++] = (uint8_t)(hs >> 8),
    out[o++] = (uint8_t)hs;
    out[o++] = 1, out[o++] = 0, out[o++] = (uint8_t)(b >> 8), out[o++] = (uint8_t)b;
    memcpy(out + o, body, b);
    return o + b;
}

static pt_hello_status_t parse_built(const char *exts, size_t len, pt_client_hello_t *h)
{
    uint8_t rec[4096];
    size_t n = build((const uint8_t *)exts, len, true, rec);
    return pt_client_hello_parse(rec, n, scratch, h);
}

#define SNI_EXT(name_len_byte, list_len_byte, ext_len_byte)                                        \
    "\x00\x00\x00" ext_len_byte "\x00" list_len_byte "\x00\x00" name_len_byte

TEST(hand_built_hellos)
{
    pt_client_hello_t h;
    uint8_t rec[4096];
    size_t n = build(NULL, 0, false, rec);
    ASSERT_EQ(pt_client_hello_parse(rec, n, scratch, &h), PT_HELLO_OK); /* no extensions */
    ASSERT_EQ(h.version, 0x0303);

    ASSERT_EQ(parse_built(SNI_EXT("\x03", "\x06", "\x08") "a.b", 12, &h), PT_HELLO_OK);
    ASSERT_STREQ(h.sni, "a.b");
    /* trailing dot, bad character, empty name */
    ASSERT_EQ(parse_built(SNI_EXT("\x02", "\x05", "\x07") "a.", 11, &h), PT_HELLO_INVALID);
    ASSERT_EQ(parse_built(SNI_EXT("\x03", "\x06", "\x08") "a/b", 12, &h), PT_HELLO_INVALID);
    ASSERT_EQ(parse_built(SNI_EXT("\x00", "\x03", "\x05"), 9, &h), PT_HELLO_INVALID);
    /* list length disagreeing with the extension length */
    ASSERT_EQ(parse_built(SNI_EXT("\x03", "\x07", "\x08") "a.b", 12, &h), PT_HELLO_INVALID);
    /* the same extension twice */
    ASSERT_EQ(parse_built(SNI_EXT("\x01", "\x04", "\x06") "a" SNI_EXT("\x01", "\x04", "\x06") "b",
                          20, &h),
              PT_HELLO_INVALID);
    /* an extension running past the block */
    ASSERT_EQ(parse_built("\x00\x17\x00\x05\x00", 5, &h), PT_HELLO_INVALID);
    /* an unknown extension is skipped; supported_versions gives the version (GREASE skipped) */
    ASSERT_EQ(parse_built("\xfe\x01\x00\x01\x00"
                          "\x00\x2b\x00\x05\x04\x3a\x3a\x03\x04",
                          14, &h),
              PT_HELLO_OK);
    ASSERT_EQ(h.version, 0x0304);
    /* empty ALPN name */
    ASSERT_EQ(parse_built("\x00\x10\x00\x03\x00\x01\x00", 7, &h), PT_HELLO_INVALID);
}

TEST(malformed_records)
{
    pt_client_hello_t h;
    uint8_t rec[4096];
    size_t n = build(NULL, 0, false, rec);
    uint8_t bad[4096];

    memcpy(bad, rec, n);
    bad[5] = 2; /* a ServerHello */
    ASSERT_EQ(pt_client_hello_parse(bad, n, scratch, &h), PT_HELLO_INVALID);

    memcpy(bad, rec, n);
    bad[3] = 0, bad[4] = 0; /* an empty record */
    ASSERT_EQ(pt_client_hello_parse(bad, n, scratch, &h), PT_HELLO_INVALID);

    memcpy(bad, rec, n);
    bad[3] = 0x40, bad[4] = 1; /* longer than 2^14 */
    ASSERT_EQ(pt_client_hello_parse(bad, n, scratch, &h), PT_HELLO_INVALID);

    /* bytes after the hello inside its record */
    memcpy(bad, rec, n);
    bad[n] = 0;
    bad[4] = (uint8_t)(bad[4] + 1);
    ASSERT_EQ(pt_client_hello_parse(bad, n + 1, scratch, &h), PT_HELLO_INVALID);

    /* a second record of another content type (an alert) in the middle of the hello */
    static const size_t two[] = {10};
    size_t m = split_records(rec, n, two, 1, bad);
    bad[15] = 21;
    ASSERT_EQ(pt_client_hello_parse(bad, m, scratch, &h), PT_HELLO_INVALID);

    /* a session id longer than 32 bytes */
    memcpy(bad, rec, n);
    bad[5 + 4 + 34] = 33;
    ASSERT_EQ(pt_client_hello_parse(bad, n, scratch, &h), PT_HELLO_INVALID);
}
