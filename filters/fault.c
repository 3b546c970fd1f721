/* filters/fault.c
 * The VirtualService route's fault injection: fault.delay holds the request for fixedDelay
 * before it is routed (it holds no upstream connection meanwhile), then fault.abort answers
 * httpStatus (or grpcStatus, as a gRPC trailers-only reply) instead of forwarding, each for its
 * percentage of requests. The log flags say what happened: DI (delayed), FI (aborted), DI,FI
 * (both). With the Proxy's faultPerAttempt the abort is decided for each upstream attempt instead,
 * by the router (proxy/stream.c), so that a retry policy sees it. */
#include "../proxy/trace_export.h"
#include "../proxy/worker.h"
#include "filter.h"

typedef struct fault_instance {
    bool delayed; /* fault.delay fired: the request waited (flag DI) */
} fault_instance_t;

static pt_filter_status_t fault_request_headers(pt_stream_t *st, void *inst, pt_http_msg_t *head)
{
    (void)head;
    fault_instance_t *fi = inst;
    const pt_http_route_t *r = pt_stream_route(st);
    if (r == NULL || r->fault == NULL)
        return PT_FILTER_CONTINUE;
    const pt_http_fault_t *f = r->fault;
    pt_worker_t *w = st->worker;
    /* Called again once the delay is over: then only the abort is left to decide. */
    if (!fi->delayed && f->delay_ms > 0 && pt_fault_fires(f->delay_ppm, pt_worker_random(w))) {
        fi->delayed = true;
        pt_trace_stream_event(st, PT_TRACE_EVENT_FAULT_DELAY, (int64_t)f->delay_ms);
        pt_stream_resume_after(st, f->delay_ms);
        return PT_FILTER_PAUSE;
    }
    if (f->abort_status != 0 && !st->config->proxy.fault_per_attempt &&
        pt_fault_fires(f->abort_ppm, pt_worker_random(w))) {
        pt_trace_stream_event(st, PT_TRACE_EVENT_FAULT_ABORT,
                              f->is_grpc_abort ? f->abort_grpc_status : f->abort_status);
        if (f->is_grpc_abort)
            pt_stream_respond_grpc(st, f->abort_grpc_status, "fault filter abort", PT_FLAG_FI);
        else
            pt_stream_respond(st, f->abort_status, "fault filter abort", PT_FLAG_FI);
        return PT_FILTER_RESPONDED;
    }
    return PT_FILTER_CONTINUE;
}

/* Runs before the observers record the flag (on_log runs in reverse registry order). */
static void fault_log(pt_stream_t *st, void *inst)
{
    const fault_instance_t *fi = inst;
    if (!fi->delayed)
        return;
    if (st->flag == PT_FLAG_NONE)
        st->flag = PT_FLAG_DI;
    else if (st->flag == PT_FLAG_FI)
        st->flag = PT_FLAG_DI_FI;
}

const pt_filter_ops_t pt_filter_fault_ops = {
    .name = "fault",
    .instance_size = sizeof(fault_instance_t),
    .on_request_headers = fault_request_headers,
    .on_log = fault_log,
};
