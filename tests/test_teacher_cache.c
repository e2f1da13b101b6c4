/* The offline teacher cache: a file round trip against the teacher run on
 * each sequence alone, every damaged or inconsistent file refused with one
 * line, runs that read the cache (data and SeqKD sources, batches mixing
 * cached and live rows) ending with the same student weights bit for bit as
 * runs that score live, the teacher not run on fully cached batches, and a
 * cache made for another run refused naming the field.
 *
 * Models are tiny (1 layer, 16 channels) on 1-digit addition, single-threaded. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/distill/distill_step.h"
#include "gkd/checkpoint.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/teacher_cache.h"
#include "helpers.h"

static char tmpdir[256];

static void setup(void) {
    omp_set_num_threads(1);
    th_make_tmpdir(tmpdir, sizeof tmpdir, "gkd_test_tcache");
}

static void teardown(void) { th_remove_tmpdir(tmpdir); }

static const char *in_tmp(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

typedef struct {
    gkd_task *task;
    gkd_tokenizer *tok;
    gkd_model *teacher;
    int V;
} world;

static world make_world(int train) {
    world w;
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "arith";
    tc.digits = 1;
    tc.train = train;
    tc.eval = 20;
    ck_assert_msg(gkd_task_new(&w.task, &tc) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(gkd_task_tokenizer(w.task, &w.tok), 0);
    w.V = gkd_tokenizer_vocab_size(w.tok);
    w.teacher = th_make_model(w.V, 16, 1, 16, 2, 3, 0.3f, 991);
    return w;
}

static void free_world(world *w) {
    gkd_model_free(w->teacher);
    gkd_tokenizer_free(w->tok);
    gkd_task_free(w->task);
}

static gkd_model *student(const world *w) { return th_make_model(w->V, 16, 1, 16, 2, 4, 0.3f, 991); }

static gkd_distill_options run_options(void) {
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    o.batch = 4;
    o.steps = 8;
    o.lr = 3e-3;
    o.eval_n = 4;
    o.eval_samples = 0;
    o.sample.max_new_tokens = 4;
    o.seed = 5;
    o.teacher_topk = 4;
    o.loss_temperature = 1.5f;
    o.divergence.kind = GKD_DIV_JSD;
    o.divergence.param = 0.5;
    return o;
}

static gkd_teacher_cache_options cache_options(const gkd_distill_options *o, gkd_teacher_cache_source src) {
    gkd_teacher_cache_options c = GKD_TEACHER_CACHE_OPTIONS_INIT;
    c.source = src;
    c.k = o->teacher_topk;
    c.tau = o->loss_temperature;
    c.batch = 3; /* another batch size than the runs': rows must not depend on it */
    c.sample = o->sample;
    c.seed = o->seed;
    return c;
}

static void build(world *w, const gkd_teacher_cache_options *c, const char *path) {
    int rc = gkd_teacher_cache_build(path, w->teacher, w->tok, w->task, c, NULL, NULL);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
}

/* The student's weights after a run of o in dir. */
static float *run_weights(world *w, const gkd_distill_options *o, const char *dir, size_t *n) {
    gkd_model *s = student(w);
    mkdir(dir, 0755);
    int rc = gkd_distill_run(s, w->teacher, w->tok, w->task, o, dir, NULL, NULL);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
    *n = s->num_params;
    float *p = malloc(sizeof(float) * *n);
    memcpy(p, s->params_memory, sizeof(float) * *n);
    gkd_model_free(s);
    return p;
}

/* ---- the file ---- */

/* Every sequence is the example as a data row lays it out, and its rows are
 * the top-k rows of the teacher run on that sequence alone. */
START_TEST(test_round_trip_data) {
    world w = make_world(11);
    gkd_distill_options o = run_options();
    gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_DATA);
    char path[512];
    build(&w, &c, in_tmp(path, sizeof path, "data.bin"));
    gkd_teacher_cache *tc = NULL;
    ck_assert_msg(gkd_teacher_cache_open(&tc, path) == 0, "%s", gkd_last_error());
    const gkd_teacher_cache_header *h = gkd_teacher_cache_header_of(tc);
    ck_assert_int_eq(h->source, GKD_TEACHER_CACHE_DATA);
    ck_assert_int_eq(h->k, 4);
    ck_assert_int_eq(h->V, w.V);
    ck_assert(h->tau == 1.5f);
    ck_assert_int_eq(h->cap, 16);
    ck_assert_uint_eq(h->train_n, 11);
    ck_assert_uint_eq(h->teacher_hash, gkd_teacher_cache_model_hash(w.teacher));
    ck_assert_uint_eq(h->tokenizer_hash, gkd_teacher_cache_tokenizer_hash(w.tok));
    ck_assert_uint_eq(gkd_teacher_cache_size(tc), 11);

    gkd_seqbatch b, ref;
    ck_assert_int_eq(gkd_seqbatch_new(&b, 1, 16), 0);
    ck_assert_int_eq(gkd_seqbatch_new(&ref, 1, 16), 0);
    int targets[16];
    float mask[16];
    gkd_sparse_rows live, got;
    ck_assert_int_eq(gkd_sparse_rows_alloc(&live, 16, w.V, 4, 1.5f), 0);
    ck_assert_int_eq(gkd_sparse_rows_alloc(&got, 16, w.V, 4, 1.5f), 0);
    int positions = 0;
    for (size_t ex = 0; ex < 11; ex++) {
        ck_assert_int_eq(gkd_teacher_cache_sequence(tc, ex, &b, 0), 0);
        for (int t = 0; t < 16; t++) ref.tokens[t] = GKD_TOK_PAD;
        ck_assert_int_eq(gkd_task_encode_example(w.task, w.tok, GKD_SPLIT_TRAIN, ex, ref.tokens, 16,
                                                 &ref.prompt_len[0], &ref.len[0]),
                         0);
        ck_assert_int_eq(b.prompt_len[0], ref.prompt_len[0]);
        ck_assert_int_eq(b.len[0], ref.len[0]);
        ck_assert_int_eq(b.eos[0], 1);
        ck_assert_int_eq(memcmp(b.tokens, ref.tokens, sizeof(int) * 16), 0);
        /* The teacher on this sequence alone, T = its length. */
        const int T = b.len[0];
        ck_assert_int_eq(gkd_model_forward(w.teacher, b.tokens, 1, T), 0);
        live.N = T;
        ck_assert_int_eq(gkd_sparse_rows_from_logits(&live, w.teacher->logits), 0);
        gkd_seqbatch_targets(&b, targets, mask);
        memset(got.ids, 0, sizeof(int32_t) * 16 * 4);
        ck_assert_int_eq(gkd_teacher_cache_rows(tc, ex, mask, T, &got, 0), 0);
        for (int t = 0; t < T; t++) {
            if (mask[t] == 0) continue;
            positions++;
            ck_assert_int_eq(memcmp(got.ids + t * 4, live.ids + t * 4, sizeof(int32_t) * 4), 0);
            ck_assert_int_eq(memcmp(got.logp + t * 4, live.logp + t * 4, sizeof(float) * 4), 0);
            ck_assert_int_eq(memcmp(got.log_tail + t, live.log_tail + t, sizeof(float)), 0);
        }
    }
    ck_assert(positions >= 11 * 2); /* at least a digit and EOS per example */
    /* A mask with another number of positions is refused. */
    mask[0] = 1;
    ck_assert_int_eq(gkd_teacher_cache_rows(tc, 10, mask, b.len[0], &got, 0), GKD_EMISMATCH);
    ck_assert_int_eq(gkd_teacher_cache_sequence(tc, 11, &b, 0), GKD_EINVAL);
    gkd_sparse_rows_free(&live);
    gkd_sparse_rows_free(&got);
    gkd_seqbatch_free(&b);
    gkd_seqbatch_free(&ref);
    gkd_teacher_cache_free(tc);
    free_world(&w);
}
END_TEST

/* The file's size is what docs/teacher-cache-format.md says: 100 bytes of
 * header and CRC, 24 + 4 len + (8k + 4) rows bytes per sequence. */
START_TEST(test_file_size_is_the_documented_layout) {
    world w = make_world(9);
    gkd_distill_options o = run_options();
    gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_DATA);
    char path[512];
    build(&w, &c, in_tmp(path, sizeof path, "data.bin"));
    size_t n;
    unsigned char *bytes = th_read_bytes(path, &n);
    size_t want = 96 + 4;
    gkd_seqbatch b;
    ck_assert_int_eq(gkd_seqbatch_new(&b, 1, 16), 0);
    for (size_t ex = 0; ex < 9; ex++) {
        ck_assert_int_eq(gkd_task_encode_example(w.task, w.tok, GKD_SPLIT_TRAIN, ex, b.tokens, 16, &b.prompt_len[0],
                                                 &b.len[0]),
                         0);
        want += 24 + 4 * (size_t)b.len[0] + (size_t)(b.len[0] - b.prompt_len[0]) * (8 * 4 + 4);
    }
    ck_assert_uint_eq(n, want);
    ck_assert_int_eq(memcmp(bytes, "GKDTCACH", 8), 0);
    ck_assert_uint_eq(gkd_crc32(0, bytes, n - 4),
                      (uint32_t)bytes[n - 4] | (uint32_t)bytes[n - 3] << 8 | (uint32_t)bytes[n - 2] << 16 |
                          (uint32_t)bytes[n - 1] << 24);
    gkd_seqbatch_free(&b);
    free(bytes);
    free_world(&w);
}
END_TEST

static void put_u32_at(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Re-seal bytes after an edit, so the parser's own checks (not the CRC) are what refuses them. */
static void reseal(unsigned char *p, size_t n) { put_u32_at(p + n - 4, gkd_crc32(0, p, n - 4)); }

static void expect_refused(const unsigned char *p, size_t n, int code, const char *message) {
    gkd_teacher_cache *c = NULL;
    int rc = gkd_teacher_cache_parse(&c, p, n);
    ck_assert_msg(rc == code, "got %d (%s), want %d", rc, gkd_last_error(), code);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(gkd_last_error(), message) != NULL, "'%s' does not say '%s'", gkd_last_error(), message);
    ck_assert_ptr_null(strchr(gkd_last_error(), '\n'));
}

START_TEST(test_damaged_files_refused) {
    world w = make_world(5);
    gkd_distill_options o = run_options();
    gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_DATA);
    char path[512];
    build(&w, &c, in_tmp(path, sizeof path, "data.bin"));
    size_t n;
    unsigned char *good = th_read_bytes(path, &n), *p = malloc(n);
    gkd_teacher_cache *tc = NULL;
    ck_assert_int_eq(gkd_teacher_cache_parse(&tc, good, n), 0);
    gkd_teacher_cache_free(tc);

    expect_refused(good, 7, GKD_EFORMAT, "not a teacher cache");
    memcpy(p, good, n);
    p[0] = 'X';
    expect_refused(p, n, GKD_EFORMAT, "not a teacher cache");
    memcpy(p, good, n);
    put_u32_at(p + 8, 2);
    expect_refused(p, n, GKD_EVERSION, "version 2");
    expect_refused(good, n - 1, GKD_ECORRUPT, "CRC-32");
    memcpy(p, good, n);
    p[n / 2] ^= 1;
    expect_refused(p, n, GKD_ECORRUPT, "CRC-32");
    /* Fields, with a valid CRC. */
    memcpy(p, good, n);
    put_u32_at(p + 20, (uint32_t)w.V + 1); /* k > V */
    reseal(p, n);
    expect_refused(p, n, GKD_EFORMAT, "k ");
    memcpy(p, good, n);
    put_u32_at(p + 88, 1000); /* 1000 sequences of 5 examples */
    reseal(p, n);
    expect_refused(p, n, GKD_EFORMAT, "1000 sequences of 5");
    memcpy(p, good, n);
    put_u32_at(p + 96 + 12, 99); /* sequence 0's len past the context */
    reseal(p, n);
    expect_refused(p, n, GKD_EFORMAT, "sequence 0: prompt_len");
    memcpy(p, good, n);
    put_u32_at(p + 96 + 20, 1); /* a row count that is not the loss positions' */
    reseal(p, n);
    expect_refused(p, n, GKD_EFORMAT, "rows for");
    /* Sequence 0's first row: ids no longer ascending. */
    uint32_t len0 = (uint32_t)good[96 + 12];
    const size_t ids0 = 96 + 24 + 4 * (size_t)len0;
    memcpy(p, good, n);
    memcpy(p + ids0, good + ids0 + 4, 4);
    reseal(p, n);
    expect_refused(p, n, GKD_EFORMAT, "sequence 0 (example 0)");
    /* A data cache holds no sampling options. */
    memcpy(p, good, n);
    put_u32_at(p + 76, 4);
    reseal(p, n);
    expect_refused(p, n, GKD_EFORMAT, "sampling options");
    /* The file name leads the message of _open. */
    th_write_bytes(path, good, n - 3);
    ck_assert_int_eq(gkd_teacher_cache_open(&tc, path), GKD_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), path));
    free(p);
    free(good);
    free_world(&w);
}
END_TEST

/* ---- runs reading the cache ---- */

static void assert_same_weights(const float *a, const float *b, size_t n) {
    ck_assert_int_eq(memcmp(a, b, sizeof(float) * n), 0);
}

/* Data rows from the cache, student rollouts live (per example, so batches
 * mix both): the same weights bit for bit, with renorm and tail. */
START_TEST(test_data_cache_same_weights) {
    world w = make_world(30);
    char path[512], dir[512];
    for (int tail = 0; tail <= 1; tail++) {
        gkd_distill_options o = run_options();
        o.schedule.lambda = 0.5;
        o.schedule.per_example = 1;
        o.topk_tail = tail;
        gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_DATA);
        build(&w, &c, in_tmp(path, sizeof path, "data.bin"));
        size_t n1, n2;
        float *live = run_weights(&w, &o, in_tmp(dir, sizeof dir, tail ? "live_t" : "live"), &n1);
        o.teacher_cache = path;
        float *cached = run_weights(&w, &o, in_tmp(dir, sizeof dir, tail ? "cached_t" : "cached"), &n2);
        ck_assert_uint_eq(n1, n2);
        assert_same_weights(live, cached, n1);
        free(live);
        free(cached);
    }
    free_world(&w);
}
END_TEST

/* SeqKD rows from the cache (the teacher's sampled generations), data and
 * student rows live: the same weights bit for bit. */
START_TEST(test_seqkd_cache_same_weights) {
    world w = make_world(30);
    char path[512], dir[512];
    gkd_distill_options o = run_options();
    o.schedule.lambda = 0.3;
    o.schedule.seqkd = 0.6;
    o.schedule.per_example = 1;
    o.seqkd_cache = 1;
    o.sample.temperature = 1.0f;
    gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_SEQKD);
    build(&w, &c, in_tmp(path, sizeof path, "seqkd.bin"));
    size_t n1, n2;
    float *live = run_weights(&w, &o, in_tmp(dir, sizeof dir, "live"), &n1);
    o.teacher_cache = path;
    float *cached = run_weights(&w, &o, in_tmp(dir, sizeof dir, "cached"), &n2);
    assert_same_weights(live, cached, n1);
    free(live);
    free(cached);
    free_world(&w);
}
END_TEST

/* A batch of cached rows only never runs the teacher: with its weights made
 * NaN after the cache was opened, the step's loss is still finite and
 * equals the one of the intact teacher; a live step with that teacher is
 * refused. */
START_TEST(test_cached_batch_does_not_run_teacher) {
    world w = make_world(30);
    char path[512];
    gkd_distill_options o = run_options();
    o.schedule.lambda = 0;
    gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_DATA);
    build(&w, &c, in_tmp(path, sizeof path, "data.bin"));
    gkd_model *s1 = student(&w);
    gkd_distill_state live, cached;
    ck_assert_int_eq(gkd_distill_state_init(&live, s1, w.teacher, w.tok, w.task, &o), 0);
    gkd_step_stats a, b;
    ck_assert_int_eq(gkd_distill_prepare(&live, 1, &a), 0);
    ck_assert_int_eq(gkd_distill_loss_grad(&live, 1, &a), 0);
    o.teacher_cache = path;
    ck_assert_msg(gkd_distill_state_init(&cached, s1, w.teacher, w.tok, w.task, &o) == 0, "%s", gkd_last_error());
    for (size_t i = 0; i < w.teacher->num_params; i++) w.teacher->params_memory[i] = NAN;
    ck_assert_int_eq(gkd_distill_prepare(&cached, 1, &b), 0);
    ck_assert_msg(gkd_distill_loss_grad(&cached, 1, &b) == 0, "%s", gkd_last_error());
    ck_assert(isfinite(b.loss) && b.loss > 0);
    ck_assert(a.loss == b.loss);
    ck_assert_int_eq(gkd_distill_loss_grad(&live, 1, &a), GKD_ENAN);
    gkd_distill_state_free(&live);
    gkd_distill_state_free(&cached);
    gkd_model_free(s1);
    free_world(&w);
}
END_TEST

static void expect_attach_error(world *w, const gkd_distill_options *o, gkd_model *teacher, const char *message) {
    gkd_model *s = student(w);
    gkd_distill_state st;
    int rc = gkd_distill_state_init(&st, s, teacher, w->tok, w->task, o);
    ck_assert_msg(rc == GKD_EMISMATCH || rc == GKD_EINVAL, "got %d (%s)", rc, gkd_last_error());
    ck_assert_msg(strstr(gkd_last_error(), message) != NULL, "'%s' does not say '%s'", gkd_last_error(), message);
    gkd_model_free(s);
}

START_TEST(test_cache_of_another_run_refused) {
    world w = make_world(30);
    char path[512], spath[512];
    gkd_distill_options o = run_options();
    gkd_teacher_cache_options c = cache_options(&o, GKD_TEACHER_CACHE_DATA);
    build(&w, &c, in_tmp(path, sizeof path, "data.bin"));
    o.seqkd_cache = 1;
    o.sample.temperature = 0.5f;
    c = cache_options(&o, GKD_TEACHER_CACHE_SEQKD);
    build(&w, &c, in_tmp(spath, sizeof spath, "seqkd.bin"));

    gkd_distill_options x = run_options();
    x.teacher_cache = path;
    x.teacher_topk = 0;
    expect_attach_error(&w, &x, w.teacher, "needs teacher_topk");
    x = run_options();
    x.teacher_cache = path;
    x.teacher_topk = 3;
    expect_attach_error(&w, &x, w.teacher, "k 4, this run has teacher_topk 3");
    x = run_options();
    x.teacher_cache = path;
    x.loss_temperature = 1.0f;
    expect_attach_error(&w, &x, w.teacher, "tau 1.5, this run has loss_temperature 1");
    gkd_model *other = th_make_model(w.V, 16, 1, 16, 2, 9, 0.3f, 991);
    x = run_options();
    x.teacher_cache = path;
    expect_attach_error(&w, &x, other, "teacher ");
    gkd_model_free(other);
    x.schedule.seqkd = 1;
    expect_attach_error(&w, &x, w.teacher, "made from source data");
    x = run_options();
    x.teacher_cache = spath;
    x.schedule.seqkd = 0.5;
    expect_attach_error(&w, &x, w.teacher, "seqkd_cache 0");
    x.seqkd_cache = 1;
    x.sample.temperature = 0.5f;
    x.seed = 6;
    expect_attach_error(&w, &x, w.teacher, "seed 5, this run has 6");
    x.seed = 5;
    x.sample.temperature = 1.0f;
    expect_attach_error(&w, &x, w.teacher, "sampling temperature 0.5, this run has 1");
    /* Another task split: 31 training examples. */
    world w2 = make_world(31);
    x = run_options();
    x.teacher_cache = path;
    gkd_model *s = student(&w2);
    gkd_distill_state st;
    ck_assert_int_eq(gkd_distill_state_init(&st, s, w.teacher, w2.tok, w2.task, &x), GKD_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "(30 examples), this run has"));
    gkd_model_free(s);
    free_world(&w2);
    free_world(&w);
}
END_TEST

Suite *teacher_cache_suite(void) {
    Suite *s = suite_create("teacher_cache");
    TCase *file = tcase_create("file");
    tcase_add_checked_fixture(file, setup, teardown);
    tcase_set_timeout(file, 60);
    tcase_add_test(file, test_round_trip_data);
    tcase_add_test(file, test_file_size_is_the_documented_layout);
    tcase_add_test(file, test_damaged_files_refused);
    suite_add_tcase(s, file);
    TCase *run = tcase_create("run");
    tcase_add_checked_fixture(run, setup, teardown);
    tcase_set_timeout(run, 120);
    tcase_add_test(run, test_data_cache_same_weights);
    tcase_add_test(run, test_seqkd_cache_same_weights);
    tcase_add_test(run, test_cached_batch_does_not_run_teacher);
    tcase_add_test(run, test_cache_of_another_run_refused);
    suite_add_tcase(s, run);
    return s;
}
