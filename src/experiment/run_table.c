/* The default table after a run (run_table.h). */
#include "run_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/table.h"

int run_default_table(const gkd_experiment *exp, const char *exp_dir) {
    const char *rows = NULL, *cols = NULL;
    for (int a = 0; a < gkd_experiment_num_axes(exp); a++) {
        const char *key, *name;
        size_t nv;
        gkd_experiment_axis(exp, a, &key, &name, &nv);
        if (!strcmp(name, "seed") || nv < 2) continue;
        if (!rows) rows = name;
        else if (!cols) cols = name;
    }
    if (!rows) return 0;
    const char *metrics[] = {"exact_match", "fkl_ref", "teacher_nll"};
    gkd_table_opts to = GKD_TABLE_OPTS_INIT;
    to.rows = rows;
    to.cols = cols;
    to.metrics = metrics;
    to.nmetrics = 3;
    gkd_table *t = NULL;
    char *text = NULL;
    int rc = gkd_table_build(&t, exp_dir, &to);
    if (!rc) rc = gkd_table_render(&text, t, GKD_FMT_MD, 0, 3);
    if (!rc) {
        printf("\n%s\n", text);
        printf("(gkd table %s --rows %s%s%s --metric exact_match,fkl_ref,teacher_nll)\n", exp_dir, rows,
               cols ? " --cols " : "", cols ? cols : "");
    }
    free(text);
    gkd_table_free(t);
    return rc;
}
