/* filters/metrics.c
 * Istio's standard metrics of an HTTP exchange (istio_requests_total, its duration and sizes;
 * proxy/metrics.c keeps the series and renders /stats/prometheus), when the Proxy turns them
 * on. Istio labels a request whose content-type is application/grpc (or +proto, ...) as
 * grpc. */
#include "../proxy/metrics.h"
#include "../proxy/capture.h"
#include "../proxy/grpc.h"
#include "../proxy/worker.h"
#include "filter.h"

static void metrics_log(pt_stream_t *st, void *inst)
{
    (void)inst;
    if (!st->config->proxy.metrics)
        return;
    const pt_conn_info_t *c = st->conn;
    pt_metrics_record_http(&st->worker->metrics, st->cluster ? st->cluster->host : NULL, st->status,
                           st->grpc_status, pt_flag_name(st->flag),
                           (uv_hrtime() - st->start_ns) / 1000, st->bytes_received, st->bytes_sent,
                           c->peer_principal,
                           c->capture != NULL && c->capture->direction == PT_CAPTURE_INBOUND,
                           pt_grpc_is_request(st->request));
}

const pt_filter_ops_t pt_filter_metrics_ops = {
    .name = "metrics",
    .on_log = metrics_log,
};
