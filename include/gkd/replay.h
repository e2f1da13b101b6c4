/* Replay buffer of token sequences (DistiLLM's off-policy reuse of student
 * rollouts). Fixed capacity, FIFO: a push into a full buffer evicts the
 * oldest item, like DistiLLM's deque(maxlen=capacity). Item i counts from the
 * oldest (i = 0) to the newest (count - 1). Draws are uniform over the items
 * currently held, with replacement across the rows of a batch (each row has
 * its own stream, so a row's draw does not depend on the batch size). */
#ifndef GKD_REPLAY_H
#define GKD_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/rng.h"
#include "gkd/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gkd_replay gkd_replay;

/** Buffer of up to `capacity` sequences of up to `seq_cap` tokens each. */
int gkd_replay_new(gkd_replay **out, int capacity, int seq_cap);
void gkd_replay_free(gkd_replay *r);

int gkd_replay_count(const gkd_replay *r);
int gkd_replay_capacity(const gkd_replay *r);
int gkd_replay_seq_cap(const gkd_replay *r);
/** Sequences pushed since creation (including evicted ones). */
uint64_t gkd_replay_pushed(const gkd_replay *r);

/** Append row `row` of `b` (tokens[0..len), prompt_len, len, eos), evicting
 *  the oldest item when full. GKD_EINVAL if the row is longer than seq_cap
 *  or its lengths are inconsistent; the buffer is unchanged then. */
int gkd_replay_push(gkd_replay *r, const gkd_seqbatch *b, int row);
/** Push every row of `b` in order; stops at the first error. */
int gkd_replay_push_batch(gkd_replay *r, const gkd_seqbatch *b);

/** Copy item i (0 = oldest) into row `row` of `dst`, padding with PAD.
 *  GKD_EINVAL if i is out of range or the item does not fit dst->cap. */
int gkd_replay_get(const gkd_replay *r, int i, gkd_seqbatch *dst, int row);

/** Uniform item index in [0, count) drawn from rng. GKD_ESTATE if empty. */
int gkd_replay_pick(const gkd_replay *r, gkd_rng *rng, int *index);

/** Fill every row i of dst with a uniform draw using
 *  gkd_rng_derive(seed, GKD_RNG_REPLAY, step, i). If items is not NULL it
 *  receives the B item indices. GKD_ESTATE if the buffer is empty. */
int gkd_replay_sample(const gkd_replay *r, uint64_t seed, uint64_t step, gkd_seqbatch *dst,
                      int *items);

/** Serialize to a malloc'd blob (little-endian, magic, version, FNV-1a 64
 *  checksum; see docs/schedule.md). The caller frees *blob. */
int gkd_replay_save(const gkd_replay *r, unsigned char **blob, size_t *size);
/** A new buffer equal to the saved one (same items in the same order).
 *  Every token must be in [0, vocab_size): the items go to a model with
 *  that vocabulary. GKD_EFORMAT (bad magic or fields, a token outside the
 *  vocabulary), GKD_EVERSION, GKD_ECORRUPT (truncated or checksum
 *  mismatch), GKD_EINVAL (vocab_size < 1). */
int gkd_replay_load(gkd_replay **out, const unsigned char *blob, size_t size, int vocab_size);
/** The capacity and seq_cap a saved buffer declares, read from its header
 *  alone (nothing allocated, checksum not checked), so a caller can refuse
 *  a shape before gkd_replay_load allocates it. GKD_EFORMAT, GKD_EVERSION,
 *  GKD_ECORRUPT as gkd_replay_load. */
int gkd_replay_saved_shape(int *capacity, int *seq_cap, const unsigned char *blob, size_t size);

#ifdef __cplusplus
}
#endif

#endif
