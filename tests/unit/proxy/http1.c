/* tests/unit/proxy/http1.c
 * The HTTP/1 codec: requests and responses fed whole and byte by byte, pipelining, bodies,
 * trailers, upgrades, every error class with its status, the limits at their boundaries, and
 * the malformed-request corpus in tests/e2e/malformed/ (each file must fail with the status
 * expected.tsv gives, before on_head). */
#include "proxy/http1.h"

#include <stdio.h>

#include "test.h"

typedef struct rec {
    int heads, completes, trailers;
    pt_http_msg_t head;         /* the last head */
    pt_http1_framing_t framing; /* and its framing, as on_head saw it */
    char body[4096];
    size_t body_len;
    pt_header_t trailer[8];
    size_t n_trailers;
    int skip_body; /* on_head answer for responses */
} rec_t;

static int on_head(pt_http1_parser_t *p, pt_http_msg_t *h)
{
    rec_t *r = p->data;
    r->heads++;
    r->head = *h;
    r->framing = p->framing;
    r->framing = p->framing;
    return r->skip_body ? PT_HTTP1_SKIP_BODY : 0;
}

static int on_body(pt_http1_parser_t *p, const char *at, size_t len)
{
    rec_t *r = p->data;
    if (r->body_len + len <= sizeof(r->body)) {
        memcpy(r->body + r->body_len, at, len);
        r->body_len += len;
    }
    return 0;
}

static int on_trailers(pt_http1_parser_t *p, pt_header_t *t, size_t n)
{
    rec_t *r = p->data;
    r->trailers++;
    r->n_trailers = n < 8 ? n : 8;
    memcpy(r->trailer, t, r->n_trailers * sizeof(*t));
    return 0;
}

static int on_complete(pt_http1_parser_t *p)
{
    rec_t *r = p->data;
    r->completes++;
    return 0;
}

static const pt_http1_callbacks_t cbs = {on_head, on_body, on_trailers, on_complete};

typedef struct fx {
    pt_http1_parser_t p;
    pt_arena_t arena;
    rec_t r;
} fx_t;

static void fx_init(fx_t *f, bool response, const pt_http1_limits_t *limits)
{
    memset(f, 0, sizeof(*f));
    pt_arena_init(&f->arena, 0);
    pt_http1_parser_init(&f->p, response, &cbs, &f->r, limits);
    pt_http1_parser_set_arena(&f->p, &f->arena);
}

/* Feeds s (whole, or one byte per execute when split) until the first pause or error. Returns
 * the execute result; *used is how many bytes were consumed. */
static int feed(fx_t *f, const char *s, size_t len, bool split, size_t *used)
{
    size_t off = 0;
    while (off < len) {
        size_t n = split ? 1 : len - off, c = 0;
        int rc = pt_http1_parser_execute(&f->p, s + off, n, &c);
        ASSERT(c <= n);
        off += c;
        if (rc != PT_HTTP1_OK) {
            *used = off;
            return rc;
        }
        ASSERT_EQ(c, n);
    }
    *used = off;
    return PT_HTTP1_OK;
}

#define FEED(f, lit, split, used) feed((f), (lit), sizeof(lit) - 1, (split), (used))

static bool streq(pt_str_t s, const char *lit)
{
    return s.base != NULL && pt_str_eq(s, pt_str(lit));
}

/* Runs a request through a fresh parser, whole then byte by byte; both must give status
 * (0 = paused after a complete message) and never call on_head when status != 0. */
static void expect_request(const char *s, size_t len, int status, const pt_http1_limits_t *lim)
{
    for (int split = 0; split < 2; split++) {
        fx_t f;
        fx_init(&f, false, lim);
        size_t used;
        int rc = feed(&f, s, len, split, &used);
        if (status == 0) {
            if (rc != PT_HTTP1_PAUSED)
                fprintf(stderr, "unexpected failure: %d %s\n", f.p.error_status,
                        f.p.error_reason ? f.p.error_reason : "-");
            ASSERT_EQ(rc, PT_HTTP1_PAUSED);
            ASSERT_EQ(f.r.completes, 1);
        } else {
            if (f.p.error_status != status)
                fprintf(stderr, "split=%d reason: %s\n", split,
                        f.p.error_reason ? f.p.error_reason : "-");
            ASSERT_EQ(rc, PT_HTTP1_EINVALID);
            ASSERT_EQ(f.p.error_status, status);
            ASSERT(f.p.error_reason != NULL);
            ASSERT_EQ(f.r.heads, 0);
        }
        pt_arena_dispose(&f.arena);
    }
}

#define REQ(lit, status) expect_request((lit), sizeof(lit) - 1, (status), NULL)

/* ---- requests -----------------------------------------------------------------------------------
 */

TEST(simple_get)
{
    for (int split = 0; split < 2; split++) {
        fx_t f;
        fx_init(&f, false, NULL);
        size_t used;
        static const char req[] = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n"
                                  "User-Agent:   t  \r\nX-Empty:\r\n\r\n";
        ASSERT_EQ(FEED(&f, req, split, &used), PT_HTTP1_PAUSED);
        ASSERT_EQ(used, sizeof(req) - 1);
        ASSERT_EQ(f.r.heads, 1);
        ASSERT_EQ(f.r.completes, 1);
        pt_http_msg_t *h = &f.r.head;
        ASSERT_STREQ(h->method.base, "GET");
        ASSERT_EQ(h->method_id, HTTP_GET);
        ASSERT(streq(f.r.framing.target, "/a/b?c=d"));
        ASSERT(streq(h->path, "/a/b?c=d"));
        ASSERT(streq(h->authority, "example.com:8080"));
        ASSERT_EQ(h->version, PT_HTTP_11);
        ASSERT_EQ(h->n_headers, 3);
        ASSERT(streq(h->headers[1].name, "User-Agent"));
        ASSERT_STREQ(h->headers[1].value.base, "t"); /* trimmed and NUL-terminated */
        ASSERT_EQ(h->headers[2].value.len, 0);
        ASSERT_EQ(h->content_length, -1);
        ASSERT(!f.r.framing.is_chunked);
        ASSERT(f.r.framing.is_keep_alive);
        ASSERT(!h->is_upgrade);
        ASSERT(!h->expects_continue);
        const pt_header_t *ua = pt_http_msg_find_header(h, "user-agent");
        ASSERT(ua != NULL && streq(ua->value, "t"));
        ASSERT(pt_http_msg_find_header(h, "cookie") == NULL);
        ASSERT(!pt_http1_parser_in_message(&f.p));
        ASSERT_EQ(pt_http1_parser_finish(&f.p), PT_HTTP1_OK);
        pt_arena_dispose(&f.arena);
    }
}

TEST(pipelined_pause_resume)
{
    fx_t f;
    fx_init(&f, false, NULL);
    static const char req[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                              "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                              "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    size_t len = sizeof(req) - 1, off = 0, c;
    const char *paths[] = {"/1", "/2", "/3"};
    for (int i = 0; i < 3; i++) {
        pt_arena_t a;
        pt_arena_init(&a, 0);
        pt_http1_parser_set_arena(&f.p, &a);
        ASSERT_EQ(pt_http1_parser_execute(&f.p, req + off, len - off, &c), PT_HTTP1_PAUSED);
        off += c;
        ASSERT_EQ(f.r.heads, i + 1);
        ASSERT_EQ(f.r.completes, i + 1);
        ASSERT(streq(f.r.head.path, paths[i]));
        ASSERT_EQ(f.r.framing.is_keep_alive, i < 2);
        pt_http1_parser_resume(&f.p);
        pt_arena_dispose(&a);
    }
    ASSERT_EQ(off, len);
    ASSERT_EQ(f.r.body_len, 3);
    ASSERT_MEMEQ(f.r.body, 3, "xyz", 3);
    pt_arena_dispose(&f.arena);
}

TEST(content_length_body_split)
{
    for (int split = 0; split < 2; split++) {
        fx_t f;
        fx_init(&f, false, NULL);
        size_t used;
        static const char req[] = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"
                                  "hello world";
        ASSERT_EQ(FEED(&f, req, split, &used), PT_HTTP1_PAUSED);
        ASSERT_EQ(f.r.head.content_length, 11);
        ASSERT_EQ(f.r.head.headers[1].flags, PT_HEADER_FRAMING);
        ASSERT_MEMEQ(f.r.body, f.r.body_len, "hello world", 11);
        pt_arena_dispose(&f.arena);
    }
}

TEST(chunked_body_and_trailers_split)
{
    for (int split = 0; split < 2; split++) {
        fx_t f;
        fx_init(&f, false, NULL);
        size_t used;
        static const char req[] = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n"
                                  "\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n"
                                  "X-Sum: abc\r\nX-Other:  2 \r\n\r\n";
        ASSERT_EQ(FEED(&f, req, split, &used), PT_HTTP1_PAUSED);
        ASSERT_EQ(used, sizeof(req) - 1);
        ASSERT(f.r.framing.is_chunked);
        ASSERT_EQ(f.r.head.content_length, -1);
        ASSERT_EQ(f.r.head.headers[1].flags, PT_HEADER_FRAMING | PT_HEADER_HOP);
        ASSERT_MEMEQ(f.r.body, f.r.body_len, "hello world", 11);
        ASSERT_EQ(f.r.trailers, 1);
        ASSERT_EQ(f.r.n_trailers, 2);
        ASSERT(streq(f.r.trailer[0].name, "X-Sum"));
        ASSERT(streq(f.r.trailer[0].value, "abc"));
        ASSERT(streq(f.r.trailer[1].value, "2"));
        ASSERT_EQ(f.r.completes, 1);
        pt_arena_dispose(&f.arena);
    }
}

TEST(upgrade_leaves_tunnel_bytes)
{
    fx_t f;
    fx_init(&f, false, NULL);
    size_t used;
    static const char head[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                               "Upgrade: websocket\r\n\r\n";
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n\x81\x05hello";
    ASSERT_EQ(FEED(&f, req, false, &used), PT_HTTP1_PAUSED);
    ASSERT_EQ(used, sizeof(head) - 1);
    ASSERT(f.p.is_upgraded);
    ASSERT(f.r.head.is_upgrade);
    ASSERT(streq(f.r.head.upgrade, "websocket"));
    ASSERT(f.r.head.headers[1].flags & PT_HEADER_HOP);
    ASSERT(f.r.head.headers[2].flags & PT_HEADER_HOP);
    ASSERT_EQ(f.r.completes, 1);
    pt_arena_dispose(&f.arena);
}

TEST(absolute_form_and_asterisk)
{
    fx_t f;
    fx_init(&f, false, NULL);
    size_t used;
    ASSERT_EQ(
        FEED(&f, "GET http://Up.Example:81?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", false, &used),
        PT_HTTP1_PAUSED);
    ASSERT(streq(f.r.head.authority, "Up.Example:81"));
    ASSERT(streq(f.r.head.path, "/?q=1"));
    pt_http1_parser_resume(&f.p);
    ASSERT_EQ(FEED(&f, "OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", false, &used),
              PT_HTTP1_PAUSED);
    ASSERT(streq(f.r.head.path, "*"));
    ASSERT(streq(f.r.head.authority, "[::1]:80"));
    pt_http1_parser_resume(&f.p);
    ASSERT_EQ(FEED(&f, "GET https://h/p/q HTTP/1.1\r\nHost: h\r\n\r\n", false, &used),
              PT_HTTP1_PAUSED);
    ASSERT(streq(f.r.head.path, "/p/q"));
    pt_arena_dispose(&f.arena);
}

TEST(connection_nominated_headers_are_hop)
{
    fx_t f;
    fx_init(&f, false, NULL);
    size_t used;
    ASSERT_EQ(FEED(&f,
                   "POST / HTTP/1.1\r\nHost: a\r\nConnection: X-A, host, content-length\r\n"
                   "X-A: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\n"
                   "Content-Length: 0\r\nX-B: 2\r\nExpect: 100-continue\r\n\r\n",
                   false, &used),
              PT_HTTP1_PAUSED);
    pt_http_msg_t *h = &f.r.head;
    ASSERT_EQ(h->n_headers, 9);
    ASSERT_EQ(h->headers[0].flags, 0);                 /* Host: never hop */
    ASSERT_EQ(h->headers[1].flags, PT_HEADER_HOP);     /* Connection */
    ASSERT_EQ(h->headers[2].flags, PT_HEADER_HOP);     /* X-A */
    ASSERT_EQ(h->headers[3].flags, PT_HEADER_HOP);     /* Keep-Alive */
    ASSERT_EQ(h->headers[4].flags, PT_HEADER_HOP);     /* TE */
    ASSERT_EQ(h->headers[5].flags, PT_HEADER_HOP);     /* Proxy-Connection */
    ASSERT_EQ(h->headers[6].flags, PT_HEADER_FRAMING); /* Content-Length: framing only */
    ASSERT_EQ(h->headers[7].flags, 0);
    ASSERT(h->expects_continue);
    pt_arena_dispose(&f.arena);
}

TEST(keep_alive_rules)
{
    fx_t f;
    fx_init(&f, false, NULL);
    size_t used;
    ASSERT_EQ(FEED(&f, "GET / HTTP/1.0\r\n\r\n", false, &used), PT_HTTP1_PAUSED);
    ASSERT(!f.r.framing.is_keep_alive);
    ASSERT_EQ(f.r.head.version, PT_HTTP_10);
    ASSERT_EQ(f.r.head.authority.len, 0);
    pt_arena_dispose(&f.arena);
    fx_init(&f, false, NULL);
    ASSERT_EQ(FEED(&f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n",
                   false, &used),
              PT_HTTP1_PAUSED);
    ASSERT(f.r.framing.is_keep_alive);
    ASSERT(!f.r.head.expects_continue); /* ignored on 1.0 (RFC 9110 §10.1.1) */
    pt_arena_dispose(&f.arena);
    fx_init(&f, false, NULL);
    ASSERT_EQ(FEED(&f, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, &used),
              PT_HTTP1_PAUSED);
    ASSERT(!f.r.framing.is_keep_alive);
    pt_arena_dispose(&f.arena);
}

TEST(incomplete_request_at_eof)
{
    fx_t f;
    fx_init(&f, false, NULL);
    size_t used;
    ASSERT_EQ(FEED(&f, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", false, &used),
              PT_HTTP1_OK);
    ASSERT(pt_http1_parser_in_message(&f.p));
    ASSERT_EQ(pt_http1_parser_finish(&f.p), PT_HTTP1_EINVALID);
    ASSERT_EQ(f.p.error_status, 400);
    pt_arena_dispose(&f.arena);
}

TEST(request_errors)
{
    REQ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\nx", 400);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
    REQ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    REQ("GET / HTTP/1.1\r\n\r\n", 400);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    REQ("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400);
    REQ("GET / HTTP/1.1\r\nHost: a:x\r\n\r\n", 400);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400);
    REQ("GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    REQ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    REQ("GET / HTTP/x.1\r\nHost: a\r\n\r\n", 400);
    REQ("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    REQ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nExpect: whatever\r\n\r\n", 417);
    /* and the good neighbours of those */
    REQ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\n\r\n0\r\n\r\n", 0);
    REQ("GET / HTTP/1.1\r\nHost: 10.1.2.3:65535\r\n\r\n", 0);
    REQ("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example\r\nX: caf\xc3\xa9\r\n\r\n", 0);
    REQ("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-CONTINUE\r\n\r\n", 0);
}

TEST(errors_are_sticky)
{
    fx_t f;
    fx_init(&f, false, NULL);
    size_t used;
    ASSERT_EQ(FEED(&f, "GET / HTTP/1.1\r\n\r\n", false, &used), PT_HTTP1_EINVALID);
    ASSERT_EQ(FEED(&f, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false, &used), PT_HTTP1_EINVALID);
    ASSERT_EQ(used, 0);
    ASSERT_EQ(pt_http1_parser_finish(&f.p), PT_HTTP1_EINVALID);
    pt_arena_dispose(&f.arena);
}

static int failing_head(pt_http1_parser_t *p, pt_http_msg_t *h)
{
    return -1;
}

TEST(callback_error)
{
    static const pt_http1_callbacks_t bad = {failing_head, NULL, NULL, NULL};
    pt_arena_t a;
    pt_arena_init(&a, 0);
    pt_http1_parser_t p;
    pt_http1_parser_init(&p, false, &bad, NULL, NULL);
    pt_http1_parser_set_arena(&p, &a);
    size_t c;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(pt_http1_parser_execute(&p, req, sizeof(req) - 1, &c), PT_HTTP1_ECALLBACK);
    ASSERT_EQ(p.error_status, 0);
    pt_arena_dispose(&a);
}

/* ---- limits
 * -------------------------------------------------------------------------------------- */

static char *make_req(size_t target_len, size_t value_len, size_t *len)
{
    /* "GET /aaa HTTP/1.1\r\nHost: a\r\nX: vvv\r\n\r\n" */
    size_t n = 4 + target_len + 9 + 2 + 9 + 3 + value_len + 2 + 2;
    char *s = malloc(n + 1);
    char *w = s;
    memcpy(w, "GET ", 4), w += 4;
    *w++ = '/';
    memset(w, 'a', target_len - 1), w += target_len - 1;
    memcpy(w, " HTTP/1.1\r\nHost: a\r\nX: ", 23), w += 23;
    memset(w, 'v', value_len), w += value_len;
    memcpy(w, "\r\n\r\n", 4), w += 4;
    *len = (size_t)(w - s);
    ASSERT_EQ(*len, n);
    return s;
}

TEST(request_line_limit_boundary)
{
    pt_http1_limits_t lim = {100, 4096, 10};
    size_t len;
    /* the request line without its CRLF: "GET " + target + " HTTP/1.1" = 13 + target */
    char *s = make_req(87, 1, &len);
    expect_request(s, len, 0, &lim);
    free(s);
    s = make_req(88, 1, &len);
    expect_request(s, len, 414, &lim);
    free(s);
}

TEST(header_bytes_limit_boundary)
{
    size_t len;
    char *s = make_req(10, 100, &len);
    pt_http1_limits_t lim = {100, (uint32_t)len, 10}; /* the whole head, final CRLF included */
    expect_request(s, len, 0, &lim);
    lim.max_header_bytes = (uint32_t)len - 1;
    expect_request(s, len, 431, &lim);
    free(s);
}

TEST(header_limit_cuts_endless_stream)
{
    pt_http1_limits_t lim = {100, 1000, 10};
    fx_t f;
    fx_init(&f, false, &lim);
    size_t c;
    static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    ASSERT_EQ(pt_http1_parser_execute(&f.p, start, sizeof(start) - 1, &c), PT_HTTP1_OK);
    char junk[64];
    memset(junk, 'j', sizeof(junk));
    size_t total = sizeof(start) - 1;
    int rc;
    while ((rc = pt_http1_parser_execute(&f.p, junk, sizeof(junk), &c)) == PT_HTTP1_OK)
        total += sizeof(junk);
    ASSERT_EQ(rc, PT_HTTP1_EINVALID);
    ASSERT_EQ(f.p.error_status, 431);
    ASSERT_EQ(total + c, 1000); /* cut at exactly the limit, not after the head */
    pt_arena_dispose(&f.arena);
}

TEST(header_count_limit_boundary)
{
    pt_http1_limits_t lim = {8192, 65536, 3};
    expect_request("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
                   sizeof("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n") - 1, 0, &lim);
    expect_request("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                   sizeof("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n") - 1, 431,
                   &lim);
}

/* ---- responses
 * ----------------------------------------------------------------------------------- */

static int feed_resp(fx_t *f, const char *s, bool split, size_t *used)
{
    return feed(f, s, strlen(s), split, used);
}

TEST(response_content_length_and_chunked)
{
    for (int split = 0; split < 2; split++) {
        fx_t f;
        fx_init(&f, true, NULL);
        size_t used;
        ASSERT_EQ(feed_resp(&f, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", split, &used),
                  PT_HTTP1_PAUSED);
        ASSERT_EQ(f.r.head.status, 200);
        ASSERT(streq(f.r.head.reason, "OK"));
        ASSERT(!f.r.framing.is_close_delimited);
        ASSERT(f.r.framing.is_keep_alive);
        ASSERT_MEMEQ(f.r.body, f.r.body_len, "abc", 3);
        pt_http1_parser_resume(&f.p);
        ASSERT_EQ(feed_resp(&f,
                            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n",
                            split, &used),
                  PT_HTTP1_PAUSED);
        ASSERT(f.r.framing.is_chunked);
        ASSERT_MEMEQ(f.r.body, f.r.body_len, "abcde", 5);
        ASSERT_EQ(f.r.trailers, 1);
        ASSERT(streq(f.r.trailer[0].name, "Grpc-Status"));
        ASSERT_EQ(f.r.completes, 2);
        pt_arena_dispose(&f.arena);
    }
}

TEST(response_close_delimited)
{
    fx_t f;
    fx_init(&f, true, NULL);
    size_t used;
    ASSERT_EQ(feed_resp(&f, "HTTP/1.1 200 OK\r\n\r\nsome body", false, &used), PT_HTTP1_OK);
    ASSERT(f.r.framing.is_close_delimited);
    ASSERT(!f.r.framing.is_keep_alive);
    ASSERT_EQ(f.r.completes, 0);
    ASSERT(pt_http1_parser_in_message(&f.p));
    ASSERT_EQ(pt_http1_parser_finish(&f.p), PT_HTTP1_OK);
    ASSERT_EQ(f.r.completes, 1);
    ASSERT_MEMEQ(f.r.body, f.r.body_len, "some body", 9);
    pt_arena_dispose(&f.arena);
}

TEST(response_cut_short)
{
    fx_t f;
    fx_init(&f, true, NULL);
    size_t used;
    ASSERT_EQ(feed_resp(&f, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", false, &used),
              PT_HTTP1_OK);
    ASSERT_EQ(pt_http1_parser_finish(&f.p), PT_HTTP1_EINVALID);
    ASSERT_EQ(f.p.error_status, 502);
    pt_arena_dispose(&f.arena);
}

TEST(response_head_skip_body)
{
    fx_t f;
    fx_init(&f, true, NULL);
    f.r.skip_body = 1;
    size_t used;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    ASSERT_EQ(feed_resp(&f, resp, false, &used), PT_HTTP1_PAUSED);
    ASSERT_EQ(used, sizeof(resp) - 1);
    ASSERT_EQ(f.r.body_len, 0);
    ASSERT_EQ(f.r.completes, 1);
    pt_http1_parser_resume(&f.p);
    /* a HEAD reply without length is not close-delimited either */
    ASSERT_EQ(feed_resp(&f, "HTTP/1.1 200 OK\r\n\r\n", false, &used), PT_HTTP1_PAUSED);
    ASSERT_EQ(f.r.completes, 2);
    pt_arena_dispose(&f.arena);
}

TEST(response_204_304_and_1xx)
{
    fx_t f;
    fx_init(&f, true, NULL);
    size_t used;
    ASSERT_EQ(feed_resp(&f, "HTTP/1.1 204 No Content\r\n\r\n", false, &used), PT_HTTP1_PAUSED);
    ASSERT(!f.r.framing.is_close_delimited);
    ASSERT(f.r.framing.is_keep_alive);
    pt_http1_parser_resume(&f.p);
    ASSERT_EQ(
        feed_resp(&f, "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", false, &used),
        PT_HTTP1_PAUSED);
    ASSERT_EQ(f.r.completes, 2);
    ASSERT_EQ(f.r.body_len, 0);
    pt_http1_parser_resume(&f.p);
    static const char two[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1"
                              "\r\n\r\nz";
    ASSERT_EQ(feed_resp(&f, two, false, &used), PT_HTTP1_PAUSED);
    ASSERT_EQ(f.r.head.status, 100);
    ASSERT_EQ(used, 25);
    pt_http1_parser_resume(&f.p);
    ASSERT_EQ(feed_resp(&f, two + used, false, &used), PT_HTTP1_PAUSED);
    ASSERT_EQ(f.r.head.status, 200);
    ASSERT_MEMEQ(f.r.body, f.r.body_len, "z", 1);
    pt_arena_dispose(&f.arena);
}

TEST(response_101_upgrade)
{
    fx_t f;
    fx_init(&f, true, NULL);
    size_t used;
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                               "Upgrade: websocket\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof(buf), "%sTUNNEL", head);
    ASSERT_EQ(feed_resp(&f, buf, false, &used), PT_HTTP1_PAUSED);
    ASSERT_EQ(used, sizeof(head) - 1);
    ASSERT(f.p.is_upgraded);
    ASSERT(f.r.head.is_upgrade);
    pt_arena_dispose(&f.arena);
}

static void expect_bad_response(const char *s)
{
    fx_t f;
    fx_init(&f, true, NULL);
    size_t used;
    int rc = feed_resp(&f, s, false, &used);
    if (rc == PT_HTTP1_OK)
        rc = pt_http1_parser_finish(&f.p);
    ASSERT_EQ(rc, PT_HTTP1_EINVALID);
    ASSERT_EQ(f.p.error_status, 502);
    ASSERT_EQ(f.r.heads, 0);
    pt_arena_dispose(&f.arena);
}

TEST(response_errors)
{
    expect_bad_response(
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_bad_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    expect_bad_response("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
    expect_bad_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    expect_bad_response("HTTP/1.1 099 Low\r\n\r\n");
    expect_bad_response("HTTP/1.1 600 High\r\n\r\n");
    expect_bad_response("HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n");
    expect_bad_response("HTTP/2.0 200 OK\r\n\r\n");
    expect_bad_response("HTTP/1.1 101 Switching Protocols\r\n\r\n");
    expect_bad_response("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n");
}

/* ---- the malformed corpus -------------------------------------------------------------------- */

static FILE *open_corpus(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "tests/e2e/malformed/%s", name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        /* run from elsewhere: find the tree from this file's path */
        const char *me = __FILE__;
        const char *cut = strstr(me, "tests/unit/proxy/http1.c");
        snprintf(path, cap, "%.*stests/e2e/malformed/%s", cut ? (int)(cut - me) : 0, me, name);
        fp = fopen(path, "rb");
    }
    return fp;
}

TEST(malformed_corpus)
{
    char path[1024];
    FILE *tsv = open_corpus("expected.tsv", path, sizeof(path));
    ASSERT(tsv != NULL);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), tsv) != NULL) {
        char *tab = strchr(line, '\t');
        ASSERT(tab != NULL);
        *tab = '\0';
        int status = atoi(tab + 1);
        bool body_case = strstr(tab + 1, "[body]") != NULL;
        FILE *fp = open_corpus(line, path, sizeof(path));
        if (fp == NULL)
            fprintf(stderr, "missing %s\n", line);
        ASSERT(fp != NULL);
        static char data[1 << 17];
        size_t len = fread(data, 1, sizeof(data), fp);
        fclose(fp);
        for (int split = 0; split < 2; split++) {
            fx_t f;
            fx_init(&f, false, NULL);
            size_t used;
            int rc = feed(&f, data, len, split, &used);
            if (rc == PT_HTTP1_OK)
                rc = pt_http1_parser_finish(&f.p);
            if (rc != PT_HTTP1_EINVALID || f.p.error_status != status ||
                (!body_case && f.r.heads != 0) || f.r.completes != 0)
                fprintf(stderr, "%s (split %d): rc %d status %d (want %d) reason %s heads %d\n",
                        line, split, rc, f.p.error_status, status,
                        f.p.error_reason ? f.p.error_reason : "-", f.r.heads);
            ASSERT_EQ(rc, PT_HTTP1_EINVALID);
            ASSERT_EQ(f.p.error_status, status);
            /* Broken chunk framing fed with its head stops the head too (only trailers are
             * checked after it). */
            if (!body_case || (split == 0 && strstr(tab + 1, "trailer") == NULL))
                ASSERT_EQ(f.r.heads, 0);
            ASSERT_EQ(f.r.completes, 0);
            pt_arena_dispose(&f.arena);
        }
        n++;
    }
    fclose(tsv);
    ASSERT(n >= 70);
}
