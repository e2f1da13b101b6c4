/* Tasks: seeded generators of (prompt, reference) examples with disjoint
 * train and eval splits, and the scorer of a generated output. One file per
 * task under src/data/tasks/; src/data/task.c dispatches by name. */
#ifndef GKD_TASK_H
#define GKD_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One example. context and rationale are NULL unless the task makes
 *  them: context is text only the teacher sees, before the prompt
 *  (context distillation); rationale is the reasoning that leads to the
 *  reference's answer (distilling step-by-step). */
typedef struct {
    char *prompt;
    char *reference;
    char *context;
    char *rationale;
} gkd_example;

/** GKD_SPLIT_RATIONALE: with targets multitask, the rationale task of the
 *  training examples, example i of it made from train example i
 *  (GKD_RATIONALE_PREFIX prompt -> rationale); empty otherwise. */
typedef enum { GKD_SPLIT_TRAIN = 0, GKD_SPLIT_EVAL = 1, GKD_SPLIT_RATIONALE = 2 } gkd_split;

/** What a model learns to produce (distilling step-by-step, Hsieh et al.
 *  2023; docs/distillation.md). REFERENCE: the task's reference as it is.
 *  The others need a task whose examples have rationales (arith), except
 *  ANSWER, which on a task without them is the reference:
 *  ANSWER: the answer alone (gkd_task_answer of the reference);
 *  RATIONALE_ANSWER: rationale " ->" answer (arith's rationale=1 form);
 *  MULTITASK: train and eval examples become GKD_LABEL_PREFIX prompt ->
 *  answer, and GKD_SPLIT_RATIONALE holds the rationale task. */
typedef enum {
    GKD_TARGETS_REFERENCE = 0,
    GKD_TARGETS_ANSWER = 1,
    GKD_TARGETS_RATIONALE_ANSWER = 2,
    GKD_TARGETS_MULTITASK = 3
} gkd_targets;

/** The task prefixes of targets multitask: plain text in the prompt. */
#define GKD_LABEL_PREFIX "[label] "
#define GKD_RATIONALE_PREFIX "[rationale] "

/** "reference", "answer", "rationale+answer", "multitask" (NULL if out of range). */
const char *gkd_targets_name(int targets);
/** Parse a name of gkd_targets_name; GKD_EINVAL naming `what` (a key or flag). */
int gkd_targets_parse(const char *s, int *out, const char *what);

typedef struct {
    const char *name;     /* arith | reverse | sort | modes | pairs | text */
    uint64_t seed;
    int train;            /* number of training examples (generated tasks) */
    int eval;             /* number of eval examples */
    /* arith */
    int digits;           /* operand digits, 1..9 */
    const char *op;       /* "add" | "sub" | "mul" */
    int rationale;        /* 1: step-by-step digit sums with carries before the answer */
    /* reverse, sort */
    int min_len, max_len; /* string length range */
    const char *alphabet; /* characters strings are drawn from */
    /* modes */
    int modes_k;          /* valid continuations per prompt */
    double zipf_s;        /* Zipf exponent of their probabilities */
    int modes_len;        /* length of each continuation */
    /* pairs, text */
    const char *path;     /* TSV (pairs) or plain text (text) */
    const char *eval_path;/* optional separate eval file (pairs) */
    double eval_fraction; /* split by seed when no eval_path */
    int chunk;            /* text: characters per example */
    int prompt_chars;     /* text: characters of the chunk that form the prompt */
    /* any task */
    const char *tokenizer;/* subword tokenizer files; NULL: char/byte vocabulary */
    int targets;          /* gkd_targets of both splits (student.targets, --targets) */
    double train_fraction;/* the first round(f n) examples of the training split, f in (0, 1];
                             0 stands for 1 (the whole split) */
    /* contexts: text only the teacher sees before the prompt (docs/tasks.md) */
    const char *context;  /* arith: NULL | "none" | "rationale" | "worked_example" */
    const char *context_path; /* text: a file whose text is every example's context */
    const char *teacher_context; /* any task: text before every example's own context */
    int with_context;     /* 1: gkd_task_encode_example/_prompt lay sequences out as the
                             teacher sees them, [BOS] context prompt SEP reference EOS */
} gkd_task_config;

/** The data seed of experiment files (task.seed) and of gkd train, distill,
 *  eval and sample (--data-seed) when none is given: one default, so a run
 *  made by hand sees the same data as a grid's cells. */
#define GKD_TASK_DEFAULT_SEED 1234

#define GKD_TASK_CONFIG_INIT                                                              \
    {.name = "arith", .seed = 1, .train = 20000, .eval = 500, .digits = 3, .op = "add",   \
     .rationale = 0, .min_len = 3, .max_len = 8, .alphabet = "abcdefghij", .modes_k = 4,  \
     .zipf_s = 1.0, .modes_len = 4, .path = NULL, .eval_path = NULL,                      \
     .eval_fraction = 0.1, .chunk = 64, .prompt_chars = 32, .tokenizer = NULL,                \
     .targets = GKD_TARGETS_REFERENCE, .train_fraction = 1.0, .context = NULL,            \
     .context_path = NULL, .teacher_context = NULL, .with_context = 0}

typedef struct gkd_task gkd_task;

int gkd_task_new(gkd_task **out, const gkd_task_config *cfg);
void gkd_task_free(gkd_task *t);
const char *gkd_task_name(const gkd_task *t);

size_t gkd_task_size(const gkd_task *t, gkd_split split);
const gkd_example *gkd_task_example(const gkd_task *t, gkd_split split, size_t i);

/** The tokenizer for this task: the subword tokenizer of cfg.tokenizer
 *  when set, else a char vocabulary over both splits (byte vocabulary for
 *  `text`). */
int gkd_task_tokenizer(const gkd_task *t, gkd_tokenizer **out);

/** 0 when a model's own tokenizer (from its checkpoint or files) can run
 *  this task: always when cfg.tokenizer is unset, else only if it is the
 *  same tokenizer. GKD_EMISMATCH naming `what` (a key or flag) and path. */
int gkd_task_check_model_tokenizer(const gkd_task *t, const gkd_tokenizer *tok, const char *what,
                                   const char *path);

/** The answer within a reference of the task as generated (before
 *  targets): arith's text after the last "->" with rationale=1, else the
 *  whole reference. NULL if the reference has no answer marker. */
const char *gkd_task_answer(const gkd_task *t, const char *reference);

/** The task's primary score of one output in [0, 1] (exact match of the
 *  final answer for arith; exact match for reverse/sort/pairs; validity for
 *  modes). */
double gkd_task_score(const gkd_task *t, const gkd_example *ex, const char *output);

/** Known distribution (modes only; 0 otherwise): number of valid
 *  continuations of eval/train example i, and continuation k with its true
 *  probability. */
size_t gkd_task_num_continuations(const gkd_task *t, gkd_split split, size_t i);
const char *gkd_task_continuation(const gkd_task *t, gkd_split split, size_t i, size_t k, double *prob);

/* ---- additions: configuration, provenance and encoding with context ---- */

/** The (validated) configuration the task was built from. */
const gkd_task_config *gkd_task_config_of(const gkd_task *t);

/** Where example i came from: file and 1-based line for pairs/text
 *  (the first line of a text chunk), NULL and 0 for generated tasks. */
int gkd_task_example_source(const gkd_task *t, gkd_split split, size_t i, const char **file, int *line);

/** pairs with eval_path: training lines dropped because their source is
 *  also an eval source (keeps the splits disjoint); 0 otherwise. */
size_t gkd_task_dropped_overlap(const gkd_task *t);

/** Prefix the current error (code rc, returned) with where example i came
 *  from: "file:line: " for pairs/text, "arith eval example 7: " else. */
int gkd_task_example_error(const gkd_task *t, gkd_split split, size_t i, int rc);

/** 1 if some example of either split has a non-empty context. */
int gkd_task_has_context(const gkd_task *t);

/** The tokens of example i's context (text, no specials), *n 0 when it
 *  has none. GKD_EINVAL (prefixed with where the example came from) if
 *  they do not fit in cap. */
int gkd_task_encode_context(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i, int *ids,
                            int cap, int *n);

/** The teacher's view of example i: [BOS] context prompt SEP [reference
 *  EOS], the sequence of gkd_tokenizer_encode_pair with the context's
 *  tokens (gkd_task_encode_context) inserted after BOS (at the start when
 *  the tokenizer has none). So the tokens after the context are the plain
 *  sequence's tokens after BOS: position t of the plain sequence is
 *  position t + *context_len of this one. prompt_len and len count the
 *  context. with_reference 0: prompt only. */
int gkd_task_encode_with_context(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                                 int with_reference, int *ids, int cap, int *context_len, int *prompt_len,
                                 int *len);

/** BOS prompt SEP reference EOS of example i (see gkd_tokenizer_encode_pair);
 *  with cfg.with_context, the teacher's view (gkd_task_encode_with_context).
 *  Errors are prefixed with where the example came from ("file:line: " or
 *  "arith eval example 7: "), e.g. a character outside the vocabulary. */
int gkd_task_encode_example(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                            int *ids, int cap, int *prompt_len, int *len);
/** Same, prompt only: BOS prompt SEP (for generation). */
int gkd_task_encode_prompt(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                           int *ids, int cap, int *prompt_len, int *len);

/* ---- the data split a model was trained on (stored in checkpoints) ---- */

/** What a model was trained on, enough to rebuild its training split: the
 *  task's whole configuration (name, data seed, sizes, eval fraction and
 *  every task parameter), for each data file its absolute path, size and
 *  FNV-1a 64 hash of its bytes, and the sizes the two splits had. Saved in
 *  checkpoints (docs/checkpoint-format.md) by gkd train and gkd distill. */
typedef struct {
    gkd_task_config cfg;   /* strings owned by the record; path and eval_path absolute */
    uint64_t file_size[2]; /* [0] cfg.path, [1] cfg.eval_path (0 when absent) */
    uint64_t file_hash[2]; /* FNV-1a 64 of the file's bytes */
    uint64_t train_n, eval_n; /* split sizes when recorded */
    char *owned[5];        /* name, op, alphabet, path, eval_path */
} gkd_task_record;

/** Record the split of t: copies its configuration, resolves data file
 *  paths to absolute ones and hashes the files' bytes. GKD_EIO if a data
 *  file cannot be read any more. */
int gkd_task_record_new(gkd_task_record **out, const gkd_task *t);
void gkd_task_record_free(gkd_task_record *r);

/** Serialized form (little-endian, bounds-checked on reading; layout in
 *  docs/checkpoint-format.md, "Task record"). */
size_t gkd_task_record_serialized_size(const gkd_task_record *r);
void gkd_task_record_serialize(const gkd_task_record *r, unsigned char *out);
/** Parse n bytes; every length and count is checked against n, strings
 *  must be NUL-free, the task name known. GKD_EFORMAT naming the field. */
int gkd_task_record_deserialize(gkd_task_record **out, const unsigned char *buf, size_t n);

/** The overlap of a recorded training split with a task's eval split. */
typedef struct {
    int checked;       /* 1: counted; 0: could not be (reason in why) */
    size_t overlap;    /* eval examples whose prompt is a recorded training prompt */
    size_t eval_n;     /* eval examples compared (the first n of the split) */
    size_t train_n;    /* examples of the rebuilt training split */
    char why[512];     /* !checked: "data file X changed since training", ... */
    char diff[256];    /* what the recorded task has that t has not, e.g. "data seed 1 vs 1234" ("" if none found) */
} gkd_task_overlap;

/** Count how many of the first n eval examples of t (all if n is 0 or
 *  larger than the split) have a prompt that is in the training split of
 *  r: the recorded task is rebuilt from its options and files and the
 *  prompts are compared exactly. Missing or changed data files, or a
 *  rebuild that does not reproduce the recorded split sizes, leave
 *  checked 0 with the reason (not an error). Returns 0, or GKD_ENOMEM. */
int gkd_task_record_overlap(gkd_task_overlap *out, const gkd_task_record *r, const gkd_task *t, size_t n);

/** The policy every command applies to a model about to be evaluated on
 *  t: `what` names the model ("teacher checkpoint t.ckpt"), `seed_key`
 *  the option that sets the data seed ("--data-seed", "task.seed") and
 *  `opt_out` how to allow an overlap ("--allow-eval-overlap"). r NULL (a
 *  checkpoint without record, e.g. format version 1): nothing to check, 0.
 *  Overlap > 0: GKD_EMISMATCH "WHAT was trained on 37 of the 200 eval
 *  examples (data seed 1 vs 1234); use the same SEED_KEY, or OPT_OUT",
 *  unless allow, when it becomes the warning. Not checkable: 0 and a
 *  warning "WHAT: eval overlap not checked: REASON". warning (cap bytes)
 *  receives the one-line warning or "". */
int gkd_task_check_eval_overlap(const gkd_task_record *r, const gkd_task *t, size_t n, const char *what,
                                const char *seed_key, const char *opt_out, int allow, char *warning,
                                size_t cap);

#ifdef __cplusplus
}
#endif

#endif
