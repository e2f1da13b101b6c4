/* SwiGLU (Llama's feed-forward gate): out = silu(gate) * up with
 * silu(g) = g sigmoid(g) = g / (1 + exp(-g)), gate and up side by side in
 * each row of gu. exp is gkd_vexpf, the bits of libm's expf; every element
 * is computed on its own, so any number of OpenMP threads gives the same
 * bits. exp(-g) overflows to inf for g < -88: silu is then -0 and its
 * derivative 0, as in the limit. */
#include "gkd/layers.h"
#include "kernels/vexpf.h"

#include <stddef.h>

/* Loops with less work than this run on one thread (as in layers.c). */
#define PAR_MIN_WORK ((size_t)1 << 15)
#define SWIGLU_COST 8 /* an element (exp, division) costs about as much as 8 additions */

void gkd_swiglu_forward(float *out, const float *gu, int N, int F) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * F * SWIGLU_COST >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * F, *u = g + F;
        float *o = out + (size_t)n * F;
#pragma omp simd
        for (int f = 0; f < F; f++) o[f] = -g[f];
        gkd_vexpf(o, o, F); /* o = exp(-g) */
#pragma omp simd
        for (int f = 0; f < F; f++) o[f] = g[f] / (1.0f + o[f]) * u[f];
    }
}

/* d up = dout silu(g); d gate = dout up silu'(g), silu'(g) = sig (1 + g (1 - sig)). */
void gkd_swiglu_backward(float *dgu, const float *gu, const float *dout, int N, int F) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * F * SWIGLU_COST >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * F, *u = g + F, *d = dout + (size_t)n * F;
        float *dg = dgu + (size_t)n * 2 * F, *du = dg + F;
#pragma omp simd
        for (int f = 0; f < F; f++) dg[f] = -g[f];
        gkd_vexpf(dg, dg, F); /* dg = exp(-g) */
#pragma omp simd
        for (int f = 0; f < F; f++) {
            const float e1 = 1.0f + dg[f];
            const float sig = 1.0f / e1;
            du[f] = d[f] * (g[f] / e1);
            dg[f] = d[f] * u[f] * (sig * (1.0f + g[f] * (1.0f - sig)));
        }
    }
}
