/* Private: the options a run directory was made with, so that a resume
 * with other options is refused instead of appended to the same logs
 * (distill_run.c). Written as key=value lines to DIR/options.txt: the
 * task's examples and the student's initial and teacher's weights as
 * hashes, every option that changes what is trained or logged as its
 * value. */
#ifndef GKD_RUN_OPTIONS_H
#define GKD_RUN_OPTIONS_H

#include "gkd/csv.h"
#include "gkd/distill.h"

/** The lines for this run (student: its weights before any resume). */
int gkd_run_options_text(gkd_csv_buf *b, const gkd_model *student, const gkd_model *teacher,
                         const gkd_tokenizer *tok, const gkd_task *task, const gkd_distill_options *o);

/** A fresh run (or a resume in a directory without the file) writes text to
 *  path atomically; a resume compares: GKD_EMISMATCH naming the first
 *  option that differs. */
int gkd_run_options_check(const char *path, const char *text, int resuming);

#endif
