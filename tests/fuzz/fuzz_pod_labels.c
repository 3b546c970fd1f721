/* tests/fuzz/fuzz_pod_labels.c
 * libFuzzer driver for the Downward API labels file parser (xds/pod_info.c,
 * pt_pod_labels_parse), which reads a file Kubernetes writes into the pod: any input either
 * parses, every label a NUL-free key and value, or is refused with exactly one error, and
 * everything is freed either way. Seeds: corpus/fuzz_pod_labels/, tokens:
 * fuzz_pod_labels.dict. `make test` replays the corpus through replay_main.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xds/pod_info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_pod_info_t p = {0};
    pt_config_errors_t errors = {0};
    int rc = pt_pod_labels_parse("labels", (const char *)data, size, &p, &errors);
    if (rc == 0) {
        if (errors.n != 0)
            abort();
        for (size_t i = 0; i < p.workload.n_labels; i++)
            if (p.workload.labels[2 * i][0] == '\0')
                abort(); /* a key is never empty */
    } else if (errors.n != 1) {
        abort();
    }
    pt_pod_info_dispose(&p);
    pt_config_errors_dispose(&errors);
    return 0;
}
