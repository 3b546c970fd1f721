/* proxy/worker.c
 * Worker threads: each opens its own SO_REUSEPORT listeners (so the kernel balances accepts
 * across workers without a shared accept lock), runs its loop, and drains on command.
 *
 * A worker accepts by itself (a uv_poll on the listening socket and accept4) rather than through
 * uv_listen: when the process is out of descriptors, libuv's accept loop calls back with EMFILE
 * and tries again at once, for ever. Here an accept that fails for lack of descriptors (or that
 * would take one of the last PT_FD_RESERVE) stops the worker's listeners for
 * PT_ACCEPT_RETRY_MS: the connections open keep being served, the waiting clients stay in the
 * kernel's backlog, and accepting resumes by itself once descriptors are free. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "http1_server.h"
#include "http2_server.h"
#include "l4_proxy.h"
#include "lb.h"
#include "log.h"
#include "mirror.h"
#include "relay.h"
#include "scratch.h"
#include "stream.h"
#include "upstream.h"
#include "write.h"

/* The soft RLIMIT_NOFILE, set once by pt_worker_set_fd_limit() before any worker starts. */
static uint64_t fd_limit = UINT64_MAX;

void pt_worker_set_fd_limit(uint64_t limit)
{
    fd_limit = limit;
}

static void on_acceptable(uv_poll_t *p, int status, int events);

static void on_accept_retry(uv_timer_t *t)
{
    pt_worker_t *w = t->data;
    w->is_accept_paused = false;
    for (pt_list_t *n = w->listeners.next; n != &w->listeners; n = n->next)
        uv_poll_start(&PT_CONTAINER_OF(n, pt_listener_t, link)->poll, UV_READABLE, on_acceptable);
    for (pt_list_t *n = w->ext_listeners.next; n != &w->ext_listeners; n = n->next)
        uv_poll_start(&PT_CONTAINER_OF(n, pt_listener_t, link)->poll, UV_READABLE, on_acceptable);
}

/* Stops every listener of w for PT_ACCEPT_RETRY_MS (err: why, an errno). */
static void pause_accepting(pt_worker_t *w, int err)
{
    static pt_log_limit_t limit;
    pt_log_limited(&limit, PT_LOG_REPEAT_INTERVAL_MS, PT_LOG_WARN,
                   "worker %u: cannot accept connections: %s (descriptor limit %llu, the last %d "
                   "kept in reserve); open connections are still served, accepting again "
                   "every %d ms",
                   w->id, strerror(err), (unsigned long long)fd_limit, PT_FD_RESERVE,
                   PT_ACCEPT_RETRY_MS);
    w->is_accept_paused = true;
    for (pt_list_t *n = w->listeners.next; n != &w->listeners; n = n->next)
        uv_poll_stop(&PT_CONTAINER_OF(n, pt_listener_t, link)->poll);
    for (pt_list_t *n = w->ext_listeners.next; n != &w->ext_listeners; n = n->next)
        uv_poll_stop(&PT_CONTAINER_OF(n, pt_listener_t, link)->poll);
    uv_timer_start(&w->accept_timer, on_accept_retry, PT_ACCEPT_RETRY_MS, 0);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    pt_listener_t *l = p->data;
    pt_worker_t *w = l->worker;
    if (status < 0) { /* an error on the socket itself: try again later rather than at once */
        pause_accepting(w, -status);
        return;
    }
    /* A bounded batch per wake-up, so that one busy port does not hold the loop. */
    for (int i = 0; i < PT_ACCEPT_BATCH && !w->is_accept_paused; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPERM))
            continue; /* that connection is gone, or a firewall refused it */
        if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
            PT_STAT_INC(&w->stats, downstream_cx_fd_exhausted);
            pause_accepting(w, errno);
        } else if (fd < 0 && (errno == ENOBUFS || errno == ENOMEM)) {
            pause_accepting(w, errno);
        }
        if (fd < 0)
            return; /* EAGAIN: the backlog is empty */
        /* Descriptors are handed out lowest first: fd this high means the process is near its
         * limit. The last ones are kept for the admin port, upstream connections and files. */
        if ((uint64_t)fd + PT_FD_RESERVE >= fd_limit) {
            close(fd);
            PT_STAT_INC(&w->stats, downstream_cx_fd_exhausted);
            pause_accepting(w, EMFILE);
            return;
        }
        if (l->config == NULL)
            l->on_accept(w, fd, l->accept_key);
        else if (l->config->protocol == PT_LISTENER_TCP || l->config->protocol == PT_LISTENER_TLS)
            pt_l4_proxy_accept(w, fd, l->config);
        else /* HTTP, and the sidecar's capture listeners (conn.c detects the protocol first) */
            pt_conn_accept(w, fd, l->config);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    pt_listener_t *l = h->data;
    close(l->fd);
    free(l);
}

const char *pt_listener_address_text(const pt_config_t *c, const pt_listener_config_t *lc)
{
    /* iptables REDIRECT sends captured traffic to the address of its interface. */
    if (lc->protocol == PT_LISTENER_CAPTURE_OUTBOUND || lc->protocol == PT_LISTENER_CAPTURE_INBOUND)
        return "0.0.0.0";
    return c->proxy.bind_address;
}

/* The address lc listens on, into ss and len; returns 0 or UV_EINVAL. */
static int listener_address(const pt_config_t *c, const pt_listener_config_t *lc,
                            struct sockaddr_storage *ss, socklen_t *len)
{
    const char *addr = pt_listener_address_text(c, lc);
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(addr, lc->port, (struct sockaddr_in *)ss) == 0)
        *len = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(addr, lc->port, (struct sockaddr_in6 *)ss) == 0)
        *len = sizeof(struct sockaddr_in6);
    else
        return UV_EINVAL;
    return 0;
}

int pt_listener_probe(const pt_config_t *c, const pt_listener_config_t *lc)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = listener_address(c, lc, &ss, &len);
    if (err != 0)
        return err;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* SO_REUSEADDR: connections of an earlier process in TIME_WAIT are no conflict; a listener
     * is, whoever it belongs to, because this socket has no SO_REUSEPORT. */
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0)
        err = -errno;
    close(fd);
    return err;
}

/* Opens a listener for lc by hand (libuv cannot set SO_REUSEPORT before bind) and links it in
 * w->listeners. Returns 0 or a negative error. */
static int open_listener(pt_worker_t *w, const pt_listener_config_t *lc)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = listener_address(w->config, lc, &ss, &len);
    if (err != 0)
        return err;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    pt_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return UV_ENOMEM;
    }
    err = uv_poll_init(&w->loop, &l->poll, fd);
    if (err != 0) {
        close(fd);
        free(l);
        return err;
    }
    l->worker = w;
    l->config = lc;
    l->fd = fd;
    l->poll.data = l;
    pt_list_insert_tail(&w->listeners, &l->link);
    return w->is_accept_paused ? 0 : uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
}

pt_listener_t *pt_worker_listen_fd(pt_worker_t *w, int fd, pt_listener_accept_cb on_accept,
                                   uint64_t key)
{
    pt_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL || uv_poll_init(&w->loop, &l->poll, fd) != 0) {
        close(fd);
        free(l);
        return NULL;
    }
    l->worker = w;
    l->on_accept = on_accept;
    l->accept_key = key;
    l->fd = fd;
    l->poll.data = l;
    pt_list_insert_tail(&w->ext_listeners, &l->link);
    if (!w->is_accept_paused)
        uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
    return l;
}

static void close_listener(pt_listener_t *l)
{
    pt_list_remove(&l->link);
    uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}

void pt_worker_close_listener(pt_listener_t *l)
{
    close_listener(l);
}

static void close_listeners(pt_worker_t *w)
{
    while (!pt_list_is_empty(&w->listeners))
        close_listener(PT_CONTAINER_OF(w->listeners.next, pt_listener_t, link));
}

/* Per-cluster round-robin positions for c, spread across workers so that they do not all start
 * on endpoint 0. */
static void reset_round_robin(pt_worker_t *w, const pt_config_t *c)
{
    free(w->round_robin);
    w->round_robin = calloc(c->n_clusters + 1, sizeof(uint32_t));
    if (w->round_robin == NULL)
        abort();
    w->n_round_robin = c->n_clusters;
    for (size_t i = 0; i < c->n_clusters; i++)
        w->round_robin[i] = w->id;
    /* Active-request counts start at zero with each snapshot: requests still running on the
     * old one are not counted (their release sees another generation and does nothing). */
    free(w->lb_active);
    w->lb_active = calloc(c->n_endpoint_slots + 1, sizeof(uint32_t));
    if (w->lb_active == NULL)
        abort();
    w->n_lb_active = c->n_endpoint_slots;
    w->lb_generation = c->generation;
}

/* Is cl (of snapshot c) served with this worker's per-cluster state? */
static bool has_lb_state(const pt_worker_t *w, const pt_config_t *c, const pt_cluster_t *cl)
{
    return c == w->config && c->generation == w->lb_generation && cl->index < w->n_round_robin &&
           (size_t)cl->endpoint_base + cl->n_endpoints <= w->n_lb_active;
}

const pt_endpoint_t *pt_worker_pick_endpoint(pt_worker_t *w, const pt_config_t *c,
                                             const pt_cluster_t *cl, const pt_http_msg_t *req,
                                             const char *source_ip, bool count)
{
    bool own = has_lb_state(w, c, cl);
    pt_lb_state_t s = {
        .rr_position = own ? &w->round_robin[cl->index] : NULL,
        .active = own ? &w->lb_active[cl->endpoint_base] : NULL,
        .rng = &w->rng,
        .stats = &w->stats,
    };
    uint64_t hash;
    bool has_hash = pt_lb_request_hash(&cl->lb, req, source_ip, &hash);
    size_t i = pt_lb_pick(cl, &s, has_hash ? &hash : NULL);
    if (i == PT_LB_NONE)
        return NULL; /* every endpoint ejected */
    if (count && own && cl->lb.policy == PT_LB_LEAST_REQUEST)
        w->lb_active[cl->endpoint_base + i]++;
    return &cl->endpoints[i];
}

void pt_worker_release_endpoint(pt_worker_t *w, const pt_config_t *c, const pt_cluster_t *cl,
                                const pt_endpoint_t *ep)
{
    if (ep == NULL || cl->lb.policy != PT_LB_LEAST_REQUEST || !has_lb_state(w, c, cl))
        return;
    size_t i = (size_t)(ep - cl->endpoints);
    if (i >= cl->n_endpoints)
        return;
    uint32_t *n = &w->lb_active[cl->endpoint_base + i];
    if (*n > 0)
        (*n)--;
}

/* Serves with a new snapshot from now on. Listeners on ports that stay keep their sockets (no
 * connection is refused during a reload); new ports open, removed ones close. Connections,
 * pools and streams in flight are untouched: each stream keeps the snapshot it started with. */
static void apply_config(pt_worker_t *w, pt_config_t *c)
{
    pt_list_t kept;
    pt_list_init(&kept);
    for (size_t i = 0; i < c->n_listeners; i++) {
        const pt_listener_config_t *lc = &c->listeners[i];
        pt_listener_t *found = NULL;
        for (pt_list_t *n = w->listeners.next; n != &w->listeners; n = n->next) {
            pt_listener_t *l = PT_CONTAINER_OF(n, pt_listener_t, link);
            if (l->config->port == lc->port) {
                found = l;
                break;
            }
        }
        if (found != NULL) {
            found->config = lc;
            pt_list_remove(&found->link);
            pt_list_insert_tail(&kept, &found->link);
        }
    }
    close_listeners(w); /* ports the new snapshot no longer has */
    while (!pt_list_is_empty(&kept)) {
        pt_list_t *n = kept.next;
        pt_list_remove(n);
        pt_list_insert_tail(&w->listeners, n);
    }
    pt_config_t *old = w->config;
    for (; w->config_borrows > 0; w->config_borrows--) /* the streams on old keep it */
        pt_config_ref(old);
    w->config = c;
    for (size_t i = 0; i < c->n_listeners; i++) {
        bool is_open = false;
        for (pt_list_t *n = w->listeners.next; n != &w->listeners; n = n->next)
            if (PT_CONTAINER_OF(n, pt_listener_t, link)->config == &c->listeners[i])
                is_open = true;
        if (!is_open) {
            int err = open_listener(w, &c->listeners[i]);
            if (err != 0)
                pt_log_error("worker %u: listener %s: %s", w->id, c->listeners[i].name,
                             uv_strerror(err));
        }
    }
    reset_round_robin(w, c);
    pt_config_unref(old);
}

static void close_everything(pt_worker_t *w)
{
    while (!pt_list_is_empty(&w->conns))
        pt_conn_close(PT_CONTAINER_OF(w->conns.next, pt_conn_t, link), false);
    for (pt_list_t *n = w->tunnels.next; n != &w->tunnels; n = n->next)
        pt_relay_close(PT_CONTAINER_OF(n, pt_relay_t, link));
    pt_l4_proxy_abort_pending(w);
    pt_upstream_close_idle(w);
}

static bool is_idle(const pt_worker_t *w)
{
    return pt_list_is_empty(&w->conns) && pt_list_is_empty(&w->tunnels) &&
           pt_list_is_empty(&w->connecting);
}

void pt_worker_check_drained(pt_worker_t *w)
{
    if (w->is_draining_inbound && !w->is_draining && is_idle(w)) {
        /* The app's connections are gone: the outbound listener goes too. */
        w->is_draining = true;
        close_listeners(w);
    }
    if (!w->is_draining || !is_idle(w))
        return;
    if (uv_is_closing((uv_handle_t *)&w->wakeup))
        return;
    pt_upstream_close_idle(w);
    pt_mirror_close_all(w);
    uv_mutex_lock(&w->wakeup_lock);
    w->is_wakeup_closed = true;
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_mutex_unlock(&w->wakeup_lock);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
    uv_close((uv_handle_t *)&w->pool_purge_timer, NULL);
    uv_close((uv_handle_t *)&w->conn_timer, NULL);
    pt_access_log_close(&w->access_log);
}

static void on_drain_deadline(uv_timer_t *t)
{
    pt_worker_t *w = t->data;
    if (!w->is_draining) { /* a sidecar's outbound stops serving now */
        w->is_draining = true;
        close_listeners(w);
    }
    close_everything(w);
    pt_worker_check_drained(w);
}

/* A sidecar's drain (see is_draining_inbound): the app may still be making calls while it shuts
 * down (a classic sidecar is told to stop with the app), so its outbound keeps serving until
 * its connections are gone or the deadline passes, while inbound traffic drains. */
static bool start_sidecar_drain(pt_worker_t *w)
{
    pt_listener_t *outbound = NULL;
    for (pt_list_t *n = w->listeners.next; n != &w->listeners; n = n->next)
        if (PT_CONTAINER_OF(n, pt_listener_t, link)->config->protocol ==
            PT_LISTENER_CAPTURE_OUTBOUND)
            outbound = PT_CONTAINER_OF(n, pt_listener_t, link);
    if (outbound == NULL)
        return false;
    w->is_draining_inbound = true;
    w->ext_ops->stop(w);
    for (pt_list_t *n = w->listeners.next, *next; n != &w->listeners; n = next) {
        next = n->next;
        if (n != &outbound->link)
            close_listener(PT_CONTAINER_OF(n, pt_listener_t, link));
    }
    for (pt_list_t *n = w->conns.next, *next; n != &w->conns; n = next) {
        next = n->next;
        pt_conn_t *c = PT_CONTAINER_OF(n, pt_conn_t, link);
        if (c->capture == NULL || c->capture->direction != PT_CAPTURE_OUTBOUND)
            pt_conn_drain(c);
    }
    uv_timer_start(&w->drain_timer, on_drain_deadline, w->config->proxy.drain_timeout_ms, 0);
    pt_worker_check_drained(w);
    return true;
}

static void start_drain(pt_worker_t *w)
{
    if (w->is_draining || w->is_draining_inbound || start_sidecar_drain(w))
        return;
    w->is_draining = true;
    close_listeners(w);
    w->ext_ops->stop(w);
    for (pt_list_t *n = w->conns.next, *next; n != &w->conns; n = next) {
        next = n->next;
        pt_conn_drain(PT_CONTAINER_OF(n, pt_conn_t, link));
    }
    pt_upstream_close_idle(w);
    uv_timer_start(&w->drain_timer, on_drain_deadline, w->config->proxy.drain_timeout_ms, 0);
    pt_worker_check_drained(w);
}

static void on_wakeup(uv_async_t *a)
{
    pt_worker_t *w = a->data;
    uv_mutex_lock(&w->wakeup_lock);
    pt_config_t *next = w->next_config;
    w->next_config = NULL;
    void *next_ext = w->next_ext;
    w->next_ext = NULL;
    uv_mutex_unlock(&w->wakeup_lock);
    if (next != NULL) {
        if (w->is_draining || w->is_draining_inbound)
            pt_config_unref(next);
        else
            apply_config(w, next);
    }
    if (next_ext != NULL) {
        if (w->is_draining || w->is_draining_inbound)
            w->ext_ops->release(next_ext);
        else
            w->ext_ops->apply(w, next_ext);
    }
    int cmd = atomic_exchange(&w->command, PT_WORKER_CMD_NONE);
    if (cmd == PT_WORKER_CMD_DRAIN) {
        start_drain(w);
    } else if (cmd == PT_WORKER_CMD_STOP) {
        start_drain(w);
        close_everything(w);
        pt_worker_check_drained(w);
    }
}

static void worker_main(void *arg)
{
    pt_worker_t *w = arg;
    int err = 0;
    if (pt_scratch_map() != 0) {
        err = UV_ENOMEM;
        w->start_error_what = "scratch buffers";
    }
    for (size_t i = 0; i < w->config->n_listeners && err == 0; i++) {
        err = open_listener(w, &w->config->listeners[i]);
        if (err != 0)
            w->start_error_what = w->config->listeners[i].name;
    }
    w->start_error = err;
    uv_sem_post(w->started);
    if (err != 0) {
        start_drain(w);
        close_everything(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    pt_access_log_flush(&w->access_log);
    if (uv_loop_close(&w->loop) != 0)
        pt_log_warn("worker %u: handles still open at exit", w->id);
    pt_upstream_free_pools(w);
    pt_stream_free_cache(w);
    pt_http1_server_free_cache(w);
    pt_http2_server_free_cache(w);
    pt_h2_mem_dispose(&w->h2_mem); /* every session went with its connection */
    pt_buf_trim();
    pt_write_trim();
    pt_scratch_unmap();
    atomic_fetch_sub(w->running, 1);
}

int pt_worker_start(pt_worker_t *w, unsigned id, pt_config_t *config, pt_log_writer_t *log_writer,
                    const pt_worker_ext_ops_t *ext_ops, _Atomic int *running)
{
    memset(w, 0, sizeof(*w));
    w->ext_ops = ext_ops;
    w->running = running;
    w->id = id;
    w->config = config;
    pt_config_ref(config);
    uv_loop_init(&w->loop);
    uv_mutex_init(&w->wakeup_lock);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->accept_timer);
    w->accept_timer.data = w;
    uv_timer_init(&w->loop, &w->pool_purge_timer);
    w->pool_purge_timer.data = w;
    pt_conn_init_timers(w);
    pt_access_log_init(&w->access_log, &w->loop, log_writer, &w->stats);
    if (pt_metrics_init(&w->metrics) != 0)
        abort();
    pt_list_init(&w->conns);
    pt_list_init(&w->tunnels);
    pt_list_init(&w->connecting);
    pt_list_init(&w->pending);
    pt_list_init(&w->listeners);
    pt_list_init(&w->ext_listeners);
    reset_round_robin(w, config);
    w->rng = ((uint64_t)time(NULL) << 16) ^ ((uint64_t)id * 0x9e3779b97f4a7c15ull) ^
             (uint64_t)(uintptr_t)w;
    if (w->rng == 0)
        w->rng = 1;
    uv_sem_t started;
    uv_sem_init(&started, 0);
    w->started = &started;
    int err = uv_thread_create(&w->thread, worker_main, w);
    if (err != 0) {
        atomic_fetch_sub(running, 1);
        return err;
    }
    uv_sem_wait(&started);
    uv_sem_destroy(&started);
    w->started = NULL;
    return w->start_error;
}

void pt_worker_command(pt_worker_t *w, int cmd)
{
    int cur = atomic_load(&w->command);
    if (cmd > cur)
        atomic_store(&w->command, cmd);
    uv_mutex_lock(&w->wakeup_lock);
    if (!w->is_wakeup_closed)
        uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
}

void pt_worker_set_config(pt_worker_t *w, pt_config_t *config)
{
    pt_config_ref(config);
    uv_mutex_lock(&w->wakeup_lock);
    pt_config_t *superseded = w->next_config;
    w->next_config = config;
    if (!w->is_wakeup_closed)
        uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
    if (superseded != NULL)
        pt_config_unref(superseded);
}

void pt_worker_publish_ext(pt_worker_t *w, void *snap)
{
    uv_mutex_lock(&w->wakeup_lock);
    void *superseded = w->next_ext;
    w->next_ext = snap;
    if (!w->is_wakeup_closed)
        uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
    if (superseded != NULL)
        w->ext_ops->release(superseded);
}

void pt_worker_join(pt_worker_t *w)
{
    uv_thread_join(&w->thread);
    if (w->next_config != NULL)
        pt_config_unref(w->next_config);
    if (w->next_ext != NULL)
        w->ext_ops->release(w->next_ext);
    w->ext_ops->free(w);
    free(w->round_robin);
    free(w->lb_active);
    pt_metrics_dispose(&w->metrics);
    uv_mutex_destroy(&w->wakeup_lock);
    pt_config_unref(w->config);
}
