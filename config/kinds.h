/* config/kinds.h
 * Private to config/: what the per-kind readers (config/kind_*.c) share with each other and
 * with config/resources.c, which dispatches each document to them.
 *
 * Per-kind schema: each kind file holds one field table per object of the Istio / Petrel API,
 * next to the reader that uses it. The field names are Istio's, exactly
 * (https://istio.io/latest/docs/reference/config/networking/). A field Istio has and Petrel
 * does not implement is listed as PT_FIELD_UNSUPPORTED, so that it is reported ("not
 * supported by Petrel yet") instead of silently ignored; supporting it later means flipping
 * its status there and reading it.
 *
 * Readers report every problem they find and keep going; they never stop at the first. */
#ifndef PT_CONFIG_KINDS_H
#define PT_CONFIG_KINDS_H

#include "resources.h"

/* Shorthands for the field tables. */
#define S PT_FIELD_SUPPORTED
#define A PT_FIELD_ACCEPTED
#define U PT_FIELD_UNSUPPORTED
#define NF(t) (sizeof(t) / sizeof((t)[0]))
#define MAP(cx, n, path, t, out) pt__cfg_map((cx), (n), (path), (t), NF(t), (out))

/* Sub-tables of fields Petrel does not enforce yet: pt__cfg_map checks their keys and shapes
 * (so a typo inside them is still an error), then the holding field gets one warning. The
 * values themselves are not range-checked. */
#define SUB(t) (t), NF(t)

/* Appends item to a resource array of the set, grown in the temporary arena. */
#define PUSH(cx, arr, n, cap, item)                                                                \
    do {                                                                                           \
        (arr) = pt_arena_grow((cx)->tmp, (arr), (n), &(cap), sizeof(*(arr)));                      \
        (arr)[(n)++] = (item);                                                                     \
    } while (0)

/* ---- shared by several kinds (config/resources.c) ------------------------------------- */

/* Istio's WorkloadSelector ({labels}: Sidecar, ServiceEntry, DestinationRule, EnvoyFilter)
 * and type.WorkloadSelector ({matchLabels}: security, telemetry, extension kinds). */
extern const pt_cfg_field_t pt__cfg_selector_fields[1];
extern const pt_cfg_field_t pt__cfg_match_selector_fields[1];
/* PortSelector {number}: a route destination's port, a DestinationRule's portLevelSettings. */
enum { PS_NUMBER, PS__N };
extern const pt_cfg_field_t pt__cfg_port_selector_fields[PS__N];

/* s is an IPv4 or IPv6 literal; its address goes to *ss and *len when they are not NULL. */
bool pt__cfg_is_ip_literal(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* A list of hosts (Istio's hosts[]), lower-cased into the snapshot arena. */
const char **pt__cfg_read_hosts(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                bool allow_ns_prefix, size_t *out_n);
/* An HTTP token character (RFC 9110), and a non-empty token of len bytes. */
bool pt__cfg_is_token_char(unsigned char c);
bool pt__cfg_is_token(const char *s, size_t len);
/* A map of string labels, as key, value pairs in the snapshot arena. */
const char **pt__cfg_read_labels(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 size_t *out_n);
/* An unquoted true or false. */
bool pt__cfg_read_bool(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                       bool *out);

/* ---- HTTP matches (config/kind_virtual_service.c, config/chaos_match.c) ---------------- */

/* One HTTPMatchRequest (a route's match[] entry) into *m (zeroed by the caller), its strings and
 * regexes in cx->out. is_toxic: an HTTP toxic's match (config/chaos_match.c), which has no port,
 * source or gateway conditions (each an error). Errors are reported; *m keeps what was valid. */
void pt__cfg_read_http_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             bool is_toxic, pt_http_match_t *m);
/* An HTTP toxic's match[] at n: compiled into a match of its own (config/chaos.h), held by the
 * snapshot arena cx->out (one ref, released with it). Returns true with *out set (NULL for an
 * empty list), or false after reporting errors (*out NULL). */
bool pt__cfg_read_toxic_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                              pt_toxic_match_t **out);

/* ---- a VirtualService HTTP route's actions (config/kind_vs_actions.c) ----------------- */

/* Istio's Headers {request, response}; NULL when it changes nothing. */
const pt_header_mutations_t *pt__cfg_read_headers(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                                  const pt_cfg_path_t *path);
/* HTTPRewrite, HTTPRedirect, HTTPFaultInjection; NULL when invalid (reported) or, for a
 * fault, when it does nothing. */
const pt_http_rewrite_t *pt__cfg_read_rewrite(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                              const pt_cfg_path_t *path);
const pt_http_redirect_t *pt__cfg_read_redirect(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                                const pt_cfg_path_t *path);
/* Istio's Percent {value: 0..100, fractions allowed} in parts per million (PT_FAULT_SCALE);
 * no value is 0. */
bool pt__cfg_read_percentage(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             uint32_t *out_ppm);
const pt_http_fault_t *pt__cfg_read_fault(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                          const pt_cfg_path_t *path);

/* ---- one reader per kind (config/kind_*.c) --------------------------------------------- */

/* Each adds the resource to set (even with errors, see pt__cfg_resources_add) and reads its
 * spec (NULL only for the Proxy kind, whose spec is optional). */
void pt__cfg_read_proxy(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                        const pt_cfg_node_t *spec);
void pt__cfg_read_peer_authentication(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                      const pt_cfg_node_t *spec);
void pt__cfg_read_gateway(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                          const pt_cfg_node_t *spec);
void pt__cfg_read_virtual_service(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                  const pt_cfg_node_t *spec);
void pt__cfg_read_service_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                const pt_cfg_node_t *spec);
void pt__cfg_read_destination_rule(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                   const pt_cfg_node_t *spec);
void pt__cfg_read_chaos_proxy(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                              const pt_cfg_node_t *spec);
/* A ChaosProxy's spec.tls (kind_gateway.c): the fields of a Gateway server's tls, read by the
 * same code, in mode SIMPLE only; NULL after reporting an error. In cx->tmp. */
pt_res_server_tls_t *pt__cfg_read_chaos_tls(pt_cfg_cx_t *cx, const pt_cfg_node_t *tls,
                                            const pt_cfg_path_t *tp);
void pt__cfg_read_workload_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                 const pt_cfg_node_t *spec);
void pt__cfg_read_authorization_policy(pt_cfg_cx_t *cx, pt_res_set_t *set,
                                       const pt_res_meta_t *meta, const pt_cfg_node_t *spec);
/* One WorkloadEntry spec, or one ServiceEntry endpoints[] item (the same Istio message) at
 * path, into *e; returns false when it is unusable (reported, or a unix socket, warned). With
 * resolution STATIC the address must be an IP literal; a DNS name is kept with addr_len 0. */
bool pt__cfg_read_workload(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           bool must_be_ip, pt_res_se_endpoint_t *e);
/* A kind Petrel knows of and does not enforce yet: checked, then dropped with a warning, or
 * refused when it is a security policy (config/kind_unenforced.c). */
void pt__cfg_read_unenforced(pt_cfg_cx_t *cx, const pt_res_meta_t *meta, const pt_cfg_node_t *kind,
                             const pt_cfg_node_t *spec);

#endif
