/* Paper-style tables from a results tree: one metric value per finished
 * cell (at the final, the best or a given evaluation, the last one within
 * a training time, or the area under its evaluation curve), mean ± sample std over seeds
 * per (row value, column value), best per column in bold, rendered as
 * GitHub Markdown, LaTeX (booktabs) or CSV. See docs/results.md. */
#ifndef GKD_TABLE_H
#define GKD_TABLE_H

#include "gkd/results.h"
#include "gkd/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which way a metric improves. */
typedef enum {
    GKD_DIR_NONE = 0,    /* no bold, no --at best (mean_len, unknown names) */
    GKD_DIR_HIGHER = 1,
    GKD_DIR_LOWER = -1
} gkd_metric_dir;

/** Direction of a metric or loss column by name. */
gkd_metric_dir gkd_metric_direction(const char *name);

/** Upper 97.5% quantile of Student's t with `df` >= 1 degrees of freedom
 *  (exact to 9 digits for df <= 30, Cornish-Fisher expansion above). */
double gkd_student_t975(int df);

/** The number each cell contributes (--at). */
typedef enum {
    GKD_AT_FINAL = 0, /* the last evaluation that measured the metric */
    GKD_AT_BEST = 1,  /* the best evaluation, by the metric's direction */
    GKD_AT_AUC = 2,   /* the area under the evaluation curve over steps, divided
                         by the steps spanned: the mean value over training */
    GKD_AT_STEP = 3,  /* the evaluation at step at_step exactly */
    GKD_AT_TIME = 4   /* the last evaluation within at_seconds of training, by
                         the wall-clock step times of timings.csv */
} gkd_table_at;
typedef enum { GKD_FMT_MD = 0, GKD_FMT_LATEX = 1, GKD_FMT_CSV = 2 } gkd_table_format;

typedef struct {
    const char *rows;           /* axis shown as rows (required) */
    const char *cols;           /* axis shown as columns (NULL: one column per metric) */
    const char *const *metrics; /* eval.csv columns */
    int nmetrics;
    gkd_table_at at;
    long at_step;               /* GKD_AT_STEP: the evaluation step */
    double at_seconds;          /* GKD_AT_TIME: the training time budget */
    const gkd_where *where;
    int nwhere;
    const char *baseline;       /* "AXIS=VALUE" of the rows or columns axis: paired
                                   differences to that row or column (NULL: none) */
    int power;                  /* with baseline: the 80%-power detectable difference
                                   and the pairs needed for the observed one */
    const char *reference;      /* "teacher", "init" or both, comma-separated: reference
                                   rows above the table (NULL: none) */
    const gkd_where *labels;    /* LaTeX labels: key = a metric, an axis or AXIS:VALUE,
                                   value = LaTeX source (--label KEY=TEXT); they
                                   override the experiment's (labels.csv) */
    int nlabels;
} gkd_table_opts;

#define GKD_TABLE_OPTS_INIT {NULL, NULL, NULL, 0, GKD_AT_FINAL, 0, 0, NULL, 0, NULL, 0, NULL, NULL, 0}

/** Parse an --at value (final, best, auc, step=N, time=SECONDS) into o->at
 *  and its parameter; GKD_EINVAL with a message listing the forms otherwise. */
int gkd_table_at_parse(gkd_table_opts *o, const char *spec);

/** Reference rows (--reference). */
typedef enum {
    GKD_REF_TEACHER = 0, /* the grid's teacher (shared/teacher-*), one run */
    GKD_REF_INIT = 1,    /* the students before distillation: each cell's step-0 evaluation, one per seed */
} gkd_table_ref;

/** Significance level of the paired comparisons, and the power asked of
 *  them by --power. */
#define GKD_TABLE_ALPHA 0.05
#define GKD_TABLE_POWER 0.8
/** Most pairs --power looks for before it reports "more than". */
#define GKD_TABLE_N_MAX 1000

/** One cell against the baseline cell of its column (or row). */
typedef struct {
    int has;          /* compared: not the baseline, and at least one shared seed */
    int is_baseline;  /* this cell is the baseline of its column (or row) */
    gkd_paired test;  /* over the seeds both cells have */
    int unpaired;     /* seeds of either cell without a partner (left out) */
    double p_holm;    /* test.p after Holm's correction over the table; NaN if none */
    int significant;  /* p_holm < GKD_TABLE_ALPHA */
    double mde;       /* power: smallest difference detectable (NaN if n < 2) */
    int n_needed;     /* power: pairs to detect test.mean; -1: more than GKD_TABLE_N_MAX */
} gkd_table_cmp;

/** Aggregate of one (metric, row, column) group over seeds. */
typedef struct {
    int n;       /* cells with a value; 0: empty group */
    double mean;
    double std;  /* sample std (n-1); 0 when n == 1 */
    double ci95; /* half-width t(0.975, n-1) * std / sqrt(n); 0 when n == 1 */
    int best;    /* best in its column by the metric's direction */
} gkd_table_stat;

typedef struct {
    char *rows, *cols;     /* axis names (cols NULL if none) */
    int nrows, ncols, nmetrics;
    char **row_values;     /* (nrows) */
    char **col_values;     /* (ncols); ncols == 1 and col_values[0] = "" without --cols */
    char **metrics;        /* (nmetrics) */
    gkd_table_at at;
    long at_step;          /* GKD_AT_STEP */
    double at_seconds;     /* GKD_AT_TIME */
    char *where;           /* "k=v, k=v" or NULL, for the caption */
    gkd_table_stat *stats; /* (nmetrics, nrows, ncols) */
    int ncells;            /* finished cells used */
    int nskipped;          /* matching cells without `done` */
    char *baseline_axis;   /* NULL without a baseline */
    char *baseline_value;
    int baseline_on_rows;  /* the baseline is a row (compare within columns) */
    int power;
    int ncompared;         /* comparisons made (Holm's m) */
    gkd_table_cmp *cmps;   /* (nmetrics, nrows, ncols); NULL without a baseline */
    int nref;              /* reference rows, shown above the others */
    gkd_table_ref refs[2];
    gkd_table_stat *ref_stats; /* (nref, nmetrics, ncols): not bold, not compared */
    int teacher_per_cell;  /* the teacher row is each cell's teacher_eval.csv (one per
                              seed), not the shared teacher's own evaluation */
    int nlabels;
    char **label_keys, **label_texts; /* (nlabels) --label, then labels.csv */
} gkd_table;

/** Build the table for the experiment directory `dir`. */
int gkd_table_build(gkd_table **out, const char *dir, const gkd_table_opts *opts);
void gkd_table_free(gkd_table *t);
/** The stat of (metric m, row i, column j). */
const gkd_table_stat *gkd_table_at_cell(const gkd_table *t, int m, int i, int j);
/** The stat of reference row r (in t->refs order) for (metric m, column j). */
const gkd_table_stat *gkd_table_ref_at(const gkd_table *t, int r, int m, int j);
/** The LaTeX display name of a metric ("Exact match") or an axis
 *  ("$\\lambda$"): built in for gkd's own, else the name escaped. */
const char *gkd_table_latex_name(const char *name);
/** "teacher" or "init". */
const char *gkd_table_ref_name(gkd_table_ref ref);
/** Its comparison with the baseline (NULL without one). */
const gkd_table_cmp *gkd_table_cmp_at(const gkd_table *t, int m, int i, int j);

/** Render as text (malloc'd into *out). `ci95` shows the 95% confidence
 *  half-width instead of the std; `digits` decimals (3 is usual). */
int gkd_table_render(char **out, const gkd_table *t, gkd_table_format fmt, int ci95, int digits);

#ifdef __cplusplus
}
#endif

#endif
