/* tests/bench/startup.c
 * Start-to-first-response, measured from exec: forks, reads CLOCK_MONOTONIC in the child just
 * before execvp(COMMAND), then polls "connect 127.0.0.1:PORT + GET PATH" (every 100 us, for at
 * most 10 s) until a response starts with "HTTP/1.1 200". Prints the milliseconds between the
 * two and the attempts made, then stops COMMAND with SIGTERM and reaps it.
 *
 *   startup PORT HOST PATH COMMAND [ARG...]
 *
 * Exit status 0 when a 200 came, 1 when COMMAND exited first or nothing came in time, 2 on a
 * usage error. Used by docs/benchmarks.md ("Start-up and idle cost") and by
 * tests/e2e/test_50_lifecycle.py. */
#define _GNU_SOURCE /* pipe2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One attempt: 1 when the answer starts with a 200 status line, 0 otherwise. */
static int try_get(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char head[16];
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, request, strlen(request), MSG_NOSIGNAL) == (ssize_t)strlen(request)) {
        while (got < 12) {
            ssize_t r = recv(fd, head + got, sizeof(head) - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    close(fd);
    return got >= 12 && memcmp(head, "HTTP/1.1 200", 12) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: startup PORT HOST PATH COMMAND [ARG...]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    char request[1024];
    snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
             argv[3], argv[2]);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        double t0 = now_ms();
        if (write(p[1], &t0, sizeof(t0)) != sizeof(t0))
            _exit(127);
        execvp(argv[4], argv + 4);
        _exit(127);
    }
    close(p[1]);
    double t0;
    if (read(p[0], &t0, sizeof(t0)) != sizeof(t0)) {
        fprintf(stderr, "startup: the child did not start\n");
        return 1;
    }
    close(p[0]);
    int attempts = 0, ok = 0, status = 0;
    double t1 = t0;
    while (!ok && now_ms() - t0 < 10000) {
        attempts++;
        ok = try_get(port, request);
        t1 = now_ms();
        if (!ok && waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "startup: %s exited before answering\n", argv[4]);
            return 1;
        }
        if (!ok)
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
    if (ok)
        printf("start-to-first-response-ms %.2f attempts %d\n", t1 - t0, attempts);
    else
        fprintf(stderr, "startup: no 200 within 10 s (%d attempts)\n", attempts);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    return ok ? 0 : 1;
}
