/* Private to src/experiment: which cells `gkd run` runs, in which order,
 * and which shared teachers they need trained first. Plans read the
 * results tree and write nothing (except --force clearing changed cells). */
#ifndef GKD_RUN_PLAN_H
#define GKD_RUN_PLAN_H

#include <stddef.h>

#include "gkd/experiment.h"
#include "gkd/runner.h"

typedef struct {
    size_t *selected; /* cells --only / --cell select, grid order */
    size_t nselected;
    size_t *todo;     /* selected cells still to run, grid order */
    size_t ntodo;
    size_t done;      /* selected cells already finished */
} run_plan;

#define RUN_PLAN_INIT {NULL, 0, NULL, 0, 0}

/** The cells opt selects (--cell, --only; GKD_EINVAL for an unknown axis
 *  or a filter that selects nothing). */
int run_plan_select(run_plan *p, const gkd_experiment *exp, const gkd_run_options *opt);

/** Which selected cells still have to run, from their directories under
 *  exp_dir. A cell whose directory holds another config's results is an
 *  error, or (force) is removed so it runs again. */
int run_plan_scan(run_plan *p, const gkd_experiment *exp, const char *exp_dir, int force);

/** The first cell to run of each distinct shared teacher to train (cells
 *  with teacher.checkpoint need none), grid order; *cells is freed by the
 *  caller. */
int run_plan_teachers(size_t **cells, size_t *n, const run_plan *p, const gkd_experiment *exp);

void run_plan_free(run_plan *p);

#endif
