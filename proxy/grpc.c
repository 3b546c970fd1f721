/* proxy/grpc.c
 * gRPC over HTTP as the stream sees it (see grpc.h). */
#include "grpc.h"

#include <stdio.h>
#include <strings.h>

bool pt_grpc_is_request(const pt_http_msg_t *r)
{
    const pt_header_t *ct = r != NULL ? pt_http_msg_find_header(r, "content-type") : NULL;
    if (ct == NULL || ct->value.len < 16 || strncasecmp(ct->value.base, "application/grpc", 16))
        return false;
    return ct->value.len == 16 || ct->value.base[16] == '+' || ct->value.base[16] == ';';
}

int pt_grpc_status_for_http(int status)
{
    switch (status) {
    case 400: return 13; /* INTERNAL */
    case 401: return 16; /* UNAUTHENTICATED */
    case 403: return 7;  /* PERMISSION_DENIED */
    case 404: return 12; /* UNIMPLEMENTED */
    case 429:
    case 502:
    case 503: return 14; /* UNAVAILABLE */
    case 504: return PT_GRPC_DEADLINE_EXCEEDED;
    default: return 2; /* UNKNOWN */
    }
}

bool pt_grpc_timeout_parse(pt_str_t v, uint64_t *ms)
{
    /* TimeoutValue is at most 8 ASCII digits, so no unit overflows 64 bits in nanoseconds. */
    if (v.len < 2 || v.len > 9)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v.base[i] - '0');
    }
    if (n == 0)
        return false; /* the spec's value is a positive integer */
    uint64_t ns_per_unit;
    switch (v.base[v.len - 1]) {
    case 'H': ns_per_unit = 3600000000000ull; break;
    case 'M': ns_per_unit = 60000000000ull; break;
    case 'S': ns_per_unit = 1000000000ull; break;
    case 'm': ns_per_unit = 1000000ull; break;
    case 'u': ns_per_unit = 1000ull; break;
    case 'n': ns_per_unit = 1ull; break;
    default: return false;
    }
    /* 99999999 hours is more than 64 bits of nanoseconds: count those in milliseconds. */
    *ms = ns_per_unit >= 1000000ull ? n * (ns_per_unit / 1000000ull)
                                    : (n * ns_per_unit + 999999ull) / 1000000ull;
    return true;
}

char *pt_grpc_message_encode(const char *text, char *out, size_t out_size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 4 <= out_size; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, out_size - o, "%%%02X", *p);
    }
    if (out_size > 0)
        out[o] = '\0';
    return out;
}
