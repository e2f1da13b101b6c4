/* gkd distill: one distillation run from the command line (the same code an
 * experiment file drives). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/model_source.h"
#include "gkd/sparse_teacher.h"
#include "gkd/fsutil.h"
#include "gkd/parse.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd distill --teacher T.ckpt (--student S.ckpt | --student-config layers=L,d_model=C,heads=H\n"
            "                   | [model flags]) --task NAME [task flags]\n"
            "                   [--divergence fkl|rkl|jsd(B)|skl(A)|srkl(A)|tvd|ce|pg_rkl] [--lambda X]\n"
            "                   [--per-example] [--seqkd X] [--seqkd-cache] [--teacher-mix X] [--mix-importance]\n"
            "                   [--replay off|fixed|adaptive --replay-capacity N --replay-prob X\n"
            "                    --replay-init X --replay-step X --replay-loss-eps X] [--ce-weight X] [--loss-temperature X]\n"
            "                   [--reduction token|sequence] [--pg-advantage token|to-go]\n"
            "                   [--teacher-topk K [--topk-tail renorm|tail] [--teacher-cache FILE]]\n"
            "                   [--temperature X --top-k N --top-p X] [--sft-steps N [--sft-lr X]]\n"
            "                   [training flags] --out DIR [--force] [--allow-eval-overlap]\n"
            "Writes DIR/metrics.csv (a row per step), DIR/eval.csv, DIR/timings.csv and\n"
            "DIR/final.ckpt; resumes from DIR/checkpoint.ckpt when DIR/options.txt matches this\n"
            "run's options (--force removes DIR and starts over). A student given by model flags\n"
            "starts from random weights, or from N steps of supervised fine-tuning on the\n"
            "ground truth with --sft-steps (written to DIR/sft). A --student checkpoint\n"
            "that records training on some of the eval examples (another --data-seed) is\n"
            "refused unless --allow-eval-overlap; such a teacher gets a warning. --teacher-cache\n"
            "reads the data or SeqKD rows and the teacher's top-k rows from a file of gkd\n"
            "teacher-cache made for this run.\n%s%s%s",
            cli_task_flags_help, cli_model_flags_help, cli_train_flags_help);
}

/* --student-config layers=2,d_model=32,heads=2[,context=48]: the same
 * shape keys as an experiment file's student.model. */
static int parse_student_config(gkd_model_config *mc, const char *spec) {
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf) {
        fprintf(stderr, "gkd distill: --student-config: too long\n");
        return -1;
    }
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        long n;
        if (!eq) {
            fprintf(stderr, "gkd distill: --student-config: '%s' is not key=value\n", kv);
            return -1;
        }
        *eq = '\0';
        int *field = !strcmp(kv, "layers")    ? &mc->n_layer
                     : !strcmp(kv, "d_model") ? &mc->n_embd
                     : !strcmp(kv, "heads")   ? &mc->n_head
                     : !strcmp(kv, "context") ? &mc->max_seq_len
                                              : NULL;
        if (!field) {
            fprintf(stderr, "gkd distill: --student-config: unknown key '%s' (layers, d_model, heads, context)\n", kv);
            return -1;
        }
        char key[64];
        snprintf(key, sizeof key, "student.model.%s", kv);
        if (cli_parse_setting_long(&n, eq + 1, key, kv)) {
            fprintf(stderr, "gkd distill: --student-config: %s\n", gkd_last_error());
            return -1;
        }
        *field = (int)n;
    }
    return 0;
}

int cmd_distill(int argc, char **argv) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.seed = GKD_TASK_DEFAULT_SEED;
    gkd_model_config mc = {.vocab_size = 0, .max_seq_len = 0, .n_layer = 2, .n_embd = 64, .n_head = 2};
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    const char *out = NULL, *teacher_path = NULL, *student_path = NULL, *v;
    int force = 0, allow_overlap = 0;
    double d, sft_lr = 0;
    long n, sft_steps = 0;
    for (int i = 1; i < argc; i++) {
        int err = 0, r;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if ((r = cli_task_flag(&tc, argc, argv, &i, "distill")) || (r = cli_model_flag(&mc, argc, argv, &i, "distill")) ||
            (r = cli_train_flag(&o, argc, argv, &i, "distill"))) {
            if (r < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--per-example")) { o.schedule.per_example = 1; continue; }
        if (!strcmp(a, "--seqkd-cache")) { o.seqkd_cache = 1; continue; }
        if (!strcmp(a, "--mix-importance")) { o.mix_importance = 1; continue; }
        if ((v = cli_flag(argc, argv, &i, "--out", &err))) { out = v; continue; }
        if (!strcmp(argv[i], "--force")) { force = 1; continue; }
        if (!strcmp(argv[i], CLI_ALLOW_OVERLAP_FLAG)) { allow_overlap = 1; continue; }
        if ((v = cli_flag(argc, argv, &i, "--teacher-cache", &err))) { o.teacher_cache = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--teacher", &err))) { teacher_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--student-config", &err))) {
            if (parse_student_config(&mc, v)) return 2;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--student", &err))) { student_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--divergence", &err))) {
            if (gkd_divergence_parse(&o.divergence, v)) { cli_fail("distill"); return 2; }
            continue;
        }
#define DOUBLE_OPT(flag, lvalue, key)                                                       \
    if ((v = cli_flag(argc, argv, &i, flag, &err))) {                                       \
        if (cli_parse_setting_double(&d, v, key, flag)) { cli_fail("distill"); return 2; }  \
        lvalue = d;                                                                          \
        continue;                                                                            \
    }
        DOUBLE_OPT("--lambda", o.schedule.lambda, "distill.lambda")
        DOUBLE_OPT("--seqkd", o.schedule.seqkd, "distill.seqkd")
        DOUBLE_OPT("--teacher-mix", o.schedule.teacher_mix, "distill.teacher_mix")
        DOUBLE_OPT("--replay-prob", o.schedule.p_replay, "distill.replay.prob")
        DOUBLE_OPT("--replay-init", o.schedule.init_threshold, "distill.replay.init")
        DOUBLE_OPT("--replay-step", o.schedule.threshold_step, "distill.replay.step")
        DOUBLE_OPT("--replay-loss-eps", o.schedule.loss_eps, "distill.replay.loss_eps")
        DOUBLE_OPT("--ce-weight", o.ce_weight, "distill.ce_weight")
        DOUBLE_OPT("--loss-temperature", o.loss_temperature, "distill.loss_temperature")
        DOUBLE_OPT("--temperature", o.sample.temperature, "distill.temperature")
        DOUBLE_OPT("--top-p", o.sample.top_p, "distill.top_p")
#undef DOUBLE_OPT
        if ((v = cli_flag(argc, argv, &i, "--top-k", &err))) {
            if (cli_parse_setting_long(&n, v, "distill.top_k", "--top-k")) { cli_fail("distill"); return 2; }
            o.sample.top_k = (int)n;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--teacher-topk", &err))) {
            if (cli_parse_setting_long(&n, v, "distill.teacher_topk", "--teacher-topk")) { cli_fail("distill"); return 2; }
            o.teacher_topk = (int)n;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--topk-tail", &err))) {
            if (!strcmp(v, "renorm")) o.topk_tail = GKD_SPARSE_RENORM;
            else if (!strcmp(v, "tail")) o.topk_tail = GKD_SPARSE_TAIL;
            else { fprintf(stderr, "gkd distill: --topk-tail: '%s' is not renorm or tail\n", v); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--sft-steps", &err))) {
            if (gkd_parse_long(&sft_steps, v, 0, 100000000, "--sft-steps")) { cli_fail("distill"); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--sft-lr", &err))) {
            if (cli_parse_setting_double(&sft_lr, v, "student.sft.lr", "--sft-lr")) { cli_fail("distill"); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--replay-capacity", &err))) {
            if (cli_parse_setting_long(&n, v, "distill.replay.capacity", "--replay-capacity")) { cli_fail("distill"); return 2; }
            o.schedule.capacity = (int)n;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--replay", &err))) {
            if (!strcmp(v, "off")) o.schedule.replay = GKD_REPLAY_OFF;
            else if (!strcmp(v, "fixed")) o.schedule.replay = GKD_REPLAY_FIXED;
            else if (!strcmp(v, "adaptive")) o.schedule.replay = GKD_REPLAY_ADAPTIVE;
            else { fprintf(stderr, "gkd distill: --replay: '%s' is not off, fixed or adaptive\n", v); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--reduction", &err))) {
            if (!strcmp(v, "token")) o.per_sequence = 0;
            else if (!strcmp(v, "sequence")) o.per_sequence = 1;
            else { fprintf(stderr, "gkd distill: --reduction: '%s' is not token or sequence\n", v); return 2; }
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--pg-advantage", &err))) {
            if (!strcmp(v, "token")) o.pg_advantage = GKD_PG_PER_TOKEN;
            else if (!strcmp(v, "to-go")) o.pg_advantage = GKD_PG_REWARD_TO_GO;
            else { fprintf(stderr, "gkd distill: --pg-advantage: '%s' is not token or to-go\n", v); return 2; }
            continue;
        }
        if (err) return 2;
        fprintf(stderr, "gkd distill: unknown option '%s'\n", a);
        usage(stderr);
        return 2;
    }
    if (!out || !teacher_path) { fprintf(stderr, "gkd distill: --teacher and --out are required\n"); return 2; }
    if (tc.with_context) {
        fprintf(stderr, "gkd distill: --with-context is for the teacher (gkd train, gkd eval); the student of "
                        "gkd distill sees the plain prompts and the teacher the contexts\n");
        return 2;
    }
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL, *stok = NULL;
    gkd_model *teacher = NULL, *student = NULL;
    gkd_task_record *trec = NULL, *srec = NULL;
    int status = 1;
    if (cli_load_any("distill", teacher_path, &teacher, &tok, &trec)) goto done;
    if (gkd_task_new(&task, &tc)) {
        cli_fail("distill");
        goto done;
    }
    /* A model another tool wrote may bring no tokenizer: it runs with the
     * task's when the vocabularies agree. */
    if (tok && gkd_task_check_model_tokenizer(task, tok, "--teacher", teacher_path)) {
        cli_fail("distill");
        goto done;
    }
    if (!tok && (gkd_task_tokenizer(task, &tok) ||
                 gkd_model_source_check_vocab(teacher->config.vocab_size, tok, "--teacher", teacher_path))) {
        cli_fail("distill");
        goto done;
    }
    if (student_path) {
        if (cli_load_any("distill", student_path, &student, &stok, &srec)) goto done;
        if (stok ? !gkd_tokenizer_equal(tok, stok) : student->config.vocab_size != teacher->config.vocab_size) {
            fprintf(stderr, "gkd distill: %s and %s have different vocabularies\n", teacher_path, student_path);
            goto done;
        }
    } else {
        mc.vocab_size = teacher->config.vocab_size;
        if (mc.max_seq_len == 0) mc.max_seq_len = teacher->config.max_seq_len;
        gkd_model_config_fill_defaults(&mc);
        if (gkd_model_new(&student, &mc)) { cli_fail("distill"); goto done; }
        gkd_model_init_weights(student, o.seed);
    }
    if (o.schedule.total_steps < o.steps) o.schedule.total_steps = o.steps > 0 ? o.steps : 1;
    /* The run evaluates the student at every evaluation: one from
     * --student must not have trained on the eval split (refused before
     * anything is written). The teacher's own metrics are not measured
     * here, only its distribution as val_loss's reference: a warning. */
    {
        char what[4200];
        snprintf(what, sizeof what, "student checkpoint %s", student_path ? student_path : "");
        if (student_path && cli_check_eval_overlap("distill", what, srec, task, (size_t)o.eval_n, allow_overlap))
            goto done;
        snprintf(what, sizeof what, "teacher checkpoint %s", teacher_path);
        if (!allow_overlap && cli_warn_eval_overlap("distill", what, trec, task, (size_t)o.eval_n, "eval examples",
                                                    "val_loss compares the student with a teacher that saw them"))
            goto done;
    }
    if ((force && gkd_remove_tree(out)) || gkd_mkdir_p(out)) {
        cli_fail("distill");
        goto done;
    }
    if (sft_steps > 0) {
        if (student_path) { fprintf(stderr, "gkd distill: --sft-steps initializes a new student; drop --student\n"); goto done; }
        /* SFT: the same loop with cross-entropy on ground truth, in OUT/sft
         * (resumable like any run), before distillation starts. */
        gkd_distill_options sft = GKD_DISTILL_OPTIONS_INIT;
        sft.divergence.kind = GKD_DIV_CE;
        sft.steps = sft_steps;
        sft.batch = o.batch;
        sft.lr = sft_lr > 0 ? sft_lr : o.lr;
        sft.clip = o.clip;
        sft.seed = o.seed;
        sft.eval_n = o.eval_n;
        sft.eval_samples = 0;
        sft.sample.max_new_tokens = o.sample.max_new_tokens;
        char dir[4096];
        if (snprintf(dir, sizeof dir, "%s/sft", out) >= (int)sizeof dir || gkd_mkdir_p(dir) ||
            gkd_distill_run(student, NULL, tok, task, &sft, dir, cli_progress, NULL)) {
            cli_fail("distill");
            goto done;
        }
    }
    if (gkd_distill_run(student, teacher, tok, task, &o, out, cli_progress, NULL)) { cli_fail("distill"); goto done; }
    printf("%s/final.ckpt\n", out);
    status = 0;
done:
    gkd_model_free(student);
    gkd_model_free(teacher);
    gkd_tokenizer_free(tok);
    gkd_tokenizer_free(stok);
    gkd_task_record_free(trec);
    gkd_task_record_free(srec);
    gkd_task_free(task);
    return status;
}
