/* proxy/route_action.h
 * What the chosen VirtualService route does to an exchange besides picking its destination:
 * header mutations (route level and destination level, request and response), uri and
 * authority rewrites, and redirects answered locally. stream.c calls these at three points:
 * after routing (redirect), when writing the request head upstream (path, Host, headers), and
 * when the response head arrives (response headers). Everything is computed from the
 * stream's route, the match[] entry that held and the destination picked; results live in
 * the request arena. The pt_route_action_*_of functions are the pure parts, for tests.
 *
 * Envoy's order, which Istio inherits: destination-level mutations apply first, then the
 * route's (so a route-level set wins); within a level, remove, then set, then add. */
#ifndef PT_ROUTE_ACTION_H
#define PT_ROUTE_ACTION_H

#include <stddef.h>
#include <stdint.h>

#include "../config/arena.h"
#include "../config/config.h"
#include "http_msg.h"
#include "stream.h"

/* st->route is a redirect: answers it through the stream's local reply (status, Location,
 * the route's response headers, no body), which ends the stream. */
void pt_route_action_redirect(pt_stream_t *st);

/* The origin-form path to send upstream (rewritten, or the request's). */
pt_str_t pt_route_action_path(pt_stream_t *st);
/* The Host to send upstream (rewrite.authority, or the request's authority). */
pt_str_t pt_route_action_authority(const pt_stream_t *st);
/* The request's headers after the mutations; *out may be the request's own array. */
size_t pt_route_action_request_headers(pt_stream_t *st, const pt_header_t **out);
/* Applies the response mutations to h (its header array is replaced by an arena copy). */
void pt_route_action_response_headers(pt_stream_t *st, pt_http_msg_t *h);

/* Pure parts. */
pt_str_t pt_route_action_rewrite_path_of(pt_arena_t *a, const pt_http_rewrite_t *rw,
                                         const pt_http_match_t *matched, pt_str_t path);
pt_str_t pt_route_action_location_of(pt_arena_t *a, const pt_http_redirect_t *rd,
                                     const pt_http_msg_t *h, uint16_t listener_port);
size_t pt_route_action_apply_ops(pt_arena_t *a, const pt_header_t *in, size_t n,
                                 const pt_header_ops_t *ops, const pt_header_t **out);

#endif
