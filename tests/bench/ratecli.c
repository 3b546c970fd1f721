/* tests/bench/ratecli.c
 * A fixed-rate, open-loop HTTP/1.1 load generator for latency at a given request rate (what
 * wrk2 does; wrk2 is not packaged in Debian). Built and run by tests/bench/bench.py only.
 *
 *   ratecli HOST PORT PATH RATE CONNS SECONDS [WARMUP_SECONDS]
 *
 * Request k is due at t0 + k/RATE, whatever happened before (open loop). It goes out on an
 * idle keep-alive connection; when none is idle it waits in the queue. Latency is measured
 * from the due time, so a stall in the server shows up in every request it delayed (no
 * coordinated omission); `service` percentiles measure from the actual send instead. A
 * timerfd wakes the loop at the due time with microsecond precision. Responses must carry
 * Content-Length (all the servers under test send it for these static bodies).
 *
 * Prints one JSON object: sent, completed, errors, late_sends (sent > 1 ms after due),
 * achieved_rps, and latency_us / service_us percentiles (p50 p90 p99 p999 max). Requests due
 * during the warm-up are sent but not measured. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;
    uint64_t due_ns, sent_ns;
    int measured;
    char buf[65536];
    size_t len;
} conn_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void print_pcts(const char *name, uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    printf("\"%s\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}",
           name, pct(v, n, 0.50) / 1e3, pct(v, n, 0.90) / 1e3, pct(v, n, 0.99) / 1e3,
           pct(v, n, 0.999) / 1e3, n ? v[n - 1] / 1e3 : 0.0);
}

/* Returns the length of the first complete response in c->buf, 0 if incomplete, -1 if bad. */
static long response_len(const conn_t *c)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->len >= sizeof c->buf ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    const char *p = c->buf;
    long cl = -1;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            cl = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    if (strncmp(c->buf, "HTTP/1.1 2", 10) != 0 && strncmp(c->buf, "HTTP/1.0 2", 10) != 0)
        return -1;
    if (cl < 0)
        return -1;
    return c->len >= head + (size_t)cl ? (long)(head + (size_t)cl) : 0;
}

static int open_conn(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(2);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE CONNS SECONDS [WARMUP]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), nconns = atoi(argv[5]);
    double rate = atof(argv[4]), secs = atof(argv[6]), warm = argc > 7 ? atof(argv[7]) : 1.0;
    uint64_t total = (uint64_t)(rate * (secs + warm));
    uint64_t warm_n = (uint64_t)(rate * warm);
    uint64_t period = (uint64_t)(1e9 / rate);

    char req[1024];
    int reqlen =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port);

    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    uint64_t *lat = calloc(total + 1, sizeof *lat), *svc = calloc(total + 1, sizeof *svc);
    int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = open_conn(host, port);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }

    uint64_t t0 = now_ns() + 10000000ull; /* 10 ms to settle */
    uint64_t next = 0, completed = 0, errors = 0, late = 0, nmeasured = 0, inflight = 0;
    uint64_t measured_start = 0, measured_end = 0;
    int free_hint = 0;

    while (completed + errors < total) {
        uint64_t now = now_ns();
        /* send everything due, oldest first, on idle connections */
        while (next < total && t0 + next * period <= now) {
            int idx = -1;
            for (int k = 0; k < nconns; k++) {
                int j = (free_hint + k) % nconns;
                if (!conns[j].busy && conns[j].fd >= 0) {
                    idx = j;
                    break;
                }
            }
            if (idx < 0)
                break; /* queued: it stays due, its latency grows */
            conn_t *c = &conns[idx];
            free_hint = (idx + 1) % nconns;
            c->due_ns = t0 + next * period;
            c->sent_ns = now_ns();
            c->measured = next >= warm_n;
            if (c->sent_ns - c->due_ns > 1000000ull)
                late++;
            if (write(c->fd, req, (size_t)reqlen) != reqlen) {
                errors++;
                next++;
                continue;
            }
            c->busy = 1;
            c->len = 0;
            inflight++;
            next++;
        }
        if (next >= total && inflight == 0)
            break;
        /* sleep until the next due time or a response */
        int timeout = 1000;
        if (next < total) {
            struct itimerspec its = {0};
            uint64_t due = t0 + next * period;
            its.it_value.tv_sec = (time_t)(due / 1000000000ull);
            its.it_value.tv_nsec = (long)(due % 1000000000ull);
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 2;
        }
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u32 == UINT32_MAX) {
                uint64_t x;
                ssize_t ignored = read(tfd, &x, sizeof x);
                (void)ignored;
                continue;
            }
            conn_t *c = &conns[evs[e].data.u32];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) {
                if (c->busy) {
                    errors++;
                    inflight--;
                }
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = open_conn(host, port); /* keep the pool size */
                c->busy = 0;
                ev.events = EPOLLIN;
                ev.data.u32 = evs[e].data.u32;
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                continue;
            }
            c->len += (size_t)r;
            long rl = response_len(c);
            if (rl == 0)
                continue;
            uint64_t done = now_ns();
            if (!c->busy || rl < 0) {
                errors++;
            } else {
                completed++;
                if (c->measured) {
                    lat[nmeasured] = done - c->due_ns;
                    svc[nmeasured] = done - c->sent_ns;
                    if (nmeasured == 0)
                        measured_start = c->due_ns;
                    measured_end = done;
                    nmeasured++;
                }
            }
            if (c->busy)
                inflight--;
            c->busy = 0;
            c->len = 0; /* one request in flight per connection: nothing else can be buffered */
        }
    }

    double span = measured_end > measured_start ? (double)(measured_end - measured_start) / 1e9 : 0;
    printf("{\"sent\": %llu, \"completed\": %llu, \"errors\": %llu, \"late_sends\": %llu, "
           "\"measured\": %llu, \"achieved_rps\": %.1f, ",
           (unsigned long long)next, (unsigned long long)completed, (unsigned long long)errors,
           (unsigned long long)late, (unsigned long long)nmeasured,
           span > 0 ? (double)nmeasured / span : 0.0);
    print_pcts("latency_us", lat, nmeasured);
    printf(", ");
    print_pcts("service_us", svc, nmeasured);
    printf("}\n");
    return errors > 0 ? 1 : 0;
}
