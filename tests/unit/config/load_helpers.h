/* tests/unit/config/load_helpers.h
 * What the config unit tests share: load YAML held in memory, and look for an error line. A
 * helper a test file does not use is fine (marked unused). */
#ifndef PT_TEST_CONFIG_LOAD_HELPERS_H
#define PT_TEST_CONFIG_LOAD_HELPERS_H

#include <stdio.h>
#include <string.h>

#include "config/config.h"

#define PT_HELPER_ __attribute__((unused)) static

PT_HELPER_ void dump(const pt_config_errors_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "    error: %s\n", e->lines[i]);
}

/* Loads YAML given in memory under the name `file`. */
PT_HELPER_ pt_config_t *load_str(const char *file, const char *yaml, pt_config_errors_t *e)
{
    pt_config_source_t src = {file, yaml, strlen(yaml)};
    return pt_config_load_buffers(&src, 1, NULL, e);
}

/* Whether some error line is exactly line / starts with prefix / contains part; prints the
 * errors there are when not. */
PT_HELPER_ int has_error(const pt_config_errors_t *e, const char *line)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->lines[i], line) == 0)
            return 1;
    fprintf(stderr, "    missing error: %s\n", line);
    dump(e);
    return 0;
}

PT_HELPER_ int has_error_prefix(const pt_config_errors_t *e, const char *prefix)
{
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->lines[i], prefix, strlen(prefix)) == 0)
            return 1;
    fprintf(stderr, "    missing error starting with: %s\n", prefix);
    dump(e);
    return 0;
}

PT_HELPER_ int has_error_containing(const pt_config_errors_t *e, const char *part)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->lines[i], part) != NULL)
            return 1;
    fprintf(stderr, "    missing error containing: %s\n", part);
    dump(e);
    return 0;
}

/* Whether some warning line is exactly line / contains part. */
PT_HELPER_ int has_warning(const pt_config_errors_t *e, const char *line)
{
    for (size_t i = 0; i < e->n_warnings; i++)
        if (strcmp(e->warnings[i], line) == 0)
            return 1;
    fprintf(stderr, "    missing warning: %s\n", line);
    for (size_t i = 0; i < e->n_warnings; i++)
        fprintf(stderr, "    warning: %s\n", e->warnings[i]);
    dump(e);
    return 0;
}

PT_HELPER_ int has_warning_containing(const pt_config_errors_t *e, const char *part)
{
    for (size_t i = 0; i < e->n_warnings; i++)
        if (strstr(e->warnings[i], part) != NULL)
            return 1;
    fprintf(stderr, "    missing warning containing: %s\n", part);
    for (size_t i = 0; i < e->n_warnings; i++)
        fprintf(stderr, "    warning: %s\n", e->warnings[i]);
    return 0;
}

#undef PT_HELPER_

#endif
