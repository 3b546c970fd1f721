/* proxy/str.h
 * A byte slice: a pointer and a length, not NUL-terminated unless said. Slices point into a read
 * buffer or an arena and never own what they point at. */
#ifndef PT_STR_H
#define PT_STR_H

#include <stdbool.h>
#include <stddef.h>
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

#endif
