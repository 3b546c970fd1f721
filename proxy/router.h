/* proxy/router.h
 * Route selection, pure functions over a compiled snapshot: which VirtualService route a
 * request head takes on a listener, and which weighted destination it goes to. No I/O, no
 * state: the stream supplies the random number. */
#ifndef PT_ROUTER_H
#define PT_ROUTER_H

#include <stdint.h>

#include "../config/config.h"
#include "http1.h"

/* The listener of c on port, or NULL. */
const pt_listener_config_t *pt_router_listener(const pt_config_t *c, uint16_t port);

/* The first route of the vhost matching head->authority whose match[] accepts the head (URI
 * against the path without its query, method, headers); NULL when none does. */
const pt_http_route_t *pt_router_match(const pt_listener_config_t *l, const pt_http1_head_t *head);

/* The destination that random (any 32-bit value) falls on, weights taken relative to their
 * sum. r must have at least one destination. */
const pt_cluster_t *pt_router_pick_cluster(const pt_http_route_t *r, uint32_t random);

#endif
