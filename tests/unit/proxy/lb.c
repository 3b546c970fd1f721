/* tests/unit/proxy/lb.c
 * The load balancers of proxy/lb.c, directly over hand-built clusters: weighted round robin is
 * exact over a cycle, random follows the weights, power of two choices prefers the less
 * loaded endpoint, ring hash and Maglev keep a key on one endpoint and move few keys when an
 * endpoint goes, and the request hash keys (header, cookie, query parameter, source address). */
#include <stdio.h>
#include <string.h>

#include "proxy/lb.h"
#include "test.h"

#define MAX_EPS 16

typedef struct fixture {
    pt_arena_t arena;
    pt_endpoint_t eps[MAX_EPS];
    char addrs[MAX_EPS][32];
    pt_cluster_t cl;
} fixture_t;

/* A cluster of n endpoints 10.0.0.<first + i>:8080 with the given weights (NULL: all 1). */
static void make_cluster(fixture_t *f, size_t n, const uint32_t *weights, pt_lb_policy_t policy,
                         size_t first)
{
    memset(f, 0, sizeof(*f));
    pt_arena_init(&f->arena, 4096);
    for (size_t i = 0; i < n; i++) {
        snprintf(f->addrs[i], sizeof(f->addrs[i]), "10.0.0.%zu", first + i);
        f->eps[i].address = f->addrs[i];
        f->eps[i].port = 8080;
        f->eps[i].weight = weights ? weights[i] : 1;
    }
    f->cl.endpoints = f->eps;
    f->cl.n_endpoints = n;
    f->cl.lb.policy = policy;
    f->cl.lb.hash_key = PT_LB_HASH_HEADER;
    pt_lb_build(&f->arena, &f->cl);
}

/* Like make_cluster with endpoints 10.0.0.1..n minus the one at index skip. */
static void make_cluster_without(fixture_t *f, size_t n, size_t skip, pt_lb_policy_t policy)
{
    memset(f, 0, sizeof(*f));
    pt_arena_init(&f->arena, 4096);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == skip)
            continue;
        snprintf(f->addrs[k], sizeof(f->addrs[k]), "10.0.0.%zu", i + 1);
        f->eps[k].address = f->addrs[k];
        f->eps[k].port = 8080;
        f->eps[k].weight = 1;
        k++;
    }
    f->cl.endpoints = f->eps;
    f->cl.n_endpoints = k;
    f->cl.lb.policy = policy;
    f->cl.lb.hash_key = PT_LB_HASH_HEADER;
    pt_lb_build(&f->arena, &f->cl);
}

static uint64_t key_hash(size_t k)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "user-%zu", k);
    return pt_lb_hash(key, (size_t)n);
}

TEST(round_robin_unweighted_rotates)
{
    fixture_t f;
    make_cluster(&f, 3, NULL, PT_LB_ROUND_ROBIN, 1);
    uint32_t pos = 0;
    uint64_t rng = 42;
    pt_lb_state_t s = {&pos, NULL, &rng, NULL};
    for (size_t i = 0; i < 30; i++)
        ASSERT_EQ(pt_lb_pick(&f.cl, &s, NULL), i % 3);
    ASSERT(f.cl.lb.cumulative == NULL);
    pt_arena_dispose(&f.arena);
}

TEST(round_robin_weighted_exact_over_a_cycle)
{
    fixture_t f;
    uint32_t w[4] = {5, 3, 1, 1};
    make_cluster(&f, 4, w, PT_LB_ROUND_ROBIN, 1);
    ASSERT_EQ(f.cl.lb.total_weight, 10);
    uint32_t pos = 7; /* any starting point: every window of 10 picks is a whole cycle */
    uint64_t rng = 42;
    pt_lb_state_t s = {&pos, NULL, &rng, NULL};
    for (int cycle = 0; cycle < 100; cycle++) {
        size_t count[4] = {0};
        size_t run = 0, max_run = 0, prev = 99;
        for (int i = 0; i < 10; i++) {
            size_t e = pt_lb_pick(&f.cl, &s, NULL);
            ASSERT(e < 4);
            count[e]++;
            run = e == prev ? run + 1 : 1;
            if (run > max_run)
                max_run = run;
            prev = e;
        }
        for (int e = 0; e < 4; e++)
            ASSERT_EQ(count[e], w[e]);
        /* Interleaved, not five in a row. */
        ASSERT(max_run <= 2);
    }
    pt_arena_dispose(&f.arena);
}

TEST(random_follows_weights)
{
    fixture_t f;
    uint32_t w[4] = {1, 2, 3, 4};
    make_cluster(&f, 4, w, PT_LB_RANDOM, 1);
    uint64_t rng = 0x1234567;
    pt_lb_state_t s = {NULL, NULL, &rng, NULL};
    size_t count[4] = {0};
    const size_t n = 100000;
    for (size_t i = 0; i < n; i++)
        count[pt_lb_pick(&f.cl, &s, NULL)]++;
    for (int e = 0; e < 4; e++) {
        double expected = (double)n * w[e] / 10.0;
        double got = (double)count[e];
        /* 4 % of the expectation is more than 4 standard deviations for each. */
        ASSERT(got > expected * 0.96 && got < expected * 1.04);
    }
    pt_arena_dispose(&f.arena);

    make_cluster(&f, 5, NULL, PT_LB_RANDOM, 1);
    size_t c5[5] = {0};
    for (size_t i = 0; i < n; i++)
        c5[pt_lb_pick(&f.cl, &s, NULL)]++;
    for (int e = 0; e < 5; e++)
        ASSERT(c5[e] > 19000 && c5[e] < 21000);
    pt_arena_dispose(&f.arena);
}

TEST(least_request_prefers_the_less_loaded)
{
    fixture_t f;
    make_cluster(&f, 2, NULL, PT_LB_LEAST_REQUEST, 1);
    uint64_t rng = 99;
    uint32_t active[10] = {10, 0};
    pt_lb_state_t s = {NULL, active, &rng, NULL};
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(pt_lb_pick(&f.cl, &s, NULL), 1);
    active[0] = 0;
    active[1] = 3;
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(pt_lb_pick(&f.cl, &s, NULL), 0);
    pt_arena_dispose(&f.arena);

    /* Ten endpoints: the idle one is chosen whenever it is one of the two choices (about 20 %
     * of picks, twice its fair share); the busiest one never, as the other choice always beats
     * it. */
    make_cluster(&f, 10, NULL, PT_LB_LEAST_REQUEST, 1);
    for (int e = 0; e < 10; e++)
        active[e] = 5;
    active[3] = 0;
    active[7] = 100;
    size_t count[10] = {0};
    const size_t n = 100000;
    for (size_t i = 0; i < n; i++)
        count[pt_lb_pick(&f.cl, &s, NULL)]++;
    ASSERT(count[3] > n * 18 / 100 && count[3] < n * 22 / 100);
    ASSERT_EQ(count[7], 0);

    /* Without counts (a stream of an older snapshot) it is a plain random pick. */
    pt_lb_state_t none = {NULL, NULL, &rng, NULL};
    size_t c2[10] = {0};
    for (size_t i = 0; i < n; i++)
        c2[pt_lb_pick(&f.cl, &none, NULL)]++;
    ASSERT(c2[7] > n / 20);
    pt_arena_dispose(&f.arena);
}

/* Same key -> same endpoint; keys spread; removing one of 10 endpoints moves at most ~15 % of
 * the keys that were not on it. */
static void check_consistent(pt_lb_policy_t policy)
{
    fixture_t all, fewer;
    make_cluster(&all, 10, NULL, policy, 1);
    uint64_t rng = 5;
    pt_lb_state_t s = {NULL, NULL, &rng, NULL};
    enum { KEYS = 10000 };
    static size_t before[KEYS];
    size_t per[10] = {0};
    for (size_t k = 0; k < KEYS; k++) {
        uint64_t h = key_hash(k);
        before[k] = pt_lb_pick(&all.cl, &s, &h);
        ASSERT(before[k] < 10);
        ASSERT_EQ(pt_lb_pick(&all.cl, &s, &h), before[k]);
        per[before[k]]++;
    }
    for (int e = 0; e < 10; e++)
        ASSERT(per[e] > KEYS * 5 / 100 && per[e] < KEYS * 15 / 100);

    const size_t removed = 4;
    make_cluster_without(&fewer, 10, removed, policy);
    size_t moved = 0;
    for (size_t k = 0; k < KEYS; k++) {
        uint64_t h = key_hash(k);
        size_t now = pt_lb_pick(&fewer.cl, &s, &h);
        if (before[k] == removed)
            continue;
        if (strcmp(fewer.eps[now].address, all.eps[before[k]].address) != 0)
            moved++;
    }
    ASSERT(moved <= KEYS * 15 / 100);

    /* A rebuild of the same endpoints gives the same answers (reloads, other workers). */
    fixture_t again;
    make_cluster(&again, 10, NULL, policy, 1);
    for (size_t k = 0; k < KEYS; k += 7) {
        uint64_t h = key_hash(k);
        ASSERT_EQ(pt_lb_pick(&again.cl, &s, &h), before[k]);
    }
    /* No key: a random endpoint. */
    size_t seen = 0;
    bool hit[10] = {false};
    for (int i = 0; i < 1000; i++) {
        size_t e = pt_lb_pick(&all.cl, &s, NULL);
        ASSERT(e < 10);
        if (!hit[e])
            seen++;
        hit[e] = true;
    }
    ASSERT_EQ(seen, 10);
    pt_arena_dispose(&all.arena);
    pt_arena_dispose(&fewer.arena);
    pt_arena_dispose(&again.arena);
}

TEST(ring_hash_is_consistent)
{
    check_consistent(PT_LB_RING_HASH);
}

TEST(maglev_is_consistent)
{
    check_consistent(PT_LB_MAGLEV);
}

TEST(ring_hash_sizes_and_weights)
{
    fixture_t f;
    uint32_t w[2] = {1, 3};
    make_cluster(&f, 2, w, PT_LB_RING_HASH, 1);
    ASSERT(f.cl.lb.n_ring >= 1024);
    size_t c[2] = {0};
    for (size_t k = 0; k < 20000; k++) {
        uint64_t h = key_hash(k);
        c[pt_lb_pick(&f.cl, &(pt_lb_state_t){NULL, NULL, &(uint64_t){1}, NULL}, &h)]++;
    }
    ASSERT(c[0] > 20000 * 20 / 100 && c[0] < 20000 * 30 / 100);
    pt_arena_dispose(&f.arena);

    /* minimumRingSize is honoured; the sorted ring is what lookups binary-search. */
    memset(&f, 0, sizeof(f));
    make_cluster(&f, 3, NULL, PT_LB_RING_HASH, 1);
    pt_arena_dispose(&f.arena);
    memset(&f, 0, sizeof(f));
    pt_arena_init(&f.arena, 4096);
    for (int i = 0; i < 3; i++) {
        snprintf(f.addrs[i], sizeof(f.addrs[i]), "10.1.0.%d", i);
        f.eps[i] = (pt_endpoint_t){.address = f.addrs[i], .port = 80, .weight = 1};
    }
    f.cl.endpoints = f.eps;
    f.cl.n_endpoints = 3;
    f.cl.lb.policy = PT_LB_RING_HASH;
    f.cl.lb.min_ring_size = 4096;
    pt_lb_build(&f.arena, &f.cl);
    ASSERT(f.cl.lb.n_ring >= 4095);
    for (size_t i = 1; i < f.cl.lb.n_ring; i++)
        ASSERT(f.cl.lb.ring[i - 1].hash <= f.cl.lb.ring[i].hash);
    pt_arena_dispose(&f.arena);
}

TEST(maglev_table_and_weights)
{
    fixture_t f;
    memset(&f, 0, sizeof(f));
    pt_arena_init(&f.arena, 4096);
    uint32_t w[3] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        snprintf(f.addrs[i], sizeof(f.addrs[i]), "10.2.0.%d", i);
        f.eps[i] = (pt_endpoint_t){.address = f.addrs[i], .port = 80, .weight = w[i]};
    }
    f.cl.endpoints = f.eps;
    f.cl.n_endpoints = 3;
    f.cl.lb.policy = PT_LB_MAGLEV;
    f.cl.lb.maglev_table_size = 251;
    pt_lb_build(&f.arena, &f.cl);
    size_t c[3] = {0};
    for (size_t i = 0; i < 251; i++) {
        ASSERT(f.cl.lb.maglev[i] < 3);
        c[f.cl.lb.maglev[i]]++;
    }
    /* Slots follow the weights 1:1:2 (to within a slot or two). */
    ASSERT(c[0] >= 60 && c[0] <= 66);
    ASSERT(c[1] >= 60 && c[1] <= 66);
    ASSERT(c[2] >= 122 && c[2] <= 129);
    pt_arena_dispose(&f.arena);

    make_cluster(&f, 3, NULL, PT_LB_MAGLEV, 1);
    ASSERT_EQ(f.cl.lb.maglev_table_size, 65537);
    pt_arena_dispose(&f.arena);
}

static pt_header_t hdr(const char *name, const char *value)
{
    return (pt_header_t){pt_str(name), pt_str(value), 0};
}

TEST(request_hash_keys)
{
    pt_header_t headers[] = {
        hdr("Host", "example.com"),
        hdr("X-User", "alice"),
        hdr("Cookie", "theme=dark; session=\"abc123\""),
        hdr("cookie", "other=1;sid=s-42 "),
    };
    pt_http_msg_t req = {0};
    req.path = pt_str("/items?page=2&user=bob&empty=&flag");
    req.headers = headers;
    req.n_headers = 4;
    uint64_t h, expect;

    pt_lb_config_t lb = {.policy = PT_LB_RING_HASH,
                         .hash_key = PT_LB_HASH_HEADER,
                         .hash_name = "x-user",
                         .hash_name_len = 6};
    ASSERT(pt_lb_request_hash(&lb, &req, "127.0.0.1", &h));
    ASSERT_EQ(h, pt_lb_hash("alice", 5));
    lb.hash_name = "x-missing";
    lb.hash_name_len = 9;
    ASSERT(!pt_lb_request_hash(&lb, &req, "127.0.0.1", &h));

    lb = (pt_lb_config_t){.policy = PT_LB_MAGLEV,
                          .hash_key = PT_LB_HASH_COOKIE,
                          .hash_name = "session",
                          .hash_name_len = 7};
    ASSERT(pt_lb_request_hash(&lb, &req, NULL, &h));
    ASSERT_EQ(h, pt_lb_hash("abc123", 6));
    lb.hash_name = "sid";
    lb.hash_name_len = 3;
    ASSERT(pt_lb_request_hash(&lb, &req, NULL, &h));
    ASSERT_EQ(h, pt_lb_hash("s-42", 4));
    lb.hash_name = "sess";
    lb.hash_name_len = 4;
    ASSERT(!pt_lb_request_hash(&lb, &req, NULL, &h));

    lb = (pt_lb_config_t){.policy = PT_LB_RING_HASH,
                          .hash_key = PT_LB_HASH_QUERY,
                          .hash_name = "user",
                          .hash_name_len = 4};
    ASSERT(pt_lb_request_hash(&lb, &req, NULL, &h));
    ASSERT_EQ(h, pt_lb_hash("bob", 3));
    lb.hash_name = "empty";
    lb.hash_name_len = 5;
    ASSERT(pt_lb_request_hash(&lb, &req, NULL, &h));
    expect = pt_lb_hash("", 0);
    ASSERT_EQ(h, expect);
    lb.hash_name = "flag";
    lb.hash_name_len = 4;
    ASSERT(pt_lb_request_hash(&lb, &req, NULL, &h));
    lb.hash_name = "use";
    lb.hash_name_len = 3;
    ASSERT(!pt_lb_request_hash(&lb, &req, NULL, &h));

    lb = (pt_lb_config_t){.policy = PT_LB_RING_HASH, .hash_key = PT_LB_HASH_SOURCE_IP};
    ASSERT(pt_lb_request_hash(&lb, NULL, "192.0.2.7", &h));
    ASSERT_EQ(h, pt_lb_hash("192.0.2.7", 9));
    ASSERT(!pt_lb_request_hash(&lb, NULL, "", &h));

    /* Not a hash policy: no key whatever the request. */
    lb = (pt_lb_config_t){.policy = PT_LB_ROUND_ROBIN, .hash_key = PT_LB_HASH_SOURCE_IP};
    ASSERT(!pt_lb_request_hash(&lb, &req, "192.0.2.7", &h));
}

TEST(single_and_zero_weight_endpoints)
{
    fixture_t f;
    uint32_t w[1] = {0};
    make_cluster(&f, 1, w, PT_LB_LEAST_REQUEST, 1);
    uint64_t rng = 3;
    pt_lb_state_t s = {NULL, NULL, &rng, NULL};
    ASSERT_EQ(pt_lb_pick(&f.cl, &s, NULL), 0);
    ASSERT_EQ(f.eps[0].weight, 1);
    pt_arena_dispose(&f.arena);

    make_cluster(&f, 0, NULL, PT_LB_MAGLEV, 1);
    ASSERT(f.cl.lb.maglev == NULL);
    pt_arena_dispose(&f.arena);
}
