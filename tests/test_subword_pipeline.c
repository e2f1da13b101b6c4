/* Subword tokenizers through the whole pipeline: the sequence layout of
 * gkd_tokenizer_encode_pair (the files' BOS and EOS, no SEP, the reference
 * encoded as the prompt's continuation), decoding generated text, storing
 * the tokenizer in checkpoints, and end to end through the CLI: a GPT-2
 * byte-level BPE model trained on text, exported with its tokenizer,
 * imported as the teacher of `gkd run` with a top-k teacher, its student
 * sampled, scored and exported back; a SentencePiece tokenizer through
 * train, distill and a llama2.c export.
 *
 * The subword encodings themselves are checked against the reference
 * tokenizers in the subword_bytelevel and subword_spm suites; here the
 * references are those encodings and closed forms of the layout. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/model.h"
#include "gkd/subword.h"
#include "gkd/task.h"
#include "gkd/teacher_cache.h"
#include "gkd/tokenizer.h"
#include "helpers.h"

static char tmp[128];
static void setup(void) { th_make_tmpdir(tmp, sizeof tmp, "gkd-subword-pipeline"); }
static void teardown(void);

static const char *in_tmp(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmp, name);
    return buf;
}

/* The whole file name (in tmp), owned here: the last SLURP_KEEP results
 * stay valid, older ones are freed, the rest at teardown. */
#define SLURP_KEEP 4
static char *slurped[SLURP_KEEP];
static int slurp_next;
static char *slurp(const char *name) {
    size_t n;
    free(slurped[slurp_next]);
    char *text = (char *)th_read_bytes(in_tmp(name), &n);
    slurped[slurp_next] = text;
    slurp_next = (slurp_next + 1) % SLURP_KEEP;
    return text;
}

static void teardown(void) {
    for (int i = 0; i < SLURP_KEEP; i++) {
        free(slurped[i]);
        slurped[i] = NULL;
    }
    th_remove_tmpdir(tmp);
}

/* The GPT-2 tokenizer.json + merges.txt directory of the fixtures. */
static const char *gpt2_dir(void) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", th_fixture_path("tokenizers", "gpt2_hf"));
    return buf;
}

static gkd_tokenizer *load_tok(const char *path) {
    gkd_tokenizer *t = NULL;
    ck_assert_msg(gkd_tokenizer_new_subword(&t, path) == 0, "%s: %s", path, gkd_last_error());
    return t;
}

static gkd_tokenizer *small_spm(void) {
    th_write_small_llama2c_tokenizer(in_tmp("tokenizer.bin"));
    return load_tok(in_tmp("tokenizer.bin"));
}

/* ids of text by the subword tokenizer itself, as a start or continuation. */
static int sw_ids(const gkd_tokenizer *t, const char *text, int continuation, int *ids, int cap) {
    int n = -1;
    const gkd_subword *sw = gkd_tokenizer_subword(t);
    int rc = continuation ? gkd_subword_encode_continuation(sw, text, strlen(text), ids, cap, &n)
                          : gkd_subword_encode(sw, text, strlen(text), ids, cap, &n);
    ck_assert_msg(rc == 0, "encode [%s]: %s", text, gkd_last_error());
    return n;
}

/* encode_pair of (prompt, reference) is [BOS] ids(prompt) ids'(reference)
 * EOS, ids' the continuation encoding; the prompt alone stops before the
 * reference; the reference decodes back to itself. */
static void check_layout(const gkd_tokenizer *t, const char *prompt, const char *reference) {
    int want[512], got[512], n = 0;
    const int bos = gkd_tokenizer_bos(t);
    if (bos >= 0) want[n++] = bos;
    n += sw_ids(t, prompt, 0, want + n, 256);
    const int want_plen = n;
    n += sw_ids(t, reference, 1, want + n, 255);
    want[n++] = gkd_tokenizer_eos(t);
    int plen = -1, len = -1;
    ck_assert_msg(gkd_tokenizer_encode_pair(t, prompt, reference, got, 512, &plen, &len) == 0, "%s",
                  gkd_last_error());
    ck_assert_int_eq(plen, want_plen);
    ck_assert_int_eq(len, n);
    for (int i = 0; i < n; i++) ck_assert_msg(got[i] == want[i], "[%s|%s] id %d: %d, want %d", prompt, reference, i,
                                              got[i], want[i]);
    int plen2 = -1, len2 = -1;
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, prompt, NULL, got, 512, &plen2, &len2), 0);
    ck_assert_int_eq(plen2, want_plen);
    ck_assert_int_eq(len2, want_plen);
    /* The generated part (reference and EOS) decodes to the reference. */
    char *text = gkd_tokenizer_decode_alloc(t, want + want_plen, n - want_plen);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, reference);
    free(text);
    /* Too small: one line, nothing written past cap. */
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, prompt, reference, got, n - 1, &plen, &len), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "does not fit"));
}

START_TEST(test_gpt2_layout) {
    gkd_tokenizer *t = load_tok(gpt2_dir());
    ck_assert_int_eq(gkd_tokenizer_kind_of(t), GKD_TOKENIZER_SUBWORD);
    ck_assert_int_eq(gkd_tokenizer_vocab_size(t), 50257);
    /* GPT-2's one special token, <|endoftext|>, begins and ends texts. */
    ck_assert_int_eq(gkd_tokenizer_bos(t), 50256);
    ck_assert_int_eq(gkd_tokenizer_eos(t), 50256);
    char what[96];
    gkd_tokenizer_describe(t, what, sizeof what);
    ck_assert_str_eq(what, "byte-level BPE (50257 tokens)");
    check_layout(t, "Once upon a time", " there was a cat.");
    check_layout(t, "Übersetze: ", "Grüße aus Köln 🦙\n");
    check_layout(t, "x", "y");
    gkd_tokenizer_free(t);
}
END_TEST

START_TEST(test_spm_layout) {
    gkd_tokenizer *t = small_spm();
    ck_assert_int_eq(gkd_tokenizer_vocab_size(t), 269);
    ck_assert_int_eq(gkd_tokenizer_bos(t), 1);
    ck_assert_int_eq(gkd_tokenizer_eos(t), 2);
    char what[96];
    gkd_tokenizer_describe(t, what, sizeof what);
    ck_assert_str_eq(what, "SentencePiece BPE (269 tokens)");
    check_layout(t, "abc", " ab");
    check_layout(t, "ab", "c abc");
    check_layout(t, "é", " é z\xF0\x9F\xA6\x99");
    /* The reference gets no dummy-prefix space: "abc" continuing a prompt
     * is [abc] (266), while a text starting with it is [" ab", "c"]. */
    int ids[16], plen, len;
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "ab", "abc", ids, 16, &plen, &len), 0);
    ck_assert_int_eq(plen, 2);
    ck_assert_int_eq(len, 4);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 265);
    ck_assert_int_eq(ids[2], 266);
    ck_assert_int_eq(ids[3], 2);
    /* An empty prompt still starts with BOS; the text is all reference. */
    ck_assert_int_eq(gkd_tokenizer_encode_pair(t, "", "ab", ids, 16, &plen, &len), 0);
    ck_assert_int_eq(plen, 1);
    gkd_tokenizer_free(t);
}
END_TEST

/* Decoding drops BOS, EOS and ids outside the vocabulary, keeps a leading
 * space (a continuation), and a short buffer cuts at a character. */
START_TEST(test_decode) {
    gkd_tokenizer *t = small_spm();
    const int ids[] = {1, 265, 262, 9999, -3, 259, 268, 2};
    char out[32];
    ck_assert_uint_eq(gkd_tokenizer_decode(t, ids, 8, out, sizeof out), 8);
    ck_assert_str_eq(out, " abc  \xC3\xA9");
    /* " abc  é" is 8 bytes; room for 7 leaves out the whole "é". */
    ck_assert_uint_eq(gkd_tokenizer_decode(t, ids, 8, out, 8), 6);
    ck_assert_str_eq(out, " abc  ");
    ck_assert_uint_eq(gkd_tokenizer_decode(t, ids, 0, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    gkd_tokenizer_free(t);
    /* Byte-level: a token of many bytes decodes whole (not 4 per token). */
    t = load_tok(gpt2_dir());
    int long_ids[64], n = sw_ids(t, "--------------------------------", 1, long_ids, 64);
    ck_assert_int_lt(n, 4);
    char *text = gkd_tokenizer_decode_alloc(t, long_ids, n);
    ck_assert_str_eq(text, "--------------------------------");
    free(text);
    gkd_tokenizer_free(t);
}
END_TEST

/* Every valid line of the tokenizer corpus decodes back from its
 * continuation encoding, for both kinds. */
START_TEST(test_corpus_round_trip) {
    gkd_tokenizer *toks[2] = {load_tok(gpt2_dir()), small_spm()};
    size_t n;
    char *corpus = (char *)th_read_bytes(th_fixture_path("tokenizers", "corpus.txt"), &n);
    int *ids = malloc(sizeof *ids * 65536);
    ck_assert_ptr_nonnull(ids);
    long lines = 0;
    for (char *line = corpus, *next; line < corpus + n; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : corpus + n;
        if (nl) *nl = '\0';
        /* Only valid UTF-8 decodes to itself: a char vocabulary refuses the rest. */
        gkd_tokenizer *chars = NULL;
        const char *one[1] = {line};
        const int valid = *line && gkd_tokenizer_new_char(&chars, one, 1) == 0;
        gkd_tokenizer_free(chars);
        if (!valid) continue;
        int m;
        for (int k = 0; k < 2; k++) {
            m = sw_ids(toks[k], line, 1, ids, 65536);
            char *text = gkd_tokenizer_decode_alloc(toks[k], ids, m);
            ck_assert_ptr_nonnull(text);
            ck_assert_msg(!strcmp(text, line), "kind %d: [%s] decodes to [%s]", k, line, text);
            free(text);
        }
        lines++;
    }
    ck_assert_int_gt(lines, 8000);
    free(ids);
    free(corpus);
    gkd_tokenizer_free(toks[0]);
    gkd_tokenizer_free(toks[1]);
}
END_TEST

/* A checkpoint stores the subword tokenizer whole: it loads equal and
 * encodes the same; a corrupted length is one line, not a crash. */
START_TEST(test_checkpoint_round_trip) {
    gkd_tokenizer *toks[2] = {load_tok(gpt2_dir()), small_spm()};
    for (int k = 0; k < 2; k++) {
        const int V = gkd_tokenizer_vocab_size(toks[k]);
        gkd_model *m = th_make_model(V, 16, 1, 8, 2, 3, 0.0f, 0);
        gkd_checkpoint c = {.model = m, .tokenizer = toks[k]};
        ck_assert_int_eq(gkd_checkpoint_save(in_tmp("m.ckpt"), &c), 0);
        gkd_checkpoint_data d;
        ck_assert_msg(gkd_checkpoint_load(&d, in_tmp("m.ckpt"), NULL) == 0, "%s", gkd_last_error());
        ck_assert_ptr_nonnull(d.tokenizer);
        ck_assert(gkd_tokenizer_equal(d.tokenizer, toks[k]));
        ck_assert(!gkd_tokenizer_equal(d.tokenizer, toks[1 - k]));
        int a[64], b[64], plen_a, len_a, plen_b, len_b;
        ck_assert_int_eq(gkd_tokenizer_encode_pair(toks[k], "abc é", " ab 🦙", a, 64, &plen_a, &len_a), 0);
        ck_assert_int_eq(gkd_tokenizer_encode_pair(d.tokenizer, "abc é", " ab 🦙", b, 64, &plen_b, &len_b), 0);
        ck_assert_int_eq(plen_a, plen_b);
        ck_assert_int_eq(len_a, len_b);
        ck_assert_mem_eq(a, b, sizeof(int) * (size_t)len_a);
        gkd_checkpoint_data_free(&d);
        gkd_model_free(m);
    }
    /* The serialized form, cut short or with a wrong length: errors. */
    const size_t sz = gkd_tokenizer_serialized_size(toks[1]);
    unsigned char *buf = malloc(sz);
    ck_assert_ptr_nonnull(buf);
    gkd_tokenizer_serialize(toks[1], buf);
    gkd_tokenizer *back = NULL;
    ck_assert_int_eq(gkd_tokenizer_deserialize(&back, buf, sz), 0);
    ck_assert(gkd_tokenizer_equal(back, toks[1]));
    gkd_tokenizer_free(back);
    ck_assert_int_ne(gkd_tokenizer_deserialize(&back, buf, sz - 1), 0);
    ck_assert_ptr_null(back);
    buf[4] ^= 1; /* the subword length */
    ck_assert_int_ne(gkd_tokenizer_deserialize(&back, buf, sz), 0);
    ck_assert_ptr_null(back);
    free(buf);
    gkd_tokenizer_free(toks[0]);
    gkd_tokenizer_free(toks[1]);
}
END_TEST

/* Files that define no end-of-text token cannot end a sequence. */
START_TEST(test_no_end_token) {
    /* GPT-2's 256 byte tokens (bytes shown as GPT-2 maps them to code
     * points) and one merge, but no <|endoftext|>. */
    char json[4096];
    size_t n = 0;
    int next = 256;
    n += (size_t)snprintf(json + n, sizeof json - n, "{");
    for (int b = 0; b < 256; b++) {
        const int shown = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        const int cp = shown ? b : next++;
        char u[8];
        if (cp < 0x80) snprintf(u, sizeof u, "%s%c", cp == '"' || cp == '\\' ? "\\" : "", cp);
        else snprintf(u, sizeof u, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
        n += (size_t)snprintf(json + n, sizeof json - n, "\"%s\": %d, ", u, b);
    }
    snprintf(json + n, sizeof json - n, "\"ab\": 256}");
    th_write_file(in_tmp("vocab.json"), json);
    th_write_file(in_tmp("merges.txt"), "#version: 0.2\na b\n");
    gkd_tokenizer *t = NULL;
    ck_assert_int_eq(gkd_tokenizer_new_subword(&t, tmp), GKD_EFORMAT);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no end-of-text token"));
}
END_TEST

/* A SeqKD teacher cache generates as a live run does: up to the
 * tokenizer's EOS (50256 for GPT-2), not the char vocabulary's id 2. */
START_TEST(test_seqkd_cache_ends_at_the_tokenizers_eos) {
    gkd_tokenizer *t = load_tok(gpt2_dir());
    gkd_model *m = th_make_model(gkd_tokenizer_vocab_size(t), 16, 1, 8, 2, 3, 0.0f, 0);
    th_write_file(in_tmp("pairs.tsv"), "a\tb\nc\td\ne\tf\ng\th\n");
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "pairs";
    c.path = in_tmp("pairs.tsv");
    c.eval_fraction = 0.25;
    gkd_task *task = NULL;
    ck_assert_msg(gkd_task_new(&task, &c) == 0, "%s", gkd_last_error());
    gkd_teacher_cache_options o = GKD_TEACHER_CACHE_OPTIONS_INIT;
    o.source = GKD_TEACHER_CACHE_SEQKD;
    o.k = 4;
    gkd_teacher_cache_header h;
    ck_assert_msg(gkd_teacher_cache_header_for(&h, m, t, task, &o) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(o.sample.eos_token, GKD_TOK_EOS);
    ck_assert_int_eq(h.sample.eos_token, 50256);
    gkd_task_free(task);
    gkd_model_free(m);
    gkd_tokenizer_free(t);
}
END_TEST

/* ---- end to end through the CLI ---- */

/* A few thousand characters of plain English from a seeded word list. */
static void write_story(const char *name) {
    static const char *const words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "looked", "at", "small",
                                        "red", "bird", "that", "sang", "every", "morning", "near", "old", "tree",
                                        "while", "children", "played", "in", "garden"};
    const int nw = (int)(sizeof words / sizeof words[0]);
    char *text = malloc(8192);
    ck_assert_ptr_nonnull(text);
    size_t n = 0;
    uint64_t x = 12345;
    while (n < 6000) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = words[(x >> 33) % (uint64_t)nw];
        n += (size_t)snprintf(text + n, 8192 - n, "%s%s", w, (x >> 20) % 9 == 0 ? ".\n" : " ");
    }
    th_write_file(in_tmp(name), text);
    free(text);
}

/* Column col of the last row of CSV file name (in tmp). */
static double last_csv_value(const char *name, const char *col) {
    size_t len;
    char *csv = (char *)th_read_bytes(in_tmp(name), &len);
    char *header = strtok(csv, "\n"), *last = NULL, *line;
    while ((line = strtok(NULL, "\n"))) last = line;
    ck_assert_ptr_nonnull(last);
    int want = -1, k = 0;
    for (char *p = header, *c; p; p = c ? c + 1 : NULL, k++) {
        c = strchr(p, ',');
        if (c) *c = '\0';
        if (!strcmp(p, col)) want = k;
    }
    ck_assert_int_ge(want, 0);
    const char *v = last;
    for (int i = 0; i < want; i++) v = strchr(v, ',') + 1;
    double d = strtod(v, NULL);
    free(csv);
    return d;
}

#define TEXT_TASK "--task text --path story.txt --chunk 48 --prompt-chars 24"

START_TEST(test_gpt2_text_through_gkd_run) {
    write_story("story.txt");
    ck_assert_msg(th_gkd(tmp,
                         "train " TEXT_TASK " --tokenizer '%s' --layers 1 --d-model 16 --heads 2 --context 64"
                         " --steps 4 --batch 4 --max-new-tokens 8 --eval-n 4 --eval-samples 0 --out t",
                         gpt2_dir()) == 0,
                  "%s", slurp("err.txt"));
    /* The checkpoint holds the tokenizer and the vocabulary is GPT-2's. */
    gkd_checkpoint_data d;
    ck_assert_int_eq(gkd_checkpoint_load(&d, in_tmp("t/final.ckpt"), NULL), 0);
    gkd_tokenizer *gpt2 = load_tok(gpt2_dir());
    ck_assert(gkd_tokenizer_equal(d.tokenizer, gpt2));
    ck_assert_int_eq(d.model->config.vocab_size, 50257);
    gkd_checkpoint_data_free(&d);
    char *opts = slurp("t/options.txt");
    ck_assert_ptr_nonnull(strstr(opts, "tokenizer=byte-level BPE (50257 tokens) "));
    /* Exported, the directory carries the tokenizer files: it scores text
     * as the checkpoint does, bit for bit (float32 both ways). */
    ck_assert_msg(th_gkd(tmp, "export --model t/final.ckpt --out t_hf --format safetensors") == 0, "%s",
                  slurp("err.txt"));
    th_write_file(in_tmp("lines.txt"), "the cat sat on the mat.\nÜber Köln 🦙 and a bird\n");
    ck_assert_msg(th_gkd(tmp, "score --model t/final.ckpt --text lines.txt --csv") == 0, "%s", slurp("err.txt"));
    char *ckpt_scores = slurp("out.txt");
    ck_assert_msg(th_gkd(tmp, "score --model t_hf --text lines.txt --csv") == 0, "%s", slurp("err.txt"));
    char *hf_scores = slurp("out.txt");
    ck_assert_str_eq(hf_scores, ckpt_scores);
    /* The imported directory teaches a Llama student through gkd run, with
     * its top-32 tokens per position. */
    th_write_file(in_tmp("exp.yaml"),
                  "name: sub\n"
                  "task: {name: text, path: story.txt, chunk: 48, prompt_chars: 24}\n"
                  "teacher: {checkpoint: t_hf}\n"
                  "student:\n"
                  "  model: {arch: llama, layers: 1, d_model: 16, heads: 2, kv_heads: 1}\n"
                  "  init: random\n"
                  "distill: {steps: 3, batch: 4, lr: 1e-3, divergence: fkl, lambda: 0.5, max_new_tokens: 8,"
                  " teacher_topk: 32}\n"
                  "eval: {every: 3, n: 4}\n"
                  "seeds: [1]\n");
    ck_assert_msg(th_gkd(tmp, "run exp.yaml --results res --no-table") == 0, "%s", slurp("err.txt"));
    ck_assert_int_eq(access(in_tmp("res/sub/seed=1/done"), F_OK), 0);
    ck_assert_int_eq((int)last_csv_value("res/sub/seed=1/metrics.csv", "step"), 3);
    ck_assert_int_eq(gkd_checkpoint_load(&d, in_tmp("res/sub/seed=1/final.ckpt"), NULL), 0);
    ck_assert(gkd_tokenizer_equal(d.tokenizer, gpt2));
    ck_assert_int_eq(d.model->config.arch, GKD_ARCH_LLAMA);
    gkd_checkpoint_data_free(&d);
    /* The student samples text, and tokenizes as the files do. */
    ck_assert_msg(th_gkd(tmp, "sample --model res/sub/seed=1/final.ckpt " TEXT_TASK " -n 2") == 0, "%s",
                  slurp("err.txt"));
    ck_assert_ptr_nonnull(strstr(slurp("out.txt"), "generated"));
    ck_assert_int_eq(th_gkd(tmp, "tokenize --tokenizer '%s' --text lines.txt", gpt2_dir()), 0);
    char *want = slurp("out.txt");
    ck_assert_int_eq(th_gkd(tmp, "tokenize --tokenizer res/sub/seed=1/final.ckpt --text lines.txt"), 0);
    ck_assert_str_eq(slurp("out.txt"), want);
    /* A task tokenizer other than the teacher's is one line. */
    th_write_small_llama2c_tokenizer(in_tmp("spm.bin"));
    th_write_file(in_tmp("other.yaml"),
                  "name: other\n"
                  "task: {name: text, path: story.txt, chunk: 48, prompt_chars: 24, tokenizer: spm.bin}\n"
                  "teacher: {checkpoint: t_hf}\n"
                  "student: {model: {layers: 1, d_model: 16, heads: 2}, init: random}\n"
                  "distill: {steps: 3, batch: 4}\n"
                  "seeds: [1]\n");
    ck_assert_int_ne(th_gkd(tmp, "run other.yaml --results res --no-table"), 0);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "has a tokenizer of its own that is not task.tokenizer"));
    gkd_tokenizer_free(gpt2);
}
END_TEST

/* SentencePiece on a pairs task: train, distill on-policy, export as a
 * llama2.c file whose directory gets the tokenizer.bin it came from. */
START_TEST(test_spm_pairs_through_distill) {
    th_write_small_llama2c_tokenizer(in_tmp("tokenizer.bin"));
    FILE *f = fopen(in_tmp("pairs.tsv"), "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 200; i++) fprintf(f, "abc %d:\t%s %d é\n", i, i % 2 ? "ab" : "bc", i * 7 % 100);
    fclose(f);
    ck_assert_msg(th_gkd(tmp,
                         "train --task pairs --path pairs.tsv --tokenizer tokenizer.bin --arch llama --layers 1"
                         " --d-model 16 --heads 2 --context 48 --steps 4 --batch 4 --max-new-tokens 12 --eval-n 4"
                         " --eval-samples 0 --out t") == 0,
                  "%s", slurp("err.txt"));
    ck_assert_msg(th_gkd(tmp,
                         "distill --teacher t/final.ckpt --task pairs --path pairs.tsv --arch llama --layers 1"
                         " --d-model 8 --heads 2 --lambda 1 --steps 2 --batch 4 --max-new-tokens 12 --eval-n 4"
                         " --out d") == 0,
                  "%s", slurp("err.txt"));
    ck_assert_int_eq((int)last_csv_value("d/metrics.csv", "step"), 2);
    mkdir(in_tmp("l2c"), 0755);
    ck_assert_msg(th_gkd(tmp, "export --model d/final.ckpt --out l2c/student.bin --format llama2c") == 0, "%s",
                  slurp("err.txt"));
    size_t a, b;
    unsigned char *orig = th_read_bytes(in_tmp("tokenizer.bin"), &a);
    unsigned char *copy = th_read_bytes(in_tmp("l2c/tokenizer.bin"), &b);
    ck_assert_uint_eq(a, b);
    ck_assert_mem_eq(orig, copy, a);
    free(orig);
    free(copy);
    th_write_file(in_tmp("lines.txt"), "abc 5: ab 35 é\n");
    ck_assert_msg(th_gkd(tmp, "score --model d/final.ckpt --text lines.txt --csv") == 0, "%s", slurp("err.txt"));
    char *ckpt_scores = slurp("out.txt");
    ck_assert_msg(th_gkd(tmp, "score --model l2c/student.bin --text lines.txt --csv") == 0, "%s", slurp("err.txt"));
    ck_assert_str_eq(slurp("out.txt"), ckpt_scores);
    /* Exporting beside a different tokenizer file refuses to replace it. */
    th_write_file(in_tmp("l2c/tokenizer.bin"), "not this one");
    ck_assert_int_ne(th_gkd(tmp, "export --model d/final.ckpt --out l2c/student.bin --format llama2c"), 0);
    ck_assert_ptr_nonnull(strstr(slurp("err.txt"), "tokenizer.bin"));
}
END_TEST

Suite *subword_pipeline_suite(void) {
    Suite *s = suite_create("subword_pipeline");
    TCase *tc = tcase_create("layout");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gpt2_layout);
    tcase_add_test(tc, test_spm_layout);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_corpus_round_trip);
    tcase_add_test(tc, test_checkpoint_round_trip);
    tcase_add_test(tc, test_no_end_token);
    tcase_add_test(tc, test_seqkd_cache_ends_at_the_tokenizers_eos);
    suite_add_tcase(s, tc);
    tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_gpt2_text_through_gkd_run);
    tcase_add_test(tc, test_spm_pairs_through_distill);
    suite_add_tcase(s, tc);
    return s;
}
