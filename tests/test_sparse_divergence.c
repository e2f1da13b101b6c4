/* Sparse (top-k) teacher rows: tie-breaking, the tail's digits, the
 * temperature, determinism and bad input. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/rng.h"
#include "gkd/sparse_teacher.h"
#include "helpers.h"

static void random_logits(float *z, int n, float s, uint64_t stream) {
    gkd_rng r = gkd_rng_derive(77, GKD_RNG_DATA, stream, 0);
    for (int i = 0; i < n; i++) z[i] = s * gkd_rng_normal(&r);
}

/* Rows of k ids built from teacher logits (N, V) at tau (fails the test if
 * they cannot be). */
static gkd_sparse_rows build(const float *zt, int N, int V, int k, float tau) {
    gkd_sparse_rows r;
    ck_assert_msg(gkd_sparse_rows_alloc(&r, N, V, k, tau) == 0, "%s", gkd_last_error());
    ck_assert_msg(gkd_sparse_rows_from_logits(&r, zt) == 0, "%s", gkd_last_error());
    ck_assert_msg(gkd_sparse_rows_check(&r) == 0, "%s", gkd_last_error());
    return r;
}

/* |a - b| in units of b's float spacing (equal infinities: 0). */
static double float_ulps(float a, float b) {
    if (a == b) return 0.0;
    return fabs((double)a - (double)b) / ((double)nextafterf(fabsf(b), INFINITY) - (double)fabsf(b));
}

/* ---- rows ---- */

START_TEST(test_top_k_ties_and_tail_digits) {
    /* Equal logits: the lower ids win. */
    float flat[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    gkd_sparse_rows t = build(flat, 1, 6, 3, 1.0f);
    ck_assert(t.ids[0] == 0 && t.ids[1] == 1 && t.ids[2] == 2);
    for (int i = 0; i < 3; i++) ck_assert(t.logp[i] == (float)-log(6.0));
    ck_assert(t.log_tail[0] == (float)log(0.5));
    gkd_sparse_rows_free(&t);
    float z[7] = {1, 2, 2, 0, 2, 3, 2};
    t = build(z, 1, 7, 2, 1.0f);
    ck_assert(t.ids[0] == 1 && t.ids[1] == 5);
    gkd_sparse_rows_free(&t);
    t = build(z, 1, 7, 4, 1.0f);
    ck_assert(t.ids[0] == 1 && t.ids[1] == 2 && t.ids[2] == 4 && t.ids[3] == 5);
    gkd_sparse_rows_free(&t);
    /* Descending, ascending and k = V orders give the same set. */
    float up[8], down[8];
    for (int i = 0; i < 8; i++) up[i] = (float)i, down[i] = (float)(8 - i);
    t = build(up, 1, 8, 3, 1.0f);
    ck_assert(t.ids[0] == 5 && t.ids[1] == 6 && t.ids[2] == 7);
    gkd_sparse_rows_free(&t);
    t = build(down, 1, 8, 3, 1.0f);
    ck_assert(t.ids[0] == 0 && t.ids[1] == 1 && t.ids[2] == 2);
    ck_assert(t.logp[0] > t.logp[1] && t.logp[1] > t.logp[2]);
    gkd_sparse_rows_free(&t);
    /* A tail of e^-50 / (2 + e^-50) keeps its digits (1 - sum would be 0). */
    float tiny[3] = {0.0f, 0.0f, -50.0f};
    t = build(tiny, 1, 3, 2, 1.0f);
    double want = -50.0 - log(2.0 + exp(-50.0));
    ck_assert_msg(float_ulps(t.log_tail[0], (float)want) <= 0.0, "%.9g vs %.17g", t.log_tail[0], want);
    ck_assert(t.ids[0] == 0 && t.ids[1] == 1);
    gkd_sparse_rows_free(&t);
    /* The temperature: softmax(z / 2). */
    float two[2] = {0.0f, 2.0f};
    t = build(two, 1, 2, 1, 2.0f);
    ck_assert(t.ids[0] == 1);
    ck_assert(float_ulps(t.logp[0], (float)-log1p(exp(-1.0))) <= 0.0);
    ck_assert(float_ulps(t.log_tail[0], (float)(-1.0 - log1p(exp(-1.0)))) <= 0.0);
    gkd_sparse_rows_free(&t);
}
END_TEST

START_TEST(test_build_thread_determinism) {
    enum { N = 1300, V = 33, K = 7 };
    float *zt = malloc(N * V * 4);
    random_logits(zt, N * V, 3.0f, 81);
    for (int i = 0; i < N * V; i += 5) zt[i] = roundf(zt[i]); /* some ties */
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    gkd_sparse_rows t1 = build(zt, N, V, K, 0.8f);
    omp_set_num_threads(2);
    gkd_sparse_rows t2 = build(zt, N, V, K, 0.8f);
    omp_set_num_threads(saved);
    ck_assert(memcmp(t1.ids, t2.ids, (size_t)N * K * 4) == 0);
    ck_assert(memcmp(t1.logp, t2.logp, (size_t)N * K * 4) == 0);
    ck_assert(memcmp(t1.log_tail, t2.log_tail, (size_t)N * 4) == 0);
    gkd_sparse_rows_free(&t1), gkd_sparse_rows_free(&t2);
    free(zt);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_bad_shapes_and_logits) {
    gkd_sparse_rows t;
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 2, 5, 0, 1.0f), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: need N >= 0 and 1 <= k <= V, got N 2, k 0, V 5");
    ck_assert(t.ids == NULL);
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 2, 5, 6, 1.0f), GKD_EINVAL);
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, -1, 5, 2, 1.0f), GKD_EINVAL);
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 2, 0, 1, 1.0f), GKD_EINVAL);
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 2, 5, 2, 0.0f), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: the temperature must be > 0 and finite, got 0");
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 2, 5, 2, NAN), GKD_EINVAL);
    gkd_sparse_rows_free(&t); /* zeroed: fine */
    gkd_sparse_rows_free(NULL);
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 0, 5, 2, 1.0f), 0); /* no rows is fine */
    ck_assert_int_eq(gkd_sparse_rows_from_logits(&t, (const float[1]){0}), 0);
    gkd_sparse_rows_free(&t);

    float z[3 * 4] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
    ck_assert_int_eq(gkd_sparse_rows_alloc(&t, 3, 4, 2, 1.0f), 0);
    z[6] = NAN, z[11] = INFINITY;
    ck_assert_int_eq(gkd_sparse_rows_from_logits(&t, z), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 1 of the teacher logits has a non-finite value");
    z[6] = 2;
    ck_assert_int_eq(gkd_sparse_rows_from_logits(&t, z), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 2 of the teacher logits has a non-finite value");
    gkd_sparse_rows_free(&t);
}
END_TEST

START_TEST(test_check_refuses_malformed_rows) {
    float z[2 * 6] = {0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0};
    gkd_sparse_rows t = build(z, 2, 6, 3, 1.0f);
    ck_assert(t.ids[3] == 0 && t.ids[4] == 1 && t.ids[5] == 2);
    /* One change at a time, restored after. */
    t.ids[4] = 0;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 1: ids not strictly ascending (0 after 0)");
    t.ids[4] = 1;
    t.ids[5] = 6;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 1: id 6 outside [0, 6)");
    t.ids[5] = -1;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    t.ids[5] = 2;
    float keep = t.logp[1];
    t.logp[1] = 0.5f;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "row 0: log-probability 0.5 of id 4 is not finite and <= 0"));
    t.logp[1] = NAN;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    t.logp[1] = keep - 0.01f; /* mass off by ~0.002 */
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "row 0: probabilities and tail sum to 0.99"));
    t.logp[1] = keep;
    float lt = t.log_tail[1];
    t.log_tail[1] = -INFINITY;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 1: log tail -inf (must be finite and <= 0 when k < V)");
    t.log_tail[1] = lt;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), 0);
    gkd_sparse_rows_free(&t);
    /* k = V: the tail must be -inf. */
    t = build(z, 2, 6, 6, 1.0f);
    t.log_tail[0] = -30.0f;
    ck_assert_int_eq(gkd_sparse_rows_check(&t), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 0: log tail -30 (must be -inf when k = V)");
    gkd_sparse_rows_free(&t);
}
END_TEST

Suite *sparse_divergence_suite(void) {
    Suite *s = suite_create("sparse_divergence");
    TCase *tc = tcase_create("sparse_divergence");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_top_k_ties_and_tail_digits);
    tcase_add_test(tc, test_build_thread_determinism);
    tcase_add_test(tc, test_bad_shapes_and_logits);
    tcase_add_test(tc, test_check_refuses_malformed_rows);
    suite_add_tcase(s, tc);
    return s;
}
