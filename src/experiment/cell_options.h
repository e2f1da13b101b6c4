/* Private to src/experiment: the options of the runs a cell makes, from the
 * schema table (experiment_schema.c), so a new option is one table row. */
#ifndef GKD_CELL_OPTIONS_H
#define GKD_CELL_OPTIONS_H

#include "gkd/distill.h"
#include "gkd/experiment.h"

/* The runs a cell makes; each is a gkd_distill_run with these options. */
typedef enum {
    CELL_RUN_TEACHER, /* the shared teacher, supervised on the task's data */
    CELL_RUN_SFT,     /* the shared SFT student init, supervised likewise */
    CELL_RUN_DISTILL  /* the cell's distillation (and the teacher's reference evaluation) */
} cell_run;

/** *o: GKD_DISTILL_OPTIONS_INIT, then every schema key whose value that
 *  run takes, then the options derived from several keys. */
void cell_run_options(gkd_distill_options *o, const gkd_cell_config *c, cell_run run);

#endif
