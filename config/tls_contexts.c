/* config/tls_contexts.c
 * The snapshot's TLS contexts, built from the certificate files its resources name, once per
 * load: the workload identity's server context (inbound mesh mTLS: a client certificate from
 * the mesh's roots is required) and client context (outbound ISTIO_MUTUAL). Each file read is
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

void pt__cfg_build_tls(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c)
{
    size_t cap = 0;
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
}
