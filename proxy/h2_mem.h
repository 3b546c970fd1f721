/* proxy/h2_mem.h
 * nghttp2's allocator for the sessions of one worker. nghttp2 makes about twenty allocations
 * per stream (the stream, its queue items, frames, header buffers) and frees them when the
 * stream closes; with a hundred streams in flight glibc's per-thread cache (seven blocks per
 * size) overflows and most of those pairs take malloc's slow path. Here blocks up to 4 KiB
 * are rounded up to a multiple of 32 bytes (as malloc rounds to 16: a live block costs about
 * what it would) and go back to a free list per size, within a budget per worker, so a
 * stream's allocations are a pop and a push each. Larger ones go to malloc.
 *
 * Worker thread only: the sessions of a worker are used on its loop alone. A zeroed
 * pt_h2_mem_t is ready; pt_h2_mem_dispose() frees the lists once no session is left. */
#ifndef PT_H2_MEM_H
#define PT_H2_MEM_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>

#define PT_H2_MEM_STEP 32
#define PT_H2_MEM_CLASSES 128 /* 32 B .. 4 KiB */

typedef struct pt_h2_mem {
    void *free[PT_H2_MEM_CLASSES]; /* blocks of each size, linked through their first word */
    size_t kept_bytes;             /* on all the lists, up to the budget (h2_mem.c) */
} pt_h2_mem_t;

/* The allocator to give nghttp2_session_*_new3 (nghttp2 copies it). */
nghttp2_mem pt_h2_mem_of(pt_h2_mem_t *m);
void pt_h2_mem_dispose(pt_h2_mem_t *m);

#endif
