/* PCG32 random numbers (XSH-RR, 64-bit state, 32-bit output; O'Neill 2014).
 * Every purpose (init, data, sampling, ...) and every sequence draws from its
 * own stream derived with gkd_rng_derive(), so results do not depend on batch
 * position or thread count. */
#ifndef GKD_RNG_H
#define GKD_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t state;
    uint64_t inc; /* stream selector, always odd */
} gkd_rng;

/* Purposes for stream derivation. */
enum {
    GKD_RNG_INIT = 1,     /* weight initialization */
    GKD_RNG_DATA = 2,     /* task generation, splits, batch order */
    GKD_RNG_SAMPLE = 3,   /* token sampling in rollouts */
    GKD_RNG_SCHEDULE = 4, /* data-source choice per batch */
    GKD_RNG_REPLAY = 5,   /* replay-buffer draws */
    GKD_RNG_EVAL = 6      /* evaluation sampling */
};

/** Seed like the reference pcg32_srandom_r(initstate, initseq). */
void gkd_rng_seed(gkd_rng *r, uint64_t initstate, uint64_t initseq);

/** A stream that depends only on (seed, purpose, a, b): e.g. (step, index). */
gkd_rng gkd_rng_derive(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b);

uint32_t gkd_rng_u32(gkd_rng *r);
/** Uniform integer in [0, bound) without modulo bias. */
uint32_t gkd_rng_below(gkd_rng *r, uint32_t bound);
/** Uniform float in [0, 1) with 24 random bits. */
float gkd_rng_float(gkd_rng *r);
/** Uniform double in [0, 1) with 53 random bits. */
double gkd_rng_double(gkd_rng *r);
/** Standard normal (Box-Muller, no cached second value so state is one struct). */
float gkd_rng_normal(gkd_rng *r);

#ifdef __cplusplus
}
#endif

#endif
