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
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "../config/config.h"
#include "../filters/l4_registry.h"
#include "../xds/file_source.h"
#include "../xds/file_watch.h"
#include "admin.h"
#include "commands.h"
#include "dns.h"
#include "log.h"
#include "log_writer.h"
#include "outlier.h"
#include "trace_export.h"
#include "worker.h"

#ifndef PT_VERSION
#define PT_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: petrel run -c FILE|DIR [-c FILE|DIR ...] [--log-level error|warning|info|debug]\n"
    "       petrel validate [--lenient] FILE|DIR [FILE|DIR ...]\n"
    "       petrel inject [-f FILE|-] [--classic] [--image IMAGE] [--mesh-config NAME]\n"
    "       petrel wait [--timeout SECONDS] [--port PORT] [--period MS]\n"
    "       petrel --version | --help\n"
    "\n"
    "  run       serve traffic with the configuration in the given YAML files or directories\n"
    "            (a directory's *.yaml and *.yml files, in name order)\n"
    "  validate  check configuration files; exit 0 when valid, 1 with one line per error\n"
    "            (file:line:col: field.path: message); it refuses what run refuses.\n"
    "            --lenient: security policies Petrel cannot enforce yet, certificate\n"
    "            files missing here and an access log that cannot be written here are\n"
    "            warnings (for Istio configs checked elsewhere)\n"
    "  inject    add Petrel's sidecar and capture init container to Kubernetes workloads\n"
    "            (docs/kubernetes.md)\n"
    "  wait      exit 0 once the local Petrel is ready (/healthz/ready), 1 on timeout\n"
    "\n"
    "Each command prints its own usage with --help.\n";

static const char run_usage[] =
    "usage: petrel run -c FILE|DIR [-c FILE|DIR ...] [--log-level LEVEL]\n"
    "\n"
    "Serves traffic with the configuration in the given YAML files or directories (a\n"
    "directory's *.yaml and *.yml files, in name order); reloads when they change or on SIGHUP,\n"
    "drains and exits on SIGTERM or SIGINT.\n"
    "\n"
    "  -c, --config FILE|DIR   a config file or directory (repeat for more; --config=DIR too)\n"
    "  --log-level LEVEL       error, warning, info (the default) or debug\n"
    "  -h, --help              this help\n";

static const char validate_usage[] =
    "usage: petrel validate [--lenient] FILE|DIR [FILE|DIR ...]\n"
    "\n"
    "Checks configuration files without serving, with every check run applies: exit 0 when\n"
    "valid, 1 with one line per error (file:line:col: field.path: message), 2 for a usage error.\n"
    "\n"
    "  --lenient   security policies Petrel cannot enforce yet, certificate files missing here\n"
    "              and an access log that cannot be written here are warnings (for Istio\n"
    "              configs checked elsewhere)\n"
    "  -h, --help  this help\n";

typedef struct server {
    uv_loop_t *loop;
    pt_config_t *config;
    pt_worker_t *workers;
    size_t n_workers;
    pt_admin_t admin;
    uv_signal_t sigterm, sigint, sighup, sigusr1;
    int access_log_fd;           /* written by log_writer only; -1 when off */
    pt_log_writer_t *log_writer; /* NULL when the access log is off */
    uv_timer_t exit_poll;
    pt_file_watch_t watch; /* the config paths and certificate files; a change reloads */
    char **paths;          /* as given with -c (argv strings) */
    size_t n_paths;
    pt_xds_files_t sources; /* the files of the config in force, recompiled on a DNS change */
    pt_dns_t *dns;          /* resolves the names of DNS ServiceEntries */
    pt_stats_t main_stats;  /* counters of the main thread (DNS) */
    uint64_t drain_started_ms;
    pt_trace_exporter_t *exporter; /* NULL: no span export */
    pt_chaos_store_t *chaos;       /* the chaos proxies (spec.chaosApi); NULL: off */
    _Atomic int workers_running;
    bool is_ready; /* serving: a shutdown from now on drains */
    bool is_draining;
    bool listeners_drained; /* POST /drain_listeners: no listener, no reload, still running */
} server_t;

static void print_errors(const pt_config_errors_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "%s\n", e->lines[i]);
}

/* Compiles config files already in memory and binds the snapshot to the runtime state that
 * outlives it (outlier detection), before any worker sees it. */
static pt_config_t *compile_files(const pt_xds_files_t *files, pt_config_errors_t *errors)
{
    pt_config_t *c = pt_xds_files_compile(files, errors);
    if (c != NULL)
        pt_outlier_bind(c);
    return c;
}

/* Reads the config paths and the pod info (PETREL_POD_INFO, PETREL_SERVICE_ACCOUNT) into
 * files, then compiles them; NULL with errors otherwise. */
static pt_config_t *read_and_compile(char **paths, size_t n, pt_xds_files_t *files,
                                     pt_config_errors_t *errors)
{
    size_t start = errors->n;
    for (size_t i = 0; i < n; i++)
        pt_xds_file_read(paths[i], files, errors);
    pt_pod_info_read_env(&files->pod, errors);
    return errors->n == start ? compile_files(files, errors) : NULL;
}

/* for_run: `petrel run` logs warnings through the log; validate prints them on stderr,
 * "warning: " first. is_lenient: `petrel validate --lenient` (pt_config_errors_t). The files
 * read go to *files (run keeps them for DNS recompiles); validate passes NULL. */
static pt_config_t *load(char **paths, size_t n, bool for_run, bool is_lenient,
                         pt_xds_files_t *files)
{
    pt_config_errors_t errors = {.is_lenient = is_lenient};
    pt_xds_files_t local = {0};
    pt_config_t *c = read_and_compile(paths, n, files != NULL ? files : &local, &errors);
    pt_xds_files_dispose(&local);
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

/* Is arg -h or --help? */
static bool is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static int cmd_validate(int argc, char **argv)
{
    bool is_lenient = false;
    int n_paths = 0;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(validate_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--lenient") == 0) {
            is_lenient = true;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "petrel validate: unknown option \"%s\"\n%s", argv[i], validate_usage);
            return 2;
        }
        argv[n_paths++] = argv[i];
    }
    if (n_paths < 1) {
        fprintf(stderr, "petrel validate: no configuration given\n%s", validate_usage);
        return 2;
    }
    pt_config_t *c = load(argv, (size_t)n_paths, false, is_lenient, NULL);
    if (c == NULL)
        return 1;
    printf("petrel: configuration valid: %zu listener%s, %zu cluster%s (parsed in %.1f ms, "
           "checked and compiled in %.1f ms)\n",
           c->n_listeners, c->n_listeners == 1 ? "" : "s", c->n_clusters,
           c->n_clusters == 1 ? "" : "s", c->parse_ms, c->compile_ms);
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
    pt_trace_exporter_stop(s->exporter); /* the last flush, bounded by exportTimeout */
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->sigusr1, NULL);
    /* Closing the handles restored the default actions; a SIGTERM now (Kubernetes sends one
     * after a preStop /quitquitquit) would kill the process before the last flush of the
     * trace exporter and the access log. The stop is already on its way, bounded. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    pt_file_watch_close(&s->watch);
    pt_dns_stop(s->dns);
    s->dns = NULL;
    pt_admin_stop(&s->admin);
    pt_chaos_store_free(s->chaos); /* the workers are gone: nothing publishes to them */
    s->chaos = NULL;
    s->admin.chaos = NULL;
}

/* A new chaos snapshot goes to every worker, one ref each. */
static void publish_chaos(void *arg, pt_chaos_snapshot_t *snap)
{
    server_t *s = arg;
    for (size_t i = 0; i < s->n_workers; i++) {
        pt_chaos_snapshot_ref(snap);
        pt_worker_publish_ext(&s->workers[i], snap);
    }
    pt_chaos_snapshot_unref(snap);
}

static void start_shutdown(server_t *s)
{
    if (s->is_draining)
        return;
    s->is_draining = true;
    s->admin.is_draining = true;
    s->drain_started_ms = uv_now(s->loop);
    if (s->is_ready) /* a start-up that failed has nothing to drain */
        pt_log_info("draining: finishing in-flight requests (up to %llu ms)",
                    (unsigned long long)s->config->proxy.drain_timeout_ms);
    for (size_t i = 0; i < s->n_workers; i++)
        pt_worker_command(&s->workers[i], PT_WORKER_CMD_DRAIN);
    uv_timer_start(&s->exit_poll, on_exit_poll, 10, 10);
}

/* Refuses ports another process listens on: the workers' SO_REUSEPORT would otherwise share
 * them silently with it (with another Petrel, say), each getting some of the connections. The
 * ports of held (the snapshot in force; NULL at start) are Petrel's own and not probed. Logs each
 * port that cannot be had; returns true when every port is free. */
static bool listener_ports_free(const pt_config_t *c, const pt_config_t *held)
{
    bool is_free = true;
    for (size_t i = 0; i < c->n_listeners; i++) {
        const pt_listener_config_t *l = &c->listeners[i];
        bool is_held = false;
        for (size_t j = 0; held != NULL && j < held->n_listeners && !is_held; j++)
            is_held = held->listeners[j].port == l->port;
        int err = is_held ? 0 : pt_listener_probe(c, l);
        if (err != 0) {
            pt_log_error("listener %s on %s:%u: %s%s", l->name, pt_listener_address_text(c, l),
                         (unsigned)l->port, uv_strerror(err),
                         err == UV_EADDRINUSE ? " (another process listens there)" : "");
            is_free = false;
        }
    }
    return is_free;
}

/* Raises the soft descriptor limit to the hard one (a proxy holds one or two per connection)
 * and tells the workers. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t soft = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            pt_log_warn("cannot raise the descriptor limit from %llu to %llu: %s",
                        (unsigned long long)soft, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = soft;
        }
    }
    pt_worker_set_fd_limit(rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
}

/* Warns when maxConnections cannot fit in the descriptor limit: each connection holds one
 * descriptor downstream (two with its upstream), and the workers keep PT_FD_RESERVE free. */
static void check_fd_limit(const pt_proxy_settings_t *ps)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    if ((uint64_t)ps->max_connections + PT_FD_RESERVE > (uint64_t)rl.rlim_cur)
        pt_log_warn("spec.maxConnections %u does not fit in the descriptor limit %llu "
                    "(RLIMIT_NOFILE; %d are kept in reserve): connections over about %llu are "
                    "refused; raise the limit (ulimit -n, LimitNOFILE=) or lower maxConnections",
                    (unsigned)ps->max_connections, (unsigned long long)rl.rlim_cur, PT_FD_RESERVE,
                    (unsigned long long)rl.rlim_cur - PT_FD_RESERVE);
}

/* Settings a running process cannot take over: they need a restart. docs/operations.md ("Live
 * configuration") lists exactly these; change both together. */
static const char *restart_only_change(const pt_proxy_settings_t *a, const pt_proxy_settings_t *b)
{
    if (strcmp(a->bind_address, b->bind_address) != 0)
        return "spec.bindAddress";
    if (strcmp(a->admin_address, b->admin_address) != 0)
        return "spec.adminAddress";
    if (a->admin_port != b->admin_port)
        return "spec.adminPort";
    if (a->concurrency != b->concurrency)
        return "spec.concurrency";
    if (a->prometheus_port != b->prometheus_port)
        return "spec.prometheusPort";
    if (a->health_port != b->health_port)
        return "spec.healthPort";
    if (a->chaos_api.enabled != b->chaos_api.enabled || a->chaos_api.port != b->chaos_api.port ||
        (a->chaos_api.enabled && strcmp(a->chaos_api.address, b->chaos_api.address) != 0))
        return "spec.chaosApi";
    if (a->access_log_json != b->access_log_json)
        return "spec.accessLogFormat";
    if (strcmp(a->access_log ? a->access_log : "", b->access_log ? b->access_log : "") != 0)
        return "spec.accessLog";
    if (strcmp(a->dns.servers ? a->dns.servers : "", b->dns.servers ? b->dns.servers : "") != 0 ||
        a->dns.timeout_ms != b->dns.timeout_ms)
        return "spec.dns.servers / spec.dns.timeout";
    return pt_trace_restart_only_change(&a->tracing, &b->tracing);
}

/* Watches the config paths, the certificate files of the snapshot in force and the pod-info
 * files: a rotated certificate or a pod's new labels reload like an edited file, and a
 * certificate first named by a reload is watched from then on. */
static void watch_files(server_t *s)
{
    char *pod_files[PT_POD_INFO_N_FILES];
    size_t n_pod = pt_pod_info_files(&s->sources.pod, pod_files);
    size_t n = s->n_paths + s->config->n_tls_files + n_pod;
    const char **paths = malloc((n > 0 ? n : 1) * sizeof(*paths));
    if (paths == NULL) {
        pt_log_warn("out of memory choosing the files to watch: reload with SIGHUP");
        for (size_t i = 0; i < n_pod; i++)
            free(pod_files[i]);
        return;
    }
    for (size_t i = 0; i < s->n_paths; i++)
        paths[i] = s->paths[i];
    for (size_t i = 0; i < s->config->n_tls_files; i++)
        paths[s->n_paths + i] = s->config->tls_files[i];
    for (size_t i = 0; i < n_pod; i++)
        paths[s->n_paths + s->config->n_tls_files + i] = pod_files[i];
    int err = pt_file_watch_set(&s->watch, paths, n);
    if (err != 0)
        pt_log_warn("some config, certificate or pod-info files cannot be watched (%s): reload "
                    "with SIGHUP",
                    uv_strerror(err));
    free(paths);
    for (size_t i = 0; i < n_pod; i++)
        free(pod_files[i]);
}

/* Hands c (its ref included) to every worker and makes it the snapshot in force; the resolver
 * follows its names. */
static void publish(server_t *s, pt_config_t *c, const char *why)
{
    for (size_t i = 0; i < s->n_workers; i++)
        pt_worker_set_config(&s->workers[i], c);
    if (s->chaos != NULL)
        pt_chaos_store_declare(s->chaos, c->chaos_proxies, c->n_chaos_proxies);
    pt_config_unref(s->config);
    s->config = c;
    s->admin.config = c;
    s->admin.config_generation = c->generation;
    if (s->dns != NULL) {
        pt_dns_configure(s->dns, &c->proxy.dns);
        pt_dns_track(s->dns, (const char *const *)c->dns_hosts,
                     (const char *const *)c->dns_host_services, c->n_dns_hosts);
    }
    if (s->watch.is_open)
        watch_files(s);
    pt_log_info("config generation %llu in force (%s): %zu listener%s, %zu cluster%s",
                (unsigned long long)c->generation, why, c->n_listeners,
                c->n_listeners == 1 ? "" : "s", c->n_clusters, c->n_clusters == 1 ? "" : "s");
}

/* A DNS answer changed: the documents in force are compiled again (compile reads the
 * resolver's answers) and published as a reload would be; pools are keyed by address, so
 * the endpoints that stayed keep their connections. */
static void on_dns_change(void *arg)
{
    server_t *s = arg;
    if (s->is_draining || s->listeners_drained)
        return;
    pt_config_errors_t errors = {0};
    pt_config_t *c = compile_files(&s->sources, &errors);
    if (c == NULL) {
        /* The same documents compiled before: only an allocation failure gets here. */
        pt_log_error("dns: recompiling the config in force failed (%zu errors)", errors.n);
    } else {
        publish(s, c, "dns answer changed");
    }
    pt_config_errors_dispose(&errors);
}

/* Builds a new snapshot from the files as they are now and publishes it to every worker, or
 * keeps the running one when anything is wrong: a reload is all or nothing. */
static void reload(server_t *s, const char *why)
{
    if (s->is_draining || s->listeners_drained)
        return;
    pt_config_errors_t errors = {0};
    pt_xds_files_t files = {0};
    pt_config_t *c = read_and_compile(s->paths, s->n_paths, &files, &errors);
    for (size_t i = 0; i < errors.n_warnings; i++)
        pt_log_warn("config reload (%s): %s", why, errors.warnings[i]);
    const char *fixed = c != NULL ? restart_only_change(&s->config->proxy, &c->proxy) : NULL;
    bool is_port_taken = c != NULL && fixed == NULL && !listener_ports_free(c, s->config);
    if (c == NULL || fixed != NULL || is_port_taken) {
        s->admin.reloads_refused++;
        if (is_port_taken) {
            pt_log_error("config reload (%s) refused: a listener port is in use; keeping "
                         "generation %llu",
                         why, (unsigned long long)s->config->generation);
            pt_config_unref(c);
        } else if (fixed != NULL) {
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
        pt_xds_files_dispose(&files);
        return;
    }
    pt_config_errors_dispose(&errors);
    pt_xds_files_dispose(&s->sources);
    s->sources = files;
    s->admin.reloads_accepted++;
    if (c->proxy.max_connections != s->config->proxy.max_connections)
        check_fd_limit(&c->proxy);
    publish(s, c, why);
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

/* POST /drain_listeners: the workers drain as for SIGTERM (their loops end once idle), but the
 * process stays up with its admin API until a SIGTERM or /quitquitquit. */
static void on_drain_listeners(void *arg)
{
    server_t *s = arg;
    if (s->is_draining || s->listeners_drained)
        return;
    s->listeners_drained = true;
    s->admin.is_draining = true;
    pt_log_info("draining listeners (admin API): finishing in-flight requests, then staying up");
    for (size_t i = 0; i < s->n_workers; i++)
        pt_worker_command(&s->workers[i], PT_WORKER_CMD_DRAIN);
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

/* Matches argv[*i] (an argument of run) against an option with a value, written `long VALUE`,
 * `long=VALUE` or `short VALUE` (short may be NULL). Returns 1 with *value set (and *i past it), 0
 * when argv[*i] is another argument, -1 after saying what is missing ("needs" what). */
static int option_value(int argc, char **argv, int *i, const char *long_name,
                        const char *short_name, const char *needs, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(long_name);
    if (strncmp(arg, long_name, n) == 0 && arg[n] == '=') {
        *value = arg + n + 1;
    } else if (strcmp(arg, long_name) == 0 ||
               (short_name != NULL && strcmp(arg, short_name) == 0)) {
        if (*i + 1 >= argc || argv[*i + 1][0] == '-') {
            fprintf(stderr, "petrel run: %s needs %s\n%s", arg, needs, run_usage);
            return -1;
        }
        *value = argv[++*i];
    } else {
        return 0;
    }
    if ((*value)[0] == '\0') {
        fprintf(stderr, "petrel run: %s needs %s\n%s", long_name, needs, run_usage);
        return -1;
    }
    return 1;
}

/* Reads run's arguments: the config paths into paths (n_paths of them), the log level set.
 * Returns -1 to go on, else the exit status (0 after --help, 2 for a usage error). */
static int parse_run_args(int argc, char **argv, char **paths, size_t *n_paths)
{
    for (int i = 0; i < argc; i++) {
        const char *value;
        int r;
        if (is_help(argv[i])) {
            fputs(run_usage, stdout);
            return 0;
        }
        if ((r = option_value(argc, argv, &i, "--config", "-c", "a file or directory", &value)) !=
            0) {
            if (r < 0)
                return 2;
            paths[(*n_paths)++] = (char *)value;
        } else if ((r = option_value(argc, argv, &i, "--log-level", NULL,
                                     "a level: error, warning, info or debug", &value)) != 0) {
            pt_log_level_t level;
            if (r < 0)
                return 2;
            if (pt_log_level_parse(value, strlen(value), &level) != 0) {
                fprintf(stderr,
                        "petrel run: unknown log level \"%s\" (valid: error, warning, info, "
                        "debug)\n",
                        value);
                return 2;
            }
            pt_log_set_level(level);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "petrel run: unknown option \"%s\"\n%s", argv[i], run_usage);
            return 2;
        } else {
            fprintf(stderr,
                    "petrel run: unexpected argument \"%s\" (a config is given with -c)\n%s",
                    argv[i], run_usage);
            return 2;
        }
    }
    if (*n_paths == 0) {
        fprintf(stderr, "petrel run: no configuration given (-c FILE|DIR)\n%s", run_usage);
        return 2;
    }
    return -1;
}

static int cmd_run(int argc, char **argv)
{
    char **paths = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_paths = 0;
    int status = parse_run_args(argc, argv, paths, &n_paths);
    if (status >= 0) {
        free(paths);
        return status;
    }
    signal(SIGPIPE, SIG_IGN);
    server_t s;
    memset(&s, 0, sizeof(s));
    s.config = load(paths, n_paths, true, false, &s.sources);
    s.paths = paths;
    s.n_paths = n_paths;
    if (s.config == NULL) {
        pt_xds_files_dispose(&s.sources);
        free(paths);
        return 1;
    }
    const pt_proxy_settings_t *ps = &s.config->proxy;
    raise_fd_limit();
    check_fd_limit(ps);
    if (s.config->n_listeners == 0)
        pt_log_warn("no listeners: the config declares no Gateway server and no sidecar (Proxy "
                    "spec.sidecar); only the admin port will answer");
    if (!listener_ports_free(s.config, NULL)) {
        pt_config_unref(s.config);
        pt_xds_files_dispose(&s.sources);
        free(paths);
        return 1;
    }
    int log_fd = open_access_log(ps->access_log);
    if (ps->access_log != NULL && ps->access_log[0] != '\0' && log_fd < 0) {
        pt_config_unref(s.config);
        pt_xds_files_dispose(&s.sources);
        free(paths);
        return 1;
    }
    /* Before the workers: every access-log write() happens on its thread. */
    s.log_writer = log_fd >= 0 ? pt_log_writer_start(log_fd) : NULL;
    if (log_fd >= 0 && s.log_writer == NULL) {
        pt_log_error("access log %s: cannot start the log writer thread", ps->access_log);
        if (log_fd > STDERR_FILENO)
            close(log_fd);
        pt_config_unref(s.config);
        pt_xds_files_dispose(&s.sources);
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
    /* Workers find the exporter from their first request on; its timer starts below. */
    s.exporter = pt_trace_exporter_new(ps, s.n_workers);
    pt_trace_exporter_current = s.exporter;
    if (s.exporter != NULL)
        pt_trace_exporter_start(s.exporter, s.loop, s.workers);
    for (; started < s.n_workers; started++) {
        atomic_fetch_add(&s.workers_running, 1);
        int err = pt_worker_start(&s.workers[started], (unsigned)started, s.config, s.log_writer,
                                  &pt_chaos_worker_ops, &s.workers_running);
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
    s.admin.on_drain_listeners = on_drain_listeners;
    s.admin.version = PT_VERSION;
    s.admin.argv = argv - 2; /* "petrel run ..." as typed */
    s.admin.argc = argc + 2;
    s.admin.start_ms = uv_now(s.loop);
    s.admin.main_stats = &s.main_stats;
    s.admin.arg = &s;
    static const char *const what[] = {"admin", "prometheus", "health"};
    const uint16_t ports[] = {ps->admin_port, ps->prometheus_port, ps->health_port};
    for (int r = 0; r <= PT_ADMIN_HEALTH && rc == 0; r++) { /* the chaos role below */
        if (ports[r] == 0)
            continue;
        const char *address = r == PT_ADMIN_FULL ? ps->admin_address : ps->bind_address;
        int err = pt_admin_start(&s.admin, s.loop, address, ports[r], (pt_admin_role_t)r);
        if (err != 0) {
            pt_log_error("%s listener on %s:%u: %s", what[r], address, (unsigned)ports[r],
                         uv_strerror(err));
            rc = 1;
        }
    }
    s.n_workers = started;
    if (rc == 0) {
        s.chaos = pt_chaos_store_new(s.loop, publish_chaos, &s);
        s.admin.chaos = s.chaos; /* its metrics; its API too when chaosApi is on */
        if (s.chaos == NULL)
            rc = 1;
        else
            pt_chaos_store_declare(s.chaos, s.config->chaos_proxies, s.config->n_chaos_proxies);
    }
    if (rc == 0 && ps->chaos_api.enabled) {
        int err = pt_admin_start(&s.admin, s.loop, ps->chaos_api.address, ps->chaos_api.port,
                                 PT_ADMIN_CHAOS);
        if (err != 0) {
            pt_log_error("chaos API listener on %s:%u: %s", ps->chaos_api.address,
                         (unsigned)ps->chaos_api.port, uv_strerror(err));
            rc = 1;
        } else {
            pt_log_info("chaos API (Toxiproxy-compatible) on %s:%u", ps->chaos_api.address,
                        (unsigned)ps->chaos_api.port);
        }
    }
    if (rc == 0) {
        /* Before the first answers a DNS cluster has no endpoints (503 UH), as in Envoy. */
        s.dns = pt_dns_start(s.loop, &ps->dns, &s.main_stats, on_dns_change, &s);
        if (s.dns == NULL) {
            rc = 1;
        } else {
            pt_config_set_dns_lookup(pt_dns_lookup, s.dns);
            pt_dns_track(s.dns, (const char *const *)s.config->dns_hosts,
                         (const char *const *)s.config->dns_host_services, s.config->n_dns_hosts);
        }
    }
    if (rc == 0) {
        pt_file_watch_init(&s.watch, s.loop, on_files_changed, &s);
        watch_files(&s);
        for (size_t i = 0; i < s.config->n_listeners; i++) {
            const pt_listener_config_t *l = &s.config->listeners[i];
            bool capture = l->protocol == PT_LISTENER_CAPTURE_OUTBOUND ||
                           l->protocol == PT_LISTENER_CAPTURE_INBOUND;
            pt_log_info("listening on %s:%u (%s, %s)", capture ? "0.0.0.0" : ps->bind_address,
                        (unsigned)l->port, l->name, pt_listener_protocol_name(l->protocol));
        }
        pt_log_info("petrel %s ready: %zu worker%s, admin on %s:%u", PT_VERSION, s.n_workers,
                    s.n_workers == 1 ? "" : "s", ps->admin_address, (unsigned)ps->admin_port);
        s.is_ready = true;
    }
    if (rc != 0)
        start_shutdown(&s);
    uv_run(s.loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < started; i++)
        pt_worker_join(&s.workers[i]);
    size_t log_lost = 0;
    if (s.log_writer != NULL) {
        /* The workers have handed over their last lines: they are written before exit. (ps
         * may be gone with a reload; s.config has the same accessLog.) */
        log_lost = pt_log_writer_stop(s.log_writer);
        if (log_lost > 0)
            pt_log_warn("access log %s: %zu bytes of lines not written: the file did not take "
                        "them within %d ms of the stop",
                        s.config->proxy.access_log, log_lost, PT_LOG_WRITER_EXIT_WAIT_MS);
    }
    uv_loop_close(s.loop);
    if (log_fd > STDERR_FILENO && log_lost == 0)
        close(log_fd); /* else the writer given up on may still be inside write() on it */
    pt_config_unref(s.config);
    pt_config_set_dns_lookup(NULL, NULL);
    pt_xds_files_dispose(&s.sources);
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
    if (strcmp(cmd, "inject") == 0)
        return pt_cmd_inject(argc - 2, argv + 2);
    if (strcmp(cmd, "wait") == 0)
        return pt_cmd_wait(argc - 2, argv + 2);
    fprintf(stderr, "petrel: unknown command \"%s\"\n%s", cmd, usage);
    return 2;
}
