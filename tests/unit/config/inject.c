/* tests/unit/config/inject.c: `petrel inject` as a transform (config/inject.c): what it adds,
 * what it keeps, what it skips, and its errors. The e2e test (test_81_inject.py) runs the
 * command on files and checks the result's structure. */
#include "test.h"

#include <stdlib.h>

#include "config/inject.c"

typedef struct result {
    int rc;
    char *out, *msg;
    size_t out_len, msg_len;
} result_t;

static result_t run(const char *yaml, bool is_classic)
{
    pt_inject_options_t o = {.image = "petrel:t", .mesh_cm = "mesh", .is_classic = is_classic};
    result_t r = {0};
    FILE *out = open_memstream(&r.out, &r.out_len), *msg = open_memstream(&r.msg, &r.msg_len);
    r.rc = pt_inject("in.yaml", yaml, strlen(yaml), &o, out, msg);
    fclose(out);
    fclose(msg);
    return r;
}

static void dispose(result_t *r)
{
    free(r->out);
    free(r->msg);
}

static const char deployment[] = "apiVersion: apps/v1\n"
                                 "kind: Deployment\n"
                                 "metadata:\n"
                                 "  name: web\n"
                                 "spec:\n"
                                 "  template:\n"
                                 "    metadata:\n"
                                 "      labels: {app: web}\n"
                                 "    spec:\n"
                                 "      containers:\n"
                                 "      - name: web\n"
                                 "        image: nginx\n";

TEST(native_sidecar_is_an_init_container_after_the_capture_step)
{
    result_t r = run(deployment, false);
    ASSERT_EQ(r.rc, 0);
    char *init = strstr(r.out, "initContainers:\n      - name: petrel-init\n");
    char *proxy = strstr(r.out, "      - name: petrel-proxy\n        image: \"petrel:t\"\n"
                                "        restartPolicy: Always\n");
    ASSERT(init != NULL);
    ASSERT(proxy != NULL && proxy > init);
    ASSERT(strstr(r.out, "startupProbe:\n") != NULL);
    ASSERT(strstr(r.out, "petrel.io/inject-status: native\n") != NULL);
    ASSERT(strstr(r.out, "configMap:\n          name: mesh\n") != NULL);
    ASSERT(strstr(r.out, "secretName: petrel-identity-default\n") != NULL);
    /* Who the workload is, from the Downward API (xds/pod_info.h). */
    ASSERT(strstr(r.out,
                  "        - name: PETREL_POD_INFO\n          value: /etc/petrel/pod\n"
                  "        - name: PETREL_SERVICE_ACCOUNT\n          valueFrom:\n"
                  "            fieldRef:\n"
                  "              fieldPath: spec.serviceAccountName\n"
                  "        - name: PETREL_WORKLOAD_NAME\n          value: \"web\"\n") != NULL);
    ASSERT(strstr(r.out, "        - name: petrel-pod\n          mountPath: /etc/petrel/pod\n"
                         "          readOnly: true\n") != NULL);
    ASSERT(strstr(r.out, "      - name: petrel-pod\n        downwardAPI:\n          items:\n"
                         "          - path: labels\n            fieldRef:\n"
                         "              fieldPath: metadata.labels\n"
                         "          - path: namespace\n            fieldRef:\n"
                         "              fieldPath: metadata.namespace\n") != NULL);
    ASSERT(strstr(r.out, "fieldPath: metadata.name\n") == NULL); /* per pod, not per workload */
    /* What was there keeps its place and its flow style. */
    ASSERT(strstr(r.out, "metadata:\n  name: web\nspec:\n  template:\n    metadata:\n"
                         "      labels: {app: web}\n") != NULL);
    ASSERT_EQ(r.msg_len, 0);
    dispose(&r);
}

TEST(classic_sidecar_is_the_first_container_with_a_post_start_wait)
{
    result_t r = run(deployment, true);
    ASSERT_EQ(r.rc, 0);
    char *proxy = strstr(r.out, "containers:\n      - name: petrel-proxy\n");
    ASSERT(proxy != NULL);
    ASSERT(strstr(proxy, "restartPolicy") == NULL);
    ASSERT(strstr(proxy, "postStart:\n            exec:\n              command:\n"
                         "              - petrel\n              - wait\n") != NULL);
    ASSERT(strstr(r.out, "- name: web\n") > proxy);
    dispose(&r);
}

TEST(classic_without_hold_has_no_post_start)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "%s",
             "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    proxy.istio.io/config: "
             "'{holdApplicationUntilProxyStarts: false}'\nspec:\n  containers:\n  - name: a\n");
    result_t r = run(yaml, true);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "postStart") == NULL);
    ASSERT(strstr(r.out, "- name: petrel-proxy\n") != NULL);
    dispose(&r);
}

TEST(termination_drain_duration_reaches_the_sidecar_env)
{
    result_t r = run("kind: Pod\nmetadata:\n  name: p\n  annotations:\n    proxy.istio.io/config: "
                     "'{terminationDrainDuration: 12s}'\nspec:\n  containers:\n  - name: a\n",
                     false);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "- name: PETREL_TERMINATION_DRAIN_DURATION\n") != NULL);
    ASSERT(strstr(strstr(r.out, "PETREL_TERMINATION_DRAIN_DURATION"), "value: \"12s\"") != NULL);
    dispose(&r);
    r = run("kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n", false);
    ASSERT(strstr(r.out, "PETREL_TERMINATION_DRAIN_DURATION") == NULL); /* the default, 5s */
    dispose(&r);
}

TEST(injecting_twice_equals_injecting_once)
{
    result_t once = run(deployment, false);
    result_t twice = run(once.out, false);
    ASSERT_EQ(twice.rc, 0);
    ASSERT_STREQ(twice.out, once.out);
    dispose(&once);
    dispose(&twice);
}

/* The sidecar's PETREL_WORKLOAD_NAME in output (one; NULL when there is none). */
static char *workload_name(const char *out)
{
    static const char env[] = "- name: PETREL_WORKLOAD_NAME\n";
    const char *e = strstr(out, env);
    if (e == NULL)
        return NULL;
    ASSERT(strstr(e + 1, env) == NULL);
    const char *v = strstr(e, "value: \"");
    ASSERT(v != NULL);
    v += strlen("value: \"");
    return strndup(v, strcspn(v, "\""));
}

TEST(workload_name_is_the_injected_objects_name_not_its_pods)
{
    static const struct {
        const char *kind, *name, *template_prefix;
    } kinds[] = {
        {"Deployment", "web", "spec:\n  template:\n"},
        {"StatefulSet", "db", "spec:\n  template:\n"},
        {"DaemonSet", "agent", "spec:\n  template:\n"},
        {"ReplicaSet", "web-5d8f7", "spec:\n  template:\n"},
        {"Job", "migrate", "spec:\n  template:\n"},
        {"CronJob", "nightly", "spec:\n  jobTemplate:\n    spec:\n      template:\n"},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char in[1024];
        /* The template's own metadata.name is not the workload's. */
        snprintf(in, sizeof(in),
                 "kind: %s\nmetadata: {name: %s}\n%s"
                 "        metadata: {name: tmpl, labels: {app: x}}\n"
                 "        spec:\n          containers:\n          - name: a\n",
                 kinds[i].kind, kinds[i].name, kinds[i].template_prefix);
        result_t r = run(in, i % 2 == 0);
        ASSERT_EQ(r.rc, 0);
        char *name = workload_name(r.out);
        ASSERT_STREQ(name, kinds[i].name);
        free(name);
        /* Injecting again keeps the one value. */
        result_t twice = run(r.out, i % 2 == 0);
        ASSERT_STREQ(twice.out, r.out);
        dispose(&twice);
        dispose(&r);
    }
    /* A bare Pod is its own workload; one with only generateName has no known name, so the
     * sidecar gets none (an explicit Proxy spec.workload.name can still give it). */
    result_t r = run("kind: Pod\nmetadata: {name: \"solo: 1\"}\nspec:\n  containers:\n"
                     "  - name: a\n",
                     false);
    ASSERT_EQ(r.rc, 0);
    char *name = workload_name(r.out);
    ASSERT_STREQ(name, "solo: 1");
    free(name);
    dispose(&r);
    r = run("kind: Pod\nmetadata: {generateName: solo-}\nspec:\n  containers:\n  - name: a\n",
            false);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "name: petrel-proxy\n") != NULL);
    ASSERT(workload_name(r.out) == NULL);
    dispose(&r);
}

TEST(inject_false_and_other_kinds_pass_through)
{
    static const char in[] = "kind: Pod\n"
                             "metadata:\n"
                             "  name: p\n"
                             "  labels:\n"
                             "    sidecar.istio.io/inject: \"false\"\n"
                             "spec:\n"
                             "  containers:\n"
                             "  - name: a\n"
                             "---\n"
                             "kind: ConfigMap\n"
                             "metadata:\n"
                             "  name: c\n"
                             "data:\n"
                             "  a: \"1\"\n";
    result_t r = run(in, false);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "petrel") == NULL);
    ASSERT(strstr(r.out, "---\nkind: ConfigMap\n") != NULL);
    dispose(&r);
}

TEST(host_network_pod_is_skipped_with_a_note)
{
    result_t r = run("kind: Pod\nmetadata: {name: h}\nspec:\n  hostNetwork: true\n"
                     "  containers:\n  - name: a\n",
                     false);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "petrel") == NULL);
    ASSERT(strstr(r.msg, "in.yaml:4:3: Pod h: not injected: hostNetwork") != NULL);
    dispose(&r);
}

TEST(capture_arguments_follow_the_annotations)
{
    static const char in[] =
        "kind: Pod\n"
        "metadata:\n"
        "  name: p\n"
        "  annotations:\n"
        "    traffic.sidecar.istio.io/includeOutboundIPRanges: 10.96.0.0/12,10.0.0.1\n"
        "    traffic.sidecar.istio.io/excludeOutboundIPRanges: 169.254.169.254/32\n"
        "    traffic.sidecar.istio.io/includeInboundPorts: 8080,9090\n"
        "    traffic.sidecar.istio.io/excludeInboundPorts: \"9091\"\n"
        "    traffic.sidecar.istio.io/excludeOutboundPorts: 5432,6379\n"
        "    sidecar.istio.io/proxyCPU: 50m\n"
        "    sidecar.istio.io/proxyMemoryLimit: 1Gi\n"
        "spec:\n"
        "  containers:\n"
        "  - name: a\n";
    result_t r = run(in, false);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "    - -i\n    - \"10.96.0.0/12,10.0.0.1\"\n"
                         "    - -x\n    - \"169.254.169.254/32\"\n"
                         "    - -b\n    - \"8080,9090\"\n"
                         "    - -d\n    - \"15090,15021,15020,9091\"\n"
                         "    - -o\n    - \"5432,6379\"\n") != NULL);
    ASSERT(strstr(r.out, "requests:\n        cpu: \"50m\"\n        memory: \"128Mi\"\n"
                         "      limits:\n        memory: \"1Gi\"\n") != NULL);
    dispose(&r);
}

TEST(probes_move_to_the_health_port_and_travel_in_the_env)
{
    static const char in[] = "kind: Pod\n"
                             "metadata: {name: p}\n"
                             "spec:\n"
                             "  containers:\n"
                             "  - name: app\n"
                             "    ports:\n"
                             "    - {name: web, containerPort: 8080}\n"
                             "    livenessProbe:\n"
                             "      httpGet:\n"
                             "        path: /live\n"
                             "        port: web\n"
                             "        httpHeaders:\n"
                             "        - {name: x-a, value: b}\n"
                             "      timeoutSeconds: 4\n"
                             "    startupProbe:\n"
                             "      tcpSocket: {port: 9000}\n"
                             "      periodSeconds: 2\n"
                             "    readinessProbe:\n"
                             "      exec: {command: [true]}\n";
    result_t r = run(in, false);
    ASSERT_EQ(r.rc, 0);
    ASSERT(strstr(r.out, "livenessProbe:\n      httpGet:\n        path: "
                         "/app-health/app/livez\n        port: 15021\n") != NULL);
    ASSERT(strstr(r.out, "startupProbe:\n      httpGet:\n        path: "
                         "/app-health/app/startupz\n        port: 15021\n        scheme: "
                         "HTTP\n      periodSeconds: 2\n") != NULL);
    ASSERT(strstr(r.out, "exec: {command: [true]}") != NULL);
    ASSERT(strstr(r.out, "value: \"{\\\"/app-health/app/livez\\\":{\\\"httpGet\\\":{"
                         "\\\"path\\\":\\\"/live\\\",\\\"port\\\":8080,\\\"scheme\\\":"
                         "\\\"HTTP\\\",\\\"httpHeaders\\\":[{\\\"name\\\":\\\"x-a\\\","
                         "\\\"value\\\":\\\"b\\\"}]},\\\"timeoutSeconds\\\":4},"
                         "\\\"/app-health/app/startupz\\\":{\\\"tcpSocket\\\":{\\\"port\\\":"
                         "9000},\\\"timeoutSeconds\\\":1}}\"") != NULL);
    dispose(&r);
}

TEST(list_items_are_injected)
{
    result_t r = run("apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: a}\n"
                     "  spec:\n    containers:\n    - name: a\n"
                     "- kind: CronJob\n  metadata: {name: c}\n  spec:\n    jobTemplate:\n"
                     "      spec:\n        template:\n          spec:\n            containers:\n"
                     "            - name: c\n",
                     false);
    ASSERT_EQ(r.rc, 0);
    char *first = strstr(r.out, "name: petrel-proxy");
    ASSERT(first != NULL && strstr(first + 1, "name: petrel-proxy") != NULL);
    dispose(&r);
}

TEST(errors_name_file_line_column_and_path_and_write_nothing)
{
    result_t r = run("kind: Pod\nmetadata:\n  name: p\n  annotations:\n"
                     "    traffic.sidecar.istio.io/excludeInboundPorts: 80,http\n"
                     "    proxy.istio.io/config: 'terminationDrainDuration: soon'\n"
                     "spec:\n  containers:\n  - name: a\n    readinessProbe:\n"
                     "      httpGet: {port: nope}\n",
                     false);
    ASSERT_EQ(r.rc, 1);
    ASSERT_EQ(r.out_len, 0);
    ASSERT(strstr(r.msg, "in.yaml:5:51: metadata.annotations.traffic.sidecar.istio.io/"
                         "excludeInboundPorts: \"80,http\" is not a comma-separated list of "
                         "ports (1..65535)\n") != NULL);
    ASSERT(strstr(r.msg, "in.yaml:6:28: metadata.annotations.proxy.istio.io/config: "
                         "terminationDrainDuration: \"soon\" is not a duration") != NULL);
    ASSERT(strstr(r.msg, "in.yaml:11:23: spec.containers[0].readinessProbe.httpGet.port: "
                         "expected a port number or the name of one of the container's "
                         "ports\n") != NULL);
    dispose(&r);
    r = run("kind: Pod\nmetadata: [\n", false);
    ASSERT_EQ(r.rc, 1);
    ASSERT(strstr(r.msg, "in.yaml:3:1: not YAML: ") != NULL);
    dispose(&r);
}

TEST(an_aliased_pod_spec_is_injected_where_it_is_a_workload_only)
{
    static const char in[] = "kind: List\n"
                             "items:\n"
                             "- kind: Pod\n"
                             "  metadata: {name: a}\n"
                             "  spec: &spec\n"
                             "    containers:\n"
                             "    - name: a\n"
                             "- kind: Pod\n"
                             "  metadata:\n"
                             "    name: b\n"
                             "    annotations: {sidecar.istio.io/inject: \"false\"}\n"
                             "  spec: *spec\n";
    result_t r = run(in, false);
    ASSERT_EQ(r.rc, 0);
    char *b = strstr(r.out, "name: b\n");
    ASSERT(b != NULL);
    ASSERT(strstr(r.out, "petrel-proxy") < b);
    ASSERT(strstr(b, "petrel") == NULL);
    ASSERT(strstr(r.out, "&") == NULL);
    dispose(&r);
}
