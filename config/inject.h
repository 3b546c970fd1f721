/* config/inject.h
 * `petrel inject`: Kubernetes YAML in, the same YAML out with Petrel's sidecar and its capture
 * init container added to every pod template (Pod, Deployment, StatefulSet, DaemonSet,
 * ReplicaSet, Job, CronJob, and the items of a List). A pure transform on libyaml's node tree:
 * no I/O but the two streams it is handed, nothing from proxy/. */
#ifndef PT_CONFIG_INJECT_H
#define PT_CONFIG_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The pod annotation inject adds; a pod template that has it is left as it is (so injecting
 * twice equals injecting once). */
#define PT_INJECT_STATUS_ANNOTATION "petrel.io/inject-status"
/* The sidecar's environment variable holding the app's original HTTP and TCP probes, JSON:
 * {"/app-health/<container>/livez": {"httpGet": {...}, "timeoutSeconds": N}, ...}. */
#define PT_INJECT_PROBERS_ENV "PETREL_APP_PROBERS"
/* Who the workload is, as the sidecar gets it (read by xds/pod_info.h): the directory of the
 * downwardAPI volume (files labels, namespace), the service account, which a volume cannot
 * carry, and the workload's name — the injected object's metadata.name (the Deployment's, the
 * CronJob's, a bare Pod's own), not the pod's, so that metrics aggregate by workload. */
#define PT_POD_INFO_ENV "PETREL_POD_INFO"
#define PT_POD_INFO_DIR "/etc/petrel/pod"
#define PT_SERVICE_ACCOUNT_ENV "PETREL_SERVICE_ACCOUNT"
#define PT_WORKLOAD_NAME_ENV "PETREL_WORKLOAD_NAME"

typedef struct pt_inject_options {
    const char *image;   /* the image of the sidecar and the capture init container */
    bool is_classic;     /* a sidecar in containers (before Kubernetes 1.29), not a native one */
    const char *mesh_cm; /* the ConfigMap with the mesh's Istio YAML and its Proxy */
} pt_inject_options_t;

/* Reads the multi-document YAML data (named name in messages) and writes it to out with the
 * sidecar injected; documents that are not workloads pass through. Notes (a hostNetwork pod
 * skipped) go to msg as "name:line:col: note". Returns 0, or 1 after printing each error to msg
 * as "name:line:col: path: message", in which case nothing was written to out. */
int pt_inject(const char *name, const char *data, size_t len, const pt_inject_options_t *o,
              FILE *out, FILE *msg);

#endif
