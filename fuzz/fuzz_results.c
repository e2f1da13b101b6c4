/* libFuzzer target for results trees as gkd table reads them: a tiny tree
 * of six finished cells (divergence fkl/rkl x seed 1/2/3) with grid.csv,
 * labels.csv, axes.csv, eval.csv, timings.csv, teacher_eval.csv and a
 * shared teacher, in which one file is the fuzz input. Its first byte k
 * picks the file (k % 7) and what is built from the tree (k / 7 % 6); the
 * rest is the file's contents. Kinds: 0 opens the tree with
 * gkd_results_open and gkd_results_labels and builds the --at final table
 * with a baseline and reference rows, rendered as Markdown, LaTeX and CSV;
 * 1 the same table with --power (paired power analysis); 2 auc, 3 time,
 * 4 step, 5 best. One table per input, and three seeds rather than two
 * (the power analysis of one degree of freedom takes 20 ms a table, of
 * two 2 ms), make an input take a millisecond or a few where all tables
 * of the two-seed tree took 40 ms; the pristine tree is checked to give
 * every table at start. Any input must give a table or one error
 * line. Seeds: the files of tests/fixtures/results, each behind a
 * selector byte of every kind (fuzz/seeds.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/results.h"
#include "gkd/table.h"

/* The tree: file (relative to the experiment) and its pristine contents. */
static const struct {
    const char *name, *text;
} files[] = {
    {"grid.csv", "cell,dir,divergence,seed\n0,c0,fkl,1\n1,c1,rkl,1\n2,c2,fkl,2\n3,c3,rkl,2\n4,c4,fkl,3\n5,c5,rkl,3\n"},
    {"labels.csv", "key,text\ndivergence:fkl,FKL\nexact_match,EM\n"},
    {"c0/axes.csv", "key,value\ndivergence,fkl\nseed,1\n"},
    {"c0/eval.csv", "step,exact_match,nll_ref,val_loss\n0,0.1,3.0,2.0\n5,0.4,2.0,1.5\n10,0.5,,1.2\n"},
    {"c0/timings.csv", "step,sample_s,teacher_s,student_s,update_s\n1,0.1,0.1,0.1,0.1\n2,0.1,0.1,0.1,0.1\n"
                       "3,0.1,0.1,0.1,0.1\n4,0.1,0.1,0.1,0.1\n5,0.1,0.1,0.1,0.1\n6,0.1,0.1,0.1,0.1\n"
                       "7,0.1,0.1,0.1,0.1\n8,0.1,0.1,0.1,0.1\n9,0.1,0.1,0.1,0.1\n10,0.1,0.1,0.1,0.1\n"},
    {"c0/teacher_eval.csv", "step,exact_match,nll_ref\n0,0.9,1.0\n"},
    {"shared/teacher-0/eval.csv", "step,exact_match,nll_ref\n0,0.8,1.0\n100,0.9,0.5\n"},
};
#define NFILES (sizeof files / sizeof files[0])
#define NKINDS 6 /* tables built from the tree (see the top of the file) */

static char exp_dir[300];

static void put(const char *name, const void *data, size_t n) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", exp_dir, name);
    fuzz_write(p, data, n);
}

static void put_text(const char *name, const char *text) { put(name, text, strlen(text)); }

static int table(int kind, int strict);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(exp_dir, sizeof exp_dir, "exp");
    const char *div[] = {"fkl", "rkl"}, *seed[] = {"1", "2", "3"};
    for (int c = 0; c < 6; c++) {
        char d[600], name[64], text[128];
        snprintf(d, sizeof d, "%s/c%d", exp_dir, c);
        if (gkd_mkdir_p(d)) abort();
        snprintf(name, sizeof name, "c%d/axes.csv", c);
        snprintf(text, sizeof text, "key,value\ndivergence,%s\nseed,%s\n", div[c % 2], seed[c / 2]);
        put_text(name, text);
        snprintf(name, sizeof name, "c%d/done", c);
        put_text(name, "");
        snprintf(name, sizeof name, "c%d/eval.csv", c);
        /* fkl - rkl at the end: -0.15, -0.1, -0.1 over the seeds (an
         * eval.csv of c0 ending in 0.55 makes the std near zero). */
        static const char *const final[] = {"0.5", "0.65", "0.7", "0.8", "0.9", "1.0"};
        snprintf(text, sizeof text, "step,exact_match,nll_ref,val_loss\n0,0.1,3.0,2.0\n5,0.%d,2.0,1.5\n10,%s,1.0,1.2\n",
                 c + 2, final[c]);
        put_text(name, text);
        snprintf(name, sizeof name, "c%d/timings.csv", c);
        put_text(name, files[4].text);
        snprintf(name, sizeof name, "c%d/teacher_eval.csv", c);
        put_text(name, files[5].text);
    }
    char d[600];
    snprintf(d, sizeof d, "%s/shared/teacher-0", exp_dir);
    if (gkd_mkdir_p(d)) abort();
    for (size_t i = 0; i < NFILES; i++) put_text(files[i].name, files[i].text);
    /* The pristine tree must give every table, or the target tests nothing. */
    for (int kind = 0; kind < NKINDS; kind++) table(kind, 1);
    return 0;
}

static void fail_if(int strict, int rc, const char *what) {
    if (rc && strict) {
        fprintf(stderr, "fuzz_results: the pristine tree fails: %s: %s\n", what, gkd_last_error());
        abort();
    }
    if (rc) fuzz_check_error(rc, what);
}

static int build(const gkd_table_opts *o, int strict, int render) {
    gkd_table *t = NULL;
    int rc = gkd_table_build(&t, exp_dir, o);
    fail_if(strict, rc, "gkd_table_build");
    if (rc) return rc;
    for (int f = 0; f < (render ? 3 : 1); f++) {
        char *out = NULL;
        rc = gkd_table_render(&out, t, (gkd_table_format)f, f == 1, 3);
        fail_if(strict, rc, "gkd_table_render");
        free(out);
    }
    gkd_table_free(t);
    return 0;
}

/* Table kind `kind` of the tree (see the top of the file). */
static int table(int kind, int strict) {
    int rc;
    const char *metrics[] = {"exact_match", "nll_ref"};
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    o.rows = "divergence";
    o.metrics = metrics;
    o.nmetrics = 2;
    switch (kind) {
    case 0: {
        gkd_results *r = NULL;
        rc = gkd_results_open(&r, exp_dir);
        fail_if(strict, rc, "gkd_results_open");
        if (rc) return rc;
        gkd_results_free(r);
        gkd_where *labels = NULL;
        int nl = 0;
        rc = gkd_results_labels(&labels, &nl, exp_dir);
        fail_if(strict, rc, "gkd_results_labels");
        for (int i = 0; i < nl; i++) gkd_where_free(&labels[i]);
        free(labels);
        o.baseline = "divergence=fkl";
        o.reference = "teacher,init";
        return build(&o, strict, 1);
    }
    case 1:
        o.baseline = "divergence=fkl";
        o.power = 1;
        return build(&o, strict, 0);
    default:
        o.cols = "seed";
        o.nmetrics = kind == 5 ? 2 : 1;
        o.at = kind == 2 ? GKD_AT_AUC : kind == 3 ? GKD_AT_TIME : kind == 4 ? GKD_AT_STEP : GKD_AT_BEST;
        o.at_seconds = 1.0;
        o.at_step = 5;
        return build(&o, strict, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t k = data[0] % NFILES;
    put(files[k].name, data + 1, size - 1);
    table(data[0] / NFILES % NKINDS, 0);
    put_text(files[k].name, files[k].text);
    return 0;
}
