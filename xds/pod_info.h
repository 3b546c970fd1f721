/* xds/pod_info.h
 * The pod-info source: who this proxy's workload is, as Kubernetes' Downward API tells the
 * sidecar (docs/kubernetes.md). `petrel inject` mounts a downwardAPI volume and sets three
 * environment variables (config/inject.h):
 *
 *   PETREL_POD_INFO=/etc/petrel/pod  the volume: files `labels` (metadata.labels) and
 *                                    `namespace` (metadata.namespace)
 *   PETREL_SERVICE_ACCOUNT           spec.serviceAccountName (a volume cannot carry it)
 *   PETREL_WORKLOAD_NAME             the workload's name: the injected object's metadata.name
 *                                    (a Deployment's, not its pods'), which inject writes in
 *
 * Each file and variable is optional; one present must be valid. The result is an input of the
 * config load (pt_config_load_buffers' pod), which fills the Proxy's spec.workload fields left
 * unset. This source only reads: the watcher (xds/file_watch.h) watches pt_pod_info_files() so that
 * the kubelet's rewrite of the labels reloads the config.
 *
 * Ownership: a pt_pod_info_t owns its strings (malloc'd); pt_pod_info_dispose() frees them. */
#ifndef PT_XDS_POD_INFO_H
#define PT_XDS_POD_INFO_H

#include <stddef.h>

#include "../config/config.h"
#include "../config/inject.h" /* the variables' names, which inject sets */

typedef struct pt_pod_info {
    char *dir;              /* PETREL_POD_INFO; NULL: no volume */
    pt_workload_t workload; /* its strings owned here; ns NULL when not known */
    size_t cap_labels;      /* strings allocated in workload.labels (keys and values) */
} pt_pod_info_t;

/* Parses a Downward API `labels` file (file names it in errors): one `key="value"` per line,
 * sorted or not, the value quoted as Go's strconv.Quote writes it (\" \\ \a \b \f \n \r \t \v,
 * \xHH, \ooo, \uHHHH, \UHHHHHHHH), lines separated by '\n' with an optional last one. Anything
 * else — an empty or unquoted value, a bad escape, a NUL, text after the closing quote, a key
 * given twice — adds one error "file:line:col: ..." and returns -1; 0 when every line parsed.
 * The labels are appended to out->workload.labels. */
int pt_pod_labels_parse(const char *file, const char *data, size_t len, pt_pod_info_t *out,
                        pt_config_errors_t *errors);

/* Reads the pod info from the environment (PETREL_POD_INFO, PETREL_SERVICE_ACCOUNT,
 * PETREL_WORKLOAD_NAME) into out. Returns 0, or -1 with errors naming the file or variable (a
 * directory that cannot be read, a malformed labels file, an empty value). With none of the
 * variables set, out stays empty. */
int pt_pod_info_read_env(pt_pod_info_t *out, pt_config_errors_t *errors);

/* Reads the pod info from directory dir, service_account and workload_name (each may be
 * NULL: not known). */
int pt_pod_info_read(const char *dir, const char *service_account, const char *workload_name,
                     pt_pod_info_t *out, pt_config_errors_t *errors);

/* The workload as the pod describes it, for pt_config_load_buffers; NULL when nothing is
 * known. */
const pt_workload_t *pt_pod_info_workload(const pt_pod_info_t *p);

/* The files to watch for a change ("<dir>/labels", "<dir>/namespace"), written into out
 * (caller-freed strings); 0 when there is no directory. */
#define PT_POD_INFO_N_FILES 2
size_t pt_pod_info_files(const pt_pod_info_t *p, char *out[PT_POD_INFO_N_FILES]);

void pt_pod_info_dispose(pt_pod_info_t *p);

#endif
