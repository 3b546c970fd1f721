/* tls/client_hello.h
 * Reads a TLS ClientHello without terminating TLS: what routing on SNI needs (VirtualService
 * tls[] routes with sniHosts, Gateway servers in PASSTHROUGH mode, telling TLS from plaintext
 * on a captured connection). The bytes are only looked at; the caller relays them unchanged.
 *
 * Peer input: every length is checked against its container, a ClientHello split over several
 * records is reassembled into the caller's scratch buffer (never allocated here), and anything
 * that is not a well-formed ClientHello is PT_HELLO_INVALID rather than partially trusted. */
#ifndef PT_TLS_CLIENT_HELLO_H
#define PT_TLS_CLIENT_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest ClientHello reassembled from several records: four full records. Larger ones
 * (not seen from real clients) are PT_HELLO_INVALID. */
#define PT_HELLO_MAX_BYTES 65536
#define PT_HELLO_MAX_ALPN 8

typedef enum pt_hello_status {
    PT_HELLO_OK = 0,    /* a complete, well-formed ClientHello */
    PT_HELLO_NEED_MORE, /* a TLS handshake so far; read more bytes and call again */
    PT_HELLO_NOT_TLS,   /* the first bytes are not a TLS handshake record */
    PT_HELLO_INVALID,   /* a TLS handshake record, but not a valid ClientHello */
} pt_hello_status_t;

typedef struct pt_client_hello {
    char sni[256];    /* server_name host_name, lower-cased, NUL-terminated; "" when absent */
    size_t sni_len;   /* 0 when the client sent no SNI */
    uint16_t version; /* highest version offered: supported_versions, else legacy_version */
    /* ALPN protocol names, pointing into the parsed bytes (input or scratch): valid only as
     * long as those are. */
    const uint8_t *alpn[PT_HELLO_MAX_ALPN];
    uint8_t alpn_len[PT_HELLO_MAX_ALPN];
    size_t n_alpn;
} pt_client_hello_t;

/* Whether the first byte of a connection can start a TLS handshake (content type 22). */
static inline bool pt_hello_may_be_tls(uint8_t first_byte)
{
    return first_byte == 0x16;
}

/* Parses the ClientHello at the start of data[0..len). scratch (PT_HELLO_MAX_BYTES bytes) is
 * used only when the ClientHello spans records. On PT_HELLO_OK *out is filled. */
pt_hello_status_t pt_client_hello_parse(const uint8_t *data, size_t len, uint8_t *scratch,
                                        pt_client_hello_t *out);

/* How well a server-name pattern ("a.example.com", "*.example.com" — one label or more before
 * ".example.com" —, or "*") matches the SNI sni[0..len): 0 not at all, else higher is better:
 * an exact name SIZE_MAX, a wildcard its length. Picking the best score is Envoy's (and so
 * Istio's) choice among server names: exact first, then the longest wildcard. */
size_t pt_sni_match_score(const char *pattern, const char *sni, size_t len);

/* "OK", "NEED_MORE", ... for logs and tests. */
const char *pt_hello_status_name(pt_hello_status_t s);

#endif
