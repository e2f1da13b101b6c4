/* gkd table --at: the number each cell contributes, on results trees made
 * here whose curves are simple enough to summarise by hand. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/stats.h"
#include "gkd/table.h"

#include "helpers.h"

#define TOL 1e-12

static char root[64];

static void setup(void) { th_make_tmpdir(root, sizeof root, "gkd-summary"); }

static void teardown(void) { th_remove_tmpdir(root); }

/* A finished cell with axes cond and seed and this eval.csv. */
static void cell(const char *cond, int seed, const char *eval_csv) {
    char dir[256], path[300], text[256];
    snprintf(dir, sizeof dir, "%s/cond=%s,seed=%d", root, cond, seed);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/axes.csv", dir);
    snprintf(text, sizeof text, "key,value\ncond,%s\nseed,%d\n", cond, seed);
    th_write_file(path, text);
    snprintf(path, sizeof path, "%s/eval.csv", dir);
    th_write_file(path, eval_csv);
    snprintf(path, sizeof path, "%s/done", dir);
    th_write_file(path, "");
}

static gkd_table_opts opts(const char *const *metrics, int n, gkd_table_at at) {
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = metrics;
    o.nmetrics = n;
    o.at = at;
    return o;
}

static gkd_table *build(const gkd_table_opts *o) {
    gkd_table *t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, o) == 0, "%s", gkd_last_error());
    return t;
}

static int row(const gkd_table *t, const char *v) {
    for (int i = 0; i < t->nrows; i++)
        if (!strcmp(t->row_values[i], v)) return i;
    ck_abort_msg("no row %s", v);
    return -1;
}

static void check_stat(const gkd_table *t, int m, const char *r, double mean, double std, int n, int best) {
    const gkd_table_stat *s = gkd_table_at_cell(t, m, row(t, r), 0);
    ck_assert_int_eq(s->n, n);
    ck_assert_msg(fabs(s->mean - mean) < TOL, "%s mean %.17g != %.17g", r, s->mean, mean);
    ck_assert_msg(fabs(s->std - std) < TOL, "%s std %.17g != %.17g", r, s->std, std);
    ck_assert_int_eq(s->best, best);
}

/* Two conditions that end at the same value, one of them sooner: the
 * area tells them apart where the final value cannot (DistiLLM's "faster
 * convergence"). By hand, with the trapezoid rule over steps 0..300:
 *   fast seed 1: 0, .6, .8, .8 -> (30 + 70 + 80) / 300 = 0.6
 *   fast seed 2: 0, .3, .8, .8 -> (15 + 55 + 80) / 300 = 0.5
 *   slow seed 1: 0, .2, .4, .8 -> (10 + 30 + 60) / 300 = 1/3
 *   slow seed 2: 0, .1, .3, .8 -> ( 5 + 20 + 55) / 300 = 4/15
 * nll_ref (lower is better) is measured at steps 0, 100 and 300 only; the
 * area runs over those points:
 *   fast: 2, 1, 1 -> (150 + 200) / 300 = 7/6;  slow: 2, 2, 1 -> (200 + 300) / 300 = 5/3. */
static void make_curves(void) {
    cell("fast", 1, "step,exact_match,nll_ref\n0,0,2\n100,0.6,1\n200,0.8,\n300,0.8,1\n");
    cell("fast", 2, "step,exact_match,nll_ref\n0,0,2\n100,0.3,1\n200,0.8,\n300,0.8,1\n");
    cell("slow", 1, "step,exact_match,nll_ref\n0,0,2\n100,0.2,2\n200,0.4,\n300,0.8,1\n");
    cell("slow", 2, "step,exact_match,nll_ref\n0,0,2\n100,0.1,2\n200,0.3,\n300,0.8,1\n");
}

START_TEST(test_auc_by_hand) {
    make_curves();
    const char *m[] = {"exact_match", "nll_ref"};
    gkd_table_opts o = opts(m, 2, GKD_AT_FINAL);
    gkd_table *t = build(&o);
    /* At the end they agree: both bold. */
    check_stat(t, 0, "fast", 0.8, 0, 2, 1);
    check_stat(t, 0, "slow", 0.8, 0, 2, 1);
    gkd_table_free(t);
    o.at = GKD_AT_AUC;
    t = build(&o);
    ck_assert_int_eq(t->at, GKD_AT_AUC);
    check_stat(t, 0, "fast", 0.55, 0.1 / sqrt(2.0), 2, 1);
    check_stat(t, 0, "slow", 0.3, (1.0 / 3 - 4.0 / 15) / sqrt(2.0), 2, 0);
    check_stat(t, 1, "fast", 7.0 / 6, 0, 2, 1);
    check_stat(t, 1, "slow", 5.0 / 3, 0, 2, 0);
    char *md = NULL, *tex = NULL, *csv = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&tex, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&csv, t, GKD_FMT_CSV, 0, 3), 0);
    ck_assert_msg(strstr(md, "| fast | **0.550 ± 0.071** | **1.167 ± 0.000** |"), "%s", md);
    ck_assert_msg(strstr(md, "as the area under the evaluation curve over training steps"), "%s", md);
    ck_assert_msg(strstr(tex, "\\textbf{0.550 $\\pm$ 0.071}") && strstr(tex, "area under the evaluation curve"),
                  "%s", tex);
    /* The CSV says which summary its numbers are. */
    gkd_csv *c = NULL;
    ck_assert_int_eq(gkd_csv_parse(&c, csv, strlen(csv), "table.csv"), 0);
    ck_assert_str_eq(c->header[2], "at");
    ck_assert_str_eq(c->header[3], "mean");
    ck_assert_str_eq(gkd_csv_get(c, 0, 0), "fast");
    ck_assert_str_eq(gkd_csv_get(c, 0, 2), "auc");
    ck_assert_double_eq_tol(strtod(gkd_csv_get(c, 0, 3), NULL), 0.55, TOL);
    gkd_csv_free(c);
    free(md), free(tex), free(csv);
    gkd_table_free(t);
}
END_TEST

/* The area is divided by the steps the measured points span, not by the
 * last step: points at 50, 100, 250 (values .2, .4, 1; the step-0 field is
 * empty) give (50 * .3 + 150 * .7) / 200 = 0.6. */
START_TEST(test_auc_span) {
    cell("x", 1, "step,char_accuracy\n0,\n50,0.2\n100,0.4\n250,1\n");
    const char *m[] = {"char_accuracy"};
    gkd_table_opts o = opts(m, 1, GKD_AT_AUC);
    gkd_table *t = build(&o);
    check_stat(t, 0, "x", 0.6, 0, 1, 0);
    gkd_table_free(t);
}
END_TEST

/* Paired comparisons run on the areas as they do on final values: the
 * seed-by-seed differences of the areas above. */
START_TEST(test_auc_paired) {
    make_curves();
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_AUC);
    o.baseline = "cond=slow";
    o.power = 1;
    gkd_table *t = build(&o);
    const gkd_table_cmp *c = gkd_table_cmp_at(t, 0, row(t, "fast"), 0);
    ck_assert(c->has && gkd_table_cmp_at(t, 0, row(t, "slow"), 0)->is_baseline);
    double d[2] = {0.6 - 1.0 / 3, 0.5 - 4.0 / 15};
    gkd_paired want;
    gkd_paired_test(&want, d, 2);
    ck_assert_int_eq(c->test.n, 2);
    ck_assert_double_eq_tol(c->test.mean, want.mean, TOL);
    ck_assert_double_eq_tol(c->test.mean, 0.25, TOL);
    ck_assert_double_eq_tol(c->test.lo, want.lo, TOL);
    ck_assert_double_eq_tol(c->test.p, want.p, TOL);
    ck_assert_double_eq_tol(c->mde, gkd_paired_mde(want.sd, 2, 0.05, 0.8), TOL);
    char *md = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_msg(strstr(md, "| fast | **0.550 ± 0.071** (Δ +0.250 ["), "%s", md);
    free(md);
    gkd_table_free(t);
}
END_TEST

/* The grid's teacher: 0.97 at its final evaluation, 0.1 at its first. */
static void make_teacher(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/shared", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-00ff", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-00ff/eval.csv", root);
    th_write_file(path, "step,exact_match\n0,0.1\n400,0.9\n800,0.97\n");
}

/* The teacher has no distillation curve: its row shows its final value,
 * and says so; init stays the step-0 value. */
START_TEST(test_auc_reference_rows) {
    make_curves();
    make_teacher();
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_AUC);
    o.reference = "teacher,init";
    gkd_table *t = build(&o);
    ck_assert_double_eq_tol(gkd_table_ref_at(t, 0, 0, 0)->mean, 0.97, TOL);
    ck_assert_double_eq_tol(gkd_table_ref_at(t, 1, 0, 0)->mean, 0, TOL);
    char *md = NULL, *csv = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&csv, t, GKD_FMT_CSV, 0, 3), 0);
    ck_assert_msg(strstr(md, "| *teacher* | 0.970 |") && strstr(md, "at its final evaluation: it has no "
                                                                      "distillation curve"),
                  "%s", md);
    ck_assert_msg(strstr(csv, "reference,cond,metric,at,mean,std,n\nteacher,,exact_match,final,0.97,,1\n"
                              "init,,exact_match,first,0,0,2\n,fast,exact_match,auc,0.55"),
                  "%s", csv);
    free(md), free(csv);
    gkd_table_free(t);
}
END_TEST

/* Every cell evaluated the teacher itself (teacher_eval.csv, one row): under
 * --at auc the row is those values, and the caption says that they are not
 * areas. */
START_TEST(test_auc_per_cell_teacher) {
    make_curves();
    const char *conds[] = {"fast", "slow"};
    char path[300];
    for (int c = 0; c < 2; c++)
        for (int seed = 1; seed <= 2; seed++) {
            snprintf(path, sizeof path, "%s/cond=%s,seed=%d/teacher_eval.csv", root, conds[c], seed);
            th_write_file(path, seed == 1 ? "step,exact_match\n300,0.9\n" : "step,exact_match\n300,0.95\n");
        }
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_AUC);
    o.reference = "teacher";
    gkd_table *t = build(&o);
    ck_assert(t->teacher_per_cell);
    ck_assert_int_eq(gkd_table_ref_at(t, 0, 0, 0)->n, 2);
    ck_assert_double_eq_tol(gkd_table_ref_at(t, 0, 0, 0)->mean, 0.925, TOL);
    char *md = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_msg(strstr(md, "(teacher_eval.csv), once per seed; it has no distillation curve, so that one "
                             "evaluation is shown."),
                  "%s", md);
    free(md);
    gkd_table_free(t);
}
END_TEST

/* One measured point has no area; steps that do not increase have no
 * curve. Both errors name the cell's file. */
START_TEST(test_auc_errors) {
    cell("a", 1, "step,exact_match,nll_ref\n0,0.1,\n100,0.5,3\n");
    const char *m[] = {"nll_ref"};
    gkd_table_opts o = opts(m, 1, GKD_AT_AUC);
    gkd_table *t = NULL;
    char want[512];
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    snprintf(want, sizeof want,
             "--at auc: %s/cond=a,seed=1/eval.csv has one evaluation of nll_ref (step 100); the area under the "
             "curve needs two or more",
             root);
    ck_assert_str_eq(gkd_last_error(), want);
    cell("b", 1, "step,exact_match,nll_ref\n0,0.1,1\n100,0.5,2\n100,0.6,2\n");
    m[0] = "exact_match";
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s/cond=b,seed=1/eval.csv:4: step 100 after step 100 (--at auc needs increasing steps)",
             root);
    ck_assert_str_eq(gkd_last_error(), want);
    ck_assert_ptr_null(t);
}
END_TEST

/* --at step=N: the evaluation at that step, whatever comes after it. */
START_TEST(test_step_exact) {
    make_curves();
    const char *m[] = {"exact_match", "nll_ref"};
    gkd_table_opts o = opts(m, 2, GKD_AT_FINAL);
    ck_assert_int_eq(gkd_table_at_parse(&o, "step=100"), 0);
    ck_assert_int_eq(o.at, GKD_AT_STEP);
    ck_assert_int_eq(o.at_step, 100);
    gkd_table *t = build(&o);
    check_stat(t, 0, "fast", 0.45, 0.3 / sqrt(2.0), 2, 1);
    check_stat(t, 0, "slow", 0.15, 0.1 / sqrt(2.0), 2, 0);
    check_stat(t, 1, "fast", 1, 0, 2, 1);
    check_stat(t, 1, "slow", 2, 0, 2, 0);
    char *md = NULL, *tex = NULL, *csv = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&tex, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&csv, t, GKD_FMT_CSV, 0, 3), 0);
    ck_assert_msg(strstr(md, "| fast | **0.450 ± 0.212** | **1.000 ± 0.000** |"), "%s", md);
    ck_assert_msg(strstr(md, "2 seeds per cell, at the evaluation of step 100;"), "%s", md);
    ck_assert_msg(strstr(tex, "at the evaluation of step 100;"), "%s", tex);
    ck_assert_msg(strstr(csv, "cond,metric,at,mean,std,n\nfast,exact_match,step=100,"), "%s", csv);
    free(md), free(tex), free(csv);
    gkd_table_free(t);
    /* Step 200 evaluated nll_ref nowhere: its groups are empty, as for a
     * metric a cell never measured. */
    ck_assert_int_eq(gkd_table_at_parse(&o, "step=200"), 0);
    t = build(&o);
    check_stat(t, 0, "slow", 0.35, 0.05 * sqrt(2.0), 2, 0);
    ck_assert_int_eq(gkd_table_at_cell(t, 1, 0, 0)->n, 0);
    ck_assert_int_eq(gkd_table_at_cell(t, 1, 1, 0)->n, 0);
    gkd_table_free(t);
}
END_TEST

/* A finished cell without an evaluation at step N is an error naming it
 * and the steps it has; the spec is checked before anything is read. */
START_TEST(test_step_errors) {
    make_curves();
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_FINAL);
    ck_assert_int_eq(gkd_table_at_parse(&o, "step=150"), 0);
    gkd_table *t = NULL;
    char want[512];
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    snprintf(want, sizeof want,
             "--at step=150: %s/cond=fast,seed=1/eval.csv has no evaluation at step 150 (its steps: 0, 100, 200, 300)",
             root);
    ck_assert_str_eq(gkd_last_error(), want);
    cell("long", 1, "step,exact_match\n0,0\n10,0\n20,0\n30,0\n40,0\n50,0\n60,0\n");
    gkd_where w = {"cond", "long"};
    o.where = &w;
    o.nwhere = 1;
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "(its steps: 0, 10, 20, …, 60)"), "%s", gkd_last_error());
    ck_assert_ptr_null(t);
    const char *bad[] = {"step=", "step=x", "step=-1", "step=1.5", "auc2", "Final", ""};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        ck_assert_int_eq(gkd_table_at_parse(&o, bad[k]), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "--at must be final, best, auc, step=N or time=SECONDS, not ''");
    ck_assert_int_eq(gkd_table_at_parse(&o, "step=-1"), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(), "--at step: -1 is out of range [0, 2147483647]");
}
END_TEST

/* A cell's timings.csv: step k took secs[k-1] seconds, split over the four
 * step-time columns as 1/2, 1/4, 1/8, 1/8 (exact in binary), with a
 * tokens_per_s column that must not count. */
static void timings(const char *cond, int seed, const double *secs, int n) {
    char path[300], line[256], *text = calloc(1, (size_t)n * 256 + 64);
    ck_assert_ptr_nonnull(text);
    strcpy(text, "step,sample_s,teacher_s,student_s,update_s,tokens_per_s\n");
    for (int k = 0; k < n; k++) {
        snprintf(line, sizeof line, "%d,%.17g,%.17g,%.17g,%.17g,1000\n", k + 1, secs[k] / 2, secs[k] / 4, secs[k] / 8,
                 secs[k] / 8);
        strcat(text, line);
    }
    snprintf(path, sizeof path, "%s/cond=%s,seed=%d/timings.csv", root, cond, seed);
    th_write_file(path, text);
    free(text);
}

/* Costly steps (on-policy: 1 s each; seed 2's first step 2 s) and cheap
 * ones (off-policy: 0.25 s each). Training time at each evaluation:
 *   onpol seed 1: steps 0, 2, 4 at 0, 2, 4 s;   values .1, .5, .9
 *   onpol seed 2: steps 0, 2, 4 at 0, 3, 5 s;   values .1, .3, .7
 *   offpol seed 1/2: steps 0, 4, 8 at 0, 1, 2 s; values .1, .4, .6 / .1, .2, .4 */
static void make_timed(void) {
    const double on1[] = {1, 1, 1, 1}, on2[] = {2, 1, 1, 1}, off[] = {.25, .25, .25, .25, .25, .25, .25, .25};
    cell("onpol", 1, "step,exact_match\n0,0.1\n2,0.5\n4,0.9\n");
    timings("onpol", 1, on1, 4);
    cell("onpol", 2, "step,exact_match\n0,0.1\n2,0.3\n4,0.7\n");
    timings("onpol", 2, on2, 4);
    cell("offpol", 1, "step,exact_match\n0,0.1\n4,0.4\n8,0.6\n");
    timings("offpol", 1, off, 8);
    cell("offpol", 2, "step,exact_match\n0,0.1\n4,0.2\n8,0.4\n");
    timings("offpol", 2, off, 8);
}

/* --at time=S: each cell's last evaluation within S seconds of training
 * (the boundary included); a cell that finished sooner keeps its final
 * value; the teacher shows its final value. */
START_TEST(test_time_budget) {
    make_timed();
    make_teacher();
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_FINAL);
    ck_assert_int_eq(gkd_table_at_parse(&o, "time=2"), 0);
    ck_assert_int_eq(o.at, GKD_AT_TIME);
    ck_assert_double_eq(o.at_seconds, 2);
    o.reference = "teacher,init";
    gkd_table *t = build(&o);
    /* onpol: seed 1 at step 2 (2 s), seed 2 at step 0 (step 2 came at 3 s). */
    check_stat(t, 0, "onpol", 0.3, 0.4 * sqrt(0.5), 2, 0);
    check_stat(t, 0, "offpol", 0.5, 0.2 * sqrt(0.5), 2, 1);
    ck_assert_double_eq_tol(gkd_table_ref_at(t, 0, 0, 0)->mean, 0.97, TOL);
    char *md = NULL, *tex = NULL, *csv = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&tex, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&csv, t, GKD_FMT_CSV, 0, 3), 0);
    ck_assert_msg(strstr(md, "| offpol | **0.500 ± 0.141** |"), "%s", md);
    const char *says = "at the last evaluation within 2 s of training by the wall clock (the step times of "
                       "timings.csv added up), so on another machine or under another load the numbers differ";
    ck_assert_msg(strstr(md, says), "%s", md);
    ck_assert_msg(strstr(tex, says), "%s", tex);
    ck_assert_msg(strstr(csv, "reference,cond,metric,at,mean,std,n\nteacher,,exact_match,final,0.97,,1\n"
                              "init,,exact_match,first,0.1,0,2\n"
                              ",offpol,exact_match,time=2 (wall-clock seconds; machine-dependent),0.5,"),
                  "%s", csv);
    free(md), free(tex), free(csv);
    gkd_table_free(t);
    /* 1.5 s: offpol's step 4 (1 s); onpol is still at step 0. */
    ck_assert_int_eq(gkd_table_at_parse(&o, "time=1.5"), 0);
    o.reference = NULL;
    t = build(&o);
    check_stat(t, 0, "onpol", 0.1, 0, 2, 0);
    check_stat(t, 0, "offpol", 0.3, 0.2 * sqrt(0.5), 2, 1);
    gkd_table_free(t);
    /* Past every cell's end: the final values. */
    ck_assert_int_eq(gkd_table_at_parse(&o, "time=100"), 0);
    t = build(&o);
    check_stat(t, 0, "onpol", 0.8, 0.2 * sqrt(0.5), 2, 1);
    check_stat(t, 0, "offpol", 0.5, 0.2 * sqrt(0.5), 2, 0);
    gkd_table_free(t);
    /* 0 s: the step-0 evaluations, before any training. */
    ck_assert_int_eq(gkd_table_at_parse(&o, "time=0"), 0);
    t = build(&o);
    check_stat(t, 0, "onpol", 0.1, 0, 2, 1);
    check_stat(t, 0, "offpol", 0.1, 0, 2, 1);
    gkd_table_free(t);
}
END_TEST

/* Paired comparisons on equal-time values: seed by seed, offpol - onpol
 * at 2 s is .6 - .5 and .4 - .1. */
START_TEST(test_time_paired) {
    make_timed();
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_FINAL);
    ck_assert_int_eq(gkd_table_at_parse(&o, "time=2"), 0);
    o.baseline = "cond=onpol";
    gkd_table *t = build(&o);
    const gkd_table_cmp *c = gkd_table_cmp_at(t, 0, row(t, "offpol"), 0);
    double d[2] = {0.6 - 0.5, 0.4 - 0.1};
    gkd_paired want;
    gkd_paired_test(&want, d, 2);
    ck_assert(c->has);
    ck_assert_double_eq_tol(c->test.mean, 0.2, TOL);
    ck_assert_double_eq_tol(c->test.hi, want.hi, TOL);
    ck_assert_double_eq_tol(c->test.p, want.p, TOL);
    gkd_table_free(t);
}
END_TEST

/* What --at time cannot sum is an error naming the file: no timings.csv,
 * a step missing from it, an evaluation past its end, no evaluation
 * within the budget; and the spec is checked. */
START_TEST(test_time_errors) {
    const double four[] = {1, 1, 1, 1};
    const char *m[] = {"exact_match"};
    gkd_table_opts o = opts(m, 1, GKD_AT_FINAL);
    ck_assert_int_eq(gkd_table_at_parse(&o, "time=2.5"), 0);
    gkd_table *t = NULL;
    char want[600], path[300];
    cell("a", 1, "step,exact_match\n0,0.1\n4,0.5\n");
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EIO);
    snprintf(want, sizeof want, "--at time needs each cell's timings.csv: %s/cond=a,seed=1/timings.csv", root);
    ck_assert_msg(!strncmp(gkd_last_error(), want, strlen(want)), "%s", gkd_last_error());
    timings("a", 1, four, 3);
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s/cond=a,seed=1/eval.csv:3: an evaluation at step 4, but %s/cond=a,seed=1/timings.csv "
             "ends at step 3", root, root);
    ck_assert_str_eq(gkd_last_error(), want);
    snprintf(path, sizeof path, "%s/cond=a,seed=1/timings.csv", root);
    th_write_file(path, "step,sample_s,teacher_s,student_s,update_s,tokens_per_s\n1,1,0,0,0,1\n3,1,0,0,0,1\n"
                     "4,1,0,0,0,1\n");
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s:3: step '3' where 2 was expected (one row per training step from 1)", path);
    ck_assert_str_eq(gkd_last_error(), want);
    th_write_file(path, "step,sample_s,teacher_s,update_s\n1,1,0,0\n");
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s: no column 'student_s' (training time is sample_s + teacher_s + student_s + "
             "update_s)", path);
    ck_assert_str_eq(gkd_last_error(), want);
    /* No step-0 evaluation, and the first one after the budget. */
    timings("a", 1, four, 4);
    snprintf(path, sizeof path, "%s/cond=a,seed=1/eval.csv", root);
    th_write_file(path, "step,exact_match\n3,0.1\n4,0.5\n");
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    snprintf(want, sizeof want, "--at time=2.5: %s has no evaluation within 2.5 s of training (its first, at step 3, "
             "came after 3 s)", path);
    ck_assert_str_eq(gkd_last_error(), want);
    ck_assert_ptr_null(t);
    const char *bad[] = {"time=", "time=abc", "time=-1", "time=inf", "time=nan", "time=1s"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        ck_assert_msg(gkd_table_at_parse(&o, bad[k]) == GKD_EINVAL, "%s", bad[k]);
}
END_TEST

/* The program: --at auc in every format, a misspelt summary refused. */
START_TEST(test_cli_at) {
    make_curves();
    const char *bin = getenv("GKD_BIN");
    ck_assert_ptr_nonnull(bin);
    char cmd[1024], out[300];
    snprintf(out, sizeof out, "%s/out.txt", root);
    snprintf(cmd, sizeof cmd, "%s table %s --rows cond --metric exact_match --at auc --format csv > %s", bin, root,
             out);
    ck_assert_int_eq(system(cmd), 0);
    char *text = NULL;
    size_t n = 0;
    ck_assert_int_eq(gkd_file_read(&text, &n, out), 0);
    ck_assert_msg(strstr(text, "cond,metric,at,mean,std,n\nfast,exact_match,auc,0.55"), "%s", text);
    free(text);
    snprintf(cmd, sizeof cmd, "%s table %s --rows cond --metric exact_match --at area 2> %s", bin, root, out);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
    ck_assert_int_eq(gkd_file_read(&text, &n, out), 0);
    ck_assert_str_eq(text, "gkd table: --at must be final, best, auc, step=N or time=SECONDS, not 'area'\n");
    free(text);
}
END_TEST

Suite *table_summary_suite(void) {
    Suite *s = suite_create("table_summary");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_auc_by_hand);
    tcase_add_test(tc, test_auc_span);
    tcase_add_test(tc, test_auc_paired);
    tcase_add_test(tc, test_auc_reference_rows);
    tcase_add_test(tc, test_auc_per_cell_teacher);
    tcase_add_test(tc, test_auc_errors);
    tcase_add_test(tc, test_step_exact);
    tcase_add_test(tc, test_step_errors);
    tcase_add_test(tc, test_time_budget);
    tcase_add_test(tc, test_time_paired);
    tcase_add_test(tc, test_time_errors);
    tcase_add_test(tc, test_cli_at);
    suite_add_tcase(s, tc);
    return s;
}
