/* proxy/h2_mem.c
 * Each block has a 16-byte header before what nghttp2 sees (alignment kept for any type): its
 * class, or PT_H2_MEM_CLASSES for one from malloc. realloc within the class is free. */
#include "h2_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 16
#define SMALLEST 64
/* Per class: at most 448 KiB kept per worker. Under AddressSanitizer nothing is kept, so a
 * use after free of a block nghttp2 let go is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define KEEP_BYTES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP_BYTES 0
#endif
#endif
#ifndef KEEP_BYTES
#define KEEP_BYTES (64 * 1024)
#endif

static size_t class_size(unsigned c)
{
    return (size_t)SMALLEST << c;
}

static unsigned class_of(size_t n)
{
    unsigned c = 0;
    while (c < PT_H2_MEM_CLASSES && class_size(c) < n)
        c++;
    return c; /* PT_H2_MEM_CLASSES: too large for any */
}

static unsigned *header_of(void *p)
{
    return (unsigned *)((char *)p - HEADER);
}

static void *h2_malloc(size_t n, void *ud)
{
    pt_h2_mem_t *m = ud;
    unsigned c = class_of(n);
    unsigned *h;
    if (c < PT_H2_MEM_CLASSES && m->free[c] != NULL) {
        h = m->free[c];
        memcpy(&m->free[c], h, sizeof(void *));
        m->free_bytes[c] -= class_size(c);
    } else {
        h = malloc(HEADER + (c < PT_H2_MEM_CLASSES ? class_size(c) : n));
        if (h == NULL)
            return NULL; /* nghttp2 reports NGHTTP2_ERR_NOMEM */
    }
    *h = c;
    return (char *)h + HEADER;
}

static void h2_free(void *p, void *ud)
{
    if (p == NULL)
        return;
    pt_h2_mem_t *m = ud;
    unsigned *h = header_of(p);
    unsigned c = *h;
    if (c >= PT_H2_MEM_CLASSES || m->free_bytes[c] + class_size(c) > KEEP_BYTES) {
        free(h);
        return;
    }
    memcpy(h, &m->free[c], sizeof(void *));
    m->free[c] = h;
    m->free_bytes[c] += class_size(c);
}

static void *h2_calloc(size_t nmemb, size_t size, void *ud)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = h2_malloc(nmemb * size, ud);
    if (p != NULL)
        memset(p, 0, nmemb * size);
    return p;
}

static void *h2_realloc(void *p, size_t n, void *ud)
{
    if (p == NULL)
        return h2_malloc(n, ud);
    if (n == 0) {
        h2_free(p, ud);
        return NULL;
    }
    unsigned c = *header_of(p);
    if (c < PT_H2_MEM_CLASSES && n <= class_size(c))
        return p;
    if (c >= PT_H2_MEM_CLASSES && class_of(n) >= PT_H2_MEM_CLASSES) {
        unsigned *h = realloc(header_of(p), HEADER + n);
        return h != NULL ? (char *)h + HEADER : NULL;
    }
    void *q = h2_malloc(n, ud);
    if (q == NULL)
        return NULL;
    /* The old block's size: its class's, or at least n for one from malloc that shrinks
     * into a class (the copy takes what fits). */
    size_t old = c < PT_H2_MEM_CLASSES ? class_size(c) : n;
    memcpy(q, p, old < n ? old : n);
    h2_free(p, ud);
    return q;
}

nghttp2_mem pt_h2_mem_of(pt_h2_mem_t *m)
{
    return (nghttp2_mem){m, h2_malloc, h2_free, h2_calloc, h2_realloc};
}

void pt_h2_mem_dispose(pt_h2_mem_t *m)
{
    for (unsigned c = 0; c < PT_H2_MEM_CLASSES; c++) {
        void *h = m->free[c];
        while (h != NULL) {
            void *next;
            memcpy(&next, h, sizeof(void *));
            free(h);
            h = next;
        }
        m->free[c] = NULL;
        m->free_bytes[c] = 0;
    }
}
