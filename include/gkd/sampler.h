/* Batched rollouts with a KV cache. A batch of token sequences is the common
 * currency of sampling, scoring, distillation and evaluation. */
#ifndef GKD_SAMPLER_H
#define GKD_SAMPLER_H

#include <stdint.h>

#include "gkd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

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


/* ---- generation ---- */

typedef struct {
    float temperature;  /* 0 = greedy (argmax) */
    int top_k;          /* 0 = off */
    float top_p;        /* 1 = off */
    int max_new_tokens; /* generated tokens per sequence, EOS included */
    int eos_token;      /* the id that ends a sequence (gkd_tokenizer_eos) */
} gkd_sample_options;

/* eos_token 2: EOS of the char and byte vocabularies (tokenizer.h). */
#define GKD_SAMPLE_OPTIONS_INIT {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .max_new_tokens = 16, .eos_token = 2}

typedef struct gkd_sampler gkd_sampler; /* KV caches and scratch for up to max_B sequences */

/** A sampler for `model`. `mix` (may be NULL) is a second model of the same
 *  vocabulary for teacher-mixed sampling (see gkd_sampler_generate). */
int gkd_sampler_new(gkd_sampler **out, gkd_model *model, gkd_model *mix, int max_B);
void gkd_sampler_free(gkd_sampler *s);

/** Complete every sequence of `batch` (tokens[0..prompt_len) filled in):
 *  prefill the prompt, then one token per step for every live sequence until
 *  EOS or max_new_tokens (or the context end). Sets len and eos; pads with
 *  PAD. Sequence b draws from gkd_rng_derive(seed, GKD_RNG_SAMPLE,
 *  stream_ids[b], 0), so its rollout does not depend on its batch position
 *  or the thread count. With mix != NULL and mix_alpha > 0, each token is
 *  drawn from mix_alpha * p_mix + (1 - mix_alpha) * p_model (both after
 *  temperature/top-k/top-p); if iw is not NULL it receives per position
 *  (B, cap) the single-step importance weight p_model(y) / p_mixture(y) of
 *  the drawn token (1 where nothing was drawn). */
int gkd_sampler_generate(gkd_sampler *s, gkd_seqbatch *batch, const gkd_sample_options *opt,
                         float mix_alpha, uint64_t seed, const uint64_t *stream_ids, float *iw);

/** A context for the mix model in the next gkd_sampler_generate call with
 *  mix_alpha > 0 (context distillation: the teacher of a teacher-mixed
 *  rollout sees what the student does not). The mix model's sequence b is
 *  batch row b with the ctx_len[b] tokens ctx[b] inserted before row
 *  position `at` (1: after BOS; 0: first, for vocabularies without BOS),
 *  so row position t >= at is its position t + ctx_len[b]; both models'
 *  distributions of a step follow the same row prefix. Sequence b also
 *  stops at the mix model's context length minus ctx_len[b], and the call
 *  fails if prompt_len[b] < at or prompt_len[b] + ctx_len[b] exceeds that
 *  context. ctx and ctx_len (one entry per batch row) must stay valid until
 *  the call, which uses them once and forgets them (so does a call with
 *  mix_alpha 0). ctx and ctx_len both NULL clears a context set before.
 *  Empty contexts give the same rollouts, bit for bit, as none. */
int gkd_sampler_set_mix_context(gkd_sampler *s, int at, const int *const *ctx, const int *ctx_len);

#ifdef __cplusplus
}
#endif

#endif
