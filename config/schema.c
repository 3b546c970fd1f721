/* config/schema.c
 * Generic schema checks over pt_cfg_node_t: map fields against a table, scalars read as
 * strings, bounded integers and durations, each failure reported with file:line:col and the
 * field path. Nothing here knows an Istio kind; see config/kind_*.c for the tables. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

static size_t path_write(const pt_cfg_path_t *p, char *buf, size_t cap, size_t pos)
{
    if (p == NULL)
        return pos;
    pos = path_write(p->parent, buf, cap, pos);
    if (pos >= cap)
        return pos;
    /* by hand, not snprintf: a load formats a path for every route it reads */
    char tmp[24];
    const char *piece;
    size_t len;
    if (p->key != NULL) {
        if (pos > 0)
            buf[pos++] = '.';
        piece = p->key;
        len = strlen(piece);
    } else {
        size_t v = p->index, k = sizeof(tmp);
        tmp[--k] = ']';
        do
            tmp[--k] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        tmp[--k] = '[';
        piece = tmp + k;
        len = sizeof(tmp) - k;
    }
    if (pos < cap) {
        size_t room = cap - pos - 1;
        memcpy(buf + pos, piece, len < room ? len : room);
        buf[pos + (len < room ? len : room)] = '\0';
    }
    return pos + len;
}

void pt__cfg_path_format(const pt_cfg_path_t *p, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    path_write(p, buf, cap, 0);
    buf[cap - 1] = '\0';
}

const char *pt__cfg_path_dup(pt_arena_t *a, const pt_cfg_path_t *p)
{
    char buf[512];
    pt__cfg_path_format(p, buf, sizeof(buf));
    return pt_arena_strdup(a, buf);
}

/* Adds one error or warning line for node n (NULL: no position) at the formatted path. */
__attribute__((format(printf, 5, 0))) static void vreport(pt_cfg_cx_t *cx, bool is_warning,
                                                          const pt_cfg_node_t *n, const char *path,
                                                          const char *fmt, va_list ap)
{
    char msg[768];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    const char *file = n ? n->file : NULL;
    int line = n ? pt__cfg_node_line(n) : 0, col = n ? pt__cfg_node_col(n) : 0;
    if (is_warning)
        pt_config_warnings_add(cx->errors, file, line, col, path, "%s", msg);
    else
        pt_config_errors_add(cx->errors, file, line, col, path, "%s", msg);
}

void pt__cfg_error(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                   const char *fmt, ...)
{
    char buf[512];
    pt__cfg_path_format(path, buf, sizeof(buf));
    va_list ap;
    va_start(ap, fmt);
    vreport(cx, false, n, buf, fmt, ap);
    va_end(ap);
}

void pt__cfg_error_at(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const char *path, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cx, false, n, path, fmt, ap);
    va_end(ap);
}

void pt__cfg_warn(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                  const char *fmt, ...)
{
    char buf[512];
    pt__cfg_path_format(path, buf, sizeof(buf));
    va_list ap;
    va_start(ap, fmt);
    vreport(cx, true, n, buf, fmt, ap);
    va_end(ap);
}

void pt__cfg_warn_at(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const char *path, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cx, true, n, path, fmt, ap);
    va_end(ap);
}

static const char *type_name(const pt_cfg_node_t *n)
{
    switch (n->type) {
    case PT_CFG_MAP: return "a map";
    case PT_CFG_SEQ: return "a list";
    case PT_CFG_NULL: return "null";
    default: return "a scalar";
    }
}

bool pt__cfg_is_map(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path)
{
    if (n->type == PT_CFG_MAP)
        return true;
    pt__cfg_error(cx, n, path, "must be a map, got %s", type_name(n));
    return false;
}

bool pt__cfg_is_seq(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path)
{
    if (n->type == PT_CFG_SEQ)
        return true;
    pt__cfg_error(cx, n, path, "must be a list, got %s", type_name(n));
    return false;
}

void pt__cfg_suggest_init(pt_cfg_suggest_t *s, const char *word)
{
    *s = (pt_cfg_suggest_t){.word = word};
}

/* Longer words are not names anyone misspelt; the bound also keeps the table below small. */
#define SUGGEST_MAX_LEN 64

/* The optimal-string-alignment form of Damerau-Levenshtein (an adjacent swap is one edit),
 * case ignored; both strings are at most SUGGEST_MAX_LEN long. */
static int edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    int d[SUGGEST_MAX_LEN + 1][SUGGEST_MAX_LEN + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            int v = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

void pt__cfg_suggest_add(pt_cfg_suggest_t *s, const char *name)
{
    size_t lw = strlen(s->word), ln = strlen(name);
    if (lw > SUGGEST_MAX_LEN || ln > SUGGEST_MAX_LEN)
        return;
    int max = lw < 3 ? 0 : lw <= 5 ? 1 : 2;
    /* Each edit changes the length by at most one: skip names too long or short to be close. */
    if ((lw > ln ? lw - ln : ln - lw) > (size_t)max)
        return;
    int d = edit_distance(s->word, lw, name, ln);
    if (d <= max && (s->best == NULL || d < s->distance)) {
        s->best = name;
        s->distance = d;
    }
}

const char *pt__cfg_suggest_text(const pt_cfg_suggest_t *s, char *buf, size_t cap)
{
    if (s->best == NULL)
        snprintf(buf, cap, "%s", "");
    else
        snprintf(buf, cap, "; did you mean \"%s\"?", s->best);
    return buf;
}

bool pt__cfg_enum(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                  const char *const *names, size_t n_names, int *out)
{
    const char *s;
    if (!pt__cfg_str(cx, n, path, &s))
        return false;
    for (size_t i = 0; i < n_names; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return true;
        }
    pt_cfg_suggest_t sg;
    pt__cfg_suggest_init(&sg, s);
    char expected[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < n_names; i++) {
        pt__cfg_suggest_add(&sg, names[i]);
        len += (size_t)snprintf(expected + len, len < sizeof(expected) ? sizeof(expected) - len : 0,
                                "%s%s",
                                i == 0             ? ""
                                : i + 1 == n_names ? " or "
                                                   : ", ",
                                names[i]);
    }
    char hint[128];
    pt__cfg_error(cx, n, path, "unknown value \"%s\" (expected %s)%s", s, expected,
                  pt__cfg_suggest_text(&sg, hint, sizeof(hint)));
    return false;
}

/* Names that are not Istio fields but that guides and other proxies teach, each with the fields
 * that do the job in Istio: where a table has all of those, the error says so instead of
 * suggesting a spelling. */
static const struct {
    const char *name;
    const char *instead[2];
    const char *hint;
} mistakes[] = {
    {"circuitBreaker",
     {"connectionPool", "outlierDetection"},
     "Istio has no circuitBreaker; use connectionPool (connection and request limits) and "
     "outlierDetection (ejecting failing endpoints)"},
};

static bool has_field(const pt_cfg_field_t *fields, size_t n_fields, const char *name)
{
    for (size_t i = 0; i < n_fields; i++)
        if (strcmp(fields[i].name, name) == 0)
            return true;
    return false;
}

/* The index of key k's field in the table; n_fields, with the error reported, when there is
 * none. The error says what to write instead: a well-known mistake's fields, or the closest
 * field name. */
static size_t find_field(pt_cfg_cx_t *cx, const pt_cfg_node_t *k, const pt_cfg_path_t *kp,
                         const pt_cfg_field_t *fields, size_t n_fields)
{
    for (size_t i = 0; i < n_fields; i++)
        if (strcmp(fields[i].name, k->str) == 0)
            return i;
    for (size_t m = 0; m < sizeof(mistakes) / sizeof(mistakes[0]); m++)
        if (strcmp(mistakes[m].name, k->str) == 0 &&
            has_field(fields, n_fields, mistakes[m].instead[0]) &&
            has_field(fields, n_fields, mistakes[m].instead[1])) {
            pt__cfg_error(cx, k, kp, "unknown field: %s", mistakes[m].hint);
            return n_fields;
        }
    pt_cfg_suggest_t sg;
    pt__cfg_suggest_init(&sg, k->str);
    for (size_t i = 0; i < n_fields; i++)
        pt__cfg_suggest_add(&sg, fields[i].name);
    char hint[128];
    pt__cfg_error(cx, k, kp, "unknown field%s", pt__cfg_suggest_text(&sg, hint, sizeof(hint)));
    return n_fields;
}

/* The shape (and sub-table) of a field Petrel does not read itself. depth bounds the
 * recursion through sub-tables (they may refer to each other). */
static void check_shape(pt_cfg_cx_t *cx, const pt_cfg_field_t *fd, const pt_cfg_node_t *v,
                        const pt_cfg_path_t *path, int depth);

static void check_sub_map(pt_cfg_cx_t *cx, const pt_cfg_field_t *fields, size_t n_fields,
                          const pt_cfg_node_t *n, const pt_cfg_path_t *path, int depth)
{
    if (!pt__cfg_is_map(cx, n, path))
        return;
    for (size_t p = 0; p < n->n_pairs; p++) {
        const pt_cfg_node_t *k = n->pairs[p].key, *v = n->pairs[p].value;
        pt_cfg_path_t kp = PT_PATH_KEY(path, k->str);
        size_t i = find_field(cx, k, &kp, fields, n_fields);
        if (i == n_fields)
            continue;
        for (size_t q = 0; q < p; q++)
            if (strcmp(n->pairs[q].key->str, k->str) == 0) {
                pt__cfg_error(cx, k, &kp, "duplicate field");
                break;
            }
        check_shape(cx, &fields[i], v, &kp, depth + 1);
    }
}

static void check_shape(pt_cfg_cx_t *cx, const pt_cfg_field_t *fd, const pt_cfg_node_t *v,
                        const pt_cfg_path_t *path, int depth)
{
    if (v->type == PT_CFG_NULL || depth > 16)
        return;
    switch (fd->shape) {
    case PT_SHAPE_ANY: return;
    case PT_SHAPE_SCALAR:
        if (v->type != PT_CFG_SCALAR)
            pt__cfg_error(cx, v, path, "must be a scalar, got %s", type_name(v));
        return;
    case PT_SHAPE_MAP:
        if (fd->sub != NULL)
            check_sub_map(cx, fd->sub, fd->n_sub, v, path, depth);
        else
            pt__cfg_is_map(cx, v, path);
        return;
    case PT_SHAPE_SEQ:
        if (!pt__cfg_is_seq(cx, v, path) || fd->sub == NULL)
            return;
        for (size_t i = 0; i < v->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(path, i);
            check_sub_map(cx, fd->sub, fd->n_sub, v->items[i], &ip, depth);
        }
        return;
    }
}

bool pt__cfg_map(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                 const pt_cfg_field_t *fields, size_t n_fields, const pt_cfg_node_t **out)
{
    for (size_t i = 0; i < n_fields; i++)
        out[i] = NULL;
    if (!pt__cfg_is_map(cx, n, path))
        return false;
    /* One bit per field: tables have at most 64 fields (checked below), and this keeps a map
     * that repeats one key a million times linear. */
    if (n_fields > 64)
        abort();
    uint64_t seen = 0;
    for (size_t p = 0; p < n->n_pairs; p++) {
        const pt_cfg_node_t *k = n->pairs[p].key, *v = n->pairs[p].value;
        pt_cfg_path_t kp = PT_PATH_KEY(path, k->str);
        size_t i = find_field(cx, k, &kp, fields, n_fields);
        if (i == n_fields)
            continue;
        if (seen & (1ULL << i)) {
            pt__cfg_error(cx, k, &kp, "duplicate field");
            continue;
        }
        seen |= 1ULL << i;
        if (fields[i].status != PT_FIELD_SUPPORTED)
            check_shape(cx, &fields[i], v, &kp, 0);
        if (fields[i].status == PT_FIELD_UNSUPPORTED)
            pt__cfg_warn(cx, k, &kp, "not enforced by Petrel yet: ignored");
        if (v->type != PT_CFG_NULL)
            out[i] = v;
    }
    return true;
}

bool pt__cfg_str(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                 const char **out)
{
    if (n->type != PT_CFG_SCALAR) {
        pt__cfg_error(cx, n, path, "must be a string, got %s", type_name(n));
        return false;
    }
    *out = n->str;
    return true;
}

bool pt__cfg_nonempty_str(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                          const char **out)
{
    if (!pt__cfg_str(cx, n, path, out))
        return false;
    if (n->len == 0) {
        pt__cfg_error(cx, n, path, "must not be empty");
        return false;
    }
    return true;
}

bool pt__cfg_int(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path, long long min,
                 long long max, long long *out)
{
    const char *s = n->str;
    bool ok = n->type == PT_CFG_SCALAR && !n->is_quoted && n->len > 0;
    size_t i = 0;
    if (ok && (s[0] == '-' || s[0] == '+'))
        i = 1;
    if (ok && i == n->len)
        ok = false;
    for (size_t j = i; ok && j < n->len; j++)
        if (!isdigit((unsigned char)s[j]))
            ok = false;
    if (!ok) {
        if (n->type == PT_CFG_SCALAR)
            pt__cfg_error(cx, n, path, "must be an integer %lld..%lld, got \"%s\"", min, max,
                          n->str);
        else
            pt__cfg_error(cx, n, path, "must be an integer %lld..%lld, got %s", min, max,
                          type_name(n));
        return false;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max) {
        pt__cfg_error(cx, n, path, "must be %lld..%lld, got %s", min, max, n->str);
        return false;
    }
    *out = v;
    return true;
}

int pt__cfg_parse_duration(const char *s, uint64_t *out_ms)
{
    /* Units in nanoseconds; longer names first so "ms" is not read as "m". */
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1ULL},         {"us", 1000ULL},       {"\xc2\xb5s", 1000ULL},  {"ms", 1000000ULL},
        {"s", 1000000000ULL}, {"m", 60000000000ULL}, {"h", 3600000000000ULL},
    };
    const uint64_t max_ns = 10ULL * 366 * 24 * 3600000000000ULL;
    if (s == NULL || *s == '\0')
        return -1;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    uint64_t total = 0;
    const char *p = s;
    while (*p != '\0') {
        uint64_t whole = 0, frac = 0, scale = 1;
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            if (whole > max_ns)
                return -1;
            whole = whole * 10 + (uint64_t)(*p++ - '0');
            digits++;
        }
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                /* Beyond nanosecond precision the digits cannot matter: drop them. */
                if (scale < 1000000000000000000ULL) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                p++;
                digits++;
            }
        }
        if (digits == 0)
            return -1;
        size_t u = 0;
        for (; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t l = strlen(units[u].name);
            if (strncmp(p, units[u].name, l) == 0 && !(l == 1 && p[0] == 'm' && p[1] == 's'))
                break;
        }
        if (u == sizeof(units) / sizeof(units[0]))
            return -1;
        p += strlen(units[u].name);
        uint64_t unit = units[u].ns;
        if (whole > max_ns / unit)
            return -1;
        /* frac/scale of a unit, in ns; scale <= 1e18 and unit <= 3.6e12, so go via long
         * double to avoid overflowing the product. */
        uint64_t frac_ns = (uint64_t)((long double)frac * (long double)unit / (long double)scale);
        total += whole * unit + frac_ns;
        if (total > max_ns)
            return -1;
    }
    *out_ms = total / 1000000ULL + (total % 1000000ULL ? 1 : 0);
    return 0;
}

bool pt__cfg_duration(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                      uint64_t *out_ms)
{
    if (n->type != PT_CFG_SCALAR || pt__cfg_parse_duration(n->str, out_ms) != 0) {
        pt__cfg_error(
            cx, n, path, "must be a duration such as \"1.5s\", \"100ms\" or \"2m\", got %s%s%s",
            n->type == PT_CFG_SCALAR ? "\"" : "", n->type == PT_CFG_SCALAR ? n->str : type_name(n),
            n->type == PT_CFG_SCALAR ? "\"" : "");
        return false;
    }
    return true;
}

bool pt__cfg_string_map(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path)
{
    if (!pt__cfg_is_map(cx, n, path))
        return false;
    bool ok = true;
    for (size_t i = 0; i < n->n_pairs; i++) {
        const pt_cfg_node_t *v = n->pairs[i].value;
        pt_cfg_path_t kp = PT_PATH_KEY(path, n->pairs[i].key->str);
        const char *s;
        if (v->type != PT_CFG_NULL && !pt__cfg_str(cx, v, &kp, &s))
            ok = false;
    }
    return ok;
}

const char *pt__cfg_host_problem(const char *host)
{
    size_t len = strlen(host);
    if (len == 0)
        return "must not be empty";
    if (len > 253)
        return "longer than 253 characters";
    if (strcmp(host, "*") == 0)
        return NULL;
    const char *s = host;
    if (s[0] == '*') {
        if (s[1] != '.')
            return "a wildcard must be \"*\" or start with \"*.\"";
        s += 2;
    }
    if (*s == '\0')
        return "a wildcard needs a domain after \"*.\"";
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '*')
            return "\"*\" is only allowed as the first label";
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return "not a valid host name";
    }
    return NULL;
}

const char *pt__cfg_out_str(pt_cfg_cx_t *cx, const char *s)
{
    return s ? pt_arena_strdup(cx->out, s) : NULL;
}

const char *pt__cfg_out_lower(pt_cfg_cx_t *cx, const char *s)
{
    char *d = pt_arena_strdup(cx->out, s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}
