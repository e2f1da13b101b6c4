/* Local execution of a plan (run_local.h). */
#define _GNU_SOURCE
#include "run_local.h"

#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gkd/error.h"
#include "kernels/blas.h"
#include "run_cell.h"
#include "run_shared.h"

/* A cell child's exit status when another process holds the cell. */
#define CELL_ELSEWHERE 3

typedef struct {
    size_t ran, failed, elsewhere;
} tally;

/* Train every shared teacher the cells to run still need, one after the
 * other, before the pool starts: otherwise the first child to need one
 * trains it on its share of the cores (cores / jobs threads) while the
 * others wait on its lock. A child process with every core does it, so the
 * parent never starts OpenMP threads before it forks the pool. Thread
 * counts do not change the bits. */
static int prepare_teachers(const gkd_experiment *exp, const char *exp_dir, const run_plan *p, int tty) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return gkd_error(GKD_EIO, "fork: %s", strerror(errno));
    if (pid == 0) {
        pid_t parent = getppid();
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(1);
        size_t *cells = NULL, n = 0;
        int rc = run_plan_teachers(&cells, &n, p, exp);
        for (size_t k = 0; k < n && !rc; k++) {
            gkd_cell_config c;
            gkd_task *task = NULL;
            gkd_tokenizer *tok = NULL;
            gkd_model *teacher = NULL;
            if ((rc = gkd_experiment_cell(exp, cells[k], &c))) break;
            if (!(rc = gkd_task_new(&task, &c.task)) && !(rc = gkd_task_tokenizer(task, &tok)))
                rc = run_shared_teacher(&teacher, &c, exp_dir, tok, task, tty);
            gkd_model_free(teacher);
            gkd_tokenizer_free(tok);
            gkd_task_free(task);
        }
        free(cells);
        if (rc) fprintf(stderr, "gkd run: %s\n", gkd_last_error());
        fflush(NULL);
        _exit(rc ? 1 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return gkd_error(GKD_EIO, "waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return gkd_error(GKD_ESTATE, "training the shared teacher failed (see above; rerun to resume)");
    return 0;
}

/* The cells one after the other in this process. */
static int run_in_order(const gkd_experiment *exp, const char *exp_dir, const run_plan *p, int tty, tally *t) {
    for (size_t k = 0; k < p->ntodo; k++) {
        gkd_cell_config c;
        int rc = gkd_experiment_cell(exp, p->todo[k], &c);
        if (rc) return rc;
        if (!tty) fprintf(stderr, "[%zu/%zu cells] %s: start\n", p->done + k, p->nselected, c.name);
        int busy = 0;
        rc = run_cell(&c, exp_dir, p->done + k, p->nselected, tty, p->nselected == 1 ? NULL : &busy);
        if (rc && p->ntodo == 1) return rc; /* one cell (e.g. a Slurm task): its own message */
        if (rc) {
            /* Like --jobs N: a failed cell does not stop the others. */
            if (tty) fputc('\n', stderr);
            fprintf(stderr, "gkd run: cell %s: %s\n", c.name, gkd_last_error());
            t->failed++;
        } else if (busy) {
            fprintf(stderr, "gkd run: cell %s is being run by another process; left to it\n", c.name);
            t->elsewhere++;
        } else {
            t->ran++;
        }
    }
    return 0;
}

/* N cells at once, each a child process with cores / N threads. The
 * teachers are trained first; the SFT students are built under locks, so
 * the first child to need one trains it and the others wait. */
static int run_pool(const gkd_experiment *exp, const char *exp_dir, const run_plan *p, int jobs, int tty, tally *t) {
    int rc = prepare_teachers(exp, exp_dir, p, tty);
    if (rc) return rc;
    int threads = omp_get_num_procs() / jobs;
    if (threads < 1) threads = 1;
    size_t next = 0;
    int running = 0;
    while (next < p->ntodo || running > 0) {
        while (running < jobs && next < p->ntodo) {
            gkd_cell_config c;
            if ((rc = gkd_experiment_cell(exp, p->todo[next], &c))) return rc;
            fflush(NULL);
            pid_t parent = getpid();
            pid_t pid = fork();
            if (pid < 0) return gkd_error(GKD_EIO, "fork: %s", strerror(errno));
            if (pid == 0) {
                /* Die with the parent: an orphaned cell would race with
                 * the rerun that resumes it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(1);
                omp_set_num_threads(threads);
                gkd_blas_set_threads(threads);
                int busy = 0;
                int crc = run_cell(&c, exp_dir, p->done + next, p->nselected, 0, &busy);
                if (crc) fprintf(stderr, "gkd run: cell %s: %s\n", c.name, gkd_last_error());
                else if (busy)
                    fprintf(stderr, "gkd run: cell %s is being run by another process; left to it\n", c.name);
                fflush(NULL);
                _exit(crc ? 1 : busy ? CELL_ELSEWHERE : 0);
            }
            fprintf(stderr, "[%zu/%zu cells] %s: started (pid %d, %d threads)\n",
                    p->done + t->ran + t->failed + t->elsewhere, p->nselected, c.name, (int)pid, threads);
            next++;
            running++;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        running--;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) t->ran++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == CELL_ELSEWHERE) t->elsewhere++;
        else t->failed++;
    }
    return 0;
}

int run_local(const gkd_experiment *exp, const char *exp_dir, const run_plan *p, const gkd_run_options *opt) {
    int tty = isatty(STDERR_FILENO);
    tally t = {0, 0, 0};
    if (p->done && p->ntodo)
        fprintf(stderr, "gkd: %zu of %zu cells already done, running %zu\n", p->done, p->nselected, p->ntodo);
    int jobs = opt->jobs > 0 ? opt->jobs : 1;
    if (jobs > (int)p->ntodo) jobs = p->ntodo > 0 ? (int)p->ntodo : 1;
    int rc = jobs == 1 ? run_in_order(exp, exp_dir, p, tty, &t) : run_pool(exp, exp_dir, p, jobs, tty, &t);
    if (!rc && t.failed)
        rc = gkd_error(GKD_ESTATE, "%zu of %zu cells failed (see their 'failed' markers; rerun to resume)", t.failed,
                       p->ntodo);
    if (t.elsewhere)
        fprintf(stderr, "gkd: %zu of %zu cells were being run by another process (gkd status shows them)\n",
                t.elsewhere, p->nselected);
    if (!rc && p->ntodo == 0 && p->nselected > 0) fprintf(stderr, "gkd: all %zu cells already done\n", p->nselected);
    return rc;
}
