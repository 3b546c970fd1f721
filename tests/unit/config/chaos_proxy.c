/* tests/unit/config/chaos_proxy.c: a ChaosProxy's spec.tls, read with a Gateway server's fields
 * (config/kind_gateway.c) into a server context built as a Gateway's (config/tls_contexts.c),
 * its files watched, and the errors that name the file, line, column and field. */
#include "test.h"

#include <stdlib.h>

#include "config/load_helpers.h"
#include "tls/certs.h"

static char *chaos_yaml(const char *tls)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "apiVersion: petrel.io/v1alpha1\n"
             "kind: ChaosProxy\n"
             "metadata: {name: shop-tls}\n"
             "spec:\n"
             "  upstream: 127.0.0.1:8080\n"
             "  toxics:\n"
             "  - {type: latency, attributes: {latency: 100}}\n"
             "  tls:\n"
             "%s",
             tls);
    return buf;
}

TEST(chaos_tls_builds_a_server_context_and_lists_its_files)
{
    test_ca_t ca = test_ca_new("chaos");
    char crt[256], key[256], tls[700];
    test_leaf_write(&ca, "shop", "DNS:shop.example.com", -1, 10, crt, key);
    snprintf(tls, sizeof(tls), "    mode: SIMPLE\n    serverCertificate: %s\n    privateKey: %s\n",
             crt, key);
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("c.yaml", chaos_yaml(tls), &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->n_chaos_proxies, 1);
    ASSERT(c->chaos_proxies[0].tls_ctx != NULL);
    ASSERT_EQ(c->chaos_proxies[0].n_toxics, 1);
    ASSERT_EQ(c->n_tls_files, 2); /* watched as a Gateway's */
    ASSERT_STREQ(c->tls_files[0], crt);
    ASSERT_STREQ(c->tls_files[1], key);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    /* Without tls: plaintext, nothing to watch. */
    c = load_str("c.yaml",
                 "apiVersion: petrel.io/v1alpha1\nkind: ChaosProxy\nmetadata: {name: db}\n"
                 "spec: {upstream: 127.0.0.1:5432}\n",
                 &e);
    ASSERT(c != NULL && c->n_chaos_proxies == 1 && c->chaos_proxies[0].tls_ctx == NULL);
    ASSERT_EQ(c->n_tls_files, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
    test_ca_free(&ca);
    test_certs_remove();
}

TEST(chaos_tls_errors_name_the_field)
{
    test_ca_t ca = test_ca_new("chaos");
    char crt[256], key[256], tls[700];
    test_leaf_write(&ca, "shop", "DNS:shop.example.com", -1, 10, crt, key);
    pt_config_errors_t e = {0};

    snprintf(tls, sizeof(tls), "    serverCertificate: %s\n", crt);
    ASSERT(load_str("c.yaml", chaos_yaml(tls), &e) == NULL);
    ASSERT(has_error(&e, "c.yaml:8:3: spec.tls: mode SIMPLE needs credentialName, or "
                         "serverCertificate and privateKey"));
    pt_config_errors_dispose(&e);

    snprintf(tls, sizeof(tls), "    mode: MUTUAL\n    serverCertificate: %s\n    privateKey: %s\n",
             crt, key);
    ASSERT(load_str("c.yaml", chaos_yaml(tls), &e) == NULL);
    ASSERT(has_error(&e, "c.yaml:9:5: spec.tls.mode: mode MUTUAL is not supported on a "
                         "ChaosProxy (SIMPLE is: the proxy terminates TLS and asks the client "
                         "for no certificate)"));
    ASSERT_EQ(e.n, 1);
    pt_config_errors_dispose(&e);

    snprintf(tls, sizeof(tls), "    serverCertificate: %s.gone\n    privateKey: %s\n", crt, key);
    ASSERT(load_str("c.yaml", chaos_yaml(tls), &e) == NULL);
    char want[400];
    snprintf(want, sizeof(want), "c.yaml:8:3: spec.tls: %s.gone: cannot read the certificate chain",
             crt);
    ASSERT(has_error_prefix(&e, want));
    pt_config_errors_dispose(&e);

    ASSERT(load_str("c.yaml", chaos_yaml("    credentialName: shop\n"), &e) == NULL);
    ASSERT(has_error_containing(&e, "c.yaml:8:3: spec.tls: credentialName \"shop\" needs the "
                                    "Proxy's credentialsDirectory"));
    pt_config_errors_dispose(&e);

    snprintf(tls, sizeof(tls),
             "    serverCertificate: %s\n    privateKey: %s\n    httpsRedirect: true\n"
             "    serverCertificat: x\n",
             crt, key);
    ASSERT(load_str("c.yaml", chaos_yaml(tls), &e) == NULL);
    ASSERT(has_error(&e, "c.yaml:11:5: spec.tls.httpsRedirect: applies to a Gateway's HTTP "
                         "servers, not to a ChaosProxy"));
    ASSERT(has_error_containing(&e, "c.yaml:12:5: spec.tls.serverCertificat: unknown field"));
    pt_config_errors_dispose(&e);
    test_ca_free(&ca);
    test_certs_remove();
}
