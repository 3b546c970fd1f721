/* tests/bench/relaycli.c -- the TCP relay benchmark's ends and reference relays (bench.py).
 *
 *   relaycli echo                  listens on 127.0.0.1:0, prints the port, echoes every byte
 *                                  back on each connection (a thread each) until killed
 *   relaycli loop PORT SECONDS     one connection: writes 64 KiB, reads the 64 KiB back, again,
 *                                  for SECONDS; prints "MB/s <payload MB per second>"
 *   relaycli ping PORT N           one connection: N round trips of 1 byte; prints
 *                                  "p50_us <v> p99_us <v>"
 *   relaycli relay PORT copy|splice
 *                                  the simplest relay, as a floor for a proxy's: listens on
 *                                  127.0.0.1:0, prints the port, and for each connection dials
 *                                  127.0.0.1:PORT and moves bytes each way in a blocking thread
 *                                  of its own, by read/write through a 64 KiB buffer or by
 *                                  splice(2) through a pipe (no copy to user space)
 *
 * Blocking sockets with TCP_NODELAY; times from CLOCK_MONOTONIC. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void *echo_conn(void *arg)
{
    int fd = (int)(long)arg;
    static __thread char buf[CHUNK];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    close(fd);
    return NULL;
}

static int echo(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 128) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &len) != 0) {
        perror("echo");
        return 1;
    }
    printf("%u\n", (unsigned)ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        if (pthread_create(&t, NULL, echo_conn, (void *)(long)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static void read_exact(int fd, char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = read(fd, buf + off, n - off);
        if (r <= 0) {
            fprintf(stderr, "read: connection ended\n");
            exit(1);
        }
        off += (size_t)r;
    }
}

static void write_all(int fd, const char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w <= 0) {
            fprintf(stderr, "write failed\n");
            exit(1);
        }
        off += (size_t)w;
    }
}

static int loop(int port, double seconds)
{
    static char out[CHUNK], in[CHUNK];
    memset(out, 'x', sizeof(out));
    int fd = dial(port);
    double t0 = now_s(), end = t0 + seconds;
    unsigned long rounds = 0;
    while (now_s() < end) {
        write_all(fd, out, sizeof(out));
        read_exact(fd, in, sizeof(in));
        rounds++;
    }
    double dt = now_s() - t0;
    printf("MB/s %.1f\n", (double)rounds * CHUNK / dt / 1e6);
    close(fd);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int ping(int port, int n)
{
    double *us = malloc(sizeof(double) * (size_t)n);
    if (us == NULL || n < 1)
        return 1;
    int fd = dial(port);
    char c = 'p';
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        write_all(fd, &c, 1);
        read_exact(fd, &c, 1);
        us[i] = (now_s() - t0) * 1e6;
    }
    qsort(us, (size_t)n, sizeof(double), cmp_double);
    printf("p50_us %.1f p99_us %.1f\n", us[n / 2], us[(n * 99) / 100]);
    close(fd);
    free(us);
    return 0;
}

typedef struct pump {
    int from, to;
    int use_splice;
} pump_t;

/* Moves from's bytes to to until EOF, then shuts to's write side. */
static void *pump(void *arg)
{
    pump_t *p = arg;
    static __thread char buf[CHUNK];
    int pipe_fds[2] = {-1, -1};
    if (p->use_splice && pipe(pipe_fds) != 0) {
        perror("pipe");
        exit(1);
    }
    for (;;) {
        ssize_t n = p->use_splice ? splice(p->from, NULL, pipe_fds[1], NULL, CHUNK, SPLICE_F_MOVE)
                                  : read(p->from, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = p->use_splice ? splice(pipe_fds[0], NULL, p->to, NULL, (size_t)(n - off),
                                               SPLICE_F_MOVE)
                                      : write(p->to, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    shutdown(p->to, SHUT_WR);
    if (p->use_splice) {
        close(pipe_fds[0]);
        close(pipe_fds[1]);
    }
    return NULL;
}

static int relay(int up_port, int use_splice)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 128) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &len) != 0) {
        perror("relay");
        return 1;
    }
    printf("%u\n", (unsigned)ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int down = accept(ls, NULL, NULL);
        if (down < 0)
            continue;
        int one = 1;
        setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        int up = dial(up_port);
        /* Each pair lives as long as the process: a benchmark opens a few connections. */
        pump_t *p = malloc(2 * sizeof(*p));
        if (p == NULL)
            return 1;
        p[0] = (pump_t){.from = down, .to = up, .use_splice = use_splice};
        p[1] = (pump_t){.from = up, .to = down, .use_splice = use_splice};
        for (int i = 0; i < 2; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, pump, &p[i]) != 0)
                return 1;
            pthread_detach(t);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "echo") == 0)
        return echo();
    if (argc == 4 && strcmp(argv[1], "loop") == 0)
        return loop(atoi(argv[2]), atof(argv[3]));
    if (argc == 4 && strcmp(argv[1], "ping") == 0)
        return ping(atoi(argv[2]), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "relay") == 0 &&
        (strcmp(argv[3], "copy") == 0 || strcmp(argv[3], "splice") == 0))
        return relay(atoi(argv[2]), strcmp(argv[3], "splice") == 0);
    fprintf(stderr,
            "usage: relaycli echo | loop PORT SECONDS | ping PORT N | relay PORT copy|splice\n");
    return 2;
}
