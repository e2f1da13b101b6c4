/* Private to src/experiment: the artifacts cells share, built once per
 * results tree: shared/teacher-<hash>/ (the teacher trained from scratch)
 * and shared/student-<hash>/ (the SFT student init), keyed by the hashes
 * of the settings they depend on (gkd/experiment.h). Each is built under
 * a lock, so parallel cells or Slurm tasks build it once; later cells load
 * its final.ckpt. */
#ifndef GKD_RUN_SHARED_H
#define GKD_RUN_SHARED_H

#include "gkd/experiment.h"
#include "gkd/model.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

/** Cell c's teacher (c has no teacher.checkpoint), trained the first time
 *  a cell needs it. tty: progress on a terminal. */
int run_shared_teacher(gkd_model **out, const gkd_cell_config *c, const char *exp_dir, const gkd_tokenizer *tok,
                       const gkd_task *task, int tty);

/** Cell c's SFT student init (student.init sft), of shape *shape. */
int run_shared_student(gkd_model **out, const gkd_cell_config *c, const gkd_model_config *shape,
                       const char *exp_dir, const gkd_tokenizer *tok, const gkd_task *task, int tty);

#endif
