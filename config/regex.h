/* config/regex.h
 * Istio's regexes (StringMatch.regex, uriRegexRewrite) on PCRE2. Istio specifies RE2 with
 * full-match semantics; PCRE2 is the maintained engine Debian ships, and RE2's syntax is, for
 * what route configs use, a subset of it. Patterns are compiled once at config time into the
 * snapshot arena (freed with it) and only matched on the request path.
 *
 * Hostile input is bounded twice: a pattern longer than PT_REGEX_MAX_PATTERN is refused at
 * config time, and every match runs under a match limit, a depth limit and a heap limit, so
 * a catastrophic pattern/subject pair ends as "no match" instead of a stalled worker. Match
 * scratch (pcre2_match_data) is one per thread, made on the thread's first match: the request
 * path never allocates except from the request arena. */
#ifndef PT_REGEX_H
#define PT_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct pt_regex pt_regex_t;

#define PT_REGEX_MAX_PATTERN 1024

/* Compiles pattern[0..len). full: the whole subject must match (RE2 FullMatch, as Istio's
 * StringMatch); otherwise matches are searched anywhere (uriRegexRewrite). The compiled code
 * lives until arena a is disposed. Returns NULL with a message in err (always terminated)
 * when the pattern is too long or invalid. */
pt_regex_t *pt_regex_compile(pt_arena_t *a, const char *pattern, size_t len, bool full, char *err,
                             size_t err_cap);

/* Capturing groups of the pattern. */
uint32_t pt_regex_groups(const pt_regex_t *re);

/* True when re matches s[0..len) (wholly, for a full-match regex). A match that hits a limit
 * is no match. */
bool pt_regex_match(const pt_regex_t *re, const char *s, size_t len);

/* RE2 GlobalReplace: every non-overlapping match of re in s[0..len) replaced by rewrite,
 * where \0 .. \9 stand for the groups and \\ for a backslash. The result, NUL-terminated, is
 * allocated in a; *out_len gets its length. When a match hits a limit, s is returned as is. */
char *pt_regex_replace_all(const pt_regex_t *re, pt_arena_t *a, const char *s, size_t len,
                           const char *rewrite, size_t rewrite_len, size_t *out_len);

#endif
