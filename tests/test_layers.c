/* Every layer backward against central finite differences of its forward.
 *
 * The scalar checked is f = sum(out * R) for a fixed random R (summed in
 * double), so d f / d out = R is what backward receives. With inputs of
 * order 1, step h = 1e-2 and float32 forwards, the finite difference has a
 * truncation error ~h^2 f'''/6 and a rounding error of ~1e-5 each; the
 * measured relative errors of the gradient vectors are 1e-6 .. 2e-5. The
 * tolerance 1e-3 leaves margin for other inputs while any wrong term (a
 * missing factor, a transposed index) gives errors of order 1e-1. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "product_variants.h"
#include "gkd/layers.h"
#include "gkd/rng.h"
#include "helpers.h"

#define FD_STEP 1e-2f
#define FD_TOL 1e-3

static float *rand_array(size_t n, float scale, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 11, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * gkd_rng_normal(&r);
    return x;
}

static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

#define CHECK_FD(f, ctx, x, g, n, what)                                                        \
    do {                                                                                       \
        double e_ = th_fd_rel_err(f, ctx, x, g, n, FD_STEP);                                                 \
        ck_assert_msg(e_ <= FD_TOL, "%s: finite-difference rel err %g", what, e_);             \
    } while (0)

/* ---- layernorm ---- */
typedef struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd, *R;
} ln_ctx;

static double ln_obj(void *p) {
    ln_ctx *c = p;
    gkd_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
    return th_dot(c->out, c->R, (size_t)c->N * c->C);
}

START_TEST(test_layernorm_backward) {
    ln_ctx c = {6, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.N * c.C;
    c.inp = rand_array(n, 1.0f, 1);
    c.w = rand_array(c.C, 0.3f, 2);
    for (int i = 0; i < c.C; i++) c.w[i] += 1.0f;
    c.b = rand_array(c.C, 0.3f, 3);
    c.out = zeros(n), c.mean = zeros(c.N), c.rstd = zeros(c.N), c.R = rand_array(n, 1.0f, 4);
    float *dinp = zeros(n), *dw = zeros(c.C), *db = zeros(c.C);
    ln_obj(&c);
    gkd_layernorm_backward(dinp, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
    CHECK_FD(ln_obj, &c, c.inp, dinp, n, "layernorm dinp");
    CHECK_FD(ln_obj, &c, c.w, dw, c.C, "layernorm dw");
    CHECK_FD(ln_obj, &c, c.b, db, c.C, "layernorm db");
    /* backward accumulates: a second call doubles every gradient */
    float *dinp2 = malloc(n * sizeof(float));
    memcpy(dinp2, dinp, n * sizeof(float));
    float dw1 = dw[3];
    ln_obj(&c);
    gkd_layernorm_backward(dinp2, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
    ck_assert_float_eq_tol(dinp2[5], 2 * dinp[5], 1e-6f);
    ck_assert_float_eq_tol(dw[3], 2 * dw1, 1e-6f);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.R);
    free(dinp), free(dinp2), free(dw), free(db);
}
END_TEST

/* ---- matmul ---- */
typedef struct {
    int N, C, OC;
    float *inp, *w, *bias, *out, *R;
} mm_ctx;

static double mm_obj(void *p) {
    mm_ctx *c = p;
    gkd_matmul_forward(c->out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
    return th_dot(c->out, c->R, (size_t)c->N * c->OC);
}

START_TEST(test_matmul_backward) {
    /* N large enough that gkd_sgemm tiles the products (more than one tile) */
    mm_ctx c = {150, 9, 40, NULL, NULL, NULL, NULL, NULL};
    size_t ni = (size_t)c.N * c.C, nw = (size_t)c.OC * c.C, no = (size_t)c.N * c.OC;
    c.inp = rand_array(ni, 1.0f, 5), c.w = rand_array(nw, 0.5f, 6), c.bias = rand_array(c.OC, 0.5f, 7);
    c.out = zeros(no), c.R = rand_array(no, 1.0f, 8);
    float *dinp = zeros(ni), *dw = zeros(nw), *db = zeros(c.OC);
    gkd_matmul_backward(dinp, dw, db, c.R, c.inp, c.w, c.N, c.C, c.OC);
    /* matmul is linear: sample a subset of the inputs to keep the test fast */
    CHECK_FD(mm_obj, &c, c.inp, dinp, 300, "matmul dinp");
    CHECK_FD(mm_obj, &c, c.w, dw, nw, "matmul dw");
    CHECK_FD(mm_obj, &c, c.bias, db, c.OC, "matmul dbias");
    /* forward without bias matches the naive product */
    gkd_matmul_forward(c.out, c.inp, c.w, NULL, c.N, c.C, c.OC);
    for (int n = 0; n < c.N; n += 7)
        for (int o = 0; o < c.OC; o++) {
            double s = 0;
            for (int k = 0; k < c.C; k++) s += (double)c.inp[n * c.C + k] * c.w[o * c.C + k];
            ck_assert_double_eq_tol(c.out[n * c.OC + o], s, 1e-5);
        }
    free(c.inp), free(c.w), free(c.bias), free(c.out), free(c.R), free(dinp), free(dw), free(db);
}
END_TEST

/* _i: a product variant (product_variants.h). */
START_TEST(test_matmul_forward_tiled_bias) {
    /* large enough for row tiles (first shape) and column tiles (second):
     * the bias is added per tile and must land on the right columns */
    if (!product_variant_begin(_i)) return;
    static const int shapes[2][3] = {{300, 40, 200}, {200, 40, 300}};
    for (int si = 0; si < 2; si++) {
        const int N = shapes[si][0], C = shapes[si][1], OC = shapes[si][2];
        float *inp = rand_array((size_t)N * C, 1.0f, 50), *w = rand_array((size_t)OC * C, 0.5f, 51);
        float *bias = rand_array(OC, 1.0f, 52), *out = zeros((size_t)N * OC);
        gkd_matmul_forward(out, inp, w, bias, N, C, OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double s = bias[o];
                for (int k = 0; k < C; k++) s += (double)inp[n * C + k] * w[o * C + k];
                ck_assert_msg(fabs(out[n * OC + o] - s) <= 1e-5 * (1 + fabs(s)), "(%d,%d)", n, o);
            }
        free(inp), free(w), free(bias), free(out);
    }
    product_variant_end();
}
END_TEST

START_TEST(test_sgemm_tiles) {
    /* every transpose combination, padded leading dimensions, beta != 0,
     * shapes cut into row tiles, column tiles (partial last tiles) and one
     * below the tiling threshold */
    static const int shapes[3][3] = {{131, 100, 70}, {60, 300, 70}, {20, 30, 9}};
    for (int si = 0; si < 3; si++)
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], pad = 3;
            int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
            float *A = rand_array((size_t)(ta ? K : M) * lda, 1.0f, 20 + ta);
            float *B = rand_array((size_t)(tb ? N : K) * ldb, 1.0f, 30 + tb);
            float *C = rand_array((size_t)M * ldc, 1.0f, 40);
            float *C0 = malloc((size_t)M * ldc * sizeof(float));
            memcpy(C0, C, (size_t)M * ldc * sizeof(float));
            gkd_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 2.0f, C, ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < ldc; j++) {
                    if (j >= N) { /* padding untouched */
                        ck_assert(C[i * ldc + j] == C0[i * ldc + j]);
                        continue;
                    }
                    double s = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[k * lda + i] : A[i * lda + k];
                        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                        s += a * b;
                    }
                    s = 0.5 * s + 2.0 * C0[i * ldc + j];
                    ck_assert_msg(fabs(C[i * ldc + j] - s) <= 1e-4 * (1 + fabs(s)),
                                  "ta %d tb %d (%d,%d): %g vs %g", ta, tb, i, j, C[i * ldc + j], s);
                }
            free(A), free(B), free(C), free(C0);
        }
}
END_TEST

/* ---- attention ---- */
typedef struct {
    int B, T, C, NH;
    float *qkv, *out, *att, *R;
} att_ctx;

static double att_obj(void *p) {
    att_ctx *c = p;
    gkd_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    return th_dot(c->out, c->R, (size_t)c->B * c->T * c->C);
}

/* (B, T, C, NH): a short context and a longer one (70 positions). */
static const int att_shapes[][4] = {{2, 5, 8, 2}, {1, 70, 8, 2}};

START_TEST(test_attention_backward) {
    const int *sh = att_shapes[_i];
    att_ctx c = {sh[0], sh[1], sh[2], sh[3], NULL, NULL, NULL, NULL};
    size_t nq = (size_t)c.B * c.T * 3 * c.C, no = (size_t)c.B * c.T * c.C;
    size_t na = (size_t)c.B * c.NH * c.T * c.T;
    c.qkv = rand_array(nq, 1.0f, 9), c.out = zeros(no), c.att = zeros(na);
    c.R = rand_array(no, 1.0f, 10);
    float *dqkv = zeros(nq), *datt = zeros(na);
    att_obj(&c);
    /* causal: probabilities above the diagonal are exactly zero, rows sum to 1 */
    for (int bh = 0; bh < c.B * c.NH; bh++)
        for (int i = 0; i < c.T; i++) {
            double s = 0;
            for (int j = 0; j < c.T; j++) {
                float a = c.att[(bh * c.T + i) * c.T + j];
                if (j > i) ck_assert(a == 0.0f);
                s += a;
            }
            ck_assert_double_eq_tol(s, 1.0, 1e-6);
        }
    gkd_attention_backward(dqkv, datt, c.R, c.qkv, c.att, c.B, c.T, c.C, c.NH);
    CHECK_FD(att_obj, &c, c.qkv, dqkv, nq, "attention dqkv");
    /* a later token never influences an earlier output */
    float *out0 = malloc(no * sizeof(float));
    memcpy(out0, c.out, no * sizeof(float));
    for (int ch = 0; ch < 3 * c.C; ch++) c.qkv[(c.T - 1) * 3 * c.C + ch] += 1.0f; /* b=0, t=T-1 */
    att_obj(&c);
    for (int t = 0; t < c.T - 1; t++)
        for (int ch = 0; ch < c.C; ch++)
            ck_assert(c.out[t * c.C + ch] == out0[t * c.C + ch]);
    free(out0), free(c.qkv), free(c.out), free(c.att), free(c.R), free(dqkv), free(datt);
}
END_TEST

/* ---- gelu ---- */
typedef struct {
    size_t n;
    float *inp, *out, *R;
} gelu_ctx;

static double gelu_obj(void *p) {
    gelu_ctx *c = p;
    gkd_gelu_forward(c->out, c->inp, c->n);
    return th_dot(c->out, c->R, c->n);
}

START_TEST(test_gelu_backward) {
    gelu_ctx c = {64, NULL, NULL, NULL};
    c.inp = rand_array(c.n, 2.0f, 12), c.out = zeros(c.n), c.R = rand_array(c.n, 1.0f, 13);
    float *d = zeros(c.n);
    gkd_gelu_backward(d, c.inp, c.R, c.n);
    CHECK_FD(gelu_obj, &c, c.inp, d, c.n, "gelu");
    /* the cached pair computes the same bits as the plain pair */
    float *out2 = zeros(c.n), *th = zeros(c.n), *d2 = zeros(c.n);
    gkd_gelu_forward_cache(out2, th, c.inp, c.n);
    gkd_gelu_forward(c.out, c.inp, c.n);
    ck_assert(memcmp(out2, c.out, c.n * sizeof(float)) == 0);
    gkd_gelu_backward_cache(d2, c.inp, th, c.R, c.n);
    ck_assert(memcmp(d2, d, c.n * sizeof(float)) == 0);
    free(out2), free(th), free(d2);
    /* closed form values: gelu(0) = 0, gelu(x) ~ x for large x, and the
     * tanh formula at x = 1 */
    float x[3] = {0.0f, 10.0f, 1.0f}, y[3];
    gkd_gelu_forward(y, x, 3);
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_float_eq_tol(y[1], 10.0f, 1e-5f);
    double want = 0.5 * (1 + tanh(sqrt(2 / M_PI) * (1 + 0.044715)));
    ck_assert_double_eq_tol(y[2], want, 1e-6);
    /* the whole range against the double-precision formula (the float tanh
     * inside is a polynomial approximation): relative error of gelu where it
     * is not tiny, absolute error near its zeros */
    enum { NG = 4001 };
    float *xs = malloc(NG * sizeof(float)), *ys = malloc(NG * sizeof(float));
    for (int i = 0; i < NG; i++) xs[i] = -20.0f + 40.0f * i / (NG - 1);
    gkd_gelu_forward(ys, xs, NG);
    for (int i = 0; i < NG; i++) {
        double xd = xs[i];
        double g = 0.5 * xd * (1 + tanh(sqrt(2 / M_PI) * (xd + 0.044715 * xd * xd * xd)));
        ck_assert_msg(fabs(ys[i] - g) <= 1e-6 * (1 + fabs(g)), "gelu(%g) = %.9g want %.9g", xd,
                      ys[i], g);
    }
    free(xs), free(ys);
    free(c.inp), free(c.out), free(c.R), free(d);
}
END_TEST

/* ---- encoder ---- */
typedef struct {
    int B, T, C;
    int *tok;
    float *wte, *wpe, *out, *R;
} enc_ctx;

static double enc_obj(void *p) {
    enc_ctx *c = p;
    gkd_encoder_forward(c->out, c->tok, c->wte, c->wpe, c->B, c->T, c->C);
    return th_dot(c->out, c->R, (size_t)c->B * c->T * c->C);
}

START_TEST(test_encoder_backward) {
    int tok[2 * 4] = {1, 3, 1, 0, 2, 2, 4, 1}; /* repeats: gradients must add up */
    enc_ctx c = {2, 4, 40, tok, NULL, NULL, NULL, NULL};
    size_t V = 5, maxT = 6, no = (size_t)c.B * c.T * c.C;
    c.wte = rand_array(V * c.C, 1.0f, 14), c.wpe = rand_array(maxT * c.C, 1.0f, 15);
    c.out = zeros(no), c.R = rand_array(no, 1.0f, 16);
    float *dwte = zeros(V * c.C), *dwpe = zeros(maxT * c.C);
    gkd_encoder_backward(dwte, dwpe, c.R, tok, c.B, c.T, c.C);
    CHECK_FD(enc_obj, &c, c.wte, dwte, V * c.C, "encoder dwte");
    CHECK_FD(enc_obj, &c, c.wpe, dwpe, c.T * c.C, "encoder dwpe");
    for (size_t i = c.T * c.C; i < maxT * c.C; i++) ck_assert(dwpe[i] == 0.0f); /* unused positions */
    free(c.wte), free(c.wpe), free(c.out), free(c.R), free(dwte), free(dwpe);
}
END_TEST

/* ---- residual ---- */
START_TEST(test_residual) {
    float a[3] = {1, 2, 3}, b[3] = {0.5f, -1, 4}, o[3], da[3] = {1, 1, 1}, db[3] = {0}, d[3] = {2, 3, 4};
    gkd_residual_forward(o, a, b, 3);
    ck_assert_float_eq(o[2], 7.0f);
    gkd_residual_backward(da, db, d, 3);
    ck_assert_float_eq(da[1], 4.0f);
    ck_assert_float_eq(db[2], 4.0f);
}
END_TEST

/* ---- cross-entropy and softmax ---- */
typedef struct {
    int N, V;
    float *logits, *losses, *mask;
    int *targets;
} ce_ctx;

static double ce_obj(void *p) {
    ce_ctx *c = p;
    return gkd_crossentropy_forward_backward(NULL, c->losses, c->logits, c->targets, c->mask,
                                             c->N, c->V);
}

START_TEST(test_crossentropy_backward) {
    int targets[5] = {0, 6, 2, 2, 5};
    float mask[5] = {1, 0, 1, 1, 1};
    ce_ctx c = {5, 7, NULL, NULL, mask, targets};
    size_t n = (size_t)c.N * c.V;
    c.logits = rand_array(n, 2.0f, 17), c.losses = zeros(c.N);
    float *d = rand_array(n, 1.0f, 18); /* written, not accumulated: garbage must vanish */
    double loss = gkd_crossentropy_forward_backward(d, c.losses, c.logits, targets, mask, c.N, c.V);
    CHECK_FD(ce_obj, &c, c.logits, d, n, "cross-entropy dlogits");
    for (int j = 0; j < c.V; j++) ck_assert(d[1 * c.V + j] == 0.0f);
    /* the loss agrees with softmax probabilities */
    float *probs = zeros(n);
    gkd_softmax_forward(probs, c.logits, c.N, c.V);
    double want = 0;
    for (int i = 0; i < c.N; i++) {
        double s = 0;
        for (int j = 0; j < c.V; j++) s += probs[i * c.V + j];
        ck_assert_double_eq_tol(s, 1.0, 1e-6);
        if (mask[i] != 0) want -= log(probs[i * c.V + targets[i]]);
    }
    ck_assert_double_eq_tol(loss, want / 4, 1e-5);
    /* NULL mask counts every row */
    double all = gkd_crossentropy_forward_backward(NULL, c.losses, c.logits, targets, NULL, c.N, c.V);
    ck_assert_double_eq_tol(all, (want - log(probs[1 * c.V + 6])) / 5, 1e-5);
    /* a bad target poisons the loss instead of reading out of bounds */
    targets[2] = 7;
    ck_assert(isnan(gkd_crossentropy_forward_backward(d, c.losses, c.logits, targets, mask, c.N, c.V)));
    free(c.logits), free(c.losses), free(d), free(probs);
}
END_TEST

Suite *layers_suite(void) {
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_layernorm_backward);
    tcase_add_test(tc, test_matmul_backward);
    tcase_add_test(tc, test_sgemm_tiles);
    tcase_add_loop_test(tc, test_matmul_forward_tiled_bias, 0, PRODUCT_VARIANTS);
    tcase_add_loop_test(tc, test_attention_backward, 0, (int)(sizeof att_shapes / sizeof att_shapes[0]));
    tcase_add_test(tc, test_gelu_backward);
    tcase_add_test(tc, test_encoder_backward);
    tcase_add_test(tc, test_residual);
    tcase_add_test(tc, test_crossentropy_backward);
    suite_add_tcase(s, tc);
    return s;
}
