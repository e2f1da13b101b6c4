/* gkd's own matrix product (src/kernels/gemm.c): the same bits on every x86-64 CPU
 * and with any number of threads. The kernel behind gkd_sgemm (gkd/layers.h),
 * which adds alpha, any beta and the OpenBLAS mode; the decoder calls the
 * kernel directly. */
#ifndef GKD_GEMM_H
#define GKD_GEMM_H

/* C (M x N, row stride ldc) = op(A) op(B) + row_bias (beta 0) or
 * C += op(A) op(B) (beta 1, row_bias NULL). op(A) is M x K: A[m lda + k],
 * or A[k lda + m] when trans_a; op(B) is K x N: B[k ldb + n], or
 * B[n ldb + k] when trans_b. Each element is one chain of fused
 * multiply-adds over k in order from zero, then + row_bias or old C + it,
 * whatever the threads or the instruction set (gkd/products.h). Opens its
 * own OpenMP region (one thread inside an active one). */
void gkd_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, const float *row_bias);

/* Zeros a product may skip (gkd_gemm_shaped), as in causal attention. */
enum {
    GKD_GEMM_FULL = 0,
    GKD_GEMM_A_LOWER = 1, /* op(A)[m, k] = 0 for k > m: each chain stops early */
    GKD_GEMM_A_UPPER = 2, /* op(A)[m, k] = 0 for k < m: each chain starts late */
    GKD_GEMM_C_LOWER = 4, /* only C[m, n] with n <= m is wanted (some above it may be written) */
};

/* gkd_gemm (beta 0, no bias) told which zeros of op(A) it may leave out of
 * the chains, or which part of C is wanted (shape: GKD_GEMM_* or-ed). Its
 * bits are those of the full product, for finite B: a chain that starts at
 * +0 stays +0 through leading zero terms (+0 + (+-0) = +0), and never
 * becomes -0 (an exact zero sum is +0 in round-to-nearest), so trailing
 * zero terms leave it as it is. The tiles are MR rows high, so up to
 * MR - 1 zeros per row are still multiplied; that changes nothing either. */
void gkd_gemm_shaped(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                     const float *B, int ldb, float *C, int ldc, int shape);

/* gkd_gemm (no transposes, beta 0) with B given as 16-column panels: the
 * K x 16 block of columns 16 j .. 16 j + 15 at Bp + 16 K j, k-major, for
 * as many panels as N rounded up to a multiple of 32 needs (columns past
 * N zero or ignored). Same bits as gkd_gemm on the plain B. */
void gkd_gemm_panels(int M, int N, int K, const float *A, int lda, const float *Bp, float *C,
                     int ldc, const float *row_bias);

#endif
