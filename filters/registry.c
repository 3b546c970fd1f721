/* filters/registry.c
 * The only place that lists the built-in HTTP filters: one line each, in the order a request
 * passes them (on_response_headers and on_log run in reverse). The router is not listed: it is
 * the chain's terminal step (proxy/stream.c). Filter NAME defines pt_filter_NAME_ops in
 * filters/NAME.c. */
#include "registry.h"

#define PT_BUILTIN_FILTERS(F)                                                                      \
    F(access_log)     /* observers first, so their on_log sees the final status and flag */        \
    F(metrics)        /* Istio's standard metrics */                                               \
    F(trace)          /* the span starts before any policy answers */                              \
    F(https_redirect) /* Gateway tls.httpsRedirect: 301 before any route */                        \
    F(authz)          /* AuthorizationPolicy: 403 before the route is matched */                   \
    F(chaos_http)     /* the route's HTTP toxics, set at runtime (filters/chaos/) */               \
    F(fault)          /* the route's fault.delay (pause), then fault.abort */                      \
    F(redirect)       /* the route's redirect or directResponse */                                 \
    F(headers)        /* the route's response header mutations */

#define DECLARE(name) extern const pt_filter_ops_t pt_filter_##name##_ops;
#define ENTRY(name) &pt_filter_##name##_ops,

PT_BUILTIN_FILTERS(DECLARE)

const pt_filter_ops_t *const pt_filters[] = {PT_BUILTIN_FILTERS(ENTRY)};
const size_t pt_n_filters = sizeof(pt_filters) / sizeof(pt_filters[0]);

_Static_assert(sizeof(pt_filters) / sizeof(pt_filters[0]) <= PT_STREAM_MAX_FILTERS,
               "raise PT_STREAM_MAX_FILTERS in proxy/stream.h");
