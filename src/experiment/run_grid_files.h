/* Private to src/experiment: the files of a results directory about the
 * experiment as a whole: grid.csv (cell, dir and the axes of every cell)
 * and labels.csv (the experiment's labels, for gkd table). */
#ifndef GKD_RUN_GRID_FILES_H
#define GKD_RUN_GRID_FILES_H

#include "gkd/experiment.h"

/** GKD_EMISMATCH if exp_dir/grid.csv is another experiment's (other axes),
 *  unless force. */
int run_grid_check_same_experiment(const char *exp_dir, const gkd_experiment *exp, int force);

/** Write grid.csv and labels.csv (removed when there are no labels), each
 *  only when its content changes. */
int run_grid_write_files(const char *exp_dir, const gkd_experiment *exp);

#endif
