/* State of the cells of an experiment grid, read from the results tree.
 *
 * The results directory of an experiment, results/<exp>/, holds grid.csv
 * (header `cell,dir,<axis names...>`, one row per cell in grid order; `dir`
 * is relative to results/<exp>/) and one directory per cell. A cell's state
 * is given by marker files in its directory, written by the runner:
 *
 *   running   written when the cell starts (pid=, host=, job=, started=
 *             lines); its mtime is the heartbeat, refreshed at least every
 *             GKD_CELL_HEARTBEAT_SECONDS while the cell runs
 *   done      written atomically when the cell has finished (running removed)
 *   failed    written when the cell stopped on an error: the first line is
 *             the error message, then host=, job= lines
 *
 * Precedence: done > running (fresh heartbeat) > failed > stale > pending.
 * A `running` marker whose heartbeat is older than GKD_CELL_STALE_SECONDS
 * means the process died without a word (SIGKILL, node failure, time limit). */
#ifndef GKD_CELL_STATUS_H
#define GKD_CELL_STATUS_H

#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GKD_CELL_HEARTBEAT_SECONDS 60
#define GKD_CELL_STALE_SECONDS 600

typedef enum {
    GKD_CELL_PENDING = 0, /* no marker: not started (or queued) */
    GKD_CELL_RUNNING,     /* `running` with a fresh heartbeat */
    GKD_CELL_FAILED,      /* `failed` */
    GKD_CELL_STALE,       /* `running` whose heartbeat stopped */
    GKD_CELL_DONE,        /* `done` */
    GKD_CELL_NSTATES
} gkd_cell_state;

/** "pending", "running", "failed", "stale" or "done". */
const char *gkd_cell_state_name(gkd_cell_state s);

/** State of the cell in `cell_dir` at time `now` (a missing dir is pending). */
int gkd_cell_state_read(gkd_cell_state *out, const char *cell_dir, time_t now);

/** Mark the cell started: removes a `failed` marker from an earlier attempt
 *  and writes `running` with this process's pid, host and Slurm job id. */
int gkd_cell_mark_running(const char *cell_dir);

/** Refresh the heartbeat (mtime of `running`). */
int gkd_cell_heartbeat(const char *cell_dir);

/** Write `done` atomically and remove `running`. */
int gkd_cell_mark_done(const char *cell_dir);

/** Write `failed` with `message` as its first line and remove `running`.
 *  If `failed` cannot be written (a full disk), `running` is renamed to
 *  `failed` so the cell does not show as running, and the write's error
 *  is returned. */
int gkd_cell_mark_failed(const char *cell_dir, const char *message);

/** The `step` column (else the first column) of the last row of
 *  cell_dir/metrics.csv into out; "" if there is no such file or row. */
int gkd_cell_last_step(char *out, size_t cap, const char *cell_dir);

/** One cell of a grid as listed in grid.csv, with its state. */
typedef struct {
    int cell;             /* index in grid order (the array task id) */
    char *dir;            /* as written in grid.csv */
    char **values;        /* naxes axis values */
    gkd_cell_state state;
    char last_step[32];   /* for running and stale cells; "" otherwise */
} gkd_grid_cell;

typedef struct {
    int ncells;
    gkd_grid_cell *cells;
    int naxes;
    char **axes;                  /* axis names from the grid.csv header */
    int counts[GKD_CELL_NSTATES]; /* cells per state */
} gkd_grid_status;

/** Read exp_dir/grid.csv and every cell's markers. Free with
 *  gkd_grid_status_free(). */
int gkd_grid_status_read(gkd_grid_status **out, const char *exp_dir, time_t now);

void gkd_grid_status_free(gkd_grid_status *st);

#ifdef __cplusplus
}
#endif

#endif
