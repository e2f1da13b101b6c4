/* libFuzzer target for a run directory's options.txt, which a resume reads
 * and compares with the options of the run about to continue
 * (gkd_run_options_check, src/distill/run_options.c): the input is the
 * file, the run's own text a fixed one. Equal files resume; any other must
 * be refused with GKD_EMISMATCH on one line naming an option. Seeds:
 * options.txt files of results/ and the fixed text itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/run_options.h"
#include "fuzz.h"

/* What gkd distill wrote for one cell of experiments/gkd-divergences. */
static const char text[] =
    "task=arith 36a626aeca4cf3fb\nstudent_init=34d9f4311bfa0716\nteacher=48d44faf98d430ee\n"
    "divergence=tvd\nce_weight=0\nloss_temperature=1\nreduction=token\npg_advantage=0\n"
    "mix_importance=0\nlambda=0\nper_example=0\nseqkd=0\nseqkd_cache=0\nteacher_mix=0\n"
    "replay=0 0.5 1 1000 64\nreplay_adaptive=0 0.1 0.1 0 500 0\nsample=1 0 1 36\nsteps=500\n"
    "batch=32\nlr=0.003\nlr_min=0.00030000000000000003\nwarmup=0\nweight_decay=0\nclip=1\nseed=1\n"
    "eval=200 1 1 1\n";

static char path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(path, sizeof path, "options.txt");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(path, data, size);
    int rc = gkd_run_options_check(path, text, 1);
    int same = size == sizeof text - 1 && memcmp(data, text, size) == 0;
    if (same && rc) {
        fprintf(stderr, "fuzz_run_options: its own options refused: %s\n", gkd_last_error());
        abort();
    }
    if (!rc && !same) {
        fprintf(stderr, "fuzz_run_options: resumed with an options file that differs from the run's\n");
        abort();
    }
    if (rc) {
        fuzz_check_error(rc, "gkd_run_options_check");
        if (rc != GKD_EMISMATCH) {
            fprintf(stderr, "fuzz_run_options: refused with %d, not GKD_EMISMATCH: %s\n", rc, gkd_last_error());
            abort();
        }
    }
    return 0;
}
