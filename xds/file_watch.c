/* xds/file_watch.c */
#include "file_watch.h"

#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

/* Only changes that can alter the config count: YAML files, Kubernetes' ..data swap and its
 * ..<timestamp> directories, and the file named on the command line. Anything else in the
 * directory (a log file written next to the config, an editor's swap file) is ignored, or a
 * reload could trigger itself. */
static bool is_relevant(const pt_file_watch_t *w, size_t i, const char *filename)
{
    if (filename == NULL)
        return true; /* the kernel did not say: assume it matters */
    if (ends_with(filename, ".yaml") || ends_with(filename, ".yml") ||
        strncmp(filename, "..", 2) == 0)
        return true;
    return w->only_name[i][0] != '\0' && strcmp(filename, w->only_name[i]) == 0;
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    pt_file_watch_t *w = h->data;
    if (!is_relevant(w, (size_t)(h - w->events), filename))
        return;
    /* Every event restarts the timer: a burst (several files, a symlink swap) reloads once. */
    uv_timer_start(&w->debounce, on_debounced, PT_FILE_WATCH_DEBOUNCE_MS, 0);
}

int pt_file_watch_start(pt_file_watch_t *w, uv_loop_t *loop, const char *const *paths,
                        size_t n_paths, pt_file_watch_cb on_change, void *arg)
{
    memset(w, 0, sizeof(*w));
    w->on_change = on_change;
    w->arg = arg;
    uv_timer_init(loop, &w->debounce);
    w->debounce.data = w;
    w->is_open = 1;
    int first_err = 0;
    for (size_t i = 0; i < n_paths && w->n_events < PT_FILE_WATCH_MAX_PATHS; i++) {
        char dir[PATH_MAX];
        struct stat st;
        if (strlen(paths[i]) >= sizeof(dir))
            continue;
        strcpy(dir, paths[i]);
        w->only_name[w->n_events][0] = '\0';
        if (stat(paths[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            char copy[PATH_MAX];
            strcpy(copy, paths[i]);
            strcpy(dir, dirname(copy));
            strcpy(copy, paths[i]);
            snprintf(w->only_name[w->n_events], sizeof(w->only_name[0]), "%s", basename(copy));
        }
        uv_fs_event_t *e = &w->events[w->n_events];
        uv_fs_event_init(loop, e);
        e->data = w;
        int err = uv_fs_event_start(e, on_event, dir, 0);
        if (err != 0) {
            uv_close((uv_handle_t *)e, NULL);
            if (first_err == 0)
                first_err = err;
            continue;
        }
        w->n_events++;
    }
    return first_err;
}

void pt_file_watch_close(pt_file_watch_t *w)
{
    if (!w->is_open)
        return;
    w->is_open = 0;
    for (size_t i = 0; i < w->n_events; i++)
        uv_close((uv_handle_t *)&w->events[i], NULL);
    uv_close((uv_handle_t *)&w->debounce, NULL);
}
