/* config/dump.c
 * The admin API's /config_dump body, built once per snapshot while the parsed documents are
 * still at hand: every resource in force, as JSON, with the file:line it came from. Building it
 * at load time keeps the admin handler trivial and costs nothing on the request path. The same
 * writer turns one node into JSON for the chaos API's toxic matches (chaos_match.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "resources.h"

typedef struct out {
    char *p;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (p == NULL)
            abort();
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_string(out_t *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    size_t run = 0; /* bytes [run, i) need no escape: copied in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        put(o, s + run, i - run);
        run = i + 1;
        char esc[8] = {'\\', (char)c};
        if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(o, esc, 6);
        } else {
            put(o, esc, 2);
        }
    }
    put(o, s + run, n - run);
    put(o, "\"", 1);
}

/* A plain YAML scalar that reads as a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    return i == n;
}

static void put_node(out_t *o, const pt_cfg_node_t *n)
{
    switch (n->type) {
    case PT_CFG_NULL: puts_(o, "null"); break;
    case PT_CFG_SCALAR:
        if (!n->is_quoted && (is_json_number(n->str, n->len) || strcmp(n->str, "true") == 0 ||
                              strcmp(n->str, "false") == 0))
            put(o, n->str, n->len);
        else
            put_string(o, n->str, n->len);
        break;
    case PT_CFG_MAP:
        put(o, "{", 1);
        for (size_t i = 0; i < n->n_pairs; i++) {
            if (i)
                put(o, ",", 1);
            put_string(o, n->pairs[i].key->str, n->pairs[i].key->len);
            put(o, ":", 1);
            put_node(o, n->pairs[i].value);
        }
        put(o, "}", 1);
        break;
    case PT_CFG_SEQ:
        put(o, "[", 1);
        for (size_t i = 0; i < n->n_items; i++) {
            if (i)
                put(o, ",", 1);
            put_node(o, n->items[i]);
        }
        put(o, "]", 1);
        break;
    }
}

const char *pt__cfg_node_json(pt_arena_t *into, const pt_cfg_node_t *n)
{
    out_t o = {0};
    put_node(&o, n);
    const char *copy = pt_arena_memdup(into, o.p, o.len + 1);
    free(o.p);
    return copy;
}

const char *pt__cfg_dump_json(pt_arena_t *into, const pt_cfg_docs_t *docs, size_t *len)
{
    out_t o = {0};
    puts_(&o, "[");
    for (size_t i = 0; i < docs->n; i++) {
        char source[64];
        if (i)
            puts_(&o, ",\n");
        puts_(&o, "{\"source\":");
        put_string(&o, docs->v[i].file, strlen(docs->v[i].file));
        snprintf(source, sizeof(source), ",\"line\":%d,\"resource\":", docs->v[i].root->line);
        puts_(&o, source);
        put_node(&o, docs->v[i].root);
        puts_(&o, "}");
    }
    puts_(&o, "]");
    const char *copy = pt_arena_memdup(into, o.p, o.len + 1);
    *len = o.len;
    free(o.p);
    return copy;
}
