/* proxy/main.c
 * The petrel command: `run` loads the config, starts the workers and the admin listener, and
 * drains on SIGTERM/SIGINT or POST /quitquitquit; `validate` only checks config files. The main
 * thread owns the config snapshot, signals and the admin API; workers own all traffic. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../config/config.h"
#include "../xds/file_watch.h"
#include "admin.h"
#include "log.h"
#include "worker.h"

#ifndef PT_VERSION
#define PT_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: petrel run -c FILE|DIR [-c FILE|DIR ...] [--log-level error|warning|info|debug]\n"
    "       petrel validate FILE|DIR [FILE|DIR ...]\n"
    "       petrel --version | --help\n"
    "\n"
    "  run       serve traffic with the configuration in the given YAML files or directories\n"
    "            (a directory's *.yaml and *.yml files, in name order)\n"
    "  validate  check configuration files; exit 0 when valid, 1 with one line per error\n"
    "            (file:line:col: field.path: message)\n";

typedef struct server {
    uv_loop_t *loop;
    pt_config_t *config;
    pt_worker_t *workers;
    size_t n_workers;
    pt_admin_t admin;
    uv_signal_t sigterm, sigint, sighup, sigusr1;
    int access_log_fd; /* shared by the workers; -1 when off */
    uv_timer_t exit_poll;
    pt_file_watch_t watch; /* the config paths; a change reloads */
    char **paths;          /* as given with -c (argv strings) */
    size_t n_paths;
    uint64_t drain_started_ms;
    _Atomic int workers_running;
    bool is_draining;
} server_t;

static void print_errors(const pt_config_errors_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "%s\n", e->lines[i]);
}

/* for_run: `petrel run` refuses security policies it cannot enforce (validate only warns), and
 * logs warnings through the log; validate prints them on stderr, "warning: " first. */
static pt_config_t *load(char **paths, size_t n, bool for_run)
{
    pt_config_errors_t errors = {.refuse_unenforced_security = for_run};
    pt_config_t *c = pt_config_load((const char *const *)paths, n, &errors);
    for (size_t i = 0; i < errors.n_warnings; i++) {
        if (for_run)
            pt_log_warn("config: %s", errors.warnings[i]);
        else
            fprintf(stderr, "warning: %s\n", errors.warnings[i]);
    }
    if (c == NULL) {
        print_errors(&errors);
        fprintf(stderr, "petrel: configuration refused (%zu error%s)\n", errors.n,
                errors.n == 1 ? "" : "s");
    }
    pt_config_errors_dispose(&errors);
    return c;
}

static int cmd_validate(int argc, char **argv)
{
    if (argc < 1) {
        fputs(usage, stderr);
        return 2;
    }
    pt_config_t *c = load(argv, (size_t)argc, false);
    if (c == NULL)
        return 1;
    printf("petrel: configuration valid: %zu listener%s, %zu cluster%s\n", c->n_listeners,
           c->n_listeners == 1 ? "" : "s", c->n_clusters, c->n_clusters == 1 ? "" : "s");
    pt_config_unref(c);
    return 0;
}

static void on_exit_poll(uv_timer_t *t)
{
    server_t *s = t->data;
    if (atomic_load(&s->workers_running) > 0) {
        /* Workers stop themselves at the drain deadline; this is a last resort. */
        if (uv_now(s->loop) - s->drain_started_ms > s->config->proxy.drain_timeout_ms + 2000)
            for (size_t i = 0; i < s->n_workers; i++)
                pt_worker_command(&s->workers[i], PT_WORKER_CMD_STOP);
        return;
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->sigusr1, NULL);
    pt_file_watch_close(&s->watch);
    pt_admin_stop(&s->admin);
}

static void start_shutdown(server_t *s)
{
    if (s->is_draining)
        return;
    s->is_draining = true;
    s->admin.is_draining = true;
    s->drain_started_ms = uv_now(s->loop);
    pt_log_info("draining: finishing in-flight requests (up to %llu ms)",
                (unsigned long long)s->config->proxy.drain_timeout_ms);
    for (size_t i = 0; i < s->n_workers; i++)
        pt_worker_command(&s->workers[i], PT_WORKER_CMD_DRAIN);
    uv_timer_start(&s->exit_poll, on_exit_poll, 10, 10);
}

/* Settings a running process cannot take over: they need a restart. */
static const char *restart_only_change(const pt_proxy_settings_t *a, const pt_proxy_settings_t *b)
{
    if (strcmp(a->bind_address, b->bind_address) != 0)
        return "spec.bindAddress";
    if (a->admin_port != b->admin_port)
        return "spec.adminPort";
    if (a->concurrency != b->concurrency)
        return "spec.concurrency";
    if (a->prometheus_port != b->prometheus_port)
        return "spec.prometheusPort";
    if (a->health_port != b->health_port)
        return "spec.healthPort";
    if (a->access_log_json != b->access_log_json)
        return "spec.accessLogFormat";
    if (strcmp(a->access_log ? a->access_log : "", b->access_log ? b->access_log : "") != 0)
        return "spec.accessLog";
    return NULL;
}

/* Builds a new snapshot from the files as they are now and publishes it to every worker, or
 * keeps the running one when anything is wrong: a reload is all or nothing. */
static void reload(server_t *s, const char *why)
{
    if (s->is_draining)
        return;
    pt_config_errors_t errors = {.refuse_unenforced_security = true};
    pt_config_t *c = pt_config_load((const char *const *)s->paths, s->n_paths, &errors);
    for (size_t i = 0; i < errors.n_warnings; i++)
        pt_log_warn("config reload (%s): %s", why, errors.warnings[i]);
    const char *fixed = c != NULL ? restart_only_change(&s->config->proxy, &c->proxy) : NULL;
    if (c == NULL || fixed != NULL) {
        s->admin.reloads_refused++;
        if (fixed != NULL) {
            pt_log_error("config reload (%s) refused: %s cannot change without a restart; "
                         "keeping generation %llu",
                         why, fixed, (unsigned long long)s->config->generation);
            pt_config_unref(c);
        } else {
            pt_log_error("config reload (%s) refused (%zu error%s); keeping generation %llu", why,
                         errors.n, errors.n == 1 ? "" : "s",
                         (unsigned long long)s->config->generation);
            for (size_t i = 0; i < errors.n; i++)
                pt_log_error("%s", errors.lines[i]);
        }
        pt_config_errors_dispose(&errors);
        return;
    }
    pt_config_errors_dispose(&errors);
    for (size_t i = 0; i < s->n_workers; i++)
        pt_worker_set_config(&s->workers[i], c);
    pt_config_unref(s->config);
    s->config = c;
    s->admin.config = c;
    s->admin.config_generation = c->generation;
    s->admin.reloads_accepted++;
    pt_log_info("config generation %llu in force (%s): %zu listener%s, %zu cluster%s",
                (unsigned long long)c->generation, why, c->n_listeners,
                c->n_listeners == 1 ? "" : "s", c->n_clusters, c->n_clusters == 1 ? "" : "s");
}

static void on_files_changed(void *arg)
{
    reload(arg, "files changed");
}

/* Log rotation: the file is opened again by its path and put behind the same descriptor with
 * dup2(), which is atomic, so workers keep writing to the descriptor they have and no line is
 * lost or split. */
static void reopen_access_log(server_t *s)
{
    const char *path = s->config->proxy.access_log;
    if (s->access_log_fd <= STDERR_FILENO || path == NULL || path[0] == '\0')
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        pt_log_error("access log %s: cannot reopen: %s", path, strerror(errno));
        return;
    }
    if (dup2(fd, s->access_log_fd) < 0)
        pt_log_error("access log %s: cannot reopen: %s", path, strerror(errno));
    else
        pt_log_info("access log %s reopened", path);
    close(fd);
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (signum == SIGUSR1)
        reopen_access_log(h->data);
    else if (signum == SIGHUP)
        reload(h->data, "SIGHUP");
    else
        start_shutdown(h->data);
}

static void on_quit(void *arg)
{
    start_shutdown(arg);
}

static int open_access_log(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return -1;
    if (strcmp(path, "/dev/stdout") == 0)
        return STDOUT_FILENO;
    if (strcmp(path, "/dev/stderr") == 0)
        return STDERR_FILENO;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        pt_log_error("access log %s: %s", path, strerror(errno));
    return fd;
}

static int cmd_run(int argc, char **argv)
{
    char **paths = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_paths = 0;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            paths[n_paths++] = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            const char *l = argv[++i];
            pt_log_level_t level;
            if (pt_log_level_parse(l, strlen(l), &level) != 0) {
                fprintf(stderr,
                        "petrel run: unknown log level \"%s\" (expected error, warning, "
                        "info or debug)\n",
                        l);
                free(paths);
                return 2;
            }
            pt_log_set_level(level);
        } else {
            fprintf(stderr, "petrel run: unexpected argument \"%s\"\n%s", argv[i], usage);
            free(paths);
            return 2;
        }
    }
    if (n_paths == 0) {
        fprintf(stderr, "petrel run: no configuration given (-c FILE|DIR)\n%s", usage);
        free(paths);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    server_t s;
    memset(&s, 0, sizeof(s));
    s.config = load(paths, n_paths, true);
    s.paths = paths;
    s.n_paths = n_paths;
    if (s.config == NULL) {
        free(paths);
        return 1;
    }
    const pt_proxy_settings_t *ps = &s.config->proxy;
    int log_fd = open_access_log(ps->access_log);
    if (ps->access_log != NULL && ps->access_log[0] != '\0' && log_fd < 0) {
        pt_config_unref(s.config);
        free(paths);
        return 1;
    }
    s.loop = uv_default_loop();
    s.n_workers = ps->concurrency;
    s.workers = calloc(s.n_workers, sizeof(pt_worker_t));
    /* Signals are handled before any listener opens: a SIGTERM during start-up drains. */
    uv_timer_init(s.loop, &s.exit_poll);
    s.exit_poll.data = &s;
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sighup);
    uv_signal_init(s.loop, &s.sigusr1);
    s.sigterm.data = s.sigint.data = s.sighup.data = s.sigusr1.data = &s;
    s.access_log_fd = log_fd;
    uv_signal_start(&s.sigusr1, on_signal, SIGUSR1);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sighup, on_signal, SIGHUP);
    int rc = 0;
    size_t started = 0;
    for (; started < s.n_workers; started++) {
        atomic_fetch_add(&s.workers_running, 1);
        int err = pt_worker_start(&s.workers[started], (unsigned)started, s.config, log_fd,
                                  &s.workers_running);
        if (err != 0) {
            pt_log_error("listener %s on %s: %s",
                         s.workers[started].start_error_what ? s.workers[started].start_error_what
                                                             : "?",
                         ps->bind_address, uv_strerror(err));
            started++;
            rc = 1;
            break;
        }
    }
    s.admin.workers = s.workers;
    s.admin.n_workers = started;
    s.admin.config = s.config;
    s.admin.config_generation = s.config->generation;
    s.admin.on_quit = on_quit;
    s.admin.arg = &s;
    static const char *const what[] = {"admin", "prometheus", "health"};
    const uint16_t ports[] = {ps->admin_port, ps->prometheus_port, ps->health_port};
    for (int r = 0; r < PT_ADMIN__ROLES && rc == 0; r++) {
        if (ports[r] == 0)
            continue;
        int err = pt_admin_start(&s.admin, s.loop, ps->bind_address, ports[r], (pt_admin_role_t)r);
        if (err != 0) {
            pt_log_error("%s listener on %s:%u: %s", what[r], ps->bind_address, (unsigned)ports[r],
                         uv_strerror(err));
            rc = 1;
        }
    }
    s.n_workers = started;
    if (rc == 0) {
        int err = pt_file_watch_start(&s.watch, s.loop, (const char *const *)paths, n_paths,
                                      on_files_changed, &s);
        if (err != 0)
            pt_log_warn("config files cannot be watched (%s): reload with SIGHUP",
                        uv_strerror(err));
        for (size_t i = 0; i < s.config->n_listeners; i++) {
            const pt_listener_config_t *l = &s.config->listeners[i];
            bool capture = l->protocol == PT_LISTENER_CAPTURE_OUTBOUND ||
                           l->protocol == PT_LISTENER_CAPTURE_INBOUND;
            pt_log_info("listening on %s:%u (%s, %s)", capture ? "0.0.0.0" : ps->bind_address,
                        (unsigned)l->port, l->name,
                        l->protocol == PT_LISTENER_TCP ? "tcp"
                        : capture                      ? "capture"
                                                       : "http");
        }
        pt_log_info("petrel %s ready: %zu worker%s, admin on %s:%u", PT_VERSION, s.n_workers,
                    s.n_workers == 1 ? "" : "s", ps->bind_address, (unsigned)ps->admin_port);
    }
    if (rc != 0)
        start_shutdown(&s);
    uv_run(s.loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < started; i++)
        pt_worker_join(&s.workers[i]);
    uv_loop_close(s.loop);
    if (log_fd > STDERR_FILENO)
        close(log_fd);
    pt_config_unref(s.config);
    free(s.workers);
    free(paths);
    if (rc == 0)
        pt_log_info("drained; exiting");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("petrel %s\n", PT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc - 2, argv + 2);
    fprintf(stderr, "petrel: unknown command \"%s\"\n%s", cmd, usage);
    return 2;
}
