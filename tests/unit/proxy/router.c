/* tests/unit/proxy/router.c: route selection over a compiled snapshot. Heads come from the
 * real codec and the snapshot from the real loader, so this tests what a request meets. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/config_yaml.h"
#include "proxy/http1.h"
#include "proxy/route_action.h"
#include "proxy/router.h"
#include "xds/file_source.h"

static const char config_yaml[] =
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: a}\n"
    "spec:\n"
    "  hosts: [a.example.com]\n"
    "  gateways: [gw]\n"
    "  http:\n"
    "  - name: a-only\n"
    "    directResponse: {status: 201}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: all}\n"
    "spec:\n"
    "  hosts: ['*']\n"
    "  gateways: [gw]\n"
    "  http:\n"
    "  - name: exact\n"
    "    match: [{uri: {exact: /exact}}]\n"
    "    directResponse: {status: 202}\n"
    "  - name: post-api\n"
    "    match: [{uri: {prefix: /api/}, method: {exact: POST}}]\n"
    "    directResponse: {status: 203}\n"
    "  - name: jason\n"
    "    match: [{headers: {end-user: {exact: jason}}}, {headers: {x-canary: {prefix: 'yes'}}}]\n"
    "    directResponse: {status: 204}\n"
    "  - name: split\n"
    "    route:\n"
    "    - destination: {host: v1.local, port: {number: 80}}\n"
    "      weight: 80\n"
    "    - destination: {host: v2.local, port: {number: 80}}\n"
    "      weight: 20\n";

static pt_config_t *load_config(void)
{
    char dir[] = "/tmp/pt-router-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(config_yaml, f);
    fclose(f);
    const char *paths[] = {path};
    pt_config_errors_t errors = {0};
    pt_config_t *c = pt_config_load(paths, 1, &errors);
    for (size_t i = 0; i < errors.n; i++)
        fprintf(stderr, "%s\n", errors.lines[i]);
    ASSERT(c != NULL);
    pt_config_errors_dispose(&errors);
    unlink(path);
    rmdir(dir);
    return c;
}

static pt_http_msg_t *saved_head;
static int on_head(pt_http1_parser_t *p, pt_http_msg_t *h)
{
    saved_head = h;
    return 0;
}
static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    return 0;
}
static int on_complete(pt_http1_parser_t *p)
{
    return 0;
}
static const pt_http1_callbacks_t cbs = {on_head, on_body, NULL, on_complete};

static pt_http_msg_t *head_of(pt_arena_t *a, const char *raw)
{
    pt_http1_parser_t p;
    pt_http1_parser_init(&p, false, &cbs, NULL, NULL);
    pt_http1_parser_set_arena(&p, a);
    size_t consumed;
    saved_head = NULL;
    int r = pt_http1_parser_execute(&p, raw, strlen(raw), &consumed);
    ASSERT(r >= 0);
    ASSERT(saved_head != NULL);
    return saved_head;
}

static const char *route_for(pt_config_t *c, pt_arena_t *a, const char *raw)
{
    const pt_http_route_t *r = pt_router_match(&c->listeners[0], head_of(a, raw));
    return r ? r->name : "(none)";
}

TEST(exact_host_beats_wildcard)
{
    pt_config_t *c = load_config();
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(route_for(c, &a, "GET /x HTTP/1.1\r\nHost: a.example.com\r\n\r\n"), "a-only");
    ASSERT_STREQ(route_for(c, &a, "GET /x HTTP/1.1\r\nHost: A.Example.COM:8080\r\n\r\n"), "a-only");
    ASSERT_STREQ(route_for(c, &a, "GET /x HTTP/1.1\r\nHost: b.example.com\r\n\r\n"), "split");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(uri_method_and_header_matches)
{
    pt_config_t *c = load_config();
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(route_for(c, &a, "GET /exact HTTP/1.1\r\nHost: h\r\n\r\n"), "exact");
    ASSERT_STREQ(route_for(c, &a, "GET /exact?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"), "exact");
    ASSERT_STREQ(route_for(c, &a, "GET /exact/more HTTP/1.1\r\nHost: h\r\n\r\n"), "split");
    ASSERT_STREQ(route_for(c, &a, "POST /api/v1 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
                 "post-api");
    ASSERT_STREQ(route_for(c, &a, "GET /api/v1 HTTP/1.1\r\nHost: h\r\n\r\n"), "split");
    ASSERT_STREQ(route_for(c, &a, "GET / HTTP/1.1\r\nHost: h\r\nEnd-User: jason\r\n\r\n"), "jason");
    ASSERT_STREQ(route_for(c, &a, "GET / HTTP/1.1\r\nHost: h\r\nend-user: jasonx\r\n\r\n"),
                 "split");
    ASSERT_STREQ(route_for(c, &a, "GET / HTTP/1.1\r\nHost: h\r\nx-canary: yes-please\r\n\r\n"),
                 "jason");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(weighted_split_follows_weights)
{
    pt_config_t *c = load_config();
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    const pt_http_route_t *r =
        pt_router_match(&c->listeners[0], head_of(&a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT(r != NULL);
    ASSERT_EQ(r->total_weight, 100);
    /* Every residue of 100 once: exactly 80 land on v1. */
    int v1 = 0;
    for (uint32_t x = 0; x < 100; x++)
        if (strcmp(pt_router_pick_cluster(r, x)->host, "v1.local") == 0)
            v1++;
    ASSERT_EQ(v1, 80);
    ASSERT_STREQ(pt_router_pick_cluster(r, 79)->host, "v1.local");
    ASSERT_STREQ(pt_router_pick_cluster(r, 80)->host, "v2.local");
    ASSERT_STREQ(pt_router_pick_cluster(r, UINT32_MAX)->host,
                 "v2.local"); /* 4294967295 % 100 = 95 */
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

/* ---- every HTTPMatchRequest kind ----------------------------------------------------- */

static const char match_yaml[] =
    "apiVersion: petrel.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p}\n"
    "spec:\n"
    "  workload: {name: gw, namespace: istio-system, labels: {app: ingress, tier: edge}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: m}\n"
    "spec:\n"
    "  hosts: ['*']\n"
    "  gateways: [gw]\n"
    "  http:\n"
    "  - name: regex\n"
    "    match: [{uri: {regex: '/r/[0-9]+'}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: alt\n"
    "    match: [{uri: {regex: '/a|/ab'}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: nocase\n"
    "    match: [{uri: {prefix: /Case/}, ignoreUriCase: true}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: case-exact\n"
    "    match: [{uri: {exact: /Exact}, ignoreUriCase: true}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: method-prefix\n"
    "    match: [{method: {prefix: PU}, uri: {prefix: /m}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: method-regex\n"
    "    match: [{method: {regex: 'DEL.*'}, uri: {prefix: /m}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: scheme-https\n"
    "    match: [{scheme: {exact: https}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: scheme-http\n"
    "    match: [{scheme: {exact: http}, uri: {prefix: /scheme}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: authority\n"
    "    match: [{authority: {regex: 'api\\.[a-z]+\\.com(:[0-9]+)?'}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: authority-prefix\n"
    "    match: [{authority: {prefix: www.}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: header-regex\n"
    "    match: [{headers: {x-version: {regex: 'v[12]'}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: evil\n"
    "    match: [{headers: {x-evil: {regex: '(a|a)+'}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: header-present\n"
    "    match: [{headers: {x-present: {}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: without\n"
    "    match: [{uri: {prefix: /w}, withoutHeaders: {x-block: {exact: 'yes'}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: without-present\n"
    "    match: [{uri: {prefix: /np}, withoutHeaders: {x-any: {}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: query\n"
    "    match: [{queryParams: {env: {exact: prod}, id: {regex: '[0-9]+'}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: query-present\n"
    "    match: [{queryParams: {debug: {}}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: port-other\n"
    "    match: [{port: 9999, uri: {prefix: /port}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: port-this\n"
    "    match: [{port: 8080, uri: {prefix: /port}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: src-other\n"
    "    match: [{sourceLabels: {app: reviews}, uri: {prefix: /src}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: src-ns-other\n"
    "    match: [{sourceNamespace: default, uri: {prefix: /src}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: src-this\n"
    "    match: [{sourceLabels: {app: ingress}, sourceNamespace: istio-system, uri: {prefix: "
    "/src}}]\n"
    "    directResponse: {status: 200}\n"
    "  - name: fallback\n"
    "    directResponse: {status: 404}\n";

#define ROUTE(raw) route_for(c, &a, raw)
#define GET(path) "GET " path " HTTP/1.1\r\nHost: h\r\n\r\n"

TEST(regex_is_full_match)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(ROUTE(GET("/r/123")), "regex");
    ASSERT_STREQ(ROUTE(GET("/r/123?x=1")), "regex");  /* the query is not part of the URI */
    ASSERT_STREQ(ROUTE(GET("/r/123/x")), "fallback"); /* RE2 FullMatch: no partial match */
    ASSERT_STREQ(ROUTE(GET("/x/r/123")), "fallback");
    ASSERT_STREQ(ROUTE(GET("/r/")), "fallback");
    /* An alternation is anchored as a whole: "ab" matches the second branch. */
    ASSERT_STREQ(ROUTE(GET("/ab")), "alt");
    ASSERT_STREQ(ROUTE(GET("/abc")), "fallback");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(regex_match_limit_bounds_backtracking)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    char raw[256];
    /* (a|a)+ against 40 a's and a b: 2^40 paths without a limit. */
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\nx-evil: %s\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_STREQ(ROUTE(raw), "fallback");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ASSERT(ms < 500);
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\nx-evil: aaaa\r\n\r\n");
    ASSERT_STREQ(ROUTE(raw), "evil");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(ignore_uri_case)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(ROUTE(GET("/case/x")), "nocase");
    ASSERT_STREQ(ROUTE(GET("/CASE/x")), "nocase");
    ASSERT_STREQ(ROUTE(GET("/exact")), "case-exact");
    ASSERT_STREQ(ROUTE(GET("/EXACT")), "case-exact");
    ASSERT_STREQ(ROUTE(GET("/exactx")), "fallback");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(method_scheme_authority)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(ROUTE("PUT /m HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), "method-prefix");
    ASSERT_STREQ(ROUTE("DELETE /m HTTP/1.1\r\nHost: h\r\n\r\n"), "method-regex");
    ASSERT_STREQ(ROUTE("GET /m HTTP/1.1\r\nHost: h\r\n\r\n"), "fallback");
    ASSERT_STREQ(ROUTE(GET("/scheme")), "scheme-http"); /* never "https" on plaintext */
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), "authority");
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n"), "authority");
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: api.example.org.evil\r\n\r\n"), "fallback");
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: www.a.com\r\n\r\n"), "authority-prefix");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(headers_and_without_headers)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: h\r\nX-Version: v2\r\n\r\n"), "header-regex");
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: h\r\nX-Version: v22\r\n\r\n"), "fallback");
    ASSERT_STREQ(ROUTE("GET / HTTP/1.1\r\nHost: h\r\nx-present: \r\n\r\n"), "header-present");
    ASSERT_STREQ(ROUTE("GET /w HTTP/1.1\r\nHost: h\r\n\r\n"), "without");
    ASSERT_STREQ(ROUTE("GET /w HTTP/1.1\r\nHost: h\r\nx-block: no\r\n\r\n"), "without");
    ASSERT_STREQ(ROUTE("GET /w HTTP/1.1\r\nHost: h\r\nX-Block: yes\r\n\r\n"), "fallback");
    ASSERT_STREQ(ROUTE("GET /np HTTP/1.1\r\nHost: h\r\n\r\n"), "without-present");
    ASSERT_STREQ(ROUTE("GET /np HTTP/1.1\r\nHost: h\r\nx-any: 1\r\n\r\n"), "fallback");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(query_params)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(ROUTE(GET("/q?env=prod&id=42")), "query");
    ASSERT_STREQ(ROUTE(GET("/q?id=42&x&env=prod")), "query");
    ASSERT_STREQ(ROUTE(GET("/q?env=prod&id=42x")), "fallback"); /* regex is a full match */
    ASSERT_STREQ(ROUTE(GET("/q?env=production&id=1")), "fallback");
    ASSERT_STREQ(ROUTE(GET("/q?env=prod")), "fallback");
    ASSERT_STREQ(ROUTE(GET("/q?debug")), "query-present");
    ASSERT_STREQ(ROUTE(GET("/q?a=1&debug=")), "query-present");
    ASSERT_STREQ(ROUTE(GET("/q?debugx=1")), "fallback");
    ASSERT_STREQ(ROUTE(GET("/debug")), "fallback");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(port_and_source_workload)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", match_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(c->proxy.workload.ns, "istio-system");
    ASSERT_STREQ(ROUTE(GET("/port")), "port-this");
    ASSERT_STREQ(ROUTE(GET("/src")), "src-this");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(source_labels_default_workload)
{
    /* No Proxy: namespace "default", no labels. A sourceLabels match never holds; a
     * sourceNamespace "default" one does. */
    const char *y = strstr(match_yaml, "apiVersion: networking.istio.io/v1\nkind: Gateway");
    pt_config_t *c = config_from_yaml_ok("c.yaml", y);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(c->proxy.workload.ns, "default");
    ASSERT_STREQ(ROUTE(GET("/src")), "src-ns-other");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

/* ---- config errors ------------------------------------------------------------------- */

static bool has_line(const pt_config_errors_t *e, const char *want)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->lines[i], want) != NULL)
            return true;
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "  got: %s\n", e->lines[i]);
    return false;
}

TEST(invalid_regex_and_limits_are_config_errors)
{
    char big[1200];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: networking.istio.io/v1\n"
             "kind: Gateway\n"
             "metadata: {name: gw}\n"
             "spec: {servers: [{port: {number: 8080, protocol: HTTP}, hosts: ['*']}]}\n"
             "---\n"
             "apiVersion: networking.istio.io/v1\n"
             "kind: VirtualService\n"
             "metadata: {name: m}\n"
             "spec:\n"
             "  hosts: ['*']\n"
             "  gateways: [gw]\n"
             "  http:\n"
             "  - match: [{uri: {regex: '(unclosed'}}]\n"
             "    directResponse: {status: 200}\n"
             "  - match: [{queryParams: {a: {prefix: x}}}]\n"
             "    directResponse: {status: 200}\n"
             "  - match: [{headers: {x: {regex: '%s'}}}]\n"
             "    directResponse: {status: 200}\n"
             "  - redirect: {uri: /x}\n"
             "    rewrite: {uri: /y}\n"
             "  - redirect: {uri: /x}\n"
             "    directResponse: {status: 200}\n"
             "  - redirect: {redirectCode: 304}\n"
             "  - headers: {request: {set: {host: a}, remove: [content-length]}}\n"
             "    directResponse: {status: 200}\n"
             "  - rewrite: {uriRegexRewrite: {match: '^/(a)', rewrite: '\\2'}}\n"
             "    directResponse: {status: 200}\n",
             big);
    pt_config_errors_t e = {0};
    ASSERT(config_from_yaml("c.yaml", yaml, &e) == NULL);
    ASSERT(has_line(&e, "c.yaml:13:20: spec.http[0].match[0].uri.regex: invalid regex at offset"));
    ASSERT(has_line(&e, "c.yaml:15:32: spec.http[1].match[0].queryParams.a.prefix: not supported "
                        "for query parameters"));
    ASSERT(has_line(&e, "spec.http[2].match[0].headers.x.regex: longer than 1024 bytes"));
    ASSERT(has_line(&e, "c.yaml:19:5: spec.http[3]: rewrite and redirect are exclusive"));
    ASSERT(has_line(&e, "c.yaml:21:5: spec.http[4]: redirect, route and directResponse are "
                        "exclusive"));
    ASSERT(has_line(&e, "spec.http[5].redirect.redirectCode: must be 301, 302, 303, 307 or 308"));
    ASSERT(has_line(&e, "spec.http[5].redirect: needs uri, authority, scheme, port or derivePort"));
    ASSERT(has_line(&e, "spec.http[6].headers.request.set.host: Host cannot be set here"));
    ASSERT(has_line(&e, "spec.http[6].headers.request.remove[0]: content-length is written by "
                        "Petrel itself"));
    ASSERT(has_line(&e, "spec.http[7].rewrite.uriRegexRewrite.rewrite: refers to group \\2 but "
                        "the regex has 1"));
    pt_config_errors_dispose(&e);
}

/* ---- route actions (pure parts) ------------------------------------------------------ */

static const char action_yaml[] =
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec: {servers: [{port: {number: 8080, protocol: HTTP}, hosts: ['*']}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: m}\n"
    "spec:\n"
    "  hosts: ['*']\n"
    "  gateways: [gw]\n"
    "  http:\n"
    "  - name: prefix\n"
    "    match: [{uri: {prefix: /old/}}]\n"
    "    rewrite: {uri: /new/}\n"
    "    directResponse: {status: 200}\n"
    "  - name: exact\n"
    "    match: [{uri: {exact: /e}}]\n"
    "    rewrite: {uri: /whole}\n"
    "    directResponse: {status: 200}\n"
    "  - name: regex\n"
    "    match: [{uri: {prefix: /service/}}]\n"
    "    rewrite: {uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: "
    "'\\2/instance/\\1'}}\n"
    "    directResponse: {status: 200}\n"
    "  - name: global\n"
    "    match: [{uri: {prefix: /g}}]\n"
    "    rewrite: {uriRegexRewrite: {match: 'o', rewrite: '0'}}\n"
    "    directResponse: {status: 200}\n"
    "  - name: redirect\n"
    "    match: [{uri: {prefix: /r1}}]\n"
    "    redirect: {uri: /moved}\n"
    "  - name: redirect-q\n"
    "    match: [{uri: {prefix: /r2}}]\n"
    "    redirect: {uri: '/moved?b=2', authority: other.com, scheme: https, port: 8443}\n"
    "  - name: redirect-derive\n"
    "    match: [{uri: {prefix: /r3}}]\n"
    "    redirect: {derivePort: FROM_REQUEST_PORT, redirectCode: 308}\n"
    "  - name: redirect-scheme\n"
    "    match: [{uri: {prefix: /r4}}]\n"
    "    redirect: {scheme: https}\n";

static const char *rewritten(pt_config_t *c, pt_arena_t *a, const char *raw)
{
    pt_http_msg_t *h = head_of(a, raw);
    const pt_http_match_t *m;
    const pt_http_route_t *r = pt_router_match_detail(&c->listeners[0], h, &m);
    ASSERT(r != NULL);
    pt_str_t p = pt_route_action_rewrite_path_of(a, r->rewrite, m, h->path);
    return pt_arena_strndup(a, p.base, p.len);
}

static const char *location(pt_config_t *c, pt_arena_t *a, const char *raw)
{
    pt_http_msg_t *h = head_of(a, raw);
    const pt_http_route_t *r = pt_router_match(&c->listeners[0], h);
    ASSERT(r != NULL && r->redirect != NULL);
    pt_str_t l = pt_route_action_location_of(a, r->redirect, h, 8080);
    return pt_arena_strndup(a, l.base, l.len);
}

TEST(uri_rewrites)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", action_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(rewritten(c, &a, GET("/old/x/y?q=1")), "/new/x/y?q=1");
    ASSERT_STREQ(rewritten(c, &a, GET("/e?z")), "/whole?z");
    ASSERT_STREQ(rewritten(c, &a, GET("/service/foo/bar?k=v")), "/bar/instance/foo?k=v");
    ASSERT_STREQ(rewritten(c, &a, GET("/goo/boo?o=o")), "/g00/b00?o=o");
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(redirect_locations)
{
    pt_config_t *c = config_from_yaml_ok("c.yaml", action_yaml);
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    ASSERT_STREQ(location(c, &a, "GET /r1/a?x=1 HTTP/1.1\r\nHost: h.com:8080\r\n\r\n"),
                 "http://h.com:8080/moved?x=1");
    ASSERT_STREQ(location(c, &a, "GET /r2?x=1 HTTP/1.1\r\nHost: h.com\r\n\r\n"),
                 "https://other.com:8443/moved?b=2");
    ASSERT_STREQ(location(c, &a, "GET /r3?x=1 HTTP/1.1\r\nHost: h.com:1234\r\n\r\n"),
                 "http://h.com:8080/r3?x=1");
    ASSERT_STREQ(location(c, &a, "GET /r4 HTTP/1.1\r\nHost: h.com:80\r\n\r\n"), "https://h.com/r4");
    ASSERT_STREQ(location(c, &a, "GET /r4 HTTP/1.1\r\nHost: h.com:81\r\n\r\n"),
                 "https://h.com:81/r4");
    const pt_http_route_t *r =
        pt_router_match(&c->listeners[0], head_of(&a, "GET /r3 HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ(r->redirect->code, 308);
    pt_arena_dispose(&a);
    pt_config_unref(c);
}

TEST(header_ops_order)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_header_t in[] = {{PT_STR_LIT("A"), PT_STR_LIT("1"), 0},
                        {PT_STR_LIT("B"), PT_STR_LIT("2"), 0},
                        {PT_STR_LIT("c"), PT_STR_LIT("3"), 0},
                        {PT_STR_LIT("a"), PT_STR_LIT("4"), 0}};
    pt_header_op_t set[] = {{"a", 1, "x", 1}};
    pt_header_op_t add[] = {{"b", 1, "y", 1}};
    pt_header_op_t rm[] = {{"c", 1, NULL, 0}};
    pt_header_ops_t ops = {set, add, rm, 1, 1, 1};
    const pt_header_t *out;
    size_t n = pt_route_action_apply_ops(&a, in, 4, &ops, &out);
    ASSERT_EQ(n, 3);
    ASSERT(pt_str_eq(out[0].name, PT_STR_LIT("B")) && pt_str_eq(out[0].value, PT_STR_LIT("2")));
    ASSERT(pt_str_eq(out[1].name, PT_STR_LIT("a")) && pt_str_eq(out[1].value, PT_STR_LIT("x")));
    ASSERT(pt_str_eq(out[2].name, PT_STR_LIT("b")) && pt_str_eq(out[2].value, PT_STR_LIT("y")));
    pt_header_ops_t none = {0};
    ASSERT_EQ(pt_route_action_apply_ops(&a, in, 4, &none, &out), 4);
    ASSERT(out == in);
    pt_arena_dispose(&a);
}

/* A match value holds all of its bytes, a YAML "\0" included: the compiled value is compared
 * over its length, so a copy cut at the NUL would be read past its end. */
TEST(match_value_keeps_an_escaped_nul)
{
    static const char yaml[] =
        "apiVersion: networking.istio.io/v1\n"
        "kind: Gateway\n"
        "metadata: {name: gw}\n"
        "spec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        "metadata: {name: m}\n"
        "spec:\n"
        "  hosts: ['*']\n"
        "  gateways: [gw]\n"
        "  http:\n"
        "  - match: [{uri: {exact: \"/a\\0b\"}}]\n"
        "    directResponse: {status: 200}\n";
    pt_config_t *c = config_from_yaml_ok("c.yaml", yaml);
    const pt_string_match_t *uri = &c->listeners[0].vhosts[0].routes[0].matches[0].uri;
    ASSERT_EQ(uri->len, 4u);
    ASSERT(memcmp(uri->value, "/a\0b", 4) == 0);
    pt_config_unref(c);
}
