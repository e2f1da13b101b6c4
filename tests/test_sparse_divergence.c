/* Sparse (top-k) teacher rows and their divergences: PyTorch fixtures
 * (tools/ref_sparse_divergence.py), the dense divergences at k = V, central
 * finite differences, tie-breaking, masking, determinism and bad input.
 *
 * Tolerances against PyTorch are those of test_divergence.c (values 1e-10
 * relative + 1e-12, gradients 1.5e-7 relative + 1e-11): the divergences are
 * evaluated on the fixture's own float rows, so C and the reference start
 * from the same floats. The rows C builds are compared with the
 * reference's separately: ids exactly, log-probabilities within one float
 * rounding (both round a double that differs in the last bits). */
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
#include "gkd/sparse_teacher.h"
#include "helpers.h"

static const gkd_divergence ALL[] = {
    {GKD_DIV_FKL, 0},   {GKD_DIV_RKL, 0},   {GKD_DIV_JSD, 0.1}, {GKD_DIV_JSD, 0.5},
    {GKD_DIV_JSD, 0.9}, {GKD_DIV_SKL, 0.1}, {GKD_DIV_SKL, 0.5}, {GKD_DIV_SRKL, 0.1},
    {GKD_DIV_SRKL, 0.5}, {GKD_DIV_TVD, 0},
};
#define NALL ((int)(sizeof ALL / sizeof ALL[0]))
static const gkd_sparse_mode MODES[] = {GKD_SPARSE_RENORM, GKD_SPARSE_TAIL};

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

/* The value of one row (N = 1) and, if grad, its gradient (accumulated). */
static double sdiv1(gkd_divergence d, gkd_sparse_mode mode, const float *zs, const gkd_sparse_rows *t,
                    float *grad) {
    return gkd_sparse_divergence_eval(&d, mode, zs, t, NULL, 1.0f, NULL, grad);
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

/* |a - b| in units of b's float spacing (equal infinities: 0). */
static double float_ulps(float a, float b) {
    if (a == b) return 0.0;
    return fabs((double)a - (double)b) / ((double)nextafterf(fabsf(b), INFINITY) - (double)fabsf(b));
}

/* Two float roundings of log-probabilities computed in double as
 * z / tau - lse: the doubles differ by a few ulps of the larger of the two
 * terms (|z / tau| <= 160 here, so < 1e-12), which can put the floats one
 * rounding apart, or further apart near 0 where floats are dense. */
static int same_logp(float a, float b) {
    return a == b || float_ulps(a, b) <= 1.0 || fabs((double)a - (double)b) <= 1e-12;
}

START_TEST(test_against_pytorch) {
    size_t size;
    unsigned char *buf = th_read_bytes(th_fixture_path(".", "sparse_divergence.bin"), &size);
    reader r = {buf, buf + size};
    char magic[8];
    rd(&r, magic, 8);
    ck_assert(memcmp(magic, "GKDSPD01", 8) == 0);
    int32_t ncases;
    rd(&r, &ncases, 4);
    ck_assert_int_ge(ncases, 20);
    int checked = 0, ks_seen[4] = {0}; /* k = 1, 5, V/2, V */
    for (int c = 0; c < ncases; c++) {
        int32_t N, V, k, nent;
        float tau;
        char label[17] = {0};
        rd(&r, &N, 4), rd(&r, &V, 4), rd(&r, &k, 4), rd(&r, &tau, 4), rd(&r, label, 16);
        ks_seen[0] |= k == 1, ks_seen[1] |= k == 5, ks_seen[2] |= k == V / 2, ks_seen[3] |= k == V;
        size_t NV = (size_t)N * V, Nk = (size_t)N * k;
        float *zs = malloc(NV * 4), *zt = malloc(NV * 4), *g = malloc(NV * 4), *vals = malloc(N * 4);
        double *rv = malloc(N * 8), *rg = malloc(NV * 8);
        gkd_sparse_rows ref = {.N = N, .V = V, .k = k, .tau = tau};
        ref.ids = malloc(Nk * 4), ref.logp = malloc(Nk * 4), ref.log_tail = malloc(N * 4);
        rd(&r, zs, NV * 4), rd(&r, zt, NV * 4);
        rd(&r, ref.ids, Nk * 4), rd(&r, ref.logp, Nk * 4), rd(&r, ref.log_tail, N * 4);
        ck_assert_msg(gkd_sparse_rows_check(&ref) == 0, "%s: %s", label, gkd_last_error());

        /* The rows gkd builds from the same logits. */
        gkd_sparse_rows mine = build(zt, N, V, k, tau);
        ck_assert_msg(memcmp(mine.ids, ref.ids, Nk * 4) == 0, "%s: top-k ids differ", label);
        for (size_t i = 0; i < Nk; i++)
            ck_assert_msg(same_logp(mine.logp[i], ref.logp[i]), "%s logp %zu: %.9g vs %.9g", label, i,
                          mine.logp[i], ref.logp[i]);
        for (int n = 0; n < N; n++)
            ck_assert_msg(same_logp(mine.log_tail[n], ref.log_tail[n]), "%s tail %d: %.9g vs %.9g",
                          label, n, mine.log_tail[n], ref.log_tail[n]);
        gkd_sparse_rows_free(&mine);

        rd(&r, &nent, 4);
        for (int e = 0; e < nent; e++) {
            int32_t mode, kind;
            double param;
            rd(&r, &mode, 4), rd(&r, &kind, 4), rd(&r, &param, 8), rd(&r, rv, N * 8), rd(&r, rg, NV * 8);
            gkd_divergence d = {(gkd_divergence_kind)kind, param};
            ck_assert_int_eq(gkd_divergence_check(&d, tau), 0);
            memset(g, 0, NV * 4);
            double sum = gkd_sparse_divergence_eval(&d, (gkd_sparse_mode)mode, zs, &ref, NULL, 1.0f, vals, g);
            double rsum = 0;
            for (int n = 0; n < N; n++) {
                ck_assert_msg(fabs(vals[n] - rv[n]) <= 1e-7 * fabs(rv[n]) + 1e-12, "%s", label);
                rsum += rv[n];
            }
            /* Per-row values in double from the sum of single rows. */
            for (int n = 0; n < N; n++) {
                gkd_sparse_rows one = ref;
                one.N = 1, one.ids = ref.ids + (size_t)n * k, one.logp = ref.logp + (size_t)n * k;
                one.log_tail = ref.log_tail + n;
                double v = sdiv1(d, (gkd_sparse_mode)mode, zs + (size_t)n * V, &one, NULL);
                ck_assert_msg(fabs(v - rv[n]) <= 1e-10 * fabs(rv[n]) + 1e-12,
                              "%s mode %d kind %d(%g) row %d: %.17g vs ref %.17g", label, mode, kind, param,
                              n, v, rv[n]);
                ck_assert(vals[n] == (float)v);
            }
            ck_assert_msg(fabs(sum - rsum) <= 1e-10 * fabs(rsum) + 1e-11, "%s sum", label);
            for (size_t i = 0; i < NV; i++)
                ck_assert_msg(fabs(g[i] - rg[i]) <= 1.5e-7 * fabs(rg[i]) + 1e-11,
                              "%s mode %d kind %d(%g) grad %zu: %.9g vs ref %.17g", label, mode, kind,
                              param, i, g[i], rg[i]);
            checked++;
        }
        free(zs), free(zt), free(g), free(vals), free(rv), free(rg);
        free(ref.ids), free(ref.logp), free(ref.log_tail);
    }
    ck_assert(r.p == r.end);
    ck_assert_int_ge(checked, 20 * 2 * NALL);
    ck_assert(ks_seen[0] && ks_seen[1] && ks_seen[2] && ks_seen[3]);
    free(buf);
}
END_TEST

/* ---- k = V is the dense divergence ---- */

/* At tau = 1 the dense function given the stored log-probabilities as
 * teacher logits sees exactly the distribution the sparse one uses (both
 * renormalise them by the same log-sum-exp): equal to double rounding. */
START_TEST(test_full_k_is_dense_on_the_same_floats) {
    enum { N = 8, V = 37 };
    float zs[N * V], zt[N * V], zlp[N * V];
    random_logits(zs, N * V, 2.5f, 10);
    random_logits(zt, N * V, 2.5f, 11);
    for (int j = 0; j < V; j++) zt[2 * V + j] *= 0.004f; /* near uniform */
    zt[3 * V + 7] += 25.0f;                              /* peaked */
    gkd_sparse_rows t = build(zt, N, V, V, 1.0f);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < V; i++) {
            ck_assert_int_eq(t.ids[n * V + i], i);
            zlp[n * V + i] = t.logp[n * V + i];
        }
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < NALL; c++) {
            float gd[N * V] = {0}, gs[N * V] = {0}, vd[N], vs[N];
            double sd = gkd_divergence_eval(&ALL[c], zs, zlp, NULL, N, V, 1.0f, 1.0f, vd, gd);
            double ss = gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, NULL, 1.0f, vs, gs);
            ck_assert_msg(fabs(ss - sd) <= 1e-10 * fabs(sd) + 1e-12, "mode %d kind %d: %.17g vs %.17g", m,
                          ALL[c].kind, ss, sd);
            for (int n = 0; n < N; n++) ck_assert(fabsf(vs[n] - vd[n]) <= 1.2e-7f * fabsf(vd[n]));
            for (int i = 0; i < N * V; i++)
                ck_assert_msg(fabs(gs[i] - gd[i]) <= 1.5e-7 * fabs(gd[i]) + 1e-11, "mode %d kind %d grad %d",
                              m, ALL[c].kind, i);
        }
    gkd_sparse_rows_free(&t);
}
END_TEST

/* Against the dense divergence of the original logits the only difference
 * is the float rounding of the stored log-probabilities: each is off by at
 * most E = max |log p - (float)log p| <= 2^-24 max |log p|, the renormalised
 * teacher by 2E in log, so a value moves by at most about 2E (1 + L) and a
 * gradient by 2E (1 + L) / tau, L = max |log p - log q| (first order). */
START_TEST(test_full_k_is_dense_to_float_rounding) {
    enum { N = 6, V = 29 };
    const float taus[] = {1.0f, 0.5f, 2.0f, 0.1f};
    const float scales[] = {1.0f, 4.0f, 0.01f};
    for (int ti = 0; ti < 4; ti++)
        for (int si = 0; si < 3; si++) {
            const float tau = taus[ti];
            float zs[N * V], zt[N * V];
            random_logits(zs, N * V, 2.0f * scales[si], 20 + si);
            random_logits(zt, N * V, 2.0f * scales[si], 30 + si);
            zt[V + 3] += 10.0f;
            gkd_sparse_rows t = build(zt, N, V, V, tau);
            for (int m = 0; m < 2; m++)
                for (int c = 0; c < NALL; c++)
                    for (int n = 0; n < N; n++) {
                        const float *s = zs + n * V, *z = zt + n * V;
                        gkd_sparse_rows one = t;
                        one.N = 1, one.ids = t.ids + n * V, one.logp = t.logp + n * V;
                        one.log_tail = t.log_tail + n;
                        float gd[V] = {0}, gs[V] = {0};
                        double vd = gkd_divergence_eval(&ALL[c], s, z, NULL, 1, V, tau, 1.0f, NULL, gd);
                        double vs = sdiv1(ALL[c], MODES[m], s, &one, gs);
                        double lp0 = 0, lq0 = 0, mp = -INFINITY, mq = -INFINITY;
                        for (int j = 0; j < V; j++) mp = fmax(mp, z[j] / (double)tau), mq = fmax(mq, s[j] / (double)tau);
                        for (int j = 0; j < V; j++) lp0 += exp(z[j] / (double)tau - mp), lq0 += exp(s[j] / (double)tau - mq);
                        lp0 = mp + log(lp0), lq0 = mq + log(lq0);
                        double E = 0, L = 0;
                        for (int j = 0; j < V; j++) {
                            double lp = z[j] / (double)tau - lp0, lq = s[j] / (double)tau - lq0;
                            E = fmax(E, fabs(lp - (double)one.logp[j]));
                            L = fmax(L, fabs(lp - lq));
                        }
                        double tv = 2 * E * (1 + L) + 1e-12, tg = 2 * E * (1 + L) / tau;
                        ck_assert_msg(fabs(vs - vd) <= tv, "tau %g mode %d kind %d row %d: %.17g vs %.17g (tol %g)",
                                      tau, m, ALL[c].kind, n, vs, vd, tv);
                        for (int j = 0; j < V; j++)
                            ck_assert_msg(fabs(gs[j] - gd[j]) <= tg + 1.5e-7 * fabs(gd[j]) + 1e-11,
                                          "tau %g mode %d kind %d row %d grad %d: %.9g vs %.9g", tau, m,
                                          ALL[c].kind, n, j, gs[j], gd[j]);
                    }
            gkd_sparse_rows_free(&t);
        }
}
END_TEST

/* ---- gradients: central finite differences in double ---- */

START_TEST(test_finite_differences) {
    enum { V = 9 };
    const double h = 1.0 / 1024; /* logits on a 2^-6 grid: z +- h exact in float */
    const float taus[] = {1.0f, 0.5f, 2.0f};
    const int ks[] = {1, 3, 8, 9};
    for (int ti = 0; ti < 3; ti++)
        for (int rep = 0; rep < 2; rep++) {
            float zs[V], zt[V];
            random_logits(zs, V, 1.5f, 40 + rep);
            random_logits(zt, V, 1.5f, 50 + rep);
            for (int i = 0; i < V; i++) zs[i] = roundf(zs[i] * 64) / 64, zt[i] = roundf(zt[i] * 64) / 64;
            for (int ki = 0; ki < 4; ki++) {
                gkd_sparse_rows t = build(zt, 1, V, ks[ki], taus[ti]);
                for (int m = 0; m < 2; m++)
                    for (int c = 0; c < NALL; c++) {
                        float g[V] = {0};
                        sdiv1(ALL[c], MODES[m], zs, &t, g);
                        for (int j = 0; j < V; j++) {
                            float zp[V], zm[V];
                            memcpy(zp, zs, sizeof zp), memcpy(zm, zs, sizeof zm);
                            zp[j] = (float)(zs[j] + h), zm[j] = (float)(zs[j] - h);
                            ck_assert(zp[j] - zm[j] == (float)(2 * h));
                            double fd = (sdiv1(ALL[c], MODES[m], zp, &t, NULL) -
                                         sdiv1(ALL[c], MODES[m], zm, &t, NULL)) / (2 * h);
                            ck_assert_msg(fabs(g[j] - fd) <= 2e-6 + 1e-5 * fabs(fd),
                                          "k %d mode %d kind %d(%g) tau %g j %d: analytic %.9g fd %.9g",
                                          ks[ki], m, ALL[c].kind, ALL[c].param, taus[ti], j, g[j], fd);
                        }
                    }
                gkd_sparse_rows_free(&t);
            }
        }
}
END_TEST

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

/* renorm compares on the ids only; k = 1 leaves nothing to compare. The
 * tail gradient sums to 0 over the row (shifting z_S changes nothing). */
START_TEST(test_modes_support) {
    enum { V = 20 };
    float zs[V], zt[V];
    random_logits(zs, V, 2.0f, 60);
    random_logits(zt, V, 2.0f, 61);
    for (int k = 1; k <= V; k += 3) {
        gkd_sparse_rows t = build(zt, 1, V, k, 1.3f);
        for (int c = 0; c < NALL; c++) {
            float g[V];
            for (int j = 0; j < V; j++) g[j] = 0.25f;
            double v = sdiv1(ALL[c], GKD_SPARSE_RENORM, zs, &t, g);
            ck_assert(v >= -1e-15);
            for (int j = 0, i = 0; j < V; j++) {
                int in = i < k && t.ids[i] == j;
                i += in;
                if (!in) ck_assert(g[j] == 0.25f);
            }
            if (k == 1) {
                /* p~ = q~ = 1: 0 up to the rounding of log(b + (1 - b)). */
                float g0[V] = {0};
                ck_assert(fabs(sdiv1(ALL[c], GKD_SPARSE_RENORM, zs, &t, g0)) <= 1e-15);
                for (int j = 0; j < V; j++) ck_assert(fabsf(g0[j]) <= 1e-15f);
            }
            float gt[V] = {0};
            double vt = sdiv1(ALL[c], GKD_SPARSE_TAIL, zs, &t, gt);
            ck_assert(vt > 0.0);
            double s = 0, a = 0;
            for (int j = 0; j < V; j++) s += gt[j], a += fabs(gt[j]);
            ck_assert_msg(fabs(s) <= 1e-6 * a, "kind %d k %d: sum %g of %g", ALL[c].kind, k, s, a);
        }
        gkd_sparse_rows_free(&t);
    }
    /* A student equal to the teacher: 0 in both modes (to the float
     * rounding of the stored row). */
    gkd_sparse_rows t = build(zt, 1, V, 5, 1.0f);
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < NALL; c++) ck_assert(fabs(sdiv1(ALL[c], MODES[m], zt, &t, NULL)) <= 1e-6);
    gkd_sparse_rows_free(&t);
}
END_TEST

START_TEST(test_extreme_logits_finite) {
    enum { N = 12, V = 21 };
    static float zs[N * V], zt[N * V], g[N * V], vals[N];
    gkd_rng r = gkd_rng_derive(6, GKD_RNG_DATA, 0, 0);
    for (int i = 0; i < N * V; i++) {
        zs[i] = gkd_rng_u32(&r) & 1 ? 80.0f : -80.0f;
        zt[i] = (float)(gkd_rng_double(&r) * 160 - 80);
    }
    for (int j = 0; j < V; j++) zs[3 * V + j] = zt[3 * V + j] = j == 4 ? 80.0f : -80.0f; /* one-hot */
    const float taus[] = {1.0f, 0.1f, 0.01f, 10.0f};
    const int ks[] = {1, 5, V};
    for (int ti = 0; ti < 4; ti++)
        for (int ki = 0; ki < 3; ki++) {
            gkd_sparse_rows t = build(zt, N, V, ks[ki], taus[ti]);
            for (int m = 0; m < 2; m++)
                for (int c = 0; c < NALL; c++) {
                    memset(g, 0, sizeof g);
                    double s = gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, NULL, 1.0f, vals, g);
                    ck_assert_msg(isfinite(s), "kind %d tau %g k %d mode %d", ALL[c].kind, taus[ti], ks[ki], m);
                    for (int n = 0; n < N; n++) ck_assert(isfinite(vals[n]) && vals[n] >= -1e-6f);
                    for (int i = 0; i < N * V; i++) ck_assert(isfinite(g[i]));
                }
            gkd_sparse_rows_free(&t);
        }
}
END_TEST

START_TEST(test_weight_scale_and_accumulate) {
    enum { N = 5, V = 8, K = 3 };
    float zs[N * V], zt[N * V];
    random_logits(zs, N * V, 2.0f, 70);
    random_logits(zt, N * V, 2.0f, 71);
    gkd_sparse_rows t = build(zt, N, V, K, 1.3f);
    const float w[N] = {1.0f, 0.0f, 2.0f, 0.5f, 0.0f};
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < NALL; c++) {
            float g1[N * V] = {0}, gw[N * V], v1[N], vw[N];
            for (int i = 0; i < N * V; i++) gw[i] = 0.25f;
            double s1 = gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, NULL, 1.0f, v1, g1);
            double sw = gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, w, 1.0f, vw, gw);
            double expect = 0, all = 0;
            for (int n = 0; n < N; n++) expect += w[n] * (double)v1[n], all += v1[n];
            ck_assert_double_eq_tol(s1, all, 1e-6 * all);
            ck_assert_double_eq_tol(sw, expect, 1e-6 * expect);
            for (int n = 0; n < N; n++) {
                ck_assert(vw[n] == (w[n] != 0.0f ? v1[n] : 0.0f));
                for (int j = 0; j < V; j++) {
                    int i = n * V + j;
                    if (w[n] == 0.0f) ck_assert(gw[i] == 0.25f);
                    else ck_assert_msg(gw[i] == 0.25f + w[n] * g1[i], "n %d j %d", n, j);
                }
            }
            float g2[N * V] = {0};
            gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, NULL, 0.5f, NULL, g2);
            for (int i = 0; i < N * V; i++) ck_assert(g2[i] == 0.5f * g1[i]);
            gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, NULL, 0.5f, NULL, g2);
            for (int i = 0; i < N * V; i++) ck_assert(g2[i] == g1[i]);
            ck_assert(gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t, w, 1.0f, NULL, NULL) == sw);
        }
    gkd_sparse_rows_free(&t);
}
END_TEST

START_TEST(test_thread_determinism) {
    enum { N = 1300, V = 33, K = 7 }; /* more rows than one internal chunk */
    float *zs = malloc(N * V * 4), *zt = malloc(N * V * 4), *w = malloc(N * 4);
    float *g1 = calloc(N * V, 4), *g2 = calloc(N * V, 4), *v1 = malloc(N * 4), *v2 = malloc(N * 4);
    random_logits(zs, N * V, 3.0f, 80);
    random_logits(zt, N * V, 3.0f, 81);
    for (int i = 0; i < N * V; i += 5) zt[i] = roundf(zt[i]); /* some ties */
    for (int n = 0; n < N; n++) w[n] = (float)(n % 7) / 3.0f;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    gkd_sparse_rows t1 = build(zt, N, V, K, 0.8f);
    omp_set_num_threads(2);
    gkd_sparse_rows t2 = build(zt, N, V, K, 0.8f);
    ck_assert(memcmp(t1.ids, t2.ids, (size_t)N * K * 4) == 0);
    ck_assert(memcmp(t1.logp, t2.logp, (size_t)N * K * 4) == 0);
    ck_assert(memcmp(t1.log_tail, t2.log_tail, (size_t)N * 4) == 0);
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < NALL; c++) {
            memset(g1, 0, N * V * 4), memset(g2, 0, N * V * 4);
            omp_set_num_threads(1);
            double s1 = gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t1, w, 1.0f, v1, g1);
            omp_set_num_threads(2);
            double s2 = gkd_sparse_divergence_eval(&ALL[c], MODES[m], zs, &t1, w, 1.0f, v2, g2);
            ck_assert(memcmp(&s1, &s2, sizeof s1) == 0);
            ck_assert(memcmp(v1, v2, N * 4) == 0);
            ck_assert(memcmp(g1, g2, (size_t)N * V * 4) == 0);
        }
    omp_set_num_threads(saved);
    gkd_sparse_rows_free(&t1), gkd_sparse_rows_free(&t2);
    free(zs), free(zt), free(w), free(g1), free(g2), free(v1), free(v2);
}
END_TEST

/* Rows built a chunk of logits at a time (a teacher's head run by row
 * chunks) are the rows of the whole array, bit for bit, for chunks that do
 * and do not divide N, at k < V and k = V; a chunk's bad row is named by
 * its row of the batch, and rows outside the chunk stay as they were. */
START_TEST(test_rows_by_chunks_are_the_whole_rows) {
    enum { N = 37, V = 29 };
    float *zt = malloc(sizeof(float) * N * V);
    random_logits(zt, N * V, 3.0f, 90);
    for (int i = 0; i < N * V; i += 3) zt[i] = roundf(zt[i]); /* some ties */
    const int ks[] = {5, V}, chunks[] = {1, 4, 16, N};
    for (int a = 0; a < 2; a++) {
        gkd_sparse_rows whole = build(zt, N, V, ks[a], 0.7f), part;
        for (int c = 0; c < 4; c++) {
            ck_assert_int_eq(gkd_sparse_rows_alloc(&part, N, V, ks[a], 0.7f), 0);
            for (int r0 = 0; r0 < N; r0 += chunks[c]) {
                const int n = N - r0 < chunks[c] ? N - r0 : chunks[c];
                /* only this chunk's logits are readable: a copy of them */
                float *chunk = malloc(sizeof(float) * (size_t)n * V);
                memcpy(chunk, zt + (size_t)r0 * V, sizeof(float) * (size_t)n * V);
                ck_assert_msg(gkd_sparse_rows_from_logit_rows(&part, r0, n, chunk) == 0, "%s", gkd_last_error());
                free(chunk);
            }
            ck_assert_msg(!memcmp(part.ids, whole.ids, sizeof(int32_t) * N * ks[a]), "k %d, chunk %d: ids", ks[a],
                          chunks[c]);
            ck_assert_msg(!memcmp(part.logp, whole.logp, sizeof(float) * N * ks[a]), "k %d, chunk %d: logp",
                          ks[a], chunks[c]);
            ck_assert_msg(!memcmp(part.log_tail, whole.log_tail, sizeof(float) * N), "k %d, chunk %d: tail",
                          ks[a], chunks[c]);
            gkd_sparse_rows_free(&part);
        }
        /* rows 20 .. 23 again, with a NaN in the chunk's row 2 (row 22) */
        float save = zt[22 * V + 3];
        zt[22 * V + 3] = NAN;
        ck_assert_int_eq(gkd_sparse_rows_from_logit_rows(&whole, 20, 4, zt + 20 * V), GKD_EINVAL);
        ck_assert_str_eq(gkd_last_error(), "sparse teacher: row 22 of the teacher logits has a non-finite value");
        zt[22 * V + 3] = save;
        gkd_sparse_rows again = build(zt, N, V, ks[a], 0.7f);
        ck_assert(!memcmp(again.ids, whole.ids, sizeof(int32_t) * 20 * ks[a]));
        ck_assert(!memcmp(again.log_tail + 24, whole.log_tail + 24, sizeof(float) * (N - 24)));
        gkd_sparse_rows_free(&again);
        gkd_sparse_rows_free(&whole);
    }
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
    gkd_divergence fkl = {GKD_DIV_FKL, 0};
    ck_assert(gkd_sparse_divergence_eval(&fkl, GKD_SPARSE_TAIL, (const float[1]){0}, &t, NULL, 1.0f, NULL, NULL) == 0.0);
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
    tcase_add_test(tc, test_against_pytorch);
    tcase_add_test(tc, test_full_k_is_dense_on_the_same_floats);
    tcase_add_test(tc, test_full_k_is_dense_to_float_rounding);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_top_k_ties_and_tail_digits);
    tcase_add_test(tc, test_modes_support);
    tcase_add_test(tc, test_extreme_logits_finite);
    tcase_add_test(tc, test_weight_scale_and_accumulate);
    tcase_add_test(tc, test_thread_determinism);
    tcase_add_test(tc, test_rows_by_chunks_are_the_whole_rows);
    tcase_add_test(tc, test_bad_shapes_and_logits);
    tcase_add_test(tc, test_check_refuses_malformed_rows);
    suite_add_tcase(s, tc);
    return s;
}
