/* tests/fuzz/fuzz_http2_server.c
 * libFuzzer driver for the HTTP/2 server codec (proxy/http2_server.c, included here): the
 * client's frames after the preface, which the driver sends itself, go through nghttp2 and the
 * codec to fake streams that answer through the codec's ops (fake_server.h), so HPACK, the
 * request and trailer fields, flow control and its pauses, resets, the limits and the
 * response's frames all run on one connection.
 *
 * The input's first byte chooses how the fake stream answers, its second the size of the reads
 * the rest is fed in. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http2_server.c"

#include "fake_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pt_worker_t worker;
static pt_config_t config;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1 << 16))
        return 0;
    fake_mode = data[0];
    size_t piece = 1 + data[1] % 64; /* bytes per read; 64 = the whole rest at once */
    data += 2;
    size -= 2;
    static char input[PT_HTTP2_PREFACE_LEN + (1 << 16)];
    memcpy(input, PT_HTTP2_PREFACE, PT_HTTP2_PREFACE_LEN);
    memcpy(input + PT_HTTP2_PREFACE_LEN, data, size);
    size += PT_HTTP2_PREFACE_LEN;
    if (piece == 64)
        piece = size;
    config.proxy.max_header_bytes = 2048; /* small limits so the fuzzer reaches them */
    config.proxy.max_headers = 20;
    config.proxy.http2.max_concurrent_streams = 100;
    worker.config = &config;
    fake_conn_run(&worker, &pt_http2_server_conn_ops, input, size, piece);
    fake_streams_free();
    return 0;
}
