/* The decoder's products (src/model/decode_matmul.c), on every instruction set
 * this CPU has: every element is the fused multiply-add chain gkd_gemm
 * computes, bit for bit, whatever the number of rows, the path
 * (gkd_gemm_panels or the small-row tiles) or the threads; epilogues
 * applied on each finished block; and the weights are taken again when a
 * sequence starts. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model/decode_matmul.h"
#include "../src/model/decode_rows.h"
#include "../src/kernels/gemm.h"
#include "gkd/products.h"
#include "gkd/model.h"
#include "gkd/rng.h"

static float *random_matrix(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)gkd_rng_normal(&r);
    return x;
}

/* A model whose every parameter is a seeded standard normal draw, so each
 * output of a product sums inputs of similar size. */
static gkd_model *make_model(int V, int C, int L, uint64_t seed) {
    gkd_model_config cfg = {.vocab_size = V, .max_seq_len = 8, .n_layer = L, .n_embd = C, .n_head = 1};
    gkd_model *m = NULL;
    ck_assert_int_eq(gkd_model_new(&m, &cfg), 0);
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 5, 0);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] = (float)gkd_rng_normal(&r);
    return m;
}

/* The weights as stored in the model for matrix `which` of layer l (the
 * LM head for l == L): (OC, IC). */
static const float *stored(const gkd_model *m, int l, int which, int *IC, int *OC) {
    const int C = m->config.n_embd;
    const size_t lc = (size_t)l * C;
    *IC = C;
    if (l == m->config.n_layer) return *OC = m->config.vocab_size, m->params[GKD_GPT2_WTE];
    switch (which) {
    case GKD_GPT2_QKVW: return *OC = 3 * C, m->params[GKD_GPT2_QKVW] + lc * 3 * C;
    case GKD_GPT2_ATTPROJW: return *OC = C, m->params[GKD_GPT2_ATTPROJW] + lc * C;
    case GKD_GPT2_FCW: return *OC = 4 * C, m->params[GKD_GPT2_FCW] + lc * 4 * C;
    default: return *IC = 4 * C, *OC = C, m->params[GKD_GPT2_FCPROJW] + lc * 4 * C;
    }
}

/* out[r, o] == fmaf chain of inp row r and w row o over k, then + bias. */
static void check_chain(const float *out, const float *inp, const float *w, const float *bias, int n,
                        int IC, int OC, const char *what) {
    for (int r = 0; r < n; r++)
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (int k = 0; k < IC; k++) s = fmaf(inp[(size_t)r * IC + k], w[(size_t)o * IC + k], s);
            if (bias) s += bias[o];
            ck_assert_msg(out[(size_t)r * OC + o] == s, "%s: n=%d IC=%d OC=%d row %d out %d: %.9g != %.9g",
                          what, n, IC, OC, r, o, (double)out[(size_t)r * OC + o], (double)s);
        }
}

/* Every matrix of the copy, with 1..40 rows (tiles of 8 and 16 rows, and
 * gkd_gemm_panels), on the calling thread and shared by a team of two, on
 * instruction set _i. */
START_TEST(test_products_are_fma_chains) {
    if (_i > (int)gkd_isa_best()) return;
    ck_assert_int_eq(gkd_isa_set((gkd_isa)_i), 0);
    const int C = 20, V = 37, L = 2; /* partial panels everywhere: 60, 20, 80, 37 outputs */
    gkd_model *m = make_model(V, C, L, 3);
    float *wt = malloc(gkd_dm_floats(&m->config) * sizeof(float));
    gkd_dm_pack(wt, m);
    const int rows[] = {1, 5, 8, 9, 16, 17, 40};
    float *inp = random_matrix((size_t)40 * 4 * C, 7), *bias = random_matrix(4 * C, 8);
    float *out = malloc((size_t)40 * V * 4 * sizeof(float));
    float *scratch = aligned_alloc(64, 2 * gkd_dm_scratch_floats(4 * C) * sizeof(float));
    for (int l = 0; l <= L; l++)
        for (int j = 0; j < (l == L ? 1 : 4); j++)
            for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
                const int matrices[4] = {GKD_GPT2_QKVW, GKD_GPT2_ATTPROJW, GKD_GPT2_FCW, GKD_GPT2_FCPROJW};
                const int which = matrices[j];
                int IC, OC;
                const float *w = stored(m, l, which, &IC, &OC);
                const float *p = gkd_dm_matrix_at(wt, &m->config, l, which);
                const float *b = which == GKD_GPT2_ATTPROJW ? NULL : bias;
                gkd_dm_matmul(out, inp, p, b, rows[i], IC, OC, GKD_DM_STORE, NULL, 0, NULL, scratch);
                check_chain(out, inp, w, b, rows[i], IC, OC, "one thread");
                memset(out, 0, (size_t)rows[i] * OC * sizeof(float));
#pragma omp parallel num_threads(2)
                gkd_dm_matmul(out, inp, p, b, rows[i], IC, OC, GKD_DM_STORE, NULL, 1, NULL,
                              scratch + omp_get_thread_num() * gkd_dm_scratch_floats(4 * C));
                check_chain(out, inp, w, b, rows[i], IC, OC, "two threads");
                /* Uneven shares (a pace that measured one thread 4x faster). */
                memset(out, 0, (size_t)rows[i] * OC * sizeof(float));
                gkd_pace skew = {0};
                gkd_pace_begin(&skew, 2);
                skew.cut[1] = 0.2;
#pragma omp parallel num_threads(2)
                gkd_dm_matmul(out, inp, p, b, rows[i], IC, OC, GKD_DM_STORE, NULL, 1, &skew,
                              scratch + omp_get_thread_num() * gkd_dm_scratch_floats(4 * C));
                check_chain(out, inp, w, b, rows[i], IC, OC, "two threads, shares 1:4");
            }
    free(wt), free(inp), free(bias), free(out), free(scratch);
    gkd_model_free(m);
    gkd_isa_set(gkd_isa_best());
}
END_TEST

/* The same bits as gkd_gemm on the plain transposed weights, and the
 * epilogues (GELU, residual add) as gkd_dm_apply_epilogue applies them,
 * on instruction set _i. */
START_TEST(test_panels_and_epilogues) {
    if (_i > (int)gkd_isa_best()) return;
    ck_assert_int_eq(gkd_isa_set((gkd_isa)_i), 0);
    const int C = 24, V = 16, L = 1;
    gkd_model *m = make_model(V, C, L, 4);
    float *wt = malloc(gkd_dm_floats(&m->config) * sizeof(float));
    gkd_dm_pack(wt, m);
    int IC, OC;
    const float *w = stored(m, 0, GKD_GPT2_FCW, &IC, &OC);
    const float *p = gkd_dm_matrix_at(wt, &m->config, 0, GKD_GPT2_FCW);
    const int n = 30;
    float *inp = random_matrix((size_t)n * IC, 9), *bias = random_matrix(OC, 10);
    float *plain = malloc((size_t)IC * OC * sizeof(float)), *ref = malloc((size_t)n * OC * sizeof(float));
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < IC; k++) plain[(size_t)k * OC + o] = w[(size_t)o * IC + k];
    gkd_gemm(0, 0, n, OC, IC, inp, IC, plain, OC, 0.0f, ref, OC, bias);
    float *out = malloc((size_t)n * OC * sizeof(float)), *scratch = aligned_alloc(64, gkd_dm_scratch_floats(IC) * sizeof(float));
    for (int rows = 1; rows <= n; rows += 29) { /* tiles, then gkd_gemm_panels */
        gkd_dm_matmul(out, inp, p, bias, rows, IC, OC, GKD_DM_STORE, NULL, 0, NULL, scratch);
        ck_assert_int_eq(memcmp(out, ref, (size_t)rows * OC * sizeof(float)), 0);
        /* GELU: the epilogue on the stored product. */
        float *g = malloc((size_t)rows * OC * sizeof(float));
        memcpy(g, ref, (size_t)rows * OC * sizeof(float));
        for (int o = 0; o < OC; o += 64)
            gkd_dm_apply_epilogue(g, 0, rows, o, o + 64 < OC ? o + 64 : OC, OC, GKD_DM_GELU, NULL);
        gkd_dm_matmul(out, inp, p, bias, rows, IC, OC, GKD_DM_GELU, NULL, 0, NULL, scratch);
        ck_assert_int_eq(memcmp(out, g, (size_t)rows * OC * sizeof(float)), 0);
        ck_assert(memcmp(g, ref, (size_t)rows * OC * sizeof(float)) != 0);
        /* Residual: res += product, product kept in out. */
        float *res = random_matrix((size_t)rows * OC, 11), *want = malloc((size_t)rows * OC * sizeof(float));
        for (size_t i = 0; i < (size_t)rows * OC; i++) want[i] = res[i] + ref[i];
        gkd_dm_matmul(out, inp, p, bias, rows, IC, OC, GKD_DM_RESIDUAL, res, 0, NULL, scratch);
        ck_assert_int_eq(memcmp(res, want, (size_t)rows * OC * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(out, ref, (size_t)rows * OC * sizeof(float)), 0);
        free(g), free(res), free(want);
    }
    free(wt), free(inp), free(bias), free(plain), free(ref), free(out), free(scratch);
    gkd_model_free(m);
    gkd_isa_set(gkd_isa_best());
}
END_TEST

/* Logits of a 3-token prompt prefilled through cache c. */
static void prefill(gkd_model *m, gkd_kv_cache *c, float *lg) {
    const int seq[3] = {0, 0, 0}, pos[3] = {0, 1, 2}, tok[3] = {1, 4, 2}, out[3] = {-1, -1, 0};
    ck_assert_int_eq(gkd_decode_rows(m, c, 3, seq, pos, tok, out, lg), 0);
}

/* A cache reused after the weights change (a training step between
 * rollouts) decodes with the new weights once a sequence starts again. */
START_TEST(test_new_sequence_takes_new_weights) {
    gkd_model *m = make_model(11, 16, 2, 5);
    gkd_kv_cache *c = NULL, *fresh = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, 1), 0);
    float before[11], after[11], want[11];
    prefill(m, c, before);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] *= 0.9f;
    prefill(m, c, after);
    ck_assert_int_eq(gkd_kv_cache_new(&fresh, m, 1), 0);
    prefill(m, fresh, want);
    ck_assert_int_eq(memcmp(after, want, sizeof want), 0);
    ck_assert(memcmp(before, want, sizeof want) != 0);
    gkd_kv_cache_free(c);
    gkd_kv_cache_free(fresh);
    gkd_model_free(m);
}
END_TEST

Suite *decode_matmul_suite(void) {
    Suite *s = suite_create("decode_matmul");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_products_are_fma_chains, GKD_ISA_GENERIC, GKD_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_panels_and_epilogues, GKD_ISA_GENERIC, GKD_ISA_AVX512 + 1);
    tcase_add_test(tc, test_new_sequence_takes_new_weights);
    suite_add_tcase(s, tc);
    return s;
}
