/* Context distillation: the tasks' contexts (arith rationale and worked
 * example, pairs' third column, text's context file, teacher.context), the
 * teacher's view of a batch against sequences built by hand, the context
 * path with empty contexts against the plain path bit for bit, SeqKD with
 * contexts against the teacher's own greedy decoding, and the refusals. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/distill/distill_step.h"
#include "../src/model/sample_filter.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/eval.h"
#include "gkd/metrics.h"
#include "helpers.h"

static gkd_task *arith_task(const char *context, const char *teacher_context, int digits) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.digits = digits;
    tc.train = 200;
    tc.eval = 40;
    tc.context = context;
    tc.teacher_context = teacher_context;
    gkd_task *t = NULL;
    ck_assert_msg(gkd_task_new(&t, &tc) == 0, "%s", gkd_last_error());
    return t;
}

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/gkd_test_ctx_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* ---- the tasks' contexts ---- */

START_TEST(test_arith_rationale_context) {
    gkd_task *t = arith_task("rationale", NULL, 2);
    for (size_t i = 0; i < gkd_task_size(t, GKD_SPLIT_TRAIN); i++) {
        const gkd_example *ex = gkd_task_example(t, GKD_SPLIT_TRAIN, i);
        char want[256];
        snprintf(want, sizeof want, "%s ;", ex->rationale);
        ck_assert_str_eq(ex->context, want);
    }
    /* 57+68: the steps arith.c documents. */
    gkd_task_free(t);
    gkd_task *plain = arith_task(NULL, NULL, 2);
    ck_assert(!gkd_task_has_context(plain));
    ck_assert_ptr_null(gkd_task_example(plain, GKD_SPLIT_TRAIN, 0)->context);
    gkd_task_free(plain);
}
END_TEST

START_TEST(test_arith_worked_example_context) {
    /* 47+85 = 132: 7+5 = 12 (digit 2, carry 1), 4+8+1 = 13 (digit 3, carry 1). */
    gkd_task *t = arith_task("worked_example", NULL, 2);
    ck_assert_str_eq(gkd_task_example(t, GKD_SPLIT_TRAIN, 0)->context, "47+85=7+5=2c1 4+8+1=3c1 ->132 ;");
    ck_assert_str_eq(gkd_task_example(t, GKD_SPLIT_EVAL, 3)->context, "47+85=7+5=2c1 4+8+1=3c1 ->132 ;");
    gkd_task_free(t);
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.digits = 1;
    tc.op = "sub";
    tc.train = 50;
    tc.eval = 10;
    tc.context = "worked_example";
    ck_assert_int_eq(gkd_task_new(&t, &tc), 0);
    /* 8-4 = 4, no borrow. */
    ck_assert_str_eq(gkd_task_example(t, GKD_SPLIT_TRAIN, 1)->context, "8-4=8-4=4b0 ->4 ;");
    gkd_task_free(t);
    tc.context = "hint";
    ck_assert_int_eq(gkd_task_new(&t, &tc), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "task.context"));
    tc.name = "reverse";
    tc.context = "rationale";
    ck_assert_int_eq(gkd_task_new(&t, &tc), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "task.context: reverse"));
}
END_TEST

START_TEST(test_pairs_third_column_and_teacher_context) {
    char *path = write_tmp("a\tA\tup a\nb\tB\nc\tC\tup c\nd\tD\t\ne\tE\tup e\n");
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "pairs";
    tc.path = path;
    tc.eval_fraction = 0.2;
    tc.teacher_context = "Q:";
    gkd_task *t = NULL;
    ck_assert_msg(gkd_task_new(&t, &tc) == 0, "%s", gkd_last_error());
    int seen = 0;
    for (int sp = 0; sp < 2; sp++)
        for (size_t i = 0; i < gkd_task_size(t, (gkd_split)sp); i++) {
            const gkd_example *ex = gkd_task_example(t, (gkd_split)sp, i);
            char want[16];
            const int own = ex->prompt[0] == 'a' || ex->prompt[0] == 'c' || ex->prompt[0] == 'e';
            snprintf(want, sizeof want, own ? "Q:up %s" : "Q:", ex->prompt);
            ck_assert_str_eq(ex->context, want);
            seen++;
        }
    ck_assert_int_eq(seen, 5);
    /* The char vocabulary holds the context's characters. */
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(t, &tok), 0);
    int ids[8], n = 0;
    ck_assert_msg(gkd_tokenizer_encode(tok, "Q:up", ids, 8, &n) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(n, 4);
    gkd_tokenizer_free(tok);
    gkd_task_free(t);
    unlink(path);
    free(path);
    char *bad = write_tmp("a\tA\tx\ty\n");
    tc.path = bad;
    ck_assert_int_eq(gkd_task_new(&t, &tc), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), ":1: expected at most two tabs"));
    unlink(bad);
    free(bad);
}
END_TEST

START_TEST(test_text_context_path) {
    char *text = write_tmp("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ!?");
    char *style = write_tmp("Style: terse.\n");
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "text";
    tc.path = text;
    tc.chunk = 8;
    tc.prompt_chars = 3;
    tc.eval_fraction = 0.25;
    tc.context_path = style;
    gkd_task *t = NULL;
    ck_assert_msg(gkd_task_new(&t, &tc) == 0, "%s", gkd_last_error());
    ck_assert(gkd_task_has_context(t));
    for (int sp = 0; sp < 2; sp++)
        for (size_t i = 0; i < gkd_task_size(t, (gkd_split)sp); i++)
            ck_assert_str_eq(gkd_task_example(t, (gkd_split)sp, i)->context, "Style: terse.\n");
    gkd_task_free(t);
    tc.context_path = "/nonexistent/style.txt";
    ck_assert_int_ne(gkd_task_new(&t, &tc), 0);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "task.context_path"));
    tc.name = "arith";
    tc.context_path = style;
    ck_assert_int_eq(gkd_task_new(&t, &tc), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "task.context_path: only the text task"));
    unlink(text);
    unlink(style);
    free(text);
    free(style);
}
END_TEST

/* ---- the teacher's view in the distillation step ---- */

typedef struct {
    gkd_task *task;
    gkd_tokenizer *tok;
    gkd_model *teacher, *student;
    int V;
} world;

static world make_world(const char *context, int teacher_ctx) {
    world w;
    w.task = arith_task(context, NULL, 1);
    ck_assert_int_eq(gkd_task_tokenizer(w.task, &w.tok), 0);
    w.V = gkd_tokenizer_vocab_size(w.tok);
    w.teacher = th_make_model(w.V, teacher_ctx, 1, 16, 2, 3, 0.3f, 991);
    w.student = th_make_model(w.V, 16, 1, 16, 2, 4, 0.3f, 991);
    return w;
}

static void free_world(world *w) {
    gkd_model_free(w->teacher);
    gkd_model_free(w->student);
    gkd_tokenizer_free(w->tok);
    gkd_task_free(w->task);
}

static gkd_distill_options small_options(void) {
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    o.batch = 6;
    o.steps = 10;
    o.lr = 3e-3;
    o.sample.max_new_tokens = 4;
    o.seed = 5;
    return o;
}

/* [BOS] context prompt SEP reference EOS of train example i, from its
 * strings token by token. */
static int by_hand(const world *w, size_t i, int *ids, int *c) {
    const gkd_example *ex = gkd_task_example(w->task, GKD_SPLIT_TRAIN, i);
    int n = 0, k = 0;
    ids[n++] = GKD_TOK_BOS;
    ck_assert_int_eq(gkd_tokenizer_encode(w->tok, ex->context, ids + n, 64, &k), 0);
    n += k;
    *c = k;
    ck_assert_int_eq(gkd_tokenizer_encode(w->tok, ex->prompt, ids + n, 64, &k), 0);
    n += k;
    ids[n++] = GKD_TOK_SEP;
    ck_assert_int_eq(gkd_tokenizer_encode(w->tok, ex->reference, ids + n, 64, &k), 0);
    n += k;
    ids[n++] = GKD_TOK_EOS;
    return n;
}

/* The rows the step scored with (dense, by chunks) are the rows of a
 * forward over the sequence built by hand, at t + c; the loss is the
 * divergence against them; top-k rows come from the same rows. */
START_TEST(test_teacher_rows_are_the_contextual_forward) {
    omp_set_num_threads(1);
    for (int k = 0; k <= 5; k += 5) {
        world w = make_world("rationale", 48);
        gkd_distill_options o = small_options();
        o.schedule.lambda = 0.0;
        o.teacher_topk = k;
        gkd_distill_state s;
        ck_assert_msg(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o) == 0, "%s",
                      gkd_last_error());
        ck_assert(gkd_teacher_view_on(&s));
        gkd_step_stats st;
        ck_assert_int_eq(gkd_distill_prepare(&s, 1, &st), 0);
        ck_assert_msg(gkd_distill_loss_grad(&s, 1, &st) == 0, "%s", gkd_last_error());
        const int B = o.batch, T = s.layout.T, V = w.V, N = B * T;
        float *aligned = calloc((size_t)N * V, sizeof(float));
        ck_assert_int_eq(gkd_teacher_view_logit_rows(&s, 0, N, aligned), 0);
        for (int b = 0; b < B; b++) {
            int ids[128], c = 0, ctx2 = 0, pl = 0, len2 = 0, ids2[128];
            const int len = by_hand(&w, s.examples[b], ids, &c);
            ck_assert_int_gt(c, 0);
            ck_assert_int_eq(s.tv_shift[b], c);
            ck_assert_int_eq(gkd_task_encode_with_context(w.task, w.tok, GKD_SPLIT_TRAIN, s.examples[b], 1, ids2, 128,
                                                          &ctx2, &pl, &len2), 0);
            ck_assert_int_eq(len2, len);
            ck_assert_int_eq(ctx2, c);
            ck_assert(!memcmp(ids, ids2, sizeof(int) * (size_t)len));
            ck_assert_int_eq(len, s.batch.len[b] + c);
            ck_assert_int_eq(gkd_model_forward(w.teacher, ids, 1, len), 0);
            for (int t = 0; t < s.batch.len[b]; t++)
                ck_assert_msg(!memcmp(aligned + ((size_t)b * T + t) * V, w.teacher->logits + (size_t)(t + c) * V,
                                      sizeof(float) * V),
                              "row %d position %d", b, t);
        }
        /* What the step computed from those rows. */
        ck_assert_int_eq(gkd_model_forward(w.student, s.layout.tokens, B, T), 0);
        if (k == 0) {
            float *dl = calloc((size_t)N * V, sizeof(float));
            double want = gkd_divergence_eval(&o.divergence, w.student->logits, aligned, s.layout.weight, N, V, 1.0f,
                                              1.0f, NULL, dl);
            ck_assert_msg(want == st.divergence, "%.17g vs %.17g", want, st.divergence);
            free(dl);
        } else {
            gkd_sparse_rows rows;
            ck_assert_int_eq(gkd_sparse_rows_alloc(&rows, N, V, k, 1.0f), 0);
            ck_assert_int_eq(gkd_sparse_rows_from_logits(&rows, aligned), 0);
            ck_assert(!memcmp(rows.ids, s.topk.ids, sizeof(int32_t) * (size_t)N * k));
            ck_assert(!memcmp(rows.logp, s.topk.logp, sizeof(float) * (size_t)N * k));
            gkd_sparse_rows_free(&rows);
        }
        free(aligned);
        gkd_distill_state_free(&s);
        free_world(&w);
    }
}
END_TEST

/* The context path with every context empty has the plain path's bits:
 * loss and gradients, dense by chunks, top-k and whole logits (pg_rkl). */
START_TEST(test_empty_context_is_the_plain_path) {
    omp_set_num_threads(1);
    static const struct { const char *div; int k; double lambda; } cases[] = {
        {"fkl", 0, 0.0}, {"jsd(0.5)", 0, 1.0}, {"rkl", 5, 0.0}, {"pg_rkl", 0, 1.0}};
    for (int c = 0; c < 4; c++) {
        world w = make_world("worked_example", 48);
        gkd_task *plain = arith_task(NULL, NULL, 1);
        gkd_distill_options o = small_options();
        o.schedule.lambda = cases[c].lambda;
        o.teacher_topk = cases[c].k;
        ck_assert_int_eq(gkd_divergence_parse(&o.divergence, cases[c].div), 0);
        gkd_distill_state sc, sp;
        ck_assert_msg(gkd_distill_state_init(&sc, w.student, w.teacher, w.tok, w.task, &o) == 0, "%s",
                      gkd_last_error());
        for (size_t i = 0; i < gkd_task_size(w.task, GKD_SPLIT_TRAIN); i++) sc.ctx_n[i] = 0;
        gkd_step_stats a, b;
        ck_assert_int_eq(gkd_distill_prepare(&sc, 1, &a), 0);
        ck_assert_msg(gkd_distill_loss_grad(&sc, 1, &a) == 0, "%s", gkd_last_error());
        const size_t P = w.student->num_params;
        float *g = malloc(sizeof(float) * P);
        memcpy(g, w.student->grads_memory, sizeof(float) * P);
        ck_assert_int_eq(gkd_distill_state_init(&sp, w.student, w.teacher, w.tok, plain, &o), 0);
        ck_assert(!gkd_teacher_view_on(&sp));
        ck_assert_int_eq(gkd_distill_prepare(&sp, 1, &b), 0);
        ck_assert_msg(gkd_distill_loss_grad(&sp, 1, &b) == 0, "%s", gkd_last_error());
        ck_assert_int_eq(sc.layout.T, sp.layout.T);
        ck_assert_msg(a.loss == b.loss, "%s: %.17g vs %.17g", cases[c].div, a.loss, b.loss);
        ck_assert_msg(!memcmp(g, w.student->grads_memory, sizeof(float) * P), "%s: gradients", cases[c].div);
        free(g);
        gkd_distill_state_free(&sc);
        gkd_distill_state_free(&sp);
        gkd_task_free(plain);
        free_world(&w);
    }
}
END_TEST

/* Row b of the step's batch is the plain prompt of its example followed by
 * the teacher's greedy continuation of the contextual prompt (decoded here
 * by `sampler`, the teacher's, into `one`), ending as it does; a context
 * must be there when need_context. Returns the plain prompt's length. */
static int check_teacher_continuation(const world *w, const gkd_distill_state *s, gkd_sampler *sampler,
                                      gkd_seqbatch *one, int b, int need_context) {
    int c = 0, plain_pl = 0, plain_len = 0, plain[64];
    ck_assert_int_eq(gkd_task_encode_with_context(w->task, w->tok, GKD_SPLIT_TRAIN, s->examples[b], 0, one->tokens,
                                                  48, &c, &one->prompt_len[0], &one->len[0]), 0);
    if (need_context) ck_assert_int_gt(c, 0);
    ck_assert_int_eq(gkd_task_encode_prompt(w->task, w->tok, GKD_SPLIT_TRAIN, s->examples[b], plain, 64, &plain_pl,
                                            &plain_len), 0);
    uint64_t stream = 0;
    gkd_sample_options so = s->o.sample;
    so.eos_token = gkd_tokenizer_eos(w->tok);
    ck_assert_int_eq(gkd_sampler_generate(sampler, one, &so, 0, 1, &stream, NULL), 0);
    const int *row = s->batch.tokens + (size_t)b * s->batch.cap;
    ck_assert_int_eq(s->batch.prompt_len[b], plain_pl);
    ck_assert(!memcmp(row, plain, sizeof(int) * (size_t)plain_pl));
    ck_assert_int_eq(s->batch.len[b], one->len[0] - c);
    ck_assert_int_eq(s->batch.eos[b], one->eos[0]);
    ck_assert(!memcmp(row + plain_pl, one->tokens + one->prompt_len[0],
                      sizeof(int) * (size_t)(one->len[0] - one->prompt_len[0])));
    return plain_pl;
}

/* SeqKD rows: the plain prompt and the teacher's greedy continuation of
 * the contextual prompt. */
START_TEST(test_seqkd_continues_the_contextual_prompt) {
    omp_set_num_threads(1);
    world w = make_world("rationale", 48);
    gkd_distill_options o = small_options();
    o.schedule.lambda = 0.0;
    o.schedule.seqkd = 1.0;
    o.sample.temperature = 0.0f;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    gkd_step_stats st;
    ck_assert_msg(gkd_distill_prepare(&s, 1, &st) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(st.source_count[GKD_SRC_TEACHER], o.batch);
    gkd_sampler *sampler = NULL;
    ck_assert_int_eq(gkd_sampler_new(&sampler, w.teacher, NULL, 1), 0);
    gkd_seqbatch one;
    ck_assert_int_eq(gkd_seqbatch_new(&one, 1, 48), 0);
    for (int b = 0; b < o.batch; b++) {
        check_teacher_continuation(&w, &s, sampler, &one, b, 0);
    }
    gkd_seqbatch_free(&one);
    gkd_sampler_free(sampler);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* Teacher-mixed rows with alpha 1 and greedy decoding: the plain prompt
 * and the teacher's greedy continuation of the contextual prompt, as for
 * SeqKD; their importance weights are p_student / p_mixture of the plain
 * student row against the contextual teacher row. */
START_TEST(test_mixed_rows_use_the_contextual_teacher) {
    omp_set_num_threads(1);
    world w = make_world("rationale", 48);
    gkd_distill_options o = small_options();
    o.schedule.lambda = 1.0;
    o.schedule.teacher_mix = 1.0;
    o.sample.temperature = 0.0f;
    gkd_distill_state s;
    ck_assert_msg(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o) == 0, "%s", gkd_last_error());
    gkd_step_stats st;
    ck_assert_msg(gkd_distill_prepare(&s, 1, &st) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(st.source_count[GKD_SRC_MIXED], o.batch);
    gkd_sampler *sampler = NULL;
    ck_assert_int_eq(gkd_sampler_new(&sampler, w.teacher, NULL, 1), 0);
    gkd_seqbatch one;
    ck_assert_int_eq(gkd_seqbatch_new(&one, 1, 48), 0);
    int differs = 0;
    for (int b = 0; b < o.batch; b++) {
        const int plain_pl = check_teacher_continuation(&w, &s, sampler, &one, b, 1);
        const int *row = s.batch.tokens + (size_t)b * s.batch.cap;
        /* Greedy: each model's distribution is one-hot, so the weight is 1
         * where the student's argmax is the drawn token, else 0. */
        const int len = s.batch.len[b], V = w.V;
        ck_assert_int_eq(gkd_model_forward(w.student, row, 1, len), 0);
        for (int t = plain_pl; t < len; t++) {
            const float want = gkd_sample_argmax(w.student->logits + (size_t)(t - 1) * V, V) == row[t] ? 1.0f : 0.0f;
            ck_assert_msg(s.iw[(size_t)b * s.batch.cap + t] == want, "row %d position %d", b, t);
            differs += want == 0.0f;
        }
    }
    ck_assert_int_gt(differs, 0);
    gkd_seqbatch_free(&one);
    gkd_sampler_free(sampler);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* teacher_mix 0.5 with contexts trains: every step's rows are mixed
 * rollouts, the loss stays finite. */
START_TEST(test_teacher_mix_with_contexts_runs) {
    omp_set_num_threads(1);
    world w = make_world("rationale", 48);
    gkd_distill_options o = small_options();
    o.schedule.lambda = 1.0;
    o.schedule.teacher_mix = 0.5;
    o.mix_importance = 1;
    gkd_distill_state s;
    ck_assert_msg(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o) == 0, "%s", gkd_last_error());
    for (long step = 1; step <= o.steps; step++) {
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_step(&s, step, &st) == 0, "step %ld: %s", step, gkd_last_error());
        ck_assert_int_eq(st.source_count[GKD_SRC_MIXED], o.batch);
        ck_assert(isfinite(st.loss));
    }
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

START_TEST(test_refusals) {
    omp_set_num_threads(1);
    /* "3+4=3+4=7c0 ;" (13) + "3+4=" SEP "7" EOS with BOS (7): a 16-token
     * teacher cannot hold it. */
    world w = make_world("rationale", 16);
    gkd_distill_options o = small_options();
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "distill: teacher context: arith train example") &&
                      strstr(gkd_last_error(), "the teacher's context is 16"),
                  "%s", gkd_last_error());
    free_world(&w);
    w = make_world("rationale", 48);
    o.schedule.replay = GKD_REPLAY_FIXED;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "replay with contexts that differ"));
    free_world(&w);
    /* One context for all: replay is fine. */
    w = make_world("worked_example", 48);
    ck_assert_msg(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o) == 0, "%s", gkd_last_error());
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* `gkd run` of both fixture experiments completes every cell, each with
 * the teacher's reference evaluation, and the files hold the options. */
static void run_experiment(const char *name, const char *needle) {
    char dir[256], yaml[64], path[512];
    th_make_tmpdir(dir, sizeof dir, "gkd_test_ctx_run");
    snprintf(yaml, sizeof yaml, "%s.yaml", name);
    const char *fixture = th_fixture_path("experiments", yaml);
    int rc = th_gkd(dir, "run '%s' --results '%s/res'", fixture, dir);
    size_t n = 0;
    snprintf(path, sizeof path, "%s/err.txt", dir);
    unsigned char *err = th_read_bytes(path, &n);
    ck_assert_msg(rc == 0, "gkd run %s exited %d: %s", name, rc, err ? (const char *)err : "");
    free(err);
    static const char *const cells[] = {"divergence=%s,lambda=%s,seed=1"};
    static const char *const divs[2][2] = {{"fkl", "jsd(0.5)"}, {"fkl", "rkl"}};
    const int which = strcmp(name, "tiny_context") != 0;
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < 2; l++) {
            char cell[128];
            snprintf(cell, sizeof cell, cells[0], divs[which][d], l ? "1" : "0");
            static const char *const files[] = {"done", "teacher_eval.csv", "eval.csv", "final.ckpt"};
            for (int f = 0; f < 4; f++) {
                snprintf(path, sizeof path, "%s/res/%s/%s/%s", dir, name, cell, files[f]);
                ck_assert_msg(access(path, F_OK) == 0, "%s missing", path);
            }
            snprintf(path, sizeof path, "%s/res/%s/%s/config.yaml", dir, name, cell);
            unsigned char *config = th_read_bytes(path, &n);
            ck_assert_ptr_nonnull(config);
            ck_assert_msg(strstr((const char *)config, needle), "'%s' not in %s", needle, path);
            free(config);
        }
    th_remove_tmpdir(dir);
}

START_TEST(test_run_context_experiment) { run_experiment("tiny_context", "context: rationale"); }
END_TEST

START_TEST(test_run_self_distillation) { run_experiment("tiny_self_context", "same_as: student_init"); }
END_TEST

/* With the context as an axis, the cells with and without it each get an
 * SFT student of their own vocabulary (the contexts' characters are in
 * it), and both complete. */
START_TEST(test_run_context_axis_with_sft_students) {
    char dir[256], path[1200];
    th_make_tmpdir(dir, sizeof dir, "gkd_test_ctx_axis");
    const char *fixture = th_fixture_path("experiments", "tiny_context_axis.yaml");
    int rc = th_gkd(dir, "run '%s' --results '%s/res'", fixture, dir);
    size_t n = 0;
    snprintf(path, sizeof path, "%s/err.txt", dir);
    unsigned char *err = th_read_bytes(path, &n);
    ck_assert_msg(rc == 0, "gkd run exited %d: %s", rc, err ? (const char *)err : "");
    free(err);
    static const char *const cells[] = {"context=none,seed=1", "context=rationale,seed=1"};
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/res/tiny_context_axis/%s/done", dir, cells[c]);
        ck_assert_msg(access(path, F_OK) == 0, "%s missing", path);
    }
    snprintf(path, sizeof path, "ls -d '%s'/res/tiny_context_axis/shared/student-*/ | wc -l > '%s/n.txt'", dir, dir);
    ck_assert_int_eq(system(path), 0);
    snprintf(path, sizeof path, "%s/n.txt", dir);
    unsigned char *count = th_read_bytes(path, &n);
    ck_assert_int_eq(atoi((const char *)count), 2);
    free(count);
    th_remove_tmpdir(dir);
}
END_TEST

/* Context distillation from experiment files on the file tasks: pairs
 * with a third column (a hint) under every divergence with a sparse-free
 * dense form, off- and on-policy, and text with a context file, with
 * pg_rkl on-policy; every cell completes. */
START_TEST(test_run_pairs_and_text_contexts) {
    char dir[256], path[1200];
    th_make_tmpdir(dir, sizeof dir, "gkd_test_ctx_files");
    snprintf(path, sizeof path, "%s/pairs.tsv", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 60; i++)
        fprintf(f, "%c%c%c\t%c%c%c\treverse it\n", 'a' + i % 5, 'a' + i / 5 % 5, 'a' + i / 25, 'a' + i / 25,
                'a' + i / 5 % 5, 'a' + i % 5);
    fclose(f);
    snprintf(path, sizeof path, "%s/story.txt", dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 40; i++) fprintf(f, "the cat %d sat on the mat. ", i);
    fclose(f);
    snprintf(path, sizeof path, "%s/style.txt", dir);
    th_write_file(path, "Write plainly: ");
    snprintf(path, sizeof path, "%s/pairs.yaml", dir);
    th_write_file(path,
                  "name: ctx_pairs\n"
                  "task: {name: pairs, path: pairs.tsv, eval_fraction: 0.2}\n"
                  "teacher:\n"
                  "  model: {layers: 1, d_model: 16, heads: 2, context: 32}\n"
                  "  train: {steps: 10, batch: 8, lr: 3e-3, warmup: 2}\n"
                  "student: {model: {layers: 1, d_model: 8, heads: 2}, init: random}\n"
                  "distill: {steps: 2, batch: 4, warmup: 1, max_new_tokens: 4,\n"
                  "  divergence: [fkl, rkl, jsd(0.5), skl(0.1), srkl(0.1), tvd], lambda: [0, 1]}\n"
                  "eval: {every: 2, n: 4}\n");
    snprintf(path, sizeof path, "%s/text.yaml", dir);
    th_write_file(path,
                  "name: ctx_text\n"
                  "task: {name: text, path: story.txt, chunk: 24, prompt_chars: 12, context_path: style.txt}\n"
                  "teacher:\n"
                  "  model: {layers: 1, d_model: 16, heads: 2, context: 48}\n"
                  "  train: {steps: 10, batch: 8, lr: 3e-3, warmup: 2}\n"
                  "student: {model: {layers: 1, d_model: 8, heads: 2}, init: random}\n"
                  "distill: {steps: 2, batch: 4, warmup: 1, max_new_tokens: 4}\n"
                  "variants:\n"
                  "  off: {distill: {divergence: fkl, lambda: 0}}\n"
                  "  on: {distill: {divergence: pg_rkl, lambda: 1}}\n"
                  "eval: {every: 2, n: 4}\n");
    const char *names[2] = {"pairs", "text"};
    for (int k = 0; k < 2; k++) {
        int rc = th_gkd(dir, "run %s.yaml --results res", names[k]);
        snprintf(path, sizeof path, "%s/err.txt", dir);
        size_t n;
        unsigned char *err = th_read_bytes(path, &n);
        ck_assert_msg(rc == 0, "gkd run %s.yaml exited %d: %s", names[k], rc, (const char *)err);
        free(err);
    }
    static const char *const divs[] = {"fkl", "rkl", "jsd(0.5)", "skl(0.1)", "srkl(0.1)", "tvd"};
    for (int d = 0; d < 6; d++)
        for (int l = 0; l < 2; l++) {
            snprintf(path, sizeof path, "%s/res/ctx_pairs/divergence=%s,lambda=%d,seed=1/done", dir, divs[d], l);
            ck_assert_msg(access(path, F_OK) == 0, "%s missing", path);
        }
    static const char *const variants[] = {"off", "on"};
    for (int v = 0; v < 2; v++) {
        snprintf(path, sizeof path, "%s/res/ctx_text/variant=%s,seed=1/done", dir, variants[v]);
        ck_assert_msg(access(path, F_OK) == 0, "%s missing", path);
    }
    th_remove_tmpdir(dir);
}
END_TEST

/* The student's evaluation scores the teacher on its view, as training
 * does: fkl_ref equals the mean KL over the references' loss positions
 * between the teacher's rows of [BOS] context prompt SEP ref EOS (each
 * example run alone, position t + c) and the student's of the plain
 * sequence; the teacher on the plain sequences gives another value. */
START_TEST(test_eval_scores_the_teacher_on_its_view) {
    gkd_task *task = arith_task("rationale", "Q:", 1);
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(task, &tok), 0);
    const int V = gkd_tokenizer_vocab_size(tok), n = 6;
    gkd_model *teacher = th_make_model(V, 48, 1, 16, 2, 11, 0.3f, 1);
    gkd_model *student = th_make_model(V, 16, 1, 8, 2, 12, 0.3f, 2);
    gkd_eval_options eo = GKD_EVAL_OPTIONS_INIT;
    eo.n = n;
    eo.samples = 0;
    eo.batch = 8;
    gkd_eval_result res;
    ck_assert_msg(gkd_evaluate(&res, student, teacher, tok, task, &eo) == 0, "%s", gkd_last_error());
    float *zs = malloc(sizeof(float) * 64 * (size_t)V), *zt = malloc(sizeof(float) * 64 * (size_t)V),
          *zp = malloc(sizeof(float) * 64 * (size_t)V), *ones = malloc(sizeof(float) * 64);
    ck_assert(zs && zt && zp && ones);
    int rows = 0;
    for (int i = 0; i < n; i++) {
        int plain[48], view[48], pl, len, c, vpl, vlen;
        ck_assert_int_eq(gkd_task_encode_example(task, tok, GKD_SPLIT_EVAL, (size_t)i, plain, 16, &pl, &len), 0);
        ck_assert_int_eq(gkd_task_encode_with_context(task, tok, GKD_SPLIT_EVAL, (size_t)i, 1, view, 48, &c, &vpl,
                                                      &vlen), 0);
        ck_assert_int_gt(c, 0);
        ck_assert_int_eq(gkd_model_forward(student, plain, 1, len), 0);
        for (int t = pl - 1; t < len - 1; t++)
            memcpy(zs + (size_t)(rows + t - pl + 1) * V, student->logits + (size_t)t * V, sizeof(float) * (size_t)V);
        ck_assert_int_eq(gkd_model_forward(teacher, plain, 1, len), 0);
        for (int t = pl - 1; t < len - 1; t++)
            memcpy(zp + (size_t)(rows + t - pl + 1) * V, teacher->logits + (size_t)t * V, sizeof(float) * (size_t)V);
        ck_assert_int_eq(gkd_model_forward(teacher, view, 1, vlen), 0);
        for (int t = pl - 1; t < len - 1; t++)
            memcpy(zt + (size_t)(rows + t - pl + 1) * V, teacher->logits + (size_t)(t + c) * V,
                   sizeof(float) * (size_t)V);
        rows += len - pl;
        ck_assert_int_le(rows, 64);
    }
    for (int r = 0; r < rows; r++) ones[r] = 1.0f;
    const double want = gkd_metric_kl(zt, zs, ones, rows, V, 0), plain_teacher = gkd_metric_kl(zp, zs, ones, rows, V, 0);
    ck_assert_msg(fabs(res.v[GKD_M_FKL_REF] - want) <= 1e-9 * fabs(want), "fkl_ref %.12g, by hand %.12g",
                  res.v[GKD_M_FKL_REF], want);
    ck_assert_msg(fabs(plain_teacher - want) > 1e-3, "the context changes nothing here: %g vs %g", plain_teacher, want);
    free(zs);
    free(zt);
    free(zp);
    free(ones);
    gkd_model_free(teacher);
    gkd_model_free(student);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
}
END_TEST

/* The experiment's check names the example, the tokens and the key. */
START_TEST(test_run_checks_teacher_window) {
    char dir[256], yaml[512], path[512];
    th_make_tmpdir(dir, sizeof dir, "gkd_test_ctx_window");
    snprintf(yaml, sizeof yaml, "%s/small.yaml", dir);
    th_write_file(yaml, "name: small\ntask: {name: arith, digits: 1, train: 50, eval: 10, context: rationale}\n"
                        "teacher: {context: \"Q:\", model: {layers: 1, d_model: 16, heads: 2, context: 16}}\n"
                        "student: {model: {layers: 1, d_model: 16, heads: 2}}\n"
                        "distill: {steps: 2, max_new_tokens: 4}\neval: {n: 10}\n");
    ck_assert_int_ne(th_gkd(dir, "run '%s' --results '%s/res'", yaml, dir), 0);
    size_t n = 0;
    snprintf(path, sizeof path, "%s/err.txt", dir);
    unsigned char *err = th_read_bytes(path, &n);
    ck_assert_ptr_nonnull(err);
    /* Example 0's context "Q:" + its steps "a+b=dcK" + " ;": 2 + 7 + 2 = 11
     * tokens; its prompt BOS "a+b=" SEP (6) with 4 new tokens: 10. */
    ck_assert_msg(strstr((const char *)err, "arith train example 0: the context (11 tokens) and sequences of up to 10 "
                                             "take 21 tokens; teacher.model.context is 16"),
                  "%s", (const char *)err);
    free(err);
    th_remove_tmpdir(dir);
}
END_TEST

Suite *context_distill_suite(void) {
    Suite *s = suite_create("context_distill");
    TCase *tasks = tcase_create("tasks");
    tcase_add_test(tasks, test_arith_rationale_context);
    tcase_add_test(tasks, test_arith_worked_example_context);
    tcase_add_test(tasks, test_pairs_third_column_and_teacher_context);
    tcase_add_test(tasks, test_text_context_path);
    suite_add_tcase(s, tasks);
    TCase *step = tcase_create("step");
    tcase_set_timeout(step, 60);
    tcase_add_test(step, test_teacher_rows_are_the_contextual_forward);
    tcase_add_test(step, test_empty_context_is_the_plain_path);
    tcase_add_test(step, test_seqkd_continues_the_contextual_prompt);
    tcase_add_test(step, test_mixed_rows_use_the_contextual_teacher);
    tcase_add_test(step, test_teacher_mix_with_contexts_runs);
    tcase_add_test(step, test_refusals);
    tcase_add_test(step, test_eval_scores_the_teacher_on_its_view);
    suite_add_tcase(s, step);
    TCase *run = tcase_create("run");
    tcase_set_timeout(run, 300);
    tcase_add_test(run, test_run_context_experiment);
    tcase_add_test(run, test_run_self_distillation);
    tcase_add_test(run, test_run_context_axis_with_sft_students);
    tcase_add_test(run, test_run_pairs_and_text_contexts);
    tcase_add_test(run, test_run_checks_teacher_window);
    suite_add_tcase(s, run);
    return s;
}
