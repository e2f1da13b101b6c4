/* Up-front checks of what an experiment's cells will read (see
 * gkd/experiment_inputs.h). The runner builds the same things per cell;
 * this builds each distinct setup once and stops at the first problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/experiment_inputs.h"
#include "gkd/model_source.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

/* Everything the checks depend on: cells that share it pass or fail alike.
 * (eval.n too: the overlap is counted over the examples evaluated.) */
static char *setup_key(const gkd_cell_config *c) {
    char th[GKD_HASH_HEX_LEN + 1];
    gkd_cell_teacher_hash(c, th);
    const char *init = c->student_init == GKD_INIT_CHECKPOINT && c->student_checkpoint ? c->student_checkpoint : "";
    size_t len = strlen(th) + strlen(init) + 64;
    char *key = malloc(len);
    if (key)
        snprintf(key, len, "%s|%s|%d|%d|%d", th, init, c->student_model.max_seq_len, c->distill.max_new_tokens,
                 c->eval.n);
    return key;
}

static void warn_stderr(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "gkd: warning: %s\n", line);
}

/* A checkpoint's recorded training split against the cell's evaluated
 * examples: refused on overlap unless allowed; a warning when it cannot be
 * checked. */
static int check_overlap(const gkd_cell_config *c, const gkd_task *task, const gkd_checkpoint_data *d,
                         const char *key, const char *path, const gkd_inputs_options *o) {
    char what[4200], warning[1024];
    snprintf(what, sizeof what, "%s %s", key, path);
    int rc = gkd_task_check_eval_overlap(d->task_record, task, (size_t)c->eval.n, what, "task.seed",
                                         "eval.allow_overlap: true",
                                         o->allow_eval_overlap || c->eval.allow_overlap, warning, sizeof warning);
    if (rc) return rc;
    if (warning[0]) {
        char line[1024 + GKD_CELL_NAME_MAX + 64];
        snprintf(line, sizeof line, "cell %zu (%s): %s", c->index, c->name, warning);
        (o->warn ? o->warn : warn_stderr)(o->warn_ctx, line);
    }
    return 0;
}

static int load_checkpoint(gkd_checkpoint_data *d, const char *what, const char *path) {
    int rc = gkd_model_source_load(d, path);
    return rc ? gkd_error_wrap(rc, "%s", what) : 0;
}

/* Every example of both splits: it encodes, fits both contexts whole, and
 * its prompt leaves max_new tokens of room in the student's context. */
static int check_examples(const gkd_task *task, const gkd_tokenizer *tok, int teacher_ctx, int student_ctx,
                          int max_new, const char *teacher_ctx_key) {
    const int whole = teacher_ctx < student_ctx ? teacher_ctx : student_ctx;
    int *ids = NULL, cap = 0, rc = 0;
    for (int split = 0; split < 2 && !rc; split++) {
        size_t n = gkd_task_size(task, (gkd_split)split);
        for (size_t i = 0; i < n && !rc; i++) {
            const gkd_example *ex = gkd_task_example(task, (gkd_split)split, i);
            /* At most one token per byte, plus BOS, SEP and EOS. */
            size_t need = strlen(ex->prompt) + strlen(ex->reference) + (ex->context ? strlen(ex->context) : 0) + 4;
            if (need > (size_t)cap) {
                if (need > 1u << 30) return free(ids), gkd_error(GKD_EINVAL, "example too long");
                int *grown = realloc(ids, need * sizeof *ids);
                if (!grown) return free(ids), gkd_error(GKD_ENOMEM, "out of memory");
                ids = grown;
                cap = (int)need;
            }
            int prompt_len = 0, len = 0;
            if ((rc = gkd_task_encode_example(task, tok, (gkd_split)split, i, ids, cap, &prompt_len, &len)))
                break;
            if (len > whole)
                rc = gkd_error(GKD_EINVAL, "%d tokens with its reference, more than the %s context of %d", len,
                               teacher_ctx <= student_ctx ? "teacher's" : "student's", whole);
            else if (prompt_len + max_new > student_ctx)
                rc = gkd_error(GKD_EINVAL,
                               "a prompt of %d tokens leaves no room for distill.max_new_tokens %d in the "
                               "student's context of %d",
                               prompt_len, max_new, student_ctx);
            /* The teacher sees the context before the prompt, the
             * reference or a rollout after it (context distillation). */
            int c = 0;
            if (!rc && ex->context && ex->context[0] &&
                !(rc = gkd_task_encode_context(task, tok, (gkd_split)split, i, ids, cap, &c))) {
                const int rollout = prompt_len + max_new < student_ctx ? prompt_len + max_new : student_ctx;
                const int longest = len > rollout ? len : rollout;
                if (c + longest > teacher_ctx)
                    rc = gkd_error(GKD_EINVAL, "the context (%d tokens) and sequences of up to %d take %d tokens; %s is %d",
                                   c, longest, c + longest, teacher_ctx_key, teacher_ctx);
            }
            if (rc) rc = gkd_task_example_error(task, (gkd_split)split, i, rc);
        }
    }
    free(ids);
    return rc;
}

/* One setup: build what the runner would build for cell c and check it. */
static int check_setup(const gkd_cell_config *c, const gkd_inputs_options *o) {
    gkd_task *task = NULL;
    gkd_tokenizer *own = NULL;
    gkd_checkpoint_data teacher = {0}, student = {0};
    int rc = gkd_task_new(&task, &c->task);
    if (rc) return rc;
    const gkd_tokenizer *tok = NULL;
    int teacher_ctx = c->teacher_model.max_seq_len, vocab = 0;
    if (c->teacher_checkpoint) {
        if ((rc = load_checkpoint(&teacher, "teacher.checkpoint", c->teacher_checkpoint))) goto done;
        if ((rc = check_overlap(c, task, &teacher, "teacher.checkpoint", c->teacher_checkpoint, o))) goto done;
        teacher_ctx = teacher.model->config.max_seq_len;
        vocab = teacher.model->config.vocab_size;
        tok = teacher.tokenizer;
        if (tok && (rc = gkd_task_check_model_tokenizer(task, tok, "teacher.checkpoint", c->teacher_checkpoint)))
            goto done;
    }
    if (!tok) {
        if ((rc = gkd_task_tokenizer(task, &own))) goto done;
        tok = own;
        /* A teacher another tool wrote runs with the task's tokenizer. */
        if (teacher.model &&
            (rc = gkd_model_source_check_vocab(vocab, tok, "teacher.checkpoint", c->teacher_checkpoint)))
            goto done;
    }
    if (!vocab) vocab = gkd_tokenizer_vocab_size(tok);
    int student_ctx = c->student_model.max_seq_len ? c->student_model.max_seq_len : teacher_ctx;
    if (c->student_init == GKD_INIT_CHECKPOINT) {
        if ((rc = load_checkpoint(&student, "student.init", c->student_checkpoint))) goto done;
        /* The cell evaluates this student from step 0 on the eval split. */
        if ((rc = check_overlap(c, task, &student, "student.init", c->student_checkpoint, o))) goto done;
        student_ctx = student.model->config.max_seq_len;
        if (student.model->config.vocab_size != vocab) {
            rc = gkd_error(GKD_EMISMATCH, "student.init: %s has a vocabulary of %d tokens, the teacher's has %d",
                           c->student_checkpoint, student.model->config.vocab_size, vocab);
            goto done;
        }
        if (student.tokenizer && !gkd_tokenizer_equal(student.tokenizer, tok)) {
            rc = gkd_error(GKD_EMISMATCH, "student.init: %s was trained with another tokenizer than the teacher's",
                           c->student_checkpoint);
            goto done;
        }
    }
    const char *teacher_ctx_key = c->teacher_checkpoint ? "the teacher.checkpoint's context" : "teacher.model.context";
    if (c->teacher_same_as) {
        teacher_ctx = student_ctx; /* the teacher is the initial student */
        teacher_ctx_key = "the student's context";
    }
    rc = check_examples(task, tok, teacher_ctx, student_ctx, c->distill.max_new_tokens, teacher_ctx_key);
done:
    gkd_checkpoint_data_free(&teacher);
    gkd_checkpoint_data_free(&student);
    gkd_tokenizer_free(own);
    gkd_task_free(task);
    return rc;
}

int gkd_experiment_check_inputs(const gkd_experiment *e) { return gkd_experiment_check_inputs_opt(e, NULL); }

int gkd_experiment_check_inputs_opt(const gkd_experiment *e, const gkd_inputs_options *opt) {
    const gkd_inputs_options defaults = GKD_INPUTS_OPTIONS_INIT;
    const gkd_inputs_options *o = opt ? opt : &defaults;
    size_t n = gkd_experiment_num_cells(e), nseen = 0;
    char **seen = calloc(n ? n : 1, sizeof *seen);
    if (!seen) return gkd_error(GKD_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        gkd_cell_config c;
        if ((rc = gkd_experiment_cell(e, i, &c))) break;
        char *key = setup_key(&c);
        if (!key) { rc = gkd_error(GKD_ENOMEM, "out of memory"); break; }
        int known = 0;
        for (size_t k = 0; k < nseen && !known; k++) known = !strcmp(seen[k], key);
        if (known) { free(key); continue; }
        seen[nseen++] = key;
        if ((rc = check_setup(&c, o))) rc = gkd_error_wrap(rc, "cell %zu (%s)", i, c.name);
    }
    for (size_t k = 0; k < nseen; k++) free(seen[k]);
    free(seen);
    return rc;
}
