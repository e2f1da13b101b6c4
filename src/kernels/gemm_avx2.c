/* The AVX2 micro-kernel of gkd_gemm (see gemm_kernel.h). Sixteen 8-lane
 * registers cannot hold a 12 x 32 tile, so the tile runs as blocks of up
 * to 6 rows x 16 columns (12 accumulators, two of B, one broadcast), each
 * over the whole k range: the per-element chain is the one the AVX-512
 * kernel computes. Blocks with no rows or columns left are skipped, so a
 * product of a few rows (a decoding step) pays for six, not twelve. */
#include "gemm_kernel.h"

#include <immintrin.h>
#include <string.h>

#define NR GEMM_NR
#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define ROWS 6 /* rows of a block */

/* Row i's two accumulators back to save, or finished into C. */
AVX2_TARGET static inline __attribute__((always_inline)) void
finish_row(__m256 v0, __m256 v1, float *c, int cols, float beta, const float *bias, float *save,
           int more) {
    if (more) {
        _mm256_storeu_ps(save, v0);
        _mm256_storeu_ps(save + 8, v1);
    } else if (cols == 16) {
        if (beta != 0.0f) {
            v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0);
            v1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), v1);
        } else if (bias) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + 8));
        }
        _mm256_storeu_ps(c, v0);
        _mm256_storeu_ps(c + 8, v1);
    } else {
        /* A partial block: the same additions, one element at a time,
         * touching only the columns that exist. */
        float acc[16];
        _mm256_storeu_ps(acc, v0);
        _mm256_storeu_ps(acc + 8, v1);
        for (int j = 0; j < cols; j++)
            c[j] = beta != 0.0f ? c[j] + acc[j] : bias ? acc[j] + bias[j] : acc[j];
    }
}

/* Rows [0, R) x columns [0, 16) of the tile (cols of them exist): a, b,
 * C, bias and save already point at the block's first row and column.
 * The twelve accumulators are named variables so that they stay in
 * registers (as an array gcc kept them on the stack: half the speed);
 * rows past R repeat row R - 1 and are not stored. */
AVX2_TARGET static void block(const float *a, size_t ars, size_t aks, const float *b, size_t bks, int K,
                              float *C, int ldc, int cols, float beta, const float *bias, float *save,
                              int resume, int more, int R) {
    const float *a0 = a, *a1 = a + (R > 1 ? 1 : 0) * ars, *a2 = a + (R > 2 ? 2 : R - 1) * ars;
    const float *a3 = a + (R > 3 ? 3 : R - 1) * ars, *a4 = a + (R > 4 ? 4 : R - 1) * ars;
    const float *a5 = a + (R > 5 ? 5 : R - 1) * ars;
#define ACC(i)                                                                                     \
    __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();                            \
    if (resume && i < R) {                                                                         \
        c##i##0 = _mm256_loadu_ps(save + i * NR);                                                  \
        c##i##1 = _mm256_loadu_ps(save + i * NR + 8);                                              \
    }
    ACC(0) ACC(1) ACC(2) ACC(3) ACC(4) ACC(5)
#undef ACC
    for (size_t k = 0, ak = 0; k < (size_t)K; k++, ak += aks, b += bks) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#define STEP(i)                                                                                    \
    {                                                                                              \
        const __m256 av = _mm256_broadcast_ss(a##i + ak);                                          \
        c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);                                                \
        c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);                                                \
    }
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5)
#undef STEP
    }
#define FINISH(i)                                                                                  \
    if (i < R)                                                                                     \
        finish_row(c##i##0, c##i##1, C + (size_t)i * ldc, cols, beta, bias,                        \
                   save ? save + i * NR : NULL, more);
    FINISH(0) FINISH(1) FINISH(2) FINISH(3) FINISH(4) FINISH(5)
#undef FINISH
}

AVX2_TARGET void gkd_gemm_kernel_avx2(const float *a, size_t ars, size_t aks, const float *b,
                                      size_t bks, size_t b_half, int K, float *C, int ldc, int rows,
                                      int cols, float beta, const float *bias, float *save, int resume,
                                      int more) {
    for (int h = 0; h < 2; h++) {
        const int hc = cols - 16 * h < 16 ? cols - 16 * h : 16;
        if (hc <= 0) break;
        const float *bh = h ? b + b_half : b;
        const float *biash = bias ? bias + 16 * h : NULL;
        for (int r0 = 0; r0 < rows; r0 += ROWS) {
            const float *ar = a + (size_t)r0 * ars;
            float *cr = C + (size_t)r0 * ldc + 16 * h, *sr = save ? save + (size_t)r0 * NR + 16 * h : NULL;
            block(ar, ars, aks, bh, bks, K, cr, ldc, hc, beta, biash, sr, resume, more,
                  rows - r0 < ROWS ? rows - r0 : ROWS);
        }
    }
}
