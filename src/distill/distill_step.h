/* Private to the distillation loop: the state one step needs, and the step. */
#ifndef GKD_DISTILL_STEP_H
#define GKD_DISTILL_STEP_H

#include <stddef.h>

#include "gkd/distill.h"
#include "gkd/optim.h"
#include "gkd/replay.h"
#include "gkd/schedule.h"

typedef struct {
    gkd_distill_options o;
    gkd_model *student, *teacher;
    const gkd_tokenizer *tok;
    const gkd_task *task;
    gkd_adamw *opt;
    gkd_schedule *schedule;
    gkd_sampler *student_sampler, *teacher_sampler, *mixed_sampler;
    gkd_seqbatch batch;          /* the step's sequences, (B, cap) */
    gkd_seqbatch sub;            /* rows handed to a sampler or the replay buffer */
    size_t *examples;            /* (B) train example of each row */
    gkd_schedule_choice *choices;/* (B) source of each row */
    int *rows;                   /* (B) scratch: rows with one source */
    uint64_t *stream_ids;        /* (B) scratch: sampling streams */
    int *targets_cap;            /* (B, cap) */
    float *mask_cap;             /* (B, cap) */
    int T;                       /* longest sequence of the step */
    int *tokens_bt, *targets_bt; /* (B, T) */
    float *mask_bt, *weight_bt;  /* (B, T) loss mask, and its normalized weights */
    float *iw, *sub_iw;          /* (B, cap) importance weights of teacher-mixed tokens */
    float *rewards, *advantages; /* (B, T) pg_rkl */
    float *dlogits;              /* (B, T, V) */
    double *ce_row_loss;         /* (B, cap) scratch of the cross-entropy, one value per position */
    int **seqkd_cache;           /* per train example: {prompt_len, len, eos, tokens[cap]} */
    size_t seqkd_cache_n;
} gkd_distill_state;

typedef struct {
    int source_count[GKD_SRC_REPLAY + 1];
    double loss, divergence, ce, grad_norm, lr, rollout_len;
    long tokens;
    double time_sample, time_teacher, time_student, time_update;
} gkd_step_stats;

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
/** Recompute s->T, tokens_bt, targets_bt, mask_bt and weight_bt from s->batch. */
void gkd_distill_layout(gkd_distill_state *s, gkd_step_stats *st);
/** Teacher and student forward on the prepared batch, loss (hybrid CE
 *  included), student gradients in student->grads_memory (zeroed first),
 *  finite checks. May be called repeatedly on the same batch. */
int gkd_distill_loss_grad(gkd_distill_state *s, long step, gkd_step_stats *st);
/** Clip, AdamW, finite check of the new parameters. */
int gkd_distill_update(gkd_distill_state *s, long step, gkd_step_stats *st);

#endif
