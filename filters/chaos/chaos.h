/* filters/chaos/chaos.h
 * The chaos harness's runtime fault store: chaos proxies (a listen -> upstream pair each) and
 * their toxics, as Toxiproxy models them. The store lives on the main thread and is changed only
 * there (the Toxiproxy-compatible API, api.c); each change publishes an immutable, refcounted
 * snapshot that the workers swap in on their loop (as config snapshots), so the data path takes
 * no lock. A worker opens each enabled proxy's listener (a dup of the main thread's listening
 * socket, so a connection queued before the worker picks the snapshot up is not lost), relays
 * its sessions through the chaos L4 filter (toxics.c) and rebinds open sessions to the toxics of
 * each new snapshot: adding or removing a toxic affects open connections from then on.
 *
 * Toxics are per direction (upstream: client -> server) and TCP-level; HTTP-aware toxics will
 * sit in the same store with a type of their own and run as HTTP filters. */
#ifndef PT_CHAOS_H
#define PT_CHAOS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PT_CHAOS_NAME_MAX 64                /* bytes of a proxy's or a toxic's name, NUL included */
#define PT_CHAOS_ADDR_MAX 128               /* bytes of a listen or upstream "host:port" */
#define PT_CHAOS_MAX_TOXICS 16              /* per proxy */
#define PT_CHAOS_MAX_PROXIES 256            /* per process */
#define PT_CHAOS_TOXIPROXY_VERSION "2.12.0" /* the Toxiproxy API GET /version claims */

typedef enum pt_toxic_type {
    PT_TOXIC_LATENCY = 0, /* latency, jitter (ms): each chunk delayed by latency +- jitter */
    PT_TOXIC_BANDWIDTH,   /* rate (KB/s, 1 KB = 1000 bytes) */
    PT_TOXIC_SLOW_CLOSE,  /* delay (ms): the end of the direction is held this long */
    PT_TOXIC_TIMEOUT,     /* timeout (ms): bytes dropped, the session closed after it (0: never) */
    PT_TOXIC_RESET_PEER,  /* timeout (ms): a TCP RST to both sides after it */
    PT_TOXIC_SLICER,      /* average_size, size_variation (bytes), delay (us) between slices */
    PT_TOXIC_LIMIT_DATA,  /* bytes: the session ends after this many in the direction */
    PT_TOXIC__TYPES
} pt_toxic_type_t;

typedef struct pt_toxic {
    char name[PT_CHAOS_NAME_MAX];
    pt_toxic_type_t type;
    int stream;      /* 0 upstream (client -> server), 1 downstream */
    double toxicity; /* probability a session is affected, 0..1 */
    uint64_t uid;    /* new on every create or update: sessions re-roll toxicity then */
    /* Attributes; which apply depends on type. */
    int64_t latency_ms, jitter_ms, rate_kbps, delay_ms, timeout_ms, bytes;
    int64_t average_size, size_variation, delay_us;
} pt_toxic_t;

typedef struct pt_chaos_proxy {
    char name[PT_CHAOS_NAME_MAX];
    char listen[PT_CHAOS_ADDR_MAX];        /* as reported: the port picked when 0 was asked */
    char upstream[PT_CHAOS_ADDR_MAX];      /* as given */
    struct sockaddr_storage upstream_addr; /* resolved when set */
    bool enabled;
    int listen_fd; /* the main thread's listening socket; -1 when disabled */
    uint64_t uid;  /* new whenever the listener or the upstream changes: sessions of an
                      older one are closed, workers reopen their listener */
    pt_toxic_t toxics[PT_CHAOS_MAX_TOXICS];
    size_t n_toxics;
} pt_chaos_proxy_t;

/* Immutable once published; freed with its last ref. */
typedef struct pt_chaos_snapshot {
    atomic_uint refs;
    uint64_t generation;
    size_t n_proxies;
    pt_chaos_proxy_t proxies[]; /* copies */
} pt_chaos_snapshot_t;

/* The proxy with uid in s, or NULL. */
const pt_chaos_proxy_t *pt_chaos_snapshot_find(const pt_chaos_snapshot_t *s, uint64_t uid);

/* The toxic type for a Toxiproxy type name ("latency", ...), or -1. */
int pt_toxic_type_from_name(const char *name, size_t len);
const char *pt_toxic_type_name(pt_toxic_type_t t);

#endif
