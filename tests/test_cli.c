/* The gkd program end to end: train, eval, sample on small tasks. Runs the
 * binary named by GKD_BIN in a temporary directory. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gkd/checkpoint.h"
#include "gkd/gkd.h" /* the umbrella header must compile on its own */
#include "helpers.h"

static char tmp[64];

static void setup(void) {
    snprintf(tmp, sizeof tmp, "/tmp/gkd-cli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* Run `gkd ARGS` in tmp; stdout to out.txt, stderr to err.txt; exit status. */
static int gkd(const char *args) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set (run through make test)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 '%s' %s > out.txt 2> err.txt", tmp, bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *name) {
    static char buf[1 << 16];
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "missing %s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Column `col` of the last row of a CSV file in tmp. */
static double last_value(const char *name, const char *col) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    gkd_csv *c = NULL;
    ck_assert_int_eq(gkd_csv_read(&c, path), 0);
    int j = gkd_csv_col(c, col);
    ck_assert_int_ge(j, 0);
    ck_assert_uint_gt(c->nrows, 0);
    double v = strtod(gkd_csv_get(c, c->nrows - 1, j), NULL);
    gkd_csv_free(c);
    return v;
}

static double first_value(const char *name, const char *col) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    gkd_csv *c = NULL;
    ck_assert_int_eq(gkd_csv_read(&c, path), 0);
    int j = gkd_csv_col(c, col);
    ck_assert_int_ge(j, 0);
    double v = strtod(gkd_csv_get(c, 0, j), NULL);
    gkd_csv_free(c);
    return v;
}

#define ARITH "--task arith --digits 2 --rationale --train 4000 --eval 100"

/* A teacher trained briefly on 2-digit addition (with the carry rationale)
 * reaches a clearly non-trivial exact match; eval and sample read its
 * checkpoint. */
START_TEST(test_train_arith_eval_sample) {
    ck_assert_int_eq(gkd("train " ARITH " --layers 2 --d-model 64 --heads 4 --context 48 --steps 500 --batch 32"
                         " --lr 1e-2 --warmup 50 --max-new-tokens 36 --eval-n 100 --out teacher"),
                     0);
    double em = last_value("teacher/eval.csv", "exact_match");
    ck_assert_msg(em >= 0.5, "exact match after 500 steps: %g", em);
    ck_assert_double_eq(first_value("teacher/eval.csv", "exact_match"), 0.0);
    ck_assert(last_value("teacher/metrics.csv", "loss") < 0.5 * first_value("teacher/metrics.csv", "loss"));

    ck_assert_int_eq(gkd("eval --model teacher/final.ckpt " ARITH " --n 100 --max-new-tokens 36 --out m.csv"), 0);
    const char *out = slurp("out.txt");
    ck_assert_ptr_nonnull(strstr(out, "exact_match"));
    ck_assert_ptr_nonnull(strstr(out, "higher"));
    /* The CSV holds one row per metric; the eval split is the same as during
     * training, so exact match equals the last training evaluation. */
    gkd_csv *c = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/m.csv", tmp);
    ck_assert_int_eq(gkd_csv_read(&c, path), 0);
    ck_assert_str_eq(c->header[0], "metric");
    int found = 0;
    for (size_t r = 0; r < c->nrows; r++)
        if (!strcmp(gkd_csv_get(c, r, 0), "exact_match")) {
            found = 1;
            ck_assert_double_eq_tol(strtod(gkd_csv_get(c, r, 1), NULL), em, 1e-12);
        }
    gkd_csv_free(c);
    ck_assert(found);

    ck_assert_int_eq(gkd("sample --model teacher/final.ckpt " ARITH " -n 3 --max-new-tokens 36"), 0);
    out = slurp("out.txt");
    ck_assert_ptr_nonnull(strstr(out, "prompt     "));
    ck_assert_ptr_nonnull(strstr(out, "reference  "));
    ck_assert_ptr_nonnull(strstr(out, "generated  "));
    ck_assert_ptr_nonnull(strstr(out, "->"));
}
END_TEST

/* gkd train on the user's own text file: the loss falls on a learnable pattern. */
START_TEST(test_train_text_file_loss_falls) {
    char text[8192] = "";
    for (int i = 0; i < 200; i++) strcat(text, "abcabd ");
    write_file("pattern.txt", text);
    ck_assert_int_eq(gkd("train --task text --path pattern.txt --chunk 24 --prompt-chars 8 --layers 1 --d-model 32"
                         " --heads 2 --context 32 --steps 150 --batch 16 --lr 1e-2 --eval-samples 0 --out lm"),
                     0);
    double first = first_value("lm/metrics.csv", "loss"), last = last_value("lm/metrics.csv", "loss");
    ck_assert_msg(last < 0.3 * first, "loss %g -> %g", first, last);
    char path[256];
    snprintf(path, sizeof path, "%s/lm/final.ckpt", tmp);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

/* A character outside the checkpoint's vocabulary is an error naming the
 * file, the line and the character; never a silent id. */
START_TEST(test_eval_out_of_vocabulary) {
    write_file("train.tsv", "abc\tcba\nbca\tacb\ncab\tbac\nabb\tbba\n");
    write_file("valid.tsv", "bac\tcab\n");
    write_file("eval.tsv", "bac\tcab\nabz\tzba\n");
    ck_assert_int_eq(gkd("train --task pairs --path train.tsv --eval-path valid.tsv --layers 1 --d-model 16 --heads 2"
                         " --context 16 --steps 5 --batch 4 --eval-samples 0 --out m"),
                     0);
    ck_assert_int_eq(gkd("eval --model m/final.ckpt --task pairs --path train.tsv --eval-path eval.tsv --samples 0"), 1);
    const char *err = slurp("err.txt");
    ck_assert_msg(strstr(err, "eval.tsv:2") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "'z'") != NULL, "%s", err);
    ck_assert_msg(strchr(err, '\n') == strrchr(err, '\n'), "more than one line: %s", err);
}
END_TEST

/* gkd distill --sft-steps: the new student is first fine-tuned on ground
 * truth, and distillation starts from exactly that model. */
START_TEST(test_distill_with_sft_init) {
    ck_assert_int_eq(gkd("train " ARITH " --layers 1 --d-model 32 --heads 2 --context 48 --steps 20 --batch 8"
                         " --max-new-tokens 36 --eval-n 10 --eval-samples 0 --out t"),
                     0);
    ck_assert_int_eq(gkd("distill --teacher t/final.ckpt --student-config layers=1,d_model=16,heads=2 " ARITH
                         " --sft-steps 30 --sft-lr 1e-2 --steps 4 --batch 8 --eval-n 10 --max-new-tokens 36 --out d"),
                     0);
    ck_assert_int_eq(last_value("d/sft/metrics.csv", "step"), 30);
    /* The distillation's step-0 evaluation sees the SFT's final model. */
    ck_assert_double_eq(first_value("d/eval.csv", "nll_ref"), last_value("d/sft/eval.csv", "nll_ref"));
    ck_assert_int_eq(last_value("d/metrics.csv", "step"), 4);
}
END_TEST

/* A Llama teacher trained by gkd train and a Llama student with one
 * key/value head distilled from it on its own rollouts; gpt2 refuses the
 * Llama flags, and an unknown architecture is one line. */
START_TEST(test_llama_train_and_distill) {
    ck_assert_int_eq(gkd("train " ARITH " --arch llama --kv-heads 2 --layers 1 --d-model 32 --heads 4 --context 48"
                         " --steps 10 --batch 8 --max-new-tokens 36 --eval-n 10 --eval-samples 0 --out t"),
                     0);
    ck_assert_int_eq(gkd("distill --teacher t/final.ckpt --arch llama --kv-heads 1 --untied-head --layers 1"
                         " --d-model 16 --heads 2 " ARITH " --lambda 1 --steps 3 --batch 4 --eval-n 10"
                         " --max-new-tokens 36 --out d"),
                     0);
    ck_assert_int_eq(last_value("d/metrics.csv", "step"), 3);
    gkd_model_config cfg;
    char path[256];
    snprintf(path, sizeof path, "%s/d/final.ckpt", tmp);
    ck_assert_int_eq(gkd_checkpoint_read_config(&cfg, path), 0);
    ck_assert_int_eq(cfg.arch, GKD_ARCH_LLAMA);
    ck_assert_int_eq(cfg.n_kv_head, 1);
    ck_assert_int_eq(cfg.untied_head, 1);
    ck_assert_int_eq(gkd("train " ARITH " --kv-heads 2 --steps 2 --out g"), 1);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "a gpt2 config sets no n_kv_head"));
    ck_assert_int_eq(gkd("train " ARITH " --arch mamba --steps 2 --out g"), 2);
    ck_assert_str_eq(slurp("err.txt"), "gkd train: --arch: expected gpt2 or llama, got 'mamba'\n");
}
END_TEST

/* The nll column of data row `row` (1 = first after the header) of
 * `gkd score --csv` output. */
static double score_nll(const char *csv, int row) {
    const char *line = csv;
    for (int k = 0; k < row; k++) {
        line = strchr(line, '\n');
        ck_assert_ptr_nonnull(line);
        line++;
    }
    const char *end = strchr(line, '\n'), *comma = NULL;
    for (const char *c = line; c < end; c++)
        if (*c == ',') comma = c;
    ck_assert_ptr_nonnull(comma);
    return strtod(comma + 1, NULL);
}

/* Models another tool reads and writes, through the whole path: a Llama
 * and a GPT-2 teacher trained by gkd, exported as a llama2.c file and as
 * Hugging Face directories, score exactly as the checkpoints they came
 * from, teach a Llama student through gkd run (teacher.checkpoint an axis
 * over the three files), and the student exports and scores back. */
START_TEST(test_imported_teachers_through_gkd_run) {
    ck_assert_int_eq(gkd("train " ARITH " --arch llama --kv-heads 2 --layers 1 --d-model 32 --heads 4 --context 48"
                         " --steps 10 --batch 8 --max-new-tokens 36 --eval-n 10 --eval-samples 0 --out t"),
                     0);
    ck_assert_int_eq(gkd("train " ARITH " --layers 1 --d-model 32 --heads 4 --context 48 --steps 10 --batch 8"
                         " --max-new-tokens 36 --eval-n 10 --eval-samples 0 --out g"),
                     0);
    ck_assert_int_eq(gkd("export --model t/final.ckpt --out t.bin --format llama2c"), 0);
    ck_assert_int_eq(gkd("export --model t/final.ckpt --out t_hf --format safetensors"), 0);
    ck_assert_int_eq(gkd("export --model g/final.ckpt --out g_hf --format safetensors"), 0);
    write_file("ids.txt", "1 5 7 9 11 3\n1 4 4 4\n");
    const char *models[] = {"t/final.ckpt", "t.bin", "t_hf", "g/final.ckpt", "g_hf"};
    char scores[5][256], cmd[256];
    for (int k = 0; k < 5; k++) {
        snprintf(cmd, sizeof cmd, "score --model %s --ids ids.txt --csv", models[k]);
        ck_assert_msg(gkd(cmd) == 0, "%s: %s", models[k], slurp("err.txt"));
        snprintf(scores[k], sizeof scores[k], "%s", slurp("out.txt"));
    }
    /* float32 out and in: the same weights, the same bits. The Hugging
     * Face Llama holds q and k rows permuted for rotate-half RoPE: equal in
     * exact arithmetic, its products sum in another order (measured 2e-8). */
    ck_assert_str_eq(scores[1], scores[0]);
    ck_assert_str_eq(scores[4], scores[3]);
    for (int row = 1; row <= 3; row++) {
        double x = score_nll(scores[2], row), y = score_nll(scores[0], row);
        ck_assert_msg(fabs(x - y) <= 1e-6 * fabs(y), "row %d: %.9g vs %.9g", row, x, y);
    }
    write_file("imported.yaml",
               "name: imported\n"
               "task: {name: arith, digits: 2, rationale: true, train: 4000, eval: 100}\n"
               "teacher: {checkpoint: [t.bin, t_hf, g_hf]}\n"
               "student:\n"
               "  model: {arch: llama, layers: 1, d_model: 16, heads: 2, kv_heads: 1}\n"
               "  init: random\n"
               "distill: {steps: 3, batch: 4, lr: 1e-3, divergence: fkl, lambda: 1, max_new_tokens: 36}\n"
               "eval: {every: 3, n: 10}\n"
               "seeds: [1]\n");
    ck_assert_msg(gkd("run imported.yaml --results res --no-table") == 0, "%s", slurp("err.txt"));
    const char *cells[] = {"checkpoint=t.bin,seed=1", "checkpoint=t_hf,seed=1", "checkpoint=g_hf,seed=1"};
    for (int k = 0; k < 3; k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/res/imported/%s/done", tmp, cells[k]);
        ck_assert_msg(access(p, F_OK) == 0, "%s missing (%s)", p, slurp("err.txt"));
    }
    ck_assert_int_eq(gkd("export --model res/imported/checkpoint=t_hf,seed=1/final.ckpt --out s_hf"
                         " --format safetensors"),
                     0);
    ck_assert_int_eq(gkd("score --model res/imported/checkpoint=t_hf,seed=1/final.ckpt --ids ids.txt --csv"), 0);
    snprintf(scores[0], sizeof scores[0], "%s", slurp("out.txt"));
    ck_assert_int_eq(gkd("score --model s_hf --ids ids.txt --csv"), 0);
    ck_assert_str_eq(slurp("out.txt"), scores[0]);
}
END_TEST

/* The teacher as its top-k rows per position (distill.teacher_topk): with
 * k = V both tail modes give the dense divergence (to the float rounding
 * of the stored log-probabilities), a smaller k trains too, and k beyond
 * the vocabulary or with pg_rkl is one line. */
START_TEST(test_teacher_topk) {
    ck_assert_int_eq(gkd("train --task arith --digits 1 --train 400 --eval 20 --layers 1 --d-model 32 --heads 2"
                         " --steps 30 --batch 8 --eval-n 10 --eval-samples 0 --out t"),
                     0);
    const char *common = "distill --teacher t/final.ckpt --task arith --digits 1 --train 400 --eval 20 --layers 1"
                         " --d-model 16 --heads 2 --steps 2 --batch 8 --lambda 0.5 --divergence rkl --eval-n 10";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --out dense", common);
    ck_assert_int_eq(gkd(cmd), 0);
    const double dense = first_value("dense/metrics.csv", "divergence");
    const char *modes[] = {"renorm", "tail"};
    for (int m = 0; m < 2; m++) {
        char out[32];
        snprintf(out, sizeof out, "k16%s", modes[m]);
        snprintf(cmd, sizeof cmd, "%s --teacher-topk 16 --topk-tail %s --out %s", common, modes[m], out);
        ck_assert_msg(gkd(cmd) == 0, "%s", slurp("err.txt"));
        char file[64];
        snprintf(file, sizeof file, "%s/metrics.csv", out);
        const double sparse = first_value(file, "divergence");
        ck_assert_msg(fabs(sparse - dense) <= 1e-5 * fabs(dense), "%s: %.9g vs dense %.9g", modes[m], sparse, dense);
    }
    snprintf(cmd, sizeof cmd, "%s --teacher-topk 3 --out k3", common);
    ck_assert_int_eq(gkd(cmd), 0);
    ck_assert_int_eq(last_value("k3/metrics.csv", "step"), 2);
    ck_assert_ptr_nonnull(strstr(slurp("k3/options.txt"), "teacher_topk=3 renorm"));
    ck_assert_ptr_null(strstr(slurp("dense/options.txt"), "teacher_topk"));
    snprintf(cmd, sizeof cmd, "%s --teacher-topk 17 --out k17", common);
    ck_assert_int_eq(gkd(cmd), 1);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "teacher_topk 17 outside 0..16"));
}
END_TEST

/* gkd teacher-cache writes a file gkd distill --teacher-cache reads: the
 * run ends with the same student (final.ckpt byte for byte) as the run
 * that scores live, for the data and the SeqKD source; the summary line
 * gives the file's size, and a cache of another k is one line. */
START_TEST(test_teacher_cache_command) {
    ck_assert_int_eq(gkd("train --task arith --digits 1 --train 60 --eval 20 --layers 1 --d-model 32 --heads 2"
                         " --steps 20 --batch 8 --eval-n 10 --eval-samples 0 --out t"),
                     0);
    const char *task = "--task arith --digits 1 --train 60 --eval 20";
    const char *run = "--layers 1 --d-model 16 --heads 2 --steps 3 --batch 8 --lambda 0.5 --per-example"
                      " --divergence fkl --eval-n 10 --eval-samples 0 --teacher-topk 4 --loss-temperature 2";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "teacher-cache --teacher t/final.ckpt %s --teacher-topk 4 --loss-temperature 2"
             " --batch 5 --out data.bin", task);
    ck_assert_msg(gkd(cmd) == 0, "%s", slurp("err.txt"));
    ck_assert_ptr_nonnull(strstr(slurp("out.txt"), "data.bin: 60 sequences, "));
    ck_assert_ptr_nonnull(strstr(slurp("out.txt"), " rows of k=4, "));
    snprintf(cmd, sizeof cmd, "teacher-cache --teacher t/final.ckpt %s --teacher-topk 4 --loss-temperature 2"
             " --source seqkd --seqkd-cache --out s.bin", task);
    ck_assert_int_eq(gkd(cmd), 2); /* --seqkd-cache is gkd distill's: not a flag here */
    snprintf(cmd, sizeof cmd, "teacher-cache --teacher t/final.ckpt %s --teacher-topk 4 --loss-temperature 2"
             " --source seqkd --temperature 0.7 --seed 3 --out seqkd.bin", task);
    ck_assert_msg(gkd(cmd) == 0, "%s", slurp("err.txt"));
    const char *variants[][2] = {{"", "data.bin"}, {"--seqkd 1 --seqkd-cache --temperature 0.7 --seed 3", "seqkd.bin"}};
    for (int v = 0; v < 2; v++) {
        snprintf(cmd, sizeof cmd, "distill --teacher t/final.ckpt %s %s %s --out live%d", task, run, variants[v][0], v);
        ck_assert_msg(gkd(cmd) == 0, "%s", slurp("err.txt"));
        snprintf(cmd, sizeof cmd, "distill --teacher t/final.ckpt %s %s %s --teacher-cache %s --out cached%d", task,
                 run, variants[v][0], variants[v][1], v);
        ck_assert_msg(gkd(cmd) == 0, "%s", slurp("err.txt"));
        char a[128], b[128];
        snprintf(a, sizeof a, "%s/live%d/final.ckpt", tmp, v);
        snprintf(b, sizeof b, "%s/cached%d/final.ckpt", tmp, v);
        size_t na, nb;
        unsigned char *x = th_read_bytes(a, &na), *y = th_read_bytes(b, &nb);
        ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
        free(x);
        free(y);
    }
    snprintf(cmd, sizeof cmd, "distill --teacher t/final.ckpt %s %s --teacher-topk 3 --teacher-cache data.bin --out k3",
             task, run);
    ck_assert_int_eq(gkd(cmd), 1);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "data.bin: teacher cache: k 4, this run has teacher_topk 3"));
}
END_TEST

/* A FIFO where a file is read (experiment, checkpoint, data file) is
 * refused at once with one line, instead of waiting forever for a writer. */
START_TEST(test_fifo_refused) {
    char path[128];
    snprintf(path, sizeof path, "%s/pipe", tmp);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    const char *cmds[] = {"check pipe", "sample --model pipe --task arith",
                          "train --task pairs --path pipe --steps 1 --out run"};
    const char *bin = getenv("GKD_BIN");
    for (int i = 0; i < 3; i++) {
        /* As gkd() does, but under timeout: a hang fails the test instead
         * of stalling the suite. */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cd '%s' && timeout 20 '%s' %s > out.txt 2> err.txt", tmp, bin, cmds[i]);
        int st = system(cmd);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 124, "%s: status %d", cmds[i], st);
        const char *err = slurp("err.txt");
        ck_assert_msg(strstr(err, "pipe: is a FIFO, not a regular file") != NULL, "%s: %s", cmds[i], err);
        int lines = 0;
        for (const char *c = err; *c; c++) lines += *c == '\n';
        ck_assert_msg(lines == 1, "%s: %s", cmds[i], err);
    }
}
END_TEST

/* gkd train resumes only a run made with the same options: another lr or
 * data seed is refused before any log changes, naming the option; --force
 * starts over. */
START_TEST(test_resume_with_other_options_refused) {
#define TRAIN "train --task arith --digits 2 --layers 1 --d-model 16 --heads 2 --context 16 " \
              "--steps 20 --checkpoint-every 10 --eval-every 10 --out run"
    ck_assert_int_eq(gkd(TRAIN), 0);
    /* As if killed after step 10: no final checkpoint, logs past it. */
    char path[160];
    snprintf(path, sizeof path, "%s/run/final.ckpt", tmp);
    ck_assert_int_eq(unlink(path), 0);
    char *before = strdup(slurp("run/metrics.csv"));
    const char *other[] = {" --lr 2e-3", " --data-seed 5", " --batch 16", " --weight-decay 0.1"};
    const char *names[] = {"lr=", "task=", "batch=", "weight_decay="};
    for (int i = 0; i < 4; i++) {
        char args[512];
        snprintf(args, sizeof args, TRAIN "%s", other[i]);
        ck_assert_int_eq(gkd(args), 1);
        const char *err = slurp("err.txt");
        ck_assert_msg(strstr(err, "resume: ") && strstr(err, names[i]) && strstr(err, "--force"), "%s", err);
        ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
        ck_assert_str_eq(slurp("run/metrics.csv"), before);
    }
    /* A log that is a symbolic link is not appended through. */
    char link[160], target[160];
    snprintf(link, sizeof link, "%s/run/metrics.csv", tmp);
    snprintf(target, sizeof target, "%s/outside.csv", tmp);
    write_file("outside.csv", before);
    ck_assert_int_eq(unlink(link), 0);
    ck_assert_int_eq(symlink(target, link), 0);
    ck_assert_int_eq(gkd(TRAIN), 1);
    ck_assert_msg(strstr(slurp("err.txt"), "is a symbolic link"), "%s", slurp("err.txt"));
    ck_assert_str_eq(slurp("outside.csv"), before);
    ck_assert_int_eq(unlink(link), 0);
    write_file("run/metrics.csv", before);
    /* The same options resume; --force with others starts over. */
    ck_assert_int_eq(gkd(TRAIN), 0);
    ck_assert_int_eq(gkd(TRAIN " --lr 2e-3 --force"), 0);
    ck_assert_ptr_nonnull(strstr(slurp("run/options.txt"), "lr=0.002\n"));
    free(before);
#undef TRAIN
}
END_TEST

/* The task line of options.txt (name and a hash of every example). */
static void task_line(char *out, size_t cap, const char *dir) {
    char name[128];
    snprintf(name, sizeof name, "%s/options.txt", dir);
    const char *text = slurp(name);
    const char *p = strstr(text, "task=");
    ck_assert_ptr_nonnull(p);
    snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

/* gkd train draws the data of an experiment file's cells (task.seed 1234)
 * unless --data-seed says otherwise. */
START_TEST(test_default_data_seed_is_the_experiments) {
    const char *model = "--task modes --layers 1 --d-model 8 --heads 1 --context 16 --steps 1 --eval-n 5 "
                        "--max-new-tokens 5";
    char cmd[512], plain[128], same[128], other[128];
    snprintf(cmd, sizeof cmd, "train %s --out a", model);
    ck_assert_int_eq(gkd(cmd), 0);
    snprintf(cmd, sizeof cmd, "train %s --data-seed 1234 --out b", model);
    ck_assert_int_eq(gkd(cmd), 0);
    snprintf(cmd, sizeof cmd, "train %s --data-seed 1 --out c", model);
    ck_assert_int_eq(gkd(cmd), 0);
    task_line(plain, sizeof plain, "a");
    task_line(same, sizeof same, "b");
    task_line(other, sizeof other, "c");
    ck_assert_str_eq(plain, same);
    ck_assert_str_ne(plain, other);
}
END_TEST

/* Temporary files that a kill inside an atomic write leaves are removed
 * when the run starts again; other files are not touched. */
START_TEST(test_stale_temporaries_removed) {
    ck_assert_int_eq(gkd("train --task arith --digits 1 --layers 1 --d-model 8 --heads 1 --context 16 --steps 2 "
                         "--eval-n 5 --max-new-tokens 4 --out run"),
                     0);
    write_file("run/checkpoint.ckpt.tmp.Ab12Cd", "half a checkpoint");
    write_file("run/options.txt.tmpXy34Zw", "half");
    write_file("run/notes.tmp.Ab12Cd", "mine");
    write_file("run/checkpoint.ckpt.tmp.toolong1", "not mkstemp's");
    ck_assert_int_eq(gkd("train --task arith --digits 1 --layers 1 --d-model 8 --heads 1 --context 16 --steps 2 "
                         "--eval-n 5 --max-new-tokens 4 --out run"),
                     0);
    char path[256];
    snprintf(path, sizeof path, "%s/run/checkpoint.ckpt.tmp.Ab12Cd", tmp);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/run/options.txt.tmpXy34Zw", tmp);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/run/notes.tmp.Ab12Cd", tmp);
    ck_assert_int_eq(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/run/checkpoint.ckpt.tmp.toolong1", tmp);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

/* A checkpoint at step 0 (gkd never writes one) is refused before any
 * log is touched. */
START_TEST(test_step_zero_checkpoint_refused) {
    const char *train = "train --task arith --digits 1 --layers 1 --d-model 8 --heads 1 --context 16 --steps 2 "
                        "--checkpoint-every 1 --eval-n 5 --max-new-tokens 4 --out run";
    ck_assert_int_eq(gkd(train), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/run/checkpoint.ckpt", tmp);
    gkd_checkpoint_data d;
    ck_assert_int_eq(gkd_checkpoint_load(&d, path, NULL), 0);
    gkd_checkpoint c = {.model = d.model, .tokenizer = d.tokenizer, .opt_m = d.opt_m, .opt_v = d.opt_v,
                        .opt_t = d.opt_t, .step = 0, .rngs = d.rngs, .n_rngs = d.n_rngs, .extra = d.extra,
                        .extra_len = d.extra_len};
    ck_assert_int_eq(gkd_checkpoint_save(path, &c), 0);
    gkd_checkpoint_data_free(&d);
    char before[1 << 14];
    snprintf(before, sizeof before, "%s", slurp("run/metrics.csv"));
    ck_assert_int_eq(gkd(train), 1);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "is at step 0; a run's checkpoints come after step 1"));
    ck_assert_str_eq(slurp("run/metrics.csv"), before);
}
END_TEST

/* gkd eval on new pairs needs only them (--eval-path), not the training
 * file; training without one is refused. */
START_TEST(test_eval_pairs_without_training_file) {
    write_file("train.tsv", "ab\tba\nabc\tcba\nba\tab\ncab\tbac\nbb\tbb\naa\taa\n");
    write_file("new.tsv", "ca\tac\nbc\tcb\n");
    ck_assert_int_eq(gkd("train --task pairs --path train.tsv --eval-fraction 0.3 --layers 1 --d-model 8 "
                         "--heads 1 --context 16 --steps 2 --eval-n 1 --max-new-tokens 4 --out m"),
                     0);
    ck_assert_int_eq(gkd("eval --model m/final.ckpt --task pairs --eval-path new.tsv --n 2 --max-new-tokens 4"), 0);
    ck_assert_ptr_nonnull(strstr(slurp("out.txt"), "exact_match"));
    ck_assert_int_eq(gkd("train --task pairs --eval-path new.tsv --layers 1 --d-model 8 --heads 1 --context 16 "
                         "--steps 2 --out m2"),
                     1);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "the task has no training examples (pairs: --path"));
}
END_TEST

/* Flags that set an experiment-file setting accept exactly its values:
 * the range comes from the experiment schema, and the error says which. */
START_TEST(test_flag_ranges_are_the_experiment_files) {
    const char *base = "train --task arith --digits 1 --layers 1 --d-model 8 --heads 1 --steps 1 --out r";
    struct {
        const char *flag, *want;
    } cases[] = {
        {"--context 8193", "--context: 8193 is out of range [2, 8192] (as student.model.context in experiment files)"},
        {"--heads 257", "--heads: 257 is out of range [1, 256] (as student.model.heads in experiment files)"},
        {"--lr 0", "--lr: 0 is out of range (0, 10] (as distill.lr in experiment files)"},
        {"--max-new-tokens 8193",
         "--max-new-tokens: 8193 is out of range [1, 8192] (as distill.max_new_tokens in experiment files)"},
        {"--eval-fraction 1", "--eval-fraction: 1 is out of range (0, 1) (as task.eval_fraction in experiment files)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s %s", base, cases[k].flag);
        ck_assert_int_eq(gkd(cmd), 2);
        ck_assert_msg(strstr(slurp("err.txt"), cases[k].want) != NULL, "%s: %s", cases[k].flag, slurp("err.txt"));
    }
    /* The same range, read from the schema by the library. */
    gkd_setting_range r;
    ck_assert_int_eq(gkd_experiment_setting_range("student.model.context", &r), 0);
    ck_assert(r.min == 2 && r.max == 8192 && !r.open_min && !r.open_max);
    ck_assert_int_eq(gkd_experiment_setting_range("distill.divergence", &r), GKD_EINVAL);
}
END_TEST

START_TEST(test_bad_arguments) {
    ck_assert_int_eq(gkd("train --task arith --steps abc --out x"), 2);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "--steps: 'abc' is not an integer"));
    ck_assert_int_eq(gkd("distill --teacher missing.ckpt --task arith --out x"), 1);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "missing.ckpt"));
    ck_assert_int_eq(gkd("distill --divergence 'jsd(0)' --teacher t --out x"), 2);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "use fkl or rkl"));
    ck_assert_int_eq(gkd("distill --replay-loss-eps -1 --teacher t --out x"), 2);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "--replay-loss-eps"));
    ck_assert_int_eq(gkd("train --task arith --bleu-smoothing method7 --out x"), 2);
    const char *err = slurp("err.txt");
    ck_assert_msg(!strncmp(err, "gkd train: --bleu-smoothing: BLEU smoothing 'method7' is not defined for corpus BLEU",
                           84) &&
                      strstr(err, "method4") && strchr(err, '\n') == err + strlen(err) - 1,
                  "%s", err);
    ck_assert_int_eq(gkd("frobnicate"), 2);
}
END_TEST

/* A model trained with data seed 1 and evaluated with the default 1234 has
 * seen some eval examples: gkd eval and gkd distill refuse in one line
 * naming the counts, --allow-eval-overlap runs with a warning, the same
 * seed runs silently, gkd sample warns; a changed data file is a warning
 * that the overlap cannot be checked. */
START_TEST(test_eval_overlap_refused) {
#define OV_TASK "--task arith --digits 2 --train 3000 --eval 200"
    ck_assert_int_eq(gkd("train " OV_TASK " --data-seed 1 --layers 1 --d-model 8 --heads 1 --context 16 --steps 2 "
                         "--eval-n 5 --max-new-tokens 4 --out t"),
                     0);
    ck_assert_int_eq(gkd("eval --model t/final.ckpt " OV_TASK " --n 200 --samples 0 --max-new-tokens 4"), 1);
    const char *err = slurp("err.txt");
    ck_assert_msg(strstr(err, "gkd eval: checkpoint t/final.ckpt was trained on ") &&
                      strstr(err, " of the 200 eval examples (data seed 1 vs 1234); use the same --data-seed, or "
                                  "--allow-eval-overlap\n"),
                  "%s", err);
    ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
    ck_assert_str_eq(slurp("out.txt"), "");
    ck_assert_int_eq(gkd("eval --model t/final.ckpt " OV_TASK " --n 200 --samples 0 --max-new-tokens 4 "
                         "--allow-eval-overlap"),
                     0);
    ck_assert_msg(strstr(slurp("err.txt"), "gkd eval: warning: checkpoint t/final.ckpt was trained on ") != NULL, "%s",
                  slurp("err.txt"));
    ck_assert_ptr_nonnull(strstr(slurp("out.txt"), "exact_match"));
    ck_assert_int_eq(gkd("eval --model t/final.ckpt " OV_TASK " --data-seed 1 --n 200 --samples 0 --max-new-tokens 4"),
                     0);
    ck_assert_str_eq(slurp("err.txt"), "");
    /* distill: a teacher that saw eval examples is a warning (its own
     * metrics are not measured there); a --student that did is refused
     * before the output directory exists. */
    ck_assert_int_eq(gkd("distill --teacher t/final.ckpt " OV_TASK " --layers 1 --d-model 8 --heads 1 --steps 1 "
                         "--eval-n 20 --eval-samples 0 --max-new-tokens 4 --out d"),
                     0);
    ck_assert_msg(strstr(slurp("err.txt"), "gkd distill: warning: teacher checkpoint t/final.ckpt was trained on ") !=
                      NULL,
                  "%s", slurp("err.txt"));
    ck_assert_int_eq(gkd("distill --teacher t/final.ckpt --student d/final.ckpt " OV_TASK " --data-seed 1 --steps 1 "
                         "--eval-n 200 --max-new-tokens 4 --out d2"),
                     1);
    const char *e2 = slurp("err.txt");
    ck_assert_msg(strstr(e2, "gkd distill: student checkpoint d/final.ckpt was trained on ") &&
                      strstr(e2, "(data seed 1234 vs 1); use the same --data-seed, or --allow-eval-overlap\n"),
                  "%s", e2);
    char path[128];
    snprintf(path, sizeof path, "%s/d2", tmp);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(gkd("distill --teacher t/final.ckpt --student d/final.ckpt " OV_TASK " --data-seed 1 --steps 1 "
                         "--eval-n 20 --eval-samples 0 --max-new-tokens 4 --allow-eval-overlap --out d2"),
                     0);
    /* sample: a warning, not a refusal. */
    ck_assert_int_eq(gkd("sample --model t/final.ckpt " OV_TASK " -n 200 --max-new-tokens 4"), 0);
    ck_assert_msg(strstr(slurp("err.txt"), "gkd sample: warning: checkpoint t/final.ckpt was trained on ") != NULL,
                  "%s", slurp("err.txt"));

    /* pairs: the data file changed after training. */
    write_file("p.tsv", "ab\tba\nabc\tcba\nba\tab\ncab\tbac\nbb\tbb\naa\taa\n");
    ck_assert_int_eq(gkd("train --task pairs --path p.tsv --eval-fraction 0.3 --layers 1 --d-model 8 --heads 1 "
                         "--context 16 --steps 1 --eval-n 2 --max-new-tokens 4 --out m"),
                     0);
    write_file("p.tsv", "ab\tba\nabc\tcba\nba\tab\ncab\tbac\nbb\tbb\naa\tab\n");
    ck_assert_int_eq(gkd("eval --model m/final.ckpt --task pairs --path p.tsv --eval-fraction 0.3 --samples 0 "
                         "--max-new-tokens 4"),
                     0);
    err = slurp("err.txt");
    ck_assert_msg(strstr(err, "gkd eval: warning: checkpoint m/final.ckpt: eval overlap not checked: its training "
                              "data ") &&
                      strstr(err, "p.tsv changed since"),
                  "%s", err);
    ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
#undef OV_TASK
}
END_TEST

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("commands");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_train_arith_eval_sample);
    tcase_add_test(tc, test_default_data_seed_is_the_experiments);
    tcase_add_test(tc, test_stale_temporaries_removed);
    tcase_add_test(tc, test_step_zero_checkpoint_refused);
    tcase_add_test(tc, test_eval_pairs_without_training_file);
    tcase_add_test(tc, test_flag_ranges_are_the_experiment_files);
    tcase_add_test(tc, test_train_text_file_loss_falls);
    tcase_add_test(tc, test_eval_out_of_vocabulary);
    tcase_add_test(tc, test_distill_with_sft_init);
    tcase_add_test(tc, test_llama_train_and_distill);
    tcase_add_test(tc, test_teacher_topk);
    tcase_add_test(tc, test_teacher_cache_command);
    tcase_add_test(tc, test_imported_teachers_through_gkd_run);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_fifo_refused);
    tcase_add_test(tc, test_resume_with_other_options_refused);
    tcase_add_test(tc, test_eval_overlap_refused);
    suite_add_tcase(s, tc);
    return s;
}
