/* proxy/lb.c
 * Load balancers (see lb.h): table building at compile time, picks on the request path.
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
#include "lb.h"

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

/* ---- building ------------------------------------------------------------------------- */

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

/* ---- picking -------------------------------------------------------------------------- */

/* The endpoint owning position x in [0, total_weight) of the cumulative weights. */
static size_t by_position(const pt_cluster_t *cl, uint64_t x)
{
    const uint64_t *cum = cl->lb.cumulative;
    if (cum == NULL)
        return (size_t)(x % cl->n_endpoints);
    size_t lo = 0, hi = cl->n_endpoints - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static uint64_t random64(uint64_t *rng)
{
    return ((uint64_t)pt_lb_random(rng) << 32) | pt_lb_random(rng);
}

static size_t pick_random(const pt_cluster_t *cl, uint64_t *rng)
{
    if (cl->lb.cumulative == NULL)
        return (size_t)(random64(rng) % cl->n_endpoints);
    return by_position(cl, random64(rng) % cl->lb.total_weight);
}

static size_t pick_round_robin(const pt_cluster_t *cl, pt_lb_state_t *s)
{
    if (s->rr_position == NULL)
        return pick_random(cl, s->rng);
    uint32_t pos = (*s->rr_position)++;
    if (cl->lb.cumulative == NULL)
        return pos % cl->n_endpoints;
    uint64_t t = cl->lb.total_weight;
    uint64_t x = (uint64_t)(((unsigned __int128)(pos % t) * cl->lb.rr_stride) % t);
    return by_position(cl, x);
}

static size_t pick_least_request(const pt_cluster_t *cl, pt_lb_state_t *s)
{
    size_t n = cl->n_endpoints;
    size_t a = pick_random(cl, s->rng);
    if (n == 1 || s->active == NULL)
        return a;
    size_t b = pick_random(cl, s->rng);
    if (b == a)
        b = (a + 1 + pt_lb_random(s->rng) % (n - 1)) % n;
    /* Fewer active requests per unit of weight wins; a tie keeps the first choice. */
    uint64_t la = (uint64_t)s->active[a] * cl->endpoints[b].weight;
    uint64_t lb = (uint64_t)s->active[b] * cl->endpoints[a].weight;
    return lb < la ? b : a;
}

static size_t pick_ring(const pt_cluster_t *cl, uint64_t h)
{
    const pt_lb_ring_entry_t *r = cl->lb.ring;
    size_t lo = 0, hi = cl->lb.n_ring;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r[lo == cl->lb.n_ring ? 0 : lo].endpoint;
}

static size_t pick_any(const pt_cluster_t *cl, pt_lb_state_t *s, const uint64_t *hash)
{
    if (cl->n_endpoints <= 1)
        return 0;
    switch (cl->lb.policy) {
    case PT_LB_PASSTHROUGH: /* compile turns such a cluster into an original-dst one */
    case PT_LB_ROUND_ROBIN: return pick_round_robin(cl, s);
    case PT_LB_LEAST_REQUEST: return pick_least_request(cl, s);
    case PT_LB_RANDOM: return pick_random(cl, s->rng);
    case PT_LB_RING_HASH:
        if (hash == NULL || cl->lb.ring == NULL)
            return pick_random(cl, s->rng);
        return pick_ring(cl, *hash);
    case PT_LB_MAGLEV:
        if (hash == NULL || cl->lb.maglev == NULL)
            return pick_random(cl, s->rng);
        return cl->lb.maglev[*hash % cl->lb.maglev_table_size];
    }
    return pick_random(cl, s->rng);
}

/* Some endpoint is ejected: the policy's pick while it lands on a healthy one (a few tries),
 * then the next healthy endpoint after it. A hash policy goes straight to the next healthy
 * one, so a key keeps landing on the same endpoint while its own is out. */
static size_t pick_healthy(const pt_cluster_t *cl, pt_lb_state_t *s, const uint64_t *hash)
{
    uint64_t now = pt_outlier_now_ms();
    if (pt_outlier_begin_pick(cl, now, s->stats))
        return pick_any(cl, s, hash); /* panic: every endpoint, ejected or not */
    bool is_hash =
        hash != NULL && (cl->lb.policy == PT_LB_RING_HASH || cl->lb.policy == PT_LB_MAGLEV);
    size_t i = 0;
    for (int tries = 0; tries < (is_hash ? 1 : 4); tries++) {
        i = pick_any(cl, s, hash);
        if (!pt_outlier_is_ejected(cl, i, now, s->stats))
            return i;
    }
    for (size_t k = 1; k < cl->n_endpoints; k++) {
        size_t j = (i + k) % cl->n_endpoints;
        if (!pt_outlier_is_ejected(cl, j, now, s->stats))
            return j;
    }
    return PT_LB_NONE;
}

size_t pt_lb_pick(const pt_cluster_t *cl, pt_lb_state_t *s, const uint64_t *hash)
{
    if (pt_outlier_may_skip(cl))
        return pick_healthy(cl, s, hash);
    return pick_any(cl, s, hash);
}

/* ---- hash keys ------------------------------------------------------------------------ */

/* The value of cookie `name` in one Cookie header value ("a=1; b=2", RFC 6265 §4.2.1). */
static bool find_cookie(pt_str_t v, const char *name, size_t name_len, pt_str_t *out)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ';'))
            i++;
        size_t start = i;
        while (i < v.len && v.base[i] != ';')
            i++;
        size_t end = i;
        const char *eq = memchr(v.base + start, '=', end - start);
        if (eq == NULL)
            continue;
        size_t klen = (size_t)(eq - (v.base + start));
        while (klen > 0 && (v.base[start + klen - 1] == ' ' || v.base[start + klen - 1] == '\t'))
            klen--;
        if (klen == name_len && memcmp(v.base + start, name, name_len) == 0) {
            const char *vs = eq + 1;
            size_t vlen = (size_t)(v.base + end - vs);
            while (vlen > 0 && (*vs == ' ' || *vs == '\t')) {
                vs++;
                vlen--;
            }
            while (vlen > 0 && (vs[vlen - 1] == ' ' || vs[vlen - 1] == '\t'))
                vlen--;
            if (vlen >= 2 && vs[0] == '"' && vs[vlen - 1] == '"') {
                vs++;
                vlen -= 2;
            }
            *out = (pt_str_t){vs, vlen};
            return true;
        }
    }
    return false;
}

/* The value of query parameter `name` in path "/p?a=1&b=2" (as written, not decoded). */
static bool find_query_param(pt_str_t path, const char *name, size_t name_len, pt_str_t *out)
{
    const char *q = memchr(path.base, '?', path.len);
    if (q == NULL)
        return false;
    const char *p = q + 1, *end = path.base + path.len;
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash != NULL)
        end = hash;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == name_len && memcmp(p, name, name_len) == 0) {
            *out = eq ? (pt_str_t){eq + 1, (size_t)(stop - eq - 1)} : (pt_str_t){stop, 0};
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}

bool pt_lb_request_hash(const pt_lb_config_t *lb, const pt_http1_head_t *req, const char *source_ip,
                        uint64_t *hash)
{
    if (lb->policy != PT_LB_RING_HASH && lb->policy != PT_LB_MAGLEV)
        return false;
    pt_str_t v = {NULL, 0};
    bool found = false;
    switch (lb->hash_key) {
    case PT_LB_HASH_NONE: return false;
    case PT_LB_HASH_SOURCE_IP:
        if (source_ip == NULL || source_ip[0] == '\0')
            return false;
        v = pt_str(source_ip);
        found = true;
        break;
    case PT_LB_HASH_HEADER:
        if (req != NULL) {
            const pt_header_t *h = pt_http1_find_header(req, lb->hash_name);
            if (h != NULL) {
                v = h->value;
                found = true;
            }
        }
        break;
    case PT_LB_HASH_COOKIE:
        for (size_t i = 0; req != NULL && i < req->n_headers && !found; i++)
            if (pt_str_ieq_lit(req->headers[i].name, "cookie"))
                found = find_cookie(req->headers[i].value, lb->hash_name, lb->hash_name_len, &v);
        break;
    case PT_LB_HASH_QUERY:
        if (req != NULL && req->path.len > 0)
            found = find_query_param(req->path, lb->hash_name, lb->hash_name_len, &v);
        break;
    }
    if (!found)
        return false;
    *hash = pt_lb_hash(v.base, v.len);
    return true;
}
