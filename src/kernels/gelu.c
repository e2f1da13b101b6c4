/* tanh-GELU over arrays (gelu.h). Compiled for AVX-512 and for generic
 * x86-64: the vector lines do the per-element operations of gelu.h in
 * the same order on every lane, and -ffp-contract=off (the build's flag)
 * forbids contracting them into fused multiply-adds, so both clones give
 * the same bits; on AVX-512
 * a line is one 16-lane instruction instead of four 4-lane ones. */
#include "gelu.h"

#include <math.h>

#include "vexpf.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));

/* Elements per call of gkd_vexpf (the exponentials of one chunk stay in
 * L1 between the passes). */
#define CHUNK 64

/* The clones are static behind one plain function: clang 14 exports a
 * target_clones function only as NAME.ifunc, which other files cannot
 * link to. */
__attribute__((target_clones("avx512f", "default"))) static void gelu_exp_array(float *x, int n) {
    const float s2pi = sqrtf(2.0f / (float)M_PI);
    float e[CHUNK];
    for (int c0 = 0; c0 < n; c0 += CHUNK) {
        float *xc = x + c0;
        const int m = n - c0 < CHUNK ? n - c0 : CHUNK;
        int i = 0;
        for (; i + 16 <= m; i += 16) {
            v16 v = *(const v16u *)(xc + i);
            v16 u = s2pi * (v + 0.044715f * v * v * v);
            *(v16u *)(e + i) = -2.0f * u;
        }
        for (; i < m; i++) {
            float v = xc[i];
            float u = s2pi * (v + 0.044715f * v * v * v);
            e[i] = -2.0f * u;
        }
        gkd_vexpf(e, e, m);
        for (i = 0; i + 16 <= m; i += 16)
            *(v16u *)(xc + i) = *(const v16u *)(xc + i) / (1.0f + *(const v16u *)(e + i));
        for (; i < m; i++) xc[i] = xc[i] / (1.0f + e[i]);
    }
}

void gkd_gelu_exp_array(float *x, int n) { gelu_exp_array(x, n); }
