/* gkd table against the fixture trees in tests/fixtures/results (values in
 * tests/fixtures/results/make_fixtures.py); expected means and stds are
 * computed by hand from those values. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/table.h"

#define DIV "tests/fixtures/results/divergences"
#define ABL "tests/fixtures/results/ablation"
#define TOL 1e-12

static gkd_table *build(const char *dir, const char *rows, const char *cols, const char *const *metrics, int nm,
                        gkd_table_at at, const gkd_where *w, int nw) {
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = rows;
    o.cols = cols;
    o.metrics = metrics;
    o.nmetrics = nm;
    o.at = at;
    o.where = w;
    o.nwhere = nw;
    gkd_table *t = NULL;
    int rc = gkd_table_build(&t, dir, &o);
    ck_assert_msg(rc == 0, "gkd_table_build: %s", gkd_last_error());
    return t;
}

static void check_stat(const gkd_table *t, int m, int i, int j, double mean, double std, int n, int best) {
    const gkd_table_stat *s = gkd_table_at_cell(t, m, i, j);
    ck_assert_int_eq(s->n, n);
    ck_assert_msg(fabs(s->mean - mean) < TOL, "(%d,%d,%d) mean %.17g != %.17g", m, i, j, s->mean, mean);
    ck_assert_msg(fabs(s->std - std) < TOL, "(%d,%d,%d) std %.17g != %.17g", m, i, j, s->std, std);
    ck_assert_msg(s->best == best, "(%d,%d,%d) best %d != %d", m, i, j, s->best, best);
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n;
    ck_assert_int_eq(gkd_file_read(&s, &n, path), 0);
    return s;
}

START_TEST(test_t_quantiles) {
    ck_assert(fabs(gkd_student_t975(1) - 12.706) < 5e-4);
    ck_assert(fabs(gkd_student_t975(2) - 4.303) < 5e-4);
    ck_assert(fabs(gkd_student_t975(4) - 2.776) < 5e-4);
    ck_assert(fabs(gkd_student_t975(9) - 2.262) < 5e-4);
    /* df = 1 in closed form: tan(pi * 0.475). */
    ck_assert(fabs(gkd_student_t975(1) - tan(M_PI * 0.475)) < 1e-8);
    /* Beyond the table (reference values from the t CDF). */
    ck_assert(fabs(gkd_student_t975(40) - 2.021075390) < 1e-6);
    ck_assert(fabs(gkd_student_t975(60) - 2.000297822) < 1e-6);
    ck_assert(fabs(gkd_student_t975(120) - 1.979930405) < 1e-6);
    ck_assert(gkd_student_t975(31) < gkd_student_t975(30));
    ck_assert(isnan(gkd_student_t975(0)));
}
END_TEST

START_TEST(test_directions) {
    ck_assert_int_eq(gkd_metric_direction("exact_match"), GKD_DIR_HIGHER);
    ck_assert_int_eq(gkd_metric_direction("chrf"), GKD_DIR_HIGHER);
    ck_assert_int_eq(gkd_metric_direction("coverage"), GKD_DIR_HIGHER);
    ck_assert_int_eq(gkd_metric_direction("nll_ref"), GKD_DIR_LOWER);
    ck_assert_int_eq(gkd_metric_direction("self_bleu"), GKD_DIR_LOWER);
    ck_assert_int_eq(gkd_metric_direction("loss"), GKD_DIR_LOWER);
    ck_assert_int_eq(gkd_metric_direction("mean_len"), GKD_DIR_NONE);
    ck_assert_int_eq(gkd_metric_direction("made_up"), GKD_DIR_NONE);
}
END_TEST

START_TEST(test_final_mean_std_and_bold) {
    const char *m[] = {"exact_match", "nll_ref", "mean_len"};
    gkd_table *t = build(DIV, "divergence", "lambda", m, 3, GKD_AT_FINAL, NULL, 0);
    /* grid.csv order, not name order (fkl, jsd0.9, rkl). */
    ck_assert_int_eq(t->nrows, 3);
    ck_assert_str_eq(t->row_values[0], "fkl");
    ck_assert_str_eq(t->row_values[1], "rkl");
    ck_assert_str_eq(t->row_values[2], "jsd(0.9)");
    ck_assert_int_eq(t->ncols, 2);
    ck_assert_str_eq(t->col_values[0], "0");
    ck_assert_str_eq(t->col_values[1], "1");
    ck_assert_int_eq(t->ncells, 12);
    ck_assert_int_eq(t->nskipped, 1); /* fkl_l0_s3 has no done marker */
    const double r2 = sqrt(2.0);
    /* exact_match: higher is better; bold jsd at lambda=0, rkl at lambda=1. */
    check_stat(t, 0, 0, 0, 0.62, 0.04 / r2, 2, 0);
    check_stat(t, 0, 0, 1, 0.71, 0.02 / r2, 2, 0);
    check_stat(t, 0, 1, 0, 0.53, 0.06 / r2, 2, 0);
    check_stat(t, 0, 1, 1, 0.77, 0.06 / r2, 2, 1);
    check_stat(t, 0, 2, 0, 0.66, 0.0, 2, 1);
    check_stat(t, 0, 2, 1, 0.76, 0.02 / r2, 2, 0);
    /* nll_ref: lower is better; the empty step-50 fields are skipped. */
    check_stat(t, 1, 0, 0, 1.25, 0.1 / r2, 2, 0);
    check_stat(t, 1, 0, 1, 1.05, 0.1 / r2, 2, 0);
    check_stat(t, 1, 1, 0, 1.45, 0.1 / r2, 2, 0);
    check_stat(t, 1, 1, 1, 0.95, 0.1 / r2, 2, 1);
    check_stat(t, 1, 2, 0, 1.20, 0.2 / r2, 2, 1);
    check_stat(t, 1, 2, 1, 1.00, 0.1 / r2, 2, 0);
    /* mean_len: no direction, never bold. */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) check_stat(t, 2, i, j, 5.75, 0.5 / r2, 2, 0);
    /* ci95 = t(0.975, 1) * std / sqrt(2). */
    ck_assert(fabs(gkd_table_at_cell(t, 0, 0, 0)->ci95 - 12.706204736 * (0.04 / r2) / r2) < 1e-9);
    gkd_table_free(t);
}
END_TEST

START_TEST(test_at_best) {
    const char *m[] = {"exact_match", "nll_ref"};
    gkd_table *t = build(DIV, "divergence", "lambda", m, 2, GKD_AT_BEST, NULL, 0);
    const double r2 = sqrt(2.0);
    /* jsd(0.9), lambda=1: seed 1 peaks at step 50 (0.79), seed 2 at 100 (0.77). */
    check_stat(t, 0, 2, 1, 0.78, 0.02 / r2, 2, 1);
    check_stat(t, 0, 1, 1, 0.77, 0.06 / r2, 2, 0);
    check_stat(t, 0, 0, 0, 0.62, 0.04 / r2, 2, 0);
    /* rkl, lambda=0: seed 2's lowest nll_ref is 1.30 at step 50. */
    check_stat(t, 1, 1, 0, 1.35, 0.1 / r2, 2, 0);
    check_stat(t, 1, 2, 0, 1.20, 0.2 / r2, 2, 1);
    check_stat(t, 1, 1, 1, 0.95, 0.1 / r2, 2, 1);
    gkd_table_free(t);
    /* best needs a direction. */
    const char *ml[] = {"mean_len"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "divergence";
    o.cols = "lambda";
    o.metrics = ml;
    o.nmetrics = 1;
    o.at = GKD_AT_BEST;
    ck_assert_int_eq(gkd_table_build(&t, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "mean_len"));
}
END_TEST

START_TEST(test_markdown_and_latex_match_expected) {
    const char *m1[] = {"exact_match"};
    const char *m3[] = {"exact_match", "nll_ref", "mean_len"};
    char *text = NULL, *want = NULL;
    gkd_table *t = build(DIV, "divergence", "lambda", m1, 1, GKD_AT_FINAL, NULL, 0);
    ck_assert_int_eq(gkd_table_render(&text, t, GKD_FMT_MD, 0, 3), 0);
    want = slurp("tests/fixtures/results/expected_divergences.md");
    ck_assert_str_eq(text, want);
    ck_assert_ptr_nonnull(strstr(text, "| rkl | 0.530 ± 0.042 | **0.770 ± 0.042** |"));
    free(text);
    free(want);
    gkd_table_free(t);

    t = build(DIV, "divergence", "lambda", m3, 3, GKD_AT_FINAL, NULL, 0);
    ck_assert_int_eq(gkd_table_render(&text, t, GKD_FMT_LATEX, 0, 3), 0);
    want = slurp("tests/fixtures/results/expected_divergences.tex");
    ck_assert_str_eq(text, want);
    ck_assert_ptr_nonnull(strstr(text, "\\cmidrule(lr){2-3} \\cmidrule(lr){4-5} \\cmidrule(lr){6-7}"));
    ck_assert_ptr_nonnull(strstr(text, "\\textbf{0.770 $\\pm$ 0.042}"));
    /* Display names, not column names (docs/results.md). */
    ck_assert_ptr_nonnull(strstr(text, "{Exact match $\\uparrow$}"));
    ck_assert_ptr_nonnull(strstr(text, "& $\\lambda = 0$ &"));
    free(text);
    free(want);
    gkd_table_free(t);

    /* Non-uniform n shown per cell; ties bold; --ci95. */
    t = build(ABL, "method", "temperature", m1, 1, GKD_AT_FINAL, NULL, 0);
    ck_assert_int_eq(gkd_table_render(&text, t, GKD_FMT_MD, 1, 3), 0);
    want = slurp("tests/fixtures/results/expected_ablation_ci95.md");
    ck_assert_str_eq(text, want);
    free(text);
    free(want);
    gkd_table_free(t);
}
END_TEST

START_TEST(test_csv_output) {
    const char *m[] = {"exact_match", "nll_ref"};
    char *text = NULL;
    gkd_table *t = build(DIV, "divergence", "lambda", m, 2, GKD_AT_FINAL, NULL, 0);
    ck_assert_int_eq(gkd_table_render(&text, t, GKD_FMT_CSV, 1, 3), 0);
    gkd_csv *c = NULL;
    ck_assert_int_eq(gkd_csv_parse(&c, text, strlen(text), "table.csv"), 0);
    ck_assert_int_eq(c->ncols, 7);
    ck_assert_str_eq(c->header[0], "divergence");
    ck_assert_str_eq(c->header[3], "mean");
    ck_assert_uint_eq(c->nrows, 12);
    /* Row 3: rkl, lambda=1, exact_match. */
    ck_assert_str_eq(gkd_csv_get(c, 3, 0), "rkl");
    ck_assert_str_eq(gkd_csv_get(c, 3, 1), "1");
    ck_assert_str_eq(gkd_csv_get(c, 3, 2), "exact_match");
    ck_assert(fabs(strtod(gkd_csv_get(c, 3, 3), NULL) - 0.77) < TOL);
    ck_assert(fabs(strtod(gkd_csv_get(c, 3, 4), NULL) - 0.06 / sqrt(2.0)) < TOL);
    ck_assert_str_eq(gkd_csv_get(c, 3, 5), "2");
    ck_assert(fabs(strtod(gkd_csv_get(c, 3, 6), NULL) - 12.706204736 * 0.03) < 1e-9);
    /* Full precision: a rerun prints the same bytes. */
    char *again = NULL;
    ck_assert_int_eq(gkd_table_render(&again, t, GKD_FMT_CSV, 1, 3), 0);
    ck_assert_str_eq(text, again);
    free(again);
    gkd_csv_free(c);
    free(text);
    gkd_table_free(t);
}
END_TEST

START_TEST(test_fallback_order_and_where) {
    const char *m[] = {"exact_match"};
    /* No grid.csv: temperature sorted numerically, method in first-seen order. */
    gkd_table *t = build(ABL, "method", "temperature", m, 1, GKD_AT_FINAL, NULL, 0);
    ck_assert_str_eq(t->row_values[0], "b");
    ck_assert_str_eq(t->row_values[1], "a");
    ck_assert_str_eq(t->col_values[0], "0.5");
    ck_assert_str_eq(t->col_values[1], "1");
    ck_assert_int_eq(t->nskipped, 1);
    check_stat(t, 0, 0, 0, 0.4, 0.2, 3, 1);
    check_stat(t, 0, 1, 0, 0.4, sqrt(0.02), 2, 1); /* tie with b: both bold */
    check_stat(t, 0, 0, 1, 0.6, 0.1, 3, 0);
    check_stat(t, 0, 1, 1, 0.8, 0.0, 3, 1);
    gkd_table_free(t);
    /* A second axis left over: error naming it and suggesting --where. */
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "method";
    o.metrics = m;
    o.nmetrics = 1;
    ck_assert_int_eq(gkd_table_build(&t, ABL, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "'temperature'"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "--where temperature="));
    /* Fixed by --where; no --cols gives one column per metric. */
    gkd_where w;
    ck_assert_int_eq(gkd_where_parse(&w, "temperature=1"), 0);
    t = build(ABL, "method", NULL, m, 1, GKD_AT_FINAL, &w, 1);
    ck_assert_int_eq(t->ncols, 1);
    check_stat(t, 0, 0, 0, 0.6, 0.1, 3, 0);
    check_stat(t, 0, 1, 0, 0.8, 0.0, 3, 1);
    char *text = NULL;
    ck_assert_int_eq(gkd_table_render(&text, t, GKD_FMT_MD, 0, 2), 0);
    ck_assert_ptr_nonnull(strstr(text, "| method | exact_match ↑ |"));
    ck_assert_ptr_nonnull(strstr(text, "| a | **0.80 ± 0.00** |"));
    ck_assert_ptr_nonnull(strstr(text, "temperature=1"));
    free(text);
    gkd_table_free(t);
    gkd_where_free(&w);
    /* n = 1 shows the mean only. */
    gkd_where w2[2];
    ck_assert_int_eq(gkd_where_parse(&w2[0], "divergence=fkl"), 0);
    ck_assert_int_eq(gkd_where_parse(&w2[1], "seed=1"), 0);
    t = build(DIV, "lambda", NULL, m, 1, GKD_AT_FINAL, w2, 2);
    ck_assert_int_eq(gkd_table_render(&text, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_ptr_nonnull(strstr(text, "\n0 & 0.600 \\\\\n1 & \\textbf{0.700} \\\\\n"));
    ck_assert_ptr_nonnull(strstr(text, "single run per cell ($n = 1$)"));
    free(text);
    gkd_table_free(t);
    gkd_where_free(&w2[0]);
    gkd_where_free(&w2[1]);
}
END_TEST

START_TEST(test_errors) {
    gkd_table *t = NULL;
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    const char *bad[] = {"exact_match", "blue"};
    o.rows = "divergence";
    o.cols = "lambda";
    o.metrics = bad;
    o.nmetrics = 2;
    ck_assert_int_eq(gkd_table_build(&t, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "unknown metric 'blue'"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "exact_match, nll_ref, mean_len"));
    o.nmetrics = 1;
    o.cols = "lamda";
    ck_assert_int_eq(gkd_table_build(&t, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "unknown axis 'lamda'"));
    o.cols = "divergence";
    ck_assert_int_eq(gkd_table_build(&t, DIV, &o), GKD_EINVAL);
    o.cols = "lambda";
    gkd_where w;
    ck_assert_int_eq(gkd_where_parse(&w, "seed=7"), 0);
    o.where = &w;
    o.nwhere = 1;
    ck_assert_int_eq(gkd_table_build(&t, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no value '7'"));
    gkd_where_free(&w);
    ck_assert_int_eq(gkd_where_parse(&w, "seed"), GKD_EINVAL);
    o.nwhere = 0;
    ck_assert_int_eq(gkd_table_build(&t, "tests/fixtures/results/none", &o), GKD_EIO);
    ck_assert_ptr_null(t);
}
END_TEST

/* Bad eval.csv contents are reported with file:line. */
START_TEST(test_bad_eval_file) {
    char dir[] = "/tmp/gkd_test_table_tree_XXXXXX", cmd[512], path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cp -r " ABL "/. '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/c00/eval.csv", dir);
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "method";
    o.cols = "temperature";
    o.metrics = m;
    o.nmetrics = 1;
    gkd_table *t = NULL;
    char want[512];
    const char *ragged = "step,exact_match,mean_len\n10,0.1,7\n20,0.2\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, ragged, strlen(ragged)), 0);
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s:3: expected 3 fields, got 2", path);
    ck_assert_str_eq(gkd_last_error(), want);
    const char *text = "step,exact_match,mean_len\n10,0.1,7\n20,abc,6\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, text, strlen(text)), 0);
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s:3: column 'exact_match': 'abc' is not a number", path);
    ck_assert_str_eq(gkd_last_error(), want);
    ck_assert_ptr_null(t);
    /* A CR inside the field (no quotes needed in CSV) stays out of the
     * one-line message (found by fuzz/fuzz_results.c). */
    const char *cr = "step,exact_match,mean_len\n10,0.1,7\n20,0.2\r5,6\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, cr, strlen(cr)), 0);
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s:3: column 'exact_match': '0.2?5' is not a number", path);
    ck_assert_str_eq(gkd_last_error(), want);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Every axis is the union of the cells' axes.csv; a cell whose axes.csv
 * lacks the --rows or --cols axis is refused with one line naming it,
 * not read as a missing value (found by fuzz/fuzz_results.c: the lookup
 * returned NULL and strcmp read it). */
START_TEST(test_cell_without_grouped_axis) {
    char dir[] = "/tmp/gkd_test_table_tree_XXXXXX", cmd[512], path[256], want[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cp -r " ABL "/. '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/c00/axes.csv", dir);
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "method";
    o.cols = "temperature";
    o.metrics = m;
    o.nmetrics = 1;
    gkd_table *t = NULL;
    const char *no_rows = "key,value\ntemperature,1\nseed,1\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, no_rows, strlen(no_rows)), 0);
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s/c00/axes.csv: no value for the axis 'method'", dir);
    ck_assert_str_eq(gkd_last_error(), want);
    ck_assert_ptr_null(t);
    const char *no_cols = "key,value\nmethod,b\nseed,1\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, no_cols, strlen(no_cols)), 0);
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s/c00/axes.csv: no value for the axis 'temperature'", dir);
    ck_assert_str_eq(gkd_last_error(), want);
    ck_assert_ptr_null(t);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Axis names and values may hold newlines and CRs (a data file's path
 * does; see plot:test_no_code_from_axis_values), and messages quote them:
 * every message stays on one line, control bytes shown as '?' (found by
 * fuzz/fuzz_results.c: "axis '...' has several values" with a CR). */
START_TEST(test_messages_one_line_with_control_bytes_in_axes) {
    char dir[] = "/tmp/gkd_test_table_tree_XXXXXX", cmd[512], path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cp -r " ABL "/. '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/c00/axes.csv", dir);
    const char *axes = "key,value\nmethod,b\ntemperature,1\nseed,1\n\"no\rte\",\"x\ny\"\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, axes, strlen(axes)), 0);
    snprintf(path, sizeof path, "%s/c01/axes.csv", dir);
    const char *other = "key,value\nmethod,b\ntemperature,1\nseed,2\n\"no\rte\",z\n";
    ck_assert_int_eq(gkd_file_write_atomic(path, other, strlen(other)), 0);
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "method";
    o.cols = "temperature";
    o.metrics = m;
    o.nmetrics = 1;
    gkd_table *t = NULL;
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EINVAL);
    const char *msg = gkd_last_error();
    ck_assert_msg(strstr(msg, "axis 'no?te' has several values (x?y, z)"), "%s", msg);
    ck_assert_ptr_null(strpbrk(msg, "\r\n"));
    o.cols = "nope";
    ck_assert_int_eq(gkd_table_build(&t, dir, &o), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "no?te"), "%s", gkd_last_error());
    ck_assert_ptr_null(strpbrk(gkd_last_error(), "\r\n"));
    ck_assert_ptr_null(t);
    /* The rule holds for every message, and for the prefix of a wrap. */
    gkd_error(GKD_EINVAL, "a\nb\rc\td\x7f" "e");
    ck_assert_str_eq(gkd_last_error(), "a?b?c?d?e");
    gkd_error_wrap(GKD_EINVAL, "f\ng");
    ck_assert_str_eq(gkd_last_error(), "f?g: a?b?c?d?e");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The program: skipped count on stderr, --out, exit codes. */
START_TEST(test_cli) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_ptr_nonnull(bin);
    char cmd[1024], out[] = "/tmp/gkd_test_table_XXXXXX";
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(cmd, sizeof cmd,
             "%s table " DIV " --rows divergence --cols lambda --metric exact_match --out %s 2>%s.err", bin, out, out);
    ck_assert_int_eq(system(cmd), 0);
    char *got = slurp(out), *want = slurp("tests/fixtures/results/expected_divergences.md");
    ck_assert_str_eq(got, want);
    free(got);
    free(want);
    snprintf(cmd, sizeof cmd, "%s.err", out);
    char *err = slurp(cmd);
    ck_assert_str_eq(err, "gkd table: skipped 1 incomplete cell (no done marker)\n");
    free(err);
    snprintf(cmd, sizeof cmd, "%s table " DIV " --rows divergence --metric exact_match 2>%s.err", bin, out);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
    snprintf(cmd, sizeof cmd, "%s.err", out);
    err = slurp(cmd);
    ck_assert_ptr_nonnull(strstr(err, "gkd table: axis 'lambda' has several values"));
    free(err);
    snprintf(cmd, sizeof cmd, "%s table " DIV " --rows divergence --format html --metric x 2>/dev/null", bin);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "rm -f %s %s.err", out, out);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *table_suite(void) {
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("table");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_t_quantiles);
    tcase_add_test(tc, test_directions);
    tcase_add_test(tc, test_final_mean_std_and_bold);
    tcase_add_test(tc, test_at_best);
    tcase_add_test(tc, test_markdown_and_latex_match_expected);
    tcase_add_test(tc, test_csv_output);
    tcase_add_test(tc, test_fallback_order_and_where);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_bad_eval_file);
    tcase_add_test(tc, test_cell_without_grouped_axis);
    tcase_add_test(tc, test_messages_one_line_with_control_bytes_in_axes);
    tcase_add_test(tc, test_cli);
    suite_add_tcase(s, tc);
    return s;
}
