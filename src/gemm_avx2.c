/* The AVX2 micro-kernel of gkd_gemm (see gemm_kernel.h). Sixteen 8-lane
 * registers cannot hold a 12 x 32 tile, so the tile runs as blocks of up
 * to 6 rows x 16 columns (12 accumulators, two of B, one broadcast), each
 * over the whole k range: the per-element chain is the one the AVX-512
 * kernel computes. Blocks with no rows or columns left are skipped, so a
 * product of a few rows (a decoding step) does not pay for twelve. */
#include "gemm_kernel.h"

#include <immintrin.h>
#include <string.h>

#define NR GEMM_NR
#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define ROWS 6 /* rows of a block */

/* Rows [0, R) x columns [0, 16) of the tile (cols of them exist): a, b,
 * C, bias and save already point at the block's first row and column. */
AVX2_TARGET static inline __attribute__((always_inline)) void
block(const float *a, size_t ars, size_t aks, const float *b, size_t bks, int K, float *C, int ldc,
      int cols, float beta, const float *bias, float *save, int resume, int more, const int R) {
    __m256 c0[ROWS], c1[ROWS];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        c0[i] = resume ? _mm256_loadu_ps(save + i * NR) : _mm256_setzero_ps();
        c1[i] = resume ? _mm256_loadu_ps(save + i * NR + 8) : _mm256_setzero_ps();
    }
    for (int k = 0; k < K; k++, a += aks, b += bks) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i * ars);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
    if (more) {
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            _mm256_storeu_ps(save + i * NR, c0[i]);
            _mm256_storeu_ps(save + i * NR + 8, c1[i]);
        }
        return;
    }
    for (int i = 0; i < R; i++) {
        float *c = C + (size_t)i * ldc;
        if (cols == 16) {
            __m256 v0 = c0[i], v1 = c1[i];
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
            _mm256_storeu_ps(acc, c0[i]);
            _mm256_storeu_ps(acc + 8, c1[i]);
            for (int j = 0; j < cols; j++)
                c[j] = beta != 0.0f ? c[j] + acc[j] : bias ? acc[j] + bias[j] : acc[j];
        }
    }
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
            switch (rows - r0 < ROWS ? rows - r0 : ROWS) {
#define CASE(R)                                                                                    \
    case R: block(ar, ars, aks, bh, bks, K, cr, ldc, hc, beta, biash, sr, resume, more, R); break;
                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
            }
        }
    }
}
