/* proxy/app_probe.c
 * The app's probes forwarded by the health port (see app_probe.h): the JSON is read with
 * libyaml (JSON is YAML), a probe is one connection to 127.0.0.1 on the main loop with its own
 * timer, and frees itself once both handles are closed. */
#include "app_probe.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static yaml_node_t *node(yaml_document_t *d, int i)
{
    return i > 0 ? yaml_document_get_node(d, i) : NULL;
}

static const char *scalar(yaml_document_t *d, int i)
{
    yaml_node_t *n = node(d, i);
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get(yaml_document_t *d, int map, const char *key)
{
    yaml_node_t *m = node(d, map);
    if (m == NULL || m->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(d, p->key);
        if (k != NULL && strcmp(k, key) == 0)
            return p->value;
    }
    return 0;
}

/* A header name or value safe to write into a request line by line. */
static bool is_header_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* One entry; false with err set. */
static bool parse_one(yaml_document_t *d, const char *path, int spec, pt_app_prober_t *out,
                      char *err, size_t err_size)
{
    int http = get(d, spec, "httpGet"), tcp = get(d, spec, "tcpSocket");
    const char *port_s = scalar(d, get(d, http ? http : tcp, "port"));
    long port = port_s != NULL ? strtol(port_s, NULL, 10) : 0;
    if ((http == 0) == (tcp == 0) || port < 1 || port > 65535) {
        snprintf(err, err_size, "%s: expected httpGet or tcpSocket with a port (1..65535)", path);
        return false;
    }
    const char *t = scalar(d, get(d, spec, "timeoutSeconds"));
    long timeout_s = t != NULL ? strtol(t, NULL, 10) : 1;
    out->path = strdup(path);
    out->port = (uint16_t)port;
    out->timeout_ms = (uint64_t)(timeout_s > 0 ? timeout_s : 1) * 1000;
    if (http == 0)
        return true;
    const char *p = scalar(d, get(d, http, "path"));
    if (p == NULL)
        p = "/";
    size_t len;
    FILE *f = open_memstream(&out->request, &len);
    bool ok = p[0] == '/' && is_header_text(p) && strchr(p, ' ') == NULL;
    fprintf(f, "GET %s HTTP/1.1\r\n", p);
    bool has_host = false;
    yaml_node_t *headers = node(d, get(d, http, "httpHeaders"));
    if (headers != NULL && headers->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = headers->data.sequence.items.start;
             it < headers->data.sequence.items.top; it++) {
            const char *n = scalar(d, get(d, *it, "name")), *v = scalar(d, get(d, *it, "value"));
            if (n == NULL || v == NULL || n[0] == '\0' || strpbrk(n, ": ") != NULL ||
                !is_header_text(n) || !is_header_text(v)) {
                ok = false;
                break;
            }
            has_host = has_host || strcasecmp(n, "host") == 0;
            fprintf(f, "%s: %s\r\n", n, v);
        }
    }
    /* The kubelet's own headers, unless the probe sets them. */
    if (!has_host)
        fprintf(f, "Host: 127.0.0.1:%ld\r\n", port);
    fputs("User-Agent: kube-probe/petrel\r\nConnection: close\r\n\r\n", f);
    fclose(f);
    if (!ok)
        snprintf(err, err_size, "%s: httpGet: a path starting with / and headers of printable text",
                 path);
    return ok;
}

int pt_app_probers_parse(const char *json, pt_app_probers_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    yaml_parser_t parser;
    yaml_document_t d;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)json, strlen(json));
    if (!yaml_parser_load(&parser, &d)) {
        snprintf(err, err_size, "not JSON: %s at offset %zu", parser.problem ? parser.problem : "?",
                 parser.problem_mark.index);
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_parser_delete(&parser);
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&d);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        snprintf(err, err_size, "expected a JSON object");
        rc = -1;
        goto out;
    }
    size_t n = (size_t)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
    out->v = calloc(n + 1, sizeof(*out->v));
    if (out->v == NULL)
        abort();
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const char *path = scalar(&d, p->key);
        if (path == NULL || strncmp(path, "/app-health/", 12) != 0) {
            snprintf(err, err_size, "%s: expected a key /app-health/<container>/<kind>",
                     path ? path : "(not a string)");
            rc = -1;
            goto out;
        }
        if (!parse_one(&d, path, p->value, &out->v[out->n], err, err_size)) {
            out->n++; /* disposed with the others */
            rc = -1;
            goto out;
        }
        out->n++;
    }
out:
    yaml_document_delete(&d);
    if (rc != 0)
        pt_app_probers_dispose(out);
    return rc;
}

void pt_app_probers_dispose(pt_app_probers_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].path);
        free(p->v[i].request);
    }
    free(p->v);
    memset(p, 0, sizeof(*p));
}

const pt_app_prober_t *pt_app_probers_find(const pt_app_probers_t *p, const char *path, size_t len)
{
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->v[i].path) == len && memcmp(p->v[i].path, path, len) == 0)
            return &p->v[i];
    return NULL;
}

struct pt_app_probe {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    const pt_app_prober_t *prober;
    pt_app_probe_cb cb; /* NULL once called or cancelled */
    void *arg;
    int open_handles; /* freed when both are closed */
    size_t got;
    char status_line[32];
};

static void on_close(uv_handle_t *h)
{
    pt_app_probe_t *p = h->data;
    if (--p->open_handles == 0)
        free(p);
}

/* Answers (once) and closes both handles. */
static void finish(pt_app_probe_t *p, int status, const char *reason)
{
    if (p->cb != NULL) {
        pt_app_probe_cb cb = p->cb;
        p->cb = NULL;
        cb(p->arg, status, reason);
    }
    if (!uv_is_closing((uv_handle_t *)&p->tcp)) {
        uv_close((uv_handle_t *)&p->tcp, on_close);
        uv_close((uv_handle_t *)&p->timer, on_close);
    }
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, 503, "app probe timed out\n");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pt_app_probe_t *p = h->data;
    *buf = uv_buf_init(p->status_line + p->got, (unsigned)(sizeof(p->status_line) - 1 - p->got));
}

/* "HTTP/1.x NNN" is all that is read: the kubelet counts 200..399 as success. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pt_app_probe_t *p = s->data;
    if (n < 0) {
        finish(p, 503, "app closed the connection before answering\n");
        return;
    }
    p->got += (size_t)n;
    if (p->got < 12 && p->got < sizeof(p->status_line) - 1)
        return;
    p->status_line[p->got] = '\0';
    int status = 0;
    if (strncmp(p->status_line, "HTTP/1.", 7) == 0 && p->status_line[8] == ' ')
        status = atoi(p->status_line + 9);
    if (status >= 200 && status < 400)
        finish(p, 200, NULL);
    else
        finish(p, 503, status ? "app answered an error status\n" : "app answered not HTTP\n");
}

static void on_written(uv_write_t *w, int status)
{
    if (status != 0)
        finish(w->data, 503, "cannot send the probe to the app\n");
}

static void on_connect(uv_connect_t *c, int status)
{
    pt_app_probe_t *p = c->data;
    if (status != 0) {
        finish(p, 503, "app port refused the connection\n");
        return;
    }
    if (p->prober->request == NULL) {
        finish(p, 200, NULL);
        return;
    }
    uv_buf_t b = uv_buf_init(p->prober->request, (unsigned)strlen(p->prober->request));
    p->write.data = p;
    if (uv_write(&p->write, (uv_stream_t *)&p->tcp, &b, 1, on_written) != 0 ||
        uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) != 0)
        finish(p, 503, "cannot send the probe to the app\n");
}

pt_app_probe_t *pt_app_probe_start(uv_loop_t *loop, const pt_app_prober_t *prober,
                                   pt_app_probe_cb cb, void *arg)
{
    pt_app_probe_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->prober = prober;
    p->cb = cb;
    p->arg = arg;
    uv_tcp_init(loop, &p->tcp);
    uv_timer_init(loop, &p->timer);
    p->tcp.data = p->timer.data = p->connect.data = p;
    p->open_handles = 2;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", prober->port, &sa);
    uv_timer_start(&p->timer, on_timeout, prober->timeout_ms, 0);
    if (uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&sa, on_connect) != 0) {
        p->cb = NULL;
        finish(p, 0, NULL);
        return NULL;
    }
    return p;
}

void pt_app_probe_cancel(pt_app_probe_t *p)
{
    p->cb = NULL;
    finish(p, 0, NULL);
}
