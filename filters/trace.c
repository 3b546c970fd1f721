/* filters/trace.c
 * Petrel's server span of an HTTP exchange, when spec.tracing is on: started when the request
 * head arrives (its context read from the request's trace headers), exported when the stream
 * ends. proxy/trace.c parses and writes the trace headers (the request writer sends the
 * context upstream), proxy/trace_export.c keeps the span and exports it. */
#include "../proxy/trace_export.h"
#include "filter.h"

static pt_filter_status_t trace_request_headers(pt_stream_t *st, void *inst, pt_http_msg_t *head)
{
    (void)inst;
    (void)head;
    if (st->config->proxy.tracing.enabled)
        pt_trace_stream_start(st);
    return PT_FILTER_CONTINUE;
}

static void trace_log(pt_stream_t *st, void *inst)
{
    (void)inst;
    pt_trace_finish_stream(st);
}

const pt_filter_ops_t pt_filter_trace_ops = {
    .name = "trace",
    .on_request_headers = trace_request_headers,
    .on_log = trace_log,
};
