/* tests/unit/test.h
 * Petrel's unit-test runner, in one header (libuv's runner idea, picotest's size).
 *
 *   #include "test.h"          exactly one .c per test binary includes this; it provides main()
 *   TEST(parses_port) { ASSERT_EQ(port, 8080); }
 *
 * TEST(name) registers the test from a constructor, in file order. main() runs every test (or
 * only those named on the command line) each in a forked child with a timeout (10 s, or
 * PT_TEST_TIMEOUT seconds), so a crash or a hang fails that test only. It prints `ok name` or
 * `FAIL name` per test and ends with `N passed, N failed`; the exit status is 1 if any failed.
 *
 * A failed ASSERT prints file:line, the expression and the values to stderr and ends the child
 * with status 1. A test passes when its body returns and the child exits 0 (under ASan the
 * exit also runs LeakSanitizer, so a leak fails the test).
 *
 * Environment: PT_TEST_TIMEOUT=seconds (fractions allowed); PT_TEST_NOFORK=1 runs the tests in
 * the runner itself (for gdb; the first failure ends the run). `BIN --list` prints the names.
 *
 * Everything here is static and marked unused so a test file that uses only some of it still
 * builds under -Werror. Nothing in this header is part of libpetrel. */
#ifndef PT_TEST_H
#define PT_TEST_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PT_TEST_UNUSED_ __attribute__((unused))

typedef struct pt_test_case pt_test_case_t;
struct pt_test_case {
    const char *name;
    void (*fn)(void);
    const char *file;
    int line;
    pt_test_case_t *next;
};

/* The registry: a list in definition order, filled by constructors before main(). */
static pt_test_case_t *pt_test_head_;
static pt_test_case_t **pt_test_tail_ = &pt_test_head_;

PT_TEST_UNUSED_ static void pt_test_register_(pt_test_case_t *tc)
{
    tc->next = NULL;
    *pt_test_tail_ = tc;
    pt_test_tail_ = &tc->next;
}

#define TEST(name)                                                                                 \
    static void pt_test_fn_##name(void);                                                           \
    static pt_test_case_t pt_test_case_##name = {#name, pt_test_fn_##name, __FILE__, __LINE__,     \
                                                 NULL};                                            \
    __attribute__((constructor)) static void pt_test_reg_##name(void)                              \
    {                                                                                              \
        pt_test_register_(&pt_test_case_##name);                                                   \
    }                                                                                              \
    static void pt_test_fn_##name(void)

/* Ends the test as failed. Flushes stdio first: the child leaves with _exit() so that a
 * failure does not also run atexit handlers (LeakSanitizer would add noise to the report). */
PT_TEST_UNUSED_ __attribute__((noreturn)) static void pt_test_fail_now_(void)
{
    fflush(stdout);
    fflush(stderr);
    _exit(1);
}

PT_TEST_UNUSED_ static void pt_test_print_mem_(const char *label, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t shown = n < 256 ? n : 256;
    fprintf(stderr, "    %s (%zu bytes): \"", label, n);
    if (s == NULL) {
        fprintf(stderr, "(null)\"\n");
        return;
    }
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = s[i];
        if (c == '\\' || c == '"')
            fprintf(stderr, "\\%c", c);
        else if (c == '\r')
            fprintf(stderr, "\\r");
        else if (c == '\n')
            fprintf(stderr, "\\n");
        else if (c == '\t')
            fprintf(stderr, "\\t");
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "\"%s\n", shown < n ? "..." : "");
}

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ASSERT(%s) failed\n", __FILE__, __LINE__, #cond);              \
            pt_test_fail_now_();                                                                   \
        }                                                                                          \
    } while (0)

#define PT_TEST_CMP_(a, b, op, name)                                                               \
    do {                                                                                           \
        long long pt_a_ = (long long)(a), pt_b_ = (long long)(b);                                  \
        if (!(pt_a_ op pt_b_)) {                                                                   \
            fprintf(stderr, "%s:%d: " name "(%s, %s) failed: %lld vs %lld\n", __FILE__, __LINE__,  \
                    #a, #b, pt_a_, pt_b_);                                                         \
            pt_test_fail_now_();                                                                   \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ(a, b) PT_TEST_CMP_(a, b, ==, "ASSERT_EQ")
#define ASSERT_NE(a, b) PT_TEST_CMP_(a, b, !=, "ASSERT_NE")

/* Two NULLs are equal; NULL and a string are not. */
#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *pt_a_ = (a), *pt_b_ = (b);                                                     \
        if (!((pt_a_ == NULL && pt_b_ == NULL) ||                                                  \
              (pt_a_ != NULL && pt_b_ != NULL && strcmp(pt_a_, pt_b_) == 0))) {                    \
            fprintf(stderr, "%s:%d: ASSERT_STREQ(%s, %s) failed\n", __FILE__, __LINE__, #a, #b);   \
            pt_test_print_mem_(#a, pt_a_, pt_a_ ? strlen(pt_a_) : 0);                              \
            pt_test_print_mem_(#b, pt_b_, pt_b_ ? strlen(pt_b_) : 0);                              \
            pt_test_fail_now_();                                                                   \
        }                                                                                          \
    } while (0)

/* Equal when the lengths match and the bytes do; zero-length buffers may be NULL. */
#define ASSERT_MEMEQ(a, alen, b, blen)                                                             \
    do {                                                                                           \
        const void *pt_a_ = (a), *pt_b_ = (b);                                                     \
        size_t pt_al_ = (size_t)(alen), pt_bl_ = (size_t)(blen);                                   \
        if (pt_al_ != pt_bl_ || (pt_al_ > 0 && memcmp(pt_a_, pt_b_, pt_al_) != 0)) {               \
            fprintf(stderr, "%s:%d: ASSERT_MEMEQ(%s, %s, %s, %s) failed\n", __FILE__, __LINE__,    \
                    #a, #alen, #b, #blen);                                                         \
            pt_test_print_mem_(#a, pt_a_, pt_al_);                                                 \
            pt_test_print_mem_(#b, pt_b_, pt_bl_);                                                 \
            pt_test_fail_now_();                                                                   \
        }                                                                                          \
    } while (0)

/* ---- the runner ---------------------------------------------------------------------- */

typedef enum {
    PT_TEST_PASS = 0,
    PT_TEST_FAIL,    /* the child exited non-zero (a failed ASSERT exits 1) */
    PT_TEST_CRASH,   /* the child died from a signal */
    PT_TEST_TIMEOUT, /* the child outlived its timeout and was killed */
    PT_TEST_ERROR,   /* the runner could not fork */
} pt_test_result_t;

PT_TEST_UNUSED_ static double pt_test_now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

PT_TEST_UNUSED_ static double pt_test_default_timeout_(void)
{
    const char *s = getenv("PT_TEST_TIMEOUT");
    if (s != NULL && *s != '\0') {
        char *end;
        double v = strtod(s, &end);
        if (end != s && v > 0)
            return v;
    }
    return 10.0;
}

/* Runs tc->fn in a forked child (its own process group) and waits at most timeout_s.
 * *detail gets the exit status or signal number. The self-test calls this directly. */
PT_TEST_UNUSED_ static pt_test_result_t pt_test_run_case_(const pt_test_case_t *tc,
                                                          double timeout_s, int *detail)
{
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    /* Blocked before fork so the child's exit is queued for sigtimedwait, never lost. */
    sigprocmask(SIG_BLOCK, &chld, &old);
    fflush(stdout);
    fflush(stderr);
    *detail = 0;

    pid_t pid = fork();
    if (pid < 0) {
        *detail = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        return PT_TEST_ERROR;
    }
    if (pid == 0) {
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        tc->fn();
        fflush(stdout);
        fflush(stderr);
        exit(0);
    }
    setpgid(pid, pid); /* also from here: no race with the child's own call */

    double deadline = pt_test_now_() + timeout_s;
    int status = 0;
    pt_test_result_t res;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            *detail = errno;
            sigprocmask(SIG_SETMASK, &old, NULL);
            return PT_TEST_ERROR;
        }
        double left = deadline - pt_test_now_();
        if (left <= 0) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            sigprocmask(SIG_SETMASK, &old, NULL);
            return PT_TEST_TIMEOUT;
        }
        /* Wake on any SIGCHLD, at the latest every 100 ms (a SIGCHLD from another child of
         * this process must not make us sleep through the deadline). */
        if (left > 0.1)
            left = 0.1;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        sigtimedwait(&chld, NULL, &ts);
    }
    /* Anything the test left behind in its process group goes with it. */
    kill(-pid, SIGKILL);
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (WIFSIGNALED(status)) {
        *detail = WTERMSIG(status);
        res = PT_TEST_CRASH;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        *detail = WEXITSTATUS(status);
        res = PT_TEST_FAIL;
    } else {
        res = PT_TEST_PASS;
    }
    return res;
}

PT_TEST_UNUSED_ static int pt_test_selected_(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (pt_test_case_t *tc = pt_test_head_; tc != NULL; tc = tc->next)
            printf("%s\n", tc->name);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        pt_test_case_t *tc = pt_test_head_;
        while (tc != NULL && strcmp(tc->name, argv[i]) != 0)
            tc = tc->next;
        if (tc == NULL) {
            fprintf(stderr, "%s: no test named %s\n", argv[0], argv[i]);
            return 2;
        }
    }

    const char *nofork = getenv("PT_TEST_NOFORK");
    int in_process = nofork != NULL && *nofork != '\0' && strcmp(nofork, "0") != 0;
    double timeout = pt_test_default_timeout_();
    int passed = 0, failed = 0;

    /* Output goes to pipes under `make`; line buffering keeps parent and child lines whole. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (pt_test_case_t *tc = pt_test_head_; tc != NULL; tc = tc->next) {
        if (!pt_test_selected_(tc->name, argc, argv))
            continue;
        if (in_process) {
            tc->fn(); /* a failed ASSERT exits the whole runner */
            printf("ok %s\n", tc->name);
            passed++;
            continue;
        }
        int detail;
        pt_test_result_t r = pt_test_run_case_(tc, timeout, &detail);
        switch (r) {
        case PT_TEST_PASS:
            printf("ok %s\n", tc->name);
            passed++;
            continue;
        case PT_TEST_FAIL:
            fprintf(stderr, "  %s (%s:%d): exited with status %d\n", tc->name, tc->file, tc->line,
                    detail);
            break;
        case PT_TEST_CRASH:
            fprintf(stderr, "  %s (%s:%d): killed by signal %d (%s)\n", tc->name, tc->file,
                    tc->line, detail, strsignal(detail));
            break;
        case PT_TEST_TIMEOUT:
            fprintf(stderr, "  %s (%s:%d): timed out after %g s\n", tc->name, tc->file, tc->line,
                    timeout);
            break;
        case PT_TEST_ERROR:
            fprintf(stderr, "  %s: could not run: %s\n", tc->name, strerror(detail));
            break;
        }
        fflush(stderr);
        printf("FAIL %s\n", tc->name);
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed > 0 ? 1 : 0;
}

#endif
