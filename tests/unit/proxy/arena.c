/* tests/unit/proxy/arena.c: the request/config arena and the body slabs. */
#include "test.h"

#include <stdint.h>
#include <string.h>

#include "config/arena.h"
#include "proxy/buf.h"

static int order[4];
static int n_order;
static void record(void *arg)
{
    order[n_order++] = (int)(intptr_t)arg;
}

TEST(arena_alignment_growth_and_cleanups)
{
    pt_arena_t a;
    pt_arena_init(&a, 64);
    for (int i = 0; i < 1000; i++) {
        char *p = pt_arena_alloc(&a, (size_t)(i % 37) + 1);
        ASSERT_EQ((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)(i % 37) + 1);
    }
    char *big = pt_arena_alloc(&a, 100000); /* larger than any chunk so far */
    memset(big, 1, 100000);
    char *after = pt_arena_strdup(&a, "still usable");
    ASSERT_STREQ(after, "still usable");
    ASSERT_STREQ(pt_arena_printf(&a, "%s:%d", "h", 80), "h:80");
    char *z = pt_arena_calloc(&a, 32);
    for (int i = 0; i < 32; i++)
        ASSERT_EQ(z[i], 0);
    n_order = 0;
    pt_arena_on_free(&a, record, (void *)1);
    pt_arena_on_free(&a, record, (void *)2);
    pt_arena_dispose(&a);
    ASSERT_EQ(n_order, 2);
    ASSERT_EQ(order[0], 2); /* newest first */
    ASSERT_EQ(order[1], 1);
    /* A disposed arena can be used again. */
    ASSERT_STREQ(pt_arena_strndup(&a, "abcdef", 3), "abc");
    pt_arena_dispose(&a);
}

/* The edges of the inline path: nothing allocated yet, an exact fit, a zero-byte request, and a
 * one-off that leaves the current chunk's space in use. */
TEST(arena_exact_fits_zero_sizes_and_one_offs)
{
    pt_arena_t a;
    pt_arena_init(&a, 64);
    char *z = pt_arena_alloc(&a, 0); /* no chunk yet: still a pointer */
    ASSERT(z != NULL);
    char *p = pt_arena_alloc(&a, 64); /* exactly the first chunk */
    memset(p, 1, 64);
    char *q = pt_arena_alloc(&a, 48); /* 64 - 0 (z took nothing) - 64: a new chunk */
    ASSERT(q < p || q >= p + 64);
    memset(q, 2, 48);
    char *r = pt_arena_alloc(&a, 80); /* the rest of that 128-byte chunk, to its end */
    ASSERT(r == q + 48);
    memset(r, 3, 80);
    ASSERT(pt_arena_alloc(&a, 0) != NULL);
    char *big = pt_arena_alloc(&a, 1000); /* over the current chunk's size: behind it */
    memset(big, 4, 1000);
    char *s = pt_arena_alloc(&a, 16); /* a fresh current chunk (the last was full), not big's */
    ASSERT(s < big || s >= big + 1000);
    for (int i = 0; i < 64; i++)
        ASSERT_EQ(p[i], 1);
    ASSERT_EQ(q[47], 2);
    ASSERT_EQ(r[79], 3);
    pt_arena_dispose(&a);
}

TEST(arena_reset_keeps_its_first_chunk_and_runs_cleanups)
{
    pt_arena_t a;
    pt_arena_init(&a, 256);
    char *first = pt_arena_alloc(&a, 16);
    for (int i = 0; i < 100; i++) /* into bigger chunks */
        memset(pt_arena_alloc(&a, 40), 0xcd, 40);
    pt_arena_alloc(&a, 10000); /* and a one-off */
    n_order = 0;
    pt_arena_on_free(&a, record, (void *)7);
    pt_arena_reset(&a);
    ASSERT_EQ(n_order, 1);
    ASSERT_EQ(order[0], 7);
    /* The next use starts at the beginning of the chunk kept; the cleanup does not run again. */
    ASSERT(pt_arena_alloc(&a, 16) == first);
    pt_arena_reset(&a);
    ASSERT_EQ(n_order, 1);
    ASSERT(pt_arena_alloc(&a, 300) != NULL); /* larger than the first chunk: one of its own */
    pt_arena_reset(&a);
    pt_arena_dispose(&a);
}

TEST(slabs_are_refcounted_and_recycled)
{
    pt_buf_t *b = pt_buf_new();
    ASSERT_EQ(b->refs, 1);
    ASSERT_EQ(b->cap, PT_BUF_SIZE);
    pt_buf_ref(b);
    pt_buf_unref(b);
    ASSERT_EQ(b->refs, 1);
    pt_buf_unref(b);
    pt_buf_t *again = pt_buf_new(); /* from the free list */
    ASSERT(again == b);
    pt_buf_unref(again);
    pt_buf_t *large = pt_buf_new_sized(PT_BUF_SIZE + 1);
    ASSERT_EQ(large->cap, PT_BUF_SIZE + 1);
    memset(large->data, 0, PT_BUF_SIZE + 1);
    pt_buf_unref(large); /* freed, never pooled */
    pt_buf_trim();
}
