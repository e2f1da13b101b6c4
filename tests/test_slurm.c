/* Slurm array scripts, submission through a stand-in sbatch, task states from
 * stand-in squeue/sacct, cell markers, and `gkd status` on a fixture tree
 * (tests/fixtures/slurm_results/demo). The real-Slurm test is
 * tests/slurm/test_slurm_submit.sh (`make slurm-test`). */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gkd/cell_status.h"
#include "gkd/error.h"
#include "gkd/slurm.h"

#define DEMO "tests/fixtures/slurm_results/demo"

static char tmpdir[64]; /* mkdtemp of a short template */

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gkd_test_slurm_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void set_mtime(const char *path, time_t t) {
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* ---- script text ---------------------------------------------------------- */

START_TEST(test_script_all_options) {
    gkd_slurm_options opt = GKD_SLURM_OPTIONS_INIT;
    opt.partition = "short";
    opt.time = "02:30:00";
    opt.cpus_per_task = 4;
    opt.mem = "8G";
    opt.max_parallel = 10;
    char *text = NULL;
    ck_assert_int_eq(gkd_slurm_script(&text, "divergences", "/data/results/divergences", 42, &opt,
                                      "echo cell $SLURM_ARRAY_TASK_ID"),
                     0);
    const char *expected =
        "#!/bin/bash\n"
        "# gkd: experiment divergences, one array task per grid cell (42 cells).\n"
        "# Resubmitting runs only the cells that are not done.\n"
        "#SBATCH --job-name=gkd-divergences\n"
        "#SBATCH --array=0-41%10\n"
        "#SBATCH --cpus-per-task=4\n"
        "#SBATCH --partition=short\n"
        "#SBATCH --time=02:30:00\n"
        "#SBATCH --mem=8G\n"
        "#SBATCH --output=/data/results/divergences/slurm/%A_%a.out\n"
        "\n"
        "echo cell $SLURM_ARRAY_TASK_ID\n";
    ck_assert_str_eq(text, expected);
    free(text);
}
END_TEST

START_TEST(test_script_defaults_relative_dir) {
    gkd_slurm_options opt = GKD_SLURM_OPTIONS_INIT;
    char *text = NULL, cwd[PATH_MAX], expected[2 * PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(gkd_slurm_script(&text, "tiny", "./results/tiny", 1, &opt, "true\n"), 0);
    snprintf(expected, sizeof expected,
             "#!/bin/bash\n"
             "# gkd: experiment tiny, one array task per grid cell (1 cells).\n"
             "# Resubmitting runs only the cells that are not done.\n"
             "#SBATCH --job-name=gkd-tiny\n"
             "#SBATCH --array=0-0\n"
             "#SBATCH --cpus-per-task=1\n"
             "#SBATCH --time=01:00:00\n"
             "#SBATCH --output=%s/results/tiny/slurm/%%A_%%a.out\n"
             "\n"
             "true\n",
             cwd);
    ck_assert_str_eq(text, expected);
    free(text);
}
END_TEST

START_TEST(test_script_rejects_bad_options) {
    char *text = NULL;
    struct {
        const char *partition, *time, *mem, *name, *dir;
        int cpus, max_parallel, ncells;
        const char *needle;
    } bad[] = {
        {NULL, "1 hour", NULL, "x", "/r/x", 1, 0, 3, "time"},
        {NULL, NULL, NULL, "x", "/r/x", 1, 0, 3, "time"},
        {"a b", "10", NULL, "x", "/r/x", 1, 0, 3, "partition"},
        {NULL, "10", "8GB", "x", "/r/x", 1, 0, 3, "mem"},
        {NULL, "10", "G", "x", "/r/x", 1, 0, 3, "mem"},
        {NULL, "10", NULL, "x", "/r/x", 0, 0, 3, "cpus_per_task"},
        {NULL, "10", NULL, "x", "/r/x", 1, -1, 3, "max_parallel"},
        {NULL, "10", NULL, "x", "/r/x", 1, 0, 0, "at least one cell"},
        {NULL, "10", NULL, "a b", "/r/x", 1, 0, 3, "job name"},
        {NULL, "10", NULL, "x", "/my results/x", 1, 0, 3, "spaces"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gkd_slurm_options opt = GKD_SLURM_OPTIONS_INIT;
        opt.partition = bad[i].partition;
        opt.time = bad[i].time;
        opt.mem = bad[i].mem;
        opt.cpus_per_task = bad[i].cpus;
        opt.max_parallel = bad[i].max_parallel;
        ck_assert_int_eq(gkd_slurm_script(&text, bad[i].name, bad[i].dir, bad[i].ncells, &opt, "true"),
                         GKD_EINVAL);
        ck_assert_ptr_null(text);
        ck_assert_msg(strstr(gkd_last_error(), bad[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i,
                      gkd_last_error(), bad[i].needle);
    }
}
END_TEST

START_TEST(test_gkd_command_line) {
    make_tmpdir();
    char yaml[PATH_MAX], spaced[PATH_MAX], bin[PATH_MAX], expected[4 * PATH_MAX];
    const char *gkd_bin = getenv("GKD_BIN");
    ck_assert_ptr_nonnull(gkd_bin);
    ck_assert_ptr_nonnull(realpath(gkd_bin, bin));
    snprintf(yaml, sizeof yaml, "%s/exp.yaml", tmpdir);
    write_text(yaml, "name: x\n", 0644);
    char *cmd = NULL;
    ck_assert_int_eq(gkd_slurm_gkd_command(&cmd, gkd_bin, yaml, NULL), 0);
    snprintf(expected, sizeof expected,
             "OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK %s run %s --cell $SLURM_ARRAY_TASK_ID", bin, yaml);
    ck_assert_str_eq(cmd, expected);
    free(cmd);

    /* Paths with spaces or quotes are single-quoted for the shell. */
    snprintf(spaced, sizeof spaced, "%s/it's here", tmpdir);
    ck_assert_int_eq(mkdir(spaced, 0755), 0);
    strcat(spaced, "/e.yaml");
    write_text(spaced, "name: x\n", 0644);
    ck_assert_int_eq(gkd_slurm_gkd_command(&cmd, gkd_bin, spaced, "/data/res"), 0);
    snprintf(expected, sizeof expected,
             "OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK %s run '%s/it'\\''s here/e.yaml' --cell "
             "$SLURM_ARRAY_TASK_ID --results /data/res",
             bin, tmpdir);
    ck_assert_str_eq(cmd, expected);
    free(cmd);

    /* No program given: the running one (here the test binary). */
    char self[PATH_MAX];
    ck_assert_ptr_nonnull(realpath("/proc/self/exe", self));
    ck_assert_int_eq(gkd_slurm_gkd_command(&cmd, NULL, yaml, NULL), 0);
    snprintf(expected, sizeof expected,
             "OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK %s run %s --cell $SLURM_ARRAY_TASK_ID", self, yaml);
    ck_assert_str_eq(cmd, expected);
    free(cmd);

    ck_assert_int_eq(gkd_slurm_gkd_command(&cmd, gkd_bin, "/nonexistent/e.yaml", NULL), GKD_EIO);
    ck_assert_ptr_null(cmd);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "/nonexistent/e.yaml"));
    remove_tmpdir();
}
END_TEST

/* ---- submission with stand-in programs ------------------------------------- */

/* A directory of fake Slurm programs first in PATH (each test runs in its own
 * process, so PATH changes stay local). */
static void fake_bin(const char *name, const char *body) {
    char dir[PATH_MAX], path[PATH_MAX + 32], newpath[2 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/bin", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_text(path, body, 0755);
    snprintf(newpath, sizeof newpath, "%s:/usr/bin:/bin", dir);
    setenv("PATH", newpath, 1);
}

START_TEST(test_submit_records_job_ids) {
    make_tmpdir();
    char exp_dir[PATH_MAX], path[PATH_MAX + 64], job[32], expected[PATH_MAX + 64];
    snprintf(exp_dir, sizeof exp_dir, "%s/results/arith", tmpdir);
    /* Prints 4242, then 4243, ... and records its arguments. */
    char body[2 * PATH_MAX];
    snprintf(body, sizeof body,
             "#!/bin/sh\n"
             "n=$(cat %s/count 2>/dev/null || echo 4242)\n"
             "echo $((n + 1)) > %s/count\n"
             "echo \"$@\" > %s/args\n"
             "echo \"$n;gkdtest\"\n",
             tmpdir, tmpdir, tmpdir);
    fake_bin("sbatch", body);

    gkd_slurm_options opt = GKD_SLURM_OPTIONS_INIT;
    ck_assert_int_eq(gkd_slurm_run_array(job, sizeof job, "arith", exp_dir, 3, &opt, "true"), 0);
    ck_assert_str_eq(job, "4242");
    snprintf(path, sizeof path, "%s/args", tmpdir);
    snprintf(expected, sizeof expected, "--parsable %s/slurm/array.sbatch\n", exp_dir);
    ck_assert_str_eq(slurp(path), expected);
    snprintf(path, sizeof path, "%s/slurm/array.sbatch", exp_dir);
    ck_assert_ptr_nonnull(strstr(slurp(path), "#SBATCH --array=0-2\n"));
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(sb.st_mode & S_IXUSR);

    ck_assert_int_eq(gkd_slurm_submit(job, sizeof job, exp_dir), 0);
    ck_assert_str_eq(job, "4243");
    snprintf(path, sizeof path, "%s/slurm/jobs.txt", exp_dir);
    const char *jobs = slurp(path);
    ck_assert_int_eq(strncmp(jobs, "4242 submitted=", 15), 0);
    ck_assert_ptr_nonnull(strstr(jobs, "\n4243 submitted="));
    ck_assert_int_eq((int)strlen(jobs), 2 * (int)strlen("4242 submitted=2026-11-22T05:00:00Z\n"));
    ck_assert_int_eq(gkd_slurm_last_job(job, sizeof job, exp_dir), 0);
    ck_assert_str_eq(job, "4243");
    remove_tmpdir();
}
END_TEST

START_TEST(test_submit_errors) {
    make_tmpdir();
    char exp_dir[PATH_MAX], job[32];
    snprintf(exp_dir, sizeof exp_dir, "%s/results/arith", tmpdir);
    gkd_slurm_options opt = GKD_SLURM_OPTIONS_INIT;

    /* No script yet. */
    ck_assert_int_eq(gkd_slurm_submit(job, sizeof job, exp_dir), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "array.sbatch"));

    /* sbatch not installed. */
    setenv("PATH", "/nonexistent", 1);
    ck_assert_int_eq(gkd_slurm_run_array(job, sizeof job, "arith", exp_dir, 3, &opt, "true"), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "cannot run sbatch"));
    ck_assert_str_eq(job, "");

    /* sbatch refuses: its stderr line becomes the message. */
    fake_bin("sbatch", "#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid partition "
                       "name specified' >&2\nexit 1\n");
    ck_assert_int_eq(gkd_slurm_submit(job, sizeof job, exp_dir), GKD_EIO);
    ck_assert_str_eq(gkd_last_error(),
                     "sbatch failed (exit 1): sbatch: error: Batch job submission failed: Invalid "
                     "partition name specified");

    /* Output that is not a job id. */
    fake_bin("sbatch", "#!/bin/sh\necho 'Submitted batch job 12'\n");
    ck_assert_int_eq(gkd_slurm_submit(job, sizeof job, exp_dir), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "Submitted batch job 12"));

    /* Nothing was recorded. */
    ck_assert_int_eq(gkd_slurm_last_job(job, sizeof job, exp_dir), 0);
    ck_assert_str_eq(job, "");
    remove_tmpdir();
}
END_TEST

START_TEST(test_task_states) {
    make_tmpdir();
    gkd_slurm_task_state st[6];
    fake_bin("squeue", "#!/bin/sh\nprintf '77_0 RUNNING\\n77_1 PENDING\\n770_2 RUNNING\\n'\n");
    fake_bin("sacct", "#!/bin/sh\nprintf '77_0|RUNNING\\n77_2|COMPLETED\\n77_2.batch|COMPLETED\\n"
                      "77_3|TIMEOUT\\n77_4|CANCELLED by 0\\n'\n");
    ck_assert_int_eq(gkd_slurm_task_states(st, 6, "77"), 0);
    ck_assert_int_eq(st[0], GKD_SLURM_TASK_RUNNING);
    ck_assert_int_eq(st[1], GKD_SLURM_TASK_PENDING);
    ck_assert_int_eq(st[2], GKD_SLURM_TASK_COMPLETED);
    ck_assert_int_eq(st[3], GKD_SLURM_TASK_FAILED);
    ck_assert_int_eq(st[4], GKD_SLURM_TASK_FAILED);
    ck_assert_int_eq(st[5], GKD_SLURM_TASK_UNKNOWN);
    ck_assert_str_eq(gkd_slurm_task_state_name(st[3]), "failed");

    /* Job gone from the queue, no accounting: all unknown, not an error. */
    fake_bin("squeue", "#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n");
    fake_bin("sacct", "#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n");
    ck_assert_int_eq(gkd_slurm_task_states(st, 6, "77"), 0);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(st[i], GKD_SLURM_TASK_UNKNOWN);

    /* Pending tasks not expanded: a range. */
    fake_bin("squeue", "#!/bin/sh\nprintf '77_[2-4%%%%2] PENDING\\n77_1 RUNNING\\n'\n");
    ck_assert_int_eq(gkd_slurm_task_states(st, 6, "77"), 0);
    ck_assert_int_eq(st[0], GKD_SLURM_TASK_UNKNOWN);
    ck_assert_int_eq(st[1], GKD_SLURM_TASK_RUNNING);
    for (int i = 2; i <= 4; i++) ck_assert_int_eq(st[i], GKD_SLURM_TASK_PENDING);
    ck_assert_int_eq(st[5], GKD_SLURM_TASK_UNKNOWN);

    /* A controller that does not answer is an error. */
    fake_bin("squeue", "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n");
    ck_assert_int_eq(gkd_slurm_task_states(st, 6, "77"), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "Unable to contact"));
    ck_assert_int_eq(gkd_slurm_task_states(st, 6, "77; rm"), GKD_EINVAL);
    remove_tmpdir();
}
END_TEST

/* ---- markers and grid status ------------------------------------------------ */

/* A full disk when the failure is recorded: the write of `failed` fails
 * (here: a file size limit of 16 bytes, in a child process), and the cell
 * must not go on showing as running. */
START_TEST(test_failed_marker_on_full_disk) {
    make_tmpdir();
    ck_assert_int_eq(gkd_cell_mark_running(tmpdir), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {16, 16};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(3);
        int rc = gkd_cell_mark_failed(tmpdir, "the loss is not finite at step 12 of 400");
        _exit(rc == GKD_EIO ? 0 : rc == 0 ? 1 : 2);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "mark_failed under the size limit: %d", status);
    gkd_cell_state s;
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, time(NULL)), 0);
    ck_assert_str_eq(gkd_cell_state_name(s), "failed");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/running", tmpdir);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(test_cell_markers_lifecycle) {
    make_tmpdir();
    gkd_cell_state s;
    time_t now = time(NULL);
    char path[PATH_MAX + 32];
    setenv("SLURM_ARRAY_JOB_ID", "555", 1);
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, now), 0);
    ck_assert_int_eq(s, GKD_CELL_PENDING);

    ck_assert_int_eq(gkd_cell_mark_failed(tmpdir, "loss is NaN\nat step 3"), 0);
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, now), 0);
    ck_assert_int_eq(s, GKD_CELL_FAILED);
    snprintf(path, sizeof path, "%s/failed", tmpdir);
    ck_assert_int_eq(strncmp(slurp(path), "loss is NaN at step 3\nhost=", 27), 0);
    ck_assert_ptr_nonnull(strstr(slurp(path), "\njob=555_7\n"));

    /* A new attempt clears the old failure. */
    ck_assert_int_eq(gkd_cell_mark_running(tmpdir), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, time(NULL)), 0);
    ck_assert_int_eq(s, GKD_CELL_RUNNING);
    snprintf(path, sizeof path, "%s/running", tmpdir);
    char expected[64];
    snprintf(expected, sizeof expected, "pid=%ld\nhost=", (long)getpid());
    ck_assert_int_eq(strncmp(slurp(path), expected, strlen(expected)), 0);
    ck_assert_ptr_nonnull(strstr(slurp(path), "\njob=555_7\nstarted="));

    /* The heartbeat decides between running and stale. */
    set_mtime(path, now - GKD_CELL_STALE_SECONDS - 5);
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, now), 0);
    ck_assert_int_eq(s, GKD_CELL_STALE);
    ck_assert_int_eq(gkd_cell_heartbeat(tmpdir), 0);
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, time(NULL)), 0);
    ck_assert_int_eq(s, GKD_CELL_RUNNING);

    ck_assert_int_eq(gkd_cell_mark_done(tmpdir), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(gkd_cell_state_read(&s, tmpdir, now), 0);
    ck_assert_int_eq(s, GKD_CELL_DONE);
    ck_assert_int_eq(gkd_cell_heartbeat(tmpdir), GKD_EIO);
    remove_tmpdir();
}
END_TEST

/* Heartbeats of the fixture: cells 1 and 5 fresh at t0, cell 4 an hour old. */
static time_t touch_demo(void) {
    time_t t0 = time(NULL);
    set_mtime(DEMO "/cells/0001/running", t0);
    set_mtime(DEMO "/cells/0005/running", t0);
    set_mtime(DEMO "/cells/0004/running", t0 - 3600);
    return t0;
}

START_TEST(test_grid_status_fixture) {
    time_t t0 = touch_demo();
    gkd_grid_status *st = NULL;
    ck_assert_int_eq(gkd_grid_status_read(&st, DEMO, t0 + 10), 0);
    ck_assert_int_eq(st->ncells, 6);
    ck_assert_int_eq(st->naxes, 3);
    ck_assert_str_eq(st->axes[0], "divergence");
    ck_assert_str_eq(st->axes[2], "seed");
    static const gkd_cell_state want[6] = {GKD_CELL_DONE,    GKD_CELL_RUNNING, GKD_CELL_FAILED,
                                           GKD_CELL_PENDING, GKD_CELL_STALE,   GKD_CELL_RUNNING};
    static const char *const steps[6] = {"", "200", "", "", "50", ""};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(st->cells[i].cell, i);
        ck_assert_msg(st->cells[i].state == want[i], "cell %d: %s", i, gkd_cell_state_name(st->cells[i].state));
        ck_assert_str_eq(st->cells[i].last_step, steps[i]);
    }
    ck_assert_str_eq(st->cells[5].values[0], "jsd(0.1)"); /* quoted in the file */
    ck_assert_str_eq(st->cells[2].dir, "cells/0002");
    ck_assert_int_eq(st->counts[GKD_CELL_DONE], 1);
    ck_assert_int_eq(st->counts[GKD_CELL_RUNNING], 2);
    ck_assert_int_eq(st->counts[GKD_CELL_FAILED], 1);
    ck_assert_int_eq(st->counts[GKD_CELL_STALE], 1);
    ck_assert_int_eq(st->counts[GKD_CELL_PENDING], 1);
    gkd_grid_status_free(st);

    /* Much later every heartbeat has stopped: cell 5's old failure shows. */
    ck_assert_int_eq(gkd_grid_status_read(&st, DEMO, t0 + 100000), 0);
    ck_assert_int_eq(st->cells[1].state, GKD_CELL_STALE);
    ck_assert_int_eq(st->cells[5].state, GKD_CELL_FAILED);
    gkd_grid_status_free(st);
}
END_TEST

START_TEST(test_grid_status_bad_input) {
    make_tmpdir();
    gkd_grid_status *st = NULL;
    char path[PATH_MAX + 32];
    ck_assert_int_eq(gkd_grid_status_read(&st, "/nonexistent/results/x", 0), GKD_EIO);
    ck_assert_str_eq(gkd_last_error(), "/nonexistent/results/x: no such results directory");
    ck_assert_int_eq(gkd_grid_status_read(&st, tmpdir, 0), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "grid.csv: no such file"));
    snprintf(path, sizeof path, "%s/grid.csv", tmpdir);
    write_text(path, "index,dir,seed\n0,c0,1\n", 0644);
    ck_assert_int_eq(gkd_grid_status_read(&st, tmpdir, 0), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "grid.csv:1: header must start with cell,dir"));
    write_text(path, "cell,dir,seed\n0,c0,1\n1,c1\n", 0644);
    ck_assert_int_eq(gkd_grid_status_read(&st, tmpdir, 0), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "grid.csv:3: 2 fields, header has 3"));
    write_text(path, "cell,dir,seed\n0,c0,1\n2,c2,1\n", 0644);
    ck_assert_int_eq(gkd_grid_status_read(&st, tmpdir, 0), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "grid.csv:3: cell 2 out of order (expected 1)"));
    write_text(path, "cell,dir,seed\nx,c0,1\n", 0644);
    ck_assert_int_eq(gkd_grid_status_read(&st, tmpdir, 0), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "grid.csv:2"));
    ck_assert_ptr_null(st);
    /* No axes and no cells is a valid, empty grid. */
    write_text(path, "cell,dir\r\n", 0644);
    ck_assert_int_eq(gkd_grid_status_read(&st, tmpdir, 0), 0);
    ck_assert_int_eq(st->ncells, 0);
    ck_assert_int_eq(st->naxes, 0);
    gkd_grid_status_free(st);
    remove_tmpdir();
}
END_TEST

/* Runs `$GKD_BIN args` and returns its stdout; exit status in *status. */
static char *run_gkd(const char *args, int *status) {
    static char out[1 << 16];
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", getenv("GKD_BIN"), args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int ws = pclose(p);
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return out;
}

START_TEST(test_status_command) {
    touch_demo();
    int status;
    const char *out = run_gkd("status " DEMO, &status);
    ck_assert_int_eq(status, 0);
    const char *expected =
        "cell  state    step  divergence  lambda  seed  dir\n"
        "0     done        -  fkl         0.0     1     cells/0000\n"
        "1     running   200  rkl         0.0     1     cells/0001\n"
        "2     failed      -  jsd(0.1)    0.0     1     cells/0002\n"
        "3     pending     -  fkl         1.0     1     cells/0003\n"
        "4     stale      50  rkl         1.0     1     cells/0004\n"
        "5     running     -  jsd(0.1)    1.0     1     cells/0005\n"
        "\n"
        "6 cells: 1 done, 2 running, 1 failed, 1 stale, 1 pending\n"
        "last Slurm job: 4250 (output in " DEMO "/slurm/4250_<cell>.out)\n";
    ck_assert_str_eq(out, expected);

    out = run_gkd("status /nonexistent/results/x", &status);
    ck_assert_int_eq(status, 1);
    ck_assert_str_eq(out, "gkd status: /nonexistent/results/x: no such results directory\n");
    run_gkd("status", &status);
    ck_assert_int_eq(status, 2);
    run_gkd("status --bogus " DEMO, &status);
    ck_assert_int_eq(status, 2);
}
END_TEST

Suite *slurm_suite(void) {
    Suite *s = suite_create("slurm");
    TCase *tc = tcase_create("script");
    tcase_add_test(tc, test_script_all_options);
    tcase_add_test(tc, test_script_defaults_relative_dir);
    tcase_add_test(tc, test_script_rejects_bad_options);
    tcase_add_test(tc, test_gkd_command_line);
    suite_add_tcase(s, tc);
    tc = tcase_create("submit");
    tcase_add_test(tc, test_submit_records_job_ids);
    tcase_add_test(tc, test_submit_errors);
    tcase_add_test(tc, test_task_states);
    suite_add_tcase(s, tc);
    tc = tcase_create("status");
    tcase_add_test(tc, test_cell_markers_lifecycle);
    tcase_add_test(tc, test_failed_marker_on_full_disk);
    tcase_add_test(tc, test_grid_status_fixture);
    tcase_add_test(tc, test_grid_status_bad_input);
    tcase_add_test(tc, test_status_command);
    suite_add_tcase(s, tc);
    return s;
}
