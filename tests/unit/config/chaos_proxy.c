/* tests/unit/config/chaos_proxy.c: a ChaosProxy's spec.tls, read with a Gateway server's fields
 * (config/kind_gateway.c) into a server context built as a Gateway's (config/tls_contexts.c),
 * its files watched, and the errors that name the file, line, column and field; spec.protocol
 * HTTP, compiled into a route table and a cluster of the proxy's own (config/compile.c); an HTTP
 * toxic's match[] (config/chaos_match.c): compiled by the VirtualService's reader, kept as JSON,
 * refcounted past the snapshot, its errors, and the same compiler for the API's node trees. */
#include "test.h"

#include <stdlib.h>

#include "config/load_helpers.h"
#include "config/node.h"
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

static pt_config_t *load_http(const char *upstream, const char *extra, pt_config_errors_t *e)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: petrel.io/v1alpha1\n"
             "kind: ChaosProxy\n"
             "metadata: {name: shop}\n"
             "spec:\n"
             "  protocol: HTTP\n"
             "  upstream: %s\n"
             "%s",
             upstream, extra);
    return load_str("c.yaml", yaml, e);
}

TEST(chaos_http_compiles_a_route_table_and_a_cluster)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_http(
        "127.0.0.1:8080", "  toxics:\n  - {type: http_abort, attributes: {status: 503}}\n", &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT(c->chaos_proxies[0].is_http);
    ASSERT_EQ(c->chaos_proxies[0].n_toxics, 1);
    ASSERT_EQ(c->n_listeners, 0); /* workers open nothing: the store owns the socket */
    ASSERT_EQ(c->n_chaos_listeners, 1);
    const pt_listener_config_t *l = pt_config_chaos_listener(c, "shop");
    ASSERT(l != NULL && l->protocol == PT_LISTENER_HTTP);
    ASSERT_STREQ(l->chaos_proxy, "shop");
    ASSERT(pt_config_chaos_listener(c, "other") == NULL);
    const pt_vhost_t *vh = pt_config_find_vhost(l, "anything.example:81", 19);
    ASSERT(vh != NULL && vh->n_routes == 1);
    const pt_http_route_t *r = &vh->routes[0];
    ASSERT_STREQ(r->name, "shop");
    ASSERT_STREQ(r->chaos_proxy, "shop");
    ASSERT(r->n_matches == 0 && r->n_clusters == 1);
    ASSERT(r->retry != NULL && r->retry->attempts == 0); /* the upstream's answers, as they are */
    const pt_cluster_t *cl = r->clusters[0].cluster;
    ASSERT_STREQ(cl->name, "chaos|shop");
    ASSERT_EQ(cl->n_endpoints, 1);
    ASSERT_STREQ(cl->endpoints[0].address, "127.0.0.1");
    ASSERT_EQ(cl->endpoints[0].port, 8080);
    ASSERT_EQ(c->n_clusters, 1);
    ASSERT_EQ(c->n_dns_hosts, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    /* A name goes through the resolver, as a ServiceEntry with resolution DNS. */
    c = load_http("Shop.Internal:9090", "", &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->n_dns_hosts, 1);
    ASSERT_STREQ(c->dns_hosts[0], "shop.internal");
    ASSERT_STREQ(c->clusters[0]->name, "chaos|shop");
    ASSERT_EQ(c->clusters[0]->port, 9090);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    /* TCP (the default) compiles nothing of the kind. */
    c = load_str("c.yaml",
                 "apiVersion: petrel.io/v1alpha1\nkind: ChaosProxy\nmetadata: {name: db}\n"
                 "spec: {upstream: 127.0.0.1:5432, protocol: TCP}\n",
                 &e);
    ASSERT(c != NULL && !c->chaos_proxies[0].is_http);
    ASSERT_EQ(c->n_chaos_listeners, 0);
    ASSERT_EQ(c->n_clusters, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(chaos_http_errors_name_the_field)
{
    pt_config_errors_t e = {0};
    ASSERT(load_str("c.yaml",
                    "apiVersion: petrel.io/v1alpha1\nkind: ChaosProxy\nmetadata: {name: db}\n"
                    "spec:\n  upstream: 127.0.0.1:5432\n  protocol: GRPC\n",
                    &e) == NULL);
    ASSERT(has_error(&e, "c.yaml:6:3: spec.protocol: must be TCP or HTTP, got \"GRPC\""));
    pt_config_errors_dispose(&e);

    ASSERT(load_http("127.0.0.1:8080", "  toxics:\n  - {type: latency, attributes: {latency: 5}}\n",
                     &e) == NULL);
    ASSERT(has_error(&e, "c.yaml:8:6: spec.toxics[0].type: \"latency\" is a TCP toxic: an HTTP "
                         "chaos proxy (spec.protocol HTTP) takes HTTP toxics (http_abort, "
                         "http_delay, http_slow_body, http_drop_first)"));
    pt_config_errors_dispose(&e);

    ASSERT(load_str("c.yaml",
                    "apiVersion: petrel.io/v1alpha1\nkind: ChaosProxy\nmetadata: {name: db}\n"
                    "spec:\n  upstream: 127.0.0.1:5432\n  toxics:\n  - {type: http_delay}\n",
                    &e) == NULL);
    ASSERT(has_error_containing(&e, "c.yaml:7:6: spec.toxics[0].type: \"http_delay\" is an HTTP "
                                    "toxic: it goes on an HTTP chaos proxy"));
    pt_config_errors_dispose(&e);

    ASSERT(load_http(":8080", "", &e) == NULL);
    ASSERT(has_error_containing(&e, "c.yaml:6:3: spec.upstream: an HTTP chaos proxy's upstream is "
                                    "an IP"));
    pt_config_errors_dispose(&e);
    ASSERT(load_http("*.shop:8080", "", &e) == NULL);
    ASSERT_EQ(e.n, 1);
    pt_config_errors_dispose(&e);
    pt_config_t *c = load_http("\"[::1]:8080\"", "", &e);
    ASSERT(c != NULL);
    ASSERT_STREQ(c->clusters[0]->endpoints[0].address, "::1");
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    ASSERT(load_http("127.0.0.1:8080", "  tls: {serverCertificate: /x.crt, privateKey: /x.key}\n",
                     &e) == NULL);
    ASSERT(has_error_containing(&e, "c.yaml:7:3: spec.tls: /x.crt: cannot read"));
    pt_config_errors_dispose(&e);
}

TEST(chaos_http_tls_terminates_on_its_route_table)
{
    test_ca_t ca = test_ca_new("chaos");
    char crt[256], key[256], tls[700];
    test_leaf_write(&ca, "shop", "DNS:shop.example.com", -1, 10, crt, key);
    snprintf(tls, sizeof(tls), "  tls: {serverCertificate: %s, privateKey: %s}\n", crt, key);
    pt_config_errors_t e = {0};
    pt_config_t *c = load_http("127.0.0.1:8080", tls, &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT(c->chaos_proxies[0].tls_ctx != NULL); /* GET /proxies shows "tls": true */
    const pt_listener_config_t *l = pt_config_chaos_listener(c, "shop");
    ASSERT(l != NULL && l->tls != NULL);
    ASSERT_EQ(l->tls->n_servers, 1);
    ASSERT_EQ(l->tls->servers[0].kind, PT_TLS_SERVER_HTTPS); /* ALPN h2, http/1.1 */
    ASSERT(l->tls->servers[0].ctx == c->chaos_proxies[0].tls_ctx);
    ASSERT_EQ(c->n_tls_files, 2); /* watched as a Gateway's */
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
    test_ca_free(&ca);
    test_certs_remove();
}

/* The match of the first toxic of the first ChaosProxy c declares. */
static const pt_toxic_match_t *toxic_match(const pt_config_t *c)
{
    return c->chaos_proxies[0].toxics[0].match;
}

TEST(chaos_toxic_match_compiles_with_the_virtual_service_reader)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_http("127.0.0.1:8080",
                               "  toxics:\n"
                               "  - type: http_abort\n"
                               "    match:\n"
                               "    - uri: {prefix: /api}\n"
                               "      method: {exact: POST}\n"
                               "      headers: {X-Chaos: {regex: \"on|yes\"}}\n"
                               "    - queryParams: {debug: {}}\n"
                               "      ignoreUriCase: true\n"
                               "  - {name: all, type: http_delay}\n",
                               &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    const pt_toxic_match_t *m = toxic_match(c);
    ASSERT(m != NULL);
    ASSERT_EQ(m->n_matches, 2);
    ASSERT(m->matches[0].has_uri && m->matches[0].uri.kind == PT_MATCH_PREFIX);
    ASSERT_STREQ(m->matches[0].uri.value, "/api");
    ASSERT(m->matches[0].has_method);
    ASSERT_EQ(m->matches[0].n_headers, 1);
    ASSERT_STREQ(m->matches[0].headers[0].name, "x-chaos"); /* lower-cased, as a route's */
    ASSERT(m->matches[0].headers[0].match.regex != NULL);
    ASSERT_EQ(m->matches[1].n_query_params, 1);
    ASSERT_EQ(m->matches[1].query_params[0].match.kind, PT_MATCH_PRESENT);
    /* As written, in JSON: what the API gives back. */
    ASSERT_STREQ(m->json, "[{\"uri\":{\"prefix\":\"/api\"},\"method\":{\"exact\":\"POST\"},"
                          "\"headers\":{\"X-Chaos\":{\"regex\":\"on|yes\"}}},"
                          "{\"queryParams\":{\"debug\":{}},\"ignoreUriCase\":true}]");
    ASSERT(c->chaos_proxies[0].toxics[1].match == NULL);
    /* The snapshot holds one ref; a copy kept past it (the chaos store's) takes its own. */
    pt_toxic_match_t *kept = c->chaos_proxies[0].toxics[0].match;
    ASSERT_EQ(atomic_load(&kept->refs), 1u);
    pt_toxic_match_ref(kept);
    pt_config_unref(c);
    ASSERT_EQ(atomic_load(&kept->refs), 1u);
    ASSERT(pt_toxic_match_equal(kept, kept) && !pt_toxic_match_equal(kept, NULL));
    pt_toxic_match_unref(kept);
    pt_config_errors_dispose(&e);

    /* An empty list selects every request, as a route without match[]. */
    c = load_http("127.0.0.1:8080", "  toxics:\n  - {type: http_abort, match: []}\n", &e);
    ASSERT(c != NULL && toxic_match(c) == NULL);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(chaos_toxic_match_errors_name_the_field)
{
    pt_config_errors_t e = {0};
    ASSERT(load_http("127.0.0.1:8080",
                     "  toxics:\n"
                     "  - type: http_abort\n"
                     "    match:\n"
                     "    - uri: {prefx: /api}\n"
                     "    - headers: {x: {regex: \"(\"}}\n"
                     "    - {port: 80, method: GET}\n",
                     &e) == NULL);
    ASSERT(has_error(&e, "c.yaml:10:13: spec.toxics[0].match[0].uri.prefx: unknown field; did you "
                         "mean \"prefix\"?"));
    ASSERT(has_error_prefix(&e, "c.yaml:11:21: spec.toxics[0].match[1].headers.x.regex: "));
    ASSERT(has_error_containing(&e, "spec.toxics[0].match[2].port: not on a toxic's match"));
    ASSERT(has_error_containing(&e, "spec.toxics[0].match[2].method: must be a map"));
    pt_config_errors_dispose(&e);

    /* A TCP toxic acts on bytes: no match. */
    ASSERT(load_str("c.yaml",
                    "apiVersion: petrel.io/v1alpha1\nkind: ChaosProxy\nmetadata: {name: db}\n"
                    "spec:\n  upstream: 127.0.0.1:5432\n  toxics:\n"
                    "  - {type: latency, match: [{uri: {prefix: /}}]}\n",
                    &e) == NULL);
    ASSERT(has_error_containing(&e, "c.yaml:7:21: spec.toxics[0].match: a TCP toxic acts on a "
                                    "session's bytes"));
    pt_config_errors_dispose(&e);

    ASSERT(load_http("127.0.0.1:8080", "  toxics:\n  - {type: http_abort, match: {uri: x}}\n",
                     &e) == NULL);
    ASSERT(has_error_containing(&e, "spec.toxics[0].match: "));
    pt_config_errors_dispose(&e);
}

/* What the API compiles: a node tree from anywhere (here, YAML flow text, as JSON is). */
static int compile_text(const char *text, pt_toxic_match_t **m, char *err, size_t cap)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_cfg_docs_t docs = {0};
    pt_config_errors_t e = {0};
    size_t n_nodes = 0;
    ASSERT(pt__cfg_parse_yaml(&a, "body", text, strlen(text), &n_nodes, &docs, &e) == 0);
    int rc = pt_toxic_match_compile(docs.v[0].root, m, err, cap);
    pt__cfg_docs_dispose(&docs);
    pt_config_errors_dispose(&e);
    pt_arena_dispose(&a); /* the match owns what it keeps */
    return rc;
}

TEST(chaos_toxic_match_compile_for_the_api)
{
    pt_toxic_match_t *m = NULL;
    char err[256] = "";
    ASSERT_EQ(compile_text("[{\"uri\": {\"regex\": \"/v[0-9]+/.*\"}}]", &m, err, sizeof(err)), 0);
    ASSERT(m != NULL);
    ASSERT_EQ(atomic_load(&m->refs), 1u); /* the caller's only */
    ASSERT_STREQ(m->json, "[{\"uri\":{\"regex\":\"/v[0-9]+/.*\"}}]");
    ASSERT_EQ(m->matches[0].uri.kind, PT_MATCH_REGEX);
    pt_toxic_match_unref(m);

    ASSERT_EQ(compile_text("[]", &m, err, sizeof(err)), 0);
    ASSERT(m == NULL);

    ASSERT_EQ(compile_text("[{\"uri\": {\"prefx\": \"/a\"}}]", &m, err, sizeof(err)), -1);
    ASSERT(m == NULL);
    ASSERT_STREQ(err, "match[0].uri.prefx: unknown field; did you mean \"prefix\"? (body, line 1, "
                      "column 11)");
    ASSERT_EQ(compile_text("{\"uri\": {}}", &m, err, sizeof(err)), -1);
    ASSERT(strncmp(err, "match: ", 7) == 0);
}
