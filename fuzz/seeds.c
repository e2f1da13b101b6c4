/* Seed corpora of the fuzz targets whose inputs are binary: real files made
 * by the library's own writers, so the fuzzers start from what gkd writes
 * and reads back.
 *
 *   seeds OUTDIR [FILE.csv ...]
 *
 * writes OUTDIR/checkpoint (gkd_checkpoint_save: bare, and with tokenizer,
 * optimizer state, rng states, a schedule state as extra data and a task
 * record), OUTDIR/tokenizer, OUTDIR/subword_blob (small subword
 * tokenizers: files written here or fuzz/seeds/bpe_vocab, loaded by
 * gkd_subword_load and serialized), OUTDIR/replay and OUTDIR/schedule (the
 * schedules of fuzz.h), OUTDIR/task_record (gkd_task_record_new on each
 * task; the file tasks' data goes to OUTDIR/data), and OUTDIR/results:
 * each FILE.csv whose name the results target knows behind its selector
 * byte (see fuzz_results.c), and OUTDIR/teacher_cache (gkd_teacher_cache_build
 * of a random teacher on a small arith split, both sources). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/checkpoint.h"
#include "gkd/model.h"
#include "gkd/replay.h"
#include "gkd/schedule.h"
#include "gkd/subword.h"
#include "gkd/task.h"
#include "gkd/teacher_cache.h"
#include "gkd/tokenizer.h"

static const char *out_dir;

static void die(const char *what) {
    fprintf(stderr, "seeds: %s: %s\n", what, gkd_last_error());
    exit(1);
}

static void seed(const char *target, const char *name, const void *data, size_t n) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, target);
    if (gkd_mkdir_p(dir)) die(dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fuzz_write(path, data, n);
}

static gkd_tokenizer *char_tokenizer(void) {
    const char *texts[] = {"12+34=46", "abc", "\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"};
    gkd_tokenizer *t = NULL;
    if (gkd_tokenizer_new_char(&t, texts, 3)) die("tokenizer");
    return t;
}

static void tokenizers(void) {
    gkd_tokenizer *c = char_tokenizer(), *b = NULL;
    if (gkd_tokenizer_new_byte(&b)) die("tokenizer");
    unsigned char buf[4096];
    gkd_tokenizer_serialize(c, buf);
    seed("tokenizer", "char", buf, gkd_tokenizer_serialized_size(c));
    gkd_tokenizer_serialize(b, buf);
    seed("tokenizer", "byte", buf, gkd_tokenizer_serialized_size(b));
    gkd_tokenizer_free(c);
    gkd_tokenizer_free(b);
}

/* A subword tokenizer loaded from dir (or one file), serialized as a seed. */
static void subword_seed(const char *path, const char *name) {
    gkd_subword *t = NULL;
    if (gkd_subword_load(&t, path)) die(path);
    size_t n = gkd_subword_serialized_size(t);
    unsigned char *buf = malloc(n);
    if (!buf) die("out of memory");
    gkd_subword_serialize(t, buf);
    seed("subword_blob", name, buf, n);
    free(buf);
    gkd_subword_free(t);
}

static void put_le32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

/* A tiny llama2.c tokenizer.bin: specials, a few byte pieces (the rest of
 * the bytes go to <unk>), pieces that merge by score. */
static void tiny_bin(const char *path) {
    static const char *const pieces[] = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", "<0x80>", "<0xC3>", "<0xA9>",
                                         " ",     "a",       "b",        "c",      "ab",     " ab",    "abc"};
    static const float scores[] = {0, 0, 0, 0, 0, 0, 0, -100, -101, -102, -103, -1, -2, -3};
    unsigned char buf[512];
    size_t n = 4;
    put_le32(buf, 8);
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        uint32_t u, len = (uint32_t)strlen(pieces[i]);
        memcpy(&u, &scores[i], 4);
        put_le32(buf + n, u);
        put_le32(buf + n + 4, len);
        memcpy(buf + n + 8, pieces[i], len);
        n += 8 + len;
    }
    fuzz_write(path, buf, n);
}

/* The same pieces as a tokenizer.json of Llama 2's layout, merges by rank. */
static const char tiny_json[] =
    "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
    " {\"id\": 1, \"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}],"
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
    " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
    " \"pre_tokenizer\": null, \"padding\": null,"
    " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true,"
    " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0x0A>\": 3, \"<0x80>\": 4, \"<0xC3>\": 5, \"<0xA9>\": 6,"
    " \"\\u2581\": 7, \"a\": 8, \"b\": 9, \"c\": 10, \"ab\": 11, \"\\u2581ab\": 12, \"abc\": 13},"
    " \"merges\": [\"a b\", \"\\u2581 ab\", [\"ab\", \"c\"]]}}\n";

/* The bytes of a file of the repository (at most 64 KiB), *n of them. */
static unsigned char *repo_file(const char *path, size_t *n) {
    static unsigned char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static void subword_blobs(void) {
    char dir[512], p[1024];
    snprintf(dir, sizeof dir, "%s/subword", fuzz_dir());
    if (gkd_mkdir_p(dir)) die(dir);
    snprintf(p, sizeof p, "%s/tokenizer.bin", dir);
    tiny_bin(p);
    subword_seed(p, "spm-tokenizer-bin");
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    fuzz_write(p, tiny_json, sizeof tiny_json - 1);
    subword_seed(p, "spm-tokenizer-json");
    /* fuzz/seeds/bpe_vocab: a tokenizer.json, and vocab.json, a NUL, merges.txt. */
    size_t n;
    unsigned char *b = repo_file("fuzz/seeds/bpe_vocab/tokenizer_json", &n);
    fuzz_write(p, b, n);
    subword_seed(p, "bytelevel-tokenizer-json");
    b = repo_file("fuzz/seeds/bpe_vocab/pair", &n);
    const unsigned char *nul = memchr(b, 0, n);
    if (!nul) die("fuzz/seeds/bpe_vocab/pair has no NUL");
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    fuzz_write(p, nul + 1, n - (size_t)(nul - b) - 1);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    fuzz_write(p, b, (size_t)(nul - b));
    subword_seed(p, "bytelevel-vocab-merges");
}

/* A batch of n rows of distinct lengths, for the replay buffers. */
static void fill_batch(gkd_seqbatch *b, int n, int cap) {
    if (gkd_seqbatch_new(b, n, cap)) die("seqbatch");
    for (int i = 0; i < n; i++) {
        int len = 3 + i % (cap - 2);
        for (int t = 0; t < cap; t++) b->tokens[i * cap + t] = t < len ? 4 + (i + t) % 9 : 0;
        b->tokens[i * cap] = GKD_TOK_BOS;
        b->prompt_len[i] = 2;
        b->len[i] = len;
        b->eos[i] = (unsigned char)(i % 2);
    }
}

static void replays(void) {
    unsigned char *blob;
    size_t n;
    gkd_replay *r = NULL;
    gkd_seqbatch b;
    if (gkd_replay_new(&r, 4, 8)) die("replay");
    if (gkd_replay_save(r, &blob, &n)) die("replay save");
    seed("replay", "empty", blob, n);
    free(blob);
    fill_batch(&b, 3, 8);
    if (gkd_replay_push_batch(r, &b)) die("replay push");
    if (gkd_replay_save(r, &blob, &n)) die("replay save");
    seed("replay", "three", blob, n);
    free(blob);
    if (gkd_replay_push_batch(r, &b)) die("replay push"); /* full, wrapped around */
    if (gkd_replay_save(r, &blob, &n)) die("replay save");
    seed("replay", "wrapped", blob, n);
    free(blob);
    gkd_seqbatch_free(&b);
    gkd_replay_free(r);
}

/* Schedule k of fuzz.h after `steps` steps (buffer filled as a run would);
 * *blob malloc'd. */
static void schedule_blob(int k, int steps, unsigned char **blob, size_t *n) {
    gkd_schedule_options o = fuzz_schedule_options(k);
    gkd_schedule *s = NULL;
    if (gkd_schedule_new(&s, &o, FUZZ_SCHEDULE_SEED)) die("schedule");
    gkd_seqbatch b;
    fill_batch(&b, 2, o.seq_cap);
    for (int step = 0; step < steps; step++) {
        gkd_schedule_choice ch[2];
        if (gkd_schedule_step(s, step, 2, ch)) die("schedule step");
        if (gkd_schedule_buffer(s) && gkd_replay_push_batch(gkd_schedule_buffer(s), &b)) die("push");
        if (gkd_schedule_validation(s, 2.0 + (step % 3), NULL)) die("validation");
    }
    gkd_seqbatch_free(&b);
    if (gkd_schedule_save(s, blob, n)) die("schedule save");
    gkd_schedule_free(s);
}

static void schedules(void) {
    for (int k = 0; k < FUZZ_NSCHEDULES; k++)
        for (int steps = 0; steps <= 3; steps += 3) {
            unsigned char *blob;
            size_t n;
            char name[32];
            schedule_blob(k, steps, &blob, &n);
            snprintf(name, sizeof name, "s%d-step%d", k, steps);
            seed("schedule", name, blob, n);
            free(blob);
        }
}

/* The record of a task built from c; NULL-safe to free. */
static gkd_task_record *task_record(const gkd_task_config *c) {
    gkd_task *t = NULL;
    gkd_task_record *r = NULL;
    if (gkd_task_new(&t, c) || gkd_task_record_new(&r, t)) die("task record");
    gkd_task_free(t);
    return r;
}

static void task_records(void) {
    char dir[1024], tsv[1200], eval_tsv[1200], txt[1200];
    snprintf(dir, sizeof dir, "%s/data", out_dir);
    if (gkd_mkdir_p(dir)) die(dir);
    snprintf(tsv, sizeof tsv, "%s/pairs.tsv", dir);
    snprintf(eval_tsv, sizeof eval_tsv, "%s/pairs-eval.tsv", dir);
    snprintf(txt, sizeof txt, "%s/text.txt", dir);
    const char pairs[] = "one\tun\ntwo\tdeux\nthree\ttrois\nfour\tquatre\nfive\tcinq\n";
    fuzz_write(tsv, pairs, sizeof pairs - 1);
    fuzz_write(eval_tsv, "six\tsix\n", 8);
    const char text[] = "It was the best of times, it was the worst of times.\n";
    fuzz_write(txt, text, sizeof text - 1);

    gkd_task_config cs[8];
    for (int i = 0; i < 8; i++) {
        gkd_task_config c = GKD_TASK_CONFIG_INIT;
        c.train = 12;
        c.eval = 4;
        cs[i] = c;
    }
    cs[1].op = "mul", cs[1].rationale = 1, cs[1].digits = 2;
    cs[2].name = "reverse";
    cs[3].name = "sort", cs[3].alphabet = "xyz\xC3\xA9";
    cs[4].name = "modes", cs[4].zipf_s = 1.5;
    cs[5].name = "pairs", cs[5].path = tsv, cs[5].eval_fraction = 0.4;
    cs[6].name = "pairs", cs[6].path = tsv, cs[6].eval_path = eval_tsv;
    cs[7].name = "text", cs[7].path = txt, cs[7].chunk = 8, cs[7].prompt_chars = 3, cs[7].eval_fraction = 0.25;
    for (int i = 0; i < 8; i++) {
        gkd_task_record *r = task_record(&cs[i]);
        size_t n = gkd_task_record_serialized_size(r);
        unsigned char *buf = malloc(n);
        if (!buf) die("out of memory");
        gkd_task_record_serialize(r, buf);
        char name[32];
        snprintf(name, sizeof name, "%d-%s", i, cs[i].name);
        seed("task_record", name, buf, n);
        free(buf);
        gkd_task_record_free(r);
    }
}

static void checkpoint(const char *name, const gkd_checkpoint *c) {
    char path[1200];
    snprintf(path, sizeof path, "%s/checkpoint", out_dir);
    if (gkd_mkdir_p(path)) die(path);
    snprintf(path, sizeof path, "%s/checkpoint/%s", out_dir, name);
    if (gkd_checkpoint_save(path, c)) die("checkpoint save");
}

static void checkpoints(void) {
    gkd_tokenizer *tok = char_tokenizer();
    gkd_model_config cfg = {0};
    cfg.vocab_size = gkd_tokenizer_vocab_size(tok);
    cfg.max_seq_len = 8;
    cfg.n_layer = 1;
    cfg.n_embd = 4;
    cfg.n_head = 2;
    gkd_model *m = NULL;
    if (gkd_model_new(&m, &cfg)) die("model");
    gkd_model_init_weights(m, 1);
    gkd_checkpoint c = {0};
    c.model = m;
    c.step = 0;
    checkpoint("bare.ckpt", &c);

    float *mo = calloc(m->num_params, sizeof *mo), *vo = calloc(m->num_params, sizeof *vo);
    if (!mo || !vo) die("out of memory");
    for (size_t i = 0; i < m->num_params; i++) {
        mo[i] = 0.001f * (float)(i % 7);
        vo[i] = 0.0001f * (float)(i % 5);
    }
    gkd_rng rngs[2];
    gkd_rng_seed(&rngs[0], 1, 2);
    gkd_rng_seed(&rngs[1], 3, 4);
    unsigned char *blob;
    size_t n;
    schedule_blob(2, 3, &blob, &n);
    c.tokenizer = tok;
    c.opt_m = mo;
    c.opt_v = vo;
    c.opt_t = 3;
    c.step = 3;
    c.rngs = rngs;
    c.n_rngs = 2;
    c.extra = blob;
    c.extra_len = n;
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.train = 12;
    tc.eval = 4;
    gkd_task_record *rec = task_record(&tc);
    c.task_record = rec;
    checkpoint("full.ckpt", &c);
    c.task_record = NULL;
    c.opt_m = c.opt_v = NULL;
    c.extra = NULL;
    c.extra_len = 0;
    c.n_rngs = 0;
    checkpoint("tokenizer.ckpt", &c);
    free(blob);
    free(mo);
    free(vo);
    gkd_task_record_free(rec);
    gkd_model_free(m);
    gkd_tokenizer_free(tok);
}

static void teacher_caches(void) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.digits = 1;
    tc.train = 5;
    tc.eval = 2;
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL;
    if (gkd_task_new(&task, &tc) || gkd_task_tokenizer(task, &tok)) die("task");
    gkd_model_config cfg = {0};
    cfg.vocab_size = gkd_tokenizer_vocab_size(tok);
    cfg.max_seq_len = 12;
    cfg.n_layer = 1;
    cfg.n_embd = 4;
    cfg.n_head = 2;
    gkd_model *m = NULL;
    if (gkd_model_new(&m, &cfg)) die("model");
    gkd_model_init_weights(m, 1);
    const char *names[] = {"data-k3", "seqkd-k2"};
    for (int src = 0; src < 2; src++) {
        gkd_teacher_cache_options o = GKD_TEACHER_CACHE_OPTIONS_INIT;
        o.source = (gkd_teacher_cache_source)src;
        o.k = 3 - src;
        o.tau = 1.5f;
        o.batch = 2;
        o.sample.max_new_tokens = 4;
        char path[1200];
        snprintf(path, sizeof path, "%s/teacher_cache", out_dir);
        if (gkd_mkdir_p(path)) die(path);
        snprintf(path, sizeof path, "%s/teacher_cache/%s", out_dir, names[src]);
        if (gkd_teacher_cache_build(path, m, tok, task, &o, NULL, NULL)) die("teacher cache");
    }
    gkd_model_free(m);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
}

/* The results target's selector bytes of a fixture file, by its name: one
 * seed per table kind (the byte is file + 7 x kind, see fuzz_results.c). */
static void results_seed(const char *path) {
    static const char *const names[] = {"grid.csv", "labels.csv", "axes.csv", "eval.csv",
                                        "timings.csv", "teacher_eval.csv"};
    const int nfiles = 7, nkinds = 6;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int k = -1;
    for (int i = 0; i < 6; i++)
        if (!strcmp(base, names[i])) k = i;
    if (k < 0) return;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    unsigned char buf[8192];
    size_t n = 1 + fread(buf + 1, 1, sizeof buf - 1, f);
    fclose(f);
    static int count;
    for (int kind = 0; kind < nkinds; kind++) {
        char name[64];
        buf[0] = (unsigned char)(k + nfiles * kind);
        snprintf(name, sizeof name, "%03d-%d-%s", count, kind, base);
        seed("results", name, buf, n);
        if (k == 3) { /* an eval.csv is also a teacher's */
            buf[0] = (unsigned char)(6 + nfiles * kind);
            snprintf(name, sizeof name, "%03d-%d-teacher-%s", count, kind, base);
            seed("results", name, buf, n);
        }
    }
    count++;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: seeds OUTDIR [FILE.csv ...]\n");
        return 2;
    }
    out_dir = argv[1];
    tokenizers();
    subword_blobs();
    replays();
    schedules();
    task_records();
    checkpoints();
    teacher_caches();
    for (int i = 2; i < argc; i++) results_seed(argv[i]);
    return 0;
}
