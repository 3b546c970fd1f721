/* filters/chaos/toxics.c
 * The TCP toxics as one L4 filter (l4_filter.h), and the worker's side of the chaos store
 * (chaos.h): the listeners of the chaos proxies and the rebinding of open sessions. A connection
 * to an HTTP chaos proxy is not relayed: it goes to the HTTP engine (proxy/conn.c) with the route
 * table the config compiled for the proxy, and filters/chaos_http.c applies its toxics.
 *
 * A session's instance copies the toxics of its proxy (so it needs no snapshot ref) and rolls
 * each toxic's toxicity once, when it first sees that toxic. With no toxic active in a
 * direction, bytes continue at once: no copy, no timer. Otherwise each chunk read is cut into
 * pieces (slicer, bandwidth) that get a due time (latency and jitter, the slicer's delay, the
 * bandwidth's pace), kept in order, and passed on by the direction's timer as they fall due;
 * pieces are slices pinning the slab they were read into. The end of a direction queues behind
 * its bytes (slow_close adds its delay). timeout drops the direction's bytes and closes the
 * session when it expires; reset_peer resets both sockets when it expires; limit_data passes
 * exactly its bytes, then ends the session. Timers are only started when something is due. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../proxy/conn.h"
#include "../../proxy/l4_proxy.h"
#include "../../proxy/list.h"
#include "../../proxy/log.h"
#include "../../proxy/worker.h"
#include "../l4_filter.h"
#include "../l4_registry.h"
#include "chaos.h"

#define HELD_HIGH_BYTES (1024 * 1024) /* stop reading a side past this much held */
#define HELD_LOW_BYTES (256 * 1024)   /* and read again below this */
#define NS_PER_MS 1000000ull

typedef struct piece {
    pt_buf_t *pin; /* one ref; NULL for an end */
    const char *data;
    size_t len;
    uint64_t due_ns; /* uv_hrtime() at which it goes on */
    enum { PIECE_DATA, PIECE_EOF, PIECE_FINISH } kind;
} piece_t;

typedef struct direction {
    piece_t *q; /* ring of cap pieces, n from head */
    size_t head, n, cap;
    size_t held_bytes;
    uint64_t last_due_ns; /* of the last piece queued: pieces leave in order */
    uint64_t bandwidth_free_ns;
    int64_t limit_passed; /* limit_data: bytes let through */
    bool is_limited;      /* limit_data reached: nothing more goes through */
    bool is_read_held;
    uv_timer_t timer;
} direction_t;

typedef struct toxic_state {
    uint64_t uid;
    bool is_active;    /* toxicity rolled in */
    uint64_t bound_ms; /* uv_now when the session first saw the toxic */
} toxic_state_t;

typedef struct chaos_inst {
    pt_l4_session_t *session;
    pt_list_t link; /* in the worker's chaos sessions */
    uint64_t proxy_uid;
    pt_toxic_t toxics[PT_CHAOS_MAX_TOXICS];
    toxic_state_t state[PT_CHAOS_MAX_TOXICS];
    size_t n_toxics;
    direction_t dir[2];
    uv_timer_t deadline; /* timeout / reset_peer */
    bool is_reset_due;   /* the deadline resets rather than closes */
    bool has_timers;
    /* The session's access-log line, written when it ends: */
    uint64_t start_time_us;   /* wall clock */
    uint64_t start_ms;        /* uv_now */
    uint64_t bytes_passed[2]; /* per direction, past the toxics (what the other side got) */
    char proxy_name[PT_CHAOS_NAME_MAX];
    char upstream[PT_CHAOS_ADDR_MAX];
    char hits[160]; /* "chaos:<toxic>,<toxic>": the toxics that affected it (the details) */
} chaos_inst_t;

/* The worker's chaos state. */
typedef struct chaos_listener {
    pt_listener_t *listener;
    uint64_t proxy_uid;
} chaos_listener_t;

/* A worker's chaos state (its w->ext, pt_chaos_worker_ops). */
typedef struct chaos_worker {
    pt_chaos_snapshot_t *snap; /* one ref; NULL until the first */
    pt_list_t sessions;        /* chaos_inst_t */
    chaos_listener_t listeners[PT_CHAOS_MAX_PROXIES];
    size_t n_listeners;
} chaos_worker_t;

static const pt_toxic_t *active_toxic(const chaos_inst_t *c, int stream, pt_toxic_type_t type)
{
    for (size_t i = 0; i < c->n_toxics; i++)
        if (c->state[i].is_active && c->toxics[i].stream == stream && c->toxics[i].type == type)
            return &c->toxics[i];
    return NULL;
}

static bool has_active(const chaos_inst_t *c, int stream)
{
    for (size_t i = 0; i < c->n_toxics; i++)
        if (c->state[i].is_active && c->toxics[i].stream == stream)
            return true;
    return false;
}

static void push(direction_t *d, piece_t p)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        piece_t *q = malloc(cap * sizeof(*q));
        if (q == NULL)
            abort();
        for (size_t i = 0; i < d->n; i++)
            q[i] = d->q[(d->head + i) % d->cap];
        free(d->q);
        d->q = q;
        d->head = 0;
        d->cap = cap;
    }
    if (p.due_ns < d->last_due_ns)
        p.due_ns = d->last_due_ns;
    d->last_due_ns = p.due_ns;
    d->q[(d->head + d->n) % d->cap] = p;
    d->n++;
    d->held_bytes += p.len;
}

static void flush(chaos_inst_t *c, pt_l4_direction_t dir);

static void on_direction_timer(uv_timer_t *t)
{
    chaos_inst_t *c = t->data;
    flush(c, t == &c->dir[0].timer ? PT_L4_UPSTREAM : PT_L4_DOWNSTREAM);
}

/* Passes the pieces that fell due, then sleeps until the next one. */
static void flush(chaos_inst_t *c, pt_l4_direction_t dir)
{
    direction_t *d = &c->dir[dir];
    pt_l4_session_t *s = c->session;
    uint64_t now = uv_hrtime();
    while (d->n > 0 && !pt_l4_session_is_closing(s)) {
        piece_t p = d->q[d->head];
        /* A timer fires on a millisecond tick: what is due within it goes now. */
        if (p.due_ns > now + NS_PER_MS / 2)
            break;
        d->head = (d->head + 1) % d->cap;
        d->n--;
        d->held_bytes -= p.len;
        if (p.kind == PIECE_DATA) {
            c->bytes_passed[dir] += p.len;
            pt_l4_session_pass(s, c, dir, p.data, p.len, p.pin);
            pt_buf_unref(p.pin);
        } else if (p.kind == PIECE_EOF) {
            pt_l4_session_pass_eof(s, c, dir);
        } else {
            pt_l4_session_finish(s);
        }
    }
    if (pt_l4_session_is_closing(s))
        return;
    if (d->is_read_held && d->held_bytes < HELD_LOW_BYTES) {
        d->is_read_held = false;
        pt_l4_session_hold_reading(s, dir, false);
    }
    if (d->n > 0) {
        uint64_t wait_ns = d->q[d->head].due_ns > now ? d->q[d->head].due_ns - now : 0;
        uv_timer_start(&d->timer, on_direction_timer, (wait_ns + NS_PER_MS - 1) / NS_PER_MS, 0);
    }
}

/* A uniform integer in [-spread, spread]. */
static int64_t spread_of(pt_worker_t *w, int64_t spread)
{
    if (spread <= 0)
        return 0;
    return (int64_t)(pt_worker_random(w) % (uint64_t)(2 * spread + 1)) - spread;
}

static int on_data(pt_l4_session_t *s, void *inst, const void *conf, pt_l4_direction_t dir,
                   const char *data, size_t len, pt_buf_t *pin)
{
    chaos_inst_t *c = inst;
    direction_t *d = &c->dir[dir];
    if (d->n == 0 && !has_active(c, (int)dir) && !d->is_limited) {
        c->bytes_passed[dir] += len;
        return PT_L4_CONTINUE;
    }
    if (d->is_limited || active_toxic(c, (int)dir, PT_TOXIC_TIMEOUT) != NULL)
        return PT_L4_HELD; /* dropped */
    pt_worker_t *w = pt_l4_session_worker(s);
    bool finish = false;
    const pt_toxic_t *t = active_toxic(c, (int)dir, PT_TOXIC_LIMIT_DATA);
    if (t != NULL) {
        int64_t left = t->bytes - d->limit_passed;
        if (left <= 0) {
            len = 0;
            finish = true;
        } else if ((int64_t)len >= left) {
            len = (size_t)left;
            finish = true;
        }
        d->limit_passed += (int64_t)len;
    }
    uint64_t due = uv_hrtime();
    if ((t = active_toxic(c, (int)dir, PT_TOXIC_LATENCY)) != NULL) {
        int64_t ms = t->latency_ms + spread_of(w, t->jitter_ms);
        if (ms > 0)
            due += (uint64_t)ms * NS_PER_MS;
    }
    const pt_toxic_t *slicer = active_toxic(c, (int)dir, PT_TOXIC_SLICER);
    const pt_toxic_t *bandwidth = active_toxic(c, (int)dir, PT_TOXIC_BANDWIDTH);
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (slicer != NULL && slicer->average_size > 0) {
            int64_t size = slicer->average_size + spread_of(w, slicer->size_variation);
            if (size < 1)
                size = 1;
            if ((size_t)size < n)
                n = (size_t)size;
        }
        if (bandwidth != NULL && bandwidth->rate_kbps > 0) {
            /* At most 100 ms worth at a time, so the pace is smooth. */
            size_t most = (size_t)bandwidth->rate_kbps * 100;
            if (n > most)
                n = most;
            /* A piece leaves once the link has had the time to carry it. */
            if (due < d->bandwidth_free_ns)
                due = d->bandwidth_free_ns;
            due += (uint64_t)n * 1000000ull / (uint64_t)bandwidth->rate_kbps;
            d->bandwidth_free_ns = due;
        }
        pt_buf_ref(pin);
        push(d, (piece_t){.pin = pin, .data = data + off, .len = n, .due_ns = due});
        off += n;
        if (slicer != NULL && off < len)
            due += (uint64_t)slicer->delay_us * 1000;
    }
    if (finish) {
        d->is_limited = true;
        push(d, (piece_t){.kind = PIECE_FINISH, .due_ns = due});
    }
    if (!d->is_read_held && d->held_bytes > HELD_HIGH_BYTES) {
        d->is_read_held = true;
        pt_l4_session_hold_reading(s, dir, true);
    }
    flush(c, dir);
    return PT_L4_HELD;
}

static int on_eof(pt_l4_session_t *s, void *inst, const void *conf, pt_l4_direction_t dir)
{
    chaos_inst_t *c = inst;
    direction_t *d = &c->dir[dir];
    const pt_toxic_t *slow = active_toxic(c, (int)dir, PT_TOXIC_SLOW_CLOSE);
    if (d->n == 0 && slow == NULL)
        return PT_L4_CONTINUE;
    uint64_t due = uv_hrtime();
    if (slow != NULL && slow->delay_ms > 0)
        due += (uint64_t)slow->delay_ms * NS_PER_MS;
    push(d, (piece_t){.kind = PIECE_EOF, .due_ns = due});
    flush(c, dir);
    return PT_L4_HELD;
}

static void on_deadline(uv_timer_t *t)
{
    chaos_inst_t *c = t->data;
    pt_l4_session_close(c->session, c->is_reset_due);
}

/* Sets the deadline timer from the active timeout and reset_peer toxics. */
static void arm_deadline(chaos_inst_t *c, uint64_t now_ms)
{
    uint64_t at = UINT64_MAX;
    bool reset = false;
    for (size_t i = 0; i < c->n_toxics; i++) {
        const pt_toxic_t *t = &c->toxics[i];
        if (!c->state[i].is_active ||
            (t->type != PT_TOXIC_TIMEOUT && t->type != PT_TOXIC_RESET_PEER))
            continue;
        if (t->type == PT_TOXIC_TIMEOUT && t->timeout_ms == 0)
            continue; /* held for ever */
        uint64_t when = c->state[i].bound_ms + (uint64_t)(t->timeout_ms > 0 ? t->timeout_ms : 0);
        if (when < at) {
            at = when;
            reset = t->type == PT_TOXIC_RESET_PEER;
        }
    }
    uv_timer_stop(&c->deadline);
    c->is_reset_due = reset;
    if (at != UINT64_MAX)
        uv_timer_start(&c->deadline, on_deadline, at > now_ms ? at - now_ms : 0, 0);
}

pt_chaos_snapshot_t *pt_chaos_worker_snapshot(pt_worker_t *w)
{
    const chaos_worker_t *cw = w->ext;
    return cw != NULL ? cw->snap : NULL;
}

/* Takes p's toxics: those seen before keep their roll and start time. */
static void bind_toxics(chaos_inst_t *c, const pt_chaos_proxy_t *p)
{
    pt_worker_t *w = pt_l4_session_worker(c->session);
    uint64_t now_ms = uv_now(&w->loop);
    toxic_state_t state[PT_CHAOS_MAX_TOXICS];
    for (size_t i = 0; i < p->n_toxics; i++) {
        const pt_toxic_t *t = &p->toxics[i];
        state[i] = (toxic_state_t){.uid = t->uid, .bound_ms = now_ms};
        bool seen = false;
        for (size_t j = 0; j < c->n_toxics && !seen; j++)
            if (c->state[j].uid == t->uid) {
                state[i] = c->state[j];
                seen = true;
            }
        if (!seen && (state[i].is_active = pt_chaos_roll(w, t, 0))) {
            size_t used = strlen(c->hits);
            snprintf(c->hits + used, sizeof(c->hits) - used, "%s%s", used == 0 ? "chaos:" : ",",
                     t->name);
        }
    }
    memcpy(c->toxics, p->toxics, p->n_toxics * sizeof(p->toxics[0]));
    memcpy(c->state, state, p->n_toxics * sizeof(state[0]));
    c->n_toxics = p->n_toxics;
    arm_deadline(c, now_ms);
}

static chaos_worker_t *chaos_worker(pt_worker_t *w)
{
    chaos_worker_t *cw = w->ext;
    if (cw == NULL) {
        if ((cw = calloc(1, sizeof(*cw))) == NULL)
            abort();
        pt_list_init(&cw->sessions);
        w->ext = cw;
    }
    return cw;
}

/* conf is the proxy's uid (uintptr_t): a session outlives snapshots, so it names its proxy
 * rather than pointing into one. */
static int on_connect(pt_l4_session_t *s, void *inst, const void *conf)
{
    chaos_inst_t *c = inst;
    pt_worker_t *w = pt_l4_session_worker(s);
    chaos_worker_t *cw = chaos_worker(w);
    c->session = s;
    c->proxy_uid = (uint64_t)(uintptr_t)conf;
    for (int i = 0; i < 2; i++) {
        pt_l4_session_timer_init(s, &c->dir[i].timer);
        c->dir[i].timer.data = c;
    }
    pt_l4_session_timer_init(s, &c->deadline);
    c->deadline.data = c;
    c->has_timers = true;
    pt_list_insert_tail(&cw->sessions, &c->link);
    const pt_chaos_proxy_t *p =
        cw->snap != NULL ? pt_chaos_snapshot_find(cw->snap, c->proxy_uid) : NULL;
    if (p == NULL)
        return PT_L4_CLOSE; /* removed or disabled while connecting */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    c->start_time_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    c->start_ms = uv_now(&w->loop);
    memcpy(c->proxy_name, p->name, sizeof(c->proxy_name));
    memcpy(c->upstream, p->upstream, sizeof(c->upstream));
    bind_toxics(c, p);
    return PT_L4_CONTINUE;
}

/* One access-log line per session, as Envoy logs a TCP proxy's: no method or path, the bytes
 * each way, the duration; the chaos proxy as the route, flag FI and the toxics that affected it
 * (response code details "chaos:<toxic>,...") when any did. */
static void on_destroy(pt_l4_session_t *s, void *inst, const void *conf)
{
    chaos_inst_t *c = inst;
    pt_worker_t *w = pt_l4_session_worker(s);
    if (c->proxy_name[0] == '\0' || !pt_access_log_is_on(&w->access_log))
        return; /* refused before it began */
    pt_access_log_entry_t e = {
        .start_time_us = c->start_time_us,
        .protocol = pt_str("TCP"),
        .flags = c->hits[0] != '\0' ? "FI" : "-",
        .bytes_received = c->bytes_passed[PT_L4_UPSTREAM],
        .bytes_sent = c->bytes_passed[PT_L4_DOWNSTREAM],
        .duration_ms = uv_now(&w->loop) - c->start_ms,
        .upstream_ms = UINT64_MAX,
        .upstream_host = pt_str(c->upstream),
        .route_name = c->proxy_name,
        .details = c->hits[0] != '\0' ? c->hits : NULL,
    };
    pt_access_log_write(&w->access_log, &e, w->config->proxy.access_log_json);
}

static void on_close(pt_l4_session_t *s, void *inst, const void *conf)
{
    chaos_inst_t *c = inst;
    if (!c->has_timers)
        return;
    for (int i = 0; i < 2; i++) {
        direction_t *d = &c->dir[i];
        for (size_t k = 0; k < d->n; k++)
            if (d->q[(d->head + k) % d->cap].pin != NULL)
                pt_buf_unref(d->q[(d->head + k) % d->cap].pin);
        d->n = 0;
        free(d->q);
        d->q = NULL;
        pt_l4_session_close_handle(s, (uv_handle_t *)&d->timer);
    }
    pt_l4_session_close_handle(s, (uv_handle_t *)&c->deadline);
    pt_list_remove(&c->link);
}

const pt_l4_filter_ops_t pt_l4_chaos_ops = {
    .name = "chaos",
    .instance_size = sizeof(chaos_inst_t),
    .on_connect = on_connect,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_close = on_close,
    .on_destroy = on_destroy,
};

/* A connection accepted on the listener of chaos proxy proxy_uid: relayed to its upstream
 * through the chaos filter, or for an HTTP proxy served by the HTTP engine with the proxy's
 * route table in the worker's config; closed when the proxy is gone, or when that config has no
 * table for it. */
static void chaos_accept(pt_worker_t *w, int fd, uint64_t proxy_uid)
{
    chaos_worker_t *cw = chaos_worker(w);
    const pt_chaos_proxy_t *p =
        cw->snap != NULL ? pt_chaos_snapshot_find(cw->snap, proxy_uid) : NULL;
    const pt_listener_config_t *lc =
        p != NULL && p->is_http ? pt_config_chaos_listener(w->config, p->name) : NULL;
    if (p == NULL || (p->is_http && lc == NULL)) {
        close(fd);
        return;
    }
    if (p->is_http) {
        pt_conn_accept(w, fd, lc);
        return;
    }
    pt_l4_filter_t f = {.ops = &pt_l4_chaos_ops, .conf = (const void *)(uintptr_t)proxy_uid};
    pt_l4_proxy_accept_direct(w, fd, (const struct sockaddr *)&p->upstream_addr, p->tls_ctx, &f, 1);
}

/* The connections of HTTP proxies of old that next no longer serves as they were (gone,
 * disabled, moved, another upstream) finish: idle ones close now, busy ones after their
 * response, as TCP sessions of such a proxy close. */
static void end_http_connections(pt_worker_t *w, const pt_chaos_snapshot_t *old,
                                 const pt_chaos_snapshot_t *next)
{
    for (size_t i = 0; old != NULL && i < old->n_proxies; i++) {
        const pt_chaos_proxy_t *was = &old->proxies[i];
        const pt_chaos_proxy_t *now = pt_chaos_snapshot_find(next, was->uid);
        if (!was->is_http || (now != NULL && now->enabled))
            continue;
        for (pt_list_t *n = w->conns.next, *after; n != &w->conns; n = after) {
            after = n->next; /* draining may close and unlink it */
            pt_conn_t *c = PT_CONTAINER_OF(n, pt_conn_t, link);
            if (c->chaos_proxy != NULL && strcmp(c->chaos_proxy, was->name) == 0)
                pt_conn_drain(c);
        }
    }
}

/* Serves snap from now on: listeners open and close, open sessions take the new toxics, and
 * those of a proxy gone or disabled close. tests/tsan.supp names this function (its dup() of
 * a listening socket meets descriptor numbers libuv closed unseen by TSan). */
static void chaos_worker_apply(pt_worker_t *w, void *next)
{
    chaos_worker_t *cw = chaos_worker(w);
    pt_chaos_snapshot_t *snap = next;
    /* Listeners of proxies gone, disabled or moved close; new ones open. */
    size_t kept = 0;
    for (size_t i = 0; i < cw->n_listeners; i++) {
        const pt_chaos_proxy_t *p = pt_chaos_snapshot_find(snap, cw->listeners[i].proxy_uid);
        if (p != NULL && p->enabled)
            cw->listeners[kept++] = cw->listeners[i];
        else
            pt_worker_close_listener(cw->listeners[i].listener);
    }
    cw->n_listeners = kept;
    for (size_t i = 0; i < snap->n_proxies; i++) {
        const pt_chaos_proxy_t *p = &snap->proxies[i];
        bool open = false;
        for (size_t k = 0; k < cw->n_listeners && !open; k++)
            open = cw->listeners[k].proxy_uid == p->uid;
        if (open || !p->enabled || p->listen_fd < 0 || w->is_draining)
            continue;
        int fd = dup(p->listen_fd);
        pt_listener_t *l = fd >= 0 ? pt_worker_listen_fd(w, fd, chaos_accept, p->uid) : NULL;
        if (l == NULL) {
            pt_log_error("worker %u: chaos proxy %s: cannot listen", w->id, p->name);
            continue;
        }
        cw->listeners[cw->n_listeners++] = (chaos_listener_t){.listener = l, .proxy_uid = p->uid};
    }
    pt_chaos_snapshot_t *old = cw->snap;
    cw->snap = snap;
    end_http_connections(w, old, snap);
    /* Open sessions take the new toxics; those of a proxy gone or disabled end. */
    pt_list_t *n = cw->sessions.next;
    while (n != &cw->sessions) {
        chaos_inst_t *c = PT_CONTAINER_OF(n, chaos_inst_t, link);
        n = n->next; /* closing unlinks c */
        const pt_chaos_proxy_t *p = pt_chaos_snapshot_find(snap, c->proxy_uid);
        if (p == NULL || !p->enabled)
            pt_l4_session_close(c->session, false);
        else
            bind_toxics(c, p);
    }
    if (old != NULL)
        pt_chaos_snapshot_unref(old);
}

/* Closes the chaos listeners (drain); sessions finish as other tunnels do. */
static void worker_stop(pt_worker_t *w)
{
    chaos_worker_t *cw = w->ext;
    if (cw == NULL)
        return;
    for (size_t i = 0; i < cw->n_listeners; i++)
        pt_worker_close_listener(cw->listeners[i].listener);
    cw->n_listeners = 0;
}

static void worker_free(pt_worker_t *w)
{
    chaos_worker_t *cw = w->ext;
    if (cw == NULL)
        return;
    if (cw->snap != NULL)
        pt_chaos_snapshot_unref(cw->snap);
    free(cw);
    w->ext = NULL;
}

static void snapshot_release(void *snap)
{
    pt_chaos_snapshot_unref(snap);
}

const pt_worker_ext_ops_t pt_chaos_worker_ops = {
    .apply = chaos_worker_apply,
    .release = snapshot_release,
    .stop = worker_stop,
    .free = worker_free,
};
