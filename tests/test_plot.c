/* gkd plot on the fixture tree: the .dat numbers against hand-computed
 * means over seeds, the script, and (when gnuplot is installed) the images. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/plot.h"

#define DIV "tests/fixtures/results/divergences"

static char tmpdir[64];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gkd_test_plot_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n;
    ck_assert_int_eq(gkd_file_read(&s, &n, path), 0);
    return s;
}

/* Rows of a .dat file: block label and x mean lo hi n. */
typedef struct {
    char label[64];
    double x, mean, lo, hi;
    int n;
} dat_row;

static int read_dat(dat_row *rows, int max, const char *path) {
    char *text = slurp(path), *save = NULL, label[64] = "";
    int n = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            if (strchr(line, '=') && !strchr(line, ':')) snprintf(label, sizeof label, "%s", line + 2);
            continue;
        }
        ck_assert_int_lt(n, max);
        snprintf(rows[n].label, sizeof rows[n].label, "%s", label);
        ck_assert_int_eq(sscanf(line, "%lf %lf %lf %lf %d", &rows[n].x, &rows[n].mean, &rows[n].lo, &rows[n].hi,
                                &rows[n].n),
                         5);
        n++;
    }
    free(text);
    return n;
}

static void check_row(const dat_row *r, const char *label, double x, double mean, double lo, double hi, int n) {
    ck_assert_str_eq(r->label, label);
    ck_assert_msg(r->x == x, "%s: x %g != %g", label, r->x, x);
    ck_assert_msg(fabs(r->mean - mean) < 1e-12, "%s x=%g: mean %.17g != %.17g", label, x, r->mean, mean);
    ck_assert_msg(fabs(r->lo - lo) < 1e-12, "%s x=%g: lo %.17g != %.17g", label, x, r->lo, lo);
    ck_assert_msg(fabs(r->hi - hi) < 1e-12, "%s x=%g: hi %.17g != %.17g", label, x, r->hi, hi);
    ck_assert_int_eq(r->n, n);
}

static gkd_plot_opts eval_opts(gkd_where *w) {
    gkd_plot_opts o = GKD_PLOT_OPTS_INIT;
    o.metric = "exact_match";
    o.by = "divergence";
    ck_assert_int_eq(gkd_where_parse(w, "lambda=1"), 0);
    o.where = w;
    o.nwhere = 1;
    o.out_dir = tmpdir;
    o.render = 0;
    return o;
}

START_TEST(test_eval_curves_minmax) {
    gkd_where w;
    gkd_plot_opts o = eval_opts(&w);
    gkd_plot_files f;
    ck_assert_msg(gkd_plot_learning_curves(&f, DIV, &o) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(f.nseries, 3);
    ck_assert_int_eq(f.nskipped, 0); /* the unfinished cell has lambda=0 */
    char want[256];
    snprintf(want, sizeof want, "%s/exact_match_by_divergence_lambda=1.dat", tmpdir);
    ck_assert_str_eq(f.dat, want);
    dat_row r[16];
    ck_assert_int_eq(read_dat(r, 16, f.dat), 9);
    check_row(&r[0], "divergence=fkl", 0, 0, 0, 0, 2);
    check_row(&r[1], "divergence=fkl", 50, 0.61, 0.60, 0.62, 2);
    check_row(&r[2], "divergence=fkl", 100, 0.71, 0.70, 0.72, 2);
    check_row(&r[4], "divergence=rkl", 50, 0.67, 0.64, 0.70, 2);
    check_row(&r[5], "divergence=rkl", 100, 0.77, 0.74, 0.80, 2);
    check_row(&r[7], "divergence=jsd(0.9)", 50, 0.745, 0.70, 0.79, 2);
    check_row(&r[8], "divergence=jsd(0.9)", 100, 0.76, 0.75, 0.77, 2);
    char *gp = slurp(f.gp);
    ck_assert_ptr_nonnull(strstr(gp, "set output 'exact_match_by_divergence_lambda=1.png'"));
    ck_assert_ptr_nonnull(strstr(gp, "set output 'exact_match_by_divergence_lambda=1.svg'"));
    ck_assert_ptr_nonnull(strstr(gp, "index 2 using 1:2 with linespoints"));
    ck_assert_ptr_nonnull(strstr(gp, "title 'jsd(0.9) (n=2)'"));
    ck_assert_ptr_nonnull(strstr(gp, "set xlabel 'step'"));
    /* A rerun writes the same bytes. */
    char *dat1 = slurp(f.dat);
    gkd_plot_files_free(&f);
    ck_assert_int_eq(gkd_plot_learning_curves(&f, DIV, &o), 0);
    char *dat2 = slurp(f.dat);
    ck_assert_str_eq(dat1, dat2);
    free(dat1);
    free(dat2);
    free(gp);
    gkd_plot_files_free(&f);
    gkd_where_free(&w);
}
END_TEST

START_TEST(test_band_std) {
    gkd_where w;
    gkd_plot_opts o = eval_opts(&w);
    o.band = GKD_BAND_STD;
    gkd_plot_files f;
    ck_assert_int_eq(gkd_plot_learning_curves(&f, DIV, &o), 0);
    dat_row r[16];
    ck_assert_int_eq(read_dat(r, 16, f.dat), 9);
    double sd = 0.09 / sqrt(2.0);
    check_row(&r[7], "divergence=jsd(0.9)", 50, 0.745, 0.745 - sd, 0.745 + sd, 2);
    gkd_plot_files_free(&f);
    gkd_where_free(&w);
}
END_TEST

START_TEST(test_metrics_source_and_x_column) {
    gkd_plot_opts o = GKD_PLOT_OPTS_INIT;
    gkd_where w;
    ck_assert_int_eq(gkd_where_parse(&w, "lambda=0"), 0);
    o.metric = "loss";
    o.by = "divergence";
    o.x = "tokens";
    o.source = GKD_PLOT_METRICS;
    o.where = &w;
    o.nwhere = 1;
    o.out_dir = tmpdir;
    o.render = 0;
    gkd_plot_files f;
    ck_assert_msg(gkd_plot_learning_curves(&f, DIV, &o) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(f.nskipped, 1); /* fkl_l0_s3 has no done marker (and no metrics.csv) */
    ck_assert_ptr_nonnull(strstr(f.dat, "loss_by_divergence_vs_tokens_lambda=0.dat"));
    dat_row r[16];
    ck_assert_int_eq(read_dat(r, 16, f.dat), 12);
    /* loss = 2 + offset - 0.25 step + 0.1 (seed - 1); seeds 1, 2. */
    const char *labels[3] = {"divergence=fkl", "divergence=rkl", "divergence=jsd(0.9)"};
    const double offset[3] = {0.0, 0.5, 1.0};
    for (int d = 0; d < 3; d++)
        for (int s = 1; s <= 4; s++) {
            double lo = 2.0 + offset[d] - 0.25 * s;
            check_row(&r[d * 4 + s - 1], labels[d], 100.0 * s, lo + 0.05, lo, lo + 0.1, 2);
        }
    gkd_plot_files_free(&f);
    gkd_where_free(&w);
}
END_TEST

START_TEST(test_errors) {
    gkd_plot_opts o = GKD_PLOT_OPTS_INIT;
    o.metric = "exact_match";
    o.by = "divergence";
    o.out_dir = tmpdir;
    o.render = 0;
    gkd_plot_files f;
    ck_assert_int_eq(gkd_plot_learning_curves(&f, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "axis 'lambda'"));
    gkd_where w;
    ck_assert_int_eq(gkd_where_parse(&w, "lambda=1"), 0);
    o.where = &w;
    o.nwhere = 1;
    o.metric = "bleu";
    ck_assert_int_eq(gkd_plot_learning_curves(&f, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no column 'bleu'"));
    o.metric = "exact_match";
    o.by = "temperature";
    ck_assert_int_eq(gkd_plot_learning_curves(&f, DIV, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "unknown axis 'temperature'"));
    gkd_where_free(&w);
    /* No gnuplot on PATH: one clear error. */
    const char *path = getenv("PATH");
    char *saved = path ? strdup(path) : NULL;
    setenv("PATH", tmpdir, 1);
    ck_assert_int_eq(gkd_gnuplot_available(), 0);
    ck_assert_int_eq(gkd_gnuplot_run("x.gp"), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "gnuplot not found on PATH"));
    if (saved) setenv("PATH", saved, 1);
    free(saved);
}
END_TEST

START_TEST(test_render_png_svg) {
    if (!gkd_gnuplot_available()) {
        fprintf(stderr, "plot: gnuplot not installed, rendering not tested\n");
        return;
    }
    gkd_where w;
    gkd_plot_opts o = eval_opts(&w);
    o.render = 1;
    gkd_plot_files f;
    ck_assert_msg(gkd_plot_learning_curves(&f, DIV, &o) == 0, "%s", gkd_last_error());
    FILE *png = fopen(f.png, "rb");
    ck_assert_ptr_nonnull(png);
    unsigned char sig[8];
    ck_assert_uint_eq(fread(sig, 1, 8, png), 8);
    fclose(png);
    static const unsigned char want[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ck_assert_int_eq(memcmp(sig, want, 8), 0);
    char *svg = slurp(f.svg);
    ck_assert_ptr_nonnull(strstr(svg, "<svg"));
    ck_assert_ptr_nonnull(strstr(svg, "jsd(0.9) (n=2)"));
    free(svg);
    /* A broken script is reported with gnuplot's message. */
    char bad[256];
    snprintf(bad, sizeof bad, "%s/bad.gp", tmpdir);
    ck_assert_int_eq(gkd_file_write_atomic(bad, "plot 'missing.dat' using 1:2\n", 29), 0);
    ck_assert_int_eq(gkd_gnuplot_run(bad), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "gnuplot failed"));
    gkd_plot_files_free(&f);
    gkd_where_free(&w);
}
END_TEST

/* Strings from a results tree never run as gnuplot code: an axis value
 * with newlines around a system() call (as a TSV path in an experiment
 * file, or an edited axes.csv, can carry) stays inside its string, in the
 * legend and in the title (--where), and the payload's file is not made. */
START_TEST(test_no_code_from_axis_values) {
    static const char *payload = "b\nsystem(\"touch %s/pwned\")\n#";
    char value[256], tree[128], cell[256], path[320];
    snprintf(value, sizeof value, payload, tmpdir);
    snprintf(tree, sizeof tree, "%s/tree", tmpdir);
    ck_assert_int_eq(mkdir(tree, 0755), 0);
    for (int c = 0; c < 2; c++) {
        snprintf(cell, sizeof cell, "%s/c%d", tree, c);
        ck_assert_int_eq(mkdir(cell, 0755), 0);
        snprintf(path, sizeof path, "%s/axes.csv", cell);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        /* CSV: the value quoted, its quotes doubled. */
        fprintf(f, "key,value\npath,\"");
        for (const char *p = c ? value : "a"; *p; p++) fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
        fprintf(f, "\"\nseed,1\n");
        fclose(f);
        snprintf(path, sizeof path, "%s/eval.csv", cell);
        ck_assert_int_eq(gkd_file_write_atomic(path, "step,exact_match\n0,0.1\n10,0.2\n", 30), 0);
        snprintf(path, sizeof path, "%s/done", cell);
        ck_assert_int_eq(gkd_file_write_atomic(path, "", 0), 0);
    }
    for (int with_where = 0; with_where < 2; with_where++) {
        gkd_plot_opts o = GKD_PLOT_OPTS_INIT;
        gkd_where w = {"path", value};
        o.metric = "exact_match";
        o.by = "path";
        o.out_dir = tmpdir;
        o.render = gkd_gnuplot_available();
        if (with_where) o.where = &w, o.nwhere = 1;
        gkd_plot_files f;
        ck_assert_msg(gkd_plot_learning_curves(&f, tree, &o) == 0, "%s", gkd_last_error());
        char *gp = slurp(f.gp), *save = NULL;
        for (char *line = strtok_r(gp, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            ck_assert_msg(strncmp(line, "system(", 7) && strncmp(line, "#.", 2), "a line of the script: %s", line);
        free(gp);
        gkd_plot_files_free(&f);
    }
    snprintf(path, sizeof path, "%s/pwned", tmpdir);
    ck_assert_msg(access(path, F_OK) != 0, "the payload ran");
}
END_TEST

Suite *plot_suite(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("plot");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_eval_curves_minmax);
    tcase_add_test(tc, test_band_std);
    tcase_add_test(tc, test_metrics_source_and_x_column);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_no_code_from_axis_values);
    tcase_add_test(tc, test_render_png_svg);
    suite_add_tcase(s, tc);
    return s;
}
