/* proxy/dns.c
 * The main thread's DNS resolver (see dns.h): c-ares on the main libuv loop, one entry per
 * name with its last good answer, refreshed in the background when its TTL expires. */
#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"

typedef struct dns_host dns_host_t;
struct dns_host {
    dns_host_t *next;
    pt_dns_t *dns;
    char *name;
    char *service;                  /* "ns/name" of the ServiceEntry naming it, for log lines */
    struct sockaddr_storage *addrs; /* the last good answer (malloc'd), ports 0 */
    size_t n_addrs;
    bool has_answer;
    bool in_flight;
    bool tracked;      /* listed by the snapshot in force; an untracked entry is freed */
    unsigned failures; /* consecutive */
    int last_status;   /* of the last query: a log line only when it changes */
    uint64_t due_ms;   /* loop time of the next query */
};

typedef struct dns_poll dns_poll_t;
struct dns_poll {
    uv_poll_t poll;
    dns_poll_t *next;
    pt_dns_t *dns;
    ares_socket_t fd;
};

struct pt_dns {
    uv_loop_t *loop;
    ares_channel channel;
    uint64_t min_refresh_ms, max_refresh_ms;
    pt_stats_t *stats;
    uv_timer_t ares_timer;    /* c-ares' own query timeouts */
    uv_timer_t refresh_timer; /* the next due refresh */
    uv_timer_t notify_timer;  /* one on_change per loop turn, however many answers changed */
    dns_host_t *hosts;
    dns_poll_t *polls;
    void (*on_change)(void *arg);
    void *arg;
    int open_handles; /* freed when the last one closes after pt_dns_stop */
    bool stopping;
};

/* ---- pure helpers ---------------------------------------------------------------------- */

uint64_t pt_dns_refresh_ms(uint32_t ttl_s, uint64_t min_ms, uint64_t max_ms)
{
    uint64_t ms = (uint64_t)ttl_s * 1000;
    if (ms < min_ms)
        ms = min_ms;
    if (ms > max_ms)
        ms = max_ms;
    return ms;
}

uint64_t pt_dns_retry_ms(unsigned n, uint64_t min_ms, uint64_t max_ms)
{
    uint64_t cap = min_ms * 10 < max_ms ? min_ms * 10 : max_ms;
    uint64_t ms = min_ms;
    for (unsigned i = 1; i < n && ms < cap; i++)
        ms *= 2;
    return ms < cap ? ms : cap;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

size_t pt_dns_prefer_ipv4(struct sockaddr_storage *v, size_t n)
{
    bool has_v4 = false;
    for (size_t i = 0; i < n; i++)
        has_v4 |= v[i].ss_family == AF_INET;
    int keep = has_v4 ? AF_INET : AF_INET6;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].ss_family != keep)
            continue;
        bool dup = false;
        for (size_t j = 0; j < out && !dup; j++)
            dup = same_addr(&v[j], &v[i]);
        if (!dup)
            v[out++] = v[i];
    }
    return out;
}

uint32_t pt_dns_min_ttl(const struct ares_addrinfo *ai)
{
    long best = -1;
    for (const struct ares_addrinfo_node *n = ai != NULL ? ai->nodes : NULL; n; n = n->ai_next)
        if (best < 0 || n->ai_ttl < best)
            best = n->ai_ttl;
    for (const struct ares_addrinfo_cname *c = ai != NULL ? ai->cnames : NULL; c; c = c->next)
        if (best < 0 || c->ttl < best)
            best = c->ttl;
    return best > 0 ? (uint32_t)best : 0;
}

bool pt_dns_same_addrs(const struct sockaddr_storage *a, size_t na,
                       const struct sockaddr_storage *b, size_t nb)
{
    if (na != nb)
        return false;
    /* Both are free of duplicates (pt_dns_prefer_ipv4), so inclusion one way is equality. */
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t j = 0; j < nb && !found; j++)
            found = same_addr(&a[i], &b[j]);
        if (!found)
            return false;
    }
    return true;
}

/* ---- c-ares on the libuv loop ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    pt_dns_t *d = h->data;
    if (--d->open_handles == 0 && d->stopping)
        free(d);
}

static void on_poll_closed(uv_handle_t *h)
{
    dns_poll_t *p = (dns_poll_t *)h;
    pt_dns_t *d = p->dns;
    free(p);
    if (--d->open_handles == 0 && d->stopping)
        free(d);
}

static void arm_ares_timer(pt_dns_t *d);

static void on_ares_timer(uv_timer_t *t)
{
    pt_dns_t *d = t->data;
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_ares_timer(d);
}

static void arm_ares_timer(pt_dns_t *d)
{
    if (d->stopping)
        return;
    struct timeval tv;
    if (ares_timeout(d->channel, NULL, &tv) == NULL) {
        uv_timer_stop(&d->ares_timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    uv_timer_start(&d->ares_timer, on_ares_timer, ms > 0 ? ms : 1, 0);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    dns_poll_t *p = (dns_poll_t *)h;
    pt_dns_t *d = p->dns;
    ares_socket_t fd = p->fd;
    /* An error on the socket: let c-ares read it and find out. */
    bool readable = status < 0 || (events & UV_READABLE);
    bool writable = status >= 0 && (events & UV_WRITABLE);
    ares_process_fd(d->channel, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
    arm_ares_timer(d);
}

/* c-ares opens, watches and closes its sockets through this callback. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    pt_dns_t *d = data;
    dns_poll_t **pp = &d->polls;
    while (*pp != NULL && (*pp)->fd != fd)
        pp = &(*pp)->next;
    dns_poll_t *p = *pp;
    if (!readable && !writable) {
        if (p != NULL) {
            *pp = p->next;
            uv_poll_stop(&p->poll);
            uv_close((uv_handle_t *)&p->poll, on_poll_closed);
        }
        return;
    }
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || uv_poll_init_socket(d->loop, &p->poll, fd) != 0) {
            free(p);
            pt_log_error("dns: cannot watch a c-ares socket");
            return;
        }
        p->dns = d;
        p->fd = fd;
        p->next = d->polls;
        d->polls = p;
        d->open_handles++;
    }
    uv_poll_start(&p->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* ---- names, answers and refreshes ------------------------------------------------------- */

static void free_host(dns_host_t *h)
{
    free(h->addrs);
    free(h->name);
    free(h->service);
    free(h);
}

static void on_notify(uv_timer_t *t)
{
    pt_dns_t *d = t->data;
    d->on_change(d->arg);
}

static void schedule(pt_dns_t *d);

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    dns_host_t *h = arg;
    pt_dns_t *d = h->dns;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        ares_freeaddrinfo(ai);
        return; /* pt_dns_stop frees the entries */
    }
    h->in_flight = false;
    if (!h->tracked) {
        /* Forgotten while its query ran: unlink and free it. */
        dns_host_t **pp = &d->hosts;
        while (*pp != h)
            pp = &(*pp)->next;
        *pp = h->next;
        free_host(h);
        ares_freeaddrinfo(ai);
        return;
    }
    uint64_t now = uv_now(d->loop);
    if (status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND) {
        size_t n = 0;
        for (const struct ares_addrinfo_node *x = ai ? ai->nodes : NULL; x; x = x->ai_next)
            n++;
        struct sockaddr_storage *v = calloc(n + 1, sizeof(*v));
        if (v == NULL)
            abort();
        n = 0;
        for (const struct ares_addrinfo_node *x = ai ? ai->nodes : NULL; x; x = x->ai_next)
            if ((x->ai_family == AF_INET || x->ai_family == AF_INET6) &&
                x->ai_addrlen <= sizeof(*v)) {
                memcpy(&v[n], x->ai_addr, x->ai_addrlen);
                ((struct sockaddr_in *)&v[n])->sin_port = 0; /* same offset in sockaddr_in6 */
                n++;
            }
        n = pt_dns_prefer_ipv4(v, n);
        uint32_t ttl = pt_dns_min_ttl(ai);
        PT_STAT_INC(d->stats, dns_answers);
        if (status == ARES_ENOTFOUND && h->last_status != ARES_ENOTFOUND)
            pt_log_warn("dns: %s (ServiceEntry %s): NXDOMAIN, the name does not exist; its "
                        "endpoints are gone until it resolves",
                        h->name, h->service);
        if (h->failures > 0)
            pt_log_info("dns: %s resolves again after %u failure%s", h->name, h->failures,
                        h->failures == 1 ? "" : "s");
        if (!h->has_answer || !pt_dns_same_addrs(h->addrs, h->n_addrs, v, n)) {
            char first[INET6_ADDRSTRLEN] = "-";
            if (n > 0)
                inet_ntop(v[0].ss_family,
                          v[0].ss_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)&v[0])->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)&v[0])->sin6_addr,
                          first, sizeof(first));
            pt_log_info("dns: %s -> %zu address%s (first %s), ttl %us", h->name, n,
                        n == 1 ? "" : "es", first, (unsigned)ttl);
            free(h->addrs);
            h->addrs = v;
            h->n_addrs = n;
            h->has_answer = true;
            PT_STAT_INC(d->stats, dns_answer_changes);
            uv_timer_start(&d->notify_timer, on_notify, 0, 0);
        } else {
            free(v);
        }
        h->failures = 0;
        h->due_ms = now + pt_dns_refresh_ms(ttl, d->min_refresh_ms, d->max_refresh_ms);
    } else {
        PT_STAT_INC(d->stats, dns_failures);
        h->failures++;
        if (status != h->last_status)
            pt_log_warn("dns: %s (ServiceEntry %s): %s; %s", h->name, h->service,
                        ares_strerror(status),
                        h->has_answer ? "keeping the last answer" : "no answer yet");
        h->due_ms = now + pt_dns_retry_ms(h->failures, d->min_refresh_ms, d->max_refresh_ms);
    }
    h->last_status = status;
    ares_freeaddrinfo(ai);
    schedule(d);
}

static void query(pt_dns_t *d, dns_host_t *h)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT};
    h->in_flight = true;
    PT_STAT_INC(d->stats, dns_queries);
    ares_getaddrinfo(d->channel, h->name, NULL, &hints, on_answer, h);
    arm_ares_timer(d);
}

static void on_refresh(uv_timer_t *t)
{
    pt_dns_t *d = t->data;
    uint64_t now = uv_now(d->loop);
    /* A query may answer at once (an address literal, /etc/hosts) and reschedule: walk a
     * list that only ever grows at its head here. */
    for (dns_host_t *h = d->hosts; h != NULL; h = h->next)
        if (h->tracked && !h->in_flight && h->due_ms <= now)
            query(d, h);
    schedule(d);
}

static void schedule(pt_dns_t *d)
{
    if (d->stopping)
        return;
    uint64_t now = uv_now(d->loop), due = UINT64_MAX;
    for (dns_host_t *h = d->hosts; h != NULL; h = h->next)
        if (h->tracked && !h->in_flight && h->due_ms < due)
            due = h->due_ms;
    if (due == UINT64_MAX)
        uv_timer_stop(&d->refresh_timer);
    else
        uv_timer_start(&d->refresh_timer, on_refresh, due > now ? due - now : 0, 0);
}

pt_dns_t *pt_dns_start(uv_loop_t *loop, const pt_dns_settings_t *settings, pt_stats_t *stats,
                       void (*on_change)(void *arg), void *arg)
{
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        pt_log_error("dns: c-ares: %s", ares_strerror(rc));
        return NULL;
    }
    pt_dns_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort();
    d->loop = loop;
    d->stats = stats;
    d->on_change = on_change;
    d->arg = arg;
    d->min_refresh_ms = settings->min_refresh_ms;
    d->max_refresh_ms = settings->max_refresh_ms;
    struct ares_options o = {
        .sock_state_cb = on_sock_state,
        .sock_state_cb_data = d,
        .timeout = (int)settings->timeout_ms,
        .tries = 2,
    };
    rc = ares_init_options(&d->channel, &o,
                           ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc == ARES_SUCCESS && settings->servers != NULL)
        rc = ares_set_servers_ports_csv(d->channel, settings->servers);
    if (rc != ARES_SUCCESS) {
        pt_log_error("dns: c-ares: %s", ares_strerror(rc));
        if (d->channel != NULL)
            ares_destroy(d->channel);
        free(d);
        ares_library_cleanup();
        return NULL;
    }
    uv_timer_init(loop, &d->ares_timer);
    uv_timer_init(loop, &d->refresh_timer);
    uv_timer_init(loop, &d->notify_timer);
    d->ares_timer.data = d->refresh_timer.data = d->notify_timer.data = d;
    d->open_handles = 3;
    return d;
}

void pt_dns_configure(pt_dns_t *d, const pt_dns_settings_t *settings)
{
    d->min_refresh_ms = settings->min_refresh_ms;
    d->max_refresh_ms = settings->max_refresh_ms;
}

void pt_dns_track(pt_dns_t *d, const char *const *names, const char *const *services, size_t n)
{
    for (dns_host_t *h = d->hosts; h != NULL; h = h->next)
        h->tracked = false;
    uint64_t now = uv_now(d->loop);
    for (size_t i = 0; i < n; i++) {
        dns_host_t *h = d->hosts;
        while (h != NULL && strcmp(h->name, names[i]) != 0)
            h = h->next;
        if (h == NULL) {
            h = calloc(1, sizeof(*h));
            if (h == NULL || (h->name = strdup(names[i])) == NULL)
                abort();
            h->dns = d;
            h->due_ms = now;
            h->last_status = ARES_SUCCESS;
            h->next = d->hosts;
            d->hosts = h;
        }
        h->tracked = true;
        free(h->service);
        if ((h->service = strdup(services[i])) == NULL)
            abort();
    }
    /* Forget untracked names now, or when their query answers. */
    for (dns_host_t **pp = &d->hosts; *pp != NULL;) {
        dns_host_t *h = *pp;
        if (!h->tracked && !h->in_flight) {
            *pp = h->next;
            free_host(h);
        } else {
            pp = &h->next;
        }
    }
    on_refresh(&d->refresh_timer);
}

size_t pt_dns_lookup(void *dns, const char *name, const struct sockaddr_storage **addrs)
{
    pt_dns_t *d = dns;
    for (dns_host_t *h = d->hosts; h != NULL; h = h->next)
        if (strcmp(h->name, name) == 0 && h->has_answer) {
            *addrs = h->addrs;
            return h->n_addrs;
        }
    return 0;
}

void pt_dns_stop(pt_dns_t *d)
{
    if (d == NULL || d->stopping)
        return;
    d->stopping = true;
    /* Runs every pending callback with ARES_EDESTRUCTION and closes c-ares' sockets. */
    ares_destroy(d->channel);
    while (d->polls != NULL) {
        dns_poll_t *p = d->polls;
        d->polls = p->next;
        uv_poll_stop(&p->poll);
        uv_close((uv_handle_t *)&p->poll, on_poll_closed);
    }
    while (d->hosts != NULL) {
        dns_host_t *h = d->hosts;
        d->hosts = h->next;
        free_host(h);
    }
    uv_close((uv_handle_t *)&d->ares_timer, on_handle_closed);
    uv_close((uv_handle_t *)&d->refresh_timer, on_handle_closed);
    uv_close((uv_handle_t *)&d->notify_timer, on_handle_closed);
    ares_library_cleanup();
}
