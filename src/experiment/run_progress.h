/* Private to src/experiment: what `gkd run` shows while a run trains (the
 * gkd_progress_fn callbacks), and the heartbeat of the cell it runs. */
#ifndef GKD_RUN_PROGRESS_H
#define GKD_RUN_PROGRESS_H

#include <stddef.h>

typedef struct {
    const char *cell;      /* cell name, or "teacher"/"student" for a shared run */
    size_t done, total;    /* cells of the selection finished before this one, and in all */
    double started;        /* gkd_now() at the start, for the ETA */
    double last_heartbeat;
    const char *cell_dir;  /* NULL: no heartbeat (a shared run) */
    int tty;               /* stderr is a terminal: one line rewritten in place */
} run_progress;

/** A cell's distillation: evaluations (every line on a terminal, with an
 *  ETA), and the cell's heartbeat every half GKD_CELL_HEARTBEAT_SECONDS. */
void run_progress_cell(void *ctx, long step, long steps, const char *line);
/** A shared teacher or SFT student: its lines on a terminal only. */
void run_progress_shared(void *ctx, long step, long steps, const char *line);

#endif
