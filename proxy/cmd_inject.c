/* proxy/cmd_inject.c
 * `petrel inject`: the command-line side of config/inject.c (reads the file or stdin, writes
 * stdout, messages on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/inject.h"
#include "commands.h"

static const char inject_usage[] =
    "usage: petrel inject [-f FILE|-] [--classic] [--image IMAGE] [--mesh-config NAME]\n"
    "\n"
    "  Writes the Kubernetes YAML of FILE (or stdin) to stdout with Petrel's sidecar and its\n"
    "  capture init container added to every Pod, Deployment, StatefulSet, DaemonSet,\n"
    "  ReplicaSet, Job and CronJob (and those in a List); other documents pass through.\n"
    "\n"
    "  --classic          the sidecar as a regular container, for Kubernetes before 1.29\n"
    "                     (default: a native sidecar, an init container that keeps running)\n"
    "  --image IMAGE      the Petrel image (default petrel:latest)\n"
    "  --mesh-config NAME the ConfigMap with the mesh's YAML and its Proxy (default petrel-mesh)\n";

/* The whole of f, NUL-terminated; NULL on a read error. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        cap *= 2;
        char *bigger = realloc(buf, cap);
        if (bigger == NULL)
            free(buf);
        buf = bigger;
    }
    if (buf == NULL || ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int pt_cmd_inject(int argc, char **argv)
{
    pt_inject_options_t o = {.image = "petrel:latest", .mesh_cm = "petrel-mesh"};
    const char *file = "-";
    for (int i = 0; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if ((strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--filename") == 0) && has_value) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--classic") == 0) {
            o.is_classic = true;
        } else if (strcmp(argv[i], "--image") == 0 && has_value) {
            o.image = argv[++i];
        } else if (strcmp(argv[i], "--mesh-config") == 0 && has_value) {
            o.mesh_cm = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(inject_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "petrel inject: unexpected argument \"%s\"\n%s", argv[i], inject_usage);
            return 2;
        }
    }
    bool is_stdin = strcmp(file, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(file, "rb");
    if (f == NULL) {
        perror(file);
        return 1;
    }
    size_t len = 0;
    char *data = read_all(f, &len);
    if (!is_stdin)
        fclose(f);
    if (data == NULL) {
        fprintf(stderr, "petrel inject: cannot read %s\n", is_stdin ? "stdin" : file);
        return 1;
    }
    int rc = pt_inject(is_stdin ? "<stdin>" : file, data, len, &o, stdout, stderr);
    free(data);
    if (fflush(stdout) != 0) {
        perror("petrel inject: stdout");
        rc = 1;
    }
    return rc;
}
