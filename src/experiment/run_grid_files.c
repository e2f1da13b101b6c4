/* grid.csv and labels.csv (run_grid_files.h). */
#include "run_grid_files.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "run_path.h"

/* Files of the experiment as a whole are rewritten only when they change:
 * a finished experiment run again touches no file, and concurrent Slurm
 * tasks do not race on them. */
static int write_if_changed(const char *path, const gkd_csv_buf *b) {
    char *old = NULL;
    size_t old_len = 0;
    int same = gkd_path_exists(path) && gkd_file_read(&old, &old_len, path) == 0 && old_len == b->len &&
               memcmp(old, b->data, b->len) == 0;
    free(old);
    return same ? 0 : gkd_file_write_atomic(path, b->data, b->len);
}

/* grid.csv's first line: cell, dir and the axes. */
static int grid_header(gkd_csv_buf *b, const gkd_experiment *exp) {
    int rc = gkd_csv_buf_str(b, "cell");
    rc = rc ? rc : gkd_csv_buf_str(b, "dir");
    for (int a = 0; a < gkd_experiment_num_axes(exp) && !rc; a++) {
        const char *key, *name;
        size_t nv;
        gkd_experiment_axis(exp, a, &key, &name, &nv);
        rc = gkd_csv_buf_str(b, name);
    }
    return rc ? rc : gkd_csv_buf_end_row(b);
}

/* A results directory is named after the experiment: another experiment
 * with the same name and other axes would mix its cells and tables with
 * this one's. Editing one experiment (more seeds, other values) keeps its
 * axes; a different set of axes is refused unless forced. */
int run_grid_check_same_experiment(const char *exp_dir, const gkd_experiment *exp, int force) {
    char path[RUN_PATH_CAP];
    int rc = run_path_join(path, exp_dir, "grid.csv");
    if (rc || force || !gkd_path_exists(path)) return rc;
    char *old = NULL;
    size_t old_len = 0;
    gkd_csv_buf want = GKD_CSV_BUF_INIT;
    if ((rc = gkd_file_read(&old, &old_len, path)) || (rc = grid_header(&want, exp))) goto done;
    size_t line = strcspn(old, "\n") + (memchr(old, '\n', old_len) ? 1 : 0);
    if (line != want.len || memcmp(old, want.data, line) != 0)
        rc = gkd_error(GKD_EMISMATCH,
                       "%s holds another experiment's grid (grid.csv: %.*s), not this one's (%.*s): two experiments "
                       "named '%s'? Rename one, or --force to run here anyway",
                       exp_dir, (int)strcspn(old, "\n"), old, (int)(want.len ? want.len - 1 : 0), want.data,
                       gkd_experiment_name(exp));
done:
    free(old);
    gkd_csv_buf_free(&want);
    return rc;
}

static int write_grid_csv(const char *exp_dir, const gkd_experiment *exp) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    char path[RUN_PATH_CAP];
    int rc = grid_header(&b, exp);
    for (size_t i = 0; i < gkd_experiment_num_cells(exp) && !rc; i++) {
        gkd_cell_config c;
        if ((rc = gkd_experiment_cell(exp, i, &c))) break;
        rc = gkd_csv_buf_long(&b, (long)i);
        rc = rc ? rc : gkd_csv_buf_str(&b, c.name);
        for (int a = 0; a < c.num_axes && !rc; a++) rc = gkd_csv_buf_str(&b, c.axes[a].value);
        rc = rc ? rc : gkd_csv_buf_end_row(&b);
    }
    rc = rc ? rc : run_path_join(path, exp_dir, "grid.csv");
    rc = rc ? rc : write_if_changed(path, &b);
    gkd_csv_buf_free(&b);
    return rc;
}

/* labels.csv: the experiment's `labels` (key,text in file order), which
 * gkd table reads as display names; removed when the file has none, so a
 * label deleted from the experiment does not live on in the tables. */
static int write_labels_csv(const char *exp_dir, const gkd_experiment *exp) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    char path[RUN_PATH_CAP];
    int rc = run_path_join(path, exp_dir, "labels.csv");
    if (rc) return rc;
    if (gkd_experiment_num_labels(exp) == 0) {
        if (unlink(path) != 0 && errno != ENOENT)
            return gkd_error(GKD_EIO, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    rc = gkd_csv_buf_str(&b, "key");
    rc = rc ? rc : gkd_csv_buf_str(&b, "text");
    rc = rc ? rc : gkd_csv_buf_end_row(&b);
    for (size_t i = 0; i < gkd_experiment_num_labels(exp) && !rc; i++) {
        const char *key, *text;
        gkd_experiment_label(exp, i, &key, &text);
        rc = gkd_csv_buf_str(&b, key);
        rc = rc ? rc : gkd_csv_buf_str(&b, text);
        rc = rc ? rc : gkd_csv_buf_end_row(&b);
    }
    rc = rc ? rc : write_if_changed(path, &b);
    gkd_csv_buf_free(&b);
    return rc;
}

int run_grid_write_files(const char *exp_dir, const gkd_experiment *exp) {
    int rc = write_grid_csv(exp_dir, exp);
    return rc ? rc : write_labels_csv(exp_dir, exp);
}
