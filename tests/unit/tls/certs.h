/* tests/unit/tls/certs.h
 * Test certificates made in memory with OpenSSL and written as PEM files into a fresh
 * directory: a CA, and leaves it signs with DNS / URI (SPIFFE) names and a validity window.
 * For unit tests only. */
#ifndef PT_TEST_CERTS_H
#define PT_TEST_CERTS_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct test_ca {
    EVP_PKEY *key;
    X509 *cert;
} test_ca_t;

static char test_cert_dir[64];

/* The directory the PEM files go to, made on first use. */
__attribute__((unused)) static const char *test_certs_dir(void)
{
    if (test_cert_dir[0] == '\0') {
        strcpy(test_cert_dir, "/tmp/petrel-certs-XXXXXX");
        if (mkdtemp(test_cert_dir) == NULL)
            abort();
    }
    return test_cert_dir;
}

/* Removes the directory and every file written into it. */
__attribute__((unused)) static void test_certs_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", test_certs_dir());
    if (system(cmd) != 0)
        abort();
}

static void add_ext(X509 *issuer, X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL || !X509_add_ext(cert, ext, -1))
        abort();
    X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, valid from now + from_days to now + to_days, signed by ca
 * (NULL: self-signed, a CA). san: "DNS:a.test,URI:spiffe://..." or NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const test_ca_t *ca, const char *san,
                       long from_days, long to_days)
{
    X509 *c = X509_new();
    X509_set_version(c, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(c), to_days * 86400);
    X509_set_pubkey(c, key);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, ca ? X509_get_subject_name(ca->cert) : name);
    X509 *issuer = ca ? ca->cert : c;
    if (ca == NULL) {
        add_ext(issuer, c, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(issuer, c, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(issuer, c, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(issuer, c, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    if (san != NULL)
        add_ext(issuer, c, NID_subject_alt_name, san);
    if (!X509_sign(c, ca ? ca->key : key, EVP_sha256()))
        abort();
    return c;
}

__attribute__((unused)) static test_ca_t test_ca_new(const char *cn)
{
    test_ca_t ca;
    ca.key = EVP_EC_gen("P-256");
    ca.cert = make_cert(ca.key, cn, NULL, NULL, -1, 30);
    return ca;
}

__attribute__((unused)) static void test_ca_free(test_ca_t *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    if (cert != NULL)
        PEM_write_X509(f, cert);
    if (key != NULL)
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

/* Writes <dir>/<name>.crt (and .key for a leaf): the PEM paths, in static buffers of the
 * caller (crt and key, 256 bytes each). */
__attribute__((unused)) static void test_ca_write(const test_ca_t *ca, const char *name, char *crt)
{
    snprintf(crt, 256, "%s/%s.crt", test_certs_dir(), name);
    write_pem(crt, ca->cert, NULL);
}

__attribute__((unused)) static void test_leaf_write(const test_ca_t *ca, const char *name,
                                                    const char *san, long from_days, long to_days,
                                                    char *crt, char *key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *c = make_cert(k, name, ca, san, from_days, to_days);
    snprintf(crt, 256, "%s/%s.crt", test_certs_dir(), name);
    snprintf(key, 256, "%s/%s.key", test_certs_dir(), name);
    write_pem(crt, c, NULL);
    write_pem(key, NULL, k);
    X509_free(c);
    EVP_PKEY_free(k);
}

#endif
