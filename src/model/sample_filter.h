/* Private: turning next-token logits into a sampling distribution and
 * drawing from it. Shared by the sampler and its tests. */
#ifndef GKD_SAMPLE_FILTER_H
#define GKD_SAMPLE_FILTER_H

#include "gkd/rng.h"

/** probs (V) = softmax(logits / temperature) restricted to the top_k most
 *  likely tokens (top_k <= 0 or >= V: all), then to the nucleus: the
 *  smallest prefix, in order of decreasing probability, whose cumulative
 *  probability is >= top_p (top_p >= 1: all); renormalized, zero elsewhere.
 *  Ties are ordered by token id (lower id first), so equal-probability
 *  tokens at the boundary are kept or dropped deterministically.
 *  temperature == 0 gives a one-hot at the argmax (lowest id on ties).
 *  idx is scratch for 2V ints. Computed in double. */
void gkd_sample_filter(double *probs, const float *logits, int V, float temperature, int top_k,
                       float top_p, int *idx);

/** Index of the largest logit (lowest id on ties). */
int gkd_sample_argmax(const float *logits, int V);

/** Draw a token from probs (V, summing to ~1) with one gkd_rng_double: the
 *  first i with u < cumulative(probs[0..i]); rounding slack goes to the last
 *  token with non-zero probability. */
int gkd_sample_draw(const double *probs, int V, gkd_rng *r);

#endif
