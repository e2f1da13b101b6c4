/* expf over arrays (see vexpf.h).
 *
 * glibc's expf (sysdeps/ieee754/flt-32/e_expf.c, the FMA build chosen on
 * CPUs with AVX2 and FMA) computes in double: z = x N/ln2, k = round(z) by
 * the 0x1.8p52 shift, r = z - k, s = 2^(k/N) from a 32-entry table,
 * y = s ((C0 r + C1) r^2 + (C2 r + 1)) with fused multiply-adds, then
 * rounds to float. The AVX-512 code below does the same operations on
 * eight lanes; over every float with |x| < 88 it matched glibc 2.36
 * exactly. Lanes outside that range (overflow, underflow, inf, NaN) go to
 * the scalar expf. Because another C library may round differently, the
 * vector path is used only if it agrees with this process's expf on a
 * sweep of inputs at first use; otherwise every element calls expf. */
#include "vexpf.h"

#include "gkd/products.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* EXP2F_TAB[i] = bits(2^(i/32)) - (i << 47), rounded to nearest double. */
static const unsigned long long EXP2F_TAB[32] = {
0x3ff0000000000000ULL,
0x3fefd9b0d3158574ULL,
0x3fefb5586cf9890fULL,
0x3fef9301d0125b51ULL,
0x3fef72b83c7d517bULL,
0x3fef54873168b9aaULL,
0x3fef387a6e756238ULL,
0x3fef1e9df51fdee1ULL,
0x3fef06fe0a31b715ULL,
0x3feef1a7373aa9cbULL,
0x3feedea64c123422ULL,
0x3feece086061892dULL,
0x3feebfdad5362a27ULL,
0x3feeb42b569d4f82ULL,
0x3feeab07dd485429ULL,
0x3feea47eb03a5585ULL,
0x3feea09e667f3bcdULL,
0x3fee9f75e8ec5f74ULL,
0x3feea11473eb0187ULL,
0x3feea589994cce13ULL,
0x3feeace5422aa0dbULL,
0x3feeb737b0cdc5e5ULL,
0x3feec49182a3f090ULL,
0x3feed503b23e255dULL,
0x3feee89f995ad3adULL,
0x3feeff76f2fb5e47ULL,
0x3fef199bdd85529cULL,
0x3fef3720dcef9069ULL,
0x3fef5818dcfba487ULL,
0x3fef7c97337b9b5fULL,
0x3fefa4afa2a490daULL,
0x3fefd0765b6e4540ULL};

#define VEXP_TARGET __attribute__((target("avx512f,avx512dq,fma")))

/* Eight lanes; returns 0 (and writes nothing) if a lane needs the scalar
 * path. */
VEXP_TARGET static inline __attribute__((always_inline)) int exp8(float *y, const float *x) {
    __m256 xf = _mm256_loadu_ps(x);
    /* |x| < 88 as glibc tests it: top 12 bits of |x| below those of 88. */
    __m256i top = _mm256_srli_epi32(_mm256_and_si256(_mm256_castps_si256(xf), _mm256_set1_epi32(0x7fffffff)), 20);
    if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(top, _mm256_set1_epi32((0x42b00000 >> 20) - 1))))
        return 0;
    const __m512d invln2n = _mm512_set1_pd(0x1.71547652b82fep+0 * 32);
    const __m512d shift = _mm512_set1_pd(0x1.8p+52);
    const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32);
    const __m512d c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32);
    const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
    __m512d xd = _mm512_cvtps_pd(xf);
    __m512d z = _mm512_mul_pd(invln2n, xd);
    __m512d kd = _mm512_add_pd(z, shift);
    __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_sub_pd(z, kd);
    /* Table lookup by ki % 32 from registers (two 16-entry permutes). */
    const __m512i t0 = _mm512_loadu_si512(EXP2F_TAB), t1 = _mm512_loadu_si512(EXP2F_TAB + 8),
                  t2 = _mm512_loadu_si512(EXP2F_TAB + 16), t3 = _mm512_loadu_si512(EXP2F_TAB + 24);
    __m512i lo = _mm512_permutex2var_epi64(t0, ki, t1), hi = _mm512_permutex2var_epi64(t2, ki, t3);
    __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
    __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(ki, 47)));
    __m512d p = _mm512_fmadd_pd(c0, r, c1);
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d q = _mm512_fmadd_pd(c2, r, _mm512_set1_pd(1.0));
    q = _mm512_fmadd_pd(p, r2, q);
    _mm256_storeu_ps(y, _mm512_cvtpd_ps(_mm512_mul_pd(q, s)));
    return 1;
}

/* exp8 as a call, for code not compiled for AVX-512. */
VEXP_TARGET static int exp8_call(float *y, const float *x) { return exp8(y, x); }

static int vector_ok;
static pthread_once_t vector_once = PTHREAD_ONCE_INIT;

/* Enable the vector path only if it reproduces this libm on a sweep of
 * |x| < 88 (every 2^12-th float bit pattern, both signs). */
static void check_vector(void) {
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
          __builtin_cpu_supports("fma")))
        return;
    float x[8], y[8];
    for (uint32_t hi = 0; hi < 2; hi++) {
        for (uint32_t b = 0; b < 0x42b00000u; b += 8u << 12) {
            for (int j = 0; j < 8; j++) {
                uint32_t u = (hi << 31) | (b + ((uint32_t)j << 12) + (b >> 12 & 0xfff));
                memcpy(&x[j], &u, 4);
                if (fabsf(x[j]) >= 88.0f) x[j] = 0.0f;
            }
            if (!exp8_call(y, x)) return;
            for (int j = 0; j < 8; j++) {
                float e = expf(x[j]);
                if (memcmp(&e, &y[j], 4)) return;
            }
        }
    }
    vector_ok = 1;
}

/* Whole groups of eight elements on the vector path (one function, so
 * exp8 is inlined into the loop); returns how many it did. */
VEXP_TARGET static int vexp_groups(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        if (!exp8(y + i, x + i))
            for (int j = i; j < i + 8; j++) y[j] = expf(x[j]);
    return i;
}

void gkd_vexpf(float *y, const float *x, int n) {
    pthread_once(&vector_once, check_vector);
    /* Only where products run on AVX-512, so that GKD_ISA=avx2 or generic
     * shows what a CPU without it computes (the same bits, by the check). */
    int i = vector_ok && gkd_isa_active() == GKD_ISA_AVX512 ? vexp_groups(y, x, n) : 0;
    for (; i < n; i++) y[i] = expf(x[i]);
}
