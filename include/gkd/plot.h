/* Learning curves from a results tree: for each value of one axis, the mean
 * over seeds of a metric at each step (a line) with a band over seeds,
 * written as a gnuplot data file and script and rendered to PNG and SVG by
 * a gnuplot child process. See docs/results.md. */
#ifndef GKD_PLOT_H
#define GKD_PLOT_H

#include "gkd/results.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GKD_PLOT_EVAL = 0, GKD_PLOT_METRICS = 1 } gkd_plot_source;
typedef enum {
    GKD_BAND_MINMAX = 0, /* min..max over seeds (default: shows every seed's range) */
    GKD_BAND_STD = 1     /* mean ± sample std over seeds */
} gkd_plot_band;

typedef struct {
    const char *metric;     /* y column */
    const char *by;         /* one line per value of this axis */
    const char *x;          /* x column; NULL = "step" */
    gkd_plot_source source; /* eval.csv or metrics.csv */
    gkd_plot_band band;
    const gkd_where *where;
    int nwhere;
    const char *out_dir;    /* NULL = <experiment>/figures */
    int render;             /* run gnuplot after writing .dat and .gp */
} gkd_plot_opts;

#define GKD_PLOT_OPTS_INIT {NULL, NULL, NULL, GKD_PLOT_EVAL, GKD_BAND_MINMAX, NULL, 0, NULL, 1}

/** Paths of the files a plot wrote (malloc'd), and cells left out. */
typedef struct {
    char *dat, *gp, *png, *svg;
    int nskipped; /* matching cells without `done` */
    int nseries;  /* lines drawn */
} gkd_plot_files;

/** Write <out>/<metric>_by_<by>[_vs_<x>][_<where...>].{dat,gp} and, when
 *  opts->render, the .png and .svg. */
int gkd_plot_learning_curves(gkd_plot_files *files, const char *dir, const gkd_plot_opts *opts);
void gkd_plot_files_free(gkd_plot_files *f);

/** 1 if an executable `gnuplot` is on PATH. */
int gkd_gnuplot_available(void);

/** Run `gnuplot` on the script `gp_path` from the script's directory
 *  (GKD_EIO with gnuplot's first error line if it fails). */
int gkd_gnuplot_run(const char *gp_path);

#ifdef __cplusplus
}
#endif

#endif
