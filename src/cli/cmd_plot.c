/* gkd plot: learning curves (mean over seeds with a band) via gnuplot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/plot.h"

static void plot_usage(FILE *f) {
    fprintf(f,
            "usage: gkd plot results/<experiment> --metric M --by AXIS [--where AXIS=VALUE]...\n"
            "                [--x COLUMN] [--source eval|metrics] [--band minmax|std]\n"
            "                [--out DIR] [--no-render]\n"
            "One line per value of AXIS: the mean over seeds at each step, with a band\n"
            "(min..max over seeds by default). Writes .dat, .gp, .png and .svg into\n"
            "DIR (default results/<experiment>/figures). See docs/results.md.\n");
}

int cmd_plot(int argc, char **argv) {
    int status = 1, err = 0, nwhere = 0;
    const char *dir = NULL, *v;
    gkd_where *where = calloc((size_t)argc + 1, sizeof *where);
    gkd_plot_opts o = GKD_PLOT_OPTS_INIT;
    gkd_plot_files files = {0};
    if (!where) {
        fprintf(stderr, "gkd plot: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            plot_usage(stdout);
            status = 0;
            goto done;
        } else if ((v = cli_flag(argc, argv, &i, "--metric", &err))) {
            o.metric = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--by", &err))) {
            o.by = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--x", &err))) {
            o.x = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--out", &err))) {
            o.out_dir = v;
        } else if (!err && (v = cli_flag(argc, argv, &i, "--source", &err))) {
            if (!strcmp(v, "eval")) o.source = GKD_PLOT_EVAL;
            else if (!strcmp(v, "metrics")) o.source = GKD_PLOT_METRICS;
            else {
                fprintf(stderr, "gkd plot: --source must be eval or metrics, not '%s'\n", v);
                status = 2;
                goto done;
            }
        } else if (!err && (v = cli_flag(argc, argv, &i, "--band", &err))) {
            if (!strcmp(v, "minmax")) o.band = GKD_BAND_MINMAX;
            else if (!strcmp(v, "std")) o.band = GKD_BAND_STD;
            else {
                fprintf(stderr, "gkd plot: --band must be minmax or std, not '%s'\n", v);
                status = 2;
                goto done;
            }
        } else if (!err && (v = cli_flag(argc, argv, &i, "--where", &err))) {
            if (gkd_where_parse(&where[nwhere], v)) {
                fprintf(stderr, "gkd plot: %s\n", gkd_last_error());
                status = 2;
                goto done;
            }
            nwhere++;
        } else if (!err && !strcmp(a, "--no-render")) {
            o.render = 0;
        } else if (!err && a[0] != '-' && !dir) {
            dir = a;
        } else {
            if (!err) fprintf(stderr, "gkd plot: unexpected argument '%s' (see gkd plot --help)\n", a);
            status = 2;
            goto done;
        }
        if (err) {
            status = 2;
            goto done;
        }
    }
    if (!dir || !o.metric || !o.by) {
        fprintf(stderr, "gkd plot: a results directory, --metric and --by are required (see gkd plot --help)\n");
        status = 2;
        goto done;
    }
    o.where = where;
    o.nwhere = nwhere;
    if (gkd_plot_learning_curves(&files, dir, &o)) {
        fprintf(stderr, "gkd plot: %s\n", gkd_last_error());
        goto done;
    }
    if (files.nskipped > 0)
        fprintf(stderr, "gkd plot: skipped %d incomplete cell%s (no done marker)\n", files.nskipped,
                files.nskipped == 1 ? "" : "s");
    printf("%s\n%s\n", files.dat, files.gp);
    if (o.render) printf("%s\n%s\n", files.png, files.svg);
    status = 0;
done:
    for (int i = 0; i < nwhere; i++) gkd_where_free(&where[i]);
    free(where);
    gkd_plot_files_free(&files);
    return status;
}
