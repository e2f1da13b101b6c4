/* The AVX-512 micro-kernel of gkd_gemm (see gemm_kernel.h): the whole
 * 12 x 32 tile in 24 registers, each of the 12 rows of op(A) broadcast one
 * value at a time against two 16-lane registers of B. */
#include "gemm_kernel.h"

#include <immintrin.h>

#define MR GEMM_MR
#define NR GEMM_NR

__attribute__((target("avx512f"))) void
gkd_gemm_kernel_avx512(const float *a, size_t ars, size_t aks, const float *b, size_t bks,
                       size_t b_half, int K, float *C, int ldc, int rows, int cols, float beta,
                       const float *bias, float *save, int resume, int more) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        c0[i] = resume ? _mm512_loadu_ps(save + i * NR) : _mm512_setzero_ps();
        c1[i] = resume ? _mm512_loadu_ps(save + i * NR + 16) : _mm512_setzero_ps();
    }
    for (int k = 0; k < K; k++, a += aks, b += bks) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + b_half);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 av = _mm512_set1_ps(a[i * ars]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
    if (more) {
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            _mm512_storeu_ps(save + i * NR, c0[i]);
            _mm512_storeu_ps(save + i * NR + 16, c1[i]);
        }
        return;
    }
    /* Lanes of columns that exist (all when cols = NR). */
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *c = C + (size_t)i * ldc;
        __m512 v0 = c0[i], v1 = c1[i];
        if (beta != 0.0f) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), v1);
        } else if (bias) {
            v0 = _mm512_add_ps(v0, bias0);
            v1 = _mm512_add_ps(v1, bias1);
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}
