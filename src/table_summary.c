/* The number each cell contributes to a table: a summary of its
 * evaluation curve (eval.csv), chosen with gkd table --at. */
#include "table_summary.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/parse.h"
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

/* "0, 100, 200, …, 1000": the steps of eval.csv, for a message. */
static void list_steps(char *out, size_t size, const gkd_csv *ev, int step_col) {
    size_t k = 0;
    out[0] = '\0';
    for (size_t r = 0; r < ev->nrows && k + 1 < size; r++) {
        if (r == 3 && ev->nrows > 5) {
            k += (size_t)snprintf(out + k, size - k, ", …");
            r = ev->nrows - 1;
        }
        k += (size_t)snprintf(out + k, size - k, "%s%s", r ? ", " : "", gkd_csv_get(ev, r, step_col));
    }
}

/* The evaluation at step `want` exactly: equal updates for runs of
 * different lengths. A finished cell without that evaluation is an error,
 * not a silent gap in its group. */
static int step_value(double *v, const gkd_csv *ev, int col, long want) {
    const int step_col = gkd_csv_col(ev, "step");
    if (step_col < 0) return gkd_error(GKD_EFORMAT, "%s: --at step=%ld needs a 'step' column", ev->path, want);
    for (size_t r = 0; r < ev->nrows; r++) {
        double step = 0;
        if (gkd_results_number(&step, gkd_csv_get(ev, r, step_col)) <= 0)
            return gkd_error(GKD_EFORMAT, "%s:%ld: column 'step': not a number", ev->path, ev->lines[r]);
        if (step != (double)want) continue;
        int rc = gkd_results_number(v, gkd_csv_get(ev, r, col));
        if (rc < 0) return gkd_error_wrap(rc, "%s:%ld: column '%s'", ev->path, ev->lines[r], ev->header[col]);
        return rc;
    }
    char steps[256];
    list_steps(steps, sizeof steps, ev, step_col);
    return gkd_error(GKD_EINVAL, "--at step=%ld: %s has no evaluation at step %ld (its steps: %s)", want, ev->path,
                     want, ev->nrows ? steps : "none");
}

int table_cell_value(double *v, const gkd_csv *ev, int col, const table_summary *s, gkd_metric_dir dir) {
    if (s->at == GKD_AT_AUC) return auc_value(v, ev, col);
    if (s->at == GKD_AT_STEP) return step_value(v, ev, col, s->step);
    const gkd_table_at at = s->at;
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

int gkd_table_at_parse(gkd_table_opts *o, const char *spec) {
    if (!strcmp(spec, "final")) o->at = GKD_AT_FINAL;
    else if (!strcmp(spec, "best")) o->at = GKD_AT_BEST;
    else if (!strcmp(spec, "auc")) o->at = GKD_AT_AUC;
    else if (!strncmp(spec, "step=", 5)) {
        if (gkd_parse_long(&o->at_step, spec + 5, 0, INT_MAX, "--at step")) return GKD_EINVAL;
        o->at = GKD_AT_STEP;
    } else {
        return gkd_error(GKD_EINVAL, "--at must be final, best, auc or step=N, not '%s'", spec);
    }
    return 0;
}
