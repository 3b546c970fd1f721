/* config/inject.c
 * `petrel inject` (see inject.h). Each document is loaded into libyaml's node tree, the pod
 * template of a workload gets Petrel's containers, volumes and annotation, its HTTP and TCP
 * probes are pointed at the sidecar's health port, and the tree is emitted again: keys keep
 * their order and scalars their quoting; comments are lost (libyaml's tree has none).
 *
 * The added containers are written as YAML text from the options and the pod's annotations,
 * loaded, and copied into the document, so what is added reads like the manifest it becomes. */
#include "inject.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config.h"
#include "schema.h"

#define PROXY_UID "1337"
#define HEALTH_PORT 15021
/* Petrel's ports the capture never redirects inbound, as Istio's injector passes them. */
#define OWN_INBOUND_PORTS "15090,15021,15020"

typedef struct inject {
    yaml_document_t *doc;
    const char *name; /* of the input, in messages */
    const pt_inject_options_t *o;
    FILE *msg;
    int n_errors;
    char md_path[256]; /* the YAML path of the pod template's metadata, in messages */
} inject_t;

/* What the pod's annotations ask for. */
typedef struct pod_settings {
    const char *capture[6][2]; /* (option, value) pairs for petrel-iptables.sh */
    bool hold;                 /* holdApplicationUntilProxyStarts (classic mode) */
    const char *drain;         /* terminationDrainDuration, or NULL */
    const char *resources[4];  /* requests cpu, memory; limits cpu, memory */
} pod_settings_t;

static yaml_node_t *nd(yaml_document_t *d, int i)
{
    return i > 0 ? yaml_document_get_node(d, i) : NULL;
}

static const char *str(yaml_document_t *d, int i)
{
    yaml_node_t *n = nd(d, i);
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_type(yaml_document_t *d, int i, yaml_node_type_t t)
{
    yaml_node_t *n = nd(d, i);
    return n != NULL && n->type == t;
}

/* The value of key in mapping map, 0 when absent (or map is not a mapping). */
static int get(yaml_document_t *d, int map, const char *key)
{
    if (!is_type(d, map, YAML_MAPPING_NODE))
        return 0;
    yaml_node_t *m = nd(d, map);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = str(d, p->key);
        if (k != NULL && strcmp(k, key) == 0)
            return p->value;
    }
    return 0;
}

static int get_path(yaml_document_t *d, int map, const char *const *keys)
{
    for (; *keys != NULL && map != 0; keys++)
        map = get(d, map, *keys);
    return map;
}

static int scalar(yaml_document_t *d, const char *s, yaml_scalar_style_t style)
{
    int i = yaml_document_add_scalar(d, NULL, (yaml_char_t *)s, -1, style);
    if (i == 0)
        abort();
    return i;
}

/* Sets key to value in map: the pair in place when the key is there, else a new last pair. */
static void put(yaml_document_t *d, int map, const char *key, int value)
{
    yaml_node_t *m = nd(d, map);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = str(d, p->key);
        if (k != NULL && strcmp(k, key) == 0) {
            p->value = value;
            return;
        }
    }
    if (!yaml_document_append_mapping_pair(d, map, scalar(d, key, YAML_PLAIN_SCALAR_STYLE), value))
        abort();
}

/* The mapping or sequence under key, made (empty, block style) when absent or null. */
static int child(yaml_document_t *d, int map, const char *key, yaml_node_type_t type)
{
    int i = get(d, map, key);
    if (is_type(d, i, type))
        return i;
    i = type == YAML_MAPPING_NODE ? yaml_document_add_mapping(d, NULL, YAML_BLOCK_MAPPING_STYLE)
                                  : yaml_document_add_sequence(d, NULL, YAML_BLOCK_SEQUENCE_STYLE);
    if (i == 0)
        abort();
    put(d, map, key, i);
    return i;
}

/* Inserts item into seq at pos (0: first). */
static void insert(yaml_document_t *d, int seq, size_t pos, int item)
{
    if (!yaml_document_append_sequence_item(d, seq, item))
        abort();
    yaml_node_t *s = nd(d, seq);
    yaml_node_item_t *v = s->data.sequence.items.start;
    size_t n = (size_t)(s->data.sequence.items.top - v);
    memmove(v + pos + 1, v + pos, (n - 1 - pos) * sizeof(*v));
    v[pos] = item;
}

/* Copies node i of src (and everything under it) into d, which may be src; returns its index
 * in d, or 0 past depth 64 (a recursive alias). Adding to d may move d's nodes but not their
 * item and pair arrays, so those are read once, before anything is added. */
static int copy(yaml_document_t *d, yaml_document_t *src, int i, int depth)
{
    yaml_node_t n = *nd(src, i);
    int r = 0;
    if (depth > 64)
        return 0;
    if (n.type == YAML_SCALAR_NODE) {
        r = yaml_document_add_scalar(d, NULL, n.data.scalar.value, (int)n.data.scalar.length,
                                     n.data.scalar.style);
    } else if (n.type == YAML_SEQUENCE_NODE) {
        r = yaml_document_add_sequence(d, NULL, n.data.sequence.style);
        for (yaml_node_item_t *it = n.data.sequence.items.start; it < n.data.sequence.items.top;
             it++) {
            int item = copy(d, src, *it, depth + 1);
            if (item == 0)
                return 0;
            yaml_document_append_sequence_item(d, r, item);
        }
    } else {
        r = yaml_document_add_mapping(d, NULL, n.data.mapping.style);
        for (yaml_node_pair_t *p = n.data.mapping.pairs.start; p < n.data.mapping.pairs.top; p++) {
            int key = copy(d, src, p->key, depth + 1), value = copy(d, src, p->value, depth + 1);
            if (key == 0 || value == 0)
                return 0;
            yaml_document_append_mapping_pair(d, r, key, value);
        }
    }
    if (r == 0)
        abort();
    nd(d, r)->start_mark = n.start_mark; /* messages point at the input */
    nd(d, r)->end_mark = n.end_mark;
    return r;
}

/* Loads YAML text written here (so it cannot fail) and copies its root into d. */
static int add_yaml(yaml_document_t *d, const char *text)
{
    yaml_parser_t parser;
    yaml_document_t tmp;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &tmp) || yaml_document_get_root_node(&tmp) == NULL) {
        fprintf(stderr, "petrel inject: internal template does not parse: %s\n%s\n",
                parser.problem ? parser.problem : "empty", text);
        abort();
    }
    int r = copy(d, &tmp, 1, 0);
    yaml_document_delete(&tmp);
    yaml_parser_delete(&parser);
    return r;
}

/* "name:line:col: path: message" (no "path: " when path is empty) on the message stream. */
static void report(inject_t *in, int node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(inject_t *in, int node, const char *path, const char *fmt, ...)
{
    yaml_node_t *n = nd(in->doc, node);
    fprintf(in->msg, "%s:%zu:%zu: %s%s", in->name, n ? n->start_mark.line + 1 : 0,
            n ? n->start_mark.column + 1 : 0, path, path[0] ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(in->msg, fmt, ap);
    va_end(ap);
    fputc('\n', in->msg);
}

#define ERROR(in, node, path, ...)                                                                 \
    do {                                                                                           \
        report(in, node, path, __VA_ARGS__);                                                       \
        (in)->n_errors++;                                                                          \
    } while (0)

/* s as a YAML double-quoted scalar, which is also a JSON string (the escapes used are both's). */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static bool is_port_list(const char *s, bool star_ok)
{
    if (star_ok && strcmp(s, "*") == 0)
        return true;
    while (*s) {
        char *end;
        long p = strtol(s, &end, 10);
        if (end == s || p < 1 || p > 65535 || (*end != ',' && *end != '\0'))
            return false;
        s = *end == ',' ? end + 1 : end;
    }
    return true;
}

/* IPv4 addresses or CIDR blocks, comma-separated (the capture rules are IPv4's), or "*". */
static bool is_cidr_list(const char *s, bool star_ok)
{
    if (star_ok && strcmp(s, "*") == 0)
        return true;
    while (*s) {
        size_t len = strcspn(s, ",");
        char one[64];
        if (len == 0 || len >= sizeof(one))
            return false;
        memcpy(one, s, len);
        one[len] = '\0';
        char *slash = strchr(one, '/');
        if (slash != NULL) {
            char *end;
            long bits = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end != '\0' || bits < 0 || bits > 32)
                return false;
            *slash = '\0';
        }
        struct in_addr a;
        if (inet_pton(AF_INET, one, &a) != 1)
            return false;
        s += len + (s[len] == ',');
    }
    return true;
}

/* A Kubernetes quantity's characters (the API server checks the rest). */
static bool is_quantity(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789.eEkKMGTPim+-") == strlen(s);
}

/* Reads proxy.istio.io/config (a YAML ProxyConfig in a string): the two fields Petrel takes;
 * Istio's others do not apply to Petrel and are ignored. */
static void read_proxy_config(inject_t *in, int node, const char *text, pod_settings_t *ps)
{
    char path[300];
    snprintf(path, sizeof(path), "%s.annotations.proxy.istio.io/config", in->md_path);
    yaml_parser_t parser;
    yaml_document_t d;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &d)) {
        ERROR(in, node, path, "not YAML: %s", parser.problem ? parser.problem : "?");
        yaml_parser_delete(&parser);
        return;
    }
    int root = yaml_document_get_root_node(&d) ? 1 : 0;
    if (root != 0 && !is_type(&d, root, YAML_MAPPING_NODE)) {
        ERROR(in, node, path, "expected a mapping (a ProxyConfig)");
    } else if (root != 0) {
        const char *hold = str(&d, get(&d, root, "holdApplicationUntilProxyStarts"));
        if (hold != NULL && strcmp(hold, "true") != 0 && strcmp(hold, "false") != 0)
            ERROR(in, node, path, "holdApplicationUntilProxyStarts: expected true or false");
        else if (hold != NULL)
            ps->hold = strcmp(hold, "true") == 0;
        const char *drain = str(&d, get(&d, root, "terminationDrainDuration"));
        uint64_t ms;
        if (drain != NULL) {
            if (pt__cfg_parse_duration(drain, &ms) != 0)
                ERROR(in, node, path,
                      "terminationDrainDuration: \"%s\" is not a duration (e.g. 5s, 500ms)", drain);
            else
                ps->drain = strdup(drain);
        }
    }
    yaml_document_delete(&d);
    yaml_parser_delete(&parser);
}

static void read_settings(inject_t *in, int annotations, pod_settings_t *ps)
{
    static const struct {
        const char *annotation, *option, *fixed; /* fixed: Petrel's own, always added */
        bool is_cidr, star_ok;
        const char *dflt;
    } capture[6] = {
        {"traffic.sidecar.istio.io/includeOutboundIPRanges", "-i", NULL, true, true, "*"},
        {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "-x", NULL, true, false, ""},
        {"traffic.sidecar.istio.io/includeInboundPorts", "-b", NULL, false, true, "*"},
        {"traffic.sidecar.istio.io/excludeInboundPorts", "-d", OWN_INBOUND_PORTS, false, false, ""},
        {"traffic.sidecar.istio.io/excludeOutboundPorts", "-o", NULL, false, false, ""},
        {"traffic.sidecar.istio.io/includeOutboundPorts", "-q", NULL, false, false, ""},
    };
    static const char *const resources[4] = {
        "sidecar.istio.io/proxyCPU", "sidecar.istio.io/proxyMemory",
        "sidecar.istio.io/proxyCPULimit", "sidecar.istio.io/proxyMemoryLimit"};
    static const char *const resource_defaults[4] = {"100m", "128Mi", NULL, NULL};
    ps->hold = true;
    for (int i = 0; i < 6; i++) {
        int node = get(in->doc, annotations, capture[i].annotation);
        const char *v = str(in->doc, node);
        char path[400];
        snprintf(path, sizeof(path), "%s.annotations.%s", in->md_path, capture[i].annotation);
        if (v != NULL && !(capture[i].is_cidr ? is_cidr_list(v, capture[i].star_ok)
                                              : is_port_list(v, capture[i].star_ok))) {
            ERROR(in, node, path, "\"%s\" is not a comma-separated list of %s%s", v,
                  capture[i].is_cidr ? "IPv4 CIDR blocks" : "ports (1..65535)",
                  capture[i].star_ok ? ", or \"*\"" : "");
            v = NULL;
        }
        if (v == NULL)
            v = capture[i].dflt;
        if (capture[i].fixed != NULL) {
            char *joined = malloc(strlen(v) + strlen(capture[i].fixed) + 2);
            if (joined == NULL)
                abort();
            sprintf(joined, "%s%s%s", capture[i].fixed, v[0] ? "," : "", v);
            v = joined;
        } else {
            v = strdup(v);
        }
        ps->capture[i][0] = capture[i].option;
        ps->capture[i][1] = v;
    }
    for (int i = 0; i < 4; i++) {
        int node = get(in->doc, annotations, resources[i]);
        const char *v = str(in->doc, node);
        if (v != NULL && !is_quantity(v)) {
            char path[400];
            snprintf(path, sizeof(path), "%s.annotations.%s", in->md_path, resources[i]);
            ERROR(in, node, path, "\"%s\" is not a Kubernetes quantity (e.g. 100m, 128Mi)", v);
            v = NULL;
        }
        ps->resources[i] = v != NULL ? v : resource_defaults[i];
    }
    int pc = get(in->doc, annotations, "proxy.istio.io/config");
    if (str(in->doc, pc) != NULL)
        read_proxy_config(in, pc, str(in->doc, pc), ps);
}

static void dispose_settings(pod_settings_t *ps)
{
    for (int i = 0; i < 6; i++)
        free((char *)ps->capture[i][1]);
    free((char *)ps->drain);
}

/* The container port a probe's port names: a number, or a name among the container's ports;
 * 0 when neither. */
static long probe_port(yaml_document_t *d, int container, int port)
{
    const char *p = str(d, port);
    if (p == NULL)
        return 0;
    char *end;
    long n = strtol(p, &end, 10);
    if (end != p && *end == '\0')
        return n >= 1 && n <= 65535 ? n : 0;
    int ports = get(d, container, "ports");
    if (!is_type(d, ports, YAML_SEQUENCE_NODE))
        return 0;
    yaml_node_t *s = nd(d, ports);
    for (yaml_node_item_t *it = s->data.sequence.items.start; it < s->data.sequence.items.top;
         it++) {
        const char *name = str(d, get(d, *it, "name"));
        if (name != NULL && strcmp(name, p) == 0)
            return str(d, get(d, *it, "containerPort")) != NULL
                       ? strtol(str(d, get(d, *it, "containerPort")), NULL, 10)
                       : 0;
    }
    return 0;
}

/* Points the container's HTTP and TCP probes at the sidecar's health port, Istio's way:
 * /app-health/<container>/livez|readyz|startupz, the original probe added to probers (JSON). */
static void rewrite_probes(inject_t *in, int container, const char *cpath, FILE *probers,
                           bool *is_first)
{
    static const char *const kinds[3][2] = {
        {"livenessProbe", "livez"}, {"readinessProbe", "readyz"}, {"startupProbe", "startupz"}};
    yaml_document_t *d = in->doc;
    const char *cname = str(d, get(d, container, "name"));
    for (int k = 0; k < 3 && cname != NULL; k++) {
        int probe = get(d, container, kinds[k][0]);
        int http = get(d, probe, "httpGet"), tcp = get(d, probe, "tcpSocket");
        int action = http != 0 ? http : tcp;
        if (action == 0)
            continue; /* exec and grpc probes do not cross the capture */
        const char *scheme = str(d, get(d, http, "scheme"));
        if (http != 0 &&
            ((scheme != NULL && strcmp(scheme, "HTTP") != 0) || get(d, http, "host") != 0))
            continue; /* HTTPS, or another host: not the app's plaintext port; left alone */
        char path[256];
        snprintf(path, sizeof(path), "%s.%s.%s.port", cpath, kinds[k][0],
                 http ? "httpGet" : "tcpSocket");
        long port = probe_port(d, container, get(d, action, "port"));
        if (port == 0) {
            ERROR(in, get(d, action, "port"), path,
                  "expected a port number or the name of one of the container's ports");
            continue;
        }
        char url[300];
        snprintf(url, sizeof(url), "/app-health/%s/%s", cname, kinds[k][1]);
        fputs(*is_first ? "{" : ",", probers);
        *is_first = false;
        put_quoted(probers, url);
        if (http != 0) {
            const char *p = str(d, get(d, http, "path"));
            fprintf(probers, ":{\"httpGet\":{\"path\":");
            put_quoted(probers, p != NULL ? p : "/");
            fprintf(probers, ",\"port\":%ld,\"scheme\":\"HTTP\"", port);
            int headers = get(d, http, "httpHeaders");
            if (is_type(d, headers, YAML_SEQUENCE_NODE)) {
                fputs(",\"httpHeaders\":[", probers);
                yaml_node_t *s = nd(d, headers);
                for (yaml_node_item_t *it = s->data.sequence.items.start;
                     it < s->data.sequence.items.top; it++) {
                    const char *hn = str(d, get(d, *it, "name")),
                               *hv = str(d, get(d, *it, "value"));
                    fputs(it == s->data.sequence.items.start ? "{\"name\":" : ",{\"name\":",
                          probers);
                    put_quoted(probers, hn ? hn : "");
                    fputs(",\"value\":", probers);
                    put_quoted(probers, hv ? hv : "");
                    fputc('}', probers);
                }
                fputc(']', probers);
            }
            fputc('}', probers);
        } else {
            fprintf(probers, ":{\"tcpSocket\":{\"port\":%ld}", port);
        }
        const char *t = str(d, get(d, probe, "timeoutSeconds"));
        fprintf(probers, ",\"timeoutSeconds\":%ld}", t != NULL ? strtol(t, NULL, 10) : 1L);
        /* The probe keeps its timings; only where it asks changes. */
        char text[400];
        snprintf(text, sizeof(text), "path: /app-health/%s/%s\nport: %d\nscheme: HTTP\n", cname,
                 kinds[k][1], HEALTH_PORT);
        int replacement = add_yaml(d, text);
        int key = scalar(d, "httpGet", YAML_PLAIN_SCALAR_STYLE);
        /* The action is replaced in place (tcpSocket becomes httpGet at the same position).
         * The pairs live in their own array, which adding nodes does not move. */
        yaml_node_t *pn = nd(d, probe);
        for (yaml_node_pair_t *p = pn->data.mapping.pairs.start; p < pn->data.mapping.pairs.top;
             p++) {
            if (p->value == action) {
                p->key = key;
                p->value = replacement;
                break;
            }
        }
    }
}

static void write_resources(FILE *f, const pod_settings_t *ps)
{
    fputs("resources:\n", f);
    for (int limits = 0; limits < 2; limits++) {
        const char *cpu = ps->resources[2 * limits], *mem = ps->resources[2 * limits + 1];
        if (cpu == NULL && mem == NULL)
            continue;
        fprintf(f, "  %s:\n", limits ? "limits" : "requests");
        if (cpu != NULL) {
            fputs("    cpu: ", f);
            put_quoted(f, cpu);
            fputc('\n', f);
        }
        if (mem != NULL) {
            fputs("    memory: ", f);
            put_quoted(f, mem);
            fputc('\n', f);
        }
    }
}

/* The sidecar container, as YAML text (malloc'd); workload is the injected object's name (NULL
 * when it has none). */
static char *proxy_container(const pt_inject_options_t *o, const pod_settings_t *ps,
                             const char *workload, const char *probers)
{
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    fputs("name: petrel-proxy\nimage: ", f);
    put_quoted(f, o->image);
    fputc('\n', f);
    if (!o->is_classic)
        fputs("restartPolicy: Always\n", f);
    fputs("args:\n- run\n- -c\n- /etc/petrel/mesh\n", f);
    /* Who the workload is, for spec.workload (xds/pod_info.h): the downwardAPI volume's
     * directory, the service account, which a volume cannot carry, and the workload's name,
     * which only the object injected here knows (a pod's own name is per pod). */
    fputs("env:\n"
          "- name: " PT_POD_INFO_ENV "\n  value: " PT_POD_INFO_DIR "\n"
          "- name: " PT_SERVICE_ACCOUNT_ENV "\n  valueFrom:\n    fieldRef:\n"
          "      fieldPath: spec.serviceAccountName\n",
          f);
    if (workload != NULL) {
        fputs("- name: " PT_WORKLOAD_NAME_ENV "\n  value: ", f);
        put_quoted(f, workload);
        fputc('\n', f);
    }
    if (probers != NULL) {
        fputs("- name: " PT_INJECT_PROBERS_ENV "\n  value: ", f);
        put_quoted(f, probers);
        fputc('\n', f);
    }
    if (ps->drain != NULL) {
        fputs("- name: " PT_DRAIN_DURATION_ENV "\n  value: ", f);
        put_quoted(f, ps->drain);
        fputc('\n', f);
    }
    fputs("ports:\n"
          "- name: http-envoy-prom\n  containerPort: 15090\n  protocol: TCP\n"
          "- name: health\n  containerPort: 15021\n  protocol: TCP\n",
          f);
    /* Native: the startup probe is what holds the app containers until Petrel is ready. */
    if (!o->is_classic)
        fputs("startupProbe:\n  httpGet:\n    path: /healthz/ready\n    port: 15021\n"
              "  periodSeconds: 1\n  timeoutSeconds: 3\n  failureThreshold: 600\n",
              f);
    fputs("readinessProbe:\n  httpGet:\n    path: /healthz/ready\n    port: 15021\n"
          "  periodSeconds: 15\n  timeoutSeconds: 3\n  failureThreshold: 4\n",
          f);
    if (o->is_classic && ps->hold)
        fputs("lifecycle:\n  postStart:\n    exec:\n      command:\n      - petrel\n      - wait\n",
              f);
    write_resources(f, ps);
    fputs("securityContext:\n  runAsUser: " PROXY_UID "\n  runAsGroup: " PROXY_UID "\n"
          "  runAsNonRoot: true\n  allowPrivilegeEscalation: false\n"
          "  readOnlyRootFilesystem: true\n  capabilities:\n    drop:\n    - ALL\n"
          "volumeMounts:\n"
          "- name: petrel-mesh\n  mountPath: /etc/petrel/mesh\n  readOnly: true\n"
          "- name: petrel-identity\n  mountPath: /etc/petrel/identity\n  readOnly: true\n"
          "- name: petrel-pod\n  mountPath: " PT_POD_INFO_DIR "\n  readOnly: true\n",
          f);
    fclose(f);
    return text;
}

/* The capture init container (root, NET_ADMIN and NET_RAW, as istio-init), as YAML text. */
static char *capture_container(const pt_inject_options_t *o, const pod_settings_t *ps)
{
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    fputs("name: petrel-init\nimage: ", f);
    put_quoted(f, o->image);
    fputs("\ncommand:\n- /usr/local/bin/petrel-iptables.sh\nargs:\n"
          "- -p\n- \"15001\"\n- -z\n- \"15006\"\n- -u\n- \"" PROXY_UID "\"\n- -g\n- \"" PROXY_UID
          "\"\n",
          f);
    for (int i = 0; i < 6; i++) {
        if (ps->capture[i][1][0] == '\0')
            continue;
        fprintf(f, "- %s\n- ", ps->capture[i][0]);
        put_quoted(f, ps->capture[i][1]);
        fputc('\n', f);
    }
    fputs("resources:\n  requests:\n    cpu: 10m\n    memory: 10Mi\n"
          "securityContext:\n  runAsUser: 0\n  runAsGroup: 0\n  runAsNonRoot: false\n"
          "  allowPrivilegeEscalation: false\n  readOnlyRootFilesystem: false\n"
          "  capabilities:\n    add:\n    - NET_ADMIN\n    - NET_RAW\n    drop:\n    - ALL\n",
          f);
    fclose(f);
    return text;
}

static bool says_false(yaml_document_t *d, int map)
{
    const char *v = str(d, get(d, map, "sidecar.istio.io/inject"));
    return v != NULL && strcmp(v, "false") == 0;
}

/* Injects the pod template whose metadata and spec are given; what names the workload in
 * messages ("Deployment web"), path the template's YAML path. */
static void inject_pod(inject_t *in, int object_md, int md, int spec, const char *what,
                       const char *path)
{
    yaml_document_t *d = in->doc;
    if (!is_type(d, spec, YAML_MAPPING_NODE)) {
        ERROR(in, spec, path, "%s: expected a pod spec (a mapping)", what);
        return;
    }
    int annotations = get(d, md, "annotations"), labels = get(d, md, "labels");
    if (says_false(d, annotations) || says_false(d, labels) ||
        says_false(d, get(d, object_md, "annotations")) ||
        says_false(d, get(d, object_md, "labels")))
        return;
    if (get(d, annotations, PT_INJECT_STATUS_ANNOTATION) != 0)
        return; /* injected already */
    const char *host_network = str(d, get(d, spec, "hostNetwork"));
    if (host_network != NULL && strcmp(host_network, "true") == 0) {
        report(in, spec, "",
               "%s: not injected: hostNetwork pods share the node's network, which the capture "
               "rules would change",
               what);
        return;
    }
    int containers = get(d, spec, "containers");
    if (!is_type(d, containers, YAML_SEQUENCE_NODE)) {
        ERROR(in, spec, path, "%s: spec.containers: expected a list of containers", what);
        return;
    }
    pod_settings_t ps = {0};
    int start_errors = in->n_errors;
    read_settings(in, annotations, &ps);
    char *probers = NULL;
    size_t probers_len;
    FILE *pf = open_memstream(&probers, &probers_len);
    bool is_first = true;
    yaml_node_t *cs = nd(d, containers);
    size_t n_containers = (size_t)(cs->data.sequence.items.top - cs->data.sequence.items.start);
    for (size_t i = 0; i < n_containers; i++) {
        char cpath[200];
        snprintf(cpath, sizeof(cpath), "%s.containers[%zu]", path, i);
        rewrite_probes(in, nd(d, containers)->data.sequence.items.start[i], cpath, pf, &is_first);
    }
    if (!is_first)
        fputc('}', pf);
    fclose(pf);
    if (in->n_errors == start_errors) {
        char *proxy = proxy_container(in->o, &ps, str(d, get(d, object_md, "name")),
                                      is_first ? NULL : probers);
        char *capture = capture_container(in->o, &ps);
        int inits = child(d, spec, "initContainers", YAML_SEQUENCE_NODE);
        insert(d, inits, 0, add_yaml(d, capture));
        if (in->o->is_classic)
            insert(d, child(d, spec, "containers", YAML_SEQUENCE_NODE), 0, add_yaml(d, proxy));
        else
            insert(d, inits, 1, add_yaml(d, proxy));
        int volumes = child(d, spec, "volumes", YAML_SEQUENCE_NODE);
        char vol[512];
        snprintf(vol, sizeof(vol), "name: petrel-mesh\nconfigMap:\n  name: %s\n", in->o->mesh_cm);
        yaml_document_append_sequence_item(d, volumes, add_yaml(d, vol));
        const char *sa = str(d, get(d, spec, "serviceAccountName"));
        snprintf(vol, sizeof(vol),
                 "name: petrel-identity\nsecret:\n  secretName: petrel-identity-%s\n",
                 sa != NULL ? sa : "default");
        yaml_document_append_sequence_item(d, volumes, add_yaml(d, vol));
        yaml_document_append_sequence_item(
            d, volumes,
            add_yaml(d,
                     "name: petrel-pod\ndownwardAPI:\n  items:\n"
                     "  - path: labels\n    fieldRef:\n      fieldPath: metadata.labels\n"
                     "  - path: namespace\n    fieldRef:\n      fieldPath: metadata.namespace\n"));
        annotations = child(d, md, "annotations", YAML_MAPPING_NODE);
        put(d, annotations, PT_INJECT_STATUS_ANNOTATION,
            scalar(d, in->o->is_classic ? "classic" : "native", YAML_PLAIN_SCALAR_STYLE));
        free(proxy);
        free(capture);
    }
    free(probers);
    dispose_settings(&ps);
}

static bool is_workload(const char *kind)
{
    static const char *const kinds[] = {"Pod",        "Deployment", "StatefulSet", "DaemonSet",
                                        "ReplicaSet", "Job",        "CronJob"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kind, kinds[i]) == 0)
            return true;
    return false;
}

/* Gives every value under the root mapping its own nodes: an alias in the input loads as a
 * node shared by two places, and injecting one must not change the other. The output spells
 * such values out in full. */
static void unshare(inject_t *in)
{
    yaml_node_t root = *nd(in->doc, 1); /* a copy: adding nodes moves them */
    for (yaml_node_pair_t *p = root.data.mapping.pairs.start; p < root.data.mapping.pairs.top;
         p++) {
        int value = copy(in->doc, in->doc, p->value, 1);
        if (value == 0) {
            ERROR(in, p->value, "", "nested too deep (a recursive alias?)");
            return;
        }
        p->value = value;
    }
}

/* One object: a workload gets the sidecar, a List its items, anything else passes. */
static void inject_object(inject_t *in, int obj, const char *path)
{
    yaml_document_t *d = in->doc;
    const char *kind = str(d, get(d, obj, "kind"));
    if (kind == NULL)
        return;
    const char *name = str(d, get_path(d, obj, (const char *const[]){"metadata", "name", NULL}));
    char what[256], tpath[256];
    snprintf(what, sizeof(what), "%s %s", kind, name ? name : "(no name)");
    int md = get(d, obj, "metadata");
    if (strcmp(kind, "List") == 0) {
        int items = get(d, obj, "items");
        if (!is_type(d, items, YAML_SEQUENCE_NODE))
            return;
        size_t n = (size_t)(nd(d, items)->data.sequence.items.top -
                            nd(d, items)->data.sequence.items.start);
        for (size_t i = 0; i < n; i++) {
            char ipath[64];
            snprintf(ipath, sizeof(ipath), "%sitems[%zu].", path, i);
            inject_object(in, nd(d, items)->data.sequence.items.start[i], ipath);
        }
    } else if (strcmp(kind, "Pod") == 0) {
        snprintf(tpath, sizeof(tpath), "%sspec", path);
        snprintf(in->md_path, sizeof(in->md_path), "%smetadata", path);
        inject_pod(in, md, md, get(d, obj, "spec"), what, tpath);
    } else if (is_workload(kind)) {
        bool is_cron = strcmp(kind, "CronJob") == 0;
        int spec = get(d, obj, "spec");
        if (is_cron)
            spec = get(d, get(d, spec, "jobTemplate"), "spec");
        int tmpl = get(d, spec, "template");
        snprintf(tpath, sizeof(tpath), "%sspec.%stemplate.spec", path,
                 is_cron ? "jobTemplate.spec." : "");
        snprintf(in->md_path, sizeof(in->md_path), "%sspec.%stemplate.metadata", path,
                 is_cron ? "jobTemplate.spec." : "");
        if (!is_type(d, tmpl, YAML_MAPPING_NODE)) {
            ERROR(in, obj, tpath, "%s: expected a pod template", what);
            return;
        }
        inject_pod(in, md, child(d, tmpl, "metadata", YAML_MAPPING_NODE), get(d, tmpl, "spec"),
                   what, tpath);
    }
}

int pt_inject(const char *name, const char *data, size_t len, const pt_inject_options_t *o,
              FILE *out, FILE *msg)
{
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    yaml_document_t *docs = NULL;
    size_t n = 0;
    inject_t in = {.name = name, .o = o, .msg = msg};
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            fprintf(msg, "%s:%zu:%zu: not YAML: %s%s%s\n", name, parser.problem_mark.line + 1,
                    parser.problem_mark.column + 1, parser.context ? parser.context : "",
                    parser.context ? ", " : "", parser.problem ? parser.problem : "?");
            in.n_errors++;
            break;
        }
        if (yaml_document_get_root_node(&doc) == NULL) {
            yaml_document_delete(&doc);
            break;
        }
        docs = realloc(docs, (n + 1) * sizeof(*docs));
        if (docs == NULL)
            abort();
        docs[n++] = doc;
    }
    yaml_parser_delete(&parser);
    for (size_t i = 0; i < n && in.n_errors == 0; i++) {
        in.doc = &docs[i];
        const char *kind = str(in.doc, get(in.doc, 1, "kind"));
        if (kind == NULL || !(is_workload(kind) || strcmp(kind, "List") == 0))
            continue;
        unshare(&in);
        if (in.n_errors == 0)
            inject_object(&in, 1, "");
    }
    char *text = NULL;
    size_t text_len = 0;
    if (in.n_errors == 0) {
        FILE *mem = open_memstream(&text, &text_len);
        yaml_emitter_t emitter;
        yaml_emitter_initialize(&emitter);
        yaml_emitter_set_output_file(&emitter, mem);
        yaml_emitter_set_width(&emitter, -1); /* long strings stay on one line */
        yaml_emitter_set_unicode(&emitter, 1);
        yaml_emitter_open(&emitter);
        for (size_t i = 0; i < n; i++)
            yaml_emitter_dump(&emitter, &docs[i]); /* deletes the document */
        n = 0;
        yaml_emitter_close(&emitter);
        yaml_emitter_delete(&emitter);
        fclose(mem);
        fwrite(text, 1, text_len, out);
        free(text);
    }
    for (size_t i = 0; i < n; i++)
        yaml_document_delete(&docs[i]);
    free(docs);
    return in.n_errors == 0 ? 0 : 1;
}
