/* gkd's matrix product (src/kernels/gemm.c), on every instruction set this CPU
 * has: against a double-precision reference on every layout the layers
 * use, odd edges included; bits equal to one fmaf chain per element, so
 * the same on every instruction set, and independent of thread count and
 * of the other rows of the product. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels/gemm.h"
#include "gkd/products.h"
#include "gkd/rng.h"

static float *random_matrix(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)gkd_rng_normal(&r);
    return x;
}

/* op(A)[m][k] and op(B)[k][n] as gemm.h defines them. */
static float op_a(const float *A, int lda, int ta, int m, int k) {
    return ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
}
static float op_b(const float *B, int ldb, int tb, int k, int n) {
    return tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
}

typedef struct {
    int ta, tb, M, N, K;
    float beta;
    int bias;
} gemm_case;

static const gemm_case cases[] = {
    {0, 1, 37, 45, 19, 0.0f, 1}, /* forward: inp W^T + bias, every edge partial */
    {0, 0, 50, 70, 33, 0.0f, 0}, /* input gradient: dout W */
    {1, 0, 29, 64, 77, 1.0f, 0}, /* weight gradient: dW += dout^T inp */
    {0, 1, 12, 32, 1, 0.0f, 0},  /* exactly one micro-tile, K = 1 */
    {1, 1, 5, 3, 8, 0.0f, 1},    /* smaller than one tile */
    {0, 1, 130, 200, 64, 1.0f, 0},
    {1, 0, 40, 50, 1500, 1.0f, 0}, /* long weight gradient: K blocks */
    {0, 1, 26, 33, 1100, 0.0f, 1},
    {0, 0, 3, 17, 0, 0.0f, 1},     /* K = 0: C = bias */
    {1, 0, 4, 9, 0, 1.0f, 0},      /* K = 0: C unchanged */
    {0, 1, 7, 40, 5, 0.0f, 0},     /* rows and columns of a decoding step */
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* _i: case _i % NCASES on instruction set _i / NCASES; 0 when this CPU
 * does not have it. */
static const gemm_case *begin_case(int i) {
    const gkd_isa isa = (gkd_isa)(i / NCASES);
    if (isa > gkd_isa_best()) return NULL;
    ck_assert_int_eq(gkd_isa_set(isa), 0);
    return &cases[i % NCASES];
}

START_TEST(test_matches_reference) {
    const gemm_case *g = begin_case(_i);
    if (!g) return;
    const int lda = (g->ta ? g->M : g->K) + 3, ldb = (g->tb ? g->K : g->N) + 5, ldc = g->N + 2;
    const size_t asz = (size_t)(g->ta ? g->K : g->M) * lda, bsz = (size_t)(g->tb ? g->N : g->K) * ldb;
    float *A = random_matrix(asz, 1), *B = random_matrix(bsz, 2), *bias = random_matrix(g->N, 3);
    float *C = random_matrix((size_t)g->M * ldc, 4), *C0 = malloc((size_t)g->M * ldc * sizeof(float));
    memcpy(C0, C, (size_t)g->M * ldc * sizeof(float));
    gkd_gemm(g->ta, g->tb, g->M, g->N, g->K, A, lda, B, ldb, g->beta, C, ldc, g->bias ? bias : NULL);
    gkd_isa_set(gkd_isa_best());
    for (int m = 0; m < g->M; m++) {
        for (int n = 0; n < g->N; n++) {
            double ref = 0.0, mag = 0.0;
            for (int k = 0; k < g->K; k++) {
                double p = (double)op_a(A, lda, g->ta, m, k) * op_b(B, ldb, g->tb, k, n);
                ref += p;
                mag += fabs(p);
            }
            if (g->beta != 0.0f) ref += C0[(size_t)m * ldc + n], mag += fabs(C0[(size_t)m * ldc + n]);
            if (g->bias) ref += bias[n], mag += fabs(bias[n]);
            /* fp32 sum of K + 2 terms: error below (K + 2) eps times the sum of magnitudes */
            double tol = (g->K + 2) * 1.2e-7 * mag + 1e-30;
            ck_assert_msg(fabs(C[(size_t)m * ldc + n] - ref) <= tol,
                          "case %d C[%d][%d] = %.9g, reference %.9g", _i, m, n,
                          (double)C[(size_t)m * ldc + n], ref);
        }
        /* Columns past N (the ldc padding) are untouched. */
        for (int n = g->N; n < ldc; n++)
            ck_assert(C[(size_t)m * ldc + n] == C0[(size_t)m * ldc + n]);
    }
    free(A), free(B), free(bias), free(C), free(C0);
}
END_TEST

/* Every element is exactly one fused multiply-add chain over k in order
 * from zero, then + bias or old C + acc (gemm.h): equal bits to fmaf. */
START_TEST(test_bits_are_one_fma_chain) {
    const gemm_case *g = begin_case(_i);
    if (!g) return;
    const int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N, ldc = g->N;
    float *A = random_matrix((size_t)(g->ta ? g->K : g->M) * lda, 8);
    float *B = random_matrix((size_t)(g->tb ? g->N : g->K) * ldb, 9), *bias = random_matrix(g->N, 10);
    float *C = random_matrix((size_t)g->M * ldc, 11), *C0 = malloc((size_t)g->M * ldc * sizeof(float));
    memcpy(C0, C, (size_t)g->M * ldc * sizeof(float));
    gkd_gemm(g->ta, g->tb, g->M, g->N, g->K, A, lda, B, ldb, g->beta, C, ldc, g->bias ? bias : NULL);
    gkd_isa_set(gkd_isa_best());
    for (int m = 0; m < g->M; m++)
        for (int n = 0; n < g->N; n++) {
            float acc = 0.0f;
            for (int k = 0; k < g->K; k++)
                acc = fmaf(op_a(A, lda, g->ta, m, k), op_b(B, ldb, g->tb, k, n), acc);
            float want = g->beta != 0.0f ? C0[(size_t)m * ldc + n] + acc
                                         : (g->bias ? acc + bias[n] : acc);
            ck_assert_msg(C[(size_t)m * ldc + n] == want, "case %d C[%d][%d] = %a, fma chain %a", _i,
                          m, n, (double)C[(size_t)m * ldc + n], (double)want);
        }
    free(A), free(B), free(bias), free(C), free(C0);
}
END_TEST

/* The same product with 1 and 2 threads, and rows 7 .. M-1 computed as a
 * product of their own, give the same bits, on instruction set _i. */
START_TEST(test_bits_independent_of_threads_and_rows) {
    if (_i > (int)gkd_isa_best()) return;
    ck_assert_int_eq(gkd_isa_set((gkd_isa)_i), 0);
    const int M = 203, N = 97, K = 150;
    float *A = random_matrix((size_t)M * K, 5), *B = random_matrix((size_t)N * K, 6);
    float *bias = random_matrix(N, 7);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
    float *C3 = calloc((size_t)M * N, sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    gkd_gemm(0, 1, M, N, K, A, K, B, K, 0.0f, C1, N, bias);
    omp_set_num_threads(2);
    gkd_gemm(0, 1, M, N, K, A, K, B, K, 0.0f, C2, N, bias);
    gkd_gemm(0, 1, M - 7, N, K, A + 7 * K, K, B, K, 0.0f, C3 + 7 * N, N, bias);
    omp_set_num_threads(saved);
    gkd_isa_set(gkd_isa_best());
    ck_assert_mem_eq(C1, C2, (size_t)M * N * sizeof(float));
    ck_assert_mem_eq(C1 + 7 * N, C3 + 7 * N, (size_t)(M - 7) * N * sizeof(float));
    free(A), free(B), free(bias), free(C1), free(C2), free(C3);
}
END_TEST

Suite *gemm_suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_matches_reference, 0, 3 * NCASES);
    tcase_add_loop_test(tc, test_bits_are_one_fma_chain, 0, 3 * NCASES);
    tcase_add_loop_test(tc, test_bits_independent_of_threads_and_rows, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
