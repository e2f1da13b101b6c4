/* Private to gkd table: the one number a cell contributes to its group,
 * taken from the cell's evaluation curve (eval.csv). */
#ifndef GKD_TABLE_SUMMARY_H
#define GKD_TABLE_SUMMARY_H

#include "gkd/csv.h"
#include "gkd/table.h"

/** What --at asks of every cell. */
typedef struct {
    gkd_table_at at;
    long step;             /* GKD_AT_STEP */
    double seconds;        /* GKD_AT_TIME */
    const double *elapsed; /* GKD_AT_TIME: training seconds at each row of eval.csv */
} table_summary;

/** The metric in column `col` of eval.csv: the last measured value (largest
 *  step) for `final`, the best by `dir` for `best`, the normalised area
 *  under the measured points for `auc`, the value at the evaluation of
 *  step s->step for `step`, the last measured value within s->seconds of
 *  training for `time`. Returns 1 with *v set, 0 if the metric was not
 *  measured there, or a negative error naming the file (and line). */
int table_cell_value(double *v, const gkd_csv *ev, int col, const table_summary *s, gkd_metric_dir dir);

/** The training time at each row of eval.csv: the sum of the per-step
 *  times (sample_s, teacher_s, student_s, update_s) of the rows of
 *  `timings` (the cell's timings.csv, one row per step from 1) up to that
 *  row's step; 0 at step 0. *out has ev->nrows entries (caller frees). */
int table_eval_elapsed(double **out, const gkd_csv *ev, const gkd_csv *timings);

/** The metric at the first evaluation (smallest step): the student before
 *  distillation. 1 with *v set, 0 if not measured there. */
int table_first_value(double *v, const gkd_csv *ev, int col);

#endif
