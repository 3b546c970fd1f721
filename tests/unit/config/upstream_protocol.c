/* tests/unit/config/upstream_protocol.c
 * The protocol each cluster speaks to its endpoints, as Istio chooses it: the ServiceEntry
 * port's protocol or its name's prefix, DestinationRule h2UpgradePolicy (port level too) and
 * useClientProtocol, the Proxy's mesh-wide h2UpgradePolicy; over mesh mTLS, HTTP/2 unless one of
 * them says DO_NOT_UPGRADE; and the errors for bad values. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "load_helpers.h"
#include "test.h"

/* A Gateway, a VirtualService routing /pN to svc.local port N, and the ServiceEntry's ports:
 * 1 GRPC, 2 named http2-a, 3 named grpc-web, 4 and 5 HTTP, 6 named http-x. */
#define SERVICE                                                                                    \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: Gateway\n"                                                                              \
    "metadata: {name: gw}\n"                                                                       \
    "spec: {servers: [{port: {number: 8080, protocol: HTTP, name: http}, hosts: ['*']}]}\n"        \
    "---\n"                                                                                        \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: VirtualService\n"                                                                       \
    "metadata: {name: v}\n"                                                                        \
    "spec:\n"                                                                                      \
    "  hosts: ['*']\n"                                                                             \
    "  gateways: [gw]\n"                                                                           \
    "  http:\n"                                                                                    \
    "  - {match: [{uri: {prefix: /p1}}], route: [{destination: {host: svc.local, port: {number: "  \
    "1}}}]}\n"                                                                                     \
    "  - {match: [{uri: {prefix: /p2}}], route: [{destination: {host: svc.local, port: {number: "  \
    "2}}}]}\n"                                                                                     \
    "  - {match: [{uri: {prefix: /p3}}], route: [{destination: {host: svc.local, port: {number: "  \
    "3}}}]}\n"                                                                                     \
    "  - {match: [{uri: {prefix: /p4}}], route: [{destination: {host: svc.local, port: {number: "  \
    "4}}}]}\n"                                                                                     \
    "  - {match: [{uri: {prefix: /p5}}], route: [{destination: {host: svc.local, port: {number: "  \
    "5}}}]}\n"                                                                                     \
    "  - route: [{destination: {host: svc.local, port: {number: 6}}}]\n"                           \
    "---\n"                                                                                        \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: ServiceEntry\n"                                                                         \
    "metadata: {name: svc}\n"                                                                      \
    "spec:\n"                                                                                      \
    "  hosts: [svc.local]\n"                                                                       \
    "  resolution: STATIC\n"                                                                       \
    "  ports:\n"                                                                                   \
    "  - {number: 1, name: rpc, protocol: GRPC}\n"                                                 \
    "  - {number: 2, name: http2-a}\n"                                                             \
    "  - {number: 3, name: grpc-web}\n"                                                            \
    "  - {number: 4, name: web, protocol: HTTP}\n"                                                 \
    "  - {number: 5, name: web5, protocol: HTTP}\n"                                                \
    "  - {number: 6, name: http-x}\n"                                                              \
    "  endpoints: [{address: 127.0.0.1}]\n"                                                        \
    "---\n"

static const pt_cluster_t *cluster_of(const pt_config_t *c, unsigned port)
{
    char name[64];
    snprintf(name, sizeof(name), "outbound|%u||svc.local", port);
    for (size_t i = 0; i < c->n_clusters; i++)
        if (strcmp(c->clusters[i]->name, name) == 0)
            return c->clusters[i];
    fprintf(stderr, "    no cluster %s\n", name);
    return NULL;
}

static pt_upstream_protocol_t protocol_of(const pt_config_t *c, unsigned port)
{
    const pt_cluster_t *cl = cluster_of(c, port);
    return cl != NULL ? cl->protocol : (pt_upstream_protocol_t)-1;
}

/* What the cluster's ISTIO_MUTUAL endpoints (peer sidecars) are spoken. */
static pt_upstream_protocol_t mesh_protocol_of(const pt_config_t *c, unsigned port)
{
    const pt_cluster_t *cl = cluster_of(c, port);
    return cl != NULL ? cl->mesh_protocol : (pt_upstream_protocol_t)-1;
}

TEST(port_protocol_and_name_prefix)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("p.yaml", SERVICE, &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(protocol_of(c, 1), PT_UPSTREAM_HTTP2);
    ASSERT_EQ(protocol_of(c, 2), PT_UPSTREAM_HTTP2);
    ASSERT_EQ(protocol_of(c, 3), PT_UPSTREAM_HTTP2);
    ASSERT_EQ(protocol_of(c, 4), PT_UPSTREAM_HTTP1); /* meshConfig's default: DO_NOT_UPGRADE */
    ASSERT_EQ(protocol_of(c, 6), PT_UPSTREAM_HTTP1);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(h2_upgrade_policy_and_client_protocol)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str(
        "p.yaml",
        SERVICE "apiVersion: networking.istio.io/v1\n"
                "kind: DestinationRule\n"
                "metadata: {name: svc}\n"
                "spec:\n"
                "  host: svc.local\n"
                "  trafficPolicy:\n"
                "    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}\n"
                "    portLevelSettings:\n"
                "    - {port: {number: 5}, connectionPool: {http: {useClientProtocol: true}}}\n"
                "    - {port: {number: 1}, connectionPool: {http: {h2UpgradePolicy: "
                "DO_NOT_UPGRADE}}}\n",
        &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(protocol_of(c, 4), PT_UPSTREAM_HTTP2);  /* upgraded */
    ASSERT_EQ(protocol_of(c, 6), PT_UPSTREAM_HTTP2);  /* an http- name is an HTTP port */
    ASSERT_EQ(protocol_of(c, 5), PT_UPSTREAM_CLIENT); /* useClientProtocol wins */
    ASSERT_EQ(protocol_of(c, 1), PT_UPSTREAM_HTTP2);  /* GRPC is HTTP/2 whatever the policy */
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(mesh_wide_default_and_a_rule_that_says_no)
{
    pt_config_errors_t e = {0};
    pt_config_t *c =
        load_str("p.yaml",
                 SERVICE "apiVersion: petrel.io/v1alpha1\n"
                         "kind: Proxy\n"
                         "metadata: {name: p}\n"
                         "spec: {h2UpgradePolicy: UPGRADE}\n"
                         "---\n"
                         "apiVersion: networking.istio.io/v1\n"
                         "kind: DestinationRule\n"
                         "metadata: {name: svc}\n"
                         "spec:\n"
                         "  host: svc.local\n"
                         "  trafficPolicy:\n"
                         "    portLevelSettings:\n"
                         "    - {port: {number: 5}, connectionPool: {http: {h2UpgradePolicy: "
                         "DO_NOT_UPGRADE}}}\n",
                 &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->proxy.h2_upgrade, PT_H2_UPGRADE);
    ASSERT_EQ(protocol_of(c, 4), PT_UPSTREAM_HTTP2);
    ASSERT_EQ(protocol_of(c, 5), PT_UPSTREAM_HTTP1);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(mesh_mtls_upgrades_unless_told_not_to)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("p.yaml", SERVICE, &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(protocol_of(c, 4), PT_UPSTREAM_HTTP1);      /* plaintext: Istio's default */
    ASSERT_EQ(mesh_protocol_of(c, 4), PT_UPSTREAM_HTTP2); /* to a peer sidecar: HTTP/2 */
    ASSERT_EQ(mesh_protocol_of(c, 1), PT_UPSTREAM_HTTP2);
    pt_config_unref(c);
    /* A DestinationRule's DO_NOT_UPGRADE (port 5) or useClientProtocol (port 4) holds there
     * too; the Proxy's DO_NOT_UPGRADE holds for every HTTP port. */
    c = load_str("p.yaml",
                 SERVICE "apiVersion: networking.istio.io/v1\n"
                         "kind: DestinationRule\n"
                         "metadata: {name: svc}\n"
                         "spec:\n"
                         "  host: svc.local\n"
                         "  trafficPolicy:\n"
                         "    portLevelSettings:\n"
                         "    - {port: {number: 4}, connectionPool: {http: {useClientProtocol: "
                         "true}}}\n"
                         "    - {port: {number: 5}, connectionPool: {http: {h2UpgradePolicy: "
                         "DO_NOT_UPGRADE}}}\n",
                 &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(mesh_protocol_of(c, 4), PT_UPSTREAM_CLIENT);
    ASSERT_EQ(mesh_protocol_of(c, 5), PT_UPSTREAM_HTTP1);
    ASSERT_EQ(mesh_protocol_of(c, 6), PT_UPSTREAM_HTTP2);
    pt_config_unref(c);
    c = load_str("p.yaml",
                 SERVICE "apiVersion: petrel.io/v1alpha1\n"
                         "kind: Proxy\n"
                         "metadata: {name: p}\n"
                         "spec: {h2UpgradePolicy: DO_NOT_UPGRADE}\n",
                 &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(mesh_protocol_of(c, 4), PT_UPSTREAM_HTTP1);
    ASSERT_EQ(mesh_protocol_of(c, 1), PT_UPSTREAM_HTTP2); /* GRPC stays HTTP/2 */
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(bad_values_are_errors_with_a_suggestion)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("p.yaml",
                              SERVICE "apiVersion: petrel.io/v1alpha1\n"
                                      "kind: Proxy\n"
                                      "metadata: {name: p}\n"
                                      "spec: {h2UpgradePolicy: do_not_upgrade}\n"
                                      "---\n"
                                      "apiVersion: networking.istio.io/v1\n"
                                      "kind: DestinationRule\n"
                                      "metadata: {name: svc}\n"
                                      "spec:\n"
                                      "  host: svc.local\n"
                                      "  trafficPolicy:\n"
                                      "    connectionPool: {http: {useClientProtocol: yes}}\n",
                              &e);
    ASSERT(c == NULL);
    ASSERT(has_error(&e, "p.yaml:38:8: spec.h2UpgradePolicy: unknown value \"do_not_upgrade\" "
                         "(expected DEFAULT, DO_NOT_UPGRADE or UPGRADE); did you mean "
                         "\"DO_NOT_UPGRADE\"?"));
    ASSERT(has_error_containing(&e, "spec.trafficPolicy.connectionPool.http.useClientProtocol:"));
    pt_config_errors_dispose(&e);
}
