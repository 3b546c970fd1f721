/* tests/unit/filters/fake_stream.h
 * A fake of the stream API a filter calls (proxy/stream.h), for unit tests of a filter's
 * callbacks: the test includes the filter's .c and this header, builds a stream on the stack
 * with fake_stream_init(), and reads what the filter asked for in `fake`. The engine's
 * stream.c is not linked, so each fake records instead of acting. Include after test.h. */
#ifndef PT_TEST_FAKE_STREAM_H
#define PT_TEST_FAKE_STREAM_H

#include <string.h>

#include "proxy/stream.h"
#include "proxy/trace_export.h"
#include "proxy/worker.h"

static struct {
    const pt_http_route_t *route; /* what pt_stream_route answers */
    int route_calls;
    uint64_t resume_after_ms; /* the last pt_stream_resume_after; 0: none */
    int respond_status;       /* the last pt_stream_respond; 0: none */
    pt_flag_t respond_flag;
    const char *respond_body;
    int trace_events;
    int grpc_status; /* the last pt_stream_respond_grpc; 0: none */
    int resets;      /* pt_stream_reset calls */
    uint16_t body_filters_asked; /* pt_stream_filter_body calls */
    char sent[1 << 16];          /* what pt_stream_send_response_data passed on */
    size_t sent_len;
    int sends;
} fake;

/* st with its connection, worker and config; the request is head. */
static void fake_stream_init(pt_stream_t *st, pt_conn_info_t *c, pt_worker_t *w, pt_config_t *config,
                             pt_http_msg_t *head)
{
    memset(&fake, 0, sizeof(fake));
    memset(st, 0, sizeof(*st));
    memset(c, 0, sizeof(*c));
    memset(w, 0, sizeof(*w));
    w->rng = 0x9e3779b97f4a7c15u;
    c->worker = w;
    c->listener_port = 80;
    st->conn = c;
    st->worker = w;
    st->config = config;
    st->request = head;
    st->is_active = true;
    pt_arena_init(&st->arena, 1024);
}

const pt_http_route_t *pt_stream_route(pt_stream_t *st)
{
    fake.route_calls++;
    st->route = fake.route;
    return fake.route;
}

void pt_stream_resume_after(pt_stream_t *st, uint64_t ms)
{
    (void)st;
    fake.resume_after_ms = ms;
}

void pt_stream_respond(pt_stream_t *st, int status, const char *body, pt_flag_t flag)
{
    st->status = status;
    st->flag = flag;
    fake.respond_status = status;
    fake.respond_flag = flag;
    fake.respond_body = body;
}

void pt_stream_respond_grpc(pt_stream_t *st, int grpc_status, const char *message, pt_flag_t flag)
{
    pt_stream_respond(st, 200, message, flag);
    fake.grpc_status = grpc_status;
}

void pt_stream_reset(pt_stream_t *st, pt_flag_t flag)
{
    st->flag = flag;
    fake.resets++;
}

void pt_stream_filter_body(pt_stream_t *st, const struct pt_filter_ops *ops)
{
    (void)st;
    (void)ops;
    fake.body_filters_asked++;
}

void pt_stream_send_response_data(pt_stream_t *st, const char *data, size_t len, pt_buf_t *pin)
{
    (void)st;
    (void)pin;
    memcpy(fake.sent + fake.sent_len, data, len);
    fake.sent_len += len;
    fake.sends++;
}

void pt_trace_stream_event(pt_stream_t *st, pt_trace_event_kind_t kind, int64_t value)
{
    (void)st;
    (void)kind;
    (void)value;
    fake.trace_events++;
}

#endif
