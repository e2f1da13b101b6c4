/* What an experiment reads before it trains anything: data files,
 * checkpoints and the examples' lengths in tokens, checked up front so
 * that `gkd check` and `gkd run` refuse a grid that would fail later (after
 * a shared teacher trained, or at a cell's first evaluation). */
#ifndef GKD_EXPERIMENT_INPUTS_H
#define GKD_EXPERIMENT_INPUTS_H

#include "gkd/experiment.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A warning line (no newline) from the checks. */
typedef void (*gkd_inputs_warn_fn)(void *ctx, const char *line);

typedef struct {
    int allow_eval_overlap; /* 1: a checkpoint trained on eval examples is a warning, not an error */
    gkd_inputs_warn_fn warn; /* NULL: warnings go to stderr as "gkd: warning: ..." */
    void *warn_ctx;
} gkd_inputs_options;

#define GKD_INPUTS_OPTIONS_INIT {0, NULL, NULL}

/** For every distinct task and model setup among the cells:
 *  - the task builds (data files exist and parse, alphabets are valid);
 *  - teacher.checkpoint and a checkpoint student.init load, and the
 *    student's vocabulary (and tokenizer, if stored) equals the teacher's;
 *  - neither checkpoint was trained on any of the cell's eval.n eval
 *    examples, as far as its recorded training split tells
 *    (gkd_task_check_eval_overlap): an overlap is GKD_EMISMATCH "cell 0
 *    (seed=1): teacher.checkpoint t.ckpt was trained on 37 of the 200 eval
 *    examples (data seed 1 vs 1234); use the same task.seed, or
 *    --allow-eval-overlap"; a record whose data files are missing or
 *    changed is a warning that the overlap cannot be checked;
 *  - every train and eval example encodes with the tokenizer the cells
 *    will use, fits the teacher's and the student's context whole, and
 *    leaves room for distill.max_new_tokens after its prompt in the
 *    student's context.
 *  Returns 0, or an error naming the cell and, for an example, where it
 *  came from. Reads files, writes nothing. */
int gkd_experiment_check_inputs(const gkd_experiment *e);

/** The same with options (o NULL: GKD_INPUTS_OPTIONS_INIT): an allowed
 *  overlap becomes a warning. */
int gkd_experiment_check_inputs_opt(const gkd_experiment *e, const gkd_inputs_options *o);

#ifdef __cplusplus
}
#endif

#endif
