/* gkd sample: prompts, references and a checkpoint's generations side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/parse.h"
#include "gkd/sampler.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd sample --model CKPT --task NAME [task flags] [-n N] [--split train|eval]\n"
            "                  [--temperature X (0 = greedy)] [--top-k N] [--top-p X]\n"
            "                  [--max-new-tokens N] [--seed N] [--allow-eval-overlap]\n"
            "On the eval split, a checkpoint that records training on some of the prompts\n"
            "shown (another --data-seed) gets a warning; --allow-eval-overlap silences it.\n%s",
            cli_task_flags_help);
}

int cmd_sample(int argc, char **argv) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.seed = GKD_TASK_DEFAULT_SEED;
    gkd_sample_options so = GKD_SAMPLE_OPTIONS_INIT;
    so.temperature = 0;
    const char *model_path = NULL, *v;
    long n = 5, seed = 1;
    double d;
    gkd_split split = GKD_SPLIT_EVAL;
    int allow_overlap = 0;
    for (int i = 1; i < argc; i++) {
        int err = 0, r;
        long x;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((r = cli_task_flag(&tc, argc, argv, &i, "sample"))) {
            if (r < 0) return 2;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--model", &err))) { model_path = v; continue; }
        if (!strcmp(argv[i], CLI_ALLOW_OVERLAP_FLAG)) { allow_overlap = 1; continue; }
        if ((v = cli_flag(argc, argv, &i, "-n", &err))) {
            if (gkd_parse_long(&n, v, 1, 100000, "-n")) { cli_fail("sample"); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--seed", &err))) {
            if (gkd_parse_long(&seed, v, 0, 2147483647L, "--seed")) { cli_fail("sample"); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--max-new-tokens", &err))) {
            if (cli_parse_setting_long(&x, v, "distill.max_new_tokens", "--max-new-tokens")) { cli_fail("sample"); return 2; }
            so.max_new_tokens = (int)x;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--top-k", &err))) {
            if (cli_parse_setting_long(&x, v, "distill.top_k", "--top-k")) { cli_fail("sample"); return 2; }
            so.top_k = (int)x;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--temperature", &err))) {
            if (cli_parse_setting_double(&d, v, "distill.temperature", "--temperature")) { cli_fail("sample"); return 2; }
            so.temperature = (float)d;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--top-p", &err))) {
            if (cli_parse_setting_double(&d, v, "distill.top_p", "--top-p")) { cli_fail("sample"); return 2; }
            so.top_p = (float)d;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--split", &err))) {
            if (!strcmp(v, "train")) split = GKD_SPLIT_TRAIN;
            else if (!strcmp(v, "eval")) split = GKD_SPLIT_EVAL;
            else { fprintf(stderr, "gkd sample: --split: '%s' is not train or eval\n", v); return 2; }
            continue;
        }
        if (err) return 2;
        fprintf(stderr, "gkd sample: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!model_path) { fprintf(stderr, "gkd sample: --model CKPT is required\n"); return 2; }
    gkd_model *model = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_task_record *rec = NULL;
    gkd_task *task = NULL;
    gkd_sampler *sampler = NULL;
    gkd_seqbatch batch = {0};
    uint64_t *streams = NULL;
    char *text = NULL;
    int status = 1;
    if (cli_load_for_task("sample", model_path, &tc, &model, &tok, &rec)) goto done;
    if (gkd_task_new(&task, &tc)) { cli_fail("sample"); goto done; }
    size_t avail = gkd_task_size(task, split);
    if ((size_t)n > avail) n = (long)avail;
    /* Looking at outputs is not a measurement: an overlap is said, not
     * refused (gkd eval refuses it). */
    if (split == GKD_SPLIT_EVAL && !allow_overlap) {
        char what[4200];
        snprintf(what, sizeof what, "checkpoint %s", model_path);
        if (cli_warn_eval_overlap("sample", what, rec, task, (size_t)n, "eval prompts shown",
                                  "their outputs say little about generalization"))
            goto done;
    }
    int cap = model->config.max_seq_len;
    streams = calloc((size_t)n, sizeof *streams);
    if (!streams || gkd_seqbatch_new(&batch, (int)n, cap) || gkd_sampler_new(&sampler, model, NULL, (int)n)) {
        cli_fail("sample");
        goto done;
    }
    for (int r = 0; r < n; r++) {
        int *ids = batch.tokens + (size_t)r * cap;
        for (int t = 0; t < cap; t++) ids[t] = 0;
        if (gkd_task_encode_prompt(task, tok, split, (size_t)r, ids, cap, &batch.prompt_len[r], &batch.len[r])) {
            cli_fail("sample");
            goto done;
        }
        streams[r] = (uint64_t)r;
    }
    so.eos_token = gkd_tokenizer_eos(tok);
    if (gkd_sampler_generate(sampler, &batch, &so, 0, (uint64_t)seed, streams, NULL)) { cli_fail("sample"); goto done; }
    for (int r = 0; r < n; r++) {
        const gkd_example *ex = gkd_task_example(task, split, (size_t)r);
        free(text);
        text = gkd_tokenizer_decode_alloc(tok, batch.tokens + (size_t)r * cap + batch.prompt_len[r],
                                          batch.len[r] - batch.prompt_len[r]);
        if (!text) {
            fprintf(stderr, "gkd sample: out of memory\n");
            goto done;
        }
        double score = gkd_task_score(task, ex, text);
        printf("prompt     %s\nreference  %s\ngenerated  %s%s\nscore      %g\n\n", ex->prompt, ex->reference, text,
               batch.eos[r] ? "" : "  (no EOS)", score);
    }
    status = 0;
done:
    free(streams);
    free(text);
    gkd_sampler_free(sampler);
    gkd_seqbatch_free(&batch);
    gkd_model_free(model);
    gkd_tokenizer_free(tok);
    gkd_task_record_free(rec);
    gkd_task_free(task);
    return status;
}
