/* filters/https_redirect.c
 * A Gateway server's tls.httpsRedirect: a plain-HTTP request for one of its hosts is answered
 * 301 to https:// before any route or policy (proxy/tls_stream.c says which hosts). */
#include "../proxy/route_action.h"
#include "../proxy/tls_stream.h"
#include "filter.h"

static pt_filter_status_t https_redirect_request_headers(pt_stream_t *st, void *inst,
                                                         pt_http_msg_t *head)
{
    (void)inst;
    if (st->listener == NULL || st->listener->protocol != PT_LISTENER_HTTP ||
        !pt_tls_stream_is_https_redirect(st->listener, head))
        return PT_FILTER_CONTINUE;
    st->route = &pt_https_redirect_route; /* what the access log names */
    st->is_route_cached = true;
    pt_route_action_redirect(st);
    return PT_FILTER_RESPONDED;
}

const pt_filter_ops_t pt_filter_https_redirect_ops = {
    .name = "https_redirect",
    .on_request_headers = https_redirect_request_headers,
};
