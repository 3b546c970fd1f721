/* config/kind_gateway.c
 * The Gateway kind: servers[] with their port, protocol and hosts, from which config/compile.c
 * opens listeners. HTTP, HTTPS (tls.mode SIMPLE, MUTUAL, OPTIONAL_MUTUAL: terminated, then
 * routed as HTTP), TCP, and TLS (PASSTHROUGH: routed on SNI, not decrypted; SIMPLE, MUTUAL,
 * OPTIONAL_MUTUAL: terminated, then routed by tcp[] routes) are served; other protocols and TLS
 * modes are recognised, warned about and open nothing. HTTPS and TLS servers of any mode may
 * share a port (chosen by SNI: compile.c); plaintext HTTP may not share one with them. */
#include <openssl/ssl.h>
#include <string.h>
#include <strings.h>

#include "kinds.h"

enum {
    ST_HTTPS_REDIRECT,
    ST_MODE,
    ST_SERVER_CERT,
    ST_PRIVATE_KEY,
    ST_CA_CERTS,
    ST_CA_CRL,
    ST_CREDENTIAL_NAME,
    ST_CREDENTIAL_NAMES,
    ST_TLS_CERTIFICATES,
    ST_SANS,
    ST_SPKI,
    ST_HASH,
    ST_MIN_VERSION,
    ST_MAX_VERSION,
    ST_CIPHERS,
    ST__N
};
static const pt_cfg_field_t server_tls_fields[ST__N] = {
    [ST_HTTPS_REDIRECT] = {.name = "httpsRedirect", .status = S},
    [ST_MODE] = {.name = "mode", .status = S},
    [ST_SERVER_CERT] = {.name = "serverCertificate", .status = S},
    [ST_PRIVATE_KEY] = {.name = "privateKey", .status = S},
    [ST_CA_CERTS] = {.name = "caCertificates", .status = S},
    [ST_CA_CRL] = {"caCrl", U, PT_SHAPE_SCALAR, NULL, 0},
    [ST_CREDENTIAL_NAME] = {.name = "credentialName", .status = S},
    [ST_CREDENTIAL_NAMES] = {"credentialNames", U, PT_SHAPE_SEQ, NULL, 0},
    [ST_TLS_CERTIFICATES] = {"tlsCertificates", U, PT_SHAPE_SEQ, NULL, 0},
    [ST_SANS] = {.name = "subjectAltNames", .status = S},
    [ST_SPKI] = {"verifyCertificateSpki", U, PT_SHAPE_SEQ, NULL, 0},
    [ST_HASH] = {"verifyCertificateHash", U, PT_SHAPE_SEQ, NULL, 0},
    [ST_MIN_VERSION] = {.name = "minProtocolVersion", .status = S},
    [ST_MAX_VERSION] = {.name = "maxProtocolVersion", .status = S},
    [ST_CIPHERS] = {.name = "cipherSuites", .status = S},
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
    static const char *const later[] = {"MONGO", "REDIS", "MYSQL", "UDP"};
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return 0;
    /* HTTP2, GRPC and GRPC-WEB are served as HTTP: HTTP/2 with prior knowledge and HTTP/1.1
     * on one port (proxy/http2_server.h), as Istio's gateways serve them. */
    if (strcasecmp(s, "HTTP") == 0 || strcasecmp(s, "HTTP2") == 0 || strcasecmp(s, "GRPC") == 0 ||
        strcasecmp(s, "GRPC-WEB") == 0)
        return PT_LISTENER_HTTP;
    if (strcasecmp(s, "HTTPS") == 0)
        return PT_LISTENER_HTTP; /* terminated with the server's tls: read_server_tls() */
    if (strcasecmp(s, "TCP") == 0)
        return PT_LISTENER_TCP;
    if (strcasecmp(s, "TLS") == 0)
        return PT_LISTENER_TLS; /* PASSTHROUGH, or terminated: read_server_tls() */
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

/* Istio's TLSProtocol names. Versions below 1.2 are refused: Petrel never speaks them. */
static uint16_t read_tls_version(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path)
{
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return 0;
    if (strcmp(s, "TLS_AUTO") == 0)
        return 0;
    if (strcmp(s, "TLSV1_2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(s, "TLSV1_3") == 0)
        return TLS1_3_VERSION;
    if (strcmp(s, "TLSV1_0") == 0 || strcmp(s, "TLSV1_1") == 0)
        pt__cfg_error(cx, n, path, "%s is not allowed: Petrel speaks TLS 1.2 and 1.3 only", s);
    else
        pt__cfg_error(cx, n, path,
                      "unknown TLS version \"%s\" (expected TLS_AUTO, TLSV1_2 or TLSV1_3)", s);
    return 0;
}

/* A sequence of non-empty strings, copied into the snapshot arena. */
static const char **read_strings(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_seq(cx, n, path) || n->n_items == 0)
        return NULL;
    const char **v = pt_arena_calloc(cx->out, n->n_items * sizeof(*v));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const char *s;
        if (pt__cfg_nonempty_str(cx, n->items[i], &ip, &s))
            v[(*out_n)++] = pt__cfg_out_str(cx, s);
    }
    return v;
}

static const char *read_file_field(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *tp,
                                   const char *name)
{
    const char *s;
    pt_cfg_path_t p = PT_PATH_KEY(tp, name);
    if (n == NULL || !pt__cfg_nonempty_str(cx, n, &p, &s))
        return NULL;
    return pt__cfg_out_str(cx, s);
}

/* HTTPS termination: SIMPLE, MUTUAL or OPTIONAL_MUTUAL, with files or a credentialName. */
static void read_terminated_tls(pt_cfg_cx_t *cx, const pt_cfg_node_t *tls, const pt_cfg_path_t *tp,
                                const pt_cfg_node_t *const *f, const char *mode,
                                pt_res_server_tls_t *t)
{
    t->is_terminated = true;
    t->is_mutual = strcmp(mode, "MUTUAL") == 0;
    t->is_optional_mutual = strcmp(mode, "OPTIONAL_MUTUAL") == 0;
    t->cert = read_file_field(cx, f[ST_SERVER_CERT], tp, "serverCertificate");
    t->key = read_file_field(cx, f[ST_PRIVATE_KEY], tp, "privateKey");
    t->ca = read_file_field(cx, f[ST_CA_CERTS], tp, "caCertificates");
    t->credential_name = read_file_field(cx, f[ST_CREDENTIAL_NAME], tp, "credentialName");
    if (t->credential_name != NULL && (t->cert != NULL || t->key != NULL || t->ca != NULL))
        pt__cfg_error(cx, tls, tp,
                      "credentialName and serverCertificate / privateKey / caCertificates "
                      "exclude each other");
    else if (t->credential_name == NULL && (t->cert == NULL || t->key == NULL))
        pt__cfg_error(cx, tls, tp,
                      "mode %s needs credentialName, or serverCertificate and privateKey", mode);
    else if (t->credential_name == NULL && t->ca == NULL && (t->is_mutual || t->is_optional_mutual))
        pt__cfg_error(cx, tls, tp, "mode %s needs caCertificates (or a credentialName with ca.crt)",
                      mode);
    if (f[ST_MIN_VERSION] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(tp, "minProtocolVersion");
        t->min_version = read_tls_version(cx, f[ST_MIN_VERSION], &p);
    }
    if (f[ST_MAX_VERSION] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(tp, "maxProtocolVersion");
        t->max_version = read_tls_version(cx, f[ST_MAX_VERSION], &p);
        if (t->max_version != 0 && t->min_version > t->max_version)
            pt__cfg_error(cx, f[ST_MAX_VERSION], &p, "below minProtocolVersion");
    }
    if (f[ST_CIPHERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(tp, "cipherSuites");
        size_t n;
        const char **v = read_strings(cx, f[ST_CIPHERS], &p, &n);
        size_t len = 0;
        for (size_t i = 0; i < n; i++)
            len += strlen(v[i]) + 1;
        if (n > 0) {
            char *joined = pt_arena_calloc(cx->out, len);
            for (size_t i = 0; i < n; i++) {
                if (i > 0)
                    strcat(joined, ":");
                strcat(joined, v[i]);
            }
            t->cipher_suites = joined;
        }
    }
    if (f[ST_SANS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(tp, "subjectAltNames");
        t->subject_alt_names = read_strings(cx, f[ST_SANS], &p, &t->n_subject_alt_names);
    }
}

/* tls.mode, Istio's ServerTLSSettings.TLSmode (SIMPLE when absent): false when it is not one. */
static bool read_mode(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *tp,
                      const char **mode)
{
    static const char *const modes[] = {"PASSTHROUGH",      "SIMPLE",       "MUTUAL",
                                        "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"};
    *mode = "SIMPLE"; /* Istio's default */
    if (n == NULL)
        return true;
    pt_cfg_path_t mp = PT_PATH_KEY(tp, "mode");
    if (!pt__cfg_nonempty_str(cx, n, &mp, mode))
        return false;
    for (size_t i = 0; i < NF(modes); i++)
        if (strcmp(modes[i], *mode) == 0)
            return true;
    pt__cfg_error(cx, n, &mp,
                  "unknown mode \"%s\" (expected PASSTHROUGH, SIMPLE, MUTUAL, "
                  "AUTO_PASSTHROUGH, ISTIO_MUTUAL or OPTIONAL_MUTUAL)",
                  *mode);
    return false;
}

/* server.tls. TLS servers: PASSTHROUGH is served (routed on SNI by VirtualService tls[] routes
 * and relayed encrypted); SIMPLE, MUTUAL and OPTIONAL_MUTUAL terminate, then route the
 * plaintext by tcp[] routes. HTTPS servers: SIMPLE, MUTUAL and OPTIONAL_MUTUAL are terminated
 * and routed as HTTP. config/tls_contexts.c builds the contexts of both. HTTP servers:
 * httpsRedirect. */
static void read_server_tls(pt_cfg_cx_t *cx, const pt_cfg_node_t *server, const pt_cfg_node_t *tls,
                            const pt_cfg_path_t *server_path, bool is_https, pt_res_server_t *srv)
{
    pt_cfg_path_t tp = PT_PATH_KEY(server_path, "tls");
    if (tls == NULL) {
        if (srv->protocol == PT_LISTENER_TLS || is_https) {
            pt__cfg_error(cx, server, &tp, "required for protocol %s", is_https ? "HTTPS" : "TLS");
            srv->protocol = 0;
        }
        return;
    }
    const pt_cfg_node_t *f[ST__N];
    const char *mode;
    if (!MAP(cx, tls, &tp, server_tls_fields, f) || !read_mode(cx, f[ST_MODE], &tp, &mode))
        return;
    if (srv->protocol == PT_LISTENER_TLS && strcmp(mode, "PASSTHROUGH") == 0)
        return;
    pt_res_server_tls_t *t = pt_arena_calloc(cx->tmp, sizeof(*t));
    t->node = tls;
    t->path = pt__cfg_path_dup(cx->tmp, &tp);
    if (f[ST_HTTPS_REDIRECT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&tp, "httpsRedirect");
        pt__cfg_read_bool(cx, f[ST_HTTPS_REDIRECT], &p, &t->https_redirect);
    }
    if (!is_https && srv->protocol != PT_LISTENER_TLS) {
        if (srv->protocol != PT_LISTENER_HTTP && t->https_redirect)
            pt__cfg_warn(cx, tls, &tp, "httpsRedirect applies to HTTP servers only: ignored");
        for (int i = ST_MODE; i < ST__N; i++)
            if (f[i] != NULL) {
                pt_cfg_path_t p = PT_PATH_KEY(&tp, server_tls_fields[i].name);
                pt__cfg_warn(cx, f[i], &p, "ignored: this server does not speak TLS");
            }
        srv->tls = t;
        return;
    }
    if (strcmp(mode, "SIMPLE") != 0 && strcmp(mode, "MUTUAL") != 0 &&
        strcmp(mode, "OPTIONAL_MUTUAL") != 0) {
        pt__cfg_warn(cx, tls, &tp,
                     "tls.mode %s on %s server is not enforced by Petrel yet (SIMPLE, MUTUAL "
                     "and OPTIONAL_MUTUAL are%s): this server opens no listener",
                     mode, is_https ? "an HTTPS" : "a TLS", is_https ? "" : ", and PASSTHROUGH");
        srv->protocol = 0;
        return;
    }
    if (!is_https && t->https_redirect)
        pt__cfg_warn(cx, tls, &tp, "httpsRedirect applies to HTTP servers only: ignored");
    read_terminated_tls(cx, tls, &tp, f, mode, t);
    srv->tls = t;
}

pt_res_server_tls_t *pt__cfg_read_chaos_tls(pt_cfg_cx_t *cx, const pt_cfg_node_t *tls,
                                            const pt_cfg_path_t *tp)
{
    const pt_cfg_node_t *f[ST__N];
    const char *mode;
    if (!MAP(cx, tls, tp, server_tls_fields, f) || !read_mode(cx, f[ST_MODE], tp, &mode))
        return NULL;
    if (strcmp(mode, "SIMPLE") != 0) {
        /* What the other modes need (client roots...) would only add errors after this one. */
        pt_cfg_path_t mp = PT_PATH_KEY(tp, "mode");
        pt__cfg_error(cx, f[ST_MODE], &mp,
                      "mode %s is not supported on a ChaosProxy (SIMPLE is: the proxy terminates "
                      "TLS and asks the client for no certificate)",
                      mode);
        return NULL;
    }
    bool ok = true;
    if (f[ST_HTTPS_REDIRECT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(tp, "httpsRedirect");
        pt__cfg_error(cx, f[ST_HTTPS_REDIRECT], &p,
                      "applies to a Gateway's HTTP servers, not to a ChaosProxy");
        ok = false;
    }
    pt_res_server_tls_t *t = pt_arena_calloc(cx->tmp, sizeof(*t));
    t->node = tls;
    t->path = pt__cfg_path_dup(cx->tmp, tp);
    size_t before = cx->errors->n;
    read_terminated_tls(cx, tls, tp, f, mode, t);
    return ok && cx->errors->n == before ? t : NULL;
}

void pt__cfg_read_gateway(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                          const pt_cfg_node_t *spec)
{
    pt_res_gateway_t *g = pt_arena_calloc(cx->tmp, sizeof(*g));
    g->meta = *meta;
    PUSH(cx, set->gateways, set->n_gateways, set->cap_gateways, g);

    pt_cfg_path_t sp = PT_PATH_KEY(meta->path, "spec");
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
        const char *proto_name = "";
        if (pf[PORT_PROTOCOL] != NULL)
            pt__cfg_str(cx, pf[PORT_PROTOCOL], &prp, &proto_name);
        bool is_https = srv->protocol != 0 && strcasecmp(proto_name, "HTTPS") == 0;
        if (srv->protocol != 0 || sf[SRV_TLS] != NULL)
            read_server_tls(cx, sn, sf[SRV_TLS], &ip, is_https, srv);
        if (pf[PORT_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&pp, "name");
            pt__cfg_str(cx, pf[PORT_NAME], &p, &name);
        }
    }
}
