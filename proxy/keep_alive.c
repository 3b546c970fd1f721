/* proxy/keep_alive.c
 * The Keep-Alive header's timeout parameter and the pooled idle time derived from it (see
 * keep_alive.h). The value comes from a network peer: every byte is bounds-checked and any
 * shape not understood gives "no timeout announced". */
#include "keep_alive.h"

#include <stdbool.h>

#define MAX_TIMEOUT_S 86400

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int64_t pt_keep_alive_timeout_s(const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* One parameter: name [= value], up to the next ',' or ';'. */
        while (i < len && (is_space(v[i]) || v[i] == ',' || v[i] == ';'))
            i++;
        size_t name = i;
        while (i < len && v[i] != '=' && v[i] != ',' && v[i] != ';' && !is_space(v[i]))
            i++;
        size_t name_len = i - name;
        while (i < len && is_space(v[i]))
            i++;
        bool is_timeout = name_len == 7;
        for (size_t k = 0; is_timeout && k < 7; k++)
            is_timeout = lower(v[name + k]) == "timeout"[k];
        if (i < len && v[i] == '=') {
            i++;
            while (i < len && is_space(v[i]))
                i++;
            bool quoted = i < len && v[i] == '"';
            if (quoted)
                i++;
            int64_t n = 0;
            size_t digits = 0;
            while (i < len && v[i] >= '0' && v[i] <= '9') {
                if (n <= MAX_TIMEOUT_S)
                    n = n * 10 + (v[i] - '0');
                digits++;
                i++;
            }
            if (quoted && i < len && v[i] == '"')
                i++;
            while (i < len && is_space(v[i]))
                i++;
            bool ends = i == len || v[i] == ',' || v[i] == ';';
            if (is_timeout)
                return digits > 0 && ends ? (n > MAX_TIMEOUT_S ? MAX_TIMEOUT_S : n) : -1;
        }
        while (i < len && v[i] != ',' && v[i] != ';')
            i++;
    }
    return -1;
}

uint64_t pt_keep_alive_idle_ms(uint64_t configured_ms, int64_t upstream_s)
{
    if (upstream_s < 0)
        return configured_ms;
    if (upstream_s == 0)
        return 0;
    uint64_t ms = (uint64_t)upstream_s * 1000u;
    ms = ms > PT_KEEP_ALIVE_MARGIN_MS ? ms - PT_KEEP_ALIVE_MARGIN_MS : 0;
    if (ms < PT_KEEP_ALIVE_MIN_IDLE_MS)
        ms = PT_KEEP_ALIVE_MIN_IDLE_MS;
    return ms < configured_ms ? ms : configured_ms;
}
