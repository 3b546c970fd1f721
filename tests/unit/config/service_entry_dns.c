/* tests/unit/config/service_entry_dns.c
 * How compile turns ServiceEntries with resolution DNS / DNS_ROUND_ROBIN and WorkloadEntries
 * into endpoints, with a fake resolver behind pt_config_set_dns_lookup(): every address of a
 * name (DNS), the first one (DNS_ROUND_ROBIN), the host itself without endpoints, none
 * before an answer, WorkloadEntries selected by labels in the ServiceEntry's namespace only,
 * and the names recorded for the resolver. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "load_helpers.h"
#include "test.h"

static struct sockaddr_storage answer[3];

/* "multi.test" has three addresses, "one.test" and "svc.test" one; nothing else resolves. */
static size_t fake_lookup(void *arg, const char *name, const struct sockaddr_storage **addrs)
{
    static const char *const ips[] = {"10.1.0.1", "10.1.0.2", "10.1.0.3"};
    size_t n = strcmp(name, "multi.test") == 0                                  ? 3
               : strcmp(name, "one.test") == 0 || strcmp(name, "svc.test") == 0 ? 1
                                                                                : 0;
    for (size_t i = 0; i < n; i++) {
        memset(&answer[i], 0, sizeof(answer[i]));
        struct sockaddr_in *in = (struct sockaddr_in *)&answer[i];
        in->sin_family = AF_INET;
        inet_pton(AF_INET, ips[i + (strcmp(name, "svc.test") == 0 ? 2 : 0)], &in->sin_addr);
    }
    *addrs = answer;
    (void)arg;
    return n;
}

#define HEAD                                                                                       \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: Gateway\n"                                                                              \
    "metadata: {name: gw}\n"                                                                       \
    "spec:\n"                                                                                      \
    "  servers:\n"                                                                                 \
    "  - port: {number: 8080, protocol: HTTP, name: http}\n"                                       \
    "    hosts: ['*']\n"                                                                           \
    "---\n"                                                                                        \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: VirtualService\n"                                                                       \
    "metadata: {name: vs}\n"                                                                       \
    "spec:\n"                                                                                      \
    "  hosts: ['*']\n"                                                                             \
    "  gateways: [gw]\n"                                                                           \
    "  http:\n"                                                                                    \
    "  - route: [{destination: {host: svc.test, port: {number: 80}}}]\n"                           \
    "---\n"                                                                                        \
    "apiVersion: networking.istio.io/v1\n"                                                         \
    "kind: ServiceEntry\n"                                                                         \
    "metadata: {name: svc}\n"                                                                      \
    "spec:\n"                                                                                      \
    "  hosts: [svc.test]\n"                                                                        \
    "  ports: [{number: 80, name: http, targetPort: 8000}]\n"

static pt_config_t *load_with_dns(const char *yaml)
{
    pt_config_errors_t e = {0};
    pt_config_set_dns_lookup(fake_lookup, NULL);
    pt_config_t *c = load_str("se.yaml", yaml, &e);
    pt_config_set_dns_lookup(NULL, NULL);
    if (c == NULL)
        dump(&e);
    pt_config_errors_dispose(&e);
    return c;
}

static bool has_endpoint(const pt_cluster_t *cl, const char *address, uint16_t port)
{
    for (size_t i = 0; i < cl->n_endpoints; i++)
        if (strcmp(cl->endpoints[i].address, address) == 0 && cl->endpoints[i].port == port) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&cl->endpoints[i].addr;
            return in->sin_port == htons(port) && in->sin_addr.s_addr == inet_addr(address);
        }
    fprintf(stderr, "    no endpoint %s:%u among %zu\n", address, (unsigned)port, cl->n_endpoints);
    return false;
}

TEST(dns_every_address_of_every_name)
{
    pt_config_t *c = load_with_dns(HEAD "  resolution: DNS\n"
                                        "  endpoints:\n"
                                        "  - {address: multi.test, weight: 3}\n"
                                        "  - {address: 192.0.2.9, ports: {http: 9000}}\n"
                                        "  - {address: nowhere.test}\n");
    ASSERT(c != NULL);
    const pt_cluster_t *cl = c->clusters[0];
    ASSERT_EQ(cl->n_endpoints, 4u);
    ASSERT(has_endpoint(cl, "10.1.0.1", 8000));
    ASSERT(has_endpoint(cl, "10.1.0.3", 8000));
    ASSERT(has_endpoint(cl, "192.0.2.9", 9000));
    ASSERT_EQ(cl->endpoints[0].weight, 3u);
    ASSERT_STREQ(cl->endpoints[0].hostname, "multi.test");
    ASSERT(cl->endpoints[3].hostname == NULL); /* an address, not resolved */
    ASSERT_EQ(c->n_dns_hosts, 2u);
    ASSERT_STREQ(c->dns_hosts[0], "multi.test");
    ASSERT_STREQ(c->dns_hosts[1], "nowhere.test");
    ASSERT_STREQ(c->dns_host_services[1], "default/svc");
    pt_config_unref(c);
}

TEST(dns_round_robin_takes_one_address)
{
    pt_config_t *c = load_with_dns(HEAD "  resolution: DNS_ROUND_ROBIN\n"
                                        "  endpoints: [{address: multi.test}]\n");
    ASSERT(c != NULL);
    ASSERT_EQ(c->clusters[0]->n_endpoints, 1u);
    ASSERT(has_endpoint(c->clusters[0], "10.1.0.1", 8000));
    pt_config_unref(c);
}

TEST(dns_without_endpoints_resolves_the_host)
{
    pt_config_t *c = load_with_dns(HEAD "  resolution: DNS\n");
    ASSERT(c != NULL);
    ASSERT_EQ(c->clusters[0]->n_endpoints, 1u);
    ASSERT(has_endpoint(c->clusters[0], "10.1.0.3", 8000));
    ASSERT_EQ(c->n_dns_hosts, 1u);
    ASSERT_STREQ(c->dns_hosts[0], "svc.test");
    pt_config_unref(c);
}

TEST(no_answer_yet_no_endpoints)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("se.yaml", HEAD "  resolution: DNS\n", &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->clusters[0]->n_endpoints, 0u);
    ASSERT_EQ(c->n_dns_hosts, 1u);
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}

TEST(workload_entries_selected_in_the_same_namespace)
{
    pt_config_t *c = load_with_dns(HEAD "  resolution: DNS\n"
                                        "  workloadSelector: {labels: {app: vm}}\n"
                                        "---\n"
                                        "apiVersion: networking.istio.io/v1\n"
                                        "kind: WorkloadEntry\n"
                                        "metadata: {name: a}\n"
                                        "spec: {address: 192.0.2.1, labels: {app: vm, v: '1'}, "
                                        "weight: 5}\n"
                                        "---\n"
                                        "apiVersion: networking.istio.io/v1\n"
                                        "kind: WorkloadEntry\n"
                                        "metadata: {name: b}\n"
                                        "spec: {address: one.test, labels: {app: vm}, "
                                        "ports: {http: 7000}}\n"
                                        "---\n"
                                        "apiVersion: networking.istio.io/v1\n"
                                        "kind: WorkloadEntry\n"
                                        "metadata: {name: c}\n"
                                        "spec: {address: 192.0.2.3, labels: {app: db}}\n"
                                        "---\n"
                                        "apiVersion: networking.istio.io/v1\n"
                                        "kind: WorkloadEntry\n"
                                        "metadata: {name: d, namespace: other}\n"
                                        "spec: {address: 192.0.2.4, labels: {app: vm}}\n");
    ASSERT(c != NULL);
    const pt_cluster_t *cl = c->clusters[0];
    ASSERT_EQ(cl->n_endpoints, 2u);
    ASSERT(has_endpoint(cl, "192.0.2.1", 8000));
    ASSERT(has_endpoint(cl, "10.1.0.1", 7000));
    ASSERT_EQ(cl->endpoints[0].weight, 5u);
    pt_config_unref(c);
}

TEST(static_selector_skips_names_with_a_warning)
{
    pt_config_errors_t e = {0};
    pt_config_t *c = load_str("se.yaml",
                              HEAD "  resolution: STATIC\n"
                                   "  workloadSelector: {labels: {app: vm}}\n"
                                   "---\n"
                                   "apiVersion: networking.istio.io/v1\n"
                                   "kind: WorkloadEntry\n"
                                   "metadata: {name: b}\n"
                                   "spec: {address: one.test, labels: {app: vm}, network: n1}\n",
                              &e);
    ASSERT(c != NULL);
    ASSERT_EQ(c->clusters[0]->n_endpoints, 0u);
    ASSERT(has_warning_containing(&e, "(resolution STATIC): WorkloadEntry ignored"));
    ASSERT(has_warning_containing(&e, "spec.network"));
    pt_config_unref(c);
    pt_config_errors_dispose(&e);
}
