/* tests/unit/xds/pod_info.c
 * The pod-info source (xds/pod_info.c): the Downward API labels file parser (Go quoting and its
 * escapes, every malformed form refused with file:line:col), the files of a pod-info directory
 * and the variables beside it, and the precedence of the Proxy's spec.workload over what the pod
 * says. */
#include "test.h"

#include <sys/stat.h>

#include "config/load_helpers.h"
#include "xds/pod_info.h"

static int parse(const char *text, pt_pod_info_t *p, pt_config_errors_t *e)
{
    return pt_pod_labels_parse("labels", text, strlen(text), p, e);
}

static const char *label(const pt_pod_info_t *p, const char *key)
{
    for (size_t i = 0; i < p->workload.n_labels; i++)
        if (strcmp(p->workload.labels[2 * i], key) == 0)
            return p->workload.labels[2 * i + 1];
    return NULL;
}

TEST(labels_file_as_the_kubelet_writes_it)
{
    pt_pod_info_t p = {0};
    pt_config_errors_t e = {0};
    ASSERT_EQ(parse("app=\"web\"\npod-template-hash=\"5d8f7\"\nversion=\"v1\"", &p, &e), 0);
    ASSERT_EQ(p.workload.n_labels, 3);
    ASSERT_STREQ(label(&p, "app"), "web");
    ASSERT_STREQ(label(&p, "pod-template-hash"), "5d8f7");
    ASSERT_STREQ(label(&p, "version"), "v1");
    pt_pod_info_dispose(&p);
    /* A final newline, an empty file, a prefixed key and an empty value. */
    ASSERT_EQ(parse("app.kubernetes.io/name=\"\"\n", &p, &e), 0);
    ASSERT_STREQ(label(&p, "app.kubernetes.io/name"), "");
    pt_pod_info_dispose(&p);
    ASSERT_EQ(parse("", &p, &e), 0);
    ASSERT_EQ(p.workload.n_labels, 0);
    ASSERT_EQ(e.n, 0);
    pt_config_errors_dispose(&e);
}

TEST(labels_go_escapes)
{
    pt_pod_info_t p = {0};
    pt_config_errors_t e = {0};
    ASSERT_EQ(parse("a=\"q\\\"b\\\\s\"\n"
                    "b=\"\\a\\b\\f\\n\\r\\t\\v\"\n"
                    "c=\"\\x41\\101\\u00e9\\U0001F600\"\n"
                    "d=\"caf\xc3\xa9\"",
                    &p, &e),
              0);
    ASSERT_STREQ(label(&p, "a"), "q\"b\\s");
    ASSERT_STREQ(label(&p, "b"), "\a\b\f\n\r\t\v");
    ASSERT_STREQ(label(&p, "c"), "AA\xc3\xa9\xf0\x9f\x98\x80");
    ASSERT_STREQ(label(&p, "d"), "caf\xc3\xa9");
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
}

/* Each malformed input gives exactly the error expected, at its line and column. */
static void refused(const char *text, const char *error)
{
    pt_pod_info_t p = {0};
    pt_config_errors_t e = {0};
    ASSERT_EQ(parse(text, &p, &e), -1);
    ASSERT_EQ(e.n, 1);
    ASSERT(has_error(&e, error));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
}

TEST(labels_malformed_lines_are_refused_with_file_line_col)
{
    refused("app=web", "labels:1:5: expected a double-quoted value after '='");
    refused("app=\"web\"\n\nv=\"1\"", "labels:2:1: empty line (one key=\"value\" per line)");
    refused("=\"x\"", "labels:1:1: expected a label key");
    refused("app \"web\"", "labels:1:4: expected '=' after the label key");
    refused("app=\"web", "labels:1:9: the quoted value has no closing quote");
    refused("app=\"web\" x", "labels:1:10: text after the closing quote");
    refused("a=\"1\"\nb=\"x\\qy\"", "labels:2:5: unknown escape (Go quoting: \\\" \\\\ \\a \\b \\f "
                                    "\\n \\r \\t \\v \\x \\u \\U \\ooo)");
    refused("a=\"\\x4\"", "labels:1:4: \\x needs two hex digits");
    refused("a=\"\\u12\"", "labels:1:4: \\u needs four hex digits");
    refused("a=\"\\U0011000\"", "labels:1:4: \\U needs eight hex digits");
    refused("a=\"\\U00110000\"", "labels:1:4: not a Unicode code point");
    refused("a=\"\\ud800\"", "labels:1:4: not a Unicode code point");
    refused("a=\"\\400\"", "labels:1:4: an octal escape above \\377");
    refused("a=\"\\12\"", "labels:1:4: an octal escape needs three digits");
    refused("a=\"\\x00\"", "labels:1:4: a NUL character in a label value");
    refused("a=\"x\ty\"",
            "labels:1:5: a control character in a label value (Go quoting escapes it)");
    refused("a=\"\\", "labels:1:4: unterminated escape");
    refused("a=\"1\"\na=\"2\"", "labels:2:1: label \"a\" given twice");
    refused("app=\"web\"\r\n", "labels:1:10: text after the closing quote");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(pod_info_directory_and_service_account)
{
    char dir[] = "/tmp/petrel-pod-info.XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/labels", dir);
    write_file(path, "app=\"web\"\nversion=\"v2\"");
    snprintf(path, sizeof(path), "%s/namespace", dir);
    write_file(path, "shop\n");
    /* A `name` file (the pod's own name) is not read: the workload's name is the variable's. */
    snprintf(path, sizeof(path), "%s/name", dir);
    write_file(path, "web-5d8f7-abcde");
    pt_pod_info_t p = {0};
    pt_config_errors_t e = {0};
    ASSERT_EQ(pt_pod_info_read(dir, "web-sa", "web", &p, &e), 0);
    ASSERT_STREQ(p.workload.name, "web");
    ASSERT_STREQ(p.workload.ns, "shop");
    ASSERT_STREQ(p.workload.service_account, "web-sa");
    ASSERT_STREQ(label(&p, "version"), "v2");
    char *files[PT_POD_INFO_N_FILES];
    ASSERT_EQ(pt_pod_info_files(&p, files), 2);
    snprintf(path, sizeof(path), "%s/labels", dir);
    ASSERT_STREQ(files[0], path);
    snprintf(path, sizeof(path), "%s/namespace", dir);
    ASSERT_STREQ(files[1], path);
    for (size_t i = 0; i < PT_POD_INFO_N_FILES; i++)
        free(files[i]);
    pt_pod_info_dispose(&p);
    ASSERT_EQ(pt_pod_info_read(dir, NULL, NULL, &p, &e), 0);
    ASSERT(p.workload.name == NULL);
    pt_pod_info_dispose(&p);
    snprintf(path, sizeof(path), "%s/name", dir);
    unlink(path);

    /* A malformed file names itself; an empty value is refused; a missing file is not known. */
    snprintf(path, sizeof(path), "%s/labels", dir);
    write_file(path, "app=web");
    char want[512];
    snprintf(want, sizeof(want), "%s:1:5: expected a double-quoted value after '='", path);
    ASSERT_EQ(pt_pod_info_read(dir, NULL, NULL, &p, &e), -1);
    ASSERT(has_error(&e, want));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
    unlink(path);
    snprintf(path, sizeof(path), "%s/namespace", dir);
    write_file(path, "");
    ASSERT_EQ(pt_pod_info_read(dir, NULL, NULL, &p, &e), -1);
    snprintf(want, sizeof(want), "%s:1:1: empty", path);
    ASSERT(has_error(&e, want));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
    write_file(path, "shop\n");
    ASSERT_EQ(pt_pod_info_read(dir, "", NULL, &p, &e), -1);
    ASSERT(
        has_error(&e, "PETREL_SERVICE_ACCOUNT: set but empty (the pod's spec.serviceAccountName)"));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
    ASSERT_EQ(pt_pod_info_read(dir, NULL, "", &p, &e), -1);
    ASSERT(has_error(&e, "PETREL_WORKLOAD_NAME: set but empty (the workload's metadata.name)"));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
    ASSERT_EQ(pt_pod_info_read(NULL, NULL, "web\n", &p, &e), -1);
    ASSERT(has_error(&e, "PETREL_WORKLOAD_NAME: set but contains a control character (the "
                         "workload's metadata.name)"));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
    /* The name without the volume still describes the workload. */
    ASSERT_EQ(pt_pod_info_read(NULL, NULL, "web", &p, &e), 0);
    ASSERT(pt_pod_info_workload(&p) != NULL);
    ASSERT_STREQ(pt_pod_info_workload(&p)->name, "web");
    ASSERT_EQ(pt_pod_info_files(&p, files), 0);
    pt_pod_info_dispose(&p);
    /* A directory where a file should be (the directory reader must not be used). */
    snprintf(path, sizeof(path), "%s/labels", dir);
    ASSERT_EQ(mkdir(path, 0700), 0);
    ASSERT_EQ(pt_pod_info_read(dir, NULL, NULL, &p, &e), -1);
    snprintf(want, sizeof(want), "%s: not a file", path);
    ASSERT(has_error(&e, want));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
    rmdir(path);
    ASSERT_EQ(pt_pod_info_read(dir, NULL, NULL, &p, &e), 0);
    ASSERT(p.workload.name == NULL && p.workload.n_labels == 0);
    ASSERT_STREQ(p.workload.ns, "shop");
    pt_pod_info_dispose(&p);
    snprintf(path, sizeof(path), "%s/namespace", dir);
    unlink(path);
    rmdir(dir);
    ASSERT_EQ(pt_pod_info_read(dir, NULL, NULL, &p, &e), -1);
    snprintf(want, sizeof(want),
             "%s: cannot read the pod-info directory (PETREL_POD_INFO): No such file or directory",
             dir);
    ASSERT(has_error(&e, want));
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&e);
}

static pt_config_t *load_with_pod(const char *yaml, const pt_workload_t *pod, pt_config_errors_t *e)
{
    pt_config_source_t src = {"proxy.yaml", yaml, strlen(yaml)};
    return pt_config_load_buffers(&src, 1, pod, e);
}

TEST(the_pod_fills_what_the_proxy_leaves_unset)
{
    static const char *const labels[] = {"app", "web", "version", "v2"};
    pt_workload_t pod = {
        .name = "web", .ns = "shop", .service_account = "web-sa", .labels = labels, .n_labels = 2};
    pt_config_errors_t e = {0};
    /* No Proxy field: everything from the pod. */
    pt_config_t *c = load_with_pod("apiVersion: petrel.io/v1alpha1\nkind: Proxy\n"
                                   "metadata: {name: p}\nspec: {}\n",
                                   &pod, &e);
    dump(&e);
    ASSERT(c != NULL);
    const pt_workload_t *w = &c->proxy.workload;
    ASSERT_STREQ(w->name, "web");
    ASSERT_STREQ(w->ns, "shop");
    ASSERT_STREQ(w->service_account, "web-sa");
    ASSERT_EQ(w->n_labels, 2);
    ASSERT_STREQ(w->labels[3], "v2");
    pt_config_unref(c);
    /* Explicit fields win, labels as a whole; the pod fills the rest. */
    c = load_with_pod("apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                      "spec:\n  workload:\n    namespace: other\n    labels: {app: api}\n",
                      &pod, &e);
    dump(&e);
    ASSERT(c != NULL);
    w = &c->proxy.workload;
    ASSERT_STREQ(w->name, "web");
    ASSERT_STREQ(w->ns, "other");
    ASSERT_STREQ(w->service_account, "web-sa");
    ASSERT_EQ(w->n_labels, 1);
    ASSERT_STREQ(w->labels[1], "api");
    pt_config_unref(c);
    /* An explicit name wins over the one inject gave the sidecar. */
    c = load_with_pod("apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                      "spec:\n  workload:\n    name: web-canary\n",
                      &pod, &e);
    dump(&e);
    ASSERT(c != NULL);
    ASSERT_STREQ(c->proxy.workload.name, "web-canary");
    ASSERT_STREQ(c->proxy.workload.ns, "shop");
    pt_config_unref(c);
    /* Neither: namespace "default", nothing else. */
    c = load_with_pod("apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n", NULL,
                      &e);
    ASSERT(c != NULL);
    w = &c->proxy.workload;
    ASSERT_STREQ(w->ns, "default");
    ASSERT(w->name == NULL && w->service_account == NULL && w->n_labels == 0);
    pt_config_unref(c);
    /* No Proxy document at all: the pod still describes the workload. */
    c = load_with_pod("", &pod, &e);
    ASSERT(c != NULL);
    ASSERT_STREQ(c->proxy.workload.ns, "shop");
    pt_config_unref(c);
    ASSERT_EQ(e.n, 0);
    pt_config_errors_dispose(&e);
}
