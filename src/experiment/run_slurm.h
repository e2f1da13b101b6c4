/* Private to src/experiment: submitting an experiment as one Slurm job
 * array (task i runs cell i with `gkd run --cell i`; finished cells skip
 * themselves), through gkd/slurm.h. */
#ifndef GKD_RUN_SLURM_H
#define GKD_RUN_SLURM_H

#include "gkd/experiment.h"
#include "gkd/runner.h"
#include "run_plan.h"

/** Submit the whole grid of the experiment file `path`, unless every cell
 *  is done (*all_done = 1: nothing submitted). Changed cells are refused
 *  (or with force cleared) here, not in every task; bad Slurm options
 *  before anything is written. */
int run_slurm(const gkd_experiment *exp, const char *path, const char *exp_dir, run_plan *p,
              const gkd_run_options *opt, int *all_done);

#endif
