/* Progress lines of gkd run (run_progress.h). */
#include "run_progress.h"

#include <stdio.h>
#include <string.h>

#include "gkd/cell_status.h"
#include "util/clock.h"

void run_progress_cell(void *vctx, long step, long steps, const char *line) {
    run_progress *c = vctx;
    double now = gkd_now();
    if (c->cell_dir && now - c->last_heartbeat > GKD_CELL_HEARTBEAT_SECONDS / 2) {
        gkd_cell_heartbeat(c->cell_dir);
        c->last_heartbeat = now;
    }
    int is_eval = strstr(line, " eval ") != NULL;
    if (c->tty) {
        double el = now - c->started;
        double eta = step > 0 ? el / step * (steps - step) : 0;
        fprintf(stderr, "\r\033[K[%zu/%zu cells] %s: %s (ETA %.0fs)", c->done, c->total, c->cell, line, eta);
        if (is_eval && step == steps) fputc('\n', stderr);
    } else if (is_eval) {
        fprintf(stderr, "[%zu/%zu cells] %s: %s\n", c->done, c->total, c->cell, line);
    }
}

void run_progress_shared(void *vctx, long step, long steps, const char *line) {
    run_progress *c = vctx;
    (void)step;
    (void)steps;
    if (c->tty) fprintf(stderr, "\r\033[K%s: %s", c->cell, line);
}
