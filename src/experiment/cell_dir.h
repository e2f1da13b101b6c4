/* Private to src/experiment: a cell's directory in a results tree, as far
 * as the runner reads and writes it itself: config.yaml, config.hash,
 * axes.csv, run.json and whether it holds this config's finished results
 * (the markers are gkd/cell_status.h's; the run's own files distill's). */
#ifndef GKD_CELL_DIR_H
#define GKD_CELL_DIR_H

#include <stddef.h>

#include "gkd/experiment.h"

typedef enum {
    CELL_DIR_TO_RUN,           /* nothing yet, or a run that did not finish */
    CELL_DIR_DONE,             /* finished with this config and these products */
    CELL_DIR_NEEDS_TEACHER_EVAL /* finished by a gkd that did not write teacher_eval.csv */
} cell_dir_state;

/** The state of the cell's directory `dir` for config c. A directory that
 *  holds another config's results, or results made with other products
 *  (gkd/products.h), is refused (GKD_EMISMATCH naming the first changed
 *  key), or with force removed so the cell runs again. */
int cell_dir_check(cell_dir_state *out, const char *dir, const gkd_cell_config *c, int force);

/** Under the cell's lock: remove what a process killed inside an atomic
 *  write of the runner's files left behind. */
int cell_dir_remove_stale(const char *dir);

/** config.yaml, config.hash and axes.csv of a cell about to run. */
int cell_dir_write_config(const char *dir, const gkd_cell_config *c);

/** run.json: what made the cell's results (gkd, compiler, libc, BLAS,
 *  products, CPU, threads, host) and when; ended NULL while it runs. */
int cell_dir_write_run_json(const char *dir, const char *started, const char *ended);

/** Now as "2024-01-31T12:00:00Z" (UTC), for run.json. */
void cell_dir_time_now(char *out, size_t cap);

/** "distill.lr: 0.001 -> 0.002": the first schema key whose value differs
 *  between the cell's saved config.yaml and c, from the two configs' typed
 *  values; "" if that cannot be told (config.yaml unreadable, say). */
void cell_config_change(char *out, size_t cap, const char *dir, const gkd_cell_config *c);

#endif
