/* tests/fuzz/fuzz_capture_detect.c
 * libFuzzer driver for the sidecar's protocol detection (proxy/capture.c), which reads the
 * first bytes of every captured connection. Each input is detected whole and then byte by byte
 * as a growing prefix, the way reads arrive: once a prefix is decided (HTTP/1 or not), every
 * longer prefix must get the same answer, and a prefix still undecided at 8 KiB is a bug.
 * Seeds: corpus/fuzz_capture_detect/. `make test` replays the corpus through replay_main.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxy/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    pt_detect_result_t whole = pt_capture_detect(p, size);
    pt_detect_result_t decided = PT_DETECT_NEED_MORE;
    for (size_t n = 0; n <= size; n++) {
        pt_detect_result_t r = pt_capture_detect(p, n);
        if (decided != PT_DETECT_NEED_MORE && r != decided)
            abort(); /* a decision changed with more bytes */
        if (r != PT_DETECT_NEED_MORE)
            decided = r;
        if (r == PT_DETECT_NEED_MORE && n > 8192)
            abort();
    }
    if (whole != decided)
        abort();
    return 0;
}
