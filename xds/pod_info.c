/* xds/pod_info.c
 * Reads the Downward API files and variables (see pod_info.h). The labels file is input from
 * outside Petrel: it is parsed strictly, and every way it can be wrong has its own message. */
#include "pod_info.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_source.h"

/* More labels than any pod has (Kubernetes' object size limit keeps them far fewer); the
 * bound keeps the duplicate check cheap on hostile input. */
#define MAX_LABELS 4096

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "petrel: out of memory (pod info)\n");
        abort();
    }
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static bool is_key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '/';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends code point cp to out as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escape at s[*i] (just after the backslash) of a line of n bytes into out.
 * Returns the bytes written, or 0 with *why set. */
static size_t decode_escape(const char *s, size_t n, size_t *i, char *out, const char **why)
{
    unsigned char c = (unsigned char)s[*i];
    (*i)++;
    switch (c) {
    case 'a': *out = '\a'; return 1;
    case 'b': *out = '\b'; return 1;
    case 'f': *out = '\f'; return 1;
    case 'n': *out = '\n'; return 1;
    case 'r': *out = '\r'; return 1;
    case 't': *out = '\t'; return 1;
    case 'v': *out = '\v'; return 1;
    case '\\': *out = '\\'; return 1;
    case '"': *out = '"'; return 1;
    default: break;
    }
    size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    uint32_t v = 0;
    if (digits > 0) {
        for (size_t k = 0; k < digits; k++, (*i)++) {
            int h = *i < n ? hex_value((unsigned char)s[*i]) : -1;
            if (h < 0) {
                *why = c == 'x'   ? "\\x needs two hex digits"
                       : c == 'u' ? "\\u needs four hex digits"
                                  : "\\U needs eight hex digits";
                return 0;
            }
            v = v << 4 | (uint32_t)h;
        }
    } else if (c >= '0' && c <= '7') {
        v = c - '0';
        for (size_t k = 0; k < 2; k++, (*i)++) {
            if (*i >= n || s[*i] < '0' || s[*i] > '7') {
                *why = "an octal escape needs three digits";
                return 0;
            }
            v = v << 3 | (uint32_t)(s[*i] - '0');
        }
        if (v > 255) {
            *why = "an octal escape above \\377";
            return 0;
        }
    } else {
        *why =
            "unknown escape (Go quoting: \\\" \\\\ \\a \\b \\f \\n \\r \\t \\v \\x \\u \\U \\ooo)";
        return 0;
    }
    if (v == 0) {
        *why = "a NUL character in a label value";
        return 0;
    }
    if (c == 'x' || (c >= '0' && c <= '7')) {
        *out = (char)v; /* a byte, as Go's \x and octal escapes are */
        return 1;
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        *why = "not a Unicode code point";
        return 0;
    }
    return put_utf8(out, v);
}

static void add_label(pt_pod_info_t *out, char *key, char *value)
{
    pt_workload_t *w = &out->workload;
    if (2 * w->n_labels + 2 > out->cap_labels) {
        out->cap_labels = out->cap_labels ? 2 * out->cap_labels : 16;
        w->labels = xrealloc((void *)w->labels, out->cap_labels * sizeof(*w->labels));
    }
    char **kv = (char **)w->labels;
    kv[2 * w->n_labels] = key;
    kv[2 * w->n_labels + 1] = value;
    w->n_labels++;
}

/* Parses one line (not including its '\n'); 0, or -1 with an error at file:line:col. */
static int parse_line(const char *file, int line, const char *s, size_t n, pt_pod_info_t *out,
                      pt_config_errors_t *errors)
{
    size_t i = 0;
    while (i < n && is_key_char((unsigned char)s[i]))
        i++;
    const char *why = NULL;
    size_t at = i; /* where the problem is */
    if (i == 0)
        why = n == 0 ? "empty line (one key=\"value\" per line)" : "expected a label key";
    else if (i == n || s[i] != '=')
        why = "expected '=' after the label key";
    else if (i + 1 == n || s[i + 1] != '"') {
        why = "expected a double-quoted value after '='";
        at = i + 1;
    }
    if (why != NULL) {
        pt_config_errors_add(errors, file, line, (int)(at + 1), NULL, "%s", why);
        return -1;
    }
    size_t key_len = i;
    for (size_t k = 0; k < out->workload.n_labels; k++) {
        const char *other = out->workload.labels[2 * k];
        if (strlen(other) == key_len && memcmp(other, s, key_len) == 0) {
            pt_config_errors_add(errors, file, line, 1, NULL, "label \"%.*s\" given twice",
                                 (int)key_len, s);
            return -1;
        }
    }
    if (out->workload.n_labels >= MAX_LABELS) {
        pt_config_errors_add(errors, file, line, 1, NULL, "more than %d labels", MAX_LABELS);
        return -1;
    }
    i += 2;
    char *value = xrealloc(NULL, n - i + 1);
    size_t len = 0;
    bool closed = false;
    while (i < n && why == NULL) {
        unsigned char c = (unsigned char)s[i];
        at = i;
        if (c == '"') {
            closed = true;
            i++;
            break;
        }
        if (c == '\\') {
            i++;
            if (i == n)
                why = "unterminated escape";
            else {
                size_t w = decode_escape(s, n, &i, value + len, &why);
                len += w;
            }
        } else if (c < 0x20 || c == 0x7f) {
            why = "a control character in a label value (Go quoting escapes it)";
            i++;
        } else {
            value[len++] = (char)c;
            i++;
        }
        if (why != NULL) {
            pt_config_errors_add(errors, file, line, (int)(at + 1), NULL, "%s", why);
            free(value);
            return -1;
        }
    }
    if (!closed || i != n) {
        pt_config_errors_add(errors, file, line, (int)(i + 1), NULL, "%s",
                             closed ? "text after the closing quote"
                                    : "the quoted value has no closing quote");
        free(value);
        return -1;
    }
    value[len] = '\0';
    add_label(out, xstrndup(s, key_len), value);
    return 0;
}

int pt_pod_labels_parse(const char *file, const char *data, size_t len, pt_pod_info_t *out,
                        pt_config_errors_t *errors)
{
    int line = 1;
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(data + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - data) : len;
        if (parse_line(file, line, data + start, end - start, out, errors) != 0)
            return -1;
        start = end + 1;
        line++;
    }
    return 0;
}

/* Reads one file of the directory into f (f->v[0]): 0, 1 when it does not exist (each file is
 * optional), -1 with an error (unreadable, or not a file). */
static int read_pod_file(const char *path, pt_xds_files_t *f, pt_config_errors_t *errors)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return 1;
    } else if (!S_ISREG(st.st_mode)) {
        pt_config_errors_add(errors, path, 0, 0, NULL, "not a file");
        return -1;
    }
    return pt_xds_file_read(path, f, errors); /* reports any other stat failure */
}

/* What is wrong with a one-line value of n bytes, or NULL. */
static const char *value_problem(const char *s, size_t n)
{
    if (n == 0)
        return "empty";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "contains a control character";
    return NULL;
}

/* Reads a one-value file (namespace) into *out when it exists. The kubelet writes the value
 * alone; one final '\n' (a hand-written file) is allowed. */
static void read_value(const char *path, char **out, pt_config_errors_t *errors)
{
    pt_xds_files_t f = {0};
    if (read_pod_file(path, &f, errors) == 0) {
        size_t n = f.v[0].len;
        if (n > 0 && f.v[0].data[n - 1] == '\n')
            n--;
        const char *why = value_problem(f.v[0].data, n);
        if (why != NULL)
            pt_config_errors_add(errors, path, 1, 1, NULL, "%s", why);
        else
            *out = xstrndup(f.v[0].data, n);
    }
    pt_xds_files_dispose(&f);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xrealloc(NULL, n);
    snprintf(p, n, "%s%s%s", dir, dir[0] != '\0' && dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return p;
}

static const char *const file_names[PT_POD_INFO_N_FILES] = {"labels", "namespace"};

/* Copies the value of environment variable env (NULL: unset) into *out; what says where the
 * value comes from, in errors. */
static void read_env_value(const char *env, const char *value, const char *what, char **out,
                           pt_config_errors_t *errors)
{
    if (value == NULL)
        return;
    const char *why = value_problem(value, strlen(value));
    if (why != NULL)
        pt_config_errors_add(errors, env, 0, 0, NULL, "set but %s (%s)", why, what);
    else
        *out = xstrndup(value, strlen(value));
}

int pt_pod_info_read(const char *dir, const char *service_account, const char *workload_name,
                     pt_pod_info_t *out, pt_config_errors_t *errors)
{
    size_t start = errors->n;
    read_env_value(PT_SERVICE_ACCOUNT_ENV, service_account, "the pod's spec.serviceAccountName",
                   (char **)&out->workload.service_account, errors);
    read_env_value(PT_WORKLOAD_NAME_ENV, workload_name, "the workload's metadata.name",
                   (char **)&out->workload.name, errors);
    if (dir == NULL)
        return errors->n == start ? 0 : -1;
    out->dir = xstrndup(dir, strlen(dir));
    struct stat st;
    const char *why = stat(dir, &st) != 0    ? strerror(errno)
                      : !S_ISDIR(st.st_mode) ? "not a directory"
                                             : NULL;
    if (why != NULL) {
        pt_config_errors_add(errors, dir, 0, 0, NULL, "cannot read the pod-info directory (%s): %s",
                             PT_POD_INFO_ENV, why);
        return -1;
    }
    char *labels = join(dir, file_names[0]);
    pt_xds_files_t f = {0};
    if (read_pod_file(labels, &f, errors) == 0)
        pt_pod_labels_parse(labels, f.v[0].data, f.v[0].len, out, errors);
    pt_xds_files_dispose(&f);
    free(labels);
    char *ns = join(dir, file_names[1]);
    read_value(ns, (char **)&out->workload.ns, errors);
    free(ns);
    return errors->n == start ? 0 : -1;
}

int pt_pod_info_read_env(pt_pod_info_t *out, pt_config_errors_t *errors)
{
    const char *dir = getenv(PT_POD_INFO_ENV);
    return pt_pod_info_read(dir != NULL && dir[0] != '\0' ? dir : NULL,
                            getenv(PT_SERVICE_ACCOUNT_ENV), getenv(PT_WORKLOAD_NAME_ENV), out,
                            errors);
}

const pt_workload_t *pt_pod_info_workload(const pt_pod_info_t *p)
{
    const pt_workload_t *w = &p->workload;
    bool known = w->name != NULL || w->ns != NULL || w->service_account != NULL || w->n_labels;
    return known ? w : NULL;
}

size_t pt_pod_info_files(const pt_pod_info_t *p, char *out[PT_POD_INFO_N_FILES])
{
    if (p->dir == NULL)
        return 0;
    for (size_t i = 0; i < PT_POD_INFO_N_FILES; i++)
        out[i] = join(p->dir, file_names[i]);
    return PT_POD_INFO_N_FILES;
}

void pt_pod_info_dispose(pt_pod_info_t *p)
{
    pt_workload_t *w = &p->workload;
    for (size_t i = 0; i < 2 * w->n_labels; i++)
        free((void *)w->labels[i]);
    free((void *)w->labels);
    free((void *)w->name);
    free((void *)w->ns);
    free((void *)w->service_account);
    free(p->dir);
    *p = (pt_pod_info_t){0};
}
