/* proxy/http1.c
 * The HTTP/1.x codec: llhttp in strict mode does the byte-level parsing; this file accumulates
 * the pieces llhttp hands out into the arena, enforces the size limits as bytes arrive, and
 * validates each message head against RFC 9110/9112 before anyone else sees it. A head that
 * fails validation never reaches on_head: the caller answers with error_status and closes.
 *
 * Ownership: the parser owns nothing but its own struct. Head strings, the header array and the
 * head handed to on_head are allocated in the arena set by pt_http1_parser_set_arena() (the
 * stream's), NUL-terminated for the caller's convenience. Body pieces point into the caller's
 * buffer.
 *
 * Limits are enforced by feeding llhttp at most the remaining head budget while a head is being
 * read: a peer that streams endless header bytes is cut off at the first byte over the limit,
 * whatever the read size, and whitespace that llhttp skips without a callback still counts. */
#include "http1.h"

#include <stdlib.h>
#include <string.h>

/* msg_state */
enum {
    ST_IDLE = 0,  /* between messages (leading empty lines count toward the next head) */
    ST_LINE,      /* request line / status line */
    ST_FIELDS,    /* header fields */
    ST_BODY,      /* body (or nothing) after on_head */
    ST_TRAILERS,  /* trailer fields after the last chunk */
    ST_FAILED,    /* the peer sent something invalid: error_status is set */
    ST_CB_FAILED, /* a caller's callback failed */
};

/* scan_state */
enum {
    SCAN_BEFORE = 0, /* empty lines before a request line */
    SCAN_LINE,       /* in the start line */
    SCAN_FIELDS,     /* in the field lines (or trailer lines) */
};

/* header ids, by name */
enum {
    H_OTHER = 0,
    H_HOST,
    H_CONTENT_LENGTH,
    H_TRANSFER_ENCODING,
    H_CONNECTION,
    H_KEEP_ALIVE,
    H_PROXY_CONNECTION,
    H_TE,
    H_UPGRADE,
    H_EXPECT,
};

/* RFC 9110 §5.6.2 tchar */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool is_field_vchar(unsigned char c)
{
    /* RFC 9110 §5.5: field-vchar = VCHAR / obs-text, plus SP and HTAB inside the value */
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static pt_http1_parser_t *P(llhttp_t *l)
{
    return (pt_http1_parser_t *)l->data;
}

/* Records a validation failure; callbacks then return -1 (or HPE_USER for span callbacks). */
static int fail(pt_http1_parser_t *p, int req_status, const char *reason)
{
    p->error_status = p->is_response ? 502 : req_status;
    p->error_reason = reason;
    p->msg_state = ST_FAILED;
    return -1;
}

static int cb_failed(pt_http1_parser_t *p)
{
    p->error_status = 0;
    p->error_reason = "callback error";
    p->msg_state = ST_CB_FAILED;
    return -1;
}

/* ---- accumulation of split spans ------------------------------------------------------------ */

static void cur_append(pt_http1_parser_t *p, const char *at, size_t len)
{
    if (len == 0)
        return;
    if (p->cur_len + len > p->cur_cap) {
        size_t cap = p->cur_cap * 2;
        if (cap < p->cur_len + len)
            cap = p->cur_len + len;
        /* +1 for the NUL written when the span completes */
        char *n = pt_arena_alloc(p->arena, cap + 1);
        if (p->cur_len)
            memcpy(n, p->cur, p->cur_len);
        p->cur = n;
        p->cur_cap = cap;
    }
    memcpy(p->cur + p->cur_len, at, len);
    p->cur_len += len;
}

/* Hands out the accumulated span (NUL-terminated, in the arena) and starts a new one. */
static pt_str_t cur_take(pt_http1_parser_t *p)
{
    pt_str_t s;
    if (p->cur == NULL) {
        s = PT_STR_LIT("");
    } else {
        p->cur[p->cur_len] = '\0';
        s = (pt_str_t){p->cur, p->cur_len};
    }
    p->cur = NULL;
    p->cur_len = p->cur_cap = 0;
    return s;
}

static int on_span(llhttp_t *l, const char *at, size_t len)
{
    pt_http1_parser_t *p = P(l);
    if (p->msg_state == ST_TRAILERS) {
        /* trailers come after the head budget was spent; bound them separately */
        p->head_bytes += (uint32_t)len;
        if (p->head_bytes > p->limits.max_header_bytes) {
            fail(p, 431, "trailer section too large");
            return HPE_USER;
        }
    }
    cur_append(p, at, len);
    return 0;
}

/* ---- start line ------------------------------------------------------------------------------ */

static int on_message_begin(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    if (p->arena == NULL)
        abort(); /* pt_http1_parser_set_arena() was not called: a bug in the caller */
    memset(&p->head, 0, sizeof(p->head));
    memset(&p->framing, 0, sizeof(p->framing));
    p->head.content_length = -1;
    p->head.method_id = -1;
    p->headers_cap = 0;
    p->in_trailers = 0;
    p->cur = NULL;
    p->cur_len = p->cur_cap = 0;
    p->msg_state = ST_LINE;
    return 0;
}

static int on_method_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    p->head.method = cur_take(p);
    p->head.method_id = l->method;
    if (l->method == HTTP_CONNECT)
        return fail(p, 501, "CONNECT is not supported");
    return 0;
}

/* host = IP-literal / IPv4address / reg-name, then [":" port] (RFC 9110 §4.2.3, RFC 3986 §3.2.2).
 * Userinfo, spaces, empty hosts and ports that are empty, not digits or over 65535 fail. */
static bool valid_authority(pt_str_t a)
{
    const unsigned char *s = (const unsigned char *)a.base;
    size_t n = a.len, i = 0;
    if (n == 0)
        return false;
    if (s[0] == '[') {
        i = 1;
        size_t start = i;
        while (i < n && (is_hex(s[i]) || s[i] == ':' || s[i] == '.'))
            i++;
        if (i == start || i >= n || s[i] != ']')
            return false;
        i++;
    } else {
        size_t start = i;
        while (i < n && s[i] != ':') {
            unsigned char c = s[i];
            if (is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
                c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' ||
                c == '+' || c == ',' || c == ';' || c == '=') {
                i++;
            } else if (c == '%' && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
                i += 3;
            } else {
                return false;
            }
        }
        if (i == start)
            return false;
    }
    if (i == n)
        return true;
    if (s[i] != ':')
        return false;
    i++;
    if (i == n || n - i > 5)
        return false;
    unsigned port = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        port = port * 10 + (s[i] - '0');
    }
    return port <= 65535;
}

static int on_url_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    pt_str_t t = cur_take(p);
    p->framing.target = t;
    const unsigned char *s = (const unsigned char *)t.base;
    for (size_t i = 0; i < t.len; i++) {
        /* llhttp strict already refuses most of these; a fragment is never part of a target */
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '#')
            return fail(p, 400, "invalid character in request-target");
    }
    if (t.len > 0 && s[0] == '/') {
        p->head.path = t; /* origin-form */
        return 0;
    }
    if (t.len == 1 && s[0] == '*') {
        if (l->method != HTTP_OPTIONS)
            return fail(p, 400, "asterisk-form is only for OPTIONS");
        p->head.path = t;
        return 0;
    }
    /* absolute-form (RFC 9112 §3.2.2): only http and https */
    size_t skip;
    if (t.len >= 7 && strncasecmp(t.base, "http://", 7) == 0)
        skip = 7;
    else if (t.len >= 8 && strncasecmp(t.base, "https://", 8) == 0)
        skip = 8;
    else
        return fail(p, 400, "request-target is not origin-form or absolute-form");
    p->head.scheme = skip == 7 ? PT_STR_LIT("http") : PT_STR_LIT("https");
    size_t end = skip;
    while (end < t.len && s[end] != '/' && s[end] != '?')
        end++;
    pt_str_t auth = {t.base + skip, end - skip};
    if (memchr(auth.base, '@', auth.len) != NULL)
        return fail(p, 400, "userinfo in request-target");
    if (!valid_authority(auth))
        return fail(p, 400, "invalid authority in request-target");
    p->head.authority = (pt_str_t){pt_arena_strndup(p->arena, auth.base, auth.len), auth.len};
    if (end < t.len && s[end] == '/') {
        p->head.path = (pt_str_t){t.base + end, t.len - end}; /* NUL-terminated: t is */
    } else {
        /* empty path: the origin-form is "/" plus any query */
        size_t n = t.len - end + 1;
        char *path = pt_arena_alloc(p->arena, n + 1);
        path[0] = '/';
        memcpy(path + 1, t.base + end, t.len - end);
        path[n] = '\0';
        p->head.path = (pt_str_t){path, n};
    }
    return 0;
}

static int on_version_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    (void)cur_take(p);
    if (l->http_major != 1 || l->http_minor > 1)
        return fail(p, 505, "unsupported HTTP version");
    p->head.version = (uint8_t)(PT_HTTP_10 + l->http_minor);
    if (!p->is_response)
        p->msg_state = ST_FIELDS; /* the request line is complete: 414 no longer applies */
    return 0;
}

static int on_status_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    p->head.reason = cur_take(p);
    p->head.status = l->status_code;
    if (l->status_code < 100 || l->status_code > 599)
        return fail(p, 502, "status code out of range");
    const unsigned char *s = (const unsigned char *)p->head.reason.base;
    for (size_t i = 0; i < p->head.reason.len; i++) {
        if (!is_field_vchar(s[i]))
            return fail(p, 502, "invalid character in reason phrase");
    }
    p->msg_state = ST_FIELDS;
    return 0;
}

/* ---- fields ---------------------------------------------------------------------------------- */

static int on_header_field_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    if (p->msg_state == ST_LINE && !p->is_response)
        return fail(p, 400, "request line without HTTP version"); /* HTTP/0.9 style */
    pt_str_t name = cur_take(p);
    if (name.len == 0)
        return fail(p, 400, "empty field name");
    const unsigned char *s = (const unsigned char *)name.base;
    for (size_t i = 0; i < name.len; i++) {
        if (!tchar[s[i]])
            return fail(p, 400, "invalid character in field name");
    }
    pt_http_msg_t *h = &p->head;
    if (h->n_headers >= p->limits.max_headers)
        return fail(p, 431, p->in_trailers ? "too many trailer fields" : "too many header fields");
    if (h->n_headers == p->headers_cap) {
        size_t cap = p->headers_cap ? p->headers_cap * 2 : 16;
        if (cap > p->limits.max_headers)
            cap = p->limits.max_headers;
        pt_header_t *n = pt_arena_alloc(p->arena, cap * sizeof(*n));
        if (h->n_headers)
            memcpy(n, h->headers, h->n_headers * sizeof(*n));
        h->headers = n;
        p->headers_cap = cap;
    }
    pt_header_t *hd = &h->headers[h->n_headers++];
    hd->name = name;
    hd->value = PT_STR_LIT("");
    hd->flags = 0;
    if (p->in_trailers) {
        p->head_bytes += 4; /* ": " and CRLF, roughly: the separators are not in the spans */
    }
    return 0;
}

static int on_header_value_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    pt_str_t v = cur_take(p);
    pt_http_msg_t *h = &p->head;
    if (h->n_headers == 0)
        return fail(p, 400, "field value without a name"); /* llhttp never does this */
    const unsigned char *s = (const unsigned char *)v.base;
    size_t b = 0, e = v.len;
    for (size_t i = 0; i < v.len; i++) {
        if (!is_field_vchar(s[i]))
            return fail(p, 400, "invalid character in field value");
    }
    while (b < e && (s[b] == ' ' || s[b] == '\t'))
        b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    if (e < v.len)
        ((char *)v.base)[e] = '\0'; /* ours: the span buffer is in the arena */
    h->headers[h->n_headers - 1].value = (pt_str_t){v.base + b, e - b};
    return 0;
}

/* ---- head validation --------------------------------------------------------------------------
 */

static int header_id(pt_str_t n)
{
    switch (n.len) {
    case 2: return strncasecmp(n.base, "te", 2) == 0 ? H_TE : H_OTHER;
    case 4: return strncasecmp(n.base, "host", 4) == 0 ? H_HOST : H_OTHER;
    case 6: return strncasecmp(n.base, "expect", 6) == 0 ? H_EXPECT : H_OTHER;
    case 7: return strncasecmp(n.base, "upgrade", 7) == 0 ? H_UPGRADE : H_OTHER;
    case 10:
        if (strncasecmp(n.base, "connection", 10) == 0)
            return H_CONNECTION;
        return strncasecmp(n.base, "keep-alive", 10) == 0 ? H_KEEP_ALIVE : H_OTHER;
    case 14: return strncasecmp(n.base, "content-length", 14) == 0 ? H_CONTENT_LENGTH : H_OTHER;
    case 16: return strncasecmp(n.base, "proxy-connection", 16) == 0 ? H_PROXY_CONNECTION : H_OTHER;
    case 17:
        return strncasecmp(n.base, "transfer-encoding", 17) == 0 ? H_TRANSFER_ENCODING : H_OTHER;
    default: return H_OTHER;
    }
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6); no sign, no list, no overflow. */
static bool parse_content_length(pt_str_t v, int64_t *out)
{
    if (v.len == 0)
        return false;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (!is_digit(c) || n > (INT64_MAX - (c - '0')) / 10)
            return false;
        n = n * 10 + (c - '0');
    }
    *out = n;
    return true;
}

/* Marks every header that the Connection header value v nominates as hop-by-hop
 * (RFC 9110 §7.6.1), except Host and Content-Length which a peer may not strip that way. */
static void mark_connection_tokens(pt_http_msg_t *h, pt_str_t v)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ','))
            i++;
        size_t b = i;
        while (i < v.len && v.base[i] != ',')
            i++;
        size_t e = i;
        while (e > b && (v.base[e - 1] == ' ' || v.base[e - 1] == '\t'))
            e--;
        if (e == b)
            continue;
        pt_str_t tok = {v.base + b, e - b};
        if (pt_str_ieq_lit(tok, "close") || pt_str_ieq_lit(tok, "keep-alive"))
            continue; /* options, not field names (Keep-Alive is already hop-by-hop) */
        for (size_t k = 0; k < h->n_headers; k++) {
            pt_header_t *hd = &h->headers[k];
            if (!pt_str_ieq(hd->name, tok))
                continue;
            int id = header_id(hd->name);
            if (id != H_HOST && id != H_CONTENT_LENGTH)
                hd->flags |= PT_HEADER_HOP;
        }
    }
}

static int validate_head(pt_http1_parser_t *p, llhttp_t *l)
{
    pt_http_msg_t *h = &p->head;
    pt_http1_framing_t *f = &p->framing;
    const pt_header_t *host = NULL, *cl = NULL, *te = NULL;
    int n_host = 0, n_cl = 0, n_te = 0;
    bool bad_expect = false;
    for (size_t i = 0; i < h->n_headers; i++) {
        pt_header_t *hd = &h->headers[i];
        switch (header_id(hd->name)) {
        case H_HOST:
            n_host++;
            host = hd;
            break;
        case H_CONTENT_LENGTH:
            hd->flags |= PT_HEADER_FRAMING;
            n_cl++;
            cl = hd;
            break;
        case H_TRANSFER_ENCODING:
            hd->flags |= PT_HEADER_FRAMING | PT_HEADER_HOP;
            n_te++;
            te = hd;
            break;
        case H_UPGRADE:
            hd->flags |= PT_HEADER_HOP;
            h->upgrade = hd->value;
            break;
        case H_CONNECTION:
        case H_KEEP_ALIVE:
        case H_PROXY_CONNECTION:
        case H_TE: hd->flags |= PT_HEADER_HOP; break;
        case H_EXPECT:
            if (p->is_response)
                break;
            if (pt_str_ieq_lit(hd->value, "100-continue"))
                h->expects_continue = h->version >= PT_HTTP_11; /* RFC 9110 §10.1.1: not on 1.0 */
            else
                bad_expect = true;
            break;
        default: break;
        }
    }
    /* Framing first: these are the smuggling vectors (RFC 9112 §6.1, §6.3). */
    if (n_cl && n_te)
        return fail(p, 400, "Transfer-Encoding with Content-Length");
    if (n_cl > 1)
        return fail(p, 400, "duplicate Content-Length");
    if (cl != NULL && !parse_content_length(cl->value, &h->content_length))
        return fail(p, 400, "invalid Content-Length");
    if (te != NULL) {
        if (!p->is_response && h->version == PT_HTTP_10)
            return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (n_te > 1) /* 400 like llhttp's "chunked, then more" (RFC 9112 §6.3 item 4) */
            return fail(p, 400, "several Transfer-Encoding fields");
        if (!pt_str_ieq_lit(te->value, "chunked"))
            return fail(p, 501, "Transfer-Encoding other than chunked");
        f->is_chunked = true;
    }
    if (!p->is_response) {
        if (n_host > 1)
            return fail(p, 400, "several Host fields");
        if (host == NULL && h->version >= PT_HTTP_11)
            return fail(p, 400, "missing Host");
        if (host != NULL && !(host->value.len == 0 && h->version == PT_HTTP_10) &&
            !valid_authority(host->value))
            return fail(p, 400, "invalid Host");
        if (h->authority.base == NULL)
            h->authority = host ? host->value : PT_STR_LIT("");
        if (bad_expect)
            return fail(p, 417, "unsupported expectation");
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        if (header_id(h->headers[i].name) == H_CONNECTION)
            mark_connection_tokens(h, h->headers[i].value);
    }
    f->is_keep_alive = llhttp_should_keep_alive(l) != 0;
    if (p->is_response) {
        int st = h->status;
        h->is_upgrade = st == 101;
        bool no_body = st < 200 || st == 204 || st == 304;
        f->is_close_delimited = !no_body && !f->is_chunked && h->content_length < 0;
        h->has_body = !no_body && h->content_length != 0;
        if (st == 101 && h->upgrade.base == NULL)
            return fail(p, 502, "101 without Upgrade");
    } else {
        if (l->upgrade && h->method_id != HTTP_CONNECT && pt_str_ieq_lit(h->upgrade, "h2c")) {
            /* RFC 9113 §3.1: the HTTP/1.1 Upgrade to h2c is obsolete; Petrel does not perform
             * it, and neither it nor its settings go upstream: the request is served as it is. */
            l->upgrade = 0;
            for (size_t i = 0; i < h->n_headers; i++)
                if (pt_str_ieq_lit(h->headers[i].name, "http2-settings"))
                    h->headers[i].flags |= PT_HEADER_HOP;
        }
        h->is_upgrade = l->upgrade != 0;
        if (!h->is_upgrade)
            h->upgrade = (pt_str_t){NULL, 0};
        h->has_body = h->content_length > 0 || f->is_chunked;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    if (p->msg_state == ST_LINE && !p->is_response)
        return fail(p, 400, "request line without HTTP version");
    if (validate_head(p, l) != 0)
        return -1;
    p->msg_state = ST_BODY;
    pt_http_msg_t *head = pt_arena_memdup(p->arena, &p->head, sizeof(p->head));
    if (!p->is_response && p->framing.is_chunked) {
        /* Held until execute has checked the chunked framing already buffered behind it. */
        p->held_head = head;
        return HPE_PAUSED;
    }
    int rc = p->cbs->on_head ? p->cbs->on_head(p, head) : 0;
    if (rc < 0)
        return cb_failed(p);
    if (!p->is_response)
        return 0; /* a request's framing is never the caller's to override */
    int st = head->status;
    if (rc == PT_HTTP1_SKIP_BODY || st < 200 || st == 204 || st == 304) {
        /* No body whatever the headers say (RFC 9112 §6.3 items 1-2). */
        p->framing.is_close_delimited = false;
        p->framing.is_keep_alive = head->version >= PT_HTTP_11
                                       ? !(l->flags & F_CONNECTION_CLOSE)
                                       : (l->flags & F_CONNECTION_KEEP_ALIVE) != 0;
        return 1;
    }
    return 0;
}

/* ---- body, trailers, completion -----------------------------------------------------------------
 */

static int on_body(llhttp_t *l, const char *at, size_t len)
{
    pt_http1_parser_t *p = P(l);
    if (p->cbs->on_body && p->cbs->on_body(p, at, len) < 0) {
        cb_failed(p);
        return HPE_USER;
    }
    return 0;
}

static int on_chunk_header(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    if (l->content_length == 0) {
        /* the last chunk: any fields that follow are trailers, in an array of their own */
        p->in_trailers = 1;
        p->msg_state = ST_TRAILERS;
        p->head.headers = NULL;
        p->head.n_headers = 0;
        p->headers_cap = 0;
        p->head_bytes = 0;
    }
    return 0;
}

static int on_message_complete(llhttp_t *l)
{
    pt_http1_parser_t *p = P(l);
    if (p->in_trailers && p->head.n_headers > 0 && p->cbs->on_trailers) {
        if (p->cbs->on_trailers(p, p->head.headers, p->head.n_headers) < 0)
            return cb_failed(p);
    }
    p->msg_state = ST_IDLE;
    p->head_bytes = 0;
    p->line_bytes = 0;
    p->in_trailers = 0;
    p->scan_state = p->is_response ? SCAN_LINE : SCAN_BEFORE;
    p->scan_prev = 0;
    if (p->is_response && p->head.status == 101)
        p->is_upgraded = true;
    if (p->cbs->on_complete && p->cbs->on_complete(p) < 0)
        return cb_failed(p);
    /* An upgrade makes llhttp stop with HPE_PAUSED_UPGRADE by itself right after this. */
    return l->upgrade ? 0 : HPE_PAUSED;
}

/* ---- public -----------------------------------------------------------------------------------
 */

/* One table for every parser: the callbacks never change, so no parser carries its own copy. */
static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_span,
    .on_url = on_span,
    .on_version = on_span,
    .on_status = on_span,
    .on_header_field = on_span,
    .on_header_value = on_span,
    .on_method_complete = on_method_complete,
    .on_url_complete = on_url_complete,
    .on_version_complete = on_version_complete,
    .on_status_complete = on_status_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

void pt_http1_parser_init(pt_http1_parser_t *p, bool is_response, const pt_http1_callbacks_t *cbs,
                          void *data, const pt_http1_limits_t *limits)
{
    memset(p, 0, sizeof(*p));
    llhttp_init(&p->llhttp, is_response ? HTTP_RESPONSE : HTTP_REQUEST, &settings);
    p->llhttp.data = p;
    p->cbs = cbs;
    p->data = data;
    p->limits = limits ? *limits : PT_HTTP1_LIMITS_DEFAULT;
    if (p->limits.max_request_line_bytes == 0)
        p->limits.max_request_line_bytes = PT_HTTP1_LIMITS_DEFAULT.max_request_line_bytes;
    if (p->limits.max_header_bytes == 0)
        p->limits.max_header_bytes = PT_HTTP1_LIMITS_DEFAULT.max_header_bytes;
    if (p->limits.max_headers == 0)
        p->limits.max_headers = PT_HTTP1_LIMITS_DEFAULT.max_headers;
    p->is_response = is_response;
    p->msg_state = ST_IDLE;
    p->scan_state = is_response ? SCAN_LINE : SCAN_BEFORE;
}

void pt_http1_parser_set_arena(pt_http1_parser_t *p, pt_arena_t *arena)
{
    p->arena = arena;
}

static bool reason_is(const llhttp_t *l, const char *r)
{
    return l->reason != NULL && strcmp(l->reason, r) == 0;
}

/* Maps an error llhttp found by itself to a status. */
static void llhttp_failure(pt_http1_parser_t *p, llhttp_errno_t err, const char *pos)
{
    const llhttp_t *l = &p->llhttp;
    int status = 400;
    switch (err) {
    case HPE_INVALID_METHOD:
        /* a token that is no method we know: 501 (RFC 9110 §9.1); anything else is garbage */
        if (reason_is(l, "Invalid method encountered") && pos != NULL && tchar[(unsigned char)*pos])
            status = 501;
        break;
    case HPE_INVALID_CONSTANT:
        if (reason_is(l, "Invalid method for HTTP/x.x request"))
            status = 501; /* an RTSP method sent as HTTP */
        break;
    case HPE_INVALID_VERSION: status = reason_is(l, "Invalid HTTP version") ? 505 : 400; break;
    case HPE_PAUSED_H2_UPGRADE:
        status = 505; /* an HTTP/2 preface on an HTTP/1 connection */
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        /* RFC 9112 §6.3: chunked not final in a request is 400; llhttp says so only then */
        status = 400;
        break;
    default: break;
    }
    p->error_status = p->is_response ? 502 : status;
    p->error_reason = l->reason ? l->reason : llhttp_errno_name(err);
    p->msg_state = ST_FAILED;
}

/* Looks at the head bytes about to be fed to llhttp for what llhttp lets through even in strict
 * mode: a second SP in the request line (RFC 9112 §3), a bare LF ending a line (§2.2) and a
 * field line that starts with whitespace, i.e. obs-fold or whitespace before the first field
 * (RFC 9112 §5.2, §2.2). Returns
 * the offset of the offending byte, or n. The scan may run past the end of the head into the
 * body: execute feeds llhttp up to the offset and only fails if the head is still open there. */
static size_t scan_head(pt_http1_parser_t *p, const char *data, size_t n, const char **why)
{
    const unsigned char *s = (const unsigned char *)data;
    unsigned char prev = p->scan_prev;
    size_t i = 0;
    while (i < n && p->scan_state != SCAN_FIELDS) {
        unsigned char c = s[i];
        if (p->scan_state == SCAN_BEFORE) {
            if (c != '\r' && c != '\n')
                p->scan_state = SCAN_LINE;
        } else if (c == '\n') {
            if (prev != '\r') {
                p->scan_prev = prev;
                *why = "bare LF";
                return i;
            }
            p->scan_state = SCAN_FIELDS;
        } else if (c == ' ' && prev == ' ' && !p->is_response) {
            p->scan_prev = prev;
            *why = "extra whitespace in request line";
            return i;
        }
        prev = c;
        i++;
    }
    if (i < n) {
        /* field lines: only what follows each LF matters */
        if (prev == '\n' && (s[i] == ' ' || s[i] == '\t')) {
            p->scan_prev = prev;
            *why = "obs-fold or whitespace at the start of a field line";
            return i;
        }
        for (;;) {
            const unsigned char *lf = memchr(s + i, '\n', n - i);
            if (lf == NULL)
                break;
            i = (size_t)(lf - s) + 1;
            if ((i >= 2 ? s[i - 2] : prev) != '\r') {
                p->scan_prev = i >= 2 ? s[i - 2] : prev;
                *why = "bare LF";
                return i - 1;
            }
            if (i == n)
                break;
            if (s[i] == ' ' || s[i] == '\t') {
                p->scan_prev = '\n';
                *why = "obs-fold or whitespace at the start of a field line";
                return i;
            }
        }
        prev = s[n - 1];
    }
    p->scan_prev = prev;
    return n;
}

/* The probe stops at the end of the message: what follows is the next request's. */
static int probe_message_complete(llhttp_t *l)
{
    (void)l;
    return HPE_PAUSED;
}

/* Runs a copy of the parser over the chunked body bytes [from, end) without delivering
 * anything: a chunk size that is not hex or too large, or a chunk not ended by CRLF, fails
 * here, before the head goes anywhere (issue: a request whose framing is broken must not
 * reach the upstream even as a head). On failure the parser takes the copy's error. */
static bool chunked_framing_ok(pt_http1_parser_t *p, const char *from, const char *end)
{
    static const llhttp_settings_t probe_settings = {.on_message_complete = probe_message_complete};
    llhttp_t probe = p->llhttp;
    probe.settings = (void *)&probe_settings;
    llhttp_errno_t err = llhttp_execute(&probe, from, (size_t)(end - from));
    if (err == HPE_OK || err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
        return true;
    probe.settings = p->llhttp.settings;
    p->llhttp = probe;
    llhttp_failure(p, err, llhttp_get_error_pos(&probe));
    return false;
}

int pt_http1_parser_execute(pt_http1_parser_t *p, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (p->msg_state == ST_FAILED)
        return PT_HTTP1_EINVALID;
    if (p->msg_state == ST_CB_FAILED)
        return PT_HTTP1_ECALLBACK;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        bool limited = false;
        int limit_status = 0;
        bool in_head = p->msg_state <= ST_FIELDS;
        if (in_head) {
            /* feed no more than the head may still take, so the limit bites at its first byte */
            uint32_t budget = p->limits.max_header_bytes - p->head_bytes;
            limit_status = 431;
            if (!p->is_response && p->msg_state <= ST_LINE) {
                uint32_t lb = p->limits.max_request_line_bytes - p->line_bytes;
                if (lb <= budget) {
                    budget = lb;
                    limit_status = 414;
                }
            }
            if (n > budget) {
                n = budget;
                limited = true;
            }
        }
        const char *bad = NULL;
        if (in_head || p->msg_state == ST_TRAILERS) {
            size_t cut = scan_head(p, data + off, n, &bad);
            if (cut < n) {
                n = cut;
                limited = false;
            } else {
                bad = NULL;
            }
        }
        llhttp_errno_t err = llhttp_execute(&p->llhttp, data + off, n);
        while (err == HPE_PAUSED && p->held_head != NULL) {
            /* A chunked request's head: delivered once the body bytes that came with it
             * passed the probe; then the same bytes are parsed on, with the same scan. */
            const char *at = llhttp_get_error_pos(&p->llhttp);
            pt_http_msg_t *head = p->held_head;
            p->held_head = NULL;
            *consumed = (size_t)(at - data);
            llhttp_resume(&p->llhttp);
            if (!chunked_framing_ok(p, at, data + len))
                return PT_HTTP1_EINVALID;
            if (p->cbs->on_head && p->cbs->on_head(p, head) < 0) {
                cb_failed(p);
                return PT_HTTP1_ECALLBACK;
            }
            err = llhttp_execute(&p->llhttp, at, (size_t)(data + off + n - at));
        }
        if (err == HPE_OK) {
            off += n;
            if (in_head) {
                p->head_bytes += (uint32_t)n;
                p->line_bytes += (uint32_t)n;
            }
            bool line = limit_status == 414;
            if (limited && p->msg_state <= (line ? ST_LINE : ST_FIELDS)) {
                p->error_status = p->is_response ? 502 : limit_status;
                p->error_reason = line ? "request line too long" : "header section too large";
                p->msg_state = ST_FAILED;
                *consumed = off;
                return PT_HTTP1_EINVALID;
            }
            if (bad != NULL) {
                if (p->msg_state <= ST_FIELDS || p->msg_state == ST_TRAILERS) {
                    p->error_status = p->is_response ? 502 : 400;
                    p->error_reason = bad;
                    p->msg_state = ST_FAILED;
                    *consumed = off;
                    return PT_HTTP1_EINVALID;
                }
                /* the head ended before the suspicious byte: it was body */
            }
            continue;
        }
        const char *pos = llhttp_get_error_pos(&p->llhttp);
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            *consumed = off + (size_t)(pos - (data + off));
            if (err == HPE_PAUSED_UPGRADE)
                p->is_upgraded = true;
            return PT_HTTP1_PAUSED;
        }
        *consumed =
            pos != NULL && pos >= data + off && pos <= data + off + n ? (size_t)(pos - data) : off;
        if (p->msg_state == ST_CB_FAILED)
            return PT_HTTP1_ECALLBACK;
        if (p->msg_state != ST_FAILED)
            llhttp_failure(p, err, pos);
        return PT_HTTP1_EINVALID;
    }
    *consumed = len;
    return PT_HTTP1_OK;
}

void pt_http1_parser_resume(pt_http1_parser_t *p)
{
    llhttp_errno_t err = llhttp_get_errno(&p->llhttp);
    if (err == HPE_PAUSED) {
        llhttp_resume(&p->llhttp);
    } else if (err == HPE_PAUSED_UPGRADE) {
        /* the other side declined the upgrade: the connection goes on as HTTP/1 */
        llhttp_resume_after_upgrade(&p->llhttp);
        p->is_upgraded = false;
    }
}

int pt_http1_parser_finish(pt_http1_parser_t *p)
{
    switch (p->msg_state) {
    case ST_IDLE: return PT_HTTP1_OK;
    case ST_FAILED: return PT_HTTP1_EINVALID;
    case ST_CB_FAILED: return PT_HTTP1_ECALLBACK;
    case ST_BODY:
        if (p->is_response && p->framing.is_close_delimited) {
            llhttp_errno_t err = llhttp_finish(&p->llhttp);
            if (p->msg_state == ST_CB_FAILED)
                return PT_HTTP1_ECALLBACK;
            if (err == HPE_OK || err == HPE_PAUSED)
                return PT_HTTP1_OK;
        }
        break;
    default: break;
    }
    p->error_status = p->is_response ? 502 : 400;
    p->error_reason = "connection closed in the middle of a message";
    p->msg_state = ST_FAILED;
    return PT_HTTP1_EINVALID;
}

bool pt_http1_parser_in_message(const pt_http1_parser_t *p)
{
    return p->msg_state >= ST_LINE && p->msg_state <= ST_TRAILERS;
}

bool pt_http1_parser_holds_nothing(const pt_http1_parser_t *p)
{
    return p->msg_state == ST_IDLE && p->head_bytes == 0;
}

pt_buf_t *pt_http1_last_chunk(const pt_header_t *t, size_t n, uv_buf_t *out)
{
    size_t size = 8;
    for (size_t i = 0; i < n; i++)
        size += t[i].name.len + t[i].value.len + 4;
    pt_buf_t *slab = pt_buf_new_sized(size);
    char *p = slab->data;
    memcpy(p, "0\r\n", 3);
    p += 3;
    for (size_t i = 0; i < n; i++)
        if (!(t[i].flags & (PT_HEADER_HOP | PT_HEADER_FRAMING)))
            p = pt_http1_put_field(p, t[i].name, t[i].value);
    *p++ = '\r';
    *p++ = '\n';
    *out = uv_buf_init(slab->data, (unsigned)(p - slab->data));
    return slab;
}
