/* tests/unit/proxy/app_probe.c: PETREL_APP_PROBERS parsing (proxy/app_probe.c): the requests
 * built from httpGet probes, TCP probes, and what is refused (a header that could split the
 * request, a probe with no port, a key that is not /app-health/...). The probes themselves run
 * against real apps in tests/e2e/test_83_sidecar_lifecycle.py. */
#include "test.h"

#include "proxy/app_probe.h"

TEST(http_and_tcp_probers_parse)
{
    pt_app_probers_t p;
    char err[256] = "";
    int rc = pt_app_probers_parse(
        "{\"/app-health/web/livez\":{\"httpGet\":{\"path\":\"/healthz?x=1\",\"port\":8080,"
        "\"scheme\":\"HTTP\",\"httpHeaders\":[{\"name\":\"Host\",\"value\":\"web.local\"},"
        "{\"name\":\"x-a\",\"value\":\"b\"}]},\"timeoutSeconds\":3},"
        "\"/app-health/db/readyz\":{\"tcpSocket\":{\"port\":5432}}}",
        &p, err, sizeof(err));
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(p.n, 2);
    const pt_app_prober_t *live = pt_app_probers_find(&p, "/app-health/web/livez", 21);
    ASSERT(live != NULL);
    ASSERT_EQ(live->port, 8080);
    ASSERT_EQ(live->timeout_ms, 3000);
    ASSERT_STREQ(live->request, "GET /healthz?x=1 HTTP/1.1\r\nHost: web.local\r\nx-a: b\r\n"
                                "User-Agent: kube-probe/petrel\r\nConnection: close\r\n\r\n");
    const pt_app_prober_t *db = pt_app_probers_find(&p, "/app-health/db/readyz", 21);
    ASSERT(db != NULL && db->request == NULL && db->port == 5432 && db->timeout_ms == 1000);
    ASSERT(pt_app_probers_find(&p, "/app-health/db/livez", 20) == NULL);
    pt_app_probers_dispose(&p);
}

TEST(bad_probers_are_refused_with_the_entry_named)
{
    static const struct {
        const char *json, *err;
    } cases[] = {
        {"{\"/app-health/a/livez\":{\"httpGet\":{\"path\":\"/\",\"port\":80,\"httpHeaders\":"
         "[{\"name\":\"x\",\"value\":\"a\\r\\nx-evil: 1\"}]}}}",
         "/app-health/a/livez: httpGet: a path starting with / and headers of printable text"},
        {"{\"/app-health/a/livez\":{\"httpGet\":{\"path\":\"/a b\",\"port\":80}}}",
         "/app-health/a/livez: httpGet: a path starting with / and headers of printable text"},
        {"{\"/app-health/a/readyz\":{\"tcpSocket\":{}}}",
         "/app-health/a/readyz: expected httpGet or tcpSocket with a port (1..65535)"},
        {"{\"/healthz\":{\"tcpSocket\":{\"port\":1}}}",
         "/healthz: expected a key /app-health/<container>/<kind>"},
        {"[1]", "expected a JSON object"},
        {"{\"a\": [", "not JSON: "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pt_app_probers_t p;
        char err[256] = "";
        ASSERT_EQ(pt_app_probers_parse(cases[i].json, &p, err, sizeof(err)), -1);
        ASSERT_EQ(strncmp(err, cases[i].err, strlen(cases[i].err)), 0);
        ASSERT_EQ(p.n, 0);
    }
}
