/* Byte-level BPE (GPT-2): the ids of every corpus line and of the whole
 * corpus against the fixtures written by the reference tokenizers
 * (tools/tokenizer_oracles/gpt2_fixtures.js: gpt-3-encoder, checked equal
 * to js-tiktoken and gpt-tokenizer), for each of the three file layouts;
 * round trips of raw bytes, invalid UTF-8 included; GPT-2's merge passes
 * on small handmade vocabularies; and one clear line for each kind of
 * malformed file. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/subword_internal.h"
#include "gkd/error.h"
#include "gkd/subword.h"
#include "helpers.h"

typedef struct {
    unsigned char *data;
    size_t n;
    size_t count;
    size_t *start, *len; /* (count) */
} lines;

static void lines_read(lines *L, const char *path) {
    L->data = th_read_bytes(path, &L->n);
    L->count = 0;
    for (size_t i = 0; i < L->n; i++) L->count += L->data[i] == '\n';
    if (L->n && L->data[L->n - 1] != '\n') L->count++;
    L->start = malloc((L->count + 1) * sizeof *L->start);
    L->len = malloc((L->count + 1) * sizeof *L->len);
    ck_assert(L->start && L->len);
    size_t k = 0;
    for (size_t i = 0; i < L->n;) {
        size_t e = i;
        while (e < L->n && L->data[e] != '\n') e++;
        L->start[k] = i;
        L->len[k++] = e - i;
        i = e + 1;
    }
    ck_assert_uint_eq(k, L->count);
}

static void lines_free(lines *L) {
    free(L->data);
    free(L->start);
    free(L->len);
}

/* Parse a line of space-separated ids into ids (cap), the count. */
static int parse_ids(const unsigned char *s, size_t n, int *ids, int cap) {
    int k = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
        ck_assert_int_lt(k, cap);
        ids[k++] = (int)v;
    }
    return k;
}

/* The text the references were given for line i (0-based): the replaced
 * one if corpus_replaced.txt has it, else the line itself. */
static const unsigned char *oracle_text(const lines *corpus, const lines *rep, size_t i, size_t *n) {
    for (size_t r = 0; r < rep->count; r++) {
        const unsigned char *s = rep->data + rep->start[r];
        if ((size_t)atol((const char *)s) == i + 1) {
            const unsigned char *tab = memchr(s, '\t', rep->len[r]);
            ck_assert_ptr_nonnull(tab);
            *n = rep->len[r] - (size_t)(tab + 1 - s);
            return tab + 1;
        }
    }
    *n = corpus->len[i];
    return corpus->data + corpus->start[i];
}

static gkd_subword *load_ok(const char *path) {
    gkd_subword *t = NULL;
    int rc = gkd_subword_load(&t, path);
    ck_assert_msg(rc == 0, "load %s: %s", path, gkd_last_error());
    ck_assert_int_eq(gkd_subword_kind_of(t), GKD_SUBWORD_BYTELEVEL);
    return t;
}

static const char *layouts[3][2] = {
    {"tokenizers", "gpt2"},                   /* encoder.json + vocab.bpe */
    {"tokenizers", "gpt2_hf"},                /* vocab.json + merges.txt */
    {"tokenizers/gpt2_hf", "tokenizer.json"}, /* HF tokenizer.json */
};

/* Every corpus line's ids equal the references', in each layout. */
START_TEST(test_corpus_lines_match_references) {
    lines corpus, rep, want;
    lines_read(&corpus, th_fixture_path("tokenizers", "corpus.txt"));
    lines_read(&rep, th_fixture_path("tokenizers", "corpus_replaced.txt"));
    lines_read(&want, th_fixture_path("tokenizers", "gpt2_ids.txt"));
    ck_assert_uint_eq(corpus.count, want.count);
    ck_assert_uint_eq(rep.count, 10);
    const int cap = 1 << 16;
    int *got = malloc(cap * sizeof *got), *exp = malloc(cap * sizeof *exp);
    ck_assert(got && exp);
    gkd_subword *t = load_ok(th_fixture_path(layouts[_i][0], layouts[_i][1]));
    ck_assert_int_eq(gkd_subword_vocab_size(t), 50257);
    size_t matched = 0;
    for (size_t i = 0; i < corpus.count; i++) {
        size_t n;
        const unsigned char *s = oracle_text(&corpus, &rep, i, &n);
        int ng, ne = parse_ids(want.data + want.start[i], want.len[i], exp, cap);
        ck_assert_int_eq(gkd_subword_encode(t, (const char *)s, n, got, cap, &ng), 0);
        int same = ng == ne && !memcmp(got, exp, (size_t)ne * sizeof *got);
        if (!same) {
            int k = 0;
            while (k < ng && k < ne && got[k] == exp[k]) k++;
            fprintf(stderr, "%s: line %zu differs at id %d (%d ids, references %d)\n", layouts[_i][1], i + 1, k, ng, ne);
        }
        matched += (size_t)same;
    }
    fprintf(stderr, "subword_bytelevel: %s: %zu of %zu corpus lines equal the references\n", layouts[_i][1], matched,
            corpus.count);
    ck_assert_uint_eq(matched, corpus.count);
    gkd_subword_free(t);
    free(got);
    free(exp);
    lines_free(&corpus);
    lines_free(&rep);
    lines_free(&want);
}
END_TEST

/* The whole corpus as one text (newlines and long runs across lines),
 * with the invalid lines replaced as the references saw them. */
START_TEST(test_whole_corpus_matches_references) {
    lines corpus, rep, want;
    lines_read(&corpus, th_fixture_path("tokenizers", "corpus.txt"));
    lines_read(&rep, th_fixture_path("tokenizers", "corpus_replaced.txt"));
    lines_read(&want, th_fixture_path("tokenizers", "gpt2_file_ids.txt"));
    char *text = malloc(corpus.n * 2 + 1);
    size_t n = 0;
    for (size_t i = 0; i < corpus.count; i++) {
        size_t k;
        const unsigned char *s = oracle_text(&corpus, &rep, i, &k);
        memcpy(text + n, s, k);
        n += k;
        text[n++] = '\n';
    }
    const int cap = 1 << 20;
    int *got = malloc(cap * sizeof *got), *exp = malloc(cap * sizeof *exp), ng;
    ck_assert(got && exp);
    int ne = parse_ids(want.data, want.len[0], exp, cap);
    gkd_subword *t = load_ok(th_fixture_path("tokenizers", "gpt2"));
    ck_assert_int_eq(gkd_subword_encode(t, text, n, got, cap, &ng), 0);
    ck_assert_int_eq(ng, ne);
    ck_assert(!memcmp(got, exp, (size_t)ne * sizeof *got));
    /* Too little room: GKD_EINVAL, and the count needed. */
    ck_assert_int_eq(gkd_subword_encode(t, text, n, got, 10, &ng), GKD_EINVAL);
    ck_assert_int_eq(ng, ne);
    gkd_subword_free(t);
    free(text);
    free(got);
    free(exp);
    lines_free(&corpus);
    lines_free(&rep);
    lines_free(&want);
}
END_TEST

/* decode(encode(x)) == x for every line's raw bytes (invalid UTF-8 too)
 * and for the whole file. */
START_TEST(test_round_trip_raw_bytes) {
    lines corpus;
    lines_read(&corpus, th_fixture_path("tokenizers", "corpus.txt"));
    gkd_subword *t = load_ok(th_fixture_path("tokenizers", "gpt2_hf"));
    const int cap = 1 << 20;
    int *ids = malloc(cap * sizeof *ids), n;
    char *out = malloc(corpus.n + 1);
    size_t len, ok = 0;
    for (size_t i = 0; i < corpus.count; i++) {
        const char *s = (const char *)corpus.data + corpus.start[i];
        ck_assert_int_eq(gkd_subword_encode(t, s, corpus.len[i], ids, cap, &n), 0);
        ck_assert_int_eq(gkd_subword_decode(t, ids, n, out, corpus.n + 1, &len), 0);
        ok += len == corpus.len[i] && !memcmp(out, s, len);
    }
    ck_assert_uint_eq(ok, corpus.count);
    ck_assert_int_eq(gkd_subword_encode(t, (const char *)corpus.data, corpus.n, ids, cap, &n), 0);
    ck_assert_int_eq(gkd_subword_decode(t, ids, n, out, corpus.n + 1, &len), 0);
    ck_assert_uint_eq(len, corpus.n);
    ck_assert(!memcmp(out, corpus.data, len));
    /* Room for less: the full length, GKD_EINVAL, a NUL-terminated prefix. */
    ck_assert_int_eq(gkd_subword_decode(t, ids, n, out, 5, &len), GKD_EINVAL);
    ck_assert_uint_eq(len, corpus.n);
    ck_assert_uint_eq(strlen(out), 4);
    gkd_subword_free(t);
    free(ids);
    free(out);
    lines_free(&corpus);
}
END_TEST

/* An invalid byte is one piece of its own class, so it splits the text as
 * U+FFFD would; each byte decodes to itself. */
START_TEST(test_invalid_bytes_split_like_replacement) {
    gkd_subword *t = load_ok(th_fixture_path("tokenizers", "gpt2"));
    int a[16], n;
    ck_assert_int_eq(gkd_subword_encode(t, "ab\xff" "cd 12", 8, a, 16, &n), 0);
    const char *want[] = {"ab", "\xff", "cd", " 12"};
    ck_assert_int_eq(n, 4);
    for (int i = 0; i < 4; i++) {
        char out[8];
        size_t len;
        ck_assert_int_eq(gkd_subword_decode(t, a + i, 1, out, sizeof out, &len), 0);
        ck_assert_str_eq(out, want[i]);
    }
    /* " \xff\xfe!" is one piece (a space, then a run of no class), as
     * " \ufffd\ufffd!" is for the references. */
    int b[16], m;
    ck_assert_int_eq(gkd_subword_encode(t, "x \xff\xfe!", 5, b, 16, &m), 0);
    char out[8];
    size_t len;
    ck_assert_int_eq(gkd_subword_decode(t, b + 1, m - 1, out, sizeof out, &len), 0);
    ck_assert_str_eq(out, " \xff\xfe!");
    ck_assert_int_eq(b[0], 87); /* "x" */
    gkd_subword_free(t);
}
END_TEST

/* GPT-2's files: 50257 ids, <|endoftext|> (50256) is both BOS and EOS,
 * decodes to nothing, and is ordinary text when it appears in the input. */
START_TEST(test_specials_from_files) {
    for (int k = 0; k < 3; k++) {
        gkd_subword *t = load_ok(th_fixture_path(layouts[k][0], layouts[k][1]));
        ck_assert_int_eq(gkd_subword_vocab_size(t), 50257);
        ck_assert_int_eq(gkd_subword_bos(t), 50256);
        ck_assert_int_eq(gkd_subword_eos(t), 50256);
        int ids[32], n;
        ck_assert_int_eq(gkd_subword_encode(t, "<|endoftext|>", 13, ids, 32, &n), 0);
        ck_assert_int_gt(n, 1);
        for (int i = 0; i < n; i++) ck_assert_int_ne(ids[i], 50256);
        int with[] = {50256, 15496, 50256};
        char out[16];
        size_t len;
        ck_assert_int_eq(gkd_subword_decode(t, with, 3, out, sizeof out, &len), 0);
        ck_assert_str_eq(out, "Hello");
        int bad = 50257;
        ck_assert_int_eq(gkd_subword_decode(t, &bad, 1, out, sizeof out, &len), GKD_EINVAL);
        ck_assert_ptr_nonnull(strstr(gkd_last_error(), "50257"));
        gkd_subword_free(t);
    }
}
END_TEST

/* ---- small handmade vocabularies ---- */

/* GPT-2's printable stand-in for byte b, as UTF-8 into out (NUL-ended). */
static void byte_char(int b, char *out) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff))) n++;
        cp = 0x100 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
    }
}

/* dir/vocab.json with the 256 bytes (ids 0..255) then extra[] (ids 256..),
 * written with JSON escapes for '"' and '\'. */
static void write_vocab(const char *dir, const char *const *extra, int n_extra, const char *tail) {
    char path[512], *s = malloc(1 << 16);
    size_t o = 0;
    o += (size_t)sprintf(s + o, "{");
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        o += (size_t)sprintf(s + o, "%s\"%s%s\": %d", b ? ", " : "", (b == '"' || b == '\\') ? "\\" : "", c, b);
    }
    for (int i = 0; i < n_extra; i++) o += (size_t)sprintf(s + o, ", \"%s\": %d", extra[i], 256 + i);
    sprintf(s + o, "%s}", tail ? tail : "");
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    th_write_file(path, s);
    free(s);
}

static void write_merges(const char *dir, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    th_write_file(path, text);
}

static void expect_ids(gkd_subword *t, const char *text, const int *want, int n_want) {
    int ids[256], n;
    ck_assert_int_eq(gkd_subword_encode(t, text, strlen(text), ids, 256, &n), 0);
    ck_assert_int_eq(n, n_want);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want[i]);
}

/* Each pass merges every occurrence of the lowest-ranked pair, left to
 * right, before a pair it created is looked at (GPT-2's encoder.py): with
 * "aa a" ranked before "a a", "aaaa" is aa|aa, not aaa|a. Short pieces
 * (scanned) and long ones (heap) alike. */
START_TEST(test_merge_passes_like_gpt2) {
    char dir[256];
    th_make_tmpdir(dir, sizeof dir, "gkd-bpe");
    const char *extra[] = {"aa", "aaa", "aaaa"};
    write_vocab(dir, extra, 3, NULL);
    write_merges(dir, "#version: 0.2\naa a\na a\n");
    gkd_subword *t = load_ok(dir);
    ck_assert_int_eq(gkd_subword_vocab_size(t), 259);
    ck_assert_int_eq(gkd_subword_bos(t), -1);
    int two[] = {256, 256};
    expect_ids(t, "aaaa", two, 2);
    int three[] = {257};
    expect_ids(t, "aaa", three, 1); /* pass 1: aa|a; pass 2: aa a -> aaa */
    int many[20];
    for (int i = 0; i < 20; i++) many[i] = 256;
    expect_ids(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", many, 20); /* 40 bytes: the heap */
    int odd[20];
    for (int i = 0; i < 19; i++) odd[i] = 256;
    odd[19] = 257;
    expect_ids(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", odd, 20); /* 41: 19 aa, then aa a */
    gkd_subword_free(t);
    /* "aa aa" too: 4 a -> aaaa in two passes; 50 a -> 12 aaaa + aa. */
    write_merges(dir, "a a\naa aa\n");
    t = load_ok(dir);
    int four[] = {258};
    expect_ids(t, "aaaa", four, 1);
    int fifty[13];
    for (int i = 0; i < 12; i++) fifty[i] = 258;
    fifty[12] = 256;
    expect_ids(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", fifty, 13);
    gkd_subword_free(t);
    th_remove_tmpdir(dir);
}
END_TEST

/* The pre-tokenizer's corners, checked on a vocabulary without merges
 * (each id a byte): the pieces are seen through which bytes merge. With
 * merges of every pair of letters and of space + letter, pieces show as
 * ids. */
START_TEST(test_tokenizer_json_forms) {
    char dir[256], path[512];
    th_make_tmpdir(dir, sizeof dir, "gkd-bpe");
    /* Merges as "a b" strings, an added special token outside the vocab. */
    char *s = malloc(1 << 16);
    size_t o = (size_t)sprintf(s, "{\"added_tokens\": [{\"id\": 257, \"content\": \"<|im_end|>\", \"special\": true}],"
                                  " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
                                  "\"add_prefix_space\": false}, \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        o += (size_t)sprintf(s + o, "%s\"%s%s\": %d", b ? ", " : "", (b == '"' || b == '\\') ? "\\" : "", c, b);
    }
    sprintf(s + o, ", \"hi\": 256}, \"merges\": [\"h i\"]}}");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    th_write_file(path, s);
    gkd_subword *t = NULL;
    ck_assert_msg(gkd_subword_load_bytelevel(&t, path) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(gkd_subword_vocab_size(t), 258);
    ck_assert_int_eq(gkd_subword_eos(t), -1);
    int hi[] = {256};
    expect_ids(t, "hi", hi, 1);
    int sp[] = {' ', 256}; /* bytes 0x20 is id 32 here; " hi" is one piece, but no " h" merge */
    expect_ids(t, " hi", sp, 2);
    int ids[4] = {257, 256}, n;
    char out[8];
    size_t len;
    ck_assert_int_eq(gkd_subword_decode(t, ids, 2, out, sizeof out, &len), 0);
    ck_assert_str_eq(out, "hi");
    (void)n;
    gkd_subword_free(t);
    /* add_prefix_space true: refused in one line. */
    char *p = strstr(s, "\"add_prefix_space\": false");
    memcpy(p, "\"add_prefix_space\": true ", 25);
    th_write_file(path, s);
    ck_assert_int_eq(gkd_subword_load_bytelevel(&t, path), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "add_prefix_space"));
    free(s);
    th_remove_tmpdir(dir);
}
END_TEST

/* Malformed files: each one error, one line, naming the file and what is
 * wrong. */
static void expect_error(const char *path, const char *needle) {
    gkd_subword *t = (gkd_subword *)1;
    int rc = gkd_subword_load(&t, path);
    ck_assert_msg(rc < 0, "loading %s should fail (%s)", path, needle);
    ck_assert_ptr_null(t);
    const char *m = gkd_last_error();
    ck_assert_msg(strstr(m, needle) != NULL, "message \"%s\" lacks \"%s\"", m, needle);
    ck_assert_msg(strstr(m, "tokenizer") != NULL, "message \"%s\" does not say tokenizer", m);
    ck_assert_ptr_null(strchr(m, '\n'));
}

START_TEST(test_malformed_files) {
    char dir[256], path[512];
    th_make_tmpdir(dir, sizeof dir, "gkd-bpe");
    const char *extra[] = {"ab"};
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    /* Truncated JSON: GPT-2's encoder.json cut short. */
    size_t n;
    unsigned char *enc = th_read_bytes(th_fixture_path("tokenizers/gpt2", "encoder.json"), &n);
    th_write_bytes(path, enc, 5000);
    write_merges(dir, "a b\n");
    expect_error(dir, "vocab.json: byte ");
    free(enc);
    /* A merge naming a token the vocabulary lacks; its result missing. */
    write_vocab(dir, extra, 1, NULL);
    write_merges(dir, "#version: 0.2\na b\nab cd\n");
    expect_error(dir, "line 3: token \"cd\" is not in the vocabulary");
    write_merges(dir, "a b\nb c\n");
    expect_error(dir, "line 2: token \"bc\" is not in the vocabulary");
    /* A merge twice, a line that is not two tokens, an empty line. */
    write_merges(dir, "a b\na b\n");
    expect_error(dir, "line 2 repeats merge 1");
    write_merges(dir, "a b c\n");
    expect_error(dir, "line 1 is not two tokens");
    write_merges(dir, "a b\n\na b\n");
    expect_error(dir, "line 2 is empty");
    write_merges(dir, "a b\n");
    /* Two tokens with one id; an id past the end; a negative one; a hole. */
    write_vocab(dir, extra, 1, ", \"zz\": 256");
    expect_error(dir, "which another token has too");
    write_vocab(dir, extra, 1, ", \"zz\": 99999999999");
    expect_error(dir, "outside 0..257");
    write_vocab(dir, extra, 1, ", \"zz\": -1");
    expect_error(dir, "has id -1");
    write_vocab(dir, extra, 1, ", \"zz\": \"x\"");
    expect_error(dir, "has a string, not an id");
    /* A byte missing; a token that is not byte-level text. */
    {
        char *s = malloc(1 << 16);
        size_t o = (size_t)sprintf(s, "{");
        for (int b = 1; b < 256; b++) {
            char c[4];
            byte_char(b, c);
            o += (size_t)sprintf(s + o, "%s\"%s%s\": %d", b > 1 ? ", " : "", (b == '"' || b == '\\') ? "\\" : "", c, b - 1);
        }
        sprintf(s + o, "}");
        th_write_file(path, s);
        free(s);
        expect_error(dir, "no token for byte 0x00");
    }
    write_vocab(dir, extra, 1, ", \"a b\": 257");
    expect_error(dir, "token 257 is not byte-level text");
    /* A token longer than any allowed. */
    {
        char *big = malloc(20000);
        memset(big, 'x', 19999);
        big[19999] = 0;
        char *tail = malloc(20100);
        snprintf(tail, 20100, ", \"%s\": 257", big);
        write_vocab(dir, extra, 1, tail);
        expect_error(dir, "longer than 4096 bytes");
        free(big);
        free(tail);
    }
    /* The partner file missing; nothing there. */
    write_vocab(dir, extra, 1, NULL);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    remove(path);
    expect_error(dir, "merges.txt is missing");
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    expect_error(path, "merges.txt is missing");
    th_remove_tmpdir(dir);
}
END_TEST

Suite *subword_bytelevel_suite(void) {
    Suite *s = suite_create("subword_bytelevel");
    TCase *tc = tcase_create("subword_bytelevel");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_corpus_lines_match_references, 0, 3);
    tcase_add_test(tc, test_whole_corpus_matches_references);
    tcase_add_test(tc, test_round_trip_raw_bytes);
    tcase_add_test(tc, test_invalid_bytes_split_like_replacement);
    tcase_add_test(tc, test_specials_from_files);
    tcase_add_test(tc, test_merge_passes_like_gpt2);
    tcase_add_test(tc, test_tokenizer_json_forms);
    tcase_add_test(tc, test_malformed_files);
    suite_add_tcase(s, tc);
    return s;
}
