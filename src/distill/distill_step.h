/* Private to the distillation loop: the state one step needs, and the step. */
#ifndef GKD_DISTILL_STEP_H
#define GKD_DISTILL_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/distill.h"
#include "gkd/optim.h"
#include "gkd/replay.h"
#include "gkd/schedule.h"
#include "gkd/sparse_teacher.h"
#include "gkd/teacher_cache.h"

#include "batch_layout.h"

/* Rows of the teacher's head computed at a time when its logits are not
 * held whole: as many as fit in GKD_TEACHER_CHUNK_BYTES, at least
 * GKD_TEACHER_CHUNK (64 MiB: 333 rows at V = 50257 instead of B T V
 * floats, 823 MB at B T = 4096; a small vocabulary runs in one chunk, as
 * fast as the whole head). The results do not depend on it. */
#define GKD_TEACHER_CHUNK 256
#define GKD_TEACHER_CHUNK_BYTES ((size_t)64 << 20)

typedef struct {
    gkd_distill_options o;
    gkd_model *student, *teacher;
    const gkd_tokenizer *tok;
    const gkd_task *task;
    gkd_adamw *opt;
    gkd_schedule *schedule;
    gkd_sampler *student_sampler, *teacher_sampler, *mixed_sampler;
    gkd_seqbatch batch;          /* the step's sequences, (B, cap) */
    gkd_seqbatch gathered;       /* (B, cap) scratch: the rows of one source, gathered for a
                                    sampler or filled from the replay buffer */
    size_t *examples;            /* (B) train example of each row */
    gkd_schedule_choice *choices;/* (B) source of each row */
    int *rows;                   /* (B) scratch: rows with one source */
    uint64_t *stream_ids;        /* (B) scratch: sampling streams */
    gkd_batch_layout layout;     /* batch laid out for the loss: (B, T) tokens, targets, weights */
    gkd_seqbatch truth;          /* ce_weight > 0: ground truth of the step's prompts, (B, cap) */
    gkd_batch_layout truth_layout; /* ce_weight > 0: truth laid out for the hybrid CE term */
    float *iw, *gathered_iw;     /* (B, cap) importance weights of teacher-mixed tokens */
    float *rewards, *advantages; /* (B, cap) pg_rkl, used as (B, T) */
    float *dlogits;              /* (B, cap, V), used as (B, T, V) */
    gkd_sparse_rows topk;        /* teacher_topk > 0: the teacher's rows, (B cap) allocated, B T used */
    int teacher_chunk_rows;      /* rows of teacher_chunk (see GKD_TEACHER_CHUNK) */
    float *teacher_chunk;        /* (teacher_chunk_rows, V): the teacher's logits of one chunk of rows,
                                    when they are not held whole (fkl..tvd, gkd's products) */
    double *ce_row_loss;         /* (B, cap) scratch of the cross-entropy, one value per position */
    gkd_teacher_cache *tcache;   /* teacher_cache: the offline cache, or NULL */
    gkd_source tcache_source;    /* the schedule source its sequences stand for */
    unsigned char *cached;       /* (B) 1: the row's tokens and teacher rows are the cache's */
    int **seqkd_cache;           /* per train example: {prompt_len, len, eos, tokens[cap]} */
    size_t seqkd_cache_n;
    gkd_seqbatch rationale;      /* multitask: the rationale task of the step's examples, (B, cap) */
    gkd_batch_layout rationale_layout;
    int **rationale_cache;       /* rationale_source teacher: per train example, as seqkd_cache */
    size_t rationale_cache_n;
    /* Context distillation (teacher_view.c): all NULL/0 when no example has a context. */
    int *ctx_tokens;             /* the train examples' context tokens, concatenated */
    size_t *ctx_off;             /* (train n) where example i's start in ctx_tokens */
    int *ctx_n;                  /* (train n) its number of tokens (c_i) */
    int *tv_tokens;              /* (B, teacher context) the teacher's view of the step's batch */
    int *tv_shift;               /* (B) c_b: teacher position of student position t is t + c_b */
    int tv_T;                    /* the teacher view's length this step */
    float *tv_logits;            /* (B, cap, V) teacher rows aligned on the student's, when held whole */
    gkd_seqbatch tv_batch;       /* (B, teacher context) scratch of SeqKD with contexts */
    const int **mix_ctx;         /* teacher_mix: (B) the contexts of the rows of one mixed rollout */
    int *mix_ctx_n;              /* teacher_mix: (B) their lengths */
} gkd_distill_state;

typedef struct {
    int source_count[GKD_SRC_REPLAY + 1];
    double loss, divergence, ce, grad_norm, lr, rollout_len;
    double rationale;            /* multitask: the rationale loss (before its weight); NAN without */
    long tokens;
    double time_sample, time_teacher, time_student, time_update;
} gkd_step_stats;

/** The sampling stream of train example `example`'s SeqKD generation when
 *  teacher outputs are generated once per prompt (seqkd_cache, and the
 *  offline teacher cache): the example index in a range of its own, apart
 *  from the (step, row) streams of live rollouts, so the output is the same
 *  whenever it is generated. */
static inline uint64_t gkd_seqkd_stream(size_t example) { return (UINT64_C(1) << 62) + example; }

/* The offline teacher cache's side of the step (teacher_cache.c). */
/** Open `path` into s->tcache and check it was made for this run (k,
 *  tau, tokenizer, task split, teacher, source against the schedule). */
int gkd_teacher_cache_attach(gkd_distill_state *s, const char *path);
/** Rows of the cache's source take their sequences from it (s->cached). */
int gkd_teacher_cache_fill_batch(gkd_distill_state *s);
/** 1 if every row of the batch is cached: the teacher need not run. */
int gkd_teacher_cache_all_cached(const gkd_distill_state *s);
/** The cached rows' teacher rows into s->topk (laid out as s->layout). */
int gkd_teacher_cache_fill_topk(gkd_distill_state *s);

/* Distilling step-by-step (rationale_term.c). */
/** Check the rationale options; allocate the term when the task has a
 *  rationale split and rationale_weight > 0. */
int gkd_rationale_term_init(gkd_distill_state *s);
void gkd_rationale_term_free(gkd_distill_state *s);
/** 1 when the step adds the rationale term. */
int gkd_rationale_term_active(const gkd_distill_state *s);
/** Cross-entropy of the rationale task on the step's examples (*loss,
 *  the mean over its own loss tokens), its gradient times
 *  rationale_weight accumulated into the student's. */
int gkd_rationale_term(gkd_distill_state *s, long step, double *loss);

/** Weighted cross-entropy of targets: returns sum_n w_n * CE_n and
 *  accumulates scale * w_n * dCE_n/dz into dlogits; row_loss (N) is
 *  scratch (distill.c). */
double gkd_weighted_ce(float *dlogits, double *row_loss, const float *logits, const int *targets, const float *w,
                       int N, int V, float scale);
/* The teacher's view of the batch when examples have contexts (teacher_view.c). */
/** Encode the train examples' contexts and check the combination: the
 *  teacher's context window, no teacher cache, replay only with one
 *  context for all. Nothing (0) when no example has a context. */
int gkd_teacher_view_init(gkd_distill_state *s);
void gkd_teacher_view_free(gkd_distill_state *s);
/** 1 when the teacher sees contexts. */
static inline int gkd_teacher_view_on(const gkd_distill_state *s) { return s->ctx_n != NULL; }
/** s->tv_tokens, tv_shift, tv_T from s->batch and s->layout: row b is
 *  the student's row with example b's context after BOS. */
int gkd_teacher_view_tokens(gkd_distill_state *s);
/** Teacher logits (n, V) for the student's flat rows r0 .. r0 + n - 1 of
 *  s->layout, after gkd_model_forward_hidden(teacher, tv_tokens, B, tv_T):
 *  row b T + t is the teacher's row b tv_T + t + c_b (zeros past its end,
 *  where the loss reads nothing). */
int gkd_teacher_view_logit_rows(gkd_distill_state *s, int r0, int n, float *out);
/** The same from the whole logits of gkd_model_forward into s->tv_logits. */
const float *gkd_teacher_view_gather(gkd_distill_state *s);
/** SeqKD: the teacher completes rows[0..n) of s->batch (prompts) seeing
 *  their contexts; the student's rows get the plain prompt and the
 *  teacher's continuation. */
int gkd_teacher_view_generate(gkd_distill_state *s, const int *rows, int n, const uint64_t *streams);
/** Teacher-mixed rows: the contexts of rows[0..n)'s examples, after BOS,
 *  for the mixed sampler's next call on those rows (its j-th row is
 *  rows[j]), so the teacher of the mixture sees them. */
int gkd_teacher_view_mix_context(gkd_distill_state *s, const int *rows, int n);

int gkd_distill_state_init(gkd_distill_state *s, gkd_model *student, gkd_model *teacher,
                           const gkd_tokenizer *tok, const gkd_task *task,
                           const gkd_distill_options *opt);
void gkd_distill_state_free(gkd_distill_state *s);

/** Step `step` (1-based, in order): batch, scores, loss, update; the
 *  three calls below in sequence. */
int gkd_distill_step(gkd_distill_state *s, long step, gkd_step_stats *st);

/* The parts of a step, exposed for tests and benchmarks. */
/** Build the batch of `step` (sources, rollouts, replay) and lay it out. */
int gkd_distill_prepare(gkd_distill_state *s, long step, gkd_step_stats *st);
/** Recompute s->layout from s->batch (and st->tokens, st->rollout_len). */
void gkd_distill_layout(gkd_distill_state *s, gkd_step_stats *st);
/** Teacher and student forward on the prepared batch, loss (hybrid CE
 *  included), student gradients in student->grads_memory (zeroed first),
 *  finite checks. May be called repeatedly on the same batch. */
int gkd_distill_loss_grad(gkd_distill_state *s, long step, gkd_step_stats *st);
/** Clip, AdamW, finite check of the new parameters. */
int gkd_distill_update(gkd_distill_state *s, long step, gkd_step_stats *st);

#endif
