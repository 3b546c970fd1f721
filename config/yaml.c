/* config/yaml.c
 * libyaml's event API -> pt_cfg_node_t trees, one per document, with 1-based line:col on every
 * node. The event API (not libyaml's document API) is used because it lets us stop at a depth
 * limit and refuse aliases before building anything: an alias would let a few bytes of input
 * stand for an exponentially large tree ("billion laughs"), and Kubernetes-style configs do
 * not use them.
 *
 * Containers are built with a stack of frames; children gather in malloc'd vectors that are
 * copied into the arena when the container closes, so the arena holds exactly the tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "node.h"

/* The limits' messages, their numbers spelled from the macros. */
#define STR(x) STR_(x)
#define STR_(x) #x
static const char too_many_nodes[] =
    "more than " STR(PT_CFG_MAX_NODES) " YAML nodes (keys, values, maps and lists, all files "
                                       "together): Petrel's fixed limit on the size of one config";
static const char too_deep[] =
    "nesting deeper than " STR(PT_CFG_MAX_DEPTH) " levels (maps and lists): Petrel's fixed limit";

typedef struct frame {
    pt_cfg_node_t *node;
    void *vec; /* pt_cfg_node_t *[] for a list, pt_cfg_pair_t[] for a map */
    size_t n, cap;
    pt_cfg_node_t *pending_key; /* map: the key waiting for its value */
} frame_t;

typedef struct builder {
    pt_arena_t *arena;
    const char *file;
    frame_t stack[PT_CFG_MAX_DEPTH + 1];
    int depth;
    pt_cfg_node_t *root;
    size_t *n_nodes; /* nodes built so far in this load, every buffer counted */
} builder_t;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "petrel: out of memory (yaml)\n");
        abort();
    }
    return q;
}

/* NULL (and *why set) when the load already holds PT_CFG_MAX_NODES nodes. */
static pt_cfg_node_t *new_node(builder_t *b, pt_cfg_node_type_t type, const yaml_mark_t *m,
                               const char **why)
{
    if (*b->n_nodes >= PT_CFG_MAX_NODES) {
        *why = too_many_nodes;
        return NULL;
    }
    ++*b->n_nodes;
    pt_cfg_node_t *n = pt_arena_calloc(b->arena, sizeof(*n));
    n->type = type;
    n->file = b->file;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->str = "";
    return n;
}

/* Adds a finished (or just opened) node to the container on top of the stack. Returns -1 with
 * *why set when the node cannot be a map key. */
static int attach(builder_t *b, pt_cfg_node_t *n, const char **why)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    frame_t *f = &b->stack[b->depth - 1];
    if (f->node->type == PT_CFG_SEQ) {
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 4;
            f->vec = xrealloc(f->vec, f->cap * sizeof(pt_cfg_node_t *));
        }
        ((pt_cfg_node_t **)f->vec)[f->n++] = n;
        return 0;
    }
    if (f->pending_key == NULL) {
        if (n->type != PT_CFG_SCALAR && n->type != PT_CFG_NULL) {
            *why = "a map key must be a plain string";
            return -1;
        }
        f->pending_key = n;
        return 0;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->vec = xrealloc(f->vec, f->cap * sizeof(pt_cfg_pair_t));
    }
    n->key_line = f->pending_key->line;
    n->key_col = f->pending_key->col;
    ((pt_cfg_pair_t *)f->vec)[f->n++] = (pt_cfg_pair_t){f->pending_key, n};
    f->pending_key = NULL;
    return 0;
}

static void close_frame(builder_t *b)
{
    frame_t *f = &b->stack[--b->depth];
    if (f->node->type == PT_CFG_SEQ) {
        f->node->n_items = f->n;
        if (f->n)
            f->node->items = pt_arena_memdup(b->arena, f->vec, f->n * sizeof(pt_cfg_node_t *));
    } else {
        f->node->n_pairs = f->n;
        if (f->n)
            f->node->pairs = pt_arena_memdup(b->arena, f->vec, f->n * sizeof(pt_cfg_pair_t));
    }
    free(f->vec);
    f->vec = NULL;
}

static void unwind(builder_t *b)
{
    while (b->depth > 0)
        free(b->stack[--b->depth].vec);
}

/* YAML 1.1 / 1.2 core schema nulls, as Kubernetes reads them. */
static bool is_null_text(const char *s, size_t len)
{
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

void pt__cfg_docs_push(pt_cfg_docs_t *docs, pt_cfg_doc_t doc)
{
    if (docs->n == docs->cap) {
        docs->cap = docs->cap ? docs->cap * 2 : 8;
        docs->v = xrealloc(docs->v, docs->cap * sizeof(*docs->v));
    }
    docs->v[docs->n++] = doc;
}

/* Whether the character at line:column (0-based, as libyaml reports a scanner error) is a tab
 * with only blanks before it on its line. libyaml's words for that mistake ("found character
 * that cannot start any token", or "a tab character that violates indentation") do not say
 * what to change. Lines end at "\n", "\r\n" or a lone "\r", as libyaml counts them. */
static bool is_indentation_tab(const char *data, size_t len, size_t line, size_t column)
{
    size_t i = 0;
    for (size_t l = 0; l < line && data != NULL && i < len; i++)
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')))
            l++;
    if (data == NULL || i + column >= len || data[i + column] != '\t')
        return false;
    for (size_t c = 0; c < column; c++)
        if (data[i + c] != ' ' && data[i + c] != '\t')
            return false;
    return true;
}

int pt__cfg_parse_yaml(pt_arena_t *a, const char *file, const char *data, size_t len,
                       size_t *n_nodes, pt_cfg_docs_t *docs, pt_config_errors_t *errors)
{
    yaml_parser_t parser;
    builder_t b = {.arena = a, .file = file, .n_nodes = n_nodes};
    size_t first_doc = docs->n;
    int rc = -1;

    if (!yaml_parser_initialize(&parser)) {
        pt_config_errors_add(errors, file, 0, 0, NULL, "cannot initialise the YAML parser");
        return -1;
    }
    /* libyaml asserts on a NULL buffer, which an empty input may come with. */
    yaml_parser_set_input_string(&parser, (const unsigned char *)(data ? data : ""),
                                 data ? len : 0);

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_READER_ERROR) {
                /* Encoding errors come with a byte offset only: count lines ourselves. */
                int line = 1, col = 1;
                for (size_t i = 0; data != NULL && i < parser.problem_offset && i < len; i++) {
                    if (data[i] == '\n') {
                        line++;
                        col = 1;
                    } else if (((unsigned char)data[i] & 0xc0) != 0x80) {
                        col++;
                    }
                }
                pt_config_errors_add(errors, file, line, col, NULL, "YAML error: %s",
                                     parser.problem ? parser.problem : "unreadable input");
            } else if (is_indentation_tab(data, len, parser.problem_mark.line,
                                          parser.problem_mark.column)) {
                pt_config_errors_add(errors, file, (int)parser.problem_mark.line + 1,
                                     (int)parser.problem_mark.column + 1, NULL,
                                     "tab character in indentation: YAML indents with spaces");
            } else {
                pt_config_errors_add(
                    errors, file, (int)parser.problem_mark.line + 1,
                    (int)parser.problem_mark.column + 1, NULL, "YAML syntax error: %s%s%s",
                    parser.problem ? parser.problem : "invalid YAML", parser.context ? " " : "",
                    parser.context ? parser.context : "");
            }
            goto out;
        }
        const char *why = NULL;
        pt_cfg_node_t *n = NULL;
        bool done = false;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT: b.root = NULL; break;
        case YAML_DOCUMENT_END_EVENT:
            if (b.root != NULL && b.root->type != PT_CFG_NULL)
                pt__cfg_docs_push(docs, (pt_cfg_doc_t){b.root, file, NULL});
            b.root = NULL;
            break;
        case YAML_ALIAS_EVENT:
            why = "YAML aliases (*name) are not supported: one can stand for an exponentially "
                  "large tree";
            break;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)ev.data.scalar.value;
            size_t sl = ev.data.scalar.length;
            bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            n = new_node(&b, plain && is_null_text(s, sl) ? PT_CFG_NULL : PT_CFG_SCALAR,
                         &ev.start_mark, &why);
            if (n == NULL)
                break;
            if (n->type == PT_CFG_SCALAR) {
                n->str = pt_arena_strndup(a, s, sl);
                n->len = sl;
                n->is_quoted = !plain;
            }
            attach(&b, n, &why);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (b.depth >= PT_CFG_MAX_DEPTH) {
                why = too_deep;
                break;
            }
            n = new_node(&b, ev.type == YAML_SEQUENCE_START_EVENT ? PT_CFG_SEQ : PT_CFG_MAP,
                         &ev.start_mark, &why);
            if (n != NULL && attach(&b, n, &why) == 0)
                b.stack[b.depth++] = (frame_t){.node = n};
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (b.depth > 0)
                close_frame(&b);
            break;
        default: break;
        }
        if (why != NULL)
            pt_config_errors_add(errors, file, (int)ev.start_mark.line + 1,
                                 (int)ev.start_mark.column + 1, NULL, "%s", why);
        yaml_event_delete(&ev);
        if (why != NULL)
            goto out;
        if (done)
            break;
    }
    rc = 0;
out:
    unwind(&b);
    if (rc != 0)
        docs->n = first_doc; /* the nodes stay in the arena, which the caller frees */
    yaml_parser_delete(&parser);
    return rc;
}

void pt__cfg_docs_dispose(pt_cfg_docs_t *docs)
{
    free(docs->v);
    docs->v = NULL;
    docs->n = docs->cap = 0;
}
