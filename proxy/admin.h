/* proxy/admin.h
 * The admin listener (port 15000 by default, on the main thread's loop), with Envoy's endpoint
 * names and forms: GET /help lists them all from the one table admin.c keeps (/ready, /stats,
 * /stats/prometheus, /server_info, /listeners, /clusters, /config_dump, /logging,
 * /healthz/ready, POST /drain_listeners, /drain, /quitquitquit). Endpoints that change state
 * answer GET with 405. Requests are parsed by the same HTTP/1 codec as traffic; each connection
 * answers one request and closes. The Prometheus (15090) and health (15021) listeners are the
 * same module with a role that answers one path; the health port also answers GET
 * /app-health/<container>/<kind>, the app's own probes (app_probe.h). The chaos role serves the
 * Toxiproxy-compatible API (filters/chaos/api.c) with request bodies up to 1 MiB. */
#ifndef PT_ADMIN_H
#define PT_ADMIN_H

#include <stdbool.h>
#include <uv.h>

#include "app_probe.h"
#include "list.h"
#include "worker.h"

/* What a listener of the admin module answers. */
typedef enum pt_admin_role {
    PT_ADMIN_FULL = 0,   /* adminPort: everything */
    PT_ADMIN_PROMETHEUS, /* prometheusPort (Istio's 15090): /stats/prometheus only */
    PT_ADMIN_HEALTH,     /* healthPort (Istio's 15021): /healthz/ready only */
    PT_ADMIN_CHAOS,      /* chaosApi (Toxiproxy's 8474): the Toxiproxy-compatible API only */
    PT_ADMIN__ROLES
} pt_admin_role_t;

typedef struct pt_admin pt_admin_t;

typedef struct pt_admin_listener {
    uv_tcp_t tcp;
    pt_admin_t *admin;
    pt_admin_role_t role;
    bool is_open;
} pt_admin_listener_t;

struct pt_admin {
    pt_admin_listener_t listeners[PT_ADMIN__ROLES];
    uv_loop_t *loop;
    pt_worker_t *workers; /* not owned */
    size_t n_workers;
    const pt_stats_t *main_stats; /* the main thread's counters (DNS), added to the workers' */
    const pt_config_t *config;    /* the snapshot in force (main thread; replaced on reload) */
    uint64_t config_generation;
    uint64_t reloads_accepted; /* config reloads published (main thread only) */
    uint64_t reloads_refused;  /* config reloads refused; the running config stayed */
    bool is_draining;          /* SIGTERM, /drain or /drain_listeners: /ready 503, state DRAINING */
    pt_list_t conns;           /* open admin connections, closed by pt_admin_stop */
    void (*on_quit)(void *arg); /* starts the drain (POST /drain, /quitquitquit); idempotent */
    void (*on_drain_listeners)(void *arg); /* drains the listeners, keeps running; idempotent */
    pt_app_probers_t app_probers; /* from PETREL_APP_PROBERS, read when the health port opens */
    struct pt_chaos_store *chaos; /* the chaos role's store (filters/chaos); not owned */
    void *arg;
    /* For /server_info: */
    const char *version;
    char **argv; /* the command line (main's) */
    int argc;
    uint64_t start_ms; /* uv_now of the main loop at start */
};

/* Listens on address:port for role. Returns 0 or a libuv error (UV_EINVAL, logged, when the
 * health role finds PETREL_APP_PROBERS malformed). */
int pt_admin_start(pt_admin_t *a, uv_loop_t *loop, const char *address, uint16_t port,
                   pt_admin_role_t role);
void pt_admin_stop(pt_admin_t *a);

#endif
