/* filters/l4_registry.h
 * The built-in L4 filters (l4_filter.h), and the chaos harness's runtime (filters/chaos/) as
 * main.c composes it: the store on the main thread publishes snapshots that the workers serve
 * through the worker extension ops, and the admin module hands the Toxiproxy-compatible API
 * its requests. */
#ifndef PT_L4_REGISTRY_H
#define PT_L4_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../config/chaos.h"
#include "../proxy/worker.h"
#include "l4_filter.h"

typedef struct pt_chaos_snapshot pt_chaos_snapshot_t;
typedef struct pt_chaos_store pt_chaos_store_t;

/* The built-in L4 filters. */
extern const pt_l4_filter_ops_t pt_l4_chaos_ops; /* the TCP toxics of a chaos proxy */
/* AuthorizationPolicy on a TCP or TLS connection, at accept (conf: unused). */
extern const pt_l4_filter_ops_t pt_l4_authz_ops;
/* Istio's istio_tcp_* metrics and the tcp_* stats of a routed session (conf: the
 * destination service's name, a string read at on_connect). */
extern const pt_l4_filter_ops_t pt_l4_tcp_metrics_ops;

/* Worker side: the chaos proxies as the worker extension (proxy/worker.h) whose snapshots
 * the store publishes; sessions of a proxy are relayed through pt_l4_chaos_ops. */
extern const pt_worker_ext_ops_t pt_chaos_worker_ops;
void pt_chaos_snapshot_unref(pt_chaos_snapshot_t *s);

/* Main thread. */
/* The store of chaos proxies; publish is called with a new snapshot ref after every change
 * (the caller hands one ref to each worker). NULL on failure. */
pt_chaos_store_t *pt_chaos_store_new(uv_loop_t *loop,
                                     void (*publish)(void *arg, pt_chaos_snapshot_t *snap),
                                     void *arg);
/* Appends the petrel_chaos_* metrics (Prometheus text) to *out (malloc'd, *len bytes, grown
 * with realloc). */
void pt_chaos_store_format_metrics(const pt_chaos_store_t *st, char **out, size_t *len);
/* The ChaosProxy resources of a config (re)load: new or changed declarations are applied,
 * removed ones go, unchanged ones leave the API's changes in place. */
void pt_chaos_store_declare(pt_chaos_store_t *st, const pt_chaos_decl_t *decls, size_t n);
/* Closes every chaos listener and frees the store (once the loop runs its close callback). */
void pt_chaos_store_free(pt_chaos_store_t *st);
void pt_chaos_snapshot_ref(pt_chaos_snapshot_t *s);

/* One API request: method (HTTP_GET, ...) and path (no query) as received, body[0..len).
 * Sets *status, and *out to a malloc'd body (JSON, or text for /version) of *out_len bytes
 * with *type its content type. */
void pt_chaos_api_serve(pt_chaos_store_t *st, int method, const char *path, size_t path_len,
                        const char *body, size_t body_len, int *status, char **out, size_t *out_len,
                        const char **type);

#endif
