/* Divergences: PyTorch fixtures (tools/ref_divergence.py), closed forms,
 * central finite differences, limits and properties, and the pg_rkl pieces.
 *
 * Tolerances. Values are computed in double from the same float32 logits as
 * the float64 reference; they differ only by summation order and the
 * log-sum-exp formulation, a few ulps of the largest term (logit differences
 * up to 160 in the extreme cases), hence 1e-10 relative + 1e-12 absolute.
 * Gradients are written once into a zeroed float buffer, so they carry one
 * float rounding (2^-24 relative) on top of the double error: 1.5e-7
 * relative + 1e-11 absolute. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/divergence.h"
#include "gkd/error.h"
#include "gkd/rng.h"

static const gkd_divergence ALL[] = {
    {GKD_DIV_FKL, 0},   {GKD_DIV_RKL, 0},   {GKD_DIV_JSD, 0.1}, {GKD_DIV_JSD, 0.5},
    {GKD_DIV_JSD, 0.9}, {GKD_DIV_SKL, 0.1}, {GKD_DIV_SKL, 0.5}, {GKD_DIV_SRKL, 0.1},
    {GKD_DIV_SRKL, 0.5}, {GKD_DIV_TVD, 0},
};
#define NALL ((int)(sizeof ALL / sizeof ALL[0]))

static double div1(gkd_divergence d, const float *zs, const float *zt, int V, float tau, float *grad) {
    return gkd_divergence_eval(&d, zs, zt, NULL, 1, V, tau, 1.0f, NULL, grad);
}

static void random_logits(float *z, int n, float s, uint64_t stream) {
    gkd_rng r = gkd_rng_derive(99, GKD_RNG_DATA, stream, 0);
    for (int i = 0; i < n; i++) z[i] = s * gkd_rng_normal(&r);
}

/* ---- fixture ---- */

typedef struct {
    const unsigned char *p, *end;
} reader;

static void rd(reader *r, void *dst, size_t n) {
    ck_assert_msg((size_t)(r->end - r->p) >= n, "fixture truncated");
    memcpy(dst, r->p, n);
    r->p += n;
}

START_TEST(test_against_pytorch) {
    char path[4096];
    const char *root = getenv("GKD_ROOT");
    snprintf(path, sizeof path, "%s/tests/fixtures/divergence.bin", root ? root : ".");
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    ck_assert(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    reader r = {buf, buf + size};
    char magic[8];
    rd(&r, magic, 8);
    ck_assert(memcmp(magic, "GKDDIV01", 8) == 0);
    int32_t ncases;
    rd(&r, &ncases, 4);
    ck_assert_int_ge(ncases, 9);
    int checked = 0;
    for (int c = 0; c < ncases; c++) {
        int32_t N, V, ndiv;
        float tau;
        char label[17] = {0};
        rd(&r, &N, 4), rd(&r, &V, 4), rd(&r, &tau, 4), rd(&r, &ndiv, 4), rd(&r, label, 16);
        size_t NV = (size_t)N * V;
        float *zs = malloc(NV * 4), *zt = malloc(NV * 4), *g = malloc(NV * 4), *vals = malloc(N * 4);
        double *rv = malloc(N * 8), *rg = malloc(NV * 8);
        rd(&r, zs, NV * 4), rd(&r, zt, NV * 4);
        for (int k = 0; k < ndiv; k++) {
            int32_t kind;
            double param;
            rd(&r, &kind, 4), rd(&r, &param, 8), rd(&r, rv, N * 8), rd(&r, rg, NV * 8);
            gkd_divergence d = {(gkd_divergence_kind)kind, param};
            memset(g, 0, NV * 4);
            double sum = gkd_divergence_eval(&d, zs, zt, NULL, N, V, tau, 1.0f, vals, g);
            double rsum = 0;
            for (int n = 0; n < N; n++) {
                double v = div1(d, zs + n * V, zt + n * V, V, tau, NULL);
                ck_assert_msg(fabs(v - rv[n]) <= 1e-10 * fabs(rv[n]) + 1e-12,
                              "%s kind %d(%g) row %d: %.17g vs ref %.17g", label, kind, param, n, v, rv[n]);
                ck_assert(vals[n] == (float)v);
                rsum += rv[n];
            }
            ck_assert_msg(fabs(sum - rsum) <= 1e-10 * fabs(rsum) + 1e-11, "%s sum", label);
            for (size_t i = 0; i < NV; i++)
                ck_assert_msg(fabs(g[i] - rg[i]) <= 1.5e-7 * fabs(rg[i]) + 1e-11,
                              "%s kind %d(%g) grad %zu: %.9g vs ref %.17g", label, kind, param, i,
                              g[i], rg[i]);
            checked++;
        }
        free(zs), free(zt), free(g), free(vals), free(rv), free(rg);
    }
    ck_assert(r.p == r.end);
    ck_assert_int_ge(checked, 90);
    free(buf);
}
END_TEST

/* ---- closed forms ---- */

/* Two-point distributions: logits (0, s) give (1 - sigma(s), sigma(s)). */
START_TEST(test_two_point_closed_forms) {
    const float ss[] = {0.0f, 1.5f, -2.25f, 6.0f}, ts[] = {0.5f, -1.0f, 3.0f, -7.5f};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            float zs[2] = {0.0f, ss[a]}, zt[2] = {0.0f, ts[b]};
            double q1 = 1.0 / (1.0 + exp(-(double)ss[a])), p1 = 1.0 / (1.0 + exp(-(double)ts[b]));
            double q[2] = {1 - q1, q1}, p[2] = {1 - p1, p1};
            double kl_pq = 0, kl_qp = 0;
            for (int i = 0; i < 2; i++) kl_pq += p[i] * log(p[i] / q[i]), kl_qp += q[i] * log(q[i] / p[i]);
            ck_assert_double_eq_tol(div1(ALL[0], zs, zt, 2, 1.0f, NULL), kl_pq, 1e-12);
            ck_assert_double_eq_tol(div1(ALL[1], zs, zt, 2, 1.0f, NULL), kl_qp, 1e-12);
            ck_assert_double_eq_tol(div1(ALL[9], zs, zt, 2, 1.0f, NULL), fabs(p1 - q1), 1e-14);
            const double betas[] = {0.1, 0.5, 0.9};
            for (int k = 0; k < 3; k++) {
                double be = betas[k], j = 0;
                for (int i = 0; i < 2; i++) {
                    double m = be * p[i] + (1 - be) * q[i];
                    j += be * p[i] * log(p[i] / m) + (1 - be) * q[i] * log(q[i] / m);
                }
                gkd_divergence d = {GKD_DIV_JSD, be};
                ck_assert_double_eq_tol(div1(d, zs, zt, 2, 1.0f, NULL), j, 1e-12);
                double sk = 0, srk = 0;
                for (int i = 0; i < 2; i++) {
                    sk += p[i] * log(p[i] / (be * p[i] + (1 - be) * q[i]));
                    srk += q[i] * log(q[i] / ((1 - be) * p[i] + be * q[i]));
                }
                gkd_divergence dk = {GKD_DIV_SKL, be}, dr = {GKD_DIV_SRKL, be};
                ck_assert_double_eq_tol(div1(dk, zs, zt, 2, 1.0f, NULL), sk, 1e-12);
                ck_assert_double_eq_tol(div1(dr, zs, zt, 2, 1.0f, NULL), srk, 1e-12);
            }
            /* fkl gradient (q - p)/tau in closed form, tau = 2. */
            float g[2] = {0, 0};
            div1(ALL[0], zs, zt, 2, 2.0f, g);
            double q1t = 1.0 / (1.0 + exp(-(double)ss[a] / 2)), p1t = 1.0 / (1.0 + exp(-(double)ts[b] / 2));
            ck_assert_double_eq_tol(g[1], (q1t - p1t) / 2, 1e-7);
            ck_assert_double_eq_tol(g[0], -(q1t - p1t) / 2, 1e-7);
        }
}
END_TEST

/* p = (1/2, 1/2) and q = (1/4, 3/4) by hand. */
START_TEST(test_hand_values) {
    float zt[2] = {0.0f, 0.0f}, zs[2] = {0.0f, 1.0f};
    /* q1 from the float logit actually passed (log 3 is not a float). */
    float l3 = (float)log(3.0);
    zs[1] = l3;
    double e = exp((double)l3), q0 = 1 / (1 + e), q1 = e / (1 + e);
    ck_assert_double_eq_tol(q1, 0.75, 1e-7);
    double fkl = 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1);
    double rkl = q0 * log(q0 / 0.5) + q1 * log(q1 / 0.5);
    ck_assert_double_eq_tol(div1(ALL[0], zs, zt, 2, 1.0f, NULL), fkl, 1e-15);
    ck_assert_double_eq_tol(div1(ALL[1], zs, zt, 2, 1.0f, NULL), rkl, 1e-15);
    ck_assert_double_eq_tol(div1(ALL[9], zs, zt, 2, 1.0f, NULL), q1 - 0.5, 1e-15);
    /* And against the exact rationals within the float rounding of log 3. */
    ck_assert_double_eq_tol(div1(ALL[0], zs, zt, 2, 1.0f, NULL), 0.5 * log(4.0 / 3.0), 1e-7);
    ck_assert_double_eq_tol(div1(ALL[9], zs, zt, 2, 1.0f, NULL), 0.25, 1e-7);
    ck_assert_double_eq_tol(div1(ALL[3], zs, zt, 2, 1.0f, NULL),
                            0.5 * (0.5 * log(4.0 / 3) + 0.5 * log(4.0 / 5)) +
                                0.5 * (0.25 * log(2.0 / 3) + 0.75 * log(6.0 / 5)),
                            1e-7);
}
END_TEST

/* ---- gradients: central finite differences ---- */

START_TEST(test_finite_differences) {
    enum { V = 9 };
    /* Logits on a 2^-6 grid and h = 2^-10, so z +- h is exact in float. */
    const double h = 1.0 / 1024;
    const float taus[] = {1.0f, 0.5f, 2.0f};
    for (int ti = 0; ti < 3; ti++)
        for (int rep = 0; rep < 3; rep++) {
            float zs[V], zt[V];
            random_logits(zs, V, 1.5f, 10 + rep);
            random_logits(zt, V, 1.5f, 20 + rep);
            for (int i = 0; i < V; i++) zs[i] = roundf(zs[i] * 64) / 64, zt[i] = roundf(zt[i] * 64) / 64;
            for (int k = 0; k < NALL; k++) {
                float g[V] = {0};
                div1(ALL[k], zs, zt, V, taus[ti], g);
                for (int j = 0; j < V; j++) {
                    float zp[V], zm[V];
                    memcpy(zp, zs, sizeof zp), memcpy(zm, zs, sizeof zm);
                    zp[j] = (float)(zs[j] + h), zm[j] = (float)(zs[j] - h);
                    ck_assert(zp[j] - zm[j] == (float)(2 * h));
                    double fd = (div1(ALL[k], zp, zt, V, taus[ti], NULL) -
                                 div1(ALL[k], zm, zt, V, taus[ti], NULL)) / (2 * h);
                    /* Truncation h^2/6 f''' <= ~1e-6 here; float gradient 1e-7. */
                    ck_assert_msg(fabs(g[j] - fd) <= 2e-6 + 1e-5 * fabs(fd),
                                  "kind %d(%g) tau %g j %d: analytic %.9g fd %.9g", ALL[k].kind,
                                  ALL[k].param, taus[ti], j, g[j], fd);
                }
            }
        }
}
END_TEST

/* ---- properties ---- */

START_TEST(test_nonnegative_and_zero_iff_equal) {
    enum { V = 31 };
    for (int rep = 0; rep < 20; rep++) {
        float zs[V], zt[V];
        random_logits(zs, V, 0.5f + rep, 100 + rep);
        random_logits(zt, V, 0.5f + rep, 200 + rep);
        for (int k = 0; k < NALL; k++) {
            double v = div1(ALL[k], zs, zt, V, 1.0f, NULL);
            ck_assert_msg(v > 1e-6, "kind %d rep %d: %g", ALL[k].kind, rep, v);
            double same = div1(ALL[k], zs, zs, V, 1.0f, NULL);
            float g[V] = {0};
            div1(ALL[k], zs, zs, V, 1.0f, g);
            ck_assert_msg(fabs(same) <= 1e-15, "kind %d: D(p,p) = %g", ALL[k].kind, same);
            for (int j = 0; j < V; j++) ck_assert_msg(fabs(g[j]) <= 1e-14, "kind %d grad %g", ALL[k].kind, g[j]);
            /* Shifting the teacher logits by a constant changes nothing. */
            float zt2[V];
            for (int j = 0; j < V; j++) zt2[j] = zs[j] + 4.0f;
            ck_assert(fabs(div1(ALL[k], zs, zt2, V, 1.0f, NULL)) <= 1e-6);
        }
        ck_assert(div1(ALL[9], zs, zt, V, 1.0f, NULL) <= 1.0);
    }
    /* Disjoint one-hots: tvd reaches 1 (and not more). */
    float a[4] = {80, -80, -80, -80}, b[4] = {-80, 80, -80, -80};
    double t = div1(ALL[9], a, b, 4, 1.0f, NULL);
    ck_assert(t <= 1.0 && t > 1.0 - 1e-12);
}
END_TEST

START_TEST(test_skew_limits) {
    enum { V = 12 };
    float zs[V], zt[V];
    random_logits(zs, V, 2.0f, 300);
    random_logits(zt, V, 2.0f, 301);
    double fkl = div1(ALL[0], zs, zt, V, 1.0f, NULL), rkl = div1(ALL[1], zs, zt, V, 1.0f, NULL);
    float gf[V] = {0}, gr[V] = {0}, g0[V] = {0}, g1[V] = {0};
    div1(ALL[0], zs, zt, V, 1.0f, gf);
    div1(ALL[1], zs, zt, V, 1.0f, gr);
    /* alpha = 0 is exactly fkl / rkl, value and gradient. */
    gkd_divergence s0 = {GKD_DIV_SKL, 0.0}, r0 = {GKD_DIV_SRKL, 0.0};
    ck_assert(div1(s0, zs, zt, V, 1.0f, g0) == fkl);
    ck_assert(div1(r0, zs, zt, V, 1.0f, g1) == rkl);
    ck_assert(memcmp(g0, gf, sizeof gf) == 0 && memcmp(g1, gr, sizeof gr) == 0);
    /* alpha -> 0 converges linearly: once in the asymptotic regime
     * (alpha <= 1e-2 here) each decade of alpha is a decade of error. */
    double prev_s = 0, prev_r = 0;
    for (int e = 2; e <= 7; e++) {
        double a = pow(10.0, -e);
        gkd_divergence s = {GKD_DIV_SKL, a}, r = {GKD_DIV_SRKL, a};
        double es = fabs(div1(s, zs, zt, V, 1.0f, NULL) - fkl);
        double er = fabs(div1(r, zs, zt, V, 1.0f, NULL) - rkl);
        if (e > 2) {
            ck_assert_msg(prev_s / es > 7 && prev_s / es < 13, "skl alpha %g: %g -> %g", a, prev_s, es);
            ck_assert_msg(prev_r / er > 7 && prev_r / er < 13, "srkl alpha %g: %g -> %g", a, prev_r, er);
        }
        prev_s = es, prev_r = er;
    }
    ck_assert(prev_s < 1e-5 * fkl && prev_r < 1e-5 * rkl);
}
END_TEST

/* JSD(beta)/beta -> KL(p||q) as beta -> 0 (error O(beta)) and
 * JSD(beta)/(1-beta) -> KL(q||p) as beta -> 1. */
START_TEST(test_jsd_endpoint_limits) {
    enum { V = 10 };
    float zs[V], zt[V];
    random_logits(zs, V, 1.5f, 400);
    random_logits(zt, V, 1.5f, 401);
    double fkl = div1(ALL[0], zs, zt, V, 1.0f, NULL), rkl = div1(ALL[1], zs, zt, V, 1.0f, NULL);
    double prev0 = INFINITY, prev1 = INFINITY;
    for (double b = 1e-1; b >= 1e-5; b /= 10) {
        gkd_divergence d0 = {GKD_DIV_JSD, b}, d1 = {GKD_DIV_JSD, 1 - b};
        double e0 = fabs(div1(d0, zs, zt, V, 1.0f, NULL) / b - fkl);
        double e1 = fabs(div1(d1, zs, zt, V, 1.0f, NULL) / b - rkl);
        /* One decade of beta buys about one decade of error. */
        ck_assert_msg(e0 < prev0 / 5, "beta %g: err %g (prev %g)", b, e0, prev0);
        ck_assert_msg(e1 < prev1 / 5 || e1 < 1e-9, "1-beta %g: err %g (prev %g)", b, e1, prev1);
        prev0 = e0, prev1 = e1;
    }
    ck_assert(prev0 < 1e-4 * fkl);
    ck_assert(prev1 < 1e-4 * rkl);
}
END_TEST

START_TEST(test_extreme_logits_finite) {
    enum { N = 16, V = 21 };
    static float zs[N * V], zt[N * V], g[N * V], vals[N];
    gkd_rng r = gkd_rng_derive(5, GKD_RNG_DATA, 0, 0);
    for (int i = 0; i < N * V; i++) {
        zs[i] = gkd_rng_u32(&r) & 1 ? 80.0f : -80.0f;
        zt[i] = (float)(gkd_rng_double(&r) * 160 - 80);
    }
    zs[3 * V] = 80.0f; /* one-hot rows */
    for (int j = 1; j < V; j++) zs[3 * V + j] = -80.0f;
    const float taus[] = {1.0f, 0.1f, 0.01f, 10.0f};
    for (int ti = 0; ti < 4; ti++)
        for (int k = 0; k < NALL; k++) {
            memset(g, 0, sizeof g);
            double s = gkd_divergence_eval(&ALL[k], zs, zt, NULL, N, V, taus[ti], 1.0f, vals, g);
            ck_assert_msg(isfinite(s), "kind %d tau %g", ALL[k].kind, taus[ti]);
            for (int n = 0; n < N; n++) ck_assert(isfinite(vals[n]) && vals[n] >= -1e-6f);
            for (int i = 0; i < N * V; i++) ck_assert_msg(isfinite(g[i]), "kind %d tau %g", ALL[k].kind, taus[ti]);
        }
    /* At tau = 0.01 both rows are one-hot in double: the disjoint one has
     * tvd 1 and fkl = (z_1 - z_0 of the student)/tau = 160/tau (q_1 ~ e^-16000). */
    float a[3] = {80, -80, 0}, b[3] = {-80, 80, 0};
    double f = div1(ALL[0], a, b, 3, 0.01f, NULL);
    ck_assert(isfinite(f));
    /* 1/0.01f is not 100: use the float tau actually passed. */
    ck_assert_double_eq_tol(f, 160.0 / (double)0.01f, 1e-9);
    ck_assert_double_eq_tol(div1(ALL[9], a, b, 3, 0.01f, NULL), 1.0, 1e-15);
}
END_TEST

START_TEST(test_weight_scale_and_accumulate) {
    enum { N = 5, V = 8 };
    float zs[N * V], zt[N * V];
    random_logits(zs, N * V, 2.0f, 500);
    random_logits(zt, N * V, 2.0f, 501);
    const float w[N] = {1.0f, 0.0f, 2.0f, 0.5f, 0.0f};
    for (int k = 0; k < NALL; k++) {
        float g1[N * V] = {0}, gw[N * V], v1[N], vw[N];
        for (int i = 0; i < N * V; i++) gw[i] = 0.25f;
        double s1 = gkd_divergence_eval(&ALL[k], zs, zt, NULL, N, V, 1.3f, 1.0f, v1, g1);
        double sw = gkd_divergence_eval(&ALL[k], zs, zt, w, N, V, 1.3f, 1.0f, vw, gw);
        double expect = 0, all = 0;
        for (int n = 0; n < N; n++) expect += w[n] * (double)v1[n], all += v1[n];
        ck_assert_double_eq_tol(s1, all, 1e-6 * all);
        ck_assert_double_eq_tol(sw, expect, 1e-6 * expect);
        for (int n = 0; n < N; n++) {
            ck_assert(vw[n] == (w[n] != 0.0f ? v1[n] : 0.0f));
            for (int j = 0; j < V; j++) {
                int i = n * V + j;
                /* Masked rows untouched; weights 2 and 0.5 scale exactly. */
                if (w[n] == 0.0f) ck_assert(gw[i] == 0.25f);
                else ck_assert_msg(gw[i] == 0.25f + w[n] * g1[i], "n %d j %d", n, j);
            }
        }
        /* scale multiplies, and a second call adds the same again. */
        float g2[N * V] = {0};
        gkd_divergence_eval(&ALL[k], zs, zt, NULL, N, V, 1.3f, 0.5f, NULL, g2);
        for (int i = 0; i < N * V; i++) ck_assert(g2[i] == 0.5f * g1[i]);
        gkd_divergence_eval(&ALL[k], zs, zt, NULL, N, V, 1.3f, 0.5f, NULL, g2);
        for (int i = 0; i < N * V; i++) ck_assert(g2[i] == g1[i]);
        /* values may be NULL and dstudent NULL gives the same sum. */
        ck_assert(gkd_divergence_eval(&ALL[k], zs, zt, w, N, V, 1.3f, 1.0f, NULL, NULL) == sw);
    }
}
END_TEST

START_TEST(test_thread_determinism) {
    enum { N = 1500, V = 33 }; /* more rows than one internal chunk */
    float *zs = malloc(N * V * 4), *zt = malloc(N * V * 4), *w = malloc(N * 4);
    float *g1 = calloc(N * V, 4), *g2 = calloc(N * V, 4), *v1 = malloc(N * 4), *v2 = malloc(N * 4);
    random_logits(zs, N * V, 3.0f, 600);
    random_logits(zt, N * V, 3.0f, 601);
    for (int n = 0; n < N; n++) w[n] = (float)(n % 7) / 3.0f;
    int saved = omp_get_max_threads();
    for (int k = 0; k < NALL; k++) {
        memset(g1, 0, N * V * 4), memset(g2, 0, N * V * 4);
        omp_set_num_threads(1);
        double s1 = gkd_divergence_eval(&ALL[k], zs, zt, w, N, V, 0.8f, 1.0f, v1, g1);
        omp_set_num_threads(2);
        double s2 = gkd_divergence_eval(&ALL[k], zs, zt, w, N, V, 0.8f, 1.0f, v2, g2);
        ck_assert(memcmp(&s1, &s2, sizeof s1) == 0);
        ck_assert(memcmp(v1, v2, N * 4) == 0);
        ck_assert(memcmp(g1, g2, (size_t)N * V * 4) == 0);
    }
    omp_set_num_threads(saved);
    free(zs), free(zt), free(w), free(g1), free(g2), free(v1), free(v2);
}
END_TEST

/* Rows evaluated in pieces (a teacher's head run a chunk of rows at a
 * time), each piece continuing the sum of the one before, give the bits of
 * one call: the sum, the values and the gradient. Pieces of 1, 100, 256
 * and 777 rows against one call over 1500 rows (the internal chunks are
 * 512: pieces cross them), with 1 and 2 threads. */
START_TEST(test_continued_sum_is_one_sum) {
    enum { N = 1500, V = 33 };
    float *zs = malloc(N * V * 4), *zt = malloc(N * V * 4), *w = malloc(N * 4);
    float *g1 = calloc(N * V, 4), *g2 = calloc(N * V, 4), *v1 = malloc(N * 4), *v2 = malloc(N * 4);
    random_logits(zs, N * V, 3.0f, 610);
    random_logits(zt, N * V, 3.0f, 611);
    for (int n = 0; n < N; n++) w[n] = (float)(n % 5) / 3.0f; /* weight 0 rows too */
    const int pieces[] = {1, 100, 256, 777};
    int saved = omp_get_max_threads();
    for (int k = 0; k < NALL; k++) {
        memset(g1, 0, N * V * 4);
        double whole = gkd_divergence_eval(&ALL[k], zs, zt, w, N, V, 0.8f, 0.5f, v1, g1);
        for (int p = 0; p < 4; p++) {
            omp_set_num_threads(1 + p % 2);
            memset(g2, 0, N * V * 4);
            memset(v2, 0xff, N * 4);
            double total = 0.0;
            for (int r0 = 0; r0 < N; r0 += pieces[p]) {
                const int n = N - r0 < pieces[p] ? N - r0 : pieces[p];
                const size_t o = (size_t)r0 * V;
                total = gkd_divergence_eval_continue(total, &ALL[k], zs + o, zt + o, w + r0, n, V, 0.8f, 0.5f,
                                                     v2 + r0, g2 + o);
            }
            ck_assert_msg(memcmp(&whole, &total, sizeof total) == 0, "divergence %d, pieces of %d: %.17g vs %.17g",
                          k, pieces[p], total, whole);
            ck_assert(memcmp(v1, v2, N * 4) == 0);
            ck_assert(memcmp(g1, g2, (size_t)N * V * 4) == 0);
        }
    }
    /* a sum to continue is added to, not restarted */
    double direct = gkd_divergence_eval(&ALL[0], zs, zt, w, 3, V, 0.8f, 0.5f, NULL, NULL);
    ck_assert(direct > 0.1);
    ck_assert_double_eq_tol(gkd_divergence_eval_continue(1.0, &ALL[0], zs, zt, w, 3, V, 0.8f, 0.5f, NULL, NULL),
                            1.0 + direct, 1e-12);
    omp_set_num_threads(saved);
    free(zs), free(zt), free(w), free(g1), free(g2), free(v1), free(v2);
}
END_TEST

/* ---- parse / format ---- */

START_TEST(test_parse_format) {
    const struct {
        const char *in, *canon;
        gkd_divergence_kind kind;
        double param;
    } ok[] = {
        {"fkl", "fkl", GKD_DIV_FKL, 0},          {"rkl", "rkl", GKD_DIV_RKL, 0},
        {"jsd", "jsd(0.5)", GKD_DIV_JSD, 0.5},   {"jsd(0.9)", "jsd(0.9)", GKD_DIV_JSD, 0.9},
        {"jsd(0.1)", "jsd(0.1)", GKD_DIV_JSD, 0.1}, {"skl", "skl(0.1)", GKD_DIV_SKL, 0.1},
        {"skl(0.1)", "skl(0.1)", GKD_DIV_SKL, 0.1}, {"srkl(0.25)", "srkl(0.25)", GKD_DIV_SRKL, 0.25},
        {"srkl", "srkl(0.1)", GKD_DIV_SRKL, 0.1}, {"skl(0)", "skl(0)", GKD_DIV_SKL, 0},
        {"tvd", "tvd", GKD_DIV_TVD, 0},          {"ce", "ce", GKD_DIV_CE, 0},
        {"pg_rkl", "pg_rkl", GKD_DIV_PG_RKL, 0}, {"jsd(1e-3)", "jsd(0.001)", GKD_DIV_JSD, 1e-3},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        gkd_divergence d;
        ck_assert_msg(gkd_divergence_parse(&d, ok[i].in) == 0, "%s: %s", ok[i].in, gkd_last_error());
        ck_assert_int_eq(d.kind, ok[i].kind);
        ck_assert(d.param == ok[i].param);
        char buf[32];
        ck_assert_str_eq(gkd_divergence_format(&d, buf, sizeof buf), ok[i].canon);
        gkd_divergence back;
        ck_assert(gkd_divergence_parse(&back, buf) == 0 && back.kind == d.kind && back.param == d.param);
    }
    gkd_divergence d;
    ck_assert_int_eq(gkd_divergence_parse(&d, "jsd(0)"), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(),
                     "jsd(0): beta must be in (0, 1); use fkl or rkl for the endpoints "
                     "(JSD(beta)/beta -> KL(p||q) as beta -> 0)");
    ck_assert_int_eq(gkd_divergence_parse(&d, "jsd(1)"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "use fkl or rkl") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "jsd(-0.2)"), GKD_EINVAL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "skl(1)"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "alpha must be in [0, 1)") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "srkl(-0.1)"), GKD_EINVAL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "jsd(abc)"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "not a number") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "jsd(0.5"), GKD_EINVAL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "jsd()"), GKD_EINVAL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "fkl(0.1)"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "takes no parameter") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "fkll"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "did you mean 'fkl'") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "JSD(0.5)"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "did you mean 'jsd'") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, "wasserstein"), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "one of") != NULL);
    ck_assert_int_eq(gkd_divergence_parse(&d, ""), GKD_EINVAL);
}
END_TEST

/* A divergence built by hand is checked before the per-position functions,
 * which assert what the check guarantees. */
START_TEST(test_check) {
    const gkd_divergence good[] = {{GKD_DIV_FKL, 0}, {GKD_DIV_JSD, 0.5}, {GKD_DIV_SKL, 0},
                                   {GKD_DIV_SRKL, 0.9}, {GKD_DIV_TVD, 0}, {GKD_DIV_PG_RKL, 0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(gkd_divergence_check(&good[i], 0.5f) == 0, "%s", gkd_last_error());
    const gkd_divergence ce = {GKD_DIV_CE, 0}; /* tau is not used by ce */
    ck_assert_int_eq(gkd_divergence_check(&ce, 0.0f), 0);
    const gkd_divergence jsd0 = {GKD_DIV_JSD, 0}, skl1 = {GKD_DIV_SKL, 1}, bad = {(gkd_divergence_kind)99, 0};
    ck_assert_int_eq(gkd_divergence_check(&jsd0, 1.0f), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "jsd(0): beta must be in (0, 1)"));
    ck_assert_int_eq(gkd_divergence_check(&skl1, 1.0f), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "skl(1): alpha must be in [0, 1)"));
    ck_assert_int_eq(gkd_divergence_check(&bad, 1.0f), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "kind 99"));
    const float taus[] = {0.0f, -1.0f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof taus / sizeof taus[0]; i++) {
        ck_assert_int_eq(gkd_divergence_check(&good[1], taus[i]), GKD_EINVAL);
        ck_assert_ptr_nonnull(strstr(gkd_last_error(), "jsd(0.5): the loss temperature must be > 0"));
    }
}
END_TEST

/* ---- pg_rkl ---- */

START_TEST(test_pg_rewards_and_score_identity) {
    enum { V = 7 };
    float zs[V], zt[V];
    random_logits(zs, V, 1.5f, 700);
    random_logits(zt, V, 1.5f, 701);
    const float tau = 1.5f;
    double lq0 = 0, lp0 = 0;
    for (int i = 0; i < V; i++) lq0 += exp(zs[i] / (double)tau), lp0 += exp(zt[i] / (double)tau);
    lq0 = log(lq0), lp0 = log(lp0);
    double rkl = div1(ALL[1], zs, zt, V, tau, NULL);
    float grkl[V] = {0};
    div1(ALL[1], zs, zt, V, tau, grkl);
    /* E_{y~q}[-r(y)] = KL(q||p) and E_{y~q}[grad of -r(y) log q(y)] =
     * grad KL(q||p) (score-function identity). */
    double e_negr = 0, e_grad[V] = {0};
    for (int y = 0; y < V; y++) {
        float r;
        gkd_pg_rkl_rewards(&r, zs, zt, &y, NULL, 1, V, tau);
        double lq = zs[y] / (double)tau - lq0, lp = zt[y] / (double)tau - lp0;
        ck_assert_double_eq_tol(r, lp - lq, 1e-6 * fabs(lp - lq) + 1e-12);
        double q = exp(lq);
        e_negr += q * -(lp - lq);
        float A = (float)(lp - lq), g[V] = {0};
        double L = gkd_pg_loss(zs, &y, &A, NULL, 1, V, tau, 1.0f, g);
        ck_assert_double_eq_tol(L, -(double)A * lq, 1e-12);
        for (int j = 0; j < V; j++) {
            double want = -(double)A * ((j == y) - exp(zs[j] / (double)tau - lq0)) / tau;
            ck_assert_double_eq_tol(g[j], want, 1e-7 * fabs(want) + 1e-12);
            e_grad[j] += q * g[j];
        }
    }
    ck_assert_double_eq_tol(e_negr, rkl, 1e-12);
    for (int j = 0; j < V; j++) ck_assert_double_eq_tol(e_grad[j], grkl[j], 1e-6);
}
END_TEST

START_TEST(test_pg_advantages_and_masking) {
    enum { B = 2, T = 5 };
    const float r[B * T] = {1, 2, 3, 4, 5, -1, 0.5f, 0.25f, 8, 9};
    const float w[B * T] = {0, 1, 1, 1, 0, 1, 1, 0, 1, 0};
    float a[B * T];
    gkd_pg_advantages(a, r, w, B, T, GKD_PG_PER_TOKEN);
    const float per[B * T] = {0, 2, 3, 4, 0, -1, 0.5f, 0, 8, 0};
    ck_assert(memcmp(a, per, sizeof a) == 0);
    gkd_pg_advantages(a, r, w, B, T, GKD_PG_REWARD_TO_GO);
    const float rtg[B * T] = {0, 9, 7, 4, 0, 7.5f, 8.5f, 0, 8, 0};
    ck_assert(memcmp(a, rtg, sizeof a) == 0);
    gkd_pg_advantages(a, r, NULL, B, T, GKD_PG_REWARD_TO_GO);
    ck_assert(a[0] == 15 && a[4] == 5 && a[5] == 16.75f);

    /* Masked rows: zero reward, no loss, gradient untouched. */
    enum { V = 6 };
    float zs[B * T * V], zt[B * T * V], rew[B * T], g[B * T * V];
    int y[B * T];
    random_logits(zs, B * T * V, 2.0f, 800);
    random_logits(zt, B * T * V, 2.0f, 801);
    for (int n = 0; n < B * T; n++) y[n] = (n * 5) % V;
    double s = gkd_pg_rkl_rewards(rew, zs, zt, y, w, B * T, V, 1.0f);
    double sum = 0;
    for (int n = 0; n < B * T; n++) {
        if (w[n] == 0) ck_assert(rew[n] == 0.0f);
        sum += rew[n];
    }
    ck_assert_double_eq_tol(s, sum, 1e-5);
    for (int i = 0; i < B * T * V; i++) g[i] = 1.0f;
    gkd_pg_loss(zs, y, rew, w, B * T, V, 1.0f, 1.0f, g);
    for (int n = 0; n < B * T; n++) {
        double rs = 0;
        for (int j = 0; j < V; j++) rs += g[n * V + j] - 1.0f;
        ck_assert_double_eq_tol(rs, 0.0, 1e-6); /* onehot - q sums to 0 */
        if (w[n] == 0)
            for (int j = 0; j < V; j++) ck_assert(g[n * V + j] == 1.0f);
    }
}
END_TEST

START_TEST(test_pg_loss_finite_differences) {
    enum { N = 3, V = 8 };
    float zs[N * V];
    random_logits(zs, N * V, 1.0f, 900);
    for (int i = 0; i < N * V; i++) zs[i] = roundf(zs[i] * 64) / 64;
    const int y[N] = {0, 5, 7};
    const float A[N] = {0.75f, -2.0f, 1.5f}, w[N] = {1.0f, 0.5f, 2.0f};
    float g[N * V] = {0};
    gkd_pg_loss(zs, y, A, w, N, V, 0.7f, 1.0f, g);
    const double h = 1.0 / 1024;
    for (int i = 0; i < N * V; i++) {
        float zp[N * V], zm[N * V];
        memcpy(zp, zs, sizeof zp), memcpy(zm, zs, sizeof zm);
        zp[i] += (float)h, zm[i] -= (float)h;
        double fd = (gkd_pg_loss(zp, y, A, w, N, V, 0.7f, 1.0f, NULL) -
                     gkd_pg_loss(zm, y, A, w, N, V, 0.7f, 1.0f, NULL)) / (2 * h);
        ck_assert_msg(fabs(g[i] - fd) <= 2e-6 + 1e-5 * fabs(fd), "i %d: %g vs %g", i, g[i], fd);
    }
}
END_TEST

Suite *divergence_suite(void) {
    Suite *s = suite_create("divergence");
    TCase *tc = tcase_create("divergence");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_against_pytorch);
    tcase_add_test(tc, test_two_point_closed_forms);
    tcase_add_test(tc, test_hand_values);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_nonnegative_and_zero_iff_equal);
    tcase_add_test(tc, test_skew_limits);
    tcase_add_test(tc, test_jsd_endpoint_limits);
    tcase_add_test(tc, test_extreme_logits_finite);
    tcase_add_test(tc, test_weight_scale_and_accumulate);
    tcase_add_test(tc, test_thread_determinism);
    tcase_add_test(tc, test_continued_sum_is_one_sum);
    tcase_add_test(tc, test_parse_format);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_pg_rewards_and_score_identity);
    tcase_add_test(tc, test_pg_advantages_and_masking);
    tcase_add_test(tc, test_pg_loss_finite_differences);
    suite_add_tcase(s, tc);
    return s;
}
