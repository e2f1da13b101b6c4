/* Private: the micro-kernels behind gkd_gemm (gemm.c), one per instruction
 * set, and all of the same arithmetic.
 *
 * A kernel computes one GEMM_MR x GEMM_NR tile of C over k = 0 .. K-1:
 * each element's accumulator starts at zero, or at its value in save when
 * resume, and takes one fused multiply-add per k in order. When more
 * follows (a later block of k), the accumulators go back to save (row i at
 * save + i GEMM_NR); otherwise C = acc + bias (bias != NULL), C = old C +
 * acc (beta != 0) or C = acc, on the rows x cols that exist. Row i of
 * op(A) at k is a[i ars + k aks], for i < rows only; B's 32 values at k are
 * 16 at b + k bks and 16 at b + b_half + k bks, and all 32 may be read even
 * where cols < 32 (the driver pads them). A fused multiply-add rounds once,
 * exactly, so every kernel gives the same bits. */
#ifndef GKD_GEMM_KERNEL_H
#define GKD_GEMM_KERNEL_H

#include <stddef.h>

#define GEMM_MR 12 /* rows of a tile */
#define GEMM_NR 32 /* columns of a tile: two halves of 16 */

typedef void gkd_gemm_kernel(const float *a, size_t ars, size_t aks, const float *b, size_t bks,
                             size_t b_half, int K, float *C, int ldc, int rows, int cols, float beta,
                             const float *bias, float *save, int resume, int more);

gkd_gemm_kernel gkd_gemm_kernel_avx512; /* gemm_avx512.c */
gkd_gemm_kernel gkd_gemm_kernel_avx2;   /* gemm_avx2.c */
gkd_gemm_kernel gkd_gemm_kernel_generic; /* gemm_generic.c */

#endif
