/* proxy/worker.h
 * A worker is one thread with its own libuv loop, its own listening sockets (SO_REUSEPORT, so
 * the kernel spreads connections), its connections, its upstream pools and its counters. A
 * request lives and dies on one worker; nothing on the request path takes a lock.
 *
 * The main thread talks to a worker only through pt_worker_command() (an atomic word and a
 * uv_async wake-up) and reads its counters. */
#ifndef PT_WORKER_H
#define PT_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../config/config.h"
#include "access_log.h"
#include "h2_mem.h"
#include "http_msg.h"
#include "list.h"
#include "metrics.h"
#include "stats.h"

typedef struct pt_worker pt_worker_t;
typedef struct pt_pool pt_pool_t;

/* A listener opened by a worker extension: each accepted connection (fd, owned from then on)
 * goes to the extension with the key it gave. */
typedef void (*pt_listener_accept_cb)(pt_worker_t *w, int fd, uint64_t key);

typedef struct pt_listener {
    uv_poll_t poll; /* readable: connections wait in the backlog (worker.c accepts them) */
    int fd;         /* the listening socket; closed after poll's close callback */
    pt_worker_t *worker;
    const pt_listener_config_t *config; /* in worker->config; repointed by a reload; NULL for an
                                           extension's listener: */
    pt_listener_accept_cb on_accept;
    uint64_t accept_key;
    pt_list_t link; /* in worker->listeners or worker->ext_listeners */
} pt_listener_t;

/* A part of Petrel that serves runtime state of its own beside the config snapshot (the chaos
 * harness's proxies, filters/chaos): the main thread publishes it snapshots, each worker
 * serves them with state it keeps in w->ext. The engine knows it only by these ops. */
typedef struct pt_worker_ext_ops {
    void (*apply)(pt_worker_t *w, void *snap); /* serve snap from now on; takes over its ref */
    void (*release)(void *snap);               /* drops the ref of one never applied */
    void (*stop)(pt_worker_t *w);              /* the worker drains: close the listeners */
    void (*free)(pt_worker_t *w);              /* the loop has ended: free w->ext */
} pt_worker_ext_ops_t;

#define PT_POOL_BUCKETS 64
#define PT_WORKER_CONN_TIMER_LISTS 4 /* idle, header, capture, stall (pt_conn_timer_mode_t - 1) */

struct pt_worker {
    uv_loop_t loop;
    uv_thread_t thread;
    unsigned id;
    pt_config_t *config; /* the snapshot this worker serves with; one ref */
    /* Streams using config on the worker's reference instead of their own: a pair of atomic
     * operations on a count every thread shares, per stream, was 0.9 % of an HTTP/2 request's
     * CPU. They become references of their own when config is replaced (worker.c). */
    uint32_t config_borrows;
    uv_async_t wakeup;      /* main -> worker: see command */
    uv_mutex_t wakeup_lock; /* guards is_wakeup_closed against pt_worker_command */
    bool is_wakeup_closed;
    pt_config_t *next_config; /* a snapshot to serve with next (one ref), under wakeup_lock */
    const pt_worker_ext_ops_t *ext_ops; /* the extension it serves */
    void *next_ext;                     /* its snapshot to serve next (one ref), same lock */
    void *ext;                          /* its per-worker state */
    pt_list_t ext_listeners;            /* pt_listener_t opened by it */
    _Atomic int command;                /* PT_WORKER_CMD_* */
    uv_timer_t drain_timer;             /* drain deadline */
    uv_timer_t accept_timer;            /* restarts the listeners paused for lack of descriptors */
    uv_timer_t pool_purge_timer;        /* closes idle upstream connections above recent demand
                                           (upstream.c); runs only while some are idle */
    bool is_accept_paused;
    pt_list_t listeners; /* pt_listener_t, malloc'd each */
    pt_stats_t stats;
    pt_metrics_t metrics;  /* per-request istio_* metrics (metrics.h) */
    pt_list_t conns;       /* downstream HTTP connections, for drain */
    pt_list_t tunnels;     /* TCP sessions and upgraded connections, for drain */
    pt_list_t connecting;  /* TCP-route sessions still connecting upstream (relay.c) */
    pt_list_t pending;     /* streams waiting for a maxConnections slot, oldest first */
    uint32_t *round_robin; /* next endpoint per cluster index of config; malloc'd */
    size_t n_round_robin;
    uint32_t *lb_active; /* active requests per endpoint slot (pt_cluster_t.endpoint_base) of
                            config, for LEAST_REQUEST; malloc'd, zeroed by a reload */
    size_t n_lb_active;
    uint64_t lb_generation;            /* config->generation the two arrays above belong to */
    uint64_t rng;                      /* xorshift state for weighted choices */
    pt_pool_t *pools[PT_POOL_BUCKETS]; /* upstream keep-alive pools by endpoint address */
    struct pt_stream *cached_streams;  /* free streams for reuse (stream.c) */
    uint32_t n_cached_streams;
    struct pt_http1_server *cached_servers; /* free server codecs for reuse (http1_server.c) */
    /* Downstream connections' deadlines (header read, idle, capture: conn.c), one list per
     * kind in deadline order, under one timer armed for the earliest. */
    pt_list_t conn_deadlines[PT_WORKER_CONN_TIMER_LISTS];
    uv_timer_t conn_timer;
    uint64_t conn_timer_due; /* what conn_timer is armed for (uv_now); UINT64_MAX: nothing */
    uint32_t n_cached_servers;
    struct h2_exchange *cached_h2_exchanges; /* free HTTP/2 request streams (http2_server.c) */
    uint32_t n_cached_h2_exchanges;
    pt_h2_mem_t h2_mem; /* the allocator of its HTTP/2 sessions (h2_mem.h) */
    pt_access_log_t access_log;
    bool is_draining;
    /* A sidecar's drain, first step: inbound closed and draining while the outbound capture
     * listener and the app's outbound connections keep serving; is_draining follows once the
     * app's connections are gone, or at the drain deadline. */
    bool is_draining_inbound;
    int start_error; /* 0, or the libuv error that stopped the listeners opening */
    const char *start_error_what;
    uv_sem_t *started;    /* posted once listeners are open (or failed) */
    _Atomic int *running; /* the main thread's count of live workers */
};

/* Descriptors a worker leaves free for the admin port, upstream connections and files: an
 * accepted connection whose descriptor would be one of the last PT_FD_RESERVE is closed. */
#define PT_FD_RESERVE 32
/* How long a worker's listeners stay stopped after an accept ran out of descriptors. */
#define PT_ACCEPT_RETRY_MS 100
/* Connections accepted per listener per loop iteration at most. */
#define PT_ACCEPT_BATCH 64

#define PT_WORKER_CMD_NONE 0
#define PT_WORKER_CMD_DRAIN                                                                        \
    1                        /* stop accepting, finish in-flight, exit when idle (a sidecar's      \
                                outbound serves the app until its connections are gone) */
#define PT_WORKER_CMD_STOP 2 /* close everything now */

/* The process' descriptor limit (the soft RLIMIT_NOFILE), before the workers start. */
void pt_worker_set_fd_limit(uint64_t limit);
/* Can lc of c listen? Binds a probe socket without SO_REUSEPORT to its address: it fails with
 * UV_EADDRINUSE when anyone listens there, another process or this one. Returns 0 or a
 * negative error. */
int pt_listener_probe(const pt_config_t *c, const pt_listener_config_t *lc);
/* The address text lc of c listens on (bindAddress, or 0.0.0.0 for capture listeners). */
const char *pt_listener_address_text(const pt_config_t *c, const pt_listener_config_t *lc);

/* Starts a worker thread serving config (the worker takes its own ref). Blocks until its
 * listeners are open; returns 0, or a negative libuv error with w->start_error_what set.
 * log_writer: the access log's writer thread (NULL: the log is off). ext_ops: the extension
 * whose snapshots pt_worker_publish_ext() hands over. *running is decremented when the worker's
 * loop has ended (whatever the result). */
int pt_worker_start(pt_worker_t *w, unsigned id, pt_config_t *config, pt_log_writer_t *log_writer,
                    const pt_worker_ext_ops_t *ext_ops, _Atomic int *running);
/* Hands the worker a new snapshot to serve with (it takes its own ref); safe from any thread.
 * A snapshot not yet picked up is superseded by the next one. */
void pt_worker_set_config(pt_worker_t *w, pt_config_t *config);
/* Hands the worker a snapshot of its extension to serve (it takes over one ref); safe from any
 * thread. One not yet picked up is superseded. */
void pt_worker_publish_ext(pt_worker_t *w, void *snap);
/* Listens on fd (a listening socket the worker now owns) for an extension, beside the config's
 * listeners: on_accept(w, fd, key) for each connection. NULL on failure (fd closed). */
pt_listener_t *pt_worker_listen_fd(pt_worker_t *w, int fd, pt_listener_accept_cb on_accept,
                                   uint64_t key);
/* Closes a listener from pt_worker_listen_fd. */
void pt_worker_close_listener(pt_listener_t *l);
/* Posts a command to a worker; safe from any thread. */
void pt_worker_command(pt_worker_t *w, int cmd);
/* Joins the worker thread after it exits, and frees what it owned. */
void pt_worker_join(pt_worker_t *w);

/* A fast random number for load balancing (worker thread only). */
static inline uint32_t pt_worker_random(pt_worker_t *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return (uint32_t)(x >> 32);
}

/* The endpoint of cl (which has endpoints) for one request or connection, by cl's load
 * balancer (NULL when outlier detection has ejected every endpoint): c is the snapshot cl belongs
 * to (the stream's), req the request head (NULL for TCP), source_ip the client's address text (for
 * useSourceIp; may be NULL). A stream whose snapshot is no longer the worker's gets a pick without
 * per-worker state (random, or its hash). When count is true and cl balances by least request, the
 * endpoint's active count is incremented: the caller must call pt_worker_release_endpoint() once
 * when done with it. */
const pt_endpoint_t *pt_worker_pick_endpoint(pt_worker_t *w, const pt_config_t *c,
                                             const pt_cluster_t *cl, const pt_http_msg_t *req,
                                             const char *source_ip, bool count);
/* Ends what pt_worker_pick_endpoint(..., count = true) started for ep (an endpoint of cl).
 * Safe after a reload: counts of an older snapshot are gone and nothing is done. */
void pt_worker_release_endpoint(pt_worker_t *w, const pt_config_t *c, const pt_cluster_t *cl,
                                const pt_endpoint_t *ep);

/* Called when a connection or tunnel goes away while draining: exits the loop when idle. */
void pt_worker_check_drained(pt_worker_t *w);

#endif
