/* tests/unit/proxy/access_log.c
 * The access-log line (proxy/access_log.c) in both formats, with Istio's fields in their places,
 * and the copy an upgraded request's line is kept in until its tunnel ends. Lines go through a
 * real log writer into a pipe and are read back. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/access_log.h"
#include "test.h"

/* Formats e (JSON or text) and returns the line written, NUL-terminated, without its '\n'. */
static void format_line(const pt_access_log_entry_t *e, bool is_json, char *out, size_t cap)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pt_stats_t stats = {0};
    pt_log_writer_t *w = pt_log_writer_start(fds[1]);
    pt_access_log_t log;
    pt_access_log_init(&log, &loop, w, &stats);
    pt_access_log_write(&log, e, is_json);
    pt_access_log_close(&log);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(pt_log_writer_stop(w), 0); /* joins the writer: the line is in the pipe */
    ssize_t n = read(fds[0], out, cap - 1);
    ASSERT(n > 1 && out[n - 1] == '\n');
    out[n - 1] = '\0';
    ASSERT_EQ(uv_loop_close(&loop), 0);
    close(fds[0]);
    close(fds[1]);
}

static pt_access_log_entry_t sample(void)
{
    return (pt_access_log_entry_t){
        .start_time_us = 1700000000123456u,
        .method = PT_STR_LIT("GET"),
        .path = PT_STR_LIT("/reviews/1"),
        .protocol = PT_STR_LIT("HTTP/1.1"),
        .status = 200,
        .flags = "-",
        .bytes_received = 3,
        .bytes_sent = 788,
        .duration_ms = 6,
        .upstream_ms = 5,
        .request_id = PT_STR_LIT("5a5ad65e"),
        .authority = PT_STR_LIT("reviews:9080"),
        .upstream_host = PT_STR_LIT("10.0.0.7:9080"),
        .attempts = 1,
        .route_name = "reviews-v1",
        .upstream_cluster = "outbound|9080|v1|reviews",
        .details = "via_upstream",
    };
}

TEST(text_line_has_istios_fields_in_istios_places)
{
    pt_access_log_entry_t e = sample();
    char line[1024];
    format_line(&e, false, line, sizeof(line));
    ASSERT_STREQ(line, "[2023-11-14T22:13:20.123Z] \"GET /reviews/1 HTTP/1.1\" 200 - via_upstream "
                       "3 788 6 5 \"-\" \"-\" \"5a5ad65e\" \"reviews:9080\" \"10.0.0.7:9080\" "
                       "outbound|9080|v1|reviews reviews-v1");
    e.route_name = e.upstream_cluster = e.details = NULL; /* absent: "-" */
    format_line(&e, false, line, sizeof(line));
    ASSERT(strstr(line, " 200 - - 3 788 ") != NULL);
    ASSERT(strstr(line, "\"10.0.0.7:9080\" - -") != NULL);
}

TEST(json_line_has_istios_keys)
{
    pt_access_log_entry_t e = sample();
    char line[2048];
    format_line(&e, true, line, sizeof(line));
    ASSERT(strstr(line, "\"response_flags\":\"-\",\"response_code_details\":\"via_upstream\",") !=
           NULL);
    ASSERT(strstr(line, "\"upstream_cluster\":\"outbound|9080|v1|reviews\","
                        "\"route_name\":\"reviews-v1\",") != NULL);
    e.route_name = e.upstream_cluster = e.details = NULL; /* absent: null */
    format_line(&e, true, line, sizeof(line));
    ASSERT(strstr(line, "\"response_code_details\":null,") != NULL);
    ASSERT(strstr(line, "\"upstream_cluster\":null,\"route_name\":null,") != NULL);
}

/* Lines of one second share the formatted date; the next second's line must not reuse it. */
TEST(each_line_has_its_own_time_and_numbers)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pt_stats_t stats = {0};
    pt_log_writer_t *w = pt_log_writer_start(fds[1]);
    pt_access_log_t log;
    pt_access_log_init(&log, &loop, w, &stats);
    pt_access_log_entry_t e = sample();
    const uint64_t at[] = {1700000000123456u, 1700000000999999u, 1700000001000000u,
                           1709251199000999u /* 2024-02-29T23:59:59 */, 1709251200001000u};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        e.start_time_us = at[i];
        e.bytes_sent = i == 0 ? UINT64_MAX : i * 1000;
        e.status = i == 1 ? 0 : 503;
        pt_access_log_write(&log, &e, false);
    }
    e.upstream_ms = UINT64_MAX;
    e.path = PT_STR_LIT("/a\x01\x1f\x7f\"b");
    pt_access_log_write(&log, &e, true);
    pt_access_log_close(&log);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(pt_log_writer_stop(w), 0);
    char out[8192];
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    ASSERT(n > 0);
    out[n] = '\0';
    const char *want[] = {
        "[2023-11-14T22:13:20.123Z] \"GET /reviews/1 HTTP/1.1\" 503 - via_upstream 3 "
        "18446744073709551615 6 5 ",
        "[2023-11-14T22:13:20.999Z] \"GET /reviews/1 HTTP/1.1\" 0 - via_upstream 3 1000 6 5 ",
        "[2023-11-14T22:13:21.000Z] \"GET /reviews/1 HTTP/1.1\" 503 - via_upstream 3 2000 6 5 ",
        "[2024-02-29T23:59:59.000Z] ",
        "[2024-03-01T00:00:00.001Z] ",
        "{\"start_time\":\"2024-03-01T00:00:00.001Z\",\"method\":\"GET\",\"path\":"
        "\"/a\\u0001\\u001f\\u007f\\\"b\",\"protocol\":\"HTTP/1.1\",\"response_code\":503,",
    };
    char *line = out, *json = NULL;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        json = line; /* the last one is */
        char *nl = strchr(line, '\n');
        ASSERT(nl != NULL);
        *nl = '\0';
        if (strncmp(line, want[i], strlen(want[i])) != 0) {
            fprintf(stderr, "line %zu: %s\n want: %s\n", i, line, want[i]);
            ASSERT(0);
        }
        line = nl + 1;
    }
    ASSERT(strstr(json, "\"upstream_service_time\":null,") != NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    close(fds[0]);
    close(fds[1]);
}

TEST(decimal_writer_matches_printf)
{
    const int64_t v[] = {0, 7, 10, 99, 100, 65535, -1, -200, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char got[24], want[24];
        got[pt_put_i64(got, v[i])] = '\0';
        snprintf(want, sizeof(want), "%lld", (long long)v[i]);
        ASSERT_STREQ(got, want);
    }
    char got[24];
    got[pt_put_u64(got, UINT64_MAX)] = '\0';
    ASSERT_STREQ(got, "18446744073709551615");
}

/* The bound a line is reserved by: with every value empty or absent and every number at its
 * longest, a line is within PT_ACCESS_LOG_FIXED_MAX in both formats. */
TEST(a_line_without_its_values_is_within_the_fixed_bound)
{
    pt_str_t empty = {"", 0}, absent = {NULL, 0};
    for (int variant = 0; variant < 2; variant++) {
        pt_str_t v = variant == 0 ? empty : absent;
        const char *c = variant == 0 ? "" : NULL;
        pt_access_log_entry_t e = {
            .start_time_us = UINT64_MAX / 2, /* a year of many digits, as gmtime writes it */
            .method = v,
            .path = v,
            .protocol = v,
            .status = INT_MIN,
            .flags = c,
            .bytes_received = UINT64_MAX,
            .bytes_sent = UINT64_MAX,
            .duration_ms = UINT64_MAX,
            .upstream_ms = UINT64_MAX - 1,
            .x_forwarded_for = v,
            .user_agent = v,
            .request_id = v,
            .authority = v,
            .upstream_host = v,
            .peer_principal = "",
            .attempts = INT_MIN,
            .route_name = c,
            .upstream_cluster = c,
            .details = c,
            .has_grpc_status = true,
            .grpc_status = INT_MIN,
        };
        for (int is_json = 0; is_json < 2; is_json++) {
            char line[4096];
            format_line(&e, is_json, line, sizeof(line));
            ASSERT(strlen(line) + 1 < PT_ACCESS_LOG_FIXED_MAX);
        }
    }
}

/* A line whose values could outgrow the buffer keeps every field, its values cut: the JSON stays
 * one object. */
TEST(values_too_long_for_a_buffer_are_cut_not_the_line)
{
    static char path[100000], agent[50000];
    memset(path, 'p', sizeof(path));
    memset(agent, '"', sizeof(agent)); /* six bytes each in JSON, were it not cut */
    pt_access_log_entry_t e = sample();
    e.path = (pt_str_t){path, sizeof(path)};
    e.user_agent = (pt_str_t){agent, sizeof(agent)};
    static char line[PT_LOG_BUF_BYTES + 16];
    format_line(&e, false, line, sizeof(line));
    size_t n = strlen(line);
    ASSERT(n > 2000 && n < PT_LOG_BUF_BYTES);
    const char *tail = "\"10.0.0.7:9080\" outbound|9080|v1|reviews reviews-v1";
    ASSERT_STREQ(line + n - strlen(tail), tail);
    format_line(&e, true, line, sizeof(line));
    n = strlen(line);
    ASSERT(n < PT_LOG_BUF_BYTES && line[n - 1] == '}');
    ASSERT(strstr(line, "\"route_name\":\"reviews-v1\",\"upstream_request_attempt_count\":1}") !=
           NULL);
    ASSERT(strstr(line, "\"user_agent\":\"\\\"\\\"") != NULL);
}

TEST(a_copy_outlives_the_strings_it_was_made_from)
{
    char method[] = "GET", path[] = "/chat", route[] = "ws", details[] = "via_upstream";
    pt_access_log_entry_t e = sample();
    e.method = (pt_str_t){method, 3};
    e.path = (pt_str_t){path, 5};
    e.x_forwarded_for = (pt_str_t){NULL, 0};
    e.route_name = route;
    e.details = details;
    pt_access_log_entry_t *c = pt_access_log_entry_copy(&e);
    memset(method, 'x', 3);
    memset(path, 'x', 5);
    memset(route, 'x', 2);
    memset(details, 'x', strlen(details));
    ASSERT_MEMEQ(c->method.base, c->method.len, "GET", 3);
    ASSERT_MEMEQ(c->path.base, c->path.len, "/chat", 5);
    ASSERT(c->x_forwarded_for.base == NULL); /* absent stays absent */
    ASSERT_STREQ(c->route_name, "ws");
    ASSERT_STREQ(c->details, "via_upstream");
    ASSERT_STREQ(c->upstream_cluster, "outbound|9080|v1|reviews");
    ASSERT(c->peer_principal == NULL);
    ASSERT_EQ(c->bytes_sent, 788);
    free(c);
}
