/* One cell, start to finish (run_cell.h). */
#include "run_cell.h"

#include <stdio.h>
#include <string.h>

#include "cell_dir.h"
#include "cell_options.h"
#include "gkd/cell_status.h"
#include "gkd/checkpoint.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/model_source.h"
#include "run_lock.h"
#include "run_path.h"
#include "run_progress.h"
#include "run_shared.h"
#include "util/clock.h"

static int load_model(gkd_model **out, gkd_tokenizer **tok_out, const char *path) {
    gkd_checkpoint_data d;
    int rc = gkd_model_source_load(&d, path);
    if (rc) return rc;
    *out = d.model;
    d.owns_model = 0;
    if (tok_out) { *tok_out = d.tokenizer; d.tokenizer = NULL; }
    gkd_checkpoint_data_free(&d);
    return 0;
}

/* The student the distillation starts from: a checkpoint, the shared SFT
 * student, or the run seed's random init. vocab and context: the
 * teacher's (the context the student's defaults to). */
static int student_init(gkd_model **out, const gkd_cell_config *c, int vocab, int context, const char *exp_dir,
                        const gkd_tokenizer *tok, const gkd_task *task, int tty) {
    gkd_model_config shape = c->student_model;
    shape.vocab_size = vocab;
    if (shape.max_seq_len == 0) shape.max_seq_len = context;
    if (c->student_init == GKD_INIT_CHECKPOINT) return load_model(out, NULL, c->student_checkpoint);
    if (c->student_init == GKD_INIT_SFT && c->student_sft.steps > 0)
        return run_shared_student(out, c, &shape, exp_dir, tok, task, tty);
    int rc = gkd_model_new(out, &shape);
    if (!rc) gkd_model_init_weights(*out, c->seed);
    return rc;
}

/* teacher.same_as: student_init: a frozen copy of the initial student. */
static int copy_model(gkd_model **out, const gkd_model *m) {
    int rc = gkd_model_new(out, &m->config);
    if (!rc) memcpy((*out)->params_memory, m->params_memory, sizeof(float) * m->num_params);
    return rc;
}

int run_cell(const gkd_cell_config *c, const char *exp_dir, size_t done_before, size_t total, int tty,
             int *busy_out) {
    char dir[RUN_PATH_CAP], path[RUN_PATH_CAP], started[32];
    gkd_task *task = NULL, *context_task = NULL;
    const gkd_task *teacher_task = NULL; /* the task as the teacher sees it: with contexts, if any */
    gkd_tokenizer *tok = NULL;
    gkd_model *teacher = NULL, *student = NULL;
    int rc, marked = 0, busy = 0;
    run_lock lock = RUN_LOCK_INIT;
    if ((rc = run_path_join(dir, exp_dir, c->name)) || (rc = gkd_mkdir_p(dir))) return rc;
    cell_dir_time_now(started, sizeof started);
    /* One process per cell: a second `gkd run` (or a resubmitted Slurm task)
     * must not write into a cell another one is running. */
    if ((rc = run_path_join(path, dir, "lock")) || (rc = run_lock_try(&lock, path, &busy))) goto done;
    if (busy && busy_out) {
        *busy_out = 1;
        goto done;
    }
    if (busy) {
        rc = gkd_error(GKD_ESTATE, "cell %s is being run by another process (see %s/running)", c->name, dir);
        goto done;
    }
    if ((rc = cell_dir_remove_stale(dir))) goto done;
    /* It may have finished while this process was checking the others. */
    cell_dir_state state;
    if ((rc = cell_dir_check(&state, dir, c, 0)) || state == CELL_DIR_DONE) goto done;
    int reference_only = state == CELL_DIR_NEEDS_TEACHER_EVAL;
    if (!reference_only) {
        if ((rc = gkd_cell_mark_running(dir))) goto done;
        marked = 1;
        if ((rc = cell_dir_write_config(dir, c)) || (rc = cell_dir_write_run_json(dir, started, NULL))) goto done;
    }

    if ((rc = gkd_task_new(&task, &c->task))) goto done;
    teacher_task = task;
    if (gkd_task_has_context(task)) {
        gkd_task_config with = c->task;
        with.with_context = 1;
        if ((rc = gkd_task_new(&context_task, &with))) goto done;
        teacher_task = context_task;
    }
    if (c->teacher_checkpoint && (rc = load_model(&teacher, &tok, c->teacher_checkpoint))) goto done;
    if (tok && (rc = gkd_task_check_model_tokenizer(task, tok, "teacher.checkpoint", c->teacher_checkpoint)))
        goto done;
    if (!tok && (rc = gkd_task_tokenizer(task, &tok))) goto done;
    /* A teacher another tool wrote runs with the task's tokenizer. */
    if (teacher && (rc = gkd_model_source_check_vocab(teacher->config.vocab_size, tok, "teacher.checkpoint",
                                                      c->teacher_checkpoint)))
        goto done;
    if (c->teacher_same_as) {
        /* Self-distillation: the teacher is the initial student. */
        const int vocab = gkd_tokenizer_vocab_size(tok);
        if ((rc = student_init(&student, c, vocab, c->teacher_model.max_seq_len, exp_dir, tok, task, tty)) ||
            (rc = copy_model(&teacher, student)))
            goto done;
    }
    if (!teacher && (rc = run_shared_teacher(&teacher, c, exp_dir, tok, teacher_task, tty))) goto done;
    gkd_distill_options o;
    cell_run_options(&o, c, CELL_RUN_DISTILL);
    if (reference_only) {
        rc = gkd_distill_eval_teacher(teacher, tok, teacher_task, &o, dir);
        goto done;
    }
    char cache[RUN_PATH_CAP];
    /* A cache holds rows scored without contexts (distillation refuses it). */
    if (!context_task && (rc = run_shared_teacher_cache(cache, c, &o, exp_dir, teacher, tok, task, tty))) goto done;
    if (!context_task && cache[0]) o.teacher_cache = cache;
    if (!student &&
        (rc = student_init(&student, c, teacher->config.vocab_size, teacher->config.max_seq_len, exp_dir, tok, task,
                           tty)))
        goto done;
    run_progress pc = {.cell = c->name, .done = done_before, .total = total, .started = gkd_now(),
                       .last_heartbeat = gkd_now(), .cell_dir = dir, .tty = tty};
    if ((rc = gkd_distill_run(student, teacher, tok, task, &o, dir, run_progress_cell, &pc))) goto done;
    if ((rc = gkd_distill_eval_teacher(teacher, tok, teacher_task, &o, dir))) goto done;
    char ended[32];
    cell_dir_time_now(ended, sizeof ended);
    if ((rc = cell_dir_write_run_json(dir, started, ended))) goto done;
    rc = gkd_cell_mark_done(dir);
done:
    if (rc && marked) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gkd_last_error());
        gkd_cell_mark_failed(dir, msg);
        gkd_error(rc, "%s", msg);
    }
    run_lock_release(&lock);
    gkd_model_free(student);
    gkd_model_free(teacher);
    gkd_tokenizer_free(tok);
    gkd_task_free(context_task);
    gkd_task_free(task);
    return rc;
}
