/* tests/unit/proxy/h2_mem.c: nghttp2's per-worker allocator (proxy/h2_mem.c). */
#include "test.h"

#include <stdint.h>
#include <string.h>

#include "proxy/h2_mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define KEEPS_BLOCKS 0 /* under ASan every block goes back to malloc */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEPS_BLOCKS 0
#endif
#endif
#ifndef KEEPS_BLOCKS
#define KEEPS_BLOCKS 1
#endif

TEST(h2_mem_reuses_blocks_of_a_size_and_keeps_alignment)
{
    pt_h2_mem_t m = {0};
    nghttp2_mem mem = pt_h2_mem_of(&m);
    void *a = mem.malloc(100, mem.mem_user_data); /* the 128 B size */
    ASSERT(a != NULL);
    ASSERT_EQ((uintptr_t)a % 16, 0);
    memset(a, 0xab, 100);
    mem.free(a, mem.mem_user_data);
    void *b = mem.malloc(120, mem.mem_user_data); /* 97..128 B: the same size */
    if (KEEPS_BLOCKS)
        ASSERT(b == a); /* the same block, from the free list */
    unsigned char *z = mem.calloc(10, 12, mem.mem_user_data); /* a block just freed, zeroed */
    mem.free(b, mem.mem_user_data);
    for (int i = 0; i < 120; i++)
        ASSERT_EQ(z[i], 0);
    mem.free(z, mem.mem_user_data);
    mem.free(NULL, mem.mem_user_data);
    ASSERT(mem.calloc(SIZE_MAX / 2, 4, mem.mem_user_data) == NULL); /* overflow refused */
    pt_h2_mem_dispose(&m);
}

TEST(h2_mem_realloc_keeps_the_bytes_across_sizes_and_large_blocks)
{
    pt_h2_mem_t m = {0};
    nghttp2_mem mem = pt_h2_mem_of(&m);
    unsigned char *p = mem.malloc(50, mem.mem_user_data);
    for (int i = 0; i < 50; i++)
        p[i] = (unsigned char)i;
    ASSERT(mem.realloc(p, 64, mem.mem_user_data) == p); /* still fits its 64 B block */
    p = mem.realloc(p, 3000, mem.mem_user_data);
    for (int i = 0; i < 50; i++)
        ASSERT_EQ(p[i], i);
    memset(p + 50, 7, 2950);
    p = mem.realloc(p, 100000, mem.mem_user_data); /* from malloc */
    ASSERT_EQ(p[49], 49);
    ASSERT_EQ(p[2999], 7);
    memset(p + 3000, 9, 97000);
    p = mem.realloc(p, 200000, mem.mem_user_data); /* larger still */
    ASSERT_EQ(p[99999], 9);
    p = mem.realloc(p, 1000, mem.mem_user_data); /* back into a class */
    ASSERT_EQ(p[0], 0);
    ASSERT_EQ(p[999], 7);
    ASSERT(mem.realloc(p, 0, mem.mem_user_data) == NULL); /* freed */
    pt_h2_mem_dispose(&m);
}

TEST(h2_mem_keeps_a_bounded_amount)
{
    pt_h2_mem_t m = {0};
    nghttp2_mem mem = pt_h2_mem_of(&m);
    enum { N = 100 };
    void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mem.malloc(4096, mem.mem_user_data);
    for (int i = 0; i < N; i++)
        mem.free(blocks[i], mem.mem_user_data);
    ASSERT(m.kept_bytes <= 256 * 1024);
    if (KEEPS_BLOCKS)
        ASSERT(m.kept_bytes == 64 * 4096); /* the budget: 64 of the 100 */
    pt_h2_mem_dispose(&m);
    ASSERT_EQ(m.kept_bytes, 0u);
}
