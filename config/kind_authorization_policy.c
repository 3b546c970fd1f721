/* config/kind_authorization_policy.c
 * Istio's AuthorizationPolicy (security.istio.io v1 / v1beta1): read with Istio's field names
 * and validation, compiled into the tables of policy_types.h, and, once the Proxy settings are
 * known, narrowed to the policies that apply to this proxy's workload (pt__cfg_compile_authz).
 *
 * What Petrel cannot enforce is never dropped silently: CUSTOM (external authorizers), JWT
 * conditions (requestPrincipals, request.auth.*: Petrel has no RequestAuthentication) and
 * Envoy metadata keys make `petrel run` and `petrel validate` refuse the config, as for any
 * security policy it cannot honour; `petrel validate --lenient` warns that run will. */
#include <stdio.h>
#include <string.h>

#include "kinds.h"
#include "policy_types.h"

enum { AP_SELECTOR, AP_TARGET_REF, AP_TARGET_REFS, AP_RULES, AP_ACTION, AP_PROVIDER, AP__N };
static const pt_cfg_field_t policy_fields[AP__N] = {
    [AP_SELECTOR] = {.name = "selector", .status = S},
    [AP_TARGET_REF] = {.name = "targetRef", .status = S},
    [AP_TARGET_REFS] = {.name = "targetRefs", .status = S},
    [AP_RULES] = {.name = "rules", .status = S},
    [AP_ACTION] = {.name = "action", .status = S},
    [AP_PROVIDER] = {.name = "provider", .status = S},
};
enum { SEL_MATCH_LABELS, SEL__N };
static const pt_cfg_field_t selector_fields[SEL__N] = {
    [SEL_MATCH_LABELS] = {.name = "matchLabels", .status = S},
};
enum { TR_GROUP, TR_KIND, TR_NAME, TR_NAMESPACE, TR__N };
static const pt_cfg_field_t target_ref_fields[TR__N] = {
    [TR_GROUP] = {.name = "group", .status = S},
    [TR_KIND] = {.name = "kind", .status = S},
    [TR_NAME] = {.name = "name", .status = S},
    [TR_NAMESPACE] = {.name = "namespace", .status = S},
};
enum { PR_NAME, PR__N };
static const pt_cfg_field_t provider_fields[PR__N] = {[PR_NAME] = {.name = "name", .status = S}};
enum { RULE_FROM, RULE_TO, RULE_WHEN, RULE__N };
static const pt_cfg_field_t rule_fields[RULE__N] = {
    [RULE_FROM] = {.name = "from", .status = S},
    [RULE_TO] = {.name = "to", .status = S},
    [RULE_WHEN] = {.name = "when", .status = S},
};
enum { FROM_SOURCE, FROM__N };
static const pt_cfg_field_t from_fields[FROM__N] = {
    [FROM_SOURCE] = {.name = "source", .status = S}};
enum { TO_OPERATION, TO__N };
static const pt_cfg_field_t to_fields[TO__N] = {
    [TO_OPERATION] = {.name = "operation", .status = S}};
enum { WHEN_KEY, WHEN_VALUES, WHEN_NOT_VALUES, WHEN__N };
static const pt_cfg_field_t when_fields[WHEN__N] = {
    [WHEN_KEY] = {.name = "key", .status = S},
    [WHEN_VALUES] = {.name = "values", .status = S},
    [WHEN_NOT_VALUES] = {.name = "notValues", .status = S},
};

/* How a list of values is read. */
typedef enum value_syntax {
    V_STRING, /* Istio's "*", "abc*", "*abc", exact */
    V_PATH,   /* the same, plus path templates {*} and {**} */
    V_IP,     /* an address or a CIDR block */
    V_PORT,   /* 0..65535 */
    V_SA,     /* serviceAccounts: "ns/sa" or "sa" (the policy's namespace) */
    V_JWT,    /* request principals: refused by run */
} value_syntax_t;

/* Source and operation fields, in Istio's order, with what each becomes. */
typedef struct field_spec {
    const char *name;
    pt_authz_attr_t attr;
    bool negate;
    value_syntax_t syntax;
} field_spec_t;

static const field_spec_t source_specs[] = {
    {"principals", PT_AUTHZ_PRINCIPAL, false, V_STRING},
    {"notPrincipals", PT_AUTHZ_PRINCIPAL, true, V_STRING},
    {"requestPrincipals", PT_AUTHZ_PRINCIPAL, false, V_JWT},
    {"notRequestPrincipals", PT_AUTHZ_PRINCIPAL, true, V_JWT},
    {"namespaces", PT_AUTHZ_NAMESPACE, false, V_STRING},
    {"notNamespaces", PT_AUTHZ_NAMESPACE, true, V_STRING},
    {"ipBlocks", PT_AUTHZ_SOURCE_IP, false, V_IP},
    {"notIpBlocks", PT_AUTHZ_SOURCE_IP, true, V_IP},
    {"remoteIpBlocks", PT_AUTHZ_REMOTE_IP, false, V_IP},
    {"notRemoteIpBlocks", PT_AUTHZ_REMOTE_IP, true, V_IP},
    {"serviceAccounts", PT_AUTHZ_PRINCIPAL, false, V_SA},
    {"notServiceAccounts", PT_AUTHZ_PRINCIPAL, true, V_SA},
};
static const field_spec_t operation_specs[] = {
    {"hosts", PT_AUTHZ_HOST, false, V_STRING},     {"notHosts", PT_AUTHZ_HOST, true, V_STRING},
    {"ports", PT_AUTHZ_DEST_PORT, false, V_PORT},  {"notPorts", PT_AUTHZ_DEST_PORT, true, V_PORT},
    {"methods", PT_AUTHZ_METHOD, false, V_STRING}, {"notMethods", PT_AUTHZ_METHOD, true, V_STRING},
    {"paths", PT_AUTHZ_PATH, false, V_PATH},       {"notPaths", PT_AUTHZ_PATH, true, V_PATH},
};
#define N_SOURCE (sizeof(source_specs) / sizeof(source_specs[0]))
#define N_OPERATION (sizeof(operation_specs) / sizeof(operation_specs[0]))

/* One AuthorizationPolicy as read: its compiled form plus what selects its workloads. */
typedef struct pt_res_authz {
    pt_res_meta_t meta;
    pt_authz_policy_t policy;
    bool enforceable;    /* false: CUSTOM, or a part Petrel cannot evaluate (reported) */
    const char **labels; /* selector.matchLabels: key, value, ... */
    size_t n_labels;
    const char **gateways; /* targetRef(s) of kind Gateway: names in the policy's namespace */
    size_t n_gateways, cap_gateways;
    bool has_target_refs; /* targetRef(s) given: the selector does not apply */
} pt_res_authz_t;

/* A part of a policy that Petrel cannot enforce: an error (`petrel run` and `petrel validate`
 * refuse the config), a warning for `petrel validate --lenient`, never silently dropped. */
static void unenforceable(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                          const pt_cfg_path_t *path, const char *what)
{
    a->enforceable = false;
    if (cx->errors->is_lenient)
        pt__cfg_warn(cx, n, path,
                     "%s cannot be enforced by Petrel: `petrel run` refuses this policy rather "
                     "than run open",
                     what);
    else
        pt__cfg_error(cx, n, path,
                      "%s cannot be enforced by Petrel: refusing to run AuthorizationPolicy "
                      "%s/%s open",
                      what, a->meta.ns, a->meta.name);
}

/* Istio's string matcher: "*" any non-empty value, "*abc" suffix, "abc*" prefix, else exact. */
static void string_value(pt_cfg_cx_t *cx, const char *s, pt_authz_value_t *v)
{
    size_t len = strlen(s);
    if (strcmp(s, "*") == 0) {
        v->kind = PT_AUTHZ_PRESENT;
    } else if (s[0] == '*') {
        v->kind = PT_AUTHZ_SUFFIX;
        v->s = pt__cfg_out_str(cx, s + 1);
        v->len = len - 1;
    } else if (len > 0 && s[len - 1] == '*') {
        v->kind = PT_AUTHZ_PREFIX;
        v->s = pt__cfg_out_str(cx, s);
        v->len = len - 1;
    } else {
        v->kind = PT_AUTHZ_EXACT;
        v->s = pt__cfg_out_str(cx, s);
        v->len = len;
    }
}

/* Appends s to re[*n] with regex metacharacters escaped; false when it does not fit. */
static bool append_literal(char *re, size_t cap, size_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (*n + 2 >= cap)
            return false;
        if (strchr("\\^$.|?*+()[]{}", s[i]) != NULL)
            re[(*n)++] = '\\';
        re[(*n)++] = s[i];
    }
    return true;
}

/* Appends regex text as is. */
static bool append_raw(char *re, size_t cap, size_t *n, const char *text)
{
    size_t len = strlen(text);
    if (*n + len + 1 >= cap)
        return false;
    memcpy(re + *n, text, len);
    *n += len;
    return true;
}

/* A path template ("/a/{*}/b", "/{**}/x") as Istio validates it: {*} (one segment) and {**}
 * (any number of segments) stand alone between slashes, nothing follows {**} but literals,
 * and literals are RFC 3986 pchars. Compiled with Envoy's uri_template character sets.
 * Returns false with *why when s is not a valid template. */
static bool path_template(pt_cfg_cx_t *cx, const char *s, pt_authz_value_t *v, const char **why)
{
    static const char pchar[] = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=]";
    static const char literal_ok[] = "-._~%!$&'()+,;:@=";
    char re[PT_REGEX_MAX_PATTERN];
    size_t n = 0;
    bool seen_any = false;
    const char *p = s;
    *why = "too long";
    while (*p != '\0') {
        if (*p == '/') {
            if (!append_literal(re, sizeof(re), &n, "/", 1))
                return false;
            p++;
            continue;
        }
        size_t len = strcspn(p, "/");
        bool one = len == 3 && strncmp(p, "{*}", 3) == 0;
        bool any = len == 4 && strncmp(p, "{**}", 4) == 0;
        if ((one || any) && seen_any) {
            *why = "{**} must be the last operator";
            return false;
        }
        if (one || any) {
            seen_any |= any;
            if (!(any ? append_raw(re, sizeof(re), &n, "(") &&
                            append_raw(re, sizeof(re), &n, pchar) &&
                            append_raw(re, sizeof(re), &n, "|/)*")
                      : append_raw(re, sizeof(re), &n, pchar) &&
                            append_raw(re, sizeof(re), &n, "+")))
                return false;
        } else {
            for (size_t i = 0; i < len; i++)
                if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                      (p[i] >= '0' && p[i] <= '9') || strchr(literal_ok, p[i]) != NULL)) {
                    *why = "{*} and {**} must stand alone between slashes, and other segments "
                           "may hold only RFC 3986 path characters";
                    return false;
                }
            if (!append_literal(re, sizeof(re), &n, p, len))
                return false;
        }
        p += len;
    }
    char err[128];
    v->kind = PT_AUTHZ_REGEX;
    v->re = pt_regex_compile(cx->out, re, n, true, err, sizeof(err));
    if (v->re == NULL) {
        *why = "not a valid template";
        return false;
    }
    return true;
}

/* "10.0.0.1" or "10.0.0.0/16" (IPv6 too). */
static bool ip_value(const char *s, pt_authz_value_t *v)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(addr))
        return false;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!pt__cfg_is_ip_literal(addr, &ss, &sl))
        return false;
    v->kind = PT_AUTHZ_CIDR;
    v->is_ipv6 = ss.ss_family == AF_INET6;
    if (v->is_ipv6)
        memcpy(v->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    else
        memcpy(v->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    unsigned max = v->is_ipv6 ? 128 : 32;
    v->prefix_len = (uint8_t)max;
    if (slash != NULL) {
        const char *p = slash + 1;
        unsigned bits = 0;
        if (*p == '\0')
            return false;
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9' || (bits = bits * 10 + (unsigned)(*p - '0')) > max)
                return false;
        }
        v->prefix_len = (uint8_t)bits;
    }
    return true;
}

/* serviceAccounts "ns/sa" or "sa" (the policy's namespace), as Istio checks them, into the
 * principal regex Istio generates (the principal here has no "spiffe://"). */
static bool service_account_value(pt_cfg_cx_t *cx, const char *s, const char *policy_ns,
                                  pt_authz_value_t *v, const char **why)
{
    const char *slash = strchr(s, '/');
    const char *ns = policy_ns, *sa = s;
    size_t ns_len = strlen(policy_ns);
    *why = "expected <namespace>/<name> or <name>";
    if (strchr(s, '*') != NULL) {
        *why = "wildcards are not allowed";
        return false;
    }
    if (strlen(s) > 320) {
        *why = "longer than 320 characters";
        return false;
    }
    if (slash != NULL) {
        ns = s;
        ns_len = (size_t)(slash - s);
        sa = slash + 1;
        if (ns_len == 0 || *sa == '\0' || strchr(sa, '/') != NULL)
            return false;
    }
    char re[PT_REGEX_MAX_PATTERN], err[128];
    size_t n = 0;
    bool fits = append_raw(re, sizeof(re), &n, ".+/ns/") &&
                append_literal(re, sizeof(re), &n, ns, ns_len) &&
                append_raw(re, sizeof(re), &n, "/(.+/|)sa/") &&
                append_literal(re, sizeof(re), &n, sa, strlen(sa)) &&
                append_raw(re, sizeof(re), &n, "(/.+)?");
    *why = "too long";
    if (!fits)
        return false;
    v->kind = PT_AUTHZ_REGEX;
    v->re = pt_regex_compile(cx->out, re, n, true, err, sizeof(err));
    return v->re != NULL;
}

/* A list of values into cond; false when the list is absent or empty (Istio: not set). */
static bool read_values(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                        const pt_cfg_path_t *path, value_syntax_t syntax, pt_authz_cond_t *cond)
{
    if (n == NULL || !pt__cfg_is_seq(cx, n, path) || n->n_items == 0)
        return false;
    if (syntax == V_SA && n->n_items > 16) {
        pt__cfg_error(cx, n, path, "at most 16 service accounts (Istio's limit)");
        return false;
    }
    if (syntax == V_JWT) {
        unenforceable(cx, a, n, path, "a request principal (JWT; no RequestAuthentication)");
        return false;
    }
    pt_authz_value_t *vs = pt_arena_calloc(cx->out, n->n_items * sizeof(*vs));
    size_t k = 0;
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const char *s;
        if (!pt__cfg_nonempty_str(cx, n->items[i], &ip, &s))
            continue;
        pt_authz_value_t *v = &vs[k];
        const char *why = NULL;
        unsigned long port = 0;
        size_t digits = strspn(s, "0123456789");
        switch (syntax) {
        case V_STRING: string_value(cx, s, v); break;
        case V_PATH:
            if (strstr(s, "{*}") != NULL || strstr(s, "{**}") != NULL) {
                if (!path_template(cx, s, v, &why)) {
                    pt__cfg_error(cx, n->items[i], &ip, "invalid path template \"%s\": %s", s, why);
                    continue;
                }
            } else {
                string_value(cx, s, v);
            }
            break;
        case V_IP:
            if (!ip_value(s, v)) {
                pt__cfg_error(cx, n->items[i], &ip,
                              "invalid IP address or CIDR block \"%s\" (e.g. 10.1.2.3 or "
                              "10.1.0.0/16)",
                              s);
                continue;
            }
            break;
        case V_PORT:
            /* Istio writes ports as strings ("80"); a bare number is read the same. */
            for (size_t d = 0; d < digits && d < 6; d++)
                port = port * 10 + (unsigned long)(s[d] - '0');
            if (digits == 0 || s[digits] != '\0' || digits > 5 || port > 65535) {
                pt__cfg_error(cx, n->items[i], &ip, "invalid port \"%s\" (expected 0..65535)", s);
                continue;
            }
            v->kind = PT_AUTHZ_PORT;
            v->port = (uint16_t)port;
            break;
        case V_SA:
            if (!service_account_value(cx, s, a->meta.ns, v, &why)) {
                pt__cfg_error(cx, n->items[i], &ip, "invalid service account \"%s\": %s", s, why);
                continue;
            }
            break;
        case V_JWT: break;
        }
        k++;
    }
    cond->values = vs;
    cond->n_values = k;
    return k > 0;
}

/* One source or operation map into a clause (conditions in the snapshot arena). */
static bool read_clause(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                        const pt_cfg_path_t *path, const field_spec_t *specs, size_t n_specs,
                        pt_authz_clause_t *out)
{
    enum { MAX_FIELDS = N_SOURCE > N_OPERATION ? N_SOURCE : N_OPERATION };
    pt_cfg_field_t fields[MAX_FIELDS] = {{0}};
    for (size_t i = 0; i < n_specs; i++)
        fields[i] = (pt_cfg_field_t){.name = specs[i].name, .status = S};
    const pt_cfg_node_t *f[MAX_FIELDS];
    if (!pt__cfg_map(cx, n, path, fields, n_specs, f))
        return false;
    pt_authz_cond_t *conds = pt_arena_calloc(cx->out, n_specs * sizeof(*conds));
    size_t k = 0;
    bool any_given = false;
    for (size_t i = 0; i < n_specs; i++) {
        if (f[i] == NULL)
            continue;
        pt_cfg_path_t fp = PT_PATH_KEY(path, specs[i].name);
        any_given |= f[i]->type == PT_CFG_SEQ && f[i]->n_items > 0;
        conds[k].attr = specs[i].attr;
        conds[k].negate = specs[i].negate;
        if (read_values(cx, a, f[i], &fp, specs[i].syntax, &conds[k]))
            k++;
    }
    if (!any_given) {
        pt__cfg_error(cx, n, path, "must not be empty (set at least one field)");
        return false;
    }
    /* Istio: serviceAccounts stand alone (both name the peer's identity). */
    bool sa = false, identity = false;
    for (size_t i = 0; i < n_specs; i++)
        if (f[i] != NULL && specs[i].attr == PT_AUTHZ_PRINCIPAL && specs[i].syntax == V_SA)
            sa = true;
        else if (f[i] != NULL &&
                 (specs[i].attr == PT_AUTHZ_NAMESPACE ||
                  (specs[i].attr == PT_AUTHZ_PRINCIPAL && specs[i].syntax == V_STRING)))
            identity = true;
    if (sa && identity)
        pt__cfg_error(cx, n, path, "serviceAccounts cannot be set with principals or namespaces");
    out->conds = conds;
    out->n_conds = k;
    return true;
}

/* from[] or to[]: a group whose clauses are alternatives. */
static bool read_list_group(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                            const pt_cfg_path_t *path, bool is_from, pt_authz_group_t *out)
{
    if (!pt__cfg_is_seq(cx, n, path))
        return false;
    if (n->n_items == 0) { /* Istio: set but empty is an error, not "any" */
        pt__cfg_error(cx, n, path, "must not be empty (leave it out to match any %s)",
                      is_from ? "source" : "operation");
        return false;
    }
    pt_authz_clause_t *cls = pt_arena_calloc(cx->out, n->n_items * sizeof(*cls));
    size_t k = 0;
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const pt_cfg_node_t *f[1];
        if (is_from ? !MAP(cx, n->items[i], &ip, from_fields, f)
                    : !MAP(cx, n->items[i], &ip, to_fields, f))
            continue;
        pt_cfg_path_t sp = PT_PATH_KEY(&ip, is_from ? "source" : "operation");
        if (f[0] == NULL) {
            pt__cfg_error(cx, n->items[i], &sp, "required");
            continue;
        }
        if (is_from ? read_clause(cx, a, f[0], &sp, source_specs, N_SOURCE, &cls[k])
                    : read_clause(cx, a, f[0], &sp, operation_specs, N_OPERATION, &cls[k]))
            k++;
    }
    out->clauses = cls;
    out->n_clauses = k;
    return k > 0;
}

/* A when[] key: what it reads and how its values are written. false: unknown (reported). */
static bool when_key(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                     const pt_cfg_path_t *path, const char *key, pt_authz_cond_t *c,
                     value_syntax_t *syntax)
{
    static const struct {
        const char *key;
        pt_authz_attr_t attr;
        value_syntax_t syntax;
    } keys[] = {
        {"source.ip", PT_AUTHZ_SOURCE_IP, V_IP},
        {"remote.ip", PT_AUTHZ_REMOTE_IP, V_IP},
        {"source.namespace", PT_AUTHZ_NAMESPACE, V_STRING},
        {"source.principal", PT_AUTHZ_PRINCIPAL, V_STRING},
        {"source.serviceAccount", PT_AUTHZ_PRINCIPAL, V_SA},
        {"destination.ip", PT_AUTHZ_DEST_IP, V_IP},
        {"destination.port", PT_AUTHZ_DEST_PORT, V_PORT},
        {"connection.sni", PT_AUTHZ_SNI, V_STRING},
    };
    for (size_t i = 0; i < NF(keys); i++)
        if (strcmp(key, keys[i].key) == 0) {
            c->attr = keys[i].attr;
            *syntax = keys[i].syntax;
            return true;
        }
    size_t len = strlen(key);
    if (strncmp(key, "request.headers[", 16) == 0 && len > 17 && key[len - 1] == ']') {
        const char *name = key + 16;
        size_t nlen = len - 17;
        if (!pt__cfg_is_token(name, nlen)) {
            pt__cfg_error(cx, n, path, "invalid header name in \"%s\"", key);
            return false;
        }
        char lower[256];
        if (nlen >= sizeof(lower)) {
            pt__cfg_error(cx, n, path, "header name too long in \"%s\"", key);
            return false;
        }
        for (size_t i = 0; i < nlen; i++)
            lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
        lower[nlen] = '\0';
        c->attr = PT_AUTHZ_HEADER;
        c->header = pt__cfg_out_str(cx, lower);
        c->header_len = nlen;
        *syntax = V_STRING;
        return true;
    }
    if (strcmp(key, "request.auth.principal") == 0 || strcmp(key, "request.auth.audiences") == 0 ||
        strcmp(key, "request.auth.presenter") == 0 ||
        (strncmp(key, "request.auth.claims[", 20) == 0 && key[len - 1] == ']')) {
        unenforceable(cx, a, n, path, "a JWT condition (request.auth.*; no RequestAuthentication)");
        return false;
    }
    if (strcmp(key, "destination.namespace") == 0 || strncmp(key, "destination.labels[", 19) == 0) {
        pt__cfg_error(cx, n, path, "key \"%s\" is replaced by %s", key,
                      key[12] == 'n' ? "metadata.namespace" : "the selector");
        return false;
    }
    if (strcmp(key, "destination.name") == 0 || strcmp(key, "destination.user") == 0) {
        pt__cfg_error(cx, n, path, "key \"%s\" is deprecated (v1alpha1 only)", key);
        return false;
    }
    if (strncmp(key, "experimental.envoy.filters.", 27) == 0) {
        unenforceable(cx, a, n, path, "an Envoy filter metadata condition");
        return false;
    }
    pt__cfg_error(cx, n, path,
                  "unknown key \"%s\" (expected request.headers[<name>], source.ip, remote.ip, "
                  "source.namespace, source.principal, source.serviceAccount, "
                  "request.auth.principal, "
                  "request.auth.audiences, request.auth.presenter, request.auth.claims[<name>], "
                  "destination.ip, destination.port or connection.sni)",
                  key);
    return false;
}

/* One when[] entry: a group of one clause, values and notValues both holding. */
static bool read_when(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                      const pt_cfg_path_t *path, pt_authz_group_t *out)
{
    const pt_cfg_node_t *f[WHEN__N];
    if (!MAP(cx, n, path, when_fields, f))
        return false;
    pt_cfg_path_t kp = PT_PATH_KEY(path, "key");
    const char *key;
    if (f[WHEN_KEY] == NULL) {
        pt__cfg_error(cx, n, &kp, "required");
        return false;
    }
    if (!pt__cfg_nonempty_str(cx, f[WHEN_KEY], &kp, &key))
        return false;
    bool has_values =
        f[WHEN_VALUES] != NULL && f[WHEN_VALUES]->type == PT_CFG_SEQ && f[WHEN_VALUES]->n_items > 0;
    bool has_not = f[WHEN_NOT_VALUES] != NULL && f[WHEN_NOT_VALUES]->type == PT_CFG_SEQ &&
                   f[WHEN_NOT_VALUES]->n_items > 0;
    pt_authz_cond_t proto = {0};
    value_syntax_t syntax;
    if (!when_key(cx, a, f[WHEN_KEY], &kp, key, &proto, &syntax))
        return false;
    if (!has_values && !has_not) {
        pt__cfg_error(cx, n, path, "at least one of values or notValues must be set");
        return false;
    }
    pt_authz_cond_t *conds = pt_arena_calloc(cx->out, 2 * sizeof(*conds));
    size_t k = 0;
    pt_cfg_path_t vp = PT_PATH_KEY(path, "values"), np = PT_PATH_KEY(path, "notValues");
    conds[k] = proto;
    if (read_values(cx, a, f[WHEN_VALUES], &vp, syntax, &conds[k]))
        k++;
    conds[k] = proto;
    conds[k].negate = true;
    if (read_values(cx, a, f[WHEN_NOT_VALUES], &np, syntax, &conds[k]))
        k++;
    pt_authz_clause_t *cl = pt_arena_calloc(cx->out, sizeof(*cl));
    cl->conds = conds;
    cl->n_conds = k;
    out->clauses = cl;
    out->n_clauses = 1;
    return true;
}

/* Some item of list (from[] or to[]) has, in its sub map (source / operation), one of keys. */
static bool list_has_key(const pt_cfg_node_t *list, const char *sub, const char *const *keys)
{
    for (size_t i = 0; list != NULL && list->type == PT_CFG_SEQ && i < list->n_items; i++) {
        const pt_cfg_node_t *item = list->items[i];
        for (size_t j = 0; item->type == PT_CFG_MAP && j < item->n_pairs; j++) {
            const pt_cfg_node_t *m = item->pairs[j].value;
            if (strcmp(item->pairs[j].key->str, sub) != 0 || m->type != PT_CFG_MAP)
                continue;
            for (size_t k = 0; k < m->n_pairs; k++)
                for (const char *const *key = keys; *key != NULL; key++)
                    if (strcmp(m->pairs[k].key->str, *key) == 0)
                        return true;
        }
    }
    return false;
}

/* Istio's validation warning: a DENY rule whose from[] has only request principals, or whose
 * to[] names no port, holds only HTTP attributes, which TCP evaluation leaves out. */
static bool only_http_attributes(const pt_cfg_node_t *from, const pt_cfg_node_t *to)
{
    static const char *const l4_source[] = {"principals",
                                            "notPrincipals",
                                            "ipBlocks",
                                            "notIpBlocks",
                                            "namespaces",
                                            "notNamespaces",
                                            "remoteIpBlocks",
                                            "notRemoteIpBlocks",
                                            "serviceAccounts",
                                            "notServiceAccounts",
                                            NULL};
    static const char *const l4_operation[] = {"ports", "notPorts", NULL};
    bool has_from = from != NULL && from->type == PT_CFG_SEQ && from->n_items > 0;
    bool has_to = to != NULL && to->type == PT_CFG_SEQ && to->n_items > 0;
    return (has_from && !has_to && !list_has_key(from, "source", l4_source)) ||
           (has_to && !list_has_key(to, "operation", l4_operation));
}

static void read_rule(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                      const pt_cfg_path_t *path, pt_authz_rule_t *r)
{
    const pt_cfg_node_t *f[RULE__N];
    if (n->type == PT_CFG_NULL) {
        pt__cfg_error(cx, n, path, "must not be null (a rule {} matches every request)");
        return;
    }
    if (!MAP(cx, n, path, rule_fields, f))
        return;
    size_t cap = 2 + (f[RULE_WHEN] && f[RULE_WHEN]->type == PT_CFG_SEQ ? f[RULE_WHEN]->n_items : 0);
    pt_authz_group_t *groups = pt_arena_calloc(cx->out, cap * sizeof(*groups));
    size_t k = 0;
    pt_cfg_path_t fp = PT_PATH_KEY(path, "from"), tp = PT_PATH_KEY(path, "to"),
                  wp = PT_PATH_KEY(path, "when");
    if (f[RULE_FROM] != NULL && read_list_group(cx, a, f[RULE_FROM], &fp, true, &groups[k]))
        k++;
    if (f[RULE_TO] != NULL && read_list_group(cx, a, f[RULE_TO], &tp, false, &groups[k]))
        k++;
    if (f[RULE_WHEN] != NULL && pt__cfg_is_seq(cx, f[RULE_WHEN], &wp))
        for (size_t i = 0; i < f[RULE_WHEN]->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&wp, i);
            if (read_when(cx, a, f[RULE_WHEN]->items[i], &ip, &groups[k]))
                k++;
        }
    r->groups = groups;
    r->n_groups = k;
    if (a->policy.action == PT_AUTHZ_DENY && only_http_attributes(f[RULE_FROM], f[RULE_TO]))
        pt__cfg_warn(cx, n, path,
                     "this DENY rule uses only HTTP attributes: on TCP and TLS-passthrough "
                     "listeners in its scope it denies every connection (Istio's semantics); "
                     "name the ports to limit it");
}

/* targetRef / targetRefs[] items: a Gateway (Gateway API) selects the gateway workload of
 * that name; Service and ServiceEntry targets apply to waypoint proxies only. */
static void read_target_ref(pt_cfg_cx_t *cx, pt_res_authz_t *a, const pt_cfg_node_t *n,
                            const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[TR__N];
    if (!MAP(cx, n, path, target_ref_fields, f))
        return;
    a->has_target_refs = true;
    const char *v[TR__N] = {"", NULL, NULL, NULL};
    for (int i = 0; i < TR__N; i++) {
        pt_cfg_path_t p = PT_PATH_KEY(path, target_ref_fields[i].name);
        if (f[i] != NULL)
            pt__cfg_str(cx, f[i], &p, &v[i]);
        else if (i == TR_KIND || i == TR_NAME)
            pt__cfg_error(cx, n, &p, "required");
    }
    if (v[TR_KIND] == NULL || v[TR_NAME] == NULL)
        return;
    if (v[TR_NAMESPACE] != NULL && v[TR_NAMESPACE][0] != '\0' &&
        strcmp(v[TR_NAMESPACE], a->meta.ns) != 0) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "namespace");
        pt__cfg_error(cx, f[TR_NAMESPACE], &p,
                      "cross-namespace targets are not allowed (the policy is in %s)", a->meta.ns);
        return;
    }
    const char *kind = v[TR_KIND], *group = v[TR_GROUP];
    pt_cfg_path_t kp = PT_PATH_KEY(path, "kind");
    if (strcmp(kind, "Gateway") == 0 && strcmp(group, "gateway.networking.k8s.io") == 0) {
        PUSH(cx, a->gateways, a->n_gateways, a->cap_gateways, v[TR_NAME]);
    } else if ((strcmp(kind, "Service") == 0 && (group[0] == '\0' || strcmp(group, "core") == 0)) ||
               (strcmp(kind, "ServiceEntry") == 0 && strcmp(group, "networking.istio.io") == 0)) {
        pt__cfg_warn(cx, f[TR_KIND], &kp,
                     "a %s target applies to waypoint proxies only; Petrel is not one: this "
                     "target selects nothing here",
                     kind);
    } else if (strcmp(kind, "GatewayClass") == 0 &&
               strcmp(group, "gateway.networking.k8s.io") == 0) {
        unenforceable(cx, a, f[TR_KIND], &kp, "a GatewayClass target");
    } else {
        pt__cfg_error(cx, f[TR_KIND], &kp,
                      "unsupported target %s (group \"%s\"): expected a Gateway "
                      "(gateway.networking.k8s.io), a Service or a ServiceEntry",
                      kind, group);
    }
}

/* metadata.annotations["istio.io/dry-run"] == "true" */
static bool is_dry_run(const pt_cfg_node_t *doc)
{
    for (size_t i = 0; doc->type == PT_CFG_MAP && i < doc->n_pairs; i++) {
        const pt_cfg_node_t *m = doc->pairs[i].value;
        if (strcmp(doc->pairs[i].key->str, "metadata") != 0 || m->type != PT_CFG_MAP)
            continue;
        for (size_t j = 0; j < m->n_pairs; j++) {
            const pt_cfg_node_t *an = m->pairs[j].value;
            if (strcmp(m->pairs[j].key->str, "annotations") != 0 || an->type != PT_CFG_MAP)
                continue;
            for (size_t k = 0; k < an->n_pairs; k++)
                if (strcmp(an->pairs[k].key->str, "istio.io/dry-run") == 0 &&
                    an->pairs[k].value->type == PT_CFG_SCALAR &&
                    strcmp(an->pairs[k].value->str, "true") == 0)
                    return true;
        }
    }
    return false;
}

void pt__cfg_read_authorization_policy(pt_cfg_cx_t *cx, pt_res_set_t *set,
                                       const pt_res_meta_t *meta, const pt_cfg_node_t *spec)
{
    pt_res_authz_t *a = pt_arena_calloc(cx->tmp, sizeof(*a));
    a->meta = *meta;
    a->enforceable = true;
    a->policy.name = pt_arena_printf(cx->out, "%s/%s", meta->ns, meta->name);
    a->policy.dry_run = is_dry_run(meta->doc);
    PUSH(cx, set->authzs, set->n_authzs, set->cap_authzs, a);

    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    const pt_cfg_node_t *f[AP__N];
    if (spec == NULL || spec->type == PT_CFG_NULL) /* as spec: {}: ALLOW nothing */
        return;
    if (!MAP(cx, spec, &sp, policy_fields, f)) {
        a->enforceable = false;
        return;
    }
    if (f[AP_SELECTOR] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "selector");
        const pt_cfg_node_t *sf[SEL__N];
        if (MAP(cx, f[AP_SELECTOR], &p, selector_fields, sf) && sf[SEL_MATCH_LABELS] != NULL) {
            pt_cfg_path_t lp = PT_PATH_KEY(&p, "matchLabels");
            a->labels = pt__cfg_read_labels(cx, sf[SEL_MATCH_LABELS], &lp, &a->n_labels);
        }
    }
    if (f[AP_TARGET_REF] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "targetRef");
        read_target_ref(cx, a, f[AP_TARGET_REF], &p);
    }
    if (f[AP_TARGET_REFS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "targetRefs");
        if (pt__cfg_is_seq(cx, f[AP_TARGET_REFS], &p))
            for (size_t i = 0; i < f[AP_TARGET_REFS]->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_target_ref(cx, a, f[AP_TARGET_REFS]->items[i], &ip);
            }
    }
    if (f[AP_SELECTOR] != NULL && (f[AP_TARGET_REF] != NULL || f[AP_TARGET_REFS] != NULL))
        pt__cfg_error(cx, f[AP_SELECTOR], &sp, "only one of selector or targetRef(s) may be set");
    if (f[AP_TARGET_REF] != NULL && f[AP_TARGET_REFS] != NULL)
        pt__cfg_error(cx, f[AP_TARGET_REF], &sp, "only one of targetRef or targetRefs may be set");

    const char *action = "ALLOW";
    pt_cfg_path_t ap = PT_PATH_KEY(&sp, "action");
    if (f[AP_ACTION] != NULL && !pt__cfg_nonempty_str(cx, f[AP_ACTION], &ap, &action))
        action = "ALLOW";
    if (strcmp(action, "ALLOW") == 0) {
        a->policy.action = PT_AUTHZ_ALLOW;
    } else if (strcmp(action, "DENY") == 0) {
        a->policy.action = PT_AUTHZ_DENY;
    } else if (strcmp(action, "AUDIT") == 0) {
        a->policy.action = PT_AUTHZ_AUDIT;
    } else if (strcmp(action, "CUSTOM") == 0) {
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "provider");
        if (f[AP_PROVIDER] == NULL)
            pt__cfg_error(cx, spec, &pp, "required with action CUSTOM");
        unenforceable(cx, a, f[AP_ACTION], &ap, "action CUSTOM (an external authorizer)");
    } else {
        pt__cfg_error(cx, f[AP_ACTION], &ap,
                      "unknown action \"%s\" (expected ALLOW, DENY, AUDIT or CUSTOM)", action);
        a->enforceable = false;
    }
    if (f[AP_PROVIDER] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "provider");
        const pt_cfg_node_t *pf[PR__N];
        if (MAP(cx, f[AP_PROVIDER], &pp, provider_fields, pf) && strcmp(action, "CUSTOM") != 0)
            pt__cfg_error(cx, f[AP_PROVIDER], &pp, "only allowed with action CUSTOM");
    }

    const pt_cfg_node_t *rules = f[AP_RULES];
    pt_cfg_path_t rp = PT_PATH_KEY(&sp, "rules");
    if (rules != NULL && pt__cfg_is_seq(cx, rules, &rp) && rules->n_items > 0) {
        pt_authz_rule_t *rs = pt_arena_calloc(cx->out, rules->n_items * sizeof(*rs));
        for (size_t i = 0; i < rules->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&rp, i);
            rs[i].name =
                pt_arena_printf(cx->out, "ns[%s]-policy[%s]-rule[%zu]", meta->ns, meta->name, i);
            read_rule(cx, a, rules->items[i], &ip, &rs[i]);
        }
        a->policy.rules = rs;
        a->policy.n_rules = rules->n_items;
    } else if (strcmp(action, "DENY") == 0 || strcmp(action, "CUSTOM") == 0) {
        pt__cfg_error(cx, rules != NULL ? rules : spec, &rp,
                      "an %s policy without rules never applies: add a rule {} to match every "
                      "request",
                      action);
    }
}

/* Every selector label is among the workload's. */
bool pt__cfg_labels_select(const char *const *sel, size_t n_sel, const pt_workload_t *w)
{
    for (size_t i = 0; i < n_sel; i++) {
        bool found = false;
        for (size_t j = 0; j < w->n_labels && !found; j++)
            found = strcmp(w->labels[2 * j], sel[2 * i]) == 0 &&
                    strcmp(w->labels[2 * j + 1], sel[2 * i + 1]) == 0;
        if (!found)
            return false;
    }
    return true;
}

void pt__cfg_warn_not_selected(pt_cfg_cx_t *cx, const pt_res_meta_t *meta, const char *const *sel,
                               size_t n_sel, const pt_workload_t *w)
{
    char want[512] = "", have[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < n_sel && n < sizeof(want); i++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%s=%s", i ? "," : "", sel[2 * i],
                              sel[2 * i + 1]);
    n = (size_t)snprintf(have, sizeof(have), "{");
    for (size_t i = 0; i < w->n_labels && n < sizeof(have); i++)
        n += (size_t)snprintf(have + n, sizeof(have) - n, "%s%s: %s", i ? ", " : "",
                              w->labels[2 * i], w->labels[2 * i + 1]);
    if (n < sizeof(have))
        snprintf(have + n, sizeof(have) - n, "}");
    const pt_cfg_node_t *at = pt__cfg_node_at(meta->doc, "spec.selector");
    pt__cfg_warn_at(cx, at ? at : meta->doc, pt__cfg_meta_path(cx, meta, "spec.selector"),
                    "%s \"%s\" does not apply to this workload: selector %s does not match its "
                    "labels %s (the Proxy's spec.workload.labels, else the pod's)",
                    meta->kind, meta->name, want, have);
}

/* Istio's scope: a policy in the root namespace applies mesh-wide, another to workloads of
 * its namespace; then its selector (labels) or targetRefs (a Gateway: the gateway workload,
 * labelled gateway.networking.k8s.io/gateway-name) narrow it. */
static bool in_scope(const pt_res_authz_t *a, const pt_workload_t *w, const char *root_ns)
{
    return strcmp(a->meta.ns, root_ns) == 0 || strcmp(a->meta.ns, w->ns) == 0;
}

static bool applies(const pt_res_authz_t *a, const pt_workload_t *w, const char *root_ns)
{
    if (!in_scope(a, w, root_ns))
        return false;
    if (!a->has_target_refs)
        return pt__cfg_labels_select(a->labels, a->n_labels, w);
    for (size_t i = 0; i < a->n_gateways; i++) {
        const char *sel[2] = {"gateway.networking.k8s.io/gateway-name", a->gateways[i]};
        if (strcmp(a->meta.ns, w->ns) == 0 && pt__cfg_labels_select(sel, 1, w))
            return true;
    }
    return false;
}

void pt__cfg_compile_authz(pt_cfg_cx_t *cx, pt_res_set_t *set, pt_config_t *c)
{
    const pt_workload_t *w = &c->proxy.workload;
    const char *root_ns = c->proxy.root_namespace ? c->proxy.root_namespace : "istio-system";
    size_t n[3] = {0, 0, 0};
    for (size_t i = 0; i < set->n_authzs; i++) {
        pt_res_authz_t *a = set->authzs[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(set->authzs[j]->meta.ns, a->meta.ns) == 0 &&
                strcmp(set->authzs[j]->meta.name, a->meta.name) == 0) {
                const pt_cfg_node_t *first = set->authzs[j]->meta.doc;
                pt__cfg_error_at(cx, a->meta.name_node ? a->meta.name_node : a->meta.doc,
                                 pt__cfg_meta_path(cx, &a->meta, "metadata.name"),
                                 "duplicate AuthorizationPolicy %s/%s (first at %s:%d:%d)",
                                 a->meta.ns, a->meta.name, first->file, first->line, first->col);
                a->enforceable = false;
            }
        if (a->enforceable && applies(a, w, root_ns))
            n[a->policy.action]++;
        else if (a->n_labels > 0 && !a->has_target_refs && in_scope(a, w, root_ns))
            pt__cfg_warn_not_selected(cx, &a->meta, a->labels, a->n_labels, w);
    }
    if (n[0] + n[1] + n[2] == 0)
        return;
    pt_authz_t *az = pt_arena_calloc(cx->out, sizeof(*az));
    pt_authz_policy_t *lists[3];
    for (int k = 0; k < 3; k++)
        lists[k] = pt_arena_calloc(cx->out, (n[k] + 1) * sizeof(pt_authz_policy_t));
    size_t at[3] = {0, 0, 0};
    for (size_t i = 0; i < set->n_authzs; i++) {
        pt_res_authz_t *a = set->authzs[i];
        if (!a->enforceable || !applies(a, w, root_ns))
            continue;
        lists[a->policy.action][at[a->policy.action]++] = a->policy;
        bool allow = a->policy.action == PT_AUTHZ_ALLOW, deny = a->policy.action == PT_AUTHZ_DENY;
        az->has_enforced_allow |= allow && !a->policy.dry_run;
        az->has_shadow_allow |= allow && a->policy.dry_run;
        az->has_shadow_deny |= deny && a->policy.dry_run;
    }
    az->allow = lists[PT_AUTHZ_ALLOW];
    az->n_allow = n[PT_AUTHZ_ALLOW];
    az->deny = lists[PT_AUTHZ_DENY];
    az->n_deny = n[PT_AUTHZ_DENY];
    az->audit = lists[PT_AUTHZ_AUDIT];
    az->n_audit = n[PT_AUTHZ_AUDIT];
    c->authz = az;
}
