/* Subword tokenizers in checkpoints (src/data/subword_blob.c) and
 * continuation encoding (gkd_subword_encode_continuation).
 *
 * Serialization: for each kind the tests have (GPT-2 byte-level in its
 * three layouts; small SentencePiece tokenizer.bin and tokenizer.json
 * written here; Llama 2's tokenizer.bin and tokenizer.json when `make
 * test` could write them, docs/tokenizers.md), deserialize(serialize(t))
 * serializes to the same bytes, is equal with the same hash, and gives
 * the file-loaded tokenizer's ids (continuation ids too) and decode on
 * every line of tests/fixtures/tokenizers/corpus.txt. Every truncation
 * and every one-byte corruption of small blobs is refused with one line
 * or parses to a tokenizer that serializes back to the corrupted bytes.
 *
 * Special tokens: <unk> and <pad> as the files define them, -1 when
 * they do not (GPT-2, Llama 2's padding).
 *
 * Continuation: SentencePiece's dummy prefix is a leading space marker,
 * so encode_continuation(" " + x) == encode(x) for every corpus line x
 * (none is empty), through both Llama 2 files. The exceptions, which the
 * corpus lacks and the test adds, are asserted by their rule: for an
 * empty x encode gives nothing and the continuation the " " piece; and
 * llama2.c's tokenizer.bin groups a byte with the UTF-8 continuation
 * bytes after it (run.c), so when x starts with continuation bytes the
 * space joins them and goes to its byte piece: the ids are encode(x)
 * with its first id (the " " piece) replaced by <0x20>. Byte-level BPE:
 * encode_continuation(x) == encode(x). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/error.h"
#include "gkd/subword.h"
#include "helpers.h"

static char dir[128];

static void setup(void) { th_make_tmpdir(dir, sizeof dir, "gkd_subblob"); }
static void teardown(void) { th_remove_tmpdir(dir); }

static const char *in_dir(const char *name) {
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static gkd_subword *load_ok(const char *path) {
    gkd_subword *t = NULL;
    int rc = gkd_subword_load(&t, path);
    ck_assert_msg(rc == 0, "load %s: %s", path, gkd_last_error());
    return t;
}

static unsigned char *serialized(const gkd_subword *t, size_t *n) {
    *n = gkd_subword_serialized_size(t);
    unsigned char *b = malloc(*n);
    ck_assert_ptr_nonnull(b);
    gkd_subword_serialize(t, b);
    return b;
}

/* ---- small tokenizers written here ---- */

/* A llama2.c tokenizer.bin: <unk>, <s>, </s>, the byte pieces (3..258),
 * " " (259), "a", "b", "c", "ab" (263), " ab" (264), then extra. */
static void write_small_bin(const char *extra) {
    const char *pieces[7] = {" ", "a", "b", "c", "ab", " ab", extra};
    const float scores[7] = {-100, -101, -102, -103, -1, -2, 0};
    th_bytes o = th_llama2c_tokenizer(pieces, scores, extra ? 7 : 6);
    th_write_bytes(in_dir("tokenizer.bin"), o.b, o.n);
    free(o.b);
}

/* The same pieces as a Hugging Face tokenizer.json of Llama 2's layout;
 * padding is the JSON of its "padding" member. */
static void write_small_json(const char *padding) {
    char *s = malloc(1 << 14);
    ck_assert_ptr_nonnull(s);
    size_t k = (size_t)sprintf(s,
                               "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
                               " {\"id\": 1, \"content\": \"<s>\", \"special\": true},"
                               " {\"id\": 2, \"content\": \"</s>\", \"special\": true},"
                               " {\"id\": 265, \"content\": \"<pad>\", \"special\": true}],\n"
                               " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\","
                               " \"prepend\": \"\\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"},"
                               " \"content\": \"\\u2581\"}]},\n"
                               " \"pre_tokenizer\": null, \"padding\": %s,\n"
                               " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true,"
                               " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, ",
                               padding);
    for (int b = 0; b < 256; b++) k += (size_t)sprintf(s + k, "\"<0x%02X>\": %d, ", b, b + 3);
    sprintf(s + k, "\"\\u2581\": 259, \"a\": 260, \"b\": 261, \"c\": 262, \"ab\": 263, \"\\u2581ab\": 264},"
                   " \"merges\": [\"a b\", \"\\u2581 ab\"]}}\n");
    th_write_file(in_dir("tokenizer.json"), s);
    free(s);
}

/* GPT-2's printable stand-in for byte b, as UTF-8 into out. */
static void byte_char(int b, char *out) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff))) n++;
        cp = 0x100 + n;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
}

/* A byte-level vocab.json (the 256 bytes, "ab" 256, "Ġa" 257) and
 * merges.txt. */
static void write_small_bytelevel(void) {
    char *s = malloc(1 << 14);
    ck_assert_ptr_nonnull(s);
    size_t o = (size_t)sprintf(s, "{");
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        o += (size_t)sprintf(s + o, "%s\"%s%s\": %d", b ? ", " : "", (b == '"' || b == '\\') ? "\\" : "", c, b);
    }
    sprintf(s + o, ", \"ab\": 256, \"\\u0120a\": 257}");
    th_write_file(in_dir("vocab.json"), s);
    th_write_file(in_dir("merges.txt"), "#version: 0.2\na b\n\xc4\xa0 a\n");
    free(s);
}

/* ---- round trips ---- */


/* The tokenizer of case i, loaded from its files, or NULL if absent. */
static gkd_subword *case_tokenizer(int i, const char **name) {
    static const char *names[] = {"GPT-2 encoder.json + vocab.bpe", "GPT-2 vocab.json + merges.txt",
                                  "GPT-2 tokenizer.json",           "small tokenizer.bin",
                                  "small tokenizer.json",           "Llama 2 tokenizer.bin",
                                  "Llama 2 tokenizer.json"};
    *name = names[i];
    switch (i) {
    case 0: return load_ok(th_fixture_path("tokenizers", "gpt2"));
    case 1: return load_ok(th_fixture_path("tokenizers", "gpt2_hf"));
    case 2: return load_ok(th_fixture_path("tokenizers/gpt2_hf", "tokenizer.json"));
    case 3: write_small_bin(NULL); return load_ok(in_dir("tokenizer.bin"));
    case 4: write_small_json("null"); return load_ok(in_dir("tokenizer.json"));
    default: {
        const char *p = th_llama2_file(i == 5 ? "tokenizer.bin" : "tokenizer.json", "subword_blob");
        return p ? load_ok(p) : NULL;
    }
    }
}

/* Same ids and the same decode on every corpus line, and the same
 * continuation ids. */
static void same_on_corpus(const gkd_subword *a, const gkd_subword *b, const char *name) {
    size_t cn;
    unsigned char *corpus = th_read_bytes(th_fixture_path("tokenizers", "corpus.txt"), &cn);
    enum { CAP = 1 << 16 };
    int *ia = malloc(CAP * sizeof *ia), *ib = malloc(CAP * sizeof *ib);
    char *oa = malloc(CAP), *ob = malloc(CAP);
    ck_assert(ia && ib && oa && ob);
    int lines = 0;
    for (size_t at = 0; at < cn; lines++) {
        const char *line = (const char *)corpus + at;
        const char *nl = memchr(line, '\n', cn - at);
        size_t n = nl ? (size_t)(nl - line) : cn - at, la, lb;
        at += n + 1;
        for (int cont = 0; cont < 2; cont++) {
            int na = -1, nb = -2;
            ck_assert_int_eq((cont ? gkd_subword_encode_continuation : gkd_subword_encode)(a, line, n, ia, CAP, &na), 0);
            ck_assert_int_eq((cont ? gkd_subword_encode_continuation : gkd_subword_encode)(b, line, n, ib, CAP, &nb), 0);
            ck_assert_msg(na == nb && !memcmp(ia, ib, (size_t)na * sizeof *ia), "%s: line %d: ids differ (%s)", name,
                          lines + 1, cont ? "continuation" : "encode");
        }
        int na = 0;
        ck_assert_int_eq(gkd_subword_encode(a, line, n, ia, CAP, &na), 0);
        ck_assert_int_eq(gkd_subword_decode(a, ia, na, oa, CAP, &la), 0);
        ck_assert_int_eq(gkd_subword_decode(b, ia, na, ob, CAP, &lb), 0);
        ck_assert_msg(la == lb && !memcmp(oa, ob, la), "%s: line %d: decode differs", name, lines + 1);
    }
    ck_assert_int_eq(lines, 9025);
    free(ia);
    free(ib);
    free(oa);
    free(ob);
    free(corpus);
}

START_TEST(test_round_trip) {
    const char *name;
    gkd_subword *t = case_tokenizer(_i, &name);
    if (!t) return;
    size_t n;
    unsigned char *blob = serialized(t, &n);
    gkd_subword *u = NULL;
    ck_assert_msg(gkd_subword_deserialize(&u, blob, n) == 0, "%s: %s", name, gkd_last_error());
    ck_assert_int_eq(gkd_subword_kind_of(u), gkd_subword_kind_of(t));
    ck_assert_int_eq(gkd_subword_vocab_size(u), gkd_subword_vocab_size(t));
    ck_assert_int_eq(gkd_subword_bos(u), gkd_subword_bos(t));
    ck_assert_int_eq(gkd_subword_eos(u), gkd_subword_eos(t));
    ck_assert_int_eq(gkd_subword_unk(u), gkd_subword_unk(t));
    ck_assert_int_eq(gkd_subword_pad(u), gkd_subword_pad(t));
    ck_assert(gkd_subword_equal(t, u));
    ck_assert(gkd_subword_hash(t) == gkd_subword_hash(u));
    ck_assert(gkd_subword_hash(t) == th_fnv1a(TH_FNV_BASIS, blob, n));
    size_t m;
    unsigned char *again = serialized(u, &m);
    ck_assert_uint_eq(m, n);
    ck_assert(!memcmp(again, blob, n));
    same_on_corpus(t, u, name);
    free(again);
    free(blob);
    gkd_subword_free(u);
    gkd_subword_free(t);
}
END_TEST

/* The layout of docs/checkpoint-format.md, read back field by field. */
START_TEST(test_layout) {
    write_small_bytelevel();
    gkd_subword *t = load_ok(dir);
    size_t n, vn, mn;
    unsigned char *b = serialized(t, &n);
    unsigned char *vocab = th_read_bytes(in_dir("vocab.json"), &vn), *merges = th_read_bytes(in_dir("merges.txt"), &mn);
    ck_assert_uint_eq(n, 12 + (4 + 10 + 8 + vn) + (4 + 10 + 8 + mn));
    const unsigned char head[] = {1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0};
    ck_assert(!memcmp(b, head, sizeof head));
    ck_assert(!memcmp(b + 16, "vocab.json", 10));
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len |= (uint64_t)b[26 + i] << (8 * i);
    ck_assert_uint_eq(len, vn);
    ck_assert(!memcmp(b + 34, vocab, vn));
    const unsigned char *m = b + 34 + vn;
    ck_assert(m[0] == 10 && !m[1] && !m[2] && !m[3] && !memcmp(m + 4, "merges.txt", 10));
    ck_assert(!memcmp(m + 22, merges, mn));
    free(vocab);
    free(merges);
    free(b);
    gkd_subword_free(t);
}
END_TEST

/* A refusal: the code, out NULL, one line saying what. */
static void refused(const unsigned char *b, size_t n, int code, const char *what) {
    gkd_subword *t = (gkd_subword *)1;
    int rc = gkd_subword_deserialize(&t, b, n);
    const char *msg = gkd_last_error();
    ck_assert_msg(rc == code, "expected %d for [%s], got %d: %s", code, what, rc, msg);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(msg, what) != NULL, "message [%s] does not say [%s]", msg, what);
    ck_assert_msg(!strchr(msg, '\n'), "message is not one line: %s", msg);
}

static void set32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

START_TEST(test_bad_blobs) {
    write_small_bytelevel();
    gkd_subword *t = load_ok(dir);
    size_t n;
    unsigned char *b = serialized(t, &n), *c = malloc(n + 1);
    ck_assert_ptr_nonnull(c);
    refused(b, 11, GKD_ECORRUPT, "need at least 12");
    memcpy(c, b, n);
    set32(c, 2);
    refused(c, n, GKD_EVERSION, "format version 2");
    memcpy(c, b, n);
    set32(c + 4, 3);
    refused(c, n, GKD_EFORMAT, "unknown kind 3");
    memcpy(c, b, n);
    set32(c + 8, 0);
    refused(c, n, GKD_EFORMAT, "0 files");
    set32(c + 8, 3);
    refused(c, n, GKD_EFORMAT, "3 files");
    memcpy(c, b, n);
    memcpy(c + 16, "vocab.jsox", 10);
    refused(c, n, GKD_EFORMAT, "no tokenizer file's name");
    memcpy(c, b, n);
    set32(c + 12, 0xffffffffu);
    refused(c, n, GKD_ECORRUPT, "truncated in the name of file 1");
    memcpy(c, b, n);
    c[26 + 7] = 0x80; /* vocab.json's length: 2^63 + ... */
    refused(c, n, GKD_ECORRUPT, "truncated: vocab.json holds");
    memcpy(c, b, n);
    c[n] = 0;
    refused(c, n + 1, GKD_ECORRUPT, "1 bytes after the last file");
    /* A SentencePiece kind cannot be vocab.json + merges.txt. */
    memcpy(c, b, n);
    set32(c + 4, GKD_SUBWORD_SPM);
    refused(c, n, GKD_EFORMAT, "not a set of files a SentencePiece BPE tokenizer is read from");
    /* Two files in the wrong order. */
    memcpy(c, b, n);
    memcpy(c + 16, "merges.txt", 10);
    refused(c, n, GKD_EFORMAT, "not a set of files a byte-level BPE tokenizer is read from");
    /* The parser's refusal names the file. */
    memcpy(c, b, n);
    c[n - 3] = '\n'; /* merges.txt "Ġ a\n" -> "Ġ\n\n": a line of one token */
    refused(c, n, GKD_EFORMAT, "tokenizer merges.txt from a checkpoint: line 3");
    free(c);
    free(b);
    gkd_subword_free(t);
}
END_TEST

/* Every prefix of a blob is refused; every one-byte change is refused or
 * parses to a tokenizer that serializes back to it. */
static void mutate_all(const unsigned char *b, size_t n) {
    unsigned char *c = malloc(n);
    ck_assert_ptr_nonnull(c);
    for (size_t k = 0; k < n; k++) {
        gkd_subword *t = (gkd_subword *)1;
        int rc = gkd_subword_deserialize(&t, b, k);
        ck_assert_msg(rc < 0 && !t, "a prefix of %zu of %zu bytes loaded", k, n);
        ck_assert(!strchr(gkd_last_error(), '\n'));
    }
    int loaded = 0;
    for (size_t k = 0; k < n; k++) {
        memcpy(c, b, n);
        c[k] ^= (unsigned char)(k % 7 == 0 ? 0x01 : 0xA5);
        gkd_subword *t = (gkd_subword *)1;
        int rc = gkd_subword_deserialize(&t, c, n);
        if (rc) {
            ck_assert_msg(rc < 0 && !t, "byte %zu: rc %d", k, rc);
            ck_assert(!strchr(gkd_last_error(), '\n'));
            continue;
        }
        loaded++;
        ck_assert_uint_eq(gkd_subword_serialized_size(t), n);
        unsigned char *d = malloc(n);
        gkd_subword_serialize(t, d);
        ck_assert(!memcmp(c, d, n));
        int ids[64], m;
        ck_assert_int_eq(gkd_subword_encode(t, "ab abc", 6, ids, 64, &m), 0);
        free(d);
        gkd_subword_free(t);
    }
    fprintf(stderr, "subword_blob: %zu one-byte changes of a %zu-byte blob, %d still a tokenizer\n", n, n, loaded);
    free(c);
}

START_TEST(test_truncated_and_corrupted) {
    const char *files[] = {"tokenizer.bin", "tokenizer.json", NULL};
    write_small_bin(NULL);
    write_small_json("null");
    write_small_bytelevel();
    for (int i = 0; i < 3; i++) {
        gkd_subword *t = load_ok(files[i] ? in_dir(files[i]) : dir);
        size_t n;
        unsigned char *b = serialized(t, &n);
        mutate_all(b, n);
        free(b);
        gkd_subword_free(t);
    }
}
END_TEST

START_TEST(test_equal_hash_names) {
    write_small_bin(NULL);
    gkd_subword *a = load_ok(in_dir("tokenizer.bin")), *b = load_ok(in_dir("tokenizer.bin"));
    write_small_bin("xyz");
    gkd_subword *c = load_ok(in_dir("tokenizer.bin"));
    ck_assert(gkd_subword_equal(a, b));
    ck_assert(gkd_subword_hash(a) == gkd_subword_hash(b));
    ck_assert(!gkd_subword_equal(a, c));
    ck_assert(gkd_subword_hash(a) != gkd_subword_hash(c));
    /* GPT-2 in two layouts: one vocabulary, other files. */
    gkd_subword *g1 = load_ok(th_fixture_path("tokenizers", "gpt2")), *g2 = load_ok(th_fixture_path("tokenizers", "gpt2_hf"));
    ck_assert(!gkd_subword_equal(g1, g2));
    ck_assert(!gkd_subword_equal(a, g1));
    ck_assert_str_eq(gkd_subword_kind_name(gkd_subword_kind_of(g1)), "byte-level BPE");
    ck_assert_str_eq(gkd_subword_kind_name(gkd_subword_kind_of(a)), "SentencePiece BPE");
    ck_assert_str_eq(gkd_subword_kind_name((gkd_subword_kind)7), "unknown");
    gkd_subword_free(a);
    gkd_subword_free(b);
    gkd_subword_free(c);
    gkd_subword_free(g1);
    gkd_subword_free(g2);
}
END_TEST

/* ---- special tokens ---- */

START_TEST(test_pad_and_unk) {
    gkd_subword *g = load_ok(th_fixture_path("tokenizers", "gpt2"));
    ck_assert_int_eq(gkd_subword_pad(g), -1);
    ck_assert_int_eq(gkd_subword_unk(g), -1);
    gkd_subword_free(g);
    write_small_bin(NULL);
    gkd_subword *t = load_ok(in_dir("tokenizer.bin"));
    ck_assert_int_eq(gkd_subword_unk(t), 0);
    ck_assert_int_eq(gkd_subword_pad(t), -1);
    gkd_subword_free(t);
    write_small_bin("<pad>");
    t = load_ok(in_dir("tokenizer.bin"));
    ck_assert_int_eq(gkd_subword_pad(t), 265);
    /* A control piece: decodes to nothing. */
    char out[8];
    size_t len;
    int ids[] = {260, 265, 261};
    ck_assert_int_eq(gkd_subword_decode(t, ids, 3, out, sizeof out, &len), 0);
    ck_assert_str_eq(out, "ab");
    gkd_subword_free(t);
    /* tokenizer.json: the special added token <pad>, or the padding object. */
    write_small_json("null");
    t = load_ok(in_dir("tokenizer.json"));
    ck_assert_int_eq(gkd_subword_unk(t), 0);
    ck_assert_int_eq(gkd_subword_pad(t), 265);
    gkd_subword_free(t);
    write_small_json("{\"pad_id\": 2, \"pad_token\": \"</s>\"}");
    t = load_ok(in_dir("tokenizer.json"));
    ck_assert_int_eq(gkd_subword_pad(t), 2);
    gkd_subword_free(t);
    const char *bad[][2] = {{"{\"pad_id\": 1, \"pad_token\": \"</s>\"}", "is piece 2, not padding.pad_id"},
                            {"{\"pad_token\": \"<nope>\"}", "padding.pad_token \"<nope>\" is not in the vocabulary"},
                            {"{\"pad_id\": 1}", "padding has no pad_token"},
                            {"7", "padding is not an object"}};
    for (int i = 0; i < 4; i++) {
        write_small_json(bad[i][0]);
        t = (gkd_subword *)1;
        ck_assert_int_eq(gkd_subword_load(&t, in_dir("tokenizer.json")), GKD_EFORMAT);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(gkd_last_error(), bad[i][1]), "%s", gkd_last_error());
    }
    /* Byte-level tokenizer.json: GPT-2's, its padding and unk_token set. */
    size_t gn;
    unsigned char *gpt2 = th_read_bytes(th_fixture_path("tokenizers/gpt2_hf", "tokenizer.json"), &gn);
    const char *cases[][3] = {
        {"{\"pad_id\":50256,\"pad_token\":\"<|endoftext|>\"}", "\"Hello\"", NULL},
        {"{\"pad_token\":\"\u0120the\"}", "null", NULL}, /* a vocabulary entry: " the", 262 */
        {"{\"pad_id\":1,\"pad_token\":\"<|endoftext|>\"}", "null", "is token 50256, not padding.pad_id"},
        {"null", "\"<nope>\"", "model.unk_token \"<nope>\" is not a token"},
    };
    for (int i = 0; i < 4; i++) {
        char *s = malloc(gn + 256), *at;
        ck_assert_ptr_nonnull(s);
        memcpy(s, gpt2, gn + 1);
        ck_assert_ptr_nonnull(at = strstr(s, "\"padding\":null"));
        memmove(at + 10 + strlen(cases[i][0]), at + 14, strlen(at + 14) + 1);
        memcpy(at + 10, cases[i][0], strlen(cases[i][0]));
        ck_assert_ptr_nonnull(at = strstr(s, "\"unk_token\":null"));
        memmove(at + 12 + strlen(cases[i][1]), at + 16, strlen(at + 16) + 1);
        memcpy(at + 12, cases[i][1], strlen(cases[i][1]));
        th_write_file(in_dir("tokenizer.json"), s);
        free(s);
        t = (gkd_subword *)1;
        int rc = gkd_subword_load(&t, in_dir("tokenizer.json"));
        if (cases[i][2]) {
            ck_assert_int_eq(rc, GKD_EFORMAT);
            ck_assert_ptr_null(t);
            ck_assert_msg(strstr(gkd_last_error(), cases[i][2]), "%s", gkd_last_error());
            continue;
        }
        ck_assert_msg(rc == 0, "%s", gkd_last_error());
        ck_assert_int_eq(gkd_subword_kind_of(t), GKD_SUBWORD_BYTELEVEL);
        ck_assert_int_eq(gkd_subword_pad(t), i == 0 ? 50256 : 262);
        ck_assert_int_eq(gkd_subword_unk(t), i == 0 ? 15496 : -1); /* "Hello" */
        gkd_subword_free(t);
    }
    free(gpt2);
    const char *p = th_llama2_file("tokenizer.json", "subword_blob");
    if (p) {
        t = load_ok(p);
        ck_assert_int_eq(gkd_subword_unk(t), 0);
        ck_assert_int_eq(gkd_subword_pad(t), -1);
        gkd_subword_free(t);
    }
}
END_TEST

/* ---- continuation ---- */

START_TEST(test_continuation_small) {
    write_small_bin(NULL);
    write_small_json("null");
    for (int k = 0; k < 2; k++) {
        gkd_subword *t = load_ok(in_dir(k ? "tokenizer.json" : "tokenizer.bin"));
        int ids[16], n = -1;
        ck_assert_int_eq(gkd_subword_encode(t, "ab", 2, ids, 16, &n), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(ids[0], 264); /* " ab": the dummy prefix merged in */
        ck_assert_int_eq(gkd_subword_encode_continuation(t, "ab", 2, ids, 16, &n), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(ids[0], 263); /* "ab" */
        ck_assert_int_eq(gkd_subword_encode_continuation(t, "", 0, ids, 16, &n), 0);
        ck_assert_int_eq(n, 0);
        ck_assert_int_eq(gkd_subword_encode_continuation(t, "ab c", 4, ids, 1, &n), GKD_EINVAL);
        ck_assert_int_eq(n, 3);
        gkd_subword_free(t);
    }
}
END_TEST

/* Byte-level BPE: a continuation encodes as any text. */
START_TEST(test_continuation_bytelevel) {
    gkd_subword *t = load_ok(th_fixture_path("tokenizers", "gpt2"));
    size_t cn;
    unsigned char *corpus = th_read_bytes(th_fixture_path("tokenizers", "corpus.txt"), &cn);
    enum { CAP = 1 << 16 };
    int *a = malloc(CAP * sizeof *a), *b = malloc(CAP * sizeof *b), lines = 0;
    ck_assert(a && b);
    for (size_t at = 0; at < cn; lines++) {
        const char *line = (const char *)corpus + at;
        const char *nl = memchr(line, '\n', cn - at);
        size_t n = nl ? (size_t)(nl - line) : cn - at;
        at += n + 1;
        int na, nb;
        ck_assert_int_eq(gkd_subword_encode(t, line, n, a, CAP, &na), 0);
        ck_assert_int_eq(gkd_subword_encode_continuation(t, line, n, b, CAP, &nb), 0);
        ck_assert_msg(na == nb && !memcmp(a, b, (size_t)na * sizeof *a), "line %d", lines + 1);
    }
    ck_assert_int_eq(lines, 9025);
    free(a);
    free(b);
    free(corpus);
    gkd_subword_free(t);
}
END_TEST

/* SentencePiece, Llama 2: encode_continuation(" " + x) == encode(x) for
 * every non-empty line x; for tokenizer.bin and x starting with a
 * continuation byte, encode(x) with its first id (" ") replaced by <0x20>;
 * for an empty line, the " " piece alone. */
static void check_continuation_identity(const char *file, int bin) {
    const char *p = th_llama2_file(file, "subword_blob");
    if (!p) return;
    gkd_subword *t = load_ok(p);
    size_t cn;
    unsigned char *corpus = th_read_bytes(th_fixture_path("tokenizers", "corpus.txt"), &cn);
    enum { CAP = 1 << 16 };
    int *a = malloc(CAP * sizeof *a), *b = malloc(CAP * sizeof *b);
    char *spaced = malloc(cn + 64);
    ck_assert(a && b && spaced);
    int lines = 0, empty = 0, leading_space = 0, grouped = 0, space_id = -1, byte20 = -1, n1;
    ck_assert_int_eq(gkd_subword_encode_continuation(t, " ", 1, a, CAP, &n1), 0);
    ck_assert_int_eq(n1, 1);
    space_id = a[0];
    ck_assert_int_eq(space_id, 29871); /* Llama 2's "▁" */
    ck_assert_int_eq(gkd_subword_encode(t, "\x01", 1, a, CAP, &n1), 0); /* <0x01> is id 4: <0x20> is 35 */
    ck_assert_int_eq(a[n1 - 1], 4);
    byte20 = 0x20 + 3;
    /* The corpus has no empty line and none that starts with a
     * continuation byte: these come after it. */
    static const char *const extra[] = {"", "\200abc", "\x80\xBF Hello", "\xBF"}; /* \200: byte 0x80 */
    const int n_extra = 4;
    for (size_t at = 0; at < cn || lines < 9025 + n_extra; lines++) {
        const char *line;
        size_t n;
        if (at < cn) {
            line = (const char *)corpus + at;
            const char *nl = memchr(line, '\n', cn - at);
            n = nl ? (size_t)(nl - line) : cn - at;
            at += n + 1;
        } else {
            line = extra[lines - 9025];
            n = strlen(line);
        }
        spaced[0] = ' ';
        memcpy(spaced + 1, line, n);
        int na, nb;
        ck_assert_int_eq(gkd_subword_encode(t, line, n, a, CAP, &na), 0);
        ck_assert_int_eq(gkd_subword_encode_continuation(t, spaced, n + 1, b, CAP, &nb), 0);
        if (n == 0) {
            empty++;
            ck_assert_int_eq(na, 0);
            ck_assert_int_eq(nb, 1);
            ck_assert_int_eq(b[0], space_id);
            continue;
        }
        leading_space += line[0] == ' ';
        if (bin && ((unsigned char)line[0] & 0xC0) == 0x80) {
            grouped++;
            ck_assert_int_eq(a[0], space_id);
            a[0] = byte20;
        }
        ck_assert_msg(na == nb && !memcmp(a, b, (size_t)na * sizeof *a), "%s: line %d: continuation of \" \" + x "
                      "differs from encode(x)", file, lines + 1);
    }
    fprintf(stderr, "subword_blob: %s: continuation identity on %d lines (%d empty, %d starting with a space, "
            "%d starting with a continuation byte)\n", file, lines, empty, leading_space, grouped);
    ck_assert_int_eq(lines, 9025 + n_extra);
    ck_assert_int_eq(empty, 1);
    ck_assert_int_gt(leading_space, 0);
    ck_assert_int_eq(grouped, bin ? 3 : 0);
    free(a);
    free(b);
    free(spaced);
    free(corpus);
    gkd_subword_free(t);
}

START_TEST(test_continuation_llama2_bin) { check_continuation_identity("tokenizer.bin", 1); }
END_TEST

START_TEST(test_continuation_llama2_json) { check_continuation_identity("tokenizer.json", 0); }
END_TEST

Suite *subword_blob_suite(void) {
    Suite *s = suite_create("subword_blob");
    TCase *tc = tcase_create("subword_blob");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_round_trip, 0, 7);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_bad_blobs);
    tcase_add_test(tc, test_truncated_and_corrupted);
    tcase_add_test(tc, test_equal_hash_names);
    tcase_add_test(tc, test_pad_and_unk);
    tcase_add_test(tc, test_continuation_small);
    tcase_add_test(tc, test_continuation_bytelevel);
    tcase_add_test(tc, test_continuation_llama2_bin);
    tcase_add_test(tc, test_continuation_llama2_json);
    suite_add_tcase(s, tc);
    return s;
}
