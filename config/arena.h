/* config/arena.h
 * A bump allocator for objects that share one lifetime: a config snapshot, a connection, a
 * request. Nothing in an arena is freed on its own; pt_arena_dispose() releases all of it at
 * once after running the cleanup hooks registered with pt_arena_on_free() (newest first).
 * Out of memory aborts: request size limits bound every arena on the request path. */
#ifndef PT_ARENA_H
#define PT_ARENA_H

#include <stddef.h>

#define PT_ARENA_ALIGN 16

typedef struct pt_arena_chunk pt_arena_chunk_t;
typedef struct pt_arena_cleanup pt_arena_cleanup_t;

typedef struct pt_arena {
    pt_arena_chunk_t *chunks;     /* the current one first, then older and one-off ones; owned */
    pt_arena_cleanup_t *cleanups; /* newest first; live in the arena itself */
    unsigned char *next, *end;    /* the current chunk's free space (NULL, NULL: none) */
    size_t first_chunk_bytes;     /* size of the first chunk malloc'd on demand */
} pt_arena_t;

/* Prepares an empty arena; no memory is taken until the first allocation. */
void pt_arena_init(pt_arena_t *a, size_t first_chunk_bytes);
/* Runs the cleanup hooks, newest first, then frees every chunk. The arena may be reused. */
void pt_arena_dispose(pt_arena_t *a);

/* As pt_arena_dispose, but keeps one chunk of first_chunk_bytes (if it has one), emptied, for
 * the arena's next use: an arena reused for one request after another (a stream's) then
 * costs no malloc per request. */
void pt_arena_reset(pt_arena_t *a);
/* What pt_arena_alloc does when the current chunk has no room for n (aligned) bytes. */
void *pt__arena_alloc_slow(pt_arena_t *a, size_t n);

/* Returns n bytes aligned for any type; never NULL (aborts on OOM). Inline: a request's
 * codecs call it a few dozen times per request, nearly always within the current chunk. */
static inline void *pt_arena_alloc(pt_arena_t *a, size_t n)
{
    n = (n + PT_ARENA_ALIGN - 1) & ~(size_t)(PT_ARENA_ALIGN - 1);
    if (n < (size_t)(a->end - a->next)) { /* strictly: n == 0 with no chunk yet goes below */
        void *p = a->next;
        a->next += n;
        return p;
    }
    return pt__arena_alloc_slow(a, n);
}
/* As pt_arena_alloc, zero-filled. */
void *pt_arena_calloc(pt_arena_t *a, size_t n);
/* Copies n bytes of s and a terminating NUL into the arena. */
char *pt_arena_strndup(pt_arena_t *a, const char *s, size_t n);
char *pt_arena_strdup(pt_arena_t *a, const char *s);
/* Returns a copy of the n bytes at p. */
void *pt_arena_memdup(pt_arena_t *a, const void *p, size_t n);
/* printf into the arena. */
char *pt_arena_printf(pt_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Grows an arena-backed array: returns v when it has room for element n (of elem bytes),
 * else a copy with twice the capacity (8 at first), updating *cap. The old storage stays in
 * the arena until it is disposed, so use this for arrays built once (config compilation). */
void *pt_arena_grow(pt_arena_t *a, void *v, size_t n, size_t *cap, size_t elem);
/* Registers fn(arg) to run when the arena is disposed, before its memory goes. */
void pt_arena_on_free(pt_arena_t *a, void (*fn)(void *arg), void *arg);

#endif
