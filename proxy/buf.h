/* proxy/buf.h
 * Refcounted slabs for bytes read from sockets. A connection reads into a slab; body pieces are
 * forwarded by handing slices of it to uv_write with a ref held until the write callback, so
 * body bytes are never copied. Slabs are per thread (a worker's loop) and recycled through a
 * small thread-local free list, so the hot path does not call malloc. */
#ifndef PT_BUF_H
#define PT_BUF_H

#include <stddef.h>
#include <stdint.h>

#define PT_BUF_SIZE (64 * 1024) /* usable bytes of a slab: a 64 KiB burst is read whole */

typedef struct pt_buf {
    uint32_t refs;
    uint32_t cap; /* usable bytes in data */
    char data[];
} pt_buf_t;

/* Returns a slab with one ref; never NULL (aborts on OOM). Not thread-safe across threads: a
 * slab is used and released on the thread that took it. */
pt_buf_t *pt_buf_new(void);
/* Returns a slab of at least size bytes: a pooled one when size <= PT_BUF_SIZE, else a
 * dedicated allocation freed on the last unref. */
pt_buf_t *pt_buf_new_sized(size_t size);
static inline void pt_buf_ref(pt_buf_t *b)
{
    b->refs++;
}
void pt_buf_unref(pt_buf_t *b);
/* Frees this thread's cached slabs (at worker exit). */
void pt_buf_trim(void);

/* The slab a socket reads into: bytes [off, len) of buf were read and not consumed yet. Every
 * reader (downstream and upstream connections, relays) keeps its input this way. */
typedef struct pt_rbuf {
    pt_buf_t *buf; /* NULL while nothing is held: an idle connection holds no slab */
    size_t len;    /* bytes read into buf */
    size_t off;    /* bytes of buf consumed */
} pt_rbuf_t;

/* Where to read next (for libuv's alloc callback): the free tail of the slab, or a fresh slab
 * when less than 2 KiB is left, with the unconsumed bytes carried over. Sets *size. */
char *pt_rbuf_space(pt_rbuf_t *rb, size_t *size);
/* Lets the slab go once every byte in it was consumed; slices still being written keep
 * their own refs. */
void pt_rbuf_drop_consumed(pt_rbuf_t *rb);
/* Lets the slab go whatever it holds. */
void pt_rbuf_release(pt_rbuf_t *rb);

#endif
