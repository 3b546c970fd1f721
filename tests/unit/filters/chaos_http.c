/* tests/unit/filters/chaos_http.c
 * The chaos_http filter's callbacks against a fake stream and a chaos snapshot made here: no
 * toxic on the route costs no body watch; a delay pauses once and is not drawn again on the
 * call back; drop-first resets exactly count requests; an abort answers its status or a gRPC
 * status; a dry run counts and does nothing; the slow body lets a slice through per window,
 * holds the rest (a ref on its slab) and ends the pause once nothing is held; a toxic with a
 * match[] acts on, and counts, only the requests it matches (a dry run too). */
#include "test.h"

#include "config/node.h"
#include "fake_stream.h"
#include "filters/chaos_http.c"

static pt_chaos_snapshot_t *snap; /* what pt_chaos_worker_snapshot answers */

pt_chaos_snapshot_t *pt_chaos_worker_snapshot(pt_worker_t *w)
{
    (void)w;
    return snap;
}

typedef struct fixture {
    pt_stream_t st;
    pt_conn_info_t conn;
    pt_worker_t worker;
    pt_config_t config;
    pt_http_msg_t head;
    pt_http_route_t route;
    chaos_http_t inst;
} fixture_t;

/* A snapshot with route web/main holding the toxics given (each with fresh counters). */
static void make_snapshot(const pt_toxic_t *toxics, size_t n)
{
    snap = calloc(1, sizeof(*snap) + sizeof(pt_chaos_route_t));
    atomic_init(&snap->refs, 1);
    snap->routes = (pt_chaos_route_t *)&snap->proxies[0];
    snap->n_routes = 1;
    strcpy(snap->routes[0].virtual_service, "web");
    strcpy(snap->routes[0].route, "main");
    for (size_t i = 0; i < n; i++) {
        snap->routes[0].toxics[i] = toxics[i];
        snap->routes[0].toxics[i].counters = pt_toxic_counters_new();
    }
    snap->routes[0].n_toxics = n;
}

static fixture_t *fixture(const char *vs)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    fake_stream_init(&f.st, &f.conn, &f.worker, &f.config, &f.head);
    uv_loop_init(&f.worker.loop);
    /* The worker serves chaos snapshots (any non-NULL: pt_chaos_worker_snapshot is faked). */
    static char chaos_stand_in;
    f.worker.ext = &chaos_stand_in;
    f.route.name = "main";
    f.route.virtual_service = vs;
    fake.route = &f.route;
    return &f;
}

static uint64_t hits(size_t i)
{
    return atomic_load(&snap->routes[0].toxics[i].counters->hits);
}

static void end(fixture_t *f)
{
    chaos_http_destroy(&f->st, &f->inst);
    ASSERT(f->inst.snap == NULL);
    ASSERT_EQ(atomic_load(&snap->refs), 1u);
    pt_chaos_snapshot_unref(snap);
    snap = NULL;
    uv_loop_close(&f->worker.loop);
    pt_arena_dispose(&f->st.arena);
}

TEST(no_toxic_on_the_route_watches_nothing)
{
    pt_toxic_t t = {.name = "d", .type = PT_TOXIC_HTTP_DELAY, .toxicity = 1, .delay_ms = 10};
    make_snapshot(&t, 1);
    fixture_t *f = fixture("default/other"); /* another VirtualService's route "main" */
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.body_filters_asked, 0);
    ASSERT(f->inst.snap == NULL);
    end(f);
}

TEST(delay_pauses_once_then_abort_answers)
{
    pt_toxic_t t[2] = {
        {.name = "d", .type = PT_TOXIC_HTTP_DELAY, .toxicity = 1, .delay_ms = 40},
        {.name = "a", .type = PT_TOXIC_HTTP_ABORT, .toxicity = 1, .http_status = 418},
    };
    make_snapshot(t, 2);
    fixture_t *f = fixture("default/web");
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_PAUSE);
    ASSERT_EQ(fake.resume_after_ms, 40u);
    ASSERT_EQ(fake.body_filters_asked, 1);
    ASSERT_EQ(atomic_load(&snap->refs), 2u); /* the request's ref */
    fake.resume_after_ms = 0;
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_RESPONDED);
    ASSERT_EQ(fake.resume_after_ms, 0u); /* not delayed twice */
    ASSERT_EQ(fake.respond_status, 418);
    ASSERT_EQ(fake.respond_flag, PT_FLAG_FI);
    ASSERT_STREQ(f->st.details, "chaos:a");
    ASSERT_EQ(hits(0), 1u);
    ASSERT_EQ(hits(1), 1u);
    chaos_http_log(&f->st, &f->inst);
    ASSERT_EQ(f->st.flag, PT_FLAG_DI_FI);
    end(f);
}

TEST(grpc_abort_and_default_status)
{
    pt_toxic_t t = {.name = "g", .type = PT_TOXIC_HTTP_ABORT, .toxicity = 1, .grpc_status = 14};
    make_snapshot(&t, 1);
    fixture_t *f = fixture("web");
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_RESPONDED);
    ASSERT_EQ(fake.grpc_status, 14);
    end(f);
    t.grpc_status = 0;
    make_snapshot(&t, 1);
    f = fixture("web");
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_RESPONDED);
    ASSERT_EQ(fake.respond_status, 503);
    end(f);
}

TEST(drop_first_resets_exactly_count_requests)
{
    pt_toxic_t t = {.name = "x", .type = PT_TOXIC_HTTP_DROP_FIRST, .toxicity = 1, .count = 3};
    make_snapshot(&t, 1);
    int resets = 0;
    for (int i = 0; i < 6; i++) {
        fixture_t *f = fixture("web");
        pt_chaos_snapshot_ref(snap);
        pt_filter_status_t s = chaos_http_request_headers(&f->st, &f->inst, &f->head);
        ASSERT_EQ(s, i < 3 ? PT_FILTER_RESPONDED : PT_FILTER_CONTINUE);
        resets += fake.resets;
        chaos_http_destroy(&f->st, &f->inst);
        pt_chaos_snapshot_unref(snap);
        uv_loop_close(&f->worker.loop);
        pt_arena_dispose(&f->st.arena);
    }
    ASSERT_EQ(resets, 3);
    ASSERT_EQ(hits(0), 3u);
    pt_chaos_snapshot_unref(snap);
    snap = NULL;
}

TEST(dry_run_counts_and_does_nothing)
{
    pt_toxic_t t = {.name = "a", .type = PT_TOXIC_HTTP_ABORT, .toxicity = 1, .dry_run = true};
    make_snapshot(&t, 1);
    fixture_t *f = fixture("web");
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.respond_status, 0);
    ASSERT_EQ(hits(0), 0u);
    ASSERT_EQ(atomic_load(&snap->routes[0].toxics[0].counters->dry_run_hits), 1u);
    end(f);
}

TEST(slow_body_slices_per_window_and_holds_the_rest)
{
    pt_toxic_t t = {.name = "s",
                    .type = PT_TOXIC_HTTP_SLOW_BODY,
                    .toxicity = 1,
                    .bytes = 100,
                    .interval_ms = 40};
    make_snapshot(&t, 1);
    fixture_t *f = fixture("web");
    ASSERT_EQ(chaos_http_request_headers(&f->st, &f->inst, &f->head), PT_FILTER_CONTINUE);
    ASSERT(f->inst.slow != NULL);
    pt_buf_t *slab = pt_buf_new_sized(250);
    memset(slab->data, 'b', 250);
    /* 60 bytes fit in the first window: passed on untouched by the stream itself. */
    ASSERT_EQ(chaos_http_response_data(&f->st, &f->inst, slab->data, 60, slab), PT_FILTER_CONTINUE);
    /* 190 more: the window's 40 go now, 150 are held (a ref), the timer brings the rest. */
    ASSERT_EQ(chaos_http_response_data(&f->st, &f->inst, slab->data + 60, 190, slab),
              PT_FILTER_PAUSE);
    ASSERT_EQ(fake.sent_len, 40u);
    ASSERT_EQ(slab->refs, 2u);
    ASSERT(fake.resume_after_ms > 0 && fake.resume_after_ms <= 40);
    /* The stream calls back when the window is over (the loop's clock moved on). */
    f->inst.next_slice_ms = 0;
    ASSERT_EQ(chaos_http_response_data(&f->st, &f->inst, NULL, 0, NULL), PT_FILTER_PAUSE);
    ASSERT_EQ(fake.sent_len, 140u);
    ASSERT_EQ(fake.resume_after_ms, 40u);
    f->inst.next_slice_ms = 0;
    ASSERT_EQ(chaos_http_response_data(&f->st, &f->inst, NULL, 0, NULL), PT_FILTER_CONTINUE);
    ASSERT_EQ(fake.sent_len, 190u); /* all of it: the pause ends */
    ASSERT_EQ(slab->refs, 1u);
    chaos_http_log(&f->st, &f->inst);
    ASSERT_EQ(f->st.flag, PT_FLAG_FI);
    pt_buf_unref(slab);
    end(f);
}

/* A toxic's match[], compiled as the API compiles one (config/chaos_match.c): one ref. */
static pt_toxic_match_t *match_of(const char *text)
{
    pt_arena_t a;
    pt_arena_init(&a, 1024);
    pt_cfg_docs_t docs = {0};
    pt_config_errors_t e = {0};
    size_t n_nodes = 0;
    ASSERT(pt__cfg_parse_yaml(&a, "t", text, strlen(text), &n_nodes, &docs, &e) == 0);
    pt_toxic_match_t *m = NULL;
    char err[256] = "";
    ASSERT_EQ(pt_toxic_match_compile(docs.v[0].root, &m, err, sizeof(err)), 0);
    pt__cfg_docs_dispose(&docs);
    pt_config_errors_dispose(&e);
    pt_arena_dispose(&a);
    return m;
}

/* One request through the filter, on snap (kept); *took_ref: whether it held the snapshot. */
static pt_filter_status_t one_request(const char *method, const char *path, bool *took_ref)
{
    fixture_t *f = fixture("web");
    f->head.method = (pt_str_t){method, strlen(method)};
    f->head.path = (pt_str_t){path, strlen(path)};
    pt_filter_status_t s = chaos_http_request_headers(&f->st, &f->inst, &f->head);
    *took_ref = f->inst.snap != NULL;
    ASSERT_EQ(fake.body_filters_asked, *took_ref ? 1 : 0);
    chaos_http_destroy(&f->st, &f->inst);
    uv_loop_close(&f->worker.loop);
    pt_arena_dispose(&f->st.arena);
    return s;
}

TEST(a_match_selects_the_requests_a_toxic_rolls_and_counts)
{
    pt_toxic_t t[2] = {
        {.name = "api",
         .type = PT_TOXIC_HTTP_ABORT,
         .toxicity = 1,
         .http_status = 503,
         .match = match_of("[{uri: {prefix: /api}, method: {exact: POST}}]")},
        {.name = "probe",
         .type = PT_TOXIC_HTTP_ABORT,
         .toxicity = 1,
         .dry_run = true,
         .match = match_of("[{uri: {exact: /health}}, {queryParams: {probe: {}}}]")},
    };
    make_snapshot(t, 2); /* the snapshot's toxics hold the matches' refs now */
    bool ref;
    ASSERT_EQ(one_request("POST", "/api/x", &ref), PT_FILTER_RESPONDED);
    ASSERT(ref);
    ASSERT_EQ(fake.respond_status, 503);
    /* Matched by neither: no ref, no body watch, nothing rolled or counted. */
    ASSERT_EQ(one_request("GET", "/api/x", &ref), PT_FILTER_CONTINUE);
    ASSERT(!ref);
    ASSERT_EQ(one_request("POST", "/other", &ref), PT_FILTER_CONTINUE);
    ASSERT(!ref);
    ASSERT_EQ(one_request("GET", "/x?other=1", &ref), PT_FILTER_CONTINUE);
    ASSERT(!ref);
    /* The dry run counts only what its match selects: any one of its entries. */
    ASSERT_EQ(one_request("GET", "/health", &ref), PT_FILTER_CONTINUE);
    ASSERT(ref);
    ASSERT_EQ(one_request("GET", "/x?probe=1", &ref), PT_FILTER_CONTINUE);
    ASSERT(ref);
    ASSERT_EQ(hits(0), 1u);
    ASSERT_EQ(atomic_load(&snap->routes[0].toxics[0].counters->dry_run_hits), 0u);
    ASSERT_EQ(atomic_load(&snap->routes[0].toxics[1].counters->dry_run_hits), 2u);
    ASSERT_EQ(hits(1), 0u);
    ASSERT_EQ(atomic_load(&snap->refs), 1u);
    pt_chaos_snapshot_unref(snap); /* and the matches with it */
    snap = NULL;
}
