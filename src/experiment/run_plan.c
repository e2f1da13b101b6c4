/* Which cells to run (run_plan.h). */
#include "run_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_dir.h"
#include "gkd/error.h"
#include "run_path.h"

static int values_equal(const char *a, const char *b) {
    if (!strcmp(a, b)) return 1;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return *a && *b && !*ea && !*eb && x == y;
}

/* --only 'divergence=rkl,lambda=1': every listed axis must match. */
static int cell_matches(const gkd_cell_config *c, const char *only, int *unknown_axis) {
    if (!only || !*only) return 1;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", only);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) { *unknown_axis = 1; return 0; }
        *eq = '\0';
        int found = 0, ok = 0;
        for (int a = 0; a < c->num_axes; a++)
            if (!strcmp(c->axes[a].name, tok) || !strcmp(c->axes[a].key, tok)) {
                found = 1;
                ok = values_equal(c->axes[a].value, eq + 1);
            }
        if (!found) { *unknown_axis = 1; return 0; }
        if (!ok) return 0;
    }
    return 1;
}

int run_plan_select(run_plan *p, const gkd_experiment *exp, const gkd_run_options *opt) {
    size_t total = gkd_experiment_num_cells(exp);
    p->selected = calloc(total ? total : 1, sizeof *p->selected);
    p->todo = calloc(total ? total : 1, sizeof *p->todo);
    p->nselected = p->ntodo = p->done = 0;
    if (!p->selected || !p->todo) return gkd_error(GKD_ENOMEM, "out of memory");
    if (opt->cell >= 0 && (size_t)opt->cell >= total)
        return gkd_error(GKD_EINVAL, "--cell %ld: the experiment has %zu cells (0..%zu)", opt->cell, total,
                         total - 1);
    for (size_t i = 0; i < total; i++) {
        if (opt->cell >= 0 && (size_t)opt->cell != i) continue;
        gkd_cell_config c;
        int rc = gkd_experiment_cell(exp, i, &c), unknown = 0;
        if (rc) return rc;
        int ok = cell_matches(&c, opt->only, &unknown);
        if (unknown)
            return gkd_error(GKD_EINVAL, "--only '%s': use axis=value pairs with axes of this grid", opt->only);
        if (ok) p->selected[p->nselected++] = i;
    }
    /* A filter that selects nothing is a typo, not a finished grid. */
    if (opt->only && *opt->only && p->nselected == 0)
        return gkd_error(GKD_EINVAL, "--only '%s' matches none of the grid's %zu cells (gkd check lists them)",
                         opt->only, total);
    return 0;
}

int run_plan_scan(run_plan *p, const gkd_experiment *exp, const char *exp_dir, int force) {
    p->ntodo = p->done = 0;
    for (size_t k = 0; k < p->nselected; k++) {
        gkd_cell_config c;
        char dir[RUN_PATH_CAP];
        cell_dir_state state;
        int rc;
        if ((rc = gkd_experiment_cell(exp, p->selected[k], &c))) return rc;
        if ((rc = run_path_join(dir, exp_dir, c.name))) return rc;
        if ((rc = cell_dir_check(&state, dir, &c, force))) return rc;
        if (state == CELL_DIR_DONE) p->done++;
        else p->todo[p->ntodo++] = p->selected[k];
    }
    return 0;
}

int run_plan_teachers(size_t **cells, size_t *n, const run_plan *p, const gkd_experiment *exp) {
    char (*seen)[GKD_HASH_HEX_LEN + 1] = calloc(p->ntodo ? p->ntodo : 1, sizeof *seen);
    *cells = calloc(p->ntodo ? p->ntodo : 1, sizeof **cells);
    *n = 0;
    int rc = seen && *cells ? 0 : gkd_error(GKD_ENOMEM, "out of memory");
    for (size_t k = 0; k < p->ntodo && !rc; k++) {
        gkd_cell_config c;
        if ((rc = gkd_experiment_cell(exp, p->todo[k], &c)) || c.teacher_checkpoint || c.teacher_same_as) continue;
        gkd_cell_teacher_hash(&c, seen[*n]);
        int known = 0;
        for (size_t j = 0; j < *n && !known; j++) known = !strcmp(seen[j], seen[*n]);
        if (!known) (*cells)[(*n)++] = p->todo[k];
    }
    free(seen);
    return rc;
}

void run_plan_free(run_plan *p) {
    free(p->selected);
    free(p->todo);
    p->selected = p->todo = NULL;
}
