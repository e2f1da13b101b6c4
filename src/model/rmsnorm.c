/* RMSNorm (Llama): out = inp / sqrt(mean(inp^2) + eps) * w, row by row.
 *
 * Every sum is evaluated in double, in a fixed order inside one thread:
 * the rows' sums of squares and of products with 8 fixed partial sums
 * (lane k takes elements k, k+8, ...; vectorizable, independent of the
 * row's alignment), the weight gradient's sums over rows in row order, each
 * thread owning whole columns. Results are the same bits for any number of
 * OpenMP threads. */
#include "gkd/layers.h"

#include <math.h>
#include <stddef.h>

/* Loops with less work than this run on one thread (as in layers.c). */
#define PAR_MIN_WORK ((size_t)1 << 15)
#define LANES 8
#define COL_BLOCK 32

static inline double combine_lanes(const double *acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* sum_c x[c]^2, in double */
static double row_sumsq(const float *x, int C) {
    double acc[LANES] = {0};
    int c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += (double)x[c + k] * x[c + k];
    for (int k = 0; c < C; c++, k++) acc[k] += (double)x[c] * x[c];
    return combine_lanes(acc);
}

/* sum_c w[c] d[c] x[c], in double */
static double row_dot3(const float *w, const float *d, const float *x, int C) {
    double acc[LANES] = {0};
    int c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += (double)w[c + k] * d[c + k] * x[c + k];
    for (int k = 0; c < C; c++, k++) acc[k] += (double)w[c] * d[c] * x[c];
    return combine_lanes(acc);
}

void gkd_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps,
                         int N, int C) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * C >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        const float r = (float)(1.0 / sqrt(row_sumsq(x, C) / C + (double)eps));
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = x[c] * r * w[c];
        if (rstd) rstd[n] = r;
    }
}

/* With norm = x r, y = norm w:
 *   dx_c = r w_c d_c - x_c r^3 / C sum_i w_i d_i x_i,
 *   dw_c = sum_n x_c r d_c. */
void gkd_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * C >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float *di = dinp + (size_t)n * C;
        const float r = rstd[n];
        const double rd = r;
        const float coef = (float)(row_dot3(w, d, x, C) * rd * rd * rd / C);
#pragma omp simd
        for (int c = 0; c < C; c++) di[c] += r * (w[c] * d[c]) - x[c] * coef;
    }
    const int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * C >= PAR_MIN_WORK)
    for (int blk = 0; blk < nblocks; blk++) {
        const int c0 = blk * COL_BLOCK, width = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
        double acc[COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C + c0, *d = dout + (size_t)n * C + c0;
            const double r = rstd[n];
#pragma omp simd
            for (int c = 0; c < width; c++) acc[c] += (double)x[c] * r * d[c];
        }
        for (int c = 0; c < width; c++) dw[c0 + c] += (float)acc[c];
    }
}
