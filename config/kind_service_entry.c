/* config/kind_service_entry.c
 * The ServiceEntry kind: hosts, ports and endpoints, from which config/compile.c builds
 * clusters. Only resolution STATIC gives endpoints (IP literals); NONE and DNS are warned about
 * and leave the ServiceEntry without endpoints. */
#include <string.h>

#include "hostname.h"
#include "kinds.h"

/* ServiceEntry */
enum {
    SE_HOSTS,
    SE_ADDRESSES,
    SE_PORTS,
    SE_LOCATION,
    SE_RESOLUTION,
    SE_ENDPOINTS,
    SE_EXPORT_TO,
    SE_WORKLOAD_SELECTOR,
    SE_SUBJECT_ALT_NAMES,
    SE__N
};
static const pt_cfg_field_t se_fields[SE__N] = {
    [SE_HOSTS] = {.name = "hosts", .status = S},
    [SE_ADDRESSES] = {.name = "addresses", .status = S},
    [SE_PORTS] = {.name = "ports", .status = S},
    [SE_LOCATION] = {.name = "location", .status = S},
    [SE_RESOLUTION] = {.name = "resolution", .status = S},
    [SE_ENDPOINTS] = {.name = "endpoints", .status = S},
    [SE_EXPORT_TO] = {.name = "exportTo", .status = A},
    [SE_WORKLOAD_SELECTOR] = {"workloadSelector", U, PT_SHAPE_MAP, SUB(pt__cfg_selector_fields)},
    [SE_SUBJECT_ALT_NAMES] = {"subjectAltNames", U, PT_SHAPE_SEQ, NULL, 0},
};
enum { SP_NUMBER, SP_PROTOCOL, SP_NAME, SP_TARGET, SP__N };
static const pt_cfg_field_t se_port_fields[SP__N] = {
    [SP_NUMBER] = {.name = "number", .status = S},
    [SP_PROTOCOL] = {.name = "protocol", .status = S},
    [SP_NAME] = {.name = "name", .status = S},
    [SP_TARGET] = {.name = "targetPort", .status = S},
};
enum { WE_ADDRESS, WE_PORTS, WE_LABELS, WE_WEIGHT, WE_NETWORK, WE_LOCALITY, WE_SA, WE__N };
static const pt_cfg_field_t endpoint_fields[WE__N] = {
    [WE_ADDRESS] = {.name = "address", .status = S},
    [WE_PORTS] = {.name = "ports", .status = S},
    [WE_LABELS] = {.name = "labels", .status = S},
    [WE_WEIGHT] = {.name = "weight", .status = S},
    [WE_NETWORK] = {.name = "network", .status = A},
    [WE_LOCALITY] = {.name = "locality", .status = A},
    [WE_SA] = {"serviceAccount", U, PT_SHAPE_SCALAR, NULL, 0},
};

void pt__cfg_read_service_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                const pt_cfg_node_t *spec)
{
    pt_res_se_t *se = pt_arena_calloc(cx->tmp, sizeof(*se));
    se->meta = *meta;
    PUSH(cx, set->ses, set->n_ses, set->cap_ses, se);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[SE__N];
    if (!MAP(cx, spec, &sp, se_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "hosts");
    if (f[SE_HOSTS] == NULL)
        pt__cfg_error(cx, spec, &hp, "required");
    else
        se->hosts = pt__cfg_read_hosts(cx, f[SE_HOSTS], &hp, false, &se->n_hosts);

    if (f[SE_ADDRESSES] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "addresses");
        if (pt__cfg_is_seq(cx, f[SE_ADDRESSES], &p)) {
            size_t n = f[SE_ADDRESSES]->n_items;
            se->addresses = pt_arena_calloc(cx->out, (n + 1) * sizeof(*se->addresses));
            for (size_t i = 0; i < n; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const char *s;
                if (!pt__cfg_str(cx, f[SE_ADDRESSES]->items[i], &ip, &s))
                    continue;
                if (pt_cidr_parse(s, &se->addresses[se->n_addresses]))
                    se->n_addresses++;
                else
                    pt__cfg_error(cx, f[SE_ADDRESSES]->items[i], &ip,
                                  "must be an IP address or a CIDR block, got \"%s\"", s);
            }
        }
    }
    if (f[SE_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[SE_EXPORT_TO], &p);
    }
    if (f[SE_LOCATION] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "location");
        const char *s;
        if (pt__cfg_str(cx, f[SE_LOCATION], &p, &s) && strcmp(s, "MESH_EXTERNAL") != 0 &&
            strcmp(s, "MESH_INTERNAL") != 0)
            pt__cfg_error(cx, f[SE_LOCATION], &p,
                          "unknown location \"%s\" (expected MESH_EXTERNAL or MESH_INTERNAL)", s);
    }

    /* resolution: Istio's default is NONE (pass through to the address the client asked
     * for), which needs traffic capture: not supported yet, and neither is DNS. */
    pt_cfg_path_t rp = PT_PATH_KEY(&sp, "resolution");
    bool is_static = false;
    if (f[SE_RESOLUTION] == NULL) {
        pt__cfg_warn(cx, spec, &rp,
                     "resolution NONE (the default) is not enforced by Petrel yet: this "
                     "ServiceEntry has no endpoints (use STATIC)");
    } else {
        const char *s;
        if (pt__cfg_str(cx, f[SE_RESOLUTION], &rp, &s) && strcmp(s, "STATIC") == 0) {
            is_static = true;
        } else if (f[SE_RESOLUTION]->type == PT_CFG_SCALAR) {
            if (!strcmp(s, "NONE") || !strcmp(s, "DNS") || !strcmp(s, "DNS_ROUND_ROBIN"))
                pt__cfg_warn(cx, f[SE_RESOLUTION], &rp,
                             "resolution %s is not enforced by Petrel yet: this ServiceEntry has "
                             "no endpoints (use STATIC)",
                             s);
            else
                pt__cfg_error(cx, f[SE_RESOLUTION], &rp,
                              "unknown resolution \"%s\" (expected NONE, STATIC, DNS or "
                              "DNS_ROUND_ROBIN)",
                              s);
        }
    }

    if (f[SE_PORTS] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "ports");
        const pt_cfg_node_t *pn = f[SE_PORTS];
        if (pt__cfg_is_seq(cx, pn, &pp) && pn->n_items > 0) {
            se->ports = pt_arena_calloc(cx->tmp, pn->n_items * sizeof(*se->ports));
            for (size_t i = 0; i < pn->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&pp, i);
                const pt_cfg_node_t *pf[SP__N];
                if (!MAP(cx, pn->items[i], &ip, se_port_fields, pf))
                    continue;
                pt_res_se_port_t port = {0};
                long long v;
                pt_cfg_path_t np = PT_PATH_KEY(&ip, "number");
                if (pf[SP_NUMBER] == NULL)
                    pt__cfg_error(cx, pn->items[i], &np, "required");
                else if (pt__cfg_int(cx, pf[SP_NUMBER], &np, 1, 65535, &v))
                    port.number = (uint16_t)v;
                if (pf[SP_TARGET] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "targetPort");
                    if (pt__cfg_int(cx, pf[SP_TARGET], &tp, 1, 65535, &v))
                        port.target_port = (uint16_t)v;
                }
                if (pf[SP_NAME] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "name");
                    pt__cfg_str(cx, pf[SP_NAME], &tp, &port.name);
                }
                if (pf[SP_PROTOCOL] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "protocol");
                    pt__cfg_str(cx, pf[SP_PROTOCOL], &tp, &port.protocol);
                }
                if (port.number == 0)
                    continue;
                bool dup = false;
                for (size_t j = 0; j < se->n_ports; j++)
                    if (se->ports[j].number == port.number ||
                        (port.name && se->ports[j].name && !strcmp(port.name, se->ports[j].name)))
                        dup = true;
                if (dup) {
                    pt__cfg_error(cx, pn->items[i], &ip, "duplicate port number or name");
                    continue;
                }
                se->ports[se->n_ports++] = port;
            }
        }
    }

    if (f[SE_ENDPOINTS] != NULL) {
        pt_cfg_path_t ep = PT_PATH_KEY(&sp, "endpoints");
        const pt_cfg_node_t *en = f[SE_ENDPOINTS];
        if (pt__cfg_is_seq(cx, en, &ep) && en->n_items > 0) {
            se->endpoints = pt_arena_calloc(cx->tmp, en->n_items * sizeof(*se->endpoints));
            for (size_t i = 0; i < en->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&ep, i);
                const pt_cfg_node_t *wf[WE__N];
                if (!MAP(cx, en->items[i], &ip, endpoint_fields, wf))
                    continue;
                pt_res_se_endpoint_t e = {.weight = 1};
                bool ok = true;
                pt_cfg_path_t ap = PT_PATH_KEY(&ip, "address");
                if (wf[WE_ADDRESS] == NULL) {
                    pt__cfg_error(cx, en->items[i], &ap, "required");
                    ok = false;
                } else if (!pt__cfg_nonempty_str(cx, wf[WE_ADDRESS], &ap, &e.address)) {
                    ok = false;
                } else if (strncmp(e.address, "unix://", 7) == 0) {
                    pt__cfg_warn(cx, wf[WE_ADDRESS], &ap,
                                 "unix domain socket endpoints are not enforced by Petrel yet: "
                                 "endpoint ignored");
                    ok = false;
                } else if (!is_static) {
                    ok = false; /* a DNS name or an address: no endpoints (warned above) */
                } else if (!pt__cfg_is_ip_literal(e.address, &e.addr, &e.addr_len)) {
                    pt__cfg_error(cx, wf[WE_ADDRESS], &ap,
                                  "must be an IPv4 or IPv6 address with resolution STATIC, got "
                                  "\"%s\"",
                                  e.address);
                    ok = false;
                }
                if (wf[WE_PORTS] != NULL) {
                    pt_cfg_path_t pp = PT_PATH_KEY(&ip, "ports");
                    const pt_cfg_node_t *m = wf[WE_PORTS];
                    if (pt__cfg_is_map(cx, m, &pp)) {
                        for (size_t j = 0; j < m->n_pairs; j++) {
                            pt_cfg_path_t kp = PT_PATH_KEY(&pp, m->pairs[j].key->str);
                            long long v;
                            if (!pt__cfg_int(cx, m->pairs[j].value, &kp, 1, 65535, &v))
                                ok = false;
                        }
                        e.ports = m;
                    }
                }
                if (wf[WE_WEIGHT] != NULL) {
                    pt_cfg_path_t wp = PT_PATH_KEY(&ip, "weight");
                    long long v;
                    if (pt__cfg_int(cx, wf[WE_WEIGHT], &wp, 0, 4294967295LL, &v) && v > 0)
                        e.weight = (uint32_t)v;
                }
                if (wf[WE_LABELS] != NULL) {
                    pt_cfg_path_t lp = PT_PATH_KEY(&ip, "labels");
                    e.labels = pt__cfg_read_labels(cx, wf[WE_LABELS], &lp, &e.n_labels);
                }
                if (ok)
                    se->endpoints[se->n_endpoints++] = e;
            }
        }
    }
}
