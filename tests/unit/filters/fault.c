/* tests/unit/filters/fault.c
 * The fault filter's callbacks against a fake stream: the delay pauses the chain and is not
 * drawn again when the stream calls the filter back, the abort answers with flag FI, on_log
 * turns the flags into DI / DI,FI, a grpcStatus abort answers a gRPC trailers-only reply, and
 * faultPerAttempt leaves the abort to the router. */
#include "test.h"

#include "fake_stream.h"
#include "filters/fault.c"

typedef struct fixture {
    pt_stream_t st;
    pt_conn_info_t conn;
    pt_worker_t worker;
    pt_config_t config;
    pt_http_msg_t head;
    fault_instance_t inst;
} fixture_t;

static fixture_t *fixture(const pt_http_route_t *route)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    fake_stream_init(&f.st, &f.conn, &f.worker, &f.config, &f.head);
    fake.route = route;
    return &f;
}

TEST(delay_pauses_then_abort_answers_on_the_call_back)
{
    pt_http_fault_t fault = {.delay_ms = 50,
                             .delay_ppm = PT_FAULT_SCALE,
                             .abort_status = 503,
                             .abort_ppm = PT_FAULT_SCALE};
    pt_http_route_t route = {.fault = &fault};
    fixture_t *f = fixture(&route);
    ASSERT_EQ(pt_filter_fault_ops.instance_size, sizeof(fault_instance_t));
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_PAUSE);
    ASSERT_EQ(fake.resume_after_ms, 50u);
    ASSERT_EQ(fake.respond_status, 0);
    ASSERT(f->inst.delayed);
    /* The stream calls the filter again when the delay is over: no second delay. */
    fake.resume_after_ms = 0;
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_RESPONDED);
    ASSERT_EQ(fake.resume_after_ms, 0u);
    ASSERT_EQ(fake.respond_status, 503);
    ASSERT_EQ(fake.respond_flag, PT_FLAG_FI);
    ASSERT_STREQ(fake.respond_body, "fault filter abort");
    ASSERT_EQ(fake.trace_events, 2);
    fault_log(&f->st, &f->inst);
    ASSERT_EQ(f->st.flag, PT_FLAG_DI_FI);
    pt_arena_dispose(&f->st.arena);
}

TEST(grpc_status_abort_answers_trailers_only)
{
    pt_http_fault_t fault = {.abort_status = 200,
                             .abort_ppm = PT_FAULT_SCALE,
                             .is_grpc_abort = true,
                             .abort_grpc_status = 14};
    pt_http_route_t route = {.fault = &fault};
    fixture_t *f = fixture(&route);
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_RESPONDED);
    ASSERT_EQ(fake.grpc_status, 14);
    ASSERT_EQ(fake.respond_flag, PT_FLAG_FI);
    ASSERT_STREQ(fake.respond_body, "fault filter abort");
    pt_arena_dispose(&f->st.arena);
}

TEST(delay_alone_flags_di_and_continues)
{
    pt_http_fault_t fault = {.delay_ms = 7, .delay_ppm = PT_FAULT_SCALE};
    pt_http_route_t route = {.fault = &fault};
    fixture_t *f = fixture(&route);
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_PAUSE);
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    fault_log(&f->st, &f->inst);
    ASSERT_EQ(f->st.flag, PT_FLAG_DI);
    /* Another outcome (no healthy upstream) keeps its own flag, as Envoy logs it. */
    f->st.flag = PT_FLAG_UH;
    fault_log(&f->st, &f->inst);
    ASSERT_EQ(f->st.flag, PT_FLAG_UH);
    pt_arena_dispose(&f->st.arena);
}

TEST(zero_percent_never_fires)
{
    pt_http_fault_t fault = {.delay_ms = 50, .delay_ppm = 0, .abort_status = 500, .abort_ppm = 0};
    pt_http_route_t route = {.fault = &fault};
    fixture_t *f = fixture(&route);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.resume_after_ms, 0u);
    ASSERT_EQ(fake.respond_status, 0);
    fault_log(&f->st, &f->inst);
    ASSERT_EQ(f->st.flag, PT_FLAG_NONE);
    pt_arena_dispose(&f->st.arena);
}

TEST(per_attempt_abort_is_left_to_the_router)
{
    pt_http_fault_t fault = {.abort_status = 503, .abort_ppm = PT_FAULT_SCALE};
    pt_http_route_t route = {.fault = &fault};
    fixture_t *f = fixture(&route);
    f->config.proxy.fault_per_attempt = true;
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.respond_status, 0);
    pt_arena_dispose(&f->st.arena);
}

TEST(no_route_or_no_fault_continues)
{
    fixture_t *f = fixture(NULL);
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.route_calls, 1);
    pt_http_route_t route = {0};
    fake.route = &route;
    ASSERT_EQ(fault_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.respond_status, 0);
    pt_arena_dispose(&f->st.arena);
}
