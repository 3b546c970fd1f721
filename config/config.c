/* config/config.c
 * pt_config_load(): files (xds/file_source) -> YAML documents (yaml.c) -> typed resources
 * (resources.c) -> snapshot (compile.c); and the snapshot's refcount and host lookup.
 *
 * Two arenas per load: a temporary one for the YAML trees and the typed model, freed before
 * returning, and the snapshot's own (c->arena), which holds the pt_config_t itself and
 * everything it points to. A load that found any error frees both and returns NULL: a snapshot
 * is all or nothing. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../xds/file_source.h"
#include "config.h"
#include "node.h"
#include "resources.h"

static atomic_uint_least64_t generation_counter;

pt_config_t *pt_config_load_buffers(const pt_config_source_t *sources, size_t n_sources,
                                    pt_config_errors_t *errors)
{
    pt_arena_t tmp;
    pt_arena_init(&tmp, 64 * 1024);
    /* The snapshot lives inside its own arena: allocate it from a local arena, then move the
     * arena's (pointer-only) state into it. */
    pt_arena_t out;
    pt_arena_init(&out, 16 * 1024);
    pt_config_t *c = pt_arena_calloc(&out, sizeof(*c));
    c->arena = out;

    pt_cfg_cx_t cx = {
        .tmp = &tmp, .out = &c->arena, .errors = errors, .n_errors_at_start = errors->n};
    pt_cfg_docs_t docs = {0};
    bool syntax_ok = true;
    for (size_t i = 0; i < n_sources; i++)
        if (pt__cfg_parse_yaml(&tmp, sources[i].file, sources[i].data, sources[i].len, &docs,
                               errors) != 0)
            syntax_ok = false;

    pt_res_set_t set = {0};
    for (size_t i = 0; i < docs.n; i++)
        pt__cfg_resources_add(&cx, &set, &docs.v[i]);
    /* Without every file, references across resources cannot be checked fairly (a Gateway in
     * the broken file would be reported missing): report the syntax errors and stop there. */
    if (syntax_ok)
        pt__cfg_compile(&cx, &set, c);
    if (errors->n == cx.n_errors_at_start)
        c->resources_json = pt__cfg_dump_json(&c->arena, &docs, &c->resources_json_len);

    pt__cfg_docs_dispose(&docs);
    pt_arena_dispose(&tmp);
    if (errors->n > cx.n_errors_at_start) {
        pt_arena_t a = c->arena;
        pt_arena_dispose(&a);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->generation = atomic_fetch_add(&generation_counter, 1) + 1;
    return c;
}

pt_config_t *pt_config_load(const char *const *paths, size_t n_paths, pt_config_errors_t *errors)
{
    pt_xds_files_t files = {0};
    size_t start = errors->n;
    for (size_t i = 0; i < n_paths; i++)
        pt_xds_file_read(paths[i], &files, errors);
    pt_config_t *c = NULL;
    if (errors->n == start) {
        pt_config_source_t *src = calloc(files.n + 1, sizeof(*src));
        if (src == NULL)
            abort();
        for (size_t i = 0; i < files.n; i++)
            src[i] = (pt_config_source_t){files.v[i].path, files.v[i].data, files.v[i].len};
        c = pt_config_load_buffers(src, files.n, errors);
        free(src);
    }
    pt_xds_files_dispose(&files);
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
static size_t host_score(const char *pattern, const char *host, size_t len)
{
    size_t pl = strlen(pattern);
    if (pattern[0] == '*') {
        if (pl == 1)
            return 1;
        /* "*.example.com" matches "a.example.com" and "a.b.example.com", never "example.com"
         * (the suffix includes the dot and at least one character must precede it). */
        size_t sl = pl - 1;
        if (len > sl && strncasecmp(host + len - sl, pattern + 1, sl) == 0)
            return 2 + sl;
        return 0;
    }
    return pl == len && strncasecmp(pattern, host, len) == 0 ? SIZE_MAX : 0;
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
    const pt_vhost_t *best = NULL;
    size_t best_score = 0;
    for (size_t v = 0; v < l->n_vhosts; v++) {
        const pt_vhost_t *vh = &l->vhosts[v];
        for (size_t h = 0; h < vh->n_hosts; h++) {
            size_t s = host_score(vh->hosts[h], host, len);
            if (s > best_score) { /* strictly: on a tie the earlier vhost wins */
                best_score = s;
                best = vh;
                if (s == SIZE_MAX)
                    return best;
            }
        }
    }
    return best;
}
