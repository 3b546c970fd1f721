/* proxy/h2_mem.h
 * nghttp2's allocator for the sessions of one worker. nghttp2 makes about twenty allocations
 * per stream (the stream, its queue items, frames, header buffers) and frees them when the
 * stream closes; with a hundred streams in flight glibc's per-thread cache (seven blocks per
 * size) overflows and most of those pairs take malloc's slow path. Here blocks up to 4 KiB
 * come in power-of-two classes and go back to a free list per class, bounded in bytes, so a
 * stream's allocations are a pop and a push each. Larger ones go to malloc.
 *
 * Worker thread only: the sessions of a worker are used on its loop alone. A zeroed
 * pt_h2_mem_t is ready; pt_h2_mem_dispose() frees the lists once no session is left. */
#ifndef PT_H2_MEM_H
#define PT_H2_MEM_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>

#define PT_H2_MEM_CLASSES 7 /* 64 B .. 4 KiB */

typedef struct pt_h2_mem {
    void *free[PT_H2_MEM_CLASSES]; /* blocks of each class, linked through their first word */
    size_t free_bytes[PT_H2_MEM_CLASSES]; /* kept on each list, up to PT_H2_MEM_KEEP_BYTES */
} pt_h2_mem_t;

/* The allocator to give nghttp2_session_*_new3 (nghttp2 copies it). */
nghttp2_mem pt_h2_mem_of(pt_h2_mem_t *m);
void pt_h2_mem_dispose(pt_h2_mem_t *m);

#endif
