/* An offline teacher cache: a task's training split scored once by a
 * teacher, each sequence stored with the teacher's top-k rows
 * (gkd_sparse_rows) at the positions the loss covers, so that distillation
 * runs (a grid of students) read them instead of running the teacher.
 *
 * Two sources, the off-policy ones of the schedule (docs/schedule.md):
 *   data   every training example's reference sequence, as a data row of
 *          the distillation step lays it out;
 *   seqkd  the teacher's generation for every training prompt, drawn from
 *          the stream the step's SeqKD cache uses (gkd_seqkd_stream), with
 *          the run's sampling options and seed, so the sequences are the
 *          ones a live run generates.
 * The file records what made it (hashes of the teacher, the tokenizer and
 * the task split; k, tau, the context, the sampling options) and a run
 * refuses a cache made for another one. Byte layout:
 * docs/teacher-cache-format.md. */
#ifndef GKD_TEACHER_CACHE_H
#define GKD_TEACHER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/model.h"
#include "gkd/sampler.h"
#include "gkd/sparse_teacher.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where a cache's sequences come from. */
typedef enum {
    GKD_TEACHER_CACHE_DATA = 0, /* the training split's references */
    GKD_TEACHER_CACHE_SEQKD = 1 /* the teacher's generations (SeqKD) */
} gkd_teacher_cache_source;

/** What a cache was made with: everything that determines its bytes. */
typedef struct {
    gkd_teacher_cache_source source;
    int V, k;                /* vocabulary, rows of k ids (1 <= k <= V) */
    float tau;               /* the loss temperature the rows were built at */
    int cap;                 /* context: the longest sequence a row may hold */
    uint64_t teacher_hash;   /* gkd_teacher_cache_model_hash of the teacher */
    uint64_t tokenizer_hash; /* FNV-1a 64 of the serialized tokenizer */
    uint64_t task_hash;      /* FNV-1a 64 of the serialized gkd_task_record */
    uint64_t train_n;        /* examples of the training split */
    gkd_sample_options sample; /* seqkd: the generation's options (data: zero) */
    uint64_t seed;           /* seqkd: the run seed the streams derive from (data: 0) */
} gkd_teacher_cache_header;

/** What gkd_teacher_cache_build makes. */
typedef struct {
    gkd_teacher_cache_source source;
    int k;                     /* teacher_topk */
    float tau;                 /* loss temperature */
    int cap;                   /* context of the runs that use it (0: the teacher's) */
    int batch;                 /* sequences scored per teacher forward */
    gkd_sample_options sample; /* seqkd only */
    uint64_t seed;             /* seqkd only: the distillation run's seed */
} gkd_teacher_cache_options;

#define GKD_TEACHER_CACHE_OPTIONS_INIT                                                          \
    {GKD_TEACHER_CACHE_DATA, 0, 1.0f, 0, 32, GKD_SAMPLE_OPTIONS_INIT, 1}

typedef struct gkd_teacher_cache gkd_teacher_cache; /* a file read into memory */

/** Hashes of the header: the teacher's config and parameter bytes, the
 *  tokenizer's serialized bytes, the task split's record (GKD_EIO if a data
 *  file cannot be read, GKD_ENOMEM). */
uint64_t gkd_teacher_cache_model_hash(const gkd_model *m);
uint64_t gkd_teacher_cache_tokenizer_hash(const gkd_tokenizer *tok);
int gkd_teacher_cache_task_hash(uint64_t *out, const gkd_task *task);

/** The header a cache built with `opt` for (teacher, tok, task) has. */
int gkd_teacher_cache_header_for(gkd_teacher_cache_header *out, const gkd_model *teacher,
                                 const gkd_tokenizer *tok, const gkd_task *task,
                                 const gkd_teacher_cache_options *opt);

/** Score the whole training split of `task` with `teacher` and write the
 *  cache to `path` atomically. `progress` (may be NULL) is called after
 *  each batch with the sequences done and the total. */
int gkd_teacher_cache_build(const char *path, gkd_model *teacher, const gkd_tokenizer *tok,
                            const gkd_task *task, const gkd_teacher_cache_options *opt,
                            void (*progress)(void *ctx, size_t done, size_t total), void *ctx);

/** Read a cache file / parse n bytes of one: magic, version, every count
 *  and length bounded by the bytes left, CRC-32, every row checked with
 *  gkd_sparse_rows_check, examples strictly ascending below train_n, each
 *  sequence's row count the loss positions of its tokens. GKD_EFORMAT,
 *  GKD_EVERSION or GKD_ECORRUPT with one line naming the field (and the
 *  file for _open). */
int gkd_teacher_cache_open(gkd_teacher_cache **out, const char *path);
int gkd_teacher_cache_parse(gkd_teacher_cache **out, const unsigned char *buf, size_t n);
void gkd_teacher_cache_free(gkd_teacher_cache *c);

const gkd_teacher_cache_header *gkd_teacher_cache_header_of(const gkd_teacher_cache *c);
/** Sequences held, and rows (loss positions) over all of them. */
size_t gkd_teacher_cache_size(const gkd_teacher_cache *c);
size_t gkd_teacher_cache_rows_total(const gkd_teacher_cache *c);

/** 0 if the cache was made for `want`, else GKD_EMISMATCH naming the first
 *  field that differs and both values ("k 8, this run has 4"). Teacher
 *  hash 0 in want: not compared (no teacher loaded). */
int gkd_teacher_cache_check(const gkd_teacher_cache *c, const gkd_teacher_cache_header *want);

/** Row `row` of b := the cached sequence of train example `example`
 *  (tokens, prompt_len, len, eos; PAD after len). GKD_EINVAL if the cache
 *  holds no such example or b->cap is not the cache's. */
int gkd_teacher_cache_sequence(const gkd_teacher_cache *c, size_t example, gkd_seqbatch *b, int row);

/** Copy the cached rows of `example` into rows[first + t] for every t in
 *  [0, T) with mask[t] != 0, in order (the mask of that sequence laid out
 *  T long, as the step's layout has it). GKD_EMISMATCH if the mask has
 *  another number of positions than the cache or the shapes differ. */
int gkd_teacher_cache_rows(const gkd_teacher_cache *c, size_t example, const float *mask, int T,
                           gkd_sparse_rows *rows, size_t first);

#ifdef __cplusplus
}
#endif

#endif
