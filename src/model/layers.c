/* GPT layers: forward/backward pairs (see include/gkd/layers.h for shapes).
 * Every parallel loop writes disjoint outputs and every reduction runs in a
 * fixed order inside one thread, so results do not depend on the number of
 * OpenMP threads. */
#include "gkd/layers.h"
#include "kernels/gemm.h"
#include "gkd/products.h"
#include "kernels/vexpf.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* In the reproducible mode (gkd/products.h) every product is gkd_gemm's.
 * In the OpenBLAS mode: OpenBLAS's own threading is not thread-count
 * independent (with 2 threads it partitions the result differently and
 * picks different edge kernels), so the result is cut into a fixed grid of
 * tiles that depends only on the shape, one single-threaded sgemm per tile
 * inside an OpenMP loop (the OpenMP build of OpenBLAS runs single-threaded
 * inside an active parallel region). Each tile computes the same bits
 * whichever thread runs it, on one machine. */
#define SMALL_GEMM_FLOPS (32.0 * 64.0 * 64.0) /* below OpenBLAS's own 64^3 threading threshold */
#define GEMM_SPLIT 4   /* tiles per product: enough for 2-4 threads, few repacks */
#define GEMM_MIN_SPLIT_DIM 128

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* C += row_bias (broadcast over rows) on a tile of rm x cn, while it is hot. */
static void add_row_bias(float *C, int ldc, const float *row_bias, int rm, int cn) {
    for (int i = 0; i < rm; i++) {
        float *c = C + (size_t)i * ldc;
#pragma omp simd
        for (int j = 0; j < cn; j++) c[j] += row_bias[j];
    }
}

/* The OpenBLAS mode's product on the fixed tile grid, optionally adding
 * row_bias (N) to every row of each tile right after it is computed. */
static void sgemm_openblas(int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C,
                           int ldc, const float *row_bias) {
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if ((double)M * N * K <= SMALL_GEMM_FLOPS) {
        /* Single call: cheaper than a parallel region, still one tile. */
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (row_bias) add_row_bias(C, ldc, row_bias, M, N);
        return;
    }
    /* Split the larger of rows and columns into GEMM_SPLIT tiles; sizes are
     * multiples of 16 so the kernels see full register blocks. The grid
     * depends on (M, N) only. */
    int tm = M, tn = N;
    if (M >= N && M >= GEMM_MIN_SPLIT_DIM)
        tm = round_up((M + GEMM_SPLIT - 1) / GEMM_SPLIT, 16);
    else if (N > M && N >= GEMM_MIN_SPLIT_DIM)
        tn = round_up((N + GEMM_SPLIT - 1) / GEMM_SPLIT, 16);
    const int mt = (M + tm - 1) / tm, nt = (N + tn - 1) / tn;
#pragma omp parallel for schedule(static)
    for (int tile = 0; tile < mt * nt; tile++) {
        int r0 = (tile / nt) * tm, c0 = (tile % nt) * tn;
        int rm = M - r0 < tm ? M - r0 : tm, cn = N - c0 < tn ? N - c0 : tn;
        const float *a = trans_a ? A + r0 : A + (size_t)r0 * lda;
        const float *b = trans_b ? B + (size_t)c0 * ldb : B + c0;
        float *c = C + (size_t)r0 * ldc + c0;
        cblas_sgemm(CblasRowMajor, ta, tb, rm, cn, K, alpha, a, lda, b, ldb, beta, c, ldc);
        if (row_bias) add_row_bias(c, ldc, row_bias + c0, rm, cn);
    }
}

/* A layer's product: C = op(A) op(B) (+ row_bias) or C += op(A) op(B). */
static void layer_product(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc,
                          const float *row_bias) {
    if (gkd_products() == GKD_PRODUCTS_OPENBLAS)
        sgemm_openblas(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, row_bias);
    else
        gkd_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, row_bias);
}

void gkd_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (gkd_products() == GKD_PRODUCTS_OPENBLAS) {
        sgemm_openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
        return;
    }
    if (alpha == 1.0f && (beta == 0.0f || beta == 1.0f)) {
        gkd_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, NULL);
        return;
    }
    /* Other scalars: a row's chains, then C = alpha p + beta C, element by
     * element (an element at a time when there is no memory for a row). */
    float *p = malloc((size_t)(N > 0 ? N : 1) * sizeof *p), one;
    for (int m = 0; m < M; m++) {
        const float *a = trans_a ? A + m : A + (size_t)m * lda;
        float *c = C + (size_t)m * ldc;
        if (p) gkd_gemm(trans_a, trans_b, 1, N, K, a, lda, B, ldb, 0.0f, p, N, NULL);
        for (int n = 0; n < N; n++) {
            if (!p) gkd_gemm(trans_a, trans_b, 1, 1, K, a, lda, trans_b ? B + (size_t)n * ldb : B + n,
                             ldb, 0.0f, &one, 1, NULL);
            const float v = alpha * (p ? p[n] : one);
            c[n] = beta == 0.0f ? v : v + beta * c[n];
        }
    }
    free(p);
}

/* Loops with less work than this run on one thread: a parallel region
 * costs microseconds on an idle machine and more when the cores are shared
 * (the region waits for a descheduled thread). 2^15 elements (a 1024 x 32
 * slab, tens of microseconds) is where splitting measured faster on the
 * tiny benchmark shape, with passive and with spinning threads alike.
 * Elementwise results are the same either way. */
#define PAR_MIN_WORK ((size_t)1 << 15)
#define GELU_COST 8 /* a GELU element costs about as much as 8 additions */

/* Column blocks for reductions over rows (bias, LayerNorm and embedding
 * gradients): each thread owns whole columns, so sums keep their order. */
#define COL_BLOCK 32

void gkd_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B,
                         int T, int C) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)B * T * C >= PAR_MIN_WORK)
    for (int bt = 0; bt < B * T; bt++) {
        const float *te = wte + (size_t)inp[bt] * C;
        float *o = out + (size_t)bt * C;
        if (!wpe) {
            memcpy(o, te, (size_t)C * sizeof(float));
            continue;
        }
        const float *pe = wpe + (size_t)(bt % T) * C;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
}

void gkd_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B,
                          int T, int C) {
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if(parallel: (size_t)B * T * C >= PAR_MIN_WORK)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C;
            float *te = dwte + (size_t)inp[bt] * C;
            if (!dwpe) {
                for (int c = c0; c < c1; c++) te[c] += d[c];
                continue;
            }
            float *pe = dwpe + (size_t)(bt % T) * C;
            for (int c = c0; c < c1; c++) {
                te[c] += d[c];
                pe[c] += d[c];
            }
        }
    }
}

/* Row reductions with 8 fixed partial sums (lane k takes elements k, k+8,
 * ...), combined in a fixed order: the compiler can vectorize them, and the
 * result does not depend on threads or on the alignment of the row. */
#define LANES 8

static inline float combine_lanes(const float *acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float row_sum(const float *x, int C) {
    float acc[LANES] = {0};
    int c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += x[c + k];
    for (int k = 0; c < C; c++, k++) acc[k] += x[c];
    return combine_lanes(acc);
}

static float row_sq_dev(const float *x, float m, int C) {
    float acc[LANES] = {0};
    int c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int k = 0; k < LANES; k++) {
            float d = x[c + k] - m;
            acc[k] += d * d;
        }
    for (int k = 0; c < C; c++, k++) acc[k] += (x[c] - m) * (x[c] - m);
    return combine_lanes(acc);
}

void gkd_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * C >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = row_sum(x, C) / C;
        float r = 1.0f / sqrtf(row_sq_dev(x, m, C) / C + 1e-5f);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
}

void gkd_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean, const float *rstd,
                            int N, int C) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * C >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float *di = dinp + (size_t)n * C;
        const float m = mean[n], r = rstd[n];
        float acc1[LANES] = {0}, acc2[LANES] = {0};
        int c = 0;
        for (; c + LANES <= C; c += LANES)
            for (int k = 0; k < LANES; k++) {
                float dnorm = w[c + k] * d[c + k];
                acc1[k] += dnorm;
                acc2[k] += dnorm * ((x[c + k] - m) * r);
            }
        for (int k = 0; c < C; c++, k++) {
            float dnorm = w[c] * d[c];
            acc1[k] += dnorm;
            acc2[k] += dnorm * ((x[c] - m) * r);
        }
        const float dnorm_mean = combine_lanes(acc1) / C;
        const float dnorm_norm_mean = combine_lanes(acc2) / C;
#pragma omp simd
        for (c = 0; c < C; c++) {
            float norm = (x[c] - m) * r;
            float dnorm = w[c] * d[c];
            di[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * r;
        }
    }
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * C >= PAR_MIN_WORK)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * COL_BLOCK, width = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
        float accw[COL_BLOCK] = {0}, accb[COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C + c0, *d = dout + (size_t)n * C + c0;
            const float m = mean[n], r = rstd[n];
#pragma omp simd
            for (int c = 0; c < width; c++) {
                accw[c] += (x[c] - m) * r * d[c];
                accb[c] += d[c];
            }
        }
        for (int c = 0; c < width; c++) {
            dw[c0 + c] += accw[c];
            db[c0 + c] += accb[c];
        }
    }
}

void gkd_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC) {
    layer_product(0, 1, N, OC, C, inp, C, w, C, 0.0f, out, OC, bias);
}

void gkd_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC) {
    if (dinp)
        layer_product(0, 0, N, C, OC, dout, OC, w, C, 0.0f, dinp, C, NULL);
    if (dw)
        layer_product(1, 0, OC, C, N, dout, OC, inp, C, 1.0f, dw, C, NULL);
    if (dbias) {
        int nblocks = (OC + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * OC >= PAR_MIN_WORK)
        for (int blk = 0; blk < nblocks; blk++) {
            int o0 = blk * COL_BLOCK, width = OC - o0 < COL_BLOCK ? OC - o0 : COL_BLOCK;
            /* a local accumulator: no aliasing with dout, so it vectorizes */
            float acc[COL_BLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC + o0;
#pragma omp simd
                for (int o = 0; o < width; o++) acc[o] += d[o];
            }
            for (int o = 0; o < width; o++) dbias[o0 + o] += acc[o];
        }
    }
}

/* One head's product C (M x N) = scale op(A) op(B): gkd_gemm's chains,
 * leaving out the causal mask's zeros (shape, gemm.h: the same bits), then
 * the scale (none when 1); in the OpenBLAS mode one full sgemm. Runs on
 * the calling thread inside the heads' parallel loop. */
static void head_product(int trans_a, int trans_b, int M, int N, int K, float scale, const float *A,
                         int lda, const float *B, int ldb, float *C, int ldc, int shape) {
    if (gkd_products() == GKD_PRODUCTS_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, M, N, K, scale, A, lda, B, ldb, 0.0f, C, ldc);
        return;
    }
    gkd_gemm_shaped(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, shape);
    if (scale != 1.0f)
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            const int n = shape & GKD_GEMM_C_LOWER ? (i + 1 < N ? i + 1 : N) : N;
#pragma omp simd
            for (int j = 0; j < n; j++) c[j] *= scale;
        }
}

/* Grouped-query attention (gkd/layers.h): a row of qkv is q (NH heads),
 * then k and v (NKV heads each); query head h reads kv head h / (NH/NKV).
 * With NKV == NH these are the plain multi-head layout (k at q + C, v at
 * q + 2C) and gkd_attention_forward/backward's very operations. */
void gkd_attention_gqa_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                               int NH, int NKV) {
    const int hs = C / NH, W = C + 2 * NKV * hs, group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hs);
    /* One (b, h) per iteration: independent outputs, each product on the
     * thread of its head. */
#pragma omp parallel for schedule(static) if(parallel: (size_t)B * NH * T * T * hs >= PAR_MIN_WORK)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * W + h * hs;
        const float *k = qkv + (size_t)b * T * W + C + (h / group) * hs, *v = k + NKV * hs;
        float *a = att + (size_t)bh * T * T;
        /* Scores on and below the diagonal (whole tiles of it); the
         * upper triangle is masked below. */
        head_product(0, 1, T, T, hs, scale, q, W, k, W, a, T, GKD_GEMM_C_LOWER);
        for (int i = 0; i < T; i++) {
            float *row = a + (size_t)i * T;
            float mx = row[0];
            for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
            for (int j = 0; j <= i; j++) row[j] -= mx;
            gkd_vexpf(row, row, i + 1); /* the bits of expf, vectorized */
            float s = 0.0f;
            for (int j = 0; j <= i; j++) s += row[j];
            float inv = 1.0f / s;
            for (int j = 0; j <= i; j++) row[j] *= inv;
            for (int j = i + 1; j < T; j++) row[j] = 0.0f;
        }
        head_product(0, 0, T, hs, T, 1.0f, a, T, v, W, out + (size_t)b * T * C + h * hs, C,
                     GKD_GEMM_A_LOWER);
    }
}

void gkd_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH) {
    gkd_attention_gqa_forward(out, att, qkv, B, T, C, NH, NH);
}

/* dst (T x hs, row stride ld) += src (the same shape and stride), element by element. */
static void add_head(float *dst, const float *src, int T, int hs, int ld) {
    for (int t = 0; t < T; t++) {
        float *d = dst + (size_t)t * ld;
        const float *s = src + (size_t)t * ld;
#pragma omp simd
        for (int c = 0; c < hs; c++) d[c] += s[c];
    }
}

/* One (b, kv head) per iteration, so that the iteration owns dk and dv of
 * its kv head and dq of its group's query heads: the group's heads are
 * taken in order, the first writing dk and dv, each later one adding its
 * products to them. A later head's products are first written into its own
 * dq, which is free until its last product overwrites it: no other memory,
 * and sums in a fixed order. */
void gkd_attention_gqa_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int C, int NH, int NKV) {
    const int hs = C / NH, W = C + 2 * NKV * hs, group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static) if(parallel: (size_t)B * NH * T * T * hs >= PAR_MIN_WORK)
    for (int bkv = 0; bkv < B * NKV; bkv++) {
        int b = bkv / NKV, kvh = bkv % NKV;
        const float *k = qkv + (size_t)b * T * W + C + kvh * hs, *v = k + NKV * hs;
        float *dk = dqkv + (size_t)b * T * W + C + kvh * hs, *dv = dk + NKV * hs;
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g, bh = b * NH + h;
            const float *q = qkv + (size_t)b * T * W + h * hs;
            float *dq = dqkv + (size_t)b * T * W + h * hs;
            const float *a = att + (size_t)bh * T * T;
            float *da = datt + (size_t)bh * T * T;
            const float *dy = dout + (size_t)b * T * C + h * hs;
            /* dv (+)= a^T dy; da = dy v^T */
            head_product(1, 0, T, hs, T, 1.0f, a, T, dy, C, g ? dq : dv, W, GKD_GEMM_A_UPPER);
            if (g) add_head(dv, dq, T, hs, W);
            head_product(0, 1, T, T, hs, 1.0f, dy, C, v, W, da, T, GKD_GEMM_C_LOWER);
            /* softmax backward in place: dscore = a * (da - sum_j a da) */
            for (int i = 0; i < T; i++) {
                const float *ar = a + (size_t)i * T;
                float *dr = da + (size_t)i * T;
                float dot = 0.0f;
                for (int j = 0; j <= i; j++) dot += ar[j] * dr[j];
                for (int j = 0; j <= i; j++) dr[j] = ar[j] * (dr[j] - dot);
                for (int j = i + 1; j < T; j++) dr[j] = 0.0f;
            }
            /* dk (+)= scale * dscore^T q; dq = scale * dscore k */
            head_product(1, 0, T, hs, T, scale, da, T, q, W, g ? dq : dk, W, GKD_GEMM_A_UPPER);
            if (g) add_head(dk, dq, T, hs, W);
            head_product(0, 0, T, hs, T, scale, da, T, k, W, dq, W, GKD_GEMM_A_LOWER);
        }
    }
}

void gkd_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH) {
    gkd_attention_gqa_backward(dqkv, datt, dout, qkv, att, B, T, C, NH, NH);
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* exp(x) for -20 <= x <= 0 (Cephes expf polynomial). Plain float and
 * integer arithmetic without branches, so `omp simd` vectorizes the GELU
 * loops: glibc's tanhf (through expm1f) took a third of the training time. */
static inline float exp_nonpos(float x) {
    float fn = x * 1.44269504088896341f + 12582912.0f; /* round to integer */
    fn -= 12582912.0f;
    float r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* tanh with absolute error < 1e-7 (measured against double tanh over
 * [-50, 50]); GELU only needs absolute accuracy since it uses 1 + tanh.
 * |u| is clamped to 10 (tanh(10) rounds to 1.0f) with integer operations on
 * the bit pattern, and the sign is copied back the same way. */
static inline float tanh_abs(float u) {
    uint32_t ub;
    memcpy(&ub, &u, sizeof(ub));
    uint32_t sign = ub & 0x80000000u, ab = ub & 0x7fffffffu;
    const uint32_t ten = 0x41200000u; /* 10.0f */
    ab = ab < ten ? ab : ten;
    float a;
    memcpy(&a, &ab, sizeof(a));
    float e = exp_nonpos(-2.0f * a);
    float t = (1.0f - e) / (1.0f + e);
    uint32_t tb;
    memcpy(&tb, &t, sizeof(tb));
    tb |= sign;
    memcpy(&t, &tb, sizeof(t));
    return t;
}

static inline float gelu_inner(float x) { return GELU_SCALE * (x + 0.044715f * x * x * x); }

static inline float gelu_local_grad(float x, float th) {
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

/* The GELU kernels are compiled for AVX-512, AVX2 and the x86-64 baseline,
 * and picked at load time. All versions do the same IEEE operations element
 * by element (-ffp-contract=off: no FMA contraction), so results are bit-identical
 * whichever runs. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef SIMD_CLONES
#define SIMD_CLONES
#endif

/* Elementwise loops run in fixed chunks, each chunk a call to a kernel. */
#define ELEM_CHUNK 8192

SIMD_CLONES static void gelu_fwd_range(float *out, float *th, const float *inp, size_t i0,
                                       size_t i1) {
    if (th) {
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            float x = inp[i];
            float t = tanh_abs(gelu_inner(x));
            th[i] = t;
            out[i] = 0.5f * x * (1.0f + t);
        }
    } else {
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanh_abs(gelu_inner(x)));
        }
    }
}

SIMD_CLONES static void gelu_bwd_range(float *dinp, const float *inp, const float *th,
                                       const float *dout, size_t i0, size_t i1) {
    if (th) {
#pragma omp simd
        for (size_t i = i0; i < i1; i++) dinp[i] = gelu_local_grad(inp[i], th[i]) * dout[i];
    } else {
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            float x = inp[i];
            dinp[i] = gelu_local_grad(x, tanh_abs(gelu_inner(x))) * dout[i];
        }
    }
}

void gkd_gelu_forward_cache(float *out, float *th, const float *inp, size_t n) {
    const size_t chunks = (n + ELEM_CHUNK - 1) / ELEM_CHUNK;
#pragma omp parallel for schedule(static) if(parallel: n * GELU_COST >= PAR_MIN_WORK)
    for (size_t k = 0; k < chunks; k++)
        gelu_fwd_range(out, th, inp, k * ELEM_CHUNK, k + 1 < chunks ? (k + 1) * ELEM_CHUNK : n);
}

void gkd_gelu_forward(float *out, const float *inp, size_t n) {
    gkd_gelu_forward_cache(out, NULL, inp, n);
}

void gkd_gelu_backward_cache(float *dinp, const float *inp, const float *th, const float *dout,
                             size_t n) {
    const size_t chunks = (n + ELEM_CHUNK - 1) / ELEM_CHUNK;
#pragma omp parallel for schedule(static) if(parallel: n * GELU_COST >= PAR_MIN_WORK)
    for (size_t k = 0; k < chunks; k++)
        gelu_bwd_range(dinp, inp, th, dout, k * ELEM_CHUNK,
                       k + 1 < chunks ? (k + 1) * ELEM_CHUNK : n);
}

void gkd_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    gkd_gelu_backward_cache(dinp, inp, NULL, dout, n);
}

void gkd_residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void gkd_residual_backward(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static) if(parallel: n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void gkd_softmax_forward(float *probs, const float *logits, int N, int V) {
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * V >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float mx = l[0];
        for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double s = 0.0;
        for (int j = 0; j < V; j++) {
            p[j] = expf(l[j] - mx);
            s += p[j];
        }
        float inv = (float)(1.0 / s);
        for (int j = 0; j < V; j++) p[j] *= inv;
    }
}

double gkd_crossentropy_forward_backward(float *dlogits, float *losses, const float *logits,
                                         const int *targets, const float *mask, int N, int V) {
    long count = 0;
    for (int n = 0; n < N; n++) count += !mask || mask[n] != 0.0f;
    const float inv_count = count > 0 ? 1.0f / (float)count : 0.0f;
#pragma omp parallel for schedule(static) if(parallel: (size_t)N * V >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *d = dlogits ? dlogits + (size_t)n * V : NULL;
        if (mask && mask[n] == 0.0f) {
            losses[n] = 0.0f;
            if (d) memset(d, 0, sizeof(float) * V);
            continue;
        }
        if (targets[n] < 0 || targets[n] >= V) { /* bad input: a NaN loss, never a wild read */
            losses[n] = NAN;
            if (d) memset(d, 0, sizeof(float) * V);
            continue;
        }
        float mx = l[0];
        for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double s = 0.0;
        for (int j = 0; j < V; j++) s += exp((double)(l[j] - mx));
        double logz = log(s) + mx;
        losses[n] = (float)(logz - l[targets[n]]);
        if (d) {
            for (int j = 0; j < V; j++) d[j] = (float)exp((double)l[j] - logz) * inv_count;
            d[targets[n]] -= inv_count;
        }
    }
    double total = 0.0;
    for (int n = 0; n < N; n++) total += losses[n];
    return count > 0 ? total / (double)count : 0.0;
}
