/* filters/chaos/store.c
 * The chaos store (store.h) and its snapshots (chaos.h). A proxy's listening socket is opened
 * here, on the main thread, so that a client may connect as soon as the API answered: the
 * kernel queues the connection until a worker (which listens on a dup of the socket) takes it.
 * Disabling or removing a proxy shuts the socket down before closing it, which refuses new
 * connections at once, whatever the workers have seen yet. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../proxy/log.h"
#include "../../proxy/metrics.h"
#include "../../proxy/worker.h"
#include "../../tls/openssl.h"
#include "store.h"

/* Releases a ref on ctx. NULL is not passed on: OpenSSL is loaded on its first call
 * (tls/openssl.h), which a config without TLS never pays. */
static void unref_tls_ctx(SSL_CTX *ctx)
{
    if (ctx != NULL)
        SSL_CTX_free(ctx);
}

/* Makes *slot hold ctx (a new ref) instead of what it held (released); NULL is allowed. */
static void set_tls_ctx(SSL_CTX **slot, SSL_CTX *ctx)
{
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    unref_tls_ctx(*slot);
    *slot = ctx;
}

void pt_chaos_snapshot_ref(pt_chaos_snapshot_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void pt_chaos_snapshot_unref(pt_chaos_snapshot_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n_proxies; i++) {
        for (size_t k = 0; k < s->proxies[i].n_toxics; k++)
            pt_toxic_release(&s->proxies[i].toxics[k]);
        unref_tls_ctx(s->proxies[i].tls_ctx);
    }
    for (size_t i = 0; i < s->n_routes; i++)
        for (size_t k = 0; k < s->routes[i].n_toxics; k++)
            pt_toxic_release(&s->routes[i].toxics[k]);
    free(s);
}

pt_toxic_counters_t *pt_toxic_counters_new(void)
{
    pt_toxic_counters_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    atomic_init(&c->refs, 1);
    return c;
}

void pt_toxic_counters_unref(pt_toxic_counters_t *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}

void pt_toxic_retain(const pt_toxic_t *t)
{
    atomic_fetch_add(&t->counters->refs, 1);
    pt_toxic_match_ref(t->match);
}

void pt_toxic_release(const pt_toxic_t *t)
{
    pt_toxic_counters_unref(t->counters);
    pt_toxic_match_unref(t->match);
}

void pt_chaos_store_new_toxic(pt_chaos_store_t *st, pt_toxic_t *t)
{
    t->uid = pt_chaos_store_uid(st);
    t->counters = pt_toxic_counters_new();
    pt_chaos_store_set_ttl(st, t);
}

void pt_chaos_store_set_ttl(pt_chaos_store_t *st, pt_toxic_t *t)
{
    t->expires_ms = t->ttl_ms > 0 ? uv_now(st->loop) + (uint64_t)t->ttl_ms : 0;
}

/* Releases the toxics of from that to no longer has (a toxic is known by its counters: an
 * update that keeps it passes its refs on). */
static void drop_counters(const pt_toxic_t *from, size_t n_from, const pt_toxic_t *to, size_t n_to)
{
    for (size_t i = 0; i < n_from; i++) {
        bool kept = false;
        for (size_t k = 0; k < n_to && !kept; k++)
            kept = to[k].counters == from[i].counters;
        if (!kept)
            pt_toxic_release(&from[i]);
    }
}

/* Removes the toxics of toxics[0..*n) whose TTL ended by now; owner names them in the log. */
static void expire(pt_toxic_t *toxics, size_t *n, uint64_t now, const char *owner)
{
    size_t kept = 0;
    for (size_t k = 0; k < *n; k++) {
        pt_toxic_t *x = &toxics[k];
        if (x->expires_ms == 0 || x->expires_ms > now) {
            toxics[kept++] = *x;
            continue;
        }
        pt_log_info("%s: toxic %s removed (ttl_ms %lld passed)", owner, x->name,
                    (long long)x->ttl_ms);
        pt_toxic_release(x);
    }
    *n = kept;
}

static void on_ttl_timer(uv_timer_t *t)
{
    pt_chaos_store_t *st = t->data;
    uint64_t now = uv_now(st->loop);
    char owner[2 * PT_CHAOS_NAME_MAX + 16];
    for (size_t i = 0; i < st->n_proxies; i++) {
        pt_chaos_proxy_t *p = st->proxies[i];
        snprintf(owner, sizeof(owner), "chaos proxy %s", p->name);
        expire(p->toxics, &p->n_toxics, now, owner);
    }
    for (size_t i = st->n_routes; i-- > 0;) {
        pt_chaos_route_t *r = st->routes[i];
        snprintf(owner, sizeof(owner), "route %s/%s", r->virtual_service, r->route);
        expire(r->toxics, &r->n_toxics, now, owner);
        pt_chaos_store_drop_route(st, r);
    }
    pt_chaos_store_publish(st);
}

const pt_chaos_proxy_t *pt_chaos_snapshot_find(const pt_chaos_snapshot_t *s, uint64_t uid)
{
    for (size_t i = 0; i < s->n_proxies; i++)
        if (s->proxies[i].uid == uid)
            return &s->proxies[i];
    return NULL;
}

const pt_chaos_proxy_t *pt_chaos_snapshot_find_name(const pt_chaos_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_proxies; i++)
        if (strcmp(s->proxies[i].name, name) == 0)
            return &s->proxies[i];
    return NULL;
}

const pt_chaos_route_t *pt_chaos_snapshot_route(const pt_chaos_snapshot_t *s,
                                                const char *virtual_service, const char *route)
{
    const char *slash = strchr(virtual_service, '/'); /* "<namespace>/<name>" */
    const char *name = slash != NULL ? slash + 1 : virtual_service;
    for (size_t i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].route, route) == 0 &&
            strcmp(s->routes[i].virtual_service, name) == 0)
            return &s->routes[i];
    return NULL;
}

pt_chaos_route_t *pt_chaos_store_route(pt_chaos_store_t *st, const char *vs, const char *route,
                                       bool create)
{
    for (size_t i = 0; i < st->n_routes; i++)
        if (strcmp(st->routes[i]->virtual_service, vs) == 0 &&
            strcmp(st->routes[i]->route, route) == 0)
            return st->routes[i];
    if (!create || st->n_routes == PT_CHAOS_MAX_PROXIES)
        return NULL;
    pt_chaos_route_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    snprintf(r->virtual_service, sizeof(r->virtual_service), "%s", vs);
    snprintf(r->route, sizeof(r->route), "%s", route);
    st->routes[st->n_routes++] = r;
    return r;
}

void pt_chaos_store_drop_route(pt_chaos_store_t *st, pt_chaos_route_t *r)
{
    if (r->n_toxics > 0)
        return;
    for (size_t i = 0; i < st->n_routes; i++)
        if (st->routes[i] == r) {
            memmove(&st->routes[i], &st->routes[i + 1], (st->n_routes - i - 1) * sizeof(r));
            st->n_routes--;
            free(r);
            return;
        }
}

bool pt_chaos_roll(pt_worker_t *w, const pt_toxic_t *t, int64_t cap)
{
    if (!(t->toxicity > 0 && (double)pt_worker_random(w) / 4294967296.0 < t->toxicity))
        return false;
    if (cap == 0)
        cap = t->max_hits;
    atomic_uint_fast64_t *hits = t->dry_run ? &t->counters->dry_run_hits : &t->counters->hits;
    uint_fast64_t n = atomic_load(hits);
    do {
        if (cap > 0 && n >= (uint_fast64_t)cap)
            return false; /* the blast radius is used up */
    } while (!atomic_compare_exchange_weak(hits, &n, n + 1));
    return !t->dry_run;
}

uint64_t pt_chaos_store_uid(pt_chaos_store_t *st)
{
    return ++st->next_uid;
}

void pt_chaos_store_publish(pt_chaos_store_t *st)
{
    pt_chaos_snapshot_t *s = malloc(sizeof(*s) + st->n_proxies * sizeof(pt_chaos_proxy_t) +
                                    st->n_routes * sizeof(pt_chaos_route_t));
    if (s == NULL)
        abort();
    atomic_init(&s->refs, 1);
    s->generation = ++st->generation;
    s->n_proxies = st->n_proxies;
    s->n_routes = st->n_routes;
    s->routes = (pt_chaos_route_t *)&s->proxies[st->n_proxies];
    uint64_t next_expiry = UINT64_MAX;
    for (size_t i = 0; i < st->n_proxies; i++) {
        s->proxies[i] = *st->proxies[i];
        if (s->proxies[i].tls_ctx != NULL)
            SSL_CTX_up_ref(s->proxies[i].tls_ctx);
    }
    for (size_t i = 0; i < st->n_routes; i++)
        s->routes[i] = *st->routes[i];
    for (size_t i = 0; i < st->n_proxies + st->n_routes; i++) {
        const pt_toxic_t *toxics =
            i < st->n_proxies ? s->proxies[i].toxics : s->routes[i - st->n_proxies].toxics;
        size_t n =
            i < st->n_proxies ? s->proxies[i].n_toxics : s->routes[i - st->n_proxies].n_toxics;
        for (size_t k = 0; k < n; k++) {
            const pt_toxic_t *t = &toxics[k];
            pt_toxic_retain(t);
            if (t->expires_ms != 0 && t->expires_ms < next_expiry)
                next_expiry = t->expires_ms;
        }
    }
    /* The TTL timer runs only while a toxic has one. */
    uint64_t now = uv_now(st->loop);
    if (next_expiry == UINT64_MAX)
        uv_timer_stop(&st->ttl_timer);
    else
        uv_timer_start(&st->ttl_timer, on_ttl_timer, next_expiry > now ? next_expiry - now : 0, 0);
    st->publish(st->arg, s); /* takes the ref */
}

pt_chaos_store_t *pt_chaos_store_new(uv_loop_t *loop,
                                     void (*publish)(void *arg, pt_chaos_snapshot_t *snap),
                                     void *arg)
{
    pt_chaos_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->loop = loop;
    st->publish = publish;
    st->arg = arg;
    uv_timer_init(loop, &st->ttl_timer);
    st->ttl_timer.data = st;
    return st;
}

/* Drops the refs the store's copies of declarations hold (TLS contexts, matches). */
static void release_decls(const pt_chaos_decl_t *decls, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unref_tls_ctx(decls[k].tls_ctx);
        for (size_t i = 0; i < decls[k].n_toxics; i++)
            pt_toxic_match_unref(decls[k].toxics[i].match);
    }
}

static void on_store_closed(uv_handle_t *h)
{
    free(h->data);
}

static void close_listener(pt_chaos_proxy_t *p)
{
    if (p->listen_fd < 0)
        return;
    shutdown(p->listen_fd, SHUT_RDWR); /* the workers' dups stop accepting too */
    close(p->listen_fd);
    p->listen_fd = -1;
}

void pt_chaos_store_free(pt_chaos_store_t *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_proxies; i++) {
        close_listener(st->proxies[i]);
        drop_counters(st->proxies[i]->toxics, st->proxies[i]->n_toxics, NULL, 0);
        unref_tls_ctx(st->proxies[i]->tls_ctx);
        free(st->proxies[i]);
    }
    for (size_t i = 0; i < st->n_routes; i++) {
        drop_counters(st->routes[i]->toxics, st->routes[i]->n_toxics, NULL, 0);
        free(st->routes[i]);
    }
    release_decls(st->decls, st->n_decls);
    free(st->decls);
    uv_close((uv_handle_t *)&st->ttl_timer, on_store_closed);
}

pt_chaos_proxy_t *pt_chaos_store_find(pt_chaos_store_t *st, const char *name)
{
    for (size_t i = 0; i < st->n_proxies; i++)
        if (strcmp(st->proxies[i]->name, name) == 0)
            return st->proxies[i];
    return NULL;
}

static void set_error(pt_chaos_error_t *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(pt_chaos_error_t *e, int status, const char *fmt, ...)
{
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* Splits "host:port" ("[v6]:port" too; an empty host is every address) and resolves it. */
static int resolve(const pt_chaos_store_t *st, const char *text, bool passive,
                   struct sockaddr_storage *out, socklen_t *out_len, pt_chaos_error_t *e,
                   const char *what)
{
    char host[PT_CHAOS_ADDR_MAX];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon[1] == '\0') {
        set_error(e, 400, "%s: \"%s\" is not host:port", what, text);
        return -1;
    }
    size_t hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        memcpy(host, text + 1, hlen - 2);
        host[hlen - 2] = '\0';
    } else {
        memcpy(host, text, hlen);
        host[hlen] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || (!passive && port == 0)) {
        set_error(e, 400, "%s: \"%s\" has no valid port", what, text);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    if (st->is_numeric_only)
        hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &ai) != 0 || ai == NULL) {
        set_error(e, 400, "%s: cannot resolve \"%s\"", what, text);
        return -1;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    *out_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Opens p's listener and writes the address it got (the port picked for 0) into p->listen. */
static int open_listener(const pt_chaos_store_t *st, pt_chaos_proxy_t *p, pt_chaos_error_t *e)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(st, p->listen, true, &ss, &len, e, "listen") != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        set_error(e, 500, "listen %s: %s", p->listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char ip[64] = "";
    uint16_t port;
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(p->listen, sizeof(p->listen), "[%s]:%u", ip, (unsigned)port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(p->listen, sizeof(p->listen), "%s:%u", ip, (unsigned)port);
    }
    p->listen_fd = fd;
    return 0;
}

int pt_chaos_store_add(pt_chaos_store_t *st, const pt_chaos_proxy_t *p, pt_chaos_error_t *e)
{
    if (st->n_proxies == PT_CHAOS_MAX_PROXIES) {
        set_error(e, 400, "too many proxies (at most %d)", PT_CHAOS_MAX_PROXIES);
        return -1;
    }
    pt_chaos_proxy_t *np = malloc(sizeof(*np));
    if (np == NULL)
        abort();
    *np = *p;
    np->listen_fd = -1;
    socklen_t len;
    if (resolve(st, np->upstream, false, &np->upstream_addr, &len, e, "upstream") != 0 ||
        (np->enabled && open_listener(st, np, e) != 0)) {
        drop_counters(np->toxics, np->n_toxics, NULL, 0);
        free(np);
        return -1;
    }
    np->uid = pt_chaos_store_uid(st);
    np->tls_ctx = NULL;
    set_tls_ctx(&np->tls_ctx, p->tls_ctx); /* p's was borrowed */
    st->proxies[st->n_proxies++] = np;
    pt_log_info("chaos proxy %s: %s -> %s%s", np->name, np->listen, np->upstream,
                np->enabled ? "" : " (disabled)");
    pt_chaos_store_publish(st);
    return 0;
}

int pt_chaos_store_update(pt_chaos_store_t *st, pt_chaos_proxy_t *old, const pt_chaos_proxy_t *p,
                          pt_chaos_error_t *e)
{
    pt_chaos_proxy_t next = *p;
    next.listen_fd = old->listen_fd;
    next.uid = old->uid;
    next.upstream_addr = old->upstream_addr;
    bool moved = strcmp(next.listen, old->listen) != 0;
    bool reroute = strcmp(next.upstream, old->upstream) != 0;
    socklen_t len;
    if (reroute &&
        resolve(st, next.upstream, false, &next.upstream_addr, &len, e, "upstream") != 0) {
        drop_counters(next.toxics, next.n_toxics, old->toxics, old->n_toxics);
        return -1;
    }
    /* A listener that moves, or a proxy turned off, lets its old socket go first, so that a
     * move to the same port (or back on) can bind it. */
    bool reopen = next.enabled && (moved || old->listen_fd < 0);
    if (moved || !next.enabled)
        close_listener(old);
    next.listen_fd = old->listen_fd;
    if (reopen && open_listener(st, &next, e) != 0) {
        drop_counters(next.toxics, next.n_toxics, old->toxics, old->n_toxics);
        old->enabled = false; /* its socket is gone: it is down until fixed */
        pt_chaos_store_publish(st);
        return -1;
    }
    /* Sessions of the old listener, upstream or protocol end; a reopened listener is new to
     * workers. */
    if (moved || reroute || reopen || !next.enabled || next.is_http != old->is_http)
        next.uid = pt_chaos_store_uid(st);
    drop_counters(old->toxics, old->n_toxics, next.toxics, next.n_toxics);
    set_tls_ctx(&old->tls_ctx, next.tls_ctx); /* next's was borrowed */
    next.tls_ctx = old->tls_ctx;
    *old = next;
    pt_chaos_store_publish(st);
    return 0;
}

void pt_chaos_store_remove(pt_chaos_store_t *st, pt_chaos_proxy_t *p)
{
    close_listener(p);
    drop_counters(p->toxics, p->n_toxics, NULL, 0);
    unref_tls_ctx(p->tls_ctx);
    size_t k = 0;
    for (size_t i = 0; i < st->n_proxies; i++)
        if (st->proxies[i] != p)
            st->proxies[k++] = st->proxies[i];
    st->n_proxies = k;
    free(p);
    pt_chaos_store_publish(st);
}

/* p as declaration d says (its toxics with fresh uids: sessions roll their toxicity again); its
 * tls_ctx is d's, borrowed until the store keeps p (add, update). */
static void from_decl(pt_chaos_store_t *st, pt_chaos_proxy_t *p, const pt_chaos_decl_t *d)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->name, d->name, sizeof(p->name));
    memcpy(p->listen, d->listen, sizeof(p->listen));
    memcpy(p->upstream, d->upstream, sizeof(p->upstream));
    p->enabled = d->enabled;
    p->is_http = d->is_http;
    memcpy(p->toxics, d->toxics, d->n_toxics * sizeof(d->toxics[0]));
    p->n_toxics = d->n_toxics;
    for (size_t i = 0; i < p->n_toxics; i++) {
        pt_chaos_store_new_toxic(st, &p->toxics[i]);
        pt_toxic_match_ref(p->toxics[i].match); /* the toxic's own, as its counters */
    }
    p->tls_ctx = d->tls_ctx;
    p->is_declared = true;
    p->declared = *d;
    p->declared.tls_ctx = NULL; /* p->tls_ctx holds the proxy's ref */
    /* Nothing reads the declaration's toxics from p (the store's decls hold them): no pointer
     * that outlives its ref. */
    for (size_t i = 0; i < p->declared.n_toxics; i++)
        p->declared.toxics[i].match = NULL;
}

/* Whether two declarations say the same (where they were written aside). Each load builds its
 * own TLS context: only whether there is one counts here, the context itself is swapped in
 * (pt_chaos_store_declare). */
static bool same_decl(const pt_chaos_decl_t *a, const pt_chaos_decl_t *b)
{
    if (strcmp(a->name, b->name) != 0 || strcmp(a->listen, b->listen) != 0 ||
        strcmp(a->upstream, b->upstream) != 0 || a->enabled != b->enabled ||
        a->is_http != b->is_http || a->n_toxics != b->n_toxics ||
        (a->tls_ctx != NULL) != (b->tls_ctx != NULL))
        return false;
    for (size_t i = 0; i < a->n_toxics; i++) {
        pt_toxic_t x = a->toxics[i], y = b->toxics[i];
        x.uid = y.uid = 0;
        x.counters = y.counters = NULL;
        x.expires_ms = y.expires_ms = 0;
        /* Each load compiles its own match: the same one is the same text. */
        if (!pt_toxic_match_equal(x.match, y.match))
            return false;
        x.match = y.match = NULL;
        if (memcmp(&x, &y, sizeof(x)) != 0)
            return false;
    }
    return true;
}

/* Brings the existing proxy p to declaration d; a failure is logged (the proxy stays down). */
static void apply_decl(pt_chaos_store_t *st, pt_chaos_proxy_t *p, const pt_chaos_decl_t *d)
{
    pt_chaos_proxy_t next;
    from_decl(st, &next, d);
    /* A port picked for ":0" is kept: clients already know it. */
    if (p->listen_fd >= 0 && strcmp(p->declared.listen, d->listen) == 0)
        memcpy(next.listen, p->listen, sizeof(next.listen));
    pt_chaos_error_t e;
    if (pt_chaos_store_update(st, p, &next, &e) != 0)
        pt_log_error("chaos proxy %s (%s): %s", d->name, d->where, e.message);
}

/* Creates the declared proxy d; a failure is logged. */
static void add_decl(pt_chaos_store_t *st, const pt_chaos_decl_t *d)
{
    pt_chaos_proxy_t p;
    from_decl(st, &p, d);
    pt_chaos_error_t e;
    if (pt_chaos_store_add(st, &p, &e) != 0)
        pt_log_error("chaos proxy %s (%s): %s", d->name, d->where, e.message);
}

static void metric_label(char **out, size_t *len, const char *s)
{
    /* Names hold only [A-Za-z0-9_.-]: nothing to escape. */
    size_t n = strlen(s);
    *out = realloc(*out, *len + n + 1);
    if (*out == NULL)
        abort();
    memcpy(*out + *len, s, n + 1);
    *len += n;
}

void pt_chaos_store_format_metrics(const pt_chaos_store_t *st, char **out, size_t *len)
{
    static const char *const heads[2] = {
        "# HELP petrel_chaos_toxic_hits_total Sessions (requests) a toxic affected.\n"
        "# TYPE petrel_chaos_toxic_hits_total counter\n",
        "# HELP petrel_chaos_toxic_dry_run_hits_total Sessions (requests) a dry-run toxic would "
        "have "
        "affected.\n# TYPE petrel_chaos_toxic_dry_run_hits_total counter\n"};
    static const char *const names[2] = {"petrel_chaos_toxic_hits_total",
                                         "petrel_chaos_toxic_dry_run_hits_total"};
    for (int m = 0; m < 2; m++) {
        metric_label(out, len, heads[m]);
        for (size_t i = 0; i < st->n_proxies; i++) {
            const pt_chaos_proxy_t *p = st->proxies[i];
            for (size_t k = 0; k < p->n_toxics; k++) {
                const pt_toxic_t *t = &p->toxics[k];
                char line[320];
                uint64_t v = m == 0 ? atomic_load(&t->counters->hits)
                                    : atomic_load(&t->counters->dry_run_hits);
                snprintf(line, sizeof(line),
                         "%s{proxy=\"%s\",toxic=\"%s\",type=\"%s\",stream=\"%s\"} %llu\n", names[m],
                         p->name, t->name, pt_toxic_type_name(t->type),
                         t->stream == 0 ? "upstream" : "downstream", (unsigned long long)v);
                metric_label(out, len, line);
            }
        }
        for (size_t i = 0; i < st->n_routes; i++) {
            const pt_chaos_route_t *r = st->routes[i];
            for (size_t k = 0; k < r->n_toxics; k++) {
                const pt_toxic_t *t = &r->toxics[k];
                char line[320];
                uint64_t v = m == 0 ? atomic_load(&t->counters->hits)
                                    : atomic_load(&t->counters->dry_run_hits);
                snprintf(line, sizeof(line),
                         "%s{virtual_service=\"%s\",route=\"%s\",toxic=\"%s\",type=\"%s\"} %llu\n",
                         names[m], r->virtual_service, r->route, t->name,
                         pt_toxic_type_name(t->type), (unsigned long long)v);
                metric_label(out, len, line);
            }
        }
    }
}

void pt_chaos_store_reset(pt_chaos_store_t *st)
{
    for (size_t i = 0; i < st->n_routes; i++) {
        drop_counters(st->routes[i]->toxics, st->routes[i]->n_toxics, NULL, 0);
        free(st->routes[i]);
    }
    st->n_routes = 0;
    for (size_t i = 0; i < st->n_proxies; i++) {
        pt_chaos_proxy_t *p = st->proxies[i];
        if (p->is_declared)
            continue;
        pt_chaos_proxy_t next = *p;
        next.n_toxics = 0; /* their counters go with the update */
        next.enabled = true;
        pt_chaos_error_t e;
        if (pt_chaos_store_update(st, p, &next, &e) != 0)
            pt_log_error("chaos proxy %s: %s", p->name, e.message);
    }
    for (size_t k = 0; k < st->n_decls; k++) {
        pt_chaos_proxy_t *p = pt_chaos_store_find(st, st->decls[k].name);
        if (p == NULL)
            add_decl(st, &st->decls[k]);
        else
            apply_decl(st, p, &st->decls[k]);
    }
    pt_chaos_store_publish(st);
}

void pt_chaos_store_declare(pt_chaos_store_t *st, const pt_chaos_decl_t *decls, size_t n)
{
    /* What a reload no longer declares goes (unless the API made it its own by then). */
    for (size_t k = 0; k < st->n_decls; k++) {
        bool kept = false;
        for (size_t j = 0; j < n && !kept; j++)
            kept = strcmp(decls[j].name, st->decls[k].name) == 0;
        pt_chaos_proxy_t *p = pt_chaos_store_find(st, st->decls[k].name);
        if (!kept && p != NULL && p->is_declared)
            pt_chaos_store_remove(st, p);
    }
    /* A declaration that changed (or is new) wins over what the API did; one that a reload
     * left as it was leaves the runtime changes alone, a deleted proxy included. */
    bool swapped = false;
    for (size_t j = 0; j < n; j++) {
        const pt_chaos_decl_t *prev = NULL;
        for (size_t k = 0; k < st->n_decls && prev == NULL; k++)
            if (strcmp(st->decls[k].name, decls[j].name) == 0)
                prev = &st->decls[k];
        pt_chaos_proxy_t *p = pt_chaos_store_find(st, decls[j].name);
        if (prev != NULL && same_decl(prev, &decls[j])) {
            /* Unchanged, but the certificate files may have been: new handshakes take the new
             * snapshot's context, open sessions and the API's changes stay. */
            if (p != NULL && p->is_declared && p->tls_ctx != NULL &&
                p->tls_ctx != decls[j].tls_ctx) {
                set_tls_ctx(&p->tls_ctx, decls[j].tls_ctx);
                swapped = true;
            }
            continue;
        }
        if (p == NULL)
            add_decl(st, &decls[j]);
        else
            apply_decl(st, p, &decls[j]);
    }
    pt_chaos_decl_t *copy = n > 0 ? malloc(n * sizeof(*copy)) : NULL;
    if (n > 0 && copy == NULL)
        abort();
    for (size_t j = 0; j < n; j++) {
        copy[j] = decls[j];
        copy[j].where = NULL; /* the snapshot's string; not needed past this call */
        /* Outlives the config snapshot: POST /reset. */
        if (copy[j].tls_ctx != NULL)
            SSL_CTX_up_ref(copy[j].tls_ctx);
        for (size_t i = 0; i < copy[j].n_toxics; i++)
            pt_toxic_match_ref(copy[j].toxics[i].match);
    }
    release_decls(st->decls, st->n_decls);
    free(st->decls);
    st->decls = copy;
    st->n_decls = n;
    if (swapped)
        pt_chaos_store_publish(st);
}
