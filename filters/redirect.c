/* filters/redirect.c
 * The route's local answers: a VirtualService redirect (301 or its redirectCode, Location built
 * by proxy/route_action.c with the route's response headers) or directResponse (status and
 * body). Either replaces forwarding. */
#include "../proxy/route_action.h"
#include "filter.h"

static pt_filter_status_t redirect_request_headers(pt_stream_t *st, void *inst, pt_http_msg_t *head)
{
    (void)inst;
    (void)head;
    const pt_http_route_t *r = pt_stream_route(st);
    if (r == NULL)
        return PT_FILTER_CONTINUE;
    if (r->direct_status != 0) {
        pt_stream_respond(st, r->direct_status, r->direct_body ? r->direct_body : "", PT_FLAG_NONE);
        return PT_FILTER_RESPONDED;
    }
    if (r->redirect != NULL) {
        pt_route_action_redirect(st);
        return PT_FILTER_RESPONDED;
    }
    return PT_FILTER_CONTINUE;
}

const pt_filter_ops_t pt_filter_redirect_ops = {
    .name = "redirect",
    .on_request_headers = redirect_request_headers,
};
