/* config/arena.c
 * Chunks grow geometrically so that a request with many headers costs a few mallocs, and a
 * small request costs one. A request larger than a chunk gets a chunk of its own. */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pt_arena_chunk {
    pt_arena_chunk_t *next;
    size_t size; /* usable bytes after the header */
    _Alignas(PT_ARENA_ALIGN) unsigned char data[];
};

struct pt_arena_cleanup {
    pt_arena_cleanup_t *next;
    void (*fn)(void *arg);
    void *arg;
};

void pt_arena_init(pt_arena_t *a, size_t first_chunk_bytes)
{
    a->chunks = NULL;
    a->cleanups = NULL;
    a->next = a->end = NULL;
    a->first_chunk_bytes = first_chunk_bytes ? first_chunk_bytes : 1024;
}

void pt_arena_dispose(pt_arena_t *a)
{
    for (pt_arena_cleanup_t *c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->arg);
    a->cleanups = NULL;
    pt_arena_chunk_t *ch = a->chunks;
    while (ch != NULL) {
        pt_arena_chunk_t *next = ch->next;
        free(ch);
        ch = next;
    }
    a->chunks = NULL;
    a->next = a->end = NULL;
}

void pt_arena_reset(pt_arena_t *a)
{
    for (pt_arena_cleanup_t *c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->arg);
    a->cleanups = NULL;
    pt_arena_chunk_t *kept = NULL;
    for (pt_arena_chunk_t *ch = a->chunks, *next; ch != NULL; ch = next) {
        next = ch->next;
        if (kept == NULL && ch->size == a->first_chunk_bytes) {
            kept = ch;
            kept->next = NULL;
        } else {
            free(ch);
        }
    }
    a->chunks = kept;
    a->next = kept != NULL ? kept->data : NULL;
    a->end = kept != NULL ? kept->data + kept->size : NULL;
}

void *pt__arena_alloc_slow(pt_arena_t *a, size_t n)
{
    if (a->next != NULL && n <= (size_t)(a->end - a->next)) { /* an exact fit */
        void *p = a->next;
        a->next += n;
        return p;
    }
    pt_arena_chunk_t *ch = a->chunks;
    size_t size = ch == NULL ? a->first_chunk_bytes : ch->size * 2;
    if (size < n)
        size = n;
    pt_arena_chunk_t *fresh = malloc(sizeof(*fresh) + size);
    if (fresh == NULL) {
        fprintf(stderr, "petrel: out of memory (arena chunk of %zu bytes)\n", size);
        abort();
    }
    fresh->size = size;
    /* A chunk bigger than the current one becomes current; an oversized one-off goes behind
     * it so that the space left in the current chunk is not wasted. */
    if (ch != NULL && n > ch->size) {
        fresh->next = ch->next;
        ch->next = fresh;
        return fresh->data;
    }
    fresh->next = ch;
    a->chunks = fresh;
    a->next = fresh->data + n;
    a->end = fresh->data + size;
    return fresh->data;
}

void *pt_arena_calloc(pt_arena_t *a, size_t n)
{
    void *p = pt_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *pt_arena_strndup(pt_arena_t *a, const char *s, size_t n)
{
    char *p = pt_arena_alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pt_arena_strdup(pt_arena_t *a, const char *s)
{
    return pt_arena_strndup(a, s, strlen(s));
}

void *pt_arena_memdup(pt_arena_t *a, const void *p, size_t n)
{
    void *d = pt_arena_alloc(a, n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

char *pt_arena_printf(pt_arena_t *a, const char *fmt, ...)
{
    /* Most results are short: formatted once on the stack, then copied; formatted again only
     * when longer. */
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return pt_arena_strdup(a, "");
    if ((size_t)n < sizeof(tmp))
        return pt_arena_memdup(a, tmp, (size_t)n + 1);
    char *p = pt_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *pt_arena_grow(pt_arena_t *a, void *v, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return v;
    size_t nc = *cap ? *cap * 2 : 8;
    void *nv = pt_arena_alloc(a, nc * elem);
    if (n)
        memcpy(nv, v, n * elem);
    *cap = nc;
    return nv;
}

void pt_arena_on_free(pt_arena_t *a, void (*fn)(void *arg), void *arg)
{
    pt_arena_cleanup_t *c = pt_arena_alloc(a, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
}
