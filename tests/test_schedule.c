/* Data-source schedule and replay buffer: every branch, observed fractions
 * within 5 binomial standard deviations (a fixed seed makes each check
 * deterministic; 5 sigma keeps an honest implementation far from the edge
 * while a wrong probability of even a few points fails), FIFO and uniform
 * draws, serialization and its error paths, resume and determinism. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/schedule.h"
#include "gkd/tokenizer.h"

/* Vocabulary the loads of these tests check tokens against: above every
 * token batch_fill writes (100 + tag, tag < 400). */
#define TEST_VOCAB 1024

static void assert_binomial(long k, long n, double p, const char *what) {
    double sd = sqrt(n * p * (1 - p));
    double lo = n * p - 5 * sd, hi = n * p + 5 * sd;
    ck_assert_msg(k >= lo && k <= hi, "%s: %ld of %ld, expected %.1f +- %.1f", what, k, n, n * p, 5 * sd);
}

static gkd_schedule *make(const gkd_schedule_options *o, uint64_t seed) {
    gkd_schedule *s = NULL;
    ck_assert_msg(gkd_schedule_new(&s, o, seed) == 0, "%s", gkd_last_error());
    return s;
}

/* Counts of each source over `steps` batch-level steps. */
static void run_counts(const gkd_schedule_options *o, uint64_t seed, long steps, long counts[5]) {
    gkd_schedule *s = make(o, seed);
    memset(counts, 0, 5 * sizeof counts[0]);
    for (long t = 0; t < steps; t++) {
        gkd_schedule_choice c;
        ck_assert(gkd_schedule_step(s, t, 1, &c) == 0);
        counts[c.source]++;
        ck_assert_int_eq(c.store, 0);
    }
    gkd_schedule_free(s);
}

/* A small batch of sequences, row b = BOS, b, b+1, SEP, tag, EOS. */
typedef struct {
    gkd_seqbatch b;
    int tokens[8 * 16], prompt_len[8], len[8];
    unsigned char eos[8];
} test_batch;

static void batch_init(test_batch *tb, int B, int cap) {
    memset(tb, 0, sizeof *tb);
    tb->b = (gkd_seqbatch){B, cap, tb->tokens, tb->prompt_len, tb->len, tb->eos};
}

static void batch_fill(test_batch *tb, int tag) {
    for (int r = 0; r < tb->b.B; r++) {
        int *t = tb->tokens + r * tb->b.cap;
        int L = 4 + (tag + r) % 3; /* 4..6 tokens */
        for (int i = 0; i < tb->b.cap; i++) t[i] = GKD_TOK_PAD;
        t[0] = GKD_TOK_BOS, t[1] = 10 + r, t[2] = GKD_TOK_SEP;
        for (int i = 3; i < L - 1; i++) t[i] = 100 + tag;
        t[L - 1] = GKD_TOK_EOS;
        tb->prompt_len[r] = 3, tb->len[r] = L, tb->eos[r] = 1;
    }
}

START_TEST(test_lambda_endpoints_and_fraction) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    long c[5];
    o.lambda = 0.0;
    run_counts(&o, 1, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_DATA], 10000);
    o.lambda = 1.0;
    run_counts(&o, 1, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_STUDENT], 10000);
    o.lambda = 0.3;
    run_counts(&o, 2, 10000, c);
    assert_binomial(c[GKD_SRC_STUDENT], 10000, 0.3, "lambda 0.3");
    ck_assert_int_eq(c[GKD_SRC_STUDENT] + c[GKD_SRC_DATA], 10000);
}
END_TEST

START_TEST(test_per_example) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.lambda = 0.3;
    o.per_example = 1;
    gkd_schedule *s = make(&o, 3);
    o.per_example = 0;
    gkd_schedule *batch = make(&o, 3);
    enum { B = 16, STEPS = 2000 };
    long student = 0, mixed_batches = 0;
    for (long t = 0; t < STEPS; t++) {
        gkd_schedule_choice c[B], cb[B];
        ck_assert(gkd_schedule_step(s, t, B, c) == 0);
        ck_assert(gkd_schedule_step(batch, t, B, cb) == 0);
        int k = 0;
        for (int i = 0; i < B; i++) k += c[i].source == GKD_SRC_STUDENT;
        student += k;
        mixed_batches += k > 0 && k < B;
        /* Example 0 draws what the batch-level schedule draws. */
        ck_assert_int_eq(c[0].source, cb[0].source);
        for (int i = 1; i < B; i++) ck_assert_int_eq(cb[i].source, cb[0].source);
    }
    assert_binomial(student, (long)B * STEPS, 0.3, "per-example lambda 0.3");
    /* P(all 16 equal) = 0.3^16 + 0.7^16 ~ 0.3%: nearly every batch mixes. */
    ck_assert_int_gt(mixed_batches, STEPS * 95 / 100);
    gkd_schedule_free(s);
    gkd_schedule_free(batch);
}
END_TEST

START_TEST(test_seqkd_share) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    long c[5];
    o.lambda = 0.4;
    o.seqkd = 0.25;
    run_counts(&o, 4, 10000, c);
    long off = c[GKD_SRC_TEACHER] + c[GKD_SRC_DATA];
    assert_binomial(c[GKD_SRC_STUDENT], 10000, 0.4, "lambda 0.4");
    assert_binomial(c[GKD_SRC_TEACHER], off, 0.25, "seqkd 0.25 among off-policy");
    o.seqkd = 1.0;
    run_counts(&o, 4, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_DATA], 0);
    ck_assert_int_eq(c[GKD_SRC_TEACHER] + c[GKD_SRC_STUDENT], 10000);
    o.seqkd = 0.0;
    run_counts(&o, 4, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_TEACHER], 0);
    /* The on-policy choice does not depend on seqkd (own uniform). */
    long student0 = c[GKD_SRC_STUDENT];
    o.seqkd = 0.7;
    run_counts(&o, 4, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_STUDENT], student0);
}
END_TEST

START_TEST(test_teacher_mix) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    long c[5];
    o.lambda = 0.5;
    o.teacher_mix = 0.2;
    run_counts(&o, 5, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_STUDENT], 0);
    assert_binomial(c[GKD_SRC_MIXED], 10000, 0.5, "mixed");
    long mixed = c[GKD_SRC_MIXED];
    o.teacher_mix = 0.0;
    run_counts(&o, 5, 10000, c);
    ck_assert_int_eq(c[GKD_SRC_MIXED], 0);
    ck_assert_int_eq(c[GKD_SRC_STUDENT], mixed); /* same draws, relabelled */
}
END_TEST

START_TEST(test_fixed_replay) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.lambda = 0.6;
    o.replay = GKD_REPLAY_FIXED;
    o.p_replay = 0.4;
    o.replay_min = 8;
    o.capacity = 20;
    o.seq_cap = 16;
    gkd_schedule *s = make(&o, 6);
    test_batch tb;
    batch_init(&tb, 4, 16);
    long on = 0, replay = 0, off = 0, before_min = 0;
    for (long t = 0; t < 10000; t++) {
        gkd_schedule_choice c;
        int count = gkd_replay_count(gkd_schedule_buffer(s));
        ck_assert(gkd_schedule_step(s, t, 1, &c) == 0);
        if (count < 8) {
            ck_assert_int_ne(c.source, GKD_SRC_REPLAY);
            before_min++;
        }
        if (c.source == GKD_SRC_STUDENT) {
            ck_assert_int_eq(c.store, 1);
            batch_fill(&tb, (int)t);
            ck_assert(gkd_replay_push_batch(gkd_schedule_buffer(s), &tb.b) == 0);
            if (count >= 8) on++;
        } else if (c.source == GKD_SRC_REPLAY) {
            ck_assert_int_eq(c.store, 0);
            test_batch out;
            batch_init(&out, 4, 16);
            int items[4];
            ck_assert(gkd_schedule_replay(s, t, &out.b, items) == 0);
            for (int i = 0; i < 4; i++) ck_assert(items[i] >= 0 && items[i] < gkd_replay_count(gkd_schedule_buffer(s)));
            replay++;
        } else {
            ck_assert_int_eq(c.source, GKD_SRC_DATA);
            ck_assert_int_eq(c.store, 0);
            off++;
        }
    }
    ck_assert_int_gt(before_min, 0);
    ck_assert_int_le(before_min, 10);
    assert_binomial(replay, on + replay, 0.4, "p_replay among on-policy");
    assert_binomial(on + replay, on + replay + off, 0.6, "lambda with replay");
    ck_assert_int_eq(gkd_replay_count(gkd_schedule_buffer(s)), 20);
    gkd_schedule_free(s);
}
END_TEST

START_TEST(test_adaptive_threshold_rule) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.replay = GKD_REPLAY_ADAPTIVE;
    o.init_threshold = 0.0;
    o.threshold_step = 0.1;
    o.loss_eps = 0.1;
    gkd_schedule *s = make(&o, 7);
    int raised;
    ck_assert(gkd_schedule_validation(s, 2.0, &raised) == 0 && !raised); /* reference */
    ck_assert(gkd_schedule_validation(s, 1.8, &raised) == 0 && !raised); /* decrease */
    /* DistiLLM compares with the loss at the last raise (2.0), not 1.8. */
    ck_assert(gkd_schedule_validation(s, 1.95, &raised) == 0 && !raised);
    ck_assert(gkd_schedule_threshold(s) == 0.0);
    ck_assert(gkd_schedule_validation(s, 2.1, &raised) == 0 && raised);
    ck_assert_double_eq_tol(gkd_schedule_threshold(s), 0.1, 1e-15);
    ck_assert(gkd_schedule_validation(s, 2.15, &raised) == 0 && !raised); /* < 2.1 + eps */
    ck_assert(gkd_schedule_validation(s, 2.3, &raised) == 0 && raised);
    for (int i = 0; i < 20; i++) gkd_schedule_validation(s, 10.0 + i, NULL);
    ck_assert(gkd_schedule_threshold(s) == 1.0); /* capped */
    ck_assert_int_eq(gkd_schedule_validation(s, NAN, NULL), GKD_EINVAL);
    gkd_schedule_free(s);

    o.valref = GKD_VALREF_PREVIOUS;
    s = make(&o, 7);
    gkd_schedule_validation(s, 2.0, NULL);
    gkd_schedule_validation(s, 1.8, &raised);
    ck_assert(!raised);
    ck_assert(gkd_schedule_validation(s, 1.95, &raised) == 0 && raised); /* >= 1.8 + 0.1 */
    ck_assert_double_eq_tol(gkd_schedule_threshold(s), 0.1, 1e-15);
    gkd_schedule_free(s);

    /* Other modes ignore validation losses. */
    o.replay = GKD_REPLAY_OFF;
    s = make(&o, 7);
    gkd_schedule_validation(s, 1.0, NULL);
    ck_assert(gkd_schedule_validation(s, 5.0, &raised) == 0 && !raised);
    gkd_schedule_free(s);
}
END_TEST

START_TEST(test_adaptive_sources) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.replay = GKD_REPLAY_ADAPTIVE;
    o.init_threshold = 0.0;
    o.capacity = 8;
    o.seq_cap = 16;
    o.ratio = GKD_REPLAY_RATIO_CONSTANT;
    o.seqkd = 0.5;
    gkd_schedule *s = make(&o, 8);
    test_batch tb;
    batch_init(&tb, 2, 16);
    long t = 0;
    gkd_schedule_choice c;
    /* Threshold 0: all off-policy (split by seqkd). */
    long teacher = 0;
    for (; t < 2000; t++) {
        ck_assert(gkd_schedule_step(s, t, 1, &c) == 0);
        ck_assert(c.source == GKD_SRC_DATA || c.source == GKD_SRC_TEACHER);
        teacher += c.source == GKD_SRC_TEACHER;
    }
    assert_binomial(teacher, 2000, 0.5, "seqkd in adaptive mode");
    /* Raise to 0.5: until the buffer is full every on-policy draw is fresh. */
    gkd_schedule_validation(s, 1.0, NULL);
    for (int i = 1; i <= 5; i++) gkd_schedule_validation(s, 1.0 + i, NULL);
    ck_assert_double_eq_tol(gkd_schedule_threshold(s), 0.5, 1e-12);
    long fresh = 0, replay = 0, off = 0, n = 0;
    while (gkd_replay_count(gkd_schedule_buffer(s)) < 8) {
        ck_assert(gkd_schedule_step(s, t, 1, &c) == 0);
        ck_assert_int_ne(c.source, GKD_SRC_REPLAY);
        if (c.source == GKD_SRC_STUDENT) {
            ck_assert_int_eq(c.store, 1);
            batch_fill(&tb, (int)t);
            gkd_replay_push_batch(gkd_schedule_buffer(s), &tb.b);
        }
        t++;
    }
    /* Full buffer, constant ratio: fresh th/2, replay th/2, off 1 - th. */
    for (long k = 0; k < 10000; k++, t++) {
        ck_assert(gkd_schedule_step(s, t, 1, &c) == 0);
        if (c.source == GKD_SRC_STUDENT) {
            ck_assert_int_eq(c.store, 1);
            fresh++;
            batch_fill(&tb, (int)t);
            gkd_replay_push_batch(gkd_schedule_buffer(s), &tb.b);
        } else if (c.source == GKD_SRC_REPLAY) {
            replay++;
        } else {
            off++;
        }
        n++;
    }
    assert_binomial(fresh, n, 0.25, "adaptive fresh (constant ratio)");
    assert_binomial(replay, n, 0.25, "adaptive replay (constant ratio)");
    assert_binomial(off, n, 0.5, "adaptive off-policy");
    gkd_schedule_free(s);

    /* Decreasing ratio: near the end nearly every on-policy draw is replay;
     * increasing ratio: nearly every one is fresh. teacher_mix relabels. */
    const gkd_replay_ratio ratios[2] = {GKD_REPLAY_RATIO_DECREASING, GKD_REPLAY_RATIO_INCREASING};
    for (int r = 0; r < 2; r++) {
        o.ratio = ratios[r];
        o.total_steps = 4000;
        o.init_threshold = 1.0;
        o.teacher_mix = 0.3;
        s = make(&o, 9);
        long early_fresh = 0, late_fresh = 0;
        for (t = 0; t < 4000; t++) {
            ck_assert(gkd_schedule_step(s, t, 1, &c) == 0);
            ck_assert_int_ne(c.source, GKD_SRC_STUDENT);
            ck_assert(c.source == GKD_SRC_MIXED || c.source == GKD_SRC_REPLAY); /* threshold 1 */
            if (c.source == GKD_SRC_MIXED) {
                batch_fill(&tb, (int)t);
                gkd_replay_push_batch(gkd_schedule_buffer(s), &tb.b);
                if (t >= 100 && t < 500) early_fresh++;
                if (t >= 3600) late_fresh++;
            }
        }
        /* ratio over [100, 500) averages 0.925 (decreasing) or 0.075; over
         * [3600, 4000) 0.05 or 0.95. */
        if (ratios[r] == GKD_REPLAY_RATIO_DECREASING) {
            assert_binomial(early_fresh, 400, 0.925, "decreasing, early");
            assert_binomial(late_fresh, 400, 0.05, "decreasing, late");
        } else {
            assert_binomial(early_fresh, 400, 0.075, "increasing, early");
            assert_binomial(late_fresh, 400, 0.95, "increasing, late");
        }
        gkd_schedule_free(s);
    }
}
END_TEST

START_TEST(test_replay_fifo_and_get) {
    gkd_replay *r = NULL;
    ck_assert(gkd_replay_new(&r, 3, 8) == 0);
    test_batch tb;
    batch_init(&tb, 1, 16);
    for (int k = 0; k < 5; k++) {
        batch_fill(&tb, k);
        ck_assert(gkd_replay_push(r, &tb.b, 0) == 0);
        ck_assert_int_eq(gkd_replay_count(r), k < 3 ? k + 1 : 3);
    }
    ck_assert_uint_eq(gkd_replay_pushed(r), 5);
    test_batch out;
    batch_init(&out, 2, 10);
    for (int i = 0; i < 3; i++) {
        ck_assert(gkd_replay_get(r, i, &out.b, 1) == 0);
        batch_fill(&tb, i + 2); /* oldest kept is the third pushed */
        ck_assert_int_eq(out.len[1], tb.len[0]);
        ck_assert_int_eq(out.prompt_len[1], 3);
        ck_assert_int_eq(out.eos[1], 1);
        ck_assert(memcmp(out.tokens + 10, tb.tokens, tb.len[0] * sizeof(int)) == 0);
        for (int t = tb.len[0]; t < 10; t++) ck_assert_int_eq(out.tokens[10 + t], GKD_TOK_PAD);
    }
    ck_assert_int_eq(gkd_replay_get(r, 3, &out.b, 0), GKD_EINVAL);
    ck_assert_int_eq(gkd_replay_get(r, 0, &out.b, 2), GKD_EINVAL);
    /* A sequence longer than seq_cap is refused and changes nothing. */
    batch_fill(&tb, 0);
    tb.len[0] = 9;
    ck_assert_int_eq(gkd_replay_push(r, &tb.b, 0), GKD_EINVAL);
    tb.len[0] = 2; /* shorter than the prompt */
    ck_assert_int_eq(gkd_replay_push(r, &tb.b, 0), GKD_EINVAL);
    ck_assert_uint_eq(gkd_replay_pushed(r), 5);
    /* Does not fit a smaller destination. */
    test_batch small;
    batch_init(&small, 1, 4);
    batch_fill(&tb, 4); /* newest: len 5 */
    ck_assert_int_eq(gkd_replay_get(r, 2, &small.b, 0), GKD_EINVAL);
    gkd_replay_free(r);
    ck_assert_int_eq(gkd_replay_new(&r, 0, 8), GKD_EINVAL);
}
END_TEST

START_TEST(test_replay_uniform_and_streams) {
    enum { CAP = 5, DRAWS = 30000 };
    gkd_replay *r = NULL;
    ck_assert(gkd_replay_new(&r, CAP, 8) == 0);
    gkd_rng rng = gkd_rng_derive(1, GKD_RNG_REPLAY, 0, 0);
    int k;
    ck_assert_int_eq(gkd_replay_pick(r, &rng, &k), GKD_ESTATE);
    test_batch tb;
    batch_init(&tb, CAP, 8);
    batch_fill(&tb, 0);
    ck_assert(gkd_replay_push_batch(r, &tb.b) == 0);
    long counts[CAP] = {0};
    for (int i = 0; i < DRAWS; i++) {
        ck_assert(gkd_replay_pick(r, &rng, &k) == 0);
        counts[k]++;
    }
    for (int i = 0; i < CAP; i++) assert_binomial(counts[i], DRAWS, 1.0 / CAP, "uniform pick");
    /* Row i of a replayed batch depends on (seed, step, i) only. */
    test_batch a, b;
    batch_init(&a, 3, 8), batch_init(&b, 5, 8);
    int ia[3], ib[5], ic[5];
    ck_assert(gkd_replay_sample(r, 11, 42, &a.b, ia) == 0);
    ck_assert(gkd_replay_sample(r, 11, 42, &b.b, ib) == 0);
    ck_assert(memcmp(ia, ib, sizeof ia) == 0);
    ck_assert(memcmp(a.tokens, b.tokens, sizeof(int) * 3 * 8) == 0);
    ck_assert(gkd_replay_sample(r, 11, 43, &b.b, ic) == 0);
    ck_assert(memcmp(ib, ic, sizeof ib) != 0);
    gkd_replay_free(r);
}
END_TEST

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void reseal(unsigned char *blob, size_t size) {
    uint64_t h = fnv(blob, size - 8);
    for (int i = 0; i < 8; i++) blob[size - 8 + i] = (unsigned char)(h >> (8 * i));
}

START_TEST(test_replay_serialization) {
    gkd_replay *r = NULL, *back = NULL;
    ck_assert(gkd_replay_new(&r, 4, 8) == 0);
    test_batch tb;
    batch_init(&tb, 3, 8);
    for (int k = 0; k < 3; k++) {
        batch_fill(&tb, k);
        tb.eos[1] = 0;
        ck_assert(gkd_replay_push_batch(r, &tb.b) == 0); /* wraps the ring */
    }
    unsigned char *blob, *blob2;
    size_t size, size2;
    ck_assert(gkd_replay_save(r, &blob, &size) == 0);
    ck_assert(gkd_replay_load(&back, blob, size, TEST_VOCAB) == 0);
    ck_assert(gkd_replay_save(back, &blob2, &size2) == 0);
    ck_assert(size == size2 && memcmp(blob, blob2, size) == 0);
    free(blob2);
    ck_assert_int_eq(gkd_replay_count(back), 4);
    ck_assert_uint_eq(gkd_replay_pushed(back), 9);
    test_batch x, y;
    batch_init(&x, 1, 8), batch_init(&y, 1, 8);
    for (int i = 0; i < 4; i++) {
        gkd_replay_get(r, i, &x.b, 0), gkd_replay_get(back, i, &y.b, 0);
        ck_assert(memcmp(x.tokens, y.tokens, sizeof x.tokens) == 0);
        ck_assert(x.len[0] == y.len[0] && x.prompt_len[0] == y.prompt_len[0] && x.eos[0] == y.eos[0]);
    }
    gkd_replay_free(back);

    unsigned char *bad = malloc(size);
    /* Every single-byte flip is detected. */
    for (size_t i = 0; i < size; i++) {
        memcpy(bad, blob, size);
        bad[i] ^= 0x20;
        back = NULL;
        int rc = gkd_replay_load(&back, bad, size, TEST_VOCAB);
        ck_assert_msg(rc == GKD_ECORRUPT || rc == GKD_EFORMAT || rc == GKD_EVERSION, "byte %zu: rc %d", i, rc);
        ck_assert(back == NULL);
    }
    for (size_t n = 0; n < size; n += 7) ck_assert_int_lt(gkd_replay_load(&back, blob, n, TEST_VOCAB), 0);
    memcpy(bad, blob, size);
    bad[0] = 'X';
    ck_assert_int_eq(gkd_replay_load(&back, bad, size, TEST_VOCAB), GKD_EFORMAT);
    memcpy(bad, blob, size);
    bad[8] = 2;
    ck_assert_int_eq(gkd_replay_load(&back, bad, size, TEST_VOCAB), GKD_EVERSION);
    memcpy(bad, blob, size);
    bad[20] = 9; /* count 9 > capacity 4, checksum fixed up */
    reseal(bad, size);
    ck_assert_int_eq(gkd_replay_load(&back, bad, size, TEST_VOCAB), GKD_EFORMAT);
    memcpy(bad, blob, size);
    bad[32] = 0x7f; /* first item's prompt_len > len */
    reseal(bad, size);
    ck_assert_int_eq(gkd_replay_load(&back, bad, size, TEST_VOCAB), GKD_EFORMAT);
    free(bad);
    free(blob);
    gkd_replay_free(r);
}
END_TEST

/* A header's capacity x seq_cap is what the load allocates: a shape of
 * 2^24 x 2^24 tokens in a blob of a few bytes is refused as malformed
 * instead of asking for a petabyte (found by fuzz/fuzz_replay.c). */
START_TEST(test_replay_load_refuses_huge_shape) {
    gkd_replay *r = NULL;
    ck_assert(gkd_replay_new(&r, 4, 8) == 0);
    unsigned char *blob;
    size_t size;
    ck_assert(gkd_replay_save(r, &blob, &size) == 0);
    gkd_replay_free(r);
    ck_assert_uint_eq(size, 40); /* header of an empty buffer and the checksum */
    const uint32_t dim = 1u << 24;
    for (int i = 0; i < 4; i++) blob[12 + i] = blob[16 + i] = (unsigned char)(dim >> (8 * i));
    reseal(blob, size);
    r = NULL;
    ck_assert_int_eq(gkd_replay_load(&r, blob, size, TEST_VOCAB), GKD_EFORMAT);
    ck_assert(r == NULL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "bad header"));
    ck_assert_int_eq(gkd_replay_new(&r, 1 << 24, 1 << 24), GKD_EINVAL);
    ck_assert_int_eq(gkd_replay_new(&r, 1 << 21, 1 << 8), GKD_EINVAL);
    free(blob);
}
END_TEST

/* Fixed replay into a buffer of 4 sequences of 8 tokens. */
static gkd_schedule_options replay_4x8(void) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.replay = GKD_REPLAY_FIXED;
    o.p_replay = 0.5;
    o.capacity = 4;
    o.seq_cap = 8;
    return o;
}

/* Two sequences of 8 tokens whose largest is 100, but item 1 holds 200 at
 * position 3. */
static void batch_with_token_200(test_batch *tb) {
    batch_init(tb, 2, 8);
    batch_fill(tb, 0);
    tb->tokens[8 + 3] = 200;
}

/* The saved state of a replay_4x8 schedule holding batch_with_token_200. */
static void save_with_token_200(unsigned char **blob, size_t *size) {
    gkd_schedule_options o = replay_4x8();
    gkd_schedule *s = make(&o, 5);
    test_batch tb;
    batch_with_token_200(&tb);
    ck_assert(gkd_replay_push_batch(gkd_schedule_buffer(s), &tb.b) == 0);
    ck_assert(gkd_schedule_save(s, blob, size) == 0);
    gkd_schedule_free(s);
}

/* Replayed items go to the model on resume: a token the saved buffer
 * holds at or above the model's vocabulary would index past its
 * embedding table. The load refuses it with one line naming the item and
 * the vocabulary; tokens up to vocab_size - 1 load. */
START_TEST(test_replay_load_refuses_tokens_outside_vocabulary) {
    gkd_replay *r = NULL, *back = NULL;
    ck_assert(gkd_replay_new(&r, 4, 8) == 0);
    test_batch tb;
    batch_with_token_200(&tb);
    ck_assert(gkd_replay_push_batch(r, &tb.b) == 0);
    unsigned char *blob;
    size_t size;
    ck_assert(gkd_replay_save(r, &blob, &size) == 0);
    gkd_replay_free(r);

    ck_assert_msg(gkd_replay_load(&back, blob, size, 201) == 0, "%s", gkd_last_error());
    gkd_replay_free(back);
    back = NULL;
    ck_assert_int_eq(gkd_replay_load(&back, blob, size, 200), GKD_EFORMAT);
    ck_assert(back == NULL);
    const char *msg = gkd_last_error();
    ck_assert_msg(strstr(msg, "item 1") && strstr(msg, "token 200") && strstr(msg, "vocabulary of 200"), "%s", msg);
    ck_assert_ptr_null(strchr(msg, '\n'));
    ck_assert_int_eq(gkd_replay_load(&back, blob, size, 10), GKD_EFORMAT); /* item 0 holds token 10 */
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "item 0"));
    ck_assert_int_eq(gkd_replay_load(&back, blob, size, 0), GKD_EINVAL);

    /* Through the schedule state of a checkpoint, as a resume loads it. */
    gkd_schedule_options o = replay_4x8();
    gkd_schedule *t = make(&o, 5);
    free(blob);
    save_with_token_200(&blob, &size);
    ck_assert_int_eq(gkd_schedule_load(t, blob, size, 200), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "vocabulary of 200"));
    ck_assert_int_eq(gkd_replay_count(gkd_schedule_buffer(t)), 0);
    ck_assert_msg(gkd_schedule_load(t, blob, size, 201) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(gkd_replay_count(gkd_schedule_buffer(t)), 2);
    gkd_schedule_free(t);
    free(blob);
}
END_TEST

/* A schedule state whose replay buffer declares another shape than the
 * schedule's options (a crafted checkpoint): refused before the buffer is
 * read or allocated, since its shape alone may ask for a gigabyte. Item 1
 * holds a token outside the vocabulary, so reading the items first would
 * give that error instead. */
START_TEST(test_schedule_load_checks_buffer_shape_first) {
    gkd_schedule_options o = replay_4x8();
    gkd_schedule *t = make(&o, 5);
    unsigned char *blob;
    size_t size;
    save_with_token_200(&blob, &size);
    /* The embedded replay blob: its size (u64) precedes its magic. */
    unsigned char *m = NULL;
    for (size_t i = 8; i + 8 <= size && !m; i++)
        if (!memcmp(blob + i, "GKDRPLB", 8)) m = blob + i;
    ck_assert_ptr_nonnull(m);
    uint64_t rn = 0;
    for (int i = 0; i < 8; i++) rn |= (uint64_t)m[-8 + i] << (8 * i);
    const uint32_t capacity = 8; /* little-endian, after magic and version */
    for (int i = 0; i < 4; i++) m[12 + i] = (unsigned char)(capacity >> (8 * i));
    reseal(m, (size_t)rn);
    reseal(blob, size);
    ck_assert_int_eq(gkd_schedule_load(t, blob, size, 200), GKD_EMISMATCH);
    ck_assert_msg(strstr(gkd_last_error(), "replay buffer shape (capacity 8, seq_cap 8) differs from the options "
                                           "(capacity 4, seq_cap 8)"),
                  "%s", gkd_last_error());
    ck_assert_int_eq(gkd_replay_count(gkd_schedule_buffer(t)), 0);
    gkd_schedule_free(t);
    free(blob);
}
END_TEST

/* Drive a schedule like the distillation step would, logging choices. */
static void drive(gkd_schedule *s, long from, long to, int B, gkd_schedule_choice *log) {
    test_batch tb;
    batch_init(&tb, 2, 16);
    for (long t = from; t < to; t++) {
        gkd_schedule_choice *c = log + (t - from) * B;
        ck_assert_msg(gkd_schedule_step(s, t, B, c) == 0, "%s", gkd_last_error());
        int store = 0;
        for (int i = 0; i < B; i++) store |= c[i].store;
        if (store) {
            batch_fill(&tb, (int)t);
            ck_assert(gkd_replay_push_batch(gkd_schedule_buffer(s), &tb.b) == 0);
        }
        if (t % 25 == 24) gkd_schedule_validation(s, 1.0 + 0.3 * sin((double)t), NULL);
    }
}

START_TEST(test_schedule_resume_and_determinism) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.replay = GKD_REPLAY_ADAPTIVE;
    o.init_threshold = 0.2;
    o.capacity = 10;
    o.seq_cap = 16;
    o.total_steps = 400;
    o.per_example = 1;
    o.seqkd = 0.3;
    enum { B = 4, N = 400, CUT = 173 };
    static gkd_schedule_choice full[N * B], again[N * B], resumed[N * B];
    gkd_schedule *a = make(&o, 77), *b = make(&o, 77);
    drive(a, 0, N, B, full);
    drive(b, 0, N, B, again);
    ck_assert(memcmp(full, again, sizeof full) == 0);
    ck_assert_double_gt(gkd_schedule_threshold(a), 0.2); /* some raises happened */
    int kinds[5] = {0};
    for (int i = 0; i < N * B; i++) kinds[full[i].source] = 1;
    ck_assert(kinds[GKD_SRC_DATA] && kinds[GKD_SRC_TEACHER] && kinds[GKD_SRC_STUDENT] && kinds[GKD_SRC_REPLAY]);

    /* Stop at CUT, save, load into a fresh schedule, continue. */
    gkd_schedule *c = make(&o, 77);
    drive(c, 0, CUT, B, resumed);
    unsigned char *blob, *end1, *end2;
    size_t size, n1, n2;
    ck_assert(gkd_schedule_save(c, &blob, &size) == 0);
    gkd_schedule_free(c);
    gkd_schedule *d = make(&o, 77);
    ck_assert_msg(gkd_schedule_load(d, blob, size, TEST_VOCAB) == 0, "%s", gkd_last_error());
    ck_assert_int_eq(gkd_schedule_next_step(d), CUT);
    drive(d, CUT, N, B, resumed + CUT * B);
    ck_assert(memcmp(full, resumed, sizeof full) == 0);
    ck_assert(gkd_schedule_save(a, &end1, &n1) == 0 && gkd_schedule_save(d, &end2, &n2) == 0);
    ck_assert(n1 == n2 && memcmp(end1, end2, n1) == 0);
    free(end1), free(end2);

    /* Another seed gives other choices. */
    gkd_schedule *e = make(&o, 78);
    drive(e, 0, N, B, again);
    ck_assert(memcmp(full, again, sizeof full) != 0);
    gkd_schedule_free(e);

    /* Steps are decided once each, in order. */
    gkd_schedule_choice ch[B];
    ck_assert_int_eq(gkd_schedule_step(a, N + 1, B, ch), GKD_ESTATE);
    ck_assert_int_eq(gkd_schedule_step(a, 3, B, ch), GKD_ESTATE);

    /* Mismatched options or seed, and damaged blobs, leave the schedule as it was. */
    gkd_schedule *f = make(&o, 99);
    ck_assert_int_eq(gkd_schedule_load(f, blob, size, TEST_VOCAB), GKD_EMISMATCH);
    ck_assert_int_eq(gkd_schedule_next_step(f), 0);
    gkd_schedule_free(f);
    gkd_schedule_options o2 = o;
    o2.seqkd = 0.31;
    f = make(&o2, 77);
    ck_assert_int_eq(gkd_schedule_load(f, blob, size, TEST_VOCAB), GKD_EMISMATCH);
    gkd_schedule_free(f);
    unsigned char *bad = malloc(size);
    for (size_t i = 0; i < size; i += 3) {
        memcpy(bad, blob, size);
        bad[i] ^= 0x01;
        int rc = gkd_schedule_load(d, bad, size, TEST_VOCAB);
        ck_assert_msg(rc == GKD_ECORRUPT || rc == GKD_EFORMAT || rc == GKD_EVERSION, "byte %zu: rc %d", i, rc);
        ck_assert_int_eq(gkd_schedule_next_step(d), N);
    }
    ck_assert_int_eq(gkd_schedule_load(d, blob, size - 1, TEST_VOCAB), GKD_ECORRUPT);
    ck_assert_int_eq(gkd_schedule_load(d, blob, 5, TEST_VOCAB), GKD_EFORMAT);
    free(bad);
    free(blob);
    gkd_schedule_free(a);
    gkd_schedule_free(b);
    gkd_schedule_free(d);

    /* Without replay the blob has no buffer and still round-trips. */
    gkd_schedule_options p = GKD_SCHEDULE_OPTIONS_INIT;
    p.lambda = 0.5;
    gkd_schedule *g = make(&p, 1), *h = make(&p, 1);
    drive(g, 0, 10, B, full);
    ck_assert(gkd_schedule_save(g, &blob, &size) == 0);
    ck_assert(gkd_schedule_load(h, blob, size, TEST_VOCAB) == 0);
    ck_assert_int_eq(gkd_schedule_next_step(h), 10);
    ck_assert(gkd_schedule_buffer(h) == NULL);
    ck_assert_int_eq(gkd_schedule_replay(h, 10, NULL, NULL), GKD_ESTATE);
    free(blob);
    gkd_schedule_free(g);
    gkd_schedule_free(h);
}
END_TEST

START_TEST(test_options_validation_and_names) {
    gkd_schedule *s = NULL;
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.lambda = 1.5;
    ck_assert_int_eq(gkd_schedule_new(&s, &o, 1), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "lambda") != NULL);
    o = (gkd_schedule_options)GKD_SCHEDULE_OPTIONS_INIT;
    o.seqkd = -0.1;
    ck_assert_int_eq(gkd_schedule_new(&s, &o, 1), GKD_EINVAL);
    o = (gkd_schedule_options)GKD_SCHEDULE_OPTIONS_INIT;
    o.teacher_mix = NAN;
    ck_assert_int_eq(gkd_schedule_new(&s, &o, 1), GKD_EINVAL);
    o = (gkd_schedule_options)GKD_SCHEDULE_OPTIONS_INIT;
    o.replay = GKD_REPLAY_FIXED;
    o.p_replay = 0.5;
    o.replay_min = 2000; /* > capacity */
    ck_assert_int_eq(gkd_schedule_new(&s, &o, 1), GKD_EINVAL);
    ck_assert(strstr(gkd_last_error(), "replay_min") != NULL);
    o = (gkd_schedule_options)GKD_SCHEDULE_OPTIONS_INIT;
    o.replay = GKD_REPLAY_ADAPTIVE;
    o.threshold_step = 0.0;
    ck_assert_int_eq(gkd_schedule_new(&s, &o, 1), GKD_EINVAL);
    o.threshold_step = 0.1;
    o.total_steps = 0;
    ck_assert_int_eq(gkd_schedule_new(&s, &o, 1), GKD_EINVAL);
    o.ratio = GKD_REPLAY_RATIO_CONSTANT; /* total_steps unused then */
    ck_assert(gkd_schedule_new(&s, &o, 1) == 0);
    gkd_schedule_choice c;
    ck_assert_int_eq(gkd_schedule_step(s, 0, 0, &c), GKD_EINVAL);
    gkd_schedule_free(s);
    ck_assert_str_eq(gkd_source_name(GKD_SRC_DATA), "data");
    ck_assert_str_eq(gkd_source_name(GKD_SRC_TEACHER), "teacher");
    ck_assert_str_eq(gkd_source_name(GKD_SRC_STUDENT), "student");
    ck_assert_str_eq(gkd_source_name(GKD_SRC_MIXED), "mixed");
    ck_assert_str_eq(gkd_source_name(GKD_SRC_REPLAY), "replay");
}
END_TEST

Suite *schedule_suite(void) {
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("schedule");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_lambda_endpoints_and_fraction);
    tcase_add_test(tc, test_per_example);
    tcase_add_test(tc, test_seqkd_share);
    tcase_add_test(tc, test_teacher_mix);
    tcase_add_test(tc, test_fixed_replay);
    tcase_add_test(tc, test_adaptive_threshold_rule);
    tcase_add_test(tc, test_adaptive_sources);
    tcase_add_test(tc, test_replay_fifo_and_get);
    tcase_add_test(tc, test_replay_uniform_and_streams);
    tcase_add_test(tc, test_replay_serialization);
    tcase_add_test(tc, test_replay_load_refuses_huge_shape);
    tcase_add_test(tc, test_replay_load_refuses_tokens_outside_vocabulary);
    tcase_add_test(tc, test_schedule_load_checks_buffer_shape_first);
    tcase_add_test(tc, test_schedule_resume_and_determinism);
    tcase_add_test(tc, test_options_validation_and_names);
    suite_add_tcase(s, tc);
    return s;
}
