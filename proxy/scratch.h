/* proxy/scratch.h
 * Per-thread buffers that hold bytes for one call only: ciphertext or a discarded response
 * read from a socket (consumed before the read callback returns), a ClientHello gathered from
 * its slabs, small writes coalesced into one TLS record. Each thread's set is one private
 * mapping, so only the pages a thread really touches are resident. As _Thread_local arrays
 * they were static TLS, which glibc allocates and zeroes for every thread: 300 KB of resident
 * memory per thread, whether the config uses TLS or not.
 *
 * A worker maps its set when it starts (a failure fails the start, never a request) and unmaps
 * it when it ends; any other thread (unit tests) gets one on first use. */
#ifndef PT_SCRATCH_H
#define PT_SCRATCH_H

#include <stdint.h>

#include "../tls/client_hello.h"
#include "buf.h"

typedef struct pt_scratch {
    char in[PT_BUF_SIZE];              /* a socket read: ciphertext for OpenSSL, bytes to drop */
    uint8_t hello[PT_HELLO_MAX_BYTES]; /* a ClientHello made contiguous */
    char records[16 * 1024];           /* small plaintext writes gathered into one TLS record */
} pt_scratch_t;

/* Maps this thread's set if it has none: 0, or -1 when memory is short. */
int pt_scratch_map(void);
/* This thread's set, mapped on first use (aborts if that fails outside a worker). */
pt_scratch_t *pt_scratch(void);
void pt_scratch_unmap(void);

#endif
