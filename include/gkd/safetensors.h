/* Reading Hugging Face .safetensors files: the header's named tensors
 * (dtype, shape, where their bytes are) and their values as float32.
 *
 * The file is an 8-byte little-endian u64 N, N bytes of UTF-8 JSON (an
 * object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of string -> string), then the
 * data buffer; offsets count from the buffer's start. Everything in the
 * file is untrusted: gkd_safetensors_open checks the whole header (see
 * docs/checkpoint-format.md, "Reading other formats") before anything is
 * read, and reads tensor data only on request, with pread, chunk by chunk.
 * Every error is one line starting "safetensors <path>:". */
#ifndef GKD_SAFETENSORS_H
#define GKD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest header accepted (as the reference implementation: 100 MB). */
#define GKD_SAFETENSORS_MAX_HEADER 100000000u
/** Most dimensions a tensor may have. */
#define GKD_SAFETENSORS_MAX_RANK 8

typedef struct gkd_safetensors gkd_safetensors;

/** One tensor of the header. Pointers live until gkd_safetensors_close. */
typedef struct {
    const char *name;   /* UTF-8, no NUL inside */
    const char *dtype;  /* as written: "F32", "F16", "BF16", "I64", ... */
    int float_readable; /* 1 for F32, F16 and BF16 (gkd_safetensors_read_f32) */
    int rank;           /* 0 (a scalar) to GKD_SAFETENSORS_MAX_RANK */
    uint64_t shape[GKD_SAFETENSORS_MAX_RANK];
    uint64_t numel;     /* product of the shape (1 for a scalar; may be 0) */
    uint64_t offset;    /* of its first byte, from the start of the file */
    uint64_t nbytes;
} gkd_safetensors_tensor;

/** Open path and validate its header: size within the file and at most
 *  GKD_SAFETENSORS_MAX_HEADER, strict JSON (objects, arrays, strings,
 *  integers; no duplicate keys), known dtypes, shape products times dtype
 *  sizes equal to each tensor's byte range, ranges that tile the data
 *  buffer exactly (no gap, no overlap, nothing after the last). *out is
 *  NULL on failure. */
int gkd_safetensors_open(gkd_safetensors **out, const char *path);
void gkd_safetensors_close(gkd_safetensors *f);

/** Tensors, in the order of their data in the file. */
size_t gkd_safetensors_count(const gkd_safetensors *f);
/** Tensor i (i < count), or NULL. */
const gkd_safetensors_tensor *gkd_safetensors_tensor_at(const gkd_safetensors *f, size_t i);
/** Index of the tensor named name; GKD_EINVAL "... no tensor NAME" if none. */
int gkd_safetensors_find(size_t *index, const gkd_safetensors *f, const char *name);

/** The numel values of tensor `index` as float32, into out[0..n): n must
 *  be its numel (GKD_EMISMATCH otherwise). F32 is copied, BF16 and F16
 *  are widened exactly (subnormals, infinities, -0; NaN stays NaN). Other
 *  dtypes: GKD_EFORMAT naming the dtype. A file that shrank since open:
 *  GKD_EIO. Values are not checked (NaN and infinity are returned). */
int gkd_safetensors_read_f32(float *out, size_t n, gkd_safetensors *f, size_t index);
/** The same, by name. */
int gkd_safetensors_read_f32_named(float *out, size_t n, gkd_safetensors *f, const char *name);

/** The value of key in "__metadata__", or NULL if absent. */
const char *gkd_safetensors_metadata(const gkd_safetensors *f, const char *key);
/** Number of metadata entries, and entry i (i < count) as key and value. */
size_t gkd_safetensors_metadata_count(const gkd_safetensors *f);
int gkd_safetensors_metadata_at(const char **key, const char **value, const gkd_safetensors *f, size_t i);

/** Exact widening of one IEEE binary16 / bfloat16 bit pattern. */
float gkd_f16_to_f32(uint16_t h);
float gkd_bf16_to_f32(uint16_t b);

#ifdef __cplusplus
}
#endif

#endif
