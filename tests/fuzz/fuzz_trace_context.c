/* tests/fuzz/fuzz_trace_context.c
 * libFuzzer driver for the trace-context parsers (proxy/trace.c): the input is split at '\n'
 * into header lines "name: value" (so one input carries several headers, repeated or not),
 * extracted as a request's headers, then Petrel's span is started from it and its upstream
 * headers written into a buffer of exactly the announced size, which ASan checks. Each value
 * also goes through every parser on its own. Checks the invariants the proxy relies on: ids
 * from a valid format are never zero, a tracestate is only kept with its traceparent, and the
 * written headers parse back to the same ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 16

static uint32_t next_random(void *arg)
{
    uint32_t *s = arg;
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_header_t headers[MAX_HEADERS];
    size_t n = 0, start = 0;
    const char *text = (const char *)data;
    for (size_t i = 0; i <= size && n < MAX_HEADERS; i++) {
        if (i < size && text[i] != '\n')
            continue;
        const char *line = text + start;
        size_t len = i - start;
        const char *colon = memchr(line, ':', len);
        if (colon != NULL) {
            const char *v = colon + 1;
            size_t vl = len - (size_t)(v - line);
            while (vl > 0 && *v == ' ')
                v++, vl--;
            headers[n++] = (pt_header_t){{line, (size_t)(colon - line)}, {v, vl}, 0};
        }
        start = i + 1;
    }

    for (size_t i = 0; i < n; i++) {
        uint8_t t[16], s[8];
        bool sampled;
        pt_trace_parent_t p;
        memset(&p, 0, sizeof(p));
        if (pt_trace_parse_traceparent(headers[i].value, t, s, &sampled) &&
            (all_zero(t, 16) || all_zero(s, 8)))
            abort();
        (void)pt_trace_valid_tracestate(headers[i].value);
        if (pt_trace_parse_b3_single(headers[i].value, &p) && p.has_ids && all_zero(p.span_id, 8))
            abort();
        (void)pt_trace_is_context_header(headers[i].name);
    }

    pt_trace_parent_t parent;
    pt_trace_extract(headers, n, &parent);
    if (parent.has_ids && (all_zero(parent.trace_id, 16) || all_zero(parent.span_id, 8)))
        abort();
    if (parent.tracestate.len > 0 && parent.ids_from != PT_TRACE_FMT_W3C)
        abort();
    uint32_t seed = (uint32_t)size;
    pt_trace_context_t ctx;
    pt_trace_start(&parent, size % 2 ? 1000000u : 0u, next_random, &seed, &ctx);
    size_t cap = pt_trace_headers_size(&ctx);
    char *out = malloc(cap);
    if (out == NULL)
        return 0;
    size_t len = (size_t)(pt_trace_write_headers(&ctx, out) - out);
    if (len > cap)
        abort();
    /* What Petrel sends is what it would accept: the written traceparent parses back. */
    if (ctx.formats & PT_TRACE_FMT_W3C) {
        uint8_t t[16], s[8];
        bool sampled;
        if (len < 13 + 55 ||
            !pt_trace_parse_traceparent((pt_str_t){out + 13, 55}, t, s, &sampled) ||
            memcmp(t, ctx.trace_id, 16) != 0 || memcmp(s, ctx.span_id, 8) != 0 ||
            sampled != ctx.sampled)
            abort();
    }
    free(out);
    return 0;
}
