/* proxy/scratch.c */
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static _Thread_local pt_scratch_t *scratch;

int pt_scratch_map(void)
{
    if (scratch != NULL)
        return 0;
    void *p = mmap(NULL, sizeof(pt_scratch_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    scratch = p;
    return 0;
}

pt_scratch_t *pt_scratch(void)
{
    if (scratch == NULL && pt_scratch_map() != 0) {
        /* Workers map theirs at start, so only a thread outside the request path gets here. */
        fputs("petrel: out of memory for scratch buffers\n", stderr);
        abort();
    }
    return scratch;
}

void pt_scratch_unmap(void)
{
    if (scratch != NULL)
        munmap(scratch, sizeof(pt_scratch_t));
    scratch = NULL;
}
