/* AdamW against a hand-computed step, gradient clipping, LR schedule. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/model.h"
#include "gkd/optim.h"

static gkd_model *tiny_model(void) {
    gkd_model_config cfg = {.vocab_size = 3, .max_seq_len = 2, .n_layer = 1, .n_embd = 4, .n_head = 2};
    gkd_model *m = NULL;
    ck_assert_int_eq(gkd_model_new(&m, &cfg), 0);
    return m;
}

/* Textbook AdamW (Loshchilov & Hutter, bias-corrected) in double. */
static double adamw_ref(double p, const double *g, int steps, double lr, double b1, double b2,
                        double eps, double wd) {
    double m = 0, v = 0;
    for (int t = 1; t <= steps; t++) {
        p -= lr * wd * p;
        m = b1 * m + (1 - b1) * g[t - 1];
        v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
        double mhat = m / (1 - pow(b1, t)), vhat = v / (1 - pow(b2, t));
        p -= lr * mhat / (sqrt(vhat) + eps);
    }
    return p;
}

START_TEST(test_adamw_hand_computed) {
    gkd_model *m = tiny_model();
    gkd_adamw_config cfg = {0.9f, 0.99f, 1e-8f, 0.1f};
    gkd_adamw *o = NULL;
    ck_assert_int_eq(gkd_adamw_new(&o, m, &cfg), 0);
    ck_assert_uint_eq(o->num_params, m->num_params);
    const double g[3] = {0.2, -0.1, 0.05};
    float *wte = m->params[GKD_GPT2_WTE], *ln1b = m->params[GKD_GPT2_LN1B], *fcb = m->params[GKD_GPT2_FCB];
    wte[0] = 0.5f, ln1b[1] = 0.5f, fcb[2] = -0.25f;
    size_t i_wte = 0, i_ln = (size_t)(ln1b + 1 - m->params_memory);
    size_t i_fcb = (size_t)(fcb + 2 - m->params_memory);
    for (int t = 0; t < 3; t++) {
        gkd_model_zero_grad(m);
        m->grads_memory[i_wte] = (float)g[t];
        m->grads_memory[i_ln] = (float)g[t];
        m->grads_memory[i_fcb] = (float)-g[t];
        ck_assert_int_eq(gkd_adamw_step(o, m->params_memory, m->grads_memory, m->num_params, 0.1f), 0);
    }
    ck_assert_int_eq(o->t, 3);
    double neg[3] = {-g[0], -g[1], -g[2]};
    /* wte is decayed; LayerNorm and bias parameters are not */
    ck_assert_double_eq_tol(m->params_memory[i_wte], adamw_ref(0.5, g, 3, 0.1, 0.9, 0.99, 1e-8, 0.1), 1e-6);
    ck_assert_double_eq_tol(m->params_memory[i_ln], adamw_ref(0.5, g, 3, 0.1, 0.9, 0.99, 1e-8, 0.0), 1e-6);
    ck_assert_double_eq_tol(m->params_memory[i_fcb], adamw_ref(-0.25, neg, 3, 0.1, 0.9, 0.99, 1e-8, 0.0), 1e-6);
    /* a zero bias with zero gradient stays put */
    ck_assert_float_eq(m->params[GKD_GPT2_QKVB][0], 0.0f);
    /* the mask is the descriptor's: weight matrices and embeddings */
    ck_assert_uint_eq(o->segment_decay[GKD_GPT2_FCPROJW], 1);
    ck_assert_uint_eq(o->segment_decay[GKD_GPT2_WPE], 1);
    ck_assert_uint_eq(o->segment_decay[GKD_GPT2_LNFW], 0);
    ck_assert_uint_eq(o->segment_decay[GKD_GPT2_ATTPROJB], 0);
    ck_assert_int_eq(o->num_segments, 16);
    /* a decayed weight with zero gradient shrinks by (1 - lr wd) per step */
    gkd_adamw_free(o);
    o = NULL;
    ck_assert_int_eq(gkd_adamw_new(&o, m, &cfg), 0);
    gkd_model_zero_grad(m);
    m->params[GKD_GPT2_FCW][1] = 2.0f;
    ck_assert_int_eq(gkd_adamw_step(o, m->params_memory, m->grads_memory, m->num_params, 0.1f), 0);
    ck_assert_float_eq_tol(m->params[GKD_GPT2_FCW][1], 2.0f * (1 - 0.1f * 0.1f), 1e-7f);
    ck_assert_int_eq(gkd_adamw_step(o, m->params_memory, m->grads_memory, 5, 0.1f), GKD_EMISMATCH);
    gkd_adamw_free(o);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_adamw_bad_config) {
    gkd_model *m = tiny_model();
    gkd_adamw *o = NULL;
    gkd_adamw_config bad = {1.0f, 0.99f, 1e-8f, 0.0f};
    ck_assert_int_eq(gkd_adamw_new(&o, m, &bad), GKD_EINVAL);
    ck_assert_ptr_null(o);
    gkd_adamw_config bad_eps = {0.9f, 0.99f, 0.0f, 0.0f};
    ck_assert_int_eq(gkd_adamw_new(&o, m, &bad_eps), GKD_EINVAL);
    gkd_model_free(m);
}
END_TEST

START_TEST(test_clip_grad_norm) {
    float g[4] = {3, 0, 4, 0};
    ck_assert_double_eq_tol(gkd_clip_grad_norm(g, 4, 10.0), 5.0, 1e-12);
    ck_assert_float_eq(g[0], 3.0f); /* below the limit: untouched */
    ck_assert_double_eq_tol(gkd_clip_grad_norm(g, 4, 0.0), 5.0, 1e-12);
    ck_assert_float_eq(g[2], 4.0f); /* max_norm 0: no clipping */
    ck_assert_double_eq_tol(gkd_clip_grad_norm(g, 4, 1.0), 5.0, 1e-12);
    ck_assert_float_eq_tol(g[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(g[2], 0.8f, 1e-6f);
    ck_assert_double_eq_tol(gkd_clip_grad_norm(g, 4, 0.0), 1.0, 1e-6);
    /* many chunks: matches a double reference */
    size_t n = 100003;
    float *big = malloc(n * sizeof(float));
    double ref = 0;
    for (size_t i = 0; i < n; i++) {
        big[i] = (float)sin((double)i) * 1e-3f;
        ref += (double)big[i] * big[i];
    }
    ck_assert_double_eq_tol(gkd_clip_grad_norm(big, n, 0.0), sqrt(ref), 1e-12);
    free(big);
    float bad[2] = {NAN, 1.0f};
    ck_assert(isnan(gkd_clip_grad_norm(bad, 2, 1.0)));
    ck_assert_float_eq(bad[1], 1.0f); /* non-finite norm: grads left alone for the caller */
}
END_TEST

START_TEST(test_lr_schedule) {
    gkd_lr_schedule s = {1e-3, 1e-4, 10, 110};
    ck_assert_double_eq_tol(gkd_lr_at(&s, 0), 1e-4, 1e-15);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 4), 5e-4, 1e-15);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 9), 1e-3, 1e-15);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 10), 1e-3, 1e-15);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 60), 5.5e-4, 1e-12);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 35), 1e-4 + 9e-4 * 0.5 * (1 + cos(M_PI / 4)), 1e-12);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 110), 1e-4, 1e-15);
    ck_assert_double_eq_tol(gkd_lr_at(&s, 5000), 1e-4, 1e-15);
    /* monotone after warmup */
    for (long t = 10; t < 110; t++) ck_assert(gkd_lr_at(&s, t + 1) <= gkd_lr_at(&s, t));
    gkd_lr_schedule flat = {3e-3, 3e-3, 0, 100};
    ck_assert_double_eq_tol(gkd_lr_at(&flat, 0), 3e-3, 1e-15);
    ck_assert_double_eq_tol(gkd_lr_at(&flat, 50), 3e-3, 1e-15);
}
END_TEST

Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_adamw_hand_computed);
    tcase_add_test(tc, test_adamw_bad_config);
    tcase_add_test(tc, test_clip_grad_norm);
    tcase_add_test(tc, test_lr_schedule);
    suite_add_tcase(s, tc);
    return s;
}
