/* config/chaos_match.c
 * An HTTP toxic's own match[] (chaos.h, pt_toxic_match_t): Istio's HTTPMatchRequest list, read
 * by the VirtualService's reader (pt__cfg_read_http_match) into an arena of its own, so that the
 * compiled match outlives the config snapshot that declared it (the chaos store keeps the
 * declarations for POST /reset, and its snapshots are dropped by the workers) and can be made
 * from the API's JSON as well. The list is kept as compact JSON too, as given: the API writes it
 * back, and a reload compares declarations by it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"

void pt_toxic_match_ref(pt_toxic_match_t *m)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void pt_toxic_match_unref(pt_toxic_match_t *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* m itself is inside its arena: copy the arena's state out before freeing it. */
    pt_arena_t a = m->arena;
    pt_arena_dispose(&a);
}

static void unref_cb(void *arg)
{
    pt_toxic_match_unref(arg);
}

bool pt_toxic_match_equal(const pt_toxic_match_t *a, const pt_toxic_match_t *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a->json, b->json) == 0);
}

/* ---- reading ------------------------------------------------------------------------------ */

bool pt__cfg_read_toxic_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                              pt_toxic_match_t **out)
{
    *out = NULL;
    if (!pt__cfg_is_seq(cx, n, path))
        return false;
    if (n->n_items == 0)
        return true; /* Istio: no match selects every request */
    if (n->n_items > PT_TOXIC_MAX_MATCHES) {
        pt__cfg_error(cx, n, path, "at most %d entries", PT_TOXIC_MAX_MATCHES);
        return false;
    }
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_toxic_match_t *m = pt_arena_calloc(&a, sizeof(*m));
    m->arena = a;
    atomic_init(&m->refs, 1);
    /* The reader allocates in cx->out: here, the match's own arena. */
    pt_cfg_cx_t sub = *cx;
    sub.out = &m->arena;
    size_t n_errors = cx->errors->n;
    pt_http_match_t *v = pt_arena_calloc(&m->arena, n->n_items * sizeof(*v));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        pt__cfg_read_http_match(&sub, n->items[i], &ip, true, &v[i]);
    }
    if (cx->errors->n > n_errors) {
        pt_toxic_match_unref(m);
        return false;
    }
    m->matches = v;
    m->n_matches = n->n_items;
    m->json = pt__cfg_node_json(&m->arena, n);
    pt_arena_on_free(cx->out, unref_cb, m); /* the snapshot's ref */
    *out = m;
    return true;
}

int pt_toxic_match_compile(const pt_cfg_node_t *n, pt_toxic_match_t **out, char *err,
                           size_t err_cap)
{
    pt_arena_t tmp, owner;
    pt_arena_init(&tmp, 1024);
    pt_arena_init(&owner, 256);
    pt_config_errors_t errors = {0};
    pt_cfg_cx_t cx = {.tmp = &tmp, .out = &owner, .errors = &errors};
    pt_cfg_path_t path = PT_PATH_KEY(NULL, "match");
    bool ok = pt__cfg_read_toxic_match(&cx, n, &path, out);
    if (ok) {
        pt_toxic_match_ref(*out); /* the caller's; owner's goes with it below */
    } else if (errors.n == 0) {
        snprintf(err, err_cap, "match: invalid"); /* past the cap of errors: not seen here */
    } else {
        /* "file:line:col: match[0]...: message" as "match[0]...: message (file, line L,
         * column C)": the field first, as the API's other errors. */
        const char *line = errors.lines[0];
        size_t fl = strlen(n->file);
        int l = 0, c = 0, used = 0;
        if (strncmp(line, n->file, fl) == 0 &&
            sscanf(line + fl, ":%d:%d: %n", &l, &c, &used) == 2 && used > 0)
            snprintf(err, err_cap, "%s (%s, line %d, column %d)", line + fl + used, n->file, l, c);
        else
            snprintf(err, err_cap, "%s", line);
    }
    pt_config_errors_dispose(&errors);
    pt_arena_dispose(&owner);
    pt_arena_dispose(&tmp);
    return ok ? 0 : -1;
}
