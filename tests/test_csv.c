#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"

static char tmpdir[64];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gkd_test_csv_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *tmp_path(const char *name) {
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n;
    ck_assert_int_eq(gkd_file_read(&s, &n, path), 0);
    return s;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_quoting) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    gkd_csv_buf_str(&b, "plain");
    gkd_csv_buf_str(&b, "a,b");
    gkd_csv_buf_str(&b, "say \"hi\"");
    gkd_csv_buf_str(&b, "two\nlines");
    gkd_csv_buf_empty(&b);
    gkd_csv_buf_str(&b, "jsd(0.9)");
    gkd_csv_buf_end_row(&b);
    ck_assert_str_eq(b.data, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,jsd(0.9)\n");
    gkd_csv_buf_free(&b);
}
END_TEST

START_TEST(test_numbers_shortest_round_trip) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    /* Expected strings match Python repr / numpy float32 repr. */
    gkd_csv_buf_float(&b, 0.1f);
    gkd_csv_buf_double(&b, 0.1);
    gkd_csv_buf_double(&b, 1.0 / 3.0);
    gkd_csv_buf_float(&b, 1.0f / 3.0f);
    gkd_csv_buf_double(&b, 50.0);
    gkd_csv_buf_double(&b, 1e20);
    gkd_csv_buf_double(&b, -2.5e-7);
    gkd_csv_buf_long(&b, -42);
    gkd_csv_buf_float(&b, 3e-3f);
    gkd_csv_buf_end_row(&b);
    ck_assert_str_eq(b.data, "0.1,0.1,0.3333333333333333,0.33333334,50,1e+20,-2.5e-07,-42,0.003\n");
    /* Every printed double reads back to the same bits. */
    double vals[] = {1.0 / 7.0, 123456.789, 5e-324, 1.7976931348623157e308, 0.61};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char s[48];
        gkd_format_double(s, sizeof s, vals[i]);
        ck_assert(strtod(s, NULL) == vals[i]);
    }
    char s[48];
    gkd_format_double(s, sizeof s, 0.0 / 0.0);
    ck_assert_str_eq(s, "nan");
    gkd_csv_buf_free(&b);
}
END_TEST

START_TEST(test_atomic_write_and_rewrite_identical) {
    const char *p = tmp_path("a.csv");
    ck_assert_int_eq(gkd_file_write_atomic(p, "x,y\n1,2\n", 8), 0);
    char *s = slurp(p);
    ck_assert_str_eq(s, "x,y\n1,2\n");
    free(s);
    ck_assert_int_eq(gkd_file_write_atomic(p, "z\n", 2), 0);
    s = slurp(p);
    ck_assert_str_eq(s, "z\n");
    free(s);
    /* No temporary file left behind. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 1", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(gkd_file_write_atomic("/nonexistent_dir/x.csv", "a", 1), GKD_EIO);
}
END_TEST

START_TEST(test_appender) {
    const char *p = tmp_path("m.csv");
    gkd_csv_appender *a = NULL;
    ck_assert_int_eq(gkd_csv_appender_open(&a, p, "step,loss\n"), 0);
    ck_assert_int_eq(gkd_csv_appender_write(a, "1,0.5\n"), 0);
    /* Flushed per row: visible before close. */
    char *s = slurp(p);
    ck_assert_str_eq(s, "step,loss\n1,0.5\n");
    free(s);
    ck_assert_int_eq(gkd_csv_appender_close(a), 0);
    ck_assert_int_eq(gkd_csv_appender_open(&a, p, "step,loss\n"), 0);
    ck_assert_int_eq(gkd_csv_appender_write(a, "2,0.25\n"), 0);
    ck_assert_int_eq(gkd_csv_appender_close(a), 0);
    s = slurp(p);
    ck_assert_str_eq(s, "step,loss\n1,0.5\n2,0.25\n");
    free(s);
    ck_assert_int_eq(gkd_csv_appender_open(&a, p, "step,lr\n"), GKD_EMISMATCH);
    write_text(p, "step,loss\n1,0.5\n2,0.2");
    ck_assert_int_eq(gkd_csv_appender_open(&a, p, "step,loss\n"), GKD_EFORMAT);
}
END_TEST

START_TEST(test_truncate_after_step) {
    const char *p = tmp_path("t.csv");
    write_text(p, "step,source,loss\r\n1,student,0.5\r\n2,\"multi\nline\",0.4\r\n3,data,0.3\r\n4,data,0.2\r\n5,da");
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 2), 0);
    char *s = slurp(p);
    ck_assert_str_eq(s, "step,source,loss\r\n1,student,0.5\r\n2,\"multi\nline\",0.4\r\n");
    free(s);
    /* Nothing to drop: the file is left as it is. */
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 10), 0);
    s = slurp(p);
    ck_assert_str_eq(s, "step,source,loss\r\n1,student,0.5\r\n2,\"multi\nline\",0.4\r\n");
    free(s);
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 0), 0);
    s = slurp(p);
    ck_assert_str_eq(s, "step,source,loss\r\n");
    free(s);
    /* A row cut inside a quote is dropped too. */
    write_text(p, "step,x\n1,a\n2,\"unfinished");
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 5), 0);
    s = slurp(p);
    ck_assert_str_eq(s, "step,x\n1,a\n");
    free(s);
    ck_assert_int_eq(gkd_csv_truncate_after_step(tmp_path("missing.csv"), 3), 0);
    write_text(p, "x,y\n1,2\n");
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 3), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no 'step' column"));
    write_text(p, "step,y\n1,2\nx,3\n");
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 3), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), ":3"));
    /* A CR inside the step field (CSV keeps it) stays out of the one-line
     * message, whether the field is not a number or out of range (found
     * by fuzz/fuzz_csv.c). */
    write_text(p, "step,y\n1,2\n4\r5,3\n");
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 3), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "step: '4?5' is not an integer"));
    ck_assert_ptr_null(strpbrk(gkd_last_error(), "\r\n"));
    write_text(p, "step,y\n1,2\n\r99999999999999999999999,3\n");
    ck_assert_int_eq(gkd_csv_truncate_after_step(p, 3), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "step: ?99999999999999999999999 is out of range"));
    ck_assert_ptr_null(strpbrk(gkd_last_error(), "\r\n"));
}
END_TEST

START_TEST(test_reader) {
    const char *text = "\xEF\xBB\xBFkey,value\r\ndivergence,\"jsd(0.9)\"\r\nnote,\"a, \"\"quoted\"\"\nline\"\r\nempty,\n";
    gkd_csv *c = NULL;
    ck_assert_int_eq(gkd_csv_parse(&c, text, strlen(text), "axes.csv"), 0);
    ck_assert_int_eq(c->ncols, 2);
    ck_assert_uint_eq(c->nrows, 3);
    ck_assert_str_eq(c->header[0], "key");
    ck_assert_str_eq(gkd_csv_get(c, 0, 1), "jsd(0.9)");
    ck_assert_str_eq(gkd_csv_get(c, 1, 1), "a, \"quoted\"\nline");
    ck_assert_str_eq(gkd_csv_get(c, 2, 1), "");
    ck_assert_int_eq(c->lines[0], 2);
    ck_assert_int_eq(c->lines[2], 5);
    ck_assert_int_eq(gkd_csv_col(c, "value"), 1);
    ck_assert_int_eq(gkd_csv_col(c, "nope"), -1);
    gkd_csv_free(c);
    /* No final newline is fine. */
    ck_assert_int_eq(gkd_csv_parse(&c, "a\n1", 3, "x.csv"), 0);
    ck_assert_uint_eq(c->nrows, 1);
    gkd_csv_free(c);
}
END_TEST

START_TEST(test_reader_errors) {
    gkd_csv *c = NULL;
    const char *ragged = "a,b\n1,2\n1,2,3\n";
    ck_assert_int_eq(gkd_csv_parse(&c, ragged, strlen(ragged), "eval.csv"), GKD_EFORMAT);
    ck_assert_str_eq(gkd_last_error(), "eval.csv:3: expected 2 fields, got 3");
    const char *open = "a,b\n1,\"oops\n2,3\n";
    ck_assert_int_eq(gkd_csv_parse(&c, open, strlen(open), "eval.csv"), GKD_EFORMAT);
    ck_assert_str_eq(gkd_last_error(), "eval.csv:2: unterminated quoted field");
    const char *after = "a,b\n\"x\"y,2\n";
    ck_assert_int_eq(gkd_csv_parse(&c, after, strlen(after), "f.csv"), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "f.csv:2:"));
    ck_assert_int_eq(gkd_csv_parse(&c, "", 0, "e.csv"), GKD_EFORMAT);
    ck_assert_int_eq(gkd_csv_read(&c, tmp_path("missing.csv")), GKD_EIO);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_write_read_round_trip) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    const char *fields[] = {"x", "a,b", "\"", "", "line\r\nbreak"};
    for (int i = 0; i < 5; i++) gkd_csv_buf_str(&b, fields[i]);
    gkd_csv_buf_end_row(&b);
    for (int i = 0; i < 5; i++) gkd_csv_buf_str(&b, fields[4 - i]);
    gkd_csv_buf_end_row(&b);
    const char *p = tmp_path("r.csv");
    ck_assert_int_eq(gkd_file_write_atomic(p, b.data, b.len), 0);
    gkd_csv *c = NULL;
    ck_assert_int_eq(gkd_csv_read(&c, p), 0);
    ck_assert_int_eq(c->ncols, 5);
    ck_assert_uint_eq(c->nrows, 1);
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(c->header[i], fields[i]);
        ck_assert_str_eq(gkd_csv_get(c, 0, i), fields[4 - i]);
    }
    gkd_csv_free(c);
    gkd_csv_buf_free(&b);
}
END_TEST

/* The reader drops a UTF-8 byte order mark at the start of a file, so a
 * first field that starts with one (a file that had two) must be written
 * quoted to read back the same (found by fuzz/fuzz_csv.c). */
START_TEST(test_write_read_field_with_bom) {
    const char *text = "\xEF\xBB\xBF\xEF\xBB\xBF" "a,b\n1,\xEF\xBB\xBF" "2\n";
    gkd_csv *c = NULL, *again = NULL;
    ck_assert_int_eq(gkd_csv_parse(&c, text, strlen(text), "bom.csv"), 0);
    ck_assert_str_eq(c->header[0], "\xEF\xBB\xBF" "a");
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    for (int j = 0; j < 2; j++) gkd_csv_buf_str(&b, c->header[j]);
    gkd_csv_buf_end_row(&b);
    for (int j = 0; j < 2; j++) gkd_csv_buf_str(&b, gkd_csv_get(c, 0, j));
    gkd_csv_buf_end_row(&b);
    ck_assert_int_eq(gkd_csv_parse(&again, b.data, b.len, "again.csv"), 0);
    ck_assert_str_eq(again->header[0], c->header[0]);
    ck_assert_str_eq(again->header[1], "b");
    ck_assert_str_eq(gkd_csv_get(again, 0, 1), "\xEF\xBB\xBF" "2");
    gkd_csv_free(c);
    gkd_csv_free(again);
    gkd_csv_buf_free(&b);
}
END_TEST

Suite *csv_suite(void) {
    Suite *s = suite_create("csv");
    TCase *tc = tcase_create("csv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_quoting);
    tcase_add_test(tc, test_numbers_shortest_round_trip);
    tcase_add_test(tc, test_atomic_write_and_rewrite_identical);
    tcase_add_test(tc, test_appender);
    tcase_add_test(tc, test_truncate_after_step);
    tcase_add_test(tc, test_reader);
    tcase_add_test(tc, test_reader_errors);
    tcase_add_test(tc, test_write_read_field_with_bom);
    tcase_add_test(tc, test_write_read_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
