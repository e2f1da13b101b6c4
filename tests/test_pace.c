/* gkd_pace: shares from measured rates, ranges that tile the items, and the
 * smoothing of rates over calls. */
#include <check.h>
#include <omp.h>

#include "../src/kernels/pace.h"

/* Every item exactly once, in thread order. */
static void check_tiling(const gkd_pace *p, int n, int nth) {
    int next = 0;
    for (int me = 0; me < nth; me++) {
        int i0, i1;
        gkd_pace_range(p, n, nth, me, &i0, &i1);
        ck_assert_int_eq(i0, next);
        ck_assert_int_ge(i1, i0);
        next = i1;
    }
    ck_assert_int_eq(next, n);
}

START_TEST(test_even_until_measured) {
    gkd_pace p = {0};
    gkd_pace_begin(&p, 2);
    ck_assert(p.cut[0] == 0.0 && p.cut[1] == 0.5 && p.cut[2] == 1.0);
    int i0, i1;
    gkd_pace_range(&p, 48, 2, 1, &i0, &i1);
    ck_assert_int_eq(i0, 24);
    ck_assert_int_eq(i1, 48);
    /* The same items as gkd_team_share, and as no pace at all. */
    for (int n = 0; n < 40; n++)
        for (int me = 0; me < 2; me++) {
            int a0, a1, b0, b1;
            gkd_pace_range(&p, n, 2, me, &a0, &a1);
            gkd_team_share(n, 2, me, &b0, &b1);
            ck_assert_int_eq(a0, b0);
            ck_assert_int_eq(a1, b1);
            gkd_pace_range(NULL, n, 2, me, &a0, &a1);
            ck_assert_int_eq(a0, b0);
            ck_assert_int_eq(a1, b1);
        }
}
END_TEST

START_TEST(test_shares_follow_measured_rates) {
    gkd_pace p = {0};
    gkd_pace_begin(&p, 2);
    /* Thread 1 took three times as long for the same half. */
    p.busy[0] = 1e-3;
    p.busy[1] = 3e-3;
    gkd_pace_end(&p);
    ck_assert_int_eq(p.threads, 2);
    gkd_pace_begin(&p, 2);
    ck_assert_double_eq_tol(p.cut[1], 0.75, 1e-12);
    int i0, i1;
    gkd_pace_range(&p, 16, 2, 0, &i0, &i1);
    ck_assert_int_eq(i1, 12);
    check_tiling(&p, 16, 2);
    check_tiling(&p, 3, 2);
    check_tiling(&p, 1, 2);
    /* Now both took equally long for 3/4 and 1/4: the new measurement
     * (rates 0.75 and 0.25 per ms) enters with weight 1/4. */
    p.busy[0] = p.busy[1] = 1e-3;
    gkd_pace_end(&p);
    gkd_pace_begin(&p, 2);
    const double r0 = 0.75 * 500.0 + 0.25 * 750.0, r1 = 0.75 * (0.5 / 3e-3) + 0.25 * 250.0;
    ck_assert_double_eq_tol(p.cut[1], r0 / (r0 + r1), 1e-12);
}
END_TEST

START_TEST(test_unmeasured_call_keeps_rates) {
    gkd_pace p = {0};
    gkd_pace_begin(&p, 2);
    p.busy[0] = 1e-3;
    p.busy[1] = 2e-3;
    gkd_pace_end(&p);
    gkd_pace_begin(&p, 2);
    const double cut = p.cut[1];
    p.busy[1] = 1e-3; /* thread 0 did no timed work */
    gkd_pace_end(&p);
    gkd_pace_begin(&p, 2);
    ck_assert_double_eq(p.cut[1], cut);
    /* Another team size starts even, and a range for a team of a size
     * other than the one begun with is even too. */
    gkd_pace_begin(&p, 3);
    ck_assert_double_eq_tol(p.cut[1], 1.0 / 3.0, 1e-12);
    gkd_pace_begin(&p, 2);
    int i0, i1;
    gkd_pace_range(&p, 10, 4, 1, &i0, &i1);
    ck_assert_int_eq(i0, 3);
    ck_assert_int_eq(i1, 6);
}
END_TEST

/* Work shared outside a region (whole sequences per thread): rates from
 * work done over seconds, smoothed by the weight given; NULL rates until
 * measured and after a call with a thread that did not run. */
START_TEST(test_note_outside_a_region) {
    gkd_pace p = {0};
    ck_assert_ptr_null(gkd_pace_rates(&p, 2));
    const double rows[2] = {40.0, 24.0}, first[2] = {0.004, 0.004}, second[2] = {0.002, 0.008};
    gkd_pace_note(&p, 2, rows, first, 0.5);
    const double *r = gkd_pace_rates(&p, 2);
    ck_assert_ptr_nonnull(r);
    ck_assert_double_eq_tol(r[0], 10000.0, 1e-9);
    ck_assert_double_eq_tol(r[1], 6000.0, 1e-9);
    ck_assert_ptr_null(gkd_pace_rates(&p, 3));
    gkd_pace_note(&p, 2, rows, second, 0.5);
    ck_assert_double_eq_tol(r[0], 0.5 * 10000.0 + 0.5 * 20000.0, 1e-9);
    ck_assert_double_eq_tol(r[1], 0.5 * 6000.0 + 0.5 * 3000.0, 1e-9);
    const double idle[2] = {0.002, 0.0};
    gkd_pace_note(&p, 2, rows, idle, 0.5);
    ck_assert_double_eq_tol(r[0], 15000.0, 1e-9);
    const double set[2] = {1.0, 5.0};
    gkd_pace_set_rates(&p, 2, set);
    gkd_pace_begin(&p, 2);
    ck_assert_double_eq_tol(p.cut[1], 1.0 / 6.0, 1e-12);
}
END_TEST

/* In a real team: busy time is recorded per thread and the barrier holds
 * everyone until the stage is done. */
START_TEST(test_stage_end_in_team) {
    gkd_pace p = {0};
    gkd_pace_begin(&p, 2);
    int seen[2] = {0, 0}, after[2] = {-1, -1};
#pragma omp parallel num_threads(2)
    {
        const int me = omp_get_thread_num();
        gkd_pace_start(&p);
        volatile double x = 0.0;
        for (int i = 0; i < (me ? 2000000 : 1000); i++) x += i;
        (void)x;
        seen[me] = 1;
        gkd_pace_stage_end(&p);
        after[me] = seen[0] + seen[1];
    }
    ck_assert_int_eq(after[0], 2);
    ck_assert_int_eq(after[1], 2);
    ck_assert(p.busy[0] > 0.0 && p.busy[1] > 0.0);
    gkd_pace_end(&p);
    ck_assert_int_eq(p.threads, 2);
}
END_TEST

Suite *pace_suite(void) {
    Suite *s = suite_create("pace");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_even_until_measured);
    tcase_add_test(tc, test_shares_follow_measured_rates);
    tcase_add_test(tc, test_unmeasured_call_keeps_rates);
    tcase_add_test(tc, test_note_outside_a_region);
    tcase_add_test(tc, test_stage_end_in_team);
    suite_add_tcase(s, tc);
    return s;
}
