/* proxy/mirror.h
 * Traffic mirroring (VirtualService http[].mirror / mirrors[]): a copy of a request goes to a
 * mirror cluster, fire and forget. The copy is the primary's request as Petrel forwards it
 * (rewrites and header mutations applied, same x-request-id) with the Host given Istio's
 * "-shadow" suffix ("web:8000" -> "web-shadow:8000"; Proxy spec.mirrorKeepHost keeps it). It
 * goes through the worker's pools and the connection's client codec like any attempt (one
 * HTTP/1 client in Petrel): it holds one of the mirror cluster's maxConnections slots, and a
 * connection it leaves whole goes back to the pool.
 *
 * The mirror never delays, fails or changes the primary: its body is teed from the client's
 * stream as it arrives (the same slabs are written again, nothing is copied), and when the
 * mirror cannot take it (its queue passes PT_MIRROR_MAX_QUEUED bytes, or the connection fails)
 * the copy is abandoned and counted. The response is parsed (to know where it ends) and
 * dropped. A mirror outlives its stream: after the client's request
 * is complete it finishes alone, within the route timeout (or idleTimeout when the route has
 * none). Counters: mirror_requests, mirror_responses, mirror_failed, mirror_abandoned,
 * mirror_active. A mirror is not in the access log. */
#ifndef PT_MIRROR_H
#define PT_MIRROR_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "http_msg.h"

typedef struct pt_stream pt_stream_t;
typedef struct pt_worker pt_worker_t;
typedef struct pt_mirror pt_mirror_t;

/* Before the connection is ready, bytes waiting; then its write queue (the write watermark). */
#define PT_MIRROR_MAX_QUEUED (256u * 1024u)

/* Starts the copies the stream's route asks for (each mirror by its percentage) and links them
 * to st->mirror. The destination is chosen, so the request head is final; body bytes already
 * received (held in st->pending_body) are fed to them at once. */
void pt_mirror_start(pt_stream_t *st);
/* A piece of the client's request body (every mirror of the stream). */
void pt_mirror_body(pt_mirror_t *m, const char *data, size_t len, pt_buf_t *pin);
/* The client's request is complete. */
void pt_mirror_end(pt_mirror_t *m);
/* The stream ends: its mirrors go on alone, or are abandoned when the request was cut. */
void pt_mirror_detach(pt_mirror_t *m, bool request_complete);
/* Closes every mirror of this worker (drain). */
void pt_mirror_close_all(pt_worker_t *w);

/* "host-shadow" / "host-shadow:port" for authority a (IPv6 literals keep their brackets);
 * writes at most cap bytes to out and returns the length. */
size_t pt_mirror_shadow_host(const char *a, size_t len, char *out, size_t cap);

#endif
