/* tests/unit/config/kubectl_export.c
 * What `kubectl get -o yaml` writes loads: a List (kind List or <Kind>List) is read item by
 * item, each a resource of its own, with errors at the item's line and a path starting at
 * items[i]; what the API server adds (status, metadata.uid, managedFields, the last-applied
 * annotation...) is accepted and ignored. The realistic export is tests/lib/kubectl_export.yaml
 * (shared with tests/e2e/test_60_acceptance.py); the unit tests run from the repository root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "load_helpers.h"
#include "test.h"

#define EXPORT_PATH "tests/lib/kubectl_export.yaml"

/* s with every `from` replaced by `to` (malloc'd). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t n = 0, lf = strlen(from), lt = strlen(to);
    for (const char *p = strstr(s, from); p != NULL; p = strstr(p + lf, from))
        n++;
    char *out = malloc(strlen(s) + n * lt + 1), *o = out;
    ASSERT(out != NULL);
    for (const char *p; (p = strstr(s, from)) != NULL; s = p + lf) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, lt);
        o += lt;
    }
    strcpy(o, s);
    return out;
}

/* The export with its ports filled in (malloc'd). */
static char *read_export(void)
{
    FILE *f = fopen(EXPORT_PATH, "r");
    ASSERT(f != NULL);
    static char text[32768];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    ASSERT(n > 0 && n < sizeof(text) - 1);
    text[n] = '\0';
    char *a = replace_all(text, "${GATEWAY_PORT}", "8080");
    char *b = replace_all(a, "${UPSTREAM_PORT}", "9090");
    free(a);
    return b;
}

/* The 1-based line of the first line of text starting with prefix. */
static int line_of(const char *text, const char *prefix)
{
    int line = 1;
    for (const char *p = text; *p != '\0'; line++) {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return line;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    fprintf(stderr, "    no line starts with \"%s\"\n", prefix);
    ASSERT(0);
    return 0;
}

/* Expects the load to fail with exactly these error lines, in order, and no others. */
static void expect_errors(const char *yaml, const char *const *lines)
{
    pt_config_errors_t e = {0};
    ASSERT(load_str("k.yaml", yaml, &e) == NULL);
    size_t n = 0;
    while (lines[n] != NULL)
        n++;
    if (e.n != n)
        dump(&e);
    ASSERT_EQ(e.n, n);
    for (size_t i = 0; i < n; i++)
        ASSERT_STREQ(e.lines[i], lines[i]);
    pt_config_errors_dispose(&e);
}

TEST(kubectl_export_loads_item_by_item)
{
    char *yaml = read_export();
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("export.yaml", yaml, &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(e.n_warnings, 0);
    /* The Gateway (istio-system/edge), the VirtualService bound to it, the ServiceEntry's
     * endpoint and the DestinationRule's settings on its cluster. */
    ASSERT_EQ(c->n_listeners, 1);
    ASSERT_EQ(c->listeners[0].port, 8080);
    ASSERT_EQ(c->listeners[0].n_vhosts, 1);
    ASSERT_EQ(c->n_clusters, 1);
    const pt_cluster_t *cl = c->clusters[0];
    ASSERT_STREQ(cl->name, "outbound|80||web.local");
    ASSERT_EQ(cl->n_endpoints, 1);
    ASSERT_EQ(cl->pool.max_pending, 64);
    ASSERT(cl->outlier != NULL);
    ASSERT_EQ(cl->outlier->consecutive_5xx, 5);
    /* /config_dump lists each item as a resource, at its own line. */
    char want[64];
    snprintf(want, sizeof(want), "\"line\":%d,\"resource\":{\"apiVersion\"",
             line_of(yaml, "- apiVersion: networking.istio.io/v1\n  kind: Gateway"));
    ASSERT(strstr(c->resources_json, want) != NULL);
    ASSERT(strstr(c->resources_json, "\"kind\":\"List\"") == NULL);
    size_t n_resources = 0;
    for (const char *p = c->resources_json; (p = strstr(p, "\"source\":")) != NULL; p++)
        n_resources++;
    ASSERT_EQ(n_resources, 4);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
    free(yaml);
}

TEST(kubectl_export_errors_name_the_item)
{
    char *good = read_export();
    /* A typo in the first item's route and in the third item's server port (the Gateway). */
    char *a = replace_all(good, "      - destination:\n", "      - destinaton:\n");
    char *yaml = replace_all(a, "        protocol: HTTP\n  status: {}",
                             "        protocoll: HTTP\n"
                             "  status: {}");
    int vs_line = line_of(yaml, "      - destinaton:");
    int gw_line = line_of(yaml, "        protocoll: HTTP");
    char want[3][256];
    snprintf(want[0], sizeof(want[0]),
             "k.yaml:%d:9: items[0].spec.http[0].route[0].destinaton: unknown field; did you "
             "mean \"destination\"?",
             vs_line);
    snprintf(want[1], sizeof(want[1]),
             "k.yaml:%d:9: items[0].spec.http[0].route[0].destination: "
             "required",
             vs_line);
    snprintf(want[2], sizeof(want[2]),
             "k.yaml:%d:9: items[2].spec.servers[0].port.protocoll: unknown field; did you mean "
             "\"protocol\"?",
             gw_line);
    pt_config_errors_t e = {0};
    ASSERT(load_str("k.yaml", yaml, &e) == NULL);
    for (int i = 0; i < 3; i++)
        ASSERT(has_error(&e, want[i]));
    pt_config_errors_dispose(&e);
    free(yaml);
    free(a);
    free(good);
}

#define VS_ITEM(name, host)                                                                        \
    "- apiVersion: networking.istio.io/v1\n"                                                       \
    "  kind: VirtualService\n"                                                                     \
    "  metadata: {name: " name ", namespace: default}\n"                                           \
    "  spec: {hosts: [" host "], gateways: [mesh], http: [{route: [{destination: {host: " host     \
    "}}]}]}\n"

TEST(list_kinds)
{
    /* <Kind>List under the kind's own group or v1, kind List, nested Lists, an empty List. */
    pt_config_errors_t e = {0};
    pt_config_t *c =
        load_str("k.yaml",
                 "apiVersion: networking.istio.io/v1beta1\n"
                 "kind: VirtualServiceList\n"
                 "items:\n" VS_ITEM(
                     "a", "a.local") "---\n"
                                     "apiVersion: v1\n"
                                     "kind: VirtualServiceList\n"
                                     "metadata: {resourceVersion: \"9\", continue: \"\"}\n"
                                     "items:\n" VS_ITEM(
                                         "b", "b.local") "---\n"
                                                         "apiVersion: v1\n"
                                                         "kind: List\n"
                                                         "items:\n"
                                                         "- apiVersion: v1\n"
                                                         "  kind: List\n"
                                                         "  items:\n"
                                                         "  - apiVersion: networking.istio.io/v1\n"
                                                         "    kind: DestinationRule\n"
                                                         "    metadata: {name: c}\n"
                                                         "    spec: {host: c.local}\n"
                                                         "---\n"
                                                         "apiVersion: v1\n"
                                                         "kind: List\n"
                                                         "items: []\n",
                 &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    ASSERT_EQ(e.n, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    static const char *const bad[] = {
        "k.yaml:2:1: apiVersion: unknown apiVersion \"apps/v1\" for kind VirtualServiceList "
        "(expected v1, networking.istio.io/v1, networking.istio.io/v1beta1, "
        "networking.istio.io/v1alpha3)",
        "k.yaml:9:1: spec: unknown field",
        "k.yaml:8:3: metadata.resourceVersio: unknown field; did you mean \"resourceVersion\"?",
        "k.yaml:5:1: items: required", "k.yaml:13:1: items: must be a list, got a map",
        "k.yaml:20:11: items[0].items[0].kind: required",
        "k.yaml:20:15: items[0].items[1]: a document must be a map (apiVersion, kind, metadata, "
        "spec)",
        /* Not a List of anything Petrel reads: an unknown kind. */
        "k.yaml:24:1: items: unknown field",
        "k.yaml:22:1: kind: unknown kind \"PodList\" (Petrel reads Proxy, ChaosProxy, Gateway, "
        "VirtualService, ServiceEntry, DestinationRule, WorkloadEntry, AuthorizationPolicy, "
        "PeerAuthentication, and Lists of them)",
        NULL};
    expect_errors("kind: VirtualServiceList\n"
                  "apiVersion: apps/v1\n"
                  "items: []\n"
                  "---\n"
                  "kind: List\n"
                  "apiVersion: v1\n"
                  "metadata:\n"
                  "  resourceVersio: \"\"\n"
                  "spec: {}\n"
                  "---\n"
                  "kind: List\n"
                  "apiVersion: v1\n"
                  "items: {a: 1}\n"
                  "---\n"
                  "kind: List\n"
                  "apiVersion: v1\n"
                  "items:\n"
                  "- kind: List\n"
                  "  apiVersion: v1\n"
                  "  items: [{}, 3]\n"
                  "---\n"
                  "kind: PodList\n"
                  "apiVersion: v1\n"
                  "items: []\n",
                  bad);
}

/* Errors found after the walk (compile) name the item too. */
TEST(compile_errors_name_the_item)
{
    static const char *const want[] = {
        "k.yaml:11:14: items[1].metadata.name: duplicate VirtualService default/a (first defined "
        "at k.yaml:7:14)",
        NULL};
    expect_errors("apiVersion: v1\n"
                  "kind: List\n"
                  "metadata: {resourceVersion: \"\"}\n"
                  "items:\n" VS_ITEM("a", "a.local") VS_ITEM("a", "b.local"),
                  want);
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("k.yaml",
                              "apiVersion: v1\n"
                              "kind: List\n"
                              "items:\n"
                              "- apiVersion: networking.istio.io/v1\n"
                              "  kind: VirtualService\n"
                              "  metadata: {name: leaf}\n"
                              "  spec: {http: [{route: [{destination: {host: a.local}}]}]}\n",
                              &e);
    ASSERT(c != NULL);
    ASSERT(has_warning(&e, "k.yaml:4:3: items[0].spec.hosts: absent, so VirtualService "
                           "default/leaf is a delegate, and none delegates to it: it applies "
                           "nowhere"));
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

/* The API server's metadata and status, on a resource of its own (not in a List): accepted,
 * and still checked for shape and spelling. */
TEST(api_server_fields)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str(
        "k.yaml",
        "apiVersion: networking.istio.io/v1\n"
        "kind: ServiceEntry\n"
        "metadata:\n"
        "  annotations:\n"
        "    kubectl.kubernetes.io/last-applied-configuration: |\n"
        "      {\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"ServiceEntry\"}\n"
        "  creationTimestamp: \"2026-12-01T09:59:00Z\"\n"
        "  deletionGracePeriodSeconds: 0\n"
        "  deletionTimestamp: \"2026-12-02T09:59:00Z\"\n"
        "  finalizers: [example.com/keep]\n"
        "  generateName: web-\n"
        "  generation: 3\n"
        "  labels: {app: web}\n"
        "  managedFields:\n"
        "  - {apiVersion: networking.istio.io/v1, fieldsType: FieldsV1, manager: kubectl}\n"
        "  name: web\n"
        "  namespace: default\n"
        "  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u}]\n"
        "  resourceVersion: \"48002\"\n"
        "  selfLink: /apis/networking.istio.io/v1/namespaces/default/serviceentries/web\n"
        "  uid: 9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b\n"
        "spec: {hosts: [web.local], ports: [{number: 80, name: http, protocol: HTTP}]}\n"
        "status:\n"
        "  conditions: [{type: Reconciled, status: \"True\"}]\n"
        "  observedGeneration: \"3\"\n",
        &e);
    if (c == NULL)
        dump(&e);
    ASSERT(c != NULL);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);

    static const char *const bad[] = {
        "k.yaml:9:1: status: must be a map, got a list",
        "k.yaml:5:3: metadata.uuid: unknown field; did you mean \"uid\"?",
        "k.yaml:6:3: metadata.managedFields: must be a list, got a scalar",
        "k.yaml:7:3: metadata.generation: must be a scalar, got a map", NULL};
    expect_errors("apiVersion: networking.istio.io/v1\n"
                  "kind: ServiceEntry\n"
                  "metadata:\n"
                  "  name: web\n"
                  "  uuid: x\n"
                  "  managedFields: x\n"
                  "  generation: {}\n"
                  "spec: {hosts: [web.local], ports: [{number: 80, name: http, protocol: HTTP}]}\n"
                  "status: []\n",
                  bad);
}
