/* tls/client_hello.c
 * The ClientHello reader (RFC 8446 §4.1.2, RFC 6066 §3 server_name, RFC 7301 ALPN). Two steps:
 * the record layer is walked until the whole handshake message is there (reassembled into
 * scratch only when it spans records), then the message is read with a bounds-checked cursor.
 * Only what routing needs is kept; every other extension is skipped after its length is
 * checked, and a repeated extension type is invalid, as RFC 8446 requires. */
#include "client_hello.h"

#include <string.h>

#define RECORD_HEADER 5
#define RECORD_MAX 16384 /* 2^14: the largest plaintext fragment */
#define HANDSHAKE_HEADER 4
#define MAX_EXTENSIONS 64 /* real clients send about 20 (GREASE included) */

enum {
    CONTENT_HANDSHAKE = 22,
    HANDSHAKE_CLIENT_HELLO = 1,
    EXT_SERVER_NAME = 0,
    EXT_ALPN = 16,
    EXT_SUPPORTED_VERSIONS = 43,
};

size_t pt_sni_match_score(const char *pattern, const char *sni, size_t len)
{
    size_t pl = strlen(pattern);
    if (pattern[0] == '*') {
        if (pl == 1 || (len > pl - 1 && memcmp(sni + len - (pl - 1), pattern + 1, pl - 1) == 0))
            return pl;
        return 0;
    }
    return pl == len && memcmp(pattern, sni, len) == 0 ? SIZE_MAX : 0;
}

const char *pt_hello_status_name(pt_hello_status_t s)
{
    switch (s) {
    case PT_HELLO_OK: return "OK";
    case PT_HELLO_NEED_MORE: return "NEED_MORE";
    case PT_HELLO_NOT_TLS: return "NOT_TLS";
    case PT_HELLO_INVALID: return "INVALID";
    }
    return "?";
}

/* A bounds-checked reader: once a read fails, every later read fails too. */
typedef struct cursor {
    const uint8_t *p, *end;
    bool bad;
} cursor_t;

static bool take(cursor_t *c, size_t n, const uint8_t **out)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = true;
        return false;
    }
    if (out != NULL)
        *out = c->p;
    c->p += n;
    return true;
}

static unsigned u8(cursor_t *c)
{
    const uint8_t *b;
    return take(c, 1, &b) ? b[0] : 0;
}

static unsigned u16(cursor_t *c)
{
    const uint8_t *b;
    return take(c, 2, &b) ? (unsigned)b[0] << 8 | b[1] : 0;
}

/* A sub-cursor over the next n bytes (a length-prefixed vector's contents). */
static cursor_t sub(cursor_t *c, size_t n)
{
    const uint8_t *b = NULL;
    cursor_t s = {0};
    if (take(c, n, &b))
        s = (cursor_t){b, b + n, false};
    else
        s.bad = true;
    return s;
}

static bool is_tls_version(unsigned v)
{
    return v >= 0x0300 && v <= 0x0304;
}

/* RFC 6066: one host_name, ASCII, no trailing dot. Petrel also wants a plausible DNS name, so
 * only letters, digits, '-', '_' and '.' are taken (a name Petrel could never route on is an
 * invalid hello, not a silent miss). */
static bool read_server_name(cursor_t ext, pt_client_hello_t *out)
{
    cursor_t list = sub(&ext, u16(&ext));
    if (ext.bad || ext.p != ext.end || list.p == list.end)
        return false;
    bool have_host = false;
    while (list.p < list.end) {
        unsigned type = u8(&list);
        cursor_t name = sub(&list, u16(&list));
        if (list.bad)
            return false;
        if (type != 0)
            continue; /* no other name type is defined; skip it as RFC 6066 allows */
        size_t n = (size_t)(name.end - name.p);
        if (have_host || n == 0 || n >= sizeof(out->sni) || name.p[n - 1] == '.')
            return false;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = name.p[i];
            if (ch >= 'A' && ch <= 'Z')
                ch = (unsigned char)(ch - 'A' + 'a');
            else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                       ch == '_' || ch == '.'))
                return false;
            out->sni[i] = (char)ch;
        }
        out->sni[n] = '\0';
        out->sni_len = n;
        have_host = true;
    }
    return true;
}

static bool read_alpn(cursor_t ext, pt_client_hello_t *out)
{
    cursor_t list = sub(&ext, u16(&ext));
    if (ext.bad || ext.p != ext.end || list.p == list.end)
        return false;
    while (list.p < list.end) {
        unsigned n = u8(&list);
        const uint8_t *name;
        if (n == 0 || !take(&list, n, &name))
            return false;
        if (out->n_alpn < PT_HELLO_MAX_ALPN) {
            out->alpn[out->n_alpn] = name;
            out->alpn_len[out->n_alpn++] = (uint8_t)n;
        }
    }
    return true;
}

static bool read_supported_versions(cursor_t ext, pt_client_hello_t *out)
{
    size_t n = u8(&ext);
    cursor_t list = sub(&ext, n);
    if (ext.bad || ext.p != ext.end || n < 2 || n % 2 != 0)
        return false;
    unsigned best = 0;
    while (list.p < list.end) {
        unsigned v = u16(&list);
        if (is_tls_version(v) && v > best) /* GREASE values (0x?a?a) are skipped */
            best = v;
    }
    if (best != 0)
        out->version = (uint16_t)best;
    return true;
}

static pt_hello_status_t read_hello(const uint8_t *msg, size_t len, pt_client_hello_t *out)
{
    cursor_t c = {msg, msg + len, false};
    unsigned legacy = u16(&c);
    if (!is_tls_version(legacy) || legacy == 0x0304)
        return PT_HELLO_INVALID;
    out->version = (uint16_t)legacy;
    take(&c, 32, NULL); /* random */
    size_t session_id = u8(&c);
    if (session_id > 32)
        return PT_HELLO_INVALID;
    take(&c, session_id, NULL);
    size_t suites = u16(&c);
    if (suites < 2 || suites % 2 != 0)
        return PT_HELLO_INVALID;
    take(&c, suites, NULL);
    size_t compression = u8(&c);
    if (compression < 1)
        return PT_HELLO_INVALID;
    take(&c, compression, NULL);
    if (c.bad)
        return PT_HELLO_INVALID;
    if (c.p == c.end)
        return PT_HELLO_OK; /* no extensions: no SNI, no ALPN */
    cursor_t exts = sub(&c, u16(&c));
    if (c.bad || c.p != c.end)
        return PT_HELLO_INVALID;
    unsigned seen[MAX_EXTENSIONS];
    size_t n_seen = 0;
    while (exts.p < exts.end) {
        unsigned type = u16(&exts);
        cursor_t ext = sub(&exts, u16(&exts));
        if (exts.bad || n_seen == MAX_EXTENSIONS)
            return PT_HELLO_INVALID;
        for (size_t i = 0; i < n_seen; i++)
            if (seen[i] == type)
                return PT_HELLO_INVALID;
        seen[n_seen++] = type;
        bool ok = true;
        if (type == EXT_SERVER_NAME)
            ok = read_server_name(ext, out);
        else if (type == EXT_ALPN)
            ok = read_alpn(ext, out);
        else if (type == EXT_SUPPORTED_VERSIONS)
            ok = read_supported_versions(ext, out);
        if (!ok)
            return PT_HELLO_INVALID;
    }
    return PT_HELLO_OK;
}

pt_hello_status_t pt_client_hello_parse(const uint8_t *data, size_t len, uint8_t *scratch,
                                        pt_client_hello_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return PT_HELLO_NEED_MORE;
    if (!pt_hello_may_be_tls(data[0]))
        return PT_HELLO_NOT_TLS;
    if (len >= 2 && data[1] != 0x03)
        return PT_HELLO_NOT_TLS;

    /* Walk the records, gathering handshake bytes until the ClientHello is complete. */
    size_t off = 0, have = 0, need = 0; /* need: 4 + message length, once known */
    const uint8_t *first_payload = NULL;
    bool spans = false;
    for (;;) {
        if (len - off < RECORD_HEADER)
            return PT_HELLO_NEED_MORE;
        const uint8_t *h = data + off;
        size_t rlen = (size_t)h[3] << 8 | h[4];
        if (h[0] != CONTENT_HANDSHAKE || !is_tls_version((unsigned)h[1] << 8 | h[2]) || rlen == 0 ||
            rlen > RECORD_MAX)
            return PT_HELLO_INVALID;
        if (len - off - RECORD_HEADER < rlen)
            return PT_HELLO_NEED_MORE;
        const uint8_t *payload = h + RECORD_HEADER;
        if (first_payload == NULL) {
            first_payload = payload;
        } else {
            if (!spans) { /* second record: from now on the message is built in scratch */
                memcpy(scratch, first_payload, have);
                spans = true;
            }
            if (have + rlen > PT_HELLO_MAX_BYTES)
                return PT_HELLO_INVALID;
            memcpy(scratch + have, payload, rlen);
        }
        have += rlen;
        off += RECORD_HEADER + rlen;
        const uint8_t *msg = spans ? scratch : first_payload;
        if (need == 0 && have >= HANDSHAKE_HEADER) {
            if (msg[0] != HANDSHAKE_CLIENT_HELLO)
                return PT_HELLO_INVALID;
            need = HANDSHAKE_HEADER + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
            if (need > PT_HELLO_MAX_BYTES)
                return PT_HELLO_INVALID;
        }
        if (need != 0 && have >= need) {
            /* A client sends nothing after its ClientHello before the server answers. */
            if (have != need)
                return PT_HELLO_INVALID;
            return read_hello(msg + HANDSHAKE_HEADER, need - HANDSHAKE_HEADER, out);
        }
    }
}
