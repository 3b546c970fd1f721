/* config/node.h
 * The generic YAML tree that config/ checks and compiles: the first stage of the pipeline
 * (xds/ bytes -> config/yaml.c -> pt_cfg_node_t documents -> config/schema.c + resources.c ->
 * config/compile.c -> pt_config_t). Every node keeps the file, line and column (1-based) it came
 * from, so that every later error can name them. A tree lives in the arena it was parsed into
 * (a temporary one during pt_config_load_buffers) and is read-only once built.
 *
 * Internal to config/ (pt__ names): filters will receive pt_cfg_node_t from their
 * parse_config hook, so the node shape is meant to stay stable. */
#ifndef PT_CONFIG_NODE_H
#define PT_CONFIG_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "config.h"

typedef enum pt_cfg_node_type {
    PT_CFG_NULL = 0, /* `~`, `null`, or nothing after the colon */
    PT_CFG_SCALAR,
    PT_CFG_MAP,
    PT_CFG_SEQ,
} pt_cfg_node_type_t;

typedef struct pt_cfg_node pt_cfg_node_t;

typedef struct pt_cfg_pair {
    pt_cfg_node_t *key;   /* always a scalar (non-scalar keys are a parse error) */
    pt_cfg_node_t *value; /* never NULL; PT_CFG_NULL when empty */
} pt_cfg_pair_t;

struct pt_cfg_node {
    pt_cfg_node_type_t type;
    const char *file;      /* the name given to the parser; not owned */
    int line, col;         /* where the node starts, 1-based */
    int key_line, key_col; /* its key when it is a map value; 0 otherwise */
    bool is_quoted;        /* scalar written quoted or as a block: never a number or null */
    const char *str;       /* scalar (and null) text, NUL-terminated; "" for null */
    size_t len;
    pt_cfg_node_t **items; /* PT_CFG_SEQ */
    size_t n_items;
    pt_cfg_pair_t *pairs; /* PT_CFG_MAP, in file order; duplicates are kept (schema reports) */
    size_t n_pairs;
};

typedef struct pt_cfg_doc {
    pt_cfg_node_t *root; /* never NULL; empty documents are dropped */
    const char *file;
    /* Where root sits in its YAML document: NULL for the document itself, items[i] for an item
     * of a Kubernetes List (config/resources.c, pt__cfg_expand_lists; in the load's arena).
     * Error paths about the resource start there. */
    const struct pt_cfg_path *path;
} pt_cfg_doc_t;

/* A growing list of documents; the array is malloc'd, the nodes live in the parse arena. */
typedef struct pt_cfg_docs {
    pt_cfg_doc_t *v;
    size_t n, cap;
} pt_cfg_docs_t;

/* Maximum nesting of maps and lists: deeper input is an error, which keeps every later
 * (recursive) walk of the tree bounded whatever the input. */
#define PT_CFG_MAX_DEPTH 64
/* Maximum nodes (every key, value, map and list) in one load, all buffers together: a tree
 * costs about 130 bytes a node, so this bounds a load's parse memory (a 20,000-VirtualService
 * config has about 900,000). Both limits are plain numbers: the messages print them. */
#define PT_CFG_MAX_NODES 2000000

/* Parses every YAML document in data[0..len) and appends the non-empty ones to docs. Nodes
 * and strings go into arena a; file is stored in every node (the caller keeps it alive as long
 * as the tree). *n_nodes counts the nodes of the whole load (0 before its first buffer). A
 * syntax error, an alias, too deep a nesting or too many nodes adds one error and drops this
 * buffer's documents. Returns 0 or -1 (error added). */
int pt__cfg_parse_yaml(pt_arena_t *a, const char *file, const char *data, size_t len,
                       size_t *n_nodes, pt_cfg_docs_t *docs, pt_config_errors_t *errors);
/* Appends one document (the array grows with malloc). */
void pt__cfg_docs_push(pt_cfg_docs_t *docs, pt_cfg_doc_t doc);
void pt__cfg_docs_dispose(pt_cfg_docs_t *docs);

/* The place an error about this node should point at: its key when it is a map value (the
 * line a reader looks for), else the node itself. */
static inline int pt__cfg_node_line(const pt_cfg_node_t *n)
{
    return n->key_line ? n->key_line : n->line;
}
static inline int pt__cfg_node_col(const pt_cfg_node_t *n)
{
    return n->key_line ? n->key_col : n->col;
}

#endif
