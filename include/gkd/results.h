/* The reading side of a results tree (docs/results.md):
 * results/<experiment>/<cell>/{axes.csv,metrics.csv,eval.csv,done}, an
 * optional results/<experiment>/grid.csv that fixes the order of cells and
 * axis values, and an optional labels.csv of display names. Shared by
 * `gkd table` and `gkd plot`. */
#ifndef GKD_RESULTS_H
#define GKD_RESULTS_H

#ifdef __cplusplus
extern "C" {
#endif

/** One cell directory of an experiment. */
typedef struct {
    char *name;    /* directory name */
    char *dir;     /* <experiment>/<name> */
    int done;      /* the `done` marker exists */
    int naxes;
    char **keys;   /* (naxes) axis names from axes.csv, in file order */
    char **values; /* (naxes) */
} gkd_result_cell;

/** An experiment's cells and, per axis, its values in grid order. */
typedef struct {
    char *dir;
    int ncells;
    gkd_result_cell *cells; /* in grid order (grid.csv) or by name */
    int naxes;
    char **axes;            /* (naxes) names, first-seen order */
    int *nvalues;           /* (naxes) */
    char ***values;         /* (naxes)(nvalues[a]) distinct values, ordered */
    int has_grid;           /* grid.csv was present and used */
} gkd_results;

/** Scan `dir`: every subdirectory holding axes.csv is a cell. Axis values
 *  are ordered by their first appearance in grid.csv when present, else
 *  numerically when all values of the axis are numbers, else by first
 *  appearance over cells sorted by directory name. */
int gkd_results_open(gkd_results **out, const char *dir);
void gkd_results_free(gkd_results *r);

/** Index of axis `name`, or -1. */
int gkd_results_axis(const gkd_results *r, const char *name);
/** Position of `value` in the ordered values of axis `axis`, or -1. */
int gkd_results_value_rank(const gkd_results *r, int axis, const char *value);
/** The cell's value for axis `key`, or NULL if the cell has no such axis. */
const char *gkd_result_cell_axis(const gkd_result_cell *c, const char *key);

/** A `key=value` filter (--where). */
typedef struct {
    char *key, *value;
} gkd_where;

/** Parse "key=value" (both non-empty) into `w` (strings owned by `w`). */
int gkd_where_parse(gkd_where *w, const char *spec);
void gkd_where_free(gkd_where *w);
/** Check that every filter names an axis and a value present in `r`. */
int gkd_where_validate(const gkd_results *r, const gkd_where *w, int nw);
/** 1 if the cell satisfies all filters (AND). */
int gkd_where_match(const gkd_result_cell *c, const gkd_where *w, int nw);

/** Select the finished cells matching the filters; `idx` gets their indices
 *  (caller frees), `*nskipped` the number of matching cells without `done`.
 *  Every axis not in `grouped` (nullable names) and not "seed" must have a
 *  single value among the selected cells; otherwise GKD_EINVAL naming it. */
int gkd_results_select(int **idx, int *n, int *nskipped, const gkd_results *r, const gkd_where *w,
                       int nw, const char *const *grouped, int ngrouped);

/** The display names in `dir`/labels.csv (header key,text; written by the
 *  runner from the experiment's `labels`): *n pairs in *out, key = KEY,
 *  value = TEXT (caller frees each with gkd_where_free, then the array).
 *  No file: *n = 0. An empty key or text is GKD_EFORMAT naming file:line. */
int gkd_results_labels(gkd_where **out, int *n, const char *dir);

/** Parse a field as a number: 1 and *v set if numeric (nan/inf accepted),
 *  0 if empty (not measured), GKD_EFORMAT if not a number. */
int gkd_results_number(double *v, const char *field);

#ifdef __cplusplus
}
#endif

#endif
