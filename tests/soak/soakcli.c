/* tests/soak/soakcli.c
 * The soak test's load generator (tests/e2e/test_45_soak.py builds and runs it): a closed-loop
 * HTTP/1.1 client that sends REQUESTS requests over CONNS connections, one thread each.
 *
 *   soakcli PORT REQUESTS CONNS
 *
 * Request k (claimed from a shared counter) is chosen from k alone, so every run sends the same
 * mix: 10 % POST /post with a 1..16 KiB body (answer: "posted\n"), else GET /s/<size> for a
 * static file of 0 B (30 %), 1 KiB (40 %), 16 KiB (20 %) or 256 KiB (10 %). Every tenth
 * request carries `Connection: close` and the next one goes on a new connection. A 200 must
 * carry Content-Length with the size its path promises; any status is counted, its body read.
 * Errors (a connection refused, cut before a complete response, a 200 of the wrong length, no
 * answer within 10 s) are counted by kind, the first few described on stderr.
 *
 * Prints `progress N` (N responses so far) about every 1 % of REQUESTS, then one JSON line:
 * sent, responses, statuses {code: count}, errors {kind: count}, seconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ERR_CONNECT, ERR_CUT, ERR_LENGTH, ERR_TIMEOUT, ERR_PARSE, ERR_KINDS };
static const char *const err_names[ERR_KINDS] = {"connect", "cut", "length", "timeout", "parse"};

static int port;
static long total;
static atomic_long next_request, responses, sent;
static atomic_long statuses[600];
static atomic_long errors[ERR_KINDS];
static atomic_int described;

typedef struct {
    int fd;
    char buf[65536];
    size_t len, off; /* bytes read and not yet consumed: buf[off, len) */
    long prev;       /* the request before this one on the connection, -1 when none */
} conn_t;

static uint64_t mix(uint64_t x) /* splitmix64: the request's choices from its index */
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void fail(int kind, long k, long prev, const char *what)
{
    atomic_fetch_add(&errors[kind], 1);
    if (atomic_fetch_add(&described, 1) < 10)
        fprintf(stderr, "request %ld (after %ld on its connection): %s: %s\n", k, prev,
                err_names[kind], what);
}

static int open_conn(conn_t *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->len = c->off = 0;
    c->prev = -1;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0)
        return 0;
    close(c->fd);
    c->fd = -1;
    return -1;
}

static void close_conn(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Reads more bytes into c->buf. 1: got some; 0: closed; -1: timeout or error (kind set). */
static int fill(conn_t *c, int *kind)
{
    if (c->off == c->len)
        c->off = c->len = 0;
    if (c->len == sizeof c->buf) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        return 1;
    }
    *kind = n == 0 ? ERR_CUT : ERR_TIMEOUT;
    return n == 0 ? 0 : -1;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One exchange on c. Returns 0 when the connection may carry the next request. */
static int exchange(conn_t *c, long k)
{
    static const char body[16384] = {0};
    static const long sizes[] = {0, 1024, 16384, 262144};
    uint64_t r = mix((uint64_t)k);
    unsigned pick = (unsigned)(r % 100);
    int post = pick < 10, close_after = k % 10 == 9;
    size_t body_len = post ? 1024 + (size_t)((r >> 8) % 15361) : 0;
    long want = post ? 7 : sizes[pick < 37 ? 0 : pick < 73 ? 1 : pick < 91 ? 2 : 3];
    char req[256];
    int n =
        post ? snprintf(req, sizeof req,
                        "POST /post HTTP/1.1\r\nHost: soak.local\r\nContent-Length: %zu\r\n%s\r\n",
                        body_len, close_after ? "Connection: close\r\n" : "")
             : snprintf(req, sizeof req, "GET /s/%ld HTTP/1.1\r\nHost: soak.local\r\n%s\r\n", want,
                        close_after ? "Connection: close\r\n" : "");
    atomic_fetch_add(&sent, 1);
    /* head and body in one write: a body sent after the head is the case of
     * test_45_soak.py::test_response_before_the_request_body_keeps_the_connection */
    char out[sizeof req + sizeof body];
    memcpy(out, req, (size_t)n);
    memcpy(out + n, body, body_len);
    if (send_all(c->fd, out, (size_t)n + body_len) < 0) {
        fail(ERR_CUT, k, c->prev, "send failed");
        return -1;
    }
    int kind = ERR_PARSE;
    char *end;
    while (!(end = memmem(c->buf + c->off, c->len - c->off, "\r\n\r\n", 4))) {
        if (fill(c, &kind) <= 0) {
            fail(kind, k, c->prev, "no complete response head");
            return -1;
        }
    }
    char *head = c->buf + c->off;
    size_t head_len = (size_t)(end + 4 - head);
    int status = 0;
    long length = -1;
    int server_close = 0;
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1 || status < 100 || status >= 600) {
        fail(ERR_PARSE, k, c->prev, "bad status line");
        return -1;
    }
    for (char *line = memchr(head, '\n', head_len); line && line < end;
         line = memchr(line + 1, '\n', (size_t)(end - line))) {
        if (!strncasecmp(line + 1, "content-length:", 15))
            length = strtol(line + 16, NULL, 10);
        else if (!strncasecmp(line + 1, "connection: close", 17))
            server_close = 1;
    }
    if (length < 0) {
        fail(ERR_PARSE, k, c->prev, "no content-length");
        return -1;
    }
    c->off += head_len;
    long left = length;
    while (left > 0) {
        if (c->off == c->len && fill(c, &kind) <= 0) {
            fail(kind, k, c->prev, "body cut");
            return -1;
        }
        size_t take = (size_t)left < c->len - c->off ? (size_t)left : c->len - c->off;
        c->off += take;
        left -= (long)take;
    }
    atomic_fetch_add(&statuses[status], 1);
    atomic_fetch_add(&responses, 1);
    if (status == 200 && length != want) {
        fail(ERR_LENGTH, k, c->prev, "200 of the wrong length");
        return -1;
    }
    return close_after || server_close ? -1 : 0;
}

static void *worker(void *arg)
{
    (void)arg;
    conn_t *c = malloc(sizeof *c);
    c->fd = -1;
    for (;;) {
        long k = atomic_fetch_add(&next_request, 1);
        if (k >= total)
            break;
        if (c->fd < 0 && open_conn(c) < 0) {
            atomic_fetch_add(&sent, 1);
            fail(ERR_CONNECT, k, -1, "connect failed");
            continue;
        }
        if (exchange(c, k) < 0)
            close_conn(c);
        c->prev = k;
    }
    close_conn(c);
    free(c);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: soakcli PORT REQUESTS CONNS\n");
        return 2;
    }
    port = atoi(argv[1]);
    total = atol(argv[2]);
    int conns = atoi(argv[3]);
    if (port <= 0 || total <= 0 || conns <= 0 || conns > 1024) {
        fprintf(stderr, "soakcli: bad arguments\n");
        return 2;
    }
    double t0 = now_s();
    pthread_t *t = calloc((size_t)conns, sizeof *t);
    for (int i = 0; i < conns; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    long step = total / 100 > 0 ? total / 100 : 1, reported = 0;
    struct timespec tick = {.tv_nsec = 20 * 1000 * 1000};
    while (atomic_load(&next_request) < total) {
        long done = atomic_load(&responses);
        if (done >= reported + step) {
            printf("progress %ld\n", done);
            fflush(stdout);
            reported = done;
        }
        nanosleep(&tick, NULL);
    }
    for (int i = 0; i < conns; i++)
        pthread_join(t[i], NULL);
    free(t);
    printf("{\"sent\": %ld, \"responses\": %ld, \"seconds\": %.3f, \"statuses\": {",
           atomic_load(&sent), atomic_load(&responses), now_s() - t0);
    const char *sep = "";
    for (int s = 0; s < 600; s++) {
        if (atomic_load(&statuses[s])) {
            printf("%s\"%d\": %ld", sep, s, atomic_load(&statuses[s]));
            sep = ", ";
        }
    }
    printf("}, \"errors\": {");
    for (int e = 0; e < ERR_KINDS; e++)
        printf("%s\"%s\": %ld", e ? ", " : "", err_names[e], atomic_load(&errors[e]));
    printf("}}\n");
    return 0;
}
