/* gkd run: every cell of an experiment file (experiments/quickstart.yaml by
 * default), locally or as a Slurm job array. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/parse.h"
#include "gkd/runner.h"

#define DEFAULT_EXPERIMENT "experiments/quickstart.yaml"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd run [EXPERIMENT.yaml] [--jobs N] [--only 'axis=value,...'] [--cell I]\n"
            "               [--dry-run] [--force] [--results DIR] [--no-table]\n"
            "               [--executor local|slurm] [--partition P] [--time HH:MM:SS]\n"
            "               [--cpus-per-task N] [--mem M] [--max-parallel N]\n"
            "Runs (or resumes) every cell; finished cells are skipped. Without a file it runs\n"
            "%s. See docs/experiments.md and docs/results.md.\n",
            DEFAULT_EXPERIMENT);
}

int cmd_run(int argc, char **argv) {
    gkd_run_options o = GKD_RUN_OPTIONS_INIT;
    const char *path = NULL, *v;
    long n;
    for (int i = 1; i < argc; i++) {
        int err = 0;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--dry-run")) { o.dry_run = 1; continue; }
        if (!strcmp(a, "--force")) { o.force = 1; continue; }
        if (!strcmp(a, "--no-table")) { o.table = 0; continue; }
        if ((v = cli_flag(argc, argv, &i, "--only", &err))) { o.only = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--results", &err))) { o.results = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--partition", &err))) { o.slurm.partition = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--time", &err))) { o.slurm.time = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--mem", &err))) { o.slurm.mem = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--executor", &err))) {
            if (!strcmp(v, "local")) o.executor = GKD_EXECUTOR_LOCAL;
            else if (!strcmp(v, "slurm")) o.executor = GKD_EXECUTOR_SLURM;
            else { fprintf(stderr, "gkd run: --executor: '%s' is not local or slurm\n", v); return 2; }
            continue;
        }
#define LONG_OPT(flag, lvalue, lo, hi)                                                       \
    if ((v = cli_flag(argc, argv, &i, flag, &err))) {                                         \
        if (gkd_parse_long(&n, v, lo, hi, flag)) { cli_fail("run"); return 2; }               \
        lvalue = n;                                                                            \
        continue;                                                                              \
    }
        LONG_OPT("--jobs", o.jobs, 1, 1024)
        LONG_OPT("--cell", o.cell, 0, 10000000)
        LONG_OPT("--cpus-per-task", o.slurm.cpus_per_task, 1, 4096)
        LONG_OPT("--max-parallel", o.slurm.max_parallel, 0, 1000000)
#undef LONG_OPT
        if (err) return 2;
        if (a[0] == '-') {
            fprintf(stderr, "gkd run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (path) { fprintf(stderr, "gkd run: one experiment file at a time ('%s' and '%s')\n", path, a); return 2; }
        path = a;
    }
    if (!path) path = DEFAULT_EXPERIMENT;
    if (gkd_run_experiment(path, &o)) return cli_fail("run");
    return 0;
}
