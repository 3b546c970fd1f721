/* filters/chaos/api.c
 * The Toxiproxy-compatible HTTP API over the chaos store (store.h): Toxiproxy's endpoints,
 * JSON shapes, status codes and {"error", "status"} bodies, so that its clients work unchanged.
 * Bodies are parsed by the strict parser (json.h); a field of the wrong type, an unknown toxic
 * type or attribute is a 400 that names the field. An HTTP toxic's "match" is turned into a
 * config node tree and compiled by config/ (config/chaos_match.c), the reader of a ChaosProxy's
 * YAML, so both accept the same matches with the same errors. The admin module (proxy/admin.c,
 * its chaos role) serves the HTTP; this file only maps a request to an answer. */
#include <inttypes.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../config/node.h"
#include "json.h"
#include "store.h"

#define BODY_ERR_MAX 256

typedef struct out {
    char *data;
    size_t len, cap;
} out_t;

static void out_printf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(out_t *o, const char *fmt, ...)
{
    if (o->data == NULL) {
        o->cap = 512;
        o->data = malloc(o->cap);
        if (o->data == NULL)
            abort();
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->data + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        o->cap = (o->cap + (size_t)n + 1) * 2;
        o->data = realloc(o->data, o->cap);
        if (o->data == NULL)
            abort();
    }
}

/* Writes s as a JSON string. A byte that is not part of valid UTF-8 (an error message that
 * snprintf cut inside a client's multi-byte name) is written as U+FFFD, so every answer parses. */
static void out_str(out_t *o, const char *s)
{
    out_printf(o, "\"");
    const unsigned char *c = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        size_t n = pt_json_utf8_len(c, left);
        if (n == 0) {
            out_printf(o, "\\ufffd");
            n = 1;
        } else if (*c == '"' || *c == '\\') {
            out_printf(o, "\\%c", *c);
        } else if (*c < 0x20) {
            out_printf(o, "\\u%04x", *c);
        } else {
            out_printf(o, "%.*s", (int)n, (const char *)c);
        }
        c += n;
        left -= n;
    }
    out_printf(o, "\"");
}

static const char *stream_name(int stream)
{
    return stream == 0 ? "upstream" : "downstream";
}

static void out_toxic(out_t *o, const pt_toxic_t *t)
{
    out_printf(o, "{\"name\":");
    out_str(o, t->name);
    out_printf(o, ",\"type\":\"%s\",\"stream\":\"%s\",\"toxicity\":%g,\"attributes\":{",
               pt_toxic_type_name(t->type), stream_name(t->stream), t->toxicity);
    size_t n;
    const pt_toxic_attr_t *attrs = pt_toxic_attrs(t->type, &n);
    for (size_t i = 0; i < n; i++)
        out_printf(o, "%s\"%s\":%" PRId64, i > 0 ? "," : "", attrs[i].name,
                   *(const int64_t *)((const char *)t + attrs[i].offset));
    out_printf(o, "}");
    /* Petrel's safety fields, when set (a plain toxic keeps Toxiproxy's shape). */
    if (t->ttl_ms > 0)
        out_printf(o, ",\"ttl_ms\":%" PRId64, t->ttl_ms);
    if (t->max_hits > 0)
        out_printf(o, ",\"max_hits\":%" PRId64, t->max_hits);
    if (t->dry_run)
        out_printf(o, ",\"dry_run\":true");
    if (t->match != NULL) /* JSON already, as it was given */
        out_printf(o, ",\"match\":%s", t->match->json);
    out_printf(o, "}");
}

static void out_toxics(out_t *o, const pt_toxic_t *toxics, size_t n)
{
    out_printf(o, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out_printf(o, ",");
        out_toxic(o, &toxics[i]);
    }
    out_printf(o, "]");
}

static void out_proxy(out_t *o, const pt_chaos_proxy_t *p)
{
    out_printf(o, "{\"name\":");
    out_str(o, p->name);
    out_printf(o, ",\"listen\":");
    out_str(o, p->listen);
    out_printf(o, ",\"upstream\":");
    out_str(o, p->upstream);
    out_printf(o, ",\"enabled\":%s,", p->enabled ? "true" : "false");
    /* Petrel's: what runs between listen and upstream (a ChaosProxy's spec.protocol). */
    out_printf(o, "\"protocol\":\"%s\",", p->is_http ? "http" : "tcp");
    /* Read-only, and only when true: a ChaosProxy's spec.tls (Toxiproxy has no such field). */
    if (p->tls_ctx != NULL)
        out_printf(o, "\"tls\":true,");
    out_printf(o, "\"toxics\":");
    out_toxics(o, p->toxics, p->n_toxics);
    out_printf(o, "}");
}

static void out_route(out_t *o, const pt_chaos_route_t *r)
{
    out_printf(o, "{\"virtual_service\":");
    out_str(o, r->virtual_service);
    out_printf(o, ",\"route\":");
    out_str(o, r->route);
    out_printf(o, ",\"toxics\":");
    out_toxics(o, r->toxics, r->n_toxics);
    out_printf(o, "}");
}

/* One request being answered. */
typedef struct req {
    pt_chaos_store_t *st;
    pt_arena_t arena;
    int status;
    out_t out;
    const char *type;
} req_t;

static void answer_error(req_t *r, int status, const char *message)
{
    r->status = status;
    r->out.len = 0;
    out_printf(&r->out, "{\"error\":");
    out_str(&r->out, message);
    out_printf(&r->out, ",\"status\":%d}", status);
}

/* Reads field key of object o as a string into dst (cap bytes). Returns 1 when set, 0 when
 * absent, -1 on error (answered). */
static int get_string(req_t *r, const pt_json_t *o, const char *path, const char *key, char *dst,
                      size_t cap)
{
    const pt_json_t *v = pt_json_get(o, key);
    char msg[BODY_ERR_MAX];
    if (v == NULL)
        return 0;
    if (v->type != PT_JSON_STRING) {
        snprintf(msg, sizeof(msg), "%s%s: must be a string, not %s", path, key,
                 pt_json_type_name(v->type));
        answer_error(r, 400, msg);
        return -1;
    }
    if (v->str_len == 0 || v->str_len >= cap || strlen(v->str) != v->str_len) {
        snprintf(msg, sizeof(msg), "%s%s: must be 1 to %zu bytes, without NUL", path, key, cap - 1);
        answer_error(r, 400, msg);
        return -1;
    }
    memcpy(dst, v->str, v->str_len + 1);
    return 1;
}

static int get_bool(req_t *r, const pt_json_t *o, const char *path, const char *key, bool *dst)
{
    const pt_json_t *v = pt_json_get(o, key);
    if (v == NULL)
        return 0;
    if (v->type != PT_JSON_BOOL) {
        char msg[BODY_ERR_MAX];
        snprintf(msg, sizeof(msg), "%s%s: must be true or false, not %s", path, key,
                 pt_json_type_name(v->type));
        answer_error(r, 400, msg);
        return -1;
    }
    *dst = v->boolean;
    return 1;
}

/* A proxy from its JSON (POST /proxies, /populate, POST /proxies/{name}): base gives the
 * fields the body leaves out. Returns 0, or -1 (answered). */
static int read_proxy(req_t *r, const pt_json_t *o, const char *path, pt_chaos_proxy_t *p,
                      bool need_all)
{
    char msg[BODY_ERR_MAX];
    if (o == NULL || o->type != PT_JSON_OBJECT) {
        snprintf(msg, sizeof(msg), "%s: a proxy must be an object", path[0] ? path : "body");
        answer_error(r, 400, msg);
        return -1;
    }
    for (const pt_json_t *m = o->child; m != NULL; m = m->next)
        if (strcmp(m->key, "name") != 0 && strcmp(m->key, "listen") != 0 &&
            strcmp(m->key, "upstream") != 0 && strcmp(m->key, "enabled") != 0 &&
            strcmp(m->key, "toxics") != 0 && strcmp(m->key, "tls") != 0 &&
            strcmp(m->key, "protocol") != 0) {
            snprintf(msg, sizeof(msg),
                     "%s%s: unknown field (expected name, listen, upstream, "
                     "enabled, protocol)",
                     path, m->key);
            answer_error(r, 400, msg);
            return -1;
        }
    int got_name = get_string(r, o, path, "name", p->name, sizeof(p->name));
    int got_listen =
        got_name < 0 ? -1 : get_string(r, o, path, "listen", p->listen, sizeof(p->listen));
    int got_up =
        got_listen < 0 ? -1 : get_string(r, o, path, "upstream", p->upstream, sizeof(p->upstream));
    if (got_up < 0 || get_bool(r, o, path, "enabled", &p->enabled) < 0)
        return -1;
    /* "tls" is read-only (a ChaosProxy's spec.tls): echoing the proxy back is fine, asking
     * for what the proxy is not is refused. */
    bool is_tls = p->tls_ctx != NULL;
    if (get_bool(r, o, path, "tls", &is_tls) < 0)
        return -1;
    if (is_tls != (p->tls_ctx != NULL)) {
        snprintf(msg, sizeof(msg),
                 "%stls: read-only: TLS is declared by a ChaosProxy's spec.tls in the config, "
                 "not over the API",
                 path);
        answer_error(r, 400, msg);
        return -1;
    }
    /* "protocol" is fixed too: "tcp" for the API's proxies (Toxiproxy's), "http" only for a
     * ChaosProxy that declares spec.protocol HTTP, whose route table and cluster the config
     * compiled. */
    char protocol[8] = "";
    if (get_string(r, o, path, "protocol", protocol, sizeof(protocol)) < 0)
        return -1;
    if (protocol[0] != '\0' && strcmp(protocol, "tcp") != 0 && strcmp(protocol, "http") != 0) {
        snprintf(msg, sizeof(msg), "%sprotocol: must be \"tcp\" or \"http\", got \"%s\"", path,
                 protocol);
        answer_error(r, 400, msg);
        return -1;
    }
    if (protocol[0] != '\0' && (strcmp(protocol, "http") == 0) != p->is_http) {
        snprintf(msg, sizeof(msg),
                 "%sprotocol: %s: an HTTP chaos proxy is declared by a ChaosProxy resource with "
                 "spec.protocol HTTP in the config, not over the API",
                 path,
                 p->is_http ? "an HTTP chaos proxy stays one" : "a proxy made over the API is tcp");
        answer_error(r, 400, msg);
        return -1;
    }
    if (got_name > 0 && !pt_chaos_is_valid_name(p->name)) {
        snprintf(msg, sizeof(msg),
                 "%sname: \"%s\" may hold only letters, digits, '_', '-' and "
                 "'.'",
                 path, p->name);
        answer_error(r, 400, msg);
        return -1;
    }
    if (need_all && (got_name == 0 || got_up == 0)) {
        snprintf(msg, sizeof(msg), "%s%s: missing", path, got_name == 0 ? "name" : "upstream");
        answer_error(r, 400, msg);
        return -1;
    }
    if (need_all && got_listen == 0)
        snprintf(p->listen, sizeof(p->listen), "127.0.0.1:0"); /* a free port on loopback */
    return 0;
}

/* Parses the body; answers 400 and returns NULL when it is not JSON. */
static const pt_json_t *parse_body(req_t *r, const char *body, size_t len)
{
    char err[BODY_ERR_MAX], msg[BODY_ERR_MAX + 32];
    pt_json_t *j = pt_json_parse(&r->arena, body, len, err, sizeof(err));
    if (j == NULL) {
        snprintf(msg, sizeof(msg), "body: %s", err);
        answer_error(r, 400, msg);
    }
    return j;
}

static void answer_store_error(req_t *r, const pt_chaos_error_t *e)
{
    answer_error(r, e->status, e->message);
}

static void serve_proxies(req_t *r, int method, const char *body, size_t len)
{
    pt_chaos_store_t *st = r->st;
    if (method == HTTP_GET) {
        out_printf(&r->out, "{");
        for (size_t i = 0; i < st->n_proxies; i++) {
            if (i > 0)
                out_printf(&r->out, ",");
            out_str(&r->out, st->proxies[i]->name);
            out_printf(&r->out, ":");
            out_proxy(&r->out, st->proxies[i]);
        }
        out_printf(&r->out, "}");
        return;
    }
    const pt_json_t *j = parse_body(r, body, len);
    pt_chaos_proxy_t p = {.enabled = true};
    if (j == NULL || read_proxy(r, j, "", &p, true) != 0)
        return;
    if (pt_chaos_store_find(st, p.name) != NULL) {
        answer_error(r, 409, "proxy already exists");
        return;
    }
    pt_chaos_error_t e;
    if (pt_chaos_store_add(st, &p, &e) != 0) {
        answer_store_error(r, &e);
        return;
    }
    r->status = 201;
    out_proxy(&r->out, pt_chaos_store_find(st, p.name));
}

/* Whether listen asks for any free port (":0"): the port the proxy got then matches it. */
/* Is v a number with no fraction from min to max? The range is checked before the conversion
 * to an integer, which is undefined for a double outside int64_t's range (1e39, NaN). */
static bool is_whole_in(const pt_json_t *v, int64_t min, int64_t max)
{
    if (v->type != PT_JSON_NUMBER || !(v->num >= (double)min && v->num <= (double)max))
        return false;
    if (!(v->num > -9.0e18 && v->num < 9.0e18)) /* (double)INT64_MAX rounds up to 2^63 */
        return false;
    return v->num == (double)(int64_t)v->num;
}

static bool asks_any_port(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    return colon != NULL && strcmp(colon, ":0") == 0;
}

/* POST /populate: an array of proxies; those that exist with the same listen and upstream are
 * kept (their toxics too), others are created or replaced. All are checked before any change. */
static void serve_populate(req_t *r, const char *body, size_t len)
{
    pt_chaos_store_t *st = r->st;
    const pt_json_t *j = parse_body(r, body, len);
    if (j == NULL)
        return;
    if (j->type != PT_JSON_ARRAY) {
        answer_error(r, 400, "body: must be an array of proxies");
        return;
    }
    pt_chaos_proxy_t *list = pt_arena_calloc(&r->arena, PT_CHAOS_MAX_PROXIES * sizeof(*list));
    size_t n = 0;
    for (const pt_json_t *m = j->child; m != NULL; m = m->next, n++) {
        char path[32];
        snprintf(path, sizeof(path), "[%zu].", n);
        if (n == PT_CHAOS_MAX_PROXIES) {
            answer_error(r, 400, "body: too many proxies");
            return;
        }
        list[n].enabled = true;
        if (read_proxy(r, m, path, &list[n], true) != 0)
            return;
    }
    for (size_t i = 0; i < n; i++) {
        pt_chaos_proxy_t *old = pt_chaos_store_find(st, list[i].name);
        pt_chaos_error_t e;
        int rc = 0;
        if (old != NULL && strcmp(old->upstream, list[i].upstream) == 0 &&
            (strcmp(old->listen, list[i].listen) == 0 || asks_any_port(list[i].listen))) {
            pt_chaos_proxy_t next = *old;
            next.enabled = list[i].enabled;
            rc = pt_chaos_store_update(st, old, &next, &e);
        } else {
            if (old != NULL)
                pt_chaos_store_remove(st, old);
            rc = pt_chaos_store_add(st, &list[i], &e);
        }
        if (rc != 0) {
            answer_store_error(r, &e);
            return;
        }
    }
    r->status = 201;
    out_printf(&r->out, "{\"proxies\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out_printf(&r->out, ",");
        out_proxy(&r->out, pt_chaos_store_find(st, list[i].name));
    }
    out_printf(&r->out, "]}");
}

static void serve_proxy(req_t *r, int method, pt_chaos_proxy_t *p, const char *body, size_t len)
{
    if (method == HTTP_GET) {
        out_proxy(&r->out, p);
        return;
    }
    if (method == HTTP_DELETE) {
        pt_chaos_store_remove(r->st, p);
        r->status = 204;
        return;
    }
    const pt_json_t *j = parse_body(r, body, len);
    pt_chaos_proxy_t next = *p;
    if (j == NULL || read_proxy(r, j, "", &next, false) != 0)
        return;
    if (strcmp(next.name, p->name) != 0) {
        answer_error(r, 400, "name: a proxy cannot be renamed");
        return;
    }
    if (p->is_http && strcmp(next.upstream, p->upstream) != 0) {
        /* Its requests go to the cluster the config compiled from spec.upstream. */
        answer_error(r, 400,
                     "upstream: an HTTP chaos proxy's upstream is its ChaosProxy's spec.upstream: "
                     "change it in the config");
        return;
    }
    pt_chaos_error_t e;
    if (pt_chaos_store_update(r->st, p, &next, &e) != 0) {
        answer_store_error(r, &e);
        return;
    }
    out_proxy(&r->out, p);
}

/* Applies an attributes object to t (create: over zeroes; update: merged), each attribute a
 * whole number within its range (config/chaos.h). */
static int read_attributes(req_t *r, const pt_json_t *a, pt_toxic_t *t)
{
    char msg[BODY_ERR_MAX];
    if (a == NULL)
        return 0;
    if (a->type != PT_JSON_OBJECT) {
        answer_error(r, 400, "attributes: must be an object");
        return -1;
    }
    for (const pt_json_t *m = a->child; m != NULL; m = m->next) {
        const pt_toxic_attr_t *at = pt_toxic_attr(t->type, m->key);
        if (at == NULL) {
            snprintf(msg, sizeof(msg), "attributes.%s: not an attribute of a %s toxic", m->key,
                     pt_toxic_type_name(t->type));
            answer_error(r, 400, msg);
            return -1;
        }
        if (!is_whole_in(m, at->min, at->max)) {
            snprintf(msg, sizeof(msg),
                     "attributes.%s: must be a whole number from %" PRId64 " to %" PRId64, m->key,
                     at->min, at->max);
            answer_error(r, 400, msg);
            return -1;
        }
        *(int64_t *)((char *)t + at->offset) = (int64_t)m->num;
    }
    return 0;
}

static int read_toxicity(req_t *r, const pt_json_t *o, pt_toxic_t *t)
{
    const pt_json_t *v = pt_json_get(o, "toxicity");
    if (v == NULL)
        return 0;
    if (v->type != PT_JSON_NUMBER || v->num < 0 || v->num > 1) {
        answer_error(r, 400, "toxicity: must be a number from 0 to 1");
        return -1;
    }
    t->toxicity = v->num;
    return 0;
}

/* Petrel's safety fields of a toxic: ttl_ms, max_hits, dry_run. */
static int read_safety(req_t *r, const pt_json_t *o, pt_toxic_t *t, bool *has_ttl)
{
    static const struct {
        const char *key;
        size_t offset;
        int64_t max;
    } ints[] = {{"ttl_ms", offsetof(pt_toxic_t, ttl_ms), PT_TOXIC_TTL_MAX_MS},
                {"max_hits", offsetof(pt_toxic_t, max_hits), PT_TOXIC_MAX_HITS_MAX}};
    char msg[BODY_ERR_MAX];
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        const pt_json_t *v = pt_json_get(o, ints[i].key);
        if (v == NULL)
            continue;
        if (!is_whole_in(v, 0, ints[i].max)) {
            snprintf(msg, sizeof(msg), "%s: must be a whole number from 0 to %" PRId64, ints[i].key,
                     ints[i].max);
            answer_error(r, 400, msg);
            return -1;
        }
        *(int64_t *)((char *)t + ints[i].offset) = (int64_t)v->num;
    }
    *has_ttl = pt_json_get(o, "ttl_ms") != NULL;
    return get_bool(r, o, "", "dry_run", &t->dry_run) < 0 ? -1 : 0;
}

static int check_toxic_fields(req_t *r, const pt_json_t *o)
{
    static const char *const known[] = {"name",   "type",     "stream",  "toxicity", "attributes",
                                        "ttl_ms", "max_hits", "dry_run", "match"};
    for (const pt_json_t *m = o->child; m != NULL; m = m->next) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !ok; i++)
            ok = strcmp(m->key, known[i]) == 0;
        if (!ok) {
            char msg[BODY_ERR_MAX];
            snprintf(msg, sizeof(msg),
                     "%s: unknown field (expected name, type, stream, toxicity, attributes, "
                     "ttl_ms, max_hits, dry_run, match)",
                     m->key);
            answer_error(r, 400, msg);
            return -1;
        }
    }
    return 0;
}

/* j as a config node tree in the request's arena, so that config/ reads a toxic's match from
 * the API as from the YAML: strings are quoted scalars, numbers and booleans plain ones, and
 * every node keeps its line and column in the body. */
static pt_cfg_node_t *to_node(req_t *r, const pt_json_t *j)
{
    pt_cfg_node_t *n = pt_arena_calloc(&r->arena, sizeof(*n));
    n->file = "body";
    n->line = j->line;
    n->col = j->col;
    n->str = "";
    size_t count = 0;
    for (const pt_json_t *c = j->child; c != NULL; c = c->next)
        count++;
    switch (j->type) {
    case PT_JSON_NULL: n->type = PT_CFG_NULL; break;
    case PT_JSON_BOOL:
    case PT_JSON_NUMBER:
        n->type = PT_CFG_SCALAR;
        n->str = j->type == PT_JSON_BOOL ? (j->boolean ? "true" : "false")
                                         : pt_arena_printf(&r->arena, "%.15g", j->num);
        break;
    case PT_JSON_STRING:
        n->type = PT_CFG_SCALAR;
        n->is_quoted = true;
        n->str = j->str;
        break;
    case PT_JSON_ARRAY:
        n->type = PT_CFG_SEQ;
        n->items = pt_arena_alloc(&r->arena, (count ? count : 1) * sizeof(*n->items));
        for (const pt_json_t *c = j->child; c != NULL; c = c->next)
            n->items[n->n_items++] = to_node(r, c);
        break;
    case PT_JSON_OBJECT:
        n->type = PT_CFG_MAP;
        n->pairs = pt_arena_alloc(&r->arena, (count ? count : 1) * sizeof(*n->pairs));
        for (const pt_json_t *c = j->child; c != NULL; c = c->next) {
            pt_cfg_node_t *k = pt_arena_calloc(&r->arena, sizeof(*k));
            *k = (pt_cfg_node_t){.type = PT_CFG_SCALAR,
                                 .file = "body",
                                 .line = c->line,
                                 .col = c->col,
                                 .is_quoted = true,
                                 .str = c->key,
                                 .len = strlen(c->key)};
            pt_cfg_node_t *v = to_node(r, c);
            v->key_line = c->line; /* the JSON tree keeps where the value starts only */
            v->key_col = c->col;
            n->pairs[n->n_pairs++] = (pt_cfg_pair_t){k, v};
        }
        break;
    }
    n->len = j->type == PT_JSON_STRING ? j->str_len : strlen(n->str);
    return n;
}

/* Whether a string under j holds a NUL, which no condition on a request can match and the
 * config's strings end at. */
static bool holds_nul(const pt_json_t *j)
{
    if (j->type == PT_JSON_STRING && strlen(j->str) != j->str_len)
        return true;
    for (const pt_json_t *c = j->child; c != NULL; c = c->next)
        if (holds_nul(c))
            return true;
    return false;
}

/* A toxic's "match" (an HTTP toxic's: Istio's HTTPMatchRequest list, as in a ChaosProxy's YAML),
 * compiled by config/ into *out (one ref, or NULL: every request; [] and null say so too).
 * Returns 1 when given, 0 when absent, -1 on error (answered). */
static int read_match(req_t *r, const pt_json_t *o, bool is_http, pt_toxic_match_t **out)
{
    const pt_json_t *v = pt_json_get(o, "match");
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!is_http) {
        answer_error(r, 400,
                     "match: a TCP toxic acts on a session's bytes, not on requests: only HTTP "
                     "toxics (on a route or an HTTP chaos proxy) take a match");
        return -1;
    }
    if (v->type == PT_JSON_NULL)
        return 1;
    if (holds_nul(v)) {
        answer_error(r, 400, "match: a string holds a NUL byte");
        return -1;
    }
    char err[BODY_ERR_MAX];
    if (pt_toxic_match_compile(to_node(r, v), out, err, sizeof(err)) != 0) {
        answer_error(r, 400, err);
        return -1;
    }
    return 1;
}

/* The body of a toxic's POST: a JSON object with only a toxic's fields; NULL after answering
 * 400 otherwise. */
static const pt_json_t *parse_toxic_body(req_t *r, const char *body, size_t len)
{
    const pt_json_t *j = parse_body(r, body, len);
    if (j == NULL)
        return NULL;
    if (j->type != PT_JSON_OBJECT) {
        answer_error(r, 400, "body: a toxic must be an object");
        return NULL;
    }
    return check_toxic_fields(r, j) == 0 ? j : NULL;
}

/* The toxics of a chaos proxy (TCP toxics; HTTP toxics on an HTTP proxy) or of a route (HTTP
 * toxics), toxics[0..*n). */
typedef struct toxic_list {
    pt_toxic_t *toxics;
    size_t *n;
    bool is_http;  /* HTTP toxics */
    bool is_route; /* of a route */
} toxic_list_t;

static void serve_toxics(req_t *r, int method, toxic_list_t l, const char *body, size_t len)
{
    if (method == HTTP_GET) {
        out_toxics(&r->out, l.toxics, *l.n);
        return;
    }
    const pt_json_t *j = parse_toxic_body(r, body, len);
    if (j == NULL)
        return;
    pt_toxic_t t = {.toxicity = 1.0, .stream = 1};
    char type[32] = "", stream[16] = "";
    if (get_string(r, j, "", "type", type, sizeof(type)) < 0 ||
        get_string(r, j, "", "stream", stream, sizeof(stream)) < 0 ||
        get_string(r, j, "", "name", t.name, sizeof(t.name)) < 0)
        return;
    int ty = pt_toxic_type_from_name(type);
    if (ty < 0 || pt_toxic_is_http((pt_toxic_type_t)ty) != l.is_http) {
        char msg[BODY_ERR_MAX];
        snprintf(msg, sizeof(msg), "type: \"%s\" is not a %s", type,
                 l.is_route  ? "toxic type of a route (http_abort, http_delay, http_slow_body, "
                               "http_drop_first)"
                 : l.is_http ? "toxic type of an HTTP proxy (http_abort, http_delay, "
                               "http_slow_body, http_drop_first; TCP toxics go on a TCP proxy)"
                             : "toxic type of a TCP proxy (latency, bandwidth, slow_close, "
                               "timeout, reset_peer, slicer, limit_data; http_* toxics go on "
                               "a route or an HTTP proxy)");
        answer_error(r, 400, type[0] ? msg : "type: missing");
        return;
    }
    t.type = (pt_toxic_type_t)ty;
    if (stream[0] != '\0' && strcmp(stream, "upstream") != 0 && strcmp(stream, "downstream") != 0) {
        answer_error(r, 400, "stream: must be upstream or downstream");
        return;
    }
    t.stream = strcmp(stream, "upstream") == 0 ? 0 : 1;
    if (t.name[0] == '\0')
        pt_toxic_default_name(&t, t.name, sizeof(t.name));
    if (!pt_chaos_is_valid_name(t.name)) {
        answer_error(r, 400, "name: may hold only letters, digits, '_', '-' and '.'");
        return;
    }
    bool has_ttl;
    if (read_toxicity(r, j, &t) != 0 || read_attributes(r, pt_json_get(j, "attributes"), &t) != 0 ||
        read_safety(r, j, &t, &has_ttl) != 0)
        return;
    for (size_t i = 0; i < *l.n; i++)
        if (strcmp(l.toxics[i].name, t.name) == 0) {
            answer_error(r, 409, "toxic already exists");
            return;
        }
    if (*l.n == PT_CHAOS_MAX_TOXICS) {
        answer_error(r, 400, "too many toxics (at most 16)");
        return;
    }
    if (read_match(r, j, l.is_http, &t.match) < 0) /* last: past it, the toxic is made */
        return;
    pt_chaos_store_new_toxic(r->st, &t);
    l.toxics[(*l.n)++] = t;
    pt_chaos_store_publish(r->st);
    out_toxic(&r->out, &t);
}

static void serve_toxic(req_t *r, int method, toxic_list_t l, size_t i, const char *body,
                        size_t len)
{
    if (method == HTTP_GET) {
        out_toxic(&r->out, &l.toxics[i]);
        return;
    }
    if (method == HTTP_DELETE) {
        pt_toxic_release(&l.toxics[i]);
        memmove(&l.toxics[i], &l.toxics[i + 1], (*l.n - i - 1) * sizeof(l.toxics[0]));
        (*l.n)--;
        pt_chaos_store_publish(r->st);
        r->status = 204;
        return;
    }
    const pt_json_t *j = parse_toxic_body(r, body, len);
    if (j == NULL)
        return;
    /* Toxiproxy's clients send the whole toxic back: name, type and stream may come along but
     * cannot change. */
    pt_toxic_t t = l.toxics[i];
    char type[32] = "", stream[16] = "", name[PT_CHAOS_NAME_MAX] = "";
    if (get_string(r, j, "", "type", type, sizeof(type)) < 0 ||
        get_string(r, j, "", "stream", stream, sizeof(stream)) < 0 ||
        get_string(r, j, "", "name", name, sizeof(name)) < 0)
        return;
    if ((type[0] && strcmp(type, pt_toxic_type_name(t.type)) != 0) ||
        (stream[0] && strcmp(stream, stream_name(t.stream)) != 0) ||
        (name[0] && strcmp(name, t.name) != 0)) {
        answer_error(r, 400, "name, type and stream of a toxic cannot change");
        return;
    }
    bool has_ttl;
    if (read_toxicity(r, j, &t) != 0 || read_attributes(r, pt_json_get(j, "attributes"), &t) != 0 ||
        read_safety(r, j, &t, &has_ttl) != 0)
        return;
    /* A match given replaces the toxic's (null or [] removes it); last, as it takes a ref. */
    pt_toxic_match_t *match;
    int got_match = read_match(r, j, l.is_http, &match);
    if (got_match < 0)
        return;
    if (got_match > 0) {
        pt_toxic_match_unref(t.match);
        t.match = match;
    }
    if (has_ttl)
        pt_chaos_store_set_ttl(r->st, &t); /* counted from this update */
    if (t.toxicity != l.toxics[i].toxicity)
        t.uid = pt_chaos_store_uid(r->st); /* sessions roll again */
    l.toxics[i] = t;
    pt_chaos_store_publish(r->st);
    out_toxic(&r->out, &t);
}

/* The next path segment after *at (which points at a '/'), into seg; advances *at. */
static bool next_segment(const char **at, const char *end, char *seg, size_t cap)
{
    if (*at >= end || **at != '/')
        return false;
    const char *s = *at + 1, *e = s;
    while (e < end && *e != '/')
        e++;
    if (e == s || (size_t)(e - s) >= cap)
        return false;
    memcpy(seg, s, (size_t)(e - s));
    seg[e - s] = '\0';
    *at = e;
    return true;
}

static bool allow(req_t *r, int method, bool get, bool post, bool del)
{
    if ((method == HTTP_GET && get) || (method == HTTP_POST && post) ||
        (method == HTTP_DELETE && del))
        return true;
    answer_error(r, 405, "method not allowed");
    return false;
}

/* .../toxics and .../toxics/{toxic} under a proxy or a route, at the rest of the path. */
static void serve_toxic_path(req_t *r, int method, toxic_list_t l, const char *at, const char *end,
                             const char *body, size_t body_len)
{
    char seg[PT_CHAOS_NAME_MAX];
    if (!next_segment(&at, end, seg, sizeof(seg)) || strcmp(seg, "toxics") != 0) {
        answer_error(r, 404, "not found");
    } else if (at == end) {
        if (allow(r, method, true, true, false))
            serve_toxics(r, method, l, body, body_len);
    } else if (!next_segment(&at, end, seg, sizeof(seg)) || at != end) {
        answer_error(r, 404, "toxic not found");
    } else {
        size_t i = 0;
        while (i < *l.n && strcmp(l.toxics[i].name, seg) != 0)
            i++;
        if (i == *l.n)
            answer_error(r, 404, "toxic not found");
        else if (allow(r, method, true, true, true))
            serve_toxic(r, method, l, i, body, body_len);
    }
}

/* GET /routes; /routes/{vs}/{route}[/toxics[/{toxic}]]: the HTTP toxics of a VirtualService
 * route. A route is listed while it has a toxic; the first POST of one makes it. */
static void serve_routes(req_t *r, int method, const char *at, const char *end, const char *body,
                         size_t body_len)
{
    char vs[PT_CHAOS_NAME_MAX], route[PT_CHAOS_NAME_MAX];
    if (at == end) {
        if (!allow(r, method, true, false, false))
            return;
        out_printf(&r->out, "[");
        for (size_t i = 0; i < r->st->n_routes; i++) {
            out_printf(&r->out, i > 0 ? "," : "");
            out_route(&r->out, r->st->routes[i]);
        }
        out_printf(&r->out, "]");
        return;
    }
    if (!next_segment(&at, end, vs, sizeof(vs)) || !next_segment(&at, end, route, sizeof(route)) ||
        !pt_chaos_is_valid_name(vs) || !pt_chaos_is_valid_name(route)) {
        answer_error(r, 404, "not found (expected /routes/{virtual-service}/{route}/toxics)");
        return;
    }
    bool is_toxics = end - at == 7 && memcmp(at, "/toxics", 7) == 0;
    pt_chaos_route_t *rt = pt_chaos_store_route(r->st, vs, route, is_toxics && method == HTTP_POST);
    if (rt == NULL) {
        if (is_toxics && method == HTTP_GET)
            out_printf(&r->out, "[]");
        else if (is_toxics && method == HTTP_POST)
            answer_error(r, 400, "too many routes with toxics");
        else
            answer_error(r, 404, "route has no toxics");
        return;
    }
    if (at == end) {
        if (allow(r, method, true, false, false))
            out_route(&r->out, rt);
        return;
    }
    serve_toxic_path(r, method, (toxic_list_t){rt->toxics, &rt->n_toxics, true, true}, at, end,
                     body, body_len);
    pt_chaos_store_drop_route(r->st, rt); /* made for a POST that failed, or its last toxic went */
}

void pt_chaos_api_serve(pt_chaos_store_t *st, int method, const char *path, size_t path_len,
                        const char *body, size_t body_len, int *status, char **out, size_t *out_len,
                        const char **type)
{
    req_t r = {.st = st, .status = 200, .type = "application/json"};
    pt_arena_init(&r.arena, 4096);
    if (method == HTTP_HEAD)
        method = HTTP_GET;
    const char *at = path, *end = path + path_len;
    char a[PT_CHAOS_NAME_MAX], b[PT_CHAOS_NAME_MAX];
    pt_chaos_proxy_t *p = NULL;
    if (path_len == 8 && memcmp(path, "/version", 8) == 0) {
        if (allow(&r, method, true, false, false)) {
            r.type = "text/plain";
            out_printf(&r.out, "%s", PT_CHAOS_TOXIPROXY_VERSION);
        }
    } else if (path_len == 6 && memcmp(path, "/reset", 6) == 0) {
        if (allow(&r, method, false, true, false)) {
            pt_chaos_store_reset(st);
            r.status = 204;
        }
    } else if (path_len == 9 && memcmp(path, "/populate", 9) == 0) {
        if (allow(&r, method, false, true, false))
            serve_populate(&r, body, body_len);
    } else if (!next_segment(&at, end, a, sizeof(a))) {
        answer_error(&r, 404, "not found");
    } else if (strcmp(a, "routes") == 0) {
        serve_routes(&r, method, at, end, body, body_len);
    } else if (strcmp(a, "proxies") != 0) {
        answer_error(&r, 404, "not found");
    } else if (at == end) {
        if (allow(&r, method, true, true, false))
            serve_proxies(&r, method, body, body_len);
    } else if (!next_segment(&at, end, b, sizeof(b)) || (p = pt_chaos_store_find(st, b)) == NULL) {
        answer_error(&r, 404, "proxy not found");
    } else if (at == end) {
        if (allow(&r, method, true, true, true))
            serve_proxy(&r, method, p, body, body_len);
    } else {
        serve_toxic_path(&r, method, (toxic_list_t){p->toxics, &p->n_toxics, p->is_http, false}, at,
                         end, body, body_len);
    }
    pt_arena_dispose(&r.arena);
    *status = r.status;
    *out = r.out.data;
    *out_len = r.out.len;
    *type = r.type;
}
