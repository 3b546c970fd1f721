/* tests/fuzz/fuzz_keep_alive.c
 * libFuzzer driver for the Keep-Alive header parser (proxy/keep_alive.c), whose input is a
 * response header value from an upstream. The input is parsed whole (in a heap copy of exactly
 * its size, so ASan sees a read past the end) and the result fed to the idle-time rule. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/keep_alive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size + 1);
    if (v == NULL)
        return 0;
    memcpy(v, data, size);
    int64_t s = pt_keep_alive_timeout_s(v, size);
    if (s < -1 || s > 86400)
        abort();
    uint64_t ms = pt_keep_alive_idle_ms(60000, s);
    if (ms > 60000 || (s > 0 && ms < 500))
        abort();
    free(v);
    return 0;
}
