/* gkd's own matrix product for CPUs with AVX-512 (src/gemm.c). */
#ifndef GKD_GEMM_H
#define GKD_GEMM_H

/* C (M x N, row stride ldc) = op(A) op(B) + row_bias (beta 0) or
 * C += op(A) op(B) (beta 1, row_bias NULL). op(A) is M x K: A[m lda + k],
 * or A[k lda + m] when trans_a; op(B) is K x N: B[k ldb + n], or
 * B[n ldb + k] when trans_b. Each element is one chain of fused
 * multiply-adds over k in order from zero, then + row_bias or old C + it,
 * whatever the threads. Opens its own OpenMP region (one thread inside an
 * active one). Returns 0 when done, -1 when it cannot run (no AVX-512,
 * disabled, another beta, K < 1, or no memory for packing): the caller
 * then uses another product. */
int gkd_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc, const float *row_bias);

/* gkd_gemm (no transposes, beta 0) with B given as 16-column panels: the
 * K x 16 block of columns 16 j .. 16 j + 15 at Bp + 16 K j, k-major, for
 * as many panels as N rounded up to a multiple of 32 needs (columns past
 * N zero or ignored). Same bits as gkd_gemm on the plain B. */
int gkd_gemm_panels(int M, int N, int K, const float *A, int lda, const float *Bp, float *C, int ldc,
                    const float *row_bias);

/* 1 if gkd_gemm runs on this CPU. */
int gkd_gemm_available(void);

/* Tests only: off != 0 makes gkd_gemm decline, so the OpenBLAS path can be
 * compared with it. Not thread-safe. */
void gkd_gemm_disable(int off);

#endif
