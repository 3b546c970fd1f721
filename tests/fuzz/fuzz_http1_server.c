/* tests/fuzz/fuzz_http1_server.c
 * libFuzzer driver for the HTTP/1 server codec (proxy/http1_server.c, included here to reach
 * its statics): the request loop with pipelining, invalid requests, upgrades, the rest of a
 * body dropped after an early answer, and the response framing, on one connection.
 *
 * The connection and the stream are fakes (fake_server.h): the input's first byte chooses how
 * the fake stream answers, its second the size of the reads the rest is fed in, into a read
 * slab handed to the codec as conn.c does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1_server.c"

#include "fake_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* --- the run --- */

static pt_worker_t worker;
static pt_config_t config;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fake_mode = data[0];
    size_t piece = 1 + data[1] % 64; /* bytes per read; 64 = the whole rest at once */
    data += 2;
    size -= 2;
    if (piece == 64)
        piece = size > 0 ? size : 1;
    config.proxy.max_request_line_bytes = 512; /* small limits so the fuzzer reaches them */
    config.proxy.max_header_bytes = 2048;
    config.proxy.max_headers = 20;
    worker.config = &config;
    fake_conn_run(&worker, &pt_http1_server_conn_ops, (const char *)data, size, piece);
    fake_streams_free();
    pt_http1_server_free_cache(&worker);
    return 0;
}
