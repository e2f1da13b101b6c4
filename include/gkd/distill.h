/* The distillation loop. One step: pick the batch's data source → build its
 * token sequences (student rollouts, teacher rollouts, teacher-mixed
 * rollouts, ground truth, replay) → teacher scores every token in one
 * forward pass (no grad) → student forward → divergence value and dL/dlogits
 * → student backward → clip → AdamW. Supervised training (a teacher from
 * scratch, the SFT student) is the same loop with divergence `ce` on ground
 * truth and no teacher.
 *
 * Everything random is drawn from streams derived from (seed, purpose, step,
 * index), so a run is reproducible byte for byte and resumes exactly from a
 * checkpoint: the only carried state is the model, the optimizer, the
 * schedule (adaptive threshold, replay buffer) and the step. */
#ifndef GKD_DISTILL_H
#define GKD_DISTILL_H

#include <stdint.h>

#include "gkd/divergence.h"
#include "gkd/model.h"
#include "gkd/sampler.h"
#include "gkd/schedule.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where the rationale targets of a multitask run come from: the task's
 *  own rationales, or the teacher's greedy generation from the rationale
 *  prompt, made once per training example and reused. */
typedef enum { GKD_RATIONALE_DATA = 0, GKD_RATIONALE_TEACHER = 1 } gkd_rationale_source;

typedef struct {
    /* what the student minimizes */
    gkd_divergence divergence;  /* ce = supervised on ground truth (no teacher needed) */
    float ce_weight;            /* hybrid: + ce_weight * CE on the ground truth of the same prompts */
    float loss_temperature;     /* tau of the divergence, separate from the sampling temperature */
    int teacher_topk;           /* 0: dense teacher distributions; k: each position's top-k
                                   (gkd_sparse_rows), the rest as topk_tail says */
    int topk_tail;              /* gkd_sparse_mode: GKD_SPARSE_RENORM or GKD_SPARSE_TAIL */
    int per_sequence;           /* reduction: 0 = mean over valid tokens of the batch,
                                   1 = mean per sequence, then over sequences */
    gkd_pg_advantage pg_advantage; /* pg_rkl: per-token or reward-to-go */
    int mix_importance;         /* teacher-mixed batches: weight tokens by the clipped
                                   single-step importance weight p_S / p_mix */
    /* distilling step-by-step (task targets multitask; docs/distillation.md) */
    float rationale_weight;     /* w: loss = label loss + w * rationale loss */
    int rationale_source;       /* gkd_rationale_source of the rationale targets */
    /* where batches come from */
    gkd_schedule_options schedule;
    int seqkd_cache;            /* 1: teacher outputs generated once per prompt and reused
                                   (offline SeqKD, Kim & Rush 2016) */
    gkd_sample_options sample;  /* rollouts (student, teacher, mixed) */
    /* optimization */
    long steps;
    int batch;
    double lr, lr_min;
    long warmup;
    float weight_decay;
    float clip;                 /* global-norm clip, 0 = off */
    uint64_t seed;
    /* bookkeeping */
    long eval_every;            /* 0 = only at the end */
    long checkpoint_every;      /* 0 = only at the end */
    int eval_n;                 /* eval examples per evaluation */
    int eval_samples;           /* sampled completions per eval prompt (sample metrics) */
    float eval_temperature;     /* for the sampled completions */
    int eval_greedy;            /* 1: exact match etc. from greedy decoding; 0: from a sample */
    int eval_bleu_smoothing;    /* gkd_bleu_smoothing of the bleu column (0: none) */
    int quiet;                  /* no progress callback output */
    /* where teacher rows come from */
    const char *teacher_cache;  /* NULL, or a gkd teacher-cache file (teacher_cache.h): the
                                   rows of its source (data or SeqKD) take their tokens and
                                   teacher rows from it; needs teacher_topk */
} gkd_distill_options;

#define GKD_DISTILL_OPTIONS_INIT                                                              \
    {.divergence = {GKD_DIV_FKL, 0}, .ce_weight = 0, .loss_temperature = 1.0f,               \
     .per_sequence = 0, .pg_advantage = GKD_PG_PER_TOKEN, .mix_importance = 0,                \
     .rationale_weight = 1.0f, .rationale_source = GKD_RATIONALE_DATA,                        \
     .schedule = GKD_SCHEDULE_OPTIONS_INIT, .seqkd_cache = 0, .sample = GKD_SAMPLE_OPTIONS_INIT, .steps = 100, \
     .batch = 32, .lr = 1e-3, .lr_min = 0, .warmup = 0, .weight_decay = 0, .clip = 1.0f,     \
     .seed = 1, .eval_every = 0, .checkpoint_every = 0, .eval_n = 200, .eval_samples = 1,    \
     .eval_temperature = 1.0f, .eval_greedy = 1, .quiet = 1}

/** Called after every step (and evaluation) with a one-line summary; may be NULL. */
typedef void (*gkd_progress_fn)(void *ctx, long step, long steps, const char *line);

/** Run (or resume) a distillation/training job writing into `dir`:
 *  metrics.csv (one row per step), eval.csv (one row per evaluation),
 *  timings.csv (wall-clock per phase; the only non-reproducible file),
 *  checkpoint.ckpt (student, optimizer, step, schedule state; atomically
 *  replaced every checkpoint_every steps) and final.ckpt at the end.
 *  If dir/checkpoint.ckpt exists the run resumes from it: CSV rows after the
 *  checkpoint's step are discarded and the run continues to the same result
 *  as an uninterrupted one. dir/options.txt records what the run was made
 *  with (the task's examples, the student's initial and the teacher's
 *  weights as hashes, every option that changes what is trained or
 *  logged); a resume with anything else is refused with GKD_EMISMATCH
 *  naming the first difference, before any file changes. `teacher` may be NULL only for divergence `ce`.
 *  A non-finite loss or gradient stops the run with GKD_ENAN naming the
 *  step and the tensor, leaving the last checkpoint intact. */
int gkd_distill_run(gkd_model *student, gkd_model *teacher, const gkd_tokenizer *tok,
                    const gkd_task *task, const gkd_distill_options *opt, const char *dir,
                    gkd_progress_fn progress, void *progress_ctx);

/** The teacher's reference evaluation for a run: the teacher evaluated as
 *  the student with the run's evaluation settings (prompts, samples,
 *  temperature, seed), written to `dir`/teacher_eval.csv (eval.csv's
 *  columns, one row at step 0). `gkd table --reference teacher` reads it. */
int gkd_distill_eval_teacher(gkd_model *teacher, const gkd_tokenizer *tok, const gkd_task *task,
                             const gkd_distill_options *opt, const char *dir);

#ifdef __cplusplus
}
#endif

#endif
