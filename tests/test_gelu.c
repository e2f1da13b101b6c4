/* The decoder's array tanh-GELU against its one-element formula (gelu.h)
 * with the C library's expf, bit for bit. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../src/kernels/gelu.h"

static float gelu_one(float v) {
    const float s2pi = sqrtf(2.0f / (float)M_PI);
    float u = s2pi * (v + 0.044715f * v * v * v);
    return v / (1.0f + expf(-2.0f * u));
}

/* Every 8191st float bit pattern of both signs up to |x| = 2^7 (past the
 * point where the exponential leaves its vector range), in arrays of odd
 * length above one chunk of 64 so whole vectors, tails and several
 * exponential calls all run. */
START_TEST(test_array_matches_formula) {
    enum { N = 203 };
    float x[N], want[N];
    uint64_t mismatches = 0, n = 0;
    for (uint32_t sign = 0; sign < 2; sign++)
        for (uint32_t b = 0; b < 0x43000000u; b += 8191u * N) {
            for (int i = 0; i < N; i++) {
                uint32_t u = sign << 31 | (b + 8191u * (uint32_t)i);
                memcpy(&x[i], &u, 4);
                want[i] = gelu_one(x[i]);
            }
            gkd_gelu_exp_array(x, N);
            for (int i = 0; i < N; i++, n++)
                if (memcmp(&x[i], &want[i], 4) && !(isnan(x[i]) && isnan(want[i]))) mismatches++;
        }
    ck_assert_uint_gt(n, 200000);
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

Suite *gelu_suite(void) {
    Suite *s = suite_create("gelu");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_array_matches_formula);
    suite_add_tcase(s, tc);
    return s;
}
