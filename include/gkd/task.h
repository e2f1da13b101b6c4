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

typedef struct {
    char *prompt;
    char *reference;
} gkd_example;

typedef enum { GKD_SPLIT_TRAIN = 0, GKD_SPLIT_EVAL = 1 } gkd_split;

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
} gkd_task_config;

/** The data seed of experiment files (task.seed) and of gkd train, distill,
 *  eval and sample (--data-seed) when none is given: one default, so a run
 *  made by hand sees the same data as a grid's cells. */
#define GKD_TASK_DEFAULT_SEED 1234

#define GKD_TASK_CONFIG_INIT                                                              \
    {.name = "arith", .seed = 1, .train = 20000, .eval = 500, .digits = 3, .op = "add",   \
     .rationale = 0, .min_len = 3, .max_len = 8, .alphabet = "abcdefghij", .modes_k = 4,  \
     .zipf_s = 1.0, .modes_len = 4, .path = NULL, .eval_path = NULL,                      \
     .eval_fraction = 0.1, .chunk = 64, .prompt_chars = 32}

typedef struct gkd_task gkd_task;

int gkd_task_new(gkd_task **out, const gkd_task_config *cfg);
void gkd_task_free(gkd_task *t);
const char *gkd_task_name(const gkd_task *t);

size_t gkd_task_size(const gkd_task *t, gkd_split split);
const gkd_example *gkd_task_example(const gkd_task *t, gkd_split split, size_t i);

/** The tokenizer for this task: char vocabulary over both splits (byte
 *  vocabulary for `text`). */
int gkd_task_tokenizer(const gkd_task *t, gkd_tokenizer **out);

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

/** BOS prompt SEP reference EOS of example i (see gkd_tokenizer_encode_pair).
 *  Errors are prefixed with where the example came from ("file:line: " or
 *  "arith eval example 7: "), e.g. a character outside the vocabulary. */
int gkd_task_encode_example(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                            int *ids, int cap, int *prompt_len, int *len);
/** Same, prompt only: BOS prompt SEP (for generation). */
int gkd_task_encode_prompt(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                           int *ids, int cap, int *prompt_len, int *len);

#ifdef __cplusplus
}
#endif

#endif
