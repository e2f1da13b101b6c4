/* PCG32 XSH-RR. The constants are those of the reference implementation, so
 * seeding with (42, 54) reproduces its published output. */
#include "gkd/rng.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

uint32_t gkd_rng_u32(gkd_rng *r) {
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

void gkd_rng_seed(gkd_rng *r, uint64_t initstate, uint64_t initseq) {
    r->state = 0U;
    r->inc = (initseq << 1u) | 1u;
    gkd_rng_u32(r);
    r->state += initstate;
    gkd_rng_u32(r);
}

/* SplitMix64 finalizer: spreads nearby inputs (step 1, step 2) far apart. */
static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

gkd_rng gkd_rng_derive(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b) {
    uint64_t h = mix64(seed);
    h = mix64(h ^ purpose);
    h = mix64(h ^ a);
    uint64_t stream = mix64(h ^ b);
    gkd_rng r;
    gkd_rng_seed(&r, h ^ b, stream);
    return r;
}

uint32_t gkd_rng_below(gkd_rng *r, uint32_t bound) {
    uint32_t threshold = (-bound) % bound;
    for (;;) {
        uint32_t x = gkd_rng_u32(r);
        if (x >= threshold) return x % bound;
    }
}

float gkd_rng_float(gkd_rng *r) { return (float)(gkd_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double gkd_rng_double(gkd_rng *r) {
    uint64_t hi = gkd_rng_u32(r) >> 5, lo = gkd_rng_u32(r) >> 6;
    return (double)(hi * 67108864ULL + lo) * (1.0 / 9007199254740992.0);
}

float gkd_rng_normal(gkd_rng *r) {
    double u1 = gkd_rng_double(r), u2 = gkd_rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
