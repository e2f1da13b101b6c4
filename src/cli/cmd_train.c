/* gkd train: a model trained from scratch with cross-entropy on a task's
 * ground truth (a teacher, or any baseline). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: gkd train --task NAME [task flags] [model flags] [training flags] --out DIR [--force]\n"
               "Trains a model from scratch with cross-entropy on the task's ground truth; writes\n"
               "DIR/final.ckpt, DIR/metrics.csv and DIR/eval.csv (resumes from DIR/checkpoint.ckpt\n"
               "when DIR/options.txt matches this run's options; --force removes DIR and starts over).\n%s%s%s",
            cli_task_flags_help, cli_model_flags_help, cli_train_flags_help);
}

int cmd_train(int argc, char **argv) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.seed = GKD_TASK_DEFAULT_SEED;
    gkd_model_config mc = {.vocab_size = 0, .max_seq_len = 64, .n_layer = 2, .n_embd = 64, .n_head = 2};
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    o.divergence.kind = GKD_DIV_CE;
    o.eval_samples = 0;
    o.lr = 3e-3;
    o.steps = 1000;
    const char *out = NULL, *v;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        int err = 0, r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((r = cli_task_flag(&tc, argc, argv, &i, "train")) || (r = cli_model_flag(&mc, argc, argv, &i, "train")) ||
            (r = cli_train_flag(&o, argc, argv, &i, "train"))) {
            if (r < 0) return 2;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--out", &err))) { out = v; continue; }
        if (!strcmp(argv[i], "--force")) { force = 1; continue; }
        if (err) return 2;
        fprintf(stderr, "gkd train: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!out) { fprintf(stderr, "gkd train: --out DIR is required\n"); return 2; }
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_model *m = NULL;
    int status = 1;
    if (gkd_task_new(&task, &tc) || gkd_task_tokenizer(task, &tok)) { cli_fail("train"); goto done; }
    mc.vocab_size = gkd_tokenizer_vocab_size(tok);
    gkd_model_config_fill_defaults(&mc);
    if ((force && gkd_remove_tree(out)) || gkd_model_new(&m, &mc) || gkd_mkdir_p(out)) { cli_fail("train"); goto done; }
    gkd_model_init_weights(m, o.seed);
    if (gkd_distill_run(m, NULL, tok, task, &o, out, cli_progress, NULL)) { cli_fail("train"); goto done; }
    printf("%s/final.ckpt\n", out);
    status = 0;
done:
    gkd_model_free(m);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
    return status;
}
