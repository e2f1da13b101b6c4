/* Token-level divergences and their gradients w.r.t. the student logits.
 *
 * Notation (one row = one position, V = vocabulary): x_i = z_S,i / tau,
 * log q_i = x_i - lse(x), log p_i = z_T,i / tau - lse(z_T / tau). Everything
 * is computed in double from log-probabilities, so no probability is ever
 * divided by or logged: logits of +-80 and one-hot rows stay finite, and a
 * term p_i log(p_i / .) with p_i that underflows to 0 contributes 0.
 *
 * Chain rule through the softmax: dq_i/dz_j = q_i (delta_ij - q_j) / tau, so
 * for any F(q) with g_i = dF/dq_i,
 *     dF/dz_j = q_j (g_j - sum_i q_i g_i) / tau.                      (*)
 * Additive constants in g cancel. Per divergence:
 *   fkl   F = sum p (log p - log q)         dF/dz_j = (q_j - p_j) / tau
 *   rkl   F = sum q (log q - log p)         g_i = log q_i - log p_i (+1)
 *         dF/dz_j = q_j (log q_j - log p_j - F) / tau
 *   jsd   m = b p + (1-b) q, F = b KL(p||m) + (1-b) KL(q||m)
 *         g_i = (1-b)(log q_i - log m_i)   (the p/m and q/m terms cancel)
 *         dF/dz_j = (1-b) q_j (log q_j - log m_j - KL(q||m)) / tau
 *   skl   m = a p + (1-a) q, F = KL(p||m), g_i = -(1-a) p_i / m_i
 *         with w_i = q_i p_i / m_i (<= p_i / (1-a)), S = sum w:
 *         dF/dz_j = (1-a) (q_j S - w_j) / tau
 *   srkl  m = (1-a) p + a q, F = KL(q||m), g_i = log q_i - log m_i - a q_i / m_i (+1)
 *         (a q_i / m_i <= 1), with h_i = g_i, H = sum q h:
 *         dF/dz_j = q_j (h_j - H) / tau
 *   tvd   F = 1/2 sum |p - q|, g_i = sign(q_i - p_i) / 2 (0 at equality)
 *         dF/dz_j = q_j (g_j - sum q g) / tau
 * skl(0) and srkl(0) take the fkl/rkl paths so they are exactly fkl/rkl.
 */
#include "gkd/divergence.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/parse.h"

/* ---- names ---- */

static const struct {
    const char *name;
    gkd_divergence_kind kind;
    int has_param;
    double def;
} DIVS[] = {
    {"fkl", GKD_DIV_FKL, 0, 0.0},   {"rkl", GKD_DIV_RKL, 0, 0.0},
    {"jsd", GKD_DIV_JSD, 1, 0.5},   {"skl", GKD_DIV_SKL, 1, 0.1},
    {"srkl", GKD_DIV_SRKL, 1, 0.1}, {"tvd", GKD_DIV_TVD, 0, 0.0},
    {"ce", GKD_DIV_CE, 0, 0.0},     {"pg_rkl", GKD_DIV_PG_RKL, 0, 0.0},
};
#define NDIVS ((int)(sizeof DIVS / sizeof DIVS[0]))

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 31 || lb > 31) return 99;
    int d[32][32];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* The parameter's range: 0 if v suits `kind`, else GKD_EINVAL naming
 * `spelling` (what the user wrote, or the formatted divergence). */
static int param_error(gkd_divergence_kind kind, double v, const char *spelling) {
    if (kind == GKD_DIV_JSD) {
        if (!(v > 0.0 && v < 1.0))
            return gkd_error(GKD_EINVAL,
                             "%s: beta must be in (0, 1); use fkl or rkl for the endpoints "
                             "(JSD(beta)/beta -> KL(p||q) as beta -> 0)",
                             spelling);
    } else if (kind == GKD_DIV_SKL || kind == GKD_DIV_SRKL) {
        if (!(v >= 0.0 && v < 1.0))
            return gkd_error(GKD_EINVAL, "%s: alpha must be in [0, 1) (alpha 0 is %s)", spelling,
                             kind == GKD_DIV_SKL ? "fkl" : "rkl");
    }
    return 0;
}

int gkd_divergence_parse(gkd_divergence *out, const char *s) {
    if (!s || !*s) return gkd_error(GKD_EINVAL, "divergence: empty name");
    const char *open = strchr(s, '(');
    size_t nlen = open ? (size_t)(open - s) : strlen(s);
    char name[32];
    if (nlen == 0 || nlen >= sizeof name)
        return gkd_error(GKD_EINVAL, "divergence: '%s' is not a divergence", s);
    memcpy(name, s, nlen);
    name[nlen] = '\0';

    int k = -1;
    for (int i = 0; i < NDIVS; i++)
        if (strcmp(name, DIVS[i].name) == 0) k = i;
    if (k < 0) {
        int best = -1, bestd = 3;
        for (int i = 0; i < NDIVS; i++) {
            int d = edit_distance(name, DIVS[i].name);
            if (d < bestd) bestd = d, best = i;
        }
        if (best >= 0)
            return gkd_error(GKD_EINVAL, "divergence: unknown '%s' (did you mean '%s'?)", s,
                             DIVS[best].name);
        return gkd_error(GKD_EINVAL,
                         "divergence: unknown '%s' (one of fkl, rkl, jsd(b), skl(a), srkl(a), tvd, "
                         "ce, pg_rkl)",
                         s);
    }

    gkd_divergence d = {DIVS[k].kind, DIVS[k].def};
    if (open) {
        if (!DIVS[k].has_param)
            return gkd_error(GKD_EINVAL, "divergence: '%s' takes no parameter", s);
        size_t rest = strlen(open + 1);
        if (rest < 2 || open[rest] != ')')
            return gkd_error(GKD_EINVAL, "divergence: '%s': expected %s(number)", s, name);
        char num[64];
        if (rest - 1 >= sizeof num) return gkd_error(GKD_EINVAL, "divergence: '%s': parameter too long", s);
        memcpy(num, open + 1, rest - 1);
        num[rest - 1] = '\0';
        double v;
        int rc = gkd_parse_double(&v, num, -1e300, 1e300, s);
        if (rc) return rc;
        if ((rc = param_error(d.kind, v, s))) return rc;
        d.param = v;
    }
    *out = d;
    return 0;
}

int gkd_divergence_check(const gkd_divergence *d, float tau) {
    int known = 0;
    for (int i = 0; i < NDIVS; i++) known |= DIVS[i].kind == d->kind;
    if (!known) return gkd_error(GKD_EINVAL, "divergence: kind %d is not a divergence", (int)d->kind);
    char name[64];
    gkd_divergence_format(d, name, sizeof name);
    int rc = param_error(d->kind, d->param, name);
    if (rc) return rc;
    if (d->kind != GKD_DIV_CE && !(isfinite(tau) && tau > 0.0f))
        return gkd_error(GKD_EINVAL, "%s: the loss temperature must be > 0 and finite, got %g", name, (double)tau);
    return 0;
}

char *gkd_divergence_format(const gkd_divergence *d, char *buf, size_t cap) {
    const char *name = "?";
    int has_param = 0;
    for (int i = 0; i < NDIVS; i++)
        if (DIVS[i].kind == d->kind) name = DIVS[i].name, has_param = DIVS[i].has_param;
    if (cap == 0) return buf;
    if (!has_param) {
        snprintf(buf, cap, "%s", name);
        return buf;
    }
    /* The shortest spelling that parses back to the same double (so 0.1
     * prints as "0.1", not 0.10000000000000001). */
    char num[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, d->param);
        if (strtod(num, NULL) == d->param) break;
    }
    snprintf(buf, cap, "%s(%s)", name, num);
    return buf;
}

/* ---- per-row math ---- */

/* log(exp(a) + exp(b)), exact when one side is -inf. */
static inline double lse2(double a, double b) {
    double m = a > b ? a : b;
    if (m == -INFINITY) return -INFINITY;
    return m + log(exp(a - m) + exp(b - m));
}

/* lse(z / tau) over one row, accumulated in double. */
static double row_lse(const float *z, int V, double inv_tau) {
    double m = -INFINITY;
    for (int i = 0; i < V; i++) {
        double x = (double)z[i] * inv_tau;
        if (x > m) m = x;
    }
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)z[i] * inv_tau - m);
    return m + log(s);
}

/* Value of D for one row; if drow != NULL adds c * dD/dz_S to it. */
static double row_divergence(gkd_divergence_kind kind, double param, const float *zs,
                             const float *zt, int V, double tau, double c, float *drow) {
    const double it = 1.0 / tau;
    const double lq0 = row_lse(zs, V, it), lp0 = row_lse(zt, V, it);
#define LOGQ(i) ((double)zs[i] * it - lq0)
#define LOGP(i) ((double)zt[i] * it - lp0)
    if (kind == GKD_DIV_SKL && param == 0.0) kind = GKD_DIV_FKL;
    if (kind == GKD_DIV_SRKL && param == 0.0) kind = GKD_DIV_RKL;
    double val = 0.0;
    const double gc = c * it; /* every gradient carries 1/tau */

    switch (kind) {
    case GKD_DIV_FKL:
        for (int i = 0; i < V; i++) {
            double lp = LOGP(i), p = exp(lp);
            if (p > 0.0) val += p * (lp - LOGQ(i));
        }
        if (drow)
            for (int j = 0; j < V; j++) drow[j] += (float)(gc * (exp(LOGQ(j)) - exp(LOGP(j))));
        break;
    case GKD_DIV_RKL:
        for (int i = 0; i < V; i++) {
            double lq = LOGQ(i), q = exp(lq);
            if (q > 0.0) val += q * (lq - LOGP(i));
        }
        if (drow)
            for (int j = 0; j < V; j++) {
                double lq = LOGQ(j);
                drow[j] += (float)(gc * exp(lq) * (lq - LOGP(j) - val));
            }
        break;
    case GKD_DIV_JSD: {
        const double b = param, lb = log(b), l1b = log1p(-b);
        double kl_pm = 0.0, kl_qm = 0.0;
        for (int i = 0; i < V; i++) {
            double lp = LOGP(i), lq = LOGQ(i), lm = lse2(lb + lp, l1b + lq);
            double p = exp(lp), q = exp(lq);
            if (p > 0.0) kl_pm += p * (lp - lm);
            if (q > 0.0) kl_qm += q * (lq - lm);
        }
        val = b * kl_pm + (1.0 - b) * kl_qm;
        if (drow)
            for (int j = 0; j < V; j++) {
                double lp = LOGP(j), lq = LOGQ(j), lm = lse2(lb + lp, l1b + lq);
                drow[j] += (float)(gc * (1.0 - b) * exp(lq) * (lq - lm - kl_qm));
            }
        break;
    }
    case GKD_DIV_SKL: {
        const double a = param, la = log(a), l1a = log1p(-a);
        double S = 0.0;
        for (int i = 0; i < V; i++) {
            double lp = LOGP(i), lq = LOGQ(i), lm = lse2(la + lp, l1a + lq), p = exp(lp);
            if (p > 0.0) val += p * (lp - lm);
            S += exp(lq + lp - lm);
        }
        if (drow)
            for (int j = 0; j < V; j++) {
                double lp = LOGP(j), lq = LOGQ(j), lm = lse2(la + lp, l1a + lq);
                drow[j] += (float)(gc * (1.0 - a) * (exp(lq) * S - exp(lq + lp - lm)));
            }
        break;
    }
    case GKD_DIV_SRKL: {
        const double a = param, la = log(a), l1a = log1p(-a);
        double H = 0.0;
        for (int i = 0; i < V; i++) {
            double lp = LOGP(i), lq = LOGQ(i), lm = lse2(l1a + lp, la + lq), q = exp(lq);
            if (q > 0.0) {
                val += q * (lq - lm);
                H += q * (lq - lm - a * exp(lq - lm));
            }
        }
        if (drow)
            for (int j = 0; j < V; j++) {
                double lp = LOGP(j), lq = LOGQ(j), lm = lse2(l1a + lp, la + lq);
                double h = lq - lm - a * exp(lq - lm);
                drow[j] += (float)(gc * exp(lq) * (h - H));
            }
        break;
    }
    case GKD_DIV_TVD: {
        double G = 0.0;
        for (int i = 0; i < V; i++) {
            double p = exp(LOGP(i)), q = exp(LOGQ(i));
            val += 0.5 * fabs(p - q);
            G += q * 0.5 * ((q > p) - (q < p));
        }
        if (drow)
            for (int j = 0; j < V; j++) {
                double p = exp(LOGP(j)), q = exp(LOGQ(j));
                double g = 0.5 * ((q > p) - (q < p));
                drow[j] += (float)(gc * q * (g - G));
            }
        break;
    }
    default: /* unreachable: gkd_divergence_eval admits fkl..tvd only */
        break;
    }
#undef LOGQ
#undef LOGP
    return val;
}

/* Rows are processed in chunks so per-row values can be summed serially in
 * row order (deterministic for any thread count) without heap scratch. */
enum { CHUNK = 512 };

/* One row's contribution to a sum over rows; ctx is the caller's. */
typedef double (*row_value_fn)(const void *ctx, int n);

/* total + row_value(ctx, n) over n = 0 .. N-1, added in row order; the
 * rows of a chunk are computed in parallel. */
static double sum_rows(double total, int N, row_value_fn row_value, const void *ctx) {
    double rowval[CHUNK];
    for (int n0 = 0; n0 < N; n0 += CHUNK) {
        int n1 = n0 + CHUNK < N ? n0 + CHUNK : N;
#pragma omp parallel for schedule(static)
        for (int n = n0; n < n1; n++) rowval[n - n0] = row_value(ctx, n);
        for (int n = n0; n < n1; n++) total += rowval[n - n0];
    }
    return total;
}

typedef struct {
    const gkd_divergence *d;
    const float *zs, *zt, *weight;
    int V;
    float tau, scale;
    float *values, *dstudent;
} eval_args;

static double eval_row(const void *ctx, int n) {
    const eval_args *e = ctx;
    const int V = e->V;
    double w = e->weight ? (double)e->weight[n] : 1.0;
    double v = 0.0;
    if (w != 0.0) {
        float *drow = e->dstudent ? e->dstudent + (size_t)n * V : NULL;
        v = row_divergence(e->d->kind, e->d->param, e->zs + (size_t)n * V, e->zt + (size_t)n * V, V,
                           (double)e->tau, (double)e->scale * w, drow);
    }
    if (e->values) e->values[n] = (float)v;
    return w * v;
}

double gkd_divergence_eval(const gkd_divergence *d, const float *student_logits,
                           const float *teacher_logits, const float *weight, int N, int V,
                           float tau, float scale, float *values, float *dstudent) {
    return gkd_divergence_eval_continue(0.0, d, student_logits, teacher_logits, weight, N, V, tau, scale,
                                        values, dstudent);
}

double gkd_divergence_eval_continue(double total, const gkd_divergence *d, const float *student_logits,
                                    const float *teacher_logits, const float *weight, int N, int V,
                                    float tau, float scale, float *values, float *dstudent) {
    /* Preconditions, not input checks: the distillation step checks the
     * user's divergence and tau once (gkd_divergence_check) and dispatches
     * ce and pg_rkl elsewhere; shapes come from its own buffers. */
    assert(d && student_logits && teacher_logits && N >= 0 && V > 0 && tau > 0.0f);
    assert(d->kind <= GKD_DIV_TVD);
    const eval_args e = {d, student_logits, teacher_logits, weight, V, tau, scale, values, dstudent};
    return sum_rows(total, N, eval_row, &e);
}

/* ---- pg_rkl ---- */

typedef struct {
    float *rewards;
    const float *zs, *zt, *weight, *advantages;
    const int *targets;
    int V;
    double it, scale;
    float *dstudent;
} pg_args;

static double reward_row(const void *ctx, int n) {
    const pg_args *g = ctx;
    double w = g->weight ? (double)g->weight[n] : 1.0;
    double r = 0.0;
    if (w != 0.0) {
        const float *zs = g->zs + (size_t)n * g->V, *zt = g->zt + (size_t)n * g->V;
        int y = g->targets[n];
        /* A weighted target is a token the models were just run on, which
         * gkd_model_forward refuses outside [0, V): an invariant. */
        assert(y >= 0 && y < g->V);
        double lq = (double)zs[y] * g->it - row_lse(zs, g->V, g->it);
        double lp = (double)zt[y] * g->it - row_lse(zt, g->V, g->it);
        r = lp - lq;
    }
    g->rewards[n] = (float)r;
    return w * r;
}

double gkd_pg_rkl_rewards(float *rewards, const float *student_logits, const float *teacher_logits,
                          const int *targets, const float *weight, int N, int V, float tau) {
    /* Preconditions (tau: gkd_divergence_check), as in gkd_divergence_eval. */
    assert(rewards && student_logits && teacher_logits && targets && V > 0 && tau > 0.0f);
    const pg_args g = {.rewards = rewards, .zs = student_logits, .zt = teacher_logits,
                       .weight = weight, .targets = targets, .V = V, .it = 1.0 / (double)tau};
    return sum_rows(0.0, N, reward_row, &g);
}

void gkd_pg_advantages(float *advantages, const float *rewards, const float *weight, int B, int T,
                       gkd_pg_advantage kind) {
    assert(advantages && rewards && B >= 0 && T >= 0); /* preconditions: the caller's buffers */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *r = rewards + (size_t)b * T;
        const float *w = weight ? weight + (size_t)b * T : NULL;
        float *A = advantages + (size_t)b * T;
        double acc = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            if (w && w[t] == 0.0f) {
                A[t] = 0.0f;
                continue;
            }
            if (kind == GKD_PG_REWARD_TO_GO) {
                acc += (double)r[t];
                A[t] = (float)acc;
            } else {
                A[t] = r[t];
            }
        }
    }
}

static double pg_loss_row(const void *ctx, int n) {
    const pg_args *g = ctx;
    double w = g->weight ? (double)g->weight[n] : 1.0;
    double l = 0.0;
    if (w != 0.0) {
        const int V = g->V;
        const float *zs = g->zs + (size_t)n * V;
        int y = g->targets[n];
        assert(y >= 0 && y < V); /* as in reward_row */
        double lse = row_lse(zs, V, g->it), A = (double)g->advantages[n];
        l = -w * A * ((double)zs[y] * g->it - lse);
        if (g->dstudent) {
            /* d(-A log q_y)/dz_j = -A (delta_jy - q_j) / tau */
            double c = g->scale * w * A * g->it;
            float *drow = g->dstudent + (size_t)n * V;
            for (int j = 0; j < V; j++) {
                double q = exp((double)zs[j] * g->it - lse);
                drow[j] += (float)(c * (q - (j == y)));
            }
        }
    }
    return l;
}

double gkd_pg_loss(const float *student_logits, const int *targets, const float *advantages,
                   const float *weight, int N, int V, float tau, float scale, float *dstudent) {
    /* Preconditions (tau: gkd_divergence_check), as in gkd_divergence_eval. */
    assert(student_logits && targets && advantages && V > 0 && tau > 0.0f);
    const pg_args g = {.zs = student_logits, .weight = weight, .advantages = advantages,
                       .targets = targets, .V = V, .it = 1.0 / (double)tau,
                       .scale = (double)scale, .dstudent = dstudent};
    return sum_rows(0.0, N, pg_loss_row, &g);
}
