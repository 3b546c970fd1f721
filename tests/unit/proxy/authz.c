/* tests/unit/proxy/authz.c
 * AuthorizationPolicy evaluation on policies loaded from YAML (config/kind_authorization_policy.c
 * compiles, proxy/authz.c decides), with what the e2e tests cannot give yet: a verified peer
 * principal (mTLS is another branch). Covers Istio's builder cases that turn on principals and
 * service accounts, namespaces derived from the principal, path templates and Istio's rules for
 * HTTP fields on TCP connections. */
#include <string.h>

#include "config/config.h"
#include "config/load_helpers.h"
#include "proxy/authz.h"
#include "test.h"

static const char *const workload_foo = "apiVersion: petrel.io/v1alpha1\n"
                                        "kind: Proxy\n"
                                        "metadata: {name: p}\n"
                                        "spec:\n"
                                        "  workload:\n"
                                        "    namespace: foo\n"
                                        "    labels: {app: httpbin, version: v1}\n"
                                        "---\n";

static pt_config_t *load_policy(const char *policy, pt_config_errors_t *e)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf), "%s%s", workload_foo, policy);
    pt_config_t *c = load_str("ap.yaml", buf, e);
    if (c == NULL)
        dump(e);
    return c;
}

static pt_http_msg_t head(const char *method, const char *path)
{
    pt_http_msg_t h;
    memset(&h, 0, sizeof(h));
    h.method = pt_str(method);
    h.path = pt_str(path);
    h.authority = pt_str("example.com");
    return h;
}

static pt_authz_verdict_t check(const pt_config_t *c, const pt_http_msg_t *h, const char *principal)
{
    pt_authz_request_t req = {
        .head = h, .principal = principal, .dest_port = 80, .peer_ip = "10.1.2.3"};
    return pt_authz_check(c->authz, &req).verdict;
}

TEST(deny_and_allow_by_principal_as_istio_builder)
{
    /* authz-builder/deny-and-allow: principals "deny" (DENY) and "allow" (ALLOW). */
    pt_config_errors_t e = {0};
    pt_config_t *c = load_policy("apiVersion: security.istio.io/v1\n"
                                 "kind: AuthorizationPolicy\n"
                                 "metadata: {name: httpbin-deny, namespace: foo}\n"
                                 "spec:\n"
                                 "  action: DENY\n"
                                 "  rules: [{from: [{source: {principals: [deny]}}]}]\n"
                                 "---\n"
                                 "apiVersion: security.istio.io/v1\n"
                                 "kind: AuthorizationPolicy\n"
                                 "metadata: {name: httpbin-allow, namespace: foo}\n"
                                 "spec:\n"
                                 "  action: ALLOW\n"
                                 "  rules: [{from: [{source: {principals: [allow]}}]}]\n",
                                 &e);
    ASSERT(c != NULL && c->authz != NULL);
    pt_http_msg_t h = head("GET", "/");
    ASSERT_EQ(check(c, &h, "allow"), PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, "other"), PT_AUTHZ_NOT_ALLOWED);
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_NOT_ALLOWED);
    pt_authz_request_t req = {.head = &h, .principal = "deny"};
    pt_authz_result_t r = pt_authz_check(c->authz, &req);
    ASSERT_EQ(r.verdict, PT_AUTHZ_DENIED);
    char buf[128];
    ASSERT_STREQ(pt_authz_details(&r, buf, sizeof(buf)),
                 "rbac_access_denied_matched_policy[ns[foo]-policy[httpbin-deny]-rule[0]]");
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(service_accounts_and_namespaces_come_from_the_principal)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_policy("apiVersion: security.istio.io/v1\n"
                                 "kind: AuthorizationPolicy\n"
                                 "metadata: {name: sa, namespace: foo}\n"
                                 "spec:\n"
                                 "  rules:\n"
                                 "  - from: [{source: {serviceAccounts: [my-ns/my-sa, sa-only],\n"
                                 "                     notServiceAccounts: [my-ns/my-sa-not]}}]\n"
                                 "  - from: [{source: {namespaces: [ns-prefix-*, '*-suffix'], "
                                 "notNamespaces: [ns-prefix-no]}}]\n"
                                 "  - from: [{source: {principals: ['*/sa/admin']}}]\n",
                                 &e);
    ASSERT(c != NULL);
    pt_http_msg_t h = head("GET", "/");
    ASSERT_EQ(check(c, &h, "cluster.local/ns/my-ns/sa/my-sa"), PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, "td.example/ns/foo/sa/sa-only"), PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, "cluster.local/ns/my-ns/sa/my-sa-not"), PT_AUTHZ_NOT_ALLOWED);
    ASSERT_EQ(check(c, &h, "cluster.local/ns/bar/sa/sa-only"), PT_AUTHZ_NOT_ALLOWED);
    ASSERT_EQ(check(c, &h, "cluster.local/ns/ns-prefix-a/sa/x"), PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, "cluster.local/ns/a-suffix/sa/x"), PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, "cluster.local/ns/ns-prefix-no/sa/x"), PT_AUTHZ_NOT_ALLOWED);
    ASSERT_EQ(check(c, &h, "cluster.local/ns/x/sa/admin"), PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_NOT_ALLOWED);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(path_templates_and_wildcards)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_policy("apiVersion: security.istio.io/v1\n"
                                 "kind: AuthorizationPolicy\n"
                                 "metadata: {name: p, namespace: foo}\n"
                                 "spec:\n"
                                 "  rules:\n"
                                 "  - to: [{operation: {paths: ['/path/template/{*}', "
                                 "'/{**}/tail', /exact, '/prefix/*', '*.css'],\n"
                                 "                      notPaths: ['/prefix/no']}}]\n",
                                 &e);
    ASSERT(c != NULL);
    static const struct {
        const char *path;
        pt_authz_verdict_t want;
    } cases[] = {
        {"/path/template/x", PT_AUTHZ_PASS},
        {"/path/template/x/y", PT_AUTHZ_NOT_ALLOWED},
        {"/path/template/", PT_AUTHZ_NOT_ALLOWED},
        {"/a/b/tail", PT_AUTHZ_PASS},
        {"/exact?q=1", PT_AUTHZ_PASS},
        {"/exact/", PT_AUTHZ_NOT_ALLOWED},
        {"/prefix/a", PT_AUTHZ_PASS},
        {"/prefix/no", PT_AUTHZ_NOT_ALLOWED},
        {"/s/site.css", PT_AUTHZ_PASS},
        {"/other", PT_AUTHZ_NOT_ALLOWED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pt_http_msg_t h = head("GET", cases[i].path);
        if (check(c, &h, NULL) != cases[i].want) {
            fprintf(stderr, "path %s\n", cases[i].path);
            ASSERT(0);
        }
    }
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(http_fields_on_tcp_follow_istio)
{
    /* ALLOW with HTTP fields: never matches on TCP. DENY: evaluated without them. */
    pt_config_errors_t e = {0};
    pt_config_t *c = load_policy("apiVersion: security.istio.io/v1\n"
                                 "kind: AuthorizationPolicy\n"
                                 "metadata: {name: allow-get, namespace: foo}\n"
                                 "spec:\n"
                                 "  rules: [{to: [{operation: {methods: [GET]}}]}]\n",
                                 &e);
    ASSERT(c != NULL);
    pt_authz_request_t tcp = {.dest_port = 80, .peer_ip = "10.1.2.3"};
    ASSERT_EQ(pt_authz_check(c->authz, &tcp).verdict, PT_AUTHZ_NOT_ALLOWED);
    pt_http_msg_t h = head("GET", "/");
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_PASS);
    pt_config_unref(c);

    c = load_policy("apiVersion: security.istio.io/v1\n"
                    "kind: AuthorizationPolicy\n"
                    "metadata: {name: deny-post, namespace: foo}\n"
                    "spec:\n"
                    "  action: DENY\n"
                    "  rules:\n"
                    "  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]\n"
                    "    to: [{operation: {methods: [POST]}}]\n"
                    "    when: [{key: 'request.headers[x-a]', values: ['*']}]\n",
                    &e);
    ASSERT(c != NULL);
    ASSERT_EQ(pt_authz_check(c->authz, &tcp).verdict, PT_AUTHZ_DENIED);
    pt_authz_request_t other = {.dest_port = 80, .peer_ip = "192.168.0.1"};
    ASSERT_EQ(pt_authz_check(c->authz, &other).verdict, PT_AUTHZ_PASS);
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_PASS); /* HTTP: GET is not POST */
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(value_patterns)
{
    pt_authz_value_t exact = {.kind = PT_AUTHZ_EXACT, .s = "ab", .len = 2};
    pt_authz_value_t prefix = {.kind = PT_AUTHZ_PREFIX, .s = "ab", .len = 2};
    pt_authz_value_t suffix = {.kind = PT_AUTHZ_SUFFIX, .s = "ab", .len = 2};
    pt_authz_value_t present = {.kind = PT_AUTHZ_PRESENT};
    ASSERT(pt_authz_value_matches(&exact, "ab", 2, false));
    ASSERT(!pt_authz_value_matches(&exact, "AB", 2, false));
    ASSERT(pt_authz_value_matches(&exact, "AB", 2, true));
    ASSERT(pt_authz_value_matches(&prefix, "abc", 3, false));
    ASSERT(!pt_authz_value_matches(&prefix, "a", 1, false));
    ASSERT(pt_authz_value_matches(&suffix, "cab", 3, false));
    ASSERT(!pt_authz_value_matches(&suffix, "abc", 3, false));
    ASSERT(pt_authz_value_matches(&present, "x", 1, false));
    ASSERT(!pt_authz_value_matches(&present, "", 0, false));
}

TEST(header_star_is_presence_even_when_empty)
{
    /* Envoy's presentMatch for request.headers "*"; repeated lines are joined with ",". */
    pt_config_errors_t e = {0};
    pt_config_t *c = load_policy("apiVersion: security.istio.io/v1\n"
                                 "kind: AuthorizationPolicy\n"
                                 "metadata: {name: h, namespace: foo}\n"
                                 "spec:\n"
                                 "  rules:\n"
                                 "  - when: [{key: 'request.headers[X-A]', values: ['*']}]\n"
                                 "  - when: [{key: 'request.headers[x-b]', values: ['1,2']}]\n",
                                 &e);
    ASSERT(c != NULL);
    pt_header_t hs[1] = {{pt_str("x-a"), pt_str(""), 0}};
    pt_http_msg_t h = head("GET", "/");
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_NOT_ALLOWED);
    h.headers = hs;
    h.n_headers = 1;
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_PASS);
    pt_header_t two[2] = {{pt_str("X-B"), pt_str("1"), 0}, {pt_str("x-b"), pt_str("2"), 0}};
    h.headers = two;
    h.n_headers = 1;
    ASSERT_EQ(check(c, &h, NULL), PT_AUTHZ_NOT_ALLOWED); /* "1" alone */
    h.n_headers = 2;
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_authz_request_t req = {.head = &h, .arena = &a};
    ASSERT_EQ(pt_authz_check(c->authz, &req).verdict, PT_AUTHZ_PASS); /* "1,2" */
    pt_arena_dispose(&a);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(paths_are_matched_with_dot_segments_removed)
{
    pt_config_errors_t e = {0};
    pt_config_t *c =
        load_policy("apiVersion: security.istio.io/v1\n"
                    "kind: AuthorizationPolicy\n"
                    "metadata: {name: d, namespace: foo}\n"
                    "spec:\n"
                    "  action: DENY\n"
                    "  rules: [{to: [{operation: {paths: ['/admin', '/admin/*']}}]}]\n",
                    &e);
    ASSERT(c != NULL);
    static const struct {
        const char *path;
        pt_authz_verdict_t want;
    } cases[] = {
        {"/admin/x", PT_AUTHZ_DENIED},           {"/public/../admin/x", PT_AUTHZ_DENIED},
        {"/./admin/./x?a=/..", PT_AUTHZ_DENIED}, {"/a/b/../../admin", PT_AUTHZ_DENIED},
        {"/../admin", PT_AUTHZ_DENIED},          {"/admin/..", PT_AUTHZ_PASS}, /* "/" */
        {"/x/admin/..a", PT_AUTHZ_PASS},         {"/admin.", PT_AUTHZ_PASS},
        {"/admin/.", PT_AUTHZ_DENIED}, /* "/admin/" */
    };
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pt_http_msg_t h = head("GET", cases[i].path);
        pt_authz_request_t req = {.head = &h, .arena = &a};
        if (pt_authz_check(c->authz, &req).verdict != cases[i].want) {
            fprintf(stderr, "path %s\n", cases[i].path);
            ASSERT(0);
        }
    }
    pt_arena_dispose(&a);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

/* Istio's docs task authz-http, steps 1-5, as files: the 200s it expects for callers with a
 * principal (which the e2e tests cannot produce without mTLS) and the 403s for the others. */
static char *read_snippet(int step)
{
    char path[256];
    snprintf(path, sizeof(path),
             "../shared/acceptance/istio/docs-tasks/authz-http/"
             "snip_configure_access_control_for_workloads_using_http_traffic_%d.yaml",
             step);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char bufs[5][2048];
    char *b = bufs[step - 1];
    size_t n = fread(b, 1, sizeof(bufs[0]) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

TEST(docs_authz_http_with_principals)
{
    static char yaml[16384];
    size_t n = 0;
    for (int step = 1; step <= 5; step++) {
        char *s = read_snippet(step);
        ASSERT(s != NULL); /* ../shared/acceptance beside the repo, as the e2e tests use */
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "---\n%s", s);
    }
    static const struct {
        const char *app, *principal, *method;
        pt_authz_verdict_t want;
    } cases[] = {
        {"productpage", NULL, "GET", PT_AUTHZ_PASS},
        {"productpage", NULL, "POST", PT_AUTHZ_NOT_ALLOWED},
        {"details", "cluster.local/ns/default/sa/bookinfo-productpage", "GET", PT_AUTHZ_PASS},
        {"details", "cluster.local/ns/default/sa/bookinfo-productpage", "POST",
         PT_AUTHZ_NOT_ALLOWED},
        {"details", "cluster.local/ns/default/sa/sleep", "GET", PT_AUTHZ_NOT_ALLOWED},
        {"details", NULL, "GET", PT_AUTHZ_NOT_ALLOWED},
        {"reviews", "cluster.local/ns/default/sa/bookinfo-productpage", "GET", PT_AUTHZ_PASS},
        {"ratings", "cluster.local/ns/default/sa/bookinfo-reviews", "GET", PT_AUTHZ_PASS},
        {"ratings", "cluster.local/ns/default/sa/bookinfo-productpage", "GET",
         PT_AUTHZ_NOT_ALLOWED},
        {"other", "cluster.local/ns/default/sa/bookinfo-productpage", "GET",
         PT_AUTHZ_NOT_ALLOWED}, /* allow-nothing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        static char doc[20000];
        snprintf(doc, sizeof(doc),
                 "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                 "spec: {workload: {namespace: default, labels: {app: %s}}}\n%s",
                 cases[i].app, yaml);
        pt_config_errors_t e = {0};
        pt_config_t *c = load_str("authz-http.yaml", doc, &e);
        if (c == NULL)
            dump(&e);
        ASSERT(c != NULL);
        pt_http_msg_t h = head(cases[i].method, "/");
        if (check(c, &h, cases[i].principal) != cases[i].want) {
            fprintf(stderr, "case %zu: %s %s %s\n", i, cases[i].app, cases[i].method,
                    cases[i].principal ? cases[i].principal : "(none)");
            ASSERT(0);
        }
        pt_config_unref(c);
        pt_config_errors_dispose(&e);
    }
}
