/* Flag parsing shared by the subcommands. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/model_source.h"
#include "gkd/metrics.h"
#include "gkd/parse.h"

const char *cli_flag(int argc, char **argv, int *i, const char *name, int *err) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "gkd %s: %s needs a value\n", argv[0], name);
        *err = 1;
        return NULL;
    }
    return argv[++*i];
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "gkd %s: %s\n", cmd, gkd_last_error());
    return 1;
}

const char cli_task_flags_help[] =
    "task: --task arith|reverse|sort|modes|pairs|text [--data-seed N (1234)] [--train N] [--eval N]\n"
    "      arith: --digits N --op add|sub|mul [--rationale]\n"
    "      reverse/sort: --min-len N --max-len N --alphabet CHARS\n"
    "      modes: --k N --zipf S --length N\n"
    "      pairs: --path FILE.tsv [--eval-path FILE.tsv | --eval-fraction F] (eval, sample: --eval-path alone)\n"
    "      text: --path FILE.txt [--chunk N --prompt-chars N --eval-fraction F]\n"
    "      any: [--targets reference|answer|rationale+answer|multitask] [--train-fraction F (1)]\n"
    "      any: --tokenizer FILE_OR_DIR (subword tokenizer files; default: the task's char/byte\n"
    "           vocabulary, or the tokenizer the model brings)\n"
    "      contexts (what the teacher sees before the prompt): arith: --task-context\n"
    "           none|rationale|worked_example; text: --context-path FILE; any: --teacher-context TEXT;\n"
    "           pairs: a third TSV column; train, eval: --with-context (the model sees them)\n";

static int bad(const char *cmd) {
    fprintf(stderr, "gkd %s: %s\n", cmd, gkd_last_error());
    return -1;
}

int cli_task_flag(gkd_task_config *tc, int argc, char **argv, int *i, const char *cmd) {
    int err = 0;
    const char *v;
    long n;
    double d;
    if (!strcmp(argv[*i], "--rationale")) { tc->rationale = 1; return 1; }
    if (!strcmp(argv[*i], "--with-context")) { tc->with_context = 1; return 1; }
    if ((v = cli_flag(argc, argv, i, "--task-context", &err))) { tc->context = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--context-path", &err))) { tc->context_path = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--teacher-context", &err))) { tc->teacher_context = v; return 1; }
#define LONG_FLAG(flag, field, key)                                                          \
    if ((v = cli_flag(argc, argv, i, flag, &err))) {                                         \
        if (cli_parse_setting_long(&n, v, key, flag)) return bad(cmd);                       \
        tc->field = (int)n;                                                                  \
        return 1;                                                                            \
    }
    if ((v = cli_flag(argc, argv, i, "--task", &err))) { tc->name = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--op", &err))) { tc->op = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--alphabet", &err))) { tc->alphabet = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--path", &err))) { tc->path = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--eval-path", &err))) { tc->eval_path = v; return 1; }
    if ((v = cli_flag(argc, argv, i, "--tokenizer", &err))) { tc->tokenizer = v; return 1; }
    LONG_FLAG("--digits", digits, "task.digits")
    LONG_FLAG("--train", train, "task.train")
    LONG_FLAG("--eval", eval, "task.eval")
    LONG_FLAG("--min-len", min_len, "task.min_len")
    LONG_FLAG("--max-len", max_len, "task.max_len")
    LONG_FLAG("--k", modes_k, "task.k")
    LONG_FLAG("--length", modes_len, "task.length")
    LONG_FLAG("--chunk", chunk, "task.chunk")
    LONG_FLAG("--prompt-chars", prompt_chars, "task.prompt_chars")
#undef LONG_FLAG
    if ((v = cli_flag(argc, argv, i, "--data-seed", &err))) {
        if (gkd_parse_long(&n, v, 0, 2147483647L, "--data-seed")) return bad(cmd);
        tc->seed = (uint64_t)n;
        return 1;
    }
    if ((v = cli_flag(argc, argv, i, "--zipf", &err))) {
        if (cli_parse_setting_double(&d, v, "task.zipf", "--zipf")) return bad(cmd);
        tc->zipf_s = d;
        return 1;
    }
    if ((v = cli_flag(argc, argv, i, "--targets", &err))) {
        if (gkd_targets_parse(v, &tc->targets, "--targets")) return bad(cmd);
        return 1;
    }
    if ((v = cli_flag(argc, argv, i, "--train-fraction", &err))) {
        if (cli_parse_setting_double(&d, v, "task.train_fraction", "--train-fraction")) return bad(cmd);
        tc->train_fraction = d;
        return 1;
    }
    if ((v = cli_flag(argc, argv, i, "--eval-fraction", &err))) {
        if (cli_parse_setting_double(&d, v, "task.eval_fraction", "--eval-fraction")) return bad(cmd);
        tc->eval_fraction = d;
        return 1;
    }
    return err ? -1 : 0;
}

const char cli_model_flags_help[] =
    "model: --layers N --d-model N --heads N --context N\n"
    "       --arch gpt2|llama; llama: --kv-heads N --ffn-dim N --untied-head\n";

int cli_model_flag(gkd_model_config *mc, int argc, char **argv, int *i, const char *cmd) {
    int err = 0;
    const char *v;
    long n;
#define LONG_FLAG(flag, field, key)                                                          \
    if ((v = cli_flag(argc, argv, i, flag, &err))) {                                         \
        if (cli_parse_setting_long(&n, v, key, flag)) return bad(cmd);                       \
        mc->field = (int)n;                                                                  \
        return 1;                                                                            \
    }
    LONG_FLAG("--layers", n_layer, "student.model.layers")
    LONG_FLAG("--d-model", n_embd, "student.model.d_model")
    LONG_FLAG("--heads", n_head, "student.model.heads")
    LONG_FLAG("--context", max_seq_len, "student.model.context")
    LONG_FLAG("--kv-heads", n_kv_head, "student.model.kv_heads")
    LONG_FLAG("--ffn-dim", ffn_dim, "student.model.ffn_dim")
    if ((v = cli_flag(argc, argv, i, "--arch", &err))) {
        const int arch = gkd_arch_from_name(v);
        if (arch < 0) {
            fprintf(stderr, "gkd %s: --arch: expected gpt2 or llama, got '%s'\n", cmd, v);
            return -1;
        }
        mc->arch = arch;
        return 1;
    }
    if (!strcmp(argv[*i], "--untied-head")) {
        mc->untied_head = 1;
        return 1;
    }
#undef LONG_FLAG
    return err ? -1 : 0;
}

int cli_load_any(const char *cmd, const char *path, gkd_model **model, gkd_tokenizer **tok,
                 gkd_task_record **record) {
    gkd_checkpoint_data d;
    if (gkd_model_source_load(&d, path)) return cli_fail(cmd);
    *model = d.model;
    *tok = d.tokenizer;
    d.owns_model = 0;
    d.tokenizer = NULL;
    *record = d.task_record;
    d.task_record = NULL;
    gkd_checkpoint_data_free(&d);
    return 0;
}

int cli_load_with_record(const char *cmd, const char *path, gkd_model **model, gkd_tokenizer **tok,
                         gkd_task_record **record) {
    gkd_checkpoint_data d;
    if (gkd_model_source_load(&d, path)) return cli_fail(cmd);
    if (!d.tokenizer) {
        gkd_checkpoint_data_free(&d);
        fprintf(stderr, "gkd %s: %s stores no tokenizer, so its outputs cannot be decoded\n", cmd, path);
        return 1;
    }
    *model = d.model;
    *tok = d.tokenizer;
    d.owns_model = 0;
    d.tokenizer = NULL;
    if (record) {
        *record = d.task_record;
        d.task_record = NULL;
    }
    gkd_checkpoint_data_free(&d);
    return 0;
}

int cli_load_for_task(const char *cmd, const char *path, const gkd_task_config *tc, gkd_model **model,
                      gkd_tokenizer **tok, gkd_task_record **record) {
    if (!tc->tokenizer) return cli_load_with_record(cmd, path, model, tok, record);
    gkd_checkpoint_data d;
    gkd_tokenizer *given = NULL;
    if (gkd_model_source_load(&d, path)) return cli_fail(cmd);
    int rc = gkd_tokenizer_new_subword(&given, tc->tokenizer);
    if (!rc && d.tokenizer && !gkd_tokenizer_equal(d.tokenizer, given))
        rc = gkd_error(GKD_EMISMATCH, "%s has a tokenizer of its own that is not --tokenizer %s", path,
                       tc->tokenizer);
    if (!rc && !d.tokenizer) rc = gkd_model_source_check_vocab(d.model->config.vocab_size, given, "--model", path);
    if (rc) {
        gkd_tokenizer_free(given);
        gkd_checkpoint_data_free(&d);
        return cli_fail(cmd);
    }
    *model = d.model;
    d.owns_model = 0;
    *tok = given;
    if (record) {
        *record = d.task_record;
        d.task_record = NULL;
    }
    gkd_checkpoint_data_free(&d);
    return 0;
}

int cli_load(const char *cmd, const char *path, gkd_model **model, gkd_tokenizer **tok) {
    return cli_load_with_record(cmd, path, model, tok, NULL);
}

int cli_warn_eval_overlap(const char *cmd, const char *what, const gkd_task_record *record, const gkd_task *task,
                          size_t n, const char *unit, const char *consequence) {
    if (!record) return 0;
    gkd_task_overlap ov;
    if (gkd_task_record_overlap(&ov, record, task, n)) return cli_fail(cmd);
    if (!ov.checked)
        fprintf(stderr, "gkd %s: warning: %s: eval overlap not checked: %s\n", cmd, what, ov.why);
    else if (ov.overlap)
        fprintf(stderr, "gkd %s: warning: %s was trained on %zu of the %zu %s%s%s%s; %s\n", cmd, what, ov.overlap,
                ov.eval_n, unit, ov.diff[0] ? " (" : "", ov.diff, ov.diff[0] ? ")" : "", consequence);
    return 0;
}

int cli_check_eval_overlap(const char *cmd, const char *what, const gkd_task_record *record, const gkd_task *task,
                           size_t n, int allow) {
    char warning[1024];
    if (gkd_task_check_eval_overlap(record, task, n, what, "--data-seed", CLI_ALLOW_OVERLAP_FLAG, allow, warning,
                                    sizeof warning))
        return cli_fail(cmd);
    if (warning[0]) fprintf(stderr, "gkd %s: warning: %s\n", cmd, warning);
    return 0;
}

const char cli_train_flags_help[] =
    "training: --steps N --batch N --lr X [--lr-min X --warmup N --weight-decay X --clip X]\n"
    "          --seed N [--eval-every N --eval-n N --eval-samples N --checkpoint-every N]\n"
    "          [--max-new-tokens N] [--bleu-smoothing method0|method1|method2|method3|method4]\n"
    "          step-by-step (--targets multitask): [--rationale-weight W (1)] [--rationale-source data|teacher]\n";

int cli_train_flag(gkd_distill_options *o, int argc, char **argv, int *i, const char *cmd) {
    int err = 0;
    const char *v;
    long n;
    double d;
#define LONG_FLAG(flag, field, key)                                                          \
    if ((v = cli_flag(argc, argv, i, flag, &err))) {                                         \
        if (cli_parse_setting_long(&n, v, key, flag)) return bad(cmd);                       \
        o->field = n;                                                                        \
        return 1;                                                                            \
    }
#define DOUBLE_FLAG(flag, field, key)                                                        \
    if ((v = cli_flag(argc, argv, i, flag, &err))) {                                         \
        if (cli_parse_setting_double(&d, v, key, flag)) return bad(cmd);                     \
        o->field = d;                                                                        \
        return 1;                                                                            \
    }
    LONG_FLAG("--steps", steps, "distill.steps")
    LONG_FLAG("--batch", batch, "distill.batch")
    DOUBLE_FLAG("--rationale-weight", rationale_weight, "student.rationale_weight")
    if ((v = cli_flag(argc, argv, i, "--rationale-source", &err))) {
        if (strcmp(v, "data") && strcmp(v, "teacher")) {
            fprintf(stderr, "gkd %s: --rationale-source: '%s' is not data or teacher\n", cmd, v);
            return -1;
        }
        o->rationale_source = strcmp(v, "data") ? GKD_RATIONALE_TEACHER : GKD_RATIONALE_DATA;
        return 1;
    }
    LONG_FLAG("--warmup", warmup, "distill.warmup")
    /* The run seed has no experiment-file range of its own (seeds is a list). */
    if ((v = cli_flag(argc, argv, i, "--seed", &err))) {
        if (gkd_parse_long(&n, v, 0, 2147483647L, "--seed")) return bad(cmd);
        o->seed = (uint64_t)n;
        return 1;
    }
    LONG_FLAG("--eval-every", eval_every, "eval.every")
    LONG_FLAG("--eval-n", eval_n, "eval.n")
    LONG_FLAG("--eval-samples", eval_samples, "eval.samples")
    LONG_FLAG("--checkpoint-every", checkpoint_every, "distill.checkpoint_every")
    LONG_FLAG("--max-new-tokens", sample.max_new_tokens, "distill.max_new_tokens")
    DOUBLE_FLAG("--lr", lr, "distill.lr")
    DOUBLE_FLAG("--lr-min", lr_min, "distill.lr_min")
    DOUBLE_FLAG("--weight-decay", weight_decay, "distill.weight_decay")
    DOUBLE_FLAG("--clip", clip, "distill.clip")
    if ((v = cli_flag(argc, argv, i, "--bleu-smoothing", &err))) {
        gkd_bleu_smoothing s;
        if (gkd_bleu_smoothing_parse(&s, v, 1)) {
            fprintf(stderr, "gkd %s: --bleu-smoothing: %s\n", cmd, gkd_last_error());
            return -1;
        }
        o->eval_bleu_smoothing = (int)s;
        return 1;
    }
#undef LONG_FLAG
#undef DOUBLE_FLAG
    return err ? -1 : 0;
}

void cli_progress(void *ctx, long step, long steps, const char *line) {
    (void)ctx;
    static int tty = -1;
    if (tty < 0) tty = isatty(2);
    if (tty) fprintf(stderr, "\r\033[K%s%s", line, step == steps && strstr(line, " eval ") ? "\n" : "");
    else if (strstr(line, " eval ")) fprintf(stderr, "%s\n", line);
}
