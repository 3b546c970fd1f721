/* tests/unit/filters/authz.c
 * The authz filter's callback against a fake stream and policies loaded from YAML: a refused
 * request is answered 403 with flag RBAC and the matched policy as its details, and counted; an
 * allowed one goes on; no policy, or a sidecar's outbound request, is not checked. */
#include "test.h"

#include "fake_stream.h"
#include "filters/authz.c"
#include "lib/config_yaml.h"
#include "proxy/capture.h"

static const char *const deny_admin = "apiVersion: petrel.io/v1alpha1\n"
                                      "kind: Proxy\n"
                                      "metadata: {name: p}\n"
                                      "spec:\n"
                                      "  workload:\n"
                                      "    namespace: foo\n"
                                      "    labels: {app: web}\n"
                                      "---\n"
                                      "apiVersion: security.istio.io/v1\n"
                                      "kind: AuthorizationPolicy\n"
                                      "metadata: {name: no-admin, namespace: foo}\n"
                                      "spec:\n"
                                      "  action: DENY\n"
                                      "  rules: [{to: [{operation: {paths: [/admin*]}}]}]\n";

typedef struct fixture {
    pt_stream_t st;
    pt_conn_info_t conn;
    pt_worker_t worker;
    pt_http_msg_t head;
} fixture_t;

static fixture_t *fixture(pt_config_t *config, const char *path)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    fake_stream_init(&f.st, &f.conn, &f.worker, config, &f.head);
    f.head.method = pt_str("GET");
    f.head.path = pt_str(path);
    f.head.authority = pt_str("web.foo");
    strcpy(f.conn.peer_ip, "10.1.2.3");
    return &f;
}

static uint64_t counter(const pt_worker_t *w, pt_stat_t k)
{
    return atomic_load(&w->stats.v[k]);
}

TEST(deny_answers_403_with_the_policy_in_details)
{
    pt_config_t *c = config_from_yaml_ok("ap.yaml", deny_admin);
    fixture_t *f = fixture(c, "/admin/users");
    ASSERT_EQ(authz_request_headers(&f->st, NULL, &f->head), PT_FILTER_RESPONDED);
    ASSERT_EQ(fake.respond_status, 403);
    ASSERT_EQ(fake.respond_flag, PT_FLAG_RBAC);
    ASSERT_STREQ(fake.respond_body, "RBAC: access denied");
    ASSERT_STREQ(f->st.details,
                 "rbac_access_denied_matched_policy[ns[foo]-policy[no-admin]-rule[0]]");
    ASSERT_EQ(counter(&f->worker, PT_STAT_rbac_denied), 1u);
    ASSERT_EQ(fake.route_calls, 0); /* decided before any route is matched */
    pt_arena_dispose(&f->st.arena);
    pt_config_unref(c);
}

TEST(allowed_request_continues_and_is_counted)
{
    pt_config_t *c = config_from_yaml_ok("ap.yaml", deny_admin);
    fixture_t *f = fixture(c, "/public");
    ASSERT_EQ(authz_request_headers(&f->st, NULL, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.respond_status, 0);
    ASSERT(f->st.details == NULL);
    ASSERT_EQ(counter(&f->worker, PT_STAT_rbac_allowed), 1u);
    pt_arena_dispose(&f->st.arena);
    pt_config_unref(c);
}

TEST(outbound_sidecar_request_is_not_checked)
{
    pt_config_t *c = config_from_yaml_ok("ap.yaml", deny_admin);
    fixture_t *f = fixture(c, "/admin");
    pt_capture_t cap;
    memset(&cap, 0, sizeof(cap));
    cap.direction = PT_CAPTURE_OUTBOUND;
    f->conn.capture = &cap;
    ASSERT_EQ(authz_request_headers(&f->st, NULL, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(counter(&f->worker, PT_STAT_rbac_allowed) + counter(&f->worker, PT_STAT_rbac_denied),
              0u);
    pt_arena_dispose(&f->st.arena);
    pt_config_unref(c);
}

TEST(no_policy_continues_uncounted)
{
    pt_config_t *c = config_from_yaml_ok("p.yaml", "apiVersion: petrel.io/v1alpha1\n"
                                                   "kind: Proxy\n"
                                                   "metadata: {name: p}\n"
                                                   "spec: {}\n");
    ASSERT(c->authz == NULL);
    fixture_t *f = fixture(c, "/admin");
    ASSERT_EQ(authz_request_headers(&f->st, NULL, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(counter(&f->worker, PT_STAT_rbac_allowed), 0u);
    pt_arena_dispose(&f->st.arena);
    pt_config_unref(c);
}
