/* filters/registry.h
 * The built-in HTTP filters (filter.h), in the order a request passes them. */
#ifndef PT_FILTER_REGISTRY_H
#define PT_FILTER_REGISTRY_H

#include <stddef.h>

#include "filter.h"

extern const pt_filter_ops_t *const pt_filters[];
extern const size_t pt_n_filters; /* at most PT_STREAM_MAX_FILTERS (proxy/stream.h) */

#endif
