/* proxy/trace.c
 * Trace context extraction, the sampling decision and propagation headers (see trace.h).
 * Formats: W3C Trace Context level 1 (traceparent, tracestate) and B3 (openzipkin/b3-propagation,
 * multi-header and single-header). */
#include "trace.h"

#include <string.h>

static int hex_value(char ch)
{
    /* Lower-case only: both W3C and B3 define ids as lower-hex. */
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decodes exactly 2n hex characters at s into out[0..n); false on any other character. */
static bool parse_hex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool is_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

void pt_trace_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0xf];
    }
}

/* traceparent = version "-" trace-id "-" parent-id "-" trace-flags, 55 characters in version 00.
 * A later version may append fields after a "-"; version ff is invalid. */
bool pt_trace_parse_traceparent(pt_str_t v, uint8_t trace_id[16], uint8_t span_id[8], bool *sampled)
{
    uint8_t version, flags;
    if (v.len < 55 || !parse_hex(v.base, 1, &version) || version == 0xff)
        return false;
    if (version == 0 ? v.len != 55 : (v.len > 55 && v.base[55] != '-'))
        return false;
    if (v.base[2] != '-' || v.base[35] != '-' || v.base[52] != '-')
        return false;
    if (!parse_hex(v.base + 3, 16, trace_id) || !parse_hex(v.base + 36, 8, span_id) ||
        !parse_hex(v.base + 53, 1, &flags))
        return false;
    if (is_zero(trace_id, 16) || is_zero(span_id, 8))
        return false;
    *sampled = (flags & 1) != 0;
    return true;
}

static bool is_lcalpha(char ch)
{
    return ch >= 'a' && ch <= 'z';
}

static bool is_key_char(char ch)
{
    return is_lcalpha(ch) || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '*' ||
           ch == '/';
}

/* key = simple-key / tenant-id "@" system-id (W3C Trace Context §3.3.1.3.1). */
static bool valid_tracestate_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (at == NULL)
        goto simple;
    size_t tenant = (size_t)(at - k), system = n - tenant - 1;
    if (tenant < 1 || tenant > 241 || system < 1 || system > 14)
        return false;
    if (!is_lcalpha(k[0]) && !(k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 1; i < tenant; i++)
        if (!is_key_char(k[i]))
            return false;
    if (!is_lcalpha(at[1]))
        return false;
    for (size_t i = 1; i < system; i++)
        if (!is_key_char(at[1 + i]))
            return false;
    return true;
simple:
    if (n < 1 || n > 256 || !is_lcalpha(k[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_key_char(k[i]))
            return false;
    return true;
}

/* value = 0*255(chr) nblk-chr; chr is 0x20..0x7e except "," and "=", nblk-chr also not a space. */
static bool valid_tracestate_value(const char *s, size_t n)
{
    if (n < 1 || n > 256 || s[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == ',' || s[i] == '=')
            return false;
    return true;
}

#define TRACESTATE_MAX_MEMBERS 32

bool pt_trace_valid_tracestate(pt_str_t v)
{
    struct {
        const char *base;
        size_t len;
    } keys[TRACESTATE_MAX_MEMBERS];
    size_t n_keys = 0;
    size_t i = 0;
    if (v.len > 4096)
        return false;
    while (i <= v.len) {
        size_t end = i;
        while (end < v.len && v.base[end] != ',')
            end++;
        size_t a = i, b = end; /* trim optional white space around the member */
        while (a < b && (v.base[a] == ' ' || v.base[a] == '\t'))
            a++;
        while (b > a && (v.base[b - 1] == ' ' || v.base[b - 1] == '\t'))
            b--;
        if (a < b) { /* empty members are allowed and skipped */
            const char *eq = memchr(v.base + a, '=', b - a);
            if (eq == NULL || n_keys == TRACESTATE_MAX_MEMBERS)
                return false;
            size_t klen = (size_t)(eq - (v.base + a));
            if (!valid_tracestate_key(v.base + a, klen) ||
                !valid_tracestate_value(eq + 1, (size_t)(v.base + b - eq - 1)))
                return false;
            for (size_t k = 0; k < n_keys; k++) /* a key appears at most once */
                if (keys[k].len == klen && memcmp(keys[k].base, v.base + a, klen) == 0)
                    return false;
            keys[n_keys].base = v.base + a;
            keys[n_keys].len = klen;
            n_keys++;
        }
        i = end + 1;
    }
    return true;
}

/* B3 ids: a trace id is 16 or 32 lower-hex digits, a span id 16; neither all zeros. */
static bool parse_b3_trace_id(pt_str_t v, uint8_t out[16], bool *is_64bit)
{
    memset(out, 0, 16);
    if (v.len == 32) {
        *is_64bit = false;
        return parse_hex(v.base, 16, out) && !is_zero(out, 16);
    }
    *is_64bit = true;
    return v.len == 16 && parse_hex(v.base, 8, out + 8) && !is_zero(out + 8, 8);
}

static bool parse_b3_span_id(pt_str_t v, uint8_t out[8])
{
    return v.len == 16 && parse_hex(v.base, 8, out) && !is_zero(out, 8);
}

/* b3 sampling state: "0", "1" or "d" (debug). */
static bool parse_b3_single_sampling(pt_str_t v, pt_trace_decision_t *d)
{
    if (v.len != 1)
        return false;
    switch (v.base[0]) {
    case '0': *d = PT_TRACE_NOT_SAMPLED; return true;
    case '1': *d = PT_TRACE_SAMPLED; return true;
    case 'd': *d = PT_TRACE_DEBUG; return true;
    default: return false;
    }
}

bool pt_trace_parse_b3_single(pt_str_t v, pt_trace_parent_t *out)
{
    pt_str_t parts[4];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i < v.len && v.base[i] != '-')
            continue;
        if (n == 4)
            return false;
        parts[n++] = (pt_str_t){v.base + start, i - start};
        start = i + 1;
    }
    pt_trace_decision_t d = PT_TRACE_UNDECIDED;
    if (n == 1) /* only a decision */
        return parse_b3_single_sampling(parts[0], &out->decision);
    uint8_t trace_id[16], span_id[8], parent[8];
    bool is_64bit;
    if (!parse_b3_trace_id(parts[0], trace_id, &is_64bit) || !parse_b3_span_id(parts[1], span_id))
        return false;
    if (n >= 3 && !parse_b3_single_sampling(parts[2], &d))
        return false;
    if (n == 4 && !parse_b3_span_id(parts[3], parent))
        return false;
    memcpy(out->trace_id, trace_id, 16);
    memcpy(out->span_id, span_id, 8);
    out->is_64bit_trace = is_64bit;
    out->has_ids = true;
    out->decision = d;
    return true;
}

enum {
    H_TRACEPARENT,
    H_TRACESTATE,
    H_B3,
    H_B3_TRACEID,
    H_B3_SPANID,
    H_B3_PARENTSPANID,
    H_B3_SAMPLED,
    H_B3_FLAGS,
    H__N
};
static const pt_str_t context_headers[H__N] = {
    [H_TRACEPARENT] = PT_STR_LIT("traceparent"),
    [H_TRACESTATE] = PT_STR_LIT("tracestate"),
    [H_B3] = PT_STR_LIT("b3"),
    [H_B3_TRACEID] = PT_STR_LIT("x-b3-traceid"),
    [H_B3_SPANID] = PT_STR_LIT("x-b3-spanid"),
    [H_B3_PARENTSPANID] = PT_STR_LIT("x-b3-parentspanid"),
    [H_B3_SAMPLED] = PT_STR_LIT("x-b3-sampled"),
    [H_B3_FLAGS] = PT_STR_LIT("x-b3-flags"),
};

static int context_header_index(pt_str_t name)
{
    /* Every name starts with 't', 'b' or 'x': most headers are turned away on one byte. */
    if (name.len < 2)
        return -1;
    char c0 = (char)(name.base[0] | 0x20);
    if (c0 != 't' && c0 != 'b' && c0 != 'x')
        return -1;
    for (int i = 0; i < H__N; i++)
        if (pt_str_ieq(name, context_headers[i]))
            return i;
    return -1;
}

bool pt_trace_is_context_header(pt_str_t name)
{
    return context_header_index(name) >= 0;
}

/* x-b3-* as one format: ids in pairs, sampled and flags with their only valid values. */
static bool parse_b3_multi(const pt_str_t *v, const unsigned *count, pt_trace_parent_t *out)
{
    for (int i = H_B3_TRACEID; i <= H_B3_FLAGS; i++)
        if (count[i] > 1)
            return false;
    bool has_trace = count[H_B3_TRACEID] != 0, has_span = count[H_B3_SPANID] != 0;
    if (has_trace != has_span || (count[H_B3_PARENTSPANID] && !has_trace))
        return false;
    uint8_t trace_id[16], span_id[8], parent[8];
    bool is_64bit = false;
    if (has_trace && (!parse_b3_trace_id(v[H_B3_TRACEID], trace_id, &is_64bit) ||
                      !parse_b3_span_id(v[H_B3_SPANID], span_id)))
        return false;
    if (count[H_B3_PARENTSPANID] && !parse_b3_span_id(v[H_B3_PARENTSPANID], parent))
        return false;
    pt_trace_decision_t d = PT_TRACE_UNDECIDED;
    if (count[H_B3_SAMPLED]) {
        pt_str_t s = v[H_B3_SAMPLED];
        if (pt_str_eq(s, PT_STR_LIT("1")) || pt_str_eq(s, PT_STR_LIT("true")))
            d = PT_TRACE_SAMPLED;
        else if (pt_str_eq(s, PT_STR_LIT("0")) || pt_str_eq(s, PT_STR_LIT("false")))
            d = PT_TRACE_NOT_SAMPLED;
        else
            return false;
    }
    if (count[H_B3_FLAGS]) {
        pt_str_t f = v[H_B3_FLAGS];
        if (pt_str_eq(f, PT_STR_LIT("1")))
            d = PT_TRACE_DEBUG; /* debug implies sampled, whatever x-b3-sampled says */
        else if (!pt_str_eq(f, PT_STR_LIT("0")))
            return false;
    }
    if (has_trace) {
        memcpy(out->trace_id, trace_id, 16);
        memcpy(out->span_id, span_id, 8);
        out->is_64bit_trace = is_64bit;
        out->has_ids = true;
    }
    out->decision = d;
    return true;
}

void pt_trace_extract(const pt_header_t *headers, size_t n, pt_trace_parent_t *out)
{
    memset(out, 0, sizeof(*out));
    pt_str_t v[H__N] = {{NULL, 0}};
    unsigned count[H__N] = {0};
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        int k = context_header_index(headers[i].name);
        if (k < 0)
            continue;
        v[k] = headers[i].value;
        count[k]++;
        any = true;
    }
    if (!any)
        return;

    pt_trace_parent_t w3c = {0}, single = {0}, multi = {0};
    bool w3c_ok = false, single_ok = false, multi_ok = false, sampled;
    if (count[H_TRACEPARENT] == 1 &&
        pt_trace_parse_traceparent(v[H_TRACEPARENT], w3c.trace_id, w3c.span_id, &sampled)) {
        w3c_ok = true;
        w3c.has_ids = true;
        w3c.decision = sampled ? PT_TRACE_SAMPLED : PT_TRACE_NOT_SAMPLED;
        /* tracestate rides only with a valid traceparent; one line, valid as a whole. */
        if (count[H_TRACESTATE] == 1 && pt_trace_valid_tracestate(v[H_TRACESTATE]))
            w3c.tracestate = v[H_TRACESTATE];
    }
    if (count[H_B3] == 1)
        single_ok = pt_trace_parse_b3_single(v[H_B3], &single);
    bool any_multi = false;
    for (int i = H_B3_TRACEID; i <= H_B3_FLAGS; i++)
        any_multi |= count[i] != 0;
    if (any_multi)
        multi_ok = parse_b3_multi(v, count, &multi);

    /* The parent: W3C, else B3 single (its spec puts it before the multi headers), else B3
     * multi; a format with only a sampling decision gives the decision alone. */
    const pt_trace_parent_t *from = NULL;
    unsigned from_fmt = 0;
    if (w3c_ok)
        from = &w3c, from_fmt = PT_TRACE_FMT_W3C;
    else if (single_ok && single.has_ids)
        from = &single, from_fmt = PT_TRACE_FMT_B3_SINGLE;
    else if (multi_ok && multi.has_ids)
        from = &multi, from_fmt = PT_TRACE_FMT_B3_MULTI;
    else if (single_ok)
        from = &single, from_fmt = PT_TRACE_FMT_B3_SINGLE;
    else if (multi_ok)
        from = &multi, from_fmt = PT_TRACE_FMT_B3_MULTI;
    if (from != NULL) {
        *out = *from;
        out->ids_from = from_fmt;
    }
    out->formats = (w3c_ok ? PT_TRACE_FMT_W3C : 0) | (single_ok ? PT_TRACE_FMT_B3_SINGLE : 0) |
                   (multi_ok ? PT_TRACE_FMT_B3_MULTI : 0);
}

static void random_bytes(uint8_t *b, size_t n, pt_trace_random_fn rnd, void *arg)
{
    do {
        for (size_t i = 0; i < n; i += 4) {
            uint32_t r = rnd(arg);
            for (size_t j = 0; j < 4 && i + j < n; j++)
                b[i + j] = (uint8_t)(r >> (8 * j));
        }
    } while (is_zero(b, n)); /* an all-zero id is invalid in every format */
}

void pt_trace_start(const pt_trace_parent_t *parent, uint32_t sampling_ppm, pt_trace_random_fn rnd,
                    void *rnd_arg, pt_trace_context_t *out)
{
    memset(out, 0, sizeof(*out));
    if (parent->has_ids) {
        memcpy(out->trace_id, parent->trace_id, 16);
        memcpy(out->parent_span_id, parent->span_id, 8);
        out->has_parent = true;
        out->is_64bit_trace = parent->is_64bit_trace;
        if (parent->ids_from == PT_TRACE_FMT_W3C)
            out->tracestate = parent->tracestate;
    } else {
        random_bytes(out->trace_id, 16, rnd, rnd_arg);
    }
    random_bytes(out->span_id, 8, rnd, rnd_arg);
    switch (parent->decision) {
    case PT_TRACE_SAMPLED: out->sampled = true; break;
    case PT_TRACE_DEBUG: out->sampled = out->debug = true; break;
    case PT_TRACE_NOT_SAMPLED: out->sampled = false; break;
    case PT_TRACE_UNDECIDED:
        out->sampled = sampling_ppm >= 1000000u ||
                       (sampling_ppm > 0 && rnd(rnd_arg) % 1000000u < sampling_ppm);
        break;
    }
    out->formats = parent->formats != 0 ? parent->formats : PT_TRACE_FMT_W3C;
}

size_t pt_trace_headers_size(const pt_trace_context_t *c)
{
    /* traceparent 70 + tracestate, x-b3-* about 150, b3 70: 320 covers all three. */
    return 320 + c->tracestate.len + 16;
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* The trace id as B3 writes it: 16 digits when the parent sent a 64-bit id. */
static char *put_b3_trace_id(const pt_trace_context_t *c, char *p)
{
    if (c->is_64bit_trace) {
        pt_trace_hex(c->trace_id + 8, 8, p);
        return p + 16;
    }
    pt_trace_hex(c->trace_id, 16, p);
    return p + 32;
}

char *pt_trace_write_headers(const pt_trace_context_t *c, char *p)
{
    if (c->formats & PT_TRACE_FMT_W3C) {
        p = put(p, "traceparent: 00-");
        pt_trace_hex(c->trace_id, 16, p);
        p += 32;
        *p++ = '-';
        pt_trace_hex(c->span_id, 8, p);
        p += 16;
        p = put(p, c->sampled ? "-01\r\n" : "-00\r\n");
        if (c->tracestate.len > 0) {
            p = put(p, "tracestate: ");
            memcpy(p, c->tracestate.base, c->tracestate.len);
            p += c->tracestate.len;
            p = put(p, "\r\n");
        }
    }
    if (c->formats & PT_TRACE_FMT_B3_MULTI) {
        p = put(p, "x-b3-traceid: ");
        p = put_b3_trace_id(c, p);
        p = put(p, "\r\nx-b3-spanid: ");
        pt_trace_hex(c->span_id, 8, p);
        p += 16;
        if (c->has_parent) {
            p = put(p, "\r\nx-b3-parentspanid: ");
            pt_trace_hex(c->parent_span_id, 8, p);
            p += 16;
        }
        /* Debug is sent as flags alone: the flag implies the decision. */
        p = put(p, c->debug ? "\r\nx-b3-flags: 1\r\n"
                            : (c->sampled ? "\r\nx-b3-sampled: 1\r\n" : "\r\nx-b3-sampled: 0\r\n"));
    }
    if (c->formats & PT_TRACE_FMT_B3_SINGLE) {
        p = put(p, "b3: ");
        p = put_b3_trace_id(c, p);
        *p++ = '-';
        pt_trace_hex(c->span_id, 8, p);
        p += 16;
        p = put(p, c->debug ? "-d" : (c->sampled ? "-1" : "-0"));
        if (c->has_parent) {
            *p++ = '-';
            pt_trace_hex(c->parent_span_id, 8, p);
            p += 16;
        }
        p = put(p, "\r\n");
    }
    return p;
}
