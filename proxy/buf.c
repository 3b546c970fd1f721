/* proxy/buf.c */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FREE_LIST_MAX 32

typedef struct free_slab {
    struct free_slab *next;
} free_slab_t;

static _Thread_local free_slab_t *free_list;
static _Thread_local unsigned free_count;

pt_buf_t *pt_buf_new(void)
{
    pt_buf_t *b;
    if (free_list != NULL) {
        b = (pt_buf_t *)(void *)free_list;
        free_list = free_list->next;
        free_count--;
    } else {
        b = malloc(sizeof(*b) + PT_BUF_SIZE);
        if (b == NULL) {
            fprintf(stderr, "petrel: out of memory (buffer)\n");
            abort();
        }
    }
    b->refs = 1;
    b->cap = PT_BUF_SIZE;
    return b;
}

pt_buf_t *pt_buf_new_sized(size_t size)
{
    if (size <= PT_BUF_SIZE)
        return pt_buf_new();
    pt_buf_t *b = malloc(sizeof(*b) + size);
    if (b == NULL) {
        fprintf(stderr, "petrel: out of memory (buffer of %zu bytes)\n", size);
        abort();
    }
    b->refs = 1;
    b->cap = (uint32_t)size;
    return b;
}

void pt_buf_unref(pt_buf_t *b)
{
    if (--b->refs != 0)
        return;
    if (b->cap == PT_BUF_SIZE && free_count < FREE_LIST_MAX) {
        free_slab_t *f = (free_slab_t *)(void *)b;
        f->next = free_list;
        free_list = f;
        free_count++;
    } else {
        free(b);
    }
}

void pt_buf_trim(void)
{
    while (free_list != NULL) {
        free_slab_t *next = free_list->next;
        free(free_list);
        free_list = next;
    }
    free_count = 0;
}

char *pt_rbuf_space(pt_rbuf_t *rb, size_t *size)
{
    if (rb->buf != NULL && rb->buf->cap - rb->len < 2048) {
        pt_buf_t *fresh = pt_buf_new();
        size_t left = rb->len - rb->off;
        memcpy(fresh->data, rb->buf->data + rb->off, left);
        pt_buf_unref(rb->buf);
        rb->buf = fresh;
        rb->len = left;
        rb->off = 0;
    }
    if (rb->buf == NULL) {
        rb->buf = pt_buf_new();
        rb->len = rb->off = 0;
    }
    *size = rb->buf->cap - rb->len;
    return rb->buf->data + rb->len;
}

void pt_rbuf_drop_consumed(pt_rbuf_t *rb)
{
    if (rb->buf != NULL && rb->off == rb->len)
        pt_rbuf_release(rb);
}

void pt_rbuf_release(pt_rbuf_t *rb)
{
    if (rb->buf != NULL)
        pt_buf_unref(rb->buf);
    rb->buf = NULL;
    rb->len = rb->off = 0;
}
