/* Array expf against the C library's expf, bit for bit. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels/vexpf.h"

/* Every 67th float bit pattern (all exponents, signs, NaNs), in arrays of
 * odd length so vector blocks and the scalar tail both run. */
START_TEST(test_matches_libm_sweep) {
    enum { N = 1021 };
    float x[N], y[N];
    uint64_t mismatches = 0;
    for (uint64_t u = 0; u < 0x100000000ULL; u += 67ULL * N) {
        for (int i = 0; i < N; i++) {
            uint32_t b = (uint32_t)(u + 67ULL * i);
            memcpy(&x[i], &b, 4);
        }
        gkd_vexpf(y, x, N);
        for (int i = 0; i < N; i++) {
            float e = expf(x[i]);
            if (memcmp(&e, &y[i], 4) && !(isnan(e) && isnan(y[i]))) mismatches++;
        }
    }
    ck_assert_uint_eq(mismatches, 0);
}
END_TEST

/* Range edges next to ordinary values in one vector, and in place. */
START_TEST(test_special_values_in_place) {
    float x[16] = {0.0f, -0.0f, 1.0f, -1.0f, 87.99f, -87.99f, 88.0f, -88.0f,
                   88.8f, -103.0f, -104.0f, INFINITY, -INFINITY, 1e-40f, 0.5f, -0.5f};
    float ref[16];
    for (int i = 0; i < 16; i++) ref[i] = expf(x[i]);
    gkd_vexpf(x, x, 16);
    ck_assert_int_eq(memcmp(x, ref, sizeof ref), 0);
    float n[8] = {NAN, 0, 0, 0, 0, 0, 0, 0};
    gkd_vexpf(n, n, 8);
    ck_assert(isnan(n[0]));
    ck_assert_float_eq(n[1], 1.0f);
}
END_TEST

Suite *vexpf_suite(void) {
    Suite *s = suite_create("vexpf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_matches_libm_sweep);
    tcase_add_test(tc, test_special_values_in_place);
    suite_add_tcase(s, tc);
    return s;
}
