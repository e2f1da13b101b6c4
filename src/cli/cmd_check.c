/* gkd check: validate an experiment file and list its cells; nothing is
 * run or written. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/experiment.h"

static void usage(FILE *f) {
    fprintf(f, "usage: gkd check [--hashes] EXPERIMENT.yaml\n"
               "       gkd check --schema        (print the schema reference as Markdown)\n"
               "Validates the file and lists its cells (index, directory name) and the count.\n"
               "  --hashes   also print each cell's teacher, student-init and config hashes\n");
}

/* Distinct strings among the first n of a sorted-by-insertion list. */
static size_t count_distinct(char (*hashes)[GKD_HASH_HEX_LEN + 1], size_t n) {
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(hashes[i], hashes[j]);
        distinct += !seen;
    }
    return distinct;
}

int cmd_check(int argc, char **argv) {
    const char *path = NULL;
    int hashes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--schema")) return gkd_experiment_schema_markdown(stdout) ? 1 : 0;
        if (!strcmp(argv[i], "--hashes")) { hashes = 1; continue; }
        if (argv[i][0] == '-' || path) {
            fprintf(stderr, "gkd check: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        path = argv[i];
    }
    if (!path) { usage(stderr); return 2; }

    gkd_experiment *exp = NULL;
    if (gkd_experiment_load(&exp, path) != 0) {
        fprintf(stderr, "gkd check: %s\n", gkd_last_error());
        return 1;
    }
    size_t n = gkd_experiment_num_cells(exp);
    printf("experiment %s: %zu cell%s; axes (last varies fastest):", gkd_experiment_name(exp), n, n == 1 ? "" : "s");
    for (int a = 0; a < gkd_experiment_num_axes(exp); a++) {
        const char *key, *name;
        size_t nv;
        gkd_experiment_axis(exp, a, &key, &name, &nv);
        printf("%s %s[%zu]", a ? " x" : "", name, nv);
    }
    printf("\n");
    /* Sharing summary over at most the first 4096 cells keeps this quadratic count cheap. */
    enum { MAX_SUMMARY = 4096 };
    static char teacher[MAX_SUMMARY][GKD_HASH_HEX_LEN + 1], student[MAX_SUMMARY][GKD_HASH_HEX_LEN + 1];
    for (size_t i = 0; i < n; i++) {
        gkd_cell_config c;
        if (gkd_experiment_cell(exp, i, &c) != 0) {
            fprintf(stderr, "gkd check: %s\n", gkd_last_error());
            gkd_experiment_free(exp);
            return 1;
        }
        char th[GKD_HASH_HEX_LEN + 1], sh[GKD_HASH_HEX_LEN + 1], ch[GKD_HASH_HEX_LEN + 1];
        gkd_cell_teacher_hash(&c, th);
        gkd_cell_student_init_hash(&c, sh);
        gkd_cell_config_hash(&c, ch);
        if (i < MAX_SUMMARY) {
            memcpy(teacher[i], th, sizeof th);
            memcpy(student[i], sh, sizeof sh);
        }
        if (hashes) printf("%6zu  %s  teacher=%s student_init=%s config=%s\n", i, c.name, th, sh, ch);
        else printf("%6zu  %s\n", i, c.name);
    }
    size_t m = n < MAX_SUMMARY ? n : MAX_SUMMARY;
    printf("%zu cell%s, %zu distinct teacher%s, %zu distinct student init%s%s\n", n, n == 1 ? "" : "s",
           count_distinct(teacher, m), count_distinct(teacher, m) == 1 ? "" : "s", count_distinct(student, m),
           count_distinct(student, m) == 1 ? "" : "s", n > MAX_SUMMARY ? " (among the first 4096 cells)" : "");
    gkd_experiment_free(exp);
    return 0;
}
