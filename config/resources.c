/* config/resources.c
 * From one document to the typed model of config/resources.h: checks apiVersion, kind and
 * metadata, then hands the spec to its kind's reader (config/kind_*.c, declared in
 * config/kinds.h). Also the helpers and tables several kinds share: hosts[], labels, booleans,
 * IP literals, header-name tokens, Istio's WorkloadSelector.
 *
 * Readers report every problem they find and keep going; they never stop at the first. */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "kinds.h"

/* ---- shared by several kinds ----------------------------------------------------------- */

/* Istio's WorkloadSelector ({labels}: Sidecar, ServiceEntry, DestinationRule, EnvoyFilter)
 * and type.WorkloadSelector ({matchLabels}: security, telemetry, extension kinds). */
const pt_cfg_field_t pt__cfg_selector_fields[] = {{"labels", A, PT_SHAPE_MAP, NULL, 0}};
const pt_cfg_field_t pt__cfg_match_selector_fields[] = {{"matchLabels", A, PT_SHAPE_MAP, NULL, 0}};

/* PortSelector {number}: a route destination's port, a DestinationRule's portLevelSettings. */
const pt_cfg_field_t pt__cfg_port_selector_fields[PS__N] = {
    [PS_NUMBER] = {.name = "number", .status = S},
};

/* A resource as written, or as `kubectl get -o yaml` exports it: the API server's status is
 * accepted and ignored. */
enum { DOC_API, DOC_KIND, DOC_META, DOC_SPEC, DOC_STATUS, DOC__N };
static const pt_cfg_field_t doc_fields[DOC__N] = {
    [DOC_API] = {.name = "apiVersion", .status = S},     [DOC_KIND] = {.name = "kind", .status = S},
    [DOC_META] = {.name = "metadata", .status = S},      [DOC_SPEC] = {.name = "spec", .status = S},
    [DOC_STATUS] = {"status", A, PT_SHAPE_MAP, NULL, 0},
};

/* Kubernetes' ObjectMeta: Petrel reads name and namespace; the rest is what people and the API
 * server write (kubectl exports carry all of it), accepted and ignored. */
enum {
    META_NAME,
    META_NS,
    META_LABELS,
    META_ANNOTATIONS,
    META_UID,
    META_RESOURCE_VERSION,
    META_GENERATION,
    META_CREATION_TIMESTAMP,
    META_DELETION_TIMESTAMP,
    META_DELETION_GRACE_PERIOD,
    META_GENERATE_NAME,
    META_SELF_LINK,
    META_MANAGED_FIELDS,
    META_OWNER_REFERENCES,
    META_FINALIZERS,
    META__N
};
static const pt_cfg_field_t meta_fields[META__N] = {
    [META_NAME] = {.name = "name", .status = S},
    [META_NS] = {.name = "namespace", .status = S},
    [META_LABELS] = {.name = "labels", .status = A},
    [META_ANNOTATIONS] = {.name = "annotations", .status = A},
    [META_UID] = {"uid", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_RESOURCE_VERSION] = {"resourceVersion", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_GENERATION] = {"generation", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_CREATION_TIMESTAMP] = {"creationTimestamp", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_DELETION_TIMESTAMP] = {"deletionTimestamp", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_DELETION_GRACE_PERIOD] = {"deletionGracePeriodSeconds", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_GENERATE_NAME] = {"generateName", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_SELF_LINK] = {"selfLink", A, PT_SHAPE_SCALAR, NULL, 0},
    [META_MANAGED_FIELDS] = {"managedFields", A, PT_SHAPE_SEQ, NULL, 0},
    [META_OWNER_REFERENCES] = {"ownerReferences", A, PT_SHAPE_SEQ, NULL, 0},
    [META_FINALIZERS] = {"finalizers", A, PT_SHAPE_SEQ, NULL, 0},
};

/* A Kubernetes List (kind List, or <Kind>List) and its ListMeta, which Petrel does not need. */
enum { LIST_API, LIST_KIND, LIST_META, LIST_ITEMS, LIST__N };
static const pt_cfg_field_t list_fields[LIST__N] = {
    [LIST_API] = {.name = "apiVersion", .status = S},
    [LIST_KIND] = {.name = "kind", .status = S},
    [LIST_META] = {.name = "metadata", .status = S},
    [LIST_ITEMS] = {.name = "items", .status = S},
};
static const pt_cfg_field_t list_meta_fields[] = {
    {"resourceVersion", A, PT_SHAPE_SCALAR, NULL, 0},
    {"continue", A, PT_SHAPE_SCALAR, NULL, 0},
    {"remainingItemCount", A, PT_SHAPE_SCALAR, NULL, 0},
    {"selfLink", A, PT_SHAPE_SCALAR, NULL, 0},
};

bool pt__cfg_is_ip_literal(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof(tmp));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&tmp;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&tmp;
    socklen_t l;
    if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        l = sizeof(*in4);
    } else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        l = sizeof(*in6);
    } else {
        return false;
    }
    if (ss != NULL)
        *ss = tmp;
    if (len != NULL)
        *len = l;
    return true;
}

/* A list of hosts (Istio's hosts[]), lower-cased into the snapshot arena. Gateway server hosts
 * may carry a "namespace/" prefix, which only selects which VirtualServices may bind: Petrel
 * keeps the dnsName part. */
const char **pt__cfg_read_hosts(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                bool allow_ns_prefix, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_seq(cx, n, path))
        return NULL;
    if (n->n_items == 0) {
        pt__cfg_error(cx, n, path, "must not be empty");
        return NULL;
    }
    const char **hosts = pt_arena_calloc(cx->out, n->n_items * sizeof(*hosts));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const char *s;
        if (!pt__cfg_nonempty_str(cx, n->items[i], &ip, &s))
            continue;
        const char *slash = strchr(s, '/');
        if (allow_ns_prefix && slash != NULL)
            s = slash + 1;
        const char *why = pt__cfg_host_problem(s);
        if (why != NULL) {
            pt__cfg_error(cx, n->items[i], &ip, "invalid host \"%s\": %s", n->items[i]->str, why);
            continue;
        }
        hosts[(*out_n)++] = pt__cfg_out_lower(cx, s);
    }
    return hosts;
}

/* Does pattern (a host, "*" or "*.suffix") cover host (which may itself be a wildcard)? */
bool pt__cfg_host_covers(const char *pattern, const char *host)
{
    if (strcmp(pattern, "*") == 0)
        return true;
    if (pattern[0] == '*') {
        size_t pl = strlen(pattern) - 1, hl = strlen(host); /* pl counts the leading '.' */
        if (strcmp(host, "*") == 0)
            return false;
        return hl > pl && strcasecmp(host + hl - pl, pattern + 1) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

bool pt__cfg_is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool pt__cfg_is_token(const char *s, size_t len)
{
    bool ok = len > 0;
    for (size_t j = 0; ok && j < len; j++)
        ok = pt__cfg_is_token_char((unsigned char)s[j]);
    return ok;
}

/* A map of string labels, as key, value pairs in the snapshot arena. */
const char **pt__cfg_read_labels(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_string_map(cx, n, path) || n->n_pairs == 0)
        return NULL;
    const char **kv = pt_arena_calloc(cx->out, 2 * n->n_pairs * sizeof(*kv));
    for (size_t i = 0; i < n->n_pairs; i++) {
        const pt_cfg_node_t *v = n->pairs[i].value;
        kv[2 * *out_n] = pt__cfg_out_str(cx, n->pairs[i].key->str);
        kv[2 * *out_n + 1] = pt__cfg_out_str(cx, v->type == PT_CFG_NULL ? "" : v->str);
        (*out_n)++;
    }
    return kv;
}

bool pt__cfg_read_bool(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                       bool *out)
{
    if (n->type == PT_CFG_SCALAR && !n->is_quoted &&
        (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0)) {
        *out = n->str[0] == 't';
        return true;
    }
    pt__cfg_error(cx, n, path, "must be true or false");
    return false;
}

/* ---- metadata and kinds --------------------------------------------------------------- */

static bool read_meta(pt_cfg_cx_t *cx, const pt_cfg_node_t *root, const pt_cfg_node_t *n,
                      pt_res_meta_t *m)
{
    pt_cfg_path_t path = PT_PATH_KEY(m->path, "metadata");
    const pt_cfg_node_t *f[META__N];
    m->ns = "default";
    if (n == NULL) {
        pt__cfg_error(cx, root, &path, "required");
        return false;
    }
    if (!MAP(cx, n, &path, meta_fields, f))
        return false;
    bool ok = true;
    pt_cfg_path_t np = PT_PATH_KEY(&path, "name");
    if (f[META_NAME] == NULL) {
        pt__cfg_error(cx, n, &np, "required");
        ok = false;
    } else if (!pt__cfg_nonempty_str(cx, f[META_NAME], &np, &m->name)) {
        ok = false;
    } else if (strchr(m->name, '/') != NULL) {
        pt__cfg_error(cx, f[META_NAME], &np, "must not contain \"/\"");
        ok = false;
    }
    m->name_node = f[META_NAME];
    if (f[META_NS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "namespace");
        const char *ns;
        if (pt__cfg_nonempty_str(cx, f[META_NS], &p, &ns)) {
            if (strchr(ns, '/') != NULL)
                pt__cfg_error(cx, f[META_NS], &p, "must not contain \"/\"");
            else
                m->ns = ns;
        }
    }
    if (f[META_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "labels");
        pt__cfg_string_map(cx, f[META_LABELS], &p);
    }
    if (f[META_ANNOTATIONS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "annotations");
        pt__cfg_string_map(cx, f[META_ANNOTATIONS], &p);
    }
    return ok;
}

/* ---- documents ------------------------------------------------------------------------ */

typedef void (*reader_fn)(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                          const pt_cfg_node_t *spec);

static const char *const istio_networking_versions[] = {
    "networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3", NULL};
static const char *const petrel_versions[] = {"petrel.io/v1alpha1", NULL};
static const char *const istio_security_versions[] = {"security.istio.io/v1",
                                                      "security.istio.io/v1beta1", NULL};
static const char *const istio_telemetry_versions[] = {"telemetry.istio.io/v1",
                                                       "telemetry.istio.io/v1alpha1", NULL};
static const char *const istio_extensions_versions[] = {"extensions.istio.io/v1alpha1", NULL};

static const struct {
    const char *kind;
    const char *const *versions;
    reader_fn read;
    bool spec_optional;
} kinds[] = {
    {"Proxy", petrel_versions, pt__cfg_read_proxy, true},
    {"ChaosProxy", petrel_versions, pt__cfg_read_chaos_proxy, false},
    {"Gateway", istio_networking_versions, pt__cfg_read_gateway, false},
    {"VirtualService", istio_networking_versions, pt__cfg_read_virtual_service, false},
    {"ServiceEntry", istio_networking_versions, pt__cfg_read_service_entry, false},
    {"DestinationRule", istio_networking_versions, pt__cfg_read_destination_rule, false},
    {"WorkloadEntry", istio_networking_versions, pt__cfg_read_workload_entry, false},
    {"AuthorizationPolicy", istio_security_versions, pt__cfg_read_authorization_policy, true},
    {"PeerAuthentication", istio_security_versions, pt__cfg_read_peer_authentication, true},
};

/* Istio kinds Petrel knows of and does not enforce yet (pt__cfg_read_unenforced), with the API
 * versions Istio serves them under. */
static const struct {
    const char *kind;
    const char *const *versions;
} later_kinds[] = {
    {"RequestAuthentication", istio_security_versions}, {"Sidecar", istio_networking_versions},
    {"WorkloadGroup", istio_networking_versions},       {"EnvoyFilter", istio_networking_versions},
    {"ProxyConfig", istio_networking_versions},         {"Telemetry", istio_telemetry_versions},
    {"WasmPlugin", istio_extensions_versions},
};

/* apiVersion n of a resource of kind `kind` at path: one of versions, or `also` when it is not
 * NULL (a List's "v1"). */
static void check_api_version(pt_cfg_cx_t *cx, const pt_cfg_node_t *root, const pt_cfg_path_t *path,
                              const pt_cfg_node_t *n, const char *kind, const char *also,
                              const char *const *versions)
{
    pt_cfg_path_t ap = PT_PATH_KEY(path, "apiVersion");
    const char *api;
    if (n == NULL) {
        pt__cfg_error(cx, root, &ap, "required");
        return;
    }
    if (!pt__cfg_nonempty_str(cx, n, &ap, &api))
        return;
    bool ok = also != NULL && strcmp(also, api) == 0;
    for (const char *const *v = versions; *v != NULL; v++)
        ok = ok || strcmp(*v, api) == 0;
    if (ok)
        return;
    char expected[256] = "";
    if (also != NULL)
        strncat(expected, also, sizeof(expected) - 1);
    for (const char *const *v = versions; *v != NULL; v++) {
        if (expected[0] != '\0')
            strncat(expected, ", ", sizeof(expected) - strlen(expected) - 1);
        strncat(expected, *v, sizeof(expected) - strlen(expected) - 1);
    }
    pt__cfg_error(cx, n, &ap, "unknown apiVersion \"%s\" for kind %s (expected %s)", api, kind,
                  expected);
}

/* The error for a kind Petrel does not know: the closest known kind, and the kinds Petrel
 * reads (the kinds table itself, so the list cannot go stale). */
static void unknown_kind(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                         const char *kind)
{
    pt_cfg_suggest_t sg;
    pt__cfg_suggest_init(&sg, kind);
    char expected[256] = "";
    for (size_t i = 0; i < NF(kinds); i++) {
        pt__cfg_suggest_add(&sg, kinds[i].kind);
        if (i > 0)
            strncat(expected, ", ", sizeof(expected) - strlen(expected) - 1);
        strncat(expected, kinds[i].kind, sizeof(expected) - strlen(expected) - 1);
    }
    for (size_t i = 0; i < NF(later_kinds); i++)
        pt__cfg_suggest_add(&sg, later_kinds[i].kind);
    char hint[128];
    pt__cfg_error(cx, n, path, "unknown kind \"%s\"%s (Petrel reads %s, and Lists of them)", kind,
                  pt__cfg_suggest_text(&sg, hint, sizeof(hint)), expected);
}

/* ---- Kubernetes Lists ------------------------------------------------------------------ */

/* Whether a document of this kind is a List: "List", or <Kind>List for a kind Petrel knows,
 * whose API versions go to *versions (an empty list for "List"). */
static bool is_list_kind(const char *kind, const char *const **versions)
{
    static const char *const none[] = {NULL};
    size_t len = strlen(kind);
    if (strcmp(kind, "List") == 0) {
        *versions = none;
        return true;
    }
    if (len <= 4 || strcmp(kind + len - 4, "List") != 0)
        return false;
    for (size_t i = 0; i < NF(kinds); i++)
        if (strlen(kinds[i].kind) == len - 4 && strncmp(kinds[i].kind, kind, len - 4) == 0) {
            *versions = kinds[i].versions;
            return true;
        }
    for (size_t i = 0; i < NF(later_kinds); i++)
        if (strlen(later_kinds[i].kind) == len - 4 &&
            strncmp(later_kinds[i].kind, kind, len - 4) == 0) {
            *versions = later_kinds[i].versions;
            return true;
        }
    return false;
}

/* Appends doc to out, or, when it is a List, each of its items (recursively: the YAML depth
 * limit bounds the nesting). */
static void expand_list(pt_cfg_cx_t *cx, pt_cfg_docs_t *out, const pt_cfg_doc_t *doc)
{
    const pt_cfg_node_t *root = doc->root;
    const char *kind = NULL;
    for (size_t i = 0; root->type == PT_CFG_MAP && i < root->n_pairs && kind == NULL; i++)
        if (strcmp(root->pairs[i].key->str, "kind") == 0 &&
            root->pairs[i].value->type == PT_CFG_SCALAR)
            kind = root->pairs[i].value->str;
    const char *const *versions;
    if (kind == NULL || !is_list_kind(kind, &versions)) {
        pt__cfg_docs_push(out, *doc);
        return;
    }
    const pt_cfg_node_t *f[LIST__N];
    MAP(cx, root, doc->path, list_fields, f);
    check_api_version(cx, root, doc->path, f[LIST_API], kind, "v1", versions);
    if (f[LIST_META] != NULL) {
        pt_cfg_path_t mp = PT_PATH_KEY(doc->path, "metadata");
        const pt_cfg_node_t *mf[NF(list_meta_fields)];
        MAP(cx, f[LIST_META], &mp, list_meta_fields, mf);
    }
    /* Each item's path outlives this call: errors found at compile still name it. */
    pt_cfg_path_t *items = pt_arena_calloc(cx->tmp, sizeof(*items));
    *items = PT_PATH_KEY(doc->path, "items");
    if (f[LIST_ITEMS] == NULL) {
        pt__cfg_error(cx, root, items, "required");
        return;
    }
    if (!pt__cfg_is_seq(cx, f[LIST_ITEMS], items))
        return;
    for (size_t i = 0; i < f[LIST_ITEMS]->n_items; i++) {
        pt_cfg_path_t *ip = pt_arena_calloc(cx->tmp, sizeof(*ip));
        *ip = PT_PATH_IDX(items, i);
        expand_list(cx, out, &(pt_cfg_doc_t){f[LIST_ITEMS]->items[i], doc->file, ip});
    }
}

void pt__cfg_expand_lists(pt_cfg_cx_t *cx, pt_cfg_docs_t *docs)
{
    pt_cfg_docs_t out = {0};
    for (size_t i = 0; i < docs->n; i++)
        expand_list(cx, &out, &docs->v[i]);
    pt__cfg_docs_dispose(docs);
    *docs = out;
}

const char *pt__cfg_meta_path(pt_cfg_cx_t *cx, const pt_res_meta_t *m, const char *field)
{
    pt_cfg_path_t p = PT_PATH_KEY(m->path, field);
    return pt__cfg_path_dup(cx->tmp, &p);
}

/* ---- one resource --------------------------------------------------------------------- */

void pt__cfg_resources_add(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_cfg_doc_t *doc)
{
    const pt_cfg_node_t *root = doc->root;
    const pt_cfg_path_t *path = doc->path;
    const pt_cfg_node_t *f[DOC__N];
    if (root->type != PT_CFG_MAP) {
        pt__cfg_error(cx, root, path,
                      "a document must be a map (apiVersion, kind, metadata, spec)");
        return;
    }
    MAP(cx, root, path, doc_fields, f);

    pt_cfg_path_t kp = PT_PATH_KEY(path, "kind");
    const char *kind;
    if (f[DOC_KIND] == NULL) {
        pt__cfg_error(cx, root, &kp, "required");
        return;
    }
    if (!pt__cfg_nonempty_str(cx, f[DOC_KIND], &kp, &kind))
        return;
    size_t k = 0;
    while (k < NF(kinds) && strcmp(kinds[k].kind, kind) != 0)
        k++;
    if (k == NF(kinds)) {
        for (size_t i = 0; i < NF(later_kinds); i++)
            if (strcmp(later_kinds[i].kind, kind) == 0) {
                check_api_version(cx, root, path, f[DOC_API], kind, NULL, later_kinds[i].versions);
                pt_res_meta_t meta = {.kind = later_kinds[i].kind, .doc = root, .path = path};
                if (!read_meta(cx, root, f[DOC_META], &meta))
                    meta.name = "<unnamed>";
                pt__cfg_read_unenforced(cx, &meta, f[DOC_KIND], f[DOC_SPEC]);
                return;
            }
        unknown_kind(cx, f[DOC_KIND], &kp, kind);
        return;
    }

    check_api_version(cx, root, path, f[DOC_API], kind, NULL, kinds[k].versions);

    pt_res_meta_t meta = {.kind = kinds[k].kind, .doc = root, .path = path};
    bool meta_ok = read_meta(cx, root, f[DOC_META], &meta);
    const pt_cfg_node_t *spec = f[DOC_SPEC];
    if (spec == NULL && !kinds[k].spec_optional) {
        pt_cfg_path_t sp = PT_PATH_KEY(path, "spec");
        pt__cfg_error(cx, root, &sp, "required");
        return;
    }
    if (!meta_ok)
        meta.name = "<unnamed>";
    kinds[k].read(cx, set, &meta, spec);
}
