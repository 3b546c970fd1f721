/* tests/unit/proxy/router.c: route selection over a compiled snapshot. Heads come from the
 * real codec and the snapshot from the real loader, so this tests what a request meets. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "proxy/http1.h"
#include "proxy/router.h"

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

static pt_http1_head_t *saved_head;
static int on_head(pt_http1_parser_t *p, pt_http1_head_t *h)
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

static pt_http1_head_t *head_of(pt_arena_t *a, const char *raw)
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
