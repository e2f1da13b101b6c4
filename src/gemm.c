/* gkd's own single-precision matrix product for CPUs with AVX-512 (see
 * gemm.h).
 *
 * Debian 12's OpenBLAS (0.3.21) picks its kernels by CPU model; on CPUs it
 * does not know, such as the AMD Zen 5 machines gkd is measured on, it runs
 * its 256-bit Haswell kernels and reaches half of what the CPU can do. This product runs an MR x NR register-blocked micro-kernel of
 * fused multiply-adds: MR rows of op(A) broadcast one value at a time,
 * NR columns of op(B) two registers wide. op(A) and an untransposed B are
 * read in place; a transposed B (the weights of a forward product) and
 * partial edge panels are first packed k-major, zero-padded.
 *
 * Every C element is one chain of fused multiply-adds over k = 0 .. K-1
 * from zero, then + bias or + the old C value. Neither the panel nor the
 * thread that computes it changes that chain, so results do not depend on
 * the number of threads or on the shape of the rest of the product. */
#include "gemm.h"

#include <immintrin.h>
#include <stdlib.h>

#define MR 12 /* rows of a micro-tile: broadcast A values */
#define NR 32 /* columns: two 16-lane registers of B */
/* Products with more than KBLOCK_FROM terms per output run in blocks of
 * KBLOCK. Only speed depends on them: from 512, the tiny model's
 * 1024-token weight gradients ran 3.6% faster per forward + backward (12
 * alternating pairs); blocking from 256 was 2.8% slower, blocks of 128
 * 1.2% slower. */
#define KBLOCK_FROM 512
#define KBLOCK 256
/* Below this many multiply-adds a product runs on the calling thread. */
#define PAR_MIN_MACS (64.0 * 64.0 * 64.0)

#define AVX512_TARGET __attribute__((target("avx512f")))

static int disabled;

void gkd_gemm_disable(int off) { disabled = off; }

int gkd_gemm_available(void) { return !disabled && __builtin_cpu_supports("avx512f"); }

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
    if (trans_b) {
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

/* One MR x NR tile over k = 0 .. K-1 of the pointers given: acc starts
 * at zero, or at the MR x NR floats in save when resume; when more follows
 * (a later K block), acc goes back to save; otherwise C = acc + bias,
 * C = acc, or C += acc on the rows x cols that exist. Row i of op(A) at k
 * is a[i ars + k aks]; B's 32 values at k are 16 at b + k bks and 16 at
 * b + b_half + k bks. */
AVX512_TARGET static void micro_tile(const float *a, size_t ars, size_t aks, const float *b,
                                     size_t bks, size_t b_half, int K, float *C, int ldc, int rows, int cols,
                                     float beta, const float *bias, float *save, int resume,
                                     int more) {
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

/* gkd_gemm and gkd_gemm_panels: B is op(B) as gkd_gemm takes it, or
 * (panels) already in 16-column panels. */
static int gemm(int trans_a, int trans_b, int panels, int M, int N, int K, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, const float *row_bias) {
    if (!gkd_gemm_available() || (beta != 0.0f && beta != 1.0f) || (beta != 0.0f && row_bias))
        return -1;
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) return -1; /* nothing to accumulate: the caller's path */
    const int pa = (M + MR - 1) / MR, pb = (N + NR - 1) / NR;
    const int a_edge = M % MR, b_edge = N % NR;
    /* Packed: every B panel when B is transposed, else only a partial
     * last one; op(A) is read in place but for a partial last panel. */
    const int b_packed = panels ? 0 : trans_b ? pb : (b_edge ? 1 : 0);
    const size_t b_floats = (size_t)b_packed * NR * K, a_floats = a_edge ? (size_t)MR * K : 0;
    float *bpk = NULL, *apk = NULL;
    if (b_floats + a_floats) {
        float *buf = get_scratch(&pack_scratch, b_floats + a_floats);
        if (!buf) return -1;
        bpk = buf;
        apk = buf + b_floats;
    }
    const int first_packed_b = trans_b ? 0 : pb - b_packed;
    const int ntiles = pa * pb;
    const int a_outer = M >= N;
    /* Long products (weight gradients over many tokens) run in K blocks, so
     * the panels of one block stay in L2; each tile's accumulators wait in
     * saved between blocks, so the fused chain over k is unchanged. */
    const int kc = K > KBLOCK_FROM ? KBLOCK : K, nkb = (K + kc - 1) / kc;
    float *saved = NULL;
    if (nkb > 1) {
        saved = get_scratch(&acc_scratch, (size_t)ntiles * MR * NR);
        if (!saved) return -1;
    }
#pragma omp parallel if ((double)M * N * K >= PAR_MIN_MACS)
    {
#pragma omp for schedule(static)
        for (int p = first_packed_b; p < pb + (a_edge ? 1 : 0); p++) {
            if (p < pb) {
                const int n0 = p * NR;
                pack_b(bpk + (size_t)(p - first_packed_b) * NR * K, trans_b, B, ldb, K, n0,
                       N - n0 < NR ? N - n0 : NR);
            } else {
                pack_a_edge(apk, trans_a, A, lda, K, (pa - 1) * MR, a_edge);
            }
        }
        for (int kb = 0; kb < nkb; kb++) {
            const int k0 = kb * kc, klen = K - k0 < kc ? K - k0 : kc;
            /* The larger operand outer, so it is read once while the
             * panels of the smaller pass again and again. With op(A) outer
             * (M >= N: activations, input gradients) a thread's contiguous
             * tiles also cover whole rows, mostly rows that thread wrote
             * itself in the step before. B always outer measured 7% slower
             * on the tiny forward + backward (M >= N alone: 6%), 5% on the
             * small; decoding the same. Guided: a thread on a core running
             * slower takes fewer tiles (static shares measured 6% slower on
             * the tiny forward + backward while one core lagged). */
#pragma omp for schedule(guided)
            for (int t = 0; t < ntiles; t++) {
                const int mb = a_outer ? t / pb : t % pa, nb = a_outer ? t % pb : t / pa;
                const int m0 = mb * MR, n0 = nb * NR;
                const float *a = A + (trans_a ? (size_t)m0 : (size_t)m0 * lda);
                size_t ars = trans_a ? 1 : (size_t)lda, aks = trans_a ? (size_t)lda : 1;
                if (a_edge && mb == pa - 1) a = apk, ars = 1, aks = MR;
                const float *b = B + (size_t)n0; /* op(B) = B in place */
                size_t bks = (size_t)ldb, b_half = 16;
                if (panels)
                    b = B + (size_t)n0 * K, bks = 16, b_half = (size_t)16 * K;
                else if (nb >= first_packed_b)
                    b = bpk + (size_t)(nb - first_packed_b) * NR * K, bks = NR;
                micro_tile(a + k0 * aks, ars, aks, b + k0 * bks, bks, b_half, klen,
                           C + (size_t)m0 * ldc + n0, ldc, M - m0 < MR ? M - m0 : MR,
                           N - n0 < NR ? N - n0 : NR, beta, row_bias ? row_bias + n0 : NULL,
                           saved ? saved + (size_t)t * MR * NR : NULL, kb > 0, kb < nkb - 1);
            }
        }
    }
    return 0;
}

int gkd_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc, const float *row_bias) {
    return gemm(trans_a, trans_b, 0, M, N, K, A, lda, B, ldb, beta, C, ldc, row_bias);
}

int gkd_gemm_panels(int M, int N, int K, const float *A, int lda, const float *Bp, float *C, int ldc,
                    const float *row_bias) {
    return gemm(0, 0, 1, M, N, K, A, lda, Bp, 0, 0.0f, C, ldc, row_bias);
}
