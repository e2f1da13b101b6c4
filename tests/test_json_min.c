/* The JSON parser of src/util/json_min.c: its strict header grammar and
 * the full grammar config.json files need. */
#include <check.h>
#include <string.h>

#include "gkd/error.h"
#include "util/json_min.h"

static int parse(gkd_json_doc *d, const char *s, int full) {
    return full ? gkd_json_parse_full(d, s, strlen(s), 4) : gkd_json_parse(d, s, strlen(s), 4);
}

START_TEST(test_full_grammar) {
    gkd_json_doc d;
    const char *s = " {\"a\": true, \"b\": false, \"c\": null, \"d\": 1e-05, \"e\": -2.5E+3, \"f\": 10000.0, \"g\": 7} ";
    ck_assert_int_eq(parse(&d, s, 1), 0);
    ck_assert_int_eq(d.v[0].len, 7);
    ck_assert_int_eq(d.v[1].type, GKD_JSON_BOOL);
    ck_assert_uint_eq(d.v[1].num, 1);
    ck_assert_int_eq(d.v[2].type, GKD_JSON_BOOL);
    ck_assert_uint_eq(d.v[2].num, 0);
    ck_assert_int_eq(d.v[3].type, GKD_JSON_NULL);
    ck_assert_int_eq(d.v[4].type, GKD_JSON_REAL);
    ck_assert(d.v[4].real == 1e-05);
    ck_assert(d.v[5].real == -2500.0 && d.v[5].neg);
    ck_assert(d.v[6].real == 10000.0);
    ck_assert_int_eq(d.v[7].type, GKD_JSON_INT);
    ck_assert(d.v[7].real == 7.0 && d.v[7].num == 7);
    ck_assert_str_eq(gkd_json_type_name(GKD_JSON_REAL), "number");
    gkd_json_free(&d);
}
END_TEST

START_TEST(test_full_grammar_refusals) {
    gkd_json_doc d;
    const char *bad[] = {"1.", "1.e5", "1e", "1e+", ".5", "tru", "nul", "True", "1e999", "[1,]", "01.5",
                         "1.00000000000000000000000000000000000000000000000000000000000000001"};
    const char *why[] = {"'.' and no digits", "'.' and no digits", "exponent and no digits", "exponent and no digits",
                         "not the start", "not true, false or null", "not true, false or null",
                         "not the start", "beyond the range", "not the start", "leading zero", "longer than 64"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(parse(&d, bad[i], 1), GKD_EFORMAT);
        ck_assert_msg(strstr(gkd_last_error(), why[i]) != NULL, "%s: %s", bad[i], gkd_last_error());
        ck_assert_ptr_null(d.v);
    }
}
END_TEST

/* The header grammar is unchanged: no literals, no fractions. */
START_TEST(test_strict_grammar_unchanged) {
    gkd_json_doc d;
    ck_assert_int_eq(parse(&d, "{\"a\": true}", 0), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "true, false and null are not part"));
    ck_assert_int_eq(parse(&d, "[1.5]", 0), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "only integers are allowed"));
    ck_assert_int_eq(parse(&d, "[1, \"x\", {\"k\": [2]}]", 0), 0);
    gkd_json_free(&d);
}
END_TEST

Suite *json_min_suite(void) {
    Suite *s = suite_create("json_min");
    TCase *tc = tcase_create("json_min");
    tcase_add_test(tc, test_full_grammar);
    tcase_add_test(tc, test_full_grammar_refusals);
    tcase_add_test(tc, test_strict_grammar_unchanged);
    suite_add_tcase(s, tc);
    return s;
}
