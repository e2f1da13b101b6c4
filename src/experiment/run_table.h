/* Private to src/experiment: the table `gkd run` prints when a grid is done. */
#ifndef GKD_RUN_TABLE_H
#define GKD_RUN_TABLE_H

#include "gkd/experiment.h"

/** Markdown table of exact_match, fkl_ref and teacher_nll: rows the first
 *  axis other than seed with two values or more, columns the second (if
 *  any); nothing when there is no such axis. */
int run_default_table(const gkd_experiment *exp, const char *exp_dir);

#endif
