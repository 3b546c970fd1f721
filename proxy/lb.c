/* proxy/lb.c
 * Load balancers (see lb.h): the picks on the request path, over the tables
 * config/lb_build.c built at compile time. */
#include "lb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool pt_lb_request_hash(const pt_lb_config_t *lb, const pt_http_msg_t *req, const char *source_ip,
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
            const pt_header_t *h = pt_http_msg_find_header(req, lb->hash_name);
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
