/* The parts of model import and export (include/gkd/model_io.h), one file
 * each: hf_config.c (config.json <-> gkd_model_config), hf_names.c (Hugging
 * Face tensor names <-> slices of gkd tensors), import_llama2c.c,
 * import_hf.c, import_check.c (the value check), export_hf.c,
 * export_llama2c.c, safetensors_write.c, and model_io.c (detection and
 * dispatch). Private to src/model/
 * (tests and fuzz targets include it as "model/model_io_internal.h"). */
#ifndef GKD_MODEL_IO_INTERNAL_H
#define GKD_MODEL_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/model.h"
#include "gkd/model_io.h"

/* ---- config.json (hf_config.c) ---- */

/** What config.json said beyond the gkd config. */
typedef struct {
    char architecture[64]; /* "LlamaForCausalLM", "GPT2LMHeadModel" */
    int context_from;      /* 0, or max_position_embeddings when cut to 8192 */
} gkd_hf_config_info;

/** Parse the text of a config.json into cfg (valid, gkd_model_config_validate).
 *  Errors are one line without the path (the caller adds it): GKD_EFORMAT
 *  for malformed JSON, a missing key or a wrong type, GKD_EINVAL for a
 *  setting gkd does not compute or sizes out of gkd's range. info may be
 *  NULL. */
int gkd_hf_config_parse(gkd_model_config *cfg, gkd_hf_config_info *info, const char *text, size_t len);

/** config.json for m's config (malloc'd text, *len bytes, NUL after):
 *  GPT2LMHeadModel or LlamaForCausalLM with rotate-half RoPE, float32.
 *  Floats are written in the shortest form that reads back to the same
 *  float. */
int gkd_hf_config_write(char **out, size_t *len, const gkd_model_config *cfg);

/* ---- tensor names (hf_names.c) ---- */

/** One tensor of a Hugging Face checkpoint and where it goes in gkd. */
typedef struct {
    char name[96];      /* without prefix: "h.0.attn.c_attn.weight", "layers.0.mlp.up_proj.weight", "lm_head.weight" */
    int rank;           /* 1 or 2 */
    uint64_t shape[2];  /* as stored */
    int tensor;         /* gkd descriptor index */
    int layer;          /* layer of a per-layer tensor, else -1 */
    size_t row0;        /* first row of the gkd slice it fills (q, k, v; gate, up) */
    int transpose;      /* stored (in, out) as GPT-2's Conv1D: the gkd slice is its transpose */
    int tied_copy;      /* lm_head.weight of a tied model: must equal the embedding, fills nothing */
} gkd_hf_tensor;

/** The tensors of cfg's Hugging Face layout, in gkd's table order (every
 *  one required except tied_copy entries). *out is malloc'd. */
int gkd_hf_tensors(gkd_hf_tensor **out, size_t *n, const gkd_model_config *cfg);

/** The name a file uses for entry name, with the prefix gkd writes
 *  ("model." for Llama's body, none for GPT-2). */
void gkd_hf_file_name(char *out, size_t cap, const gkd_model_config *cfg, const char *name);

/** A file's tensor name without its optional prefix ("transformer." for
 *  GPT-2, "model." for Llama): a pointer into name. */
const char *gkd_hf_strip_prefix(const char *name, int arch);

/** 1 if the (stripped) name is a buffer gkd recomputes and skips: GPT-2's
 *  h.N.attn.bias and h.N.attn.masked_bias causal masks, Llama's
 *  layers.N.self_attn.rotary_emb.inv_freq. */
int gkd_hf_ignored(const char *stripped, int arch);

/** Copy one stored tensor (values as stored, numel floats) into m's
 *  slice, or the slice out of m into a stored tensor (GPT-2 transposes). */
void gkd_hf_put(gkd_model *m, const gkd_hf_tensor *t, const float *stored);
void gkd_hf_get(float *stored, const gkd_model *m, const gkd_hf_tensor *t);

/** Permute the q and k rows of every layer's wqkv between interleaved
 *  (2i, 2i+1) and rotate-half (i, i + hs/2) pairing, in place; to_half 1
 *  is llama2.c's export.py permute, 0 its inverse. */
int gkd_rope_permute_qk(gkd_model *m, int to_half);
/** The same on heads x hs rows of cols floats at w (one q or k matrix). */
int gkd_rope_permute_rows(float *w, int heads, int hs, size_t cols, int to_half);

/* ---- readers and writers ---- */

int gkd_import_llama2c(gkd_model **out, const char *path, gkd_model_import_info *info);
/** path: a directory, or a .safetensors file with config.json beside it. */
int gkd_import_hf(gkd_model **out, const char *path, gkd_model_import_info *info);
int gkd_export_hf(const gkd_model *m, const char *dir);
int gkd_export_llama2c(const gkd_model *m, const char *path, int legacy);

/** Refuse a value that is not finite or beyond GKD_CHECKPOINT_MAX_ABS_WEIGHT:
 *  "WHERE: tensor NAME[i] is NaN". */
int gkd_import_check_values(const float *v, size_t n, const char *where, const char *name);

/** One float32 tensor for gkd_safetensors_write. */
typedef struct {
    const char *name;
    int rank;           /* 0 to 2 */
    uint64_t shape[2];
    const float *data;  /* the product of the shape floats */
} gkd_st_entry;

/** A safetensors file in memory as the reference writer lays it out:
 *  u64 header size N, N bytes of JSON ({"__metadata__": {"format": "pt"}}
 *  then the tensors sorted by name, F32), padded with spaces to a multiple
 *  of 8, then the data in header order. Names must be distinct. */
int gkd_safetensors_build(unsigned char **out, size_t *len, const gkd_st_entry *t, size_t n);

#endif
