/* Statistics for paired comparisons over seeds: cells that share a seed
 * share the teacher, the SFT student and the data order, so the difference
 * between two conditions is measured seed by seed (gkd table --baseline).
 * Checked against SciPy (tools/reference_stats.py). */
#ifndef GKD_STATS_H
#define GKD_STATS_H

#ifdef __cplusplus
extern "C" {
#endif

/** Samples up to which gkd_paired_test also runs the exact sign-flip
 *  permutation test (2^n sign patterns). */
#define GKD_PERM_MAX 12

/** Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1. */
double gkd_beta_inc(double a, double b, double x);
/** Student's t distribution with df > 0 degrees of freedom: P(T <= t). */
double gkd_student_t_cdf(double t, double df);
/** Its quantile: the t with P(T <= t) = p, 0 < p < 1. */
double gkd_student_t_quantile(double p, double df);
/** Noncentral t with df degrees of freedom and noncentrality nc: P(T <= t). */
double gkd_nct_cdf(double t, double df, double nc);

/** A paired comparison: differences d_k = condition_k - baseline_k. */
typedef struct {
    int n;          /* pairs */
    double mean;    /* mean difference */
    double sd;      /* sample std (n - 1) of the differences; 0 when n < 2 */
    double t;       /* paired t statistic; NaN when n < 2 or all d_k are 0 */
    double p_t;     /* two-sided p of the paired t-test; NaN as t (0 when sd = 0, mean != 0) */
    double lo, hi;  /* 95% t confidence interval of the mean difference; NaN when n < 2 */
    double p_perm;  /* exact two-sided sign-flip p when 1 <= n <= GKD_PERM_MAX, else NaN */
    double p;       /* the p shown: p_perm when it exists, else p_t */
} gkd_paired;

/** The paired comparison of n differences. */
void gkd_paired_test(gkd_paired *out, const double *d, int n);

/** Holm's step-down adjustment of m p-values (NaN entries are left out and
 *  stay NaN): adj[i] = max over the p-values sorted below and at p[i] of
 *  min(1, (m' - rank) p), with m' the number of non-NaN p. */
void gkd_holm(double *adj, const double *p, int m);

/** Power of the two-sided paired t-test at level alpha with n pairs when
 *  the true mean difference is diff and the differences' std is sd. */
double gkd_paired_power(double diff, double sd, int n, double alpha);
/** The smallest mean difference the two-sided paired t-test at level alpha
 *  detects with probability `power`, with n >= 2 pairs whose differences
 *  have std sd (NaN if n < 2). */
double gkd_paired_mde(double sd, int n, double alpha, double power);
/** The fewest pairs (>= 2) that give the test `power` against diff with
 *  std sd; -1 if more than max_n would be needed (or diff == 0). */
int gkd_paired_n_needed(double diff, double sd, double alpha, double power, int max_n);

#ifdef __cplusplus
}
#endif

#endif
