/* Runs the cells of an experiment (include/gkd/runner.h).
 *
 * <results>/<exp>/
 *   grid.csv                  cell,dir,<axes>: every cell in grid order
 *   labels.csv                key,text: the experiment's labels (if any)
 *   shared/teacher-<hash>/    the teacher every cell with that hash uses
 *   shared/student-<hash>/    the SFT student init shared across non-seed axes
 *   <cell>/                   config.yaml, config.hash, axes.csv, run.json,
 *                             metrics.csv, eval.csv, timings.csv,
 *                             checkpoint.ckpt, final.ckpt, markers
 * Shared artifacts are built under an flock, so parallel cells (or Slurm
 * array tasks on a shared file system) build each one once. */
#define _GNU_SOURCE
#include "gkd/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "gkd/cell_status.h"
#include "gkd/checkpoint.h"
#include "gkd/csv.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/experiment.h"
#include "gkd/fsutil.h"
#include "gkd/products.h"
#include "gkd/table.h"

#define PATH_CAP 4096

/* out = dir/name; paths longer than PATH_CAP are refused, never cut. */
static int path_join(char *out, const char *dir, const char *name) {
    int n = snprintf(out, PATH_CAP, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_CAP) return gkd_error(GKD_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

/* ---- progress ---- */

typedef struct {
    const char *cell;
    size_t done, total;
    double started;
    double last_heartbeat;
    const char *cell_dir;
    int tty;
} progress_ctx;

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_progress(void *vctx, long step, long steps, const char *line) {
    progress_ctx *c = vctx;
    double now = wall_now();
    if (c->cell_dir && now - c->last_heartbeat > GKD_CELL_HEARTBEAT_SECONDS / 2) {
        gkd_cell_heartbeat(c->cell_dir);
        c->last_heartbeat = now;
    }
    int is_eval = strstr(line, " eval ") != NULL;
    if (c->tty) {
        double el = now - c->started;
        double eta = step > 0 ? el / step * (steps - step) : 0;
        fprintf(stderr, "\r\033[K[%zu/%zu cells] %s: %s (ETA %.0fs)", c->done, c->total, c->cell, line, eta);
        if (is_eval && step == steps) fputc('\n', stderr);
    } else if (is_eval) {
        fprintf(stderr, "[%zu/%zu cells] %s: %s\n", c->done, c->total, c->cell, line);
    }
}

static void plain_progress(void *vctx, long step, long steps, const char *line) {
    progress_ctx *c = vctx;
    (void)step;
    (void)steps;
    if (c->tty) fprintf(stderr, "\r\033[K%s: %s", c->cell, line);
}

/* ---- small writers ---- */

static int write_text(const char *path, const char *text) { return gkd_file_write_atomic(path, text, strlen(text)); }

static void iso_time(char *out, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* JSON string body: escape quotes, backslashes and control characters. */
static void json_escape(char *out, size_t cap, const char *s) {
    size_t j = 0;
    for (; *s && j + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { out[j++] = '\\'; out[j++] = (char)ch; }
        else if (ch < 0x20) j += (size_t)snprintf(out + j, cap - j, "\\u%04x", ch);
        else out[j++] = (char)ch;
    }
    out[j] = '\0';
}

/* The CPU's model name from /proc/cpuinfo ("unknown" where there is none). */
static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        snprintf(out, cap, "%.*s", (int)strcspn(colon, "\n"), colon);
        break;
    }
    fclose(f);
}

static int write_run_json(const char *dir, const char *started, const char *ended) {
    char host[256] = "", path[PATH_CAP], text[4096], blas[512], cpu[256], cpuq[512];
    gethostname(host, sizeof host - 1);
    json_escape(blas, sizeof blas, openblas_get_config());
    cpu_model(cpu, sizeof cpu);
    json_escape(cpuq, sizeof cpuq, cpu);
    char hostq[512];
    json_escape(hostq, sizeof hostq, host);
    int rc = path_join(path, dir, "run.json");
    if (rc) return rc;
    snprintf(text, sizeof text,
             "{\n  \"gkd_version\": \"%s\",\n  \"git_commit\": \"%s\",\n  \"compiler\": \"%s\",\n"
             "  \"libc\": \"glibc %s\",\n  \"blas\": \"%s\",\n  \"products\": \"%s\",\n"
             "  \"isa\": \"%s\",\n  \"cpu\": \"%s\",\n  \"threads\": %d,\n  \"host\": \"%s\",\n"
             "  \"started\": \"%s\",\n  \"ended\": %s%s%s\n}\n",
             GKD_VERSION, GKD_GIT_COMMIT, "gcc " __VERSION__, gnu_get_libc_version(), blas,
             gkd_products_name(gkd_products()), gkd_isa_name(gkd_isa_active()), cpuq,
             omp_get_max_threads(), hostq, started, ended ? "\"" : "", ended ? ended : "null",
             ended ? "\"" : "");
    return write_text(path, text);
}

static int write_axes_csv(const char *dir, const gkd_cell_config *c) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    char path[PATH_CAP];
    int rc = gkd_csv_buf_str(&b, "key");
    rc = rc ? rc : gkd_csv_buf_str(&b, "value");
    rc = rc ? rc : gkd_csv_buf_end_row(&b);
    rc = rc ? rc : path_join(path, dir, "axes.csv");
    for (int i = 0; i < c->num_axes && !rc; i++) {
        rc = gkd_csv_buf_str(&b, c->axes[i].name);
        rc = rc ? rc : gkd_csv_buf_str(&b, c->axes[i].value);
        rc = rc ? rc : gkd_csv_buf_end_row(&b);
    }
    rc = rc ? rc : gkd_file_write_atomic(path, b.data, b.len);
    gkd_csv_buf_free(&b);
    return rc;
}

/* Files of the experiment as a whole are rewritten only when they change:
 * a finished experiment run again touches no file, and concurrent Slurm
 * tasks do not race on them. */
static int write_if_changed(const char *path, const gkd_csv_buf *b) {
    char *old = NULL;
    size_t old_len = 0;
    int same = gkd_path_exists(path) && gkd_file_read(&old, &old_len, path) == 0 && old_len == b->len &&
               memcmp(old, b->data, b->len) == 0;
    free(old);
    return same ? 0 : gkd_file_write_atomic(path, b->data, b->len);
}

static int write_grid_csv(const char *exp_dir, const gkd_experiment *exp) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    char path[PATH_CAP];
    int rc = gkd_csv_buf_str(&b, "cell");
    rc = rc ? rc : gkd_csv_buf_str(&b, "dir");
    for (int a = 0; a < gkd_experiment_num_axes(exp) && !rc; a++) {
        const char *key, *name;
        size_t nv;
        gkd_experiment_axis(exp, a, &key, &name, &nv);
        rc = gkd_csv_buf_str(&b, name);
    }
    rc = rc ? rc : gkd_csv_buf_end_row(&b);
    for (size_t i = 0; i < gkd_experiment_num_cells(exp) && !rc; i++) {
        gkd_cell_config c;
        if ((rc = gkd_experiment_cell(exp, i, &c))) break;
        rc = gkd_csv_buf_long(&b, (long)i);
        rc = rc ? rc : gkd_csv_buf_str(&b, c.name);
        for (int a = 0; a < c.num_axes && !rc; a++) rc = gkd_csv_buf_str(&b, c.axes[a].value);
        rc = rc ? rc : gkd_csv_buf_end_row(&b);
    }
    rc = rc ? rc : path_join(path, exp_dir, "grid.csv");
    rc = rc ? rc : write_if_changed(path, &b);
    gkd_csv_buf_free(&b);
    return rc;
}

/* labels.csv: the experiment's `labels` (key,text in file order), which
 * gkd table reads as display names; removed when the file has none, so a
 * label deleted from the experiment does not live on in the tables. */
static int write_labels_csv(const char *exp_dir, const gkd_experiment *exp) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    char path[PATH_CAP];
    int rc = path_join(path, exp_dir, "labels.csv");
    if (rc) return rc;
    if (gkd_experiment_num_labels(exp) == 0) {
        if (unlink(path) != 0 && errno != ENOENT)
            return gkd_error(GKD_EIO, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    rc = gkd_csv_buf_str(&b, "key");
    rc = rc ? rc : gkd_csv_buf_str(&b, "text");
    rc = rc ? rc : gkd_csv_buf_end_row(&b);
    for (size_t i = 0; i < gkd_experiment_num_labels(exp) && !rc; i++) {
        const char *key, *text;
        gkd_experiment_label(exp, i, &key, &text);
        rc = gkd_csv_buf_str(&b, key);
        rc = rc ? rc : gkd_csv_buf_str(&b, text);
        rc = rc ? rc : gkd_csv_buf_end_row(&b);
    }
    rc = rc ? rc : write_if_changed(path, &b);
    gkd_csv_buf_free(&b);
    return rc;
}

/* What the results directory holds about the experiment as a whole. */
static int write_experiment_files(const char *exp_dir, const gkd_experiment *exp) {
    int rc = write_grid_csv(exp_dir, exp);
    return rc ? rc : write_labels_csv(exp_dir, exp);
}

/* ---- filters ---- */

static int values_equal(const char *a, const char *b) {
    if (!strcmp(a, b)) return 1;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return *a && *b && !*ea && !*eb && x == y;
}

/* --only 'divergence=rkl,lambda=1': every listed axis must match. */
static int cell_matches(const gkd_cell_config *c, const char *only, int *unknown_axis) {
    if (!only || !*only) return 1;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", only);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) { *unknown_axis = 1; return 0; }
        *eq = '\0';
        int found = 0, ok = 0;
        for (int a = 0; a < c->num_axes; a++)
            if (!strcmp(c->axes[a].name, tok) || !strcmp(c->axes[a].key, tok)) {
                found = 1;
                ok = values_equal(c->axes[a].value, eq + 1);
            }
        if (!found) { *unknown_axis = 1; return 0; }
        if (!ok) return 0;
    }
    return 1;
}

/* ---- shared artifacts ---- */

typedef struct {
    int fd;
} file_lock;

/* Lock files live in gkd's own tree: a symbolic link there (dangling or
 * not) is refused rather than followed, so gkd never creates or opens a
 * file elsewhere through it. */
static int open_lock(const char *path) { return open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0644); }

static int lock_open_error(const char *path) {
    if (errno == ELOOP) return gkd_error(GKD_EINVAL, "lock %s is a symbolic link; gkd does not follow it", path);
    return gkd_error(GKD_EIO, "cannot open lock %s: %s", path, strerror(errno));
}

static int lock_acquire(file_lock *l, const char *path) {
    l->fd = open_lock(path);
    if (l->fd < 0) return lock_open_error(path);
    while (flock(l->fd, LOCK_EX) != 0)
        if (errno != EINTR) { close(l->fd); return gkd_error(GKD_EIO, "cannot lock %s: %s", path, strerror(errno)); }
    return 0;
}

/* Like lock_acquire, but *busy = 1 (and no lock) if another process holds it. */
static int lock_try(file_lock *l, const char *path, int *busy) {
    *busy = 0;
    l->fd = open_lock(path);
    if (l->fd < 0) return lock_open_error(path);
    while (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(l->fd);
        l->fd = -1;
        if (e == EWOULDBLOCK) { *busy = 1; return 0; }
        return gkd_error(GKD_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    return 0;
}

static void lock_release(file_lock *l) {
    if (l->fd >= 0) { flock(l->fd, LOCK_UN); close(l->fd); }
    l->fd = -1;
}

/* The cosine decay's floor: the phase's lr_min when set, else lr / 10. */
static double lr_floor(const gkd_train_options *t) { return t->lr_min >= 0 ? t->lr_min : t->lr * 0.1; }

static void train_options(gkd_distill_options *o, const gkd_train_options *t, uint64_t seed, int max_new) {
    gkd_distill_options d = GKD_DISTILL_OPTIONS_INIT;
    d.divergence.kind = GKD_DIV_CE;
    d.steps = t->steps;
    d.batch = t->batch;
    d.lr = t->lr;
    d.lr_min = lr_floor(t);
    d.warmup = t->warmup;
    d.weight_decay = (float)t->weight_decay;
    d.clip = (float)t->clip;
    d.seed = seed;
    d.eval_every = 0;
    d.checkpoint_every = t->steps >= 500 ? 500 : 0;
    d.eval_n = 200;
    d.eval_samples = 0;
    d.sample.max_new_tokens = max_new;
    *o = d;
}

/* Train (or load) a supervised model into shared/<kind>-<hash>/final.ckpt. */
static int shared_supervised(gkd_model **out, const char *exp_dir, const char *kind, const char *hash,
                             const gkd_model_config *cfg, const gkd_train_options *t, uint64_t seed,
                             int max_new, const gkd_tokenizer *tok, const gkd_task *task, int tty) {
    char dir[PATH_CAP], lockpath[PATH_CAP], final[PATH_CAP];
    char name[128];
    /* Artifacts made in the OpenBLAS mode are kept apart from the
     * reproducible ones, so neither kind of cell uses the other's. */
    const char *mode = gkd_products() == GKD_PRODUCTS_OPENBLAS ? "-openblas" : "";
    snprintf(name, sizeof name, "shared/%s-%s%s", kind, hash, mode);
    int rc = path_join(dir, exp_dir, name);
    if (rc) return rc;
    snprintf(name, sizeof name, "shared/%s-%s%s.lock", kind, hash, mode);
    if ((rc = path_join(lockpath, exp_dir, name)) || (rc = path_join(final, dir, "final.ckpt"))) return rc;
    if ((rc = gkd_mkdir_p(dir))) return rc;
    file_lock lock = {-1};
    if ((rc = lock_acquire(&lock, lockpath))) return rc;
    gkd_model *m = NULL;
    if (gkd_path_exists(final)) {
        gkd_checkpoint_data d;
        if ((rc = gkd_checkpoint_load(&d, final, NULL))) goto done;
        m = d.model;
        d.owns_model = 0;
        gkd_checkpoint_data_free(&d);
    } else {
        if ((rc = gkd_model_new(&m, cfg))) goto done;
        gkd_model_init_weights(m, seed);
        gkd_distill_options o;
        train_options(&o, t, seed, max_new);
        progress_ctx pc = {.cell = kind, .tty = tty};
        fprintf(stderr, "gkd: training the shared %s %s (%d steps)\n", kind, hash, t->steps);
        rc = gkd_distill_run(m, NULL, tok, task, &o, dir, plain_progress, &pc);
        if (tty) fputc('\n', stderr);
        if (rc) rc = gkd_error_wrap(rc, "%s %s", kind, hash);
    }
done:
    lock_release(&lock);
    if (rc) gkd_model_free(m);
    else *out = m;
    return rc;
}

static int load_model(gkd_model **out, gkd_tokenizer **tok_out, const char *path) {
    gkd_checkpoint_data d;
    int rc = gkd_checkpoint_load(&d, path, NULL);
    if (rc) return rc;
    *out = d.model;
    d.owns_model = 0;
    if (tok_out) { *tok_out = d.tokenizer; d.tokenizer = NULL; }
    gkd_checkpoint_data_free(&d);
    return 0;
}

/* ---- one cell ---- */

static void distill_options(gkd_distill_options *o, const gkd_cell_config *c) {
    gkd_distill_options d = GKD_DISTILL_OPTIONS_INIT;
    const gkd_distill_config *x = &c->distill;
    gkd_divergence_parse(&d.divergence, x->divergence); /* validated when the file was loaded */
    d.ce_weight = (float)x->ce_weight;
    d.loss_temperature = (float)x->loss_temperature;
    d.per_sequence = x->reduction == GKD_REDUCE_SEQUENCE;
    d.schedule.lambda = x->lambda;
    d.schedule.per_example = x->per_example;
    d.schedule.seqkd = x->seqkd;
    d.schedule.teacher_mix = x->teacher_mix;
    d.seqkd_cache = x->seqkd_cache;
    d.schedule.replay = x->replay.mode;
    d.schedule.capacity = x->replay.capacity;
    d.schedule.p_replay = x->replay.prob;
    d.schedule.init_threshold = x->replay.init;
    d.schedule.threshold_step = x->replay.step;
    d.schedule.loss_eps = x->replay.loss_eps;
    d.schedule.total_steps = x->opt.steps > 0 ? x->opt.steps : 1;
    d.sample.temperature = (float)x->temperature;
    d.sample.top_k = x->top_k;
    d.sample.top_p = (float)x->top_p;
    d.sample.max_new_tokens = x->max_new_tokens;
    d.steps = x->opt.steps;
    d.batch = x->opt.batch;
    d.lr = x->opt.lr;
    d.lr_min = lr_floor(&x->opt);
    d.warmup = x->opt.warmup;
    d.weight_decay = (float)x->opt.weight_decay;
    d.clip = (float)x->opt.clip;
    d.seed = c->seed;
    d.eval_every = c->eval.every;
    d.checkpoint_every = x->checkpoint_every;
    d.eval_n = c->eval.n;
    d.eval_samples = c->eval.samples;
    d.eval_temperature = (float)c->eval.temperature;
    d.eval_greedy = c->eval.decode == GKD_DECODE_GREEDY;
    *o = d;
}

/* The dotted key of the YAML line `line` given the keys of the lines above
 * (stack[level], canonical YAML: two spaces per level); "" if it has none. */
static void yaml_line_key(char *out, size_t cap, char stack[][64], int depth_cap, const char *line, size_t len) {
    size_t indent = 0;
    while (indent < len && line[indent] == ' ') indent++;
    const char *colon = memchr(line + indent, ':', len - indent);
    out[0] = '\0';
    int level = (int)(indent / 2);
    if (!colon || level >= depth_cap || line[indent] == '#') return;
    snprintf(stack[level], 64, "%.*s", (int)(colon - line - indent), line + indent);
    size_t n = 0;
    for (int l = 0; l <= level && n + 1 < cap; l++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", l ? "." : "", stack[l]);
}

/* "distill.lr: 0.001 -> 0.002": the first line where the cell's saved
 * config.yaml and its current config differ; "" if that cannot be told. */
static void describe_config_change(char *out, size_t cap, const char *dir, const gkd_cell_config *c) {
    char path[PATH_CAP], *old = NULL, *now = NULL;
    size_t old_len = 0, now_len = 0;
    out[0] = '\0';
    FILE *f = NULL;
    if (path_join(path, dir, "config.yaml") || gkd_file_read(&old, &old_len, path)) goto done;
    if (!(f = open_memstream(&now, &now_len))) goto done;
    int rc = gkd_cell_config_write_yaml(c, f);
    if (fclose(f) != 0 || rc) goto done;
    char stack[16][64] = {{0}}, old_stack[16][64] = {{0}}, key[256], old_key[256];
    const char *a = old, *b = now, *a_end = old + old_len, *b_end = now + now_len;
    while (a < a_end && b < b_end) {
        const char *an = memchr(a, '\n', (size_t)(a_end - a)), *bn = memchr(b, '\n', (size_t)(b_end - b));
        size_t al = an ? (size_t)(an - a) : (size_t)(a_end - a), bl = bn ? (size_t)(bn - b) : (size_t)(b_end - b);
        yaml_line_key(key, sizeof key, stack, 16, b, bl);
        yaml_line_key(old_key, sizeof old_key, old_stack, 16, a, al);
        int top_ignored = !strncmp(key, "name", 5) || !strncmp(key, "description", 12) || !strncmp(key, "slurm", 5);
        if (b[0] != '#' && !top_ignored && (al != bl || memcmp(a, b, al) != 0)) {
            const char *av = memchr(a, ':', al), *bv = memchr(b, ':', bl);
            if (av)
                for (av++; av < a + al && *av == ' ';) av++;
            if (bv)
                for (bv++; bv < b + bl && *bv == ' ';) bv++;
            if (bv && *key && strcmp(key, old_key) != 0) /* written by an older gkd */
                snprintf(out, cap, "%s: not in the old config -> %.*s", key, (int)(b + bl - bv), bv);
            else if (av && bv && *key)
                snprintf(out, cap, "%s: %.*s -> %.*s", key, (int)(a + al - av), av, (int)(b + bl - bv), bv);
            else
                snprintf(out, cap, "'%.*s' -> '%.*s'", (int)al, a, (int)bl, b);
            break;
        }
        a += al + 1;
        b += bl + 1;
    }
done:
    free(old);
    free(now);
}

/* *same = 0 if the cell's run.json names products other than this
 * process's (an old run.json that names none counts as other). */
static int same_products(const char *dir, int *same) {
    char path[PATH_CAP], *text = NULL, want[64];
    size_t len;
    *same = 1;
    int rc = path_join(path, dir, "run.json");
    if (rc || !gkd_path_exists(path)) return rc;
    if ((rc = gkd_file_read(&text, &len, path))) return rc;
    snprintf(want, sizeof want, "\"products\": \"%s\"", gkd_products_name(gkd_products()));
    *same = strstr(text, want) != NULL;
    free(text);
    return 0;
}

/* Cell state on disk: 1 done with this config, 0 to run; refuses a changed
 * config, and results made in the other products mode (gkd/products.h). */
static int check_cell_dir(const char *dir, const gkd_cell_config *c, int force, int *done) {
    char path[PATH_CAP], *old = NULL, hash[GKD_HASH_HEX_LEN + 1];
    size_t len;
    *done = 0;
    gkd_cell_config_hash(c, hash);
    int rc = path_join(path, dir, "config.hash");
    if (rc) return rc;
    if (!gkd_path_exists(path)) return 0;
    if ((rc = gkd_file_read(&old, &len, path))) return rc;
    int same = len >= strlen(hash) && !strncmp(old, hash, strlen(hash));
    free(old);
    if (!same) {
        if (!force) {
            char change[512];
            describe_config_change(change, sizeof change, dir, c);
            return gkd_error(GKD_EMISMATCH,
                             "%s holds results of a different config (%s%sthe experiment file changed); "
                             "rerun with --force to discard them",
                             dir, change, *change ? "; " : "");
        }
        return gkd_remove_tree(dir);
    }
    if ((rc = same_products(dir, &same))) return rc;
    if (!same) {
        if (!force)
            return gkd_error(GKD_EMISMATCH,
                             "%s holds results made with other products than this run's (%s; see its "
                             "run.json and GKD_PRODUCTS); rerun with --force to discard them",
                             dir, gkd_products_name(gkd_products()));
        return gkd_remove_tree(dir);
    }
    if ((rc = path_join(path, dir, "done"))) return rc;
    *done = gkd_path_exists(path);
    return 0;
}

static int run_cell(const gkd_cell_config *c, const char *exp_dir, size_t done_before, size_t total, int tty) {
    char dir[PATH_CAP], path[PATH_CAP], hash[GKD_HASH_HEX_LEN + 1], started[32];
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_model *teacher = NULL, *student = NULL;
    int rc, marked = 0, busy = 0, done_already = 0;
    file_lock lock = {-1};
    if ((rc = path_join(dir, exp_dir, c->name)) || (rc = gkd_mkdir_p(dir))) return rc;
    gkd_cell_config_hash(c, hash);
    iso_time(started, sizeof started);
    /* One process per cell: a second `gkd run` (or a resubmitted Slurm task)
     * must not write into a cell another one is running. */
    if ((rc = path_join(path, dir, "lock")) || (rc = lock_try(&lock, path, &busy))) goto done;
    if (busy) {
        rc = gkd_error(GKD_ESTATE, "cell %s is being run by another process (see %s/running)", c->name, dir);
        goto done;
    }
    /* It may have finished while this process was checking the others. A
     * finished cell made before gkd wrote teacher_eval.csv only gets that. */
    if ((rc = check_cell_dir(dir, c, 0, &done_already))) goto done;
    int reference_only = 0;
    if (done_already) {
        if ((rc = path_join(path, dir, "teacher_eval.csv"))) goto done;
        if (access(path, F_OK) == 0) goto done;
        reference_only = 1;
    }
    if (reference_only) goto load_teacher;
    if ((rc = gkd_cell_mark_running(dir))) goto done;
    marked = 1;
    if ((rc = path_join(path, dir, "config.yaml"))) goto done;
    if ((rc = gkd_cell_config_save_yaml(c, path))) goto done;
    if ((rc = path_join(path, dir, "config.hash"))) goto done;
    char line[GKD_HASH_HEX_LEN + 2];
    snprintf(line, sizeof line, "%s\n", hash);
    if ((rc = write_text(path, line))) goto done;
    if ((rc = write_axes_csv(dir, c)) || (rc = write_run_json(dir, started, NULL))) goto done;

load_teacher:
    if ((rc = gkd_task_new(&task, &c->task))) goto done;
    int max_new = c->distill.max_new_tokens;
    /* teacher */
    if (c->teacher_checkpoint) {
        if ((rc = load_model(&teacher, &tok, c->teacher_checkpoint))) goto done;
    }
    if (!tok && (rc = gkd_task_tokenizer(task, &tok))) goto done;
    if (!teacher) {
        char th[GKD_HASH_HEX_LEN + 1];
        gkd_cell_teacher_hash(c, th);
        gkd_model_config tc = c->teacher_model;
        tc.vocab_size = gkd_tokenizer_vocab_size(tok);
        if ((rc = shared_supervised(&teacher, exp_dir, "teacher", th, &tc, &c->teacher_train, c->teacher_seed,
                                    max_new, tok, task, tty)))
            goto done;
    }
    gkd_distill_options o;
    distill_options(&o, c);
    if (reference_only) {
        rc = gkd_distill_eval_teacher(teacher, tok, task, &o, dir);
        goto done;
    }
    /* student */
    gkd_model_config sc = c->student_model;
    sc.vocab_size = teacher->config.vocab_size;
    if (sc.max_seq_len == 0) sc.max_seq_len = teacher->config.max_seq_len;
    if (c->student_init == GKD_INIT_CHECKPOINT) {
        if ((rc = load_model(&student, NULL, c->student_checkpoint))) goto done;
    } else if (c->student_init == GKD_INIT_SFT && c->student_sft.steps > 0) {
        char sh[GKD_HASH_HEX_LEN + 1];
        gkd_cell_student_init_hash(c, sh);
        if ((rc = shared_supervised(&student, exp_dir, "student", sh, &sc, &c->student_sft, c->seed, max_new, tok,
                                    task, tty)))
            goto done;
    } else {
        if ((rc = gkd_model_new(&student, &sc))) goto done;
        gkd_model_init_weights(student, c->seed);
    }
    /* distill */
    progress_ctx pc = {.cell = c->name, .done = done_before, .total = total, .started = wall_now(),
                       .last_heartbeat = wall_now(), .cell_dir = dir, .tty = tty};
    if ((rc = gkd_distill_run(student, teacher, tok, task, &o, dir, on_progress, &pc))) goto done;
    if ((rc = gkd_distill_eval_teacher(teacher, tok, task, &o, dir))) goto done;
    char ended[32];
    iso_time(ended, sizeof ended);
    if ((rc = write_run_json(dir, started, ended))) goto done;
    rc = gkd_cell_mark_done(dir);
done:
    if (rc && marked) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gkd_last_error());
        gkd_cell_mark_failed(dir, msg);
        gkd_error(rc, "%s", msg);
    }
    lock_release(&lock);
    gkd_model_free(student);
    gkd_model_free(teacher);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
    return rc;
}

/* ---- the default table ---- */

/* Rows: the first non-seed axis; columns: the second, if any. */
static int print_default_table(const gkd_experiment *exp, const char *exp_dir) {
    const char *rows = NULL, *cols = NULL;
    for (int a = 0; a < gkd_experiment_num_axes(exp); a++) {
        const char *key, *name;
        size_t nv;
        gkd_experiment_axis(exp, a, &key, &name, &nv);
        if (!strcmp(name, "seed") || nv < 2) continue;
        if (!rows) rows = name;
        else if (!cols) cols = name;
    }
    if (!rows) return 0;
    const char *metrics[] = {"exact_match", "fkl_ref", "teacher_nll"};
    gkd_table_opts to = GKD_TABLE_OPTS_INIT;
    to.rows = rows;
    to.cols = cols;
    to.metrics = metrics;
    to.nmetrics = 3;
    gkd_table *t = NULL;
    char *text = NULL;
    int rc = gkd_table_build(&t, exp_dir, &to);
    if (!rc) rc = gkd_table_render(&text, t, GKD_FMT_MD, 0, 3);
    if (!rc) {
        printf("\n%s\n", text);
        printf("(gkd table %s --rows %s%s%s --metric exact_match,fkl_ref,teacher_nll)\n", exp_dir, rows,
               cols ? " --cols " : "", cols ? cols : "");
    }
    free(text);
    gkd_table_free(t);
    return rc;
}

/* ---- the grid ---- */

typedef struct {
    size_t *cells;
    size_t n;
} selection;

static int select_cells(selection *sel, const gkd_experiment *exp, const gkd_run_options *opt) {
    size_t total = gkd_experiment_num_cells(exp);
    sel->cells = calloc(total ? total : 1, sizeof *sel->cells);
    sel->n = 0;
    if (!sel->cells) return gkd_error(GKD_ENOMEM, "out of memory");
    if (opt->cell >= 0 && (size_t)opt->cell >= total)
        return gkd_error(GKD_EINVAL, "--cell %ld: the experiment has %zu cells (0..%zu)", opt->cell, total,
                         total - 1);
    for (size_t i = 0; i < total; i++) {
        if (opt->cell >= 0 && (size_t)opt->cell != i) continue;
        gkd_cell_config c;
        int rc = gkd_experiment_cell(exp, i, &c), unknown = 0;
        if (rc) return rc;
        int ok = cell_matches(&c, opt->only, &unknown);
        if (unknown)
            return gkd_error(GKD_EINVAL, "--only '%s': use axis=value pairs with axes of this grid", opt->only);
        if (ok) sel->cells[sel->n++] = i;
    }
    /* A filter that selects nothing is a typo, not a finished grid. */
    if (opt->only && *opt->only && sel->n == 0)
        return gkd_error(GKD_EINVAL, "--only '%s' matches none of the grid's %zu cells (gkd check lists them)",
                         opt->only, total);
    return 0;
}

/* Which selected cells still have to run (todo, in grid order) and how many
 * are done. A cell whose directory holds another config's results is an
 * error, or (force) is removed so it runs again. Writes nothing otherwise. */
static int scan_cells(size_t *todo, size_t *ntodo, size_t *skipped, const gkd_experiment *exp,
                      const char *exp_dir, const selection *sel, int force) {
    *ntodo = *skipped = 0;
    for (size_t k = 0; k < sel->n; k++) {
        gkd_cell_config c;
        char dir[PATH_CAP];
        int done, rc;
        if ((rc = gkd_experiment_cell(exp, sel->cells[k], &c))) return rc;
        if ((rc = path_join(dir, exp_dir, c.name))) return rc;
        if ((rc = check_cell_dir(dir, &c, force, &done))) return rc;
        /* A finished cell without the teacher's reference evaluation (made
         * by an older gkd) is run for that alone. */
        char reference[PATH_CAP];
        if (done && (rc = path_join(reference, dir, "teacher_eval.csv"))) return rc;
        if (done && access(reference, F_OK) == 0) (*skipped)++;
        else todo[(*ntodo)++] = sel->cells[k];
    }
    return 0;
}

static int run_local(const gkd_experiment *exp, const char *exp_dir, const selection *sel,
                     const gkd_run_options *opt) {
    int tty = isatty(STDERR_FILENO);
    size_t skipped = 0, ran = 0, failed = 0;
    size_t *todo = calloc(sel->n ? sel->n : 1, sizeof *todo), ntodo = 0;
    if (!todo) return gkd_error(GKD_ENOMEM, "out of memory");
    int rc = scan_cells(todo, &ntodo, &skipped, exp, exp_dir, sel, opt->force);
    if (rc) goto out;
    /* Only now, with every selected cell's config checked, does anything get written. */
    if ((rc = gkd_mkdir_p(exp_dir)) || (rc = write_experiment_files(exp_dir, exp))) goto out;
    if (skipped && ntodo) fprintf(stderr, "gkd: %zu of %zu cells already done, running %zu\n", skipped, sel->n, ntodo);
    int jobs = opt->jobs > 0 ? opt->jobs : 1;
    if (jobs > (int)ntodo) jobs = ntodo > 0 ? (int)ntodo : 1;
    if (jobs == 1) {
        for (size_t k = 0; k < ntodo; k++) {
            gkd_cell_config c;
            if ((rc = gkd_experiment_cell(exp, todo[k], &c))) goto out;
            if (!tty) fprintf(stderr, "[%zu/%zu cells] %s: start\n", skipped + k, sel->n, c.name);
            rc = run_cell(&c, exp_dir, skipped + k, sel->n, tty);
            if (rc && ntodo == 1) goto out; /* one cell (e.g. a Slurm task): its own message */
            if (rc) {
                /* Like --jobs N: a failed cell does not stop the others. */
                if (tty) fputc('\n', stderr);
                fprintf(stderr, "gkd run: cell %s: %s\n", c.name, gkd_last_error());
                failed++;
                rc = 0;
            } else {
                ran++;
            }
        }
        if (failed) rc = gkd_error(GKD_ESTATE, "%zu of %zu cells failed (see their 'failed' markers; rerun to resume)",
                                   failed, ntodo);
    } else {
        /* N cells at once, each a child process with cores / N threads. The
         * shared artifacts are built under locks, so the first child to need
         * a teacher trains it and the others wait. */
        int threads = omp_get_num_procs() / jobs;
        if (threads < 1) threads = 1;
        size_t next = 0;
        int running = 0;
        while (next < ntodo || running > 0) {
            while (running < jobs && next < ntodo) {
                gkd_cell_config c;
                if ((rc = gkd_experiment_cell(exp, todo[next], &c))) goto out;
                fflush(NULL);
                pid_t parent = getpid();
                pid_t pid = fork();
                if (pid < 0) { rc = gkd_error(GKD_EIO, "fork: %s", strerror(errno)); goto out; }
                if (pid == 0) {
                    /* Die with the parent: an orphaned cell would race with
                     * the rerun that resumes it. */
                    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(1);
                    omp_set_num_threads(threads);
                    openblas_set_num_threads(threads);
                    int crc = run_cell(&c, exp_dir, skipped + next, sel->n, 0);
                    if (crc) fprintf(stderr, "gkd run: cell %s: %s\n", c.name, gkd_last_error());
                    fflush(NULL);
                    _exit(crc ? 1 : 0);
                }
                fprintf(stderr, "[%zu/%zu cells] %s: started (pid %d, %d threads)\n", skipped + ran + failed,
                        sel->n, c.name, (int)pid, threads);
                next++;
                running++;
            }
            int status;
            pid_t pid = wait(&status);
            if (pid < 0) { if (errno == EINTR) continue; break; }
            running--;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ran++;
            else failed++;
        }
        if (failed) rc = gkd_error(GKD_ESTATE, "%zu of %zu cells failed (see their 'failed' markers; rerun to resume)",
                                   failed, ntodo);
    }
out:
    free(todo);
    if (!rc && ntodo == 0 && sel->n > 0) fprintf(stderr, "gkd: all %zu cells already done\n", sel->n);
    return rc;
}

int gkd_run_experiment(const char *path, const gkd_run_options *opt) {
    gkd_experiment *exp = NULL;
    selection sel = {0};
    char exp_dir[PATH_CAP];
    /* "" would put the experiment at the file system's root. */
    if (!opt->results || !*opt->results) return gkd_error(GKD_EINVAL, "--results needs a directory, not an empty string");
    int rc = gkd_experiment_load(&exp, path);
    if (rc) return rc;
    if ((rc = select_cells(&sel, exp, opt))) goto done;
    if ((rc = path_join(exp_dir, opt->results, gkd_experiment_name(exp)))) goto done;
    if (opt->dry_run) {
        for (size_t k = 0; k < sel.n; k++) {
            gkd_cell_config c;
            if ((rc = gkd_experiment_cell(exp, sel.cells[k], &c))) goto done;
            printf("%zu\t%s\n", sel.cells[k], c.name);
        }
        printf("%zu of %zu cells\n", sel.n, gkd_experiment_num_cells(exp));
        goto done;
    }
    if (opt->executor == GKD_EXECUTOR_SLURM) {
        /* The array covers the whole grid (task i = cell i); finished cells skip themselves. */
        if (opt->only || opt->cell >= 0) {
            rc = gkd_error(GKD_EINVAL, "--only and --cell select cells to run here; with --executor slurm the "
                                       "whole grid is submitted (finished cells are skipped)");
            goto done;
        }
        /* Refuse (or, with force, clear) changed cells here, not in every task. */
        size_t ntodo = 0, skipped = 0;
        size_t *todo = calloc(sel.n ? sel.n : 1, sizeof *todo);
        if (!todo) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
        rc = scan_cells(todo, &ntodo, &skipped, exp, exp_dir, &sel, opt->force);
        free(todo);
        if (rc) goto done;
        if (ntodo == 0) {
            fprintf(stderr, "gkd: all %zu cells already done; nothing submitted\n", sel.n);
            /* Labels edited after the run still reach the tables. */
            if ((rc = write_experiment_files(exp_dir, exp))) goto done;
            if (opt->table) rc = print_default_table(exp, exp_dir);
            goto done;
        }
        gkd_cell_config c0;
        if ((rc = gkd_experiment_cell(exp, 0, &c0))) goto done;
        gkd_slurm_options so = GKD_SLURM_OPTIONS_INIT;
        so.partition = opt->slurm.partition ? opt->slurm.partition : (*c0.slurm.partition ? c0.slurm.partition : NULL);
        so.time = opt->slurm.time ? opt->slurm.time : c0.slurm.time;
        so.cpus_per_task = opt->slurm.cpus_per_task > 0 ? opt->slurm.cpus_per_task : c0.slurm.cpus_per_task;
        so.mem = opt->slurm.mem ? opt->slurm.mem : (*c0.slurm.mem ? c0.slurm.mem : NULL);
        so.max_parallel = opt->slurm.max_parallel;
        /* Bad Slurm options are refused before anything is written. */
        if ((rc = gkd_slurm_options_check(&so))) goto done;
        if ((rc = gkd_mkdir_p(exp_dir)) || (rc = write_experiment_files(exp_dir, exp))) goto done;
        char *cmd = NULL, job[64];
        if ((rc = gkd_slurm_gkd_command(&cmd, NULL, path, opt->results))) goto done;
        rc = gkd_slurm_run_array(job, sizeof job, gkd_experiment_name(exp), exp_dir,
                                 (int)gkd_experiment_num_cells(exp), &so, cmd);
        free(cmd);
        if (!rc) printf("submitted job array %s (%zu cells); follow it with: gkd status %s\n", job,
                        gkd_experiment_num_cells(exp), exp_dir);
        goto done;
    }
    if ((rc = run_local(exp, exp_dir, &sel, opt))) goto done;
    if (opt->table && opt->cell < 0) rc = print_default_table(exp, exp_dir);
done:
    free(sel.cells);
    gkd_experiment_free(exp);
    return rc;
}
