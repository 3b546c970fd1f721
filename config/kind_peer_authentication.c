/* config/kind_peer_authentication.c
 * The PeerAuthentication kind (security.istio.io): the mutual TLS mode of the sidecar's inbound
 * (15006), enforced by proxy/tls_stream.c. Each policy is read, then the one that applies to
 * this Proxy's workload is resolved once per load with Istio's precedence: a policy whose
 * selector.matchLabels match the workload's labels (the first loaded, when several do), else
 * the workload namespace's policy without selector, else the mesh policy (no selector, in the
 * root namespace: the Proxy's rootNamespace, istio-system by default). UNSET inherits from the next
 * level; nothing at all is PERMISSIVE. portLevelMtls (by the original destination port) counts only
 * in a policy with a selector, as in Istio. */
#include <stdlib.h>
#include <string.h>

#include "kinds.h"

typedef struct pt_res_peer_authn {
    pt_res_meta_t meta;
    bool has_selector;
    const char **labels; /* selector.matchLabels: key, value pairs */
    size_t n_labels;
    pt_mtls_mode_t mode;
    pt_peer_auth_port_t *ports;
    size_t n_ports;
    const pt_cfg_node_t *node;
} pt_res_peer_authn_t;

static const pt_cfg_field_t mtls_fields[] = {{.name = "mode", .status = S}};
enum { PA_SELECTOR, PA_MTLS, PA_PORT_MTLS, PA__N };
static const pt_cfg_field_t peer_authn_fields[PA__N] = {
    [PA_SELECTOR] = {.name = "selector", .status = S},
    [PA_MTLS] = {.name = "mtls", .status = S},
    [PA_PORT_MTLS] = {.name = "portLevelMtls", .status = S},
};

/* A MutualTLS map's mode: UNSET when absent. */
static pt_mtls_mode_t read_mtls(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[NF(mtls_fields)];
    if (n->type == PT_CFG_NULL || !MAP(cx, n, path, mtls_fields, f) || f[0] == NULL)
        return PT_MTLS_UNSET;
    pt_cfg_path_t mp = PT_PATH_KEY(path, "mode");
    const char *s;
    if (!pt__cfg_nonempty_str(cx, f[0], &mp, &s))
        return PT_MTLS_UNSET;
    static const char *const names[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return (pt_mtls_mode_t)i;
    pt__cfg_error(cx, f[0], &mp,
                  "unknown mode \"%s\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)", s);
    return PT_MTLS_UNSET;
}

void pt__cfg_read_peer_authentication(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                      const pt_cfg_node_t *spec)
{
    pt_res_peer_authn_t *pa = pt_arena_calloc(cx->tmp, sizeof(*pa));
    pa->meta = *meta;
    pa->node = meta->doc;
    PUSH(cx, set->peer_authns, set->n_peer_authns, set->cap_peer_authns, pa);
    if (spec == NULL || spec->type == PT_CFG_NULL)
        return; /* an empty policy: UNSET everywhere */
    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    const pt_cfg_node_t *f[PA__N];
    if (!MAP(cx, spec, &sp, peer_authn_fields, f))
        return;
    if (f[PA_SELECTOR] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "selector");
        const pt_cfg_node_t *sf[1];
        if (MAP(cx, f[PA_SELECTOR], &p, pt__cfg_match_selector_fields, sf) && sf[0] != NULL) {
            pt_cfg_path_t lp = PT_PATH_KEY(&p, "matchLabels");
            pa->labels = pt__cfg_read_labels(cx, sf[0], &lp, &pa->n_labels);
        }
        pa->has_selector = pa->n_labels > 0; /* an empty selector selects like none */
    }
    if (f[PA_MTLS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "mtls");
        pa->mode = read_mtls(cx, f[PA_MTLS], &p);
    }
    const pt_cfg_node_t *pl = f[PA_PORT_MTLS];
    if (pl == NULL)
        return;
    pt_cfg_path_t pp = PT_PATH_KEY(&sp, "portLevelMtls");
    if (!pt__cfg_is_map(cx, pl, &pp))
        return;
    if (!pa->has_selector)
        pt__cfg_warn(cx, pl, &pp,
                     "applies only in a policy with a selector (as in Istio): ignored here");
    pa->ports = pt_arena_calloc(cx->tmp, (pl->n_pairs + 1) * sizeof(*pa->ports));
    for (size_t i = 0; i < pl->n_pairs; i++) {
        pt_cfg_path_t ip = PT_PATH_KEY(&pp, pl->pairs[i].key->str);
        char *end;
        long port = strtol(pl->pairs[i].key->str, &end, 10);
        if (*end != '\0' || port < 1 || port > 65535) {
            pt__cfg_error(cx, pl->pairs[i].key, &ip, "must be a port number (1..65535)");
            continue;
        }
        pt_mtls_mode_t m = read_mtls(cx, pl->pairs[i].value, &ip);
        if (pa->has_selector)
            pa->ports[pa->n_ports++] = (pt_peer_auth_port_t){(uint16_t)port, m};
    }
}

static pt_mtls_mode_t inherit(pt_mtls_mode_t m, pt_mtls_mode_t parent)
{
    return m != PT_MTLS_UNSET ? m : parent;
}

void pt__cfg_resolve_peer_authentication(pt_cfg_cx_t *cx, const pt_res_set_t *set, pt_config_t *c)
{
    const pt_workload_t *w = &c->proxy.workload;
    const pt_res_peer_authn_t *mesh = NULL, *ns = NULL, *workload = NULL;
    const char *root = c->proxy.root_namespace;
    for (size_t i = 0; i < set->n_peer_authns; i++) {
        const pt_res_peer_authn_t *pa = set->peer_authns[i];
        if (!pa->has_selector && strcmp(pa->meta.ns, root) == 0 && mesh == NULL)
            mesh = pa;
        if (strcmp(pa->meta.ns, w->ns) != 0)
            continue;
        if (!pa->has_selector && ns == NULL && strcmp(w->ns, root) != 0)
            ns = pa;
        else if (pa->has_selector && workload == NULL &&
                 pt__cfg_labels_select(pa->labels, pa->n_labels, w))
            workload = pa;
        else if (pa->has_selector && c->proxy.sidecar.enabled &&
                 !pt__cfg_labels_select(pa->labels, pa->n_labels, w))
            pt__cfg_warn_not_selected(cx, &pa->meta, pa->labels, pa->n_labels, w);
    }
    pt_mtls_mode_t mode = PT_MTLS_PERMISSIVE;
    if (mesh != NULL)
        mode = inherit(mesh->mode, mode);
    if (ns != NULL)
        mode = inherit(ns->mode, mode);
    if (workload != NULL)
        mode = inherit(workload->mode, mode);
    c->peer_auth.mode = mode;
    if (workload != NULL && workload->n_ports > 0) {
        pt_peer_auth_port_t *ports = pt_arena_calloc(cx->out, workload->n_ports * sizeof(*ports));
        for (size_t i = 0; i < workload->n_ports; i++)
            ports[i] = (pt_peer_auth_port_t){workload->ports[i].port,
                                             inherit(workload->ports[i].mode, mode)};
        c->peer_auth.ports = ports;
        c->peer_auth.n_ports = workload->n_ports;
    }
    if (set->n_peer_authns == 0)
        return;
    bool strict = mode == PT_MTLS_STRICT;
    for (size_t i = 0; i < c->peer_auth.n_ports; i++)
        strict |= c->peer_auth.ports[i].mode == PT_MTLS_STRICT;
    const pt_res_peer_authn_t *at = workload ? workload
                                    : ns     ? ns
                                    : mesh   ? mesh
                                             : set->peer_authns[0];
    if (!c->proxy.sidecar.enabled)
        pt__cfg_warn_at(cx, at->node, pt__cfg_meta_path(cx, &at->meta, "kind"),
                        "PeerAuthentication applies to a sidecar's inbound: without the Proxy's "
                        "spec.sidecar it has nothing to apply to");
    else if (c->mesh_server_tls == NULL && strict)
        pt__cfg_error_at(cx, at->node, pt__cfg_meta_path(cx, &at->meta, "kind"),
                         "PeerAuthentication STRICT needs the Proxy's spec.identity (the "
                         "workload certificate mutual TLS is served with)");
}
