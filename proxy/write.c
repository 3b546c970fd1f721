/* proxy/write.c */
#include "write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tls/tls.h"

#define WRITE_FREE_MAX 256

typedef struct pt_write_req {
    uv_write_t req;
    pt_buf_t *pin, *pin2;
    pt_write_done_cb done;
    void *owner;
    struct pt_write_req *next_free;
    char prefix[24];
} pt_write_req_t;

static _Thread_local pt_write_req_t *free_reqs;
static _Thread_local unsigned n_free_reqs;

static pt_write_req_t *req_get(void)
{
    pt_write_req_t *r = free_reqs;
    if (r != NULL) {
        free_reqs = r->next_free;
        n_free_reqs--;
        return r;
    }
    r = malloc(sizeof(*r));
    if (r == NULL) {
        fprintf(stderr, "petrel: out of memory (write request)\n");
        abort();
    }
    return r;
}

static void req_put(pt_write_req_t *r)
{
    if (n_free_reqs >= WRITE_FREE_MAX) {
        free(r);
        return;
    }
    r->next_free = free_reqs;
    free_reqs = r;
    n_free_reqs++;
}

static void on_write(uv_write_t *req, int status)
{
    pt_write_req_t *r = (pt_write_req_t *)req;
    pt_write_done_cb done = r->done;
    void *owner = r->owner;
    if (r->pin != NULL)
        pt_buf_unref(r->pin);
    if (r->pin2 != NULL)
        pt_buf_unref(r->pin2);
    req_put(r);
    if (done != NULL)
        done(owner, status);
}

int pt_write2(uv_stream_t *s, const char *prefix, size_t prefix_len, const uv_buf_t *bufs,
              unsigned n_bufs, const char *suffix, pt_buf_t *pin, pt_buf_t *pin2,
              pt_write_done_cb done, void *owner)
{
    uv_buf_t v[5];
    unsigned n = 0;
    pt_write_req_t *r = req_get();
    if (prefix_len > 0) {
        memcpy(r->prefix, prefix, prefix_len);
        v[n++] = uv_buf_init(r->prefix, (unsigned)prefix_len);
    }
    for (unsigned i = 0; i < n_bufs && i < 3; i++)
        if (bufs[i].len > 0)
            v[n++] = bufs[i];
    if (suffix != NULL)
        v[n++] = uv_buf_init((char *)suffix, (unsigned)strlen(suffix));
    /* Most writes fit in the socket buffer: write them now. libuv's uv_write would then still
     * queue a completion and re-arm the epoll watcher (one epoll_ctl per write, in 1.44). Only
     * when nothing is queued may we write directly, or bytes would be reordered. */
    if (uv_stream_get_write_queue_size(s) == 0) {
        /* On an error other than EAGAIN, uv_write below fails the same way and reports it
         * through done, where owners handle write errors. */
        int done_bytes = uv_try_write(s, v, n);
        size_t left = done_bytes > 0 ? (size_t)done_bytes : 0;
        unsigned skip = 0;
        while (skip < n && left >= v[skip].len)
            left -= v[skip++].len;
        if (skip == n) {
            req_put(r);
            return 0;
        }
        /* A partial write: queue the rest. The prefix lives in r, so it is copied before the
         * buffers are shifted. */
        v[skip].base += left;
        v[skip].len -= left;
        memmove(v, v + skip, (n - skip) * sizeof(v[0]));
        n -= skip;
    }
    r->pin = pin;
    r->pin2 = pin2;
    r->done = done;
    r->owner = owner;
    if (pin != NULL)
        pt_buf_ref(pin);
    if (pin2 != NULL)
        pt_buf_ref(pin2);
    int err = uv_write(&r->req, s, v, n, on_write);
    if (err != 0) {
        if (pin != NULL)
            pt_buf_unref(pin);
        if (pin2 != NULL)
            pt_buf_unref(pin2);
        req_put(r);
    }
    return err;
}

int pt_write_chunk(uv_stream_t *s, const char *data, size_t len, pt_buf_t *pin,
                   pt_write_done_cb done, void *owner)
{
    char line[24];
    int n = snprintf(line, sizeof(line), "%zx\r\n", len);
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return pt_write(s, line, (size_t)n, &b, 1, "\r\n", pin, done, owner);
}

void pt_write_trim(void)
{
    while (free_reqs != NULL) {
        pt_write_req_t *next = free_reqs->next_free;
        free(free_reqs);
        free_reqs = next;
    }
    n_free_reqs = 0;
}

int pt_write_tls_output(uv_stream_t *s, struct pt_tls *tls, pt_write_done_cb done, void *owner)
{
    while (pt_tls_output_len(tls) > 0) {
        pt_buf_t *b = pt_buf_new();
        size_t n = pt_tls_take_output(tls, b->data, b->cap);
        uv_buf_t ub = uv_buf_init(b->data, (unsigned)n);
        int err = n > 0 ? pt_write(s, NULL, 0, &ub, 1, NULL, b, done, owner) : 0;
        pt_buf_unref(b);
        if (err != 0 || n == 0)
            return err;
    }
    return 0;
}
