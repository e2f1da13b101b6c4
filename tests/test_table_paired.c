/* gkd table --baseline / --power on results trees made here: a planted
 * paired effect hidden under a large seed-to-seed spread must be marked
 * significant, a null effect must not, and the numbers must be those of
 * src/util/stats.c on the seed-by-seed differences. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/stats.h"
#include "gkd/table.h"

#include "helpers.h"

#define SEEDS 8

static char root[64];

static void setup(void) { th_make_tmpdir(root, sizeof root, "gkd-paired"); }

static void teardown(void) { th_remove_tmpdir(root); }

/* A finished cell with axes cond and seed whose final exact_match is v. */
static void cell(const char *cond, int seed, double v) {
    char dir[256], path[300], text[256];
    snprintf(dir, sizeof dir, "%s/cond=%s,seed=%d", root, cond, seed);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/axes.csv", dir);
    snprintf(text, sizeof text, "key,value\ncond,%s\nseed,%d\n", cond, seed);
    th_write_file(path, text);
    snprintf(path, sizeof path, "%s/eval.csv", dir);
    snprintf(text, sizeof text, "step,exact_match\n0,0.01\n100,%.17g\n", v);
    th_write_file(path, text);
    snprintf(path, sizeof path, "%s/done", dir);
    th_write_file(path, "");
}

/* Seed s's level: spread over 0.1 .. 0.8, far more than the effects. */
static double level(int s) { return 0.1 + 0.1 * s; }
/* Small noise of either sign, the same for every condition's seed s. */
static double wobble(int s, int k) { return 0.004 * ((s * 7 + k * 3) % 5 - 2); }

/* base: the levels; up: +0.05 each (planted); same: +-noise around 0. */
static void make_tree(int drop_seed) {
    for (int s = 0; s < SEEDS; s++) {
        cell("base", s + 1, level(s));
        cell("up", s + 1, level(s) + 0.05 + wobble(s, 1));
        if (s + 1 != drop_seed) cell("same", s + 1, level(s) + (s % 2 ? 0.01 : -0.01) + wobble(s, 2));
    }
}

static gkd_table *build(const char *baseline, int power) {
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = m;
    o.nmetrics = 1;
    o.baseline = baseline;
    o.power = power;
    gkd_table *t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, &o) == 0, "%s", gkd_last_error());
    return t;
}

static int row(const gkd_table *t, const char *v) {
    for (int i = 0; i < t->nrows; i++)
        if (!strcmp(t->row_values[i], v)) return i;
    ck_abort_msg("no row %s", v);
    return -1;
}

START_TEST(test_planted_and_null) {
    make_tree(0);
    gkd_table *t = build("cond=base", 1);
    ck_assert_int_eq(t->ncompared, 2);
    const gkd_table_cmp *b = gkd_table_cmp_at(t, 0, row(t, "base"), 0);
    const gkd_table_cmp *up = gkd_table_cmp_at(t, 0, row(t, "up"), 0);
    const gkd_table_cmp *same = gkd_table_cmp_at(t, 0, row(t, "same"), 0);
    ck_assert(b->is_baseline && !b->has);
    /* The unpaired spread (std ~0.24) hides the effect; the pairs do not. */
    ck_assert(gkd_table_at_cell(t, 0, row(t, "up"), 0)->std > 0.2);
    ck_assert(up->has && up->significant && !same->significant);
    /* The numbers are stats.c's on the seed-by-seed differences. */
    double d[SEEDS];
    for (int s = 0; s < SEEDS; s++) d[s] = (level(s) + 0.05 + wobble(s, 1)) - level(s);
    gkd_paired want;
    gkd_paired_test(&want, d, SEEDS);
    ck_assert_int_eq(up->test.n, SEEDS);
    ck_assert_int_eq(up->unpaired, 0);
    ck_assert_double_eq_tol(up->test.mean, want.mean, 1e-15);
    ck_assert_double_eq_tol(up->test.lo, want.lo, 1e-15);
    ck_assert_double_eq_tol(up->test.p_perm, want.p_perm, 1e-15);
    /* All 8 differences positive: the exact p is 2/256, times 2 for Holm. */
    ck_assert_double_eq_tol(up->test.p, 2.0 / 256, 1e-15);
    ck_assert_double_eq_tol(up->p_holm, 4.0 / 256, 1e-15);
    ck_assert_double_eq_tol(up->mde, gkd_paired_mde(want.sd, SEEDS, 0.05, 0.8), 1e-15);
    ck_assert_int_eq(up->n_needed, gkd_paired_n_needed(want.mean, want.sd, 0.05, 0.8, GKD_TABLE_N_MAX));
    ck_assert(same->test.p > 0.2);
    /* Rendered: the mark on the planted row only, in every format. */
    char *md = NULL, *tex = NULL, *csv = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&tex, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&csv, t, GKD_FMT_CSV, 0, 3), 0);
    const char *line = strstr(md, "| up |");
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(strstr(line, "p = 0.008") && strstr(line, "†") && strstr(line, "†") < strchr(line, '\n'), "%s", md);
    ck_assert_ptr_nonnull(strstr(md, "(baseline)"));
    ck_assert_ptr_nonnull(strstr(md, "Holm's correction over the 2 comparisons"));
    ck_assert_ptr_nonnull(strstr(tex, "$^{\\dagger}$"));
    ck_assert_ptr_nonnull(strstr(tex, "$\\Delta = +0."));
    ck_assert_ptr_nonnull(strstr(csv, "p_perm,p,p_holm,significant,mde80,n80"));
    ck_assert_ptr_nonnull(strstr(csv, "\nup,exact_match,"));
    free(md), free(tex), free(csv);
    gkd_table_free(t);
}
END_TEST

/* The "same" row checked on its own: no mark in the Markdown line. */
START_TEST(test_null_row_unmarked) {
    make_tree(0);
    gkd_table *t = build("cond=base", 0);
    char *md = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    const char *line = strstr(md, "| same |");
    ck_assert_ptr_nonnull(line);
    const char *end = strchr(line, '\n');
    const char *mark = strstr(line, "†");
    ck_assert_msg(!mark || mark > end, "%s", md);
    ck_assert_ptr_null(strstr(md, "MDE"));
    free(md);
    gkd_table_free(t);
}
END_TEST

/* A seed missing from one cell: only the shared seeds are paired, and the
 * cell says how many pairs. */
START_TEST(test_unshared_seeds) {
    make_tree(3);
    gkd_table *t = build("cond=base", 0);
    const gkd_table_cmp *same = gkd_table_cmp_at(t, 0, row(t, "same"), 0);
    ck_assert_int_eq(same->test.n, SEEDS - 1);
    ck_assert_int_eq(same->unpaired, 1);
    char *md = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_ptr_nonnull(strstr(md, ", 7 pairs)"));
    free(md);
    gkd_table_free(t);
}
END_TEST

/* When every cell evaluated the teacher itself (teacher_eval.csv, with the
 * cell's own settings), the teacher row is those values once per seed; a
 * single cell without one sends the table back to the shared teacher. */
START_TEST(test_reference_teacher_per_cell) {
    make_tree(0);
    char path[300], text[128];
    snprintf(path, sizeof path, "%s/shared", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-00ff", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-00ff/eval.csv", root);
    th_write_file(path, "step,exact_match\n800,0.97\n");
    const char *conds[] = {"base", "up", "same"};
    for (int c = 0; c < 3; c++)
        for (int s = 1; s <= SEEDS; s++) {
            snprintf(path, sizeof path, "%s/cond=%s,seed=%d/teacher_eval.csv", root, conds[c], s);
            /* The same value for a seed in every cell: 0.90 + 0.01 s. */
            snprintf(text, sizeof text, "step,exact_match\n0,%.17g\n", 0.90 + 0.01 * s);
            th_write_file(path, text);
        }
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = m;
    o.nmetrics = 1;
    o.reference = "teacher";
    gkd_table *t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, &o) == 0, "%s", gkd_last_error());
    const gkd_table_stat *teacher = gkd_table_ref_at(t, 0, 0, 0);
    ck_assert_int_eq(teacher->n, SEEDS);
    /* mean of 0.91 .. 0.98; sample std of 1..8 is sqrt(6) -> 0.01 sqrt(6) */
    ck_assert_double_eq_tol(teacher->mean, 0.945, 1e-12);
    ck_assert_double_eq_tol(teacher->std, 0.01 * sqrt(6.0), 1e-12);
    ck_assert_int_eq(t->teacher_per_cell, 1);
    char *md = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_ptr_nonnull(strstr(md, "| *teacher* | 0.945 ± 0.024 |"));
    ck_assert_ptr_nonnull(strstr(md, "teacher_eval.csv"));
    free(md);
    gkd_table_free(t);

    snprintf(path, sizeof path, "%s/cond=up,seed=3/teacher_eval.csv", root);
    ck_assert_int_eq(unlink(path), 0);
    t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, &o) == 0, "%s", gkd_last_error());
    teacher = gkd_table_ref_at(t, 0, 0, 0);
    ck_assert(teacher->n == 1 && teacher->mean == 0.97);
    ck_assert_int_eq(t->teacher_per_cell, 0);
    gkd_table_free(t);
}
END_TEST

/* Reference rows: the teacher's final value in every column, and the
 * students' step-0 values once per seed. */
START_TEST(test_reference_rows) {
    make_tree(0);
    char path[300];
    snprintf(path, sizeof path, "%s/shared", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-00ff", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-00ff/eval.csv", root);
    th_write_file(path, "step,exact_match\n0,0.1\n800,0.97\n");
    snprintf(path, sizeof path, "%s/shared/teacher-00ff.lock", root);
    th_write_file(path, "");
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = m;
    o.nmetrics = 1;
    o.reference = "teacher,init";
    gkd_table *t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, &o) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(t->nref, 2);
    const gkd_table_stat *teacher = gkd_table_ref_at(t, 0, 0, 0), *init = gkd_table_ref_at(t, 1, 0, 0);
    ck_assert(teacher->n == 1 && teacher->mean == 0.97);
    /* 24 cells, 8 seeds: the step-0 value once per seed. */
    ck_assert_int_eq(init->n, SEEDS);
    ck_assert_double_eq_tol(init->mean, 0.01, 1e-15);
    char *md = NULL, *csv = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&csv, t, GKD_FMT_CSV, 0, 3), 0);
    ck_assert_ptr_nonnull(strstr(md, "| *teacher* | 0.970 |"));
    ck_assert_ptr_nonnull(strstr(md, "| *init (step 0)* | 0.010 ± 0.000 |"));
    ck_assert_ptr_nonnull(strstr(csv, "reference,cond,metric,mean,std,n\nteacher,,exact_match,0.97"));
    free(md), free(csv);
    gkd_table_free(t);
    /* Two teachers: which one is ambiguous. */
    snprintf(path, sizeof path, "%s/shared/teacher-11ee", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/shared/teacher-11ee/eval.csv", root);
    th_write_file(path, "step,exact_match\n800,0.5\n");
    t = NULL;
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "holds 2 trained teachers"));
    o.reference = "init,student";
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "unknown row 'student'"));
    ck_assert_ptr_null(t);
}
END_TEST

/* LaTeX labels: --label for a metric, an axis value; an axis without a
 * built-in name is escaped. */
START_TEST(test_latex_labels) {
    make_tree(0);
    const char *m[] = {"exact_match"};
    gkd_where labels[2] = {{"exact_match", "EM"}, {"cond:up", "Planted $+0.05$"}};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = m;
    o.nmetrics = 1;
    o.labels = labels;
    o.nlabels = 2;
    gkd_table *t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, &o) == 0, "%s", gkd_last_error());
    char *tex = NULL;
    ck_assert_int_eq(gkd_table_render(&tex, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_msg(strstr(tex, "cond & EM $\\uparrow$ \\\\"), "%s", tex);
    ck_assert_msg(strstr(tex, "\nPlanted $+0.05$ & "), "%s", tex);
    ck_assert_msg(strstr(tex, "\nsame & "), "%s", tex);
    ck_assert_msg(strstr(tex, "\\caption{EM $\\uparrow$: mean"), "%s", tex);
    free(tex);
    gkd_table_free(t);
}
END_TEST

/* The experiment's labels (labels.csv, written by gkd run) are display
 * names too; --label overrides the same key. */
START_TEST(test_labels_file) {
    make_tree(0);
    char path[300], want[400];
    snprintf(path, sizeof path, "%s/labels.csv", root);
    th_write_file(path, "key,text\nexact_match,EM from file\ncond:up,Planted\ncond:same,\"Same, unchanged\"\n");
    const char *m[] = {"exact_match"};
    gkd_where labels[1] = {{"cond:up", "CLI up"}};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = m;
    o.nmetrics = 1;
    o.labels = labels;
    o.nlabels = 1;
    gkd_table *t = NULL;
    ck_assert_msg(gkd_table_build(&t, root, &o) == 0, "%s", gkd_last_error());
    char *tex = NULL, *md = NULL;
    ck_assert_int_eq(gkd_table_render(&tex, t, GKD_FMT_LATEX, 0, 3), 0);
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_msg(strstr(tex, "cond & EM from file $\\uparrow$ \\\\"), "%s", tex);
    ck_assert_msg(strstr(tex, "\nCLI up & ") && !strstr(tex, "Planted"), "%s", tex);
    ck_assert_msg(strstr(tex, "\nSame, unchanged & ") && strstr(tex, "\nbase & "), "%s", tex);
    /* Markdown keeps the names of the files. */
    ck_assert_msg(strstr(md, "| cond | exact_match ↑ |") && strstr(md, "\n| up |"), "%s", md);
    free(tex), free(md);
    gkd_table_free(t);
    t = NULL;
    /* A hand-edited file that is not key,text pairs is refused. */
    th_write_file(path, "key,text\nexact_match,EM\n,x\n");
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s:3: empty key", path);
    ck_assert_str_eq(gkd_last_error(), want);
    th_write_file(path, "name,latex\nexact_match,EM\n");
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EFORMAT);
    snprintf(want, sizeof want, "%s: expected the columns key,text", path);
    ck_assert_str_eq(gkd_last_error(), want);
    ck_assert_ptr_null(t);
}
END_TEST

/* Means that print the same are all bold: a reader sees a tie. */
START_TEST(test_ties_in_print_all_bold) {
    cell("x", 1, 0.4794);
    cell("y", 1, 0.4791);
    cell("z", 1, 0.3);
    gkd_table *t = build(NULL, 0);
    char *md = NULL, *md4 = NULL;
    ck_assert_int_eq(gkd_table_render(&md, t, GKD_FMT_MD, 0, 3), 0);
    ck_assert_msg(strstr(md, "| x | **0.479** |") && strstr(md, "| y | **0.479** |") && strstr(md, "| z | 0.300 |"),
                  "%s", md);
    /* With four digits they differ, and only the larger is bold. */
    ck_assert_int_eq(gkd_table_render(&md4, t, GKD_FMT_MD, 0, 4), 0);
    ck_assert_msg(strstr(md4, "| x | **0.4794** |") && strstr(md4, "| y | 0.4791 |"), "%s", md4);
    free(md), free(md4);
    gkd_table_free(t);
}
END_TEST

START_TEST(test_bad_baseline) {
    make_tree(0);
    const char *m[] = {"exact_match"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "cond";
    o.metrics = m;
    o.nmetrics = 1;
    gkd_table *t = NULL;
    o.power = 1;
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "--power needs a --baseline"));
    o.power = 0;
    o.baseline = "seed=1";
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "is not the --rows axis"));
    o.baseline = "cond=nope";
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no finished cell has cond=nope"));
    o.baseline = "cond";
    ck_assert_int_eq(gkd_table_build(&t, root, &o), GKD_EINVAL);
    ck_assert_ptr_null(t);
}
END_TEST

Suite *table_paired_suite(void) {
    Suite *s = suite_create("table_paired");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_planted_and_null);
    tcase_add_test(tc, test_null_row_unmarked);
    tcase_add_test(tc, test_unshared_seeds);
    tcase_add_test(tc, test_reference_rows);
    tcase_add_test(tc, test_reference_teacher_per_cell);
    tcase_add_test(tc, test_latex_labels);
    tcase_add_test(tc, test_labels_file);
    tcase_add_test(tc, test_ties_in_print_all_bold);
    tcase_add_test(tc, test_bad_baseline);
    suite_add_tcase(s, tc);
    return s;
}
