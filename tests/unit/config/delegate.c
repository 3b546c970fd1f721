/* tests/unit/config/delegate.c: merging a root route's match with a delegate route's
 * (config/delegate.c), condition by condition. */
#include "test.h"

#include <string.h>

#include "config/resources.h"

static pt_string_match_t sm(pt_string_match_kind_t kind, const char *v)
{
    return (pt_string_match_t){.kind = kind, .value = v, .len = strlen(v)};
}

static pt_http_match_t uri(pt_string_match_kind_t kind, const char *v)
{
    return (pt_http_match_t){.has_uri = true, .uri = sm(kind, v)};
}

TEST(uri_must_fall_within_the_root)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_http_match_t out;
    pt_http_match_t root = uri(PT_MATCH_PREFIX, "/productpage");
    pt_http_match_t leaf = uri(PT_MATCH_PREFIX, "/productpage/v1");
    ASSERT(pt__cfg_merge_match(&a, &root, &leaf, &out));
    ASSERT_STREQ(out.uri.value, "/productpage/v1");
    leaf = uri(PT_MATCH_EXACT, "/productpage");
    ASSERT(pt__cfg_merge_match(&a, &root, &leaf, &out));
    ASSERT_EQ(out.uri.kind, PT_MATCH_EXACT);
    leaf = uri(PT_MATCH_PREFIX, "/login");
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    leaf = uri(PT_MATCH_REGEX, "/productpage/.*");
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    /* an exact root takes only the same exact value */
    root = uri(PT_MATCH_EXACT, "/a");
    leaf = uri(PT_MATCH_EXACT, "/a");
    ASSERT(pt__cfg_merge_match(&a, &root, &leaf, &out));
    leaf = uri(PT_MATCH_PREFIX, "/a");
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    /* one side without uri: the other's */
    pt_http_match_t none = {0};
    ASSERT(pt__cfg_merge_match(&a, &root, &none, &out));
    ASSERT(out.has_uri && strcmp(out.uri.value, "/a") == 0);
    ASSERT(pt__cfg_merge_match(&a, &none, &root, &out));
    ASSERT(out.has_uri && strcmp(out.uri.value, "/a") == 0);
    pt_arena_dispose(&a);
}

TEST(headers_union_and_conflicts)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_header_match_t rh[] = {{"end-user", sm(PT_MATCH_EXACT, "jason")}};
    pt_header_match_t lh[] = {{"x-a", sm(PT_MATCH_PREFIX, "1")},
                              {"end-user", sm(PT_MATCH_EXACT, "jason")}};
    pt_header_match_t bad[] = {{"end-user", sm(PT_MATCH_EXACT, "bob")}};
    pt_http_match_t root = {.headers = rh, .n_headers = 1};
    pt_http_match_t leaf = {.headers = lh, .n_headers = 2};
    pt_http_match_t out;
    ASSERT(pt__cfg_merge_match(&a, &root, &leaf, &out));
    ASSERT_EQ(out.n_headers, 2); /* the same condition on both sides counts once */
    leaf = (pt_http_match_t){.headers = bad, .n_headers = 1};
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    leaf = (pt_http_match_t){.query_params = lh, .n_query_params = 1};
    ASSERT(pt__cfg_merge_match(&a, &root, &leaf, &out));
    ASSERT(out.n_headers == 1 && out.n_query_params == 1);
    pt_arena_dispose(&a);
}

TEST(ports_namespaces_and_methods)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_http_match_t out;
    pt_http_match_t root = {.port = 80, .source_namespace = "ns1"};
    pt_http_match_t leaf = {.port = 81};
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    leaf = (pt_http_match_t){.source_namespace = "ns2"};
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    leaf = (pt_http_match_t){.has_method = true, .method_match = sm(PT_MATCH_EXACT, "GET")};
    ASSERT(pt__cfg_merge_match(&a, &root, &leaf, &out));
    ASSERT(out.port == 80 && strcmp(out.source_namespace, "ns1") == 0 && out.has_method);
    root.has_method = true;
    root.method_match = sm(PT_MATCH_EXACT, "POST");
    ASSERT(!pt__cfg_merge_match(&a, &root, &leaf, &out));
    pt_arena_dispose(&a);
}

TEST(route_merge_crosses_matches_and_inherits)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_http_match_t rm[] = {uri(PT_MATCH_PREFIX, "/p"), uri(PT_MATCH_PREFIX, "/q")};
    pt_http_match_t lm[] = {uri(PT_MATCH_PREFIX, "/p/1"), uri(PT_MATCH_PREFIX, "/x")};
    pt_header_mutations_t hm = {0};
    pt_http_route_t root = {.matches = rm, .n_matches = 2, .timeout_ms = 5000, .headers = &hm};
    pt_http_route_t leaf = {.matches = lm, .n_matches = 2};
    pt_http_route_t out;
    ASSERT(pt__cfg_merge_delegate_route(&a, &root, &leaf, &out));
    ASSERT_EQ(out.n_matches, 1); /* only /p + /p/1 fits */
    ASSERT_STREQ(out.matches[0].uri.value, "/p/1");
    ASSERT(out.timeout_ms == 5000 && out.headers == &hm);
    leaf.n_matches = 0; /* a catch-all delegate route takes the root's matches */
    ASSERT(pt__cfg_merge_delegate_route(&a, &root, &leaf, &out));
    ASSERT_EQ(out.n_matches, 2);
    leaf.matches = &lm[1];
    leaf.n_matches = 1;
    ASSERT(!pt__cfg_merge_delegate_route(&a, &root, &leaf, &out));
    pt_arena_dispose(&a);
}
