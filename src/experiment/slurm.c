/* Slurm job arrays for grids: the sbatch script, its submission, and the
 * states of the array tasks as Slurm sees them. */
#include "gkd/slurm.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"

/* ---- small string buffer ------------------------------------------------ */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) { b->oom = 1; return; }
        b->s = grown;
        b->cap = cap;
    }
}

/* ---- files -------------------------------------------------------------- */



/* Whole (small) file; *out = NULL if it does not exist. */
static int read_small_file(char **out, const char *path) {
    *out = NULL;
    FILE *f = NULL;
    int rc = gkd_fopen_read(&f, path);
    if (rc) return errno == ENOENT ? 0 : rc;
    strbuf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) sb_add(&b, "%.*s", (int)got, chunk);
    int err = ferror(f);
    fclose(f);
    if (err) { free(b.s); return gkd_error(GKD_EIO, "cannot read %s", path); }
    if (b.oom) { free(b.s); return gkd_error(GKD_ENOMEM, "out of memory"); }
    if (!b.s) sb_add(&b, "%s", "");
    *out = b.s;
    return b.oom ? gkd_error(GKD_ENOMEM, "out of memory") : 0;
}

/* Absolute form of `path` without requiring it to exist (cwd prefixed). */
static int absolute(char *out, size_t cap, const char *path) {
    if (path[0] == '/') {
        if ((size_t)snprintf(out, cap, "%s", path) >= cap) return gkd_error(GKD_EINVAL, "path too long: %s", path);
        return 0;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return gkd_error(GKD_EIO, "cannot get the working directory: %s", strerror(errno));
    const char *rel = path;
    while (rel[0] == '.' && rel[1] == '/') rel += 2;
    if (!strcmp(rel, ".")) rel = "";
    int n = snprintf(out, cap, "%s%s%s", cwd, *rel ? "/" : "", rel);
    if (n < 0 || (size_t)n >= cap) return gkd_error(GKD_EINVAL, "path too long: %s", path);
    return 0;
}

/* ---- options ------------------------------------------------------------ */

static int all_chars(const char *s, const char *allowed_punct) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(allowed_punct, *s)) return 0;
    return 1;
}

int gkd_slurm_options_check(const gkd_slurm_options *opt) {
    if (opt->partition && !all_chars(opt->partition, "_-.,"))
        return gkd_error(GKD_EINVAL, "slurm partition '%s': expected a name like 'gpu' or 'a,b'", opt->partition);
    if (!opt->time || !*opt->time)
        return gkd_error(GKD_EINVAL, "slurm time limit missing (e.g. 01:00:00)");
    for (const char *p = opt->time; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != ':' && *p != '-')
            return gkd_error(GKD_EINVAL, "slurm time '%s': expected [D-]HH:MM:SS or minutes", opt->time);
    if (opt->cpus_per_task < 1 || opt->cpus_per_task > 4096)
        return gkd_error(GKD_EINVAL, "slurm cpus_per_task %d: expected 1..4096", opt->cpus_per_task);
    if (opt->mem) {
        const char *p = opt->mem;
        while (isdigit((unsigned char)*p)) p++;
        if (p == opt->mem || (*p && (strchr("KMGTkmgt", *p) == NULL || p[1] != '\0')))
            return gkd_error(GKD_EINVAL, "slurm mem '%s': expected a size like 4G or 500M", opt->mem);
    }
    if (opt->max_parallel < 0)
        return gkd_error(GKD_EINVAL, "slurm max_parallel %d: expected >= 0 (0 = no limit)", opt->max_parallel);
    return 0;
}

/* ---- script ------------------------------------------------------------- */

/* Single quotes unless the word is made of characters the shell leaves alone. */
static void sb_add_shell_word(strbuf *b, const char *w) {
    if (*w && all_chars(w, "_-./+=:,@%")) { sb_add(b, "%s", w); return; }
    sb_add(b, "'");
    for (const char *p = w; *p; p++) {
        if (*p == '\'') sb_add(b, "'\\''");
        else sb_add(b, "%c", *p);
    }
    sb_add(b, "'");
}

int gkd_slurm_gkd_command(char **out, const char *gkd_bin, const char *exp_yaml, const char *results_root) {
    char bin[PATH_MAX], yaml[PATH_MAX], res[PATH_MAX];
    *out = NULL;
    if (!gkd_bin) gkd_bin = "/proc/self/exe"; /* the running gkd program itself */
    if (!realpath(gkd_bin, bin)) return gkd_error(GKD_EIO, "gkd program %s: %s", gkd_bin, strerror(errno));
    if (!realpath(exp_yaml, yaml)) return gkd_error(GKD_EIO, "experiment file %s: %s", exp_yaml, strerror(errno));
    if (results_root) {
        int rc = absolute(res, sizeof res, results_root);
        if (rc) return rc;
    }
    strbuf b = {0};
    sb_add(&b, "OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK ");
    sb_add_shell_word(&b, bin);
    sb_add(&b, " run ");
    sb_add_shell_word(&b, yaml);
    sb_add(&b, " --cell $SLURM_ARRAY_TASK_ID");
    if (results_root) {
        sb_add(&b, " --results ");
        sb_add_shell_word(&b, res);
    }
    if (b.oom) { free(b.s); return gkd_error(GKD_ENOMEM, "out of memory"); }
    *out = b.s;
    return 0;
}

int gkd_slurm_script(char **out, const char *exp_name, const char *exp_dir, int ncells,
                     const gkd_slurm_options *opt, const char *command) {
    char dir[PATH_MAX];
    *out = NULL;
    int rc = gkd_slurm_options_check(opt);
    if (rc) return rc;
    if (ncells < 1) return gkd_error(GKD_EINVAL, "slurm array needs at least one cell (got %d)", ncells);
    if (!all_chars(exp_name, "_-.+"))
        return gkd_error(GKD_EINVAL, "experiment name '%s' cannot be a Slurm job name", exp_name);
    if ((rc = absolute(dir, sizeof dir, exp_dir))) return rc;
    /* sbatch reads #SBATCH lines word by word: no quoting to rely on. */
    for (const char *p = dir; *p; p++)
        if (isspace((unsigned char)*p) || *p == '"' || *p == '\'')
            return gkd_error(GKD_EINVAL, "results directory '%s': Slurm output paths cannot contain spaces or quotes", dir);
    if (!command || !*command) return gkd_error(GKD_EINVAL, "slurm array: empty task command");

    strbuf b = {0};
    sb_add(&b, "#!/bin/bash\n");
    sb_add(&b, "# gkd: experiment %s, one array task per grid cell (%d cells).\n", exp_name, ncells);
    sb_add(&b, "# Resubmitting runs only the cells that are not done.\n");
    sb_add(&b, "#SBATCH --job-name=gkd-%s\n", exp_name);
    if (opt->max_parallel > 0) sb_add(&b, "#SBATCH --array=0-%d%%%d\n", ncells - 1, opt->max_parallel);
    else sb_add(&b, "#SBATCH --array=0-%d\n", ncells - 1);
    sb_add(&b, "#SBATCH --cpus-per-task=%d\n", opt->cpus_per_task);
    if (opt->partition) sb_add(&b, "#SBATCH --partition=%s\n", opt->partition);
    sb_add(&b, "#SBATCH --time=%s\n", opt->time);
    if (opt->mem) sb_add(&b, "#SBATCH --mem=%s\n", opt->mem);
    sb_add(&b, "#SBATCH --output=%s/slurm/%%A_%%a.out\n", dir);
    sb_add(&b, "\n%s", command);
    if (command[strlen(command) - 1] != '\n') sb_add(&b, "\n");
    if (b.oom) { free(b.s); return gkd_error(GKD_ENOMEM, "out of memory"); }
    *out = b.s;
    return 0;
}

int gkd_slurm_write_script(char *path_out, size_t path_cap, const char *exp_name, const char *exp_dir,
                           int ncells, const gkd_slurm_options *opt, const char *command) {
    char *text = NULL, dir[PATH_MAX], path[PATH_MAX];
    int rc = gkd_slurm_script(&text, exp_name, exp_dir, ncells, opt, command);
    if (rc) goto done;
    if ((rc = absolute(dir, sizeof dir, exp_dir))) goto done;
    if ((size_t)snprintf(path, sizeof path, "%s/slurm", dir) >= sizeof path) {
        rc = gkd_error(GKD_EINVAL, "path too long: %s", dir);
        goto done;
    }
    if ((rc = gkd_mkdir_p(path))) goto done;
    strcat(path, "/array.sbatch");
    if ((rc = gkd_file_write_atomic(path, text, strlen(text)))) goto done;
    (void)chmod(path, 0755); /* runnable by hand too; sbatch does not need it */
    if (path_out && (size_t)snprintf(path_out, path_cap, "%s", path) >= path_cap)
        rc = gkd_error(GKD_EINVAL, "path buffer too small for %s", path);
done:
    free(text);
    return rc;
}

/* ---- child processes ---------------------------------------------------- */

/* Run argv[0] (searched in PATH) with stdin from /dev/null, collecting
 * stdout and stderr; *status is the exit status (128+signal if killed). */
static int run_capture(const char *const *argv, char **out, char **err, int *status) {
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, px[2] = {-1, -1};
    strbuf ob = {0}, eb = {0};
    int rc = 0;
    pid_t pid = -1;
    *out = *err = NULL;
    /* px reports a failed exec; close-on-exec makes a successful one close it. */
    if (pipe(po) || pipe(pe) || pipe(px) || fcntl(px[1], F_SETFD, FD_CLOEXEC) != 0) {
        rc = gkd_error(GKD_EIO, "pipe: %s", strerror(errno));
        goto done;
    }
    pid = fork();
    if (pid < 0) { rc = gkd_error(GKD_EIO, "fork: %s", strerror(errno)); goto done; }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(pe[0]); close(px[0]);
        execvp(argv[0], (char *const *)argv);
        int e = errno; /* the parent reports why exec failed */
        ssize_t w = write(px[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(po[1]); close(pe[1]); close(px[1]);
    po[1] = pe[1] = px[1] = -1;
    int exec_errno = 0;
    if (read(px[0], &exec_errno, sizeof exec_errno) != (ssize_t)sizeof exec_errno) exec_errno = 0;

    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    strbuf *bufs[2] = {&ob, &eb};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            rc = gkd_error(GKD_EIO, "poll: %s", strerror(errno));
            goto done;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char chunk[4096];
            ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) { fds[i].fd = -1; open_fds--; continue; }
            sb_add(bufs[i], "%.*s", (int)got, chunk);
        }
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) { rc = gkd_error(GKD_EIO, "waitpid: %s", strerror(errno)); goto done; }
    pid = -1;
    if (exec_errno) {
        rc = gkd_error(GKD_EIO, "cannot run %s: %s%s", argv[0], strerror(exec_errno),
                       exec_errno == ENOENT ? " (is Slurm installed and in PATH?)" : "");
        goto done;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (!ob.s) sb_add(&ob, "%s", "");
    if (!eb.s) sb_add(&eb, "%s", "");
    if (ob.oom || eb.oom) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    *out = ob.s;
    *err = eb.s;
    ob.s = eb.s = NULL;
done:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0) close(po[i]);
        if (pe[i] >= 0) close(pe[i]);
        if (px[i] >= 0) close(px[i]);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
    free(ob.s);
    free(eb.s);
    return rc;
}

/* First line of s, trimmed, for one-line error messages. */
static void first_line(char *dst, size_t cap, const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strcspn(s, "\n");
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    snprintf(dst, cap, "%.*s", (int)n, s);
}

/* ---- submission ----------------------------------------------------------- */

int gkd_slurm_submit(char *job_id, size_t job_id_cap, const char *exp_dir) {
    char dir[PATH_MAX], script[PATH_MAX], jobs[PATH_MAX], msg[512], when[32];
    char *out = NULL, *err = NULL, *old = NULL;
    int rc, status = 0;
    job_id[0] = '\0';
    if ((rc = absolute(dir, sizeof dir, exp_dir))) goto done;
    if ((size_t)snprintf(script, sizeof script, "%s/slurm/array.sbatch", dir) >= sizeof script ||
        (size_t)snprintf(jobs, sizeof jobs, "%s/slurm/jobs.txt", dir) >= sizeof jobs) {
        rc = gkd_error(GKD_EINVAL, "path too long: %s", dir);
        goto done;
    }
    if (access(script, R_OK) != 0) {
        rc = gkd_error(GKD_EIO, "%s: %s", script, strerror(errno));
        goto done;
    }
    const char *argv[] = {"sbatch", "--parsable", script, NULL};
    if ((rc = run_capture(argv, &out, &err, &status))) goto done;
    if (status != 0) {
        first_line(msg, sizeof msg, *err ? err : out);
        rc = gkd_error(GKD_EIO, "sbatch failed (exit %d): %s", status, *msg ? msg : "no message");
        goto done;
    }
    /* --parsable prints "jobid" or "jobid;cluster". */
    const char *p = out;
    while (*p && isspace((unsigned char)*p)) p++;
    size_t n = 0;
    while (isdigit((unsigned char)p[n])) n++;
    if (n == 0 || n >= job_id_cap || (p[n] && p[n] != ';' && !isspace((unsigned char)p[n]))) {
        first_line(msg, sizeof msg, out);
        rc = gkd_error(GKD_EFORMAT, "sbatch printed '%s', expected a job id", msg);
        goto done;
    }
    memcpy(job_id, p, n);
    job_id[n] = '\0';

    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if ((rc = read_small_file(&old, jobs))) goto done;
    strbuf b = {0};
    sb_add(&b, "%s%s%s submitted=%s\n", old ? old : "",
           (old && *old && old[strlen(old) - 1] != '\n') ? "\n" : "", job_id, when);
    if (b.oom) { free(b.s); rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    rc = gkd_file_write_atomic(jobs, b.s, strlen(b.s));
    free(b.s);
    if (rc) rc = gkd_error_wrap(rc, "job %s submitted but not recorded", job_id);
done:
    free(out);
    free(err);
    free(old);
    return rc;
}

int gkd_slurm_run_array(char *job_id, size_t job_id_cap, const char *exp_name, const char *exp_dir,
                        int ncells, const gkd_slurm_options *opt, const char *command) {
    int rc = gkd_slurm_write_script(NULL, 0, exp_name, exp_dir, ncells, opt, command);
    if (rc) return rc;
    return gkd_slurm_submit(job_id, job_id_cap, exp_dir);
}

int gkd_slurm_last_job(char *job_id, size_t job_id_cap, const char *exp_dir) {
    char jobs[PATH_MAX], *text = NULL;
    job_id[0] = '\0';
    if ((size_t)snprintf(jobs, sizeof jobs, "%s/slurm/jobs.txt", exp_dir) >= sizeof jobs)
        return gkd_error(GKD_EINVAL, "path too long: %s", exp_dir);
    int rc = read_small_file(&text, jobs);
    if (rc || !text) return rc;
    for (char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        size_t n = 0;
        while (n < len && isdigit((unsigned char)line[n])) n++;
        if (n > 0 && n < job_id_cap) {
            memcpy(job_id, line, n);
            job_id[n] = '\0';
        }
        line += len + (line[len] == '\n');
    }
    free(text);
    return 0;
}

/* ---- task states ------------------------------------------------------------ */

static const char *const task_state_names[] = {"unknown", "pending", "running", "completed", "failed"};

const char *gkd_slurm_task_state_name(gkd_slurm_task_state s) {
    return (s >= 0 && s <= GKD_SLURM_TASK_FAILED) ? task_state_names[s] : "?";
}

static gkd_slurm_task_state parse_state(const char *s) {
    if (!strncmp(s, "PENDING", 7) || !strncmp(s, "REQUEUED", 8) || !strncmp(s, "SUSPENDED", 9))
        return GKD_SLURM_TASK_PENDING;
    if (!strncmp(s, "RUNNING", 7) || !strncmp(s, "CONFIGURING", 11) || !strncmp(s, "COMPLETING", 10))
        return GKD_SLURM_TASK_RUNNING;
    if (!strncmp(s, "COMPLETED", 9)) return GKD_SLURM_TASK_COMPLETED;
    if (!strncmp(s, "FAILED", 6) || !strncmp(s, "CANCELLED", 9) || !strncmp(s, "TIMEOUT", 7) ||
        !strncmp(s, "OUT_OF_MEMORY", 13) || !strncmp(s, "NODE_FAIL", 9) || !strncmp(s, "PREEMPTED", 9) ||
        !strncmp(s, "BOOT_FAIL", 9) || !strncmp(s, "DEADLINE", 8))
        return GKD_SLURM_TASK_FAILED;
    return GKD_SLURM_TASK_UNKNOWN;
}

/* Lines "<job>_<task><sep><STATE>"; a task range "<job>_[0-3%2]" marks all of
 * them. Only lines of `job_id` are used (sacct also lists job steps). */
static void apply_states(gkd_slurm_task_state *states, int ntasks, const char *job_id, const char *text,
                         char sep, int only_unknown) {
    size_t jl = strlen(job_id);
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        const char *s = memchr(line, sep, len);
        if (s && !strncmp(line, job_id, jl) && line[jl] == '_') {
            gkd_slurm_task_state st = parse_state(s + 1);
            const char *t = line + jl + 1;
            long lo = -1, hi = -1;
            if (*t == '[') {
                char *end;
                lo = strtol(t + 1, &end, 10);
                hi = (*end == '-') ? strtol(end + 1, &end, 10) : lo;
            } else if (isdigit((unsigned char)*t)) {
                char *end;
                lo = hi = strtol(t, &end, 10);
                if (end != s) lo = hi = -1; /* a step line such as 12_3.batch */
            }
            for (long i = lo < 0 ? 0 : lo; lo >= 0 && i <= hi && i < ntasks; i++)
                if (!only_unknown || states[i] == GKD_SLURM_TASK_UNKNOWN) states[i] = st;
        }
        line += len + (line[len] == '\n');
    }
}

int gkd_slurm_task_states(gkd_slurm_task_state *states, int ntasks, const char *job_id) {
    char *out = NULL, *err = NULL, msg[512];
    int status = 0, rc;
    for (int i = 0; i < ntasks; i++) states[i] = GKD_SLURM_TASK_UNKNOWN;
    if (!all_chars(job_id, "")) return gkd_error(GKD_EINVAL, "job id '%s' is not a number", job_id);
    const char *squeue[] = {"squeue", "-h", "-r", "-j", job_id, "-o", "%i %T", NULL};
    if ((rc = run_capture(squeue, &out, &err, &status))) return rc;
    /* A job that left the queue is an error for squeue ("Invalid job id"). */
    if (status == 0) apply_states(states, ntasks, job_id, out, ' ', 0);
    else if (!strstr(err, "Invalid job id")) {
        first_line(msg, sizeof msg, err);
        rc = gkd_error(GKD_EIO, "squeue failed (exit %d): %s", status, msg);
    }
    free(out);
    free(err);
    out = err = NULL;
    if (rc) return rc;
    const char *sacct[] = {"sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State", NULL};
    if (run_capture(sacct, &out, &err, &status) == 0 && status == 0)
        apply_states(states, ntasks, job_id, out, '|', 1);
    free(out);
    free(err);
    return 0; /* without accounting, finished tasks simply stay unknown */
}
