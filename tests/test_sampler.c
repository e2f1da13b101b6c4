/* Sampler: greedy/top-k/top-p/temperature against full-forward softmax,
 * rollout independence from batch position and thread count, EOS/PAD,
 * loss-mask layout, teacher-mixed sampling and importance weights, with
 * and without a context for the mix model. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "product_variants.h"
#include "../src/model/sample_filter.h"
#include "gkd/error.h"
#include "gkd/model.h"
#include "gkd/rng.h"
#include "gkd/sampler.h"
#include "gkd/tokenizer.h"
#include "helpers.h"

/* Bigger weights than the GPT-2 init give peaked, varied next-token
 * distributions (and so real differences between decoding rules). */
static gkd_model *make_model(int V, int maxT, int L, int C, int NH, uint64_t seed, float jitter) {
    return th_make_model(V, maxT, L, C, NH, seed, jitter, 77);
}

/* BOS, random non-special tokens, SEP: prompt_len[b] = plen[b]. */
static void fill_prompts(gkd_seqbatch *bt, const int *plen, int V, uint64_t seed) {
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 3, 0);
    for (int b = 0; b < bt->B; b++) {
        int *tok = bt->tokens + (size_t)b * bt->cap;
        tok[0] = GKD_TOK_BOS;
        for (int t = 1; t < plen[b] - 1; t++)
            tok[t] = GKD_TOK_NSPECIAL + (int)gkd_rng_below(&r, (uint32_t)(V - GKD_TOK_NSPECIAL));
        tok[plen[b] - 1] = GKD_TOK_SEP;
        bt->prompt_len[b] = plen[b];
    }
}

/* Full-forward logits of one sequence (1, T). Returns a malloc'd copy. */
static float *forward_logits(gkd_model *m, const int *tok, int T) {
    ck_assert_int_eq(gkd_model_forward(m, tok, 1, T), 0);
    float *out = malloc(sizeof(float) * T * m->config.vocab_size);
    memcpy(out, m->logits, sizeof(float) * T * m->config.vocab_size);
    return out;
}

static void generate(gkd_model *m, gkd_model *mix, gkd_seqbatch *bt, const gkd_sample_options *o,
                     float alpha, uint64_t seed, const uint64_t *ids, float *iw) {
    gkd_sampler *s = NULL;
    ck_assert_int_eq(gkd_sampler_new(&s, m, mix, bt->B), 0);
    int rc = gkd_sampler_generate(s, bt, o, alpha, seed, ids, iw);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
    gkd_sampler_free(s);
}

START_TEST(test_greedy_is_argmax_of_forward) {
    const int V = 20, T = 24, B = 4;
    gkd_model *m = make_model(V, T, 2, 32, 4, 1, 0.1f);
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, B, T), 0);
    const int plen[4] = {3, 7, 5, 12};
    fill_prompts(&bt, plen, V, 2);
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.temperature = 0.0f;
    o.max_new_tokens = 10;
    generate(m, NULL, &bt, &o, 0.0f, 1, NULL, NULL);
    int checked = 0;
    for (int b = 0; b < B; b++) {
        const int *tok = bt.tokens + (size_t)b * T;
        ck_assert(bt.len[b] > plen[b]);
        float *lg = forward_logits(m, tok, bt.len[b]);
        for (int t = plen[b] - 1; t < bt.len[b] - 1; t++) {
            const float *row = lg + (size_t)t * V;
            int am = gkd_sample_argmax(row, V);
            /* Decode and forward logits differ by float rounding only; a
             * different pick is allowed only for a tie within it. */
            ck_assert_msg(tok[t + 1] == am || row[am] - row[tok[t + 1]] < 1e-5f,
                          "seq %d pos %d: picked %d, argmax %d", b, t + 1, tok[t + 1], am);
            checked++;
        }
        free(lg);
    }
    ck_assert_int_ge(checked, 12);
    gkd_seqbatch_free(&bt);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_top_k_1_equals_greedy) {
    const int V = 20, T = 20, B = 5;
    gkd_model *m = make_model(V, T, 2, 32, 4, 4, 0.1f);
    const int plen[5] = {2, 4, 6, 3, 9};
    gkd_seqbatch a, g;
    ck_assert_int_eq(gkd_seqbatch_new(&a, B, T), 0);
    ck_assert_int_eq(gkd_seqbatch_new(&g, B, T), 0);
    fill_prompts(&a, plen, V, 5);
    fill_prompts(&g, plen, V, 5);
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.max_new_tokens = 12;
    o.temperature = 0.0f;
    generate(m, NULL, &g, &o, 0.0f, 9, NULL, NULL);
    o.temperature = 1.3f;
    o.top_k = 1;
    generate(m, NULL, &a, &o, 0.0f, 9, NULL, NULL);
    ck_assert_int_eq(memcmp(a.tokens, g.tokens, sizeof(int) * B * T), 0);
    ck_assert_int_eq(memcmp(a.len, g.len, sizeof(int) * B), 0);
    gkd_seqbatch_free(&a);
    gkd_seqbatch_free(&g);
    gkd_model_free(m);
}
END_TEST

/* Sequence with stream id 42 alone, at position 4 of 6, at position 0 of
 * another batch; with 1 and 2 threads: the same rollout every time. */
START_TEST(test_rollout_independent_of_batch_and_threads) {
    const int V = 24, T = 32;
    gkd_model *m = make_model(V, T, 2, 40, 4, 6, 0.05f);
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.max_new_tokens = 20;
    o.temperature = 1.0f;
    o.top_p = 0.95f;
    const int target_plen = 6;
    int ref[32], ref_len = 0;
    for (int run = 0; run < 4; run++) {
        int B = run == 0 ? 1 : (run == 3 ? 3 : 6);
        int at = run == 0 ? 0 : (run == 3 ? 0 : 4);
        omp_set_num_threads(run == 2 ? 1 : 2);
        gkd_seqbatch bt;
        ck_assert_int_eq(gkd_seqbatch_new(&bt, B, T), 0);
        int plen[6];
        uint64_t ids[6];
        for (int b = 0; b < B; b++) {
            plen[b] = 3 + (b * 5 + run) % 9;
            ids[b] = 100 + b + 10 * run;
        }
        fill_prompts(&bt, plen, V, 11 + run);
        /* The tracked sequence: same prompt and stream id everywhere. */
        int *tok = bt.tokens + (size_t)at * T;
        for (int t = 0; t < target_plen; t++) tok[t] = t == 0 ? GKD_TOK_BOS : (t == target_plen - 1 ? GKD_TOK_SEP : 4 + t);
        bt.prompt_len[at] = target_plen;
        ids[at] = 42;
        generate(m, NULL, &bt, &o, 0.0f, 2024, ids, NULL);
        if (run == 0) {
            ref_len = bt.len[0];
            memcpy(ref, bt.tokens, sizeof(int) * T);
            ck_assert_int_gt(ref_len, target_plen + 2);
        } else {
            ck_assert_int_eq(bt.len[at], ref_len);
            ck_assert_int_eq(memcmp(ref, tok, sizeof(int) * T), 0);
        }
        gkd_seqbatch_free(&bt);
    }
    omp_set_num_threads(2);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_filter_top_p_top_k_exact) {
    const int V = 4;
    float lg[4];
    const double p[4] = {0.5, 0.3, 0.15, 0.05};
    /* Permuted ids so the sort order is not the id order. */
    const int perm[4] = {2, 0, 3, 1};
    for (int i = 0; i < V; i++) lg[perm[i]] = (float)log(p[i]);
    double q[4];
    int idx[8];
    gkd_sample_filter(q, lg, V, 1.0f, 0, 0.75f, idx);
    ck_assert_double_eq_tol(q[perm[0]], 0.5 / 0.8, 1e-6);
    ck_assert_double_eq_tol(q[perm[1]], 0.3 / 0.8, 1e-6);
    ck_assert_double_eq(q[perm[2]], 0.0);
    ck_assert_double_eq(q[perm[3]], 0.0);
    gkd_sample_filter(q, lg, V, 1.0f, 0, 0.85f, idx);
    ck_assert_double_eq_tol(q[perm[2]], 0.15 / 0.95, 1e-6);
    ck_assert_double_eq(q[perm[3]], 0.0);
    gkd_sample_filter(q, lg, V, 1.0f, 0, 0.4f, idx);
    ck_assert_double_eq(q[perm[0]], 1.0);
    gkd_sample_filter(q, lg, V, 1.0f, 0, 1.0f, idx);
    for (int i = 0; i < V; i++) ck_assert_double_eq_tol(q[perm[i]], p[i], 1e-6);
    /* Temperature 2: p^(1/2) normalized. */
    gkd_sample_filter(q, lg, V, 2.0f, 0, 1.0f, idx);
    double z = 0;
    for (int i = 0; i < V; i++) z += sqrt(p[i]);
    for (int i = 0; i < V; i++) ck_assert_double_eq_tol(q[perm[i]], sqrt(p[i]) / z, 1e-6);
    /* top-k 3, then the nucleus of the renormalized top 3 (0.526, 0.316,
     * 0.158): p = 0.8 keeps two, p = 0.9 keeps three. */
    gkd_sample_filter(q, lg, V, 1.0f, 3, 0.8f, idx);
    ck_assert_double_eq_tol(q[perm[0]], 0.5 / 0.8, 1e-6);
    ck_assert_double_eq(q[perm[2]], 0.0);
    gkd_sample_filter(q, lg, V, 1.0f, 3, 0.9f, idx);
    ck_assert_double_eq_tol(q[perm[2]], 0.15 / 0.95, 1e-6);
    ck_assert_double_eq(q[perm[3]], 0.0);
    /* Ties: lower id first, both for top-k and at the nucleus boundary. */
    float tie[4] = {0.0f, 2.0f, 2.0f, 1.0f};
    gkd_sample_filter(q, tie, V, 1.0f, 1, 1.0f, idx);
    ck_assert_double_eq(q[1], 1.0);
    float flat[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    gkd_sample_filter(q, flat, V, 1.0f, 0, 0.5f, idx);
    ck_assert_double_eq(q[0], 0.5);
    ck_assert_double_eq(q[1], 0.5);
    ck_assert_double_eq(q[2], 0.0);
    gkd_sample_filter(q, flat, V, 0.0f, 0, 1.0f, idx);
    ck_assert_double_eq(q[0], 1.0);
}
END_TEST

/* |count/N - p| within 5 binomial standard deviations (plus half a count). */
static void check_frequencies(const int *count, const double *p, int V, int N) {
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / N, sd = sqrt(p[i] * (1 - p[i]) / N);
        ck_assert_msg(fabs(f - p[i]) <= 5 * sd + 0.5 / N, "token %d: frequency %g, probability %g", i,
                      f, p[i]);
    }
}

START_TEST(test_draw_frequencies_and_nucleus) {
    const int V = 6, N = 40000;
    float lg[6] = {1.5f, -0.3f, 0.9f, 2.0f, -1.0f, 0.1f};
    double q[6];
    int idx[12];
    gkd_rng r = gkd_rng_derive(3, GKD_RNG_SAMPLE, 0, 0);
    gkd_sample_filter(q, lg, V, 0.7f, 0, 0.8f, idx);
    int count[6] = {0};
    for (int n = 0; n < N; n++) count[gkd_sample_draw(q, V, &r)]++;
    int outside = 0;
    for (int i = 0; i < V; i++)
        if (q[i] == 0.0) {
            outside++;
            ck_assert_int_eq(count[i], 0);
        }
    ck_assert_int_ge(outside, 2);
    check_frequencies(count, q, V, N);
}
END_TEST

/* End to end: one generated token, many streams; frequencies match the
 * softmax of the full forward at temperature 1 (and tokens outside the
 * nucleus never appear with top-p). */
START_TEST(test_sampler_frequencies_match_softmax) {
    const int V = 10, T = 8, B = 50, rounds = 80, N = B * rounds;
    gkd_model *m = make_model(V, T, 1, 16, 2, 12, 0.1f);
    const int prompt[4] = {GKD_TOK_BOS, 5, 7, GKD_TOK_SEP};
    float *lg = forward_logits(m, prompt, 4);
    for (int pass = 0; pass < 2; pass++) {
        float top_p = pass == 0 ? 1.0f : 0.7f;
        double p[10];
        int idx[20];
        gkd_sample_filter(p, lg + 3 * V, V, 1.0f, 0, top_p, idx);
        int count[10] = {0};
        gkd_sampler *s = NULL;
        ck_assert_int_eq(gkd_sampler_new(&s, m, NULL, B), 0);
        gkd_seqbatch bt;
        ck_assert_int_eq(gkd_seqbatch_new(&bt, B, T), 0);
        uint64_t ids[50];
        gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
        o.max_new_tokens = 1;
        o.top_p = top_p;
        for (int rd = 0; rd < rounds; rd++) {
            for (int b = 0; b < B; b++) {
                memcpy(bt.tokens + (size_t)b * T, prompt, sizeof prompt);
                bt.prompt_len[b] = 4;
                ids[b] = (uint64_t)rd * B + b;
            }
            ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.0f, 77, ids, NULL), 0);
            for (int b = 0; b < B; b++) {
                ck_assert_int_eq(bt.len[b], 5);
                count[bt.tokens[(size_t)b * T + 4]]++;
            }
        }
        for (int i = 0; i < V; i++)
            if (p[i] == 0.0) ck_assert_int_eq(count[i], 0);
        check_frequencies(count, p, V, N);
        gkd_seqbatch_free(&bt);
        gkd_sampler_free(s);
    }
    free(lg);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_eos_stops_and_pad_follows) {
    const int V = 12, T = 16, B = 3;
    gkd_model *m = make_model(V, T, 1, 16, 2, 3, 0.0f);
    /* Make EOS the runaway favourite: logits = lnf(x) . wte[v] with the
     * final LayerNorm a constant (gain 0, bias on channel 0). */
    const int C = 16;
    for (int i = 0; i < C; i++) m->params[GKD_GPT2_LNFW][i] = 0.0f, m->params[GKD_GPT2_LNFB][i] = 0.0f;
    m->params[GKD_GPT2_LNFB][0] = 1.0f;
    for (int v = 0; v < V; v++) m->params[GKD_GPT2_WTE][v * C] = v == GKD_TOK_EOS ? 8.0f : 0.0f;
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, B, T), 0);
    const int plen[3] = {3, 5, 4};
    fill_prompts(&bt, plen, V, 1);
    for (int i = 0; i < B * T; i++)
        if (bt.tokens[i] == 0 && i % T >= plen[i / T]) bt.tokens[i] = 7; /* garbage to be padded */
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.temperature = 0.0f;
    generate(m, NULL, &bt, &o, 0.0f, 1, NULL, NULL);
    for (int b = 0; b < B; b++) {
        ck_assert_int_eq(bt.len[b], plen[b] + 1);
        ck_assert_int_eq(bt.eos[b], 1);
        ck_assert_int_eq(bt.tokens[b * T + plen[b]], GKD_TOK_EOS);
        for (int t = plen[b] + 1; t < T; t++) ck_assert_int_eq(bt.tokens[b * T + t], GKD_TOK_PAD);
    }
    gkd_seqbatch_free(&bt);
    gkd_model_free(m);
}
END_TEST

/* Random model at temperature 1: EOS ends a sequence exactly once; else it
 * runs to max_new_tokens or the batch capacity. The end token is the
 * options' (a subword tokenizer's EOS is not id 2), and one outside the
 * vocabulary is refused. */
START_TEST(test_stop_rules) {
    const int V = 8, T = 24, B = 40;
    gkd_model *m = make_model(V, T, 1, 16, 2, 5, 0.2f);
    const int eos_ids[2] = {GKD_TOK_EOS, 6};
    for (int e = 0; e < 2; e++)
    for (int cap_case = 0; cap_case < 2; cap_case++) {
        const int eos = eos_ids[e];
        int cap = cap_case ? 12 : T;
        gkd_seqbatch bt;
        ck_assert_int_eq(gkd_seqbatch_new(&bt, B, cap), 0);
        int plen[40];
        for (int b = 0; b < B; b++) plen[b] = 2 + b % 5;
        fill_prompts(&bt, plen, V, 8);
        gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
        ck_assert_int_eq(o.eos_token, GKD_TOK_EOS);
        o.max_new_tokens = 9;
        o.eos_token = eos;
        generate(m, NULL, &bt, &o, 0.0f, 3, NULL, NULL);
        int n_eos = 0, n_full = 0;
        for (int b = 0; b < B; b++) {
            const int *tok = bt.tokens + (size_t)b * cap;
            int limit = plen[b] + 9 < cap ? plen[b] + 9 : cap;
            for (int t = plen[b]; t < bt.len[b] - 1; t++) ck_assert_int_ne(tok[t], eos);
            if (bt.eos[b]) {
                n_eos++;
                ck_assert_int_eq(tok[bt.len[b] - 1], eos);
                ck_assert_int_le(bt.len[b], limit);
            } else {
                n_full++;
                ck_assert_int_eq(bt.len[b], limit);
                ck_assert_int_ne(tok[bt.len[b] - 1], eos);
            }
            for (int t = bt.len[b]; t < cap; t++) ck_assert_int_eq(tok[t], GKD_TOK_PAD);
        }
        ck_assert_int_gt(n_eos, 0);
        ck_assert_int_gt(n_full, 0);
        gkd_seqbatch_free(&bt);
    }
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, 1, T), 0);
    int plen[1] = {2};
    fill_prompts(&bt, plen, V, 8);
    gkd_sampler *s;
    ck_assert_int_eq(gkd_sampler_new(&s, m, NULL, 1), 0);
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.eos_token = V;
    uint64_t stream = 0;
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.0f, 1, &stream, NULL), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "sampler: eos_token 8 outside the vocabulary (V=8)");
    gkd_sampler_free(s);
    gkd_seqbatch_free(&bt);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_seqbatch_targets_hand_made) {
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, 2, 6), 0);
    const int tok[12] = {GKD_TOK_BOS, 5, GKD_TOK_SEP, 7, GKD_TOK_EOS, GKD_TOK_PAD,
                         GKD_TOK_BOS, 6, 6, GKD_TOK_SEP, 9, 9};
    memcpy(bt.tokens, tok, sizeof tok);
    bt.prompt_len[0] = 3, bt.len[0] = 5, bt.eos[0] = 1;
    bt.prompt_len[1] = 4, bt.len[1] = 6;
    int targets[12];
    float mask[12];
    gkd_seqbatch_targets(&bt, targets, mask);
    const int et[12] = {5, GKD_TOK_SEP, 7, GKD_TOK_EOS, GKD_TOK_PAD, GKD_TOK_PAD,
                        6, 6, GKD_TOK_SEP, 9, 9, GKD_TOK_PAD};
    const float em[12] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0};
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(targets[i], et[i]);
        ck_assert_float_eq(mask[i], em[i]);
    }
    gkd_seqbatch_free(&bt);
}
END_TEST

/* alpha = 1 draws exactly what the mix model alone draws; alpha = 0 what the
 * model alone draws; weights are p_model / p_mixture of the full forwards. */
START_TEST(test_teacher_mixed_sampling) {
    const int V = 16, T = 20, B = 6;
    gkd_model *a = make_model(V, T, 2, 32, 4, 21, 0.1f), *t = make_model(V, T, 2, 32, 4, 22, 0.1f);
    const int plen[6] = {3, 5, 4, 6, 2, 3};
    uint64_t ids[6] = {9, 8, 7, 6, 5, 4};
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.max_new_tokens = 10;
    o.top_k = 8;
    gkd_seqbatch mixed, plain;
    ck_assert_int_eq(gkd_seqbatch_new(&mixed, B, T), 0);
    ck_assert_int_eq(gkd_seqbatch_new(&plain, B, T), 0);
    float *iw = malloc(sizeof(float) * B * T);
    for (int c = 0; c < 3; c++) {
        float alpha = c == 0 ? 1.0f : (c == 1 ? 0.0f : 0.5f);
        fill_prompts(&mixed, plen, V, 30);
        fill_prompts(&plain, plen, V, 30);
        generate(a, t, &mixed, &o, alpha, 5, ids, iw);
        if (c < 2) {
            generate(c == 0 ? t : a, NULL, &plain, &o, 0.0f, 5, ids, NULL);
            ck_assert_int_eq(memcmp(mixed.tokens, plain.tokens, sizeof(int) * B * T), 0);
            ck_assert_int_eq(memcmp(mixed.len, plain.len, sizeof(int) * B), 0);
        }
        int generated = 0;
        for (int b = 0; b < B; b++) {
            const int *tok = mixed.tokens + (size_t)b * T;
            float *la = forward_logits(a, tok, mixed.len[b]), *lt = forward_logits(t, tok, mixed.len[b]);
            for (int i = 0; i < T; i++) {
                float w = iw[b * T + i];
                if (i < plen[b] || i >= mixed.len[b]) {
                    ck_assert_float_eq(w, 1.0f);
                    continue;
                }
                double pa[16], pt[16];
                int idx[32];
                gkd_sample_filter(pa, la + (size_t)(i - 1) * V, V, o.temperature, o.top_k, o.top_p, idx);
                gkd_sample_filter(pt, lt + (size_t)(i - 1) * V, V, o.temperature, o.top_k, o.top_p, idx);
                int y = tok[i];
                double expect = pa[y] / (alpha * pt[y] + (1 - alpha) * pa[y]);
                ck_assert_msg(fabs(w - expect) <= 1e-4 * (1 + expect), "alpha %g seq %d pos %d: %g vs %g",
                              (double)alpha, b, i, (double)w, expect);
                if (c == 1) ck_assert_float_eq(w, 1.0f);
                generated++;
            }
            free(la);
            free(lt);
        }
        ck_assert_int_gt(generated, 10);
    }
    free(iw);
    gkd_seqbatch_free(&mixed);
    gkd_seqbatch_free(&plain);
    gkd_model_free(a);
    gkd_model_free(t);
}
END_TEST

/* ---- a context for the mix model ---- */

/* Row tokens[0..len) with the c tokens ctx inserted before position at:
 * the mix model's view of the row. Returns len + c. */
static int with_context(const int *tok, int len, int at, const int *ctx, int c, int *out) {
    memcpy(out, tok, sizeof(int) * (size_t)at);
    memcpy(out + at, ctx, sizeof(int) * (size_t)c);
    memcpy(out + at + c, tok + at, sizeof(int) * (size_t)(len - at));
    return len + c;
}

static void generate_with_context(gkd_model *m, gkd_model *mix, gkd_seqbatch *bt, const gkd_sample_options *o,
                                  float alpha, const uint64_t *ids, float *iw, int at, const int *const *ctx,
                                  const int *clen) {
    gkd_sampler *s = NULL;
    ck_assert_int_eq(gkd_sampler_new(&s, m, mix, bt->B), 0);
    ck_assert_int_eq(gkd_sampler_set_mix_context(s, at, ctx, clen), 0);
    int rc = gkd_sampler_generate(s, bt, o, alpha, 5, ids, iw);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
    gkd_sampler_free(s);
}

/* Contexts of 3, 0, 5, 1 tokens after BOS (at 1) and first (at 0; the
 * rows then start with a plain token). */
#define CTX_B 4
static const int ctx_len4[CTX_B] = {3, 0, 5, 1};
static const int ctx_tok[CTX_B][5] = {{7, 9, 4}, {0}, {12, 5, 5, 8, 11}, {10}};
static const int *const ctx_ptr[CTX_B] = {ctx_tok[0], ctx_tok[1], ctx_tok[2], ctx_tok[3]};

static void fill_prompts_at(gkd_seqbatch *bt, const int *plen, int V, int at) {
    fill_prompts(bt, plen, V, 30);
    if (at == 0)
        for (int b = 0; b < bt->B; b++) bt->tokens[(size_t)b * bt->cap] = GKD_TOK_NSPECIAL + b;
}

/* alpha = 1 with contexts is the mix model's own rollout of the contextual
 * prompts, bit for bit (same stream, same decoder logits), also where the
 * mix model's shorter context ends a row; alpha = 0.5 weights are
 * p_model / p_mixture with the mix model's full forward of the contextual
 * sequence at t + c_b and the model's of the plain row at t. */
START_TEST(test_mix_context_is_the_contextual_mix_model) {
    const int V = 16, T = 20, TM = 16;
    gkd_model *a = make_model(V, T, 2, 32, 4, 21, 0.1f), *t = make_model(V, TM, 2, 32, 4, 22, 0.1f);
    const int plen[CTX_B] = {3, 5, 4, 6};
    uint64_t ids[CTX_B] = {9, 8, 7, 6};
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.max_new_tokens = 10;
    o.top_k = 8;
    o.eos_token = V - 1; /* rare: rows run to their limits */
    gkd_seqbatch mixed, alone;
    ck_assert_int_eq(gkd_seqbatch_new(&mixed, CTX_B, T), 0);
    ck_assert_int_eq(gkd_seqbatch_new(&alone, CTX_B, TM), 0);
    float *iw = malloc(sizeof(float) * CTX_B * T);
    int window_stops = 0;
    for (int at = 0; at <= 1; at++) {
        fill_prompts_at(&mixed, plen, V, at);
        generate_with_context(a, t, &mixed, &o, 1.0f, ids, iw, at, ctx_ptr, ctx_len4);
        for (int b = 0; b < CTX_B; b++) {
            const int *row = mixed.tokens + (size_t)b * T;
            alone.prompt_len[b] = with_context(row, plen[b], at, ctx_tok[b], ctx_len4[b], alone.tokens + (size_t)b * TM);
        }
        generate(t, NULL, &alone, &o, 0.0f, 5, ids, NULL);
        for (int b = 0; b < CTX_B; b++) {
            const int c = ctx_len4[b], *row = mixed.tokens + (size_t)b * T, *ref = alone.tokens + (size_t)b * TM;
            ck_assert_int_eq(mixed.len[b] + c, alone.len[b]);
            ck_assert_int_eq(mixed.eos[b], alone.eos[b]);
            ck_assert_int_gt(mixed.len[b], plen[b]);
            ck_assert(!memcmp(row + plen[b], ref + plen[b] + c, sizeof(int) * (size_t)(mixed.len[b] - plen[b])));
            for (int i = mixed.len[b]; i < T; i++) ck_assert_int_eq(row[i], GKD_TOK_PAD);
            window_stops += !mixed.eos[b] && mixed.len[b] + c == TM;
        }
        fill_prompts_at(&mixed, plen, V, at);
        const float alpha = 0.5f;
        generate_with_context(a, t, &mixed, &o, alpha, ids, iw, at, ctx_ptr, ctx_len4);
        int generated = 0;
        for (int b = 0; b < CTX_B; b++) {
            const int c = ctx_len4[b], *tok = mixed.tokens + (size_t)b * T;
            int full[64];
            const int n = with_context(tok, mixed.len[b], at, ctx_tok[b], c, full);
            ck_assert_int_le(n, TM);
            float *la = forward_logits(a, tok, mixed.len[b]), *lt = forward_logits(t, full, n);
            for (int i = 0; i < T; i++) {
                float w = iw[b * T + i];
                if (i < plen[b] || i >= mixed.len[b]) {
                    ck_assert_float_eq(w, 1.0f);
                    continue;
                }
                double pa[16], pt[16];
                int idx[32];
                gkd_sample_filter(pa, la + (size_t)(i - 1) * V, V, o.temperature, o.top_k, o.top_p, idx);
                gkd_sample_filter(pt, lt + (size_t)(i - 1 + c) * V, V, o.temperature, o.top_k, o.top_p, idx);
                int y = tok[i];
                double expect = pa[y] / (alpha * pt[y] + (1 - alpha) * pa[y]);
                ck_assert_msg(fabs(w - expect) <= 1e-4 * (1 + expect), "at %d seq %d pos %d: %g vs %g", at, b, i,
                              (double)w, expect);
                generated++;
            }
            free(la);
            free(lt);
        }
        ck_assert_int_gt(generated, 10);
    }
    ck_assert_int_gt(window_stops, 0);
    free(iw);
    gkd_seqbatch_free(&mixed);
    gkd_seqbatch_free(&alone);
    gkd_model_free(a);
    gkd_model_free(t);
}
END_TEST

/* alpha = 1, greedy: each generated token is the argmax of the mix model's
 * full forward of the contextual sequence at t + c_b (closed form; a
 * different pick only for a tie within float rounding, as for greedy). */
START_TEST(test_mix_context_greedy_is_contextual_argmax) {
    const int V = 20, T = 24;
    gkd_model *a = make_model(V, T, 2, 32, 4, 1, 0.1f), *t = make_model(V, 32, 2, 32, 4, 2, 0.1f);
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, CTX_B, T), 0);
    const int plen[CTX_B] = {3, 7, 5, 12};
    fill_prompts(&bt, plen, V, 2);
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.temperature = 0.0f;
    o.max_new_tokens = 10;
    generate_with_context(a, t, &bt, &o, 1.0f, NULL, NULL, 1, ctx_ptr, ctx_len4);
    int checked = 0;
    for (int b = 0; b < CTX_B; b++) {
        const int c = ctx_len4[b], *tok = bt.tokens + (size_t)b * T;
        ck_assert(bt.len[b] > plen[b]);
        int full[64];
        const int n = with_context(tok, bt.len[b], 1, ctx_tok[b], c, full);
        float *lg = forward_logits(t, full, n);
        for (int i = plen[b]; i < bt.len[b]; i++) {
            const float *row = lg + (size_t)(i - 1 + c) * V;
            int am = gkd_sample_argmax(row, V);
            ck_assert_msg(tok[i] == am || row[am] - row[tok[i]] < 1e-5f, "seq %d pos %d: picked %d, argmax %d", b,
                          i, tok[i], am);
            checked++;
        }
        free(lg);
    }
    ck_assert_int_ge(checked, 12);
    gkd_seqbatch_free(&bt);
    gkd_model_free(a);
    gkd_model_free(t);
}
END_TEST

/* Empty contexts, and a context with mix_alpha 0, give the bits of no
 * context (tokens, lengths, EOS, weights); a context serves one call. */
START_TEST(test_empty_mix_context_is_no_context) {
    const int V = 16, T = 20;
    gkd_model *a = make_model(V, T, 2, 32, 4, 21, 0.1f), *t = make_model(V, T, 2, 32, 4, 22, 0.1f);
    const int plen[CTX_B] = {3, 5, 4, 6}, zero[CTX_B] = {0, 0, 0, 0};
    uint64_t ids[CTX_B] = {9, 8, 7, 6};
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.max_new_tokens = 10;
    o.top_p = 0.9f;
    gkd_seqbatch x, y;
    ck_assert_int_eq(gkd_seqbatch_new(&x, CTX_B, T), 0);
    ck_assert_int_eq(gkd_seqbatch_new(&y, CTX_B, T), 0);
    float *iwx = malloc(sizeof(float) * CTX_B * T), *iwy = malloc(sizeof(float) * CTX_B * T);
    gkd_sampler *s = NULL;
    ck_assert_int_eq(gkd_sampler_new(&s, a, t, CTX_B), 0);
    for (int c = 0; c < 3; c++) {
        const float alpha = c == 1 ? 0.0f : 0.5f;
        fill_prompts(&x, plen, V, 30);
        fill_prompts(&y, plen, V, 30);
        generate(a, t, &x, &o, alpha, 5, ids, iwx);
        if (c < 2) ck_assert_int_eq(gkd_sampler_set_mix_context(s, 1, ctx_ptr, c == 0 ? zero : ctx_len4), 0);
        ck_assert_int_eq(gkd_sampler_generate(s, &y, &o, alpha, 5, ids, iwy), 0);
        ck_assert(!memcmp(x.tokens, y.tokens, sizeof(int) * CTX_B * T));
        ck_assert(!memcmp(x.len, y.len, sizeof(int) * CTX_B));
        ck_assert(!memcmp(x.eos, y.eos, CTX_B));
        ck_assert(!memcmp(iwx, iwy, sizeof(float) * CTX_B * T));
    }
    free(iwx);
    free(iwy);
    gkd_sampler_free(s);
    gkd_seqbatch_free(&x);
    gkd_seqbatch_free(&y);
    gkd_model_free(a);
    gkd_model_free(t);
}
END_TEST

START_TEST(test_bad_mix_context) {
    gkd_model *m = make_model(16, 8, 1, 8, 2, 1, 0.0f), *t = make_model(16, 10, 1, 8, 2, 2, 0.0f);
    gkd_sampler *s = NULL, *plain = NULL;
    ck_assert_int_eq(gkd_sampler_new(&plain, m, NULL, 2), 0);
    const int len[2] = {1, 1}, bad[1] = {16}, ok[9] = {5, 5, 5, 5, 5, 5, 5, 5, 5};
    const int *bad_ctx[2] = {ok, bad}, *ok_ctx[2] = {ok, ok};
    ck_assert_int_eq(gkd_sampler_set_mix_context(plain, 1, ok_ctx, len), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "needs a mix model"));
    ck_assert_int_eq(gkd_sampler_new(&s, m, t, 2), 0);
    ck_assert_int_eq(gkd_sampler_set_mix_context(s, -1, ok_ctx, len), GKD_EINVAL);
    ck_assert_int_eq(gkd_sampler_set_mix_context(s, 1, ok_ctx, NULL), GKD_EINVAL);
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, 2, 8), 0);
    bt.tokens[0] = bt.tokens[8] = GKD_TOK_BOS;
    bt.tokens[1] = bt.tokens[9] = 6;
    bt.prompt_len[0] = bt.prompt_len[1] = 2;
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    ck_assert_int_eq(gkd_sampler_set_mix_context(s, 1, bad_ctx, len), 0);
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.5f, 1, NULL, NULL), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "mix context token 16"));
    const int long_len[2] = {9, 0};
    ck_assert_int_eq(gkd_sampler_set_mix_context(s, 1, ok_ctx, long_len), 0);
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.5f, 1, NULL, NULL), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "mix context (9) exceed the mix model's context 10"));
    ck_assert_int_eq(gkd_sampler_set_mix_context(s, 3, ok_ctx, len), 0);
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.5f, 1, NULL, NULL), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "before the mix context's position 3"));
    /* The refused context is gone: the next call has none. */
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.5f, 1, NULL, NULL), 0);
    gkd_seqbatch_free(&bt);
    gkd_sampler_free(s);
    gkd_sampler_free(plain);
    gkd_model_free(m);
    gkd_model_free(t);
}
END_TEST

START_TEST(test_bad_options) {
    gkd_model *m = make_model(8, 8, 1, 8, 2, 1, 0.0f);
    gkd_sampler *s = NULL;
    ck_assert_int_eq(gkd_sampler_new(&s, m, NULL, 2), 0);
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, 2, 8), 0);
    bt.tokens[0] = bt.tokens[8] = GKD_TOK_BOS;
    bt.prompt_len[0] = bt.prompt_len[1] = 1;
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.top_p = 0.0f;
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.0f, 1, NULL, NULL), GKD_EINVAL);
    o.top_p = 1.0f;
    o.temperature = -1.0f;
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.0f, 1, NULL, NULL), GKD_EINVAL);
    o.temperature = 1.0f;
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.5f, 1, NULL, NULL), GKD_EINVAL);
    bt.prompt_len[1] = 0;
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.0f, 1, NULL, NULL), GKD_EINVAL);
    bt.prompt_len[1] = 1;
    bt.tokens[8] = 99;
    ck_assert_int_eq(gkd_sampler_generate(s, &bt, &o, 0.0f, 1, NULL, NULL), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "token 99"));
    gkd_seqbatch_free(&bt);
    gkd_sampler_free(s);
    gkd_model_free(m);
}
END_TEST

/* Output regression: FNV-1a hashes of the sampled tokens, lengths and
 * importance weights of fixed seeded rollouts under every decoding rule,
 * computed once and hard-coded; every instruction set must give them (the
 * decoder's products are the same chains on each), so speed work on the
 * decoder or the sampler must keep every token. */
typedef struct {
    float temperature, top_p, alpha;
    int top_k, B;
    uint64_t hash;
} rollout_hash_case;

static const rollout_hash_case rollout_hash_cases[] = {
    {0.0f, 1.0f, 0.0f, 0, 16, 0xd25315a5078cacb9ULL},
    {1.0f, 1.0f, 0.0f, 0, 16, 0x7c8e89cd57c61b8bULL},
    {0.7f, 1.0f, 0.0f, 5, 3, 0x1492716eac2b71abULL},
    {1.3f, 0.8f, 0.0f, 0, 16, 0x83cc3ec71d85b16dULL},
    {0.9f, 0.9f, 0.0f, 7, 1, 0x2c721472165cfbfaULL},
    {1.0f, 1.0f, 0.3f, 0, 16, 0xc4eb5e9802dae49cULL},
    {0.8f, 0.95f, 0.5f, 6, 3, 0xefd386970a44610fULL},
};

static uint64_t rollout_hash(const rollout_hash_case *hc, int threads) {
    omp_set_num_threads(threads);
    const int V = 40, T = 40, B = hc->B;
    gkd_model *m = make_model(V, T, 2, 44, 4, 31, 0.15f);
    gkd_model *mix = make_model(V, T, 3, 32, 2, 32, 0.15f);
    gkd_seqbatch bt;
    ck_assert_int_eq(gkd_seqbatch_new(&bt, B, T), 0);
    int *plen = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) plen[b] = 3 + (b * 5) % 11;
    fill_prompts(&bt, plen, V, 9);
    gkd_sample_options o = GKD_SAMPLE_OPTIONS_INIT;
    o.temperature = hc->temperature;
    o.top_k = hc->top_k;
    o.top_p = hc->top_p;
    o.max_new_tokens = 24;
    float *iw = malloc(sizeof(float) * B * T);
    generate(m, hc->alpha > 0.0f ? mix : NULL, &bt, &o, hc->alpha, 5, NULL, iw);
    uint64_t h = TH_FNV_BASIS;
    h = th_fnv1a(h, bt.tokens, sizeof(int) * B * T);
    h = th_fnv1a(h, bt.len, sizeof(int) * B);
    h = th_fnv1a(h, bt.eos, (size_t)B);
    h = th_fnv1a(h, iw, sizeof(float) * B * T);
    free(plen);
    free(iw);
    gkd_seqbatch_free(&bt);
    gkd_model_free(m);
    gkd_model_free(mix);
    omp_set_num_threads(2);
    return h;
}

/* The hash with 1 and 2 threads, products on instruction set v. */
static void check_rollout_hash(const rollout_hash_case *hc, int i, int v) {
    if (!product_variant_begin(v)) return;
    uint64_t h1 = rollout_hash(hc, 1), h2 = rollout_hash(hc, 2);
    product_variant_end();
    const char *path = product_variant_name(v);
    if (getenv("GKD_PRINT_HASHES"))
        fprintf(stderr, "rollout hash case %d %s: 0x%016llxULL\n", i, path, (unsigned long long)h1);
    ck_assert_msg(h1 == h2, "case %d %s: 1 thread %016llx, 2 threads %016llx", i, path,
                  (unsigned long long)h1, (unsigned long long)h2);
    ck_assert_msg(h1 == hc->hash, "case %d %s: rollout hash %016llx, expected %016llx", i, path,
                  (unsigned long long)h1, (unsigned long long)hc->hash);
}

START_TEST(test_rollout_hashes) {
    /* Every instruction set; decoding does not use OpenBLAS (variant 3). */
    for (int v = 0; v < PRODUCT_VARIANTS; v++) check_rollout_hash(&rollout_hash_cases[_i], _i, v);
}
END_TEST

Suite *sampler_suite(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_greedy_is_argmax_of_forward);
    tcase_add_test(tc, test_top_k_1_equals_greedy);
    tcase_add_test(tc, test_rollout_independent_of_batch_and_threads);
    tcase_add_test(tc, test_filter_top_p_top_k_exact);
    tcase_add_test(tc, test_draw_frequencies_and_nucleus);
    tcase_add_test(tc, test_sampler_frequencies_match_softmax);
    tcase_add_test(tc, test_eos_stops_and_pad_follows);
    tcase_add_test(tc, test_stop_rules);
    tcase_add_test(tc, test_seqbatch_targets_hand_made);
    tcase_add_test(tc, test_teacher_mixed_sampling);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_mix_context_is_the_contextual_mix_model);
    tcase_add_test(tc, test_mix_context_greedy_is_contextual_argmax);
    tcase_add_test(tc, test_empty_mix_context_is_no_context);
    tcase_add_test(tc, test_bad_mix_context);
    tcase_add_loop_test(tc, test_rollout_hashes, 0,
                        (int)(sizeof rollout_hash_cases / sizeof rollout_hash_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}
