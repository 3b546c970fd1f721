/* tests/unit/filters/chaos_json.c
 * The strict JSON parser of the chaos API (filters/chaos/json.c): values, escapes and UTF-8,
 * and the errors (with line and column) for what RFC 8259 does not allow. */
#include <string.h>

#include "filters/chaos/json.h"
#include "test.h"

static pt_arena_t arena;
static char err[256];

/* Parses text into a fresh arena (the last tree's goes first). */
static pt_json_t *parse(const char *text)
{
    pt_arena_dispose(&arena);
    pt_arena_init(&arena, 1024);
    err[0] = '\0';
    return pt_json_parse(&arena, text, strlen(text), err, sizeof(err));
}

TEST(object_members_and_types)
{
    pt_json_t *j = parse(" {\"a\": 1.5, \"b\": [true, false, null], \"c\": \"x\"} ");
    ASSERT(j != NULL);
    ASSERT_EQ(j->type, PT_JSON_OBJECT);
    ASSERT(pt_json_get(j, "a")->num == 1.5);
    const pt_json_t *b = pt_json_get(j, "b");
    ASSERT_EQ(b->type, PT_JSON_ARRAY);
    ASSERT_EQ(b->child->type, PT_JSON_BOOL);
    ASSERT(b->child->boolean);
    ASSERT_EQ(b->child->next->next->type, PT_JSON_NULL);
    ASSERT_STREQ(pt_json_get(j, "c")->str, "x");
    ASSERT(pt_json_get(j, "d") == NULL);
    pt_arena_dispose(&arena);
}

TEST(escapes_decode_to_utf8)
{
    pt_json_t *j = parse("\"a\\n\\\"\\u00e9\\ud83d\\ude00\\/\"");
    ASSERT(j != NULL);
    ASSERT_STREQ(j->str, "a\n\"\xc3\xa9\xf0\x9f\x98\x80/");
    /* A NUL may be escaped in; str_len says where the string ends. */
    j = parse("\"a\\u0000b\"");
    ASSERT_EQ(j->str_len, 3);
    pt_arena_dispose(&arena);
}

TEST(errors_name_line_and_column)
{
    ASSERT(parse("{\"a\": 1,}") == NULL);
    ASSERT_STREQ(err, "line 1, column 9: a member name in double quotes was expected");
    ASSERT(parse("{\n  \"a\": tru\n}") == NULL);
    ASSERT_STREQ(err, "line 2, column 8: a value was expected");
    ASSERT(parse("[1] x") == NULL);
    ASSERT_STREQ(err, "line 1, column 5: text after the value");
    pt_arena_dispose(&arena);
}

TEST(what_rfc_8259_refuses_is_refused)
{
    static const char *const bad[] = {
        "",
        "01",
        "1.",
        "-",
        ".5",
        "1e",
        "'a'",
        "\"a",
        "\"\\x\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\x01\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "[1,]",
        "{\"a\" 1}",
        "nul",
        "1e999",
        "// c\n1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i]) != NULL) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            ASSERT(0);
        }
        pt_arena_dispose(&arena);
    }
}

TEST(nesting_is_bounded)
{
    char deep[2 * PT_JSON_MAX_DEPTH + 8];
    size_t n = PT_JSON_MAX_DEPTH + 2;
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    ASSERT(parse(deep) == NULL);
    ASSERT(strstr(err, "nested too deeply") != NULL);
    deep[PT_JSON_MAX_DEPTH] = '\0';
    memset(deep, '[', PT_JSON_MAX_DEPTH / 2);
    memset(deep + PT_JSON_MAX_DEPTH / 2, ']', PT_JSON_MAX_DEPTH / 2);
    ASSERT(parse(deep) != NULL);
    pt_arena_dispose(&arena);
}
