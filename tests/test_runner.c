/* The experiment runner end to end: `gkd run` ($GKD_BIN) in child processes
 * on the tiny grid (tests/fixtures/experiments/tiny_grid.yaml, 8 cells) and
 * the resume grid (tiny_resume.yaml, 2 long cells), results under /tmp.
 * Checks the results layout, shared teacher/SFT artifacts, skipping finished
 * cells, resuming after SIGKILL, --jobs, --only, --dry-run, --cell, refusing
 * a changed config, invalid files and progress output. Cells run with
 * OMP_NUM_THREADS=1 (the results are thread-count independent; the Slurm
 * end-to-end test compares against a run with the default threads). */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"

#include "gkd/checkpoint.h"
#include "gkd/model.h"
#include "helpers.h"

#define GRID "tiny_grid"
#define NCELLS 8

static const char *cell_dirs[NCELLS] = {
    "divergence=fkl,lambda=0,seed=1", "divergence=fkl,lambda=0,seed=2", "divergence=fkl,lambda=1,seed=1",
    "divergence=fkl,lambda=1,seed=2", "divergence=rkl,lambda=0,seed=1", "divergence=rkl,lambda=0,seed=2",
    "divergence=rkl,lambda=1,seed=1", "divergence=rkl,lambda=1,seed=2",
};

static const char *cell_files[] = {"config.yaml", "config.hash", "axes.csv",        "run.json", "metrics.csv",
                                   "eval.csv",    "timings.csv", "checkpoint.ckpt", "final.ckpt", "done"};
#define NCELL_FILES (sizeof cell_files / sizeof *cell_files)

/* ---- helpers ------------------------------------------------------------- */

static char tmpdir[64];
static char grid_yaml[PATH_MAX], resume_yaml[PATH_MAX];

/* The uninterrupted --jobs 1 run of the tiny grid, made once per test case
 * (unchecked fixture) and read by several tests. */
static char ref_dir[PATH_MAX];

static const char *gkd_bin(void) {
    const char *b = getenv("GKD_BIN");
    return b ? b : "bin/gkd";
}

static void fixture_paths(void) {
    const char *root = getenv("GKD_ROOT");
    if (!root) root = ".";
    snprintf(grid_yaml, sizeof grid_yaml, "%s/tests/fixtures/experiments/tiny_grid.yaml", root);
    snprintf(resume_yaml, sizeof resume_yaml, "%s/tests/fixtures/experiments/tiny_resume.yaml", root);
}

static void make_tmpdir(void) {
    fixture_paths();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gkd_test_runner_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_dir(const char *dir) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_runner: cannot remove %s\n", dir);
}

static void remove_tmpdir(void) { remove_dir(tmpdir); }

/* Whole file, NUL-terminated, malloc'd; NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0) break;
        len += n;
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}


/* snprintf into a PATH_MAX buffer; a path that does not fit fails the test. */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && n < PATH_MAX, "path too long");
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static size_t count_lines(const char *text) {
    size_t n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

static size_t count_substr(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Start `gkd <args...>` with stdout and stderr to files (or stderr to a pipe
 * read end returned in *stderr_pipe), OMP_NUM_THREADS=1. */
static pid_t spawn_gkd(const char *out_path, const char *err_path, int *stderr_pipe, char *const args[]) {
    int pfd[2] = {-1, -1};
    if (stderr_pipe) ck_assert_int_eq(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = stderr_pipe ? pfd[1] : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0) _exit(127);
        dup2(out, 1);
        dup2(err, 2);
        if (stderr_pipe) close(pfd[0]);
        setenv("OMP_NUM_THREADS", "1", 1);
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)gkd_bin();
        for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    if (stderr_pipe) {
        close(pfd[1]);
        *stderr_pipe = pfd[0];
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) ck_assert_int_eq(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Output of the last run_gkd(). */
static char *last_out, *last_err;

/* Run `gkd <args...>` to completion; stdout/stderr in last_out/last_err. */
static int run_gkd(char *const args[]) {
    char out[PATH_MAX], err[PATH_MAX];
    pathf(out, "%s/stdout.txt", tmpdir);
    snprintf(err, sizeof err, "%s/stderr.txt", tmpdir);
    int rc = wait_exit(spawn_gkd(out, err, NULL, args));
    free(last_out);
    free(last_err);
    last_out = slurp(out, NULL);
    last_err = slurp(err, NULL);
    ck_assert_ptr_nonnull(last_out);
    ck_assert_ptr_nonnull(last_err);
    return rc;
}

static void cell_path(char *out, const char *results, const char *exp, const char *cell, const char *file) {
    pathf(out, "%s/%s/%s/%s", results, exp, cell, file);
}

/* metrics.csv and eval.csv of every cell identical in two results roots. */
static void assert_same_results(const char *a, const char *b, const char *exp, const char *const *cells,
                                int ncells) {
    const char *files[] = {"metrics.csv", "eval.csv"};
    for (int i = 0; i < ncells; i++)
        for (int f = 0; f < 2; f++) {
            char pa[PATH_MAX], pb[PATH_MAX];
            size_t la, lb;
            cell_path(pa, a, exp, cells[i], files[f]);
            cell_path(pb, b, exp, cells[i], files[f]);
            char *ta = slurp(pa, &la), *tb = slurp(pb, &lb);
            ck_assert_msg(ta && tb, "missing %s or %s", pa, pb);
            ck_assert_msg(count_lines(ta) > 1, "%s has no rows", pa);
            ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "%s and %s differ", pa, pb);
            free(ta);
            free(tb);
        }
}

/* Number of entries of dir whose names start with prefix and contain no '.'
 * after it (directories, not lock files). */
static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && !strchr(e->d_name + strlen(prefix), '.')) n++;
    closedir(d);
    return n;
}

/* Every regular file below dir with its mtime, one "path mtime_ns\n" line each. */
static void snapshot(char **out, size_t *len, size_t *cap, const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX];
        pathf(p, "%s/%s", dir, e->d_name);
        struct stat st;
        ck_assert_int_eq(lstat(p, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            snapshot(out, len, cap, p);
            continue;
        }
        char line[PATH_MAX + 64];
        int n = snprintf(line, sizeof line, "%s %lld.%09ld %lld\n", p, (long long)st.st_mtim.tv_sec,
                         st.st_mtim.tv_nsec, (long long)st.st_size);
        while (*len + (size_t)n + 1 > *cap) *out = realloc(*out, *cap = *cap * 2 + 4096);
        memcpy(*out + *len, line, (size_t)n + 1);
        *len += (size_t)n;
    }
    closedir(d);
}

static char *tree_snapshot(const char *dir) {
    char *s = NULL;
    size_t len = 0, cap = 0;
    s = malloc(cap = 4096);
    s[0] = '\0';
    snapshot(&s, &len, &cap, dir);
    return s;
}

/* Two snapshots equal; otherwise fail with the first differing line only
 * (Check cannot carry long messages). */
static void assert_same_snapshot(const char *before, const char *after) {
    size_t i = 0;
    while (before[i] && before[i] == after[i]) i++;
    if (!before[i] && !after[i]) return;
    const char *b = before + i, *a = after + i;
    while (b > before && b[-1] != '\n') b--, a--;
    char lb[512], la[512];
    snprintf(lb, sizeof lb, "%.*s", (int)strcspn(b, "\n"), b);
    snprintf(la, sizeof la, "%.*s", (int)strcspn(a, "\n"), a);
    ck_abort_msg("files changed: before '%s', after '%s'", lb, la);
}

/* ---- the reference run (unchecked fixture) --------------------------------- */

static char ref_tmp[64];
static char *ref_stdout, *ref_stderr;
static int ref_rc = -1;

static void ref_setup(void) {
    fixture_paths();
    snprintf(ref_tmp, sizeof ref_tmp, "/tmp/gkd_test_runner_ref_XXXXXX");
    if (!mkdtemp(ref_tmp)) return;
    snprintf(ref_dir, sizeof ref_dir, "%s/results", ref_tmp);
    char out[PATH_MAX], err[PATH_MAX];
    pathf(out, "%s/stdout.txt", ref_tmp);
    snprintf(err, sizeof err, "%s/stderr.txt", ref_tmp);
    char *args[] = {"run", grid_yaml, "--results", ref_dir, NULL};
    ref_rc = wait_exit(spawn_gkd(out, err, NULL, args));
    ref_stdout = slurp(out, NULL);
    ref_stderr = slurp(err, NULL);
}

static void ref_teardown(void) {
    if (*ref_tmp) remove_dir(ref_tmp);
}

static void assert_ref_ok(void) {
    ck_assert_msg(ref_rc == 0, "reference gkd run exited %d: %s", ref_rc, ref_stderr ? ref_stderr : "");
    ck_assert_ptr_nonnull(ref_stdout);
    ck_assert_ptr_nonnull(ref_stderr);
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_full_run_layout) {
    assert_ref_ok();
    char p[PATH_MAX];
    /* grid.csv: every cell in grid order (last axis fastest). */
    pathf(p, "%s/" GRID "/grid.csv", ref_dir);
    char *grid = slurp(p, NULL);
    ck_assert_ptr_nonnull(grid);
    ck_assert_str_eq(grid, "cell,dir,divergence,lambda,seed\n"
                           "0,\"divergence=fkl,lambda=0,seed=1\",fkl,0,1\n"
                           "1,\"divergence=fkl,lambda=0,seed=2\",fkl,0,2\n"
                           "2,\"divergence=fkl,lambda=1,seed=1\",fkl,1,1\n"
                           "3,\"divergence=fkl,lambda=1,seed=2\",fkl,1,2\n"
                           "4,\"divergence=rkl,lambda=0,seed=1\",rkl,0,1\n"
                           "5,\"divergence=rkl,lambda=0,seed=2\",rkl,0,2\n"
                           "6,\"divergence=rkl,lambda=1,seed=1\",rkl,1,1\n"
                           "7,\"divergence=rkl,lambda=1,seed=2\",rkl,1,2\n");
    free(grid);
    /* Every documented file in every cell, no leftover running/failed markers. */
    for (int i = 0; i < NCELLS; i++) {
        for (size_t f = 0; f < NCELL_FILES; f++) {
            cell_path(p, ref_dir, GRID, cell_dirs[i], cell_files[f]);
            ck_assert_msg(exists(p), "missing %s", p);
        }
        cell_path(p, ref_dir, GRID, cell_dirs[i], "running");
        ck_assert_msg(!exists(p), "%s left behind", p);
        cell_path(p, ref_dir, GRID, cell_dirs[i], "failed");
        ck_assert_msg(!exists(p), "%s written", p);
        /* 20 distill steps: a header and 20 rows; evaluations at 0, 10, 20. */
        cell_path(p, ref_dir, GRID, cell_dirs[i], "metrics.csv");
        char *m = slurp(p, NULL);
        ck_assert_uint_eq(count_lines(m), 21);
        ck_assert(!strncmp(m, "step,", 5));
        free(m);
        cell_path(p, ref_dir, GRID, cell_dirs[i], "eval.csv");
        char *e = slurp(p, NULL);
        ck_assert_uint_eq(count_lines(e), 4);
        ck_assert_ptr_nonnull(strstr(e, "\n0,"));
        ck_assert_ptr_nonnull(strstr(e, "\n10,"));
        ck_assert_ptr_nonnull(strstr(e, "\n20,"));
        free(e);
        cell_path(p, ref_dir, GRID, cell_dirs[i], "timings.csv");
        char *t = slurp(p, NULL);
        ck_assert_uint_eq(count_lines(t), 21);
        free(t);
        /* teacher_eval.csv: the teacher evaluated as the student with the
         * cell's settings, eval.csv's columns, one row; KL to itself is 0. */
        cell_path(p, ref_dir, GRID, cell_dirs[i], "teacher_eval.csv");
        gkd_csv *te = NULL, *ev = NULL;
        ck_assert_msg(gkd_csv_read(&te, p) == 0, "%s", gkd_last_error());
        cell_path(p, ref_dir, GRID, cell_dirs[i], "eval.csv");
        ck_assert_int_eq(gkd_csv_read(&ev, p), 0);
        ck_assert_int_eq(te->ncols, ev->ncols);
        for (int k = 0; k < te->ncols; k++) ck_assert_str_eq(te->header[k], ev->header[k]);
        ck_assert_uint_eq(te->nrows, 1);
        ck_assert_str_eq(gkd_csv_get(te, 0, gkd_csv_col(te, "step")), "0");
        ck_assert_double_eq_tol(strtod(gkd_csv_get(te, 0, gkd_csv_col(te, "fkl_ref")), NULL), 0.0, 1e-6);
        gkd_csv_free(te);
        gkd_csv_free(ev);
        /* axes.csv holds this cell's axis values. */
        cell_path(p, ref_dir, GRID, cell_dirs[i], "axes.csv");
        char *a = slurp(p, NULL), want[256];
        snprintf(want, sizeof want, "key,value\ndivergence,%s\nlambda,%d\nseed,%d\n", i < 4 ? "fkl" : "rkl",
                 (i / 2) % 2, i % 2 + 1);
        ck_assert_str_eq(a, want);
        free(a);
        /* config.hash: 16 hex digits and a newline. */
        cell_path(p, ref_dir, GRID, cell_dirs[i], "config.hash");
        char *h = slurp(p, NULL);
        ck_assert_uint_eq(strlen(h), 17);
        ck_assert_uint_eq(strspn(h, "0123456789abcdef"), 16);
        free(h);
        /* run.json: finished, with the provenance fields. */
        cell_path(p, ref_dir, GRID, cell_dirs[i], "run.json");
        char *j = slurp(p, NULL);
        const char *keys[] = {"\"gkd_version\": ", "\"git_commit\": ", "\"compiler\": ", "\"blas\": ",
                              "\"threads\": 1,",   "\"host\": ",       "\"started\": \"", "\"ended\": \""};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            ck_assert_msg(strstr(j, keys[k]) != NULL, "%s: no %s in\n%s", p, keys[k], j);
        free(j);
    }
    /* One teacher for the whole grid, one SFT student per seed, each trained once. */
    pathf(p, "%s/" GRID "/shared", ref_dir);
    ck_assert_int_eq(count_entries(p, "teacher-"), 1);
    ck_assert_int_eq(count_entries(p, "student-"), 2);
    ck_assert_uint_eq(count_substr(ref_stderr, "training the shared teacher"), 1);
    ck_assert_uint_eq(count_substr(ref_stderr, "training the shared student"), 2);
    /* Cells that differ only in seed have different SFT inits; cells that
     * share a seed start from the same one: equal step-0 evaluations. */
    char *e0[NCELLS];
    for (int i = 0; i < NCELLS; i++) {
        cell_path(p, ref_dir, GRID, cell_dirs[i], "eval.csv");
        char *e = slurp(p, NULL), *row = strchr(e, '\n') + 1;
        *strchr(row, '\n') = '\0';
        e0[i] = strdup(row);
        free(e);
    }
    /* fkl vs rkl changes val_loss (the divergence itself), so compare within
     * a divergence: lambda 0 and 1 share the init of their seed. */
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 2; s++) ck_assert_str_eq(e0[4 * d + s], e0[4 * d + 2 + s]);
    ck_assert_str_ne(e0[0], e0[1]);
    for (int i = 0; i < NCELLS; i++) free(e0[i]);
    /* The default table on stdout. */
    ck_assert_ptr_nonnull(strstr(ref_stdout, "| divergence | exact_match"));
    ck_assert_ptr_nonnull(strstr(ref_stdout, "\n| fkl |"));
    ck_assert_ptr_nonnull(strstr(ref_stdout, "\n| rkl |"));
    ck_assert_ptr_nonnull(strstr(ref_stdout, "n = 2 seeds"));
    ck_assert_ptr_nonnull(strstr(ref_stdout, "--rows divergence --cols lambda"));
}
END_TEST

/* With stderr not a terminal: plain lines, one per cell start and evaluation. */
START_TEST(test_progress_plain) {
    assert_ref_ok();
    ck_assert_ptr_null(strchr(ref_stderr, '\r'));
    ck_assert_ptr_null(strchr(ref_stderr, '\033'));
    ck_assert_ptr_nonnull(strstr(ref_stderr, "[0/8 cells] divergence=fkl,lambda=0,seed=1: start\n"));
    ck_assert_ptr_nonnull(strstr(ref_stderr, "[7/8 cells] divergence=rkl,lambda=1,seed=2: start\n"));
    ck_assert_ptr_nonnull(strstr(ref_stderr, "[3/8 cells] divergence=fkl,lambda=1,seed=2: step 10/20 eval val_loss "));
    ck_assert_uint_eq(count_substr(ref_stderr, ": start\n"), NCELLS);
    ck_assert_uint_eq(count_substr(ref_stderr, " eval val_loss "), 3 * NCELLS);
}
END_TEST

/* With stderr a terminal (through script(1), if installed): one status line
 * redrawn in place with a cell count and an ETA. */
START_TEST(test_progress_tty) {
    if (access("/usr/bin/script", X_OK) != 0) return;
    char cmd[4 * PATH_MAX], out[PATH_MAX];
    pathf(out, "%s/typescript", tmpdir);
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 /usr/bin/script -qec \"'%s' run '%s' --results '%s/r' --cell 0\" '%s' "
             ">/dev/null 2>&1 </dev/null",
             gkd_bin(), grid_yaml, tmpdir, out);
    ck_assert_int_eq(system(cmd), 0);
    char *t = slurp(out, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(strstr(t, "\r\033[K[0/1 cells] divergence=fkl,lambda=0,seed=1: step 1/20 "));
    ck_assert_ptr_nonnull(strstr(t, "(ETA "));
    ck_assert_ptr_nonnull(strstr(t, "step 20/20 eval val_loss "));
    free(t);
}
END_TEST

/* A finished experiment runs nothing again: no file changes, the table is printed. */
START_TEST(test_skip_completed) {
    assert_ref_ok();
    char exp[PATH_MAX];
    pathf(exp, "%s/" GRID, ref_dir);
    char *before = tree_snapshot(exp);
    char *args[] = {"run", grid_yaml, "--results", ref_dir, NULL};
    ck_assert_int_eq(run_gkd(args), 0);
    char *after = tree_snapshot(exp);
    assert_same_snapshot(before, after);
    ck_assert_str_eq(last_err, "gkd: all 8 cells already done\n");
    ck_assert_str_eq(last_out, ref_stdout);
    free(before);
    free(after);
}
END_TEST

/* Two cells at once give the same bytes as one at a time. */
START_TEST(test_jobs_two_same_results) {
    assert_ref_ok();
    char res[PATH_MAX];
    pathf(res, "%s/jobs2", tmpdir);
    char *args[] = {"run", grid_yaml, "--results", res, "--jobs", "2", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    assert_same_results(ref_dir, res, GRID, cell_dirs, NCELLS);
    char p[PATH_MAX];
    pathf(p, "%s/" GRID "/shared", res);
    ck_assert_int_eq(count_entries(p, "teacher-"), 1);
    ck_assert_int_eq(count_entries(p, "student-"), 2);
    ck_assert_uint_eq(count_substr(last_err, "training the shared teacher"), 1);
    ck_assert_uint_eq(count_substr(last_err, "training the shared student"), 2);
    ck_assert_uint_eq(count_substr(last_err, ": started (pid "), NCELLS);
    /* The teacher is trained with every core before the pool starts, not by
     * the first cell on its share while the others wait. */
    ck_assert_ptr_nonnull(strstr(last_err, ": started (pid "));
    ck_assert(strstr(last_err, "training the shared teacher") < strstr(last_err, ": started (pid "));
    ck_assert_ptr_nonnull(strstr(last_out, "| divergence | exact_match"));
}
END_TEST

static int cell_ran(const char *res, int i) {
    char p[PATH_MAX];
    cell_path(p, res, GRID, cell_dirs[i], "done");
    int done = exists(p);
    pathf(p, "%s/%s/%s", res, GRID, cell_dirs[i]);
    ck_assert_int_eq(done, exists(p)); /* no half-made cell directories */
    return done;
}

START_TEST(test_only_filter) {
    assert_ref_ok();
    char res[PATH_MAX];
    pathf(res, "%s/only", tmpdir);
    char *args[] = {"run", grid_yaml, "--results", res, "--only", "divergence=rkl,lambda=1", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    for (int i = 0; i < NCELLS; i++) ck_assert_msg(cell_ran(res, i) == (i == 6 || i == 7), "cell %d", i);
    ck_assert_uint_eq(count_substr(last_err, ": start\n"), 2);
    const char *cells[] = {cell_dirs[6], cell_dirs[7]};
    assert_same_results(ref_dir, res, GRID, cells, 2);
    /* Numeric values match numerically; an unknown axis is an error. */
    char *args2[] = {"run", grid_yaml, "--results", res, "--only", "lambda=1.0,seed=1", "--dry-run", NULL};
    ck_assert_int_eq(run_gkd(args2), 0);
    ck_assert_str_eq(last_out, "2\tdivergence=fkl,lambda=1,seed=1\n6\tdivergence=rkl,lambda=1,seed=1\n2 of 8 cells\n");
    char *args3[] = {"run", grid_yaml, "--results", res, "--only", "temperature=1", NULL};
    ck_assert_int_eq(run_gkd(args3), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert_ptr_nonnull(strstr(last_err, "gkd run: "));
    ck_assert_ptr_nonnull(strstr(last_err, "--only"));
    /* An empty results directory would mean the file system's root. */
    char *args5[] = {"run", grid_yaml, "--results", "", "--dry-run", NULL};
    ck_assert_int_eq(run_gkd(args5), 1);
    ck_assert_msg(strstr(last_err, "--results needs a directory"), "%s", last_err);
    /* A value no cell has selects nothing: an error, not "0 of 8 cells". */
    char *args4[] = {"run", grid_yaml, "--results", res, "--only", "lambda=7", "--dry-run", NULL};
    ck_assert_int_eq(run_gkd(args4), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert_msg(strstr(last_err, "--only 'lambda=7' matches none of the grid's 8 cells"), "%s", last_err);
    ck_assert_str_eq(last_out, "");
}
END_TEST

START_TEST(test_dry_run_writes_nothing) {
    char res[PATH_MAX];
    pathf(res, "%s/dry", tmpdir);
    char *args[] = {"run", grid_yaml, "--results", res, "--dry-run", NULL};
    ck_assert_int_eq(run_gkd(args), 0);
    ck_assert_str_eq(last_out, "0\tdivergence=fkl,lambda=0,seed=1\n1\tdivergence=fkl,lambda=0,seed=2\n"
                               "2\tdivergence=fkl,lambda=1,seed=1\n3\tdivergence=fkl,lambda=1,seed=2\n"
                               "4\tdivergence=rkl,lambda=0,seed=1\n5\tdivergence=rkl,lambda=0,seed=2\n"
                               "6\tdivergence=rkl,lambda=1,seed=1\n7\tdivergence=rkl,lambda=1,seed=2\n"
                               "8 of 8 cells\n");
    ck_assert_str_eq(last_err, "");
    ck_assert(!exists(res));
}
END_TEST

START_TEST(test_cell_index) {
    assert_ref_ok();
    char res[PATH_MAX];
    pathf(res, "%s/cell", tmpdir);
    char *args[] = {"run", grid_yaml, "--results", res, "--cell", "5", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    for (int i = 0; i < NCELLS; i++) ck_assert_msg(cell_ran(res, i) == (i == 5), "cell %d", i);
    const char *cells[] = {cell_dirs[5]};
    assert_same_results(ref_dir, res, GRID, cells, 1);
    /* Only the artifacts cell 5 needs: the teacher and the seed-2 student. */
    char p[PATH_MAX];
    pathf(p, "%s/" GRID "/shared", res);
    ck_assert_int_eq(count_entries(p, "teacher-"), 1);
    ck_assert_int_eq(count_entries(p, "student-"), 1);
    /* The whole grid.csv is written even for one cell (gkd status reads it). */
    pathf(p, "%s/" GRID "/grid.csv", res);
    char *g = slurp(p, NULL);
    ck_assert_uint_eq(count_lines(g), NCELLS + 1);
    free(g);
    char *args2[] = {"run", grid_yaml, "--results", res, "--cell", "8", NULL};
    ck_assert_int_eq(run_gkd(args2), 1);
    ck_assert_str_eq(last_err, "gkd run: --cell 8: the experiment has 8 cells (0..7)\n");
}
END_TEST

/* Replace the first occurrence of `from` in text (malloc'd result). */
static char *replace(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' not in the fixture", from);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t pre = (size_t)(at - text);
    memcpy(out, text, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    return out;
}

START_TEST(test_changed_config_refused) {
    char res[PATH_MAX], yaml[PATH_MAX], p[PATH_MAX];
    pathf(res, "%s/changed", tmpdir);
    pathf(yaml, "%s/tiny_grid.yaml", tmpdir);
    char *orig = slurp(grid_yaml, NULL);
    th_write_file(yaml, orig);
    char *args[] = {"run", yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    cell_path(p, res, GRID, cell_dirs[0], "config.hash");
    char *hash0 = slurp(p, NULL);
    char exp[PATH_MAX];
    pathf(exp, "%s/" GRID, res);
    char *before = tree_snapshot(exp);

    char *edited = replace(orig, "  lr: 1e-3\n", "  lr: 2e-3\n");
    th_write_file(yaml, edited);
    ck_assert_int_eq(run_gkd(args), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert(!strncmp(last_err, "gkd run: ", 9));
    ck_assert_ptr_nonnull(strstr(last_err, cell_dirs[0]));
    ck_assert_ptr_nonnull(strstr(last_err, "--force"));
    ck_assert_msg(strstr(last_err, "(distill.lr: 0.001 -> 0.002; ") != NULL, "%s", last_err);
    ck_assert_str_eq(last_out, "");
    char *after = tree_snapshot(exp);
    assert_same_snapshot(before, after); /* nothing touched, not even grid.csv */

    /* The whole grid is refused too (cell 0 is part of it). */
    char *all[] = {"run", yaml, "--results", res, NULL};
    ck_assert_int_eq(run_gkd(all), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    cell_path(p, res, GRID, cell_dirs[1], "done");
    ck_assert(!exists(p));

    char *forced[] = {"run", yaml, "--results", res, "--cell", "0", "--force", NULL};
    ck_assert_msg(run_gkd(forced) == 0, "%s", last_err);
    cell_path(p, res, GRID, cell_dirs[0], "config.hash");
    char *hash1 = slurp(p, NULL);
    ck_assert_str_ne(hash0, hash1);
    cell_path(p, res, GRID, cell_dirs[0], "config.yaml");
    char *cfg = slurp(p, NULL);
    ck_assert_ptr_nonnull(strstr(cfg, "0.002"));
    cell_path(p, res, GRID, cell_dirs[0], "done");
    ck_assert(exists(p));
    /* Rerun with the edited file: done, nothing to do. */
    ck_assert_int_eq(run_gkd(args), 0);

    /* A cell written by a gkd without a key the schema now has: the
     * message names the key rather than the next line's value. */
    char *older = replace(cfg, "    loss_eps: 0.1\n", "");
    cell_path(p, res, GRID, cell_dirs[0], "config.yaml");
    th_write_file(p, older);
    cell_path(p, res, GRID, cell_dirs[0], "config.hash");
    th_write_file(p, "0000000000000000\n");
    ck_assert_int_eq(run_gkd(args), 1);
    ck_assert_msg(strstr(last_err, "(distill.replay.loss_eps: not in the old config -> 0.1; ") != NULL,
                  "%s", last_err);
    free(older);
    free(orig);
    free(edited);
    free(before);
    free(after);
    free(hash0);
    free(hash1);
    free(cfg);
}
END_TEST

/* A snapshot without the line of the file at `path` (which must be there).
 * Not inlined: GCC 12's -Wdangling-pointer then takes the snapshot for a
 * pointer into tree_snapshot's frame. */
static __attribute__((noinline)) char *without_line(const char *snap, const char *path) {
    const char *line = strstr(snap, path), *end = line ? strchr(line, '\n') : NULL;
    ck_assert_msg(end != NULL, "%s not in the snapshot", path);
    char *out = malloc(strlen(snap) + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, snap, (size_t)(line - snap));
    strcpy(out + (line - snap), end + 1);
    return out;
}

/* `labels` in the experiment file: no cell's config changes, so a
 * finished grid is labelled without rerunning anything; gkd run writes
 * labels.csv (and removes it with the labels) and gkd table uses it,
 * with --label overriding it. */
/* distill.lr_min sets the floor of the cosine decay; lr_min = lr holds the
 * rate constant after warmup, so the first N steps of a run are a run of N
 * steps. Unset, the floor is lr / 10 and the key stays out of the hash. */
START_TEST(test_lr_min_schedule) {
    char res[PATH_MAX], yaml[PATH_MAX], p[PATH_MAX];
    pathf(res, "%s/lr_min", tmpdir);
    pathf(yaml, "%s/tiny_grid.yaml", tmpdir);
    char *orig = slurp(grid_yaml, NULL);
    char *constant = replace(orig, "  lr: 1e-3\n", "  lr: 1e-3\n  lr_min: 1e-3\n");
    th_write_file(yaml, constant);
    char *args[] = {"run", yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);

    cell_path(p, res, GRID, cell_dirs[0], "metrics.csv");
    gkd_csv *m = NULL;
    ck_assert_int_eq(gkd_csv_read(&m, p), 0);
    int lr = gkd_csv_col(m, "lr");
    ck_assert_int_ge(lr, 0);
    ck_assert_uint_eq(m->nrows, 20);
    for (size_t r = 0; r < m->nrows; r++) ck_assert_str_eq(gkd_csv_get(m, r, lr), "0.001");
    gkd_csv_free(m);
    cell_path(p, res, GRID, cell_dirs[0], "config.yaml");
    char *cfg = slurp(p, NULL);
    ck_assert_ptr_nonnull(strstr(cfg, "lr_min: 0.001"));
    cell_path(p, res, GRID, cell_dirs[0], "config.hash");
    char *hash_constant = slurp(p, NULL);

    /* Unset: the cosine ends at lr / 10 and the hash is the grid's own. */
    pathf(res, "%s/lr_min_unset", tmpdir);
    th_write_file(yaml, orig);
    char *plain[] = {"run", yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(plain) == 0, "%s", last_err);
    cell_path(p, res, GRID, cell_dirs[0], "metrics.csv");
    ck_assert_int_eq(gkd_csv_read(&m, p), 0);
    double last = strtod(gkd_csv_get(m, m->nrows - 1, gkd_csv_col(m, "lr")), NULL);
    double expect = 1e-4 + (1e-3 - 1e-4) * 0.5 * (1.0 + cos(M_PI * 19.0 / 20.0));
    ck_assert_double_eq_tol(last, expect, 1e-12);
    gkd_csv_free(m);
    cell_path(p, res, GRID, cell_dirs[0], "config.yaml");
    char *cfg_plain = slurp(p, NULL);
    ck_assert_ptr_null(strstr(cfg_plain, "lr_min"));
    cell_path(p, res, GRID, cell_dirs[0], "config.hash");
    char *hash_plain = slurp(p, NULL);
    cell_path(p, ref_dir, GRID, cell_dirs[0], "config.hash");
    char *hash_ref = slurp(p, NULL);
    ck_assert_str_eq(hash_plain, hash_ref);
    ck_assert_str_ne(hash_plain, hash_constant);
    free(orig), free(constant), free(cfg), free(cfg_plain), free(hash_constant), free(hash_plain), free(hash_ref);
}
END_TEST

/* A finished cell without teacher_eval.csv (made before gkd wrote it) gets
 * only that on the next run: the same bytes a full run writes, nothing
 * else in the tree touched. */
START_TEST(test_teacher_eval_backfilled) {
    assert_ref_ok();
    char res[PATH_MAX], p[PATH_MAX], cmd[3 * PATH_MAX];
    pathf(res, "%s/backfill", tmpdir);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", ref_dir, res);
    ck_assert_int_eq(system(cmd), 0);
    cell_path(p, res, GRID, cell_dirs[3], "teacher_eval.csv");
    char *want = slurp(p, NULL);
    ck_assert_int_eq(unlink(p), 0);
    char exp[PATH_MAX];
    pathf(exp, "%s/" GRID, res);
    char *before = tree_snapshot(exp);
    char *args[] = {"run", grid_yaml, "--results", res, NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    char *got = slurp(p, NULL);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(unlink(p), 0);
    char *after = tree_snapshot(exp);
    assert_same_snapshot(before, after);
    free(want), free(got), free(before), free(after);
}
END_TEST

/* Two experiments with one name: the second, with other axes, is refused
 * before it touches the first's directory; --force runs it there anyway. */
START_TEST(test_same_name_other_experiment_refused) {
    char res[PATH_MAX], yaml[PATH_MAX], exp[PATH_MAX];
    pathf(res, "%s/samename", tmpdir);
    pathf(yaml, "%s/tiny_grid.yaml", tmpdir);
    char *orig = slurp(grid_yaml, NULL);
    th_write_file(yaml, orig);
    char *first[] = {"run", yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(first) == 0, "%s", last_err);
    pathf(exp, "%s/" GRID, res);
    char *before = tree_snapshot(exp);
    /* Same name, lambda no longer an axis. */
    char *other = replace(orig, "  lambda: [0, 1]\n", "  lambda: 0\n");
    th_write_file(yaml, other);
    char *second[] = {"run", yaml, "--results", res, NULL};
    ck_assert_int_eq(run_gkd(second), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert_msg(strstr(last_err, "holds another experiment's grid (grid.csv: cell,dir,divergence,lambda,seed), "
                                   "not this one's (cell,dir,divergence,seed): two experiments named 'tiny_grid'?"),
                  "%s", last_err);
    char *after = tree_snapshot(exp);
    assert_same_snapshot(before, after);
    char *forced[] = {"run", yaml, "--results", res, "--force", "--dry-run", NULL};
    ck_assert_msg(run_gkd(forced) == 0, "%s", last_err);
    /* More seeds of the same experiment keep its axes: not refused. */
    char *more = replace(orig, "seeds: [1, 2]\n", "seeds: [1, 2, 3]\n");
    th_write_file(yaml, more);
    char *dry[] = {"run", yaml, "--results", res, "--dry-run", NULL};
    ck_assert_msg(run_gkd(dry) == 0, "%s", last_err);
    free(orig), free(other), free(more), free(before), free(after);
}
END_TEST

START_TEST(test_labels_reach_the_table) {
    char res[PATH_MAX], yaml[PATH_MAX], p[PATH_MAX], exp[PATH_MAX];
    pathf(res, "%s/labels", tmpdir);
    pathf(yaml, "%s/tiny_grid.yaml", tmpdir);
    pathf(exp, "%s/" GRID, res);
    char *orig = slurp(grid_yaml, NULL);
    th_write_file(yaml, orig);
    char *args[] = {"run", yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    char *before = tree_snapshot(exp);
    pathf(p, "%s/labels.csv", exp);
    ck_assert(!exists(p));

    char *labelled = replace(orig, "seeds: [1, 2]\n",
                             "seeds: [1, 2]\nlabels:\n  exact_match: EM\n  divergence:fkl: 'Forward KL, $D_{KL}$'\n");
    th_write_file(yaml, labelled);
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    ck_assert_str_eq(last_err, "gkd: all 1 cells already done\n");
    char *labels = slurp(p, NULL);
    ck_assert_ptr_nonnull(labels);
    ck_assert_str_eq(labels, "key,text\nexact_match,EM\ndivergence:fkl,\"Forward KL, $D_{KL}$\"\n");
    /* Every other file as it was (the cell's config.hash included). */
    char *after = tree_snapshot(exp), *others = without_line(after, p);
    assert_same_snapshot(before, others);

    char *table[] = {"table", exp, "--rows", "divergence", "--metric", "exact_match", "--format", "latex", NULL};
    ck_assert_msg(run_gkd(table) == 0, "%s", last_err);
    ck_assert_msg(strstr(last_out, "Divergence & EM $\\uparrow$ \\\\") &&
                      strstr(last_out, "\nForward KL, $D_{KL}$ & "),
                  "%s", last_out);
    char *override[] = {"table", exp, "--rows", "divergence", "--metric", "exact_match", "--format", "latex",
                        "--label", "divergence:fkl=FKL", NULL};
    ck_assert_msg(run_gkd(override) == 0, "%s", last_err);
    ck_assert_msg(strstr(last_out, "Divergence & EM $\\uparrow$") && strstr(last_out, "\nFKL & ") &&
                      !strstr(last_out, "Forward KL"),
                  "%s", last_out);

    /* Labels removed from the file: labels.csv goes too, nothing else moves. */
    th_write_file(yaml, orig);
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    ck_assert(!exists(p));
    char *again = tree_snapshot(exp);
    assert_same_snapshot(before, again);
    free(orig), free(labelled), free(labels), free(before), free(after), free(others), free(again);
}
END_TEST

/* A cell made in one products mode (gkd/products.h) is refused by a run in
 * the other unless forced, and shared models of the two modes stay apart. */
/* A grid of students distilling the teacher's top-k rows on data batches
 * scores the training split once: one shared/teacher_cache-*.bin, built by
 * one cell (the runner's log line once, with two cells at a time), read by
 * all, and every cell's metrics, evaluations and final student equal those
 * of the grid that scores live (shared_teacher_cache: false). */
static const char topk_grid[] =
    "name: topk_grid\n"
    "task: {name: arith, digits: 1, train: 60, eval: 20}\n"
    "teacher:\n"
    "  model: {layers: 1, d_model: 32, heads: 2, context: 16}\n"
    "  train: {steps: 40, batch: 16, lr: 3e-3, warmup: 4}\n"
    "student:\n"
    "  model: {layers: 1, d_model: 16, heads: 2}\n"
    "  init: random\n"
    "distill:\n"
    "  steps: 6\n"
    "  batch: 8\n"
    "  divergence: [fkl, jsd(0.5)]\n"
    "  lambda: 0.5\n"
    "  per_example: true\n"
    "  teacher_topk: 4\n"
    "  loss_temperature: 2\n"
    "  max_new_tokens: 4\n"
    "  shared_teacher_cache: %s\n"
    "eval: {every: 3, n: 10}\n"
    "seeds: [1, 2]\n";

static int count_cache_files(const char *shared) {
    DIR *d = opendir(shared);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        n += !strncmp(e->d_name, "teacher_cache-", 14) && len > 4 && !strcmp(e->d_name + len - 4, ".bin");
    }
    closedir(d);
    return n;
}

START_TEST(test_grid_shares_one_teacher_cache) {
    char yaml[PATH_MAX], text[2048], cached[PATH_MAX], live[PATH_MAX], p[PATH_MAX];
    const char *flags[] = {"true", "false"};
    char *results[] = {cached, live};
    pathf(cached, "%s/cached", tmpdir);
    pathf(live, "%s/live", tmpdir);
    for (int v = 0; v < 2; v++) {
        pathf(yaml, "%s/topk_%d.yaml", tmpdir, v);
        snprintf(text, sizeof text, topk_grid, flags[v]);
        th_write_file(yaml, text);
        char *args[] = {"run", yaml, "--results", results[v], "--jobs", "2", NULL};
        ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
        pathf(p, "%s/topk_grid/shared", results[v]);
        ck_assert_int_eq(count_cache_files(p), v == 0 ? 1 : 0);
        ck_assert_uint_eq(count_substr(last_err, "building the shared teacher cache"), v == 0 ? 1 : 0);
    }
    /* The same bytes, cell by cell: 4 cells (2 divergences x 2 seeds). */
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "cd '%s/topk_grid' && n=0 && for f in */final.ckpt */metrics.csv */eval.csv; do "
             "cmp -s \"$f\" '%s/topk_grid/'\"$f\" || exit 1; n=$((n+1)); done && test $n -eq 12",
             cached, live);
    ck_assert_msg(system(cmd) == 0, "the cached grid's cells differ from the live grid's");
}
END_TEST

START_TEST(test_products_mode_not_mixed) {
    char res[PATH_MAX], p[PATH_MAX], exp[PATH_MAX];
    pathf(res, "%s/modes", tmpdir);
    pathf(exp, "%s/" GRID, res);
    char *args[] = {"run", grid_yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    char *before = tree_snapshot(exp);
    setenv("GKD_PRODUCTS", "openblas", 1);
    int rc = run_gkd(args);
    ck_assert_int_eq(rc, 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert_msg(strstr(last_err, "other products") && strstr(last_err, "--force"), "%s", last_err);
    char *after = tree_snapshot(exp);
    assert_same_snapshot(before, after);
    char *forced[] = {"run", grid_yaml, "--results", res, "--cell", "0", "--force", NULL};
    rc = run_gkd(forced);
    unsetenv("GKD_PRODUCTS");
    ck_assert_msg(rc == 0, "%s", last_err);
    cell_path(p, res, GRID, cell_dirs[0], "run.json");
    char *json = slurp(p, NULL);
    ck_assert_msg(strstr(json, "\"products\": \"openblas\""), "%s", json);
    /* Its teacher was trained apart from the reproducible one. */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls -d '%s'/shared/teacher-*-openblas > /dev/null 2>&1", exp);
    ck_assert_int_eq(system(cmd), 0);
    /* And the default mode refuses it in turn. */
    ck_assert_int_eq(run_gkd(args), 1);
    ck_assert_ptr_nonnull(strstr(last_err, "other products"));
    free(before);
    free(after);
    free(json);
}
END_TEST

START_TEST(test_invalid_file) {
    char res[PATH_MAX], yaml[PATH_MAX];
    pathf(res, "%s/invalid", tmpdir);
    pathf(yaml, "%s/bad.yaml", tmpdir);
    char *orig = slurp(grid_yaml, NULL);
    /* An unknown key: "lr" misspelt on its own line. */
    char *bad = replace(orig, "  lr: 1e-3\n", "  lrr: 1e-3\n");
    th_write_file(yaml, bad);
    int line = 1;
    for (const char *q = bad; q < strstr(bad, "  lrr:"); q++) line += *q == '\n';
    char *args[] = {"run", yaml, "--results", res, NULL};
    ck_assert_int_eq(run_gkd(args), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s:%d:3: ", yaml, line);
    ck_assert_msg(strstr(last_err, want) != NULL, "want '%s...' got '%s'", want, last_err);
    ck_assert_str_eq(last_out, "");
    ck_assert(!exists(res));
    /* A value out of range. */
    char *bad2 = replace(orig, "seeds: [1, 2]", "seeds: [1, -2]");
    th_write_file(yaml, bad2);
    ck_assert_int_eq(run_gkd(args), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    snprintf(want, sizeof want, "%s:", yaml);
    ck_assert_ptr_nonnull(strstr(last_err, want));
    ck_assert(!exists(res));
    /* A missing file. */
    char *args2[] = {"run", "/nonexistent/exp.yaml", "--results", res, NULL};
    ck_assert_int_eq(run_gkd(args2), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert(!exists(res));
    free(orig);
    free(bad);
    free(bad2);
}
END_TEST

/* Read the child's stderr until a line containing `needle`, then SIGKILL it.
 * Returns 1 if the line was seen before the child ended. */
static int kill_after_line(pid_t pid, int fd, const char *needle, char *log, size_t cap) {
    size_t len = strlen(log);
    int seen = 0;
    while (!seen) {
        if (len + 1 >= cap) break;
        ssize_t n = read(fd, log + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        log[len] = '\0';
        seen = strstr(log, needle) != NULL;
    }
    if (seen) kill(pid, SIGKILL);
    close(fd);
    int rc = wait_exit(pid);
    if (seen) ck_assert_msg(rc == 128 + SIGKILL, "gkd run ended with %d before the kill", rc);
    return seen;
}

static int metrics_rows(const char *res, const char *exp, const char *cell) {
    char p[PATH_MAX];
    cell_path(p, res, exp, cell, "metrics.csv");
    char *m = slurp(p, NULL);
    if (!m) return -1;
    int n = (int)count_lines(m) - 1;
    free(m);
    return n;
}

/* SIGKILL in the middle of each of the two cells; the resumed runs end with
 * the bytes of an uninterrupted run. */
START_TEST(test_resume_after_sigkill) {
    const char *cells[] = {"divergence=fkl,seed=1", "divergence=rkl,seed=1"};
    char ref[PATH_MAX], res[PATH_MAX], out[PATH_MAX], p[PATH_MAX];
    pathf(ref, "%s/uninterrupted", tmpdir);
    pathf(res, "%s/killed", tmpdir);
    pathf(out, "%s/killed.out", tmpdir);
    char *args_ref[] = {"run", resume_yaml, "--results", ref, "--no-table", NULL};
    ck_assert_msg(run_gkd(args_ref) == 0, "%s", last_err);

    static char log[1 << 16];
    char *args[] = {"run", resume_yaml, "--results", res, "--no-table", NULL};
    /* First kill: cell 0 after its evaluation at step 40 (of 300). */
    int fd;
    log[0] = '\0';
    pid_t pid = spawn_gkd(out, NULL, &fd, args);
    ck_assert_msg(kill_after_line(pid, fd, "divergence=fkl,seed=1: step 40/300 eval", log, sizeof log),
                  "never saw step 40: %s", log);
    int rows = metrics_rows(res, "tiny_resume", cells[0]);
    ck_assert_msg(rows >= 40 && rows < 300, "cell 0 has %d rows after the kill", rows);
    cell_path(p, res, "tiny_resume", cells[0], "done");
    ck_assert(!exists(p));
    cell_path(p, res, "tiny_resume", cells[0], "running"); /* the killed run's marker is left */
    ck_assert(exists(p));
    cell_path(p, res, "tiny_resume", cells[0], "checkpoint.ckpt");
    ck_assert(exists(p));

    /* Second kill: resumes cell 0, finishes it, killed in cell 1 at step 100. */
    log[0] = '\0';
    pid = spawn_gkd(out, NULL, &fd, args);
    ck_assert_msg(kill_after_line(pid, fd, "divergence=rkl,seed=1: step 100/300 eval", log, sizeof log),
                  "never saw cell 1 step 100: %s", log);
    ck_assert_msg(strstr(log, "training the shared") == NULL, "shared artifacts trained again: %s", log);
    cell_path(p, res, "tiny_resume", cells[0], "done");
    ck_assert(exists(p));
    cell_path(p, res, "tiny_resume", cells[1], "done");
    ck_assert(!exists(p));
    rows = metrics_rows(res, "tiny_resume", cells[1]);
    ck_assert_msg(rows >= 100 && rows < 300, "cell 1 has %d rows after the kill", rows);

    /* Third run: finishes cell 1 only. */
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    ck_assert_ptr_nonnull(strstr(last_err, "1 of 2 cells already done, running 1"));
    ck_assert_ptr_null(strstr(last_err, "training the shared"));
    assert_same_results(ref, res, "tiny_resume", cells, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(metrics_rows(res, "tiny_resume", cells[i]), 300);
        cell_path(p, res, "tiny_resume", cells[i], "running");
        ck_assert(!exists(p));
        /* timings.csv is truncated with the rest: one row per step. */
        cell_path(p, res, "tiny_resume", cells[i], "timings.csv");
        char *t = slurp(p, NULL);
        ck_assert_uint_eq(count_lines(t), 301);
        free(t);
        /* The final checkpoints match too. */
        char a[PATH_MAX], b[PATH_MAX];
        size_t la, lb;
        cell_path(a, ref, "tiny_resume", cells[i], "final.ckpt");
        cell_path(b, res, "tiny_resume", cells[i], "final.ckpt");
        char *ta = slurp(a, &la), *tb = slurp(b, &lb);
        ck_assert_msg(la == lb && !memcmp(ta, tb, la), "%s and %s differ", a, b);
        free(ta);
        free(tb);
    }
}
END_TEST

/* SIGKILL while the shared teacher trains: the next run trains it again
 * from scratch (it has no checkpoint) and the results are unchanged. */
START_TEST(test_resume_killed_teacher) {
    assert_ref_ok();
    char res[PATH_MAX], out[PATH_MAX];
    pathf(res, "%s/teacherkill", tmpdir);
    pathf(out, "%s/teacherkill.out", tmpdir);
    static char log[1 << 16];
    log[0] = '\0';
    char *args[] = {"run", grid_yaml, "--results", res, "--cell", "3", NULL};
    int fd;
    pid_t pid = spawn_gkd(out, NULL, &fd, args);
    ck_assert(kill_after_line(pid, fd, "training the shared teacher", log, sizeof log));
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    const char *cells[] = {cell_dirs[3]};
    assert_same_results(ref_dir, res, GRID, cells, 1);
}
END_TEST

/* --executor slurm with a stand-in sbatch on PATH that logs its calls: the
 * task command has absolute paths even for a relative results root and
 * another working directory; --only/--cell and changed cells are refused
 * before anything is submitted; a finished grid submits nothing. */
START_TEST(test_slurm_executor) {
    assert_ref_ok();
    char bin[PATH_MAX], sbatch[PATH_MAX], calls[PATH_MAX], p[PATH_MAX], yaml[PATH_MAX];
    pathf(bin, "%s/bin", tmpdir);
    pathf(sbatch, "%s/sbatch", bin);
    pathf(calls, "%s/sbatch.calls", tmpdir);
    ck_assert_int_eq(mkdir(bin, 0755), 0);
    char script[2 * PATH_MAX];
    snprintf(script, sizeof script, "#!/bin/sh\necho \"$*\" >>'%s'\necho 4242\n", calls);
    th_write_file(sbatch, script);
    ck_assert_int_eq(chmod(sbatch, 0755), 0);
    char path_env[2 * PATH_MAX];
    snprintf(path_env, sizeof path_env, "%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", path_env, 1);
    pathf(yaml, "%s/tiny_grid.yaml", tmpdir);
    char *orig = slurp(grid_yaml, NULL);
    th_write_file(yaml, orig);
    ck_assert_int_eq(chdir(tmpdir), 0);

    /* A bad time limit is refused before anything is written or submitted. */
    char *bad_time[] = {"run", yaml, "--executor", "slurm", "--results", "rel", "--time", "x;id", NULL};
    ck_assert_int_eq(run_gkd(bad_time), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    pathf(p, "%s/rel", tmpdir);
    ck_assert_msg(!exists(p), "%s written before the refusal", p);
    ck_assert(!exists(calls));
    char *submit[] = {"run", yaml, "--executor", "slurm", "--results", "rel", "--cpus-per-task", "1", NULL};
    ck_assert_msg(run_gkd(submit) == 0, "%s", last_err);
    ck_assert(!strncmp(last_out, "submitted job array 4242 (8 cells)", 34));
    pathf(p, "%s/rel/" GRID "/slurm/array.sbatch", tmpdir);
    char *sb = slurp(p, NULL);
    ck_assert_ptr_nonnull(sb);
    char want[4 * PATH_MAX];
    snprintf(want, sizeof want, "\nOMP_NUM_THREADS=$SLURM_CPUS_PER_TASK %s run %s --cell $SLURM_ARRAY_TASK_ID --results %s/rel\n",
             gkd_bin(), yaml, tmpdir);
    ck_assert_msg(strstr(sb, want) != NULL, "no '%s' in the script", want);
    ck_assert_ptr_nonnull(strstr(sb, "#SBATCH --array=0-7\n"));
    ck_assert_ptr_nonnull(strstr(sb, "#SBATCH --cpus-per-task=1\n"));
    ck_assert_ptr_nonnull(strstr(sb, "#SBATCH --time=00:05:00\n")); /* from the file's slurm section */
    free(sb);
    pathf(p, "%s/rel/" GRID "/grid.csv", tmpdir);
    ck_assert(exists(p));
    pathf(p, "%s/rel/" GRID "/%s", tmpdir, cell_dirs[0]);
    ck_assert(!exists(p)); /* the tasks make the cells */
    char *c = slurp(calls, NULL);
    ck_assert_uint_eq(count_lines(c), 1);
    free(c);

    char *only[] = {"run", yaml, "--executor", "slurm", "--results", "rel", "--only", "lambda=1", NULL};
    ck_assert_int_eq(run_gkd(only), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    char *one[] = {"run", yaml, "--executor", "slurm", "--results", "rel", "--cell", "1", NULL};
    ck_assert_int_eq(run_gkd(one), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);

    /* A cell with results of the old config: refused, nothing submitted. */
    char *local[] = {"run", yaml, "--results", "rel", "--cell", "0", NULL};
    ck_assert_msg(run_gkd(local) == 0, "%s", last_err);
    char *edited = replace(orig, "  lr: 1e-3\n", "  lr: 2e-3\n");
    th_write_file(yaml, edited);
    ck_assert_int_eq(run_gkd(submit), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert_ptr_nonnull(strstr(last_err, "--force"));
    c = slurp(calls, NULL);
    ck_assert_uint_eq(count_lines(c), 1);
    free(c);
    /* --force clears the changed cell, then submits. */
    char *forced[] = {"run", yaml, "--executor", "slurm", "--results", "rel", "--force", NULL};
    ck_assert_msg(run_gkd(forced) == 0, "%s", last_err);
    pathf(p, "%s/rel/" GRID "/%s", tmpdir, cell_dirs[0]);
    ck_assert(!exists(p));
    c = slurp(calls, NULL);
    ck_assert_uint_eq(count_lines(c), 2);
    free(c);

    /* A finished grid: nothing submitted, nothing written, the table printed. */
    char exp[PATH_MAX];
    pathf(exp, "%s/" GRID, ref_dir);
    char *before = tree_snapshot(exp);
    char *done[] = {"run", grid_yaml, "--executor", "slurm", "--results", ref_dir, NULL};
    ck_assert_msg(run_gkd(done) == 0, "%s", last_err);
    ck_assert_str_eq(last_err, "gkd: all 8 cells already done; nothing submitted\n");
    ck_assert_ptr_nonnull(strstr(last_out, "| divergence | exact_match"));
    char *after = tree_snapshot(exp);
    assert_same_snapshot(before, after);
    c = slurp(calls, NULL);
    ck_assert_uint_eq(count_lines(c), 2);
    free(c);
    free(orig);
    free(edited);
    free(before);
    free(after);
}
END_TEST

/* Every cell fails (the teacher checkpoint is garbage): each gets a `failed`
 * marker with the error, the others still run (--jobs 1 and 2), the exit
 * status is 1. With the file replaced by the reference run's trained teacher,
 * a rerun retries exactly the failed cells and gives the reference bytes. */
START_TEST(test_failed_cells_retried) {
    assert_ref_ok();
    char yaml[PATH_MAX], ckpt[PATH_MAX], res[PATH_MAX], p[PATH_MAX];
    pathf(yaml, "%s/fail.yaml", tmpdir);
    pathf(ckpt, "%s/teacher.ckpt", tmpdir);
    pathf(res, "%s/fail", tmpdir);
    th_write_file(ckpt, "not a checkpoint at all\n");
    char *orig = slurp(grid_yaml, NULL), teacher[PATH_MAX + 64];
    snprintf(teacher, sizeof teacher, "teacher:\n  checkpoint: %s\nstudent:", ckpt);
    const char *from = strstr(orig, "teacher:\n"), *to = strstr(orig, "student:");
    ck_assert(from && to && from < to);
    char *text = malloc(strlen(orig) + strlen(teacher) + 1);
    snprintf(text, strlen(orig) + strlen(teacher) + 1, "%.*s%s%s", (int)(from - orig), orig, teacher,
             to + strlen("student:"));
    th_write_file(yaml, text);
    /* A teacher.checkpoint that does not load is refused before anything
     * is written, in one line. */
    char *first[] = {"run", yaml, "--results", res, NULL};
    ck_assert_int_eq(run_gkd(first), 1);
    ck_assert_uint_eq(count_lines(last_err), 1);
    ck_assert_ptr_nonnull(strstr(last_err, "teacher.checkpoint"));
    /* Any format gkd reads is tried: none fits. */
    ck_assert_ptr_nonnull(strstr(last_err, "not a model format gkd reads"));
    ck_assert(!exists(res));

    /* The reference run's teacher in place of the garbage; every cell now
     * fails inside (a garbage checkpoint.ckpt to resume from). */
    pathf(p, "%s/" GRID "/shared", ref_dir);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp %s/teacher-*/final.ckpt '%s'", p, ckpt);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 0; i < NCELLS; i++) {
        pathf(p, "%s/" GRID "/%s", res, cell_dirs[i]);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
        ck_assert_int_eq(system(cmd), 0);
        cell_path(p, res, GRID, cell_dirs[i], "checkpoint.ckpt");
        th_write_file(p, "not a checkpoint at all\n");
    }
    for (int jobs = 1; jobs <= 2; jobs++) {
        char *args[] = {"run", yaml, "--results", res, "--jobs", jobs == 1 ? "1" : "2", NULL};
        ck_assert_int_eq(run_gkd(args), 1);
        ck_assert_ptr_nonnull(strstr(last_err, "gkd run: 8 of 8 cells failed"));
        ck_assert_uint_eq(count_substr(last_err, "not a gkd checkpoint"), NCELLS);
        ck_assert_str_eq(last_out, "");
        for (int i = 0; i < NCELLS; i++) {
            cell_path(p, res, GRID, cell_dirs[i], "failed");
            char *f = slurp(p, NULL);
            ck_assert_msg(f != NULL, "no %s", p);
            ck_assert_msg(strstr(f, "not a gkd checkpoint") && strchr(f, '\n') > strstr(f, "checkpoint"),
                          "%s: %s", p, f);
            free(f);
            cell_path(p, res, GRID, cell_dirs[i], "done");
            ck_assert(!exists(p));
            cell_path(p, res, GRID, cell_dirs[i], "running");
            ck_assert(!exists(p));
        }
    }
    /* Only one cell selected: its own message, not the summary. */
    char *one[] = {"run", yaml, "--results", res, "--cell", "4", NULL};
    ck_assert_int_eq(run_gkd(one), 1);
    ck_assert_uint_eq(count_lines(last_err) - count_substr(last_err, ": start\n"), 1);
    ck_assert_ptr_nonnull(strstr(last_err, "not a gkd checkpoint"));

    /* Without the garbage the failed cells run again, to the reference bytes. */
    for (int i = 0; i < NCELLS; i++) {
        cell_path(p, res, GRID, cell_dirs[i], "checkpoint.ckpt");
        ck_assert_int_eq(unlink(p), 0);
    }
    char *args[] = {"run", yaml, "--results", res, NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    ck_assert_uint_eq(count_substr(last_err, "training the shared teacher"), 0);
    assert_same_results(ref_dir, res, GRID, cell_dirs, NCELLS);
    for (int i = 0; i < NCELLS; i++) {
        cell_path(p, res, GRID, cell_dirs[i], "failed");
        ck_assert(!exists(p));
    }
    free(orig);
    free(text);
}
END_TEST

/* 1 while pid exists and is not a zombie. */
static int process_alive(pid_t pid) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/* SIGKILL of a --jobs 2 parent takes its cell processes with it (they must
 * not race with the rerun), and the rerun resumes both cells to the bytes of
 * an uninterrupted --jobs 1 run. */
START_TEST(test_resume_jobs_parent_killed) {
    const char *cells[] = {"divergence=fkl,seed=1", "divergence=rkl,seed=1"};
    char ref[PATH_MAX], res[PATH_MAX], out[PATH_MAX], p[PATH_MAX];
    pathf(ref, "%s/uninterrupted", tmpdir);
    pathf(res, "%s/killed", tmpdir);
    pathf(out, "%s/killed.out", tmpdir);
    char *args_ref[] = {"run", resume_yaml, "--results", ref, "--no-table", NULL};
    ck_assert_msg(run_gkd(args_ref) == 0, "%s", last_err);

    /* stderr to a file, not a pipe: a closed pipe would kill the cells by SIGPIPE. */
    char errp[PATH_MAX];
    pathf(errp, "%s/killed.err", tmpdir);
    char *args[] = {"run", resume_yaml, "--results", res, "--no-table", "--jobs", "2", NULL};
    pid_t pid = spawn_gkd(out, errp, NULL, args);
    char *log = NULL;
    for (int t = 0; t < 6000; t++) {
        free(log);
        log = slurp(errp, NULL);
        if (log && strstr(log, ": step 40/300 eval")) break;
        usleep(2000);
    }
    ck_assert_msg(log && strstr(log, ": step 40/300 eval"), "never saw step 40: %s", log ? log : "");
    kill(pid, SIGKILL);
    ck_assert_int_eq(wait_exit(pid), 128 + SIGKILL);
    pid_t children[2];
    int nchildren = 0;
    for (const char *q = log; (q = strstr(q, "started (pid ")) && nchildren < 2; q++) {
        long v = strtol(q + strlen("started (pid "), NULL, 10);
        ck_assert_int_gt(v, 1);
        children[nchildren++] = (pid_t)v;
    }
    ck_assert_int_eq(nchildren, 2);
    for (int i = 0; i < 2; i++) {
        int alive = 1;
        for (int t = 0; t < 300 && (alive = process_alive(children[i])); t++) usleep(10000);
        ck_assert_msg(!alive, "cell process %d outlived the killed parent", (int)children[i]);
    }
    for (int i = 0; i < 2; i++) {
        cell_path(p, res, "tiny_resume", cells[i], "done");
        ck_assert_msg(!exists(p), "%s: the cell finished after its parent was killed", cells[i]);
    }
    free(log);
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    assert_same_results(ref, res, "tiny_resume", cells, 2);
}
END_TEST

/* A process killed between creating a CSV file and writing its header
 * leaves an empty file; with no checkpoint yet, the rerun starts over
 * instead of failing on it (shared teacher and cell alike). */
START_TEST(test_resume_empty_logs) {
    assert_ref_ok();
    char res[PATH_MAX], p[PATH_MAX], shared[PATH_MAX];
    static char cmd[16 * PATH_MAX];
    pathf(res, "%s/empty", tmpdir);
    pathf(shared, "%s/" GRID "/shared", ref_dir);
    /* The same teacher directory name as in the reference run. */
    snprintf(cmd, sizeof cmd,
             "set -e; d='%s/" GRID "'; t=$(cd '%s' && ls -d teacher-* | grep -v lock); mkdir -p \"$d/shared/$t\" "
             "\"$d/%s\"; : >\"$d/shared/$t/eval.csv\"; : >\"$d/shared/$t/metrics.csv\"; "
             "cp '%s/" GRID "/%s/config.hash' \"$d/%s/\"; : >\"$d/%s/metrics.csv\"; : >\"$d/%s/eval.csv\"; "
             "printf 'step,sa' >\"$d/%s/timings.csv\"",
             res, shared, cell_dirs[0], ref_dir, cell_dirs[0], cell_dirs[0], cell_dirs[0], cell_dirs[0], cell_dirs[0]);
    ck_assert_int_eq(system(cmd), 0);
    char *args[] = {"run", grid_yaml, "--results", res, "--cell", "0", NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    ck_assert_uint_eq(count_substr(last_err, "training the shared teacher"), 1);
    const char *cells[] = {cell_dirs[0]};
    assert_same_results(ref_dir, res, GRID, cells, 1);
    cell_path(p, res, GRID, cell_dirs[0], "timings.csv");
    char *t = slurp(p, NULL);
    ck_assert_uint_eq(count_lines(t), 21);
    free(t);
}
END_TEST

/* A cell another process is running (it holds <cell>/lock) is not touched:
 * one error line, no markers written; the other cells still run. */
START_TEST(test_cell_lock) {
    assert_ref_ok();
    char res[PATH_MAX], dir[PATH_MAX], p[PATH_MAX];
    pathf(res, "%s/locked", tmpdir);
    pathf(dir, "%s/" GRID "/%s", res, cell_dirs[1]);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    pathf(p, "%s/lock", dir);
    int fd = open(p, O_CREAT | O_RDWR, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX), 0);
    char *one[] = {"run", grid_yaml, "--results", res, "--cell", "1", NULL};
    ck_assert_int_eq(run_gkd(one), 1);
    ck_assert_uint_eq(count_lines(last_err) - count_substr(last_err, ": start\n"), 1);
    ck_assert_ptr_nonnull(strstr(last_err, "is being run by another process"));
    const char *markers[] = {"running", "failed", "done", "config.hash", "metrics.csv"};
    for (int m = 0; m < 5; m++) {
        pathf(p, "%s/%s", dir, markers[m]);
        ck_assert_msg(!exists(p), "%s written", p);
    }
    /* A lock that is a dangling symbolic link is refused, not followed:
     * its target is never created. */
    char lk[PATH_MAX], target[PATH_MAX], dir2[PATH_MAX];
    pathf(dir2, "%s/" GRID "/%s", res, cell_dirs[2]);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir2);
    ck_assert_int_eq(system(cmd), 0);
    pathf(lk, "%s/lock", dir2);
    pathf(target, "%s/made-through-a-link", tmpdir);
    ck_assert_int_eq(symlink(target, lk), 0);
    char *two[] = {"run", grid_yaml, "--results", res, "--cell", "2", NULL};
    ck_assert_int_eq(run_gkd(two), 1);
    ck_assert_msg(strstr(last_err, "is a symbolic link"), "%s", last_err);
    ck_assert(!exists(target));
    /* Among several cells, one another process holds is left to it: not
     * failed (no marker, exit 0), and said so. */
    char *some[] = {"run", grid_yaml, "--results", res, "--only", "seed=2,lambda=0", NULL};
    ck_assert_msg(run_gkd(some) == 0, "%s", last_err);
    ck_assert_ptr_null(strstr(last_err, "failed"));
    ck_assert_ptr_nonnull(strstr(last_err, "is being run by another process; left to it"));
    ck_assert_ptr_nonnull(strstr(last_err, "gkd: 1 of 2 cells were being run by another process"));
    ck_assert(cell_ran(res, 5));
    pathf(p, "%s/failed", dir);
    ck_assert(!exists(p));
    char *some2[] = {"run", grid_yaml, "--results", res, "--only", "seed=2,lambda=0", "--jobs", "2", NULL};
    ck_assert_msg(run_gkd(some2) == 0, "%s", last_err);
    ck_assert_ptr_nonnull(strstr(last_err, "gkd: 1 of 2 cells were being run by another process"));
    ck_assert(!exists(p));
    close(fd); /* releases the lock */
    ck_assert_msg(run_gkd(one) == 0, "%s", last_err);
    const char *cells[] = {cell_dirs[1], cell_dirs[5]};
    assert_same_results(ref_dir, res, GRID, cells, 2);
}
END_TEST

/* A Llama teacher trained from scratch and a Llama student with
 * grouped-query attention, distilled on-policy (lambda 1: the KV-cache
 * decoder) through gkd run; their checkpoints are format version 3. */
START_TEST(test_llama_cell) {
    char res[PATH_MAX], yaml[PATH_MAX], p[PATH_MAX];
    pathf(res, "%s/llama", tmpdir);
    pathf(yaml, "%s/llama.yaml", tmpdir);
    th_write_file(yaml, "name: llama\n"
                        "task: {name: arith, digits: 1, train: 200, eval: 20}\n"
                        "teacher:\n"
                        "  model: {arch: llama, layers: 1, d_model: 32, heads: 4, kv_heads: 2, context: 16}\n"
                        "  train: {steps: 30, batch: 16, lr: 3e-3, warmup: 5}\n"
                        "student:\n"
                        "  model: {arch: llama, layers: 1, d_model: 16, heads: 2, kv_heads: 1, untied_head: true}\n"
                        "  init: random\n"
                        "distill: {steps: 6, batch: 4, lr: 1e-3, divergence: fkl, lambda: 1, max_new_tokens: 4}\n"
                        "eval: {every: 3, n: 6}\n"
                        "seeds: [1]\n");
    char *args[] = {"run", yaml, "--results", res, NULL};
    ck_assert_msg(run_gkd(args) == 0, "%s", last_err);
    cell_path(p, res, "llama", "seed=1", "done");
    ck_assert_msg(exists(p), "%s", p);
    cell_path(p, res, "llama", "seed=1", "final.ckpt");
    size_t n;
    unsigned char *b = (unsigned char *)slurp(p, &n);
    ck_assert_uint_gt(n, 12);
    ck_assert_uint_eq(b[8], 3); /* format version 3: the architecture fields */
    free(b);
    gkd_model_config cfg;
    ck_assert_int_eq(gkd_checkpoint_read_config(&cfg, p), 0);
    ck_assert_int_eq(cfg.arch, GKD_ARCH_LLAMA);
    ck_assert_int_eq(cfg.n_kv_head, 1);
    ck_assert_int_eq(cfg.ffn_dim, 64); /* 8 * 16 / 3 rounded up to 32s */
    ck_assert_int_eq(cfg.untied_head, 1);
    cell_path(p, res, "llama", "seed=1", "config.yaml");
    char *config = slurp(p, NULL);
    ck_assert_ptr_nonnull(strstr(config, "arch: llama"));
    free(config);
}
END_TEST

Suite *runner_suite(void) {
    Suite *s = suite_create("runner");
    TCase *tc = tcase_create("run");
    tcase_add_unchecked_fixture(tc, ref_setup, ref_teardown);
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_llama_cell);
    tcase_add_test(tc, test_full_run_layout);
    tcase_add_test(tc, test_progress_plain);
    tcase_add_test(tc, test_progress_tty);
    tcase_add_test(tc, test_jobs_two_same_results);
    tcase_add_test(tc, test_only_filter);
    tcase_add_test(tc, test_dry_run_writes_nothing);
    tcase_add_test(tc, test_cell_index);
    tcase_add_test(tc, test_changed_config_refused);
    tcase_add_test(tc, test_labels_reach_the_table);
    tcase_add_test(tc, test_products_mode_not_mixed);
    tcase_add_test(tc, test_grid_shares_one_teacher_cache);
    tcase_add_test(tc, test_invalid_file);
    tcase_add_test(tc, test_resume_after_sigkill);
    tcase_add_test(tc, test_resume_killed_teacher);
    tcase_add_test(tc, test_resume_jobs_parent_killed);
    tcase_add_test(tc, test_resume_empty_logs);
    tcase_add_test(tc, test_cell_lock);
    tcase_add_test(tc, test_failed_cells_retried);
    tcase_add_test(tc, test_slurm_executor);
    tcase_add_test(tc, test_skip_completed);
    tcase_add_test(tc, test_lr_min_schedule);
    tcase_add_test(tc, test_teacher_eval_backfilled);
    tcase_add_test(tc, test_same_name_other_experiment_refused);
    suite_add_tcase(s, tc);
    return s;
}
