/* gkd_experiment_check_inputs: what a grid's cells will read is checked
 * before anything trains — data files, checkpoints, example lengths in
 * tokens — with one error naming the cell and the example's file:line. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/experiment.h"
#include "gkd/experiment_inputs.h"
#include "gkd/model.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#include "helpers.h"

static char dir[64];

static void setup(void) { th_make_tmpdir(dir, sizeof dir, "gkd-inputs"); }

static void teardown(void) { th_remove_tmpdir(dir); }

/* name, relative to the test's directory. */
static void write_file(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    th_write_file(path, text);
}

/* Load exp.yaml (written from `yaml`, "%s" replaced by dir) and check it. */
static int check(const char *yaml) {
    char text[2048], path[256];
    snprintf(text, sizeof text, yaml, dir, dir);
    write_file("exp.yaml", text);
    snprintf(path, sizeof path, "%s/exp.yaml", dir);
    gkd_experiment *e = NULL;
    ck_assert_msg(gkd_experiment_load(&e, path) == 0, "%s", gkd_last_error());
    int rc = gkd_experiment_check_inputs(e);
    gkd_experiment_free(e);
    return rc;
}

/* Ten short pairs and, on line `long_line` (1-based; 0 = none), one whose
 * prompt has `prompt_len` characters and reference `ref_len`. */
static void write_pairs(int long_line, int prompt_len, int ref_len) {
    char text[4096] = "";
    for (int i = 1; i <= 10; i++) {
        char line[600];
        if (i == long_line) {
            char p[256], r[256];
            memset(p, 'a', (size_t)prompt_len);
            p[prompt_len] = '\0';
            memset(r, 'b', (size_t)ref_len);
            r[ref_len] = '\0';
            snprintf(line, sizeof line, "%s\t%s\n", p, r);
        } else {
            snprintf(line, sizeof line, "a%d\tb%d\n", i, i);
        }
        strcat(text, line);
    }
    write_file("data.tsv", text);
}

static const char *pairs_yaml = "name: x\n"
                                "task: {name: pairs, path: %s/data.tsv, eval_fraction: 0.2}\n"
                                "teacher: {model: {layers: 1, d_model: 8, heads: 1, context: 32}}\n"
                                "student: {model: {layers: 1, d_model: 8, heads: 1}}\n"
                                "distill: {max_new_tokens: 8}\n"
                                "eval: {n: 2}\n";

START_TEST(test_valid_inputs_pass) {
    write_pairs(0, 0, 0);
    ck_assert_msg(check(pairs_yaml) == 0, "%s", gkd_last_error());
}
END_TEST

START_TEST(test_missing_data_file) {
    ck_assert_int_eq(check(pairs_yaml), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "cell 0 (seed=1): "));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "data.tsv"));
}
END_TEST

/* 10 + 30 characters with BOS, SEP and EOS: 43 tokens in a context of 32. */
START_TEST(test_example_longer_than_context) {
    write_pairs(4, 10, 30);
    ck_assert_int_eq(check(pairs_yaml), GKD_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s/data.tsv:4: 43 tokens with its reference, more than the teacher's context of 32",
             dir);
    ck_assert_msg(strstr(gkd_last_error(), want) != NULL, "%s", gkd_last_error());
}
END_TEST

/* A prompt of 24 characters is 26 tokens (BOS, SEP): 26 + 8 new > 32. */
START_TEST(test_prompt_leaves_no_room) {
    write_pairs(7, 24, 2);
    ck_assert_int_eq(check(pairs_yaml), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "data.tsv:7: a prompt of 26 tokens leaves no room for "
                                           "distill.max_new_tokens 8 in the student's context of 32") != NULL,
                  "%s", gkd_last_error());
}
END_TEST

START_TEST(test_missing_teacher_checkpoint) {
    const char *yaml = "name: x\ntask: {name: arith, digits: 1}\nteacher: {checkpoint: %s/none.ckpt}\n";
    ck_assert_int_eq(check(yaml), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "teacher.checkpoint: "));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "none.ckpt"));
}
END_TEST

/* A student.init checkpoint whose vocabulary is not the teacher's. */
START_TEST(test_student_vocabulary_mismatch) {
    gkd_model_config cfg = {.vocab_size = 7, .max_seq_len = 16, .n_layer = 1, .n_embd = 8, .n_head = 1};
    gkd_model *m = NULL;
    ck_assert_int_eq(gkd_model_new(&m, &cfg), 0);
    gkd_model_init_weights(m, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/student.ckpt", dir);
    gkd_checkpoint c = {0};
    c.model = m;
    ck_assert_int_eq(gkd_checkpoint_save(path, &c), 0);
    gkd_model_free(m);
    const char *yaml = "name: x\ntask: {name: arith, digits: 1}\n"
                       "teacher: {model: {layers: 1, d_model: 8, heads: 1, context: 16}}\n"
                       "student: {init: %s/student.ckpt}\ndistill: {max_new_tokens: 4}\n";
    ck_assert_int_eq(check(yaml), GKD_EMISMATCH);
    ck_assert_msg(strstr(gkd_last_error(), "student.init: ") && strstr(gkd_last_error(), "a vocabulary of 7 tokens"),
                  "%s", gkd_last_error());
}
END_TEST

/* A checkpoint recording training on arith with data seed `seed` (the
 * task's own vocabulary and tokenizer), at dir/name. */
static void save_trained_on(const char *name, uint64_t seed) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.digits = 2;
    tc.train = 3000;
    tc.eval = 200;
    tc.seed = seed;
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_task_record *rec = NULL;
    ck_assert_int_eq(gkd_task_new(&task, &tc), 0);
    ck_assert_int_eq(gkd_task_tokenizer(task, &tok), 0);
    ck_assert_int_eq(gkd_task_record_new(&rec, task), 0);
    gkd_model_config cfg = {.vocab_size = gkd_tokenizer_vocab_size(tok), .max_seq_len = 16, .n_layer = 1,
                            .n_embd = 8, .n_head = 1};
    gkd_model *m = NULL;
    ck_assert_int_eq(gkd_model_new(&m, &cfg), 0);
    gkd_model_init_weights(m, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gkd_checkpoint c = {0};
    c.model = m;
    c.tokenizer = tok;
    c.task_record = rec;
    ck_assert_int_eq(gkd_checkpoint_save(path, &c), 0);
    gkd_model_free(m);
    gkd_task_record_free(rec);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
}

static char warned[2048];
static void collect(void *ctx, const char *line) {
    (void)ctx;
    snprintf(warned, sizeof warned, "%s", line);
}

static int check_opt(const char *yaml, int allow) {
    char text[2048], path[256];
    snprintf(text, sizeof text, yaml, dir, dir);
    write_file("exp.yaml", text);
    snprintf(path, sizeof path, "%s/exp.yaml", dir);
    gkd_experiment *e = NULL;
    ck_assert_msg(gkd_experiment_load(&e, path) == 0, "%s", gkd_last_error());
    gkd_inputs_options o = GKD_INPUTS_OPTIONS_INIT;
    o.allow_eval_overlap = allow;
    o.warn = collect;
    warned[0] = '\0';
    int rc = gkd_experiment_check_inputs_opt(e, &o);
    gkd_experiment_free(e);
    return rc;
}

/* teacher.checkpoint trained with data seed 1 in an experiment on the
 * default task.seed 1234: refused naming the counts, allowed with the
 * option (as a warning); with task.seed 1 it passes silently. */
START_TEST(test_teacher_trained_on_eval_examples) {
    save_trained_on("t.ckpt", 1);
    const char *yaml = "name: x\ntask: {name: arith, digits: 2, train: 3000, eval: 200}\n"
                       "teacher: {checkpoint: %s/t.ckpt}\nstudent: {model: {layers: 1, d_model: 8, heads: 1}}\n"
                       "distill: {max_new_tokens: 4}\neval: {n: 200}\n";
    ck_assert_int_eq(check(yaml), GKD_EMISMATCH);
    const char *err = gkd_last_error();
    ck_assert_msg(strstr(err, "cell 0 (seed=1): teacher.checkpoint ") && strstr(err, "/t.ckpt was trained on ") &&
                      strstr(err, " of the 200 eval examples (data seed 1 vs 1234); use the same task.seed, or "
                                  "eval.allow_overlap: true"),
                  "%s", err);
    ck_assert_int_eq(check_opt(yaml, 1), 0);
    ck_assert_msg(strstr(warned, "cell 0 (seed=1): teacher.checkpoint ") && strstr(warned, "allowed by"), "%s", warned);
    /* The experiment file's opt-out does the same as gkd check's flag. */
    const char *allowed = "name: x\ntask: {name: arith, digits: 2, train: 3000, eval: 200}\n"
                          "teacher: {checkpoint: %s/t.ckpt}\nstudent: {model: {layers: 1, d_model: 8, heads: 1}}\n"
                          "distill: {max_new_tokens: 4}\neval: {n: 200, allow_overlap: true}\n";
    ck_assert_msg(check_opt(allowed, 0) == 0, "%s", gkd_last_error());
    ck_assert_msg(strstr(warned, "cell 0 (seed=1): teacher.checkpoint ") && strstr(warned, "allowed by"), "%s", warned);
    const char *same = "name: x\ntask: {name: arith, digits: 2, train: 3000, eval: 200, seed: 1}\n"
                       "teacher: {checkpoint: %s/t.ckpt}\nstudent: {model: {layers: 1, d_model: 8, heads: 1}}\n"
                       "distill: {max_new_tokens: 4}\neval: {n: 200}\n";
    ck_assert_msg(check_opt(same, 0) == 0, "%s", gkd_last_error());
    ck_assert_str_eq(warned, "");
}
END_TEST

/* student.init from a checkpoint trained on the other split: refused too. */
START_TEST(test_student_init_trained_on_eval_examples) {
    save_trained_on("t.ckpt", 1234);
    save_trained_on("s.ckpt", 1);
    const char *yaml = "name: x\ntask: {name: arith, digits: 2, train: 3000, eval: 200}\n"
                       "teacher: {checkpoint: %s/t.ckpt}\nstudent: {init: %s/s.ckpt}\n"
                       "distill: {max_new_tokens: 4}\neval: {n: 200}\n";
    ck_assert_int_eq(check(yaml), GKD_EMISMATCH);
    ck_assert_msg(strstr(gkd_last_error(), "student.init ") && strstr(gkd_last_error(), "/s.ckpt was trained on "),
                  "%s", gkd_last_error());
    ck_assert_int_eq(check_opt(yaml, 1), 0);
    ck_assert_msg(strstr(warned, "student.init "), "%s", warned);
}
END_TEST

Suite *experiment_inputs_suite(void) {
    Suite *s = suite_create("experiment_inputs");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_valid_inputs_pass);
    tcase_add_test(tc, test_missing_data_file);
    tcase_add_test(tc, test_example_longer_than_context);
    tcase_add_test(tc, test_prompt_leaves_no_room);
    tcase_add_test(tc, test_missing_teacher_checkpoint);
    tcase_add_test(tc, test_student_vocabulary_mismatch);
    tcase_add_test(tc, test_teacher_trained_on_eval_examples);
    tcase_add_test(tc, test_student_init_trained_on_eval_examples);
    suite_add_tcase(s, tc);
    return s;
}
