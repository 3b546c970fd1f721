/* config/config.c
 * pt_config_load_buffers(): YAML buffers (read by xds/file_source) -> YAML documents (yaml.c) ->
 * typed resources (resources.c) -> snapshot (compile.c); and the snapshot's refcount and host
 * lookup.
 *
 * Two arenas per load: a temporary one for the YAML trees and the typed model, freed before
 * returning, and the snapshot's own (c->arena), which holds the pt_config_t itself and
 * everything it points to. A load that found any error frees both and returns NULL: a snapshot
 * is all or nothing. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "node.h"
#include "resources.h"

static atomic_uint_least64_t generation_counter;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The resource that the document just read added to set (compared with before) has errors:
 * it is taken out, so that compile and the TLS checks see only resources that read cleanly,
 * and noted in cx->unchecked. Every resource type starts with its pt_res_meta_t. */
static void set_aside(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_set_t *before, size_t *cap)
{
#define SET_ASIDE(arr, n)                                                                          \
    for (size_t j = before->n; j < set->n; j++) {                                                  \
        cx->unchecked =                                                                            \
            pt_arena_grow(cx->tmp, cx->unchecked, cx->n_unchecked, cap, sizeof(*cx->unchecked));   \
        cx->unchecked[cx->n_unchecked++] = (const pt_res_meta_t *)(const void *)set->arr[j];       \
    }                                                                                              \
    set->n = before->n
    SET_ASIDE(proxies, n_proxies);
    SET_ASIDE(gateways, n_gateways);
    SET_ASIDE(vss, n_vss);
    SET_ASIDE(ses, n_ses);
    SET_ASIDE(drs, n_drs);
    SET_ASIDE(wes, n_wes);
    SET_ASIDE(authzs, n_authzs);
    SET_ASIDE(peer_authns, n_peer_authns);
#undef SET_ASIDE
}

bool pt__cfg_may_be_unchecked(const pt_cfg_cx_t *cx, const char *kind, const char *ns,
                              const char *name)
{
    if (cx->is_incomplete)
        return true;
    for (size_t i = 0; i < cx->n_unchecked; i++) {
        const pt_res_meta_t *m = cx->unchecked[i];
        if (strcmp(m->kind, kind) == 0 &&
            (name == NULL || (strcmp(m->ns, ns) == 0 && strcmp(m->name, name) == 0)))
            return true;
    }
    return false;
}

const pt_cfg_node_t *pt__cfg_node_at(const pt_cfg_node_t *n, const char *dotted)
{
    while (n != NULL && *dotted != '\0') {
        size_t len = strcspn(dotted, ".");
        const pt_cfg_node_t *next = NULL;
        for (size_t i = 0; n->type == PT_CFG_MAP && i < n->n_pairs && next == NULL; i++)
            if (strlen(n->pairs[i].key->str) == len &&
                strncmp(n->pairs[i].key->str, dotted, len) == 0)
                next = n->pairs[i].value;
        n = next;
        dotted += len + (dotted[len] == '.');
    }
    return n;
}

pt_config_t *pt_config_load_buffers(const pt_config_source_t *sources, size_t n_sources,
                                    const pt_workload_t *pod, pt_config_errors_t *errors)
{
    pt_arena_t tmp;
    pt_arena_init(&tmp, 64 * 1024);
    /* The snapshot lives inside its own arena: allocate it from a local arena, then move the
     * arena's (pointer-only) state into it. */
    pt_arena_t out;
    pt_arena_init(&out, 16 * 1024);
    pt_config_t *c = pt_arena_calloc(&out, sizeof(*c));
    c->arena = out;

    pt_cfg_cx_t cx = {.tmp = &tmp,
                      .out = &c->arena,
                      .errors = errors,
                      .n_errors_at_start = errors->n,
                      .pod = pod};
    pt_cfg_docs_t docs = {0};
    size_t n_nodes = 0;
    double t0 = now_ms();
    for (size_t i = 0; i < n_sources; i++) {
        if (pt__cfg_parse_yaml(&tmp, sources[i].file, sources[i].data, sources[i].len, &n_nodes,
                               &docs, errors) != 0) {
            cx.is_incomplete = true;
            if (n_nodes >= PT_CFG_MAX_NODES)
                break; /* every later buffer would repeat the same error */
        }
    }

    double t1 = now_ms();
    pt__cfg_expand_lists(&cx, &docs);
    pt_res_set_t set = {0};
    size_t cap_unchecked = 0;
    for (size_t i = 0; i < docs.n; i++) {
        size_t n_errors = errors->n;
        pt_res_set_t before = set;
        pt__cfg_resources_add(&cx, &set, &docs.v[i]);
        if (errors->n > n_errors)
            set_aside(&cx, &set, &before, &cap_unchecked);
    }
    /* Every error in one run: the resources that read cleanly are joined and their
     * certificates read even when others have errors. The Proxy's settings shape all of that
     * (ports, sidecar, workload, credentialsDirectory), so those checks wait while the Proxy
     * has errors, or may be in a file that could not be parsed. */
    bool proxy_has_errors = false;
    for (size_t i = 0; i < cx.n_unchecked; i++)
        proxy_has_errors |= strcmp(cx.unchecked[i]->kind, "Proxy") == 0;
    bool proxy_known = !proxy_has_errors && (set.n_proxies > 0 || !cx.is_incomplete);
    if (proxy_known) {
        pt__cfg_compile(&cx, &set, c);
        pt__cfg_build_tls(&cx, &set, c);
    }
    if (errors->n == cx.n_errors_at_start) {
        pt__cfg_index_vhosts(c);
        c->resources_json = pt__cfg_dump_json(&c->arena, &docs, &c->resources_json_len);
    }

    pt__cfg_docs_dispose(&docs);
    pt_arena_dispose(&tmp);
    if (errors->n > cx.n_errors_at_start) {
        pt_arena_t a = c->arena;
        pt_arena_dispose(&a);
        return NULL;
    }
    c->parse_ms = t1 - t0;
    c->compile_ms = now_ms() - t1;
    atomic_init(&c->refs, 1);
    c->generation = atomic_fetch_add(&generation_counter, 1) + 1;
    return c;
}

void pt_config_ref(pt_config_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void pt_config_unref(pt_config_t *c)
{
    if (c == NULL)
        return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* c itself is inside the arena: copy the arena's state out before freeing it. */
    pt_arena_t a = c->arena;
    pt_arena_dispose(&a);
}

/* How well pattern matches host (both without port): 0 no match, 1 for "*", 2 + the suffix
 * length for "*.suffix", SIZE_MAX for an exact match. */
/* Host lookup, built once per snapshot: exact hosts in an open-addressing hash table (the
 * first vhost naming a host wins, as in VirtualService order), then "*.suffix" wildcards
 * longest suffix first (ties: the earlier vhost), then "*". The request path hashes the Host
 * once and probes; it never scans every VirtualService. */
typedef struct vhost_slot {
    const char *host; /* lower-case; NULL: empty slot */
    size_t len;
    const pt_vhost_t *vhost;
} vhost_slot_t;

typedef struct wildcard {
    const char *suffix; /* ".example.com" */
    size_t len;
    const pt_vhost_t *vhost;
} wildcard_t;

struct pt_vhost_index {
    vhost_slot_t *slots;
    size_t mask; /* slots - 1, a power of two minus one */
    wildcard_t *wildcards;
    size_t n_wildcards;
    const pt_vhost_t *star; /* the first vhost with host "*", or NULL */
};

#define HOST_MAX 255

static uint64_t host_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void index_listener(pt_arena_t *a, pt_listener_config_t *l)
{
    size_t n_exact = 0, n_wild = 0;
    for (size_t v = 0; v < l->n_vhosts; v++)
        for (size_t h = 0; h < l->vhosts[v].n_hosts; h++) {
            if (l->vhosts[v].hosts[h][0] == '*')
                n_wild++;
            else
                n_exact++;
        }
    struct pt_vhost_index *ix = pt_arena_calloc(a, sizeof(*ix));
    size_t cap = 8;
    while (cap < n_exact * 2)
        cap *= 2;
    ix->slots = pt_arena_calloc(a, cap * sizeof(*ix->slots));
    ix->mask = cap - 1;
    ix->wildcards = pt_arena_calloc(a, (n_wild + 1) * sizeof(*ix->wildcards));
    for (size_t v = 0; v < l->n_vhosts; v++) {
        const pt_vhost_t *vh = &l->vhosts[v];
        for (size_t h = 0; h < vh->n_hosts; h++) {
            const char *host = vh->hosts[h];
            size_t len = strlen(host);
            if (strcmp(host, "*") == 0) {
                if (ix->star == NULL)
                    ix->star = vh;
            } else if (host[0] == '*') {
                /* Insertion keeps longer suffixes first and, among equals, vhost order. */
                size_t i = ix->n_wildcards++;
                while (i > 0 && ix->wildcards[i - 1].len < len - 1) {
                    ix->wildcards[i] = ix->wildcards[i - 1];
                    i--;
                }
                ix->wildcards[i] = (wildcard_t){host + 1, len - 1, vh};
            } else {
                size_t i = (size_t)host_hash(host, len) & ix->mask;
                while (ix->slots[i].host != NULL &&
                       !(ix->slots[i].len == len && memcmp(ix->slots[i].host, host, len) == 0))
                    i = (i + 1) & ix->mask;
                if (ix->slots[i].host == NULL)
                    ix->slots[i] = (vhost_slot_t){host, len, vh};
            }
        }
    }
    l->vhost_index = ix;
}

void pt__cfg_index_vhosts(pt_config_t *c)
{
    for (size_t i = 0; i < c->n_listeners; i++)
        index_listener(&c->arena, &c->listeners[i]);
    for (size_t i = 0; i < c->n_mesh_listeners; i++)
        index_listener(&c->arena, &c->mesh_listeners[i]);
    if (c->mesh_passthrough != NULL)
        index_listener(&c->arena, c->mesh_passthrough);
    if (c->mesh_inbound != NULL)
        index_listener(&c->arena, c->mesh_inbound);
    for (size_t i = 0; i < c->n_chaos_listeners; i++)
        index_listener(&c->arena, &c->chaos_listeners[i]);
}

const pt_listener_config_t *pt_config_chaos_listener(const pt_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_chaos_listeners; i++)
        if (strcmp(c->chaos_listeners[i].chaos_proxy, name) == 0)
            return &c->chaos_listeners[i];
    return NULL;
}

const pt_vhost_t *pt_config_find_vhost(const pt_listener_config_t *l, const char *host, size_t len)
{
    if (host == NULL)
        len = 0;
    /* Strip ":port": after "]" for an IPv6 literal, else after the last ':' when only digits
     * follow. */
    if (len > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', len);
        if (close != NULL)
            len = (size_t)(close - host) + 1;
    } else {
        size_t i = len;
        while (i > 0 && isdigit((unsigned char)host[i - 1]))
            i--;
        if (i > 0 && host[i - 1] == ':')
            len = i - 1;
    }
    const struct pt_vhost_index *ix = l->vhost_index;
    if (ix == NULL)
        return NULL;
    if (len <= HOST_MAX) {
        char lower[HOST_MAX];
        for (size_t i = 0; i < len; i++)
            lower[i] = (char)tolower((unsigned char)host[i]);
        size_t i = (size_t)host_hash(lower, len) & ix->mask;
        for (; ix->slots[i].host != NULL; i = (i + 1) & ix->mask)
            if (ix->slots[i].len == len && memcmp(ix->slots[i].host, lower, len) == 0)
                return ix->slots[i].vhost;
    }
    /* "*.example.com" matches "a.example.com" and "a.b.example.com", never "example.com": the
     * suffix includes the dot and at least one character must precede it. */
    for (size_t w = 0; w < ix->n_wildcards; w++) {
        const wildcard_t *wc = &ix->wildcards[w];
        if (len > wc->len && strncasecmp(host + len - wc->len, wc->suffix, wc->len) == 0)
            return wc->vhost;
    }
    return ix->star;
}
