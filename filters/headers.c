/* filters/headers.c
 * The route's response header mutations (VirtualService headers.response, destination level
 * then route level; proxy/route_action.c applies them). The request's mutations are applied by
 * the request writer (pt_stream_request_head), which serves every attempt and the mirror's
 * copies. */
#include "../proxy/route_action.h"
#include "filter.h"

static void headers_response_headers(pt_stream_t *st, void *inst, pt_http_msg_t *head)
{
    (void)inst;
    pt_route_action_response_headers(st, head);
}

const pt_filter_ops_t pt_filter_headers_ops = {
    .name = "headers",
    .on_response_headers = headers_response_headers,
};
