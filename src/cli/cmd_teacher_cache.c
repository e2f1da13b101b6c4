/* gkd teacher-cache: score a task's training split once with a teacher and
 * write its top-k rows per position (include/gkd/teacher_cache.h), for
 * gkd distill --teacher-cache and the cells of a grid. The flags that say
 * what the rows are (--teacher-topk, --loss-temperature, the task, the
 * SeqKD sampling) are gkd distill's, with the same meaning. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/model_source.h"
#include "gkd/parse.h"
#include "gkd/teacher_cache.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd teacher-cache --teacher T.ckpt --task NAME [task flags] --teacher-topk K\n"
            "                         [--loss-temperature X] [--source data|seqkd] [--context N]\n"
            "                         [--batch N] --out FILE\n"
            "       seqkd: [--temperature X --top-k N --top-p X --max-new-tokens N --seed N]\n"
            "Scores every training example once with the teacher and writes FILE: for each\n"
            "sequence, the teacher's top-K rows at the loss temperature on the positions the\n"
            "loss covers (docs/teacher-cache-format.md). --source data caches the reference\n"
            "outputs, --source seqkd the teacher's generations, drawn as gkd distill --seqkd-cache\n"
            "draws them (so --seed and the sampling flags are the distillation run's). --context\n"
            "is the student's context (default: the teacher's). gkd distill --teacher-cache FILE\n"
            "reads it.\n%s",
            cli_task_flags_help);
}

static void progress(void *ctx, size_t done, size_t total) {
    const int tty = *(const int *)ctx;
    if (tty) fprintf(stderr, "\r\033[Kteacher-cache: %zu/%zu sequences", done, total);
    if (tty && done == total) fputc('\n', stderr);
}

int cmd_teacher_cache(int argc, char **argv) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.seed = GKD_TASK_DEFAULT_SEED;
    gkd_teacher_cache_options co = GKD_TEACHER_CACHE_OPTIONS_INIT;
    const char *out = NULL, *teacher_path = NULL, *v;
    long n;
    for (int i = 1; i < argc; i++) {
        int err = 0, r;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if ((r = cli_task_flag(&tc, argc, argv, &i, "teacher-cache"))) {
            if (r < 0) return 2;
            continue;
        }
        if ((v = cli_flag(argc, argv, &i, "--out", &err))) { out = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--teacher", &err))) { teacher_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--source", &err))) {
            if (!strcmp(v, "data")) co.source = GKD_TEACHER_CACHE_DATA;
            else if (!strcmp(v, "seqkd")) co.source = GKD_TEACHER_CACHE_SEQKD;
            else { fprintf(stderr, "gkd teacher-cache: --source: '%s' is not data or seqkd\n", v); return 2; }
            continue;
        }
#define SETTING(kind, flag, key, lvalue)                                                         \
    if ((v = cli_flag(argc, argv, &i, flag, &err))) {                                            \
        if (cli_parse_setting_##kind(&kind##_value, v, key, flag)) { cli_fail("teacher-cache"); return 2; } \
        lvalue = kind##_value;                                                                   \
        continue;                                                                                \
    }
        double double_value;
        long long_value;
        SETTING(double, "--loss-temperature", "distill.loss_temperature", co.tau)
        SETTING(double, "--temperature", "distill.temperature", co.sample.temperature)
        SETTING(double, "--top-p", "distill.top_p", co.sample.top_p)
        SETTING(long, "--teacher-topk", "distill.teacher_topk", co.k)
        SETTING(long, "--top-k", "distill.top_k", co.sample.top_k)
        SETTING(long, "--max-new-tokens", "distill.max_new_tokens", co.sample.max_new_tokens)
        SETTING(long, "--batch", "distill.batch", co.batch)
        SETTING(long, "--context", "student.model.context", co.cap)
#undef SETTING
        if ((v = cli_flag(argc, argv, &i, "--seed", &err))) {
            if (gkd_parse_long(&n, v, 0, 2147483647L, "--seed")) { cli_fail("teacher-cache"); return 2; }
            co.seed = (uint64_t)n;
            continue;
        }
        if (err) return 2;
        fprintf(stderr, "gkd teacher-cache: unknown option '%s'\n", a);
        usage(stderr);
        return 2;
    }
    if (!out || !teacher_path || !co.k) {
        fprintf(stderr, "gkd teacher-cache: --teacher, --teacher-topk and --out are required\n");
        return 2;
    }
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_model *teacher = NULL;
    gkd_task_record *trec = NULL;
    gkd_teacher_cache *cache = NULL;
    int status = 1;
    if (cli_load_any("teacher-cache", teacher_path, &teacher, &tok, &trec)) goto done;
    if (gkd_task_new(&task, &tc)) { cli_fail("teacher-cache"); goto done; }
    /* A model another tool wrote brings no tokenizer (as in gkd distill). */
    if (!tok && (gkd_task_tokenizer(task, &tok) ||
                 gkd_model_source_check_vocab(teacher->config.vocab_size, tok, "--teacher", teacher_path))) {
        cli_fail("teacher-cache");
        goto done;
    }
    int tty = isatty(2);
    if (gkd_teacher_cache_build(out, teacher, tok, task, &co, progress, &tty) ||
        gkd_teacher_cache_open(&cache, out)) {
        cli_fail("teacher-cache");
        goto done;
    }
    /* What the file holds, against the (B, T, V) floats it stands for. */
    const gkd_teacher_cache_header *h = gkd_teacher_cache_header_of(cache);
    size_t bytes = 0, rows = 0;
    {
        FILE *f = fopen(out, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0) bytes = (size_t)ftell(f);
        if (f) fclose(f);
    }
    rows = gkd_teacher_cache_rows_total(cache);
    printf("%s: %zu sequences, %zu rows of k=%d, %zu bytes (dense rows: %zu bytes)\n", out,
           gkd_teacher_cache_size(cache), rows, h->k, bytes, rows * (size_t)h->V * sizeof(float));
    status = 0;
done:
    gkd_teacher_cache_free(cache);
    gkd_model_free(teacher);
    gkd_tokenizer_free(tok);
    gkd_task_record_free(trec);
    gkd_task_free(task);
    return status;
}
