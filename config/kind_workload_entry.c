/* config/kind_workload_entry.c
 * Istio's WorkloadEntry (address, ports, labels, weight of one workload) and the reader it
 * shares with ServiceEntry endpoints[], which are the same message in Istio's API. A
 * ServiceEntry's workloadSelector turns the WorkloadEntries of its namespace whose labels
 * include the selector's into its endpoints (config/compile.c). */
#include <ctype.h>
#include <string.h>

#include "kinds.h"

enum { WE_ADDRESS, WE_PORTS, WE_LABELS, WE_WEIGHT, WE_NETWORK, WE_LOCALITY, WE_SA, WE__N };
static const pt_cfg_field_t workload_fields[WE__N] = {
    [WE_ADDRESS] = {.name = "address", .status = S},
    [WE_PORTS] = {.name = "ports", .status = S},
    [WE_LABELS] = {.name = "labels", .status = S},
    [WE_WEIGHT] = {.name = "weight", .status = S},
    /* One network is assumed: network gateways are not modelled. */
    [WE_NETWORK] = {"network", U, PT_SHAPE_SCALAR, NULL, 0},
    [WE_LOCALITY] = {.name = "locality", .status = A},
    [WE_SA] = {"serviceAccount", U, PT_SHAPE_SCALAR, NULL, 0},
};

/* A DNS name as a resolver takes it: dot-separated labels of letters, digits, '-' and '_',
 * none empty or over 63 bytes, 253 bytes at most (a trailing dot allowed). */
static bool is_dns_name(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 253 || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

bool pt__cfg_read_workload(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           bool must_be_ip, pt_res_se_endpoint_t *e)
{
    const pt_cfg_node_t *wf[WE__N];
    memset(e, 0, sizeof(*e));
    e->weight = 1;
    if (!MAP(cx, n, path, workload_fields, wf))
        return false;
    bool ok = true;
    pt_cfg_path_t ap = PT_PATH_KEY(path, "address");
    if (wf[WE_ADDRESS] == NULL) {
        pt__cfg_error(cx, n, &ap, "required");
        ok = false;
    } else if (!pt__cfg_nonempty_str(cx, wf[WE_ADDRESS], &ap, &e->address)) {
        ok = false;
    } else if (strncmp(e->address, "unix://", 7) == 0) {
        pt__cfg_warn(cx, wf[WE_ADDRESS], &ap,
                     "unix domain socket endpoints are not enforced by Petrel yet: endpoint "
                     "ignored");
        ok = false;
    } else if (pt__cfg_is_ip_literal(e->address, &e->addr, &e->addr_len)) {
        /* an address: usable with every resolution */
    } else if (must_be_ip) {
        pt__cfg_error(cx, wf[WE_ADDRESS], &ap,
                      "must be an IPv4 or IPv6 address with resolution STATIC, got \"%s\"",
                      e->address);
        ok = false;
    } else if (!is_dns_name(e->address)) {
        pt__cfg_error(cx, wf[WE_ADDRESS], &ap, "must be an IP address or a DNS name, got \"%s\"",
                      e->address);
        ok = false;
    } else {
        e->addr_len = 0; /* a name, resolved by proxy/dns.c */
    }
    if (wf[WE_PORTS] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(path, "ports");
        const pt_cfg_node_t *m = wf[WE_PORTS];
        if (pt__cfg_is_map(cx, m, &pp)) {
            for (size_t j = 0; j < m->n_pairs; j++) {
                pt_cfg_path_t kp = PT_PATH_KEY(&pp, m->pairs[j].key->str);
                long long v;
                if (!pt__cfg_int(cx, m->pairs[j].value, &kp, 1, 65535, &v))
                    ok = false;
            }
            e->ports = m;
        }
    }
    if (wf[WE_WEIGHT] != NULL) {
        pt_cfg_path_t wp = PT_PATH_KEY(path, "weight");
        long long v;
        if (pt__cfg_int(cx, wf[WE_WEIGHT], &wp, 0, 4294967295LL, &v) && v > 0)
            e->weight = (uint32_t)v;
    }
    if (wf[WE_LABELS] != NULL) {
        pt_cfg_path_t lp = PT_PATH_KEY(path, "labels");
        e->labels = pt__cfg_read_labels(cx, wf[WE_LABELS], &lp, &e->n_labels);
    }
    return ok;
}

void pt__cfg_read_workload_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                 const pt_cfg_node_t *spec)
{
    pt_res_we_t *we = pt_arena_calloc(cx->tmp, sizeof(*we));
    we->meta = *meta;
    PUSH(cx, set->wes, set->n_wes, set->cap_wes, we);
    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
    /* Whether a name is allowed depends on the ServiceEntry that selects it (compile). */
    we->ok = pt__cfg_read_workload(cx, spec, &sp, false, &we->ep);
}
