/* proxy/str.h
 * A byte slice: a pointer and a length, not NUL-terminated unless said. Slices point into a read
 * buffer or an arena and never own what they point at. */
#ifndef PT_STR_H
#define PT_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef struct pt_str {
    const char *base;
    size_t len;
} pt_str_t;

#define PT_STR_LIT(s) ((pt_str_t){(s), sizeof(s) - 1})

static inline pt_str_t pt_str(const char *s)
{
    return (pt_str_t){s, s ? strlen(s) : 0};
}

static inline bool pt_str_eq(pt_str_t a, pt_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

/* ASCII case-insensitive equality, as header names and tokens compare (RFC 9110 §5.1). */
static inline bool pt_str_ieq(pt_str_t a, pt_str_t b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.base, b.base, a.len) == 0);
}

static inline bool pt_str_ieq_lit(pt_str_t a, const char *lit)
{
    return pt_str_ieq(a, pt_str(lit));
}

/* Writes v in decimal at out (up to 20 bytes, no NUL) and returns how many bytes it wrote.
 * The hot path formats numbers with this, not printf: a printf call costs about ten times as
 * much, and a request formats several (access log, upstream address, Content-Length). */
static inline size_t pt_put_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* As pt_put_u64 for a signed value. */
static inline size_t pt_put_i64(char *out, int64_t v)
{
    if (v >= 0)
        return pt_put_u64(out, (uint64_t)v);
    *out = '-';
    return 1 + pt_put_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

#endif
