/* config/errors.c
 * The config error list: one malloc'd line per error, "file:line:col: path: message". Errors
 * are collected through the whole load so that `petrel validate` shows all of them at once.
 * Warnings (what Petrel checks but does not enforce yet) are a second list of the same form. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void add_line(char ***lines, size_t *n, size_t *cap, char *line)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        char **v = realloc(*lines, c * sizeof(*v));
        if (v == NULL) {
            fprintf(stderr, "petrel: out of memory (config errors)\n");
            abort();
        }
        *lines = v;
        *cap = c;
    }
    (*lines)[(*n)++] = line;
}

/* line <= 0 leaves out ":line:col" (an error about a whole file); an empty or NULL path leaves
 * out the path part (a YAML syntax error has no field path). */
/* A hostile or broken file could produce one error per byte: past this many lines, one last
 * line says so and the rest are dropped (the load still fails). Warnings are capped alike. */
#define PT_CONFIG_MAX_ERRORS 1000

__attribute__((format(printf, 9, 0))) static void vadd(char ***lines, size_t *n, size_t *cap,
                                                       const char *what, const char *file, int line,
                                                       int col, const char *path, const char *fmt,
                                                       va_list ap)
{
    if (*n > PT_CONFIG_MAX_ERRORS)
        return;
    if (*n == PT_CONFIG_MAX_ERRORS) {
        char last_line[64];
        snprintf(last_line, sizeof(last_line), "too many %s; the rest are not shown", what);
        char *last = strdup(last_line);
        if (last == NULL)
            abort();
        add_line(lines, n, cap, last);
        return;
    }
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    char loc[64] = "";
    if (line > 0)
        snprintf(loc, sizeof(loc), ":%d:%d", line, col > 0 ? col : 1);
    bool has_path = path != NULL && path[0] != '\0';
    const char *f = file != NULL ? file : "<config>";

    size_t len = strlen(f) + strlen(loc) + (has_path ? strlen(path) + 2 : 0) + strlen(msg) + 3;
    char *out = malloc(len);
    if (out == NULL) {
        fprintf(stderr, "petrel: out of memory (config errors)\n");
        abort();
    }
    snprintf(out, len, "%s%s: %s%s%s", f, loc, has_path ? path : "", has_path ? ": " : "", msg);
    add_line(lines, n, cap, out);
}

void pt_config_errors_add(pt_config_errors_t *e, const char *file, int line, int col,
                          const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(&e->lines, &e->n, &e->cap, "errors", file, line, col, path, fmt, ap);
    va_end(ap);
}

void pt_config_warnings_add(pt_config_errors_t *e, const char *file, int line, int col,
                            const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(&e->warnings, &e->n_warnings, &e->cap_warnings, "warnings", file, line, col, path, fmt,
         ap);
    va_end(ap);
}

void pt_config_errors_dispose(pt_config_errors_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->lines[i]);
    free(e->lines);
    e->lines = NULL;
    e->n = e->cap = 0;
    for (size_t i = 0; i < e->n_warnings; i++)
        free(e->warnings[i]);
    free(e->warnings);
    e->warnings = NULL;
    e->n_warnings = e->cap_warnings = 0;
}
