/* filters/l4_filter.h
 * The L4 filter API: policies that see a relayed TCP or TLS session (proxy/relay.c) rather
 * than HTTP requests. A filter has three parts, as an HTTP filter has:
 *   1. a static ops table (pt_l4_filter_ops_t);
 *   2. its config, immutable while a session uses it, owned by the config snapshot or by a
 *      runtime store (the chaos harness's), never by the session;
 *   3. a per-session instance of instance_size bytes, zeroed in the relay's own allocation and
 *      freed with it.
 *
 * The relay runs the filters of a session in order. Bytes read from one side go through every
 * filter's on_data for that direction, then to the other side; the end of a direction (FIN or
 * close_notify) goes through on_eof the same way. A filter that holds bytes or the end (a
 * delay, a rate limit) returns PT_L4_HELD and hands them on later with pt_l4_session_pass() or
 * pt_l4_session_pass_eof(); bytes are held as slices that pin their slab (pt_buf_ref), never
 * copied. With no filter, or filters that continue, the relay adds no copy and no timer.
 *
 * Every callback runs on the session's worker loop; none may re-enter the relay except through
 * the pt_l4_session_* calls below. Plaintext only: a TLS side is decrypted before on_data and
 * encrypted after. */
#ifndef PT_L4_FILTER_H
#define PT_L4_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../proxy/buf.h"

typedef struct pt_relay pt_l4_session_t; /* a relayed session: proxy/relay.h */
typedef struct pt_worker pt_worker_t;
struct pt_config;

/* A session's downstream connection as on_accept sees it: accepted (its ClientHello read, or
 * its TLS terminated), no upstream chosen yet. Valid for the call only. */
typedef struct pt_l4_accept {
    pt_worker_t *worker;
    const struct pt_config *config; /* the snapshot the session holds */
    uint16_t port;                  /* the listener's port, or a captured connection's original */
    const uv_tcp_t *tcp;            /* the downstream socket, for its addresses */
    const char *principal;          /* the verified mTLS peer's principal, or NULL */
    const char *sni;                /* the ClientHello's server name (sni_len bytes), or NULL */
    size_t sni_len;
} pt_l4_accept_t;

/* A direction of a session, named as in Toxiproxy and Envoy: upstream is client -> server. */
typedef enum pt_l4_direction {
    PT_L4_UPSTREAM = 0,   /* bytes the downstream (client) sends towards the upstream */
    PT_L4_DOWNSTREAM = 1, /* bytes the upstream (server) sends back */
} pt_l4_direction_t;

/* What a callback returns. */
typedef enum pt_l4_status {
    PT_L4_CONTINUE = 0, /* hand the bytes (or the end) to the next filter, then the other side */
    PT_L4_HELD,         /* the filter keeps them (a ref on pin) and passes them on later, or
                           drops them (a fault); the relay goes on reading */
    PT_L4_CLOSE,        /* end the session now: both sockets are closed, queued bytes dropped */
} pt_l4_status_t;

typedef struct pt_l4_filter_ops {
    const char *name;     /* for logs and docs, e.g. "chaos" */
    size_t instance_size; /* bytes zeroed for each session */

    /* Any callback may be NULL. conf is what the session was started with. */
    /* The downstream is accepted, before any upstream is connected (a refusal costs the
     * upstream nothing): CONTINUE or CLOSE. No instance exists yet. */
    int (*on_accept)(const pt_l4_accept_t *a, const void *conf);
    /* Both sides are connected, before any byte is relayed: CONTINUE or CLOSE. */
    int (*on_connect)(pt_l4_session_t *s, void *inst, const void *conf);
    /* len > 0 bytes at data, read from the side dir starts at; pin is their slab (take a ref
     * with pt_buf_ref to keep them past the call). */
    int (*on_data)(pt_l4_session_t *s, void *inst, const void *conf, pt_l4_direction_t dir,
                   const char *data, size_t len, pt_buf_t *pin);
    /* The side dir starts at finished sending (FIN or close_notify). */
    int (*on_eof)(pt_l4_session_t *s, void *inst, const void *conf, pt_l4_direction_t dir);
    /* The session is closing (sockets being closed): stop timers with pt_l4_session_close_handle
     * and drop held slices. Called once, before on_destroy. */
    void (*on_close)(pt_l4_session_t *s, void *inst, const void *conf);
    /* Every handle is closed; the instance's memory goes right after. Always called. */
    void (*on_destroy)(pt_l4_session_t *s, void *inst, const void *conf);
} pt_l4_filter_ops_t;

/* One filter of a session's chain as its starter hands it to the relay. */
typedef struct pt_l4_filter {
    const pt_l4_filter_ops_t *ops;
    const void *conf;
} pt_l4_filter_t;

#define PT_L4_MAX_FILTERS 4 /* filters on one session at most */

/* Hands bytes a filter held (inst is that filter's instance) to the filters after it, then to
 * the other side. pin gets its own ref for as long as needed: the caller keeps its own. */
void pt_l4_session_pass(pt_l4_session_t *s, const void *inst, pt_l4_direction_t dir,
                        const char *data, size_t len, pt_buf_t *pin);
/* Hands a held end of direction dir on, as pt_l4_session_pass does bytes. */
void pt_l4_session_pass_eof(pt_l4_session_t *s, const void *inst, pt_l4_direction_t dir);
/* Ends the session gracefully: both directions end as if both sides had sent FIN, after what
 * was already written reaches the sockets. Bytes filters still hold are dropped. */
void pt_l4_session_finish(pt_l4_session_t *s);
/* Ends the session now; reset: with a TCP RST to both sides (SO_LINGER 0) instead of a FIN. */
void pt_l4_session_close(pt_l4_session_t *s, bool reset);
/* Stops (true) or restarts (false) reading the side dir starts at: a filter holding more than
 * it wants to buffer applies backpressure this way. */
void pt_l4_session_hold_reading(pt_l4_session_t *s, pt_l4_direction_t dir, bool hold);
/* Inits a timer on the session's loop owned by the instance; it is closed with
 * pt_l4_session_close_handle from on_close, and on_destroy waits for its close callback. */
void pt_l4_session_timer_init(pt_l4_session_t *s, uv_timer_t *t);
void pt_l4_session_close_handle(pt_l4_session_t *s, uv_handle_t *h);
pt_worker_t *pt_l4_session_worker(pt_l4_session_t *s);
bool pt_l4_session_is_closing(const pt_l4_session_t *s);

#endif
