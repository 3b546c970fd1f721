/* tls/openssl.c
 * Loads OpenSSL on first use (see openssl.h). */
#define PT_OPENSSL_NO_MACROS
#include "openssl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* OpenSSL 3's soname: the version the headers Petrel was built with describe. */
#define LIBSSL "libssl.so.3"

_Atomic(const pt_openssl_t *) pt__openssl_loaded;

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static pt_openssl_t functions;
static char load_error[256]; /* the first failure, kept: loading is not retried */

int pt_openssl_load(char *err, size_t err_cap)
{
    if (atomic_load_explicit(&pt__openssl_loaded, memory_order_acquire) != NULL)
        return 0;
    pthread_mutex_lock(&load_lock);
    if (atomic_load_explicit(&pt__openssl_loaded, memory_order_relaxed) == NULL &&
        load_error[0] == '\0') {
        /* Lazy binding inside OpenSSL, as when it was linked (fewer pages touched). The
         * handle is never closed: OpenSSL stays for the life of the process. */
        void *lib = dlopen(LIBSSL, RTLD_LAZY | RTLD_LOCAL);
        const char *missing = NULL;
        if (lib == NULL) {
            snprintf(load_error, sizeof(load_error), "cannot load OpenSSL: %s", dlerror());
        } else {
#define PT_OPENSSL_RESOLVE_(f)                                                                     \
    if (missing == NULL && (*(void **)&functions.f = dlsym(lib, #f)) == NULL)                      \
        missing = #f;
            PT_OPENSSL_FUNCS(PT_OPENSSL_RESOLVE_)
#undef PT_OPENSSL_RESOLVE_
            if (missing != NULL)
                snprintf(load_error, sizeof(load_error), "cannot load OpenSSL: %s lacks %s", LIBSSL,
                         missing);
            else
                atomic_store_explicit(&pt__openssl_loaded, &functions, memory_order_release);
        }
    }
    pthread_mutex_unlock(&load_lock);
    if (atomic_load_explicit(&pt__openssl_loaded, memory_order_acquire) != NULL)
        return 0;
    snprintf(err, err_cap, "%s", load_error);
    return -1;
}

const pt_openssl_t *pt__openssl_load_or_exit(void)
{
    char err[256];
    if (pt_openssl_load(err, sizeof(err)) != 0) {
        fprintf(stderr, "petrel: %s\n", err);
        exit(1);
    }
    return atomic_load_explicit(&pt__openssl_loaded, memory_order_acquire);
}
