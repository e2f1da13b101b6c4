/* The number each cell contributes to a table: a summary of its
 * evaluation curve (eval.csv), chosen with gkd table --at. */
#include "table_summary.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The last evaluation whose training time is within the budget: equal
 * wall clock for conditions whose steps cost differently (on-policy
 * rollouts, teacher generation for SeqKD). */
static int time_value(double *v, const gkd_csv *ev, int col, double budget, const double *elapsed) {
    const int step_col = gkd_csv_col(ev, "step");
    int found = 0;
    size_t first = 0;
    double last_step = -INFINITY;
    for (size_t r = 0; r < ev->nrows; r++) {
        if (elapsed[r] < elapsed[first]) first = r;
        if (elapsed[r] > budget) continue;
        double x = 0, step = 0;
        int rc = gkd_results_number(&x, gkd_csv_get(ev, r, col));
        if (rc < 0) return gkd_error_wrap(rc, "%s:%ld: column '%s'", ev->path, ev->lines[r], ev->header[col]);
        if (rc == 0) continue;
        gkd_results_number(&step, gkd_csv_get(ev, r, step_col)); /* checked by table_eval_elapsed */
        if (!found || step >= last_step) {
            *v = x;
            last_step = step;
        }
        found = 1;
    }
    if (ev->nrows && elapsed[first] > budget)
        return gkd_error(GKD_EINVAL, "--at time=%g: %s has no evaluation within %g s of training (its first, at "
                                     "step %s, came after %g s)",
                         budget, ev->path, budget, gkd_csv_get(ev, first, step_col), elapsed[first]);
    return found;
}

/* The per-step times timings.csv adds up to training time. Evaluations,
 * checkpoints and the shared teacher and SFT student are not in it: they
 * are not this cell's training (docs/results.md). */
static const char *const STEP_TIMES[] = {"sample_s", "teacher_s", "student_s", "update_s"};
#define N_STEP_TIMES ((int)(sizeof STEP_TIMES / sizeof STEP_TIMES[0]))

int table_eval_elapsed(double **out, const gkd_csv *ev, const gkd_csv *tm) {
    int cols[N_STEP_TIMES], rc = 0;
    const int tstep = gkd_csv_col(tm, "step"), estep = gkd_csv_col(ev, "step");
    *out = NULL;
    if (estep < 0) return gkd_error(GKD_EFORMAT, "%s: --at time needs a 'step' column", ev->path);
    if (tstep < 0) return gkd_error(GKD_EFORMAT, "%s: no column 'step'", tm->path);
    for (int k = 0; k < N_STEP_TIMES; k++)
        if ((cols[k] = gkd_csv_col(tm, STEP_TIMES[k])) < 0)
            return gkd_error(GKD_EFORMAT, "%s: no column '%s' (training time is sample_s + teacher_s + "
                                          "student_s + update_s)",
                             tm->path, STEP_TIMES[k]);
    /* trained[s]: seconds of training after step s. */
    double *trained = malloc((tm->nrows + 1) * sizeof *trained), *elapsed = malloc((ev->nrows + 1) * sizeof *elapsed);
    if (!trained || !elapsed) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    trained[0] = 0;
    for (size_t r = 0; r < tm->nrows; r++) {
        double step = 0, sum = 0;
        if (gkd_results_number(&step, gkd_csv_get(tm, r, tstep)) <= 0 || step != (double)(r + 1)) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: step '%s' where %zu was expected (one row per training step from 1)",
                           tm->path, tm->lines[r], gkd_csv_get(tm, r, tstep), r + 1);
            goto done;
        }
        for (int k = 0; k < N_STEP_TIMES; k++) {
            double x = 0;
            if (gkd_results_number(&x, gkd_csv_get(tm, r, cols[k])) <= 0 || !(x >= 0)) {
                rc = gkd_error(GKD_EFORMAT, "%s:%ld: column '%s': '%s' is not a time in seconds", tm->path,
                               tm->lines[r], STEP_TIMES[k], gkd_csv_get(tm, r, cols[k]));
                goto done;
            }
            sum += x;
        }
        trained[r + 1] = trained[r] + sum;
    }
    for (size_t r = 0; r < ev->nrows; r++) {
        double step = 0;
        if (gkd_results_number(&step, gkd_csv_get(ev, r, estep)) <= 0 || step < 0 || step != floor(step)) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: column 'step': '%s' is not a step", ev->path, ev->lines[r],
                           gkd_csv_get(ev, r, estep));
            goto done;
        }
        if (step > (double)tm->nrows) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: an evaluation at step %g, but %s ends at step %zu", ev->path,
                           ev->lines[r], step, tm->path, tm->nrows);
            goto done;
        }
        elapsed[r] = trained[(size_t)step];
    }
    *out = elapsed;
    elapsed = NULL;
done:
    free(trained);
    free(elapsed);
    return rc;
}

int table_cell_value(double *v, const gkd_csv *ev, int col, const table_summary *s, gkd_metric_dir dir) {
    if (s->at == GKD_AT_AUC) return auc_value(v, ev, col);
    if (s->at == GKD_AT_STEP) return step_value(v, ev, col, s->step);
    if (s->at == GKD_AT_TIME) return time_value(v, ev, col, s->seconds, s->elapsed);
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
    } else if (!strncmp(spec, "time=", 5)) {
        if (gkd_parse_double(&o->at_seconds, spec + 5, 0, 1e12, "--at time")) return GKD_EINVAL;
        o->at = GKD_AT_TIME;
    } else {
        return gkd_error(GKD_EINVAL, "--at must be final, best, auc, step=N or time=SECONDS, not '%s'", spec);
    }
    return 0;
}
