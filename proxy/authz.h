/* proxy/authz.h
 * Istio's AuthorizationPolicy as compiled into the snapshot, and its evaluation on the request
 * path (HTTP streams, through filters/authz.c) and at connection time (TCP and TLS-passthrough
 * listeners).
 *
 * config/kind_authorization_policy.c reads the policies and keeps those that apply to this
 * proxy's workload, already turned into the tables of config/policy_types.h: every pattern
 * classified (exact, prefix, suffix, presence, template regex), every IP block parsed, every port a
 * number. The request path only compares. Istio's order holds: DENY policies first (any match
 * refuses), then, when at least one ALLOW policy applies, the request must match one of them; AUDIT
 * policies (and dry-run ones) only count and log. */
#ifndef PT_AUTHZ_H
#define PT_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../config/policy_types.h"
#include "http_msg.h"

/* What a check looks at. The caller fills what it has; addresses are read lazily. */
typedef struct pt_authz_request {
    const pt_http_msg_t *head; /* NULL on a TCP / TLS-passthrough connection */
    const char *principal;     /* verified peer, "cluster.local/ns/a/sa/b"; NULL: none */
    const char *sni;           /* NULL: none */
    size_t sni_len;
    uint16_t dest_port;
    const uv_tcp_t *tcp; /* for the peer and local addresses */
    const char *peer_ip; /* textual peer address when the caller has it, else NULL */
    pt_arena_t *arena;   /* for joining repeated headers; NULL: first value only */
} pt_authz_request_t;

typedef enum pt_authz_verdict {
    PT_AUTHZ_PASS = 0,    /* no policy applies, or an ALLOW policy matched */
    PT_AUTHZ_DENIED,      /* a DENY rule matched */
    PT_AUTHZ_NOT_ALLOWED, /* ALLOW policies apply and none matched */
} pt_authz_verdict_t;

typedef struct pt_authz_result {
    pt_authz_verdict_t verdict;
    const pt_authz_rule_t *rule; /* the DENY (or ALLOW) rule that matched; NULL otherwise */
    bool audited;                /* an AUDIT rule matched */
} pt_authz_result_t;

/* Evaluates the policies of az for req. az may be NULL (no policy: pass). */
pt_authz_result_t pt_authz_check(const pt_authz_t *az, const pt_authz_request_t *req);

/* Envoy's response code details for a refusal, e.g.
 * "rbac_access_denied_matched_policy[ns[foo]-policy[deny-get]-rule[0]]", or "...[none]" when
 * no ALLOW policy matched; written into buf (always terminated). */
const char *pt_authz_details(const pt_authz_result_t *r, char *buf, size_t cap);

typedef struct pt_worker pt_worker_t;
struct pt_config;

/* An HTTP request (filters/authz.c): checks req against az, counts the decision and logs a
 * refusal; true when the request may go on. *res is the decision, for the refusal's details. */
bool pt_authz_request_allows(pt_worker_t *w, const pt_authz_t *az, const pt_authz_request_t *req,
                             pt_authz_result_t *res);
/* When a TCP connection is accepted, or once a TLS-passthrough one's ClientHello is read (sni
 * then set): checks and counts; false means the caller closes the connection. principal is
 * the verified peer's, for a listener that terminates mTLS; NULL otherwise. */
bool pt_authz_connection_allows(pt_worker_t *w, const struct pt_config *config, uint16_t port,
                                const uv_tcp_t *tcp, const char *principal, const char *sni,
                                size_t sni_len);

/* Istio's string patterns, also used by config tests: "*" any non-empty, "abc*", "*abc". */
bool pt_authz_value_matches(const pt_authz_value_t *v, const char *s, size_t len, bool ignore_case);

#endif
