/* Running an experiment's grid: every cell's teacher (shared), student
 * initialization (shared), distillation and markers, locally (optionally N
 * cells at once) or as a Slurm job array. Results go to
 * <results>/<experiment>/ as documented in docs/results.md. */
#ifndef GKD_RUNNER_H
#define GKD_RUNNER_H

#include <stddef.h>

#include "gkd/slurm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GKD_EXECUTOR_LOCAL = 0, GKD_EXECUTOR_SLURM = 1 } gkd_executor;

typedef struct {
    const char *results;   /* results root directory ("results") */
    int jobs;              /* cells at once (local); threads per cell = cores / jobs */
    const char *only;      /* filter "divergence=rkl,lambda=1" (NULL: all cells) */
    long cell;             /* run only this cell index (-1: all) */
    int force;             /* rerun cells whose config changed (their old results are removed) */
    int dry_run;           /* list the selected cells, run nothing */
    gkd_executor executor;
    gkd_slurm_options slurm; /* overrides of the file's slurm section (NULL/0 = file's) */
    int table;             /* print the default table when every cell is done */
} gkd_run_options;

#define GKD_RUN_OPTIONS_INIT                                                                     \
    {.results = "results", .jobs = 1, .only = NULL, .cell = -1, .force = 0, .dry_run = 0,      \
     .executor = GKD_EXECUTOR_LOCAL, .slurm = {NULL, NULL, 0, NULL, 0}, .table = 1}

/** Run (or resume) the experiment file at `path`. Completed cells are
 *  skipped; a cell whose resolved config changed is refused unless force. */
int gkd_run_experiment(const char *path, const gkd_run_options *opt);

#ifdef __cplusplus
}
#endif

#endif
