/* Private to gkd table: the one number a cell contributes to its group,
 * taken from the cell's evaluation curve (eval.csv). */
#ifndef GKD_TABLE_SUMMARY_H
#define GKD_TABLE_SUMMARY_H

#include "gkd/csv.h"
#include "gkd/table.h"

/** What --at asks of every cell. */
typedef struct {
    gkd_table_at at;
    long step; /* GKD_AT_STEP */
} table_summary;

/** The metric in column `col` of eval.csv: the last measured value (largest
 *  step) for `final`, the best by `dir` for `best`, the normalised area
 *  under the measured points for `auc`, the value at the evaluation of
 *  step s->step for `step`. Returns 1 with *v set, 0 if the metric was not
 *  measured there, or a negative error naming the file (and line). */
int table_cell_value(double *v, const gkd_csv *ev, int col, const table_summary *s, gkd_metric_dir dir);

/** The metric at the first evaluation (smallest step): the student before
 *  distillation. 1 with *v set, 0 if not measured there. */
int table_first_value(double *v, const gkd_csv *ev, int col);

#endif
