/* config/chaos.h
 * The chaos harness's model, shared by the ChaosProxy kind (config/kind_chaos_proxy.c) and the
 * Toxiproxy-compatible API (filters/chaos/api.c) so that both accept the same toxics with the
 * same checks: the toxic types, their attributes with units and ranges, an HTTP toxic's match[]
 * (config/chaos_match.c), and a declared proxy. Toxics are Toxiproxy's, per direction (upstream:
 * client -> server). */
#ifndef PT_CONFIG_CHAOS_H
#define PT_CONFIG_CHAOS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define PT_CHAOS_NAME_MAX 64     /* bytes of a proxy's or a toxic's name, NUL included */
#define PT_CHAOS_ADDR_MAX 128    /* bytes of a listen or upstream "host:port" */
#define PT_CHAOS_MAX_TOXICS 16   /* per proxy */
#define PT_CHAOS_MAX_PROXIES 256 /* per process */
#define PT_TOXIC_MAX_MATCHES 16  /* entries of an HTTP toxic's match[] */

struct pt_http_match; /* config.h, which includes this header */
struct pt_cfg_node;   /* node.h */

/* An HTTP toxic's own match[]: Istio's HTTPMatchRequest list, read and compiled by the
 * VirtualService's reader (uri, scheme, method, authority, headers, withoutHeaders,
 * queryParams, ignoreUriCase) and evaluated by the router's code, so that a toxic selects
 * requests exactly as a route does. Immutable once made and refcounted: every copy of the toxic
 * that holds it (a config snapshot's declaration, the chaos store's toxic and declarations, each
 * chaos snapshot) holds one ref, dropped from any thread. */
typedef struct pt_toxic_match {
    atomic_uint refs;
    pt_arena_t arena;                    /* owns everything below, the regexes included */
    const struct pt_http_match *matches; /* any one accepting a request selects it */
    size_t n_matches;                    /* 1..PT_TOXIC_MAX_MATCHES */
    const char *json;                    /* the list as given, in compact JSON (the API's GET) */
} pt_toxic_match_t;

typedef enum pt_toxic_type {
    PT_TOXIC_LATENCY = 0, /* latency, jitter (ms): each chunk delayed by latency +- jitter */
    PT_TOXIC_BANDWIDTH,   /* rate (KB/s, 1 KB = 1000 bytes) */
    PT_TOXIC_SLOW_CLOSE,  /* delay (ms): the end of the direction is held this long */
    PT_TOXIC_TIMEOUT,     /* timeout (ms): bytes dropped, the session closed after it (0: never) */
    PT_TOXIC_RESET_PEER,  /* timeout (ms): a TCP RST to both sides after it */
    PT_TOXIC_SLICER,      /* average_size, size_variation (bytes), delay (us) between slices */
    PT_TOXIC_LIMIT_DATA,  /* bytes: the session ends after this many in the direction */
    /* HTTP toxics (filters/chaos_http.c): per request, on a VirtualService route or on an
     * HTTP chaos proxy (spec.protocol HTTP). */
    PT_TOXIC_HTTP_ABORT,      /* status (default 503), or grpc_status 1..16: a gRPC reply */
    PT_TOXIC_HTTP_DELAY,      /* delay, jitter (ms): the request waits delay +- jitter */
    PT_TOXIC_HTTP_SLOW_BODY,  /* bytes per interval (ms): the response body's pace */
    PT_TOXIC_HTTP_DROP_FIRST, /* count: the first count requests are cut without an answer */
    PT_TOXIC__TYPES
} pt_toxic_type_t;

typedef struct pt_toxic {
    char name[PT_CHAOS_NAME_MAX];
    pt_toxic_type_t type;
    int stream;      /* 0 upstream (client -> server), 1 downstream */
    double toxicity; /* probability a session is affected, 0..1 */
    uint64_t uid;    /* the store's: new on create and when toxicity changes */
    /* Attributes; which apply depends on type (pt_toxic_attrs). */
    int64_t latency_ms, jitter_ms, rate_kbps, delay_ms, timeout_ms, bytes;
    int64_t average_size, size_variation, delay_us;
    int64_t http_status, grpc_status, interval_ms, count;
    /* Petrel's own fields, to be safe on a shared environment (pt_toxic_safety_fields): */
    int64_t ttl_ms;   /* the toxic removes itself this long after it was made; 0: never */
    int64_t max_hits; /* blast-radius cap: sessions it affects at most, ever; 0: no cap */
    bool dry_run;     /* affects nothing; counts the sessions it would have affected */
    /* HTTP toxics: the requests it applies to (rolls its toxicity for, counts); NULL: every
     * request of its route or proxy. One ref per copy held, as counters. */
    pt_toxic_match_t *match;
    /* The store's (filters/chaos), never a declaration's: */
    uint64_t expires_ms;                /* main loop's uv_now when ttl_ms ends; 0: never */
    struct pt_toxic_counters *counters; /* its hits, shared by the workers; one ref */
} pt_toxic_t;

/* One attribute of a toxic type: its Toxiproxy name, where it lives in pt_toxic_t, its range. */
typedef struct pt_toxic_attr {
    const char *name;
    size_t offset; /* of an int64_t in pt_toxic_t */
    int64_t min, max;
} pt_toxic_attr_t;

#define PT_TOXIC_TTL_MAX_MS (7 * 24 * 3600 * 1000LL) /* a week */
#define PT_TOXIC_MAX_HITS_MAX (1LL << 40)

/* Whether t is an HTTP toxic (set on a route or an HTTP chaos proxy) rather than a TCP one (set
 * on a TCP chaos proxy). */
static inline bool pt_toxic_is_http(pt_toxic_type_t t)
{
    return t >= PT_TOXIC_HTTP_ABORT;
}

/* The type for a Toxiproxy type name ("latency", ...), or -1. */
int pt_toxic_type_from_name(const char *name);
const char *pt_toxic_type_name(pt_toxic_type_t t);
/* The attributes of type t, in Toxiproxy's order; *n set. */
const pt_toxic_attr_t *pt_toxic_attrs(pt_toxic_type_t t, size_t *n);
/* The attribute name of type t, or NULL. */
const pt_toxic_attr_t *pt_toxic_attr(pt_toxic_type_t t, const char *name);
/* The names a toxic or proxy name may use: letters, digits, '_', '-', '.' (they are URL path
 * segments of the API). */
bool pt_chaos_is_valid_name(const char *s);
/* Toxiproxy's default name of a toxic: "<type>_<stream>" into out. */
void pt_toxic_default_name(const pt_toxic_t *t, char *out, size_t cap);

/* Takes a ref on m (NULL: nothing to do). */
void pt_toxic_match_ref(pt_toxic_match_t *m);
/* Drops a ref on m (NULL: nothing to do); the last one frees it, on whichever thread. */
void pt_toxic_match_unref(pt_toxic_match_t *m);
/* Whether a and b (either may be NULL) select the same requests: the same list as given. */
bool pt_toxic_match_equal(const pt_toxic_match_t *a, const pt_toxic_match_t *b);
/* Compiles the match[] list n (a node tree: the API converts its JSON, config/node.h), checked
 * as a ChaosProxy toxic's `match` is. Returns 0 with *out set (one ref, the caller's; NULL for an
 * empty list, which selects every request), or -1 with the first error in err, field first:
 * "match[0].uri.prefx: unknown field; did you mean \"prefix\"? (<n's file>, line 1, column 30)". */
int pt_toxic_match_compile(const struct pt_cfg_node *n, pt_toxic_match_t **out, char *err,
                           size_t err_cap);

/* A chaos proxy as the ChaosProxy kind declares it (snapshot arena; its toxics' matches hold one
 * ref each, released with that arena). */
typedef struct pt_chaos_decl {
    char name[PT_CHAOS_NAME_MAX];
    char listen[PT_CHAOS_ADDR_MAX];
    char upstream[PT_CHAOS_ADDR_MAX];
    bool enabled;
    /* spec.protocol HTTP: the HTTP engine runs between listen and upstream (the config compiles
     * a route table and a cluster "chaos|<name>" for it) and the toxics are HTTP toxics, applied
     * per request. false: TCP, the bytes are relayed through TCP toxics. */
    bool is_http;
    pt_toxic_t toxics[PT_CHAOS_MAX_TOXICS];
    size_t n_toxics;
    const char *where; /* "file:line:col" of the document, for log lines */
    /* spec.tls: the server context TLS is terminated with (config/tls_contexts.c builds it as a
     * Gateway server's), owned by the config snapshot; whoever keeps a copy past the snapshot
     * takes a ref (SSL_CTX_up_ref). NULL: plaintext. */
    struct ssl_ctx_st *tls_ctx;
} pt_chaos_decl_t;

#endif
