/* tests/unit/lib/config_yaml.h
 * Loads a config from YAML text, as `petrel run` loads a file of that name: config_from_yaml()
 * for a test that reads the errors, config_from_yaml_ok() for one that needs the config (it
 * prints the errors and fails the test when there is none). Include after test.h. */
#ifndef PT_TEST_CONFIG_YAML_H
#define PT_TEST_CONFIG_YAML_H

#include <stdio.h>
#include <string.h>

#include "config/config.h"

static inline pt_config_t *config_from_yaml(const char *name, const char *yaml,
                                            pt_config_errors_t *errors)
{
    pt_config_source_t src = {name, yaml, strlen(yaml)};
    return pt_config_load_buffers(&src, 1, NULL, errors);
}

static inline pt_config_t *config_from_yaml_ok(const char *name, const char *yaml)
{
    pt_config_errors_t errors = {0};
    pt_config_t *c = config_from_yaml(name, yaml, &errors);
    for (size_t i = 0; i < errors.n; i++)
        fprintf(stderr, "%s\n", errors.lines[i]);
    pt_config_errors_dispose(&errors);
    ASSERT(c != NULL);
    return c;
}

#endif
