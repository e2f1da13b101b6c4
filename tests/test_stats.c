/* Statistics of paired comparisons (src/util/stats.c) against SciPy fixtures
 * made by tools/reference_stats.py, and their edge cases. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/stats.h"

/* Relative 1e-9, or absolute 1e-12 near zero. */
static void expect_close(double got, double want, const char *what, const char *line) {
    const double err = fabs(got - want);
    ck_assert_msg(err <= 1e-9 * fabs(want) || err <= 1e-12, "%s: %.17g, SciPy %.17g (line: %s)", what, got,
                  want, line);
}

#define MAX_FIELDS 64

static int split(char *line, char **f) {
    int n = 0;
    for (char *tok = strtok(line, "\t\n"); tok && n < MAX_FIELDS; tok = strtok(NULL, "\t\n")) f[n++] = tok;
    return n;
}

START_TEST(test_scipy_fixtures) {
    FILE *fp = fopen("tests/fixtures/stats_ref.tsv", "r");
    ck_assert_msg(fp != NULL, "tests/fixtures/stats_ref.tsv missing (run tools/reference_stats.py)");
    char buf[4096], copy[4096], *f[MAX_FIELDS];
    double d[64];
    int dn = -1, dcase = -1, checked = 0;
    gkd_paired pr;
    while (fgets(buf, sizeof buf, fp)) {
        snprintf(copy, sizeof copy, "%s", buf);
        copy[strcspn(copy, "\n")] = '\0';
        const int n = split(buf, f);
        ck_assert_int_ge(n, 2);
        const char *kind = f[0];
        if (!strcmp(kind, "betainc")) {
            expect_close(gkd_beta_inc(atof(f[1]), atof(f[2]), atof(f[3])), atof(f[4]), "betainc", copy);
        } else if (!strcmp(kind, "tcdf")) {
            expect_close(gkd_student_t_cdf(atof(f[1]), atof(f[2])), atof(f[3]), "t cdf", copy);
        } else if (!strcmp(kind, "tppf")) {
            expect_close(gkd_student_t_quantile(atof(f[1]), atof(f[2])), atof(f[3]), "t quantile", copy);
        } else if (!strcmp(kind, "nctcdf")) {
            expect_close(gkd_nct_cdf(atof(f[1]), atof(f[2]), atof(f[3])), atof(f[4]), "nct cdf", copy);
        } else if (!strcmp(kind, "paired")) {
            dcase = atoi(f[1]);
            dn = atoi(f[2]);
            ck_assert_int_eq(n, 3 + dn);
            for (int k = 0; k < dn; k++) d[k] = atof(f[3 + k]);
            gkd_paired_test(&pr, d, dn);
            ck_assert_int_eq(pr.n, dn);
        } else if (!strcmp(kind, "ttest")) {
            ck_assert_int_eq(atoi(f[1]), dcase);
            expect_close(pr.t, atof(f[2]), "paired t", copy);
            expect_close(pr.p_t, atof(f[3]), "paired t p", copy);
            expect_close(pr.lo, atof(f[4]), "CI low", copy);
            expect_close(pr.hi, atof(f[5]), "CI high", copy);
            /* The p shown is the exact test's where it exists. */
            ck_assert(dn <= GKD_PERM_MAX ? pr.p == pr.p_perm : (pr.p == pr.p_t && isnan(pr.p_perm)));
        } else if (!strcmp(kind, "perm")) {
            ck_assert_int_eq(atoi(f[1]), dcase);
            expect_close(pr.p_perm, atof(f[2]), "sign-flip p", copy);
        } else if (!strcmp(kind, "holm")) {
            const int m = atoi(f[2]);
            ck_assert_int_eq(n, 3 + 2 * m);
            double p[32], adj[32];
            for (int i = 0; i < m; i++) p[i] = atof(f[3 + i]);
            gkd_holm(adj, p, m);
            for (int i = 0; i < m; i++) expect_close(adj[i], atof(f[3 + m + i]), "Holm", copy);
        } else if (!strcmp(kind, "power")) {
            expect_close(gkd_paired_power(atof(f[1]), atof(f[2]), atoi(f[3]), atof(f[4])), atof(f[5]), "power",
                         copy);
        } else if (!strcmp(kind, "mde")) {
            expect_close(gkd_paired_mde(atof(f[1]), atoi(f[2]), atof(f[3]), atof(f[4])), atof(f[5]), "MDE",
                         copy);
        } else if (!strcmp(kind, "nneeded")) {
            ck_assert_int_eq(gkd_paired_n_needed(atof(f[1]), atof(f[2]), atof(f[3]), atof(f[4]), atoi(f[5])),
                             atoi(f[6]));
        } else {
            ck_abort_msg("unknown record %s", kind);
        }
        checked++;
    }
    fclose(fp);
    ck_assert_int_ge(checked, 100);
}
END_TEST

/* Closed forms and edge cases SciPy does not cover the same way. */
START_TEST(test_edges) {
    /* t with 1 df is Cauchy: cdf 1/2 + atan(t)/pi. */
    ck_assert_double_eq_tol(gkd_student_t_cdf(3.0, 1), 0.5 + atan(3.0) / M_PI, 1e-14);
    /* t with 2 df: cdf 1/2 + t / (2 sqrt(2 + t^2)). */
    ck_assert_double_eq_tol(gkd_student_t_cdf(-1.7, 2), 0.5 - 1.7 / (2 * sqrt(2 + 1.7 * 1.7)), 1e-14);
    ck_assert_double_eq_tol(gkd_nct_cdf(0.0, 5, 1.3), 0.5 * erfc(1.3 / sqrt(2.0)), 1e-15);
    gkd_paired r;
    /* One pair: a mean, no test; the sign flip has two patterns, both as extreme. */
    const double one = 0.25;
    gkd_paired_test(&r, &one, 1);
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.mean == 0.25 && isnan(r.t) && isnan(r.p_t) && isnan(r.lo) && r.p_perm == 1.0);
    /* Equal differences: no spread; the t-test is certain, the exact test is not. */
    const double same[4] = {0.1, 0.1, 0.1, 0.1};
    gkd_paired_test(&r, same, 4);
    ck_assert(r.sd == 0.0 && isinf(r.t) && r.p_t == 0.0);
    ck_assert_double_eq_tol(r.p_perm, 2.0 / 16.0, 1e-15);
    /* All zero: nothing to test. */
    const double zero[3] = {0, 0, 0};
    gkd_paired_test(&r, zero, 3);
    ck_assert(isnan(r.t) && isnan(r.p_t) && r.p_perm == 1.0);
    /* With 3 seeds the exact test cannot reach 0.05: its smallest p is 2/8. */
    const double big[3] = {1.0, 1.1, 0.9};
    gkd_paired_test(&r, big, 3);
    ck_assert_double_eq_tol(r.p_perm, 0.25, 1e-15);
    ck_assert(r.p == r.p_perm && r.p_t < 0.01);
    /* Holm leaves NaN out of the count. */
    const double p[3] = {0.01, NAN, 0.04};
    double adj[3];
    gkd_holm(adj, p, 3);
    ck_assert(adj[0] == 0.02 && isnan(adj[1]) && adj[2] == 0.04);
    ck_assert(isnan(gkd_paired_mde(0.2, 1, 0.05, 0.8)));
    ck_assert_int_eq(gkd_paired_n_needed(0.0, 0.2, 0.05, 0.8, 100), -1);
}
END_TEST

/* A noncentrality of 3e4 took 4.5e8 terms (minutes), and one of 1e15
 * overflowed the int that counted them (UBSan; found by
 * fuzz/fuzz_results.c through a table's power on a near-zero std). The
 * cdf at t = 2 is 0 to double precision for both. */
START_TEST(test_nct_huge_noncentrality) {
    ck_assert_double_eq(gkd_nct_cdf(2.0, 5.0, 3e4), 0.0);
    ck_assert_double_eq(gkd_nct_cdf(2.0, 5.0, 1e15), 0.0);
    ck_assert_double_eq(gkd_nct_cdf(-2.0, 5.0, -3e4), 1.0);
    ck_assert_double_eq_tol(gkd_paired_power(1.0, 1e-12, 5, 0.05), 1.0, 1e-12);
}
END_TEST

Suite *stats_suite(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_scipy_fixtures);
    tcase_add_test(tc, test_edges);
    tcase_add_test(tc, test_nct_huge_noncentrality);
    suite_add_tcase(s, tc);
    return s;
}
