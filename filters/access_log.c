/* filters/access_log.c
 * The access-log line of an HTTP exchange (Envoy's fields; proxy/access_log.c formats and
 * writes it, for relayed TCP sessions too). A request whose connection became a tunnel (101)
 * is logged when the tunnel ends, with its bytes. */
#include "../proxy/access_log.h"
#include "../proxy/conn.h"
#include "../proxy/relay.h"
#include "../proxy/worker.h"
#include "filter.h"

static pt_str_t header_value(const pt_stream_t *st, const char *name)
{
    const pt_header_t *h = st->request ? pt_http_msg_find_header(st->request, name) : NULL;
    return h != NULL ? h->value : (pt_str_t){NULL, 0};
}

static void access_log_log(pt_stream_t *st, void *inst)
{
    (void)inst;
    pt_worker_t *w = st->worker;
    if (!pt_access_log_is_on(&w->access_log))
        return; /* logging off: no entry to build */
    const pt_http_msg_t *r = st->request;
    pt_str_t none = {NULL, 0};
    pt_access_log_entry_t e = {
        .start_time_us = st->start_time_us,
        .method = r ? r->method : none,
        .path = r ? r->path : none,
        .protocol = r ? pt_http_msg_protocol(r) : none,
        .status = st->status,
        .flags = pt_flag_name(st->flag),
        .bytes_received = st->bytes_received,
        .bytes_sent = st->bytes_sent,
        .duration_ms = uv_now(&w->loop) - st->start_ms,
        .upstream_ms = st->upstream_ms,
        .x_forwarded_for = header_value(st, "x-forwarded-for"),
        .user_agent = header_value(st, "user-agent"),
        .request_id = st->request_id ? pt_str(st->request_id) : none,
        .authority = r && r->authority.len ? r->authority : none,
        .upstream_host = st->upstream_host ? pt_str(st->upstream_host) : none,
        .peer_principal = st->conn->peer_principal,
        .attempts = st->attempts,
        .route_name = st->route ? st->route->name : NULL,
        .upstream_cluster = st->cluster ? st->cluster->name : NULL,
        .details = pt_stream_response_code_details(st),
        .has_grpc_status = st->grpc_status >= 0,
        .grpc_status = st->grpc_status,
    };
    if (st->tunnel != NULL) /* logged when the tunnel ends, with its bytes */
        pt_relay_log_at_close(st->tunnel, &e, st->start_ms, st->config->proxy.access_log_json);
    else
        pt_access_log_write(&w->access_log, &e, st->config->proxy.access_log_json);
}

const pt_filter_ops_t pt_filter_access_log_ops = {
    .name = "access_log",
    .on_log = access_log_log,
};
