/* tests/fuzz/fuzz_http1.c
 * libFuzzer driver for the HTTP/1 codec. Each input goes through a request parser whole, then
 * split in two at data[0] (so the fuzzer also explores reads that end mid-token), then through
 * a response parser; pipelined messages are followed by resume, an upgrade stops the run, and
 * every run ends with finish. Callbacks touch every byte of the head and body so that ASan sees
 * any slice that points outside its memory. The arena is disposed after each pass. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proxy/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void touch(pt_str_t s)
{
    unsigned h = 0;
    for (size_t i = 0; i < s.len; i++)
        h = h * 31 + (unsigned char)s.base[i];
    sink += h;
}

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *h)
{
    touch(h->method);
    touch(p->framing.target);
    touch(h->path);
    touch(h->authority);
    touch(h->reason);
    touch(h->upgrade);
    for (size_t i = 0; i < h->n_headers; i++) {
        touch(h->headers[i].name);
        touch(h->headers[i].value);
    }
    const pt_header_t *ct = pt_http_msg_find_header(h, "content-type");
    if (ct != NULL)
        touch(ct->value);
    /* exercise the caller-decides-no-body path on some responses */
    return (p->is_response && h->status == 200 && (h->n_headers & 1)) ? PT_HTTP1_SKIP_BODY : 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    touch((pt_str_t){at, len});
    return 0;
}

static int on_trailers(pt_http1_parser_t *p, pt_header_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        touch(t[i].name);
        touch(t[i].value);
    }
    return 0;
}

static int on_complete(pt_http1_parser_t *p)
{
    sink++;
    return 0;
}

static const pt_http1_callbacks_t cbs = {on_head, on_body, on_trailers, on_complete};

/* Feeds data in pieces cut at the given offsets (sorted, < size); at most 64 messages. */
static void run(bool response, const uint8_t *data, size_t size, const size_t *cuts, int ncuts)
{
    pt_arena_t arena;
    pt_arena_init(&arena, 512);
    pt_http1_parser_t p;
    pt_http1_limits_t lim = {512, 2048, 20}; /* small limits so the fuzzer reaches them */
    pt_http1_parser_init(&p, response, &cbs, NULL, &lim);
    pt_http1_parser_set_arena(&p, &arena);
    size_t start = 0;
    int messages = 0;
    for (int k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : size;
        while (start < end) {
            size_t used = 0;
            int rc = pt_http1_parser_execute(&p, (const char *)data + start, end - start, &used);
            if (used > end - start)
                __builtin_trap();
            start += used;
            if (rc == PT_HTTP1_PAUSED) {
                if (p.is_upgraded || ++messages > 64)
                    goto out;
                pt_http1_parser_resume(&p);
                continue;
            }
            if (rc != PT_HTTP1_OK) {
                if (rc == PT_HTTP1_EINVALID && (p.error_status == 0 || p.error_reason == NULL))
                    __builtin_trap();
                goto out;
            }
        }
    }
    (void)pt_http1_parser_finish(&p);
out:
    (void)pt_http1_parser_in_message(&p);
    pt_arena_dispose(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(false, data, size, NULL, 0);
    if (size > 1) {
        size_t cut = 1 + data[0] % (size - 1);
        run(false, data, size, &cut, 1);
    }
    run(true, data, size, NULL, 0);
    return 0;
}
