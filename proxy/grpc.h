/* proxy/grpc.h
 * What Petrel knows of gRPC over HTTP (the gRPC project's PROTOCOL-HTTP2.md): which requests are
 * gRPC calls, how an HTTP status Petrel decides reads as a gRPC status, the grpc-timeout header
 * and the grpc-message encoding. Pure functions: the stream (proxy/stream.c) applies them. */
#ifndef PT_GRPC_H
#define PT_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_msg.h"

#define PT_GRPC_DEADLINE_EXCEEDED 4

/* Whether r is a gRPC call: its content-type is application/grpc or application/grpc+<codec>
 * (;parameters allowed). False for NULL and for gRPC-Web (application/grpc-web...), whose
 * replies are framed differently. */
bool pt_grpc_is_request(const pt_http_msg_t *r);

/* The gRPC status a client is told for an HTTP status Petrel answers with, as Envoy maps them:
 * 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502, 503
 * UNAVAILABLE, 504 DEADLINE_EXCEEDED, anything else UNKNOWN. */
int pt_grpc_status_for_http(int status);

/* The grpc-timeout value v (1 to 8 digits, a positive number, then a unit: H M S m u n) in
 * milliseconds, rounded up so that a timeout under a millisecond still ends; false when v is
 * malformed. */
bool pt_grpc_timeout_parse(pt_str_t v, uint64_t *ms);

/* text percent-encoded as grpc-message carries it (every byte outside 0x20..0x7e, and '%'), into
 * out of out_size bytes (3 * strlen(text) + 1 always fits); returns out. */
char *pt_grpc_message_encode(const char *text, char *out, size_t out_size);

#endif
