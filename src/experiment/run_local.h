/* Private to src/experiment: running a plan's cells on this machine, one
 * after the other or N at once in a pool of child processes. */
#ifndef GKD_RUN_LOCAL_H
#define GKD_RUN_LOCAL_H

#include "gkd/experiment.h"
#include "gkd/runner.h"
#include "run_plan.h"

/** Run the cells p->todo (run_plan_scan) with opt->jobs at once. A failed
 *  cell does not stop the others; the error then counts them. Cells
 *  another process holds are left to it. */
int run_local(const gkd_experiment *exp, const char *exp_dir, const run_plan *p, const gkd_run_options *opt);

#endif
