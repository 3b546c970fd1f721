/* tests/unit/config/messages.c
 * The help in config errors, each message checked exactly: did-you-mean for unknown fields and
 * kinds (the one suggestion helper of config/schema.c, alone and through loads), the list of
 * kinds Petrel reads, a tab in indentation, and Istio's fields for a `circuitBreaker`. */
#include <string.h>

#include "config/config.h"
#include "config/schema.h"
#include "load_helpers.h"
#include "test.h"

/* The suggestion for word among the NULL-terminated names, or NULL. */
static const char *suggest(const char *word, const char *const *names)
{
    pt_cfg_suggest_t s;
    pt__cfg_suggest_init(&s, word);
    for (; *names != NULL; names++)
        pt__cfg_suggest_add(&s, *names);
    return s.best;
}

/* Expects the load to fail with exactly these error lines, in order, and no others. */
static void expect_errors(const char *file, const char *yaml, const char *const *lines)
{
    pt_config_errors_t e = {0};
    ASSERT(load_str(file, yaml, &e) == NULL);
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

TEST(suggestion_helper)
{
    static const char *const fields[] = {"destination", "weight", "headers", "host",
                                         "port",        "ports",  NULL};
    ASSERT_STREQ(suggest("destinaton", fields), "destination");  /* a letter left out */
    ASSERT_STREQ(suggest("weigth", fields), "weight");           /* two letters swapped */
    ASSERT_STREQ(suggest("Destination", fields), "destination"); /* case only */
    ASSERT_STREQ(suggest("destnaton", fields), "destination");   /* two edits, long word */
    ASSERT_STREQ(suggest("hots", fields), "host");               /* the closest, first on ties */
    ASSERT_STREQ(suggest("portz", fields), "port");
    ASSERT(suggest("dstntn", fields) == NULL); /* five edits: not close */
    ASSERT(suggest("hsts", fields) == NULL);   /* two edits are too many for a short word */
    ASSERT(suggest("xy", fields) == NULL);     /* too short to guess */
    ASSERT(suggest("", fields) == NULL);
    static const char *const kinds[] = {"Proxy", "Gateway", "VirtualService", NULL};
    ASSERT_STREQ(suggest("VirtualServise", kinds), "VirtualService");
    ASSERT_STREQ(suggest("virtualservice", kinds), "VirtualService");
    ASSERT_STREQ(suggest("GATEWAY", kinds), "Gateway");
    ASSERT(suggest("Deployment", kinds) == NULL);
    /* Words longer than any name are not compared (and cost nothing). */
    char long_word[200];
    memset(long_word, 'a', sizeof(long_word) - 1);
    long_word[sizeof(long_word) - 1] = '\0';
    ASSERT(suggest(long_word, kinds) == NULL);

    pt_cfg_suggest_t s;
    char buf[64];
    pt__cfg_suggest_init(&s, "weigth");
    ASSERT_STREQ(pt__cfg_suggest_text(&s, buf, sizeof(buf)), "");
    pt__cfg_suggest_add(&s, "weight");
    ASSERT_STREQ(pt__cfg_suggest_text(&s, buf, sizeof(buf)), "; did you mean \"weight\"?");
}

TEST(unknown_fields_suggest_the_closest)
{
    static const char *const want[] = {
        "vs.yaml:9:7: spec.http[0].route[0].destinaton: unknown field; did you mean "
        "\"destination\"?",
        "vs.yaml:10:7: spec.http[0].route[0].weigth: unknown field; did you mean \"weight\"?",
        "vs.yaml:11:7: spec.http[0].route[0].bogus: unknown field",
        "vs.yaml:9:7: spec.http[0].route[0].destination: required", NULL};
    expect_errors("vs.yaml",
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualService\n"
                  "metadata: {name: reviews}\n"
                  "spec:\n"
                  "  hosts: [reviews.local]\n"
                  "  gateways: [mesh]\n"
                  "  http:\n"
                  "  - route:\n"
                  "    - destinaton: {host: reviews.local}\n"
                  "      weigth: 100\n"
                  "      bogus: 1\n",
                  want);
    /* Inside a sub-table Petrel checks but does not enforce (config/kind_unenforced.c). */
    static const char *const want_sub[] = {
        "dr.yaml:7:14: spec.trafficPolicy.tunnel.protocl: unknown field; did you mean "
        "\"protocol\"?",
        NULL};
    expect_errors("dr.yaml",
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: r}\n"
                  "spec:\n"
                  "  host: reviews.local\n"
                  "  trafficPolicy:\n"
                  "    tunnel: {protocl: CONNECT, targetHost: a, targetPort: 1}\n",
                  want_sub);
}

TEST(unknown_kind_lists_the_kinds)
{
    static const char *const want[] = {
        "k.yaml:2:1: kind: unknown kind \"VirtualServise\"; did you mean \"VirtualService\"? "
        "(Petrel reads Proxy, ChaosProxy, Gateway, VirtualService, ServiceEntry, DestinationRule, "
        "WorkloadEntry, AuthorizationPolicy, PeerAuthentication, and Lists of them)",
        "k.yaml:5:1: kind: unknown kind \"virtualservice\"; did you mean \"VirtualService\"? "
        "(Petrel reads Proxy, ChaosProxy, Gateway, VirtualService, ServiceEntry, DestinationRule, "
        "WorkloadEntry, AuthorizationPolicy, PeerAuthentication, and Lists of them)",
        /* Kinds Petrel knows of without enforcing them are suggested too. */
        "k.yaml:8:1: kind: unknown kind \"SideCar\"; did you mean \"Sidecar\"? (Petrel reads "
        "Proxy, ChaosProxy, Gateway, VirtualService, ServiceEntry, DestinationRule, WorkloadEntry, "
        "AuthorizationPolicy, PeerAuthentication, and Lists of them)",
        "k.yaml:11:1: kind: unknown kind \"Deployment\" (Petrel reads Proxy, ChaosProxy, Gateway, "
        "VirtualService, ServiceEntry, DestinationRule, WorkloadEntry, AuthorizationPolicy, "
        "PeerAuthentication, and Lists of them)",
        NULL};
    expect_errors("k.yaml",
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: VirtualServise\n"
                  "metadata: {name: a}\n"
                  "---\n"
                  "kind: virtualservice\n"
                  "metadata: {name: b}\n"
                  "---\n"
                  "kind: SideCar\n"
                  "metadata: {name: c}\n"
                  "---\n"
                  "kind: Deployment\n"
                  "metadata: {name: d}\n",
                  want);
}

TEST(tab_in_indentation)
{
    static const char *const at_start[] = {
        "t.yaml:5:1: tab character in indentation: YAML indents with spaces", NULL};
    expect_errors("t.yaml",
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: Gateway\n"
                  "metadata:\n"
                  "  name: gw\n"
                  "\tnamespace: edge\n",
                  at_start);
    /* After spaces, where libyaml says "a tab character that violates indentation", and with
     * CRLF line ends. */
    static const char *const after_spaces[] = {
        "t.yaml:3:3: tab character in indentation: YAML indents with spaces", NULL};
    expect_errors("t.yaml", "metadata:\r\n  name: gw\r\n  \tnamespace: edge\r\n", after_spaces);
    /* A tab between a key and its value is YAML: no error of that kind. */
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str(
        "t.yaml", "kind:\tProxy\napiVersion: petrel.io/v1alpha1\nmetadata: {name: p}\n", &e);
    ASSERT(c != NULL);
    ASSERT_EQ(e.n, 0);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
    /* Other syntax errors keep libyaml's words. */
    static const char *const other[] = {
        "t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
        "sequence",
        NULL};
    expect_errors("t.yaml", "a: [b\n", other);
}

TEST(circuit_breaker_points_at_istio_fields)
{
#define CB_HINT                                                                                    \
    "unknown field: Istio has no circuitBreaker; use connectionPool (connection and request "      \
    "limits) and outlierDetection (ejecting failing endpoints)"
    static const char *const want[] = {
        /* Where Istio has no connectionPool and outlierDetection, an unknown field like any
         * other (reported first: spec's own keys are checked before what they hold). */
        "dr.yaml:16:3: spec.circuitBreaker: unknown field",
        "dr.yaml:7:5: spec.trafficPolicy.circuitBreaker: " CB_HINT,
        "dr.yaml:10:7: spec.trafficPolicy.portLevelSettings[0].circuitBreaker: " CB_HINT,
        "dr.yaml:15:7: spec.subsets[0].trafficPolicy.circuitBreaker: " CB_HINT, NULL};
#undef CB_HINT
    expect_errors("dr.yaml",
                  "apiVersion: networking.istio.io/v1\n"
                  "kind: DestinationRule\n"
                  "metadata: {name: reviews}\n"
                  "spec:\n"
                  "  host: reviews.local\n"
                  "  trafficPolicy:\n"
                  "    circuitBreaker: {maxConnections: 10}\n"
                  "    portLevelSettings:\n"
                  "    - port: {number: 80}\n"
                  "      circuitBreaker: {maxConnections: 10}\n"
                  "  subsets:\n"
                  "  - name: v1\n"
                  "    labels: {version: v1}\n"
                  "    trafficPolicy:\n"
                  "      circuitBreaker: {maxConnections: 10}\n"
                  "  circuitBreaker: {}\n",
                  want);
}
