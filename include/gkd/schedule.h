/* The data-source schedule: per training step (or per example), where the
 * batch's sequences come from. Pure logic; the distillation step generates
 * or loads the sequences. Every draw comes from
 * gkd_rng_derive(seed, GKD_RNG_SCHEDULE, step, 0) (the step's choices) and
 * gkd_rng_derive(seed, GKD_RNG_REPLAY, step, i) (replayed example i), so a
 * schedule is a function of (options, seed, state) and state = next step +
 * adaptive threshold + last reference validation loss + replay buffer, which
 * gkd_schedule_save/load carry through a checkpoint.
 *
 * Decision for one draw (u, v, w uniform in [0, 1)):
 *   on-policy  = teacher_mix > 0 ? MIXED : STUDENT
 *   off-policy = v < seqkd ? TEACHER : DATA
 *   replay off:      u < lambda ? on-policy : off-policy          (GKD Alg. 1)
 *   replay fixed:    u < lambda ? (count >= replay_min && w < p_replay ? REPLAY
 *                                   : on-policy, stored) : off-policy
 *   replay adaptive (DistiLLM; lambda unused, th = threshold,
 *                    s = th * ratio(step)):
 *                    u < s or (u < th and buffer not full) -> on-policy, stored
 *                    else u < th -> REPLAY, else off-policy
 * "stored" means the caller pushes the generated sequences into the buffer.
 * Strict "<" makes lambda = 0 never and lambda = 1 always on-policy. */
#ifndef GKD_SCHEDULE_H
#define GKD_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/replay.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_SRC_DATA = 0, /* ground-truth outputs (supervised KD) */
    GKD_SRC_TEACHER,  /* teacher rollouts (sequence-level KD) */
    GKD_SRC_STUDENT,  /* student rollouts (on-policy, GKD) */
    GKD_SRC_MIXED,    /* teacher-mixed sampling (MiniLLM) */
    GKD_SRC_REPLAY    /* earlier student rollouts from the replay buffer */
} gkd_source;

/** "data", "teacher", "student", "mixed", "replay". */
const char *gkd_source_name(gkd_source s);

typedef enum {
    GKD_REPLAY_OFF = 0,
    GKD_REPLAY_FIXED,   /* an on-policy batch is a buffer draw with probability p_replay */
    GKD_REPLAY_ADAPTIVE /* DistiLLM's adaptive off-policy schedule */
} gkd_replay_mode;

/** DistiLLM's replay_ratio: share of the threshold spent on fresh rollouts
 *  once the buffer is full. ratio(step) = 1 - step/total_steps (decreasing,
 *  DistiLLM's default), 0.5 (constant), step/total_steps (increasing),
 *  clamped to [0, 1]. */
typedef enum {
    GKD_REPLAY_RATIO_DECREASING = 0,
    GKD_REPLAY_RATIO_CONSTANT,
    GKD_REPLAY_RATIO_INCREASING
} gkd_replay_ratio;

/** What a validation loss is compared with in the adaptive schedule. */
typedef enum {
    GKD_VALREF_LAST_RAISE = 0, /* DistiLLM's code: the loss at the last raise (or the first) */
    GKD_VALREF_PREVIOUS        /* the previous validation, whatever happened then */
} gkd_valref;

typedef struct {
    double lambda;          /* [0,1] probability of an on-policy batch */
    int per_example;        /* 1: every example of the batch chooses independently */
    double seqkd;           /* [0,1] share of off-policy choices that are teacher rollouts */
    double teacher_mix;     /* [0,1] > 0 turns on-policy choices into teacher-mixed sampling */
    gkd_replay_mode replay;
    double p_replay;        /* fixed: [0,1] */
    int replay_min;         /* fixed: buffer items needed before replay draws (>= 1) */
    int capacity;           /* replay buffer size in sequences (replay on) */
    int seq_cap;            /* tokens per stored sequence (replay on) */
    double init_threshold;  /* adaptive: [0,1] starting student-data probability */
    double threshold_step;  /* adaptive: (0,1] rise per validation-loss increase */
    double loss_eps;        /* adaptive: >= 0; a rise needs loss >= reference + loss_eps */
    gkd_replay_ratio ratio; /* adaptive */
    long total_steps;       /* adaptive with a non-constant ratio: >= 1 */
    gkd_valref valref;      /* adaptive */
} gkd_schedule_options;

/* DistiLLM's published settings for the adaptive part: init-threshold 0,
 * loss-eps 0.1, step 0.1, capacity 1000, decreasing replay ratio. */
#define GKD_SCHEDULE_OPTIONS_INIT                                                                  \
    {.lambda = 0.0, .per_example = 0, .seqkd = 0.0, .teacher_mix = 0.0, .replay = GKD_REPLAY_OFF, \
     .p_replay = 0.0, .replay_min = 1, .capacity = 1000, .seq_cap = 64, .init_threshold = 0.0,     \
     .threshold_step = 0.1, .loss_eps = 0.1, .ratio = GKD_REPLAY_RATIO_DECREASING,                 \
     .total_steps = 1, .valref = GKD_VALREF_LAST_RAISE}

typedef struct {
    gkd_source source;
    int store; /* 1: push the sequences generated for this choice into the buffer */
} gkd_schedule_choice;

typedef struct gkd_schedule gkd_schedule;

/** A schedule at step 0 (threshold = init_threshold, empty buffer).
 *  GKD_EINVAL names the first option out of range. */
int gkd_schedule_new(gkd_schedule **out, const gkd_schedule_options *opt, uint64_t seed);
void gkd_schedule_free(gkd_schedule *s);

/** Choices for `step`, which must be the schedule's next step (GKD_ESTATE
 *  otherwise; steps are decided once each, in order). Fills choices[0..B):
 *  one draw shared by all B when per_example is 0, else draw i for example
 *  i (example 0 then matches the batch-level choice). Advances to step+1. */
int gkd_schedule_step(gkd_schedule *s, long step, int B, gkd_schedule_choice *choices);

/** Adaptive schedule: report a validation loss (in step order). Raises the
 *  threshold by threshold_step (capped at 1) when loss >= reference +
 *  loss_eps; the first report only sets the reference. *raised (may be NULL)
 *  says whether it rose. A no-op for other modes. GKD_EINVAL if not finite. */
int gkd_schedule_validation(gkd_schedule *s, double loss, int *raised);

/** The adaptive threshold (init_threshold for other modes). */
double gkd_schedule_threshold(const gkd_schedule *s);
/** The next step gkd_schedule_step expects. */
long gkd_schedule_next_step(const gkd_schedule *s);
/** The replay buffer (NULL when replay is off); push stored sequences here. */
gkd_replay *gkd_schedule_buffer(gkd_schedule *s);
/** Fill every row of dst from the buffer for `step` (streams
 *  (seed, GKD_RNG_REPLAY, step, i)); items may be NULL. */
int gkd_schedule_replay(const gkd_schedule *s, long step, gkd_seqbatch *dst, int *items);

/** Serialize the state (step, threshold, reference loss, buffer) with the
 *  options and seed it belongs to, into a malloc'd blob. */
int gkd_schedule_save(const gkd_schedule *s, unsigned char **blob, size_t *size);
/** Restore a saved state into s, which must have been created with the same
 *  options and seed (GKD_EMISMATCH otherwise). The replay buffer's tokens
 *  must be below vocab_size (the model's vocabulary). On any error s is
 *  unchanged. GKD_EFORMAT, GKD_EVERSION, GKD_ECORRUPT, GKD_EINVAL as for
 *  gkd_replay_load. */
int gkd_schedule_load(gkd_schedule *s, const unsigned char *blob, size_t size, int vocab_size);

#ifdef __cplusplus
}
#endif

#endif
