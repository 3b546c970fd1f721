/* tests/fuzz/replay_main.c
 * A plain main() for the libFuzzer drivers, so that `make test` replays every corpus on any
 * compiler (h2o's t/99fuzzer idea). Linked with one tests/fuzz/fuzz_<name>.c, it calls
 * LLVMFuzzerInitialize (when the driver defines one) and then LLVMFuzzerTestOneInput once per
 * file: the files named on the command line (a directory is walked), or by default every file
 * under tests/fuzz/corpus/<basename of argv[0]>/ relative to the current directory (or to
 * $PT_FUZZ_CORPUS_ROOT when set).
 *
 * Each input is copied into a buffer of exactly its size so that ASan catches a driver that
 * reads past the end. If an input crashes the process, its path is written to stderr first.
 * The last line on stdout is `<driver>: N files`; tests/fuzz/replay.sh adds those up. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* The input being run, for the crash message; a fixed buffer so the handler needs no malloc. */
static char current_path[4096];
static size_t files_run;

static void say_current(void)
{
    static const char pre[] = "\nfuzz-replay: crashed on input ";
    if (current_path[0] == '\0')
        return;
    ssize_t ignored = write(2, pre, sizeof pre - 1);
    ignored = write(2, current_path, strlen(current_path));
    ignored = write(2, "\n", 1);
    (void)ignored;
}

static void on_fatal_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Installs our handler only where nothing (a sanitizer) has installed one already. */
static void install_crash_reporting(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            signal(sigs[i], on_fatal_signal);
    }
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(say_current);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (buf == NULL || err) {
        fprintf(stderr, "fuzz-replay: %s: read failed\n", path);
        free(buf);
        return -1;
    }
    /* Exactly len bytes (at least one allocation), so an over-read is an ASan report. */
    uint8_t *exact = malloc(len > 0 ? len : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);

    snprintf(current_path, sizeof current_path, "%s", path);
    LLVMFuzzerTestOneInput(len > 0 ? exact : NULL, len);
    current_path[0] = '\0';
    free(exact);
    files_run++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs path if it is a file, or every file below it (sorted, for repeatable runs). */
static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);

    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **bigger = realloc(names, cap * sizeof *names);
            if (bigger == NULL) {
                rc = -1;
                break;
            }
            names = bigger;
        }
        size_t need = strlen(path) + 1 + strlen(e->d_name) + 1;
        names[count] = malloc(need);
        if (names[count] == NULL) {
            rc = -1;
            break;
        }
        snprintf(names[count], need, "%s/%s", path, e->d_name);
        count++;
    }
    closedir(d);
    if (count > 0)
        qsort(names, count, sizeof *names, by_name);
    for (size_t i = 0; i < count; i++) {
        if (rc == 0 && run_path(names[i]) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    const char *driver = slash ? slash + 1 : argv[0];
    int rc = 0;

    install_crash_reporting();
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);

    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (run_path(argv[i]) != 0)
                rc = 1;
    } else {
        const char *root = getenv("PT_FUZZ_CORPUS_ROOT");
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root && *root ? root : "tests/fuzz/corpus", driver);
        struct stat st;
        if (stat(dir, &st) != 0) {
            /* A driver without a corpus yet is a gap, not a crash: say so and go on. */
            fprintf(stderr, "fuzz-replay: %s: no corpus at %s\n", driver, dir);
        } else if (run_path(dir) != 0) {
            rc = 1;
        }
    }
    printf("%s: %zu files\n", driver, files_run);
    return rc;
}
