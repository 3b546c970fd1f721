/* proxy/worker.c
 * Worker threads: each opens its own SO_REUSEPORT listeners (so the kernel balances accepts
 * across workers without a shared accept lock), runs its loop, and drains on command. */
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
#include "log.h"
#include "relay.h"
#include "upstream.h"
#include "write.h"

static void on_connection(uv_stream_t *server, int status)
{
    pt_listener_t *l = server->data;
    if (status < 0)
        return;
    if (l->config->protocol == PT_LISTENER_TCP)
        pt_tcp_proxy_accept(l->worker, server, l->config);
    else
        pt_conn_accept(l->worker, server, l->config);
}

/* Opens the socket by hand: libuv cannot set SO_REUSEPORT before bind. */
static int open_listener(pt_worker_t *w, pt_listener_t *l)
{
    const char *addr = w->config->proxy.bind_address;
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(addr, l->config->port, (struct sockaddr_in *)&ss) == 0) {
        len = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(addr, l->config->port, (struct sockaddr_in6 *)&ss) == 0) {
        len = sizeof(struct sockaddr_in6);
    } else {
        return UV_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = l;
    l->is_open = true;
    int err = uv_tcp_open(&l->tcp, fd);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&l->tcp, 4096, on_connection);
    return err;
}

static void close_listeners(pt_worker_t *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].is_open) {
            w->listeners[i].is_open = false;
            uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
        }
    }
}

static void close_everything(pt_worker_t *w)
{
    while (!pt_list_is_empty(&w->conns))
        pt_conn_close(PT_CONTAINER_OF(w->conns.next, pt_conn_t, link), false);
    for (pt_list_t *n = w->tunnels.next; n != &w->tunnels; n = n->next)
        pt_relay_close(PT_CONTAINER_OF(n, pt_relay_t, link));
    pt_upstream_close_idle(w);
}

void pt_worker_check_drained(pt_worker_t *w)
{
    if (!w->is_draining || !pt_list_is_empty(&w->conns) || !pt_list_is_empty(&w->tunnels))
        return;
    if (uv_is_closing((uv_handle_t *)&w->wakeup))
        return;
    pt_upstream_close_idle(w);
    uv_mutex_lock(&w->wakeup_lock);
    w->is_wakeup_closed = true;
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_mutex_unlock(&w->wakeup_lock);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    pt_access_log_close(&w->access_log);
}

static void on_drain_deadline(uv_timer_t *t)
{
    pt_worker_t *w = t->data;
    close_everything(w);
    pt_worker_check_drained(w);
}

static void start_drain(pt_worker_t *w)
{
    if (w->is_draining)
        return;
    w->is_draining = true;
    close_listeners(w);
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
    for (size_t i = 0; i < w->n_listeners && err == 0; i++) {
        err = open_listener(w, &w->listeners[i]);
        if (err != 0)
            w->start_error_what = w->listeners[i].config->name;
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
    pt_buf_trim();
    pt_write_trim();
    atomic_fetch_sub(w->running, 1);
}

int pt_worker_start(pt_worker_t *w, unsigned id, pt_config_t *config, int access_log_fd,
                    _Atomic int *running)
{
    memset(w, 0, sizeof(*w));
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
    pt_access_log_init(&w->access_log, &w->loop, access_log_fd);
    pt_list_init(&w->conns);
    pt_list_init(&w->tunnels);
    w->round_robin = calloc(config->n_clusters + 1, sizeof(uint32_t));
    w->rng = ((uint64_t)time(NULL) << 16) ^ ((uint64_t)id * 0x9e3779b97f4a7c15ull) ^
             (uint64_t)(uintptr_t)w;
    if (w->rng == 0)
        w->rng = 1;
    /* Spread the workers' round-robin starting points so they do not all hit endpoint 0. */
    for (size_t i = 0; i < config->n_clusters; i++)
        w->round_robin[i] = id;
    w->n_listeners = config->n_listeners;
    w->listeners = calloc(config->n_listeners + 1, sizeof(pt_listener_t));
    for (size_t i = 0; i < config->n_listeners; i++) {
        w->listeners[i].worker = w;
        w->listeners[i].config = &config->listeners[i];
    }
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

void pt_worker_join(pt_worker_t *w)
{
    uv_thread_join(&w->thread);
    free(w->listeners);
    free(w->round_robin);
    uv_mutex_destroy(&w->wakeup_lock);
    pt_config_unref(w->config);
}
