/* config/lb_build.c
 * A cluster's load-balancer tables, built once at compile time into the snapshot arena (see
 * policy.h); proxy/lb.c picks with them on the request path.
 *
 * Weighted round robin walks the positions 0..total_weight-1 of the cumulative weights with a
 * stride coprime with the total: over one cycle of total_weight picks every endpoint gets
 * exactly its weight, and consecutive picks are spread instead of sending weight-many requests
 * in a row to one endpoint. Equal weights keep the plain rotation.
 *
 * The ring follows Envoy's ring hash: each endpoint gets a number of points proportional to its
 * weight (at least one, the ring at least minimumRingSize points, at most 8 Mi), each point the
 * hash of "<address>:<port>_<n>", sorted; a key goes to the first point at or after its hash.
 * Maglev follows the paper (Eisenbud et al., NSDI 2016) with Envoy's weighting: endpoints take
 * turns filling the table from their own permutation, an endpoint of weight w/max taking a turn
 * every max/w rounds. Both depend only on the endpoints' addresses and weights, so a key keeps
 * its endpoint across reloads and across workers, and removing an endpoint moves few other
 * keys. */
#include "policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PT_LB_DEFAULT_RING 1024u
#define PT_LB_DEFAULT_MAGLEV 65537u
#define PT_LB_MAX_RING (8u << 20)

static uint64_t mix64(uint64_t x)
{
    /* MurmurHash3's finalizer: every input bit affects every output bit. */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t pt_lb_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h ^ len);
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The hash of "<address>:<port>_<n>", an endpoint's n-th point (seed picks one of the
 * independent hashes Maglev needs). */
static uint64_t endpoint_hash(const pt_endpoint_t *e, uint64_t n, uint64_t seed)
{
    char key[128];
    int len = snprintf(key, sizeof(key), "%s:%u_%llu", e->address ? e->address : "",
                       (unsigned)e->port, (unsigned long long)n);
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof(key))
        len = (int)sizeof(key) - 1;
    return mix64(pt_lb_hash(key, (size_t)len) + seed * 0x9e3779b97f4a7c15ull);
}

static int cmp_ring(const void *a, const void *b)
{
    const pt_lb_ring_entry_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->endpoint < y->endpoint ? -1 : x->endpoint > y->endpoint;
}

static void build_ring(pt_arena_t *a, pt_cluster_t *cl)
{
    pt_lb_config_t *lb = &cl->lb;
    uint64_t min_w = UINT64_MAX;
    for (size_t i = 0; i < cl->n_endpoints; i++)
        if (cl->endpoints[i].weight < min_w)
            min_w = cl->endpoints[i].weight;
    /* Points per unit of normalized weight: enough for minimumRingSize in all, and for the
     * lightest endpoint to get at least one point, capped. */
    double total = (double)lb->total_weight;
    double scale = (double)lb->min_ring_size;
    double need = ceil(total / (double)min_w);
    if (need > scale)
        scale = need;
    if (scale > PT_LB_MAX_RING)
        scale = PT_LB_MAX_RING;
    size_t n_points = 0;
    uint64_t *replicas = malloc(cl->n_endpoints * sizeof(*replicas));
    if (replicas == NULL)
        abort();
    for (size_t i = 0; i < cl->n_endpoints; i++) {
        double r = floor((double)cl->endpoints[i].weight / total * scale + 0.5);
        replicas[i] = r < 1 ? 1 : (uint64_t)r;
        n_points += replicas[i];
    }
    lb->ring = pt_arena_alloc(a, n_points * sizeof(*lb->ring));
    size_t k = 0;
    for (size_t i = 0; i < cl->n_endpoints; i++)
        for (uint64_t j = 0; j < replicas[i]; j++)
            lb->ring[k++] =
                (pt_lb_ring_entry_t){endpoint_hash(&cl->endpoints[i], j, 0), (uint32_t)i};
    free(replicas);
    qsort(lb->ring, n_points, sizeof(*lb->ring), cmp_ring);
    lb->n_ring = n_points;
}

static void build_maglev(pt_arena_t *a, pt_cluster_t *cl)
{
    pt_lb_config_t *lb = &cl->lb;
    uint64_t m = lb->maglev_table_size;
    size_t n = cl->n_endpoints;
    uint64_t *offset = malloc(n * sizeof(uint64_t));
    uint64_t *skip = malloc(n * sizeof(uint64_t));
    uint64_t *next = calloc(n, sizeof(uint64_t));
    double *weight = malloc(n * sizeof(double));
    double *target = calloc(n, sizeof(double));
    if (offset == NULL || skip == NULL || next == NULL || weight == NULL || target == NULL)
        abort();
    uint32_t max_w = 0;
    for (size_t i = 0; i < n; i++)
        if (cl->endpoints[i].weight > max_w)
            max_w = cl->endpoints[i].weight;
    for (size_t i = 0; i < n; i++) {
        offset[i] = endpoint_hash(&cl->endpoints[i], 0, 1) % m;
        skip[i] = endpoint_hash(&cl->endpoints[i], 0, 2) % (m - 1) + 1;
        weight[i] = (double)cl->endpoints[i].weight / (double)max_w;
    }
    lb->maglev = pt_arena_alloc(a, m * sizeof(uint32_t));
    for (uint64_t i = 0; i < m; i++)
        lb->maglev[i] = UINT32_MAX;
    uint64_t filled = 0;
    for (uint64_t round = 1; filled < m; round++) {
        for (size_t i = 0; i < n && filled < m; i++) {
            /* The heaviest endpoint takes a turn every round, one of half its weight every
             * other round, and so on. */
            if ((double)round * weight[i] < target[i])
                continue;
            target[i] += 1.0;
            uint64_t c;
            do {
                /* (offset + next * skip) mod m; m is prime and skip in [1, m), so the walk
                 * visits every slot. */
                c = (offset[i] + (next[i] % m) * skip[i]) % m;
                next[i]++;
            } while (lb->maglev[c] != UINT32_MAX);
            lb->maglev[c] = (uint32_t)i;
            filled++;
        }
    }
    free(offset);
    free(skip);
    free(next);
    free(weight);
    free(target);
}

void pt_lb_build(pt_arena_t *a, pt_cluster_t *cl)
{
    pt_lb_config_t *lb = &cl->lb;
    if (lb->min_ring_size == 0)
        lb->min_ring_size = PT_LB_DEFAULT_RING;
    if (lb->maglev_table_size == 0)
        lb->maglev_table_size = PT_LB_DEFAULT_MAGLEV;
    lb->cumulative = NULL;
    lb->ring = NULL;
    lb->n_ring = 0;
    lb->maglev = NULL;
    lb->total_weight = 0;
    lb->rr_stride = 1;
    if (cl->n_endpoints == 0)
        return;
    bool equal = true;
    for (size_t i = 0; i < cl->n_endpoints; i++) {
        if (cl->endpoints[i].weight == 0)
            cl->endpoints[i].weight = 1;
        lb->total_weight += cl->endpoints[i].weight;
        if (cl->endpoints[i].weight != cl->endpoints[0].weight)
            equal = false;
    }
    if (!equal) {
        lb->cumulative = pt_arena_alloc(a, cl->n_endpoints * sizeof(uint64_t));
        uint64_t sum = 0;
        for (size_t i = 0; i < cl->n_endpoints; i++) {
            sum += cl->endpoints[i].weight;
            lb->cumulative[i] = sum;
        }
        /* A stride near total / golden ratio spreads consecutive positions evenly; it must be
         * coprime with the total for the walk to visit every position once per cycle. */
        uint64_t t = lb->total_weight;
        uint64_t s = (uint64_t)((double)t * 0.6180339887) | 1;
        if (s == 0 || s >= t)
            s = 1;
        while (gcd64(s, t) != 1)
            s++;
        lb->rr_stride = s;
    }
    if (lb->policy == PT_LB_RING_HASH)
        build_ring(a, cl);
    else if (lb->policy == PT_LB_MAGLEV)
        build_maglev(a, cl);
}
