/* Models written by other tools, in and out: a gkd model from a llama2.c
 * .bin file, a Hugging Face directory (config.json and model.safetensors,
 * or shards listed by model.safetensors.index.json) or a gkd checkpoint,
 * the format told by the bytes (gkd_model_import); and a gkd model written
 * as a Hugging Face directory or a llama2.c file (gkd_model_export).
 *
 * Every read is untrusted (docs/models.md, "Importing"): config.json is
 * refused with one line naming the key for a missing or mistyped value or
 * a setting gkd does not compute (rope_scaling, biases in a Llama, another
 * activation, ...); every tensor must exist, be known, and have exactly the
 * shape the config implies; every value must be finite and at most
 * GKD_CHECKPOINT_MAX_ABS_WEIGHT in magnitude. On any error *out is NULL
 * and nothing is left allocated. Writes are atomic per file (temporary
 * file, fsync, rename). */
#ifndef GKD_MODEL_IO_H
#define GKD_MODEL_IO_H

#include "gkd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_MODEL_FORMAT_UNKNOWN = 0,
    GKD_MODEL_FORMAT_GKD,         /* gkd checkpoint (checkpoint.h) */
    GKD_MODEL_FORMAT_LLAMA2C,     /* llama2.c .bin, legacy or version 1 (llama2c.h) */
    GKD_MODEL_FORMAT_SAFETENSORS, /* Hugging Face: config.json + safetensors */
} gkd_model_format;

/** "gkd checkpoint", "llama2.c", "safetensors" or "unknown". */
const char *gkd_model_format_name(gkd_model_format f);

/** What an import read, for messages and reports. */
typedef struct {
    gkd_model_format format;
    char detail[128];       /* "llama2.c version 1", "GPT2LMHeadModel, F16", ... */
    char weights[4096];     /* the weights file (the index file when sharded) */
    char config[4096];      /* config.json, or "" */
    int n_tensors;          /* tensors read from the file(s) */
    int n_ignored;          /* buffers skipped (GPT-2's attn.bias masks, inv_freq) */
    int n_shards;           /* safetensors files read */
    int context_from;       /* 0, or the max_position_embeddings cut to gkd's 8192 */
} gkd_model_import_info;

/** The format of path by its contents: a directory holding config.json
 *  and model.safetensors (or model.safetensors.index.json); a file with
 *  gkd's checkpoint magic, llama2.c's "ak42" magic or a plausible legacy
 *  header, or a safetensors header (config.json must then be beside it).
 *  GKD_EFORMAT naming path if none fits. */
int gkd_model_detect(gkd_model_format *fmt, const char *path);

/** Build a model from path (gkd_model_detect's formats). info may be NULL. */
int gkd_model_import(gkd_model **out, const char *path, gkd_model_import_info *info);

typedef enum {
    GKD_EXPORT_SAFETENSORS = 0, /* directory: config.json + model.safetensors (F32) */
    GKD_EXPORT_LLAMA2C = 1,     /* llama2.c version 1 ("ak42") file */
    GKD_EXPORT_LLAMA2C_LEGACY = 2, /* llama2.c legacy (version 0) file */
} gkd_export_format;

/** "safetensors", "llama2c" or "llama2c-legacy"; GKD_EINVAL otherwise. */
int gkd_export_format_parse(gkd_export_format *out, const char *name);

/** Write m to path. safetensors: path is a directory (created if absent)
 *  that receives model.safetensors and config.json, as GPT2LMHeadModel
 *  (hub names, Conv1D weights (in, out), no prefix) or LlamaForCausalLM
 *  ("model." names; q and k rows in rotate-half order, permuted from an
 *  interleaved model). llama2c: path is the .bin file; Llama models only,
 *  with RMSNorm eps 1e-5 and RoPE theta 10000 (what llama2.c computes;
 *  anything else is refused), q and k rows permuted to interleaved order
 *  from a rotate-half model. Exporting the same model twice gives the same
 *  bytes. */
int gkd_model_export(const gkd_model *m, const char *path, gkd_export_format fmt);

#ifdef __cplusplus
}
#endif

#endif
