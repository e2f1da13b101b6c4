/* The options.txt check that guards a resume (src/distill/run_options.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/run_options.h"
#include "gkd/error.h"
#include "helpers.h"

static const char text[] = "task=arith 36a626aeca4cf3fb\ndivergence=tvd\nlambda=0\nseed=1\n";

START_TEST(test_same_options_resume) {
    char dir[256], path[300];
    th_make_tmpdir(dir, sizeof dir, "run_options");
    snprintf(path, sizeof path, "%s/options.txt", dir);
    ck_assert_int_eq(gkd_run_options_check(path, text, 0), 0); /* a fresh run writes it */
    ck_assert_int_eq(gkd_run_options_check(path, text, 1), 0);
    th_write_file(path, "task=arith 36a626aeca4cf3fb\ndivergence=fkl\nlambda=0\nseed=1\n");
    ck_assert_int_eq(gkd_run_options_check(path, text, 1), GKD_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "divergence=fkl, this run has divergence=tvd"));
    th_remove_tmpdir(dir);
}
END_TEST

/* The refusal quotes the file's line on one line, whatever bytes it holds
 * (found by fuzz/fuzz_run_options.c: a CR came through into the message). */
START_TEST(test_refusal_is_one_line) {
    char dir[256], path[300];
    th_make_tmpdir(dir, sizeof dir, "run_options");
    snprintf(path, sizeof path, "%s/options.txt", dir);
    th_write_file(path, "task=arith 36a626aeca4cf3fb\ndivergence=tvd\r\nlambda=0\nseed=1\n");
    ck_assert_int_eq(gkd_run_options_check(path, text, 1), GKD_EMISMATCH);
    const char *msg = gkd_last_error();
    ck_assert_msg(!strchr(msg, '\r') && !strchr(msg, '\n'), "message: %s", msg);
    ck_assert_ptr_nonnull(strstr(msg, "divergence=tvd?, this run has divergence=tvd"));
    th_remove_tmpdir(dir);
}
END_TEST

/* A file that holds the run's options and then a NUL byte and more is not
 * the run's file (found by fuzz/fuzz_run_options.c: strcmp stopped at the
 * NUL and the resume went on). */
START_TEST(test_nul_byte_is_a_difference) {
    char dir[256], path[300];
    th_make_tmpdir(dir, sizeof dir, "run_options");
    snprintf(path, sizeof path, "%s/options.txt", dir);
    char data[sizeof text + 8];
    memcpy(data, text, sizeof text); /* with its NUL */
    memcpy(data + sizeof text, "lr=1\n", 5);
    th_write_bytes(path, data, sizeof text + 5);
    ck_assert_int_eq(gkd_run_options_check(path, text, 1), GKD_EMISMATCH);
    th_remove_tmpdir(dir);
}
END_TEST

Suite *run_options_suite(void) {
    Suite *s = suite_create("run_options");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_same_options_resume);
    tcase_add_test(tc, test_refusal_is_one_line);
    tcase_add_test(tc, test_nul_byte_is_a_difference);
    suite_add_tcase(s, tc);
    return s;
}
