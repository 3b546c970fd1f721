/* proxy/write.h
 * Writes to a libuv stream without copying body bytes: each write pins the slab(s) its data
 * lives in until libuv's callback, and may carry a small inline prefix (a chunk-size line) so
 * that chunked re-framing costs no allocation. Write requests come from a thread-local free
 * list. The owner's done callback runs after every write (status < 0 on failure or when the
 * handle was closed), which is where owners check their watermarks. */
#ifndef PT_WRITE_H
#define PT_WRITE_H

#include <stddef.h>
#include <uv.h>

#include "buf.h"

/* Called when a queued write completes or fails. A write the kernel takes whole at once
 * completes synchronously and calls nothing: owners only need done to learn that a congested
 * queue drained, and such a write never queued. */
typedef void (*pt_write_done_cb)(void *owner, int status);

/* Queues up to 3 buffers on s as one write (one writev), preceded by prefix[0..prefix_len)
 * (at most 24 bytes, copied) and followed by suffix (a static string or NULL). pin and pin2
 * (either may be NULL) are the slabs the buffers point into; each gets a ref held until done.
 * Returns 0 or a libuv error (done is not called then). */
int pt_write2(uv_stream_t *s, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
              unsigned n_bufs, const char *suffix, pt_buf_t *pin, pt_buf_t *pin2,
              pt_write_done_cb done, void *owner);

static inline int pt_write(uv_stream_t *s, const char *prefix, size_t prefix_len,
                           const uv_buf_t *bufs, unsigned n_bufs, const char *suffix, pt_buf_t *pin,
                           pt_write_done_cb done, void *owner)
{
    return pt_write2(s, prefix, prefix_len, bufs, n_bufs, suffix, pin, NULL, done, owner);
}

/* Writes a body piece as one HTTP/1.1 chunk ("<hex>\r\n" data "\r\n"). len must be > 0. */
int pt_write_chunk(uv_stream_t *s, const char *data, size_t len, pt_buf_t *pin,
                   pt_write_done_cb done, void *owner);

struct pt_tls;
/* Sends all the ciphertext a TLS engine has ready on s, in pooled slabs that the writes pin
 * (the engine's output is taken at once, so it never piles up inside OpenSSL). Returns 0 or
 * the first write's libuv error. */
int pt_write_tls_output(uv_stream_t *s, struct pt_tls *tls, pt_write_done_cb done, void *owner);

/* Frees this thread's cached write requests (at worker exit). */
void pt_write_trim(void);

#endif
