/* filters/chaos/json.c
 * The strict JSON parser (json.h): recursive descent over the text, bounded by
 * PT_JSON_MAX_DEPTH, with no trailing commas, comments, leading zeros or bare words. */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    pt_arena_t *arena;
    const char *p, *end, *start;
    char *err;
    size_t err_cap;
    bool failed;
} parser_t;

static void position(const parser_t *ps, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *c = ps->start; c < at; c++) {
        if (*c == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void fail(parser_t *ps, const char *what)
{
    if (ps->failed)
        return;
    ps->failed = true;
    int line, col;
    position(ps, ps->p, &line, &col);
    snprintf(ps->err, ps->err_cap, "line %d, column %d: %s", line, col, what);
}

static void skip_space(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static pt_json_t *new_node(parser_t *ps, pt_json_type_t type)
{
    pt_json_t *n = pt_arena_calloc(ps->arena, sizeof(*n));
    n->type = type;
    position(ps, ps->p, &n->line, &n->col);
    return n;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t pt_json_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t min;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    uint32_t cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* At the opening quote: decodes the string into the arena. */
static const char *parse_string(parser_t *ps, size_t *out_len)
{
    ps->p++; /* " */
    const char *from = ps->p;
    /* Decoded text is never longer than its source. */
    char *out = pt_arena_alloc(ps->arena, (size_t)(ps->end - from) + 1);
    size_t n = 0;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            out[n] = '\0';
            *out_len = n;
            return out;
        }
        if (c < 0x20) {
            fail(ps, "control character in a string");
            return NULL;
        }
        if (c != '\\') {
            size_t l = pt_json_utf8_len((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
            if (l == 0) {
                fail(ps, "invalid UTF-8 in a string");
                return NULL;
            }
            memcpy(out + n, ps->p, l);
            n += l;
            ps->p += l;
            continue;
        }
        if (ps->end - ps->p < 2) {
            fail(ps, "unterminated string");
            return NULL;
        }
        char e = ps->p[1];
        ps->p += 2;
        static const char from_esc[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = e != '\0' ? strchr(from_esc, e) : NULL;
        if (k != NULL) {
            out[n++] = to[k - from_esc];
            continue;
        }
        if (e != 'u' || ps->end - ps->p < 4 || hex4(ps->p) < 0) {
            ps->p -= 2;
            fail(ps, "invalid escape in a string");
            return NULL;
        }
        uint32_t cp = (uint32_t)hex4(ps->p);
        ps->p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                hex4(ps->p + 2) < 0xDC00 || hex4(ps->p + 2) > 0xDFFF) {
                fail(ps, "unpaired surrogate in a string");
                return NULL;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(ps->p + 2) - 0xDC00);
            ps->p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail(ps, "unpaired surrogate in a string");
            return NULL;
        }
        n += put_utf8(out + n, cp);
    }
    fail(ps, "unterminated string");
    return NULL;
}

static bool parse_number(parser_t *ps, double *out)
{
    const char *s = ps->p;
    if (s < ps->end && *s == '-')
        s++;
    if (s >= ps->end || *s < '0' || *s > '9')
        goto bad;
    if (*s == '0' && s + 1 < ps->end && s[1] >= '0' && s[1] <= '9')
        goto bad; /* leading zero */
    while (s < ps->end && *s >= '0' && *s <= '9')
        s++;
    if (s < ps->end && *s == '.') {
        s++;
        if (s >= ps->end || *s < '0' || *s > '9')
            goto bad;
        while (s < ps->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < ps->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < ps->end && (*s == '+' || *s == '-'))
            s++;
        if (s >= ps->end || *s < '0' || *s > '9')
            goto bad;
        while (s < ps->end && *s >= '0' && *s <= '9')
            s++;
    }
    char buf[64];
    size_t n = (size_t)(s - ps->p);
    if (n >= sizeof(buf))
        goto bad;
    memcpy(buf, ps->p, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    if (!isfinite(*out))
        goto bad;
    ps->p = s;
    return true;
bad:
    fail(ps, "invalid number");
    return false;
}

static bool literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static pt_json_t *parse_value(parser_t *ps, int depth)
{
    skip_space(ps);
    if (ps->p >= ps->end) {
        fail(ps, "a value was expected");
        return NULL;
    }
    if (depth > PT_JSON_MAX_DEPTH) {
        fail(ps, "nested too deeply");
        return NULL;
    }
    char c = *ps->p;
    pt_json_t *n;
    if (c == '{' || c == '[') {
        bool is_object = c == '{';
        n = new_node(ps, is_object ? PT_JSON_OBJECT : PT_JSON_ARRAY);
        ps->p++;
        skip_space(ps);
        pt_json_t **tail = &n->child;
        if (ps->p < ps->end && *ps->p == (is_object ? '}' : ']')) {
            ps->p++;
            return n;
        }
        for (;;) {
            const char *key = NULL;
            if (is_object) {
                skip_space(ps);
                size_t klen;
                if (ps->p >= ps->end || *ps->p != '"') {
                    fail(ps, "a member name in double quotes was expected");
                    return NULL;
                }
                if ((key = parse_string(ps, &klen)) == NULL)
                    return NULL;
                skip_space(ps);
                if (ps->p >= ps->end || *ps->p != ':') {
                    fail(ps, "':' was expected");
                    return NULL;
                }
                ps->p++;
            }
            pt_json_t *v = parse_value(ps, depth + 1);
            if (v == NULL)
                return NULL;
            v->key = key;
            *tail = v;
            tail = &v->next;
            skip_space(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == (is_object ? '}' : ']')) {
                ps->p++;
                return n;
            }
            fail(ps, is_object ? "',' or '}' was expected" : "',' or ']' was expected");
            return NULL;
        }
    }
    if (c == '"') {
        n = new_node(ps, PT_JSON_STRING);
        n->str = parse_string(ps, &n->str_len);
        return n->str != NULL ? n : NULL;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        n = new_node(ps, PT_JSON_NUMBER);
        return parse_number(ps, &n->num) ? n : NULL;
    }
    n = new_node(ps, PT_JSON_NULL);
    if (literal(ps, "null"))
        return n;
    n->type = PT_JSON_BOOL;
    if (literal(ps, "true")) {
        n->boolean = true;
        return n;
    }
    if (literal(ps, "false"))
        return n;
    fail(ps, "a value was expected");
    return NULL;
}

pt_json_t *pt_json_parse(pt_arena_t *a, const char *text, size_t len, char *err, size_t err_cap)
{
    parser_t ps = {
        .arena = a, .p = text, .end = text + len, .start = text, .err = err, .err_cap = err_cap};
    pt_json_t *root = parse_value(&ps, 0);
    if (root == NULL)
        return NULL;
    skip_space(&ps);
    if (ps.p != ps.end) {
        fail(&ps, "text after the value");
        return NULL;
    }
    return root;
}

const pt_json_t *pt_json_get(const pt_json_t *o, const char *key)
{
    if (o == NULL || o->type != PT_JSON_OBJECT)
        return NULL;
    const pt_json_t *found = NULL;
    for (const pt_json_t *m = o->child; m != NULL; m = m->next)
        if (strcmp(m->key, key) == 0)
            found = m; /* the last one wins, as in most decoders */
    return found;
}

const char *pt_json_type_name(pt_json_type_t t)
{
    static const char *const names[] = {"null",     "a boolean", "a number",
                                        "a string", "an array",  "an object"};
    return names[t];
}
