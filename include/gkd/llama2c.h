/* Reading Karpathy's llama2.c model files (.bin): the config and the
 * float32 weights as named tensors.
 *
 * Two layouts are read: the legacy one of run.c (export.py's version 0: a
 * header of 7 int32, a negative vocab_size meaning a separate classifier)
 * and export.py's version 1 (magic "ak42", version 1, the same 7 int32 and
 * a shared-classifier byte in a 256-byte header; norms first). Version 2
 * (Q8_0 int8 weights) is refused. Both give the same names and shapes:
 *
 *   tok_embeddings (V, dim)                    rms_final (dim)
 *   layers.L.rms_att (dim)                     layers.L.rms_ffn (dim)
 *   layers.L.wq (NH*HS, dim)   layers.L.wk (NKV*HS, dim)
 *   layers.L.wv (NKV*HS, dim)  layers.L.wo (dim, NH*HS)
 *   layers.L.w1 (hidden, dim)  layers.L.w2 (dim, hidden)
 *   layers.L.w3 (hidden, dim)  wcls (V, dim), only if not shared
 *
 * with HS = dim / NH; a matrix is (out, in), row-major, as PyTorch's
 * nn.Linear stores its weight (y = W x). The legacy file's RoPE tables
 * (freq_cis_real, freq_cis_imag) are skipped: they follow from the config.
 * The header is untrusted: every size is checked, without overflow,
 * against the file's length before anything is read, and the file must
 * hold exactly the tensors its header implies. Errors are one line
 * starting "llama2.c <path>:". */
#ifndef GKD_LLAMA2C_H
#define GKD_LLAMA2C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int dim;          /* model width */
    int hidden_dim;   /* SwiGLU hidden width */
    int n_layers;
    int n_heads;      /* query heads */
    int n_kv_heads;   /* key/value heads, dividing n_heads */
    int vocab_size;   /* always positive here */
    int seq_len;      /* longest context */
    int head_size;    /* dim / n_heads, even (RoPE rotates pairs) */
    int shared_classifier; /* 1: the output head is tok_embeddings */
    int version;      /* 0 legacy (run.c), 1 export.py version 1 */
} gkd_llama2c_config;

typedef struct {
    char name[32];
    int rank;         /* 1 or 2 */
    int64_t shape[2];
    uint64_t numel;
    uint64_t offset;  /* of its first byte, from the start of the file */
} gkd_llama2c_tensor;

typedef struct gkd_llama2c gkd_llama2c;

/** Open path and check its header and length. *out is NULL on failure. */
int gkd_llama2c_open(gkd_llama2c **out, const char *path);
void gkd_llama2c_close(gkd_llama2c *m);

const gkd_llama2c_config *gkd_llama2c_config_of(const gkd_llama2c *m);
/** Tensors, in the order of the names above (layer by layer). */
size_t gkd_llama2c_count(const gkd_llama2c *m);
const gkd_llama2c_tensor *gkd_llama2c_tensor_at(const gkd_llama2c *m, size_t i);
/** Index of the tensor named name; GKD_EINVAL if none. */
int gkd_llama2c_find(size_t *index, const gkd_llama2c *m, const char *name);
/** Tensor `index`'s numel floats into out[0..n) (n must be its numel,
 *  GKD_EMISMATCH otherwise). Values are not checked. */
int gkd_llama2c_read(float *out, size_t n, gkd_llama2c *m, size_t index);

#ifdef __cplusplus
}
#endif

#endif
