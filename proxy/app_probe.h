/* proxy/app_probe.h
 * The app's own Kubernetes probes, forwarded by the sidecar's health port. `petrel inject`
 * points an app container's HTTP and TCP probes at /app-health/<container>/<livez|readyz|
 * startupz> on 15021 (a kubelet's plaintext probe of the app's port would meet STRICT mTLS on
 * the inbound capture) and hands the originals to the sidecar in PETREL_APP_PROBERS, JSON:
 *   {"/app-health/web/livez": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP",
 *    "httpHeaders": [{"name": "x", "value": "y"}]}, "timeoutSeconds": 1},
 *    "/app-health/web/readyz": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 1}}
 * The health listener answers such a path by making the original probe to 127.0.0.1 (not
 * captured: loopback) on the main loop: 200 when it succeeds as the kubelet counts success
 * (an HTTP status 200..399, or a TCP connection), else 503 with the reason. */
#ifndef PT_APP_PROBE_H
#define PT_APP_PROBE_H

#include <stdint.h>
#include <uv.h>

typedef struct pt_app_prober {
    char *path;    /* /app-health/<container>/<kind>, as asked of the health port */
    uint16_t port; /* the app's port on 127.0.0.1 */
    char *request; /* the HTTP/1.1 request to send; NULL: a TCP probe (connect only) */
    uint64_t timeout_ms;
} pt_app_prober_t;

typedef struct pt_app_probers {
    pt_app_prober_t *v;
    size_t n;
} pt_app_probers_t;

/* Parses PETREL_APP_PROBERS' JSON into *out (owned; pt_app_probers_dispose frees it). Returns
 * 0, or -1 with a message in err (the key of the entry at fault). */
int pt_app_probers_parse(const char *json, pt_app_probers_t *out, char *err, size_t err_size);
void pt_app_probers_dispose(pt_app_probers_t *p);
/* The prober for path, or NULL. */
const pt_app_prober_t *pt_app_probers_find(const pt_app_probers_t *p, const char *path, size_t len);

typedef struct pt_app_probe pt_app_probe_t;
/* Called once with the answer for the health port: 200, or 503 and a reason (static text). */
typedef void (*pt_app_probe_cb)(void *arg, int status, const char *reason);

/* Starts probing the app on loop; prober must outlive the probe. Returns the probe, which
 * frees itself after cb; NULL when it could not start (cb not called). */
pt_app_probe_t *pt_app_probe_start(uv_loop_t *loop, const pt_app_prober_t *prober,
                                   pt_app_probe_cb cb, void *arg);
/* The asker went away: cb will not be called; the probe stops and frees itself. */
void pt_app_probe_cancel(pt_app_probe_t *probe);

#endif
