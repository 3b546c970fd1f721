/* xds/file_watch.c */
#include "file_watch.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct pt_watched_dir {
    uv_fs_event_t event;
    pt_file_watch_t *owner;
    pt_watched_dir_t *next;
    bool is_whole;  /* a config directory: every YAML file in it counts */
    bool is_wanted; /* named by the set being applied */
    char **names;   /* the watched files' names in this directory */
    size_t n_names;
    char path[];
};

static void on_debounced(uv_timer_t *t)
{
    pt_file_watch_t *w = t->data;
    w->on_change(w->arg);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Only changes that can alter the config count: YAML files of a watched directory, the files
 * named, and Kubernetes' ..data swap and its ..<timestamp> directories. Anything else (a log
 * file written next to the config, an editor's swap file) is ignored, or a reload could
 * trigger itself. */
static bool is_relevant(const pt_watched_dir_t *d, const char *filename)
{
    if (filename == NULL || strncmp(filename, "..", 2) == 0)
        return true; /* the kernel did not say, or a Kubernetes swap: assume it matters */
    if (d->is_whole && (ends_with(filename, ".yaml") || ends_with(filename, ".yml")))
        return true;
    for (size_t i = 0; i < d->n_names; i++)
        if (strcmp(filename, d->names[i]) == 0)
            return true;
    return false;
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)events;
    (void)status;
    pt_watched_dir_t *d = h->data;
    if (!is_relevant(d, filename))
        return;
    /* Every event restarts the timer: a burst (several files, a symlink swap) reloads once. */
    uv_timer_start(&d->owner->debounce, on_debounced, PT_FILE_WATCH_DEBOUNCE_MS, 0);
}

static void forget_names(pt_watched_dir_t *d)
{
    for (size_t i = 0; i < d->n_names; i++)
        free(d->names[i]);
    free(d->names);
    d->names = NULL;
    d->n_names = 0;
}

static void on_dir_closed(uv_handle_t *h)
{
    pt_watched_dir_t *d = h->data;
    forget_names(d);
    free(d);
}

static pt_watched_dir_t *find_dir(pt_file_watch_t *w, const char *path)
{
    for (pt_watched_dir_t *d = w->dirs; d != NULL; d = d->next)
        if (strcmp(d->path, path) == 0)
            return d;
    return NULL;
}

/* The watch of directory path, started if new; NULL with *err set if it cannot be watched. */
static pt_watched_dir_t *dir_watch(pt_file_watch_t *w, const char *path, int *err)
{
    pt_watched_dir_t *d = find_dir(w, path);
    if (d != NULL)
        return d;
    d = calloc(1, sizeof(*d) + strlen(path) + 1);
    if (d == NULL) {
        *err = UV_ENOMEM;
        return NULL;
    }
    strcpy(d->path, path);
    d->owner = w;
    uv_fs_event_init(w->loop, &d->event);
    d->event.data = d;
    *err = uv_fs_event_start(&d->event, on_event, path, 0);
    if (*err != 0) {
        uv_close((uv_handle_t *)&d->event, on_dir_closed);
        return NULL;
    }
    d->next = w->dirs;
    w->dirs = d;
    return d;
}

static int add_name(pt_watched_dir_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_names; i++)
        if (strcmp(d->names[i], name) == 0)
            return 0;
    char **names = realloc(d->names, (d->n_names + 1) * sizeof(*names));
    if (names == NULL)
        return UV_ENOMEM;
    d->names = names;
    if ((d->names[d->n_names] = strdup(name)) == NULL)
        return UV_ENOMEM;
    d->n_names++;
    return 0;
}

/* Watches one path: a directory itself, a file through its parent. */
static int watch_path(pt_file_watch_t *w, const char *path)
{
    char dir[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(dir))
        return UV_ENAMETOOLONG;
    struct stat st;
    int err = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        pt_watched_dir_t *d = dir_watch(w, path, &err);
        if (d != NULL) {
            d->is_wanted = true;
            d->is_whole = true;
        }
        return err;
    }
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    pt_watched_dir_t *d = dir_watch(w, dir, &err);
    if (d == NULL)
        return err;
    d->is_wanted = true;
    return add_name(d, name);
}

void pt_file_watch_init(pt_file_watch_t *w, uv_loop_t *loop, pt_file_watch_cb on_change, void *arg)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->on_change = on_change;
    w->arg = arg;
    uv_timer_init(loop, &w->debounce);
    w->debounce.data = w;
    w->is_open = true;
}

int pt_file_watch_set(pt_file_watch_t *w, const char *const *paths, size_t n_paths)
{
    for (pt_watched_dir_t *d = w->dirs; d != NULL; d = d->next) {
        d->is_wanted = false;
        d->is_whole = false;
        forget_names(d);
    }
    int first_err = 0;
    for (size_t i = 0; i < n_paths; i++) {
        int err = watch_path(w, paths[i]);
        if (err != 0 && first_err == 0)
            first_err = err;
    }
    for (pt_watched_dir_t **p = &w->dirs; *p != NULL;) {
        pt_watched_dir_t *d = *p;
        if (d->is_wanted) {
            p = &d->next;
            continue;
        }
        *p = d->next;
        uv_close((uv_handle_t *)&d->event, on_dir_closed);
    }
    return first_err;
}

void pt_file_watch_close(pt_file_watch_t *w)
{
    if (!w->is_open)
        return;
    w->is_open = false;
    while (w->dirs != NULL) {
        pt_watched_dir_t *d = w->dirs;
        w->dirs = d->next;
        uv_close((uv_handle_t *)&d->event, on_dir_closed);
    }
    uv_close((uv_handle_t *)&w->debounce, NULL);
}
