/* tests/unit/lib/test_runner.c
 * Tests the unit-test runner itself (tests/unit/test.h): that each assertion passes on equal
 * values and fails on unequal ones with file:line and the values on stderr, and that a crash
 * and a hang are reported as such. The failing cases run through pt_test_run_case_() in a
 * grandchild whose stderr goes to a pipe, so the suite itself stays green. */
#include "test.h"

#include <fcntl.h>

/* The body of the case under test, and a pipe its stderr is redirected to. */
static void (*inner_body)(void);
static int inner_err_fd = -1;

static void inner_trampoline(void)
{
    if (inner_err_fd >= 0)
        dup2(inner_err_fd, 2);
    inner_body();
}

/* Runs body as a test case with the given timeout; returns the result and fills err with what
 * it wrote to stderr. */
static pt_test_result_t run_inner(void (*body)(void), double timeout, int *detail, char *err,
                                  size_t errlen)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    inner_body = body;
    inner_err_fd = fds[1];
    pt_test_case_t tc = {"inner", inner_trampoline, __FILE__, __LINE__, NULL};
    pt_test_result_t r = pt_test_run_case_(&tc, timeout, detail);
    close(fds[1]);
    inner_err_fd = -1;
    size_t n = 0;
    ssize_t k;
    while (n + 1 < errlen && (k = read(fds[0], err + n, errlen - 1 - n)) > 0)
        n += (size_t)k;
    err[n] = '\0';
    close(fds[0]);
    return r;
}

static void body_pass(void)
{
    char a[] = "abc", b[] = "abc";
    ASSERT(1 + 1 == 2);
    ASSERT_EQ(42, 42);
    ASSERT_EQ((size_t)7, 7);
    ASSERT_NE(1, 2);
    ASSERT_STREQ(a, b);
    ASSERT_STREQ(NULL, NULL);
    ASSERT_MEMEQ(a, 3, b, 3);
    ASSERT_MEMEQ(NULL, 0, "", 0);
}
static void body_assert(void)
{
    ASSERT(1 == 2);
}
static void body_eq(void)
{
    ASSERT_EQ(40 + 1, -7);
}
static void body_ne(void)
{
    ASSERT_NE(3, 3);
}
static void body_streq(void)
{
    ASSERT_STREQ("left", "right");
}
static void body_streq_null(void)
{
    ASSERT_STREQ(NULL, "x");
}
static void body_memeq(void)
{
    ASSERT_MEMEQ("a\r\nb", 4, "a\r\nc", 4);
}
static void body_memeq_len(void)
{
    ASSERT_MEMEQ("abc", 3, "ab", 2);
}
static void body_abort(void)
{
    abort();
}
static void body_hang(void)
{
    for (;;)
        pause();
}

TEST(passing_assertions_pass)
{
    char err[4096];
    int detail;
    ASSERT_EQ(run_inner(body_pass, 5, &detail, err, sizeof err), PT_TEST_PASS);
    ASSERT_STREQ(err, "");
}

TEST(failed_assert_is_detected)
{
    char err[4096];
    int detail;
    ASSERT_EQ(run_inner(body_assert, 5, &detail, err, sizeof err), PT_TEST_FAIL);
    ASSERT_EQ(detail, 1);
    ASSERT(strstr(err, "test_runner.c:") != NULL);
    ASSERT(strstr(err, "ASSERT(1 == 2) failed") != NULL);
}

TEST(failed_assert_eq_prints_both_values)
{
    char err[4096];
    int detail;
    ASSERT_EQ(run_inner(body_eq, 5, &detail, err, sizeof err), PT_TEST_FAIL);
    ASSERT(strstr(err, "ASSERT_EQ(40 + 1, -7) failed: 41 vs -7") != NULL);
    ASSERT_EQ(run_inner(body_ne, 5, &detail, err, sizeof err), PT_TEST_FAIL);
    ASSERT(strstr(err, "ASSERT_NE(3, 3) failed: 3 vs 3") != NULL);
}

TEST(failed_streq_and_memeq_are_detected)
{
    char err[4096];
    int detail;
    ASSERT_EQ(run_inner(body_streq, 5, &detail, err, sizeof err), PT_TEST_FAIL);
    ASSERT(strstr(err, "\"left\"") != NULL && strstr(err, "\"right\"") != NULL);
    ASSERT_EQ(run_inner(body_streq_null, 5, &detail, err, sizeof err), PT_TEST_FAIL);
    ASSERT(strstr(err, "(null)") != NULL);
    ASSERT_EQ(run_inner(body_memeq, 5, &detail, err, sizeof err), PT_TEST_FAIL);
    ASSERT(strstr(err, "a\\r\\nc") != NULL);
    ASSERT_EQ(run_inner(body_memeq_len, 5, &detail, err, sizeof err), PT_TEST_FAIL);
}

TEST(crash_is_detected)
{
    char err[4096];
    int detail;
    ASSERT_EQ(run_inner(body_abort, 5, &detail, err, sizeof err), PT_TEST_CRASH);
    ASSERT_EQ(detail, SIGABRT);
}

TEST(hang_is_killed_at_the_timeout)
{
    char err[4096];
    int detail;
    double t0 = pt_test_now_();
    ASSERT_EQ(run_inner(body_hang, 0.2, &detail, err, sizeof err), PT_TEST_TIMEOUT);
    double took = pt_test_now_() - t0;
    ASSERT(took >= 0.19 && took < 3.0);
}

TEST(tests_are_registered_in_order)
{
    ASSERT(pt_test_head_ != NULL);
    ASSERT_STREQ(pt_test_head_->name, "passing_assertions_pass");
    int n = 0;
    for (pt_test_case_t *tc = pt_test_head_; tc != NULL; tc = tc->next)
        n++;
    ASSERT_EQ(n, 7);
}
