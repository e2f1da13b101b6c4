/* Slurm submission of a grid (run_slurm.h). */
#include "run_slurm.h"

#include <stdio.h>
#include <stdlib.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/slurm.h"
#include "run_grid_files.h"

/* The file's slurm section, with the command line's overrides ("" in the
 * file and NULL/0 on the command line mean the cluster's default). Not
 * table-driven: each field has its own rule for "unset". */
static void slurm_options(gkd_slurm_options *so, const gkd_cell_config *c, const gkd_slurm_options *over) {
    gkd_slurm_options o = GKD_SLURM_OPTIONS_INIT;
    o.partition = over->partition ? over->partition : (*c->slurm.partition ? c->slurm.partition : NULL);
    o.time = over->time ? over->time : c->slurm.time;
    o.cpus_per_task = over->cpus_per_task > 0 ? over->cpus_per_task : c->slurm.cpus_per_task;
    o.mem = over->mem ? over->mem : (*c->slurm.mem ? c->slurm.mem : NULL);
    o.max_parallel = over->max_parallel;
    *so = o;
}

int run_slurm(const gkd_experiment *exp, const char *path, const char *exp_dir, run_plan *p,
              const gkd_run_options *opt, int *all_done) {
    *all_done = 0;
    if (opt->only || opt->cell >= 0)
        return gkd_error(GKD_EINVAL, "--only and --cell select cells to run here; with --executor slurm the "
                                     "whole grid is submitted (finished cells are skipped)");
    int rc = run_plan_scan(p, exp, exp_dir, opt->force);
    if (rc) return rc;
    if (p->ntodo == 0) {
        fprintf(stderr, "gkd: all %zu cells already done; nothing submitted\n", p->nselected);
        *all_done = 1;
        /* Labels edited after the run still reach the tables. */
        return run_grid_write_files(exp_dir, exp);
    }
    gkd_cell_config c0;
    if ((rc = gkd_experiment_cell(exp, 0, &c0))) return rc;
    gkd_slurm_options so;
    slurm_options(&so, &c0, &opt->slurm);
    if ((rc = gkd_slurm_options_check(&so))) return rc;
    if ((rc = gkd_mkdir_p(exp_dir)) || (rc = run_grid_write_files(exp_dir, exp))) return rc;
    char *cmd = NULL, job[64];
    if ((rc = gkd_slurm_gkd_command(&cmd, NULL, path, opt->results))) return rc;
    rc = gkd_slurm_run_array(job, sizeof job, gkd_experiment_name(exp), exp_dir, (int)gkd_experiment_num_cells(exp),
                             &so, cmd);
    free(cmd);
    if (!rc)
        printf("submitted job array %s (%zu cells); follow it with: gkd status %s\n", job,
               gkd_experiment_num_cells(exp), exp_dir);
    return rc;
}
