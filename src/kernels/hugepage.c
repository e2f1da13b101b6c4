#include "hugepage.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *gkd_huge_calloc(size_t bytes) {
    if (bytes < HUGE_PAGE) return calloc(1, bytes ? bytes : 1);
    if (bytes > (size_t)-1 - HUGE_PAGE) return NULL;
    const size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, rounded);
    if (!p) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: refusal only costs speed */
#endif
    memset(p, 0, rounded);
    return p;
}
