/* gkd check: validate an experiment file and list its cells; nothing is
 * run or written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/experiment.h"
#include "gkd/experiment_inputs.h"

static void usage(FILE *f) {
    fprintf(f, "usage: gkd check [--hashes] [--allow-eval-overlap] EXPERIMENT.yaml\n"
               "       gkd check --schema        (print the schema reference as Markdown)\n"
               "Validates the file and lists its cells (index, directory name) and the count.\n"
               "  --hashes   also print each cell's teacher, student-init and config hashes\n"
               "  --allow-eval-overlap  a teacher.checkpoint or student.init trained on some of\n"
               "             the eval examples is a warning, not an error\n");
}

typedef char hash_hex[GKD_HASH_HEX_LEN + 1];

static void warn(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "gkd check: warning: %s\n", line);
}

static int cmp_hash(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Number of distinct hashes (sorts the array). */
static size_t count_distinct(hash_hex *h, size_t n) {
    qsort(h, n, sizeof *h, cmp_hash);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) distinct += i == 0 || strcmp(h[i], h[i - 1]) != 0;
    return distinct;
}

int cmd_check(int argc, char **argv) {
    const char *path = NULL;
    int hashes = 0;
    gkd_inputs_options io = GKD_INPUTS_OPTIONS_INIT;
    io.warn = warn;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--schema")) return gkd_experiment_schema_markdown(stdout) ? 1 : 0;
        if (!strcmp(argv[i], "--hashes")) { hashes = 1; continue; }
        if (!strcmp(argv[i], "--allow-eval-overlap")) { io.allow_eval_overlap = 1; continue; }
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
    /* What gkd run would refuse before training anything, refused here too. */
    if (gkd_experiment_check_inputs_opt(exp, &io) != 0) {
        fprintf(stderr, "gkd check: %s\n", gkd_last_error());
        gkd_experiment_free(exp);
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
    hash_hex *teacher = malloc(n * sizeof *teacher), *student = malloc(n * sizeof *student);
    if (!teacher || !student) {
        fprintf(stderr, "gkd check: out of memory\n");
        free(teacher);
        free(student);
        gkd_experiment_free(exp);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        gkd_cell_config c;
        if (gkd_experiment_cell(exp, i, &c) != 0) {
            fprintf(stderr, "gkd check: %s\n", gkd_last_error());
            free(teacher);
            free(student);
            gkd_experiment_free(exp);
            return 1;
        }
        char th[GKD_HASH_HEX_LEN + 1], sh[GKD_HASH_HEX_LEN + 1], ch[GKD_HASH_HEX_LEN + 1];
        gkd_cell_teacher_hash(&c, th);
        gkd_cell_student_init_hash(&c, sh);
        gkd_cell_config_hash(&c, ch);
        memcpy(teacher[i], th, sizeof th);
        memcpy(student[i], sh, sizeof sh);
        if (hashes) printf("%6zu  %s  teacher=%s student_init=%s config=%s\n", i, c.name, th, sh, ch);
        else printf("%6zu  %s\n", i, c.name);
    }
    size_t nt = count_distinct(teacher, n), ns = count_distinct(student, n);
    printf("%zu cell%s, %zu distinct teacher%s, %zu distinct student init%s\n", n, n == 1 ? "" : "s", nt,
           nt == 1 ? "" : "s", ns, ns == 1 ? "" : "s");
    free(teacher);
    free(student);
    gkd_experiment_free(exp);
    return 0;
}
