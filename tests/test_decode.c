/* KV-cache decoding against the full forward of the same model. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model/decode_rows.h"
#include "../src/kernels/gemm.h"
#include "gkd/products.h"
#include "gkd/error.h"
#include "gkd/model.h"
#include "gkd/rng.h"
#include "helpers.h"

#define SENTINEL 12345.0f

/* Non-trivial biases and LayerNorm gains so every parameter matters. */
static gkd_model *make_model(int V, int maxT, int L, int C, int NH, uint64_t seed) {
    return th_make_model(V, maxT, L, C, NH, seed, 0.05f, 99);
}

static void random_tokens(int *tok, int n, int V, uint64_t seed) {
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 1, 2);
    for (int i = 0; i < n; i++) tok[i] = (int)gkd_rng_below(&r, (uint32_t)V);
}

/* The rows of B prompts in one call, sequence after sequence: prompt b is
 * the first plen[b] tokens of tok + b T. Fills seq, pos and tk; returns
 * the row count. */
static int prompt_rows(const int *tok, int T, const int *plen, int B, int *seq, int *pos, int *tk) {
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < plen[b]; t++, n++) seq[n] = b, pos[n] = t, tk[n] = tok[b * T + t];
    return n;
}

/* Decode B sequences of lengths len[] token by token; compare every step's
 * logits with the full forward and check inactive rows stay untouched. */
static void check_incremental(int V, int maxT, int L, int C, int NH, const int *len, int B) {
    gkd_model *m = make_model(V, maxT, L, C, NH, 11);
    int T = maxT;
    int *tok = malloc(sizeof(int) * B * T);
    random_tokens(tok, B * T, V, 5);
    ck_assert_int_eq(gkd_model_forward(m, tok, B, T), 0);
    float *ref = malloc(sizeof(float) * B * T * V);
    memcpy(ref, m->logits, sizeof(float) * B * T * V);

    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    float *lg = malloc(sizeof(float) * B * V);
    int *step_tok = malloc(sizeof(int) * B), *pos = malloc(sizeof(int) * B);
    unsigned char *active = malloc(B);
    double maxdiff = 0.0;
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            active[b] = t < len[b];
            step_tok[b] = tok[b * T + t];
            pos[b] = t;
        }
        for (int i = 0; i < B * V; i++) lg[i] = SENTINEL;
        ck_assert_int_eq(gkd_model_decode_step(m, c, step_tok, pos, active, B, lg), 0);
        for (int b = 0; b < B; b++) {
            for (int v = 0; v < V; v++) {
                if (!active[b]) {
                    ck_assert_float_eq(lg[b * V + v], SENTINEL);
                    continue;
                }
                double d = fabs((double)lg[b * V + v] - ref[((size_t)b * T + t) * V + v]);
                if (d > maxdiff) maxdiff = d;
            }
        }
    }
    ck_assert_msg(maxdiff <= 1e-5, "max abs diff %g", maxdiff);
    free(lg); free(step_tok); free(pos); free(active); free(ref); free(tok);
    gkd_kv_cache_free(c);
    gkd_model_free(m);
}

START_TEST(test_incremental_equals_forward) {
    const int len[4] = {16, 9, 5, 12};
    check_incremental(32, 16, 2, 32, 4, len, 4);
}
END_TEST

/* C not a multiple of 8 exercises the tail of the dot products. */
START_TEST(test_incremental_odd_width) {
    const int len[3] = {7, 10, 3};
    check_incremental(19, 10, 3, 36, 3, len, 3);
}
END_TEST

/* A whole prompt in one call (rows of one sequence see each other) gives the
 * same logits as token by token, also past the first block of 16 cached
 * positions. */
START_TEST(test_prefill_rows_equal_steps) {
    const int V = 24, T = 20, B = 3;
    gkd_model *m = make_model(V, T, 2, 32, 2, 3);
    int tok[3 * 20];
    random_tokens(tok, B * T, V, 8);
    const int plen[3] = {20, 4, 17};
    gkd_kv_cache *c1 = NULL, *c2 = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c1, m, B), 0);
    ck_assert_int_eq(gkd_kv_cache_new(&c2, m, B), 0);
    int seq[60], pos[60], tk[60], out[60];
    const int n = prompt_rows(tok, T, plen, B, seq, pos, tk);
    for (int i = 0; i < n; i++) out[i] = seq[i] * T + pos[i];
    float *a = calloc((size_t)B * T * V, sizeof(float)), *s = calloc((size_t)B * T * V, sizeof(float));
    ck_assert_int_eq(gkd_decode_rows(m, c1, n, seq, pos, tk, out, a), 0);
    for (int t = 0; t < T; t++) {
        int sq[3], ps[3], tt[3], o[3], k = 0;
        for (int b = 0; b < B; b++)
            if (t < plen[b]) { sq[k] = b; ps[k] = t; tt[k] = tok[b * T + t]; o[k] = b * T + t; k++; }
        ck_assert_int_eq(gkd_decode_rows(m, c2, k, sq, ps, tt, o, s), 0);
    }
    ck_assert_int_eq(memcmp(a, s, sizeof(float) * B * T * V), 0);
    free(a); free(s);
    gkd_kv_cache_free(c1);
    gkd_kv_cache_free(c2);
    gkd_model_free(m);
}
END_TEST

/* A prefill that wants logits only for each prompt's last row skips the
 * rest of the last layer for the other rows: the last rows' logits, and
 * the next step's (which read every cached key and value), are the same
 * bits as when every row wants logits, with 1 and 2 threads. */
static void prefill_then_step(gkd_model *m, const int *tok, const int *plen, int B, int T,
                              int all_rows, float *last, float *next) {
    const int V = m->config.vocab_size;
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    int seq[64], pos[64], tk[64], out[64];
    float *lg = malloc(sizeof(float) * 64 * V);
    const int n = prompt_rows(tok, T, plen, B, seq, pos, tk);
    for (int i = 0; i < n; i++) out[i] = all_rows ? i : (pos[i] == plen[seq[i]] - 1 ? seq[i] : -1);
    ck_assert_int_eq(gkd_decode_rows(m, c, n, seq, pos, tk, out, lg), 0);
    for (int b = 0, r = 0; b < B; r += plen[b], b++)
        memcpy(last + (size_t)b * V, lg + (size_t)(all_rows ? r + plen[b] - 1 : b) * V, sizeof(float) * V);
    int st[8], ps[8];
    for (int b = 0; b < B; b++) st[b] = tok[b * T + plen[b]], ps[b] = plen[b];
    ck_assert_int_eq(gkd_model_decode_step(m, c, st, ps, NULL, B, next), 0);
    free(lg);
    gkd_kv_cache_free(c);
}

START_TEST(test_prefill_last_rows_only) {
    const int V = 23, T = 20, B = 3;
    gkd_model *m = make_model(V, T, 3, 40, 4, 6);
    int tok[3 * 20];
    random_tokens(tok, B * T, V, 12);
    const int plen[3] = {9, 17, 4};
    float all_last[3 * 23], all_next[3 * 23], last[3 * 23], next[3 * 23];
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        prefill_then_step(m, tok, plen, B, T, 1, all_last, all_next);
        prefill_then_step(m, tok, plen, B, T, 0, last, next);
        ck_assert_int_eq(memcmp(all_last, last, sizeof last), 0);
        ck_assert_int_eq(memcmp(all_next, next, sizeof next), 0);
    }
    omp_set_num_threads(2);
    gkd_model_free(m);
}
END_TEST

/* Bit-identical logits with 1 and 2 threads, and for a sequence alone or at
 * another batch position among others. */
static void decode_all(gkd_model *m, const int *tok, int B, int T, int threads, float *out) {
    omp_set_num_threads(threads);
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    int *st = malloc(sizeof(int) * B), *ps = malloc(sizeof(int) * B);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) { st[b] = tok[b * T + t]; ps[b] = t; }
        ck_assert_int_eq(gkd_model_decode_step(m, c, st, ps, NULL, B, out + (size_t)t * B * m->config.vocab_size), 0);
    }
    free(st); free(ps);
    gkd_kv_cache_free(c);
}

START_TEST(test_bit_identical_threads_and_batch) {
    const int V = 40, T = 10, B = 21;
    gkd_model *m = make_model(V, T, 2, 64, 4, 9);
    int *tok = malloc(sizeof(int) * B * T);
    random_tokens(tok, B * T, V, 4);
    float *a = malloc(sizeof(float) * T * B * V), *b2 = malloc(sizeof(float) * T * B * V);
    decode_all(m, tok, B, T, 1, a);
    decode_all(m, tok, B, T, 2, b2);
    ck_assert_int_eq(memcmp(a, b2, sizeof(float) * T * B * V), 0);
    /* Sequence 17 alone. */
    float *one = malloc(sizeof(float) * T * V);
    decode_all(m, tok + 17 * T, 1, T, 2, one);
    for (int t = 0; t < T; t++)
        ck_assert_int_eq(memcmp(one + t * V, a + ((size_t)t * B + 17) * V, sizeof(float) * V), 0);
    omp_set_num_threads(2);
    free(tok); free(a); free(b2); free(one);
    gkd_model_free(m);
}
END_TEST

/* Work shared among threads by measured speed: a prefill split 1:5 or
 * 5:1 between two threads by sequence (part speeds), or every stage of
 * every call split 1:20 or 20:1 (stage rates, set again before each call
 * so measurements cannot even them out), gives the same bits as an even
 * split and as one thread. */
static void decode_with_speeds(gkd_model *m, const int *tok, int B, int T, const double *speed,
                               const double *stage_rate, int threads, float *lg) {
    omp_set_num_threads(threads);
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    if (speed) gkd_kv_cache_set_part_speeds(c, 2, speed);
    if (stage_rate) gkd_kv_cache_set_stage_rates(c, 2, stage_rate);
    const int P = T / 2, V = m->config.vocab_size;
    int n = B * P, *seq = malloc(sizeof(int) * n), *pos = malloc(sizeof(int) * n),
        *tk = malloc(sizeof(int) * n), *out = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        seq[i] = i / P, pos[i] = i % P, tk[i] = tok[i / P * T + i % P];
        out[i] = i; /* every prompt row's logits */
    }
    ck_assert_int_eq(gkd_decode_rows(m, c, n, seq, pos, tk, out, lg), 0);
    for (int t = P; t < T; t++) {
        for (int b = 0; b < B; b++) tk[b] = tok[b * T + t], pos[b] = t;
        if (stage_rate) gkd_kv_cache_set_stage_rates(c, 2, stage_rate);
        ck_assert_int_eq(gkd_model_decode_step(m, c, tk, pos, NULL, B, lg + (size_t)(n + (t - P) * B) * V), 0);
    }
    free(seq), free(pos), free(tk), free(out);
    gkd_kv_cache_free(c);
    omp_set_num_threads(2);
}

/* Decodes B sequences of a (V, T, 2 layers, C, NH) model with two threads
 * and even shares, with one thread, and with shares skewed each way (as
 * prefill part speeds, or as stage rates when `stages`), and checks that
 * all give the same logits bits. */
static void check_skewed_splits(int V, int T, int B, int C, int NH, uint64_t seed,
                                uint64_t tok_seed, double skew, int stages) {
    gkd_model *m = make_model(V, T, 2, C, NH, seed);
    int *tok = malloc(sizeof(int) * B * T);
    random_tokens(tok, B * T, V, tok_seed);
    const size_t floats = (size_t)B * T * V;
    float *even = malloc(sizeof(float) * floats), *one = malloc(sizeof(float) * floats),
          *skewed = malloc(sizeof(float) * floats);
    const double slow_first[2] = {1.0, skew}, slow_second[2] = {skew, 1.0};
    decode_with_speeds(m, tok, B, T, NULL, NULL, 2, even);
    decode_with_speeds(m, tok, B, T, NULL, NULL, 1, one);
    ck_assert_int_eq(memcmp(even, one, sizeof(float) * floats), 0);
    for (int k = 0; k < 2; k++) {
        const double *speed = k ? slow_second : slow_first;
        decode_with_speeds(m, tok, B, T, stages ? NULL : speed, stages ? speed : NULL, 2, skewed);
        ck_assert_int_eq(memcmp(even, skewed, sizeof(float) * floats), 0);
    }
    free(tok), free(even), free(one), free(skewed);
    gkd_model_free(m);
}

START_TEST(test_split_by_speed_same_bits) { check_skewed_splits(31, 12, 6, 48, 4, 13, 5, 5.0, 0); }
END_TEST

/* Weights over SMALL_WEIGHTS and few rows per thread: the prefill and the
 * steps both run by stages. */
START_TEST(test_stages_by_speed_same_bits) { check_skewed_splits(29, 12, 8, 256, 8, 17, 6, 20.0, 1); }
END_TEST

/* A prefill whose rows interleave sequences (which the decoder cannot split
 * among threads by sequence) gives the same logits as the grouped order,
 * and so do prefills split at the sequence boundaries (two threads). */
static void prefill(gkd_model *m, const int *tok, int B, int T, int interleave, float *lg) {
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    int n = B * T, *seq = malloc(sizeof(int) * n), *pos = malloc(sizeof(int) * n),
        *tk = malloc(sizeof(int) * n), *out = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        int b = interleave ? i % B : i / T, t = interleave ? i / B : i % T;
        seq[i] = b, pos[i] = t, tk[i] = tok[b * T + t];
        out[i] = b * T + t; /* every row's logits, in (b, t) order */
    }
    ck_assert_int_eq(gkd_decode_rows(m, c, n, seq, pos, tk, out, lg), 0);
    free(seq), free(pos), free(tk), free(out);
    gkd_kv_cache_free(c);
}

START_TEST(test_prefill_row_order) {
    const int V = 30, T = 24, B = 6;
    omp_set_num_threads(2);
    gkd_model *m = make_model(V, T, 2, 64, 4, 13);
    int *tok = malloc(sizeof(int) * B * T);
    random_tokens(tok, B * T, V, 8);
    float *grouped = malloc(sizeof(float) * B * T * V), *mixed = malloc(sizeof(float) * B * T * V);
    prefill(m, tok, B, T, 0, grouped);
    prefill(m, tok, B, T, 1, mixed);
    ck_assert_int_eq(memcmp(grouped, mixed, sizeof(float) * B * T * V), 0);
    omp_set_num_threads(1);
    prefill(m, tok, B, T, 0, mixed);
    ck_assert_int_eq(memcmp(grouped, mixed, sizeof(float) * B * T * V), 0);
    omp_set_num_threads(2);
    free(tok), free(grouped), free(mixed);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_bad_arguments) {
    gkd_model *m = make_model(8, 4, 1, 8, 2, 1);
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, 0), GKD_EINVAL);
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, 2), 0);
    float lg[16];
    int tok[2] = {1, 2}, pos[2] = {0, 4};
    ck_assert_int_eq(gkd_model_decode_step(m, c, tok, pos, NULL, 2, lg), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "position 4"));
    pos[1] = 0;
    tok[0] = 8;
    ck_assert_int_eq(gkd_model_decode_step(m, c, tok, pos, NULL, 2, lg), GKD_EINVAL);
    ck_assert_int_eq(gkd_model_decode_step(m, c, tok, pos, NULL, 3, lg), GKD_EINVAL);
    gkd_kv_cache_free(c);
    gkd_model_free(m);
}
END_TEST

/* Output regression: FNV-1a hashes of every logit bit produced while
 * decoding fixed seeded models, computed once and hard-coded. The products
 * are decode_matmul.c's fused multiply-add chains, whose bits do not
 * depend on the instruction set, so every one this CPU has must give them.
 * Speed work on the decoder must keep every bit; a changed hash means a
 * changed summation order or contraction. */
/* Prefill prompts of different lengths in one call, then greedy steps with
 * sequences dropping out (active mask); hash all logits returned. */
static uint64_t decode_hash(int V, int maxT, int L, int C, int NH, int B, int threads) {
    omp_set_num_threads(threads);
    gkd_model *m = make_model(V, maxT, L, C, NH, 21);
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    int *tok = malloc(sizeof(int) * B * maxT);
    random_tokens(tok, B * maxT, V, 17);
    int *plen = malloc(sizeof(int) * B), *stop = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) {
        plen[b] = 1 + (b * 7 + 3) % (maxT / 2);
        stop[b] = maxT - (b * 5) % (maxT / 3);
    }
    int nmax = B * maxT;
    int *seq = malloc(sizeof(int) * nmax), *pos = malloc(sizeof(int) * nmax),
        *tk = malloc(sizeof(int) * nmax), *out = malloc(sizeof(int) * nmax);
    float *lg = malloc(sizeof(float) * B * V);
    const int n = prompt_rows(tok, maxT, plen, B, seq, pos, tk);
    for (int i = 0; i < n; i++) out[i] = pos[i] == plen[seq[i]] - 1 ? seq[i] : -1;
    uint64_t h = TH_FNV_BASIS;
    ck_assert_int_eq(gkd_decode_rows(m, c, n, seq, pos, tk, out, lg), 0);
    h = th_fnv1a(h, lg, sizeof(float) * B * V);
    int *len = malloc(sizeof(int) * B), *next = malloc(sizeof(int) * B);
    unsigned char *active = malloc(B);
    for (int b = 0; b < B; b++) len[b] = plen[b];
    for (;;) {
        int any = 0;
        for (int b = 0; b < B; b++) {
            active[b] = len[b] < stop[b];
            if (!active[b]) continue;
            any = 1;
            /* Mix the model's argmax with data tokens so logits vary. */
            int y = 0;
            for (int v = 1; v < V; v++)
                if (lg[b * V + v] > lg[b * V + y]) y = v;
            next[b] = (len[b] % 3 == 0) ? tok[b * maxT + len[b]] : y;
            pos[b] = len[b];
            len[b]++;
        }
        if (!any) break;
        ck_assert_int_eq(gkd_model_decode_step(m, c, next, pos, active, B, lg), 0);
        for (int b = 0; b < B; b++)
            if (active[b]) h = th_fnv1a(h, lg + (size_t)b * V, sizeof(float) * V);
    }
    free(tok); free(plen); free(stop); free(seq); free(pos); free(tk); free(out);
    free(lg); free(len); free(next); free(active);
    gkd_kv_cache_free(c);
    gkd_model_free(m);
    omp_set_num_threads(2);
    return h;
}

typedef struct {
    int V, maxT, L, C, NH, B;
    uint64_t hash;
} hash_case;

static const hash_case hash_cases[] = {
    /* tiny benchmark shape (shorter context) */
    {64, 24, 4, 128, 4, 16, 0xb8f6669e5a4fd55eULL},
    /* C not a multiple of 8, hs = 12 */
    {19, 16, 3, 36, 3, 3, 0x2e527faf2a9f84e6ULL},
    /* B = 1, hs = 10 */
    {37, 20, 2, 20, 2, 1, 0xf68190530df57644ULL},
    /* hs = 40: 32-wide and 8-wide attention paths */
    {50, 18, 2, 80, 2, 3, 0x7c5447b07eafa433ULL},
    /* small benchmark width, V = 256 */
    {256, 20, 2, 256, 8, 16, 0x5a4a80a717a53d1fULL},
    /* odd everything, B = 16, hs = 13 */
    {29, 14, 2, 52, 4, 16, 0x94ff42eba8e2f89eULL},
};

/* Hashes with 1 and 2 threads, products on instruction set isa. */
static void check_hashes(const hash_case *hc, int i, gkd_isa isa) {
    const gkd_isa before = gkd_isa_active();
    ck_assert_int_eq(gkd_isa_set(isa), 0);
    uint64_t h1 = decode_hash(hc->V, hc->maxT, hc->L, hc->C, hc->NH, hc->B, 1);
    uint64_t h2 = decode_hash(hc->V, hc->maxT, hc->L, hc->C, hc->NH, hc->B, 2);
    gkd_isa_set(before);
    const char *name = gkd_isa_name(isa);
    if (getenv("GKD_PRINT_HASHES"))
        fprintf(stderr, "hash case %d %s: 0x%016llxULL\n", i, name, (unsigned long long)h1);
    ck_assert_msg(h1 == h2, "case %d %s: 1 thread %016llx, 2 threads %016llx", i, name,
                  (unsigned long long)h1, (unsigned long long)h2);
    ck_assert_msg(h1 == hc->hash, "case %d %s: logits hash %016llx, expected %016llx", i, name,
                  (unsigned long long)h1, (unsigned long long)hc->hash);
}

START_TEST(test_output_hashes) {
    for (int isa = GKD_ISA_GENERIC; isa <= (int)gkd_isa_best(); isa++)
        check_hashes(&hash_cases[_i], _i, (gkd_isa)isa);
}
END_TEST

Suite *decode_suite(void) {
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_incremental_equals_forward);
    tcase_add_test(tc, test_incremental_odd_width);
    tcase_add_test(tc, test_prefill_rows_equal_steps);
    tcase_add_test(tc, test_prefill_last_rows_only);
    tcase_add_test(tc, test_bit_identical_threads_and_batch);
    tcase_add_test(tc, test_prefill_row_order);
    tcase_add_test(tc, test_split_by_speed_same_bits);
    tcase_add_test(tc, test_stages_by_speed_same_bits);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_loop_test(tc, test_output_hashes, 0,
                        (int)(sizeof hash_cases / sizeof hash_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}
