/* filters/filter.h
 * The HTTP filter API: the policies a request passes through between its codec and the router
 * (authorization, fault injection, redirects, header mutations, and the observers: trace,
 * metrics, access log). docs/filters.md says how to write one.
 *
 * A filter has three parts:
 *   1. a static ops table (pt_filter_ops_t), listed once in filters/registry.c;
 *   2. its config, read from the route or the config snapshot (the VirtualService's fault and
 *      headers, the snapshot's AuthorizationPolicy tables): immutable, owned by the snapshot;
 *   3. a per-request instance of instance_size bytes, zero-filled in the request arena when the
 *      stream is made, gone with the arena.
 *
 * The stream (proxy/stream.c) runs on_request_headers of every filter in registry order, then
 * the router, which is the chain's terminal step (route choice, attempts, timeouts, retries,
 * mirror, outlier reports). on_response_headers runs in reverse order when the upstream's head
 * arrives, and on_log in reverse order once when the stream ends, so the filters near the router
 * settle the outcome (a fault's DI flag) before the observers at the head of the list record it.
 *
 * A filter that asks for the bodies (pt_stream_filter_body) also gets their bytes and trailers,
 * and on_destroy at the end.
 *
 * A filter never calls back into the stream's internals: it uses the stream's API
 * (proxy/stream.h: pt_stream_route, pt_stream_respond, pt_stream_resume_after, ...) and returns
 * a status that says what it did. Every callback runs on the stream's worker loop. */
#ifndef PT_FILTER_H
#define PT_FILTER_H

#include <stddef.h>

#include "../proxy/http_msg.h"
#include "../proxy/stream.h"

/* What a request-side callback and on_response_data return. */
typedef enum pt_filter_status {
    PT_FILTER_CONTINUE = 0, /* hand the message (or the bytes) to the next filter */
    PT_FILTER_PAUSE,        /* stop here, the filter resumes later (pt_stream_resume_after):
                               on_request_headers: the stream calls it again when the time is
                               up (the instance says what the filter did already); request body
                               bytes read meanwhile wait, and reading stops.
                               on_response_data: the filter took the bytes (a ref on pin) and
                               passes them on itself (pt_stream_send_response_data); bytes read
                               meanwhile still come to it (the upstream's reads stop while it
                               holds over PT_STREAM_RESPONSE_HELD_MAX), and the stream calls it
                               with no bytes when the time is up: PAUSE again, or CONTINUE once
                               it holds nothing (the pause ends) */
    PT_FILTER_RESPONDED,    /* the filter answered with pt_stream_respond() (or wrote a whole
                               answer, as a redirect does, or reset the stream): the rest of the
                               chain is skipped */
} pt_filter_status_t;

typedef struct pt_filter_ops {
    const char *name;     /* for logs and docs, e.g. "authz" */
    size_t instance_size; /* bytes zeroed in the request arena for each stream; 0: none */

    /* Any callback may be NULL. inst is the filter's instance (NULL when instance_size is 0). */
    /* The request head arrived (head is st->request). */
    pt_filter_status_t (*on_request_headers)(pt_stream_t *st, void *inst, pt_http_msg_t *head);
    /* The upstream's response head arrived and goes downstream: the filter may change its
     * headers (an arena copy). Not called for a local reply. */
    void (*on_response_headers)(pt_stream_t *st, void *inst, pt_http_msg_t *head);
    /* The stream ends, whatever happened (also for a request refused before its head was
     * parsed: then st->request is NULL). st->status and st->flag are final once the filters
     * after this one have run. */
    void (*on_log)(pt_stream_t *st, void *inst);

    /* The body callbacks run only for the streams whose filter asked for them with
     * pt_stream_filter_body() (from on_request_headers), so a stream no filter watches pays
     * one test per chunk. Request side in registry order, response side in reverse. */
    /* Request body bytes (pin: the slab they live in; take a ref to keep them): CONTINUE or
     * RESPONDED (the rest of the body is dropped). */
    pt_filter_status_t (*on_request_data)(pt_stream_t *st, void *inst, const char *data, size_t len,
                                          pt_buf_t *pin);
    /* The request's trailers (the filter may edit them in place): CONTINUE or RESPONDED. */
    pt_filter_status_t (*on_request_trailers)(pt_stream_t *st, void *inst, pt_header_t *t,
                                              size_t n);
    /* Response body bytes: CONTINUE, or PAUSE (see above); len is 0 and data NULL when the
     * stream calls a paused filter back. */
    pt_filter_status_t (*on_response_data)(pt_stream_t *st, void *inst, const char *data,
                                           size_t len, pt_buf_t *pin);
    /* The response's trailers, written with the end of the body (the filter may edit them). */
    void (*on_response_trailers)(pt_stream_t *st, void *inst, pt_header_t *t, size_t n);
    /* The stream is gone, after every on_log: release what the instance holds (slab refs). */
    void (*on_destroy)(pt_stream_t *st, void *inst);
} pt_filter_ops_t;

#endif
