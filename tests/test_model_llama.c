/* The Llama descriptor: forward, backward and AdamW against the PyTorch
 * fixtures of tools/ref_llama.py (both RoPE conventions, grouped-query
 * attention, tied and untied heads), KV-cache decoding against the full
 * forward, thread determinism, checkpoints of version 3, and the config
 * rules. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model/decode_rows.h"
#include "product_variants.h"
#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/layers.h"
#include "gkd/model.h"
#include "gkd/optim.h"
#include "gkd/rng.h"
#include "helpers.h"

/* ||a - b|| / ||b|| per tensor, as tests/test_model.c: float32 against a
 * float64 reference, measured below 1e-6 on logits and gradients. */
#define GRAD_TOL 1e-5
#define REL_TOL 1e-4

typedef struct {
    gkd_model_config cfg;
    int B, T, num_params, n_steps;
    float lr, beta1, beta2, eps_adam, wd, clip;
    float *params0, *mask, *logits, *grads, *after, *norms, *after_c;
    float loss;
    int *tokens, *targets;
} fixture;

static void load_fixture(fixture *fx, const char *name) {
    memset(fx, 0, sizeof(*fx));
    const char *path = th_fixture_path(".", name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char magic[8];
    int32_t h[14];
    float hf[8];
    ck_assert(fread(magic, 1, 8, f) == 8 && memcmp(magic, "GKDLREF1", 8) == 0);
    ck_assert(fread(h, sizeof(int32_t), 14, f) == 14 && h[0] == 1);
    ck_assert(fread(hf, sizeof(float), 8, f) == 8);
    fx->cfg = (gkd_model_config){.vocab_size = h[1], .max_seq_len = h[2], .n_layer = h[3],
                                 .n_embd = h[4], .n_head = h[5], .arch = GKD_ARCH_LLAMA,
                                 .n_kv_head = h[6], .ffn_dim = h[7], .untied_head = !h[8],
                                 .rope_style = h[9], .norm_eps = hf[0], .rope_theta = hf[1]};
    fx->B = h[10], fx->T = h[11], fx->num_params = h[12], fx->n_steps = h[13];
    fx->lr = hf[2], fx->beta1 = hf[3], fx->beta2 = hf[4], fx->eps_adam = hf[5], fx->wd = hf[6];
    fx->clip = hf[7];
    size_t P = fx->num_params, BT = (size_t)fx->B * fx->T, V = fx->cfg.vocab_size;
    ck_assert(th_read_floats(f, &fx->params0, P));
    fx->tokens = malloc(BT * sizeof(int));
    fx->targets = malloc(BT * sizeof(int));
    ck_assert(fread(fx->tokens, sizeof(int), BT, f) == BT);
    ck_assert(fread(fx->targets, sizeof(int), BT, f) == BT);
    ck_assert(th_read_floats(f, &fx->mask, BT));
    ck_assert(th_read_floats(f, &fx->logits, BT * V));
    ck_assert(fread(&fx->loss, sizeof(float), 1, f) == 1);
    ck_assert(th_read_floats(f, &fx->grads, P));
    ck_assert(th_read_floats(f, &fx->after, P));
    ck_assert(th_read_floats(f, &fx->norms, fx->n_steps));
    ck_assert(th_read_floats(f, &fx->after_c, P));
    char extra;
    ck_assert_msg(fread(&extra, 1, 1, f) == 0, "fixture has trailing bytes");
    fclose(f);
}

static void free_fixture(fixture *fx) {
    free(fx->params0), free(fx->mask), free(fx->logits), free(fx->grads);
    free(fx->after), free(fx->norms), free(fx->after_c), free(fx->tokens), free(fx->targets);
}

static gkd_model *fixture_model(const fixture *fx) {
    gkd_model *m = NULL;
    ck_assert_msg(gkd_model_new(&m, &fx->cfg) == 0, "%s", gkd_last_error());
    ck_assert_uint_eq(m->num_params, (size_t)fx->num_params);
    ck_assert_uint_eq(gkd_config_num_params(&fx->cfg), (size_t)fx->num_params);
    memcpy(m->params_memory, fx->params0, m->num_params * sizeof(float));
    return m;
}

static double loss_and_grad(gkd_model *m, const fixture *fx, float *dlogits, float *losses) {
    ck_assert_int_eq(gkd_model_forward(m, fx->tokens, fx->B, fx->T), 0);
    double loss = gkd_crossentropy_forward_backward(dlogits, losses, m->logits, fx->targets,
                                                    fx->mask, fx->B * fx->T, fx->cfg.vocab_size);
    gkd_model_zero_grad(m);
    ck_assert_int_eq(gkd_model_backward(m, dlogits), 0);
    return loss;
}

static const char *const fixtures[2] = {"llama_ref_interleaved.bin", "llama_ref_half.bin"};

/* _i: the fixture (interleaved RoPE, GQA, untied; half RoPE, tied). */
START_TEST(test_forward_backward_vs_pytorch) {
    fixture fx;
    load_fixture(&fx, fixtures[_i]);
    gkd_model *m = fixture_model(&fx);
    size_t BT = (size_t)fx.B * fx.T, V = fx.cfg.vocab_size;
    float *dlogits = malloc(BT * V * sizeof(float)), *losses = malloc(BT * sizeof(float));
    double loss = loss_and_grad(m, &fx, dlogits, losses);
    double e = th_rel_err(m->logits, fx.logits, BT * V);
    ck_assert_msg(e <= GRAD_TOL, "%s: logits rel err %g", fixtures[_i], e);
    ck_assert_msg(fabs(loss - fx.loss) <= GRAD_TOL * fabs(fx.loss), "loss %.7f vs %.7f", loss, fx.loss);
    size_t off = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        size_t n = m->param_sizes[i];
        if (!n) continue;
        e = th_rel_err(m->grads_memory + off, fx.grads + off, n);
        ck_assert_msg(e <= GRAD_TOL, "%s: grad %s rel err %g", fixtures[_i], gkd_model_tensor_name(m, i), e);
        off += n;
    }
    ck_assert_uint_eq(off, m->num_params);
    free(dlogits), free(losses);
    gkd_model_free(m);
    free_fixture(&fx);
}
END_TEST

/* Three AdamW steps, with and without clipping, against PyTorch: the
 * descriptor's decay mask (weights and embeddings, not the norms). */
static void check_adamw(int which, int clip) {
    fixture fx;
    load_fixture(&fx, fixtures[which]);
    gkd_model *m = fixture_model(&fx);
    size_t BT = (size_t)fx.B * fx.T, V = fx.cfg.vocab_size;
    float *dlogits = malloc(BT * V * sizeof(float)), *losses = malloc(BT * sizeof(float));
    gkd_adamw_config cfg = {fx.beta1, fx.beta2, fx.eps_adam, fx.wd};
    gkd_adamw *o = NULL;
    ck_assert_int_eq(gkd_adamw_new(&o, m, &cfg), 0);
    for (int s = 0; s < fx.n_steps; s++) {
        loss_and_grad(m, &fx, dlogits, losses);
        if (clip) {
            double norm = gkd_clip_grad_norm(m->grads_memory, m->num_params, fx.clip);
            ck_assert_msg(fabs(norm - fx.norms[s]) <= REL_TOL * fx.norms[s], "step %d norm %g vs %g", s,
                          norm, fx.norms[s]);
        }
        ck_assert_int_eq(gkd_adamw_step(o, m->params_memory, m->grads_memory, m->num_params, fx.lr), 0);
    }
    const float *want = clip ? fx.after_c : fx.after;
    size_t off = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        size_t n = m->param_sizes[i];
        double e = th_rel_err(m->params_memory + off, want + off, n);
        ck_assert_msg(e <= REL_TOL, "%s: %s after %d steps (clip %d) rel err %g", fixtures[which],
                      gkd_model_tensor_name(m, i), fx.n_steps, clip, e);
        double num = 0, den = 0;
        for (size_t j = off; j < off + n; j++) {
            double du = (double)m->params_memory[j] - want[j], dw = (double)want[j] - fx.params0[j];
            num += du * du;
            den += dw * dw;
        }
        ck_assert_msg(n == 0 || (den > 0 && sqrt(num / den) <= 1e-3), "%s update rel err %g",
                      gkd_model_tensor_name(m, i), sqrt(num / den));
        off += n;
    }
    gkd_adamw_free(o);
    free(dlogits), free(losses);
    gkd_model_free(m);
    free_fixture(&fx);
}

START_TEST(test_adamw_vs_pytorch) { check_adamw(_i, 0); }
END_TEST

START_TEST(test_adamw_clipped_vs_pytorch) { check_adamw(_i, 1); }
END_TEST

static gkd_model_config llama_config(int V, int maxT, int L, int C, int NH, int NKV, int F, int untied,
                                     int style) {
    return (gkd_model_config){.vocab_size = V, .max_seq_len = maxT, .n_layer = L, .n_embd = C,
                              .n_head = NH, .arch = GKD_ARCH_LLAMA, .n_kv_head = NKV, .ffn_dim = F,
                              .untied_head = untied, .rope_style = style, .norm_eps = 1e-5f,
                              .rope_theta = 10000.0f};
}

/* Shapes for the decoder: head sizes that take its vector paths (16, 32)
 * and its scalar ones (6, 10), grouped and multi-query attention. */
static const struct {
    int C, NH, NKV, F, untied, style;
} decode_shapes[] = {
    {64, 4, 2, 96, 1, GKD_ROPE_INTERLEAVED}, /* hs 16, groups of 2 */
    {64, 2, 2, 80, 0, GKD_ROPE_HALF},        /* hs 32, no grouping: the wide weighted sums */
    {24, 4, 1, 40, 0, GKD_ROPE_INTERLEAVED}, /* hs 6, one key/value head */
    {40, 4, 4, 64, 1, GKD_ROPE_HALF},        /* hs 10 */
};

/* Every step's logits of token-by-token decoding against the full forward,
 * then the same sequences as one prefill call of several rows each. */
START_TEST(test_decode_matches_forward) {
    const int V = 37, maxT = 21, L = 2, B = 3, T = maxT;
    gkd_model_config cfg = llama_config(V, maxT, L, decode_shapes[_i].C, decode_shapes[_i].NH,
                                        decode_shapes[_i].NKV, decode_shapes[_i].F,
                                        decode_shapes[_i].untied, decode_shapes[_i].style);
    gkd_model *m = th_make_model_cfg(&cfg, 3, 0.05f, 17);
    int *tok = malloc(sizeof(int) * B * T);
    gkd_rng r = gkd_rng_derive(9, GKD_RNG_DATA, 1, 2);
    for (int i = 0; i < B * T; i++) tok[i] = (int)gkd_rng_below(&r, (uint32_t)V);
    ck_assert_int_eq(gkd_model_forward(m, tok, B, T), 0);
    float *ref = malloc(sizeof(float) * B * T * V);
    memcpy(ref, m->logits, sizeof(float) * B * T * V);
    gkd_kv_cache *c = NULL;
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    float *lg = malloc(sizeof(float) * B * V);
    int step_tok[3], pos[3];
    double maxdiff = 0.0;
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) step_tok[b] = tok[b * T + t], pos[b] = t;
        ck_assert_int_eq(gkd_model_decode_step(m, c, step_tok, pos, NULL, B, lg), 0);
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) {
                double d = fabs((double)lg[b * V + v] - ref[((size_t)b * T + t) * V + v]);
                maxdiff = d > maxdiff ? d : maxdiff;
            }
    }
    ck_assert_msg(maxdiff <= 1e-5, "shape %d: step by step, max abs diff %g", _i, maxdiff);
    /* Prompts of T, 7 and 1 tokens in one prefill call (the sampler's
     * first call), on a fresh cache: every row's logits. */
    gkd_kv_cache_free(c);
    ck_assert_int_eq(gkd_kv_cache_new(&c, m, B), 0);
    const int plen[3] = {T, 7, 1};
    int seq[3 * 21], ps[3 * 21], tk[3 * 21], out[3 * 21], n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < plen[b]; t++, n++) seq[n] = b, ps[n] = t, tk[n] = tok[b * T + t], out[n] = n;
    float *all = malloc(sizeof(float) * n * V);
    ck_assert_int_eq(gkd_decode_rows(m, c, n, seq, ps, tk, out, all), 0);
    maxdiff = 0.0;
    for (int k = 0; k < n; k++)
        for (int v = 0; v < V; v++) {
            double d = fabs((double)all[(size_t)k * V + v] - ref[((size_t)seq[k] * T + ps[k]) * V + v]);
            maxdiff = d > maxdiff ? d : maxdiff;
        }
    ck_assert_msg(maxdiff <= 1e-5, "shape %d: prefill, max abs diff %g", _i, maxdiff);
    free(all);
    gkd_kv_cache_free(c);
    free(lg);
    free(ref);
    free(tok);
    gkd_model_free(m);
}
END_TEST

/* The same bits with one thread and with two, forward and backward. */
START_TEST(test_thread_count_independent) {
    gkd_model_config cfg = llama_config(50, 32, 2, 64, 4, 2, 96, 1, GKD_ROPE_HALF);
    gkd_model *m = th_make_model_cfg(&cfg, 5, 0.05f, 3);
    const int B = 4, T = 32, V = 50;
    int *tok = malloc(sizeof(int) * B * T);
    gkd_rng r = gkd_rng_derive(2, GKD_RNG_DATA, 0, 0);
    for (int i = 0; i < B * T; i++) tok[i] = (int)gkd_rng_below(&r, (uint32_t)V);
    float *dl = malloc(sizeof(float) * B * T * V);
    for (int i = 0; i < B * T * V; i++) dl[i] = (float)gkd_rng_normal(&r) * 1e-2f;
    uint64_t h[2];
    const int saved = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        ck_assert_int_eq(gkd_model_forward(m, tok, B, T), 0);
        gkd_model_zero_grad(m);
        ck_assert_int_eq(gkd_model_backward(m, dl), 0);
        h[k] = th_fnv1a(th_fnv1a(TH_FNV_BASIS, m->logits, sizeof(float) * B * T * V), m->grads_memory,
                        sizeof(float) * m->num_params);
    }
    omp_set_num_threads(saved);
    ck_assert_uint_eq(h[0], h[1]);
    free(dl);
    free(tok);
    gkd_model_free(m);
}
END_TEST

/* The head a row chunk at a time has the bits of the whole forward's, tied
 * (_i even) and untied (_i odd) head, on each instruction set of gkd's
 * products (variant _i / 2; product_variants.h). */
START_TEST(test_logits_rows_match_forward) {
    if (!product_variant_begin(_i / 2)) return;
    gkd_model_config cfg = llama_config(37, 16, 2, 32, 4, 2, 48, _i % 2, GKD_ROPE_HALF);
    th_check_logits_rows(&cfg, 13, 3, 13);
    product_variant_end();
}
END_TEST

/* A Llama model saves as version 3 and loads back with its architecture;
 * a file loaded into a model of another architecture is refused. */
START_TEST(test_checkpoint_version3_round_trip) {
    char dir[256], path[300];
    th_make_tmpdir(dir, sizeof dir, "gkd-llama-ckpt");
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    gkd_model_config cfg = llama_config(30, 16, 2, 32, 4, 2, 48, 1, GKD_ROPE_HALF);
    cfg.norm_eps = 1e-6f;
    cfg.rope_theta = 500000.0f;
    gkd_model *m = th_make_model_cfg(&cfg, 4, 0.0f, 0);
    gkd_checkpoint c = {.model = m};
    ck_assert_int_eq(gkd_checkpoint_save(path, &c), 0);
    size_t n;
    unsigned char *b = th_read_bytes(path, &n);
    ck_assert_uint_eq(b[8], 3);
    free(b);
    gkd_checkpoint_data d;
    ck_assert_msg(gkd_checkpoint_load(&d, path, NULL) == 0, "%s", gkd_last_error());
    ck_assert(gkd_config_equal(&d.model->config, &cfg));
    ck_assert_uint_eq(d.version, 3);
    ck_assert_int_eq(memcmp(d.model->params_memory, m->params_memory, m->num_params * sizeof(float)), 0);
    ck_assert_ptr_nonnull(gkd_model_tensor(d.model, "lm_head", NULL));
    gkd_checkpoint_data_free(&d);
    gkd_model *gpt2 = th_make_model(30, 16, 2, 32, 4, 1, 0.0f, 0);
    ck_assert_int_eq(gkd_checkpoint_load(&d, path, gpt2), GKD_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "arch=llama"));
    gkd_model_free(gpt2);
    gkd_model_free(m);
    th_remove_tmpdir(dir);
}
END_TEST

/* The tensor table: sizes from the config, the head present only when
 * untied, the RoPE tables, and GPT-2's init draws for Llama's rules. */
START_TEST(test_descriptor_tensors) {
    gkd_model_config cfg = llama_config(30, 16, 3, 32, 4, 2, 48, 0, GKD_ROPE_INTERLEAVED);
    gkd_model *m = th_make_model_cfg(&cfg, 1, 0.0f, 0);
    const size_t V = 30, L = 3, C = 32, KV = 16, F = 48;
    ck_assert_uint_eq(m->num_params, V * C + L * (C * (C + 2 * KV) + C * C + 3 * C * F + 2 * C) + C);
    size_t n;
    ck_assert_ptr_null(gkd_model_tensor(m, "lm_head", &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(gkd_model_tensor(m, "wqkv", &n));
    ck_assert_uint_eq(n, L * (C + 2 * KV) * C);
    ck_assert_ptr_null(gkd_model_tensor(m, "wpe", NULL));
    const float *ffn_norm = gkd_model_tensor(m, "ffn_norm", &n);
    for (size_t i = 0; i < n; i++) ck_assert_float_eq(ffn_norm[i], 1.0f);
    /* position 1, pair 0 of a head of 8: angle 1 */
    ck_assert_float_eq_tol(m->rope_cos[4], cosf(1.0f), 1e-7f);
    ck_assert_float_eq_tol(m->rope_sin[4], sinf(1.0f), 1e-7f);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_config_rules) {
    struct {
        gkd_model_config cfg;
        const char *error;
    } bad[] = {
        {llama_config(30, 16, 2, 32, 4, 3, 48, 0, 0), "n_kv_head 3 must divide n_head 4"},
        {llama_config(30, 16, 2, 36, 4, 2, 48, 0, 0), "head size 9 must be even"},
        {llama_config(30, 16, 2, 32, 4, 2, 0, 0, 0), "ffn_dim 0 out of range"},
        {llama_config(30, 16, 2, 32, 4, 2, 48, 0, 2), "rope_style 2 is not known"},
        {llama_config(30, 16, 2, 32, 4, 2, 48, 2, 0), "untied_head 2 must be 0 or 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(gkd_model_config_validate(&bad[i].cfg), GKD_EINVAL);
        ck_assert_msg(strstr(gkd_last_error(), bad[i].error), "%s", gkd_last_error());
    }
    gkd_model_config eps = llama_config(30, 16, 2, 32, 4, 2, 48, 0, 0);
    eps.norm_eps = 0.0f;
    ck_assert_int_eq(gkd_model_config_validate(&eps), GKD_EINVAL);
    gkd_model_config gpt2 = {.vocab_size = 30, .max_seq_len = 16, .n_layer = 2, .n_embd = 32,
                             .n_head = 4, .ffn_dim = 64};
    ck_assert_int_eq(gkd_model_config_validate(&gpt2), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "a gpt2 config sets no"));
    gkd_model_config unknown = gpt2;
    unknown.ffn_dim = 0;
    unknown.arch = 7;
    ck_assert_int_eq(gkd_model_config_validate(&unknown), GKD_EINVAL);
    ck_assert_int_eq(gkd_arch_from_name("llama"), GKD_ARCH_LLAMA);
    ck_assert_int_eq(gkd_arch_from_name("gpt2"), GKD_ARCH_GPT2);
    ck_assert_int_eq(gkd_arch_from_name("mamba"), -1);
}
END_TEST

Suite *model_llama_suite(void) {
    Suite *s = suite_create("model_llama");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_forward_backward_vs_pytorch, 0, 2);
    tcase_add_loop_test(tc, test_adamw_vs_pytorch, 0, 2);
    tcase_add_loop_test(tc, test_adamw_clipped_vs_pytorch, 0, 2);
    tcase_add_loop_test(tc, test_decode_matches_forward, 0,
                        (int)(sizeof decode_shapes / sizeof decode_shapes[0]));
    tcase_add_test(tc, test_thread_count_independent);
    tcase_add_loop_test(tc, test_logits_rows_match_forward, 0, 2 * (PRODUCT_VARIANTS - 1));
    tcase_add_test(tc, test_checkpoint_version3_round_trip);
    tcase_add_test(tc, test_descriptor_tensors);
    tcase_add_test(tc, test_config_rules);
    suite_add_tcase(s, tc);
    return s;
}
