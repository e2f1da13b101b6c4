/* A cell's directory: its config files and state (cell_dir.h). */
#include "cell_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/products.h"
#include "run_path.h"

/* *same = 0 if the cell's run.json names products other than this
 * process's (an old run.json that names none counts as other). */
static int same_products(const char *dir, int *same) {
    char path[RUN_PATH_CAP], *text = NULL, want[64];
    size_t len;
    *same = 1;
    int rc = run_path_join(path, dir, "run.json");
    if (rc || !gkd_path_exists(path)) return rc;
    if ((rc = gkd_file_read(&text, &len, path))) return rc;
    snprintf(want, sizeof want, "\"products\": \"%s\"", gkd_products_name(gkd_products()));
    *same = strstr(text, want) != NULL;
    free(text);
    return 0;
}

/* *same = 1 if config.hash holds c's hash; *exists = 0 if there is none. */
static int same_config(const char *dir, const gkd_cell_config *c, int *exists, int *same) {
    char path[RUN_PATH_CAP], *old = NULL, hash[GKD_HASH_HEX_LEN + 1];
    size_t len;
    *exists = *same = 0;
    gkd_cell_config_hash(c, hash);
    int rc = run_path_join(path, dir, "config.hash");
    if (rc || !gkd_path_exists(path)) return rc;
    if ((rc = gkd_file_read(&old, &len, path))) return rc;
    *exists = 1;
    *same = len >= strlen(hash) && !strncmp(old, hash, strlen(hash));
    free(old);
    return 0;
}

int cell_dir_check(cell_dir_state *out, const char *dir, const gkd_cell_config *c, int force) {
    char path[RUN_PATH_CAP];
    int exists, same;
    *out = CELL_DIR_TO_RUN;
    int rc = same_config(dir, c, &exists, &same);
    if (rc || !exists) return rc;
    if (!same) {
        if (!force) {
            char change[512];
            cell_config_change(change, sizeof change, dir, c);
            return gkd_error(GKD_EMISMATCH,
                             "%s holds results of a different config (%s%sthe experiment file changed); "
                             "rerun with --force to discard them",
                             dir, change, *change ? "; " : "");
        }
        return gkd_remove_tree(dir);
    }
    if ((rc = same_products(dir, &same))) return rc;
    if (!same) {
        if (!force)
            return gkd_error(GKD_EMISMATCH,
                             "%s holds results made with other products than this run's (%s; see its "
                             "run.json and GKD_PRODUCTS); rerun with --force to discard them",
                             dir, gkd_products_name(gkd_products()));
        return gkd_remove_tree(dir);
    }
    if ((rc = run_path_join(path, dir, "done"))) return rc;
    if (!gkd_path_exists(path)) return 0;
    /* A finished cell made before gkd wrote the teacher's reference
     * evaluation is run again for that alone. */
    if ((rc = run_path_join(path, dir, "teacher_eval.csv"))) return rc;
    *out = access(path, F_OK) == 0 ? CELL_DIR_DONE : CELL_DIR_NEEDS_TEACHER_EVAL;
    return 0;
}

int cell_dir_remove_stale(const char *dir) {
    static const char *const cell_files[] = {"config.yaml", "config.hash", "axes.csv", "run.json",
                                             "running",     "done",        "failed"};
    return gkd_remove_stale_temps(dir, cell_files, (int)(sizeof cell_files / sizeof cell_files[0]));
}

static int write_axes_csv(const char *dir, const gkd_cell_config *c) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    char path[RUN_PATH_CAP];
    int rc = gkd_csv_buf_str(&b, "key");
    rc = rc ? rc : gkd_csv_buf_str(&b, "value");
    rc = rc ? rc : gkd_csv_buf_end_row(&b);
    rc = rc ? rc : run_path_join(path, dir, "axes.csv");
    for (int i = 0; i < c->num_axes && !rc; i++) {
        rc = gkd_csv_buf_str(&b, c->axes[i].name);
        rc = rc ? rc : gkd_csv_buf_str(&b, c->axes[i].value);
        rc = rc ? rc : gkd_csv_buf_end_row(&b);
    }
    rc = rc ? rc : gkd_file_write_atomic(path, b.data, b.len);
    gkd_csv_buf_free(&b);
    return rc;
}

int cell_dir_write_config(const char *dir, const gkd_cell_config *c) {
    char path[RUN_PATH_CAP], hash[GKD_HASH_HEX_LEN + 1], line[GKD_HASH_HEX_LEN + 2];
    int rc = run_path_join(path, dir, "config.yaml");
    if (rc || (rc = gkd_cell_config_save_yaml(c, path))) return rc;
    gkd_cell_config_hash(c, hash);
    snprintf(line, sizeof line, "%s\n", hash);
    if ((rc = run_path_join(path, dir, "config.hash")) || (rc = gkd_file_write_atomic(path, line, strlen(line))))
        return rc;
    return write_axes_csv(dir, c);
}
