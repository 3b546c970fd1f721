/* filters/chaos/chaos.h
 * The chaos harness's runtime fault store: chaos proxies (a listen -> upstream pair each) and
 * their toxics, as Toxiproxy models them. The store lives on the main thread and is changed only
 * there (the Toxiproxy-compatible API, api.c); each change publishes an immutable, refcounted
 * snapshot that the workers swap in on their loop (as config snapshots), so the data path takes
 * no lock. A worker opens each enabled proxy's listener (a dup of the main thread's listening
 * socket, so a connection queued before the worker picks the snapshot up is not lost), relays
 * its sessions through the chaos L4 filter (toxics.c) and rebinds open sessions to the toxics of
 * each new snapshot: adding or removing a toxic affects open connections from then on.
 *
 * TCP toxics are per direction (upstream: client -> server). HTTP toxics are per request and
 * sit on a VirtualService route (pt_chaos_route_t), named by the VirtualService and the route,
 * so they survive config reloads, or on an HTTP chaos proxy (is_http), whose connections the
 * worker hands to the HTTP engine; the chaos_http filter (filters/chaos_http.c) applies them, each
 * to the requests its own match[] selects (all without one). */
#ifndef PT_CHAOS_H
#define PT_CHAOS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../../config/chaos.h"
#include "../l4_registry.h"

#define PT_CHAOS_TOXIPROXY_VERSION "2.12.0" /* the Toxiproxy API GET /version claims */

typedef struct pt_chaos_proxy {
    char name[PT_CHAOS_NAME_MAX];
    char listen[PT_CHAOS_ADDR_MAX];        /* as reported: the port picked when 0 was asked */
    char upstream[PT_CHAOS_ADDR_MAX];      /* as given */
    struct sockaddr_storage upstream_addr; /* resolved when set */
    bool enabled;
    /* A ChaosProxy with spec.protocol HTTP: a worker hands its connections to the HTTP engine
     * with the route table the config compiled for it (pt_config_chaos_listener), and its
     * toxics are HTTP toxics, applied per request by filters/chaos_http.c. Only a declaration
     * makes one: the API's proxies are TCP. */
    bool is_http;
    int listen_fd; /* the main thread's listening socket; -1 when disabled */
    uint64_t uid;  /* new whenever the listener or the upstream changes: sessions of an
                      older one are closed, workers reopen their listener */
    pt_toxic_t toxics[PT_CHAOS_MAX_TOXICS];
    size_t n_toxics;
    bool is_declared;         /* by a ChaosProxy resource: */
    pt_chaos_decl_t declared; /* what it says, which POST /reset returns to (tls_ctx NULL) */
    /* The declaration's spec.tls: TLS is terminated with it, the toxics act on the plaintext.
     * One ref per copy held (the store's proxy, each snapshot's); NULL: plaintext, always so for
     * a proxy the API made (Toxiproxy has no TLS). A reload that leaves the declaration as it was
     * swaps in the new snapshot's context, so a rotated certificate serves new handshakes. */
    struct ssl_ctx_st *tls_ctx;
} pt_chaos_proxy_t;

/* The HTTP toxics set on one VirtualService route (POST /routes/{vs}/{route}/toxics). */
typedef struct pt_chaos_route {
    char virtual_service[PT_CHAOS_NAME_MAX]; /* its metadata.name, in any namespace */
    char route[PT_CHAOS_NAME_MAX];           /* the route's name, or "<vs-name>.<index>" */
    pt_toxic_t toxics[PT_CHAOS_MAX_TOXICS];
    size_t n_toxics;
} pt_chaos_route_t;

/* A toxic's hits, counted by the workers (atomics) and read by the metrics; refcounted, as
 * snapshots and the store share it. */
typedef struct pt_toxic_counters {
    atomic_uint refs;
    atomic_uint_fast64_t hits;         /* sessions (HTTP: requests) affected */
    atomic_uint_fast64_t dry_run_hits; /* sessions (requests) a dry run would have affected */
} pt_toxic_counters_t;

pt_toxic_counters_t *pt_toxic_counters_new(void);
void pt_toxic_counters_unref(pt_toxic_counters_t *c);
/* A copy of toxic t takes (retain) or drops (release) the refs a toxic holds: its counters and
 * its match (config/chaos.h). */
void pt_toxic_retain(const pt_toxic_t *t);
void pt_toxic_release(const pt_toxic_t *t);

/* Immutable once published; freed with its last ref (which drops its toxics' counters and
 * matches). */
typedef struct pt_chaos_snapshot {
    atomic_uint refs;
    uint64_t generation;
    pt_chaos_route_t *routes; /* copies, in the same allocation, after the proxies */
    size_t n_routes;
    size_t n_proxies;
    pt_chaos_proxy_t proxies[]; /* copies */
} pt_chaos_snapshot_t;

/* The proxy with uid in s, or NULL. */
const pt_chaos_proxy_t *pt_chaos_snapshot_find(const pt_chaos_snapshot_t *s, uint64_t uid);
/* The proxy named name in s, or NULL. */
const pt_chaos_proxy_t *pt_chaos_snapshot_find_name(const pt_chaos_snapshot_t *s, const char *name);
/* The toxics of the route named route of the VirtualService "<namespace>/<name>", or NULL. */
const pt_chaos_route_t *pt_chaos_snapshot_route(const pt_chaos_snapshot_t *s,
                                                const char *virtual_service, const char *route);

/* Worker side: the snapshot the worker serves (NULL before the first); valid until the
 * worker's next one, so a stream that keeps it takes a ref (pt_chaos_snapshot_ref). */
pt_chaos_snapshot_t *pt_chaos_worker_snapshot(pt_worker_t *w);
/* Whether toxic t of the snapshot in force affects one more session or request: its
 * toxicity, then its cap on hits (cap, or max_hits when cap is 0); a dry run counts and
 * affects nothing. */
bool pt_chaos_roll(pt_worker_t *w, const pt_toxic_t *t, int64_t cap);

#endif
