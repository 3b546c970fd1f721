/* tests/unit/config/identity.c: Proxy spec.identity, read into the snapshot's mesh TLS
 * contexts (config/tls_contexts.c), and its errors. */
#include "test.h"

#include <stdlib.h>

#include "config/load_helpers.h"
#include "tls/certs.h"

static char *proxy_yaml(const char *chain, const char *key, const char *roots, const char *extra)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "apiVersion: petrel.io/v1alpha1\n"
             "kind: Proxy\n"
             "metadata: {name: p}\n"
             "spec:\n"
             "  identity:\n"
             "    certificateChain: %s\n"
             "    privateKey: %s\n"
             "    rootCertificates: %s\n"
             "%s",
             chain, key, roots, extra);
    return buf;
}

TEST(identity_builds_mesh_contexts_and_lists_its_files)
{
    test_ca_t ca = test_ca_new("mesh");
    char roots[256], crt[256], key[256];
    test_ca_write(&ca, "roots", roots);
    test_leaf_write(&ca, "me", "URI:spiffe://example.org/ns/default/sa/me", -1, 10, crt, key);
    pt_config_errors_t e = {0};
    pt_config_t *c =
        load_str("p.yaml", proxy_yaml(crt, key, roots, "    trustDomain: example.org\n"), &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT(c->mesh_server_tls != NULL && c->mesh_client_tls != NULL);
    ASSERT_STREQ(c->proxy.identity.trust_domain, "example.org");
    ASSERT_EQ(c->n_tls_files, 3);
    ASSERT_STREQ(c->tls_files[0], crt);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    /* without identity: no contexts, nothing to watch, the default trust domain */
    c = load_str("p.yaml",
                 "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                 "spec: {}\n",
                 &e);
    ASSERT(c != NULL && c->mesh_server_tls == NULL && c->n_tls_files == 0);
    ASSERT_STREQ(c->proxy.identity.trust_domain, "cluster.local");
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
    test_ca_free(&ca);
    test_certs_remove();
}

TEST(identity_errors_name_the_field_and_file)
{
    test_ca_t ca = test_ca_new("mesh"), other = test_ca_new("other");
    char roots[256], crt[256], key[256], ocrt[256], okey[256];
    test_ca_write(&ca, "roots", roots);
    test_leaf_write(&ca, "me", "URI:spiffe://cluster.local/ns/default/sa/me", -1, 10, crt, key);
    test_leaf_write(&other, "them", "DNS:x", -1, 10, ocrt, okey);
    pt_config_errors_t e = {0};
    ASSERT(load_str("p.yaml", proxy_yaml("/nonexistent/cert.pem", key, roots, ""), &e) == NULL);
    ASSERT(has_error_prefix(&e, "p.yaml:5:3: spec.identity: /nonexistent/cert.pem: cannot read "
                                "the certificate chain"));
    pt_config_errors_dispose(&e);
    ASSERT(load_str("p.yaml", proxy_yaml(crt, okey, roots, ""), &e) == NULL);
    ASSERT(has_error_prefix(&e, "p.yaml:5:3: spec.identity: "));
    pt_config_errors_dispose(&e);
    ASSERT(load_str("p.yaml",
                    "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                    "spec:\n  identity: {certificateChain: a.pem, trustDomain: Bad/Domain}\n",
                    &e) == NULL);
    ASSERT(has_error(&e, "p.yaml:5:3: spec.identity.privateKey: required (the workload's mTLS "
                         "identity is three files)"));
    ASSERT(has_error_prefix(&e, "p.yaml:5:39: spec.identity.trustDomain: must be lower-case"));
    pt_config_errors_dispose(&e);
    test_ca_free(&ca);
    test_ca_free(&other);
    test_certs_remove();
}
