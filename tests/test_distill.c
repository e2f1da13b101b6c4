/* Distillation step and loop: every branch of the data-source schedule as the
 * step sees it, the loss mask, the whole step's gradient against central
 * finite differences, that every divergence actually distills, byte-identical
 * results across thread counts and across a SIGKILL + resume, non-finite
 * values stopping a run with the last checkpoint intact, and bad input.
 *
 * Models are tiny (1 layer, 8..32 channels) on 1-digit addition; in-process
 * tests run single-threaded, child processes run bin/gkd (GKD_BIN). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/distill/distill_step.h"
#include "gkd/checkpoint.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/eval.h"
#include "gkd/rng.h"
#include "helpers.h"

/* ---- fixtures ---- */

static char tmpdir[256];

static void setup(void) {
    omp_set_num_threads(1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gkd_test_distill_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static const char *path_in(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

static gkd_task *make_task(int train) {
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "arith";
    tc.digits = 1;
    tc.train = train;
    tc.eval = 40;
    gkd_task *t = NULL;
    ck_assert_msg(gkd_task_new(&t, &tc) == 0, "%s", gkd_last_error());
    return t;
}

static gkd_tokenizer *task_tokenizer(const gkd_task *t) {
    gkd_tokenizer *tok = NULL;
    ck_assert_int_eq(gkd_task_tokenizer(t, &tok), 0);
    return tok;
}

/* A random model; jitter > 0 adds N(0, jitter) to every weight so that the
 * next-token distributions are peaked and differ between models. */
static gkd_model *new_model(int V, int L, int C, int NH, uint64_t seed, float jitter) {
    return th_make_model(V, 16, L, C, NH, seed, jitter, 991);
}

static gkd_distill_options small_options(void) {
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    o.batch = 4;
    o.steps = 10;
    o.lr = 3e-3;
    o.eval_n = 8;
    o.eval_samples = 1;
    o.sample.max_new_tokens = 4;
    o.seed = 5;
    return o;
}

/* A teacher trained with cross-entropy (1 layer, 32 channels): good enough
 * that distilling it is a real target. Writes dir/final.ckpt. */
static gkd_model *train_teacher(const gkd_task *task, const gkd_tokenizer *tok, const char *dir) {
    gkd_model *m = new_model(gkd_tokenizer_vocab_size(tok), 1, 32, 2, 7, 0);
    gkd_distill_options o = small_options();
    o.divergence.kind = GKD_DIV_CE;
    o.steps = 300;
    o.batch = 32;
    o.lr = 1e-2;
    o.eval_n = 8;
    mkdir(dir, 0755);
    int rc = gkd_distill_run(m, NULL, tok, task, &o, dir, NULL, NULL);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
    return m;
}

/* ---- CSV reading (no commas inside our fields) ---- */

#define MAXROWS 1024
typedef char cell[96];

/* Values of column `name` of the CSV at path, in row order; returns the count. */
static int read_column(const char *path, const char *name, cell *out, int max) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[4096];
    int col = -1, n = 0;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        int k = 0;
        for (char *tok = strtok(line, ","); tok; tok = strtok(NULL, ","), k++)
            if (!strcmp(tok, name)) col = k;
    }
    ck_assert_msg(col >= 0, "%s has no column %s", path, name);
    while (n < max && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        const char *p = line;
        for (int k = 0; k < col; k++) {
            p = strchr(p, ',');
            ck_assert_ptr_nonnull(p);
            p++;
        }
        size_t len = strcspn(p, ",");
        ck_assert(len < sizeof(cell));
        memcpy(out[n], p, len);
        out[n][len] = 0;
        n++;
    }
    fclose(f);
    return n;
}

static double *column_doubles(const char *path, const char *name, int *n) {
    static cell vals[MAXROWS];
    *n = read_column(path, name, vals, MAXROWS);
    double *d = malloc(sizeof(double) * (*n > 0 ? *n : 1));
    for (int i = 0; i < *n; i++) d[i] = vals[i][0] ? strtod(vals[i], NULL) : NAN;
    return d;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    ck_assert_msg(na > 0, "%s is empty", a);
    free(x);
    free(y);
}

/* ---- child processes running bin/gkd ---- */

/* Run GKD_BIN with args (NULL-terminated) and OMP_NUM_THREADS=threads;
 * stderr goes to err_path (may be NULL). Returns the pid (not waited). */
static pid_t spawn_gkd(const char *const *args, int threads, const char *err_path) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set");
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        setenv("OMP_NUM_THREADS", th, 1);
        /* Oversubscribed shared machines: spinning threads only cost time. */
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        if (err_path) fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        char *argv[64];
        int n = 0;
        argv[n++] = (char *)bin;
        for (; args[n - 1] && n < 63; n++) argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_gkd(const char *const *args, int threads, const char *err_path) {
    return wait_exit(spawn_gkd(args, threads, err_path));
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* ---- schedule branches as seen by the step ---- */

typedef struct {
    gkd_task *task;
    gkd_tokenizer *tok;
    gkd_model *teacher, *student;
    int V;
} world;

static world make_world(int train) {
    world w;
    w.task = make_task(train);
    w.tok = task_tokenizer(w.task);
    w.V = gkd_tokenizer_vocab_size(w.tok);
    w.teacher = new_model(w.V, 1, 16, 2, 3, 0.3f);
    w.student = new_model(w.V, 1, 16, 2, 4, 0.3f);
    return w;
}

static void free_world(world *w) {
    gkd_model_free(w->teacher);
    gkd_model_free(w->student);
    gkd_tokenizer_free(w->tok);
    gkd_task_free(w->task);
}

static void run_in(world *w, const gkd_distill_options *o, const char *dir) {
    mkdir(dir, 0755);
    int rc = gkd_distill_run(w->student, w->teacher, w->tok, w->task, o, dir, NULL, NULL);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
}

START_TEST(test_lambda_zero_and_one) {
    world w = make_world(200);
    char dir[512], csv[600];
    static cell src[MAXROWS];
    gkd_distill_options o = small_options();
    o.steps = 20;
    o.schedule.lambda = 0.0;
    run_in(&w, &o, path_in(dir, sizeof dir, "l0"));
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    int n = read_column(csv, "source", src, MAXROWS);
    ck_assert_int_eq(n, 20);
    for (int i = 0; i < n; i++) ck_assert_str_eq(src[i], "data");
    int m;
    double *rl = column_doubles(csv, "rollout_len", &m);
    for (int i = 0; i < m; i++) ck_assert(rl[i] == 0);
    free(rl);

    o.schedule.lambda = 1.0;
    run_in(&w, &o, path_in(dir, sizeof dir, "l1"));
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    n = read_column(csv, "source", src, MAXROWS);
    ck_assert_int_eq(n, 20);
    for (int i = 0; i < n; i++) ck_assert_str_eq(src[i], "student");
    rl = column_doubles(csv, "rollout_len", &m);
    for (int i = 0; i < m; i++) ck_assert(rl[i] >= 1 && rl[i] <= o.sample.max_new_tokens);
    free(rl);
    free_world(&w);
}
END_TEST

/* The paired design (docs/results.md): cells with the same seed that
 * differ only in the divergence see the same batches; with another lambda
 * they still draw the same training examples at every step (their sources
 * differ). Eval prompts are the eval split's first eval_n examples in
 * order, whatever the cell. */
START_TEST(test_same_seed_same_batches) {
    world w = make_world(200);
    gkd_distill_options a = small_options(), b = small_options(), c = small_options();
    a.divergence.kind = GKD_DIV_FKL;
    b.divergence.kind = GKD_DIV_RKL;
    c.divergence.kind = GKD_DIV_FKL;
    c.schedule.lambda = 1.0;
    gkd_distill_state sa, sb, sc;
    size_t first[64];
    ck_assert_int_eq(gkd_distill_state_init(&sa, w.student, w.teacher, w.tok, w.task, &a), 0);
    ck_assert_int_eq(gkd_distill_state_init(&sb, w.student, w.teacher, w.tok, w.task, &b), 0);
    ck_assert_int_eq(gkd_distill_state_init(&sc, w.student, w.teacher, w.tok, w.task, &c), 0);
    for (long step = 1; step <= 3; step++) {
        gkd_step_stats st;
        ck_assert_int_eq(gkd_distill_prepare(&sa, step, &st), 0);
        ck_assert_int_eq(gkd_distill_prepare(&sb, step, &st), 0);
        ck_assert_int_eq(gkd_distill_prepare(&sc, step, &st), 0);
        if (step == 1) memcpy(first, sa.examples, (size_t)a.batch * sizeof *first);
        ck_assert_int_eq(memcmp(sa.examples, sb.examples, (size_t)a.batch * sizeof *sa.examples), 0);
        ck_assert_int_eq(memcmp(sa.examples, sc.examples, (size_t)a.batch * sizeof *sa.examples), 0);
        ck_assert_int_eq(memcmp(sa.batch.tokens, sb.batch.tokens, (size_t)a.batch * sa.batch.cap * sizeof(int)), 0);
        for (int r = 0; r < a.batch; r++) {
            ck_assert_int_eq(sa.choices[r].source, GKD_SRC_DATA);
            ck_assert_int_eq(sc.choices[r].source, GKD_SRC_STUDENT);
        }
    }
    /* Another seed draws other examples. */
    gkd_distill_options d = small_options();
    d.seed = a.seed + 1;
    gkd_distill_state sd;
    ck_assert_int_eq(gkd_distill_state_init(&sd, w.student, w.teacher, w.tok, w.task, &d), 0);
    gkd_step_stats st;
    ck_assert_int_eq(gkd_distill_prepare(&sd, 1, &st), 0);
    ck_assert(memcmp(first, sd.examples, (size_t)a.batch * sizeof *first) != 0);
    gkd_distill_state_free(&sa);
    gkd_distill_state_free(&sb);
    gkd_distill_state_free(&sc);
    gkd_distill_state_free(&sd);
    free_world(&w);
}
END_TEST

/* Counts of student batches for lambda = 0.5 stay within 4.5 binomial
 * standard deviations; student rows are rollouts (generated tokens after
 * the prompt), data rows are the references. */
START_TEST(test_lambda_half_binomial) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 2;
    o.steps = 400;
    o.schedule.lambda = 0.5;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    int student = 0;
    for (long step = 1; step <= o.steps; step++) {
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_prepare(&s, step, &st) == 0, "%s", gkd_last_error());
        ck_assert(st.source_count[GKD_SRC_STUDENT] == 0 || st.source_count[GKD_SRC_STUDENT] == o.batch);
        student += st.source_count[GKD_SRC_STUDENT] > 0;
        for (int b = 0; b < o.batch; b++) {
            int ids[16], plen, len;
            gkd_source src = s.choices[b].source;
            ck_assert(src == GKD_SRC_STUDENT || src == GKD_SRC_DATA);
            ck_assert_int_eq(gkd_task_encode_example(w.task, w.tok, GKD_SPLIT_TRAIN, s.examples[b], ids, 16,
                                                     &plen, &len), 0);
            const int *row = s.batch.tokens + (size_t)b * s.batch.cap;
            ck_assert_int_eq(s.batch.prompt_len[b], plen);
            ck_assert(memcmp(row, ids, sizeof(int) * plen) == 0);
            if (src == GKD_SRC_DATA) {
                ck_assert_int_eq(s.batch.len[b], len);
                ck_assert(memcmp(row, ids, sizeof(int) * len) == 0);
            } else {
                ck_assert(s.batch.len[b] > plen && s.batch.len[b] <= plen + o.sample.max_new_tokens);
            }
        }
    }
    double sd = sqrt(o.steps * 0.25);
    ck_assert_msg(fabs(student - 0.5 * o.steps) <= 4.5 * sd, "%d student batches of %ld", student, o.steps);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* SeqKD batches are the teacher's rollouts: with greedy sampling every
 * generated token is the argmax of the teacher's logits at the previous
 * position (and not all are the student's). */
START_TEST(test_seqkd_rows_are_teacher_rollouts) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 8;
    o.schedule.lambda = 0.0;
    o.schedule.seqkd = 1.0;
    o.sample.temperature = 0.0f;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    int student_disagrees = 0;
    for (long step = 1; step <= 3; step++) {
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_prepare(&s, step, &st) == 0, "%s", gkd_last_error());
        ck_assert_int_eq(st.source_count[GKD_SRC_TEACHER], o.batch);
        const int T = s.layout.T, V = w.V;
        ck_assert_int_eq(gkd_model_forward(w.teacher, s.layout.tokens, o.batch, T), 0);
        ck_assert_int_eq(gkd_model_forward(w.student, s.layout.tokens, o.batch, T), 0);
        for (int b = 0; b < o.batch; b++) {
            ck_assert(s.batch.len[b] > s.batch.prompt_len[b]);
            for (int t = s.batch.prompt_len[b] - 1; t < s.batch.len[b] - 1; t++) {
                const float *zt = w.teacher->logits + ((size_t)b * T + t) * V;
                const float *zs = w.student->logits + ((size_t)b * T + t) * V;
                int at = 0, as = 0;
                for (int v = 1; v < V; v++) {
                    if (zt[v] > zt[at]) at = v;
                    if (zs[v] > zs[as]) as = v;
                }
                ck_assert_int_eq(s.layout.tokens[(size_t)b * T + t + 1], at);
                student_disagrees += as != at;
            }
        }
    }
    ck_assert(student_disagrees > 0);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* Tokens of every row, by training example, seen over a few steps; returns
 * how many times an example came back with a different completion, and
 * counts repeats. */
static int seqkd_repeat_changes(world *w, int cache, int *repeats) {
    gkd_distill_options o = small_options();
    o.batch = 8;
    o.schedule.lambda = 0.0;
    o.schedule.seqkd = 1.0;
    o.seqkd_cache = cache;
    o.sample.temperature = 1.0f;
    size_t n = gkd_task_size(w->task, GKD_SPLIT_TRAIN);
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w->student, w->teacher, w->tok, w->task, &o), 0);
    int *seen = calloc(n * 17, sizeof(int)); /* {seen, tokens[16]} per example */
    int changes = 0;
    *repeats = 0;
    for (long step = 1; step <= 6; step++) {
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_prepare(&s, step, &st) == 0, "%s", gkd_last_error());
        for (int b = 0; b < o.batch; b++) {
            int *rec = seen + s.examples[b] * 17;
            const int *row = s.batch.tokens + (size_t)b * s.batch.cap;
            if (rec[0]) {
                (*repeats)++;
                changes += memcmp(rec + 1, row, sizeof(int) * 16) != 0;
            } else {
                rec[0] = 1;
                memcpy(rec + 1, row, sizeof(int) * 16);
            }
        }
    }
    free(seen);
    gkd_distill_state_free(&s);
    return changes;
}

START_TEST(test_seqkd_cache_reuses_teacher_output) {
    world w = make_world(6);
    int repeats;
    ck_assert_int_eq(seqkd_repeat_changes(&w, 1, &repeats), 0);
    ck_assert(repeats > 10);
    /* Without the cache the sampled teacher outputs of a prompt vary. */
    ck_assert(seqkd_repeat_changes(&w, 0, &repeats) > 0);
    free_world(&w);
}
END_TEST

/* The SeqKD cache costs no work before step 1: it is empty after init and
 * filled by the step that first draws a prompt, inside the part of the
 * step timed as sample_s, so timings.csv (and gkd table --at time) count
 * the teacher's generation. */
START_TEST(test_seqkd_cache_fills_inside_steps) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 8;
    o.schedule.lambda = 0.0;
    o.schedule.seqkd = 1.0;
    o.seqkd_cache = 1;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    ck_assert_uint_eq(s.seqkd_cache_n, gkd_task_size(w.task, GKD_SPLIT_TRAIN));
    for (size_t i = 0; i < s.seqkd_cache_n; i++) ck_assert_ptr_null(s.seqkd_cache[i]);
    gkd_step_stats st;
    ck_assert_msg(gkd_distill_prepare(&s, 1, &st) == 0, "%s", gkd_last_error());
    /* Exactly the step's prompts are cached (a prompt drawn twice once). */
    size_t filled = 0, distinct = 0;
    for (size_t i = 0; i < s.seqkd_cache_n; i++) filled += s.seqkd_cache[i] != NULL;
    for (int b = 0; b < o.batch; b++) {
        ck_assert_ptr_nonnull(s.seqkd_cache[s.examples[b]]);
        int first = 1;
        for (int c = 0; c < b; c++) first &= s.examples[c] != s.examples[b];
        distinct += first;
    }
    ck_assert_uint_eq(filled, distinct);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

START_TEST(test_teacher_mix_batches_are_mixed) {
    world w = make_world(200);
    char dir[512], csv[600];
    static cell src[MAXROWS];
    gkd_distill_options o = small_options();
    o.steps = 8;
    o.schedule.lambda = 1.0;
    o.schedule.teacher_mix = 0.5;
    run_in(&w, &o, path_in(dir, sizeof dir, "mix"));
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    int n = read_column(csv, "source", src, MAXROWS);
    ck_assert_int_eq(n, 8);
    for (int i = 0; i < n; i++) ck_assert_str_eq(src[i], "mixed");
    free_world(&w);
}
END_TEST

/* Fixed replay: replayed rows are exactly earlier student rollouts. */
START_TEST(test_replay_fixed_replays_earlier_rollouts) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 2;
    o.steps = 60;
    o.schedule.lambda = 1.0;
    o.schedule.replay = GKD_REPLAY_FIXED;
    o.schedule.p_replay = 0.5;
    o.schedule.capacity = 1000;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    const int cap = s.batch.cap;
    int *history = malloc(sizeof(int) * cap * o.batch * o.steps), nhist = 0;
    int replayed = 0, fresh = 0;
    for (long step = 1; step <= o.steps; step++) {
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_step(&s, step, &st) == 0, "%s", gkd_last_error());
        for (int b = 0; b < o.batch; b++) {
            const int *row = s.batch.tokens + (size_t)b * cap;
            if (s.choices[b].source == GKD_SRC_REPLAY) {
                int found = 0;
                for (int h = 0; h < nhist && !found; h++) found = !memcmp(history + (size_t)h * cap, row, sizeof(int) * cap);
                ck_assert_msg(found, "step %ld row %d is not an earlier rollout", step, b);
                replayed++;
            } else {
                ck_assert_int_eq(s.choices[b].source, GKD_SRC_STUDENT);
                fresh++;
            }
        }
        for (int b = 0; b < o.batch; b++)
            if (s.choices[b].source == GKD_SRC_STUDENT) memcpy(history + (size_t)nhist++ * cap, s.batch.tokens + (size_t)b * cap, sizeof(int) * cap);
        ck_assert_int_eq(gkd_replay_count(gkd_schedule_buffer(s.schedule)), nhist);
    }
    ck_assert(replayed > 10 && fresh > 10);
    free(history);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* Adaptive replay: a student that starts as a copy of the teacher has
 * val_loss 0, so any update raises the validation loss; the threshold column
 * must follow the DistiLLM rule over the eval.csv validation losses. */
START_TEST(test_replay_adaptive_threshold_rises) {
    world w = make_world(200);
    gkd_model_free(w.student);
    w.student = new_model(w.V, 1, 16, 2, 3, 0.3f); /* = teacher */
    char dir[512], csv[600];
    gkd_distill_options o = small_options();
    o.steps = 30;
    o.eval_every = 5;
    o.lr = 3e-2;
    o.schedule.replay = GKD_REPLAY_ADAPTIVE;
    o.schedule.init_threshold = 0.2;
    o.schedule.threshold_step = 0.1;
    o.schedule.loss_eps = 0.0;
    o.schedule.capacity = 32;
    run_in(&w, &o, path_in(dir, sizeof dir, "adaptive"));
    int ne, nm, ns;
    snprintf(csv, sizeof csv, "%s/eval.csv", dir);
    double *val = column_doubles(csv, "val_loss", &ne);
    double *estep = column_doubles(csv, "step", &ne);
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    double *th = column_doubles(csv, "threshold", &nm);
    double *mstep = column_doubles(csv, "step", &ns);
    ck_assert_int_eq(ne, 7);
    ck_assert_int_eq(nm, 30);
    ck_assert(val[0] < 1e-6);
    double expect = o.schedule.init_threshold, ref = val[0];
    int e = 1, rises = 0;
    for (int i = 0; i < nm; i++) {
        ck_assert_msg(fabs(th[i] - expect) < 1e-12, "step %g: threshold %g, expected %g", mstep[i], th[i], expect);
        /* Evaluations at this step happen after its row. */
        while (e < ne && estep[e] <= mstep[i]) {
            if (val[e] >= ref + o.schedule.loss_eps) {
                expect = fmin(1.0, expect + o.schedule.threshold_step);
                ref = val[e];
                rises++;
            }
            e++;
        }
    }
    ck_assert(rises >= 1);
    ck_assert(th[nm - 1] > o.schedule.init_threshold);
    free(val);
    free(estep);
    free(th);
    free(mstep);
    free_world(&w);
}
END_TEST

/* Per-example mixing: rows choose independently; labels list the counts. */
START_TEST(test_per_example_mixing) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 16;
    o.steps = 20;
    o.schedule.lambda = 0.5;
    o.schedule.per_example = 1;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    int student = 0, mixed_steps = 0;
    for (long step = 1; step <= o.steps; step++) {
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_prepare(&s, step, &st) == 0, "%s", gkd_last_error());
        ck_assert_int_eq(st.source_count[GKD_SRC_STUDENT] + st.source_count[GKD_SRC_DATA], o.batch);
        student += st.source_count[GKD_SRC_STUDENT];
        mixed_steps += st.source_count[GKD_SRC_STUDENT] > 0 && st.source_count[GKD_SRC_DATA] > 0;
        for (int b = 0; b < o.batch; b++) {
            int gen = s.batch.len[b] - s.batch.prompt_len[b];
            if (s.choices[b].source == GKD_SRC_STUDENT) ck_assert(gen >= 1 && gen <= 4);
        }
    }
    double n = (double)o.batch * o.steps, sd = sqrt(n * 0.25);
    ck_assert_msg(fabs(student - 0.5 * n) <= 4.5 * sd, "%d student rows of %g", student, n);
    ck_assert(mixed_steps >= o.steps / 2);
    gkd_distill_state_free(&s);

    char dir[512], csv[600];
    static cell src[MAXROWS];
    o.steps = 3;
    run_in(&w, &o, path_in(dir, sizeof dir, "per_example"));
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    int rows = read_column(csv, "source", src, MAXROWS);
    ck_assert_int_eq(rows, 3);
    for (int i = 0; i < rows; i++) {
        int d = 0, st = 0;
        ck_assert_msg(sscanf(src[i], "data:%d|student:%d", &d, &st) == 2, "label %s", src[i]);
        ck_assert_int_eq(d + st, o.batch);
    }
    free_world(&w);
}
END_TEST

/* ---- the loss mask ---- */

static void set_row(gkd_seqbatch *b, int r, const int *tok, int n, int plen, int eos) {
    for (int t = 0; t < b->cap; t++) b->tokens[(size_t)r * b->cap + t] = t < n ? tok[t] : GKD_TOK_PAD;
    b->prompt_len[r] = plen;
    b->len[r] = n;
    b->eos[r] = (unsigned char)eos;
}

START_TEST(test_loss_mask_hand_made_batch) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 2;
    for (int per_sequence = 0; per_sequence <= 1; per_sequence++) {
        o.per_sequence = per_sequence;
        gkd_distill_state s;
        ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
        /* BOS 5 6 SEP 7 8 EOS | BOS 5 SEP 9 10 (cut off, no EOS) */
        const int r0[] = {GKD_TOK_BOS, 5, 6, GKD_TOK_SEP, 7, 8, GKD_TOK_EOS};
        const int r1[] = {GKD_TOK_BOS, 5, GKD_TOK_SEP, 9, 10};
        set_row(&s.batch, 0, r0, 7, 4, 1);
        set_row(&s.batch, 1, r1, 5, 3, 0);
        gkd_step_stats st = {0};
        gkd_distill_layout(&s, &st);
        ck_assert_int_eq(s.layout.T, 7);
        ck_assert_int_eq(st.tokens, 5);
        const int T = 7;
        const int tgt0[] = {5, 6, GKD_TOK_SEP, 7, 8, GKD_TOK_EOS, GKD_TOK_PAD};
        const float m0[] = {0, 0, 0, 1, 1, 1, 0};
        const int tgt1[] = {5, GKD_TOK_SEP, 9, 10, GKD_TOK_PAD, GKD_TOK_PAD, GKD_TOK_PAD};
        const float m1[] = {0, 0, 1, 1, 0, 0, 0};
        for (int t = 0; t < T; t++) {
            ck_assert_int_eq(s.layout.tokens[t], t < 7 ? r0[t] : GKD_TOK_PAD);
            ck_assert_int_eq(s.layout.tokens[T + t], t < 5 ? r1[t] : GKD_TOK_PAD);
            ck_assert_int_eq(s.layout.targets[t], tgt0[t]);
            ck_assert_int_eq(s.layout.targets[T + t], tgt1[t]);
            ck_assert(s.layout.mask[t] == m0[t] && s.layout.mask[T + t] == m1[t]);
            float w0 = per_sequence ? 1.0f / 6 : 1.0f / 5, w1 = per_sequence ? 1.0f / 4 : 1.0f / 5;
            ck_assert_float_eq_tol(s.layout.weight[t], m0[t] * w0, 1e-7);
            ck_assert_float_eq_tol(s.layout.weight[T + t], m1[t] * w1, 1e-7);
        }
        /* No gradient flows from masked positions. */
        ck_assert_msg(gkd_distill_loss_grad(&s, 1, &st) == 0, "%s", gkd_last_error());
        for (int r = 0; r < 2; r++)
            for (int t = 0; t < T; t++) {
                const float *dz = s.dlogits + ((size_t)r * T + t) * w.V;
                double sum = 0;
                for (int v = 0; v < w.V; v++) sum += fabs(dz[v]);
                ck_assert_msg((sum == 0) == ((r ? m1 : m0)[t] == 0), "row %d t %d |dz| %g", r, t, sum);
            }
        gkd_distill_state_free(&s);
    }
    free_world(&w);
}
END_TEST

/* Teacher-mixed tokens weigh min(p_S / p_mix, 1) with mix_importance, and
 * the hybrid CE term lays out its ground truth on its own: the step's batch,
 * layout and options are the same after the loss as before it. */
START_TEST(test_layout_importance_and_hybrid_untouched) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 2;
    o.ce_weight = 0.5f;
    o.mix_importance = 1;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    const int r0[] = {GKD_TOK_BOS, 5, 6, GKD_TOK_SEP, 7, 8, GKD_TOK_EOS};
    const int r1[] = {GKD_TOK_BOS, 5, GKD_TOK_SEP, 9, 10};
    set_row(&s.batch, 0, r0, 7, 4, 1);
    set_row(&s.batch, 1, r1, 5, 3, 0);
    const int cap = s.batch.cap;
    for (int i = 0; i < 2 * cap; i++) s.iw[i] = 1.0f;
    s.iw[5] = 0.25f;      /* row 0, token 8: weight of position 4 */
    s.iw[6] = 3.0f;       /* row 0, EOS: clipped to 1 */
    s.iw[cap + 3] = 0.5f; /* row 1, token 9: weight of position 2 */
    gkd_step_stats st = {0};
    gkd_distill_layout(&s, &st);
    const int T = s.layout.T;
    ck_assert_int_eq(T, 7);
    const float want0[] = {0, 0, 0, 0.2f, 0.05f, 0.2f, 0}, want1[] = {0, 0, 0.1f, 0.2f, 0, 0, 0};
    for (int t = 0; t < T; t++) {
        ck_assert_float_eq_tol(s.layout.weight[t], want0[t], 1e-7);
        ck_assert_float_eq_tol(s.layout.weight[T + t], want1[t], 1e-7);
    }
    const size_t BT = (size_t)2 * T;
    int tokens[14], targets[14];
    float mask[14], weight[14];
    memcpy(tokens, s.layout.tokens, sizeof(int) * BT);
    memcpy(targets, s.layout.targets, sizeof(int) * BT);
    memcpy(mask, s.layout.mask, sizeof(float) * BT);
    memcpy(weight, s.layout.weight, sizeof(float) * BT);
    int *batch = malloc(sizeof(int) * 2 * cap);
    memcpy(batch, s.batch.tokens, sizeof(int) * 2 * cap);
    ck_assert_msg(gkd_distill_loss_grad(&s, 1, &st) == 0, "%s", gkd_last_error());
    ck_assert(isfinite(st.ce) && st.ce > 0);
    ck_assert_int_eq(s.layout.T, T);
    ck_assert_int_eq(s.batch.B, 2);
    ck_assert_int_eq(s.o.mix_importance, 1);
    ck_assert_int_eq(memcmp(tokens, s.layout.tokens, sizeof(int) * BT), 0);
    ck_assert_int_eq(memcmp(targets, s.layout.targets, sizeof(int) * BT), 0);
    ck_assert_int_eq(memcmp(mask, s.layout.mask, sizeof(float) * BT), 0);
    ck_assert_int_eq(memcmp(weight, s.layout.weight, sizeof(float) * BT), 0);
    ck_assert_int_eq(memcmp(batch, s.batch.tokens, sizeof(int) * 2 * cap), 0);
    free(batch);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* On real rollouts: per row, the loss covers exactly the generated tokens
 * (EOS included) and never a prompt or padding position. */
START_TEST(test_loss_mask_on_rollouts) {
    world w = make_world(200);
    gkd_distill_options o = small_options();
    o.batch = 8;
    o.schedule.lambda = 1.0;
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    int eos_rows = 0;
    for (long step = 1; step <= 5; step++) {
        gkd_step_stats st;
        ck_assert_int_eq(gkd_distill_prepare(&s, step, &st), 0);
        long total = 0;
        for (int b = 0; b < o.batch; b++) {
            int n = 0;
            for (int t = 0; t < s.layout.T; t++) {
                float m = s.layout.mask[(size_t)b * s.layout.T + t];
                int in = t + 1 >= s.batch.prompt_len[b] && t + 1 < s.batch.len[b];
                ck_assert(m == (float)in);
                if (in) ck_assert_int_ne(s.layout.targets[(size_t)b * s.layout.T + t], GKD_TOK_PAD);
                n += in;
            }
            ck_assert_int_eq(n, s.batch.len[b] - s.batch.prompt_len[b]);
            if (s.batch.eos[b]) {
                ck_assert_int_eq(s.layout.targets[(size_t)b * s.layout.T + s.batch.len[b] - 2], GKD_TOK_EOS);
                eos_rows++;
            }
            total += n;
        }
        ck_assert_int_eq(st.tokens, total);
    }
    ck_assert(eos_rows > 0);
    gkd_distill_state_free(&s);
    free_world(&w);
}
END_TEST

/* ---- gradient of the whole step vs central finite differences ---- */

static double step_loss(gkd_distill_state *s) {
    gkd_step_stats st = {0};
    int rc = gkd_distill_loss_grad(s, 1, &st);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
    return st.loss;
}

static void check_step_gradient(const char *div, float ce_weight) {
    world w = make_world(200);
    gkd_model_free(w.student);
    w.student = new_model(w.V, 1, 8, 2, 11, 0.2f);
    gkd_distill_options o = small_options();
    o.batch = 4;
    o.schedule.lambda = 0.0;
    o.ce_weight = ce_weight;
    ck_assert_int_eq(gkd_divergence_parse(&o.divergence, div), 0);
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
    gkd_step_stats st;
    ck_assert_int_eq(gkd_distill_prepare(&s, 1, &st), 0);
    step_loss(&s);
    gkd_model *m = w.student;
    float *g = malloc(sizeof(float) * m->num_params);
    memcpy(g, m->grads_memory, sizeof(float) * m->num_params);
    /* In each tensor, the two entries with the largest gradients. */
    int checked = 0, skipped = 0;
    size_t off = 0;
    for (int k = 0; k < m->num_tensors; k++) {
        size_t n = m->param_sizes[k];
        size_t best[2] = {off, off};
        for (size_t i = off; i < off + n; i++) {
            if (fabsf(g[i]) > fabsf(g[best[0]])) { best[1] = best[0]; best[0] = i; }
            else if (i != best[0] && fabsf(g[i]) > fabsf(g[best[1]])) best[1] = i;
        }
        for (int j = 0; j < 2; j++) {
            size_t i = best[j];
            if (fabsf(g[i]) < 1e-3f) continue;
            float p0 = m->params_memory[i];
            double fd[2];
            for (int hh = 0; hh < 2; hh++) {
                float h = hh ? 2e-3f : 4e-3f;
                m->params_memory[i] = p0 + h;
                double lp = step_loss(&s);
                m->params_memory[i] = p0 - h;
                double lm = step_loss(&s);
                m->params_memory[i] = p0;
                fd[hh] = (lp - lm) / (double)(2 * h);
            }
            double tol = 2e-2 * fabs(fd[1]) + 2e-4;
            /* A kink of a non-smooth divergence inside [-h, h] shows as two
             * step sizes disagreeing; such a point says nothing. */
            if (fabs(fd[0] - fd[1]) > tol) { skipped++; continue; }
            ck_assert_msg(fabs(g[i] - fd[1]) <= tol, "%s ce_weight %g: %s[%zu] grad %g, finite diff %g", div,
                          ce_weight, gkd_model_tensor_name(m, k), i - off, g[i], fd[1]);
            checked++;
        }
        off += n;
    }
    ck_assert_msg(checked >= 12, "%s: only %d parameters checked (%d skipped)", div, checked, skipped);
    free(g);
    gkd_distill_state_free(&s);
    free_world(&w);
}

START_TEST(test_gradient_fkl) { check_step_gradient("fkl", 0); }
END_TEST
START_TEST(test_gradient_jsd) { check_step_gradient("jsd(0.5)", 0); }
END_TEST
START_TEST(test_gradient_tvd) { check_step_gradient("tvd", 0); }
END_TEST
START_TEST(test_gradient_hybrid_ce) { check_step_gradient("jsd(0.5)", 0.7f); }
END_TEST

/* ---- the teacher scored by chunks of rows ---- */

/* One loss_grad with the teacher's head run by chunks of rows (dense, or
 * top-k in both tail modes) against the computation on the teacher's
 * whole logits that the step did before it ran by chunks: the same
 * divergence and student gradient, bit for bit, with 1 and 2 threads. 40
 * rows of up to 16 positions are more than one chunk (GKD_TEACHER_CHUNK)
 * and never a multiple of it; lambda 0.5 mixes rollouts and data, so some
 * rows are padding with weight 0. The teacher never holds its logits. */
START_TEST(test_teacher_by_chunks_is_the_whole_teacher) {
    static const struct {
        const char *div;
        int k, tail;
    } cases[] = {{"fkl", 0, 0}, {"jsd(0.5)", 0, 0}, {"tvd", 0, 0}, {"srkl(0.1)", 0, 0},
                 {"rkl", 5, GKD_SPARSE_RENORM}, {"jsd(0.9)", 7, GKD_SPARSE_TAIL}, {"fkl", -1, GKD_SPARSE_TAIL}};
    const int saved = omp_get_max_threads();
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++)
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            world w = make_world(200);
            gkd_distill_options o = small_options();
            o.batch = 40;
            o.schedule.lambda = 0.5;
            o.sample.max_new_tokens = 8;
            ck_assert_int_eq(gkd_divergence_parse(&o.divergence, cases[c].div), 0);
            o.teacher_topk = cases[c].k < 0 ? w.V : cases[c].k;
            o.topk_tail = cases[c].tail;
            gkd_distill_state s;
            ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
            /* This vocabulary fits the whole batch in one chunk; fewer rows
             * (the buffer holds more) make several, the last one short. */
            ck_assert_int_ge(s.teacher_chunk_rows, GKD_TEACHER_CHUNK);
            s.teacher_chunk_rows = GKD_TEACHER_CHUNK;
            gkd_step_stats st;
            ck_assert_int_eq(gkd_distill_prepare(&s, 1, &st), 0);
            ck_assert_msg(gkd_distill_loss_grad(&s, 1, &st) == 0, "%s", gkd_last_error());
            ck_assert_ptr_null(w.teacher->logits);
            const int B = o.batch, T = s.layout.T, N = B * T, V = w.V;
            ck_assert_msg(N > GKD_TEACHER_CHUNK && N % GKD_TEACHER_CHUNK != 0, "N = %d", N);
            const size_t P = w.student->num_params;
            float *grads = malloc(sizeof(float) * P), *dl = calloc((size_t)N * V, sizeof(float));
            memcpy(grads, w.student->grads_memory, sizeof(float) * P);

            /* The whole logits, then the loss as the step computed it on them. */
            const gkd_batch_layout *l = &s.layout;
            ck_assert_int_eq(gkd_model_forward(w.teacher, l->tokens, B, T), 0);
            ck_assert_int_eq(gkd_model_forward(w.student, l->tokens, B, T), 0);
            double want;
            if (o.teacher_topk) {
                gkd_sparse_rows rows;
                ck_assert_int_eq(gkd_sparse_rows_alloc(&rows, N, V, o.teacher_topk, o.loss_temperature), 0);
                ck_assert_int_eq(gkd_sparse_rows_from_logits(&rows, w.teacher->logits), 0);
                ck_assert(!memcmp(rows.ids, s.topk.ids, sizeof(int32_t) * (size_t)N * rows.k));
                ck_assert(!memcmp(rows.logp, s.topk.logp, sizeof(float) * (size_t)N * rows.k));
                want = gkd_sparse_divergence_eval(&o.divergence, (gkd_sparse_mode)o.topk_tail, w.student->logits,
                                                  &rows, l->weight, 1.0f, NULL, dl);
                gkd_sparse_rows_free(&rows);
            } else {
                want = gkd_divergence_eval(&o.divergence, w.student->logits, w.teacher->logits, l->weight, N, V,
                                           o.loss_temperature, 1.0f, NULL, dl);
            }
            gkd_model_zero_grad(w.student);
            ck_assert_int_eq(gkd_model_backward(w.student, dl), 0);
            ck_assert_msg(want > 0 && memcmp(&want, &st.divergence, sizeof want) == 0,
                          "%s k %d, %d threads: divergence %.17g, on the whole logits %.17g", cases[c].div,
                          o.teacher_topk, threads, st.divergence, want);
            ck_assert_msg(!memcmp(grads, w.student->grads_memory, sizeof(float) * P),
                          "%s k %d, %d threads: the student's gradients differ", cases[c].div, o.teacher_topk,
                          threads);
            free(grads), free(dl);
            gkd_distill_state_free(&s);
            free_world(&w);
        }
    omp_set_num_threads(saved);
}
END_TEST

/* Teacher logits that overflow from finite weights are named as such
 * when the head runs by chunks, dense and top-k. */
START_TEST(test_teacher_by_chunks_names_nonfinite_logits) {
    for (int k = 0; k <= 4; k += 4) {
        world w = make_world(200);
        /* the final norm's bias times a head entry overflows one logit */
        w.teacher->params[GKD_GPT2_LNFB][0] = 3e38f;
        w.teacher->params[GKD_GPT2_WTE][(size_t)7 * 16] = 10.0f;
        gkd_distill_options o = small_options();
        o.teacher_topk = k;
        o.schedule.lambda = 0.0; /* data rows: no rollouts */
        gkd_distill_state s;
        ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), 0);
        gkd_step_stats st;
        ck_assert_msg(gkd_distill_prepare(&s, 1, &st) == 0, "%s", gkd_last_error());
        ck_assert_int_eq(gkd_distill_loss_grad(&s, 1, &st), GKD_ENAN);
        ck_assert_msg(strstr(gkd_last_error(), "step 1: the loss is not finite (nan): tensor 'teacher logits' holds NaN or Inf"),
                      "k %d: %s", k, gkd_last_error());
        gkd_distill_state_free(&s);
        free_world(&w);
    }
}
END_TEST

/* ---- distillation works ---- */

START_TEST(test_every_divergence_distills) {
    char dir[512], csv[600];
    gkd_task *task = make_task(2000);
    gkd_tokenizer *tok = task_tokenizer(task);
    int V = gkd_tokenizer_vocab_size(tok);
    gkd_model *teacher = train_teacher(task, tok, path_in(dir, sizeof dir, "teacher"));
    const char *divs[] = {"fkl", "rkl", "jsd(0.1)", "jsd(0.5)", "jsd(0.9)", "skl(0.1)", "srkl(0.1)", "tvd",
                          "pg_rkl", "fkl"};
    const double lambdas[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    char report[2048] = "";
    int failed = 0;
    for (int d = 0; d < 10; d++) {
        gkd_model *student = new_model(V, 1, 16, 2, 21, 0);
        gkd_distill_options o = small_options();
        ck_assert_int_eq(gkd_divergence_parse(&o.divergence, divs[d]), 0);
        o.schedule.lambda = lambdas[d];
        o.steps = 150;
        o.batch = 16;
        o.lr = 1e-2;
        o.eval_n = 40;
        o.eval_samples = 2;
        snprintf(dir, sizeof dir, "%s/distill_%d", tmpdir, d);
        mkdir(dir, 0755);
        int rc = gkd_distill_run(student, teacher, tok, task, &o, dir, NULL, NULL);
        ck_assert_msg(rc == 0, "%s: %s", divs[d], gkd_last_error());
        snprintf(csv, sizeof csv, "%s/eval.csv", dir);
        int n;
        double *val = column_doubles(csv, "val_loss", &n);
        double *fkl = column_doubles(csv, "fkl_ref", &n);
        double *tnll = column_doubles(csv, "teacher_nll", &n);
        ck_assert_int_eq(n, 2);
        size_t len = strlen(report);
        snprintf(report + len, sizeof report - len, " %s(lambda %g): val_loss %.4f->%.4f fkl_ref %.4f->%.4f "
                 "teacher_nll %.4f->%.4f;", divs[d], lambdas[d], val[0], val[1], fkl[0], fkl[1], tnll[0], tnll[1]);
        /* Each divergence closes itself; mode-seeking ones (tvd, jsd(0.9))
         * need not close the forward KL, so fkl_ref is asserted for fkl. */
        failed += !(val[1] < 0.7 * val[0]);
        if (o.divergence.kind == GKD_DIV_FKL) failed += !(fkl[1] < 0.7 * fkl[0]);
        /* On-policy: the student's own samples become likelier under the teacher. */
        if (lambdas[d] == 1) failed += !(tnll[1] < 0.7 * tnll[0]);
        free(val);
        free(fkl);
        free(tnll);
        gkd_model_free(student);
    }
    ck_assert_msg(failed == 0, "%s", report);
    gkd_model_free(teacher);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
}
END_TEST

/* ---- reproducibility across thread counts, resume after SIGKILL ---- */

static const char *teacher_ckpt(char *buf, size_t cap) {
    gkd_task *task = make_task(500);
    gkd_tokenizer *tok = task_tokenizer(task);
    char dir[512];
    gkd_model *t = train_teacher(task, tok, path_in(dir, sizeof dir, "teacher"));
    gkd_model_free(t);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
    snprintf(buf, cap, "%s/final.ckpt", dir);
    return buf;
}

#define DISTILL_ARGS(teacher, out)                                                                   \
    "distill", "--teacher", teacher, "--task", "arith", "--digits", "1", "--train", "500", "--eval", "40", \
        "--layers", "1", "--d-model", "16", "--heads", "2", "--batch", "8", "--lr", "1e-2",              \
        "--max-new-tokens", "4", "--eval-n", "20", "--eval-every", "10", "--out", out

static void same_bytes_1_and_2_threads(const char *name, const char *const *extra) {
    char teacher[600], d1[512], d2[512], a[600], b[600], n1[64], n2[64];
    teacher_ckpt(teacher, sizeof teacher);
    snprintf(n1, sizeof n1, "%s_1", name);
    snprintf(n2, sizeof n2, "%s_2", name);
    path_in(d1, sizeof d1, n1);
    path_in(d2, sizeof d2, n2);
    const char *args1[64] = {DISTILL_ARGS(teacher, d1), "--steps", "30"};
    const char *args2[64] = {DISTILL_ARGS(teacher, d2), "--steps", "30"};
    int n = 0;
    while (args1[n]) n++;
    for (int i = 0; extra[i]; i++) args1[n + i] = args2[n + i] = extra[i];
    ck_assert_int_eq(run_gkd(args1, 1, NULL), 0);
    ck_assert_int_eq(run_gkd(args2, 2, NULL), 0);
    snprintf(a, sizeof a, "%s/metrics.csv", d1);
    snprintf(b, sizeof b, "%s/metrics.csv", d2);
    ck_assert_int_eq(count_lines(a), 31);
    assert_same_file(a, b);
    snprintf(a, sizeof a, "%s/eval.csv", d1);
    snprintf(b, sizeof b, "%s/eval.csv", d2);
    assert_same_file(a, b);
}

START_TEST(test_same_bytes_with_one_and_two_threads) {
    const char *const seqkd[] = {"--divergence", "jsd(0.5)", "--lambda", "0.5", "--seqkd", "0.5", NULL};
    same_bytes_1_and_2_threads("seqkd", seqkd);
    /* Teacher-mixed rollouts with importance weights, fixed replay of them,
     * and the hybrid CE term. */
    const char *const mixed[] = {"--divergence", "srkl(0.1)", "--lambda", "0.7", "--teacher-mix", "0.3",
                                 "--mix-importance", "--replay", "fixed", "--replay-prob", "0.3",
                                 "--ce-weight", "0.2", "--reduction", "sequence", NULL};
    same_bytes_1_and_2_threads("mixed", mixed);
}
END_TEST

static long checkpoint_step(const char *path) {
    gkd_checkpoint_data d;
    int rc = gkd_checkpoint_load(&d, path, NULL);
    ck_assert_msg(rc == 0, "%s", gkd_last_error());
    long step = (long)d.step;
    for (size_t i = 0; i < d.model->num_params; i++) ck_assert(isfinite(d.model->params_memory[i]));
    gkd_checkpoint_data_free(&d);
    return step;
}

/* A run killed at a random step and resumed ends byte-identical to an
 * uninterrupted one, with adaptive replay (buffer and threshold in the
 * checkpoint) and cached SeqKD in the mix. */
START_TEST(test_resume_after_sigkill) {
    char teacher[600], full[512], killed[512], a[600], b[600];
    teacher_ckpt(teacher, sizeof teacher);
    path_in(full, sizeof full, "full");
    path_in(killed, sizeof killed, "killed");
#define RESUME_ARGS(out)                                                                              \
    DISTILL_ARGS(teacher, out), "--divergence", "fkl", "--seqkd", "0.5", "--seqkd-cache", "--replay",    \
        "adaptive", "--replay-init", "0.5", "--replay-capacity", "12", "--checkpoint-every", "5", "--steps", \
        "40", NULL
    const char *args_full[] = {RESUME_ARGS(full)};
    const char *args_killed[] = {RESUME_ARGS(killed)};
    ck_assert_int_eq(run_gkd(args_full, 1, NULL), 0);

    /* Kill when metrics.csv holds kill_at steps (a random step 8..33). A
     * descheduled test process may miss the moment; then try again. */
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int kill_at = 0, killed_in_time = 0;
    snprintf(a, sizeof a, "%s/metrics.csv", killed);
    for (int attempt = 0; attempt < 5 && !killed_in_time; attempt++) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", killed);
        ck_assert_int_eq(system(cmd), 0);
        kill_at = 8 + rand() % 26;
        pid_t pid = spawn_gkd(args_killed, 1, NULL);
        struct timespec ms = {0, 200000};
        int status, ended = 0;
        while (count_lines(a) < 1 + kill_at && !(ended = waitpid(pid, &status, WNOHANG) == pid)) nanosleep(&ms, NULL);
        if (ended) continue;
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        snprintf(b, sizeof b, "%s/final.ckpt", killed);
        killed_in_time = access(b, F_OK) != 0;
    }
    ck_assert_msg(killed_in_time, "the run always finished before the kill");
    snprintf(b, sizeof b, "%s/checkpoint.ckpt", killed);
    if (access(b, F_OK) == 0) {
        long at = checkpoint_step(b);
        ck_assert_msg(at < 40 && at % 5 == 0, "killed at step %d but the checkpoint is at %ld", kill_at, at);
    }

    ck_assert_int_eq(run_gkd(args_killed, 1, NULL), 0);
    snprintf(a, sizeof a, "%s/metrics.csv", full);
    snprintf(b, sizeof b, "%s/metrics.csv", killed);
    ck_assert_int_eq(count_lines(a), 41);
    assert_same_file(a, b);
    static cell src[MAXROWS];
    int n = read_column(a, "source", src, MAXROWS), kinds[5] = {0};
    for (int i = 0; i < n; i++) {
        kinds[0] += strstr(src[i], "student") != NULL;
        kinds[1] += strstr(src[i], "teacher") != NULL;
        kinds[2] += strstr(src[i], "replay") != NULL;
        kinds[3] += strstr(src[i], "data") != NULL;
    }
    ck_assert_msg(kinds[0] && kinds[1] && kinds[2] && kinds[3], "sources student %d teacher %d replay %d data %d",
                  kinds[0], kinds[1], kinds[2], kinds[3]);
    snprintf(a, sizeof a, "%s/eval.csv", full);
    snprintf(b, sizeof b, "%s/eval.csv", killed);
    assert_same_file(a, b);
#undef RESUME_ARGS
}
END_TEST

/* ---- non-finite values ---- */

/* A diverging run stops at the first update that makes a weight non-finite
 * or larger than a checkpoint holds, naming the tensor; the checkpoint of
 * the step before is on disk and loads. */
START_TEST(test_huge_lr_stops_with_checkpoint_intact) {
    world w = make_world(200);
    char dir[512], ck[600];
    gkd_distill_options o = small_options();
    o.steps = 20;
    o.lr = 3e5; /* Adam moves a weight by about lr a step: |w| <= 1e6 lasts a few steps */
    o.clip = 0;
    o.checkpoint_every = 1;
    path_in(dir, sizeof dir, "nan");
    mkdir(dir, 0755);
    int rc = gkd_distill_run(w.student, w.teacher, w.tok, w.task, &o, dir, NULL, NULL);
    ck_assert_int_eq(rc, GKD_ENAN);
    const char *msg = gkd_last_error();
    long step = -1;
    const char *p = strstr(msg, "step ");
    ck_assert_msg(p && sscanf(p, "step %ld", &step) == 1, "%s", msg);
    ck_assert_msg(strstr(msg, "tensor '") != NULL, "no tensor named: %s", msg);
    ck_assert_msg(step >= 2, "%s", msg);
    snprintf(ck, sizeof ck, "%s/checkpoint.ckpt", dir);
    ck_assert_int_eq(checkpoint_step(ck), step - 1);
    free_world(&w);
}
END_TEST

/* A NaN in a teacher checkpoint: the CLI refuses the checkpoint before any
 * step, naming the tensor and index, and writes no checkpoint. */
START_TEST(test_poisoned_teacher_names_tensor) {
    world w = make_world(500);
    char ck[600], dir[512], err[600];
    path_in(ck, sizeof ck, "poisoned.ckpt");
    w.teacher->params[GKD_GPT2_FCW][17] = NAN;
    gkd_checkpoint c = {0};
    c.model = w.teacher;
    c.tokenizer = w.tok;
    ck_assert_int_eq(gkd_checkpoint_save(ck, &c), 0);
    path_in(dir, sizeof dir, "poisoned");
    path_in(err, sizeof err, "poisoned.err");
    const char *args[] = {DISTILL_ARGS(ck, dir), "--steps", "10", "--checkpoint-every", "1", NULL};
    ck_assert_int_eq(run_gkd(args, 1, err), 1);
    size_t n;
    char *text = slurp(err, &n);
    char *last = text + n;
    while (last > text && last[-1] == '\n') *--last = 0;
    while (last > text && last[-1] != '\n') last--;
    ck_assert_msg(strncmp(last, "gkd distill: ", 13) == 0, "%s", text);
    ck_assert_msg(strstr(last, "parameter fcw[17] is NaN"), "%s", text);
    free(text);
    snprintf(ck, sizeof ck, "%s/checkpoint.ckpt", dir);
    ck_assert(access(ck, F_OK) != 0);
    free_world(&w);
}
END_TEST

/* A teacher that turns NaN in memory (no checkpoint involved): the run
 * stops at step 1 naming the teacher tensor, before writing a checkpoint. */
START_TEST(test_poisoned_teacher_in_memory) {
    world w = make_world(500);
    char dir[512], ck[600];
    w.teacher->params[GKD_GPT2_FCW][17] = NAN;
    gkd_distill_options o = small_options();
    o.steps = 10;
    o.checkpoint_every = 1;
    path_in(dir, sizeof dir, "poisoned_mem");
    mkdir(dir, 0755);
    ck_assert_int_ne(gkd_distill_run(w.student, w.teacher, w.tok, w.task, &o, dir, NULL, NULL), 0);
    const char *msg = gkd_last_error();
    ck_assert_msg(strstr(msg, "step 1:") && strstr(msg, "teacher tensor 'fcw'"), "%s", msg);
    snprintf(ck, sizeof ck, "%s/checkpoint.ckpt", dir);
    ck_assert(access(ck, F_OK) != 0);
    free_world(&w);
}
END_TEST

/* ---- bad input ---- */

static int one_error_line(const char *err, const char *needle) {
    size_t n;
    char *text = slurp(err, &n);
    int ok = count_lines(err) == 1 && strncmp(text, "gkd distill: ", 13) == 0 && strstr(text, needle);
    if (!ok) fprintf(stderr, "stderr was: %s\n", text);
    free(text);
    return ok;
}

START_TEST(test_bad_input_one_line) {
    world w = make_world(500);
    char tck[600], sck[600], dir[512], err[600];
    path_in(tck, sizeof tck, "teacher.ckpt");
    gkd_checkpoint c = {0};
    c.model = w.teacher;
    c.tokenizer = w.tok;
    ck_assert_int_eq(gkd_checkpoint_save(tck, &c), 0);
    path_in(dir, sizeof dir, "bad");
    path_in(err, sizeof err, "bad.err");

    /* A student over another task's vocabulary. */
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "reverse";
    tc.train = 50;
    tc.eval = 10;
    gkd_task *rev = NULL;
    ck_assert_int_eq(gkd_task_new(&rev, &tc), 0);
    gkd_tokenizer *rtok = task_tokenizer(rev);
    gkd_model *rs = new_model(gkd_tokenizer_vocab_size(rtok), 1, 16, 2, 9, 0);
    path_in(sck, sizeof sck, "student.ckpt");
    c.model = rs;
    c.tokenizer = rtok;
    ck_assert_int_eq(gkd_checkpoint_save(sck, &c), 0);
    const char *a1[] = {DISTILL_ARGS(tck, dir), "--student", sck, "--steps", "5", NULL};
    ck_assert_int_eq(run_gkd(a1, 1, err), 1);
    ck_assert(one_error_line(err, "vocabular"));

    /* pg_rkl needs lambda = 1. */
    const char *a2[] = {DISTILL_ARGS(tck, dir), "--divergence", "pg_rkl", "--lambda", "0.5", "--steps", "5", NULL};
    ck_assert_int_eq(run_gkd(a2, 1, err), 1);
    ck_assert(one_error_line(err, "pg_rkl"));

    /* The library: a teacher of another vocabulary size. */
    gkd_model *wide = new_model(w.V + 3, 1, 16, 2, 3, 0);
    gkd_distill_options o = small_options();
    gkd_distill_state s;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, wide, w.tok, w.task, &o), GKD_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "vocabulary"));
    /* The library: a loss temperature or divergence parameter out of range
     * is an error before any step, not an assertion inside one. */
    o.loss_temperature = 0.0f;
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "distill: fkl: the loss temperature must be > 0"));
    o.loss_temperature = 1.0f;
    o.divergence = (gkd_divergence){GKD_DIV_JSD, 1.5};
    ck_assert_int_eq(gkd_distill_state_init(&s, w.student, w.teacher, w.tok, w.task, &o), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "beta must be in (0, 1)"));
    gkd_model_free(wide);
    gkd_model_free(rs);
    gkd_tokenizer_free(rtok);
    gkd_task_free(rev);
    free_world(&w);
}
END_TEST

Suite *distill_suite(void) {
    Suite *s = suite_create("distill");
    TCase *sched = tcase_create("schedule");
    tcase_add_checked_fixture(sched, setup, teardown);
    tcase_set_timeout(sched, 60);
    tcase_add_test(sched, test_lambda_zero_and_one);
    tcase_add_test(sched, test_lambda_half_binomial);
    tcase_add_test(sched, test_same_seed_same_batches);
    tcase_add_test(sched, test_seqkd_rows_are_teacher_rollouts);
    tcase_add_test(sched, test_seqkd_cache_reuses_teacher_output);
    tcase_add_test(sched, test_seqkd_cache_fills_inside_steps);
    tcase_add_test(sched, test_teacher_mix_batches_are_mixed);
    tcase_add_test(sched, test_replay_fixed_replays_earlier_rollouts);
    tcase_add_test(sched, test_replay_adaptive_threshold_rises);
    tcase_add_test(sched, test_per_example_mixing);
    suite_add_tcase(s, sched);

    TCase *loss = tcase_create("loss");
    tcase_add_checked_fixture(loss, setup, teardown);
    tcase_set_timeout(loss, 60);
    tcase_add_test(loss, test_loss_mask_hand_made_batch);
    tcase_add_test(loss, test_loss_mask_on_rollouts);
    tcase_add_test(loss, test_layout_importance_and_hybrid_untouched);
    tcase_add_test(loss, test_gradient_fkl);
    tcase_add_test(loss, test_gradient_jsd);
    tcase_add_test(loss, test_gradient_tvd);
    tcase_add_test(loss, test_gradient_hybrid_ce);
    tcase_add_test(loss, test_teacher_by_chunks_is_the_whole_teacher);
    tcase_add_test(loss, test_teacher_by_chunks_names_nonfinite_logits);
    suite_add_tcase(s, loss);

    TCase *run = tcase_create("run");
    tcase_add_checked_fixture(run, setup, teardown);
    tcase_set_timeout(run, 120);
    tcase_add_test(run, test_every_divergence_distills);
    tcase_add_test(run, test_same_bytes_with_one_and_two_threads);
    tcase_add_test(run, test_resume_after_sigkill);
    tcase_add_test(run, test_huge_lr_stops_with_checkpoint_intact);
    tcase_add_test(run, test_poisoned_teacher_names_tensor);
    tcase_add_test(run, test_poisoned_teacher_in_memory);
    tcase_add_test(run, test_bad_input_one_line);
    suite_add_tcase(s, run);
    return s;
}
