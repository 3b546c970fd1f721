/* config/kind_chaos_proxy.c
 * Petrel's ChaosProxy kind: a chaos proxy (listen -> upstream) and its toxics, declared in the
 * watched config. The runtime store (filters/chaos) creates it at start and on reloads, keeps
 * what the Toxiproxy-compatible API changed beside it, and returns to it on POST /reset. The
 * toxics are checked against the one table in config/chaos.c, as the API checks them.
 *
 *   apiVersion: petrel.io/v1alpha1
 *   kind: ChaosProxy
 *   metadata: {name: redis}            # the proxy's name in the API
 *   spec:
 *     listen: 127.0.0.1:26379          # port 0: any free port
 *     upstream: 127.0.0.1:6379
 *     enabled: true
 *     toxics:
 *     - {type: latency, stream: downstream, toxicity: 0.5, attributes: {latency: 100}}
 *     tls: {serverCertificate: /certs/tls.crt, privateKey: /certs/tls.key}  # optional
 *     protocol: TCP                    # or HTTP
 *
 * With tls, the proxy terminates TLS as a Gateway TLS server does (the same fields, reader and
 * context builder: kind_gateway.c, tls_contexts.c), so the toxics act on the plaintext. With
 * protocol HTTP the HTTP engine runs between listen and upstream (compile.c makes its route
 * table and cluster) and the toxics are HTTP toxics, per request; TCP toxics are refused there,
 * as HTTP toxics are on a TCP proxy. An HTTP toxic may have a match[] of its own (Istio's
 * HTTPMatchRequest, read by the VirtualService's reader: config/chaos_match.c), and then applies
 * only to the requests it matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "kinds.h"

enum { CP_LISTEN, CP_UPSTREAM, CP_ENABLED, CP_TOXICS, CP_TLS, CP_PROTOCOL, CP__N };
static const pt_cfg_field_t chaos_fields[CP__N] = {
    [CP_LISTEN] = {.name = "listen", .status = S},
    [CP_UPSTREAM] = {.name = "upstream", .status = S},
    [CP_ENABLED] = {.name = "enabled", .status = S},
    [CP_TOXICS] = {.name = "toxics", .status = S},
    [CP_TLS] = {.name = "tls", .status = S}, /* a Gateway server's, read by kind_gateway.c */
    [CP_PROTOCOL] = {.name = "protocol", .status = S},
};
enum {
    TX_NAME,
    TX_TYPE,
    TX_STREAM,
    TX_TOXICITY,
    TX_ATTRIBUTES,
    TX_TTL,
    TX_MAX_HITS,
    TX_DRY_RUN,
    TX_MATCH,
    TX__N
};
static const pt_cfg_field_t toxic_fields[TX__N] = {
    [TX_NAME] = {.name = "name", .status = S},
    [TX_TYPE] = {.name = "type", .status = S},
    [TX_STREAM] = {.name = "stream", .status = S},
    [TX_TOXICITY] = {.name = "toxicity", .status = S},
    [TX_ATTRIBUTES] = {.name = "attributes", .status = S},
    [TX_TTL] = {.name = "ttl_ms", .status = S},
    [TX_MAX_HITS] = {.name = "max_hits", .status = S},
    [TX_DRY_RUN] = {.name = "dry_run", .status = S},
    [TX_MATCH] = {.name = "match", .status = S},
};

#define TCP_TYPES "latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data"
#define HTTP_TYPES "http_abort, http_delay, http_slow_body, http_drop_first"

/* "host:port" with a port in [min_port, 65535], copied into out (cap bytes). */
static bool read_address(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                         long min_port, char *out, size_t cap)
{
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return false;
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon[1] == '\0' || *end != '\0' || port < min_port || port > 65535 ||
        strlen(s) >= cap) {
        pt__cfg_error(cx, n, path, "must be host:port with a port from %ld to 65535, got \"%s\"",
                      min_port, s);
        return false;
    }
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* Whether the host of "host:port" (checked by read_address) can be an HTTP proxy's cluster
 * endpoint: an IP literal ("[v6]" for IPv6), or a DNS name the resolver can be asked for. */
static bool is_endpoint_host(const char *addr)
{
    size_t n = (size_t)(strrchr(addr, ':') - addr);
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
        return n - 2 < 64 && memchr(addr + 1, ':', n - 2) != NULL;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((addr[i] >= 'a' && addr[i] <= 'z') || (addr[i] >= 'A' && addr[i] <= 'Z') ||
              (addr[i] >= '0' && addr[i] <= '9') || addr[i] == '-' || addr[i] == '.'))
            return false;
    return true;
}

/* One toxic of a proxy; is_http: of an HTTP proxy, which takes HTTP toxics only. */
static bool read_toxic(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                       bool is_http, pt_toxic_t *t)
{
    const pt_cfg_node_t *f[TX__N];
    *t = (pt_toxic_t){.toxicity = 1.0, .stream = 1};
    if (!MAP(cx, n, path, toxic_fields, f))
        return false;
    bool ok = true;
    const char *s;
    pt_cfg_path_t tp = PT_PATH_KEY(path, "type");
    int type = -1;
    if (f[TX_TYPE] == NULL) {
        pt__cfg_error(cx, n, &tp, "required");
        return false;
    }
    if (pt__cfg_nonempty_str(cx, f[TX_TYPE], &tp, &s) && (type = pt_toxic_type_from_name(s)) < 0)
        pt__cfg_error(cx, f[TX_TYPE], &tp, "unknown toxic type \"%s\" (expected %s)", s,
                      is_http ? HTTP_TYPES : TCP_TYPES);
    if (type >= 0 && pt_toxic_is_http((pt_toxic_type_t)type) != is_http) {
        if (is_http)
            pt__cfg_error(cx, f[TX_TYPE], &tp,
                          "\"%s\" is a TCP toxic: an HTTP chaos proxy (spec.protocol HTTP) takes "
                          "HTTP toxics (%s)",
                          s, HTTP_TYPES);
        else
            pt__cfg_error(cx, f[TX_TYPE], &tp,
                          "\"%s\" is an HTTP toxic: it goes on an HTTP chaos proxy "
                          "(spec.protocol: HTTP) or on a route "
                          "(POST /routes/{virtual-service}/{route}/toxics), not on a TCP chaos "
                          "proxy",
                          s);
        return false;
    }
    if (type < 0)
        return false;
    t->type = (pt_toxic_type_t)type;
    if (f[TX_STREAM] != NULL) {
        pt_cfg_path_t sp = PT_PATH_KEY(path, "stream");
        if (!pt__cfg_nonempty_str(cx, f[TX_STREAM], &sp, &s)) {
            ok = false;
        } else if (strcmp(s, "upstream") == 0 || strcmp(s, "downstream") == 0) {
            t->stream = strcmp(s, "upstream") == 0 ? 0 : 1;
        } else {
            pt__cfg_error(cx, f[TX_STREAM], &sp, "must be upstream or downstream, got \"%s\"", s);
            ok = false;
        }
    }
    if (f[TX_TOXICITY] != NULL) {
        pt_cfg_path_t xp = PT_PATH_KEY(path, "toxicity");
        char *end = NULL;
        double v = -1;
        if (pt__cfg_str(cx, f[TX_TOXICITY], &xp, &s) && !f[TX_TOXICITY]->is_quoted)
            v = strtod(s, &end);
        if (end == NULL || end == s || *end != '\0' || !(v >= 0 && v <= 1)) {
            pt__cfg_error(cx, f[TX_TOXICITY], &xp, "must be a number from 0 to 1");
            ok = false;
        } else {
            t->toxicity = v;
        }
    }
    if (f[TX_NAME] != NULL) {
        pt_cfg_path_t np = PT_PATH_KEY(path, "name");
        if (pt__cfg_nonempty_str(cx, f[TX_NAME], &np, &s)) {
            if (strlen(s) < sizeof(t->name) && pt_chaos_is_valid_name(s)) {
                memcpy(t->name, s, strlen(s) + 1);
            } else {
                pt__cfg_error(cx, f[TX_NAME], &np,
                              "must be 1 to %zu letters, digits, '_', '-' or '.', got \"%s\"",
                              sizeof(t->name) - 1, s);
                ok = false;
            }
        }
    }
    if (t->name[0] == '\0')
        pt_toxic_default_name(t, t->name, sizeof(t->name));
    long long v;
    pt_cfg_path_t ttlp = PT_PATH_KEY(path, "ttl_ms"), mhp = PT_PATH_KEY(path, "max_hits");
    if (f[TX_TTL] != NULL && pt__cfg_int(cx, f[TX_TTL], &ttlp, 0, PT_TOXIC_TTL_MAX_MS, &v))
        t->ttl_ms = v;
    else if (f[TX_TTL] != NULL)
        ok = false;
    if (f[TX_MAX_HITS] != NULL &&
        pt__cfg_int(cx, f[TX_MAX_HITS], &mhp, 0, PT_TOXIC_MAX_HITS_MAX, &v))
        t->max_hits = v;
    else if (f[TX_MAX_HITS] != NULL)
        ok = false;
    if (f[TX_DRY_RUN] != NULL) {
        pt_cfg_path_t dp = PT_PATH_KEY(path, "dry_run");
        ok &= pt__cfg_read_bool(cx, f[TX_DRY_RUN], &dp, &t->dry_run);
    }
    if (f[TX_MATCH] != NULL) {
        pt_cfg_path_t mp = PT_PATH_KEY(path, "match");
        if (!is_http) {
            pt__cfg_error(cx, f[TX_MATCH], &mp,
                          "a TCP toxic acts on a session's bytes, not on requests: only HTTP "
                          "toxics (spec.protocol HTTP) take a match");
            ok = false;
        } else {
            ok &= pt__cfg_read_toxic_match(cx, f[TX_MATCH], &mp, &t->match);
        }
    }
    const pt_cfg_node_t *a = f[TX_ATTRIBUTES];
    pt_cfg_path_t ap = PT_PATH_KEY(path, "attributes");
    if (a != NULL && pt__cfg_is_map(cx, a, &ap)) {
        for (size_t i = 0; i < a->n_pairs; i++) {
            const char *key = a->pairs[i].key->str;
            pt_cfg_path_t kp = PT_PATH_KEY(&ap, key);
            const pt_toxic_attr_t *at = pt_toxic_attr(t->type, key);
            if (at == NULL) {
                pt__cfg_error(cx, a->pairs[i].key, &kp, "not an attribute of a %s toxic",
                              pt_toxic_type_name(t->type));
                ok = false;
            } else if (pt__cfg_int(cx, a->pairs[i].value, &kp, at->min, at->max, &v)) {
                *(int64_t *)((char *)t + at->offset) = v;
            } else {
                ok = false;
            }
        }
    } else if (a != NULL) {
        ok = false;
    }
    return ok;
}

void pt__cfg_read_chaos_proxy(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                              const pt_cfg_node_t *spec)
{
    pt_res_chaos_t *r = pt_arena_calloc(cx->tmp, sizeof(*r));
    r->meta = *meta;
    pt_chaos_decl_t *d = &r->decl;
    d->enabled = true;
    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    const pt_cfg_node_t *f[CP__N];
    if (!MAP(cx, spec, &sp, chaos_fields, f))
        return;
    bool ok = true;
    if (strlen(meta->name) >= sizeof(d->name) || !pt_chaos_is_valid_name(meta->name)) {
        pt__cfg_error_at(cx, meta->name_node ? meta->name_node : meta->doc,
                         pt__cfg_meta_path(cx, meta, "metadata.name"),
                         "a ChaosProxy's name is its name in the API: 1 to %zu letters, digits, "
                         "'_', '-' or '.', got \"%s\"",
                         sizeof(d->name) - 1, meta->name);
        ok = false;
    } else {
        memcpy(d->name, meta->name, strlen(meta->name) + 1);
    }
    pt_cfg_path_t lp = PT_PATH_KEY(&sp, "listen"), up = PT_PATH_KEY(&sp, "upstream");
    if (f[CP_LISTEN] == NULL)
        snprintf(d->listen, sizeof(d->listen), "127.0.0.1:0");
    else
        ok &= read_address(cx, f[CP_LISTEN], &lp, 0, d->listen, sizeof(d->listen));
    if (f[CP_UPSTREAM] == NULL) {
        pt__cfg_error(cx, spec, &up, "required");
        ok = false;
    } else {
        ok &= read_address(cx, f[CP_UPSTREAM], &up, 1, d->upstream, sizeof(d->upstream));
    }
    if (f[CP_ENABLED] != NULL) {
        pt_cfg_path_t ep = PT_PATH_KEY(&sp, "enabled");
        ok &= pt__cfg_read_bool(cx, f[CP_ENABLED], &ep, &d->enabled);
    }
    if (f[CP_PROTOCOL] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "protocol");
        const char *s;
        if (!pt__cfg_nonempty_str(cx, f[CP_PROTOCOL], &pp, &s)) {
            ok = false;
        } else if (strcmp(s, "HTTP") == 0 || strcmp(s, "TCP") == 0) {
            d->is_http = strcmp(s, "HTTP") == 0;
        } else {
            pt__cfg_error(cx, f[CP_PROTOCOL], &pp, "must be TCP or HTTP, got \"%s\"", s);
            ok = false;
        }
    }
    if (d->is_http && d->upstream[0] != '\0' && !is_endpoint_host(d->upstream)) {
        pt__cfg_error(cx, f[CP_UPSTREAM], &up,
                      "an HTTP chaos proxy's upstream is an IP ([v6] for IPv6) or a DNS name, and "
                      "a port: got \"%s\"",
                      d->upstream);
        ok = false;
    }
    pt_cfg_path_t tp = PT_PATH_KEY(&sp, "toxics");
    const pt_cfg_node_t *seq = f[CP_TOXICS];
    if (seq != NULL && pt__cfg_is_seq(cx, seq, &tp)) {
        if (seq->n_items > PT_CHAOS_MAX_TOXICS) {
            pt__cfg_error(cx, seq, &tp, "at most %d toxics per proxy", PT_CHAOS_MAX_TOXICS);
            ok = false;
        }
        for (size_t i = 0; i < seq->n_items && i < PT_CHAOS_MAX_TOXICS; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&tp, i);
            pt_toxic_t *t = &d->toxics[d->n_toxics];
            if (!read_toxic(cx, seq->items[i], &ip, d->is_http, t)) {
                ok = false;
                continue;
            }
            for (size_t k = 0; k < d->n_toxics; k++)
                if (strcmp(d->toxics[k].name, t->name) == 0) {
                    pt__cfg_error(cx, seq->items[i], &ip,
                                  "a second toxic named \"%s\" (name one of them)", t->name);
                    ok = false;
                }
            d->n_toxics++;
        }
    } else if (seq != NULL) {
        ok = false;
    }
    if (f[CP_TLS] != NULL) {
        pt_cfg_path_t tlp = PT_PATH_KEY(&sp, "tls");
        r->tls = pt__cfg_read_chaos_tls(cx, f[CP_TLS], &tlp);
        ok &= r->tls != NULL;
    }
    snprintf(r->where, sizeof(r->where), "%s:%d:%d", meta->doc->file, meta->doc->line,
             meta->doc->col);
    if (ok)
        PUSH(cx, set->chaos, set->n_chaos, set->cap_chaos, r);
}
