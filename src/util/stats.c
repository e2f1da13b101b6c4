/* Statistics for paired comparisons over seeds (see gkd/stats.h).
 *
 * The t distributions go through the regularized incomplete beta
 * function, evaluated by its continued fraction (modified Lentz method) on
 * whichever side of the mean (a + 1) / (a + b + 2) it converges fast. The
 * noncentral t is the Poisson-weighted series of incomplete beta functions
 * (Johnson, Kotz & Balakrishnan, Continuous Univariate Distributions 2,
 * ch. 31); power and sample sizes invert it by bisection, which is slow but
 * never diverges: tables ask for a few dozen values. */
#include "gkd/stats.h"

#include <math.h>
#include <stdlib.h>

#define CF_TINY 1e-300
#define CF_EPS 1e-16
#define CF_MAX_ITER 1000

/* The continued fraction of I_x(a, b) (without its front factor). */
static double beta_cf(double a, double b, double x) {
    const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < CF_TINY) d = CF_TINY;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= CF_MAX_ITER; m++) {
        const double m2 = 2.0 * m;
        /* even step */
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < CF_TINY) d = CF_TINY;
        c = 1.0 + aa / c;
        if (fabs(c) < CF_TINY) c = CF_TINY;
        d = 1.0 / d;
        h *= d * c;
        /* odd step */
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < CF_TINY) d = CF_TINY;
        c = 1.0 + aa / c;
        if (fabs(c) < CF_TINY) c = CF_TINY;
        d = 1.0 / d;
        const double step = d * c;
        h *= step;
        if (fabs(step - 1.0) < CF_EPS) break;
    }
    return h;
}

double gkd_beta_inc(double a, double b, double x) {
    if (!(a > 0.0) || !(b > 0.0) || isnan(x)) return NAN;
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    const double lfront = a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b));
    if (x < (a + 1.0) / (a + b + 2.0)) return exp(lfront) * beta_cf(a, b, x) / a;
    return 1.0 - exp(lfront) * beta_cf(b, a, 1.0 - x) / b;
}

/* P(|T| >= |t|) for Student's t: the two-sided tail, computed directly so
 * that small p-values keep their digits. */
static double t_two_sided(double t, double df) {
    return gkd_beta_inc(0.5 * df, 0.5, df / (df + t * t));
}

double gkd_student_t_cdf(double t, double df) {
    if (isnan(t) || !(df > 0.0)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    const double tail = 0.5 * t_two_sided(t, df);
    return t > 0.0 ? 1.0 - tail : tail;
}

double gkd_student_t_quantile(double p, double df) {
    if (!(p > 0.0 && p < 1.0) || !(df > 0.0)) return NAN;
    if (p == 0.5) return 0.0;
    if (p < 0.5) return -gkd_student_t_quantile(1.0 - p, df);
    /* Bisection on the upper tail 1 - p, which keeps its digits for p
     * near 1 where the cdf would round to it. */
    const double tail = 1.0 - p;
    double lo = 0.0, hi = 1.0;
    while (0.5 * t_two_sided(hi, df) > tail && hi < 1e300) hi *= 2.0;
    for (int i = 0; i < 2000 && hi - lo > 4e-16 * hi; i++) {
        const double mid = 0.5 * (lo + hi);
        if (0.5 * t_two_sided(mid, df) > tail) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* The noncentral t cdf at t >= 0:
 *   Phi(-nc) + 1/2 sum_j [ p_j I_x(j + 1/2, df/2) + q_j I_x(j + 1, df/2) ]
 * with x = t^2 / (t^2 + df), p_j = e^{-nc^2/2} (nc^2/2)^j / j! and
 * q_j = nc / sqrt(2) e^{-nc^2/2} (nc^2/2)^j / Gamma(j + 3/2). */
static double nct_cdf_nonneg(double t, double df, double nc) {
    const double x = t * t / (t * t + df), half = 0.5 * nc * nc;
    double sum = 0.0;
    if (half == 0.0) {
        sum = gkd_beta_inc(0.5, 0.5 * df, x);
    } else {
        /* The Poisson weights are negligible 12 standard deviations either
         * side of their mean half; the incomplete beta factors are at most
         * 1 and fall as j grows, so once they vanish the rest adds
         * nothing. A huge nc (a table's power with a near-zero std) would
         * otherwise take half terms, or more than an int counts. */
        const double jlo = fmax(0.0, floor(half - 12.0 * sqrt(half) - 40.0)), jhi = half + 12.0 * sqrt(half) + 40.0;
        const double lhalf = log(half), lq0 = log(fabs(nc) / sqrt(2.0)), sign = nc < 0 ? -1.0 : 1.0;
        for (long k = 0; k < (1L << 22) && jlo + (double)k <= jhi; k++) {
            const double j = jlo + (double)k, lw = -half + j * lhalf;
            const double pj = exp(lw - lgamma(j + 1.0)), qj = sign * exp(lq0 + lw - lgamma(j + 1.5));
            const double bp = gkd_beta_inc(j + 0.5, 0.5 * df, x), bq = gkd_beta_inc(j + 1.0, 0.5 * df, x);
            sum += pj * bp + qj * bq;
            if (bp < 1e-300 && bq < 1e-300) break;
        }
    }
    const double f = 0.5 * erfc(nc / sqrt(2.0)) + 0.5 * sum;
    return f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
}

double gkd_nct_cdf(double t, double df, double nc) {
    if (isnan(t) || isnan(nc) || !(df > 0.0)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    if (t >= 0.0) return nct_cdf_nonneg(t, df, nc);
    return 1.0 - nct_cdf_nonneg(-t, df, -nc);
}

/* Exact two-sided sign-flip p of the mean of d: the share of the 2^n sign
 * patterns whose |sum| is at least the observed one (ties within rounding
 * count as at least). */
static double sign_flip_p(const double *d, int n) {
    double obs = 0.0, scale = 0.0;
    for (int k = 0; k < n; k++) obs += d[k], scale += fabs(d[k]);
    obs = fabs(obs);
    const double tol = 1e-12 * scale;
    const unsigned long patterns = 1ul << n;
    unsigned long hits = 0;
    for (unsigned long s = 0; s < patterns; s++) {
        double sum = 0.0;
        for (int k = 0; k < n; k++) sum += (s >> k & 1) ? -d[k] : d[k];
        hits += fabs(sum) >= obs - tol;
    }
    return (double)hits / (double)patterns;
}

void gkd_paired_test(gkd_paired *out, const double *d, int n) {
    gkd_paired r = {.n = n, .t = NAN, .p_t = NAN, .lo = NAN, .hi = NAN, .p_perm = NAN, .p = NAN};
    if (n >= 1) {
        double sum = 0.0;
        for (int k = 0; k < n; k++) sum += d[k];
        r.mean = sum / n;
    }
    if (n >= 2) {
        double ss = 0.0;
        for (int k = 0; k < n; k++) ss += (d[k] - r.mean) * (d[k] - r.mean);
        r.sd = sqrt(ss / (n - 1));
        const double se = r.sd / sqrt((double)n), df = n - 1.0;
        if (r.sd > 0.0) {
            r.t = r.mean / se;
            r.p_t = t_two_sided(r.t, df);
        } else if (r.mean != 0.0) {
            r.t = r.mean > 0 ? INFINITY : -INFINITY;
            r.p_t = 0.0;
        }
        const double q = gkd_student_t_quantile(0.975, df);
        r.lo = r.mean - q * se;
        r.hi = r.mean + q * se;
    }
    if (n >= 1 && n <= GKD_PERM_MAX) r.p_perm = sign_flip_p(d, n);
    r.p = !isnan(r.p_perm) ? r.p_perm : r.p_t;
    *out = r;
}

void gkd_holm(double *adj, const double *p, int m) {
    int *idx = malloc((size_t)(m > 0 ? m : 1) * sizeof *idx), k = 0;
    for (int i = 0; i < m; i++) {
        adj[i] = NAN;
        if (!isnan(p[i]) && idx) idx[k++] = i;
    }
    if (!idx) return; /* out of memory: every comparison stays unadjusted (NaN) */
    /* Ascending p, ties in input order (insertion sort: tables compare
     * tens of cells). */
    for (int i = 1; i < k; i++) {
        const int v = idx[i];
        int j = i - 1;
        for (; j >= 0 && p[idx[j]] > p[v]; j--) idx[j + 1] = idx[j];
        idx[j + 1] = v;
    }
    double running = 0.0;
    for (int r = 0; r < k; r++) {
        double v = (k - r) * p[idx[r]];
        if (v > 1.0) v = 1.0;
        if (v > running) running = v;
        adj[idx[r]] = running;
    }
    free(idx);
}

/* Power of the two-sided test at noncentrality nc with df degrees of
 * freedom and critical value tc. */
static double power_at(double nc, double df, double tc) {
    return 1.0 - gkd_nct_cdf(tc, df, nc) + gkd_nct_cdf(-tc, df, nc);
}

double gkd_paired_power(double diff, double sd, int n, double alpha) {
    if (n < 2 || !(alpha > 0.0 && alpha < 1.0) || isnan(diff) || !(sd >= 0.0)) return NAN;
    if (sd == 0.0) return diff != 0.0 ? 1.0 : alpha;
    const double df = n - 1.0, tc = gkd_student_t_quantile(1.0 - 0.5 * alpha, df);
    return power_at(diff * sqrt((double)n) / sd, df, tc);
}

double gkd_paired_mde(double sd, int n, double alpha, double power) {
    if (n < 2 || !(alpha > 0.0 && alpha < 1.0) || !(power > alpha && power < 1.0) || !(sd >= 0.0))
        return NAN;
    if (sd == 0.0) return 0.0;
    const double df = n - 1.0, tc = gkd_student_t_quantile(1.0 - 0.5 * alpha, df);
    double lo = 0.0, hi = 1.0;
    while (power_at(hi, df, tc) < power && hi < 1e6) hi *= 2.0;
    for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
        const double mid = 0.5 * (lo + hi);
        if (power_at(mid, df, tc) < power) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi) * sd / sqrt((double)n);
}

int gkd_paired_n_needed(double diff, double sd, double alpha, double power, int max_n) {
    if (diff == 0.0 || isnan(diff) || !(sd >= 0.0) || max_n < 2) return -1;
    if (gkd_paired_power(fabs(diff), sd, 2, alpha) >= power) return 2;
    if (gkd_paired_power(fabs(diff), sd, max_n, alpha) < power) return -1;
    int lo = 2, hi = max_n; /* power(lo) < target <= power(hi); power grows with n */
    while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        if (gkd_paired_power(fabs(diff), sd, mid, alpha) >= power) hi = mid;
        else lo = mid;
    }
    return hi;
}
