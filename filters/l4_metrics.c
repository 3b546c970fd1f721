/* filters/l4_metrics.c
 * Istio's TCP metrics of a routed session (an L4 filter, l4_filter.h): istio_tcp_connections_
 * opened/closed_total and the bytes each way (proxy/metrics.h records them), and the worker's
 * tcp_* stats. The session was counted in tcp_cx_active when it was accepted; it leaves that
 * count when the relay is gone. */
#include <stdio.h>

#include "../proxy/metrics.h"
#include "../proxy/worker.h"
#include "l4_registry.h"

typedef struct tcp_metrics {
    char service[96];  /* the destination service (conf, copied: the session may outlive it) */
    uint64_t bytes[2]; /* by direction: PT_L4_UPSTREAM is what the client sent */
} tcp_metrics_t;

static int metrics_connect(pt_l4_session_t *s, void *inst, const void *conf)
{
    tcp_metrics_t *m = inst;
    snprintf(m->service, sizeof(m->service), "%s", (const char *)conf);
    pt_metrics_record_tcp_open(&pt_l4_session_worker(s)->metrics, m->service);
    return PT_L4_CONTINUE;
}

static int metrics_data(pt_l4_session_t *s, void *inst, const void *conf, pt_l4_direction_t dir,
                        const char *data, size_t len, pt_buf_t *pin)
{
    tcp_metrics_t *m = inst;
    pt_worker_t *w = pt_l4_session_worker(s);
    m->bytes[dir] += len;
    if (dir == PT_L4_UPSTREAM)
        PT_STAT_ADD(&w->stats, tcp_bytes_received, len);
    else
        PT_STAT_ADD(&w->stats, tcp_bytes_sent, len);
    return PT_L4_CONTINUE;
}

static void metrics_destroy(pt_l4_session_t *s, void *inst, const void *conf)
{
    tcp_metrics_t *m = inst;
    pt_worker_t *w = pt_l4_session_worker(s);
    PT_STAT_DEC(&w->stats, tcp_cx_active);
    pt_metrics_record_tcp_close(&w->metrics, m->service, m->bytes[PT_L4_DOWNSTREAM],
                                m->bytes[PT_L4_UPSTREAM]);
}

const pt_l4_filter_ops_t pt_l4_tcp_metrics_ops = {
    .name = "tcp_metrics",
    .instance_size = sizeof(tcp_metrics_t),
    .on_connect = metrics_connect,
    .on_data = metrics_data,
    .on_destroy = metrics_destroy,
};
