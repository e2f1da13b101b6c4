/* Private to src/experiment*.c: the schema table, parsed values and the
 * experiment handle. */
#ifndef GKD_EXPERIMENT_INTERNAL_H
#define GKD_EXPERIMENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/experiment.h"

typedef enum {
    K_INT,      /* int field */
    K_U64,      /* uint64_t field, 0..LONG_MAX */
    K_DOUBLE,   /* double field */
    K_BOOL,     /* int field, 0/1 */
    K_STR,      /* const char * field */
    K_NAME,     /* const char * field, [A-Za-z0-9_.-]+ */
    K_ENUM,     /* int (enum) field: index into choices */
    K_ENUM_STR, /* const char * field: one of choices */
    K_DIV,      /* const char * field: canonical divergence */
    K_PATH,     /* const char * field: resolved path */
    K_INIT,     /* student.init: sft | random | checkpoint path */
    K_SEEDS,    /* top-level seeds: the `seed` axis */
    K_TIME,     /* Slurm time limit string */
    K_MEM,      /* Slurm memory string */
    K_VARIANTS, /* top-level variants: the `variant` axis (no cell field) */
    K_LABELS    /* top-level labels: display names for gkd table (no cell field) */
} exp_kind;

#define F_NO_AXIS 1u  /* a list is an error (name, description, slurm.*) */
#define F_OPEN_MIN 2u /* range excludes min */
#define F_OPEN_MAX 4u /* range excludes max */
#define F_REQUIRED 8u

/* Tasks a task.* key is used by (0 = all). */
#define T_ARITH 1u
#define T_REVERSE 2u
#define T_SORT 4u
#define T_MODES 8u
#define T_PAIRS 16u
#define T_TEXT 32u
#define T_GENERATED (T_ARITH | T_REVERSE | T_SORT | T_MODES)

/* The runs a cell makes, each configured by a gkd_distill_options: the
 * shared teacher's training, the shared SFT student's, and the cell's
 * distillation (cell_options.c fills them from the table below). */
#define RUN_TEACHER 1u
#define RUN_SFT 2u
#define RUN_DISTILL 4u
#define RUN_ALL (RUN_TEACHER | RUN_SFT | RUN_DISTILL)

/* How a key's value is written into a gkd_distill_options field. The
 * source type is the key's kind: int for K_INT/K_BOOL/K_ENUM, double for
 * K_DOUBLE, uint64_t for K_U64/K_SEEDS, the canonical text for K_DIV. */
typedef enum {
    O_NONE = 0,   /* the value sets no option */
    O_INT,        /* int (or an enum of gkd's: an enum key's index is its value) */
    O_LONG,       /* long, from int */
    O_FLOAT,      /* float, from double */
    O_DOUBLE,     /* double */
    O_U64,        /* uint64_t */
    O_DIVERGENCE  /* gkd_divergence, parsed from the canonical text */
} exp_option_type;

typedef struct {
    unsigned runs;        /* RUN_* bits: the runs whose options take the value */
    exp_option_type type;
    size_t offset;        /* into gkd_distill_options */
} exp_option_dest;

typedef struct {
    const char *path;    /* "distill.lambda" */
    exp_kind kind;
    const char *def;     /* default as text; NULL = none (required, derived or unset) */
    double min, max;     /* numeric range */
    unsigned flags;
    unsigned tasks;      /* task.* only */
    const char *choices; /* "token|sequence" for enums */
    size_t offset;       /* into gkd_cell_config */
    const char *doc;     /* meaning, for the schema reference */
    exp_option_dest option; /* where the runs' options take the value (NO_OPTION: nowhere) */
} exp_key;

extern const exp_key exp_keys[];
extern const int exp_num_keys;

/** Index of the leaf key with this full path, or -1. */
int exp_key_find(const char *path);
/* A numeric key's range (min, max and its open bounds). */
gkd_setting_range exp_key_range(const exp_key *k);
/** 1 if `path` is a section (a proper prefix of some key path). */
int exp_is_section(const char *path);
/** Task bit of a task name (0 if unknown). */
unsigned exp_task_bit(const char *name);

/** Levenshtein distance (bounded inputs). */
int exp_edit_distance(const char *a, const char *b);
/** Closest of the '|'-separated words (or NULL if none is close). */
const char *exp_suggest(const char *word, const char *const *cands, int n);

/** A parsed value: canonical text and typed payload. */
typedef struct {
    const char *text; /* canonical (paths: resolved absolute path) */
    const char *raw;  /* as written (cell names use it) */
    long l;
    double d;
    int line, col;    /* 1-based position of the value, 0 for defaults */
} exp_value;

/** Parse `s` as a value of key k (messages start with "k->path: ").
 *  Strings in *out are allocated with exp_strdup on `e`. */
int exp_parse_value(gkd_experiment *e, const exp_key *k, const char *s, exp_value *out);

typedef struct {
    exp_value *values; /* n values; a list is an axis */
    size_t n;
    int is_list;
    int key_line, key_col; /* position of the key */
} exp_setting;

typedef struct {
    int key;          /* index into exp_keys */
    const char *name; /* short axis name */
} exp_axis;

typedef struct {
    char path[64];
    int line, col;
} exp_section_mark;

/** One key a variant sets. */
typedef struct {
    int key;         /* index into exp_keys */
    exp_value value; /* with the position inside the variant */
} exp_variant_setting;

/** A named bundle of settings: the values of the `variants` axis. */
typedef struct {
    const char *name;
    int line, col;             /* position of the name */
    exp_variant_setting *set;  /* n settings in file order */
    size_t n, cap;
    int model_line, model_col; /* teacher.model section inside it (0 = none) */
    int train_line, train_col; /* teacher.train section inside it (0 = none) */
} exp_variant;

/** One display name of `labels`: KEY (a metric, an axis or AXIS:VALUE) and
 *  its LaTeX text, as gkd table --label KEY=TEXT. */
typedef struct {
    const char *key, *text;
} exp_label;

struct gkd_experiment {
    char *file;        /* path as given, for messages */
    char *dir;         /* absolute directory of the file */
    exp_setting *set;  /* exp_num_keys entries; n == 0 = not given */
    exp_value *defaults;
    exp_axis axes[GKD_CELL_MAX_AXES];
    int num_axes;
    size_t num_cells;
    exp_variant *variants; /* set[variants key].n entries, file order */
    size_t num_variants, cap_variants;
    int variants_key;  /* index of "variants" in exp_keys */
    exp_label *labels; /* file order; not part of any cell or hash */
    size_t num_labels;
    int task_name_varies; /* task.name is a list or set by a variant */
    exp_section_mark sections[32];
    int num_sections;
    int root_line, root_col;
    void **allocs;     /* every string, freed with the experiment */
    size_t num_allocs, cap_allocs;
};

char *exp_strdup(gkd_experiment *e, const char *s);

/** Build cell i; choice[key] receives the value index used per key (may be NULL). */
int exp_build_cell(const gkd_experiment *e, size_t i, gkd_cell_config *out, size_t *choice);

/** The value the variant of a cell (choice[variants key]) sets for key k,
 *  or NULL when the cell has no variant or its variant leaves k alone. */
const exp_value *exp_variant_value(const gkd_experiment *e, const size_t *choice, int k);
/** The variant of a cell, or NULL when the experiment has none. */
const exp_variant *exp_cell_variant(const gkd_experiment *e, const size_t *choice);

/** Cross-field checks of one built cell; errors located via `choice`. */
int exp_check_cell(const gkd_experiment *e, const gkd_cell_config *c, const size_t *choice);

/** Position for messages about key k in a cell: the value its variant
 *  sets, else its value, else its section, else the top of the file. */
void exp_locate(const gkd_experiment *e, int k, const size_t *choice, int *line, int *col);
/** Position of the section `path` (or the top of the file). */
void exp_locate_section(const gkd_experiment *e, const char *path, int *line, int *col);

/** Cell-name form of a value: [A-Za-z0-9._()+-] kept, anything else '_'. */
void exp_sanitize(char *dst, size_t cap, const char *s);
/** The text a value shows in axes and cell names (paths as written). */
const char *exp_value_label(const exp_key *k, const exp_value *v);
/** FNV-1a 64 over n bytes, continuing from h (start: EXP_FNV_OFFSET). */
#define EXP_FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t exp_fnv1a(uint64_t h, const void *data, size_t n);

/** Canonical double text: the shortest %g that reads back exactly. */
void exp_format_double(char *buf, size_t cap, double v);

#endif
