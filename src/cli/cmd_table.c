/* gkd table: a paper-style table (mean ± std over seeds) from a results tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/parse.h"
#include "gkd/table.h"

static void table_usage(FILE *f) {
    fprintf(f,
            "usage: gkd table results/<experiment> --rows AXIS [--cols AXIS] --metric M[,M...]\n"
            "                 [--at final|best|auc|step=N|time=SECONDS] [--format md|latex|csv]\n"
            "                 [--ci95] [--digits N] [--where AXIS=VALUE]...\n"
            "                 [--baseline AXIS=VALUE [--power]] [--reference teacher,init]\n"
            "                 [--label KEY=TEXT]... [--out FILE]\n"
            "Mean ± sample std over seeds of each finished cell's metric, grouped by the\n"
            "--rows and --cols axes; best per column in bold. A cell's number is its value\n"
            "at the final evaluation (--at final), at its best one (--at best), at the\n"
            "evaluation of step N (--at step=N: equal updates), at its last evaluation\n"
            "within SECONDS of training by the wall clock (--at time=SECONDS: equal time;\n"
            "the step times of timings.csv added up, so it depends on the machine), or\n"
            "the area under its evaluation curve divided by the steps it spans, i.e. its\n"
            "mean over training (--at auc). --baseline adds, to every other cell, the\n"
            "paired difference to the baseline row or column over the seeds both have:\n"
            "its 95%% CI, the p of an exact sign-flip test (n <= 12) or paired t-test, and\n"
            "a mark when significant after Holm's correction; --power adds the 80%%-power\n"
            "detectable difference and the seeds needed.\n"
            "--reference adds rows for the grid's teacher and for the students before\n"
            "distillation (their step-0 evaluation). In LaTeX, metrics and axes print\n"
            "as display names; --label sets one (KEY a metric, an axis or AXIS:VALUE,\n"
            "TEXT LaTeX source), over the experiment file's labels (labels.csv, written\n"
            "by gkd run). See docs/results.md.\n");
}

int cmd_table(int argc, char **argv) {
    int status = 1, ci95 = 0, err = 0, nmetrics = 0, nwhere = 0;
    long digits = 3;
    const char *dir = NULL, *out = NULL, *v;
    char *metric_list = NULL, *text = NULL;
    const char **metrics = calloc((size_t)argc + 1, sizeof *metrics);
    gkd_where *where = calloc((size_t)argc + 1, sizeof *where);
    gkd_where *labels = calloc((size_t)argc + 1, sizeof *labels);
    int nlabels = 0;
    gkd_table *t = NULL;
    gkd_table_opts o = GKD_TABLE_OPTS_INIT;
    gkd_table_format fmt = GKD_FMT_MD;
    size_t mlen = 1;
    for (int i = 1; i < argc; i++) mlen += strlen(argv[i]) + 1;
    metric_list = calloc(mlen, 1);
    if (!metrics || !where || !labels || !metric_list) {
        fprintf(stderr, "gkd table: out of memory\n");
        goto done;
    }
    char *mcur = metric_list;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            table_usage(stdout);
            status = 0;
            goto done;
        } else if ((v = cli_flag(argc, argv, &i, "--rows", &err))) {
            o.rows = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--cols", &err))) {
            o.cols = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--metric", &err))) {
            strcpy(mcur, v);
            for (char *tok = strtok(mcur, ","); tok; tok = strtok(NULL, ",")) metrics[nmetrics++] = tok;
            mcur += strlen(v) + 1;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--at", &err))) {
            if (gkd_table_at_parse(&o, v)) {
                fprintf(stderr, "gkd table: %s\n", gkd_last_error());
                status = 2;
                goto done;
            }
        } else if (!err && (v = cli_flag(argc, argv, &i, "--format", &err))) {
            if (!strcmp(v, "md")) fmt = GKD_FMT_MD;
            else if (!strcmp(v, "latex")) fmt = GKD_FMT_LATEX;
            else if (!strcmp(v, "csv")) fmt = GKD_FMT_CSV;
            else {
                fprintf(stderr, "gkd table: --format must be md, latex or csv, not '%s'\n", v);
                status = 2;
                goto done;
            }
        } else if (!err && (v = cli_flag(argc, argv, &i, "--digits", &err))) {
            if (gkd_parse_long(&digits, v, 0, 12, "--digits")) {
                fprintf(stderr, "gkd table: %s\n", gkd_last_error());
                status = 2;
                goto done;
            }
        } else if (!err && (v = cli_flag(argc, argv, &i, "--where", &err))) {
            if (gkd_where_parse(&where[nwhere], v)) {
                fprintf(stderr, "gkd table: %s\n", gkd_last_error());
                status = 2;
                goto done;
            }
            nwhere++;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--out", &err))) {
            out = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--baseline", &err))) {
            o.baseline = v;
        } else if (!err && !strcmp(a, "--power")) {
            o.power = 1;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--reference", &err))) {
            o.reference = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--label", &err))) {
            if (gkd_where_parse(&labels[nlabels], v)) {
                fprintf(stderr, "gkd table: --label: %s\n", gkd_last_error());
                status = 2;
                goto done;
            }
            nlabels++;
        } else if (!err && !strcmp(a, "--ci95")) {
            ci95 = 1;
        } else if (!err && a[0] != '-' && !dir) {
            dir = a;
        } else {
            if (!err) fprintf(stderr, "gkd table: unexpected argument '%s' (see gkd table --help)\n", a);
            status = 2;
            goto done;
        }
        if (err) {
            status = 2;
            goto done;
        }
    }
    if (!dir || !o.rows || nmetrics == 0) {
        fprintf(stderr, "gkd table: a results directory, --rows and --metric are required (see gkd table --help)\n");
        status = 2;
        goto done;
    }
    o.metrics = metrics;
    o.nmetrics = nmetrics;
    o.where = where;
    o.nwhere = nwhere;
    o.labels = labels;
    o.nlabels = nlabels;
    if (gkd_table_build(&t, dir, &o) || gkd_table_render(&text, t, fmt, ci95, (int)digits)) {
        fprintf(stderr, "gkd table: %s\n", gkd_last_error());
        goto done;
    }
    if (t->nskipped > 0)
        fprintf(stderr, "gkd table: skipped %d incomplete cell%s (no done marker)\n", t->nskipped,
                t->nskipped == 1 ? "" : "s");
    if (out) {
        if (gkd_file_write_atomic(out, text, strlen(text))) {
            fprintf(stderr, "gkd table: %s\n", gkd_last_error());
            goto done;
        }
    } else {
        fputs(text, stdout);
    }
    status = 0;
done:
    for (int i = 0; i < nwhere; i++) gkd_where_free(&where[i]);
    for (int i = 0; i < nlabels; i++) gkd_where_free(&labels[i]);
    free(where);
    free(labels);
    free(metrics);
    free(metric_list);
    free(text);
    gkd_table_free(t);
    return status;
}
