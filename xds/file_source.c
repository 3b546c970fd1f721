/* xds/file_source.c
 * Reads config files and directories into memory (see file_source.h). Directory entries are
 * sorted with strcmp so that the load order, and so the order of routes and listeners built
 * from several files, does not depend on the filesystem. */
#include "file_source.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "petrel: out of memory (config files)\n");
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* Refuses a regular file by its size before reading it; reads anything else (a pipe, a file
 * still growing) only until it passes the limit. */
static int read_one(const char *path, pt_xds_files_t *out, pt_config_errors_t *errors)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        pt_config_errors_add(errors, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t max_len = PT_XDS_MAX_TOTAL_BYTES - out->total_bytes;
    if (max_len > PT_XDS_MAX_FILE_BYTES)
        max_len = PT_XDS_MAX_FILE_BYTES;
    struct stat st;
    size_t len = 0, cap = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max_len)
        len = (size_t)st.st_size; /* nothing read: the size alone says no */
    char *buf = NULL;
    int rc = 0;
    while (len <= max_len) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = xrealloc(buf, cap + 1);
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) {
                pt_config_errors_add(errors, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
                rc = -1;
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0 && len > max_len) {
        if (len > PT_XDS_MAX_FILE_BYTES)
            pt_config_errors_add(errors, path, 0, 0, NULL,
                                 "larger than %d bytes, Petrel's fixed limit for one config "
                                 "file: split it into several",
                                 PT_XDS_MAX_FILE_BYTES);
        else
            pt_config_errors_add(errors, path, 0, 0, NULL,
                                 "with this file the config passes %d bytes, Petrel's fixed "
                                 "limit for all the files of one config",
                                 PT_XDS_MAX_TOTAL_BYTES);
        rc = -1;
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    if (buf == NULL)
        buf = xrealloc(NULL, 1);
    buf[len] = '\0';
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 8;
        out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
    }
    out->v[out->n++] = (pt_xds_file_t){xstrdup(path), buf, len};
    out->total_bytes += len;
    return 0;
}

static int has_yaml_suffix(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pt_xds_file_read(const char *path, pt_xds_files_t *out, pt_config_errors_t *errors)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        pt_config_errors_add(errors, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return read_one(path, out, errors);

    DIR *d = opendir(path);
    if (d == NULL) {
        pt_config_errors_add(errors, path, 0, 0, NULL, "cannot open directory: %s",
                             strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !has_yaml_suffix(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);

    int rc = 0;
    size_t plen = strlen(path);
    int need_slash = plen == 0 || path[plen - 1] != '/';
    for (size_t i = 0; i < n; i++) {
        size_t len = plen + strlen(names[i]) + 2;
        char *full = xrealloc(NULL, len);
        snprintf(full, len, "%s%s%s", path, need_slash ? "/" : "", names[i]);
        struct stat fst;
        /* Only regular files (after following symlinks): a directory named x.yaml is skipped,
         * a dangling symlink is an error. */
        if (stat(full, &fst) != 0) {
            pt_config_errors_add(errors, full, 0, 0, NULL, "cannot read: %s", strerror(errno));
            rc = -1;
        } else if (S_ISREG(fst.st_mode) && read_one(full, out, errors) != 0) {
            rc = -1;
        }
        free(full);
        free(names[i]);
    }
    free(names);
    return rc;
}

void pt_xds_files_dispose(pt_xds_files_t *files)
{
    for (size_t i = 0; i < files->n; i++) {
        free(files->v[i].path);
        free(files->v[i].data);
    }
    free(files->v);
    pt_pod_info_dispose(&files->pod);
    *files = (pt_xds_files_t){0};
}

pt_config_t *pt_xds_files_compile(const pt_xds_files_t *files, pt_config_errors_t *errors)
{
    pt_config_source_t *src = calloc(files->n + 1, sizeof(*src));
    if (src == NULL)
        abort();
    for (size_t i = 0; i < files->n; i++)
        src[i] = (pt_config_source_t){files->v[i].path, files->v[i].data, files->v[i].len};
    pt_config_t *c =
        pt_config_load_buffers(src, files->n, pt_pod_info_workload(&files->pod), errors);
    free(src);
    return c;
}

pt_config_t *pt_config_load(const char *const *paths, size_t n_paths, pt_config_errors_t *errors)
{
    pt_xds_files_t files = {0};
    size_t start = errors->n;
    for (size_t i = 0; i < n_paths; i++)
        pt_xds_file_read(paths[i], &files, errors);
    pt_config_t *c = errors->n == start ? pt_xds_files_compile(&files, errors) : NULL;
    pt_xds_files_dispose(&files);
    return c;
}
