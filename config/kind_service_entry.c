/* config/kind_service_entry.c
 * The ServiceEntry kind: hosts, ports, resolution and endpoints (or a workloadSelector), from
 * which config/compile.c builds clusters. STATIC endpoints are IP literals; DNS and
 * DNS_ROUND_ROBIN endpoints may be names, resolved on the main thread by proxy/dns.c; NONE is
 * warned about and leaves the ServiceEntry without endpoints. */
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
    [SE_WORKLOAD_SELECTOR] = {.name = "workloadSelector", .status = S},
    [SE_SUBJECT_ALT_NAMES] = {"subjectAltNames", U, PT_SHAPE_SEQ, NULL, 0},
};
enum { SP_NUMBER, SP_PROTOCOL, SP_NAME, SP_TARGET, SP__N };
static const pt_cfg_field_t se_port_fields[SP__N] = {
    [SP_NUMBER] = {.name = "number", .status = S},
    [SP_PROTOCOL] = {.name = "protocol", .status = S},
    [SP_NAME] = {.name = "name", .status = S},
    [SP_TARGET] = {.name = "targetPort", .status = S},
};
void pt__cfg_read_service_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                const pt_cfg_node_t *spec)
{
    pt_res_se_t *se = pt_arena_calloc(cx->tmp, sizeof(*se));
    se->meta = *meta;
    PUSH(cx, set->ses, set->n_ses, set->cap_ses, se);

    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
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

    /* resolution: Istio's default is NONE: connections go to the address the client asked
     * for (the sidecar's original destination; compile makes such clusters original-dst). */
    pt_cfg_path_t rp = PT_PATH_KEY(&sp, "resolution");
    if (f[SE_RESOLUTION] != NULL) {
        const char *s;
        if (pt__cfg_str(cx, f[SE_RESOLUTION], &rp, &s)) {
            if (strcmp(s, "STATIC") == 0)
                se->resolution = PT_RES_STATIC;
            else if (strcmp(s, "DNS") == 0)
                se->resolution = PT_RES_DNS;
            else if (strcmp(s, "DNS_ROUND_ROBIN") == 0)
                se->resolution = PT_RES_DNS_ROUND_ROBIN;
            else if (strcmp(s, "NONE") != 0)
                pt__cfg_error(cx, f[SE_RESOLUTION], &rp,
                              "unknown resolution \"%s\" (expected NONE, STATIC, DNS or "
                              "DNS_ROUND_ROBIN)",
                              s);
        }
    }
    bool is_static = se->resolution == PT_RES_STATIC;
    bool is_dns = se->resolution == PT_RES_DNS || se->resolution == PT_RES_DNS_ROUND_ROBIN;

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
                pt_res_se_endpoint_t e;
                /* NONE keeps no endpoint (warned above), so its addresses are not checked. */
                if (pt__cfg_read_workload(cx, en->items[i], &ip, is_static, &e) &&
                    (is_static || is_dns))
                    se->endpoints[se->n_endpoints++] = e;
            }
            /* Istio's validation: LOGICAL_DNS has one address to resolve. */
            if (se->resolution == PT_RES_DNS_ROUND_ROBIN && en->n_items > 1)
                pt__cfg_error(cx, en, &ep,
                              "resolution DNS_ROUND_ROBIN takes at most one endpoint, got %zu",
                              en->n_items);
        }
    }

    if (f[SE_WORKLOAD_SELECTOR] != NULL) {
        pt_cfg_path_t wp = PT_PATH_KEY(&sp, "workloadSelector");
        const pt_cfg_node_t *wf[1];
        if (pt__cfg_map(cx, f[SE_WORKLOAD_SELECTOR], &wp, pt__cfg_selector_fields, 1, wf)) {
            se->has_selector = true;
            if (wf[0] != NULL) {
                pt_cfg_path_t lp = PT_PATH_KEY(&wp, "labels");
                se->selector = pt__cfg_read_labels(cx, wf[0], &lp, &se->n_selector);
            }
        }
        if (f[SE_ENDPOINTS] != NULL)
            pt__cfg_error(cx, f[SE_WORKLOAD_SELECTOR], &wp,
                          "only one of workloadSelector or endpoints can be set");
    }

    /* Istio's validation: without endpoints, a DNS ServiceEntry resolves its hosts, so they
     * must be names, not wildcards. */
    if (is_dns && f[SE_ENDPOINTS] == NULL && !se->has_selector)
        for (size_t i = 0; i < se->n_hosts; i++)
            if (strchr(se->hosts[i], '*') != NULL) {
                pt__cfg_error(cx, f[SE_HOSTS], &hp,
                              "hosts must be names, not wildcards, with resolution DNS and no "
                              "endpoints, got \"%s\"",
                              se->hosts[i]);
            }
}
