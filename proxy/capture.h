/* proxy/capture.h
 * Sidecar capture: connections that iptables redirected to the outbound (15001) or inbound
 * (15006) listener (docker/petrel-iptables.sh). For each one: the original destination
 * (SO_ORIGINAL_DST), then protocol detection on the first bytes, bounded by
 * proxy.sidecar.protocolDetectionTimeout so that server-first protocols still work:
 *  - HTTP/1: the connection goes on through conn.c's codec and stream.c, routed with the mesh
 *    route table of the original port (outbound) or the inbound table (to 127.0.0.1:<port>);
 *    a host no table knows goes to the original destination (PassthroughCluster).
 *  - anything else: relayed as TCP, the peeked bytes first, in order: outbound to the known
 *    service at the original address (ServiceEntry addresses; VirtualService tcp routes) or
 *    else to the original destination; inbound to 127.0.0.1:<original port>.
 * The detection reads into the connection's own read slab, so nothing is copied or lost. */
#ifndef PT_CAPTURE_H
#define PT_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "../config/config.h"
#include "codec.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_capture_upstream pt_capture_upstream_t;

typedef enum pt_capture_direction {
    PT_CAPTURE_NONE = 0, /* not a captured connection */
    PT_CAPTURE_OUTBOUND,
    PT_CAPTURE_INBOUND,
} pt_capture_direction_t;

typedef enum pt_capture_state {
    PT_CAPTURE_IDLE = 0,   /* not captured, or decided HTTP */
    PT_CAPTURE_DETECTING,  /* waiting for the first bytes */
    PT_CAPTURE_CONNECTING, /* not HTTP: connecting to where the bytes go */
} pt_capture_state_t;

/* A captured connection's own state (pt_conn_t.capture, allocated by pt_capture_start() and
 * freed with the connection: other connections pay one pointer). */
typedef struct pt_capture {
    pt_capture_direction_t direction;
    pt_capture_state_t state;
    uint16_t original_port;
    pt_endpoint_t destination;    /* where passthrough goes: the original destination
                                     (outbound) or 127.0.0.1:<original port> (inbound) */
    char address[48];             /* destination's address text (destination.address) */
    pt_capture_upstream_t *relay; /* while connecting for a TCP relay */
} pt_capture_t;

typedef enum pt_detect_result {
    PT_DETECT_NEED_MORE = 0, /* a prefix of an HTTP/1 request line: wait for more */
    PT_DETECT_HTTP1,
    PT_DETECT_HTTP2, /* the HTTP/2 connection preface (prior knowledge) */
    PT_DETECT_OTHER, /* relay as TCP */
} pt_detect_result_t;

/* HTTP/1, HTTP/2 or neither, from the first len bytes a client sent: an HTTP/1 request starts
 * with a method token, one space, a request target and " HTTP/1.x", an HTTP/2 connection with
 * its preface (Envoy's http_inspector reads the same). NEED_MORE while what arrived is a prefix
 * of either (at most 8 KiB). */
pt_detect_result_t pt_capture_detect(const char *data, size_t len);

/* The original destination of an accepted, redirected socket (SO_ORIGINAL_DST for IPv4,
 * IP6T_SO_ORIGINAL_DST for IPv6). 0 or -errno. */
int pt_capture_original_dst(int fd, struct sockaddr_storage *out, socklen_t *len);

/* The cluster that captured non-HTTP traffic to addr:port goes to: the first tcp route of the
 * known service at that address whose match holds (port, destinationSubnets), its weighted
 * destination picked with random, else the service's own cluster; NULL when no ServiceEntry
 * has that address and port. */
const pt_cluster_t *pt_capture_tcp_cluster(const pt_config_t *cfg,
                                           const struct sockaddr_storage *addr, uint16_t port,
                                           uint32_t random);

/* --- conn.c's hooks --- */

/* A connection accepted on a capture listener: finds where it was going. Non-zero: the
 * connection must be closed (not redirected, or redirected to Petrel itself). */
int pt_capture_start(pt_conn_t *c, const pt_listener_config_t *lc);
/* Bytes arrived while detecting: true when the codec should parse them (HTTP/1; HTTP/2, whose
 * codec it then gives the connection). */
bool pt_capture_on_bytes(pt_conn_t *c);
/* The client finished sending while detecting. */
void pt_capture_on_eof(pt_conn_t *c);
/* The capture timer fired: detection over (relay as TCP), or the relay's connect timed out. */
void pt_capture_on_timer(pt_conn_t *c);
/* The connection closes while its relay is connecting. */
void pt_capture_on_conn_close(pt_conn_t *c);

/* The route table a stream on connection c uses in snapshot cfg: the mesh table of its original
 * port, or the passthrough table, or the inbound table; an HTTP chaos proxy's connection, the
 * proxy's table (by name); for other connections their listener's.
 * NULL when the snapshot has none (a reload took the sidecar away). */
const pt_listener_config_t *pt_capture_route_table(const pt_config_t *cfg, const pt_conn_info_t *c);

#endif
