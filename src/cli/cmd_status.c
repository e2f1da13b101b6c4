/* gkd status results/<exp>: a table of the grid's cells with their state
 * (from the marker files the runner writes; see docs/slurm.md). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gkd/cell_status.h"
#include "gkd/error.h"
#include "gkd/slurm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd status RESULTS_DIR\n"
            "  Show every cell of the grid in RESULTS_DIR (e.g. results/divergences):\n"
            "  done, running (with its last step), failed, stale (heartbeat stopped) or pending.\n");
}

static int width(const char *s, int w) {
    int n = (int)strlen(s);
    return n > w ? n : w;
}

int cmd_status(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "gkd status: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (dir) { fprintf(stderr, "gkd status: one results directory expected\n"); usage(stderr); return 2; }
        dir = argv[i];
    }
    if (!dir) { usage(stderr); return 2; }

    gkd_grid_status *st = NULL;
    if (gkd_grid_status_read(&st, dir, time(NULL)) != 0) {
        fprintf(stderr, "gkd status: %s\n", gkd_last_error());
        return 1;
    }

    /* Column widths from the contents so axis values line up. */
    int wcell = 4, wstate = 7, wstep = 4, waxis[64] = {0};
    int naxes = st->naxes < 64 ? st->naxes : 64;
    for (int a = 0; a < naxes; a++) waxis[a] = width(st->axes[a], 0);
    for (int i = 0; i < st->ncells; i++) {
        const gkd_grid_cell *c = &st->cells[i];
        char idx[16];
        snprintf(idx, sizeof idx, "%d", c->cell);
        wcell = width(idx, wcell);
        wstep = width(c->last_step, wstep);
        for (int a = 0; a < naxes; a++) waxis[a] = width(c->values[a], waxis[a]);
    }
    printf("%-*s  %-*s  %*s", wcell, "cell", wstate, "state", wstep, "step");
    for (int a = 0; a < naxes; a++) printf("  %-*s", waxis[a], st->axes[a]);
    printf("  dir\n");
    for (int i = 0; i < st->ncells; i++) {
        const gkd_grid_cell *c = &st->cells[i];
        printf("%-*d  %-*s  %*s", wcell, c->cell, wstate, gkd_cell_state_name(c->state), wstep,
               c->last_step[0] ? c->last_step : "-");
        for (int a = 0; a < naxes; a++) printf("  %-*s", waxis[a], c->values[a]);
        printf("  %s\n", c->dir);
    }
    printf("\n%d cells: %d done, %d running, %d failed, %d stale, %d pending\n", st->ncells,
           st->counts[GKD_CELL_DONE], st->counts[GKD_CELL_RUNNING], st->counts[GKD_CELL_FAILED],
           st->counts[GKD_CELL_STALE], st->counts[GKD_CELL_PENDING]);

    char job[64];
    if (gkd_slurm_last_job(job, sizeof job, dir) == 0 && job[0])
        printf("last Slurm job: %s (output in %s/slurm/%s_<cell>.out)\n", job, dir, job);
    gkd_grid_status_free(st);
    return 0;
}
