/* config/regex.c
 * PCRE2 behind the small interface of regex.h. Options chosen to behave like RE2, which is
 * what Istio specifies: UTF-8 patterns that still match (not error) on invalid UTF-8 input,
 * `$` only at the very end (RE2 has no "before a final newline"), no \C. Full-match patterns
 * are anchored at both ends by the compile options rather than by wrapping the text, so
 * alternations ("a|ab") need no extra group.
 *
 * The match context (limits) is one per process, read-only once made. The match data is one
 * per thread: pcre2_match() keeps its backtracking frames in it between calls, so after a
 * thread's first regex match nothing is allocated on the request path. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pt_regex {
    pcre2_code *code;
    uint32_t groups;
};

/* Enough for \0..\9 in rewrites; a pattern with more groups still matches (rc 0). */
#define OVECTOR_PAIRS 10
/* A few hundred thousand steps is microseconds to a few milliseconds: far above what a route
 * regex needs, far below what a worker can afford to stall. */
#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 5000
#define HEAP_LIMIT_KIB 4096

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static pcre2_match_context *match_ctx;

static void free_md(void *md)
{
    pcre2_match_data_free(md);
}

static void init_once(void)
{
    if (pthread_key_create(&md_key, free_md) != 0)
        abort();
    match_ctx = pcre2_match_context_create(NULL);
    if (match_ctx == NULL)
        abort();
    pcre2_set_match_limit(match_ctx, MATCH_LIMIT);
    pcre2_set_depth_limit(match_ctx, DEPTH_LIMIT);
    pcre2_set_heap_limit(match_ctx, HEAP_LIMIT_KIB);
}

static pcre2_match_data *thread_md(void)
{
    pthread_once(&once, init_once);
    pcre2_match_data *md = pthread_getspecific(md_key);
    if (md == NULL) {
        md = pcre2_match_data_create(OVECTOR_PAIRS, NULL);
        if (md == NULL || pthread_setspecific(md_key, md) != 0)
            abort();
    }
    return md;
}

static void free_code(void *arg)
{
    pcre2_code_free(arg);
}

pt_regex_t *pt_regex_compile(pt_arena_t *a, const char *pattern, size_t len, bool full, char *err,
                             size_t err_cap)
{
    pthread_once(&once, init_once);
    if (len > PT_REGEX_MAX_PATTERN) {
        snprintf(err, err_cap, "longer than %d bytes", PT_REGEX_MAX_PATTERN);
        return NULL;
    }
    uint32_t opts =
        PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C;
    if (full)
        opts |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    int code_err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code_err, &off, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code_err, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code_err);
        snprintf(err, err_cap, "invalid regex at offset %zu: %s", (size_t)off, (char *)msg);
        return NULL;
    }
    /* JIT when the platform has it; the interpreter otherwise. Both honour the match limit. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    pt_regex_t *re = pt_arena_calloc(a, sizeof(*re));
    re->code = code;
    if (pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &re->groups) != 0)
        re->groups = 0;
    pt_arena_on_free(a, free_code, code);
    return re;
}

uint32_t pt_regex_groups(const pt_regex_t *re)
{
    return re->groups;
}

bool pt_regex_match(const pt_regex_t *re, const char *s, size_t len)
{
    if (s == NULL)
        s = "";
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, thread_md(), match_ctx);
    return rc >= 0; /* 0: matched, ovector too small for every group */
}

typedef struct out_buf {
    pt_arena_t *a;
    char *p;
    size_t len, cap;
} out_buf_t;

static void out_put(out_buf_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->cap + n + 1) * 2;
        char *p = pt_arena_alloc(o->a, cap);
        memcpy(p, o->p, o->len);
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Length of the UTF-8 sequence starting at s[i] (1 for a stray byte), within len. */
static size_t char_len(const char *s, size_t i, size_t len)
{
    size_t j = i + 1;
    while (j < len && ((unsigned char)s[j] & 0xC0) == 0x80)
        j++;
    return j - i;
}

char *pt_regex_replace_all(const pt_regex_t *re, pt_arena_t *a, const char *s, size_t len,
                           const char *rewrite, size_t rewrite_len, size_t *out_len)
{
    pcre2_match_data *md = thread_md();
    out_buf_t o = {a, NULL, 0, 0};
    o.cap = len + rewrite_len + 64;
    o.p = pt_arena_alloc(a, o.cap);
    size_t pos = 0;
    bool have_last = false;
    size_t last_end = 0;
    if (s == NULL)
        s = "";
    while (pos <= len) {
        int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, pos, 0, md, match_ctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) { /* a limit: leave the path as it was */
            *out_len = len;
            return pt_arena_strndup(a, s, len);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > pos)
            out_put(&o, s + pos, ms - pos);
        if (ms == me && have_last && ms == last_end) {
            /* An empty match right where the previous match ended: step over one character
             * (RE2 GlobalReplace does the same, so "x*" does not rewrite twice in a row). */
            if (ms >= len)
                break;
            size_t cl = char_len(s, ms, len);
            out_put(&o, s + ms, cl);
            pos = ms + cl;
            continue;
        }
        for (size_t i = 0; i < rewrite_len; i++) {
            char ch = rewrite[i];
            if (ch == '\\' && i + 1 < rewrite_len) {
                char nx = rewrite[++i];
                if (nx >= '0' && nx <= '9') {
                    unsigned g = (unsigned)(nx - '0');
                    if (g < OVECTOR_PAIRS && (rc == 0 || g < (unsigned)rc) &&
                        ov[2 * g] != PCRE2_UNSET)
                        out_put(&o, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
                    continue;
                }
                out_put(&o, &nx, 1); /* "\\" -> "\" */
                continue;
            }
            out_put(&o, &ch, 1);
        }
        pos = me;
        last_end = me;
        have_last = true;
    }
    if (pos < len)
        out_put(&o, s + pos, len - pos);
    o.p[o.len] = '\0';
    *out_len = o.len;
    return o.p;
}
