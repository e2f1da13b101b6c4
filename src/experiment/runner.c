/* Runs the cells of an experiment (include/gkd/runner.h): load and check
 * the file, plan which cells to run, then run them here or submit them to
 * Slurm.
 *
 * <results>/<exp>/
 *   grid.csv                  cell,dir,<axes>: every cell in grid order
 *   labels.csv                key,text: the experiment's labels (if any)
 *   shared/teacher-<hash>/    the teacher every cell with that hash uses
 *   shared/student-<hash>/    the SFT student init shared across non-seed axes
 *   <cell>/                   config.yaml, config.hash, axes.csv, run.json,
 *                             metrics.csv, eval.csv, timings.csv,
 *                             checkpoint.ckpt, final.ckpt, markers
 *
 * The parts, one file each: run_plan.c (which cells), run_grid_files.c
 * (grid.csv, labels.csv), run_local.c (in order or a fork pool),
 * run_slurm.c (a job array), run_cell.c (one cell), run_shared.c (shared
 * teachers and SFT students), cell_dir.c, cell_run_json.c and
 * cell_config_change.c (a cell's directory), cell_options.c (the runs'
 * options from the schema table), run_table.c (the closing table). */
#include "gkd/runner.h"

#include <stdio.h>

#include "gkd/error.h"
#include "gkd/experiment.h"
#include "gkd/experiment_inputs.h"
#include "gkd/fsutil.h"
#include "run_grid_files.h"
#include "run_local.h"
#include "run_path.h"
#include "run_plan.h"
#include "run_slurm.h"
#include "run_table.h"

/* --dry-run: the selected cells, nothing run or written. */
static int list_cells(const gkd_experiment *exp, const run_plan *p) {
    for (size_t k = 0; k < p->nselected; k++) {
        gkd_cell_config c;
        int rc = gkd_experiment_cell(exp, p->selected[k], &c);
        if (rc) return rc;
        printf("%zu\t%s\n", p->selected[k], c.name);
    }
    printf("%zu of %zu cells\n", p->nselected, gkd_experiment_num_cells(exp));
    return 0;
}

int gkd_run_experiment(const char *path, const gkd_run_options *opt) {
    gkd_experiment *exp = NULL;
    run_plan plan = RUN_PLAN_INIT;
    char exp_dir[RUN_PATH_CAP];
    /* "" would put the experiment at the file system's root. */
    if (!opt->results || !*opt->results) return gkd_error(GKD_EINVAL, "--results needs a directory, not an empty string");
    int rc = gkd_experiment_load(&exp, path);
    if (rc) return rc;
    if ((rc = run_plan_select(&plan, exp, opt))) goto done;
    /* Data files, checkpoints and example lengths, before anything is written or trained. */
    if ((rc = gkd_experiment_check_inputs(exp))) goto done;
    if ((rc = run_path_join(exp_dir, opt->results, gkd_experiment_name(exp)))) goto done;
    if ((rc = run_grid_check_same_experiment(exp_dir, exp, opt->force))) goto done;
    if (opt->dry_run) {
        rc = list_cells(exp, &plan);
        goto done;
    }
    if (opt->executor == GKD_EXECUTOR_SLURM) {
        int all_done = 0;
        rc = run_slurm(exp, path, exp_dir, &plan, opt, &all_done);
        if (!rc && all_done && opt->table) rc = run_default_table(exp, exp_dir);
        goto done;
    }
    if ((rc = run_plan_scan(&plan, exp, exp_dir, opt->force))) goto done;
    /* Only now, with every selected cell's config checked, does anything get written. */
    if ((rc = gkd_mkdir_p(exp_dir)) || (rc = run_grid_write_files(exp_dir, exp))) goto done;
    if ((rc = run_local(exp, exp_dir, &plan, opt))) goto done;
    if (opt->table && opt->cell < 0) rc = run_default_table(exp, exp_dir);
done:
    run_plan_free(&plan);
    gkd_experiment_free(exp);
    return rc;
}
