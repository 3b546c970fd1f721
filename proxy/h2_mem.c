/* proxy/h2_mem.c
 * Each block has a 16-byte header before what nghttp2 sees (alignment kept for any type): its
 * class, or PT_H2_MEM_CLASSES for one from malloc, whose usable size follows. realloc within
 * the block's size is free. */
#include "h2_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 16

/* Bytes kept on the lists per worker. Under AddressSanitizer nothing is kept, so a use after
 * free of a block nghttp2 let go is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define KEEP_BYTES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP_BYTES 0
#endif
#endif
#ifndef KEEP_BYTES
#define KEEP_BYTES (256 * 1024)
#endif

typedef struct header {
    uint32_t class; /* PT_H2_MEM_CLASSES: from malloc, size below */
    uint32_t unused;
    size_t size; /* usable bytes (a class's size, or what malloc was asked for) */
} header_t;

_Static_assert(sizeof(header_t) == HEADER, "the header keeps 16-byte alignment");

static header_t *header_of(void *p)
{
    return (header_t *)((char *)p - HEADER);
}

static void *h2_malloc(size_t n, void *ud)
{
    pt_h2_mem_t *m = ud;
    size_t c = n == 0 ? 0 : (n - 1) / PT_H2_MEM_STEP;
    header_t *h;
    if (c < PT_H2_MEM_CLASSES && m->free[c] != NULL) {
        h = m->free[c];
        memcpy(&m->free[c], h, sizeof(void *));
        h->class = (uint32_t)c; /* the link was written over it */
        m->kept_bytes -= h->size;
    } else {
        size_t size = c < PT_H2_MEM_CLASSES ? (c + 1) * PT_H2_MEM_STEP : n;
        if ((h = malloc(HEADER + size)) == NULL)
            return NULL; /* nghttp2 reports NGHTTP2_ERR_NOMEM */
        h->class = c < PT_H2_MEM_CLASSES ? (uint32_t)c : PT_H2_MEM_CLASSES;
        h->size = size;
    }
    return (char *)h + HEADER;
}

static void h2_free(void *p, void *ud)
{
    if (p == NULL)
        return;
    pt_h2_mem_t *m = ud;
    header_t *h = header_of(p);
    if (h->class >= PT_H2_MEM_CLASSES || m->kept_bytes + h->size > KEEP_BYTES) {
        free(h);
        return;
    }
    uint32_t c = h->class;
    memcpy(h, &m->free[c], sizeof(void *)); /* the link, over the header's first word */
    m->free[c] = h;
    m->kept_bytes += h->size;
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
    size_t old = header_of(p)->size;
    if (n <= old)
        return p;
    void *q = h2_malloc(n, ud);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old);
    h2_free(p, ud);
    return q;
}

nghttp2_mem pt_h2_mem_of(pt_h2_mem_t *m)
{
    return (nghttp2_mem){m, h2_malloc, h2_free, h2_calloc, h2_realloc};
}

void pt_h2_mem_dispose(pt_h2_mem_t *m)
{
    for (size_t c = 0; c < PT_H2_MEM_CLASSES; c++) {
        void *h = m->free[c];
        while (h != NULL) {
            void *next;
            memcpy(&next, h, sizeof(void *));
            free(h);
            h = next;
        }
        m->free[c] = NULL;
    }
    m->kept_bytes = 0;
}
