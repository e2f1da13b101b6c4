/* Private to src/experiment: running one cell in this process. */
#ifndef GKD_RUN_CELL_H
#define GKD_RUN_CELL_H

#include <stddef.h>

#include "gkd/experiment.h"

/** Run (or finish) cell c under <exp_dir>/<c->name>/: its teacher (loaded,
 *  or shared), its student init (loaded, shared SFT, or random), the
 *  distillation, the teacher's reference evaluation, run.json and the
 *  markers. A finished cell is left alone (one without teacher_eval.csv
 *  only gets that). done_before and total count cells for the progress
 *  lines. A cell another process holds is an error when busy is NULL (one
 *  cell was asked for); else *busy is set and it is left to that process. */
int run_cell(const gkd_cell_config *c, const char *exp_dir, size_t done_before, size_t total, int tty, int *busy);

#endif
