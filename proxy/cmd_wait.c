/* proxy/cmd_wait.c
 * `petrel wait`: polls the sidecar's readiness (GET /healthz/ready on the health port of
 * 127.0.0.1) until it answers 200, for a classic sidecar's postStart hook (the kubelet starts
 * the next container only once the hook returns) and for scripts. Plain blocking sockets, each
 * attempt bounded by its own timeout. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"

static const char wait_usage[] =
    "usage: petrel wait [--timeout SECONDS] [--port PORT] [--period MS]\n"
    "\n"
    "  Exits 0 once Petrel on this host answers GET /healthz/ready with 200 on its health port\n"
    "  (PORT, default 15021), checking every MS milliseconds (default 500); exits 1 when it has\n"
    "  not within SECONDS (default 60).\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for fd to be ready for events until the deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -1 : r;
    }
}

/* One GET /healthz/ready; the status code, or 0 with *why set. */
static int probe(unsigned port, double timeout_s, const char **why)
{
    double deadline = now_s() + timeout_s;
    int status = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = strerror(errno);
        return 0;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = 0;
    socklen_t elen = sizeof(err);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        *why = strerror(errno);
        goto out;
    }
    if (wait_fd(fd, POLLOUT, deadline) <= 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        *why = err != 0 ? strerror(err) : "connect timed out";
        goto out;
    }
    static const char req[] = "GET /healthz/ready HTTP/1.0\r\nhost: localhost\r\n\r\n";
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        *why = "send failed";
        goto out;
    }
    char buf[64];
    size_t got = 0;
    while (got < 12) { /* "HTTP/1.1 200" */
        if (wait_fd(fd, POLLIN, deadline) <= 0) {
            *why = "no answer in time";
            goto out;
        }
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) {
            *why = "connection closed before an answer";
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
        *why = "not an HTTP answer";
        goto out;
    }
    status = atoi(buf + 9);
    if (status != 200)
        *why = "not ready";
out:
    close(fd);
    return status;
}

static bool parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int pt_cmd_wait(int argc, char **argv)
{
    long timeout_s = 60, port = 15021, period_ms = 500;
    for (int i = 0; i < argc; i += 2) { /* every option takes a value */
        bool has_value = i + 1 < argc;
        long *target = NULL, lo = 1, hi = 0;
        if (strcmp(argv[i], "--timeout") == 0) {
            target = &timeout_s, lo = 0, hi = 86400;
        } else if (strcmp(argv[i], "--port") == 0) {
            target = &port, hi = 65535;
        } else if (strcmp(argv[i], "--period") == 0) {
            target = &period_ms, lo = 10, hi = 60000;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(wait_usage, stdout);
            return 0;
        }
        if (target == NULL || !has_value || !parse_num(argv[i + 1], lo, hi, target)) {
            fprintf(stderr, "petrel wait: %s \"%s\"\n%s",
                    target == NULL ? "unexpected argument" : "missing or bad value for", argv[i],
                    wait_usage);
            return 2;
        }
    }
    double deadline = now_s() + (double)timeout_s;
    const char *why = "not tried";
    int status = 0;
    for (;;) {
        /* Each attempt gets at most a second; the last one is made at the deadline. */
        double left = deadline - now_s();
        status = probe((unsigned)port, left > 1 ? 1 : (left > 0.1 ? left : 0.1), &why);
        if (status == 200)
            return 0;
        left = deadline - now_s();
        if (left <= 0)
            break;
        double pause_s = (double)period_ms / 1000 < left ? (double)period_ms / 1000 : left;
        struct timespec ts = {(time_t)pause_s, (long)((pause_s - (double)(time_t)pause_s) * 1e9)};
        nanosleep(&ts, NULL);
    }
    if (status != 0)
        fprintf(stderr, "petrel wait: not ready after %lds: 127.0.0.1:%ld answered %d\n", timeout_s,
                port, status);
    else
        fprintf(stderr, "petrel wait: not ready after %lds: 127.0.0.1:%ld: %s\n", timeout_s, port,
                why);
    return 1;
}
