/* gkd eval: every metric of a checkpoint on a task's eval split. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/eval.h"
#include "gkd/fsutil.h"
#include "gkd/parse.h"
#include "gkd/table.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd eval --model CKPT --task NAME [task flags] [--teacher CKPT] [--n N]\n"
            "                [--samples N] [--decode greedy|sample] [--temperature X]\n"
            "                [--bleu-smoothing method0|method1|method2|method3|method4]\n"
            "                [--max-new-tokens N] [--seed N] [--out FILE.csv] [--allow-eval-overlap]\n"
            "Prints one line per metric (direction in brackets) and, with --out, writes\n"
            "them as CSV rows metric,value. Metrics: docs/metrics.md. A checkpoint that\n"
            "records training on some of the eval examples evaluated (another --data-seed)\n"
            "is refused unless --allow-eval-overlap.\n%s",
            cli_task_flags_help);
}

int cmd_eval(int argc, char **argv) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.seed = GKD_TASK_DEFAULT_SEED;
    gkd_eval_options eo = GKD_EVAL_OPTIONS_INIT;
    const char *model_path = NULL, *teacher_path = NULL, *out = NULL, *v;
    long n;
    double d;
    int allow_overlap = 0;
    for (int i = 1; i < argc; i++) {
        int err = 0, r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((r = cli_task_flag(&tc, argc, argv, &i, "eval"))) {
            if (r < 0) return 2;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--model", &err))) { model_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--teacher", &err))) { teacher_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--out", &err))) { out = v; continue; }
        if (!strcmp(argv[i], CLI_ALLOW_OVERLAP_FLAG)) { allow_overlap = 1; continue; }
        if ((v = cli_flag(argc, argv, &i, "--decode", &err))) {
            if (!strcmp(v, "greedy")) eo.greedy = 1;
            else if (!strcmp(v, "sample")) eo.greedy = 0;
            else { fprintf(stderr, "gkd eval: --decode: '%s' is not greedy or sample\n", v); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--bleu-smoothing", &err))) {
            if (gkd_bleu_smoothing_parse(&eo.bleu_smoothing, v, 1)) {
                fprintf(stderr, "gkd eval: --bleu-smoothing: %s\n", gkd_last_error());
                return 2;
            }
            continue;
        }
#define LONG_OPT(flag, lvalue, lo, hi)                                                       \
    if ((v = cli_flag(argc, argv, &i, flag, &err))) {                                         \
        if (gkd_parse_long(&n, v, lo, hi, flag)) { cli_fail("eval"); return 2; }              \
        lvalue = n;                                                                            \
        continue;                                                                              \
    }
#define SETTING_OPT(flag, lvalue, key)                                                       \
    if ((v = cli_flag(argc, argv, &i, flag, &err))) {                                         \
        if (cli_parse_setting_long(&n, v, key, flag)) { cli_fail("eval"); return 2; }         \
        lvalue = n;                                                                            \
        continue;                                                                              \
    }
        LONG_OPT("--n", eo.n, 1, 10000000) /* eval.n is capped by task.eval; --n by the split */
        SETTING_OPT("--samples", eo.samples, "eval.samples")
        SETTING_OPT("--max-new-tokens", eo.max_new_tokens, "distill.max_new_tokens")
        LONG_OPT("--seed", eo.seed, 0, 2147483647L)
#undef LONG_OPT
#undef SETTING_OPT
        if ((v = cli_flag(argc, argv, &i, "--temperature", &err))) {
            if (cli_parse_setting_double(&d, v, "eval.temperature", "--temperature")) { cli_fail("eval"); return 2; }
            eo.temperature = (float)d;
            continue;
        }
        if (err) return 2;
        fprintf(stderr, "gkd eval: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!model_path) { fprintf(stderr, "gkd eval: --model CKPT is required\n"); return 2; }
    gkd_model *model = NULL, *teacher = NULL;
    gkd_tokenizer *tok = NULL, *ttok = NULL;
    gkd_task_record *rec = NULL, *trec = NULL;
    gkd_task *task = NULL;
    gkd_eval_result res;
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    int status = 1;
    if (cli_load_for_task("eval", model_path, &tc, &model, &tok, &rec)) goto done;
    if (teacher_path) {
        if (cli_load_for_task("eval", teacher_path, &tc, &teacher, &ttok, &trec)) goto done;
        if (teacher->config.vocab_size != model->config.vocab_size || !gkd_tokenizer_equal(tok, ttok)) {
            fprintf(stderr, "gkd eval: %s and %s have different vocabularies\n", model_path, teacher_path);
            goto done;
        }
    }
    if (gkd_task_new(&task, &tc)) { cli_fail("eval"); goto done; }
    /* Metrics of a model on examples it trained on are not eval metrics;
     * the teacher's val_loss reference likewise. */
    {
        char what[4200];
        snprintf(what, sizeof what, "checkpoint %s", model_path);
        if (cli_check_eval_overlap("eval", what, rec, task, (size_t)eo.n, allow_overlap)) goto done;
        snprintf(what, sizeof what, "teacher checkpoint %s", teacher_path ? teacher_path : "");
        if (teacher_path && cli_check_eval_overlap("eval", what, trec, task, (size_t)eo.n, allow_overlap)) goto done;
    }
    if (gkd_evaluate(&res, model, teacher, tok, task, &eo)) { cli_fail("eval"); goto done; }
    gkd_csv_buf_str(&b, "metric");
    gkd_csv_buf_str(&b, "value");
    gkd_csv_buf_end_row(&b);
    char counted[96];
    gkd_tokenizer_describe(tok, counted, sizeof counted);
    printf("tokens: %s (token_accuracy, nll_ref, mean_len and the other per-token metrics count these)\n", counted);
    printf("%-16s %12s  %s\n", "metric", "value", "better");
    for (int m = 0; m < GKD_M_COUNT; m++) {
        if (isnan(res.v[m])) continue;
        gkd_metric_dir dir = gkd_metric_direction(gkd_metric_name(m));
        printf("%-16s %12.6f  %s\n", gkd_metric_name(m), res.v[m],
               dir == GKD_DIR_HIGHER ? "higher" : dir == GKD_DIR_LOWER ? "lower" : "-");
        gkd_csv_buf_str(&b, gkd_metric_name(m));
        gkd_csv_buf_double(&b, res.v[m]);
        gkd_csv_buf_end_row(&b);
    }
    if (out && gkd_file_write_atomic(out, b.data, b.len)) { cli_fail("eval"); goto done; }
    status = 0;
done:
    gkd_csv_buf_free(&b);
    gkd_model_free(model);
    gkd_model_free(teacher);
    gkd_tokenizer_free(tok);
    gkd_tokenizer_free(ttok);
    gkd_task_record_free(rec);
    gkd_task_record_free(trec);
    gkd_task_free(task);
    return status;
}
