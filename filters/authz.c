/* filters/authz.c
 * AuthorizationPolicy on HTTP requests: the snapshot's policies (proxy/authz.h evaluates them,
 * for connections too) decide before the route is matched, and a refused request is answered
 * 403 "RBAC: access denied" with flag RBAC and the matched policy in the response details. */
#include "../proxy/authz.h"
#include "../proxy/capture.h"
#include "filter.h"

static pt_filter_status_t authz_request_headers(pt_stream_t *st, void *inst, pt_http_msg_t *head)
{
    (void)inst;
    const pt_authz_t *az = st->config->authz;
    if (az == NULL)
        return PT_FILTER_CONTINUE;
    const pt_conn_info_t *c = st->conn;
    /* A sidecar authorizes what comes in, never what its app sends out; and a captured
     * request's port is the app's, not the capture listener's. */
    if (c->capture != NULL && c->capture->direction == PT_CAPTURE_OUTBOUND)
        return PT_FILTER_CONTINUE;
    pt_authz_request_t req = {
        .head = head,
        .principal = c->peer_principal,
        .dest_port = c->capture != NULL ? c->capture->original_port : c->listener_port,
        .tcp = c->tcp,
        .peer_ip = c->peer_ip,
        .arena = &st->arena,
    };
    pt_authz_result_t res;
    if (pt_authz_request_allows(c->worker, az, &req, &res))
        return PT_FILTER_CONTINUE;
    char details[256];
    st->details = pt_arena_strdup(&st->arena, pt_authz_details(&res, details, sizeof(details)));
    pt_stream_respond(st, 403, "RBAC: access denied", PT_FLAG_RBAC);
    return PT_FILTER_RESPONDED;
}

const pt_filter_ops_t pt_filter_authz_ops = {
    .name = "authz",
    .on_request_headers = authz_request_headers,
};
