/* proxy/authz.h
 * Istio's AuthorizationPolicy as compiled into the snapshot, and its evaluation on the request
 * path (HTTP streams) and at connection time (TCP and TLS-passthrough listeners).
 *
 * config/kind_authorization_policy.c reads the policies and keeps those that apply to this
 * proxy's workload, already turned into the tables below: every pattern classified (exact,
 * prefix, suffix, presence, template regex), every IP block parsed, every port a number. The
 * request path only compares. Istio's order holds: DENY policies first (any match refuses),
 * then, when at least one ALLOW policy applies, the request must match one of them; AUDIT
 * policies (and dry-run ones) only count and log. */
#ifndef PT_AUTHZ_H
#define PT_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../config/regex.h"
#include "http1.h"

/* What a condition looks at. Those from PT_AUTHZ_HOST on exist only in HTTP requests. */
typedef enum pt_authz_attr {
    PT_AUTHZ_PRINCIPAL, /* principals, source.principal: the verified peer certificate */
    PT_AUTHZ_NAMESPACE, /* namespaces, source.namespace: the principal's "/ns/<ns>/" part */
    PT_AUTHZ_SOURCE_IP, /* ipBlocks, source.ip: the connection's peer */
    PT_AUTHZ_REMOTE_IP, /* remoteIpBlocks, remote.ip: the peer too (no trusted proxy hops) */
    PT_AUTHZ_DEST_IP,   /* destination.ip: the address the connection came in on */
    PT_AUTHZ_DEST_PORT, /* ports, destination.port: the listener's port */
    PT_AUTHZ_SNI,       /* connection.sni: the TLS ClientHello's server name */
    PT_AUTHZ_HOST,      /* hosts: the request's authority, case-insensitive */
    PT_AUTHZ_METHOD,
    PT_AUTHZ_PATH,   /* paths: without the query, dot segments removed (Envoy's BASE) */
    PT_AUTHZ_HEADER, /* request.headers[name] */
} pt_authz_attr_t;

typedef enum pt_authz_value_kind {
    PT_AUTHZ_EXACT = 1,
    PT_AUTHZ_PREFIX,  /* "abc*" */
    PT_AUTHZ_SUFFIX,  /* "*abc" */
    PT_AUTHZ_PRESENT, /* "*": any non-empty value */
    PT_AUTHZ_REGEX,   /* path templates {*} / {**}, serviceAccounts: full match */
    PT_AUTHZ_CIDR,
    PT_AUTHZ_PORT,
} pt_authz_value_kind_t;

typedef struct pt_authz_value {
    pt_authz_value_kind_t kind;
    const char *s; /* EXACT / PREFIX / SUFFIX: the text without the '*' */
    size_t len;
    const pt_regex_t *re;
    uint8_t addr[16]; /* CIDR: network address, IPv4 in the first 4 bytes */
    uint8_t prefix_len;
    bool is_ipv6;
    uint16_t port;
} pt_authz_value_t;

/* One field of a source or operation, or one half of a when condition: true when any value
 * matches, or, negated (notPrincipals, notValues...), when none does. */
typedef struct pt_authz_cond {
    pt_authz_attr_t attr;
    bool negate;
    const char *header; /* PT_AUTHZ_HEADER: lower-case name */
    size_t header_len;
    const pt_authz_value_t *values;
    size_t n_values;
} pt_authz_cond_t;

/* Conditions that must all hold: one source, one operation, one when entry. */
typedef struct pt_authz_clause {
    const pt_authz_cond_t *conds;
    size_t n_conds;
} pt_authz_clause_t;

/* Clauses of which one must hold: a rule's from[] or to[]; a when entry is a group of one. */
typedef struct pt_authz_group {
    const pt_authz_clause_t *clauses;
    size_t n_clauses;
} pt_authz_group_t;

typedef struct pt_authz_rule {
    const char *name;               /* Envoy's policy name: "ns[foo]-policy[deny-get]-rule[0]" */
    const pt_authz_group_t *groups; /* all must hold; none: the rule matches everything */
    size_t n_groups;
} pt_authz_rule_t;

typedef enum pt_authz_action {
    PT_AUTHZ_ALLOW = 0,
    PT_AUTHZ_DENY,
    PT_AUTHZ_AUDIT,
} pt_authz_action_t;

typedef struct pt_authz_policy {
    const char *name; /* "<namespace>/<name>" */
    pt_authz_action_t action;
    bool dry_run;                 /* istio.io/dry-run: evaluated and counted, never enforced */
    const pt_authz_rule_t *rules; /* none: the policy matches nothing */
    size_t n_rules;
} pt_authz_policy_t;

/* The policies that apply to this proxy, in load order within each action. */
typedef struct pt_authz {
    const pt_authz_policy_t *deny, *allow, *audit;
    size_t n_deny, n_allow, n_audit;
    bool has_enforced_allow; /* an ALLOW policy that is not dry-run: requests must match one */
    bool has_shadow_deny, has_shadow_allow; /* dry-run DENY / ALLOW policies */
} pt_authz_t;

/* What a check looks at. The caller fills what it has; addresses are read lazily. */
typedef struct pt_authz_request {
    const pt_http1_head_t *head; /* NULL on a TCP / TLS-passthrough connection */
    const char *principal;       /* verified peer, "cluster.local/ns/a/sa/b"; NULL: none */
    const char *sni;             /* NULL: none */
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

typedef struct pt_stream pt_stream_t;
typedef struct pt_worker pt_worker_t;
struct pt_config;

/* Before routing (proxy/stream.c): checks the request, counts the decision and, when it is
 * refused, answers 403 "RBAC: access denied" with flag RBAC. Returns false when it answered. */
bool pt_authz_stream_allows(pt_stream_t *st);
/* When a TCP connection is accepted, or once a TLS-passthrough one's ClientHello is read (sni
 * then set): checks and counts; false means the caller closes the connection. principal is
 * the verified peer's, for a listener that terminates mTLS; NULL otherwise. */
bool pt_authz_connection_allows(pt_worker_t *w, const struct pt_config *config, uint16_t port,
                                const uv_tcp_t *tcp, const char *principal, const char *sni,
                                size_t sni_len);

/* Istio's string patterns, also used by config tests: "*" any non-empty, "abc*", "*abc". */
bool pt_authz_value_matches(const pt_authz_value_t *v, const char *s, size_t len, bool ignore_case);

#endif
