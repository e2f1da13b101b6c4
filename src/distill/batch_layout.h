/* Private to the distillation step: a batch of sequences laid out for the
 * loss. The sequences of a gkd_seqbatch are `cap` long; the models run on
 * (B, T), T the longest sequence of the batch, with next-token targets and
 * the weight of every position in the loss. A layout is a function of its
 * inputs only (the batch, optional importance weights, the reduction), so
 * the step's batch and the hybrid term's ground truth each get their own. */
#ifndef GKD_BATCH_LAYOUT_H
#define GKD_BATCH_LAYOUT_H

#include "gkd/sampler.h"

typedef struct {
    int B, T;          /* rows, and the longest sequence among them */
    int *tokens;       /* (B, T) model inputs */
    int *targets;      /* (B, T) next tokens (PAD past the end) */
    float *mask;       /* (B, T) 1 where the target is an output token or EOS */
    float *weight;     /* (B, T) loss weight: the mask normalized by the reduction,
                          times the clipped importance weight if any */
    long loss_tokens;  /* positions with mask 1 */
    /* scratch of gkd_batch_layout_fill */
    int *targets_cap;  /* (max_B, cap) */
    float *mask_cap;   /* (max_B, cap) */
    int max_B, cap;
} gkd_batch_layout;

/** Buffers for batches of up to max_B rows of cap tokens. */
int gkd_batch_layout_new(gkd_batch_layout *l, int max_B, int cap);
void gkd_batch_layout_free(gkd_batch_layout *l);

/** Lay out the b->B rows of `b` (b->B <= max_B, b->cap == cap).
 *  importance (b->B, cap), may be NULL: the importance weight of the token
 *  at each position of a sampled sequence; position t's loss weight is
 *  multiplied by min(importance[t + 1], 1). per_sequence: 0 = weights
 *  1 / (loss tokens of the batch); 1 = 1 / (loss tokens of the row * rows
 *  with any). */
void gkd_batch_layout_fill(gkd_batch_layout *l, const gkd_seqbatch *b, const float *importance,
                           int per_sequence);

#endif
