/* config/kind_gateway.c
 * The Gateway kind: servers[] with their port, protocol and hosts, from which config/compile.c
 * opens listeners. HTTP, TCP and TLS with tls.mode PASSTHROUGH (routed on SNI, not decrypted)
 * are served; other protocols and TLS modes are recognised, warned about and open nothing;
 * their TLS settings are checked for shape. */
#include <string.h>
#include <strings.h>

#include "kinds.h"

enum { ST_HTTPS_REDIRECT, ST_MODE };
static const pt_cfg_field_t server_tls_fields[] = {
    [ST_HTTPS_REDIRECT] = {"httpsRedirect", A, PT_SHAPE_SCALAR, NULL, 0},
    [ST_MODE] = {"mode", A, PT_SHAPE_SCALAR, NULL, 0},
    {"serverCertificate", A, PT_SHAPE_SCALAR, NULL, 0},
    {"privateKey", A, PT_SHAPE_SCALAR, NULL, 0},
    {"caCertificates", A, PT_SHAPE_SCALAR, NULL, 0},
    {"caCrl", A, PT_SHAPE_SCALAR, NULL, 0},
    {"credentialName", A, PT_SHAPE_SCALAR, NULL, 0},
    {"credentialNames", A, PT_SHAPE_SEQ, NULL, 0},
    {"tlsCertificates", A, PT_SHAPE_SEQ, NULL, 0},
    {"subjectAltNames", A, PT_SHAPE_SEQ, NULL, 0},
    {"verifyCertificateSpki", A, PT_SHAPE_SEQ, NULL, 0},
    {"verifyCertificateHash", A, PT_SHAPE_SEQ, NULL, 0},
    {"minProtocolVersion", A, PT_SHAPE_SCALAR, NULL, 0},
    {"maxProtocolVersion", A, PT_SHAPE_SCALAR, NULL, 0},
    {"cipherSuites", A, PT_SHAPE_SEQ, NULL, 0},
};

/* Gateway */
enum { GW_SERVERS, GW_SELECTOR, GW__N };
static const pt_cfg_field_t gateway_fields[GW__N] = {
    [GW_SERVERS] = {.name = "servers", .status = S},
    /* Petrel is the gateway: every Gateway loaded applies, whatever it selects. */
    [GW_SELECTOR] = {.name = "selector", .status = A},
};
enum { SRV_PORT, SRV_HOSTS, SRV_NAME, SRV_BIND, SRV_TLS, SRV_DEFAULT_ENDPOINT, SRV__N };
static const pt_cfg_field_t server_fields[SRV__N] = {
    [SRV_PORT] = {.name = "port", .status = S},
    [SRV_HOSTS] = {.name = "hosts", .status = S},
    [SRV_NAME] = {.name = "name", .status = S},
    [SRV_BIND] = {"bind", U, PT_SHAPE_SCALAR, NULL, 0},
    [SRV_TLS] = {.name = "tls", .status = S}, /* read by read_server_tls() */
    [SRV_DEFAULT_ENDPOINT] = {"defaultEndpoint", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { PORT_NUMBER, PORT_PROTOCOL, PORT_NAME, PORT_TARGET, PORT__N };
static const pt_cfg_field_t gw_port_fields[PORT__N] = {
    [PORT_NUMBER] = {.name = "number", .status = S},
    [PORT_PROTOCOL] = {.name = "protocol", .status = S},
    [PORT_NAME] = {.name = "name", .status = S},
    [PORT_TARGET] = {"targetPort", U, PT_SHAPE_SCALAR, NULL, 0},
};

/* Istio's protocol names (case-insensitive, as Istio parses them). */
static pt_listener_protocol_t read_protocol(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                            const pt_cfg_path_t *path)
{
    static const char *const later[] = {"HTTPS", "HTTP2", "GRPC",  "GRPC-WEB",
                                        "MONGO", "REDIS", "MYSQL", "UDP"};
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return 0;
    if (strcasecmp(s, "HTTP") == 0)
        return PT_LISTENER_HTTP;
    if (strcasecmp(s, "TCP") == 0)
        return PT_LISTENER_TCP;
    if (strcasecmp(s, "TLS") == 0)
        return PT_LISTENER_TLS; /* served only with tls.mode PASSTHROUGH: read_server_tls() */
    for (size_t i = 0; i < NF(later); i++)
        if (strcasecmp(s, later[i]) == 0) {
            /* Serving such a port as plain HTTP or TCP would be wrong (and, for TLS, would
             * expose in clear what was meant to be encrypted): the server opens nothing. */
            pt__cfg_warn(cx, n, path,
                         "protocol %s is not enforced by Petrel yet (HTTP, TCP and TLS "
                         "passthrough are): this server opens no listener",
                         later[i]);
            return 0;
        }
    pt__cfg_error(cx, n, path,
                  "unknown protocol \"%s\" (expected HTTP, HTTPS, HTTP2, GRPC, TLS or TCP)", s);
    return 0;
}

/* server.tls: what Petrel serves is PASSTHROUGH on a TLS server (the connection is routed on
 * its SNI by VirtualService tls[] routes and relayed encrypted). Any other use is checked and
 * warned about; a TLS server that is not PASSTHROUGH opens no listener (*protocol = 0) rather
 * than relay what it was meant to terminate. */
static void read_server_tls(pt_cfg_cx_t *cx, const pt_cfg_node_t *server, const pt_cfg_node_t *tls,
                            const pt_cfg_path_t *server_path, pt_listener_protocol_t *protocol)
{
    pt_cfg_path_t tp = PT_PATH_KEY(server_path, "tls");
    if (tls == NULL) {
        if (*protocol == PT_LISTENER_TLS) {
            pt__cfg_error(cx, server, &tp, "required for protocol TLS");
            *protocol = 0;
        }
        return;
    }
    const pt_cfg_node_t *f[NF(server_tls_fields)];
    if (!MAP(cx, tls, &tp, server_tls_fields, f))
        return;
    const char *mode = "SIMPLE"; /* Istio's default */
    if (f[ST_MODE] != NULL) {
        pt_cfg_path_t mp = PT_PATH_KEY(&tp, "mode");
        static const char *const modes[] = {"PASSTHROUGH",      "SIMPLE",       "MUTUAL",
                                            "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"};
        if (!pt__cfg_nonempty_str(cx, f[ST_MODE], &mp, &mode))
            return;
        size_t i = 0;
        while (i < NF(modes) && strcmp(modes[i], mode) != 0)
            i++;
        if (i == NF(modes)) {
            pt__cfg_error(cx, f[ST_MODE], &mp,
                          "unknown mode \"%s\" (expected PASSTHROUGH, SIMPLE, MUTUAL, "
                          "AUTO_PASSTHROUGH, ISTIO_MUTUAL or OPTIONAL_MUTUAL)",
                          mode);
            return;
        }
    }
    if (*protocol == PT_LISTENER_TLS && strcmp(mode, "PASSTHROUGH") == 0)
        return;
    if (*protocol == PT_LISTENER_TLS) {
        pt__cfg_warn(cx, tls, &tp,
                     "tls.mode %s is not enforced by Petrel yet (PASSTHROUGH is): this server "
                     "opens no listener",
                     mode);
        *protocol = 0;
        return;
    }
    pt__cfg_warn(cx, tls, &tp, "not enforced by Petrel yet: ignored");
}

void pt__cfg_read_gateway(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                          const pt_cfg_node_t *spec)
{
    pt_res_gateway_t *g = pt_arena_calloc(cx->tmp, sizeof(*g));
    g->meta = *meta;
    PUSH(cx, set->gateways, set->n_gateways, set->cap_gateways, g);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[GW__N];
    if (!MAP(cx, spec, &sp, gateway_fields, f))
        return;
    if (f[GW_SELECTOR] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "selector");
        pt__cfg_string_map(cx, f[GW_SELECTOR], &p);
    }
    pt_cfg_path_t svp = PT_PATH_KEY(&sp, "servers");
    const pt_cfg_node_t *servers = f[GW_SERVERS];
    if (servers == NULL) {
        pt__cfg_error(cx, spec, &svp, "required");
        return;
    }
    if (!pt__cfg_is_seq(cx, servers, &svp))
        return;
    if (servers->n_items == 0) {
        pt__cfg_error(cx, servers, &svp, "must not be empty");
        return;
    }
    g->servers = pt_arena_calloc(cx->tmp, servers->n_items * sizeof(*g->servers));
    for (size_t i = 0; i < servers->n_items; i++) {
        const pt_cfg_node_t *sn = servers->items[i];
        pt_cfg_path_t ip = PT_PATH_IDX(&svp, i);
        const pt_cfg_node_t *sf[SRV__N];
        if (!MAP(cx, sn, &ip, server_fields, sf))
            continue;
        pt_res_server_t *srv = &g->servers[g->n_servers++];
        const char *name;
        if (sf[SRV_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&ip, "name");
            pt__cfg_str(cx, sf[SRV_NAME], &p, &name);
        }
        pt_cfg_path_t hp = PT_PATH_KEY(&ip, "hosts");
        if (sf[SRV_HOSTS] == NULL)
            pt__cfg_error(cx, sn, &hp, "required");
        else
            srv->hosts = pt__cfg_read_hosts(cx, sf[SRV_HOSTS], &hp, true, &srv->n_hosts);

        pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
        if (sf[SRV_PORT] == NULL) {
            pt__cfg_error(cx, sn, &pp, "required");
            continue;
        }
        const pt_cfg_node_t *pf[PORT__N];
        if (!MAP(cx, sf[SRV_PORT], &pp, gw_port_fields, pf))
            continue;
        srv->port_node = sf[SRV_PORT];
        srv->port_path = pt__cfg_path_dup(cx->tmp, &pp);
        pt_cfg_path_t np = PT_PATH_KEY(&pp, "number");
        long long v;
        if (pf[PORT_NUMBER] == NULL)
            pt__cfg_error(cx, sf[SRV_PORT], &np, "required");
        else if (pt__cfg_int(cx, pf[PORT_NUMBER], &np, 1, 65535, &v))
            srv->port = (uint16_t)v;
        pt_cfg_path_t prp = PT_PATH_KEY(&pp, "protocol");
        if (pf[PORT_PROTOCOL] == NULL)
            pt__cfg_error(cx, sf[SRV_PORT], &prp, "required");
        else
            srv->protocol = read_protocol(cx, pf[PORT_PROTOCOL], &prp);
        srv->protocol_node = pf[PORT_PROTOCOL];
        if (srv->protocol != 0 || sf[SRV_TLS] != NULL)
            read_server_tls(cx, sn, sf[SRV_TLS], &ip, &srv->protocol);
        if (pf[PORT_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&pp, "name");
            pt__cfg_str(cx, pf[PORT_NAME], &p, &name);
        }
    }
}
