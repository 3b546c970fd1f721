/* proxy/router.h
 * Route selection, pure functions over a compiled snapshot: which VirtualService route a
 * request head takes on a listener, and which weighted destination it goes to. No I/O, no
 * state, no allocation: the stream supplies the random number. Regexes were compiled with the
 * snapshot; matching them uses per-thread scratch only (proxy/regex.h). */
#ifndef PT_ROUTER_H
#define PT_ROUTER_H

#include <stdint.h>

#include "../config/config.h"
#include "http_msg.h"

/* The listener of c on port, or NULL. */
const pt_listener_config_t *pt_router_listener(const pt_config_t *c, uint16_t port);

/* The first route of the vhost matching head->authority whose match[] accepts the head;
 * NULL when none does. A match[] entry holds when all its conditions do: uri (the path without
 * its query), scheme, method, authority, headers, withoutHeaders (none of them may match),
 * queryParams, port (the listener's), and the source conditions compile decided. *matched
 * (when matched is not NULL) gets the entry that held, or NULL for a route without match[]:
 * a uri rewrite needs to know whether the route matched by prefix. */
const pt_http_route_t *pt_router_match_detail(const pt_listener_config_t *l,
                                              const pt_http_msg_t *head,
                                              const pt_http_match_t **matched);

/* Whether one of matches[0..n) accepts head as a route's match[] does (pt_router_match_detail)
 * on a listener of port; n == 0 accepts every head. An HTTP toxic's own match[]
 * (pt_toxic_match_t) selects its requests with it; it has no port condition. */
bool pt_router_matches_any(const pt_http_match_t *matches, size_t n, uint16_t port,
                           const pt_http_msg_t *head);

/* pt_router_match_detail() without the matched entry. */
const pt_http_route_t *pt_router_match(const pt_listener_config_t *l, const pt_http_msg_t *head);

/* The weighted destination that random (any 32-bit value) falls on, weights taken relative to
 * their sum (total_weight > 0). n must be at least 1. */
const pt_weighted_cluster_t *pt_router_pick_weighted(const pt_weighted_cluster_t *wc, size_t n,
                                                     uint32_t total_weight, uint32_t random);

/* The same for an HTTP route's destinations (at least one). */
const pt_weighted_cluster_t *pt_router_pick_destination(const pt_http_route_t *r, uint32_t random);

/* Its cluster. */
const pt_cluster_t *pt_router_pick_cluster(const pt_http_route_t *r, uint32_t random);

#endif
