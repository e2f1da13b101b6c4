/* The Llama-family layers (RMSNorm, rotary embeddings, SwiGLU, grouped-query
 * attention): every backward against central finite differences of its
 * forward, every forward and backward against the PyTorch fixture
 * (tools/ref_llama_layers.py), bit equality where the math says so, and
 * the same bits with 1 and 2 threads.
 *
 * Finite differences: the scalar is f = sum(out * R) for a fixed random R,
 * summed in double, so backward receives dout = R; inputs of order 1, step
 * h = 1e-2. The relative error of a gradient vector (||g_fd - g|| / ||g||)
 * is bounded by FD_TOL = 1e-3, as in tests/test_layers.c: the measured
 * errors are at most 6e-5 (RMSNorm 1.5e-5, SwiGLU 5e-6, RoPE, which is
 * linear, 3e-6, attention 1.4e-5, 5.5e-5 with 70 positions), and a wrong
 * term gives 1e-1 or more.
 *
 * Fixture: float64 PyTorch references rounded to float32; every value is
 * within FIX_TOL = 1e-5 (1 + |ref|) (measured at most 4.4e-7). */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "product_variants.h"
#include "gkd/layers.h"
#include "gkd/rng.h"

#define FD_STEP 1e-2f
#define FD_TOL 1e-3
#define FIX_TOL 1e-5

static float *rand_array(size_t n, float scale, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 12, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * gkd_rng_normal(&r);
    return x;
}

static float *zeros(size_t n) {
    float *x = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(x);
    return x;
}

static float *copy_of(const float *x, size_t n) {
    float *y = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(y);
    memcpy(y, x, n * sizeof(float));
    return y;
}

#define CHECK_FD(f, ctx, x, g, n, what)                                                        \
    do {                                                                                       \
        double e_ = th_fd_rel_err(f, ctx, x, g, n, FD_STEP);                                                 \
        ck_assert_msg(e_ <= FD_TOL, "%s: finite-difference rel err %g", what, e_);             \
    } while (0)

/* ---- the fixture ---- */

typedef struct {
    unsigned char *bytes;
    size_t n, pos;
} reader;

static int32_t rd_i32(reader *r) {
    ck_assert_msg(r->pos + 4 <= r->n, "fixture truncated at byte %zu", r->pos);
    int32_t v;
    memcpy(&v, r->bytes + r->pos, 4);
    r->pos += 4;
    return v;
}

static float rd_f32(reader *r) {
    ck_assert_msg(r->pos + 4 <= r->n, "fixture truncated at byte %zu", r->pos);
    float v;
    memcpy(&v, r->bytes + r->pos, 4);
    r->pos += 4;
    return v;
}

/* the next n floats, malloc'd */
static float *rd_arr(reader *r, size_t n) {
    ck_assert_msg(r->pos + 4 * n <= r->n, "fixture truncated at byte %zu", r->pos);
    float *x = malloc(n * sizeof(float) + 1);
    ck_assert_ptr_nonnull(x);
    memcpy(x, r->bytes + r->pos, 4 * n);
    r->pos += 4 * n;
    return x;
}

enum { ATT_MAX_CASES = 4 };

typedef struct {
    int rms_N, rms_C, rope_B, rope_T, rope_NH, rope_NKV, rope_hs, swi_N, swi_F;
    int att_B, att_T, att_NH, att_hs, att_ncases, att_nkv[ATT_MAX_CASES];
    float rms_eps, rope_theta;
    float *rms_inp, *rms_w, *rms_dout, *rms_out, *rms_dinp, *rms_dw;
    float *rope_cos, *rope_sin, *rope_qkv, *rope_dout, *rope_out[2], *rope_dqkv[2];
    float *swi_gu, *swi_dout, *swi_out, *swi_dgu;
    float *att_qkv[ATT_MAX_CASES], *att_dout[ATT_MAX_CASES], *att_out[ATT_MAX_CASES];
    float *att_att[ATT_MAX_CASES], *att_dqkv[ATT_MAX_CASES];
} fixture;

static void load_fixture(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    reader r = {NULL, 0, 0};
    r.bytes = th_read_bytes(th_fixture_path(".", "llama_layers_ref.bin"), &r.n);
    ck_assert_msg(r.n >= 8 && memcmp(r.bytes, "GKDLLAM1", 8) == 0, "fixture magic");
    r.pos = 8;
    ck_assert_int_eq(rd_i32(&r), 1); /* version */
    fx->rms_N = rd_i32(&r), fx->rms_C = rd_i32(&r);
    fx->rope_B = rd_i32(&r), fx->rope_T = rd_i32(&r), fx->rope_NH = rd_i32(&r);
    fx->rope_NKV = rd_i32(&r), fx->rope_hs = rd_i32(&r);
    fx->swi_N = rd_i32(&r), fx->swi_F = rd_i32(&r);
    fx->att_B = rd_i32(&r), fx->att_T = rd_i32(&r), fx->att_NH = rd_i32(&r);
    fx->att_hs = rd_i32(&r), fx->att_ncases = rd_i32(&r);
    ck_assert(fx->att_ncases >= 1 && fx->att_ncases <= ATT_MAX_CASES);
    fx->rms_eps = rd_f32(&r), fx->rope_theta = rd_f32(&r);
    for (int i = 0; i < fx->att_ncases; i++) {
        fx->att_nkv[i] = rd_i32(&r);
        ck_assert(fx->att_nkv[i] >= 1 && fx->att_NH % fx->att_nkv[i] == 0);
    }
    size_t rn = (size_t)fx->rms_N * fx->rms_C;
    fx->rms_inp = rd_arr(&r, rn), fx->rms_w = rd_arr(&r, fx->rms_C);
    fx->rms_dout = rd_arr(&r, rn), fx->rms_out = rd_arr(&r, rn);
    fx->rms_dinp = rd_arr(&r, rn), fx->rms_dw = rd_arr(&r, fx->rms_C);
    size_t tab = (size_t)fx->rope_T * (fx->rope_hs / 2);
    size_t qn = (size_t)fx->rope_B * fx->rope_T * (fx->rope_NH + 2 * fx->rope_NKV) * fx->rope_hs;
    fx->rope_cos = rd_arr(&r, tab), fx->rope_sin = rd_arr(&r, tab);
    fx->rope_qkv = rd_arr(&r, qn), fx->rope_dout = rd_arr(&r, qn);
    for (int s = 0; s < 2; s++) fx->rope_out[s] = rd_arr(&r, qn), fx->rope_dqkv[s] = rd_arr(&r, qn);
    size_t sn = (size_t)fx->swi_N * fx->swi_F;
    fx->swi_gu = rd_arr(&r, 2 * sn), fx->swi_dout = rd_arr(&r, sn);
    fx->swi_out = rd_arr(&r, sn), fx->swi_dgu = rd_arr(&r, 2 * sn);
    for (int i = 0; i < fx->att_ncases; i++) {
        int C = fx->att_NH * fx->att_hs, W = C + 2 * fx->att_nkv[i] * fx->att_hs;
        size_t BT = (size_t)fx->att_B * fx->att_T;
        fx->att_qkv[i] = rd_arr(&r, BT * W), fx->att_dout[i] = rd_arr(&r, BT * C);
        fx->att_out[i] = rd_arr(&r, BT * C);
        fx->att_att[i] = rd_arr(&r, (size_t)fx->att_B * fx->att_NH * fx->att_T * fx->att_T);
        fx->att_dqkv[i] = rd_arr(&r, BT * W);
    }
    ck_assert_msg(r.pos == r.n, "fixture has %zu trailing bytes", r.n - r.pos);
    free(r.bytes);
}

static void free_fixture(fixture *fx) {
    free(fx->rms_inp), free(fx->rms_w), free(fx->rms_dout), free(fx->rms_out);
    free(fx->rms_dinp), free(fx->rms_dw);
    free(fx->rope_cos), free(fx->rope_sin), free(fx->rope_qkv), free(fx->rope_dout);
    for (int s = 0; s < 2; s++) free(fx->rope_out[s]), free(fx->rope_dqkv[s]);
    free(fx->swi_gu), free(fx->swi_dout), free(fx->swi_out), free(fx->swi_dgu);
    for (int i = 0; i < fx->att_ncases; i++) {
        free(fx->att_qkv[i]), free(fx->att_dout[i]), free(fx->att_out[i]);
        free(fx->att_att[i]), free(fx->att_dqkv[i]);
    }
}

/* max over i of |got - ref| / (1 + |ref|), asserted <= FIX_TOL */
static void check_close(const float *got, const float *ref, size_t n, const char *what) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(e <= worst)) worst = e, at = i; /* NaN counts as worst */
    }
    ck_assert_msg(worst <= FIX_TOL, "%s: [%zu] = %.9g, PyTorch %.9g (err %g)", what, at,
                  got[at], ref[at], worst);
}

/* ---- RMSNorm ---- */
typedef struct {
    int N, C;
    float eps;
    float *inp, *w, *out, *rstd, *R;
} rms_ctx;

static double rms_obj(void *p) {
    rms_ctx *c = p;
    gkd_rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->eps, c->N, c->C);
    return th_dot(c->out, c->R, (size_t)c->N * c->C);
}

START_TEST(test_rmsnorm_backward) {
    /* C = 20: two full lanes of 8 and a tail */
    rms_ctx c = {6, 20, 1e-6f, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.N * c.C;
    c.inp = rand_array(n, 1.0f, 1);
    c.w = rand_array(c.C, 0.3f, 2);
    for (int i = 0; i < c.C; i++) c.w[i] += 1.0f;
    c.out = zeros(n), c.rstd = zeros(c.N), c.R = rand_array(n, 1.0f, 3);
    float *dinp = zeros(n), *dw = zeros(c.C);
    rms_obj(&c);
    /* rstd against the definition, in double */
    for (int i = 0; i < c.N; i++) {
        double ss = 0;
        for (int j = 0; j < c.C; j++) ss += (double)c.inp[i * c.C + j] * c.inp[i * c.C + j];
        ck_assert_double_eq_tol(c.rstd[i], 1.0 / sqrt(ss / c.C + c.eps), 1e-6 * c.rstd[i]);
    }
    gkd_rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C);
    CHECK_FD(rms_obj, &c, c.inp, dinp, n, "rmsnorm dinp");
    CHECK_FD(rms_obj, &c, c.w, dw, c.C, "rmsnorm dw");
    /* backward accumulates: a second call doubles every gradient (exactly:
     * x + x is exact) */
    float *dinp1 = copy_of(dinp, n), *dw1 = copy_of(dw, c.C);
    rms_obj(&c);
    gkd_rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C);
    for (size_t i = 0; i < n; i++) ck_assert(dinp[i] == 2 * dinp1[i]);
    for (int i = 0; i < c.C; i++) ck_assert(dw[i] == 2 * dw1[i]);
    /* inference (no rstd) computes the same bits */
    float *out2 = zeros(n);
    gkd_rmsnorm_forward(out2, NULL, c.inp, c.w, c.eps, c.N, c.C);
    ck_assert(memcmp(out2, c.out, n * sizeof(float)) == 0);
    free(c.inp), free(c.w), free(c.out), free(c.rstd), free(c.R);
    free(dinp), free(dw), free(dinp1), free(dw1), free(out2);
}
END_TEST

START_TEST(test_rmsnorm_vs_pytorch) {
    fixture fx;
    load_fixture(&fx);
    const int N = fx.rms_N, C = fx.rms_C;
    size_t n = (size_t)N * C;
    float *out = zeros(n), *rstd = zeros(N), *dinp = zeros(n), *dw = zeros(C);
    gkd_rmsnorm_forward(out, rstd, fx.rms_inp, fx.rms_w, fx.rms_eps, N, C);
    check_close(out, fx.rms_out, n, "rmsnorm out");
    gkd_rmsnorm_backward(dinp, dw, fx.rms_dout, fx.rms_inp, fx.rms_w, rstd, N, C);
    check_close(dinp, fx.rms_dinp, n, "rmsnorm dinp");
    check_close(dw, fx.rms_dw, C, "rmsnorm dw");
    free(out), free(rstd), free(dinp), free(dw);
    free_fixture(&fx);
}
END_TEST

/* ---- RoPE ---- */

/* |f - d| <= one float ulp of f: f is d rounded to float (faithfully) */
static int within_ulp(float f, double d) {
    float up = nextafterf(fabsf(f), INFINITY);
    return fabs((double)f - d) <= (double)up - fabsf(f);
}

START_TEST(test_rope_table) {
    const int maxT = 4096, hs = 64, half = hs / 2;
    const float theta = 10000.0f;
    float *ct = zeros((size_t)maxT * half), *st = zeros((size_t)maxT * half);
    gkd_rope_table(ct, st, maxT, hs, theta);
    long bad = 0, first = -1;
    for (int t = 0; t < maxT; t++)
        for (int i = 0; i < half; i++) {
            /* the angle another way: t exp(-(2i/hs) log theta) */
            double angle = t * exp(-(2.0 * i / hs) * log(10000.0));
            float c = ct[(size_t)t * half + i], s = st[(size_t)t * half + i];
            if (!within_ulp(c, cos(angle)) || !within_ulp(s, sin(angle))) {
                if (first < 0) first = (long)t * half + i;
                bad++;
            }
        }
    ck_assert_msg(bad == 0, "%ld table entries off by more than an ulp, first (t %ld, i %ld)", bad,
                  first / half, first % half);
    /* position 0 is the identity; pair 0 turns by one radian a step */
    for (int i = 0; i < half; i++) ck_assert(ct[i] == 1.0f && st[i] == 0.0f);
    ck_assert(ct[3 * half] == (float)cos(3.0) && st[3 * half] == (float)sin(3.0));
    free(ct), free(st);
}
END_TEST

START_TEST(test_rope_row_pairs) {
    /* one head of 4 channels: which channels pair up in each style */
    const float c[2] = {0.6f, 0.8f}, s[2] = {0.8f, -0.6f};
    const float x0[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float x[4];
    memcpy(x, x0, sizeof x);
    gkd_rope_row(x, c, s, 1, 4, 0); /* pairs (0,1), (2,3) */
    const float want0[4] = {1 * c[0] - 2 * s[0], 1 * s[0] + 2 * c[0], 3 * c[1] - 4 * s[1],
                            3 * s[1] + 4 * c[1]};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(x[i], want0[i], 1e-6f);
    memcpy(x, x0, sizeof x);
    gkd_rope_row(x, c, s, 1, 4, 1); /* pairs (0,2), (1,3) */
    const float want1[4] = {1 * c[0] - 3 * s[0], 2 * c[1] - 4 * s[1], 1 * s[0] + 3 * c[0],
                            2 * s[1] + 4 * c[1]};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(x[i], want1[i], 1e-6f);
    /* nheads: two heads rotated alike, a third left alone */
    float y[12];
    for (int i = 0; i < 12; i++) y[i] = x0[i % 4];
    gkd_rope_row(y, c, s, 2, 4, 1);
    for (int i = 0; i < 4; i++) ck_assert(y[i] == x[i] && y[4 + i] == x[i] && y[8 + i] == x0[i]);
}
END_TEST

typedef struct {
    int B, T, NH, NKV, hs, style;
    const float *cos_t, *sin_t;
    float *qkv, *out, *R;
} rope_ctx;

static size_t rope_n(const rope_ctx *c) {
    return (size_t)c->B * c->T * (c->NH + 2 * c->NKV) * c->hs;
}

static double rope_obj(void *p) {
    rope_ctx *c = p;
    memcpy(c->out, c->qkv, rope_n(c) * sizeof(float));
    gkd_rope_forward(c->out, c->cos_t, c->sin_t, c->B, c->T, c->NH, c->NKV, c->hs, c->style);
    return th_dot(c->out, c->R, rope_n(c));
}

START_TEST(test_rope_backward) {
    const int style = _i;
    const int maxT = 8, hs = 8;
    float *ct = zeros(maxT * hs / 2), *st = zeros(maxT * hs / 2);
    gkd_rope_table(ct, st, maxT, hs, 10.0f); /* theta 10: large angles in every pair */
    rope_ctx c = {2, 6, 4, 2, hs, style, ct, st, NULL, NULL, NULL};
    const size_t n = rope_n(&c), W = (size_t)(c.NH + 2 * c.NKV) * hs;
    c.qkv = rand_array(n, 1.0f, 10 + style), c.out = zeros(n), c.R = rand_array(n, 1.0f, 12);
    float *g = copy_of(c.R, n);
    gkd_rope_backward(g, ct, st, c.B, c.T, c.NH, c.NKV, hs, style);
    CHECK_FD(rope_obj, &c, c.qkv, g, n, style ? "rope (half) dqkv" : "rope (interleaved) dqkv");
    /* backward is the transpose: <R x, y> = <x, R^T y> */
    rope_obj(&c); /* out = R qkv */
    double lhs = th_dot(c.out, c.R, n), rhs = th_dot(c.qkv, g, n);
    ck_assert_msg(fabs(lhs - rhs) <= 1e-6 * sqrt(th_dot(c.out, c.out, n) * th_dot(c.R, c.R, n)),
                  "<Rx,y> %.12g <x,R^T y> %.12g", lhs, rhs);
    for (size_t bt = 0; bt < (size_t)c.B * c.T; bt++) {
        const float *x = c.qkv + bt * W, *y = c.out + bt * W;
        /* v is untouched, and so is position 0 */
        ck_assert(memcmp(x + (c.NH + c.NKV) * hs, y + (c.NH + c.NKV) * hs,
                         (size_t)c.NKV * hs * sizeof(float)) == 0);
        if (bt % c.T == 0) ck_assert(memcmp(x, y, W * sizeof(float)) == 0);
        /* a rotation keeps each pair's length */
        for (int h = 0; h < c.NH + c.NKV; h++)
            for (int i = 0; i < hs / 2; i++) {
                int a = style ? i : 2 * i, b = style ? i + hs / 2 : 2 * i + 1;
                const float *xh = x + h * hs, *yh = y + h * hs;
                double n0 = (double)xh[a] * xh[a] + (double)xh[b] * xh[b];
                double n1 = (double)yh[a] * yh[a] + (double)yh[b] * yh[b];
                ck_assert_double_eq_tol(n1, n0, 1e-6 * (1 + n0));
            }
    }
    /* backward undoes forward */
    gkd_rope_backward(c.out, ct, st, c.B, c.T, c.NH, c.NKV, hs, style);
    for (size_t i = 0; i < n; i++) ck_assert_float_eq_tol(c.out[i], c.qkv[i], 1e-6f);
    free(ct), free(st), free(c.qkv), free(c.out), free(c.R), free(g);
}
END_TEST

START_TEST(test_rope_vs_pytorch) {
    fixture fx;
    load_fixture(&fx);
    const int B = fx.rope_B, T = fx.rope_T, NH = fx.rope_NH, NKV = fx.rope_NKV, hs = fx.rope_hs;
    const size_t tab = (size_t)T * (hs / 2), n = (size_t)B * T * (NH + 2 * NKV) * hs;
    float *ct = zeros(tab), *st = zeros(tab);
    gkd_rope_table(ct, st, T, hs, fx.rope_theta);
    for (size_t i = 0; i < tab; i++)
        ck_assert_msg(fabsf(ct[i] - fx.rope_cos[i]) <= 6e-8f && fabsf(st[i] - fx.rope_sin[i]) <= 6e-8f,
                      "table [%zu]: %.9g %.9g vs %.9g %.9g", i, ct[i], st[i], fx.rope_cos[i],
                      fx.rope_sin[i]);
    for (int style = 0; style < 2; style++) {
        float *x = copy_of(fx.rope_qkv, n), *d = copy_of(fx.rope_dout, n);
        gkd_rope_forward(x, ct, st, B, T, NH, NKV, hs, style);
        check_close(x, fx.rope_out[style], n, style ? "rope (half) out" : "rope (interleaved) out");
        gkd_rope_backward(d, ct, st, B, T, NH, NKV, hs, style);
        check_close(d, fx.rope_dqkv[style], n, style ? "rope (half) dqkv" : "rope (interleaved) dqkv");
        free(x), free(d);
    }
    /* the two pairings differ on this input: the test tells them apart */
    ck_assert(memcmp(fx.rope_out[0], fx.rope_out[1], n * sizeof(float)) != 0);
    free(ct), free(st);
    free_fixture(&fx);
}
END_TEST

/* ---- SwiGLU ---- */
typedef struct {
    int N, F;
    float *gu, *out, *R;
} swi_ctx;

static double swi_obj(void *p) {
    swi_ctx *c = p;
    gkd_swiglu_forward(c->out, c->gu, c->N, c->F);
    return th_dot(c->out, c->R, (size_t)c->N * c->F);
}

START_TEST(test_swiglu_backward) {
    swi_ctx c = {5, 13, NULL, NULL, NULL};
    size_t n = (size_t)c.N * c.F;
    c.gu = rand_array(2 * n, 2.0f, 20), c.out = zeros(n), c.R = rand_array(n, 1.0f, 21);
    float *dgu = rand_array(2 * n, 1.0f, 22); /* overwritten: garbage must vanish */
    gkd_swiglu_backward(dgu, c.gu, c.R, c.N, c.F);
    CHECK_FD(swi_obj, &c, c.gu, dgu, 2 * n, "swiglu dgu");
    /* the definition, in double */
    swi_obj(&c);
    for (int i = 0; i < c.N; i++)
        for (int f = 0; f < c.F; f++) {
            double g = c.gu[i * 2 * c.F + f], u = c.gu[i * 2 * c.F + c.F + f];
            double want = g / (1 + exp(-g)) * u;
            ck_assert_double_eq_tol(c.out[i * c.F + f], want, 1e-6 * (1 + fabs(want)));
        }
    /* far tails: exp(-g) overflows or underflows; silu(-100) = -0 and its
     * derivative 0, silu(100) = 100 and its derivative 1 */
    float gu[4] = {-100.0f, 100.0f, 3.0f, 0.5f}, out[2], d[2] = {1.5f, 2.0f}, dg[4];
    gkd_swiglu_forward(out, gu, 1, 2);
    ck_assert(out[0] == 0.0f && out[1] == 50.0f);
    gkd_swiglu_backward(dg, gu, d, 1, 2);
    ck_assert(dg[0] == 0.0f && dg[1] == 1.0f && dg[2] == 0.0f && dg[3] == 200.0f);
    free(c.gu), free(c.out), free(c.R), free(dgu);
}
END_TEST

START_TEST(test_swiglu_vs_pytorch) {
    fixture fx;
    load_fixture(&fx);
    const int N = fx.swi_N, F = fx.swi_F;
    size_t n = (size_t)N * F;
    float *out = zeros(n), *dgu = zeros(2 * n);
    gkd_swiglu_forward(out, fx.swi_gu, N, F);
    check_close(out, fx.swi_out, n, "swiglu out");
    gkd_swiglu_backward(dgu, fx.swi_gu, fx.swi_dout, N, F);
    check_close(dgu, fx.swi_dgu, 2 * n, "swiglu dgu");
    free(out), free(dgu);
    free_fixture(&fx);
}
END_TEST

/* ---- grouped-query attention ---- */
typedef struct {
    int B, T, C, NH, NKV;
    float *qkv, *out, *att, *R;
} gqa_ctx;

static size_t gqa_width(int C, int NH, int NKV) { return (size_t)C + 2 * (size_t)NKV * (C / NH); }

static double gqa_obj(void *p) {
    gqa_ctx *c = p;
    gkd_attention_gqa_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->NKV);
    return th_dot(c->out, c->R, (size_t)c->B * c->T * c->C);
}

/* (B, T, C, NH, NKV): NH = 4 with 4, 2 and 1 kv heads, and a longer
 * context (70 positions: several tiles of the products) */
static const int gqa_shapes[][5] = {
    {2, 5, 16, 4, 4}, {2, 5, 16, 4, 2}, {2, 5, 16, 4, 1}, {1, 70, 16, 4, 2},
};

START_TEST(test_gqa_backward) {
    const int *sh = gqa_shapes[_i];
    gqa_ctx c = {sh[0], sh[1], sh[2], sh[3], sh[4], NULL, NULL, NULL, NULL};
    const size_t W = gqa_width(c.C, c.NH, c.NKV), nq = (size_t)c.B * c.T * W;
    const size_t no = (size_t)c.B * c.T * c.C, na = (size_t)c.B * c.NH * c.T * c.T;
    c.qkv = rand_array(nq, 1.0f, 30 + _i), c.out = zeros(no), c.att = zeros(na);
    c.R = rand_array(no, 1.0f, 31);
    float *dqkv = rand_array(nq, 1.0f, 32), *datt = zeros(na); /* dqkv: overwritten */
    gqa_obj(&c);
    for (int bh = 0; bh < c.B * c.NH; bh++)
        for (int i = 0; i < c.T; i++) {
            double s = 0;
            for (int j = 0; j < c.T; j++) {
                float a = c.att[((size_t)bh * c.T + i) * c.T + j];
                if (j > i) ck_assert(a == 0.0f);
                s += a;
            }
            ck_assert_double_eq_tol(s, 1.0, 1e-6);
        }
    gkd_attention_gqa_backward(dqkv, datt, c.R, c.qkv, c.att, c.B, c.T, c.C, c.NH, c.NKV);
    char what[64];
    snprintf(what, sizeof what, "gqa NH %d NKV %d T %d dqkv", c.NH, c.NKV, c.T);
    CHECK_FD(gqa_obj, &c, c.qkv, dqkv, nq, what);
    /* a later token never influences an earlier output */
    float *out0 = copy_of(c.out, no);
    for (size_t ch = 0; ch < W; ch++) c.qkv[(c.T - 1) * W + ch] += 1.0f; /* b=0, t=T-1 */
    gqa_obj(&c);
    for (int t = 0; t < c.T - 1; t++)
        for (int ch = 0; ch < c.C; ch++) ck_assert(c.out[t * c.C + ch] == out0[t * c.C + ch]);
    free(out0), free(c.qkv), free(c.out), free(c.att), free(c.R), free(dqkv), free(datt);
}
END_TEST

/* _i: a product variant (product_variants.h). With NKV = NH, the GQA pair
 * is gkd_attention_forward/backward bit for bit; with fewer kv heads, it is
 * multi-head attention on k and v copied to every head of their group:
 * the same out, att and dq bits, and dk, dv the float sums, in head order,
 * of the copies' gradients. */
START_TEST(test_gqa_matches_mha) {
    if (!product_variant_begin(_i)) return;
    const int B = 2, T = 37, NH = 4, hs = 8, C = NH * hs;
    const size_t no = (size_t)B * T * C, na = (size_t)B * NH * T * T, n3 = (size_t)B * T * 3 * C;
    float *dout = rand_array(no, 1.0f, 40);
    float *out1 = zeros(no), *att1 = zeros(na), *d1 = zeros(n3), *da1 = zeros(na);
    float *out2 = zeros(no), *att2 = zeros(na), *d2 = zeros(n3), *da2 = zeros(na);
    for (int NKV = NH; NKV >= 1; NKV /= 2) {
        const int group = NH / NKV;
        const size_t W = gqa_width(C, NH, NKV), nq = (size_t)B * T * W;
        float *qkv = rand_array(nq, 1.0f, 41 + NKV), *mha = zeros(n3);
        /* expand: head h of k and v is kv head h / group */
        for (size_t bt = 0; bt < (size_t)B * T; bt++) {
            const float *src = qkv + bt * W;
            float *dst = mha + bt * 3 * C;
            memcpy(dst, src, C * sizeof(float));
            for (int h = 0; h < NH; h++)
                for (int part = 0; part < 2; part++)
                    memcpy(dst + (1 + part) * C + h * hs,
                           src + C + (size_t)part * NKV * hs + (h / group) * hs,
                           hs * sizeof(float));
        }
        gkd_attention_forward(out1, att1, mha, B, T, C, NH);
        gkd_attention_backward(d1, da1, dout, mha, att1, B, T, C, NH);
        gkd_attention_gqa_forward(out2, att2, qkv, B, T, C, NH, NKV);
        gkd_attention_gqa_backward(d2, da2, dout, qkv, att2, B, T, C, NH, NKV);
        ck_assert_msg(memcmp(out1, out2, no * sizeof(float)) == 0, "%s NKV %d out",
                      product_variant_name(_i), NKV);
        ck_assert(memcmp(att1, att2, na * sizeof(float)) == 0);
        ck_assert(memcmp(da1, da2, na * sizeof(float)) == 0);
        for (size_t bt = 0; bt < (size_t)B * T; bt++) {
            const float *m = d1 + bt * 3 * C, *g = d2 + bt * W;
            ck_assert_msg(memcmp(m, g, C * sizeof(float)) == 0, "%s NKV %d dq",
                          product_variant_name(_i), NKV);
            for (int part = 0; part < 2; part++)
                for (int kv = 0; kv < NKV; kv++)
                    for (int e = 0; e < hs; e++) {
                        float s = m[(1 + part) * C + kv * group * hs + e];
                        for (int j = 1; j < group; j++)
                            s += m[(1 + part) * C + (kv * group + j) * hs + e];
                        float got = g[C + (size_t)part * NKV * hs + kv * hs + e];
                        ck_assert_msg(got == s, "%s NKV %d %s kv %d: %.9g vs %.9g",
                                      product_variant_name(_i), NKV, part ? "dv" : "dk", kv,
                                      got, s);
                    }
        }
        free(qkv), free(mha);
    }
    free(dout), free(out1), free(att1), free(d1), free(da1), free(out2), free(att2), free(d2);
    free(da2);
    product_variant_end();
}
END_TEST

START_TEST(test_gqa_vs_pytorch) {
    fixture fx;
    load_fixture(&fx);
    const int B = fx.att_B, T = fx.att_T, NH = fx.att_NH, C = NH * fx.att_hs;
    for (int i = 0; i < fx.att_ncases; i++) {
        const int NKV = fx.att_nkv[i];
        const size_t W = gqa_width(C, NH, NKV), no = (size_t)B * T * C;
        const size_t na = (size_t)B * NH * T * T;
        float *out = zeros(no), *att = zeros(na), *dqkv = zeros((size_t)B * T * W), *datt = zeros(na);
        char what[64];
        gkd_attention_gqa_forward(out, att, fx.att_qkv[i], B, T, C, NH, NKV);
        snprintf(what, sizeof what, "gqa NKV %d out", NKV);
        check_close(out, fx.att_out[i], no, what);
        snprintf(what, sizeof what, "gqa NKV %d att", NKV);
        check_close(att, fx.att_att[i], na, what);
        gkd_attention_gqa_backward(dqkv, datt, fx.att_dout[i], fx.att_qkv[i], att, B, T, C, NH, NKV);
        snprintf(what, sizeof what, "gqa NKV %d dqkv", NKV);
        check_close(dqkv, fx.att_dqkv[i], (size_t)B * T * W, what);
        free(out), free(att), free(dqkv), free(datt);
    }
    free_fixture(&fx);
}
END_TEST

/* ---- threads ---- */

/* Every layer's forward and backward with `threads` threads, on shapes
 * above the one-thread threshold (2^15 elements of work); returns an FNV
 * hash of every output and gradient. */
static uint64_t run_all(int threads) {
    omp_set_num_threads(threads);
    uint64_t h = TH_FNV_BASIS;
    { /* RMSNorm: 515 x 96 */
        const int N = 515, C = 96;
        size_t n = (size_t)N * C;
        float *x = rand_array(n, 1.0f, 50), *w = rand_array(C, 1.0f, 51), *d = rand_array(n, 1.0f, 52);
        float *out = zeros(n), *rstd = zeros(N), *dx = zeros(n), *dw = zeros(C);
        gkd_rmsnorm_forward(out, rstd, x, w, 1e-5f, N, C);
        gkd_rmsnorm_backward(dx, dw, d, x, w, rstd, N, C);
        h = th_fnv1a(h, out, n * sizeof(float)), h = th_fnv1a(h, rstd, N * sizeof(float));
        h = th_fnv1a(h, dx, n * sizeof(float)), h = th_fnv1a(h, dw, C * sizeof(float));
        free(x), free(w), free(d), free(out), free(rstd), free(dx), free(dw);
    }
    { /* RoPE: 3 x 67 rows of 8 + 2 + 2 heads of 32 */
        const int B = 3, T = 67, NH = 8, NKV = 2, hs = 32;
        size_t n = (size_t)B * T * (NH + 2 * NKV) * hs;
        float *ct = zeros((size_t)T * hs / 2), *st = zeros((size_t)T * hs / 2);
        gkd_rope_table(ct, st, T, hs, 10000.0f);
        for (int style = 0; style < 2; style++) {
            float *x = rand_array(n, 1.0f, 53), *d = rand_array(n, 1.0f, 54);
            gkd_rope_forward(x, ct, st, B, T, NH, NKV, hs, style);
            gkd_rope_backward(d, ct, st, B, T, NH, NKV, hs, style);
            h = th_fnv1a(h, x, n * sizeof(float)), h = th_fnv1a(h, d, n * sizeof(float));
            free(x), free(d);
        }
        free(ct), free(st);
    }
    { /* SwiGLU: 301 x 64 */
        const int N = 301, F = 64;
        size_t n = (size_t)N * F;
        float *gu = rand_array(2 * n, 3.0f, 55), *d = rand_array(n, 1.0f, 56);
        float *out = zeros(n), *dgu = zeros(2 * n);
        gkd_swiglu_forward(out, gu, N, F);
        gkd_swiglu_backward(dgu, gu, d, N, F);
        h = th_fnv1a(h, out, n * sizeof(float)), h = th_fnv1a(h, dgu, 2 * n * sizeof(float));
        free(gu), free(d), free(out), free(dgu);
    }
    /* GQA: 3 sequences of 40, NH 4, hs 16, with 4, 2 and 1 kv heads */
    for (int NKV = 4; NKV >= 1; NKV /= 2) {
        const int B = 3, T = 40, NH = 4, C = 64;
        const size_t W = gqa_width(C, NH, NKV), nq = (size_t)B * T * W, no = (size_t)B * T * C;
        const size_t na = (size_t)B * NH * T * T;
        float *qkv = rand_array(nq, 1.0f, 57), *d = rand_array(no, 1.0f, 58);
        float *out = zeros(no), *att = zeros(na), *dqkv = zeros(nq), *datt = zeros(na);
        gkd_attention_gqa_forward(out, att, qkv, B, T, C, NH, NKV);
        gkd_attention_gqa_backward(dqkv, datt, d, qkv, att, B, T, C, NH, NKV);
        h = th_fnv1a(h, out, no * sizeof(float)), h = th_fnv1a(h, att, na * sizeof(float));
        h = th_fnv1a(h, dqkv, nq * sizeof(float));
        free(qkv), free(d), free(out), free(att), free(dqkv), free(datt);
    }
    return h;
}

START_TEST(test_thread_count_independent) {
    int saved = omp_get_max_threads();
    uint64_t h1 = run_all(1), h2 = run_all(2), h3 = run_all(3);
    omp_set_num_threads(saved);
    ck_assert_msg(h1 == h2 && h1 == h3, "1 thread %016llx, 2 threads %016llx, 3 threads %016llx",
                  (unsigned long long)h1, (unsigned long long)h2, (unsigned long long)h3);
}
END_TEST

Suite *layers_llama_suite(void) {
    Suite *s = suite_create("layers_llama");
    TCase *tc = tcase_create("llama_layers");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_rmsnorm_backward);
    tcase_add_test(tc, test_rmsnorm_vs_pytorch);
    tcase_add_test(tc, test_rope_table);
    tcase_add_test(tc, test_rope_row_pairs);
    tcase_add_loop_test(tc, test_rope_backward, 0, 2);
    tcase_add_test(tc, test_rope_vs_pytorch);
    tcase_add_test(tc, test_swiglu_backward);
    tcase_add_test(tc, test_swiglu_vs_pytorch);
    tcase_add_loop_test(tc, test_gqa_backward, 0, (int)(sizeof gqa_shapes / sizeof gqa_shapes[0]));
    tcase_add_loop_test(tc, test_gqa_matches_mha, 0, PRODUCT_VARIANTS);
    tcase_add_test(tc, test_gqa_vs_pytorch);
    tcase_add_test(tc, test_thread_count_independent);
    suite_add_tcase(s, tc);
    return s;
}
