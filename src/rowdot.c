/* Deterministic row-wise matrix product (see rowdot.h).
 *
 * Every out[r, o] is: eight lane sums over k = j (mod 8) for the largest
 * multiple of eight of IC, reduced pairwise in a fixed tree, then the tail
 * k in order, then + bias[o]. The 4x4 micro-tile and the edge loops
 * perform exactly these operations per element, so tiling and the thread
 * split never change a bit. The file is compiled in ISO C mode, where GCC
 * does not contract a*b+c into FMA, so the AVX2 clone and the generic one
 * also agree. */
#include "rowdot.h"

#include <stddef.h>

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

#define LOAD(p) (*(const v8u *)(p))

/* Vectors go by pointer: passing them by value would tie the ABI to AVX. */
static inline float reduce8(const v8 *v) {
    const v8 a = *v;
    float s0 = a[0] + a[4], s1 = a[1] + a[5], s2 = a[2] + a[6], s3 = a[3] + a[7];
    return (s0 + s2) + (s1 + s3);
}

static inline float finish(const v8 *acc, const float *x, const float *wr, int k0, int IC,
                           const float *bias, int o) {
    float s = reduce8(acc);
    for (int k = k0; k < IC; k++) s += x[k] * wr[k];
    return bias ? s + bias[o] : s;
}

/* One tile: rows [r0, r1) x outputs [o0, o1). */
__attribute__((target_clones("avx2", "default"))) static void
tile(float *out, const float *inp, const float *w, const float *bias, int r0, int r1, int o0,
     int o1, int IC, int OC) {
    const int K8 = IC & ~7;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        const float *x0 = inp + (size_t)r * IC, *x1 = x0 + IC, *x2 = x1 + IC, *x3 = x2 + IC;
        int o = o0;
        for (; o + 4 <= o1; o += 4) {
            const float *w0 = w + (size_t)o * IC, *w1 = w0 + IC, *w2 = w1 + IC, *w3 = w2 + IC;
            v8 a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0};
            v8 a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
            v8 a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0};
            v8 a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
            for (int k = 0; k < K8; k += 8) {
                v8 y0 = LOAD(w0 + k), y1 = LOAD(w1 + k), y2 = LOAD(w2 + k), y3 = LOAD(w3 + k);
                v8 x = LOAD(x0 + k);
                a00 += x * y0; a01 += x * y1; a02 += x * y2; a03 += x * y3;
                x = LOAD(x1 + k);
                a10 += x * y0; a11 += x * y1; a12 += x * y2; a13 += x * y3;
                x = LOAD(x2 + k);
                a20 += x * y0; a21 += x * y1; a22 += x * y2; a23 += x * y3;
                x = LOAD(x3 + k);
                a30 += x * y0; a31 += x * y1; a32 += x * y2; a33 += x * y3;
            }
            float *q0 = out + (size_t)r * OC + o, *q1 = q0 + OC, *q2 = q1 + OC, *q3 = q2 + OC;
            q0[0] = finish(&a00, x0, w0, K8, IC, bias, o);
            q0[1] = finish(&a01, x0, w1, K8, IC, bias, o + 1);
            q0[2] = finish(&a02, x0, w2, K8, IC, bias, o + 2);
            q0[3] = finish(&a03, x0, w3, K8, IC, bias, o + 3);
            q1[0] = finish(&a10, x1, w0, K8, IC, bias, o);
            q1[1] = finish(&a11, x1, w1, K8, IC, bias, o + 1);
            q1[2] = finish(&a12, x1, w2, K8, IC, bias, o + 2);
            q1[3] = finish(&a13, x1, w3, K8, IC, bias, o + 3);
            q2[0] = finish(&a20, x2, w0, K8, IC, bias, o);
            q2[1] = finish(&a21, x2, w1, K8, IC, bias, o + 1);
            q2[2] = finish(&a22, x2, w2, K8, IC, bias, o + 2);
            q2[3] = finish(&a23, x2, w3, K8, IC, bias, o + 3);
            q3[0] = finish(&a30, x3, w0, K8, IC, bias, o);
            q3[1] = finish(&a31, x3, w1, K8, IC, bias, o + 1);
            q3[2] = finish(&a32, x3, w2, K8, IC, bias, o + 2);
            q3[3] = finish(&a33, x3, w3, K8, IC, bias, o + 3);
        }
        for (; o < o1; o++) {
            const float *wr = w + (size_t)o * IC;
            v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int k = 0; k < K8; k += 8) {
                v8 y = LOAD(wr + k);
                a0 += LOAD(x0 + k) * y;
                a1 += LOAD(x1 + k) * y;
                a2 += LOAD(x2 + k) * y;
                a3 += LOAD(x3 + k) * y;
            }
            out[(size_t)r * OC + o] = finish(&a0, x0, wr, K8, IC, bias, o);
            out[(size_t)(r + 1) * OC + o] = finish(&a1, x1, wr, K8, IC, bias, o);
            out[(size_t)(r + 2) * OC + o] = finish(&a2, x2, wr, K8, IC, bias, o);
            out[(size_t)(r + 3) * OC + o] = finish(&a3, x3, wr, K8, IC, bias, o);
        }
    }
    for (; r < r1; r++) {
        const float *x = inp + (size_t)r * IC;
        for (int o = o0; o < o1; o++) {
            const float *wr = w + (size_t)o * IC;
            v8 a = {0};
            for (int k = 0; k < K8; k += 8) a += LOAD(x + k) * LOAD(wr + k);
            out[(size_t)r * OC + o] = finish(&a, x, wr, K8, IC, bias, o);
        }
    }
}

#define TILE_R 16
#define TILE_O 32

void gkd_rowdot_matmul(float *out, const float *inp, const float *w, const float *bias, int n,
                       int IC, int OC) {
    int nr = (n + TILE_R - 1) / TILE_R, no = (OC + TILE_O - 1) / TILE_O;
    /* Small products stay on one thread (a barrier would cost more). */
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * IC * OC >= 65536)
    for (int tr = 0; tr < nr; tr++) {
        for (int to = 0; to < no; to++) {
            int r0 = tr * TILE_R, o0 = to * TILE_O;
            int r1 = r0 + TILE_R < n ? r0 + TILE_R : n;
            int o1 = o0 + TILE_O < OC ? o0 + TILE_O : OC;
            tile(out, inp, w, bias, r0, r1, o0, o1, IC, OC);
        }
    }
}
