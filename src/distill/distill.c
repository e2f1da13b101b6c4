/* One distillation step and the state it needs (see include/gkd/distill.h).
 *
 * Shapes: B batch rows, T the longest sequence of the step's batch, V the
 * vocabulary, cap the context (rows of a gkd_seqbatch are cap long). */
#include "distill_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/products.h"
#include "gkd/rng.h"
#include "util/clock.h"

static int needs_teacher_scores(const gkd_distill_options *o) {
    return o->divergence.kind != GKD_DIV_CE;
}

/* The teacher's logits are computed a chunk of rows at a time, never held
 * whole, for the divergences with a per-row form (fkl..tvd, dense or
 * top-k). Only with gkd's products, whose chunks have the whole forward's
 * bits (gkd_model_logits_rows); in the OpenBLAS mode the head's tiles
 * depend on the rows, so the whole forward keeps its rounding. */
static int teacher_by_chunks(const gkd_distill_options *o) {
    return o->divergence.kind <= GKD_DIV_TVD && gkd_products() == GKD_PRODUCTS_GKD;
}

static int needs_teacher(const gkd_distill_options *o, const gkd_task *task) {
    const int teacher_rationales = o->rationale_source == GKD_RATIONALE_TEACHER && o->rationale_weight > 0 &&
                                   gkd_task_size(task, GKD_SPLIT_RATIONALE) > 0;
    return needs_teacher_scores(o) || o->schedule.seqkd > 0 || o->schedule.teacher_mix > 0 || teacher_rationales;
}

void gkd_distill_state_free(gkd_distill_state *s) {
    if (!s) return;
    gkd_adamw_free(s->opt);
    gkd_schedule_free(s->schedule);
    gkd_sampler_free(s->student_sampler);
    gkd_sampler_free(s->teacher_sampler);
    gkd_sampler_free(s->mixed_sampler);
    gkd_teacher_view_free(s);
    gkd_seqbatch_free(&s->batch);
    gkd_seqbatch_free(&s->gathered);
    free(s->examples);
    free(s->choices);
    free(s->rows);
    free(s->stream_ids);
    gkd_batch_layout_free(&s->layout);
    gkd_seqbatch_free(&s->truth);
    gkd_batch_layout_free(&s->truth_layout);
    free(s->iw);
    free(s->gathered_iw);
    free(s->rewards);
    free(s->advantages);
    free(s->dlogits);
    gkd_sparse_rows_free(&s->topk);
    free(s->teacher_chunk);
    gkd_teacher_cache_free(s->tcache);
    free(s->cached);
    free(s->ce_row_loss);
    if (s->seqkd_cache) {
        for (size_t i = 0; i < s->seqkd_cache_n; i++) free(s->seqkd_cache[i]);
        free(s->seqkd_cache);
    }
    gkd_rationale_term_free(s);
    memset(s, 0, sizeof *s);
}

int gkd_distill_state_init(gkd_distill_state *s, gkd_model *student, gkd_model *teacher,
                           const gkd_tokenizer *tok, const gkd_task *task,
                           const gkd_distill_options *opt) {
    int rc = 0;
    memset(s, 0, sizeof *s);
    s->student = student;
    s->teacher = teacher;
    s->tok = tok;
    s->task = task;
    s->opt = NULL;
    s->o = *opt;
    s->o.sample.eos_token = gkd_tokenizer_eos(tok); /* rollouts end where the tokenizer's sequences do */
    const int B = opt->batch, cap = student->config.max_seq_len, V = student->config.vocab_size;
    if (B < 1 || opt->steps < 0) return gkd_error(GKD_EINVAL, "distill: batch must be >= 1 and steps >= 0");
    /* Checked here, once: the per-position divergence functions assert it. */
    if ((rc = gkd_divergence_check(&opt->divergence, opt->loss_temperature))) return gkd_error_wrap(rc, "distill");
    if (gkd_tokenizer_vocab_size(tok) > V)
        return gkd_error(GKD_EMISMATCH, "distill: the tokenizer has %d tokens but the student only %d",
                         gkd_tokenizer_vocab_size(tok), V);
    if (needs_teacher(opt, task)) {
        if (!teacher) return gkd_error(GKD_EINVAL, "distill: this configuration needs a teacher");
        if (teacher->config.vocab_size != V || teacher->config.max_seq_len < cap)
            return gkd_error(GKD_EMISMATCH,
                             "distill: teacher (vocabulary %d, context %d) does not fit the student "
                             "(vocabulary %d, context %d)",
                             teacher->config.vocab_size, teacher->config.max_seq_len, V, cap);
    }
    if (opt->divergence.kind == GKD_DIV_PG_RKL &&
        (opt->schedule.lambda < 1 || opt->schedule.teacher_mix > 0 || opt->schedule.replay != GKD_REPLAY_OFF))
        return gkd_error(GKD_EINVAL, "distill: pg_rkl is valid only on student rollouts (lambda 1, "
                                     "no teacher_mix, no replay)");
    if (gkd_task_size(task, GKD_SPLIT_TRAIN) == 0) return gkd_error(GKD_EINVAL, "distill: the task has no training examples (pairs: --path / task.path gives them)");
    if (opt->teacher_topk < 0 || opt->teacher_topk > V)
        return gkd_error(GKD_EINVAL, "distill: teacher_topk %d outside 0..%d (the vocabulary)", opt->teacher_topk, V);
    if (opt->teacher_topk && (opt->divergence.kind == GKD_DIV_CE || opt->divergence.kind == GKD_DIV_PG_RKL))
        return gkd_error(GKD_EINVAL, "distill: teacher_topk applies to fkl, rkl, jsd, skl, srkl and tvd, not to %s",
                         opt->divergence.kind == GKD_DIV_CE ? "ce" : "pg_rkl");
    if (opt->topk_tail != GKD_SPARSE_RENORM && opt->topk_tail != GKD_SPARSE_TAIL)
        return gkd_error(GKD_EINVAL, "distill: topk_tail %d is not renorm (0) or tail (1)", opt->topk_tail);

    gkd_adamw_config ac = GKD_ADAMW_CONFIG_INIT;
    ac.weight_decay = opt->weight_decay;
    if ((rc = gkd_adamw_new(&s->opt, student, &ac))) goto done;
    gkd_schedule_options so = opt->schedule;
    so.seq_cap = cap;
    if (so.total_steps < 1) so.total_steps = opt->steps > 0 ? opt->steps : 1;
    if ((rc = gkd_schedule_new(&s->schedule, &so, opt->seed))) goto done;
    if ((rc = gkd_sampler_new(&s->student_sampler, student, NULL, B))) goto done;
    if (teacher && (rc = gkd_sampler_new(&s->teacher_sampler, teacher, NULL, B))) goto done;
    if (teacher && opt->schedule.teacher_mix > 0 &&
        (rc = gkd_sampler_new(&s->mixed_sampler, student, teacher, B)))
        goto done;
    if ((rc = gkd_seqbatch_new(&s->batch, B, cap)) || (rc = gkd_seqbatch_new(&s->gathered, B, cap)) ||
        (rc = gkd_batch_layout_new(&s->layout, B, cap)))
        goto done;
    if (opt->ce_weight > 0 &&
        ((rc = gkd_seqbatch_new(&s->truth, B, cap)) || (rc = gkd_batch_layout_new(&s->truth_layout, B, cap))))
        goto done;
    size_t BC = (size_t)B * cap;
    s->examples = calloc(B, sizeof *s->examples);
    s->choices = calloc(B, sizeof *s->choices);
    s->rows = calloc(B, sizeof *s->rows);
    s->stream_ids = calloc(B, sizeof *s->stream_ids);
    s->iw = calloc(BC, sizeof(float));
    s->gathered_iw = calloc(BC, sizeof(float));
    s->rewards = calloc(BC, sizeof(float));
    s->advantages = calloc(BC, sizeof(float));
    s->dlogits = calloc(BC * (size_t)V, sizeof(float));
    s->ce_row_loss = calloc(BC, sizeof(double));
    s->cached = calloc(B, 1);
    if (!s->cached || !s->examples || !s->choices || !s->rows || !s->stream_ids || !s->iw || !s->gathered_iw ||
        !s->rewards || !s->advantages || !s->dlogits || !s->ce_row_loss) {
        rc = gkd_error(GKD_ENOMEM, "distill: out of memory for a batch of %d x %d", B, cap);
        goto done;
    }
    {
        const size_t fit = GKD_TEACHER_CHUNK_BYTES / (sizeof(float) * (size_t)V), all = (size_t)B * cap;
        s->teacher_chunk_rows = (int)(fit < GKD_TEACHER_CHUNK ? GKD_TEACHER_CHUNK : fit < all ? fit : all);
    }
    if (opt->divergence.kind <= GKD_DIV_TVD &&
        !(s->teacher_chunk = malloc(sizeof(float) * (size_t)s->teacher_chunk_rows * (size_t)V))) {
        rc = gkd_error(GKD_ENOMEM, "distill: out of memory for %d rows of teacher logits", s->teacher_chunk_rows);
        goto done;
    }
    if (opt->teacher_topk && needs_teacher_scores(opt) &&
        (rc = gkd_sparse_rows_alloc(&s->topk, (int)BC, V, opt->teacher_topk, opt->loss_temperature)))
        goto done;
    if (opt->teacher_cache && (rc = gkd_teacher_cache_attach(s, opt->teacher_cache))) goto done;
    if (opt->schedule.seqkd > 0 && opt->seqkd_cache) {
        s->seqkd_cache_n = gkd_task_size(task, GKD_SPLIT_TRAIN);
        s->seqkd_cache = calloc(s->seqkd_cache_n, sizeof *s->seqkd_cache);
        if (!s->seqkd_cache) { rc = gkd_error(GKD_ENOMEM, "distill: out of memory for the SeqKD cache"); goto done; }
    }
    if ((rc = gkd_teacher_view_init(s))) goto done;
    rc = gkd_rationale_term_init(s);
done:
    if (rc) gkd_distill_state_free(s);
    return rc;
}

/* ---- building the batch ---- */

static void copy_row(gkd_seqbatch *dst, int drow, const gkd_seqbatch *src, int srow) {
    memcpy(dst->tokens + (size_t)drow * dst->cap, src->tokens + (size_t)srow * src->cap,
           sizeof(int) * (size_t)dst->cap);
    dst->prompt_len[drow] = src->prompt_len[srow];
    dst->len[drow] = src->len[srow];
    dst->eos[drow] = src->eos[srow];
}

static void clear_row(gkd_seqbatch *b, int row) {
    int *t = b->tokens + (size_t)row * b->cap;
    for (int i = 0; i < b->cap; i++) t[i] = GKD_TOK_PAD;
}

/* Row `row` of b := BOS prompt SEP [reference EOS] of train example i. */
static int encode_example(gkd_distill_state *s, gkd_seqbatch *b, int row, size_t i, int with_reference) {
    clear_row(b, row);
    int *ids = b->tokens + (size_t)row * b->cap;
    int rc = with_reference
                 ? gkd_task_encode_example(s->task, s->tok, GKD_SPLIT_TRAIN, i, ids, b->cap,
                                           &b->prompt_len[row], &b->len[row])
                 : gkd_task_encode_prompt(s->task, s->tok, GKD_SPLIT_TRAIN, i, ids, b->cap,
                                          &b->prompt_len[row], &b->len[row]);
    b->eos[row] = with_reference && rc == 0;
    return rc;
}

/* Stream of row r at `step`: unique over (step, row) so no two rollouts of
 * a run share random numbers. Cached SeqKD rollouts use the example index
 * in a separate range (gkd_seqkd_stream). */
static uint64_t rollout_stream(long step, int B, int row) { return (uint64_t)step * (uint64_t)B + (uint64_t)row; }

/* Rows 0..n) of b as a batch of n rows: the same storage, its own size. */
static gkd_seqbatch first_rows(const gkd_seqbatch *b, int n) {
    gkd_seqbatch view = *b;
    view.B = n;
    return view;
}

/* Generate completions for the rows listed in rows[0..n) with `sampler`. */
static int generate_rows(gkd_distill_state *s, gkd_sampler *sampler, float mix_alpha, const int *rows,
                         int n, const uint64_t *streams) {
    for (int j = 0; j < n; j++) copy_row(&s->gathered, j, &s->batch, rows[j]);
    /* The sampler completes every row it is given: give it exactly n. */
    gkd_seqbatch sub = first_rows(&s->gathered, n);
    float *sub_iw = mix_alpha > 0 ? s->gathered_iw : NULL;
    /* Teacher-mixed rows: the teacher of the mixture sees the contexts. */
    if (mix_alpha > 0 && gkd_teacher_view_on(s)) {
        int rc = gkd_teacher_view_mix_context(s, rows, n);
        if (rc) return gkd_error_wrap(rc, "rollouts");
    }
    int rc = gkd_sampler_generate(sampler, &sub, &s->o.sample, mix_alpha, s->o.seed, streams, sub_iw);
    if (rc) return gkd_error_wrap(rc, "rollouts");
    for (int j = 0; j < n; j++) {
        copy_row(&s->batch, rows[j], &sub, j);
        if (sub_iw)
            memcpy(s->iw + (size_t)rows[j] * sub.cap, sub_iw + (size_t)j * sub.cap, sizeof(float) * (size_t)sub.cap);
    }
    return 0;
}

/* SeqKD rows: the teacher completes the prompts, seeing their contexts if any. */
static int generate_teacher_rows(gkd_distill_state *s, const int *rows, int n, const uint64_t *streams) {
    if (gkd_teacher_view_on(s)) return gkd_teacher_view_generate(s, rows, n, streams);
    return generate_rows(s, s->teacher_sampler, 0, rows, n, streams);
}

static int rows_with_source(const gkd_distill_state *s, gkd_source src, int *rows) {
    int n = 0;
    for (int b = 0; b < s->o.batch; b++)
        if (s->choices[b].source == src) rows[n++] = b;
    return n;
}

static int teacher_rows(gkd_distill_state *s, long step) {
    int n = rows_with_source(s, GKD_SRC_TEACHER, s->rows);
    if (n == 0 || (s->tcache && s->tcache_source == GKD_SRC_TEACHER)) return 0; /* the teacher cache's */
    if (!s->seqkd_cache) {
        for (int j = 0; j < n; j++) s->stream_ids[j] = rollout_stream(step, s->o.batch, s->rows[j]);
        return generate_teacher_rows(s, s->rows, n, s->stream_ids);
    }
    /* Offline SeqKD: each prompt's teacher output is generated once and reused. */
    int m = 0, *missing = s->rows;
    for (int j = 0; j < n; j++) {
        int r = s->rows[j];
        size_t ex = s->examples[r];
        if (s->seqkd_cache[ex]) {
            const int *c = s->seqkd_cache[ex];
            int *dst = s->batch.tokens + (size_t)r * s->batch.cap;
            memcpy(dst, c + 3, sizeof(int) * (size_t)s->batch.cap);
            s->batch.prompt_len[r] = c[0];
            s->batch.len[r] = c[1];
            s->batch.eos[r] = (unsigned char)c[2];
        } else {
            missing[m] = r;
            s->stream_ids[m] = gkd_seqkd_stream(ex);
            m++;
        }
    }
    if (m == 0) return 0;
    int rc = generate_teacher_rows(s, missing, m, s->stream_ids);
    if (rc) return rc;
    for (int j = 0; j < m; j++) {
        int r = missing[j];
        size_t ex = s->examples[r];
        if (s->seqkd_cache[ex]) continue; /* the same prompt twice in one batch */
        int *c = malloc(sizeof(int) * (size_t)(s->batch.cap + 3));
        if (!c) return gkd_error(GKD_ENOMEM, "SeqKD cache: out of memory");
        c[0] = s->batch.prompt_len[r];
        c[1] = s->batch.len[r];
        c[2] = s->batch.eos[r];
        memcpy(c + 3, s->batch.tokens + (size_t)r * s->batch.cap, sizeof(int) * (size_t)s->batch.cap);
        s->seqkd_cache[ex] = c;
    }
    return 0;
}

static int replay_rows(gkd_distill_state *s, long step) {
    int n = rows_with_source(s, GKD_SRC_REPLAY, s->rows);
    if (n == 0) return 0;
    gkd_seqbatch sub = first_rows(&s->gathered, n);
    int rc = gkd_schedule_replay(s->schedule, step - 1, &sub, NULL);
    if (rc) return gkd_error_wrap(rc, "replay");
    for (int j = 0; j < n; j++) copy_row(&s->batch, s->rows[j], &sub, j);
    return 0;
}

/* Fill s->batch for `step` (1-based) and record the step's sources. */
static int build_batch(gkd_distill_state *s, long step) {
    const int B = s->o.batch;
    int rc;
    size_t ntrain = gkd_task_size(s->task, GKD_SPLIT_TRAIN);
    gkd_rng rng = gkd_rng_derive(s->o.seed, GKD_RNG_DATA, (uint64_t)step, 0);
    for (int b = 0; b < B; b++) s->examples[b] = gkd_rng_below(&rng, (uint32_t)ntrain);
    if ((rc = gkd_schedule_step(s->schedule, step - 1, B, s->choices))) return rc;
    for (int b = 0; b < B; b++) {
        int with_ref = s->choices[b].source == GKD_SRC_DATA;
        if ((rc = encode_example(s, &s->batch, b, s->examples[b], with_ref))) return rc;
    }
    if (s->tcache && (rc = gkd_teacher_cache_fill_batch(s))) return rc;
    for (size_t i = 0; i < (size_t)B * s->batch.cap; i++) s->iw[i] = 1.0f;
    int n = rows_with_source(s, GKD_SRC_STUDENT, s->rows);
    for (int j = 0; j < n; j++) s->stream_ids[j] = rollout_stream(step, B, s->rows[j]);
    if (n && (rc = generate_rows(s, s->student_sampler, 0, s->rows, n, s->stream_ids))) return rc;
    n = rows_with_source(s, GKD_SRC_MIXED, s->rows);
    for (int j = 0; j < n; j++) s->stream_ids[j] = rollout_stream(step, B, s->rows[j]);
    if (n && (rc = generate_rows(s, s->mixed_sampler, (float)s->o.schedule.teacher_mix, s->rows, n,
                                 s->stream_ids)))
        return rc;
    if ((rc = teacher_rows(s, step))) return rc;
    if ((rc = replay_rows(s, step))) return rc;
    gkd_replay *buf = gkd_schedule_buffer(s->schedule);
    for (int b = 0; b < B && buf; b++)
        if (s->choices[b].store && (rc = gkd_replay_push(buf, &s->batch, b))) return gkd_error_wrap(rc, "replay buffer");
    return 0;
}

/* Mean generated length of the rows that are rollouts (replayed ones included). */
static double mean_rollout_len(const gkd_distill_state *s) {
    const gkd_seqbatch *b = &s->batch;
    double gen = 0;
    int rollouts = 0;
    for (int r = 0; r < b->B; r++) {
        gkd_source src = s->choices[r].source;
        if (src == GKD_SRC_STUDENT || src == GKD_SRC_MIXED || src == GKD_SRC_TEACHER || src == GKD_SRC_REPLAY) {
            gen += b->len[r] - b->prompt_len[r];
            rollouts++;
        }
    }
    return rollouts ? gen / rollouts : 0;
}

/* Lay the step's batch out for the loss; the importance weights count only
 * with mix_importance (they are 1 on rows that were not teacher-mixed). */
static void layout_batch(gkd_distill_state *s, gkd_step_stats *st) {
    gkd_batch_layout_fill(&s->layout, &s->batch, s->o.mix_importance ? s->iw : NULL, s->o.per_sequence);
    st->tokens = s->layout.loss_tokens;
    st->rollout_len = mean_rollout_len(s);
}

static int check_finite_grads(const gkd_model *m, long step) {
    const float *g = m->grads_memory;
    for (int k = 0; k < m->num_tensors; k++) {
        for (size_t i = 0; i < m->param_sizes[k]; i++)
            if (!isfinite(g[i]))
                return gkd_error(GKD_ENAN, "step %ld: non-finite gradient in tensor '%s'", step,
                                 gkd_model_tensor_name(m, k));
        g += m->param_sizes[k];
    }
    return 0;
}

/* The hybrid term: cross-entropy on the ground truth of the same prompts,
 * laid out in its own batch, so the step's batch and layout stay as they
 * are and the loss can be recomputed on them. */
static int hybrid_ce(gkd_distill_state *s, long step, double *ce) {
    const int B = s->o.batch, V = s->student->config.vocab_size;
    int rc = 0;
    for (int b = 0; b < B; b++)
        if ((rc = encode_example(s, &s->truth, b, s->examples[b], 1))) return rc;
    gkd_batch_layout_fill(&s->truth_layout, &s->truth, NULL /* ground truth was not sampled */,
                          s->o.per_sequence);
    const gkd_batch_layout *l = &s->truth_layout;
    if ((rc = gkd_model_forward(s->student, l->tokens, B, l->T))) return rc;
    const int N = B * l->T;
    memset(s->dlogits, 0, sizeof(float) * (size_t)N * V);
    *ce = gkd_weighted_ce(s->dlogits, s->ce_row_loss, s->student->logits, l->targets, l->weight, N, V, s->o.ce_weight);
    if (!isfinite(*ce)) return gkd_error(GKD_ENAN, "step %ld: the cross-entropy term is not finite", step);
    return gkd_model_backward(s->student, s->dlogits);
}

/* Index of the first non-finite value of x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* Name of m's parameter tensor holding a value beyond what a checkpoint
 * holds (GKD_CHECKPOINT_MAX_ABS_WEIGHT), or NULL. */
static const char *unbounded_param_tensor(const gkd_model *m) {
    const float *p = m->params_memory;
    for (int k = 0; k < m->num_tensors; k++) {
        for (size_t i = 0; i < m->param_sizes[k]; i++)
            if (fabsf(p[i]) > GKD_CHECKPOINT_MAX_ABS_WEIGHT) return gkd_model_tensor_name(m, k);
        p += m->param_sizes[k];
    }
    return NULL;
}

/* Name of m's parameter tensor holding a non-finite value, or NULL. */
static const char *nonfinite_param_tensor(const gkd_model *m) {
    const float *p = m->params_memory;
    for (int k = 0; k < m->num_tensors; k++) {
        if (first_nonfinite(p, m->param_sizes[k]) < m->param_sizes[k]) return gkd_model_tensor_name(m, k);
        p += m->param_sizes[k];
    }
    return NULL;
}

/* Rows of the teacher's logits holding NaN or Inf, noted as they are
 * computed (whole or by chunks) for the checks of the loss. */
typedef struct {
    int any;     /* some row does */
    int in_loss; /* a row the loss reads does (loss_reads_row) */
    int first;   /* the first such row, when any */
} nonfinite_rows;

/* A non-finite loss: say which tensor went bad first along the data path
 * (teacher parameters, teacher logits, student parameters, student logits).
 * teacher_scored: the step computed teacher logits; bad: what they held. */
static int nonfinite_loss_error(const gkd_distill_state *s, long step, double loss, int teacher_scored,
                                const nonfinite_rows *bad) {
    size_t NV = (size_t)s->o.batch * s->layout.T * s->student->config.vocab_size;
    const char *name;
    if (teacher_scored && (name = nonfinite_param_tensor(s->teacher)))
        return gkd_error(GKD_ENAN, "step %ld: the loss is not finite (%g): teacher tensor '%s' holds NaN or Inf",
                         step, loss, name);
    if (teacher_scored && bad->any)
        return gkd_error(GKD_ENAN, "step %ld: the loss is not finite (%g): tensor 'teacher logits' holds NaN or Inf",
                         step, loss);
    if ((name = nonfinite_param_tensor(s->student)))
        return gkd_error(GKD_ENAN, "step %ld: the loss is not finite (%g): student tensor '%s' holds NaN or Inf",
                         step, loss, name);
    if (first_nonfinite(s->student->logits, NV) < NV)
        return gkd_error(GKD_ENAN, "step %ld: the loss is not finite (%g): tensor 'student logits' holds NaN or Inf",
                         step, loss);
    return gkd_error(GKD_ENAN, "step %ld: the loss is not finite (%g) although both models' logits are", step, loss);
}

/* Row n of the batch is one the loss's checks read. */
static int loss_reads_row(const gkd_batch_layout *l, int n) { return l->mask[n] != 0 || l->weight[n] != 0; }

/* 1 if every logit of the rows the loss reads is finite. */
static int loss_rows_finite(const gkd_distill_state *s, const float *z) {
    const gkd_batch_layout *l = &s->layout;
    const int N = l->B * l->T, V = s->student->config.vocab_size;
    for (int n = 0; n < N; n++) {
        if (!loss_reads_row(l, n)) continue;
        if (first_nonfinite(z + (size_t)n * V, (size_t)V) < (size_t)V) return 0;
    }
    return 1;
}

/* Note which rows row0 .. row0 + n - 1 of teacher logits z (n, V) hold NaN or Inf. */
static void note_nonfinite_rows(nonfinite_rows *bad, const gkd_distill_state *s, const float *z, int row0, int n) {
    const size_t V = (size_t)s->student->config.vocab_size;
    for (int i = 0; i < n; i++) {
        if (first_nonfinite(z + (size_t)i * V, V) == V) continue;
        if (!bad->any) bad->first = row0 + i;
        bad->any = 1;
        bad->in_loss |= loss_reads_row(&s->layout, row0 + i);
    }
}

/* The teacher's forward on the step's batch (its head too unless
 * hidden_only): on the student's tokens, or on its view with contexts. */
static int teacher_forward(gkd_distill_state *s, int hidden_only) {
    const gkd_batch_layout *l = &s->layout;
    const int *tokens = l->tokens, B = s->o.batch;
    int T = l->T, rc;
    if (gkd_teacher_view_on(s)) {
        if ((rc = gkd_teacher_view_tokens(s))) return rc;
        tokens = s->tv_tokens;
        T = s->tv_T;
    }
    return hidden_only ? gkd_model_forward_hidden(s->teacher, tokens, B, T) : gkd_model_forward(s->teacher, tokens, B, T);
}

/* Rows r0 .. r0 + n - 1 of the teacher's logits laid out as the student's. */
static int teacher_logit_rows(gkd_distill_state *s, int r0, int n, float *out) {
    if (gkd_teacher_view_on(s)) return gkd_teacher_view_logit_rows(s, r0, n, out);
    return gkd_model_logits_rows(s->teacher, r0, n, out);
}

/* s->topk from the teacher's head run a chunk of rows at a time after
 * gkd_model_forward_hidden: the rows gkd_sparse_rows_from_logits builds
 * from the whole (B, T, V) logits, which are never held. Rows are built
 * while no logit has been non-finite (the step then fails; bad says how). */
static int teacher_topk_rows(gkd_distill_state *s, nonfinite_rows *bad) {
    const gkd_batch_layout *l = &s->layout;
    const int N = s->o.batch * l->T;
    int rc = teacher_forward(s, 1);
    if (rc) return rc;
    s->topk.N = N;
    const int chunk = s->teacher_chunk_rows;
    for (int r0 = 0; r0 < N; r0 += chunk) {
        const int n = N - r0 < chunk ? N - r0 : chunk;
        if ((rc = teacher_logit_rows(s, r0, n, s->teacher_chunk))) return rc;
        note_nonfinite_rows(bad, s, s->teacher_chunk, r0, n);
        if (!bad->any && (rc = gkd_sparse_rows_from_logit_rows(&s->topk, r0, n, s->teacher_chunk))) return rc;
    }
    return 0;
}

/* The dense divergence against the teacher's head run a chunk of rows at a
 * time after gkd_model_forward_hidden: each chunk is evaluated as soon as
 * it is computed, continuing one sum, so *divergence and s->dlogits have
 * the bits of gkd_divergence_eval on the whole logits, which are never
 * held. With evaluate 0 (the student's logits are not finite), or once a
 * row the loss reads is not, only the rows are noted, for the error. */
static int teacher_dense_by_chunks(gkd_distill_state *s, const float *zs, int evaluate, nonfinite_rows *bad,
                                   double *divergence) {
    const gkd_batch_layout *l = &s->layout;
    const int N = s->o.batch * l->T, V = s->student->config.vocab_size;
    double total = 0.0;
    const int chunk = s->teacher_chunk_rows;
    for (int r0 = 0; r0 < N; r0 += chunk) {
        const int n = N - r0 < chunk ? N - r0 : chunk;
        const size_t o = (size_t)r0 * V;
        int rc = teacher_logit_rows(s, r0, n, s->teacher_chunk);
        if (rc) return rc;
        note_nonfinite_rows(bad, s, s->teacher_chunk, r0, n);
        if (evaluate && !bad->in_loss)
            total = gkd_divergence_eval_continue(total, &s->o.divergence, zs + o, s->teacher_chunk, l->weight + r0,
                                                 n, V, s->o.loss_temperature, 1.0f, NULL, s->dlogits + o);
    }
    *divergence = total;
    return 0;
}

int gkd_distill_prepare(gkd_distill_state *s, long step, gkd_step_stats *st) {
    memset(st, 0, sizeof *st);
    st->ce = NAN; /* no hybrid term (yet): an empty ce column, not an error */
    st->rationale = NAN;
    int rc = build_batch(s, step);
    if (rc) return gkd_error_wrap(rc, "step %ld", step);
    for (int b = 0; b < s->o.batch; b++) st->source_count[s->choices[b].source]++;
    layout_batch(s, st);
    return 0;
}

void gkd_distill_layout(gkd_distill_state *s, gkd_step_stats *st) { layout_batch(s, st); }

int gkd_distill_loss_grad(gkd_distill_state *s, long step, gkd_step_stats *st) {
    const gkd_batch_layout *l = &s->layout;
    const int B = s->o.batch, V = s->student->config.vocab_size;
    const int T = l->T, N = B * T;
    const int scored = needs_teacher_scores(&s->o), by_chunks = scored && teacher_by_chunks(&s->o);
    const int topk = s->o.teacher_topk > 0;
    int rc;
    double t1 = gkd_now();
    gkd_model_zero_grad(s->student);
    const float *zt = NULL; /* the teacher's whole logits, when they are held */
    nonfinite_rows bad = {0, 0, 0};
    /* A batch whose every row comes from the teacher cache needs no teacher. */
    const int all_cached = topk && gkd_teacher_cache_all_cached(s);
    if (topk && scored) s->topk.N = N;
    if (by_chunks && topk) {
        if (!all_cached && (rc = teacher_topk_rows(s, &bad))) return rc;
    } else if (by_chunks) {
        /* the head runs with the loss below, a chunk at a time */
        if ((rc = teacher_forward(s, 1))) return rc;
    } else if (scored && !all_cached) {
        if ((rc = teacher_forward(s, 0))) return rc;
        zt = gkd_teacher_view_on(s) ? gkd_teacher_view_gather(s) : s->teacher->logits;
        note_nonfinite_rows(&bad, s, zt, 0, N);
    }
    double t2 = gkd_now();
    st->time_teacher = t2 - t1;
    if ((rc = gkd_model_forward(s->student, l->tokens, B, T))) return rc;
    const float *zs = s->student->logits;
    memset(s->dlogits, 0, sizeof(float) * (size_t)N * V);
    const int student_finite = loss_rows_finite(s, zs);
    double dense_by_chunks = 0.0;
    if (by_chunks && !topk &&
        (rc = teacher_dense_by_chunks(s, zs, student_finite, &bad, &dense_by_chunks)))
        return rc;
    /* The divergences skip terms whose probability is not > 0, which a NaN
     * never is, so non-finite logits could pass as a finite loss. */
    if (bad.in_loss || !student_finite) return nonfinite_loss_error(s, step, NAN, scored, &bad);
    const float tau = s->o.loss_temperature;
    switch (s->o.divergence.kind) {
    case GKD_DIV_CE:
        st->divergence = gkd_weighted_ce(s->dlogits, s->ce_row_loss, zs, l->targets, l->weight, N, V, 1.0f);
        st->loss = st->divergence;
        break;
    case GKD_DIV_PG_RKL: {
        for (int b = 0; b < B; b++)
            if (s->choices[b].source != GKD_SRC_STUDENT)
                return gkd_error(GKD_EINVAL, "step %ld: pg_rkl needs student rollouts, got a %s batch",
                                 step, gkd_source_name(s->choices[b].source));
        double r = gkd_pg_rkl_rewards(s->rewards, zs, zt, l->targets, l->mask, N, V, tau);
        (void)r;
        gkd_pg_advantages(s->advantages, s->rewards, l->mask, B, T, s->o.pg_advantage);
        st->loss = gkd_pg_loss(zs, l->targets, s->advantages, l->weight, N, V, tau, 1.0f, s->dlogits);
        /* Logged: the sampled-token estimate of reverse KL, mean like the loss. */
        double est = 0;
        for (int n = 0; n < N; n++) est -= (double)l->weight[n] * s->rewards[n];
        st->divergence = est;
        break;
    }
    default:
        if (topk) {
            /* The teacher as its top-k rows: what a cache of them would hold. */
            if (!by_chunks) {
                if (zt && (rc = gkd_sparse_rows_from_logits(&s->topk, zt))) return gkd_error_wrap(rc, "step %ld", step);
            } else if (bad.any) { /* in rows the loss does not read: the rows' own check */
                return gkd_error(GKD_EINVAL,
                                 "step %ld: sparse teacher: row %d of the teacher logits has a non-finite value",
                                 step, bad.first);
            }
            /* Cached sequences' rows replace the live ones (same bits). */
            if (s->tcache && (rc = gkd_teacher_cache_fill_topk(s))) return gkd_error_wrap(rc, "step %ld", step);
            st->divergence = gkd_sparse_divergence_eval(&s->o.divergence, (gkd_sparse_mode)s->o.topk_tail, zs,
                                                        &s->topk, l->weight, 1.0f, NULL, s->dlogits);
        } else if (by_chunks) {
            st->divergence = dense_by_chunks;
        } else {
            st->divergence = gkd_divergence_eval(&s->o.divergence, zs, zt, l->weight, N, V, tau, 1.0f,
                                                 NULL, s->dlogits);
        }
        st->loss = st->divergence;
    }
    if (!isfinite(st->loss)) return nonfinite_loss_error(s, step, st->loss, scored, &bad);
    if ((rc = gkd_model_backward(s->student, s->dlogits))) return rc;
    if (s->o.ce_weight > 0) {
        if ((rc = hybrid_ce(s, step, &st->ce))) return rc;
        st->loss += s->o.ce_weight * st->ce;
    }
    if (gkd_rationale_term_active(s)) {
        if ((rc = gkd_rationale_term(s, step, &st->rationale))) return rc;
        st->loss += s->o.rationale_weight * st->rationale;
    }
    st->time_student = gkd_now() - t2;
    return check_finite_grads(s->student, step);
}

int gkd_distill_update(gkd_distill_state *s, long step, gkd_step_stats *st) {
    double t3 = gkd_now();
    st->grad_norm = gkd_clip_grad_norm(s->student->grads_memory, s->student->num_params, s->o.clip);
    if (!isfinite(st->grad_norm))
        return gkd_error(GKD_ENAN, "step %ld: the gradient norm is not finite", step);
    gkd_lr_schedule lr = {s->o.lr, s->o.lr_min, s->o.warmup, s->o.steps};
    st->lr = gkd_lr_at(&lr, step - 1);
    int rc = gkd_adamw_step(s->opt, s->student->params_memory, s->student->grads_memory,
                            s->student->num_params, (float)st->lr);
    if (rc) return rc;
    const char *bad = nonfinite_param_tensor(s->student);
    if (bad)
        return gkd_error(GKD_ENAN, "step %ld: the update made student tensor '%s' non-finite", step, bad);
    /* A checkpoint refuses weights beyond the bound (they overflow the
     * first product), so a run stops before writing one it cannot load. */
    if ((bad = unbounded_param_tensor(s->student)))
        return gkd_error(GKD_ENAN, "step %ld: the update made student tensor '%s' exceed |w| <= %g", step, bad,
                         (double)GKD_CHECKPOINT_MAX_ABS_WEIGHT);
    st->time_update = gkd_now() - t3;
    return 0;
}

int gkd_distill_step(gkd_distill_state *s, long step, gkd_step_stats *st) {
    double t0 = gkd_now();
    int rc = gkd_distill_prepare(s, step, st);
    if (rc) return rc;
    st->time_sample = gkd_now() - t0;
    if ((rc = gkd_distill_loss_grad(s, step, st))) return rc;
    return gkd_distill_update(s, step, st);
}
