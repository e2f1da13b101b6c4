/* gkd's own single-precision matrix product (see gemm.h), the one every
 * product of training and decoding goes through in the reproducible mode.
 *
 * This file cuts C into MR x NR tiles, packs what must be packed and
 * shares the tiles between threads; a micro-kernel per instruction set
 * (gemm_avx512.c, gemm_avx2.c, gemm_generic.c) computes a tile. op(A) and
 * an untransposed B are read in place; a transposed B (the weights of a
 * forward product) and partial edge panels are first packed k-major,
 * zero-padded.
 *
 * Every C element is one chain of fused multiply-adds over k = 0 .. K-1
 * from zero, then + bias or + the old C value. Neither the panel, nor the
 * thread that computes it, nor the instruction set changes that chain, so
 * results do not depend on the number of threads, on the shape of the
 * rest of the product or on the CPU. */
#include "gemm.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "gemm_kernel.h"
#include "pack_rows.h"
#include "gkd/products.h"

#define MR GEMM_MR
#define NR GEMM_NR
/* Products with more than KBLOCK_FROM terms per output run in blocks of
 * KBLOCK. Only speed depends on them: from 512, the tiny model's
 * 1024-token weight gradients ran 3.6% faster per forward + backward (12
 * alternating pairs); blocking from 256 was 2.8% slower, blocks of 128
 * 1.2% slower. */
#define KBLOCK_FROM 512
#define KBLOCK 256
/* Below this many multiply-adds a product runs on the calling thread. */
#define PAR_MIN_MACS (64.0 * 64.0 * 64.0)

/* Buffers of the calling thread, grown on demand and kept, so repeated
 * products of one shape do not map fresh (zeroed) pages: packed panels,
 * and accumulators saved between K blocks. */
typedef struct {
    float *p;
    size_t floats;
} scratch_buf;

static _Thread_local scratch_buf pack_scratch, acc_scratch;

static float *get_scratch(scratch_buf *s, size_t floats) {
    if (floats <= s->floats) return s->p;
    float *p = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    if (!p) return NULL;
    free(s->p);
    s->p = p;
    s->floats = floats;
    return p;
}

/* op(A) rows m0 .. m0 + rows - 1 (rows < MR, the last panel) as a k-major
 * MR-row panel padded with zeros: ap[k MR + i]. */
static void pack_a_edge(float *ap, int trans_a, const float *A, int lda, int K, int m0, int rows) {
    for (int k = 0; k < K; k++)
        for (int i = 0; i < MR; i++)
            ap[(size_t)k * MR + i] =
                i < rows ? (trans_a ? A[(size_t)k * lda + m0 + i] : A[(size_t)(m0 + i) * lda + k]) : 0.0f;
}

/* op(B) columns n0 .. n0 + cols - 1 as a k-major NR-column panel padded
 * with zeros: bp[k NR + j]. Transposed B is read row by row of B (one per
 * column) while the panel is written in order. */
static void pack_b(float *bp, int trans_b, const float *B, int ldb, int K, int n0, int cols) {
    if (trans_b && gkd_isa_active() == GKD_ISA_AVX512) {
        /* Two halves of 16 columns, each 16 rows of B transposed in
         * registers: attention packs each head's keys on every call, and
         * the scalar gather below took 3.5% of the tiny benchmark. */
        for (int h = 0; h < 2; h++) {
            const int rows = cols - 16 * h < 16 ? (cols - 16 * h > 0 ? cols - 16 * h : 0) : 16;
            gkd_pack_rows16(bp + 16 * h, NR, B + (size_t)(n0 + (rows ? 16 * h : 0)) * ldb, (size_t)ldb,
                            rows, K);
        }
    } else if (trans_b) {
        const float *src[NR];
        for (int j = 0; j < NR; j++) src[j] = B + (size_t)(n0 + (j < cols ? j : 0)) * ldb;
        for (int k = 0; k < K; k++) {
            float *dst = bp + (size_t)k * NR;
            for (int j = 0; j < NR; j++) dst[j] = j < cols ? src[j][k] : 0.0f;
        }
    } else {
        for (int k = 0; k < K; k++) {
            const float *src = B + (size_t)k * ldb + n0;
            float *dst = bp + (size_t)k * NR;
            for (int j = 0; j < NR; j++) dst[j] = j < cols ? src[j] : 0.0f;
        }
    }
}

static gkd_gemm_kernel *active_kernel(void) {
    switch (gkd_isa_active()) {
    case GKD_ISA_AVX512: return gkd_gemm_kernel_avx512;
    case GKD_ISA_AVX2: return gkd_gemm_kernel_avx2;
    default: return gkd_gemm_kernel_generic;
    }
}

/* op(B)[k, n] of either form of B. */
static float b_at(int trans_b, int panels, const float *B, int ldb, int K, int k, int n) {
    if (panels) return B[(size_t)(n / 16) * 16 * K + (size_t)k * 16 + n % 16];
    return trans_b ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
}

/* The same chains without packing or threads: when there is no memory for
 * the panels (and K < 1, where each chain is empty). Zeros that the shape
 * lets gkd_gemm_shaped skip are multiplied here, which is exact (gemm.h). */
static void gemm_unpacked(int trans_a, int trans_b, int panels, int M, int N, int K, const float *A,
                          int lda, const float *B, int ldb, float beta, float *C, int ldc,
                          const float *row_bias, int shape) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            if ((shape & GKD_GEMM_C_LOWER) && n > m) continue;
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc = fmaf(trans_a ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k],
                           b_at(trans_b, panels, B, ldb, K, k, n), acc);
            float *c = C + (size_t)m * ldc + n;
            *c = beta != 0.0f ? *c + acc : row_bias ? acc + row_bias[n] : acc;
        }
}

/* One product, cut into tiles: what every thread needs to run a tile. */
typedef struct {
    gkd_gemm_kernel *kernel;
    int trans_a, trans_b, panels, M, N, K, lda, ldb, ldc, shape;
    const float *A, *B, *row_bias;
    float beta, *C;
    int pa, pb, a_edge, a_outer, first_packed_b;
    float *bpk, *apk, *saved;
    int kc, nkb; /* k block length and count */
} gemm_job;

/* Pack job p: a B panel, or (p == pb) the partial last panel of op(A). */
static void pack_one(const gemm_job *g, int p) {
    if (p < g->pb) {
        const int n0 = p * NR;
        pack_b(g->bpk + (size_t)(p - g->first_packed_b) * NR * g->K, g->trans_b, g->B, g->ldb, g->K,
               n0, g->N - n0 < NR ? g->N - n0 : NR);
    } else {
        pack_a_edge(g->apk, g->trans_a, g->A, g->lda, g->K, (g->pa - 1) * MR, g->a_edge);
    }
}

/* Tile t's part of k block kb. A tile's chain runs over [klo, khi): all of
 * k, or less where the shape says op(A) is zero (gemm.h); its first block
 * with work starts the accumulators and its last one writes C. */
static void tile_one(const gemm_job *g, int t, int kb) {
    const int mb = g->a_outer ? t / g->pb : t % g->pa, nb = g->a_outer ? t % g->pb : t / g->pa;
    const int m0 = mb * MR, n0 = nb * NR, rows = g->M - m0 < MR ? g->M - m0 : MR;
    if ((g->shape & GKD_GEMM_C_LOWER) && n0 > m0 + rows - 1) return; /* above the diagonal */
    int klo = 0, khi = g->K;
    if (g->shape & GKD_GEMM_A_LOWER) khi = m0 + rows < khi ? m0 + rows : khi;
    if (g->shape & GKD_GEMM_A_UPPER) klo = m0 < khi ? m0 : khi;
    const int first = klo / g->kc < g->nkb ? klo / g->kc : g->nkb - 1;
    const int last = khi > klo ? (khi - 1) / g->kc : first;
    if (kb < first || kb > last) return;
    const int k0 = kb * g->kc > klo ? kb * g->kc : klo;
    const int k1 = (kb + 1) * g->kc < khi ? (kb + 1) * g->kc : khi;
    const float *a = g->A + (g->trans_a ? (size_t)m0 : (size_t)m0 * g->lda);
    size_t ars = g->trans_a ? 1 : (size_t)g->lda, aks = g->trans_a ? (size_t)g->lda : 1;
    if (g->a_edge && mb == g->pa - 1) a = g->apk, ars = 1, aks = MR;
    const float *b = g->B + (size_t)n0; /* op(B) = B in place */
    size_t bks = (size_t)g->ldb, b_half = 16;
    if (g->panels)
        b = g->B + (size_t)n0 * g->K, bks = 16, b_half = (size_t)16 * g->K;
    else if (nb >= g->first_packed_b)
        b = g->bpk + (size_t)(nb - g->first_packed_b) * NR * g->K, bks = NR;
    g->kernel(a + k0 * aks, ars, aks, b + k0 * bks, bks, b_half, k1 - k0, g->C + (size_t)m0 * g->ldc + n0,
              g->ldc, rows, g->N - n0 < NR ? g->N - n0 : NR, g->beta,
              g->row_bias ? g->row_bias + n0 : NULL, g->saved ? g->saved + (size_t)t * MR * NR : NULL,
              kb > first, kb < last);
}

/* gkd_gemm, gkd_gemm_shaped and gkd_gemm_panels: B is op(B) as gkd_gemm
 * takes it, or (panels) already in 16-column panels. */
static void gemm(int trans_a, int trans_b, int panels, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc, const float *row_bias,
                 int shape) {
    assert((beta == 0.0f || beta == 1.0f) && !(beta != 0.0f && row_bias));
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        gemm_unpacked(trans_a, trans_b, panels, M, N, 0, A, lda, B, ldb, beta, C, ldc, row_bias, shape);
        return;
    }
    gemm_job g = {.kernel = active_kernel(), .trans_a = trans_a, .trans_b = trans_b, .panels = panels,
                  .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .shape = shape, .A = A,
                  .B = B, .row_bias = row_bias, .beta = beta, .C = C};
    g.pa = (M + MR - 1) / MR, g.pb = (N + NR - 1) / NR;
    g.a_edge = M % MR;
    const int b_edge = N % NR;
    /* Packed: every B panel when B is transposed, else only a partial
     * last one; op(A) is read in place but for a partial last panel. */
    const int b_packed = panels ? 0 : trans_b ? g.pb : (b_edge ? 1 : 0);
    const size_t b_floats = (size_t)b_packed * NR * K, a_floats = g.a_edge ? (size_t)MR * K : 0;
    if (b_floats + a_floats) {
        float *buf = get_scratch(&pack_scratch, b_floats + a_floats);
        if (!buf) {
            gemm_unpacked(trans_a, trans_b, panels, M, N, K, A, lda, B, ldb, beta, C, ldc, row_bias, shape);
            return;
        }
        g.bpk = buf;
        g.apk = buf + b_floats;
    }
    g.first_packed_b = trans_b ? 0 : g.pb - b_packed;
    const int ntiles = g.pa * g.pb, npack = g.pb + (g.a_edge ? 1 : 0);
    /* The larger operand outer, so it is read once while the panels of
     * the smaller pass again and again. With op(A) outer (M >= N:
     * activations, input gradients) a thread's contiguous tiles also cover
     * whole rows, mostly rows that thread wrote itself in the step before.
     * B always outer measured 7% slower on the tiny forward + backward
     * (M >= N alone: 6%), 5% on the small; decoding the same. */
    g.a_outer = M >= N;
    /* Long products (weight gradients over many tokens) run in K blocks, so
     * the panels of one block stay in L2; each tile's accumulators wait in
     * saved between blocks, so the fused chain over k is unchanged. */
    g.kc = K > KBLOCK_FROM ? KBLOCK : K, g.nkb = (K + g.kc - 1) / g.kc;
    if (g.nkb > 1) {
        g.saved = get_scratch(&acc_scratch, (size_t)ntiles * MR * NR);
        if (!g.saved) {
            gemm_unpacked(trans_a, trans_b, panels, M, N, K, A, lda, B, ldb, beta, C, ldc, row_bias, shape);
            return;
        }
    }
    /* Small products, and products inside a parallel region (attention's
     * heads), run here without opening a region: an inner region of one
     * thread cost about 3% of the tiny forward + backward. */
    if ((double)M * N * K < PAR_MIN_MACS || omp_in_parallel() || omp_get_max_threads() == 1) {
        for (int p = g.first_packed_b; p < npack; p++) pack_one(&g, p);
        for (int kb = 0; kb < g.nkb; kb++)
            for (int t = 0; t < ntiles; t++) tile_one(&g, t, kb);
        return;
    }
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int p = g.first_packed_b; p < npack; p++) pack_one(&g, p);
        for (int kb = 0; kb < g.nkb; kb++) {
            /* Guided: a thread on a core running slower takes fewer tiles
             * (static shares measured 6% slower on the tiny forward +
             * backward while one core lagged). */
#pragma omp for schedule(guided)
            for (int t = 0; t < ntiles; t++) tile_one(&g, t, kb);
        }
    }
}

void gkd_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, const float *row_bias) {
    gemm(trans_a, trans_b, 0, M, N, K, A, lda, B, ldb, beta, C, ldc, row_bias, GKD_GEMM_FULL);
}

void gkd_gemm_shaped(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                     const float *B, int ldb, float *C, int ldc, int shape) {
    gemm(trans_a, trans_b, 0, M, N, K, A, lda, B, ldb, 0.0f, C, ldc, NULL, shape);
}

void gkd_gemm_panels(int M, int N, int K, const float *A, int lda, const float *Bp, float *C,
                     int ldc, const float *row_bias) {
    gemm(0, 0, 1, M, N, K, A, lda, Bp, 0, 0.0f, C, ldc, row_bias, GKD_GEMM_FULL);
}
