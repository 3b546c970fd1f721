/* xds/file_watch.h
 * Watches the config paths and the certificate files a config names, and says when they may
 * have changed. A directory is watched itself (not its files), so that Kubernetes' ConfigMap
 * and Secret updates — a new ..<timestamp> directory and an atomic rename of the ..data
 * symlink — are seen; a file is watched through its parent directory, so that editors' and
 * deploy tools' write-then-rename is seen too. Files in one directory share one watch, so a
 * credentials directory with many certificates costs one inotify watch. Bursts of events are
 * debounced into one call. The watcher never reads or parses anything: the callback reloads
 * through the normal pipeline.
 *
 * The set of paths can change while running (pt_file_watch_set): a reload that names a new
 * certificate file starts watching it, and a directory no longer named stops being watched.
 *
 * Runs on the main thread's loop. Ownership: the caller owns the pt_file_watch_t and must keep
 * it alive until pt_file_watch_close()'s handles are closed (the loop runs them down); the
 * per-directory watches free themselves when closed. */
#ifndef PT_XDS_FILE_WATCH_H
#define PT_XDS_FILE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define PT_FILE_WATCH_DEBOUNCE_MS 100

typedef void (*pt_file_watch_cb)(void *arg);

typedef struct pt_watched_dir pt_watched_dir_t;

typedef struct pt_file_watch {
    uv_loop_t *loop;
    pt_watched_dir_t *dirs; /* a list, one entry per watched directory */
    uv_timer_t debounce;
    pt_file_watch_cb on_change;
    void *arg;
    bool is_open;
} pt_file_watch_t;

void pt_file_watch_init(pt_file_watch_t *w, uv_loop_t *loop, pt_file_watch_cb on_change, void *arg);
/* Makes paths (files or directories, as given to `petrel run -c`, and certificate files) the
 * watched set: new directories are watched, ones no longer needed are closed. Returns 0, or the
 * libuv error of the first path that cannot be watched (the others still are). */
int pt_file_watch_set(pt_file_watch_t *w, const char *const *paths, size_t n_paths);
void pt_file_watch_close(pt_file_watch_t *w);

#endif
