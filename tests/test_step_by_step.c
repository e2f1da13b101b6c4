/* Distilling step-by-step and data fractions: the targets' examples built
 * from the task's own rationale=1 form, the training fraction's nested
 * prefixes, which tokens of a multitask batch carry label and rationale
 * loss (from the strings by hand), the loss as label + w * rationale
 * computed separately, w = 0 as answer-only training bit for bit, eval on
 * the label task, and a grid with targets and train_fraction axes. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/data/tasks/task_impl.h"
#include "../src/distill/distill_step.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "helpers.h"

static gkd_task *make(int targets, double fraction, int rationale, int train) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.digits = 1;
    tc.train = train;
    tc.eval = 20;
    tc.rationale = rationale;
    tc.targets = targets;
    tc.train_fraction = fraction;
    gkd_task *t = NULL;
    ck_assert_msg(gkd_task_new(&t, &tc) == 0, "%s", gkd_last_error());
    return t;
}

static char *cat(const char *a, const char *b) {
    char *s = malloc(strlen(a) + strlen(b) + 1);
    strcpy(s, a);
    strcat(s, b);
    return s;
}

START_TEST(test_targets_examples) {
    gkd_task *base = make(GKD_TARGETS_REFERENCE, 1, 1, 30); /* "steps ->answer" */
    gkd_task *ans = make(GKD_TARGETS_ANSWER, 1, 0, 30), *ra = make(GKD_TARGETS_RATIONALE_ANSWER, 1, 0, 30);
    gkd_task *mt = make(GKD_TARGETS_MULTITASK, 1, 0, 30);
    ck_assert_uint_eq(gkd_task_size(mt, GKD_SPLIT_RATIONALE), 30);
    ck_assert_uint_eq(gkd_task_size(ans, GKD_SPLIT_RATIONALE), 0);
    for (int sp = 0; sp < 2; sp++)
        for (size_t i = 0; i < gkd_task_size(base, (gkd_split)sp); i++) {
            const gkd_example *b = gkd_task_example(base, (gkd_split)sp, i);
            const char *arrow = strstr(b->reference, " ->");
            ck_assert_ptr_nonnull(arrow);
            const char *answer = arrow + 3;
            ck_assert_str_eq(gkd_task_example(ans, (gkd_split)sp, i)->reference, answer);
            ck_assert_str_eq(gkd_task_example(ans, (gkd_split)sp, i)->prompt, b->prompt);
            ck_assert_str_eq(gkd_task_example(ra, (gkd_split)sp, i)->reference, b->reference);
            const gkd_example *m = gkd_task_example(mt, (gkd_split)sp, i);
            char *lp = cat("[label] ", b->prompt);
            ck_assert_str_eq(m->prompt, lp);
            ck_assert_str_eq(m->reference, answer);
            free(lp);
            if (sp == GKD_SPLIT_TRAIN) {
                const gkd_example *r = gkd_task_example(mt, GKD_SPLIT_RATIONALE, i);
                char *rp = cat("[rationale] ", b->prompt);
                ck_assert_str_eq(r->prompt, rp);
                ck_assert_int_eq(strncmp(b->reference, r->reference, strlen(r->reference)), 0);
                ck_assert_uint_eq(strlen(r->reference), (size_t)(arrow - b->reference));
                free(rp);
            }
        }
    /* Eval scores the label task: the answer alone is right, "steps ->answer" is not. */
    const gkd_example *e = gkd_task_example(mt, GKD_SPLIT_EVAL, 0);
    const gkd_example *be = gkd_task_example(base, GKD_SPLIT_EVAL, 0);
    ck_assert(gkd_task_score(mt, e, e->reference) == 1.0);
    ck_assert(gkd_task_score(mt, e, be->reference) == 0.0);
    ck_assert(gkd_task_score(ra, gkd_task_example(ra, GKD_SPLIT_EVAL, 0), be->reference) == 1.0);
    /* The vocabulary holds the prefixes. */
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(mt, &tok), 0);
    int ids[64], pl, len;
    ck_assert_int_eq(gkd_task_encode_example(mt, tok, GKD_SPLIT_RATIONALE, 0, ids, 64, &pl, &len), 0);
    gkd_tokenizer_free(tok);
    /* Tasks without rationales: answer is the reference, the rest an error. */
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "reverse";
    tc.train = 10;
    tc.eval = 5;
    tc.targets = GKD_TARGETS_MULTITASK;
    gkd_task *bad = NULL;
    ck_assert_int_eq(gkd_task_new(&bad, &tc), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "targets multitask"));
    gkd_task_free(base);
    gkd_task_free(ans);
    gkd_task_free(ra);
    gkd_task_free(mt);
}
END_TEST

START_TEST(test_train_fraction_nested) {
    gkd_task *all = make(GKD_TARGETS_MULTITASK, 1, 0, 40);
    gkd_task *half = make(GKD_TARGETS_MULTITASK, 0.5, 0, 40), *tenth = make(GKD_TARGETS_MULTITASK, 0.1, 0, 40);
    ck_assert_uint_eq(gkd_task_size(half, GKD_SPLIT_TRAIN), 20);
    ck_assert_uint_eq(gkd_task_size(tenth, GKD_SPLIT_TRAIN), 4);
    ck_assert_uint_eq(gkd_task_size(tenth, GKD_SPLIT_RATIONALE), 4);
    for (size_t i = 0; i < 20; i++) {
        ck_assert_str_eq(gkd_task_example(half, GKD_SPLIT_TRAIN, i)->prompt, gkd_task_example(all, GKD_SPLIT_TRAIN, i)->prompt);
        if (i < 4)
            ck_assert_str_eq(gkd_task_example(tenth, GKD_SPLIT_TRAIN, i)->prompt,
                             gkd_task_example(half, GKD_SPLIT_TRAIN, i)->prompt);
    }
    ck_assert_uint_eq(gkd_task_size(half, GKD_SPLIT_EVAL), gkd_task_size(all, GKD_SPLIT_EVAL));
    for (size_t j = 0; j < gkd_task_size(all, GKD_SPLIT_EVAL); j++) {
        const char *ep = gkd_task_example(half, GKD_SPLIT_EVAL, j)->prompt;
        ck_assert_str_eq(ep, gkd_task_example(all, GKD_SPLIT_EVAL, j)->prompt);
        for (size_t i = 0; i < 20; i++) ck_assert_str_ne(ep, gkd_task_example(half, GKD_SPLIT_TRAIN, i)->prompt);
    }
    /* One vocabulary for every fraction. */
    gkd_tokenizer *ta = NULL, *tt = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(all, &ta), 0);
    ck_assert_int_eq(gkd_task_tokenizer(tenth, &tt), 0);
    ck_assert(gkd_tokenizer_equal(ta, tt));
    gkd_tokenizer_free(ta);
    gkd_tokenizer_free(tt);
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.train_fraction = 1.5;
    gkd_task *bad = NULL;
    ck_assert_int_eq(gkd_task_new(&bad, &tc), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "train_fraction"));
    gkd_task_free(all);
    gkd_task_free(half);
    gkd_task_free(tenth);
}
END_TEST

/* ---- the step ---- */

static gkd_distill_options sft_options(float w) {
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    o.divergence.kind = GKD_DIV_CE;
    o.schedule.lambda = 0;
    o.batch = 4;
    o.steps = 6;
    o.lr = 3e-3;
    o.rationale_weight = w;
    return o;
}

static gkd_model *model(int V, uint64_t seed) { return th_make_model(V, 32, 1, 16, 2, seed, 0.3f, 991); }

/* Expected mask of a row encoded BOS prompt SEP target EOS: ones at
 * positions prompt_len - 1 .. prompt_len + strlen(target) - 1 (next
 * tokens: the target's characters and EOS). */
static void check_row_mask(const gkd_batch_layout *l, int b, const char *prompt, const char *target) {
    const int pl = 1 + (int)strlen(prompt) + 1, n = (int)strlen(target) + 1;
    for (int t = 0; t < l->T; t++) {
        const int want = t >= pl - 1 && t < pl - 1 + n;
        ck_assert_msg(l->mask[b * l->T + t] == (float)want, "row %d position %d: mask %g, want %d ('%s' -> '%s')", b,
                      t, (double)l->mask[b * l->T + t], want, prompt, target);
    }
}

START_TEST(test_multitask_mask) {
    omp_set_num_threads(1);
    gkd_task *mt = make(GKD_TARGETS_MULTITASK, 1, 0, 16);
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(mt, &tok), 0);
    gkd_model *st = model(gkd_tokenizer_vocab_size(tok), 5);
    gkd_distill_options o = sft_options(1);
    gkd_distill_state s;
    ck_assert_msg(gkd_distill_state_init(&s, st, NULL, tok, mt, &o) == 0, "%s", gkd_last_error());
    gkd_step_stats ss;
    ck_assert_int_eq(gkd_distill_prepare(&s, 1, &ss), 0);
    ck_assert_msg(gkd_distill_loss_grad(&s, 1, &ss) == 0, "%s", gkd_last_error());
    for (int b = 0; b < o.batch; b++) {
        const gkd_example *l = gkd_task_example(mt, GKD_SPLIT_TRAIN, s.examples[b]);
        const gkd_example *r = gkd_task_example(mt, GKD_SPLIT_RATIONALE, s.examples[b]);
        check_row_mask(&s.layout, b, l->prompt, l->reference);
        check_row_mask(&s.rationale_layout, b, r->prompt, r->reference);
    }
    ck_assert(isfinite(ss.rationale) && ss.rationale > 0);
    gkd_distill_state_free(&s);
    gkd_model_free(st);
    gkd_tokenizer_free(tok);
    gkd_task_free(mt);
}
END_TEST

/* The train (and eval) split of t replaced by copies of `from`'s split `sp`. */
static void replace_train(gkd_task *t, const gkd_task *from, gkd_split sp) {
    task_split *d = &t->split[GKD_SPLIT_TRAIN];
    ck_assert_uint_eq(d->n, gkd_task_size(from, sp));
    for (size_t i = 0; i < d->n; i++) {
        free(d->ex[i].prompt);
        free(d->ex[i].reference);
        d->ex[i].prompt = strdup(gkd_task_example(from, sp, i)->prompt);
        d->ex[i].reference = strdup(gkd_task_example(from, sp, i)->reference);
    }
}

/* Train `steps` steps of o on task t from model seed 5 (teacher: seed 9 when o needs one). */
static gkd_model *train(const gkd_task *t, const gkd_tokenizer *tok, const gkd_distill_options *o, double *loss1) {
    const int V = gkd_tokenizer_vocab_size(tok);
    gkd_model *st = model(V, 5), *te = o->divergence.kind == GKD_DIV_CE ? NULL : model(V, 9);
    gkd_distill_state s;
    ck_assert_msg(gkd_distill_state_init(&s, st, te, tok, t, o) == 0, "%s", gkd_last_error());
    for (long k = 1; k <= o->steps; k++) {
        gkd_step_stats ss;
        ck_assert_msg(gkd_distill_step(&s, k, &ss) == 0, "%s", gkd_last_error());
        if (k == 1 && loss1) *loss1 = ss.loss;
    }
    gkd_distill_state_free(&s);
    gkd_model_free(te);
    return st;
}

static void check_w0_equals_answer(gkd_distill_options o) {
    gkd_task *mt = make(GKD_TARGETS_MULTITASK, 1, 0, 24);
    /* targets answer with the same prompts: the label prefix put in by hand */
    gkd_task *ans = make(GKD_TARGETS_ANSWER, 1, 0, 24);
    replace_train(ans, mt, GKD_SPLIT_TRAIN);
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(mt, &tok), 0);
    o.rationale_weight = 0;
    gkd_model *a = train(mt, tok, &o, NULL), *b = train(ans, tok, &o, NULL);
    ck_assert_int_eq(memcmp(a->params_memory, b->params_memory, a->num_params * sizeof(float)), 0);
    o.rationale_weight = 1;
    gkd_model *c = train(mt, tok, &o, NULL);
    ck_assert_int_ne(memcmp(a->params_memory, c->params_memory, a->num_params * sizeof(float)), 0);
    gkd_model_free(a);
    gkd_model_free(b);
    gkd_model_free(c);
    gkd_tokenizer_free(tok);
    gkd_task_free(mt);
    gkd_task_free(ans);
}

START_TEST(test_w0_equals_answer_sft) {
    omp_set_num_threads(1);
    check_w0_equals_answer(sft_options(0));
}
END_TEST

START_TEST(test_w0_equals_answer_distill) {
    omp_set_num_threads(1);
    gkd_distill_options o = sft_options(0);
    o.divergence.kind = GKD_DIV_FKL;
    o.schedule.lambda = 0.5;
    o.sample.max_new_tokens = 4;
    check_w0_equals_answer(o);
}
END_TEST

START_TEST(test_loss_is_label_plus_w_rationale) {
    omp_set_num_threads(1);
    gkd_task *mt = make(GKD_TARGETS_MULTITASK, 1, 0, 24);
    gkd_task *rat = make(GKD_TARGETS_ANSWER, 1, 0, 24);
    replace_train(rat, mt, GKD_SPLIT_RATIONALE); /* the rationale task as a task of its own */
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(mt, &tok), 0);
    gkd_distill_options o = sft_options(2);
    o.steps = 1;
    double both, label, rationale;
    gkd_model *m = train(mt, tok, &o, &both);
    gkd_model_free(m);
    o.rationale_weight = 0;
    gkd_model_free(train(mt, tok, &o, &label));
    gkd_model_free(train(rat, tok, &o, &rationale));
    ck_assert(label > 0 && rationale > 0);
    ck_assert_msg(fabs(both - (label + 2 * rationale)) <= 1e-12 * both, "loss %.17g, label %.17g + 2 * %.17g", both,
                  label, rationale);
    gkd_tokenizer_free(tok);
    gkd_task_free(mt);
    gkd_task_free(rat);
}
END_TEST

/* rationale_source teacher: the rationale rows are the teacher's own
 * greedy completion of "[rationale] " prompt (decoded here one row at a
 * time by a sampler of its own), generated once per example and reused
 * when the example comes again; their loss differs from the task's
 * ground-truth rationales'. */
START_TEST(test_teacher_rationales) {
    omp_set_num_threads(1);
    gkd_task *mt = make(GKD_TARGETS_MULTITASK, 1, 0, 8);
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(mt, &tok), 0);
    const int V = gkd_tokenizer_vocab_size(tok);
    gkd_distill_options o = sft_options(1);
    o.divergence.kind = GKD_DIV_FKL;
    o.rationale_source = GKD_RATIONALE_TEACHER;
    gkd_model *st = model(V, 5), *te = model(V, 9);
    gkd_distill_state s;
    ck_assert_msg(gkd_distill_state_init(&s, st, te, tok, mt, &o) == 0, "%s", gkd_last_error());
    gkd_step_stats ss;
    ck_assert_msg(gkd_distill_step(&s, 1, &ss) == 0, "%s", gkd_last_error());
    const double teacher_loss = ss.loss;
    gkd_sampler *sampler = NULL;
    ck_assert_int_eq(gkd_sampler_new(&sampler, te, NULL, 1), 0);
    gkd_seqbatch one;
    const int cap = s.rationale.cap;
    ck_assert_int_eq(gkd_seqbatch_new(&one, 1, cap), 0);
    for (int b = 0; b < o.batch; b++) {
        const size_t ex = s.examples[b];
        ck_assert_ptr_nonnull(s.rationale_cache[ex]);
        ck_assert_int_eq(gkd_task_encode_prompt(mt, tok, GKD_SPLIT_RATIONALE, ex, one.tokens, cap, &one.prompt_len[0],
                                                &one.len[0]), 0);
        gkd_sample_options greedy = GKD_SAMPLE_OPTIONS_INIT;
        greedy.temperature = 0;
        greedy.max_new_tokens = cap;
        greedy.eos_token = gkd_tokenizer_eos(tok);
        uint64_t stream = 0;
        ck_assert_int_eq(gkd_sampler_generate(sampler, &one, &greedy, 0, 1, &stream, NULL), 0);
        ck_assert_int_eq(s.rationale.prompt_len[b], one.prompt_len[0]);
        ck_assert_int_eq(s.rationale.len[b], one.len[0]);
        ck_assert_int_eq(s.rationale.eos[b], one.eos[0]);
        ck_assert(!memcmp(s.rationale.tokens + (size_t)b * cap, one.tokens, sizeof(int) * (size_t)one.len[0]));
    }
    /* Cached: a later step drawing the same example gets the same row. */
    int *first = malloc(sizeof(int) * (size_t)(cap + 3));
    const size_t ex0 = s.examples[0];
    memcpy(first, s.rationale_cache[ex0], sizeof(int) * (size_t)(cap + 3));
    for (long k = 2; k <= 6; k++) ck_assert_msg(gkd_distill_step(&s, k, &ss) == 0, "%s", gkd_last_error());
    ck_assert(!memcmp(first, s.rationale_cache[ex0], sizeof(int) * (size_t)(cap + 3)));
    free(first);
    gkd_seqbatch_free(&one);
    gkd_sampler_free(sampler);
    gkd_distill_state_free(&s);
    /* The same first step on the task's own rationales: another loss. */
    gkd_model_free(st);
    st = model(V, 5);
    o.rationale_source = GKD_RATIONALE_DATA;
    ck_assert_int_eq(gkd_distill_state_init(&s, st, te, tok, mt, &o), 0);
    ck_assert_int_eq(gkd_distill_step(&s, 1, &ss), 0);
    ck_assert_msg(ss.loss != teacher_loss, "teacher and data rationales give the same loss %g", ss.loss);
    gkd_distill_state_free(&s);
    gkd_model_free(st);
    gkd_model_free(te);
    gkd_tokenizer_free(tok);
    gkd_task_free(mt);
}
END_TEST

START_TEST(test_grid_targets_fraction) {
    char dir[256], path[512];
    th_make_tmpdir(dir, sizeof dir, "gkd_test_sbs");
    snprintf(path, sizeof path, "%s/sbs.yaml", dir);
    th_write_file(path, "name: sbs\n"
                        "task: {name: arith, digits: 1, train: 40, eval: 10, train_fraction: [0.5, 1]}\n"
                        "teacher:\n  model: {layers: 1, d_model: 16, heads: 2, context: 32}\n"
                        "  train: {steps: 8, batch: 8, warmup: 0}\n"
                        "student:\n  model: {layers: 1, d_model: 16, heads: 2}\n"
                        "  targets: [answer, multitask]\n  rationale_weight: 0.5\n"
                        "  sft: {steps: 4, batch: 8}\n"
                        "distill: {steps: 4, batch: 4, lambda: 0.5, max_new_tokens: 4, checkpoint_every: 0}\n"
                        "eval: {every: 0, n: 10}\n");
    ck_assert_int_eq(th_gkd(dir, "run sbs.yaml --results res"), 0);
    const char *cells[] = {"targets=answer", "targets=multitask"};
    int found = 0;
    for (int f = 0; f < 2; f++)
        for (int c = 0; c < 2; c++) {
            char p[700];
            snprintf(p, sizeof p, "cd '%s/res/sbs' && ls -d *%s* | grep -q 'train_fraction=%s'", dir, cells[c],
                     f ? "1" : "0.5");
            found += system(p) == 0;
        }
    ck_assert_int_eq(found, 4);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls '%s'/res/sbs/*/eval.csv | wc -l) -eq 4", dir);
    ck_assert_int_eq(system(cmd), 0);
    /* one teacher per targets (it ignores the fraction), one SFT student per cell */
    snprintf(cmd, sizeof cmd, "test $(ls -d '%s'/res/sbs/shared/teacher-*[0-9a-f] | wc -l) -eq 2", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "test $(ls -d '%s'/res/sbs/shared/student-*[0-9a-f] | wc -l) -eq 4", dir);
    ck_assert_int_eq(system(cmd), 0);
    th_remove_tmpdir(dir);
}
END_TEST

Suite *step_by_step_suite(void) {
    Suite *s = suite_create("step_by_step");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_targets_examples);
    tcase_add_test(tc, test_train_fraction_nested);
    tcase_add_test(tc, test_multitask_mask);
    tcase_add_test(tc, test_w0_equals_answer_sft);
    tcase_add_test(tc, test_w0_equals_answer_distill);
    tcase_add_test(tc, test_loss_is_label_plus_w_rationale);
    tcase_add_test(tc, test_teacher_rationales);
    tcase_add_test(tc, test_grid_targets_fraction);
    suite_add_tcase(s, tc);
    return s;
}
