/* tests/fuzz/fuzz_client_hello.c
 * libFuzzer driver for the TLS ClientHello reader (tls/client_hello.c): each input is parsed
 * whole and at every record boundary the fuzzer may have produced, and whatever it returns is
 * touched, so that ASan sees a name or ALPN slice pointing outside the input or scratch. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tls/client_hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[PT_HELLO_MAX_BYTES];
static volatile unsigned sink;

static void run(const uint8_t *data, size_t size)
{
    pt_client_hello_t h;
    if (pt_client_hello_parse(data, size, scratch, &h) != PT_HELLO_OK)
        return;
    if (h.sni_len != strlen(h.sni))
        __builtin_trap();
    for (size_t i = 0; i < h.sni_len; i++)
        sink += (unsigned char)h.sni[i];
    for (size_t i = 0; i < h.n_alpn; i++)
        for (size_t j = 0; j < h.alpn_len[i]; j++)
            sink += h.alpn[i][j];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    /* a short read: the same bytes cut where the first byte says */
    if (size > 1)
        run(data, (size_t)data[0] * size / 256);
    return 0;
}
