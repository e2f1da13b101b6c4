/* Batched rollouts with a KV cache. A batch of token sequences is the common
 * currency of sampling, scoring, distillation and evaluation. */
#ifndef GKD_SAMPLER_H
#define GKD_SAMPLER_H

#include <stdint.h>

#include "gkd/model.h"

/** B sequences of up to `cap` tokens, row-major (B, cap):
 *  BOS prompt SEP generated... [EOS] PAD... */
typedef struct {
    int B, cap;
    int *tokens;            /* (B, cap) */
    int *prompt_len;        /* (B) tokens up to and including SEP */
    int *len;               /* (B) total tokens, including EOS if produced */
    unsigned char *eos;     /* (B) 1 if the sequence ended with EOS */
} gkd_seqbatch;

int gkd_seqbatch_new(gkd_seqbatch *b, int B, int cap);
void gkd_seqbatch_free(gkd_seqbatch *b);
/** Loss mask (B, cap) laid out for next-token targets: mask[b, t] = 1 when
 *  the token at t+1 is a generated/reference token or EOS (t+1 in
 *  [prompt_len, len)), else 0. Targets (B, cap) = tokens shifted left, PAD
 *  at the end. */
void gkd_seqbatch_targets(const gkd_seqbatch *b, int *targets, float *mask);

#endif
