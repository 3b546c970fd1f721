/* tests/unit/proxy/trace.c: trace context extraction (W3C, B3 multi and single), the sampling
 * decision, the headers written upstream, and the JSON encoders' output shape. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/trace.h"
#include "proxy/trace_export.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN "00f067aa0ba902b7"

static pt_header_t hdr(const char *name, const char *value)
{
    return (pt_header_t){pt_str(name), pt_str(value), 0};
}

static void extract(pt_trace_parent_t *p, const pt_header_t *h, size_t n)
{
    pt_trace_extract(h, n, p);
}

static char *hex(const uint8_t *b, size_t n)
{
    static char out[4][33];
    static int k;
    char *o = out[k++ % 4];
    pt_trace_hex(b, n, o);
    o[2 * n] = '\0';
    return o;
}

/* A deterministic "random" source: counts up, so ids are predictable and non-zero. */
static uint32_t counter(void *arg)
{
    uint32_t *c = arg;
    return ++*c;
}

static uint32_t fixed(void *arg)
{
    return *(uint32_t *)arg;
}

TEST(traceparent_valid)
{
    uint8_t t[16], s[8];
    bool sampled;
    ASSERT(pt_trace_parse_traceparent(pt_str("00-" TRACE "-" SPAN "-01"), t, s, &sampled));
    ASSERT_STREQ(hex(t, 16), TRACE);
    ASSERT_STREQ(hex(s, 8), SPAN);
    ASSERT(sampled);
    ASSERT(pt_trace_parse_traceparent(pt_str("00-" TRACE "-" SPAN "-02"), t, s, &sampled));
    ASSERT(!sampled); /* only bit 0 is the sampled flag */
    /* a later version may carry more fields after a dash */
    ASSERT(pt_trace_parse_traceparent(pt_str("01-" TRACE "-" SPAN "-01-abc"), t, s, &sampled));
}

TEST(traceparent_invalid)
{
    static const char *const bad[] = {
        "",
        "00-" TRACE "-" SPAN "-0",
        "00-" TRACE "-" SPAN "-01-", /* version 00 is exactly 55 characters */
        "00-" TRACE "-" SPAN "-01 ", /* ... no trailing byte */
        "ff-" TRACE "-" SPAN "-01",  /* forbidden version */
        "01-" TRACE "-" SPAN "-01x", /* a later version: more only after a dash */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SPAN "-01", /* upper case */
        "00-00000000000000000000000000000000-" SPAN "-01",
        "00-" TRACE "-0000000000000000-01",
        "00_" TRACE "-" SPAN "-01",
        "00-" TRACE "_" SPAN "-01",
        "0g-" TRACE "-" SPAN "-01",
        "00-" TRACE "-" SPAN "-0g",
    };
    uint8_t t[16], s[8];
    bool sampled;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT(!pt_trace_parse_traceparent(pt_str(bad[i]), t, s, &sampled));
}

TEST(tracestate_rules)
{
    ASSERT(pt_trace_valid_tracestate(pt_str("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")));
    ASSERT(pt_trace_valid_tracestate(pt_str(" a=1 ,, b@sys=2\t")));
    ASSERT(pt_trace_valid_tracestate(pt_str("")));
    ASSERT(!pt_trace_valid_tracestate(pt_str("A=1")));     /* keys are lower case */
    ASSERT(!pt_trace_valid_tracestate(pt_str("a=")));      /* a value has one character at least */
    ASSERT(!pt_trace_valid_tracestate(pt_str("a=1,a=2"))); /* a key once */
    ASSERT(!pt_trace_valid_tracestate(pt_str("a=b=c")));
    ASSERT(!pt_trace_valid_tracestate(pt_str("novalue")));
    ASSERT(!pt_trace_valid_tracestate(pt_str("a=x\x01y")));
    ASSERT(pt_trace_valid_tracestate(pt_str("a=x y "))); /* white space around a member is OWS */
    ASSERT(!pt_trace_valid_tracestate(pt_str("@sys=1")));
    char many[33 * 8];
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)sprintf(many + n, "%sk%d=v", i ? "," : "", i);
    ASSERT(!pt_trace_valid_tracestate(pt_str(many))); /* 32 members at most */
    many[n - 6] = '\0';                               /* drop ",k32=v": 32 left */
    ASSERT(pt_trace_valid_tracestate(pt_str(many)));
}

TEST(extract_w3c)
{
    pt_header_t h[] = {hdr("Traceparent", "00-" TRACE "-" SPAN "-01"), hdr("tracestate", "a=1")};
    pt_trace_parent_t p;
    extract(&p, h, 2);
    ASSERT(p.has_ids);
    ASSERT_EQ(p.formats, PT_TRACE_FMT_W3C);
    ASSERT_EQ(p.decision, PT_TRACE_SAMPLED);
    ASSERT_STREQ(hex(p.trace_id, 16), TRACE);
    ASSERT_MEMEQ(p.tracestate.base, p.tracestate.len, "a=1", 3);
}

TEST(extract_w3c_twice_is_absent)
{
    pt_header_t h[] = {hdr("traceparent", "00-" TRACE "-" SPAN "-01"),
                       hdr("traceparent", "00-" TRACE "-" SPAN "-01")};
    pt_trace_parent_t p;
    extract(&p, h, 2);
    ASSERT(!p.has_ids);
    ASSERT_EQ(p.formats, 0u);
}

TEST(extract_bad_tracestate_only_drops_it)
{
    pt_header_t h[] = {hdr("traceparent", "00-" TRACE "-" SPAN "-00"), hdr("tracestate", "A=1")};
    pt_trace_parent_t p;
    extract(&p, h, 2);
    ASSERT(p.has_ids);
    ASSERT_EQ(p.decision, PT_TRACE_NOT_SAMPLED);
    ASSERT_EQ(p.tracestate.len, 0u);
}

TEST(extract_b3_multi)
{
    pt_header_t h[] = {hdr("X-B3-TraceId", "463ac35c9f6413ad"),
                       hdr("X-B3-SpanId", "a2fb4a1d1a96d312"),
                       hdr("X-B3-ParentSpanId", "0020000000000001"), hdr("X-B3-Sampled", "1")};
    pt_trace_parent_t p;
    extract(&p, h, 4);
    ASSERT(p.has_ids && p.is_64bit_trace);
    ASSERT_EQ(p.formats, PT_TRACE_FMT_B3_MULTI);
    ASSERT_EQ(p.decision, PT_TRACE_SAMPLED);
    ASSERT_STREQ(hex(p.trace_id, 16), "0000000000000000463ac35c9f6413ad");
    ASSERT_STREQ(hex(p.span_id, 8), "a2fb4a1d1a96d312");
}

TEST(extract_b3_multi_invalid_is_absent_whole)
{
    static const char *const cases[][2] = {
        {"x-b3-traceid", "463ac35c9f6413ad"}, /* trace without span */
        {"x-b3-spanid", "a2fb4a1d1a96d312"},  /* span without trace */
        {"x-b3-sampled", "2"},
        {"x-b3-flags", "2"},
        {"x-b3-parentspanid", "0020000000000001"}, /* a parent without ids */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pt_header_t h[] = {hdr(cases[i][0], cases[i][1])};
        pt_trace_parent_t p;
        extract(&p, h, 1);
        ASSERT_EQ(p.formats, 0u);
        ASSERT(!p.has_ids);
        ASSERT_EQ(p.decision, PT_TRACE_UNDECIDED);
    }
    /* valid ids with a bad sampled value: nothing of it is used */
    pt_header_t h[] = {hdr("x-b3-traceid", "463ac35c9f6413ad"),
                       hdr("x-b3-spanid", "a2fb4a1d1a96d312"), hdr("x-b3-sampled", "yes")};
    pt_trace_parent_t p;
    extract(&p, h, 3);
    ASSERT(!p.has_ids);
    ASSERT_EQ(p.formats, 0u);
    /* a 24-digit trace id, a short span id, upper case */
    pt_header_t h2[] = {hdr("x-b3-traceid", "463ac35c9f6413ad463ac35c"),
                        hdr("x-b3-spanid", "a2fb4a1d1a96d312")};
    extract(&p, h2, 2);
    ASSERT(!p.has_ids);
    pt_header_t h3[] = {hdr("x-b3-traceid", "463AC35C9F6413AD"),
                        hdr("x-b3-spanid", "a2fb4a1d1a96d312")};
    extract(&p, h3, 2);
    ASSERT(!p.has_ids);
}

TEST(extract_b3_decision_only)
{
    pt_header_t h[] = {hdr("x-b3-sampled", "0")};
    pt_trace_parent_t p;
    extract(&p, h, 1);
    ASSERT(!p.has_ids);
    ASSERT_EQ(p.formats, PT_TRACE_FMT_B3_MULTI);
    ASSERT_EQ(p.decision, PT_TRACE_NOT_SAMPLED);
    pt_header_t f[] = {hdr("x-b3-flags", "1"), hdr("x-b3-sampled", "0")};
    extract(&p, f, 2);
    ASSERT_EQ(p.decision, PT_TRACE_DEBUG); /* debug wins */
}

TEST(b3_single_forms)
{
    pt_trace_parent_t p = {0};
    ASSERT(pt_trace_parse_b3_single(pt_str("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-"
                                           "05e3ac9a4f6e3b90"),
                                    &p));
    ASSERT(p.has_ids && !p.is_64bit_trace);
    ASSERT_EQ(p.decision, PT_TRACE_SAMPLED);
    memset(&p, 0, sizeof(p));
    ASSERT(pt_trace_parse_b3_single(pt_str("80f198ee56343ba8-e457b5a2e4d86bd1"), &p));
    ASSERT(p.has_ids && p.is_64bit_trace);
    ASSERT_EQ(p.decision, PT_TRACE_UNDECIDED);
    memset(&p, 0, sizeof(p));
    ASSERT(pt_trace_parse_b3_single(pt_str("d"), &p));
    ASSERT(!p.has_ids);
    ASSERT_EQ(p.decision, PT_TRACE_DEBUG);
    static const char *const bad[] = {"",
                                      "2",
                                      "-",
                                      "80f198ee56343ba8",
                                      "80f198ee56343ba8-e457b5a2e4d86bd1-",
                                      "80f198ee56343ba8-e457b5a2e4d86bd1-x",
                                      "80f198ee56343ba8-e457b5a2e4d86bd1-1-0",
                                      "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-1",
                                      "80f198ee56343ba8--1",
                                      "0000000000000000-e457b5a2e4d86bd1-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&p, 0, sizeof(p));
        ASSERT(!pt_trace_parse_b3_single(pt_str(bad[i]), &p));
    }
}

TEST(w3c_is_the_parent_when_both_come)
{
    pt_header_t h[] = {hdr("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
                       hdr("traceparent", "00-" TRACE "-" SPAN "-00")};
    pt_trace_parent_t p;
    extract(&p, h, 2);
    ASSERT_EQ(p.formats, PT_TRACE_FMT_W3C | PT_TRACE_FMT_B3_SINGLE);
    ASSERT_EQ(p.ids_from, PT_TRACE_FMT_W3C);
    ASSERT_STREQ(hex(p.trace_id, 16), TRACE);
    ASSERT_EQ(p.decision, PT_TRACE_NOT_SAMPLED);
}

TEST(start_child_and_headers)
{
    pt_header_t h[] = {hdr("traceparent", "00-" TRACE "-" SPAN "-01"), hdr("tracestate", "a=1"),
                       hdr("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-0")};
    pt_trace_parent_t p;
    extract(&p, h, 3);
    uint32_t c = 0x11111110;
    pt_trace_context_t ctx;
    pt_trace_start(&p, 0, counter, &c, &ctx);
    ASSERT(ctx.sampled && ctx.has_parent); /* the parent's decision over a 0 % rate */
    ASSERT_STREQ(hex(ctx.parent_span_id, 8), SPAN);
    ASSERT_STREQ(hex(ctx.span_id, 8), "1111111112111111");
    char buf[1024];
    ASSERT(pt_trace_headers_size(&ctx) < sizeof(buf));
    char *end = pt_trace_write_headers(&ctx, buf);
    *end = '\0';
    ASSERT_STREQ(buf, "traceparent: 00-" TRACE "-1111111112111111-01\r\n"
                      "tracestate: a=1\r\n"
                      "b3: " TRACE "-1111111112111111-1-" SPAN "\r\n");
    ASSERT((size_t)(end - buf) <= pt_trace_headers_size(&ctx));
}

TEST(start_b3_64bit_and_debug)
{
    pt_header_t h[] = {hdr("x-b3-traceid", "463ac35c9f6413ad"),
                       hdr("x-b3-spanid", "a2fb4a1d1a96d312"), hdr("x-b3-flags", "1")};
    pt_trace_parent_t p;
    extract(&p, h, 3);
    uint32_t c = 0;
    pt_trace_context_t ctx;
    pt_trace_start(&p, 0, counter, &c, &ctx);
    ASSERT(ctx.sampled && ctx.debug);
    char buf[1024];
    *pt_trace_write_headers(&ctx, buf) = '\0';
    ASSERT_STREQ(buf, "x-b3-traceid: 463ac35c9f6413ad\r\n"
                      "x-b3-spanid: 0100000002000000\r\n"
                      "x-b3-parentspanid: a2fb4a1d1a96d312\r\n"
                      "x-b3-flags: 1\r\n");
}

TEST(start_new_trace_w3c_and_sampling_rate)
{
    pt_trace_parent_t none;
    extract(&none, NULL, 0);
    pt_trace_context_t ctx;
    uint32_t r = 99999; /* 99999 % 1e6 < 100000 (10 %): sampled */
    pt_trace_start(&none, 100000, fixed, &r, &ctx);
    ASSERT(ctx.sampled && !ctx.has_parent);
    ASSERT_EQ(ctx.formats, PT_TRACE_FMT_W3C);
    r = 100000;
    pt_trace_start(&none, 100000, fixed, &r, &ctx);
    ASSERT(!ctx.sampled);
    pt_trace_start(&none, 1000000, fixed, &r, &ctx);
    ASSERT(ctx.sampled);
    pt_trace_start(&none, 0, fixed, &r, &ctx);
    ASSERT(!ctx.sampled);
    uint32_t c = 0;
    int n = 0;
    for (int i = 0; i < 100000; i++) {
        c = c * 1664525u + 1013904223u; /* a spread of draws */
        uint32_t draw = c;
        pt_trace_start(&none, 100000, fixed, &draw, &ctx);
        n += ctx.sampled;
    }
    ASSERT(n > 9000 && n < 11000);
}

TEST(context_header_names)
{
    ASSERT(pt_trace_is_context_header(pt_str("TraceParent")));
    ASSERT(pt_trace_is_context_header(pt_str("X-B3-Flags")));
    ASSERT(pt_trace_is_context_header(pt_str("b3")));
    ASSERT(!pt_trace_is_context_header(pt_str("b")));
    ASSERT(!pt_trace_is_context_header(pt_str("x-request-id")));
    ASSERT(!pt_trace_is_context_header(pt_str("traceparents")));
}

static pt_span_t sample_span(void)
{
    pt_span_t s;
    memset(&s, 0, sizeof(s));
    memset(s.trace_id, 0xab, 16);
    memset(s.span_id, 0x01, 8);
    s.status = 503;
    s.start_us = 1700000000000000ull;
    s.end_us = s.start_us + 1500;
    PT_SPAN_SET(&s, method, pt_str("GET"));
    PT_SPAN_SET(&s, authority, pt_str("example.com"));
    PT_SPAN_SET(&s, path, pt_str("/a\"b\\c\x01\xff"));
    PT_SPAN_SET(&s, flags, pt_str("UF"));
    pt_trace_add_event(&s.events, PT_TRACE_EVENT_FAULT_ABORT, s.start_us + 10, 503);
    return s;
}

TEST(encode_otlp_shape)
{
    pt_span_t s = sample_span();
    pt_trace_buf_t b = {0};
    pt_trace_encode_otlp(&b, &s, 1, "svc");
    char *j = strndup(b.data, b.len);
    free(b.data);
    b.data = j;
    ASSERT(strstr(b.data, "\"traceId\":\"abababababababababababababababab\"") != NULL);
    ASSERT(strstr(b.data, "\"startTimeUnixNano\":\"1700000000000000000\"") != NULL);
    ASSERT(strstr(b.data, "\"endTimeUnixNano\":\"1700000000001500000\"") != NULL);
    ASSERT(strstr(b.data, "\"kind\":2") != NULL);
    ASSERT(strstr(b.data, "\"http.url\",\"value\":{\"stringValue\":\"http://example.com/"
                          "a\\\"b\\\\c\\u0001\\u00ff\"}") != NULL);
    ASSERT(strstr(b.data, "\"intValue\":\"503\"") != NULL);
    ASSERT(strstr(b.data, "\"status\":{\"code\":2}") != NULL);
    ASSERT(strstr(b.data, "\"name\":\"fault.abort\"") != NULL);
    ASSERT(strstr(b.data, "parentSpanId") == NULL);
    free(b.data);
}

TEST(encode_zipkin_shape)
{
    pt_span_t s = sample_span();
    s.is_64bit_trace = true;
    s.has_parent = true;
    pt_trace_buf_t b = {0};
    pt_trace_encode_zipkin(&b, &s, 1, "svc");
    char *j = strndup(b.data, b.len);
    free(b.data);
    b.data = j;
    ASSERT(strncmp(b.data,
                   "[{\"traceId\":\"abababababababab\",\"id\":\"0101010101010101\","
                   "\"parentId\":\"0000000000000000\"",
                   80) == 0);
    ASSERT(strstr(b.data, "\"timestamp\":1700000000000000,\"duration\":1500") != NULL);
    ASSERT(strstr(b.data, "\"kind\":\"SERVER\"") != NULL);
    ASSERT(strstr(b.data, "\"error\":\"true\"") != NULL);
    ASSERT(strstr(b.data, "\"response_flags\":\"UF\"") != NULL);
    ASSERT(b.data[b.len - 1] == ']');
    free(b.data);
}
