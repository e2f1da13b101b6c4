/* What task.c shares with the task files in src/data/tasks/: the task object, the
 * per-task operations and the helpers that fill the two splits. */
#ifndef GKD_TASKS_TASK_IMPL_H
#define GKD_TASKS_TASK_IMPL_H

#include <stddef.h>

#include "gkd/rng.h"
#include "gkd/task.h"

typedef struct gkd_task_ops gkd_task_ops;

/* One split: examples plus, for file tasks, the line each came from. */
typedef struct {
    gkd_example *ex;  /* (n) strings owned by the split */
    int *line;        /* (n) 1-based source line, 0 for generated examples */
    const char **file;/* (n) source file (borrowed from the task), NULL if generated */
    size_t n, cap;
} task_split;

/* Known distribution over continuations of one example (modes). */
typedef struct {
    char **text;   /* (k) */
    double *prob;  /* (k) sums to 1 */
    size_t k;
} task_dist;

struct gkd_task {
    gkd_task_config cfg;   /* string fields point into owned copies below */
    char *owned[9];        /* name, op, alphabet, path, eval_path, tokenizer, context,
                              context_path, teacher_context */
    const gkd_task_ops *ops;
    task_split split[3];   /* [GKD_SPLIT_TRAIN], [GKD_SPLIT_EVAL], [GKD_SPLIT_RATIONALE] */
    task_dist *dist[3];    /* (n) per example, modes only */
    size_t train_all;      /* training examples before train_fraction (kept allocated: the
                              vocabulary covers them, so every fraction shares it) */
    size_t dropped_overlap;/* pairs with eval_path: train lines whose prompt is in eval */
};

struct gkd_task_ops {
    const char *name;
    /** Validate cfg and fill both splits. */
    int (*build)(gkd_task *t);
    /** Primary score of an output in [0, 1]. */
    double (*score)(const gkd_task *t, const gkd_example *ex, const char *output);
    int byte_vocab; /* 1: gkd_task_tokenizer returns the byte vocabulary */
    /** The answer within a generated reference (gkd_task_answer); NULL op:
     *  the whole reference. */
    const char *(*answer)(const gkd_task *t, const char *reference);
};

/** 1 if the task's references (after targets) carry a rationale before
 *  the answer marker: rationale=1 with targets reference, or targets
 *  rationale+answer. The scorers of tasks with rationales read it. */
int task_references_marked(const gkd_task *t);

/** Rewrite both splits for cfg.targets (task_targets.c); after build. */
int task_apply_targets(gkd_task *t);
/** Keep the first round(f n) training examples (task_targets.c); after
 *  task_apply_targets. */
int task_apply_train_fraction(gkd_task *t);

extern const gkd_task_ops gkd_task_arith_ops, gkd_task_reverse_ops, gkd_task_sort_ops,
    gkd_task_modes_ops, gkd_task_pairs_ops, gkd_task_text_ops;

/** Append an example (takes ownership of prompt and reference, freeing them on
 *  failure). */
int task_split_push(task_split *s, char *prompt, char *reference, const char *file, int line);

/** Generator of one example from its own stream; writes malloc'd strings. */
typedef int (*task_gen_fn)(const gkd_task *t, gkd_rng *rng, char **prompt, char **reference);

/** Fill eval (cfg.eval examples) and train (cfg.train examples) by calling gen
 *  with stream gkd_rng_derive(seed, GKD_RNG_DATA, tag * 2 + split, i); a
 *  train example whose prompt is an eval prompt is redrawn from the same
 *  stream. Errors if the prompt space is too small to stay disjoint. */
int task_generate_splits(gkd_task *t, uint64_t tag, task_gen_fn gen);

/** Move the examples of `all` into train and eval: distinct prompts are
 *  shuffled with the task seed and round(eval_fraction * distinct) of them
 *  (at least 1, at most distinct - 1) go to eval with all their examples, so
 *  no eval prompt appears in train. `all` is emptied. */
int task_split_by_prompt(gkd_task *t, task_split *all, uint64_t tag);

void task_split_free(task_split *s);

/** After build: check the context options against the task, and put
 *  cfg.teacher_context before every example's own context (contexts.c). */
int task_apply_contexts(gkd_task *t);

/* Small string helpers shared by the generators. */
/** Number of code points of valid UTF-8 s (or -1 if invalid). */
long utf8_length(const char *s);
/** Byte offsets of the code points of s: off[0..n], off[n] = strlen(s). */
int utf8_offsets(const char *s, size_t **off, size_t *n);
/** Growable string. */
typedef struct { char *s; size_t n, cap; } strbuf;
int strbuf_append(strbuf *b, const char *s, size_t len);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Alphabet: non-empty valid UTF-8 without repeated characters. */
int task_check_alphabet(const gkd_task *t);
/** 1 <= min_len <= max_len <= 4096. */
int task_check_lengths(const gkd_task *t);
/** `len` characters drawn uniformly from cfg.alphabet (malloc'd). */
int task_random_string(const gkd_task *t, gkd_rng *rng, int len, char **out);

/** Score 1 if output equals the reference exactly, else 0. */
double task_score_exact(const gkd_task *t, const gkd_example *ex, const char *output);

/** Whole file into a NUL-terminated malloc'd buffer (GKD_EIO with errno). */
int task_read_file(const char *path, char **out, size_t *len);
/** Byte offset of the first invalid UTF-8 sequence or NUL byte in s[0..len),
 *  or len if there is none. */
size_t utf8_invalid_at(const char *s, size_t len);

#endif
