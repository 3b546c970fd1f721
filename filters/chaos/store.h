/* filters/chaos/store.h
 * The chaos store's operations (main thread only), shared by the Toxiproxy-compatible API
 * (api.c). Each operation that changes the store publishes a new snapshot (chaos.h). Errors
 * come back as an HTTP status with a message, the way the API reports them. */
#ifndef PT_CHAOS_STORE_H
#define PT_CHAOS_STORE_H

#include "../l4_registry.h"
#include "chaos.h"

struct pt_chaos_store {
    pt_chaos_proxy_t *proxies[PT_CHAOS_MAX_PROXIES]; /* malloc'd each, in creation order */
    size_t n_proxies;
    pt_chaos_route_t *routes[PT_CHAOS_MAX_PROXIES]; /* malloc'd each; none without a toxic */
    size_t n_routes;
    pt_chaos_decl_t *decls; /* the ChaosProxy resources in force (malloc'd copies) */
    size_t n_decls;
    uint64_t next_uid;
    uint64_t generation;
    void (*publish)(void *arg, pt_chaos_snapshot_t *snap);
    void *arg;
    uv_loop_t *loop;      /* the main thread's */
    uv_timer_t ttl_timer; /* the next toxic TTL to end; stopped while none has one */
    bool is_numeric_only; /* addresses only, no name lookups (the fuzz driver: no network) */
};

/* An error: the HTTP status (400, 404, 409, 500) and its message. */
typedef struct pt_chaos_error {
    int status;
    char message[256];
} pt_chaos_error_t;

pt_chaos_proxy_t *pt_chaos_store_find(pt_chaos_store_t *st, const char *name);
/* Adds proxy p (name, listen, upstream, enabled and toxics filled in): resolves its upstream and
 * opens its listener when enabled. Returns 0, or -1 with *e set (p is left as it was). */
int pt_chaos_store_add(pt_chaos_store_t *st, const pt_chaos_proxy_t *p, pt_chaos_error_t *e);
/* Replaces the settings of the proxy named old->name by those of p (listen, upstream, enabled;
 * the toxics are p's): reopens, re-resolves, closes sessions as needed. 0, or -1 with *e set. */
int pt_chaos_store_update(pt_chaos_store_t *st, pt_chaos_proxy_t *old, const pt_chaos_proxy_t *p,
                          pt_chaos_error_t *e);
void pt_chaos_store_remove(pt_chaos_store_t *st, pt_chaos_proxy_t *p);
/* The toxics of route of VirtualService vs; made (with none) when create is set. NULL when absent
 * (or, with create, when PT_CHAOS_MAX_PROXIES routes already have toxics). */
pt_chaos_route_t *pt_chaos_store_route(pt_chaos_store_t *st, const char *vs, const char *route,
                                       bool create);
/* Forgets r once its last toxic went (a no-op while it has one). */
void pt_chaos_store_drop_route(pt_chaos_store_t *st, pt_chaos_route_t *r);
/* POST /reset: declared proxies (ChaosProxy) return to their declaration, others are enabled
 * with no toxic; routes lose their toxics. */
void pt_chaos_store_reset(pt_chaos_store_t *st);
/* Gives a toxic made now its uid, counters (one ref, the store's) and TTL deadline. */
void pt_chaos_store_new_toxic(pt_chaos_store_t *st, pt_toxic_t *t);
/* Restarts t's TTL from now (an update that sets ttl_ms). */
void pt_chaos_store_set_ttl(pt_chaos_store_t *st, pt_toxic_t *t);
/* A fresh uid (proxies take one when their listener or upstream changes; toxics when their
 * toxicity changes, so that sessions roll again). */
uint64_t pt_chaos_store_uid(pt_chaos_store_t *st);
/* Publishes the store as it is now (after a change to a proxy's toxics). */
void pt_chaos_store_publish(pt_chaos_store_t *st);

#endif
