#include <check.h>
#include <stdint.h>

#include "gkd/rng.h"

/* Published reference: pcg32-demo seeded with initstate 42, initseq 54. */
START_TEST(test_reference_outputs) {
    static const uint32_t expected[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330,
                                         0x83d2f293, 0xbfa4784b, 0xcbed606e};
    gkd_rng r;
    gkd_rng_seed(&r, 42u, 54u);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(gkd_rng_u32(&r), expected[i]);
}
END_TEST

START_TEST(test_derive_independent_streams) {
    gkd_rng a = gkd_rng_derive(1, GKD_RNG_SAMPLE, 0, 0);
    gkd_rng a2 = gkd_rng_derive(1, GKD_RNG_SAMPLE, 0, 0);
    gkd_rng b = gkd_rng_derive(1, GKD_RNG_SAMPLE, 0, 1);
    gkd_rng c = gkd_rng_derive(1, GKD_RNG_INIT, 0, 0);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 64; i++) {
        uint32_t x = gkd_rng_u32(&a), y = gkd_rng_u32(&b), z = gkd_rng_u32(&c);
        ck_assert_uint_eq(x, gkd_rng_u32(&a2));
        same_ab += x == y;
        same_ac += x == z;
    }
    ck_assert_int_lt(same_ab, 2);
    ck_assert_int_lt(same_ac, 2);
}
END_TEST

START_TEST(test_uniform_and_normal_moments) {
    gkd_rng r = gkd_rng_derive(7, GKD_RNG_DATA, 0, 0);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        float u = gkd_rng_float(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        su += u;
        double g = gkd_rng_normal(&r);
        sn += g;
        sn2 += g * g;
    }
    /* Standard errors: 1/sqrt(12 n) ≈ 6.5e-4 and 1/sqrt(n) ≈ 2.2e-3; 5 sigma. */
    ck_assert_double_eq_tol(su / n, 0.5, 5 * 6.5e-4);
    ck_assert_double_eq_tol(sn / n, 0.0, 5 * 2.3e-3);
    ck_assert_double_eq_tol(sn2 / n, 1.0, 5 * 3.2e-3);
    uint32_t counts[5] = {0};
    for (int i = 0; i < 50000; i++) counts[gkd_rng_below(&r, 5)]++;
    for (int k = 0; k < 5; k++) ck_assert(counts[k] > 9500 && counts[k] < 10500);
}
END_TEST

Suite *rng_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("pcg32");
    tcase_add_test(tc, test_reference_outputs);
    tcase_add_test(tc, test_derive_independent_streams);
    tcase_add_test(tc, test_uniform_and_normal_moments);
    suite_add_tcase(s, tc);
    return s;
}
