/* gkd tokenize end to end: ids of corpus lines against the references'
 * fixtures, decoding back, a checkpoint's byte tokenizer, and one-line
 * errors naming file:line. Runs the binary named by GKD_BIN in a temporary
 * directory. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gkd/checkpoint.h"
#include "gkd/tokenizer.h"
#include "helpers.h"

static char tmp[256];

static void setup(void) { th_make_tmpdir(tmp, sizeof tmp, "gkd-cli-tok"); }
static void teardown(void) { th_remove_tmpdir(tmp); }

/* Run `gkd ARGS` in tmp with stdout to out.txt, stderr to err.txt; the
 * exit status. */
static int gkd(const char *args) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set (run through make test)");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s > out.txt 2> err.txt", tmp, bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static unsigned char *read_tmp(const char *name, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    return th_read_bytes(path, n);
}

static void write_tmp(const char *name, const void *data, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    th_write_bytes(path, data, n);
}

/* The first k lines of a file (with their newlines): their length. */
static size_t first_lines(const unsigned char *s, size_t n, int k) {
    size_t i = 0;
    for (int l = 0; l < k && i < n; l++) {
        const unsigned char *e = memchr(s + i, '\n', n - i);
        i = e ? (size_t)(e - s) + 1 : n;
    }
    return i;
}

/* The first 2000 corpus lines (valid UTF-8) give the fixture's ids, in
 * every layout, and decode back to the same bytes. */
START_TEST(test_encode_matches_fixture_and_decodes_back) {
    size_t nc, ni, n;
    unsigned char *corpus = th_read_bytes(th_fixture_path("tokenizers", "corpus.txt"), &nc);
    unsigned char *ids = th_read_bytes(th_fixture_path("tokenizers", "gpt2_ids.txt"), &ni);
    size_t lc = first_lines(corpus, nc, 2000), li = first_lines(ids, ni, 2000);
    write_tmp("text.txt", corpus, lc);
    const char *toks[] = {"gpt2", "gpt2_hf", "gpt2_hf/tokenizer.json", "gpt2/vocab.bpe"};
    for (int k = 0; k < 4; k++) {
        char args[1024];
        snprintf(args, sizeof args, "tokenize --tokenizer '%s' --text text.txt", th_fixture_path("tokenizers", toks[k]));
        ck_assert_int_eq(gkd(args), 0);
        unsigned char *out = read_tmp("out.txt", &n);
        ck_assert_uint_eq(n, li);
        ck_assert_msg(!memcmp(out, ids, li), "%s: ids differ from the fixture", toks[k]);
        free(out);
    }
    char args[1024];
    snprintf(args, sizeof args, "tokenize --tokenizer '%s' --decode < out.txt > back.txt 2>err.txt; cat back.txt",
             th_fixture_path("tokenizers", "gpt2"));
    ck_assert_int_eq(gkd(args), 0);
    unsigned char *back = read_tmp("out.txt", &n);
    ck_assert_uint_eq(n, lc);
    ck_assert(!memcmp(back, corpus, lc));
    free(back);
    free(corpus);
    free(ids);
}
END_TEST

/* Raw invalid UTF-8 from standard input round-trips. */
START_TEST(test_invalid_bytes_round_trip) {
    const char text[] = "caf\xe9 \xff\xfe\n\xed\xa0\x80 x\n";
    write_tmp("in.txt", text, sizeof text - 1);
    char args[1024];
    const char *tok = th_fixture_path("tokenizers", "gpt2_hf");
    snprintf(args, sizeof args, "tokenize --tokenizer '%s' < in.txt | '%s' tokenize --tokenizer '%s' --decode", tok,
             getenv("GKD_BIN"), tok);
    ck_assert_int_eq(gkd(args), 0);
    size_t n;
    unsigned char *out = read_tmp("out.txt", &n);
    ck_assert_uint_eq(n, sizeof text - 1);
    ck_assert(!memcmp(out, text, n));
    free(out);
}
END_TEST

/* A bad id: one line naming the file and line; exit status 1. */
START_TEST(test_bad_ids_name_file_and_line) {
    const char *tok = th_fixture_path("tokenizers", "gpt2");
    char args[1024];
    write_tmp("ids.txt", "15496 995\n15496 50257\n", 22);
    snprintf(args, sizeof args, "tokenize --tokenizer '%s' --decode --text ids.txt", tok);
    ck_assert_int_eq(gkd(args), 1);
    size_t n;
    char *err = (char *)read_tmp("err.txt", &n);
    ck_assert_str_eq(err, "gkd tokenize: ids.txt:2: id 50257 is outside the vocabulary (0..50256)\n");
    free(err);
    char *out = (char *)read_tmp("out.txt", &n);
    ck_assert_str_eq(out, "Hello world\n");
    free(out);
    write_tmp("ids.txt", "1 2\n3 -4\n", 9);
    ck_assert_int_eq(gkd(args), 1);
    err = (char *)read_tmp("err.txt", &n);
    ck_assert_str_eq(err, "gkd tokenize: ids.txt:2: '-4' is not a token id\n");
    free(err);
    /* No --tokenizer: usage, status 2; a missing one: one line, status 1. */
    ck_assert_int_eq(gkd("tokenize"), 2);
    ck_assert_int_eq(gkd("tokenize --tokenizer nowhere"), 1);
    err = (char *)read_tmp("err.txt", &n);
    ck_assert_ptr_nonnull(strstr(err, "nowhere"));
    ck_assert_ptr_eq(strchr(err, '\n'), err + n - 1);
    free(err);
}
END_TEST

/* A gkd checkpoint's byte tokenizer: byte b is id 4 + b. */
START_TEST(test_checkpoint_byte_tokenizer) {
    gkd_tokenizer *tok;
    ck_assert_int_eq(gkd_tokenizer_new_byte(&tok), 0);
    gkd_model *m = th_make_model(gkd_tokenizer_vocab_size(tok), 8, 1, 8, 2, 1, 0.0f, 0);
    gkd_checkpoint c = {.model = m, .tokenizer = tok};
    char path[512];
    snprintf(path, sizeof path, "%s/m.ckpt", tmp);
    ck_assert_int_eq(gkd_checkpoint_save(path, &c), 0);
    gkd_model_free(m);
    gkd_tokenizer_free(tok);
    write_tmp("in.txt", "hi\n\xc3\xa9\n", 6);
    ck_assert_int_eq(gkd("tokenize --tokenizer m.ckpt --text in.txt"), 0);
    size_t n;
    char *out = (char *)read_tmp("out.txt", &n);
    ck_assert_str_eq(out, "108 109\n199 173\n");
    free(out);
    write_tmp("ids.txt", "108 109\n1 199 173 2\n", 20);
    ck_assert_int_eq(gkd("tokenize --tokenizer m.ckpt --decode --text ids.txt"), 0);
    out = (char *)read_tmp("out.txt", &n);
    ck_assert_str_eq(out, "hi\n\xc3\xa9\n");
    free(out);
    write_tmp("ids.txt", "260\n", 4);
    ck_assert_int_eq(gkd("tokenize --tokenizer m.ckpt --decode --text ids.txt"), 1);
    char *err = (char *)read_tmp("err.txt", &n);
    ck_assert_str_eq(err, "gkd tokenize: ids.txt:1: id 260 is outside the vocabulary (0..259)\n");
    free(err);
}
END_TEST

Suite *cli_tokenize_suite(void) {
    Suite *s = suite_create("cli_tokenize");
    TCase *tc = tcase_create("tokenize");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_encode_matches_fixture_and_decodes_back);
    tcase_add_test(tc, test_invalid_bytes_round_trip);
    tcase_add_test(tc, test_bad_ids_name_file_and_line);
    tcase_add_test(tc, test_checkpoint_byte_tokenizer);
    suite_add_tcase(s, tc);
    return s;
}
