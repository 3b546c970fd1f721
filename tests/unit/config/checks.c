/* tests/unit/config/checks.c
 * What one load reports across resources and files: every error of every phase at once
 * (reading, joining, certificates) without cascades from the resources that have errors; port
 * conflicts between Gateway servers and the Proxy's own listeners; the warnings for
 * configuration that loads and does nothing here. */
#include <stdlib.h>
#include <unistd.h>

#include "../test.h"
#include "load_helpers.h"
#include "proxy/authz.h"

#define GW_HEAD "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
#define VS_HEAD "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
#define DR_HEAD "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
#define SE_HEAD "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
#define PROXY_HEAD "apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"

static pt_config_t *load_files(const pt_config_source_t *src, size_t n, pt_config_errors_t *e)
{
    return pt_config_load_buffers(src, n, NULL, e);
}

#define SRC(name, text)                                                                            \
    {                                                                                              \
        (name), (text), sizeof(text) - 1                                                           \
    }

/* An unknown field in one VirtualService (reading), a credentialName without the Proxy's
 * credentialsDirectory (certificates) and a Gateway port on the admin port (joining), in
 * three files: all three in one load, and nothing about the references into the resources
 * that have errors (a Gateway, a DestinationRule's subsets). */
TEST(every_phase_reported_in_one_load)
{
    static const char proxy[] = PROXY_HEAD "spec:\n  adminPort: 9000\n";
    static const char gw[] =
        GW_HEAD "metadata: {name: web}\n"
                "spec:\n"
                "  servers:\n"
                "  - port: {number: 443, name: https, protocol: HTTPS}\n"
                "    hosts: [web.example.com]\n"
                "    tls: {mode: SIMPLE, credentialName: web-cert}\n"
                "  - port: {number: 9000, name: http, protocol: HTTP}\n"
                "    hosts: [web.example.com]\n"
                "---\n" GW_HEAD "metadata: {name: broken}\n"
                "spec:\n"
                "  servers: [{port: {number: 8080, protocol: HTTP}, hosts: [b.example.com], "
                "tpyo: 1}]\n";
    static const char vs[] =
        VS_HEAD "metadata: {name: typo}\n"
                "spec:\n"
                "  hosts: [web.example.com]\n"
                "  gateways: [web]\n"
                "  htttp: []\n"
                "---\n" VS_HEAD "metadata: {name: fine}\n"
                "spec:\n"
                "  hosts: [b.example.com]\n"
                "  gateways: [broken]\n"
                "  http: [{route: [{destination: {host: svc.example.com, subset: v1, port: "
                "{number: 80}}}]}]\n"
                "---\n" SE_HEAD "metadata: {name: svc}\n"
                "spec: {hosts: [svc.example.com], ports: [{number: 80, name: http, protocol: "
                "HTTP}], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}\n"
                "---\n" DR_HEAD "metadata: {name: svc}\n"
                "spec: {host: svc.example.com, subsets: [{name: v1, labels: {v: '1'}}], "
                "trafficPolicy: {loadBalancer: {simple: FASTEST}}}\n";
    const pt_config_source_t src[] = {SRC("proxy.yaml", proxy), SRC("gw.yaml", gw),
                                      SRC("vs.yaml", vs)};
    pt_config_errors_t e = {0};
    ASSERT(load_files(src, 3, &e) == NULL);
    ASSERT(has_error_prefix(&e, "gw.yaml:16:76: spec.servers[0].tpyo: unknown field"));
    ASSERT(has_error_prefix(&e, "vs.yaml:7:3: spec.htttp: unknown field"));
    ASSERT(has_error(&e, "vs.yaml:4:1: spec: needs http, tcp or tls routes"));
    ASSERT(has_error_prefix(&e, "vs.yaml:25:103: spec.trafficPolicy.loadBalancer.simple: "));
    ASSERT(has_error(&e, "gw.yaml:9:12: spec.servers[1].port.number: port 9000 is also the "
                         "Proxy's spec.adminPort (proxy.yaml:5:3): two listeners cannot share a "
                         "port"));
    ASSERT(has_error(&e, "gw.yaml:8:5: spec.servers[0].tls: credentialName \"web-cert\" needs the "
                         "Proxy's credentialsDirectory (where <name>/tls.crt, tls.key and ca.crt "
                         "are)"));
    /* Nothing else: no "no Gateway broken", no "no DestinationRule defines subset v1". */
    if (e.n != 6)
        dump(&e);
    ASSERT_EQ(e.n, 6);
    for (size_t i = 0; i < e.n_warnings; i++) {
        ASSERT(strstr(e.warnings[i], "no Gateway") == NULL);
        ASSERT(strstr(e.warnings[i], "subset") == NULL);
    }
    pt_config_errors_dispose(&e);
}

/* A file that cannot be parsed may hold anything: the other files are still checked, and
 * nothing is reported missing. */
TEST(syntax_error_file_hides_no_other_error)
{
    static const char proxy[] = PROXY_HEAD "spec: {adminPort: 0}\n";
    static const char bad[] = GW_HEAD "metadata: {name: web\n";
    static const char rest[] =
        GW_HEAD "metadata: {name: tls}\n"
                "spec:\n"
                "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a.example.com], "
                "tls: {mode: SIMPLE, credentialName: a}}]\n"
                "---\n" VS_HEAD "metadata: {name: v}\n"
                "spec: {hosts: [w.example.com], gateways: [web], http: [{directResponse: "
                "{status: 200}}]}\n";
    const pt_config_source_t src[] = {SRC("proxy.yaml", proxy), SRC("bad.yaml", bad),
                                      SRC("rest.yaml", rest)};
    pt_config_errors_t e = {0};
    ASSERT(load_files(src, 3, &e) == NULL);
    ASSERT(has_error_prefix(&e, "bad.yaml:"));
    ASSERT(has_error_prefix(&e, "rest.yaml:5:76: spec.servers[0].tls: credentialName \"a\" needs "
                                "the Proxy's credentialsDirectory"));
    ASSERT_EQ(e.n, 2);
    for (size_t i = 0; i < e.n_warnings; i++)
        ASSERT(strstr(e.warnings[i], "no Gateway") == NULL);
    pt_config_errors_dispose(&e);

    /* Without a Proxy read from the files that parsed, it may be in the broken one: what
     * depends on its settings waits. */
    const pt_config_source_t no_proxy[] = {SRC("bad.yaml", bad), SRC("rest.yaml", rest)};
    ASSERT(load_files(no_proxy, 2, &e) == NULL);
    ASSERT_EQ(e.n, 1);
    ASSERT(has_error_prefix(&e, "bad.yaml:"));
    pt_config_errors_dispose(&e);
}

/* A Proxy with errors: its settings are not known, so the joins and certificates wait. */
TEST(proxy_with_errors_holds_back_what_depends_on_it)
{
    static const char yaml[] =
        PROXY_HEAD "spec: {adminPort: 9000, credentialsDirectory: /creds, tpyo: 1}\n"
                   "---\n" GW_HEAD "metadata: {name: web}\n"
                   "spec:\n"
                   "  servers: [{port: {number: 9000, protocol: HTTPS}, hosts: [a.example.com], "
                   "tls: {mode: SIMPLE, credentialName: a}}]\n";
    pt_config_errors_t e = {0};
    ASSERT(load_str("p.yaml", yaml, &e) == NULL);
    ASSERT(has_error_prefix(&e, "p.yaml:4:55: spec.tpyo: unknown field"));
    ASSERT_EQ(e.n, 1);
    pt_config_errors_dispose(&e);
}

TEST(chaos_api_port_on_a_proxy_port)
{
    pt_config_errors_t e = {0};
    /* On the Proxy's address (or every address) its port is one of the Proxy's ports. */
    ASSERT(load_str("p.yaml", PROXY_HEAD "spec:\n  chaosApi: {port: 15000}\n", &e) == NULL);
    ASSERT(has_error(&e, "p.yaml:5:14: spec.chaosApi.port: port 15000 is also the Proxy's "
                         "spec.adminPort (its default): two listeners cannot share a port"));
    pt_config_errors_dispose(&e);
    ASSERT(load_str("p.yaml", PROXY_HEAD "spec:\n  chaosApi: {port: 15000, address: 0.0.0.0}\n",
                    &e) == NULL);
    pt_config_errors_dispose(&e);
    /* Another specific address may use the same port. */
    pt_config_t *c =
        load_str("p.yaml", PROXY_HEAD "spec:\n  chaosApi: {port: 15000, address: 127.0.0.2}\n", &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT(c->proxy.chaos_api.enabled && c->proxy.chaos_api.port == 15000);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(gateway_port_on_a_proxy_port)
{
    static const char gw[] = GW_HEAD "metadata: {name: web}\n"
                                     "spec:\n"
                                     "  servers:\n"
                                     "  - port: {number: 15090, protocol: HTTP}\n"
                                     "    hosts: ['*']\n"
                                     "  - port: {number: 15001, protocol: TCP}\n"
                                     "    hosts: ['*']\n";
    /* Defaults: adminPort 15000 only; the sidecar's ports when spec.sidecar is given. */
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("gw.yaml", gw, &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             PROXY_HEAD "spec:\n  prometheusPort: 15090\n  healthPort: 15000\n  sidecar: {}\n"
                        "---\n%s",
             gw);
    ASSERT(load_str("all.yaml", yaml, &e) == NULL);
    ASSERT(has_error(&e, "all.yaml:6:3: spec.healthPort: port 15000 is also the Proxy's "
                         "spec.adminPort (its default): two listeners cannot share a port"));
    ASSERT(has_error(&e, "all.yaml:14:12: spec.servers[0].port.number: port 15090 is also the "
                         "Proxy's spec.prometheusPort (all.yaml:5:3): two listeners cannot share "
                         "a port"));
    ASSERT(has_error(&e, "all.yaml:16:12: spec.servers[1].port.number: port 15001 is also the "
                         "Proxy's spec.sidecar.outboundPort (its default): two listeners cannot "
                         "share a port"));
    ASSERT_EQ(e.n, 3);
    pt_config_errors_dispose(&e);
}

/* The warnings that contain `part`. */
static size_t count_warnings(const pt_config_errors_t *e, const char *part)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_warnings; i++)
        n += strstr(e->warnings[i], part) != NULL;
    return n;
}

#define EDGE                                                                                       \
    PROXY_HEAD "spec: {adminPort: 0}\n"                                                            \
               "---\n" GW_HEAD "metadata: {name: web}\n"                                           \
               "spec: {servers: [{port: {number: 8080, protocol: HTTP}, hosts: [web.example.com, " \
               "'*.api.example.com']}]}\n"                                                         \
               "---\n" SE_HEAD "metadata: {name: known}\n"                                         \
               "spec: {hosts: [known.internal], ports: [{number: 80, name: http, protocol: "       \
               "HTTP}], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}\n"                  \
               "---\n"

/* Routes this proxy serves to a host (or a port) no ServiceEntry declares get 503. */
TEST(warns_of_destinations_nothing_declares)
{
    static const char yaml[] =
        EDGE VS_HEAD "metadata: {name: v}\n"
                     "spec:\n"
                     "  hosts: [web.example.com]\n"
                     "  gateways: [web]\n"
                     "  http:\n"
                     "  - route: [{destination: {host: known.internal, port: {number: 80}}}]\n"
                     "  - route: [{destination: {host: unknown.internal, port: {number: 80}}}]\n"
                     "  - route: [{destination: {host: known.internal, port: {number: 81}}}]\n";
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("d.yaml", yaml, &e);
    ASSERT(c != NULL);
    ASSERT(has_warning(&e, "d.yaml:24:13: spec.http[1].route[0].destination.host: no ServiceEntry "
                           "declares host \"unknown.internal\" (Kubernetes Services are not read "
                           "by Petrel yet): requests routed to it get 503"));
    ASSERT(has_warning(&e, "d.yaml:25:13: spec.http[2].route[0].destination.port.number: "
                           "ServiceEntry default/known does not declare port 81 for host "
                           "\"known.internal\": requests routed to it get 503"));
    ASSERT_EQ(count_warnings(&e, "get 503"), 2); /* not http[0] */
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(warns_of_virtual_service_hosts_no_gateway_serves)
{
    static const char yaml[] = EDGE VS_HEAD
        "metadata: {name: elsewhere}\n"
        "spec: {hosts: [shop.example.com, api.example.com], gateways: [web], http: "
        "[{directResponse: {status: 200}}]}\n"
        "---\n" VS_HEAD "metadata: {name: wildcard}\n"
        "spec: {hosts: [v1.api.example.com], gateways: [web], http: [{directResponse: {status: "
        "200}}]}\n"
        "---\n" VS_HEAD "metadata: {name: star}\n"
        "spec: {hosts: ['*'], gateways: [web], http: [{directResponse: {status: 200}}]}\n";
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("h.yaml", yaml, &e);
    ASSERT(c != NULL);
    ASSERT(has_warning(&e, "h.yaml:19:8: spec.hosts: no host of VirtualService default/elsewhere "
                           "is a host of its Gateways (they serve web.example.com, "
                           "*.api.example.com): it routes nothing"));
    ASSERT_EQ(count_warnings(&e, "it routes nothing"), 1);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(warns_of_destination_rules_that_apply_to_nothing)
{
    static const char yaml[] = EDGE DR_HEAD "metadata: {name: stray}\n"
                                            "spec: {host: stray.example.com}\n"
                                            "---\n" DR_HEAD "metadata: {name: known}\n"
                                            "spec: {host: known.internal}\n"
                                            "---\n" DR_HEAD "metadata: {name: routed}\n"
                                            "spec: {host: '*.routed.internal'}\n"
                                            "---\n" DR_HEAD "metadata: {name: reviews}\n"
                                            "spec: {host: reviews}\n"
                                            "---\n" VS_HEAD "metadata: {name: v}\n"
                                            "spec: {hosts: [web.example.com], gateways: [web], "
                                            "http: [{route: [{destination: {host: "
                                            "a.routed.internal, port: {number: 80}}}]}]}\n";
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("r.yaml", yaml, &e);
    ASSERT(c != NULL);
    ASSERT(has_warning(&e, "r.yaml:19:8: spec.host: DestinationRule default/stray applies to "
                           "nothing: no ServiceEntry declares host \"stray.example.com\" and no "
                           "route sends to it"));
    /* known: a ServiceEntry's host; routed: a route's; reviews: a Kubernetes service. */
    ASSERT_EQ(count_warnings(&e, "applies to nothing"), 1);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

/* A policy of the workload's namespace whose selector does not select it does nothing here:
 * said plainly, for a DENY above all. */
TEST(warns_of_policies_whose_selector_misses_this_workload)
{
    static const char yaml[] =
        PROXY_HEAD "spec:\n  adminPort: 0\n  sidecar: {}\n"
                   "  workload: {namespace: default, labels: {app: ratings}}\n"
                   "---\n"
                   "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                   "metadata: {name: deny-all}\n"
                   "spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{}]}\n"
                   "---\n"
                   "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                   "metadata: {name: ratings-deny}\n"
                   "spec: {selector: {matchLabels: {app: ratings}}, action: DENY, rules: [{}]}\n"
                   "---\n"
                   "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                   "metadata: {name: other-ns, namespace: foo}\n"
                   "spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{}]}\n"
                   "---\n"
                   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                   "metadata: {name: reviews-strict}\n"
                   "spec: {selector: {matchLabels: {app: reviews, version: v1}}, mtls: {mode: "
                   "DISABLE}}\n"
                   "---\n"
                   "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                   "metadata: {name: ratings}\n"
                   "spec: {selector: {matchLabels: {app: ratings}}, mtls: {mode: PERMISSIVE}}\n";
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("a.yaml", yaml, &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT(has_warning(&e, "a.yaml:12:8: spec.selector: AuthorizationPolicy \"deny-all\" does not "
                           "apply to this workload: selector app=reviews does not match its "
                           "labels {app: ratings} (the Proxy's spec.workload.labels, else the "
                           "pod's)"));
    ASSERT(has_warning(&e, "a.yaml:27:8: spec.selector: PeerAuthentication \"reviews-strict\" "
                           "does not apply to this workload: selector app=reviews,version=v1 does "
                           "not match its labels {app: ratings} (the Proxy's "
                           "spec.workload.labels, else the pod's)"));
    /* ratings-deny and ratings select it; other-ns is for another namespace's workloads. */
    ASSERT_EQ(count_warnings(&e, "does not apply to this workload"), 2);
    ASSERT(c->authz != NULL && c->authz->n_deny == 1);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

/* `petrel run` opens the access log before any listener: validate checks it can (nothing is
 * created), an error unless lenient. */
TEST(access_log_that_cannot_be_written)
{
    static const char bad[] = PROXY_HEAD "spec: {adminPort: 0, accessLog: /nonexistent/d/a.log}\n";
    pt_config_errors_t e = {0};
    ASSERT(load_str("p.yaml", bad, &e) == NULL);
    ASSERT(has_error(&e, "p.yaml:4:22: spec.accessLog: cannot write /nonexistent/d/a.log: No "
                         "such file or directory"));
    ASSERT_EQ(e.n, 1);
    pt_config_errors_dispose(&e);

    e.is_lenient = true;
    pt_config_t *c = load_str("p.yaml", bad, &e);
    ASSERT(c != NULL);
    ASSERT_EQ(count_warnings(&e, "cannot write /nonexistent/d/a.log here"), 1);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    char dir[] = "/tmp/petrel-access-log.XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char yaml[512];
    snprintf(yaml, sizeof(yaml), PROXY_HEAD "spec: {adminPort: 0, accessLog: %s/a.log}\n", dir);
    e.is_lenient = false;
    c = load_str("p.yaml", yaml, &e);
    ASSERT(c != NULL);
    ASSERT_EQ(e.n_warnings, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
    char file[600];
    snprintf(file, sizeof(file), "%s/a.log", dir);
    ASSERT(access(file, F_OK) != 0); /* not created */
    rmdir(dir);
}
