/* Shared helpers of the gkd program's subcommands. Each subcommand lives in
 * src/cli/cmd_NAME.c as `int cmd_NAME(int argc, char **argv)`, where argv[0]
 * is the subcommand name; it returns the process exit status (0 ok, 1 error,
 * 2 usage) after printing one clear line for an error. */
#ifndef GKD_CLI_H
#define GKD_CLI_H

#include "gkd/model.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

/** "--name value" or "--name=value" at argv[*i]: returns the value and
 *  advances *i past a separate value; NULL if argv[*i] is another flag.
 *  A missing value prints "gkd CMD: --name needs a value" and sets *err. */
const char *cli_flag(int argc, char **argv, int *i, const char *name, int *err);

/** Task flags (--task, --digits, --op, --rationale, --train, --eval,
 *  --min-len, --max-len, --alphabet, --k, --zipf, --length, --path,
 *  --eval-path, --eval-fraction, --chunk, --prompt-chars, --data-seed):
 *  1 if argv[*i] was one (and was applied), 0 if not, -1 on a bad value
 *  (message printed). */
int cli_task_flag(gkd_task_config *tc, int argc, char **argv, int *i, const char *cmd);
extern const char cli_task_flags_help[];

/** Model shape flags (--layers, --d-model, --heads, --context): as above. */
int cli_model_flag(gkd_model_config *mc, int argc, char **argv, int *i, const char *cmd);
extern const char cli_model_flags_help[];

/** Parse `v` for `flag`, which sets the experiment-file setting `key`
 *  ("distill.lr"): accepted values are the schema's, and the error says
 *  so ("--lr: 0 is out of range (0, 10] (as distill.lr in experiment
 *  files)"). 0 or GKD_EINVAL (message set, not printed). */
int cli_parse_setting_double(double *out, const char *v, const char *key, const char *flag);
int cli_parse_setting_long(long *out, const char *v, const char *key, const char *flag);

/** Load a model from any format gkd reads (model_source.h): *tok and
 *  *record are NULL when the file holds none (a model another tool wrote).
 *  Prints the error. */
int cli_load_any(const char *cmd, const char *path, gkd_model **model, gkd_tokenizer **tok,
                 gkd_task_record **record);
/** Load a model and its tokenizer, refusing a file without one (prints the
 *  error). */
int cli_load(const char *cmd, const char *path, gkd_model **model, gkd_tokenizer **tok);
/** The same, and the data split it was trained on (*record NULL if the
 *  checkpoint stores none; free with gkd_task_record_free). */
int cli_load_with_record(const char *cmd, const char *path, gkd_model **model, gkd_tokenizer **tok,
                         gkd_task_record **record);
/** The same for a model that runs task tc: with --tokenizer (tc->tokenizer)
 *  the model's own tokenizer must be that one, and a model with none runs
 *  with it (its vocabulary checked); without, the model must bring one. */
int cli_load_for_task(const char *cmd, const char *path, const gkd_task_config *tc, gkd_model **model,
                      gkd_tokenizer **tok, gkd_task_record **record);

/** Refuse a model evaluated on examples it was trained on: `what` ("teacher
 *  checkpoint t.ckpt") with its record against the first n eval examples
 *  of task (gkd_task_check_eval_overlap with --data-seed and
 *  --allow-eval-overlap). Prints "gkd CMD: warning: ..." when the overlap
 *  cannot be checked or is allowed, the error otherwise; 0 or 1. */
int cli_check_eval_overlap(const char *cmd, const char *what, const gkd_task_record *record, const gkd_task *task,
                           size_t n, int allow);
#define CLI_ALLOW_OVERLAP_FLAG "--allow-eval-overlap"

/** Where a model's use on eval examples it trained on misleads but
 *  measures nothing of its own: print "gkd CMD: warning: WHAT was trained
 *  on K of the N UNIT (DIFF); CONSEQUENCE" when K > 0, or that the overlap
 *  cannot be checked; 0, or 1 on an error (printed). */
int cli_warn_eval_overlap(const char *cmd, const char *what, const gkd_task_record *record, const gkd_task *task,
                          size_t n, const char *unit, const char *consequence);

/** Print "gkd CMD: <last error>" and return 1. */
int cli_fail(const char *cmd);



#include "gkd/distill.h"

/** Optimization and bookkeeping flags shared by train and distill (--steps,
 *  --batch, --lr, --lr-min, --warmup, --weight-decay, --clip, --seed,
 *  --eval-every, --eval-n, --eval-samples, --checkpoint-every,
 *  --max-new-tokens): as cli_task_flag. */
int cli_train_flag(gkd_distill_options *o, int argc, char **argv, int *i, const char *cmd);
extern const char cli_train_flags_help[];

/** Print a progress line to stderr (rewritten in place on a terminal). */
void cli_progress(void *ctx, long step, long steps, const char *line);
#endif
