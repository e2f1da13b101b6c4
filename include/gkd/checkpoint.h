/* Checkpoints: a versioned little-endian binary file holding the model
 * config and parameters, optionally the tokenizer, the AdamW moments, the
 * RNG states of a run and an opaque blob for the caller (a distillation
 * loop's replay buffer or schedule state). The format is specified in
 * docs/checkpoint-format.md; a CRC-32 covers every byte. Files are written
 * atomically (temp file, fsync, rename, fsync of the directory), so a failed
 * save leaves the previous file intact. */
#ifndef GKD_CHECKPOINT_H
#define GKD_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/model.h"
#include "gkd/rng.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GKD_CHECKPOINT_MAGIC "GKDCKPT" /* 8 bytes on disk, with the NUL */
#define GKD_CHECKPOINT_VERSION 3u /* newest; versions 1 to 3 are read */
/* A GPT-2 model is written as version 2 (the bytes it had before the
 * architecture fields existed), any other architecture as version 3. */

/** Largest |weight| a checkpoint may hold. Trained models stay orders of
 *  magnitude below it (weights are O(1) to O(100) under clipping and weight
 *  decay), and with |w| <= 1e6 a dot product of two vectors bounded like
 *  that over a million terms is at most 1e18, far from FLT_MAX (3.4e38):
 *  a finite but absurd value such as 3e38 overflows in the first product,
 *  so it is refused on load with the tensor and index named. */
#define GKD_CHECKPOINT_MAX_ABS_WEIGHT 1e6f

/** CRC-32/ISO-HDLC (zlib's crc32: reflected polynomial 0xEDB88320, initial
 *  value and final xor 0xFFFFFFFF). Continue a running CRC by passing the
 *  previous result as crc; start with 0. crc32("123456789") = 0xCBF43926. */
uint32_t gkd_crc32(uint32_t crc, const void *buf, size_t n);

/** What to save. Only model is required; the others may be NULL/0. */
typedef struct {
    const gkd_model *model;         /* config and parameters */
    const gkd_tokenizer *tokenizer; /* NULL: none stored */
    const float *opt_m;             /* (num_params) AdamW first moments; NULL: no optimizer state */
    const float *opt_v;             /* (num_params) second moments; required iff opt_m is set */
    int64_t opt_t;                  /* optimizer steps taken */
    int64_t step;                   /* training step of the run */
    const gkd_rng *rngs;            /* n_rngs generator states */
    uint32_t n_rngs;
    const void *extra;              /* opaque caller bytes */
    uint64_t extra_len;
    const gkd_task_record *task_record; /* the data split trained on; NULL: none stored */
} gkd_checkpoint;

/** Write c to path atomically. GKD_EIO (with the path and errno text) if
 *  any write, flush, fsync or rename fails; the previous file at path is
 *  then untouched and no temp file is left behind. */
int gkd_checkpoint_save(const char *path, const gkd_checkpoint *c);

/** What a load returns; release with gkd_checkpoint_data_free. */
typedef struct {
    gkd_model *model;         /* the loaded model (the caller's if passed as `into`) */
    gkd_tokenizer *tokenizer; /* NULL if none stored */
    float *opt_m, *opt_v;     /* (num_params) each, NULL if no optimizer state stored */
    int64_t opt_t;
    int64_t step;
    gkd_rng *rngs;            /* n_rngs states, NULL if none */
    uint32_t n_rngs;
    unsigned char *extra;     /* extra_len bytes, NULL if none */
    uint64_t extra_len;
    gkd_task_record *task_record; /* the data split trained on; NULL if none stored (or version 1) */
    uint32_t version;         /* format version of the file */
    int owns_model;           /* 1 if the load created model (freed with the data) */
} gkd_checkpoint_data;

/** Load path into out. With into == NULL a new model is created; else the
 *  stored config must equal into's (GKD_EMISMATCH naming both configs) and
 *  into's parameters are overwritten. Everything is read and validated
 *  before anything is committed: on error *out is empty and `into` is
 *  unchanged. Errors name the file: GKD_EIO (cannot open/read), GKD_EFORMAT
 *  (wrong magic, malformed contents, invalid config, a weight that is
 *  not finite or beyond GKD_CHECKPOINT_MAX_ABS_WEIGHT), GKD_EVERSION,
 *  GKD_ECORRUPT (truncated, size or checksum mismatch). */
int gkd_checkpoint_load(gkd_checkpoint_data *out, const char *path, gkd_model *into);

/** Free what a load allocated (not a model passed as `into`); zeroes d. */
void gkd_checkpoint_data_free(gkd_checkpoint_data *d);

/** Read and verify path (checksum included) and return its model config. */
int gkd_checkpoint_read_config(gkd_model_config *cfg, const char *path);

#ifdef __cplusplus
}
#endif

#endif
