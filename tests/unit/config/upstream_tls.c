/* tests/unit/config/upstream_tls.c
 * DestinationRule tls resolved per cluster: Istio's precedence (subset port level, subset,
 * rule port level, rule), DISABLE, the SNI and name to verify, ISTIO_MUTUAL's SNI form, pool
 * keys that differ whenever the settings do, the validation errors, and auto mTLS by endpoint
 * label. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "load_helpers.h"
#include "test.h"

static const pt_cluster_t *cluster(const pt_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_clusters; i++)
        if (strcmp(c->clusters[i]->name, name) == 0)
            return c->clusters[i];
    fprintf(stderr, "    no cluster %s\n", name);
    return NULL;
}

#define BASE                                                                                       \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: Gateway\n"                                                                              \
    "metadata: {name: gw}\n"                                                                       \
    "spec:\n"                                                                                      \
    "  servers:\n"                                                                                 \
    "  - port: {number: 8080, protocol: HTTP, name: http}\n"                                       \
    "    hosts: ['*']\n"                                                                           \
    "---\n"                                                                                        \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: ServiceEntry\n"                                                                         \
    "metadata: {name: api}\n"                                                                      \
    "spec:\n"                                                                                      \
    "  hosts: [api.example.com]\n"                                                                 \
    "  resolution: STATIC\n"                                                                       \
    "  ports:\n"                                                                                   \
    "  - {number: 443, name: https, protocol: HTTP}\n"                                             \
    "  - {number: 80, name: http, protocol: HTTP}\n"                                               \
    "  endpoints:\n"                                                                               \
    "  - {address: 127.0.0.1, ports: {https: 9443, http: 9080}, labels: {version: v1}}\n"          \
    "  - {address: 127.0.0.2, ports: {https: 9443, http: 9080}, labels: {version: v2}}\n"          \
    "---\n"                                                                                        \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: VirtualService\n"                                                                       \
    "metadata: {name: api}\n"                                                                      \
    "spec:\n"                                                                                      \
    "  hosts: ['*']\n"                                                                             \
    "  gateways: [gw]\n"                                                                           \
    "  http:\n"                                                                                    \
    "  - match: [{uri: {prefix: /v1}}]\n"                                                          \
    "    route: [{destination: {host: api.example.com, port: {number: 443}, subset: v1}}]\n"       \
    "  - match: [{uri: {prefix: /v2}}]\n"                                                          \
    "    route: [{destination: {host: api.example.com, port: {number: 443}, subset: v2}}]\n"       \
    "  - match: [{uri: {prefix: /plain}}]\n"                                                       \
    "    route: [{destination: {host: api.example.com, port: {number: 80}}}]\n"                    \
    "  - route: [{destination: {host: api.example.com, port: {number: 443}}}]\n"                   \
    "---\n"

TEST(precedence_sni_and_pool_keys)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("tls.yaml",
                              BASE "apiVersion: networking.istio.io/v1\n"
                                   "kind: DestinationRule\n"
                                   "metadata: {name: api}\n"
                                   "spec:\n"
                                   "  host: api.example.com\n"
                                   "  trafficPolicy:\n"
                                   "    tls: {mode: SIMPLE, insecureSkipVerify: true}\n"
                                   "    portLevelSettings:\n"
                                   "    - port: {number: 80}\n"
                                   "      tls: {mode: DISABLE}\n"
                                   "  subsets:\n"
                                   "  - name: v1\n"
                                   "    labels: {version: v1}\n"
                                   "  - name: v2\n"
                                   "    labels: {version: v2}\n"
                                   "    trafficPolicy:\n"
                                   "      tls:\n"
                                   "        mode: SIMPLE\n"
                                   "        sni: other.example.com\n"
                                   "        subjectAltNames: [spiffe://x/y, api.example.com]\n",
                              &e);
    dump(&e);
    ASSERT(c != NULL);
    const pt_cluster_t *all = cluster(c, "outbound|443||api.example.com");
    const pt_cluster_t *v1 = cluster(c, "outbound|443|v1|api.example.com");
    const pt_cluster_t *v2 = cluster(c, "outbound|443|v2|api.example.com");
    const pt_cluster_t *plain = cluster(c, "outbound|80||api.example.com");
    /* The rule's tls: SNI is the host, no name check (insecureSkipVerify). */
    ASSERT(all->tls != NULL && all->tls->mode == PT_UPSTREAM_TLS_SIMPLE);
    ASSERT_STREQ(all->tls->sni, "api.example.com");
    ASSERT(all->tls->verify_name == NULL);
    ASSERT(all->tls->ctx != NULL);
    ASSERT(all->endpoints[0].tls == all->tls && all->endpoints[1].tls == all->tls);
    /* v1 sets nothing: the rule's; v2's own replaces it, subjectAltNames replace the name. */
    ASSERT(v1->tls != NULL && v1->tls->insecure_skip_verify);
    ASSERT_STREQ(v1->tls->pool_key, all->tls->pool_key);
    ASSERT(v2->tls != NULL && !v2->tls->insecure_skip_verify);
    ASSERT_STREQ(v2->tls->sni, "other.example.com");
    ASSERT(v2->tls->verify_name == NULL);
    ASSERT_EQ(v2->tls->n_sans, 2);
    ASSERT(strcmp(v2->tls->pool_key, all->tls->pool_key) != 0);
    /* Port 80's DISABLE beats the rule's SIMPLE: plaintext, and no identity so no auto mTLS. */
    ASSERT(plain->tls == NULL && plain->auto_tls == NULL && plain->endpoints[0].tls == NULL);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(validation_errors)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("tls.yaml",
                              BASE "apiVersion: networking.istio.io/v1\n"
                                   "kind: DestinationRule\n"
                                   "metadata: {name: api}\n"
                                   "spec:\n"
                                   "  host: api.example.com\n"
                                   "  trafficPolicy:\n"
                                   "    tls: {mode: MUTUAL, caCertificates: /ca.pem}\n"
                                   "  subsets:\n"
                                   "  - name: v1\n"
                                   "    labels: {version: v1}\n"
                                   "    trafficPolicy:\n"
                                   "      tls: {mode: ISTIO_MUTUAL, clientCertificate: /c.pem}\n"
                                   "  - name: v2\n"
                                   "    labels: {version: v2}\n"
                                   "    trafficPolicy:\n"
                                   "      tls: {mode: STRICT, insecureSkipVerify: yes}\n",
                              &e);
    ASSERT(c == NULL);
    dump(&e);
    ASSERT(has_error_containing(&e, "spec.trafficPolicy.tls: mode MUTUAL needs clientCertificate "
                                    "and privateKey, or credentialName"));
    ASSERT(has_error_containing(&e, "spec.subsets[0].trafficPolicy.tls.clientCertificate: cannot "
                                    "be given with mode ISTIO_MUTUAL"));
    ASSERT(has_error_containing(&e, "spec.subsets[1].trafficPolicy.tls.mode: unknown mode "
                                    "\"STRICT\""));
    ASSERT(has_error_containing(&e, "spec.subsets[1].trafficPolicy.tls.insecureSkipVerify:"));
    pt_config_errors_dispose(&e);

    /* ISTIO_MUTUAL needs the workload identity. */
#define SUBSETS                                                                                    \
    "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
    c = load_str("tls.yaml",
                 BASE "apiVersion: networking.istio.io/v1\n"
                      "kind: DestinationRule\n"
                      "metadata: {name: api}\n"
                      "spec:\n"
                      "  host: api.example.com\n"
                      "  trafficPolicy:\n"
                      "    tls: {mode: ISTIO_MUTUAL}\n" SUBSETS,
                 &e);
    ASSERT(c == NULL);
    ASSERT(has_error_containing(&e, "tls.yaml:43:5: spec.trafficPolicy.tls: mode ISTIO_MUTUAL "
                                    "needs the workload identity"));
    pt_config_errors_dispose(&e);

    /* A file that cannot be read is named, at the tls block. */
    c = load_str("tls.yaml",
                 BASE "apiVersion: networking.istio.io/v1\n"
                      "kind: DestinationRule\n"
                      "metadata: {name: api}\n"
                      "spec:\n"
                      "  host: api.example.com\n"
                      "  trafficPolicy:\n"
                      "    tls: {mode: SIMPLE, caCertificates: /nonexistent/ca.pem}\n" SUBSETS,
                 &e);
    ASSERT(c == NULL);
    ASSERT(has_error_containing(&e, "tls.yaml:43:5: spec.trafficPolicy.tls: "));
    ASSERT(has_error_containing(&e, "/nonexistent/ca.pem"));
    pt_config_errors_dispose(&e);
}

TEST(tls_passthrough_routes_warn_that_tls_is_not_originated)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("tcp.yaml",
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: Gateway\n"
                              "metadata: {name: gw}\n"
                              "spec:\n"
                              "  servers:\n"
                              "  - port: {number: 9000, protocol: TCP, name: tcp}\n"
                              "    hosts: ['*']\n"
                              "  - port: {number: 9443, protocol: TLS, name: tls}\n"
                              "    hosts: ['*']\n"
                              "    tls: {mode: PASSTHROUGH}\n"
                              "---\n"
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: ServiceEntry\n"
                              "metadata: {name: db}\n"
                              "spec:\n"
                              "  hosts: [db.example.com]\n"
                              "  resolution: STATIC\n"
                              "  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
                              "  endpoints: [{address: 127.0.0.1}]\n"
                              "---\n"
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: VirtualService\n"
                              "metadata: {name: db}\n"
                              "spec:\n"
                              "  hosts: ['*']\n"
                              "  gateways: [gw]\n"
                              "  tcp: [{route: [{destination: {host: db.example.com}}]}]\n"
                              "  tls:\n"
                              "  - match: [{sniHosts: [db.example.com]}]\n"
                              "    route: [{destination: {host: db.example.com}}]\n"
                              "---\n"
                              "apiVersion: networking.istio.io/v1\n"
                              "kind: DestinationRule\n"
                              "metadata: {name: db}\n"
                              "spec:\n"
                              "  host: db.example.com\n"
                              "  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true}}\n",
                              &e);
    ASSERT(c != NULL);
    ASSERT(has_warning_containing(&e, "spec.tls[0].route: DestinationRule tls for "
                                      "outbound|5432||db.example.com is not applied on "
                                      "TLS-passthrough routes"));
    for (size_t i = 0; i < e.n; i++) /* TCP routes originate it */
        ASSERT(strstr(e.lines[i], "spec.tcp[0]") == NULL);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}
