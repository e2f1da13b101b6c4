/* Deterministic row-wise matrix product (see rowdot.h).
 *
 * Every out[r, o] is: eight lane sums over k = j (mod 8) for the largest
 * multiple of eight of IC, reduced pairwise in a fixed tree, then the tail
 * k in order, then + bias[o]. The 4x4 micro-tile and the edge loops
 * perform exactly these operations per element, so tiling and the thread
 * split never change a bit. The file is compiled in ISO C mode, where GCC
 * does not contract a*b+c into FMA, so the AVX2 clone and the generic one
 * also agree. On CPUs with AVX-512 (F and DQ) an 8-row x 4-output kernel
 * is used instead: each 16-lane register carries the eight lane sums of
 * two rows, and the same tree and bias add are done on sixteen outputs at
 * once; elements, order and rounding are the same. Its rows are packed
 * first (two rows side by side per block of eight channels, once per row
 * tile and thread), so each row load is one whole register rather than a
 * load and a shuffle. Optional epilogues
 * (GELU, residual add) run on each finished tile inside the parallel
 * loop. */
#include "rowdot.h"
#include "gelu.h"

#include <immintrin.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>

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

/* AVX-512 path. One 16-lane register holds the eight lane sums of two
 * rows for one output (rows r and r+1 in the low and high halves), so
 * each lane does exactly the mul-then-add sequence of the 8-lane code.
 * The lane tree ((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7)) is evaluated on
 * sixteen outputs at once by three shuffle-and-add rounds; each round
 * adds the same two partial sums per output as reduce8. */
#define AVX512_TARGET __attribute__((target("avx512f,avx512dq")))

/* R (16 outputs) from eight accumulators X[0..7] (two outputs each).
 * Lane 4j+m of the result is accumulator 2m + (j >> 1), half j & 1. */
AVX512_TARGET static inline __attribute__((always_inline)) __m512 reduce16(const __m512 *X) {
    __m512 S[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        /* Blocks of four: a0..a3 + a4..a7 of each half. */
        __m512 lo = _mm512_shuffle_f32x4(X[2 * g], X[2 * g + 1], 0x88); /* 0,2,0,2 */
        __m512 hi = _mm512_shuffle_f32x4(X[2 * g], X[2 * g + 1], 0xDD); /* 1,3,1,3 */
        S[g] = _mm512_add_ps(lo, hi);
    }
    __m512 U[2];
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        /* (s0 + s2), (s1 + s3) */
        __m512 lo = _mm512_shuffle_ps(S[2 * g], S[2 * g + 1], 0x44); /* 0,1,0,1 */
        __m512 hi = _mm512_shuffle_ps(S[2 * g], S[2 * g + 1], 0xEE); /* 2,3,2,3 */
        U[g] = _mm512_add_ps(lo, hi);
    }
    __m512 lo = _mm512_shuffle_ps(U[0], U[1], 0x88); /* 0,2,0,2 */
    __m512 hi = _mm512_shuffle_ps(U[0], U[1], 0xDD); /* 1,3,1,3 */
    return _mm512_add_ps(lo, hi);
}

/* Rows r .. r + nrows - 1 (nrows <= 2 NP) x outputs o .. o + NO - 1.
 * xp holds the rows packed by pack_rows: block k/8 of pair p is the 16
 * floats at xp + 16 (NP (k/8) + p), so each load is one whole register. */
AVX512_TARGET static inline __attribute__((always_inline)) void
kern512(float *out, const float *inp, const float *xp, const float *w, const float *bias, int r,
        int nrows, int o, int IC, int OC, const int NP, const int NO) {
    const int K8 = IC & ~7;
    const float *wr[4];
#pragma GCC unroll 4
    for (int q = 0; q < NO; q++) wr[q] = w + (size_t)(o + q) * IC;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int a = 0; a < 16; a++) acc[a] = _mm512_setzero_ps();
    const float *xk = xp;
    for (int k = 0; k < K8; k += 8, xk += 16 * NP) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int q = 0; q < NO; q++) wv[q] = _mm512_broadcast_f32x8(_mm256_loadu_ps(wr[q] + k));
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            __m512 xv = _mm512_load_ps(xk + 16 * p);
#pragma GCC unroll 4
            for (int q = 0; q < NO; q++)
                acc[p * NO + q] = _mm512_add_ps(acc[p * NO + q], _mm512_mul_ps(xv, wv[q]));
        }
    }
    if (NO == 4 && K8 == IC) {
        /* Sums of four rows x four outputs per group, permuted to row-major
         * (lane 4 row + q), plus bias, stored row by row. */
        const __m512i perm = _mm512_setr_epi32(0, 8, 1, 9, 4, 12, 5, 13, 2, 10, 3, 11, 6, 14, 7, 15);
        const __m512 bv = bias ? _mm512_broadcast_f32x4(_mm_loadu_ps(bias + o)) : _mm512_setzero_ps();
#pragma GCC unroll 2
        for (int g = 0; g < (NP + 1) / 2; g++) {
            __m512 R = _mm512_permutexvar_ps(perm, reduce16(acc + 8 * g));
            if (bias) R = _mm512_add_ps(R, bv);
            float *dst = out + (size_t)(r + 4 * g) * OC + o;
            int left = nrows - 4 * g;
            _mm_storeu_ps(dst, _mm512_castps512_ps128(R));
            if (left > 1) _mm_storeu_ps(dst + OC, _mm512_extractf32x4_ps(R, 1));
            if (left > 2) _mm_storeu_ps(dst + 2 * (size_t)OC, _mm512_extractf32x4_ps(R, 2));
            if (left > 3) _mm_storeu_ps(dst + 3 * (size_t)OC, _mm512_extractf32x4_ps(R, 3));
        }
        return;
    }
    float sums[32];
    _mm512_storeu_ps(sums, reduce16(acc));
    if (NP * NO > 8) _mm512_storeu_ps(sums + 16, reduce16(acc + 8));
#pragma GCC unroll 16
    for (int a = 0; a < NP * NO; a++) {
        const int p = a / NO, q = a % NO, g = a >> 3, i = a & 7;
        for (int half = 0; half < 2; half++) {
            int row = 2 * p + half;
            if (row >= nrows) continue;
            /* Lane 4j+m holds accumulator 2m + (j >> 1), half j & 1. */
            float s = sums[16 * g + 4 * (2 * (i & 1) + half) + (i >> 1)];
            const float *xr = inp + (size_t)(r + row) * IC;
            for (int k = K8; k < IC; k++) s += xr[k] * wr[q][k];
            out[(size_t)(r + row) * OC + o + q] = bias ? s + bias[o + q] : s;
        }
    }
}

/* Rows r .. r + nrows - 1 (at most 8) into the layout kern512 reads: for
 * each block of eight channels, pair p's two rows side by side (rows 2p
 * and 2p + 1; a missing row repeats row r). 8 (IC & ~7) floats at most. */
AVX512_TARGET static void pack_rows(float *xp, const float *inp, int r, int nrows, int IC, int NP) {
    const int K8 = IC & ~7;
    for (int p = 0; p < NP; p++) {
        const float *x0 = inp + (size_t)(r + (2 * p < nrows ? 2 * p : 0)) * IC;
        const float *x1 = inp + (size_t)(r + (2 * p + 1 < nrows ? 2 * p + 1 : 0)) * IC;
        float *dst = xp + 16 * p;
        for (int k = 0; k < K8; k += 8, dst += 16 * NP)
            _mm512_store_ps(dst, _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(x0 + k)),
                                                    _mm256_loadu_ps(x1 + k), 1));
    }
}

#define KERN_CASE(NP, NO) \
    case (NP) * 8 + (NO): kern512(out, inp, xp, w, bias, r, nr, o, IC, OC, NP, NO); break;

/* Rows [r0, r1) x outputs [o0, o1); xp holds the rows packed by
 * pack_tile_rows. */
AVX512_TARGET static void tile512(float *out, const float *inp, const float *xp, const float *w,
                                  const float *bias, int r0, int r1, int o0, int o1, int IC, int OC) {
    for (int r = r0; r < r1; r += 8, xp += 8 * (IC & ~7)) {
        int nr = r1 - r < 8 ? r1 - r : 8, np = (nr + 1) / 2;
        for (int o = o0; o < o1; o += 4) {
            int no = o1 - o < 4 ? o1 - o : 4;
            switch (np * 8 + no) {
                KERN_CASE(4, 4) KERN_CASE(4, 3) KERN_CASE(4, 2) KERN_CASE(4, 1)
                KERN_CASE(3, 4) KERN_CASE(3, 3) KERN_CASE(3, 2) KERN_CASE(3, 1)
                KERN_CASE(2, 4) KERN_CASE(2, 3) KERN_CASE(2, 2) KERN_CASE(2, 1)
                KERN_CASE(1, 4) KERN_CASE(1, 3) KERN_CASE(1, 2) KERN_CASE(1, 1)
            }
        }
    }
}

/* Rows [r0, r1) packed for tile512, eight rows per block. */
AVX512_TARGET static void pack_tile_rows(float *xp, const float *inp, int r0, int r1, int IC) {
    for (int r = r0; r < r1; r += 8, xp += 8 * (IC & ~7)) {
        int nr = r1 - r < 8 ? r1 - r : 8;
        pack_rows(xp, inp, r, nr, IC, (nr + 1) / 2);
    }
}

#define TILE_R 16
#define TILE_O 32 /* outputs per tile */

void gkd_rowdot_apply_epilogue(float *out, int r0, int r1, int o0, int o1, int OC,
                               gkd_rowdot_epilogue ep, float *res) {
    if (ep == GKD_ROWDOT_STORE) return;
    for (int r = r0; r < r1; r++) {
        float *q = out + (size_t)r * OC;
        if (ep == GKD_ROWDOT_GELU) {
            gkd_gelu_exp_array(q + o0, o1 - o0);
        } else {
            float *x = res + (size_t)r * OC;
            int o = o0;
            for (; o + 8 <= o1; o += 8) *(v8u *)(x + o) = LOAD(x + o) + LOAD(q + o);
            for (; o < o1; o++) x[o] += q[o];
        }
    }
}

static int avx512_disabled;

void gkd_rowdot_disable_avx512(int off) { avx512_disabled = off; }

static int use_avx512(void) {
    return !avx512_disabled && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq");
}

/* Tiles [t0, t1) of the (row tiles) x (output tiles) grid, each with its
 * epilogue. With AVX-512 a row tile is packed once for all its output
 * tiles (consecutive t); if the packing buffer cannot be had, the AVX2
 * tile does the work with the same bits. */
static void run_tiles(float *out, const float *inp, const float *w, const float *bias, int n,
                      int IC, int OC, gkd_rowdot_epilogue ep, float *res, int t0, int t1) {
    const int no = (OC + TILE_O - 1) / TILE_O;
    float *xp = NULL;
    if (t0 < t1 && use_avx512())
        xp = aligned_alloc(64, (size_t)TILE_R * (IC & ~7) * sizeof(float) + 64);
    int packed = -1; /* the row tile now in xp */
    for (int t = t0; t < t1; t++) {
        const int rt = t / no, r0 = rt * TILE_R, o0 = t % no * TILE_O;
        const int r1 = r0 + TILE_R < n ? r0 + TILE_R : n;
        const int o1 = o0 + TILE_O < OC ? o0 + TILE_O : OC;
        if (xp) {
            if (rt != packed) pack_tile_rows(xp, inp, r0, r1, IC);
            packed = rt;
            tile512(out, inp, xp, w, bias, r0, r1, o0, o1, IC, OC);
        } else {
            tile(out, inp, w, bias, r0, r1, o0, o1, IC, OC);
        }
        gkd_rowdot_apply_epilogue(out, r0, r1, o0, o1, OC, ep, res);
    }
    free(xp);
}

static int tile_count(int n, int OC) {
    return (n + TILE_R - 1) / TILE_R * ((OC + TILE_O - 1) / TILE_O);
}

void gkd_rowdot_matmul_team(float *out, const float *inp, const float *w, const float *bias, int n,
                            int IC, int OC, gkd_rowdot_epilogue ep, float *res,
                            const gkd_pace *shares) {
    /* Contiguous shares of the tiles, so a thread's consecutive tiles
     * share their packed rows. */
    int t0, t1;
    gkd_pace_range(shares, tile_count(n, OC), omp_get_num_threads(), omp_get_thread_num(), &t0, &t1);
    run_tiles(out, inp, w, bias, n, IC, OC, ep, res, t0, t1);
}

void gkd_rowdot_matmul_here(float *out, const float *inp, const float *w, const float *bias, int n,
                            int IC, int OC, gkd_rowdot_epilogue ep, float *res) {
    run_tiles(out, inp, w, bias, n, IC, OC, ep, res, 0, tile_count(n, OC));
}

void gkd_rowdot_matmul_ep(float *out, const float *inp, const float *w, const float *bias, int n,
                          int IC, int OC, gkd_rowdot_epilogue ep, float *res) {
    /* Small products stay on one thread (a barrier would cost more). */
#pragma omp parallel if ((size_t)n * IC * OC >= 65536)
    gkd_rowdot_matmul_team(out, inp, w, bias, n, IC, OC, ep, res, NULL);
}

void gkd_rowdot_matmul(float *out, const float *inp, const float *w, const float *bias, int n,
                       int IC, int OC) {
    gkd_rowdot_matmul_ep(out, inp, w, bias, n, IC, OC, GKD_ROWDOT_STORE, NULL);
}
