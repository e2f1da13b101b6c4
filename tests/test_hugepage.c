/* gkd_huge_calloc: zeroed, writable, 2 MiB-aligned when large, freed by free(). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "../src/kernels/hugepage.h"

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

START_TEST(test_small_buffer_is_zeroed) {
    unsigned char *p = gkd_huge_calloc(1000);
    ck_assert_ptr_nonnull(p);
    ck_assert(all_zero(p, 1000));
    p[999] = 7;
    free(p);
    unsigned char *z = gkd_huge_calloc(0);
    ck_assert_ptr_nonnull(z);
    free(z);
}
END_TEST

START_TEST(test_large_buffer_is_aligned_and_zeroed) {
    /* Not a multiple of 2 MiB: the tail past the request is usable padding. */
    const size_t n = ((size_t)5 << 20) + 12345;
    unsigned char *p = gkd_huge_calloc(n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % ((uintptr_t)2 << 20), 0);
    ck_assert(all_zero(p, n));
    p[0] = 1;
    p[n - 1] = 2;
    ck_assert_uint_eq(p[0] + p[n - 1], 3);
    free(p);
}
END_TEST

START_TEST(test_impossible_size_is_null) {
    ck_assert_ptr_null(gkd_huge_calloc((size_t)-1));
    ck_assert_ptr_null(gkd_huge_calloc((size_t)-1 - ((size_t)1 << 20)));
}
END_TEST

Suite *hugepage_suite(void) {
    Suite *s = suite_create("hugepage");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_small_buffer_is_zeroed);
    tcase_add_test(tc, test_large_buffer_is_aligned_and_zeroed);
    tcase_add_test(tc, test_impossible_size_is_null);
    suite_add_tcase(s, tc);
    return s;
}
