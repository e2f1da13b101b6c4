/* Small front end to the Slurm functions of libgkd for the real-Slurm test
 * (tests/slurm/test_slurm_submit.sh):
 *
 *   slurm_driver submit EXP_NAME EXP_DIR NCELLS COMMAND [--partition P]
 *                [--time T] [--cpus-per-task N] [--mem M] [--max-parallel N]
 *       writes EXP_DIR/slurm/array.sbatch, submits it, prints the job id
 *   slurm_driver states JOB_ID NTASKS
 *       prints "TASK STATE" per array task as squeue/sacct see it */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/parse.h"
#include "gkd/slurm.h"

static int usage(void) {
    fprintf(stderr,
            "usage: slurm_driver submit EXP_NAME EXP_DIR NCELLS COMMAND [--partition P] [--time T]\n"
            "                    [--cpus-per-task N] [--mem M] [--max-parallel N]\n"
            "       slurm_driver states JOB_ID NTASKS\n");
    return 2;
}

static int fail(void) {
    fprintf(stderr, "slurm_driver: %s\n", gkd_last_error());
    return 1;
}

int main(int argc, char **argv) {
    long n;
    if (argc >= 6 && !strcmp(argv[1], "submit")) {
        gkd_slurm_options opt = GKD_SLURM_OPTIONS_INIT;
        if (gkd_parse_long(&n, argv[4], 1, 1000000, "NCELLS")) return fail();
        int ncells = (int)n;
        for (int i = 6; i < argc; i += 2) {
            if (i + 1 >= argc) return usage();
            const char *key = argv[i], *val = argv[i + 1];
            if (!strcmp(key, "--partition")) opt.partition = val;
            else if (!strcmp(key, "--time")) opt.time = val;
            else if (!strcmp(key, "--mem")) opt.mem = val;
            else if (!strcmp(key, "--cpus-per-task") || !strcmp(key, "--max-parallel")) {
                if (gkd_parse_long(&n, val, 0, 4096, key)) return fail();
                if (key[2] == 'c') opt.cpus_per_task = (int)n;
                else opt.max_parallel = (int)n;
            } else return usage();
        }
        char job[64];
        if (gkd_slurm_run_array(job, sizeof job, argv[2], argv[3], ncells, &opt, argv[5])) return fail();
        printf("%s\n", job);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "states")) {
        if (gkd_parse_long(&n, argv[3], 1, 1000000, "NTASKS")) return fail();
        gkd_slurm_task_state *st = calloc((size_t)n, sizeof *st);
        if (!st) return 1;
        if (gkd_slurm_task_states(st, (int)n, argv[2])) { free(st); return fail(); }
        for (long i = 0; i < n; i++) printf("%ld %s\n", i, gkd_slurm_task_state_name(st[i]));
        free(st);
        return 0;
    }
    return usage();
}
