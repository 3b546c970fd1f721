/* config/tls_contexts.c
 * The snapshot's TLS contexts, built from the certificate files its resources name, once per
 * load: the workload identity's server context (inbound mesh mTLS: a client certificate from
 * the mesh's roots is required) and client context (outbound ISTIO_MUTUAL), the client
 * contexts of DestinationRule tls settings (SIMPLE, MUTUAL), one per distinct set of files,
 * and the Gateway HTTPS servers' contexts, one per server, which a listener picks by SNI (and
 * built the same way, the contexts of ChaosProxy resources that terminate TLS).
 * Each file read is
 * listed in the snapshot, and the main thread watches them: new files make a new snapshot,
 * whose contexts new handshakes use, while open connections keep the ones they started with.
 *
 * Reading files is I/O in config/, which is otherwise pure: certificates are config that lives
 * in files of their own, read and checked with the rest so that a bad one refuses the whole
 * set like any other error. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../tls/tls.h"
#include "kinds.h"
#include "resources.h"

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

static void add_file(pt_cfg_cx_t *cx, pt_config_t *c, const char *path, size_t *cap)
{
    for (size_t i = 0; i < c->n_tls_files; i++)
        if (strcmp(c->tls_files[i], path) == 0)
            return;
    c->tls_files = pt_arena_grow(cx->out, c->tls_files, c->n_tls_files, cap, sizeof(char *));
    c->tls_files[c->n_tls_files++] = pt_arena_strdup(cx->out, path);
}

/* A context from o, owned by the snapshot; NULL (and an error at node/path) when it fails. */
static SSL_CTX *build(pt_cfg_cx_t *cx, pt_config_t *c, bool server, const pt_tls_ctx_opts_t *o,
                      const pt_cfg_node_t *node, const char *path)
{
    char err[400];
    SSL_CTX *ctx =
        server ? pt_tls_server_ctx(o, err, sizeof(err)) : pt_tls_client_ctx(o, err, sizeof(err));
    if (ctx == NULL) {
        pt__cfg_error_at(cx, node, path, "%s", err);
        return NULL;
    }
    pt_arena_on_free(&c->arena, free_ctx, ctx);
    return ctx;
}

bool pt__cfg_credential_files(pt_cfg_cx_t *cx, pt_config_t *c, const char *name,
                              const pt_cfg_node_t *node, const char *path, const char **crt,
                              const char **key, const char **ca)
{
    const char *dir = c->proxy.credentials_directory;
    if (dir == NULL) {
        pt__cfg_error_at(cx, node, path,
                         "credentialName \"%s\" needs the Proxy's credentialsDirectory (where "
                         "<name>/tls.crt, tls.key and ca.crt are)",
                         name);
        return false;
    }
    if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
        pt__cfg_error_at(cx, node, path, "credentialName \"%s\" must be a plain name", name);
        return false;
    }
    *crt = pt_arena_printf(cx->out, "%s/%s/tls.crt", dir, name);
    *key = pt_arena_printf(cx->out, "%s/%s/tls.key", dir, name);
    const char *ca_path = pt_arena_printf(cx->out, "%s/%s/ca.crt", dir, name);
    *ca = access(ca_path, F_OK) == 0 ? ca_path : NULL;
    return true;
}

/* A Gateway server's context from its tls (HTTPS: SIMPLE, MUTUAL, OPTIONAL_MUTUAL). An HTTPS
 * server offers HTTP/2 first by ALPN (RFC 9113 §3.2), then HTTP/1.1; a TLS server that
 * terminates relays bytes and offers only what it did before. */
static SSL_CTX *build_server(pt_cfg_cx_t *cx, pt_config_t *c, const pt_res_server_tls_t *t,
                             bool is_https, size_t *cap)
{
    const char *crt = t->cert, *key = t->key, *ca = t->ca;
    if (t->credential_name != NULL &&
        !pt__cfg_credential_files(cx, c, t->credential_name, t->node, t->path, &crt, &key, &ca))
        return NULL;
    bool verifies = t->is_mutual || t->is_optional_mutual; /* SIMPLE asks for no certificate */
    if (verifies && ca == NULL) {
        pt__cfg_error_at(cx, t->node, t->path,
                         "credentialName \"%s\" has no ca.crt, which mode %s needs",
                         t->credential_name, t->is_mutual ? "MUTUAL" : "OPTIONAL_MUTUAL");
        return NULL;
    }
    static const char http11[] = "\x08http/1.1";
    static const char h2_http11[] = "\x02h2\x08http/1.1";
    pt_tls_ctx_opts_t o = {.cert_file = crt,
                           .key_file = key,
                           .ca_file = verifies ? ca : NULL,
                           .require_peer_cert = t->is_mutual,
                           .min_version = t->min_version,
                           .max_version = t->max_version,
                           .ciphers = t->cipher_suites,
                           .alpn = is_https ? h2_http11 : http11,
                           .alpn_len = is_https ? sizeof(h2_http11) - 1 : sizeof(http11) - 1};
    add_file(cx, c, crt, cap);
    add_file(cx, c, key, cap);
    if (verifies)
        add_file(cx, c, ca, cap);
    /* `petrel validate --lenient` checks a config away from the gateway's files (Istio's own
     * test data names /etc/certs/...): a missing file is a warning there, else an error. */
    const char *missing = access(crt, F_OK) != 0              ? crt
                          : access(key, F_OK) != 0            ? key
                          : verifies && access(ca, F_OK) != 0 ? ca
                                                              : NULL;
    if (missing != NULL && cx->errors->is_lenient) {
        pt__cfg_warn_at(cx, t->node, t->path, "%s: no such file here (`petrel run` needs it)",
                        missing);
        return NULL;
    }
    return build(cx, c, true, &o, t->node, t->path);
}

/* Per HTTP listener port: the contexts of its HTTPS servers in the order written (the first is
 * the one a client without SNI gets), and the hosts its HTTP servers redirect to https://. Per
 * TLS listener port, the same for its servers that terminate (tcp[] routes). A port shared by
 * several kinds (is_sni_mixed) lists them all, PASSTHROUGH servers without a context. */
static void build_gateway_tls(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c, size_t *cap)
{
    for (size_t k = 0; k < c->n_listeners; k++) {
        pt_listener_config_t *l = &c->listeners[k];
        if (l->protocol != PT_LISTENER_HTTP && l->protocol != PT_LISTENER_TLS)
            continue;
        size_t n_tls = 0, n_redirect = 0;
        const pt_res_server_t *plain = NULL, *terminated = NULL;
        for (size_t g = 0; g < set->n_gateways; g++)
            for (size_t i = 0; i < set->gateways[g]->n_servers; i++) {
                const pt_res_server_t *srv = &set->gateways[g]->servers[i];
                if (srv->port != l->port || (srv->protocol != l->protocol && !l->is_sni_mixed))
                    continue;
                if (srv->tls != NULL && srv->tls->is_terminated) {
                    n_tls++;
                    terminated = srv;
                } else if (l->is_sni_mixed && srv->protocol == PT_LISTENER_TLS) {
                    n_tls++; /* PASSTHROUGH, chosen by SNI with the others */
                } else {
                    plain = srv;
                    if (srv->tls != NULL && srv->tls->https_redirect)
                        n_redirect += srv->n_hosts;
                }
            }
        if (plain != NULL && terminated != NULL) {
            bool is_tls = l->protocol == PT_LISTENER_TLS;
            pt__cfg_error_at(cx, terminated->port_node, terminated->port_path,
                             "port %u has %s servers: a port is either (the %s server is at "
                             "%s:%d)",
                             (unsigned)l->port,
                             is_tls ? "TLS servers that terminate and PASSTHROUGH"
                                    : "HTTPS and HTTP",
                             is_tls ? "PASSTHROUGH" : "HTTP", plain->port_node->file,
                             pt__cfg_node_line(plain->port_node));
            continue;
        }
        if (n_redirect > 0) {
            l->https_redirect_hosts = pt_arena_calloc(cx->out, n_redirect * sizeof(char *));
            for (size_t g = 0; g < set->n_gateways; g++)
                for (size_t i = 0; i < set->gateways[g]->n_servers; i++) {
                    const pt_res_server_t *srv = &set->gateways[g]->servers[i];
                    if (srv->port == l->port && srv->tls != NULL && srv->tls->https_redirect)
                        for (size_t h = 0; h < srv->n_hosts; h++)
                            l->https_redirect_hosts[l->n_https_redirect_hosts++] = srv->hosts[h];
                }
        }
        if (n_tls == 0)
            continue;
        pt_listener_tls_t *lt = pt_arena_calloc(cx->out, sizeof(*lt));
        lt->servers = pt_arena_calloc(cx->out, n_tls * sizeof(*lt->servers));
        for (size_t g = 0; g < set->n_gateways; g++)
            for (size_t i = 0; i < set->gateways[g]->n_servers; i++) {
                const pt_res_server_t *srv = &set->gateways[g]->servers[i];
                if (srv->port != l->port || (srv->protocol != l->protocol && !l->is_sni_mixed))
                    continue; /* as counted above */
                if (l->is_sni_mixed && srv->protocol == PT_LISTENER_TLS && srv->tls == NULL) {
                    pt_tls_server_t *ts = &lt->servers[lt->n_servers++];
                    ts->hosts = srv->hosts;
                    ts->n_hosts = srv->n_hosts;
                    ts->kind = PT_TLS_SERVER_PASSTHROUGH;
                    continue;
                }
                if (srv->tls == NULL || !srv->tls->is_terminated)
                    continue;
                SSL_CTX *ctx =
                    build_server(cx, c, srv->tls, srv->protocol == PT_LISTENER_HTTP, cap);
                if (ctx == NULL)
                    continue;
                pt_tls_server_t *ts = &lt->servers[lt->n_servers++];
                ts->hosts = srv->hosts;
                ts->n_hosts = srv->n_hosts;
                ts->kind = srv->protocol == PT_LISTENER_TLS ? PT_TLS_SERVER_TERMINATE
                                                            : PT_TLS_SERVER_HTTPS;
                ts->ctx = ctx;
                ts->subject_alt_names = srv->tls->subject_alt_names;
                ts->n_subject_alt_names = srv->tls->n_subject_alt_names;
            }
        l->tls = lt;
    }
}

void pt__cfg_build_tls(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c)
{
    size_t cap = 0;
    build_gateway_tls(cx, set, c, &cap);
    /* A ChaosProxy that terminates TLS gets a Gateway server's context, its files watched
     * alike (compile.c copied set->chaos into c->chaos_proxies in order): a TLS server's for a
     * TCP proxy, an HTTPS server's (ALPN h2, http/1.1) for an HTTP one, whose route table then
     * terminates TLS as an HTTPS listener does, with that one server for every SNI. */
    for (size_t i = 0; i < set->n_chaos && i < c->n_chaos_proxies; i++) {
        pt_chaos_decl_t *d = &c->chaos_proxies[i];
        if (set->chaos[i]->tls == NULL)
            continue;
        d->tls_ctx = build_server(cx, c, set->chaos[i]->tls, d->is_http, &cap);
        pt_listener_config_t *l = d->is_http && d->tls_ctx != NULL
                                      ? (pt_listener_config_t *)pt_config_chaos_listener(c, d->name)
                                      : NULL;
        if (l == NULL)
            continue;
        pt_listener_tls_t *lt = pt_arena_calloc(cx->out, sizeof(*lt));
        pt_tls_server_t *ts = pt_arena_calloc(cx->out, sizeof(*ts));
        ts->kind = PT_TLS_SERVER_HTTPS;
        ts->ctx = d->tls_ctx;
        lt->servers = ts;
        lt->n_servers = 1;
        l->tls = lt;
    }
    const pt_identity_settings_t *id = &c->proxy.identity;
    if (id->certificate_chain != NULL && id->private_key != NULL && id->root_certificates != NULL) {
        const pt_cfg_node_t *node = set->n_proxies ? set->proxies[0]->identity : NULL;
        const char *path = set->n_proxies
                               ? pt__cfg_meta_path(cx, &set->proxies[0]->meta, "spec.identity")
                               : "spec.identity";
        /* The inbound answers Istio's in-mesh names (proxy/tls_upstream.c offers them). */
        static const char mesh_alpn[] = PT_TLS_MESH_SERVER_ALPN;
        pt_tls_ctx_opts_t o = {.cert_file = id->certificate_chain,
                               .key_file = id->private_key,
                               .ca_file = id->root_certificates,
                               .require_peer_cert = true,
                               .alpn = mesh_alpn,
                               .alpn_len = sizeof(mesh_alpn) - 1};
        c->mesh_server_tls = build(cx, c, true, &o, node, path);
        o.alpn = NULL; /* the client's list is per connection (proxy/tls_upstream.c) */
        o.alpn_len = 0;
        if (c->mesh_server_tls != NULL)
            c->mesh_client_tls = build(cx, c, false, &o, node, path);
        add_file(cx, c, id->certificate_chain, &cap);
        add_file(cx, c, id->private_key, &cap);
        add_file(cx, c, id->root_certificates, &cap);
    }
    pt__cfg_resolve_peer_authentication(cx, set, c);
    pt__cfg_build_upstream_tls(cx, c);
}

/* --- upstream TLS (DestinationRule tls, auto mTLS) --- */

static bool is_ip_literal(const char *s)
{
    return pt__cfg_is_ip_literal(s, NULL, NULL);
}

pt_upstream_tls_t *pt__cfg_upstream_tls(pt_cfg_cx_t *cx, const pt_config_t *c,
                                        const pt_res_client_tls_t *rt, const pt_cluster_t *cl)
{
    pt_upstream_tls_mode_t mode = rt != NULL ? rt->mode : PT_UPSTREAM_TLS_ISTIO_MUTUAL;
    if (mode == PT_UPSTREAM_TLS_DISABLE)
        return NULL;
    const pt_identity_settings_t *id = &c->proxy.identity;
    if (mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL && id->certificate_chain == NULL) {
        pt__cfg_error_at(cx, rt->node, rt->path,
                         "mode ISTIO_MUTUAL needs the workload identity (the Proxy's "
                         "spec.identity)");
        return NULL;
    }
    pt_upstream_tls_t *t = pt_arena_calloc(cx->out, sizeof(*t));
    t->mode = mode;
    if (rt != NULL) {
        t->client_certificate = rt->client_certificate;
        t->private_key = rt->private_key;
        t->ca_certificates = rt->ca_certificates;
        t->credential_name = rt->credential_name;
        t->sni = rt->sni;
        t->sans = rt->sans;
        t->n_sans = rt->n_sans;
        t->insecure_skip_verify = rt->insecure_skip_verify;
        t->node = rt->node;
        t->path = pt_arena_strdup(cx->out, rt->path);
    }
    bool named_host = cl->host[0] != '*' && !is_ip_literal(cl->host);
    if (mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL) {
        /* Istio's SNI for mesh traffic names the cluster; the server is checked by its SPIFFE
         * ID, not by a DNS name. */
        if (t->sni == NULL)
            t->sni = pt_arena_printf(cx->out, "outbound_.%u_.%s_.%s", (unsigned)cl->port,
                                     cl->subset != NULL ? cl->subset : "", cl->host);
        t->trust_domain = id->trust_domain;
    } else {
        if (t->sni == NULL && named_host)
            t->sni = cl->host;
        if (!t->insecure_skip_verify && t->n_sans == 0)
            t->verify_name = t->sni != NULL ? t->sni : cl->host;
    }
    char *key = pt_arena_printf(
        cx->out, "%d|%s|%s|%s|%s|%s|%s|%d|%s", (int)t->mode,
        t->client_certificate ? t->client_certificate : "", t->private_key ? t->private_key : "",
        t->ca_certificates ? t->ca_certificates : "", t->credential_name ? t->credential_name : "",
        t->sni ? t->sni : "", t->verify_name ? t->verify_name : "", (int)t->insecure_skip_verify,
        t->trust_domain ? t->trust_domain : "");
    for (size_t i = 0; i < t->n_sans; i++)
        key = pt_arena_printf(cx->out, "%s|%s", key, t->sans[i]);
    t->pool_key = key;
    return t;
}

static bool same_files(const pt_upstream_tls_t *a, const pt_upstream_tls_t *b)
{
#define SAME(f) ((a->f == NULL) ? b->f == NULL : b->f != NULL && strcmp(a->f, b->f) == 0)
    return a->mode == b->mode && a->insecure_skip_verify == b->insecure_skip_verify &&
           SAME(client_certificate) && SAME(private_key) && SAME(ca_certificates) &&
           SAME(credential_name);
#undef SAME
}

static void build_one(pt_cfg_cx_t *cx, pt_config_t *c, pt_upstream_tls_t *t, size_t *cap)
{
    if (t->mode == PT_UPSTREAM_TLS_ISTIO_MUTUAL) {
        t->ctx = c->mesh_client_tls; /* NULL only when the identity failed (reported) */
        return;
    }
    for (size_t i = 0; i < c->n_clusters; i++) {
        pt_upstream_tls_t *o = c->clusters[i]->tls;
        if (o != NULL && o != t && o->ctx != NULL && same_files(o, t)) {
            t->ctx = o->ctx;
            return;
        }
    }
    const char *crt = t->client_certificate, *key = t->private_key, *ca = t->ca_certificates;
    if (t->credential_name != NULL) {
        char path[300];
        snprintf(path, sizeof(path), "%s.credentialName", t->path);
        const char *cca;
        if (!pt__cfg_credential_files(cx, c, t->credential_name, t->node, path, &crt, &key, &cca))
            return;
        if (t->mode == PT_UPSTREAM_TLS_SIMPLE)
            crt = key = NULL; /* SIMPLE takes only the roots from the secret */
        if (ca == NULL)
            ca = cca;
    }
    pt_tls_ctx_opts_t o = {.cert_file = crt, .key_file = key, .ca_file = ca};
    SSL_CTX *ctx = build(cx, c, false, &o, t->node, t->path);
    if (ctx == NULL)
        return;
    if (t->insecure_skip_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else if (ca == NULL) {
        /* No caCertificates: the system's trust store, as Istio does. */
        SSL_CTX_set_default_verify_paths(ctx);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    t->ctx = ctx;
    const char *files[] = {crt, key, ca};
    for (size_t i = 0; i < 3; i++)
        if (files[i] != NULL)
            add_file(cx, c, files[i], cap);
}

/* A new client certificate means new pools: connections made with the old one are not reused
 * (they finish what they carry and age out), as when Envoy drains a cluster on a secret
 * update. The pool key gets the certificate's digest. */
static void key_certificate(pt_cfg_cx_t *cx, pt_upstream_tls_t *t)
{
    X509 *leaf = t->ctx != NULL ? SSL_CTX_get0_certificate(t->ctx) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (leaf == NULL || X509_digest(leaf, EVP_sha256(), md, &len) != 1 || len < 8)
        return;
    t->pool_key = pt_arena_printf(cx->out, "%s|%02x%02x%02x%02x%02x%02x%02x%02x", t->pool_key,
                                  md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7]);
}

void pt__cfg_build_upstream_tls(pt_cfg_cx_t *cx, pt_config_t *c)
{
    size_t cap = c->n_tls_files; /* add_file grows from here (the arena keeps the old array) */
    for (size_t i = 0; i < c->n_clusters; i++) {
        pt_cluster_t *cl = c->clusters[i];
        if (cl->tls != NULL && cl->tls->ctx == NULL) {
            build_one(cx, c, cl->tls, &cap);
            key_certificate(cx, cl->tls);
        }
        if (cl->auto_tls != NULL) {
            cl->auto_tls->ctx = c->mesh_client_tls;
            key_certificate(cx, cl->auto_tls);
        }
    }
}
