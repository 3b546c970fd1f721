/* tests/fuzz/fuzz_config_yaml.c
 * libFuzzer driver for the whole config pipeline: YAML parse, schema checks and compile, from
 * one in-memory buffer named "fuzz.yaml" (pt_config_load_buffers, the entry point that
 * pt_config_load uses after reading files). Every path must end with everything freed: the
 * snapshot on success, the error list always. Seeds: corpus/fuzz_config_yaml/, tokens:
 * fuzz_config_yaml.dict. `make test` replays the corpus through replay_main.c. */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_config_errors_t errors = {0};
    pt_config_source_t src = {"fuzz.yaml", (const char *)data, size};
    pt_config_t *c = pt_config_load_buffers(&src, 1, NULL, &errors);
    if (c != NULL) {
        /* Walk what the request path walks, so a dangling pointer shows up under ASan. */
        for (size_t i = 0; i < c->n_listeners; i++)
            (void)pt_config_find_vhost(&c->listeners[i], "a.example.com:80", 16);
        pt_config_unref(c);
    }
    pt_config_errors_dispose(&errors);
    return 0;
}
