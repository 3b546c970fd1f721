/* xds/file_source.h
 * The file/directory config source: reads the YAML files named on the command line, or every
 * *.yaml / *.yml file of a directory in name order, into memory, and hands them to config/ to
 * compile, with the pod info read beside them (xds/pod_info.h). It never touches live state.
 * xds/file_watch.h says when to read again.
 *
 * Ownership: a pt_xds_files_t owns its paths, buffers and pod info (malloc'd);
 * pt_xds_files_dispose() frees them. */
#ifndef PT_XDS_FILE_SOURCE_H
#define PT_XDS_FILE_SOURCE_H

#include <stddef.h>

#include "../config/config.h"
#include "pod_info.h"

typedef struct pt_xds_file {
    char *path; /* as given, or "<dir>/<name>" for a directory's file */
    char *data; /* the file's bytes, NUL-terminated (the NUL is not counted in len) */
    size_t len;
} pt_xds_file_t;

typedef struct pt_xds_files {
    pt_xds_file_t *v;
    size_t n, cap;
    size_t total_bytes; /* sum of the lens, checked against PT_XDS_MAX_TOTAL_BYTES */
    pt_pod_info_t pod;  /* the workload as the pod describes it (pt_pod_info_read_env) */
} pt_xds_files_t;

/* Largest config file read, and largest sum of the files of one load: bigger is an error
 * rather than a memory hazard (docs/config.md, "Limits"). Plain numbers: the messages print
 * them. */
#define PT_XDS_MAX_FILE_BYTES 16777216  /* 16 MiB */
#define PT_XDS_MAX_TOTAL_BYTES 67108864 /* 64 MiB */

/* Appends path to out when it is a file; when it is a directory, appends its regular files
 * (symlinks followed) whose names end in ".yaml" or ".yml", sorted by name (byte order), not
 * recursing and skipping names that start with "." (Kubernetes' ..data and ..<timestamp>
 * entries). Each problem (missing path, unreadable file, too large, or out's files together
 * too large) adds one error naming the path. Returns 0, or -1 when at least one error was added. */
int pt_xds_file_read(const char *path, pt_xds_files_t *out, pt_config_errors_t *errors);

void pt_xds_files_dispose(pt_xds_files_t *files);

/* Hands the files read and the pod info to config/ to compile (pt_config_load_buffers): the
 * snapshot with one ref held by the caller, or NULL with at least one line in errors. */
pt_config_t *pt_xds_files_compile(const pt_xds_files_t *files, pt_config_errors_t *errors);

/* Reads every path (as pt_xds_file_read) and compiles them. Never partially succeeds. */
pt_config_t *pt_config_load(const char *const *paths, size_t n_paths, pt_config_errors_t *errors);

#endif
