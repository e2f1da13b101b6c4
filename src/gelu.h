/* Private: the decoder's tanh-GELU, shared by the decoder and the fused
 * epilogue of the row-wise matrix product so both round identically. */
#ifndef GKD_GELU_H
#define GKD_GELU_H

#include <math.h>

#include "vexpf.h"

/* tanh-GELU via 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)): the same function
 * as the forward's tanhf form up to rounding, at a fraction of the cost. */
static inline float gkd_gelu_exp(float v) {
    const float s2pi = sqrtf(2.0f / (float)M_PI);
    float u = s2pi * (v + 0.044715f * v * v * v);
    return v / (1.0f + expf(-2.0f * u));
}

typedef float gkd_gelu_v4 __attribute__((vector_size(16)));
typedef float gkd_gelu_v4u __attribute__((vector_size(16), aligned(4), may_alias));

/* x[i] = gkd_gelu_exp(x[i]) for i < n (n <= 64), with the exponentials
 * taken in one vexpf call. The vector lines do the scalar line's
 * operations in the same order per lane. */
static inline void gkd_gelu_exp_array(float *x, int n) {
    const float s2pi = sqrtf(2.0f / (float)M_PI);
    float e[64];
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        gkd_gelu_v4 v = *(const gkd_gelu_v4u *)(x + i);
        gkd_gelu_v4 u = s2pi * (v + 0.044715f * v * v * v);
        *(gkd_gelu_v4u *)(e + i) = -2.0f * u;
    }
    for (; i < n; i++) {
        float v = x[i];
        float u = s2pi * (v + 0.044715f * v * v * v);
        e[i] = -2.0f * u;
    }
    gkd_vexpf(e, e, n);
    for (i = 0; i + 4 <= n; i += 4)
        *(gkd_gelu_v4u *)(x + i) = *(const gkd_gelu_v4u *)(x + i) / (1.0f + *(const gkd_gelu_v4u *)(e + i));
    for (; i < n; i++) x[i] = x[i] / (1.0f + e[i]);
}

#endif
