/* config/kind_unenforced.c
 * Kinds of Istio's API that Petrel parses but does not enforce yet (RequestAuthentication,
 * Sidecar, WorkloadGroup,
 * EnvoyFilter, ProxyConfig, Telemetry, WasmPlugin): their spec's top-level fields are checked,
 * then the resource is dropped with a warning or, for a security policy that dropping would
 * leave open, refused (an error unless the load is lenient). */
#include <string.h>

#include "kinds.h"

/* Their spec's top-level fields, as Istio names them: a typo there is an error; what is
 * inside is not validated in depth (docs/config.md says so). */
static const pt_cfg_field_t request_authn_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(pt__cfg_match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"jwtRules", A, PT_SHAPE_SEQ, NULL, 0},
};
static const pt_cfg_field_t sidecar_fields[] = {
    {"workloadSelector", A, PT_SHAPE_MAP, SUB(pt__cfg_selector_fields)},
    {"ingress", A, PT_SHAPE_SEQ, NULL, 0},
    {"egress", A, PT_SHAPE_SEQ, NULL, 0},
    {"outboundTrafficPolicy", A, PT_SHAPE_MAP, NULL, 0},
    {"inboundConnectionPool", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t workload_group_fields[] = {
    {"metadata", A, PT_SHAPE_MAP, NULL, 0},
    {"template", A, PT_SHAPE_MAP, NULL, 0},
    {"probe", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t envoy_filter_fields[] = {
    {"workloadSelector", A, PT_SHAPE_MAP, SUB(pt__cfg_selector_fields)},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"configPatches", A, PT_SHAPE_SEQ, NULL, 0},
    {"priority", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t proxy_config_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(pt__cfg_match_selector_fields)},
    {"concurrency", A, PT_SHAPE_SCALAR, NULL, 0},
    {"environmentVariables", A, PT_SHAPE_MAP, NULL, 0},
    {"image", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t telemetry_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(pt__cfg_match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"tracing", A, PT_SHAPE_SEQ, NULL, 0},
    {"metrics", A, PT_SHAPE_SEQ, NULL, 0},
    {"accessLogging", A, PT_SHAPE_SEQ, NULL, 0},
};
static const pt_cfg_field_t wasm_plugin_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(pt__cfg_match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"url", A, PT_SHAPE_SCALAR, NULL, 0},
    {"sha256", A, PT_SHAPE_SCALAR, NULL, 0},
    {"imagePullPolicy", A, PT_SHAPE_SCALAR, NULL, 0},
    {"imagePullSecret", A, PT_SHAPE_SCALAR, NULL, 0},
    {"pluginConfig", A, PT_SHAPE_MAP, NULL, 0},
    {"pluginName", A, PT_SHAPE_SCALAR, NULL, 0},
    {"phase", A, PT_SHAPE_SCALAR, NULL, 0},
    {"priority", A, PT_SHAPE_SCALAR, NULL, 0},
    {"vmConfig", A, PT_SHAPE_MAP, NULL, 0},
    {"match", A, PT_SHAPE_SEQ, NULL, 0},
    {"verificationKey", A, PT_SHAPE_SCALAR, NULL, 0},
    {"failStrategy", A, PT_SHAPE_SCALAR, NULL, 0},
    {"type", A, PT_SHAPE_SCALAR, NULL, 0},
};

static const struct {
    const char *kind;
    const pt_cfg_field_t *fields;
    size_t n_fields;
} unenforced_kinds[] = {
    {"RequestAuthentication", SUB(request_authn_fields)},
    {"Sidecar", SUB(sidecar_fields)},
    {"WorkloadGroup", SUB(workload_group_fields)},
    {"EnvoyFilter", SUB(envoy_filter_fields)},
    {"ProxyConfig", SUB(proxy_config_fields)},
    {"Telemetry", SUB(telemetry_fields)},
    {"WasmPlugin", SUB(wasm_plugin_fields)},
};

/* A kind of Istio's API that Petrel does not enforce yet: its spec is checked against the
 * kind's top-level fields, then the resource is dropped with a warning. Security policies
 * (every RequestAuthentication) would leave the proxy open if dropped: they are errors, so that
 * `petrel run` and `petrel validate` refuse them; `petrel validate --lenient` warns instead. */
void pt__cfg_read_unenforced(pt_cfg_cx_t *cx, const pt_res_meta_t *meta, const pt_cfg_node_t *kind,
                             const pt_cfg_node_t *spec)
{
    size_t k = 0;
    while (strcmp(unenforced_kinds[k].kind, meta->kind) != 0)
        k++;
    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    pt_cfg_path_t kp = PT_PATH_KEY(meta->path, "kind");
    const pt_cfg_node_t *f[32];
    bool security = false;
    if (spec != NULL)
        pt__cfg_map(cx, spec, &sp, unenforced_kinds[k].fields, unenforced_kinds[k].n_fields, f);
    if (strcmp(meta->kind, "RequestAuthentication") == 0)
        security = true;
    if (!security)
        pt__cfg_warn(cx, kind, &kp, "%s %s/%s is not enforced by Petrel yet: ignored", meta->kind,
                     meta->ns, meta->name);
    else if (cx->errors->is_lenient)
        pt__cfg_warn(cx, kind, &kp,
                     "%s %s/%s is not enforced by Petrel yet: `petrel run` refuses this config "
                     "rather than run open",
                     meta->kind, meta->ns, meta->name);
    else
        pt__cfg_error(cx, kind, &kp,
                      "%s %s/%s cannot be enforced by Petrel yet: refusing to run open", meta->kind,
                      meta->ns, meta->name);
}
