/* config/schema.h
 * The generic half of schema checking: field tables, field paths for error messages, and typed
 * readers of scalar nodes (string, integer in a range, duration). config/kind_*.c hold the
 * per-object tables and uses these to turn node trees into a typed model.
 *
 * Every object of the Istio / Petrel API is described by one table of pt_cfg_field_t: its
 * field names and whether Petrel implements each. Supporting a field later means flipping its
 * status and reading it; nothing else in the checker changes. */
#ifndef PT_CONFIG_SCHEMA_H
#define PT_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "node.h"

typedef enum pt_cfg_field_status {
    PT_FIELD_SUPPORTED = 0, /* read and enforced */
    PT_FIELD_ACCEPTED,      /* allowed and ignored on purpose (documented in docs/config.md) */
    PT_FIELD_UNSUPPORTED,   /* in Istio's API, not enforced yet: checked as far as its shape /
                             * sub-table go, then ignored with a warning, never silently */
} pt_cfg_field_status_t;

/* What an ignored (accepted or unsupported) field must look like, so that a value of the
 * wrong type is still an error. PT_SHAPE_ANY: not checked. */
typedef enum pt_cfg_shape {
    PT_SHAPE_ANY = 0,
    PT_SHAPE_MAP,    /* a map (with sub: a map whose keys are the sub-table's fields) */
    PT_SHAPE_SEQ,    /* a list (with sub: of maps checked against sub) */
    PT_SHAPE_SCALAR, /* a string, number or bool */
} pt_cfg_shape_t;

typedef struct pt_cfg_field {
    const char *name; /* exactly as Istio spells it (camelCase) */
    pt_cfg_field_status_t status;
    /* For fields Petrel does not read (accepted / unsupported): checked by pt__cfg_map itself.
     * Fields of a sub-table are checked recursively, whatever their own status says, and are
     * never reported one by one: the field that holds them carries the warning. */
    pt_cfg_shape_t shape;
    const struct pt_cfg_field *sub;
    size_t n_sub;
} pt_cfg_field_t;

/* A field path, built on the stack while walking ("spec.servers[0].port.number") and only
 * formatted when an error is reported. key == NULL means a list index. */
typedef struct pt_cfg_path {
    const struct pt_cfg_path *parent;
    const char *key;
    size_t index;
} pt_cfg_path_t;

#define PT_PATH_KEY(p, k) ((pt_cfg_path_t){(p), (k), 0})
#define PT_PATH_IDX(p, i) ((pt_cfg_path_t){(p), NULL, (i)})

/* Writes the dotted path into buf (always NUL-terminated, truncated to cap). */
void pt__cfg_path_format(const pt_cfg_path_t *p, char *buf, size_t cap);
/* The formatted path, copied into arena a (for errors found after the walk, at compile). */
const char *pt__cfg_path_dup(pt_arena_t *a, const pt_cfg_path_t *p);

/* State shared by every check of one load. */
typedef struct pt_cfg_cx {
    pt_arena_t *tmp;            /* the node trees and the typed model; freed after the load */
    pt_arena_t *out;            /* the snapshot's arena: whatever the snapshot points to */
    pt_config_errors_t *errors; /* every problem found */
    size_t n_errors_at_start;
    /* What compile cannot see (config/config.c): the resources left out for their errors,
     * and whether a file could not be parsed at all. A reference to them is not reported. */
    const struct pt_res_meta **unchecked;
    size_t n_unchecked;
    bool is_incomplete;
    const pt_workload_t *pod; /* the workload as the pod describes it; NULL: not known */
} pt_cfg_cx_t;

/* Adds "file:line:col: path: message" pointing at node n (its key when it has one). */
void pt__cfg_error(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A warning at node n: something Petrel checks but does not enforce yet. */
void pt__cfg_warn(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void pt__cfg_warn_at(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const char *path, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
/* The same with a path already formatted. */
void pt__cfg_error_at(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const char *path, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* Did-you-mean for a misspelt name: pt__cfg_suggest_init with what was written, then
 * pt__cfg_suggest_add with every name it could have meant (the closest wins, the first added on
 * a tie). A name is close enough when it is equal ignoring case, or within a Damerau-Levenshtein
 * distance (case ignored) of 1 for words of 3 to 5 characters and 2 for longer ones. Words (and
 * names) over 64 characters are not compared. Only for errors: not on the path of valid input. */
typedef struct pt_cfg_suggest {
    const char *word; /* what was written; not owned */
    const char *best; /* the closest name so far, or NULL */
    int distance;     /* best's distance to word */
} pt_cfg_suggest_t;

void pt__cfg_suggest_init(pt_cfg_suggest_t *s, const char *word);
void pt__cfg_suggest_add(pt_cfg_suggest_t *s, const char *name);
/* "; did you mean \"name\"?" when some name was close enough, else "": written into buf (cap
 * bytes, truncated) and returned, to end an error message. */
const char *pt__cfg_suggest_text(const pt_cfg_suggest_t *s, char *buf, size_t cap);

/* Checks that n is a map whose keys are all fields of the table, in any order. Reports a
 * non-map, unknown fields (with the closest field name, or what to write instead of a
 * well-known mistake), duplicated fields and unsupported ones. out[i] receives the value
 * of fields[i] (NULL when absent or null); out must have n_fields slots. Returns false when n
 * is not a map (out is then all NULL). An unsupported field gets a warning ("not enforced by
 * Petrel yet: ignored") after its shape and sub-table are checked. */
bool pt__cfg_map(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                 const pt_cfg_field_t *fields, size_t n_fields, const pt_cfg_node_t **out);

/* Readers: each returns true and sets *out when n holds a valid value, else reports an error
 * at n and returns false. They must not be called with n == NULL. */
bool pt__cfg_is_map(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path);
bool pt__cfg_is_seq(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path);
/* Any scalar, as text (YAML `80` is the string "80" here). *out points into the tree. */
bool pt__cfg_str(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                 const char **out);
/* As pt__cfg_str, and the string may not be empty. */
bool pt__cfg_nonempty_str(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                          const char **out);
/* An unquoted decimal integer within [min, max]. */
bool pt__cfg_int(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path, long long min,
                 long long max, long long *out);
/* One of names[0..n_names), exactly; *out its index. An unknown value's error lists the names
 * and suggests the closest. */
bool pt__cfg_enum(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                  const char *const *names, size_t n_names, int *out);
/* A duration (see pt__cfg_parse_duration) in milliseconds. */
bool pt__cfg_duration(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                      uint64_t *out_ms);
/* A map of string to string (metadata labels, annotations, selectors). */
bool pt__cfg_string_map(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path);

/* Parses Istio's duration syntax: the protobuf JSON form "1.5s", plus what Istio users write
 * (Go's time.ParseDuration form): one or more <decimal><unit> with unit h, m, s, ms, us (or
 * µs), ns, e.g. "100ms", "2m", "1h30m", "500us". "0" alone is zero. Negative values are
 * refused. The result is rounded up to whole milliseconds, so a non-zero duration never
 * becomes 0 (which means "off" in several fields). Returns 0, or -1 when s is not a
 * duration or is longer than 10 years. */
int pt__cfg_parse_duration(const char *s, uint64_t *out_ms);

/* Host names as Istio writes them: "*", "*.example.com" or a DNS name (case-folded by the
 * caller). Returns NULL when valid, else the reason. */
const char *pt__cfg_host_problem(const char *host);

/* Copies a tree string into the snapshot arena. */
const char *pt__cfg_out_str(pt_cfg_cx_t *cx, const char *s);
/* Lower-cased copy in the snapshot arena. */
const char *pt__cfg_out_lower(pt_cfg_cx_t *cx, const char *s);

#endif
