/* tests/fuzz/fuzz_chaos_api.c
 * libFuzzer driver for the Toxiproxy-compatible API (filters/chaos/api.c) and its JSON parser
 * (filters/chaos/json.c), which read peer input. The first byte of the input picks an endpoint
 * and method; the rest is the request body. Each input runs on a fresh store holding one
 * disabled proxy "p" with one toxic "t" and a route "vs/r" with one HTTP toxic "h" (so no socket is
 * opened unless the input asks for a listener), resolving addresses only (no name lookups). Checks
 * that every answer is one of the API's statuses and that every JSON answer parses back with the
 * strict parser. */
#include <llhttp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/chaos/json.h"
#include "filters/chaos/store.h"
#include "proxy/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    pt_log_set_level(PT_LOG_ERROR); /* a proxy made per input is no news */
    return 0;
}

static void publish(void *arg, pt_chaos_snapshot_t *snap)
{
    pt_chaos_snapshot_unref(snap);
}

static void serve(pt_chaos_store_t *st, int method, const char *path, const char *body, size_t len)
{
    int status;
    char *out;
    size_t out_len;
    const char *type;
    pt_chaos_api_serve(st, method, path, strlen(path), body, len, &status, &out, &out_len, &type);
    if (status != 200 && status != 201 && status != 204 && status != 400 && status != 404 &&
        status != 405 && status != 409 && status != 500)
        abort();
    if (out_len > 0 && strcmp(type, "application/json") == 0) {
        pt_arena_t a;
        pt_arena_init(&a, 4096);
        char err[256];
        if (pt_json_parse(&a, out, out_len, err, sizeof(err)) == NULL)
            abort(); /* the API wrote JSON its own parser refuses */
        pt_arena_dispose(&a);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        int method;
        const char *path;
    } routes[] = {
        {HTTP_POST, "/proxies"},
        {HTTP_POST, "/populate"},
        {HTTP_POST, "/proxies/p"},
        {HTTP_POST, "/proxies/p/toxics"},
        {HTTP_POST, "/proxies/p/toxics/t"},
        {HTTP_GET, "/proxies"},
        {HTTP_POST, "/routes/vs/r/toxics"},
        {HTTP_POST, "/routes/vs/r/toxics/h"},
        {HTTP_DELETE, "/routes/vs/r/toxics/h"},
    };
    if (size == 0)
        return 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pt_chaos_store_t *st = pt_chaos_store_new(&loop, publish, NULL);
    st->is_numeric_only = true;
    static const char setup_proxy[] = "{\"name\":\"p\",\"listen\":\"127.0.0.1:0\",\"upstream\":"
                                      "\"127.0.0.1:1\",\"enabled\":false}";
    static const char setup_toxic[] = "{\"name\":\"t\",\"type\":\"latency\"}";
    serve(st, HTTP_POST, "/proxies", setup_proxy, sizeof(setup_proxy) - 1);
    serve(st, HTTP_POST, "/proxies/p/toxics", setup_toxic, sizeof(setup_toxic) - 1);
    static const char setup_http[] = "{\"name\":\"h\",\"type\":\"http_delay\"}";
    serve(st, HTTP_POST, "/routes/vs/r/toxics", setup_http, sizeof(setup_http) - 1);
    size_t r = data[0] % (sizeof(routes) / sizeof(routes[0]));
    serve(st, routes[r].method, routes[r].path, (const char *)data + 1, size - 1);
    serve(st, HTTP_GET, "/proxies", NULL, 0); /* the state after it still serializes */
    serve(st, HTTP_GET, "/routes", NULL, 0);
    pt_chaos_store_free(st);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
