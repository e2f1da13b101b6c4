/* The number each cell contributes to a table: a summary of its
 * evaluation curve (eval.csv), chosen with gkd table --at. */
#include "table_summary.h"

#include <math.h>

#include "gkd/error.h"
#include "gkd/results.h"

/* The trapezoid rule over the measured (step, value) points, divided by
 * the steps they span: the curve's mean over training, in the metric's own
 * units, so a condition that gets there sooner scores higher even when the
 * final values agree. */
static int auc_value(double *v, const gkd_csv *ev, int col) {
    const int step_col = gkd_csv_col(ev, "step");
    if (step_col < 0) return gkd_error(GKD_EFORMAT, "%s: --at auc needs a 'step' column", ev->path);
    int n = 0;
    double first = 0, prev_step = 0, prev_x = 0, area = 0;
    for (size_t r = 0; r < ev->nrows; r++) {
        double x = 0, step = 0;
        int rc = gkd_results_number(&x, gkd_csv_get(ev, r, col));
        if (rc < 0) return gkd_error_wrap(rc, "%s:%ld: column '%s'", ev->path, ev->lines[r], ev->header[col]);
        if (rc == 0) continue;
        if (gkd_results_number(&step, gkd_csv_get(ev, r, step_col)) <= 0)
            return gkd_error(GKD_EFORMAT, "%s:%ld: column 'step': not a number", ev->path, ev->lines[r]);
        if (n > 0 && !(step > prev_step))
            return gkd_error(GKD_EFORMAT, "%s:%ld: step %g after step %g (--at auc needs increasing steps)", ev->path,
                             ev->lines[r], step, prev_step);
        if (n == 0) first = step;
        else area += (step - prev_step) * (x + prev_x) / 2;
        prev_step = step;
        prev_x = x;
        n++;
    }
    if (n == 0) return 0;
    if (n == 1)
        return gkd_error(GKD_EINVAL, "--at auc: %s has one evaluation of %s (step %g); the area under the curve "
                                     "needs two or more",
                         ev->path, ev->header[col], first);
    *v = area / (prev_step - first);
    return 1;
}

int table_cell_value(double *v, const gkd_csv *ev, int col, gkd_table_at at, gkd_metric_dir dir) {
    if (at == GKD_AT_AUC) return auc_value(v, ev, col);
    int step_col = gkd_csv_col(ev, "step");
    int found = 0;
    double best = 0, best_step = -INFINITY;
    for (size_t r = 0; r < ev->nrows; r++) {
        double x = 0, step = (double)r;
        int rc = gkd_results_number(&x, gkd_csv_get(ev, r, col));
        if (rc < 0) return gkd_error_wrap(rc, "%s:%ld: column '%s'", ev->path, ev->lines[r], ev->header[col]);
        if (rc == 0) continue;
        if (step_col >= 0) {
            rc = gkd_results_number(&step, gkd_csv_get(ev, r, step_col));
            if (rc <= 0)
                return gkd_error(GKD_EFORMAT, "%s:%ld: column 'step': not a number", ev->path, ev->lines[r]);
        }
        int take;
        if (!found) take = 1;
        else if (at == GKD_AT_FINAL) take = step >= best_step;
        else take = dir == GKD_DIR_HIGHER ? x > best : x < best;
        if (take) {
            best = x;
            best_step = step;
        }
        found = 1;
    }
    *v = best;
    return found;
}

int table_first_value(double *v, const gkd_csv *ev, int col) {
    int step_col = gkd_csv_col(ev, "step"), found = 0;
    double first_step = INFINITY;
    for (size_t r = 0; r < ev->nrows; r++) {
        double step = (double)r, x = 0;
        if (step_col >= 0 && gkd_results_number(&step, gkd_csv_get(ev, r, step_col)) <= 0)
            return gkd_error(GKD_EFORMAT, "%s:%ld: column 'step': not a number", ev->path, ev->lines[r]);
        if (step >= first_step) continue;
        first_step = step;
        int rc = gkd_results_number(&x, gkd_csv_get(ev, r, col));
        if (rc < 0) return gkd_error_wrap(rc, "%s:%ld: column '%s'", ev->path, ev->lines[r], ev->header[col]);
        found = rc;
        *v = x;
    }
    return found;
}
