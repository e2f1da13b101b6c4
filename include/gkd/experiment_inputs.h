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

/** For every distinct task and model setup among the cells:
 *  - the task builds (data files exist and parse, alphabets are valid);
 *  - teacher.checkpoint and a checkpoint student.init load, and the
 *    student's vocabulary (and tokenizer, if stored) equals the teacher's;
 *  - every train and eval example encodes with the tokenizer the cells
 *    will use, fits the teacher's and the student's context whole, and
 *    leaves room for distill.max_new_tokens after its prompt in the
 *    student's context.
 *  Returns 0, or an error naming the cell and, for an example, where it
 *  came from. Reads files, writes nothing. */
int gkd_experiment_check_inputs(const gkd_experiment *e);

#ifdef __cplusplus
}
#endif

#endif
