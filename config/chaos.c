/* config/chaos.c
 * The toxic types and their attributes (chaos.h): one table, read by the ChaosProxy kind and
 * the Toxiproxy-compatible API alike. */
#include "chaos.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define WEEK_MS (7 * 24 * 3600 * 1000LL)
#define ATTR(n, field, lo, hi)                                                                     \
    {                                                                                              \
        n, offsetof(pt_toxic_t, field), lo, hi                                                     \
    }

static const struct {
    const char *name;
    pt_toxic_attr_t attrs[3];
    size_t n_attrs;
} types[PT_TOXIC__TYPES] = {
    [PT_TOXIC_LATENCY] = {"latency",
                          {ATTR("latency", latency_ms, 0, WEEK_MS),
                           ATTR("jitter", jitter_ms, 0, WEEK_MS)},
                          2},
    [PT_TOXIC_BANDWIDTH] = {"bandwidth", {ATTR("rate", rate_kbps, 0, 100000000)}, 1},
    [PT_TOXIC_SLOW_CLOSE] = {"slow_close", {ATTR("delay", delay_ms, 0, WEEK_MS)}, 1},
    [PT_TOXIC_TIMEOUT] = {"timeout", {ATTR("timeout", timeout_ms, 0, WEEK_MS)}, 1},
    [PT_TOXIC_RESET_PEER] = {"reset_peer", {ATTR("timeout", timeout_ms, 0, WEEK_MS)}, 1},
    [PT_TOXIC_SLICER] = {"slicer",
                         {ATTR("average_size", average_size, 0, 1 << 30),
                          ATTR("size_variation", size_variation, 0, 1 << 30),
                          ATTR("delay", delay_us, 0, WEEK_MS * 1000)},
                         3},
    [PT_TOXIC_LIMIT_DATA] = {"limit_data", {ATTR("bytes", bytes, 0, INT64_MAX / 2)}, 1},
    [PT_TOXIC_HTTP_ABORT] = {"http_abort",
                             {ATTR("status", http_status, 200, 599),
                              ATTR("grpc_status", grpc_status, 0, 16)},
                             2},
    [PT_TOXIC_HTTP_DELAY] = {"http_delay",
                             {ATTR("delay", delay_ms, 0, WEEK_MS),
                              ATTR("jitter", jitter_ms, 0, WEEK_MS)},
                             2},
    [PT_TOXIC_HTTP_SLOW_BODY] = {"http_slow_body",
                                 {ATTR("bytes", bytes, 1, 1 << 30),
                                  ATTR("interval", interval_ms, 1, 3600 * 1000)},
                                 2},
    [PT_TOXIC_HTTP_DROP_FIRST] = {"http_drop_first", {ATTR("count", count, 1, 1LL << 40)}, 1},
};

int pt_toxic_type_from_name(const char *name)
{
    for (int t = 0; t < PT_TOXIC__TYPES; t++)
        if (strcmp(types[t].name, name) == 0)
            return t;
    return -1;
}

const char *pt_toxic_type_name(pt_toxic_type_t t)
{
    return types[t].name;
}

const pt_toxic_attr_t *pt_toxic_attrs(pt_toxic_type_t t, size_t *n)
{
    *n = types[t].n_attrs;
    return types[t].attrs;
}

const pt_toxic_attr_t *pt_toxic_attr(pt_toxic_type_t t, const char *name)
{
    for (size_t i = 0; i < types[t].n_attrs; i++)
        if (strcmp(types[t].attrs[i].name, name) == 0)
            return &types[t].attrs[i];
    return NULL;
}

bool pt_chaos_is_valid_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

void pt_toxic_default_name(const pt_toxic_t *t, char *out, size_t cap)
{
    snprintf(out, cap, "%s_%s", types[t->type].name, t->stream == 0 ? "upstream" : "downstream");
}
