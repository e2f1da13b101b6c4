/* Experiment files: YAML (libyaml) -> validated experiment -> grid of cells.
 *
 * Any scalar under task/teacher/student/distill/eval may be written as a list;
 * each list is a grid axis, and `seeds` is always an axis named `seed`.
 * A top-level `variants` mapping (name -> partial config) is one more axis,
 * named `variant`, whose values are the names; a variant's settings
 * override the top-level values in its cells. The
 * cells are the cartesian product of the axes in file order, LAST axis
 * fastest (like nested loops written in file order). A cell is a fully
 * resolved, flat gkd_cell_config with every default filled in.
 *
 * Errors are one line: `exp.yaml:LINE:COL: message` (1-based positions).
 * The schema reference is docs/experiments.md (also `gkd check --schema`). */
#ifndef GKD_EXPERIMENT_H
#define GKD_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gkd/model.h"
#include "gkd/schedule.h"
#include "gkd/task.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GKD_CELL_MAX_AXES 32           /* axes per experiment */
#define GKD_CELL_NAME_MAX 208          /* cell directory name, NUL included */
#define GKD_EXPERIMENT_MAX_CELLS 100000 /* cells per experiment */
#define GKD_HASH_HEX_LEN 16            /* FNV-1a 64 as lowercase hex */

typedef struct gkd_experiment gkd_experiment;

/** Optimizer options of one training phase. */
typedef struct {
    int steps;
    int batch;
    double lr;           /* peak learning rate */
    double lr_min;       /* floor of the cosine decay; < 0: unset, lr / 10 */
    int warmup;          /* linear warmup steps */
    double weight_decay; /* AdamW decoupled weight decay */
    double clip;         /* global grad-norm clip, 0 = off */
} gkd_train_options;

typedef enum { GKD_INIT_SFT = 0, GKD_INIT_RANDOM = 1, GKD_INIT_CHECKPOINT = 2 } gkd_student_init;
typedef enum { GKD_REDUCE_TOKEN = 0, GKD_REDUCE_SEQUENCE = 1 } gkd_reduction;
typedef enum { GKD_DECODE_GREEDY = 0, GKD_DECODE_SAMPLE = 1 } gkd_decode;

typedef struct {
    gkd_replay_mode mode; /* from gkd/schedule.h */
    int capacity;  /* sequences kept */
    double prob;   /* fixed: probability a batch is drawn from the buffer */
    double init;   /* adaptive: initial probability */
    double step;   /* adaptive: change per adjustment */
    double loss_eps; /* adaptive: validation-loss rise that counts as a rise */
} gkd_replay_options;

typedef struct {
    gkd_train_options opt;   /* steps, batch, lr, warmup, weight_decay, clip */
    const char *divergence;  /* canonical spelling, e.g. "jsd(0.1)" */
    double ce_weight;        /* + ce_weight * cross-entropy on ground truth */
    double lambda;           /* fraction of batches that are student rollouts */
    int per_example;         /* 1: lambda drawn per example instead of per batch */
    double seqkd;            /* fraction of off-policy batches the teacher generates */
    int seqkd_cache;         /* 1: teacher outputs generated once and reused */
    double teacher_mix;      /* mixture weight of the teacher in student rollouts */
    gkd_replay_options replay;
    double temperature;      /* rollout sampling temperature, 0 = greedy */
    int top_k;               /* 0 = off */
    double top_p;            /* 1 = off */
    double loss_temperature; /* tau of the divergence */
    int teacher_topk;        /* 0: the dense teacher; k: its top-k rows (sparse_teacher.h) */
    int topk_tail;           /* gkd_sparse_mode: renorm or tail */
    gkd_reduction reduction;
    int max_new_tokens;
    int checkpoint_every;    /* 0 = only at the end */
    const char *teacher_cache; /* a gkd teacher-cache file the cell reads, or NULL */
    int shared_teacher_cache;  /* 1: with teacher_topk and an off-policy source, build one
                                  cache per results tree (shared/) and read it */
    double rationale_weight;   /* student.rationale_weight: w of the rationale loss (multitask) */
    int rationale_source;      /* student.rationale_source: gkd_rationale_source */
} gkd_distill_config;

typedef struct {
    int every;          /* evaluate every N steps, 0 = only at the end */
    gkd_decode decode;
    int samples;        /* samples per prompt (decode: sample) */
    int n;              /* eval examples used */
    double temperature; /* decode: sample */
    int bleu_smoothing; /* gkd_bleu_smoothing of the bleu column (0: none, NLTK's default) */
    int allow_overlap;  /* 1: a checkpoint trained on eval examples is a warning (in no hash) */
} gkd_eval_config;

typedef struct {
    const char *partition; /* "" = cluster default */
    const char *time;      /* Slurm time limit, e.g. "01:00:00" */
    int cpus_per_task;
    const char *mem;       /* "" = cluster default, e.g. "4G" */
} gkd_slurm_config;

/** One grid coordinate of a cell. */
typedef struct {
    const char *key;   /* full key, e.g. "distill.lambda" ("seeds" for the seed axis) */
    const char *name;  /* short axis name, e.g. "lambda", "seed" (see docs) */
    const char *value; /* canonical value text, e.g. "1", "jsd(0.1)" */
} gkd_cell_axis;

/** A fully resolved cell. Strings point into the experiment and live as
 *  long as it does. Paths are absolute (resolved against the directory of
 *  the experiment file). */
typedef struct {
    const char *experiment;   /* experiment name */
    const char *description;  /* "" if none */
    size_t index;             /* 0-based cell index */
    char name[GKD_CELL_NAME_MAX]; /* "divergence=jsd(0.1),lambda=1,seed=2", filesystem-safe */
    int num_axes;
    gkd_cell_axis axes[GKD_CELL_MAX_AXES];
    uint64_t seed;            /* run seed of the cell (the `seed` axis) */

    gkd_task_config task;     /* task.seed is the data seed, not the run seed */

    const char *teacher_checkpoint;  /* NULL: train the teacher from scratch */
    gkd_model_config teacher_model;  /* vocab_size 0 (set by the runner); all 0 with a checkpoint */
    gkd_train_options teacher_train; /* all 0 with a checkpoint */
    uint64_t teacher_seed;           /* teacher.train.seed */
    int teacher_same_as;             /* teacher.same_as: 1 = student_init, the teacher is a frozen
                                        copy of the student's initial model (self-distillation) */

    gkd_model_config student_model;  /* vocab_size 0; max_seq_len defaults to the teacher's
                                        (0 with a teacher checkpoint: taken from it) */
    gkd_student_init student_init;
    const char *student_checkpoint;  /* student.init path, GKD_INIT_CHECKPOINT only */
    gkd_train_options student_sft;   /* SFT seed is the cell seed */

    gkd_distill_config distill;
    gkd_eval_config eval;
    gkd_slurm_config slurm;
} gkd_cell_config;

/** Load and validate an experiment file. Every cell is built and checked,
 *  so a loaded experiment has no invalid cell. On error returns a negative
 *  GKD_E* with the one-line message `path:line:col: message`. */
/** The accepted range of a numeric experiment-file setting ("distill.lr",
 *  "student.model.context", ...). Command-line flags that set the same
 *  thing check their values against it, so the two cannot drift. */
typedef struct {
    double min, max;
    int open_min, open_max; /* the bound itself is excluded */
} gkd_setting_range;

/** Fill *out for `key`; GKD_EINVAL if the schema has no numeric key so
 *  named. */
int gkd_experiment_setting_range(const char *key, gkd_setting_range *out);
/** 1 if v lies in r (open bounds excluded). */
int gkd_setting_range_holds(const gkd_setting_range *r, double v);
/** r as "[0, 10]", "(0, 10]", ... (the form of every range message). */
void gkd_setting_range_text(const gkd_setting_range *r, char *out, size_t cap);

int gkd_experiment_load(gkd_experiment **out, const char *path);

/** Same from memory; `path` is used in messages and to resolve relative
 *  paths (its directory). */
int gkd_experiment_load_buffer(gkd_experiment **out, const char *data, size_t len,
                               const char *path);

void gkd_experiment_free(gkd_experiment *exp);

const char *gkd_experiment_name(const gkd_experiment *exp);
size_t gkd_experiment_num_cells(const gkd_experiment *exp);
int gkd_experiment_num_axes(const gkd_experiment *exp);
/** Axis i (file order): full key, short name and number of values. */
void gkd_experiment_axis(const gkd_experiment *exp, int i, const char **key, const char **name,
                         size_t *num_values);

/** The experiment's `labels` (file order): display names for gkd table,
 *  KEY a metric, an axis or AXIS:VALUE, TEXT LaTeX source. They are in no
 *  cell and no hash. */
size_t gkd_experiment_num_labels(const gkd_experiment *exp);
void gkd_experiment_label(const gkd_experiment *exp, size_t i, const char **key, const char **text);

/** Resolve cell i (0 <= i < num_cells). */
int gkd_experiment_cell(const gkd_experiment *exp, size_t i, gkd_cell_config *out);

/** Hashes (FNV-1a 64, 16 hex digits + NUL) of canonical YAML text:
 *  teacher:      task.* + teacher.* (checkpoint, or model + train incl. its seed);
 *  student init: task.* + student.model + student.init + student.sft + cell seed
 *                (sft; no task/sft for random; model + path for a checkpoint);
 *  config:       the whole resolved cell except name, description and slurm. */
void gkd_cell_teacher_hash(const gkd_cell_config *cell, char hex[GKD_HASH_HEX_LEN + 1]);
void gkd_cell_student_init_hash(const gkd_cell_config *cell, char hex[GKD_HASH_HEX_LEN + 1]);
void gkd_cell_config_hash(const gkd_cell_config *cell, char hex[GKD_HASH_HEX_LEN + 1]);

/** Write the resolved cell as an experiment file with a single cell (every
 *  default filled in, `seeds: [seed]`); loading it gives the same config
 *  hash. */
int gkd_cell_config_write_yaml(const gkd_cell_config *cell, FILE *f);

/** Same, atomically to `path` (temp file, fsync, rename). */
int gkd_cell_config_save_yaml(const gkd_cell_config *cell, const char *path);

/** The schema reference as a Markdown table (every key, type, default, range). */
int gkd_experiment_schema_markdown(FILE *f);

#ifdef __cplusplus
}
#endif

#endif
