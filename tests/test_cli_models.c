/* gkd score and gkd export end to end on the fixture models of
 * tools/make_model_fixtures.py. Runs the binary named by GKD_BIN in a
 * temporary directory. Tcase "llama" needs the Llama layers. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gkd/checkpoint.h"
#include "gkd/tokenizer.h"
#include "helpers.h"

static char tmp[64];

static void setup(void) { th_make_tmpdir(tmp, sizeof tmp, "gkd-cli-models"); }
static void teardown(void) { th_remove_tmpdir(tmp); }

/* Run `gkd ARGS` in tmp; stdout to out.txt, stderr to err.txt; exit status. */
static int gkd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int gkd(const char *fmt, ...) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set (run through make test)");
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 '%s' %s > out.txt 2> err.txt", tmp, bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    size_t n;
    return (char *)th_read_bytes(path, &n);
}

static const char *in_tmp(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmp, name);
    return buf;
}

/* The nll values of a reference.tsv. */
static int reference_nll(double *nll, int cap, const char *tsv) {
    size_t n;
    char *text = (char *)th_read_bytes(tsv, &n);
    int k = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "nll\t", 4) && k < cap) nll[k++] = strtod(strchr(line + 4, '\t') + 1, NULL);
    free(text);
    return k;
}

/* `gkd score --csv` of MODEL on IDS against TSV: each sequence within
 * 1e-4, and the last row the mean over all scored positions. */
static void check_score_csv(const char *model, const char *ids, const char *tsv) {
    ck_assert_msg(gkd("score --model '%s' --ids '%s' --csv", model, ids) == 0, "%s", slurp("err.txt"));
    double ref[8];
    int n = reference_nll(ref, 8, tsv);
    ck_assert_int_eq(n, 3);
    char *out = slurp("out.txt");
    char *line = strtok(out, "\n");
    ck_assert_str_eq(line, "line,tokens,scored,nll");
    double sum = 0.0;
    long scored_total = 0;
    for (int k = 0; k < n; k++) {
        line = strtok(NULL, "\n");
        ck_assert_ptr_nonnull(line);
        int ln, tokens, scored;
        double nll;
        ck_assert_int_eq(sscanf(line, "%d,%d,%d,%lf", &ln, &tokens, &scored, &nll), 4);
        ck_assert_int_eq(ln, k + 1);
        ck_assert_int_eq(scored, tokens - 1);
        ck_assert_msg(fabs(nll - ref[k]) <= 1e-4, "%s line %d: %.9g, reference %.9g", model, k + 1, nll, ref[k]);
        sum += nll * scored;
        scored_total += scored;
    }
    line = strtok(NULL, "\n");
    ck_assert_ptr_nonnull(line);
    long tokens, scored;
    double mean;
    ck_assert_int_eq(sscanf(line, "all,%ld,%ld,%lf", &tokens, &scored, &mean), 3);
    ck_assert_int_eq(scored, scored_total);
    ck_assert_double_eq_tol(mean, sum / scored_total, 1e-7);
    ck_assert_ptr_null(strtok(NULL, "\n"));
    free(out);
}

START_TEST(test_score_gpt2_fixtures) {
    const char *dirs[2] = {"gpt2_hf", "gpt2_hf_prefixed"};
    for (int d = 0; d < 2; d++) {
        char model[4300], ids[4400], tsv[4400];
        snprintf(model, sizeof model, "%s", th_fixture_path("models", dirs[d]));
        snprintf(ids, sizeof ids, "%s/ids.txt", model);
        snprintf(tsv, sizeof tsv, "%s/reference.tsv", model);
        check_score_csv(model, ids, tsv);
        ck_assert_int_eq(gkd("score --model '%s' --ids '%s'", model, ids), 0);
        char *out = slurp("out.txt");
        ck_assert_ptr_nonnull(strstr(out, "GPT2LMHeadModel"));
        ck_assert_ptr_nonnull(strstr(out, "mean nll 7.347"));
        ck_assert_ptr_nonnull(strstr(out, "over 36 scored positions of 3 sequences"));
        free(out);
    }
}
END_TEST

/* Bad id files: one line naming file:line, exit status 1. */
START_TEST(test_score_bad_ids) {
    const char *model = th_fixture_path("models", "gpt2_hf");
    char m[4300];
    snprintf(m, sizeof m, "%s", model);
    struct {
        const char *text, *want;
    } cases[] = {
        {"1 2 3\n4 50 6\n", "ids.txt:2: id 50 is outside the model's vocabulary [0, 50)"},
        {"1 2 x3\n", "ids.txt:1: 'x3' is not a token id"},
        {"1 -2\n", "ids.txt:1: '-2' is not a token id"},
        {"1 2\n\n7\n", "ids.txt:3: 1 token; a sequence needs 2 (the first only conditions)"},
        {"\n \n", "ids.txt: no sequences"},
        {"0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n",
         "ids.txt:1: more than 24 ids, longer than the model's context"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        th_write_file(in_tmp("ids.txt"), cases[i].text);
        ck_assert_int_eq(gkd("score --model '%s' --ids ids.txt", m), 1);
        char *err = slurp("err.txt");
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "[%s] lacks [%s]", err, cases[i].want);
        ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);
        free(err);
    }
    /* CRLF line ends and blank lines are fine; a line of 24 ids fills the context */
    th_write_file(in_tmp("ids.txt"), "\r\n0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23\r\n\r\n3 4\r\n");
    ck_assert_int_eq(gkd("score --model '%s' --ids ids.txt --csv", m), 0);
    char *out = slurp("out.txt");
    ck_assert_ptr_nonnull(strstr(out, "\n2,24,23,"));
    ck_assert_ptr_nonnull(strstr(out, "\n4,2,1,"));
    free(out);
    /* usage errors */
    ck_assert_int_eq(gkd("score --model '%s'", m), 2);
    ck_assert_int_eq(gkd("score --model '%s' --ids a --text b", m), 2);
    /* text needs a tokenizer gkd reads */
    th_write_file(in_tmp("t.txt"), "hello\n");
    ck_assert_int_eq(gkd("score --model '%s' --text t.txt", m), 2);
    char *err = slurp("err.txt");
    ck_assert_ptr_nonnull(strstr(err, "--text needs a tokenizer"));
    ck_assert_ptr_nonnull(strstr(err, "beside the safetensors model"));
    free(err);
    /* not a model */
    ck_assert_int_eq(gkd("score --model t.txt --ids ids.txt"), 1);
    err = slurp("err.txt");
    ck_assert_ptr_nonnull(strstr(err, "gkd score: t.txt: not a model format gkd reads"));
    free(err);
}
END_TEST

/* --text with a gkd checkpoint: BOS + the line's characters, as --ids. */
START_TEST(test_score_text_with_checkpoint) {
    const char *texts[1] = {"abc cab"};
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_tokenizer_new_char(&tok, texts, 1), 0);
    const int V = gkd_tokenizer_vocab_size(tok);
    gkd_model *m = th_make_model(V, 16, 2, 16, 2, 11, 0.2f, 3);
    gkd_checkpoint c = {.model = m, .tokenizer = tok};
    ck_assert_int_eq(gkd_checkpoint_save(in_tmp("m.ckpt"), &c), 0);
    th_write_file(in_tmp("t.txt"), "abc\n\nc ab ba\n");
    int ids[16], n;
    char line[256];
    FILE *f = fopen(in_tmp("ids.txt"), "w");
    ck_assert_ptr_nonnull(f);
    const char *lines[3] = {"abc", "", "c ab ba"};
    for (int i = 0; i < 3; i++) {
        if (!*lines[i]) {
            fputs("\n", f);
            continue;
        }
        ck_assert_int_eq(gkd_tokenizer_encode(tok, lines[i], ids, 16, &n), 0);
        int k = snprintf(line, sizeof line, "%d", GKD_TOK_BOS);
        for (int j = 0; j < n; j++) k += snprintf(line + k, sizeof line - (size_t)k, " %d", ids[j]);
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    ck_assert_int_eq(gkd("score --model m.ckpt --text t.txt --csv"), 0);
    char *a = slurp("out.txt");
    ck_assert_int_eq(gkd("score --model m.ckpt --ids ids.txt --csv"), 0);
    char *b = slurp("out.txt");
    ck_assert_str_eq(a, b);
    ck_assert_ptr_nonnull(strstr(a, "\n1,4,3,"));
    ck_assert_ptr_nonnull(strstr(a, "\n3,8,7,"));
    free(a);
    free(b);
    /* a character outside the vocabulary: file:line */
    th_write_file(in_tmp("t.txt"), "abc\nabz\n");
    ck_assert_int_eq(gkd("score --model m.ckpt --text t.txt"), 1);
    char *err = slurp("err.txt");
    ck_assert_ptr_nonnull(strstr(err, "t.txt:2: "));
    free(err);
    gkd_model_free(m);
    gkd_tokenizer_free(tok);
}
END_TEST

/* An exported model scores as the original, to the last digit. */
START_TEST(test_export_then_score) {
    char model[4300], ids[4400];
    snprintf(model, sizeof model, "%s", th_fixture_path("models", "gpt2_hf_prefixed"));
    snprintf(ids, sizeof ids, "%s/ids.txt", model);
    ck_assert_int_eq(gkd("export --model '%s' --out out --format safetensors", model), 0);
    char *said = slurp("out.txt");
    ck_assert_ptr_nonnull(strstr(said, "wrote out (safetensors)"));
    free(said);
    ck_assert_int_eq(gkd("score --model '%s' --ids '%s' --csv", model, ids), 0);
    char *a = slurp("out.txt");
    ck_assert_int_eq(gkd("score --model out --ids '%s' --csv", ids), 0);
    char *b = slurp("out.txt");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    /* GPT-2 has no llama2.c form; nothing is written */
    ck_assert_int_eq(gkd("export --model out --out m.bin --format llama2c"), 1);
    char *err = slurp("err.txt");
    ck_assert_ptr_nonnull(strstr(err, "gkd export: m.bin: llama2.c files hold Llama models, this one is gpt2"));
    free(err);
    ck_assert_int_eq(gkd("export --model out --out m.bin --format onnx"), 2);
    err = slurp("err.txt");
    ck_assert_ptr_nonnull(strstr(err, "export format 'onnx' is not safetensors, llama2c or llama2c-legacy"));
    free(err);
    ck_assert_int_eq(gkd("export --model out --out m.bin"), 2);
}
END_TEST

/* Llama models score as their references, and through export too. */
START_TEST(test_score_llama_fixtures) {
    const char *names[5][3] = {
        {"stories_v0.bin", "stories_v0.ids.txt", "stories_v0.tsv"},
        {"stories_v1.bin", "stories_v1.ids.txt", "stories_v1.tsv"},
        {"llama_hf", "llama_hf/ids.txt", "llama_hf/reference.tsv"},
        {"llama_hf_bf16", "llama_hf_bf16/ids.txt", "llama_hf_bf16/reference.tsv"},
        {"llama_hf_f16", "llama_hf_f16/ids.txt", "llama_hf_f16/reference.tsv"},
    };
    char model[4300], ids[4300], tsv[4300];
    snprintf(model, sizeof model, "%s", th_fixture_path("models", names[_i][0]));
    snprintf(ids, sizeof ids, "%s", th_fixture_path("models", names[_i][1]));
    snprintf(tsv, sizeof tsv, "%s", th_fixture_path("models", names[_i][2]));
    check_score_csv(model, ids, tsv);
    ck_assert_int_eq(gkd("export --model '%s' --out hf --format safetensors", model), 0);
    check_score_csv(in_tmp("hf"), ids, tsv);
}
END_TEST

Suite *cli_models_suite(void) {
    Suite *s = suite_create("cli_models");
    TCase *tc = tcase_create("cli_models");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_score_gpt2_fixtures);
    tcase_add_test(tc, test_score_bad_ids);
    tcase_add_test(tc, test_score_text_with_checkpoint);
    tcase_add_test(tc, test_export_then_score);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("llama");
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_set_timeout(tl, 60);
    tcase_add_loop_test(tl, test_score_llama_fixtures, 0, 5);
    suite_add_tcase(s, tl);
    return s;
}
