/* filters/chaos/json.h
 * A small strict JSON parser (RFC 8259) for the Toxiproxy-compatible API's request bodies, which
 * are peer input: the whole text must be one value, nesting is bounded, strings are valid
 * UTF-8 after their escapes are decoded, and an error names the line and column. The tree lives
 * in the caller's arena. */
#ifndef PT_CHAOS_JSON_H
#define PT_CHAOS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "../../config/arena.h"

#define PT_JSON_MAX_DEPTH 32

typedef enum pt_json_type {
    PT_JSON_NULL = 0,
    PT_JSON_BOOL,
    PT_JSON_NUMBER,
    PT_JSON_STRING,
    PT_JSON_ARRAY,
    PT_JSON_OBJECT,
} pt_json_type_t;

typedef struct pt_json pt_json_t;
struct pt_json {
    pt_json_type_t type;
    const char *key; /* a member of an object: its name (decoded, NUL-terminated), else NULL */
    const char *str; /* a string: decoded, NUL-terminated (it may hold NUL bytes: str_len) */
    size_t str_len;
    double num;
    bool boolean;
    pt_json_t *child; /* an array's or object's first element */
    pt_json_t *next;  /* the next element of the parent */
    int line, col;    /* where the value starts, 1-based */
};

/* Parses text[0..len) into a tree in a. Returns the root, or NULL with err set to
 * "line L, column C: what is wrong". */
pt_json_t *pt_json_parse(pt_arena_t *a, const char *text, size_t len, char *err, size_t err_cap);
/* The member of object o named key, or NULL (also when o is not an object). */
const pt_json_t *pt_json_get(const pt_json_t *o, const char *key);
const char *pt_json_type_name(pt_json_type_t t);
/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
size_t pt_json_utf8_len(const unsigned char *s, size_t n);

#endif
