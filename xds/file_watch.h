/* xds/file_watch.h
 * Watches the config paths and says when they may have changed. A directory is watched itself
 * (not its files), so that Kubernetes' ConfigMap update — a new ..<timestamp> directory and an
 * atomic rename of the ..data symlink — is seen; a file is watched through its parent
 * directory, so that editors' and deploy tools' write-then-rename is seen too. Bursts of events
 * are debounced into one call. The watcher never reads or parses anything: the callback
 * reloads through the normal pipeline.
 *
 * Runs on the main thread's loop. Ownership: the caller owns the pt_file_watch_t and must keep
 * it alive until pt_file_watch_close()'s handles are closed (the loop runs them down). */
#ifndef PT_XDS_FILE_WATCH_H
#define PT_XDS_FILE_WATCH_H

#include <stddef.h>
#include <uv.h>

#define PT_FILE_WATCH_DEBOUNCE_MS 100
#define PT_FILE_WATCH_MAX_PATHS 16

typedef void (*pt_file_watch_cb)(void *arg);

typedef struct pt_file_watch {
    uv_fs_event_t events[PT_FILE_WATCH_MAX_PATHS];
    char only_name[PT_FILE_WATCH_MAX_PATHS][256]; /* a watched file's name in its directory;
                                                     "" for a watched directory */
    size_t n_events;
    uv_timer_t debounce;
    pt_file_watch_cb on_change;
    void *arg;
    int is_open;
} pt_file_watch_t;

/* Starts watching paths (files or directories, as given to `petrel run -c`). Returns 0, or a
 * libuv error for the first path that cannot be watched (the others still are). */
int pt_file_watch_start(pt_file_watch_t *w, uv_loop_t *loop, const char *const *paths,
                        size_t n_paths, pt_file_watch_cb on_change, void *arg);
void pt_file_watch_close(pt_file_watch_t *w);

#endif
