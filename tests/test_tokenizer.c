#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/tokenizer.h"

START_TEST(test_char_vocab_sorted_unique) {
    const char *texts[] = {"cab", "b\xC3\xA9", "\xE2\x82\xAC a"}; /* é, € */
    gkd_tokenizer *t;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t, texts, 3), 0);
    /* ' ' a b c é € */
    ck_assert_int_eq(gkd_tokenizer_vocab_size(t), 4 + 6);
    ck_assert_int_eq(gkd_tokenizer_kind_of(t), GKD_TOKENIZER_CHAR);
    int ids[16], n;
    ck_assert_int_eq(gkd_tokenizer_encode(t, " abc\xC3\xA9\xE2\x82\xAC", ids, 16, &n), 0);
    ck_assert_int_eq(n, 6);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(ids[i], 4 + i);
    char out[32];
    int with_specials[] = {GKD_TOK_BOS, 9, 4, GKD_TOK_SEP, 5, GKD_TOK_EOS, GKD_TOK_PAD, 8};
    size_t w = gkd_tokenizer_decode(t, with_specials, 8, out, sizeof out);
    ck_assert_str_eq(out, "\xE2\x82\xAC a\xC3\xA9");
    ck_assert_uint_eq(w, strlen(out));
    gkd_tokenizer_free(t);
}
END_TEST

START_TEST(test_encode_errors_name_character) {
    const char *texts[] = {"abc"};
    gkd_tokenizer *t;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t, texts, 1), 0);
    int ids[16], n = 99;
    ck_assert_int_eq(gkd_tokenizer_encode(t, "abz", ids, 16, &n), GKD_EINVAL);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "'z'"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "U+007A"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "byte offset 2"));
    ck_assert_int_eq(gkd_tokenizer_encode(t, "a\xC3\xA9", ids, 16, &n), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "U+00E9"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "byte offset 1"));
    /* Invalid UTF-8: truncated sequence, overlong, surrogate. */
    ck_assert_int_eq(gkd_tokenizer_encode(t, "ab\xC3", ids, 16, &n), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "invalid UTF-8"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "byte offset 2"));
    ck_assert_int_eq(gkd_tokenizer_encode(t, "\xC0\xAF", ids, 16, &n), GKD_EINVAL);
    ck_assert_int_eq(gkd_tokenizer_encode(t, "\xED\xA0\x80", ids, 16, &n), GKD_EINVAL);
    /* Capacity. */
    ck_assert_int_eq(gkd_tokenizer_encode(t, "abcabc", ids, 5, &n), GKD_EINVAL);
    ck_assert_int_eq(gkd_tokenizer_encode(t, "abcab", ids, 5, &n), 0);
    ck_assert_int_eq(n, 5);
    const char *bad[] = {"ok", "x\xFFy"};
    gkd_tokenizer *t2 = NULL;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t2, bad, 2), GKD_EINVAL);
    ck_assert_ptr_null(t2);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "text 1"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "byte offset 1"));
    gkd_tokenizer_free(t);
}
END_TEST

START_TEST(test_encode_pair_layout) {
    const char *texts[] = {"0123456789+="};
    gkd_tokenizer *t;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t, texts, 1), 0);
    int ids[16], pl, len;
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "1+2=", "3", ids, 16, &pl, &len), 0);
    ck_assert_int_eq(pl, 6);
    ck_assert_int_eq(len, 8);
    ck_assert_int_eq(ids[0], GKD_TOK_BOS);
    ck_assert_int_eq(ids[5], GKD_TOK_SEP);
    ck_assert_int_eq(ids[7], GKD_TOK_EOS);
    char out[16];
    gkd_tokenizer_decode(t, ids, len, out, sizeof out);
    ck_assert_str_eq(out, "1+2=3");
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "1+2=", NULL, ids, 16, &pl, &len), 0);
    ck_assert_int_eq(pl, 6);
    ck_assert_int_eq(len, 6);
    /* Exactly fits: 1 + 4 + 1 + 1 + 1 = 8. */
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "1+2=", "3", ids, 8, &pl, &len), 0);
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "1+2=", "3", ids, 7, &pl, &len), GKD_EINVAL);
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "1+2=", "x", ids, 16, &pl, &len), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "reference"));
    gkd_tokenizer_free(t);
}
END_TEST

START_TEST(test_byte_vocab) {
    gkd_tokenizer *t;
    ck_assert_int_eq(gkd_tokenizer_new_byte(&t), 0);
    ck_assert_int_eq(gkd_tokenizer_vocab_size(t), 260);
    int ids[16], n;
    /* Bytes need not be valid UTF-8. */
    ck_assert_int_eq(gkd_tokenizer_encode(t, "A\xFF\xC3\xA9", ids, 16, &n), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(ids[0], 4 + 'A');
    ck_assert_int_eq(ids[1], 4 + 255);
    char out[8];
    gkd_tokenizer_decode(t, ids, n, out, sizeof out);
    ck_assert_str_eq(out, "A\xFF\xC3\xA9");
    gkd_tokenizer_free(t);
}
END_TEST

START_TEST(test_decode_truncates_at_character) {
    const char *texts[] = {"\xE2\x82\xAC" "a"};
    gkd_tokenizer *t;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t, texts, 1), 0);
    int ids[] = {4, 5, 4}; /* a € a */
    char out[5];
    size_t w = gkd_tokenizer_decode(t, ids, 3, out, sizeof out);
    ck_assert_uint_eq(w, 4);
    ck_assert_str_eq(out, "a\xE2\x82\xAC");
    w = gkd_tokenizer_decode(t, ids, 3, out, 4);
    ck_assert_uint_eq(w, 1);
    ck_assert_str_eq(out, "a");
    gkd_tokenizer_free(t);
}
END_TEST

START_TEST(test_serialize_roundtrip_and_validation) {
    const char *texts[] = {"hello w\xC3\xB6rld \xF0\x9F\x98\x80"};
    gkd_tokenizer *t, *u, *b, *bu;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t, texts, 1), 0);
    size_t n = gkd_tokenizer_serialized_size(t);
    int V = gkd_tokenizer_vocab_size(t);
    ck_assert_uint_eq(n, 8 + 4 * (size_t)(V - 4));
    unsigned char *buf = malloc(n);
    gkd_tokenizer_serialize(t, buf);
    /* Little-endian kind and count. */
    ck_assert_int_eq(buf[0], 1);
    ck_assert_int_eq(buf[1] | buf[2] | buf[3], 0);
    ck_assert_int_eq(buf[4], V - 4);
    ck_assert_int_eq(buf[8], ' ');
    ck_assert_int_eq(gkd_tokenizer_deserialize(&u, buf, n), 0);
    ck_assert(gkd_tokenizer_equal(t, u));
    /* Last code point is U+1F600 (largest): bytes 00 F6 01 00. */
    ck_assert_int_eq(buf[n - 4], 0x00);
    ck_assert_int_eq(buf[n - 3], 0xF6);
    ck_assert_int_eq(buf[n - 2], 0x01);
    /* Corruptions. */
    gkd_tokenizer *x = NULL;
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, buf, n - 1), GKD_ECORRUPT);
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, buf, 4), GKD_ECORRUPT);
    unsigned char *c = malloc(n);
    memcpy(c, buf, n);
    c[0] = 4; /* no such kind */
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, c, n), GKD_EFORMAT);
    c[0] = 3; /* subword: count is the blob's size, which does not match */
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, c, n), GKD_ECORRUPT);
    memcpy(c, buf, n);
    memcpy(c + 8, c + 12, 4); /* duplicate code point */
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, c, n), GKD_EFORMAT);
    memcpy(c, buf, n);
    c[8] = 0x00; c[9] = 0xD8; /* surrogate U+D800 */
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, c, n), GKD_EFORMAT);
    memcpy(c, buf, n);
    c[n - 2] = 0x11; /* > U+10FFFF */
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, c, n), GKD_EFORMAT);
    ck_assert_ptr_null(x);
    ck_assert_int_eq(gkd_tokenizer_new_byte(&b), 0);
    ck_assert(!gkd_tokenizer_equal(t, b));
    unsigned char bb[8];
    ck_assert_uint_eq(gkd_tokenizer_serialized_size(b), 8);
    gkd_tokenizer_serialize(b, bb);
    ck_assert_int_eq(gkd_tokenizer_deserialize(&bu, bb, 8), 0);
    ck_assert(gkd_tokenizer_equal(b, bu));
    ck_assert_int_eq(gkd_tokenizer_vocab_size(bu), 260);
    bb[4] = 1;
    ck_assert_int_eq(gkd_tokenizer_deserialize(&x, bb, 8), GKD_EFORMAT);
    free(buf);
    free(c);
    gkd_tokenizer_free(t);
    gkd_tokenizer_free(u);
    gkd_tokenizer_free(b);
    gkd_tokenizer_free(bu);
}
END_TEST

START_TEST(test_many_non_ascii) {
    /* More than the periodic-unique threshold of distinct and repeated code points. */
    size_t n = 6000;
    char *s = malloc(n * 3 + 300 + 1), *p = s;
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s", (i % 3) ? "\xC3\xA9" : "\xE4\xB8\x80");
    for (size_t i = 0; i < 100; i++) {
        uint32_t cp = 0x4E00 + (uint32_t)i;
        *p++ = (char)(0xE0 | (cp >> 12));
        *p++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (char)(0x80 | (cp & 0x3F));
    }
    *p = 0;
    const char *texts[] = {s};
    gkd_tokenizer *t;
    ck_assert_int_eq(gkd_tokenizer_new_char(&t, texts, 1), 0);
    ck_assert_int_eq(gkd_tokenizer_vocab_size(t), 4 + 1 + 100);
    gkd_tokenizer_free(t);
    free(s);
}
END_TEST

Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_add_test(tc, test_char_vocab_sorted_unique);
    tcase_add_test(tc, test_encode_errors_name_character);
    tcase_add_test(tc, test_encode_pair_layout);
    tcase_add_test(tc, test_byte_vocab);
    tcase_add_test(tc, test_decode_truncates_at_character);
    tcase_add_test(tc, test_serialize_roundtrip_and_validation);
    tcase_add_test(tc, test_many_non_ascii);
    suite_add_tcase(s, tc);
    return s;
}
