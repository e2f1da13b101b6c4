/* Private to src/experiment: the artifacts cells share, built once per
 * results tree: shared/teacher-<hash>/ (the teacher trained from scratch),
 * shared/student-<hash>/ (the SFT student init), keyed by the hashes
 * of the settings they depend on (gkd/experiment.h), and
 * shared/teacher_cache-<hash>.bin (the teacher's top-k rows of an
 * off-policy source), keyed by the hash of the cache's header. Each is built under
 * a lock, so parallel cells or Slurm tasks build it once; later cells load
 * its final.ckpt. */
#ifndef GKD_RUN_SHARED_H
#define GKD_RUN_SHARED_H

#include "gkd/distill.h"
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

/** The shared teacher cache a cell's distillation with options o reads:
 *  with teacher_topk, no teacher_cache and shared_teacher_cache, the
 *  source is SeqKD when the run caches SeqKD outputs, else the data when
 *  the schedule draws any; built under a lock by the first cell that needs
 *  it. path (RUN_PATH_CAP) receives its file, or "" when no cache applies. */
int run_shared_teacher_cache(char *path, const gkd_cell_config *c, const gkd_distill_options *o,
                             const char *exp_dir, gkd_model *teacher, const gkd_tokenizer *tok,
                             const gkd_task *task, int tty);

#endif
