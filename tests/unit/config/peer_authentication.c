/* tests/unit/config/peer_authentication.c: which PeerAuthentication applies to the Proxy's
 * workload (config/kind_peer_authentication.c): Istio's precedence (workload > namespace >
 * mesh), UNSET inheriting, portLevelMtls, and errors. The runtime side is
 * tests/e2e/test_65_peer_auth.py. */
#include "test.h"

#include "config/load_helpers.h"

#define PROXY                                                                                      \
    "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"                           \
    "spec:\n  workload: {name: server, namespace: default, labels: {app: server}}\n"

#define PA(ns, name, spec)                                                                         \
    "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"                            \
    "metadata: {name: " name ", namespace: " ns "}\nspec: " spec "\n"

static pt_config_t *load(const char *yaml, pt_config_errors_t *e)
{
    pt_config_t *c = load_str("pa.yaml", yaml, e);
    if (c == NULL)
        dump(e);
    return c;
}

TEST(no_policy_is_permissive)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load(PROXY, &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->peer_auth.mode, PT_MTLS_PERMISSIVE);
    ASSERT_EQ(c->peer_auth.n_ports, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(namespace_over_mesh_and_unset_inherits)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load(PROXY PA("istio-system", "mesh", "{mtls: {mode: STRICT}}")
                              PA("default", "ns", "{mtls: {mode: UNSET}}"),
                          &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->peer_auth.mode, PT_MTLS_STRICT);
    pt_config_unref(c);
    c = load(PROXY PA("istio-system", "mesh", "{mtls: {mode: STRICT}}")
                 PA("default", "ns", "{mtls: {mode: DISABLE}}")
                     PA("other", "elsewhere", "{mtls: {mode: PERMISSIVE}}"),
             &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->peer_auth.mode, PT_MTLS_DISABLE);
    /* the Proxy has no sidecar: the policy is resolved, and warned about */
    ASSERT(has_warning_containing(&e, "PeerAuthentication applies to a sidecar's inbound"));
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(workload_selector_and_port_level)
{
    pt_config_errors_t e = {0};
    pt_config_t *c =
        load(PROXY PA("default", "ns", "{mtls: {mode: STRICT}}")
                 PA("default", "other-app",
                    "{selector: {matchLabels: {app: web}}, mtls: {mode: DISABLE}}")
                     PA("default", "server",
                        "{selector: {matchLabels: {app: server}}, mtls: {mode: PERMISSIVE}, "
                        "portLevelMtls: {\"9081\": {mode: STRICT}, \"9082\": {mode: UNSET}}}"),
             &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->peer_auth.mode, PT_MTLS_PERMISSIVE);
    ASSERT_EQ(pt_peer_auth_mode(&c->peer_auth, 9081), PT_MTLS_STRICT);
    ASSERT_EQ(pt_peer_auth_mode(&c->peer_auth, 9082), PT_MTLS_PERMISSIVE); /* UNSET inherits */
    ASSERT_EQ(pt_peer_auth_mode(&c->peer_auth, 9080), PT_MTLS_PERMISSIVE);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(port_level_without_selector_is_ignored_and_bad_input_named)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load(PROXY PA("default", "ns",
                                   "{mtls: {mode: DISABLE}, portLevelMtls: {\"80\": {mode: "
                                   "STRICT}}}"),
                          &e);
    ASSERT(c != NULL);
    ASSERT_EQ(pt_peer_auth_mode(&c->peer_auth, 80), PT_MTLS_DISABLE);
    ASSERT(has_warning_containing(&e, "spec.portLevelMtls: applies only in a policy with a "
                                      "selector"));
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    c = load_str("pa.yaml",
                 PROXY PA("default", "ns", "{mtls: {mode: strict}, portLevelMtls: {x: {}}}"), &e);
    ASSERT(c == NULL);
    ASSERT(has_error_containing(&e, "spec.mtls.mode: unknown mode \"strict\""));
    ASSERT(has_error_containing(&e, "spec.portLevelMtls.x: must be a port number"));
    pt_config_errors_dispose(&e);
}

TEST(root_namespace_is_a_proxy_setting)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load(PROXY "  rootNamespace: mesh-root\n" PA("istio-system", "ignored",
                                                                  "{mtls: {mode: DISABLE}}")
                              PA("mesh-root", "mesh", "{mtls: {mode: STRICT}}"),
                          &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->peer_auth.mode, PT_MTLS_STRICT);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}
