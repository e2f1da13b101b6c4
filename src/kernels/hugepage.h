/* Zeroed buffers backed by 2 MiB pages where the kernel allows it. */
#ifndef GKD_HUGEPAGE_H
#define GKD_HUGEPAGE_H

#include <stddef.h>

/* Like calloc(1, bytes), released with free(). Buffers of 2 MiB or more
 * are aligned to 2 MiB and marked MADV_HUGEPAGE: with Linux's default
 * transparent-huge-page mode ("madvise") they are otherwise mapped in
 * 4 KiB pages, and a decoding step that cycles through tens of MiB of
 * weights and KV cache then misses the TLB on every page. Only speed
 * depends on whether the kernel grants the hint. NULL when out of memory. */
void *gkd_huge_calloc(size_t bytes);

#endif
