/* config/tls_contexts.c
 * The snapshot's TLS contexts, built from the certificate files its resources name, once per
 * load: the workload identity's server context (inbound mesh mTLS: a client certificate from
 * the mesh's roots is required) and client context (outbound ISTIO_MUTUAL), and the Gateway
 * HTTPS servers' contexts, one per server, which a listener picks by SNI. Each file read is
 * listed in the snapshot, and the main thread watches them: new files make a new snapshot,
 * whose contexts new handshakes use, while open connections keep the ones they started with.
 *
 * Reading files is I/O in config/, which is otherwise pure: certificates are config that lives
 * in files of their own, read and checked with the rest so that a bad one refuses the whole
 * set like any other error. */
#include <openssl/ssl.h>
#include <string.h>
#include <unistd.h>

#include "../tls/tls.h"
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

/* A Gateway server's context from its tls (HTTPS: SIMPLE, MUTUAL, OPTIONAL_MUTUAL). */
static SSL_CTX *build_server(pt_cfg_cx_t *cx, pt_config_t *c, const pt_res_server_tls_t *t,
                             size_t *cap)
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
    static const char http11[] = "\x08http/1.1"; /* Petrel serves HTTP/1.1 after termination */
    pt_tls_ctx_opts_t o = {.cert_file = crt,
                           .key_file = key,
                           .ca_file = verifies ? ca : NULL,
                           .require_peer_cert = t->is_mutual,
                           .min_version = t->min_version,
                           .max_version = t->max_version,
                           .ciphers = t->cipher_suites,
                           .alpn = http11,
                           .alpn_len = sizeof(http11) - 1};
    add_file(cx, c, crt, cap);
    add_file(cx, c, key, cap);
    if (verifies)
        add_file(cx, c, ca, cap);
    /* `petrel validate` checks a config away from the gateway's files (Istio's own test data
     * names /etc/certs/...): a missing file is a warning there, and an error for `petrel run`. */
    const char *missing = access(crt, F_OK) != 0              ? crt
                          : access(key, F_OK) != 0            ? key
                          : verifies && access(ca, F_OK) != 0 ? ca
                                                              : NULL;
    if (missing != NULL && !cx->errors->refuse_unenforced_security) {
        pt__cfg_warn_at(cx, t->node, t->path, "%s: no such file here (`petrel run` needs it)",
                        missing);
        return NULL;
    }
    return build(cx, c, true, &o, t->node, t->path);
}

/* Per HTTP listener port: the contexts of its HTTPS servers in the order written (the first is
 * the one a client without SNI gets), and the hosts its HTTP servers redirect to https://. */
static void build_gateway_tls(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c, size_t *cap)
{
    for (size_t k = 0; k < c->n_listeners; k++) {
        pt_listener_config_t *l = &c->listeners[k];
        if (l->protocol != PT_LISTENER_HTTP)
            continue;
        size_t n_tls = 0, n_redirect = 0;
        const pt_res_server_t *plain = NULL, *terminated = NULL;
        for (size_t g = 0; g < set->n_gateways; g++)
            for (size_t i = 0; i < set->gateways[g]->n_servers; i++) {
                const pt_res_server_t *srv = &set->gateways[g]->servers[i];
                if (srv->port != l->port || srv->protocol != PT_LISTENER_HTTP)
                    continue;
                if (srv->tls != NULL && srv->tls->is_terminated) {
                    n_tls++;
                    terminated = srv;
                } else {
                    plain = srv;
                    if (srv->tls != NULL && srv->tls->https_redirect)
                        n_redirect += srv->n_hosts;
                }
            }
        if (plain != NULL && terminated != NULL) {
            pt__cfg_error_at(cx, terminated->port_node, terminated->port_path,
                             "port %u has HTTPS and HTTP servers: a port is either (the HTTP "
                             "server is at %s:%d)",
                             (unsigned)l->port, plain->port_node->file,
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
                if (srv->port != l->port || srv->tls == NULL || !srv->tls->is_terminated)
                    continue;
                SSL_CTX *ctx = build_server(cx, c, srv->tls, cap);
                if (ctx == NULL)
                    continue;
                pt_tls_server_t *ts = &lt->servers[lt->n_servers++];
                ts->hosts = srv->hosts;
                ts->n_hosts = srv->n_hosts;
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
    const pt_identity_settings_t *id = &c->proxy.identity;
    if (id->certificate_chain != NULL && id->private_key != NULL && id->root_certificates != NULL) {
        const pt_cfg_node_t *node = set->n_proxies ? set->proxies[0]->identity : NULL;
        pt_tls_ctx_opts_t o = {.cert_file = id->certificate_chain,
                               .key_file = id->private_key,
                               .ca_file = id->root_certificates,
                               .require_peer_cert = true};
        c->mesh_server_tls = build(cx, c, true, &o, node, "spec.identity");
        if (c->mesh_server_tls != NULL)
            c->mesh_client_tls = build(cx, c, false, &o, node, "spec.identity");
        add_file(cx, c, id->certificate_chain, &cap);
        add_file(cx, c, id->private_key, &cap);
        add_file(cx, c, id->root_certificates, &cap);
    }
    pt__cfg_resolve_peer_authentication(cx, set, c);
}
