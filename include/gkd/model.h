/* Decoder-only transformers described by an architecture descriptor
 * (arch.h): GPT-2 (token + learned position embeddings, pre-LayerNorm
 * blocks, causal multi-head attention, tanh-GELU MLP of width 4C, final
 * LayerNorm, LM head tied to the token embedding) and Llama (RoPE,
 * RMSNorm, grouped-query attention, SwiGLU MLP, tied or separate head).
 *
 * Dimensions: B batch, T time (sequence length), C channels, V vocabulary,
 * NH heads, NKV key/value heads, hs = C/NH head size, L layers, maxT the
 * context length, F the MLP's hidden width.
 *
 * Memory follows llm.c: parameters, gradients and the two Adam moments each
 * live in one contiguous block with the same layout, so zeroing, clipping,
 * saving and the optimizer are flat loops over num_params floats. */
#ifndef GKD_MODEL_H
#define GKD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gkd/arch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int vocab_size;  /* V */
    int max_seq_len; /* maxT */
    int n_layer;     /* L */
    int n_embd;      /* C */
    int n_head;      /* NH */
    /* Zero in all of the following means GPT-2, as before they existed. */
    int arch;        /* gkd_arch_id */
    int n_kv_head;   /* NKV, dividing NH (Llama; 0 = NH) */
    int ffn_dim;     /* F (Llama; GPT-2's is 4C) */
    int untied_head; /* 1: a separate output head (Llama) */
    int rope_style;  /* gkd_rope_style (Llama) */
    float norm_eps;  /* RMSNorm epsilon (Llama) */
    float rope_theta;/* RoPE base (Llama) */
} gkd_model_config;


typedef struct gkd_activations gkd_activations; /* private to model.c */

typedef struct gkd_model {
    gkd_model_config config;
    const gkd_arch *arch;  /* the descriptor of config.arch */
    int num_tensors;       /* arch->n_tensors */
    /* Tensor i of the descriptor: param_sizes[i] floats (0 when the config
     * leaves it out) at params[i], its gradient at grads[i]. */
    size_t param_sizes[GKD_MAX_TENSORS];
    size_t num_params;
    float *params[GKD_MAX_TENSORS]; /* views into params_memory, in table order */
    float *params_memory;
    float *grads[GKD_MAX_TENSORS];  /* views into grads_memory (same layout) */
    float *grads_memory;
    float *rope_cos, *rope_sin;     /* (maxT, hs/2) when the arch rotates */
    /* Activations of the last forward, sized for (act_B, act_T). */
    gkd_activations *acts;
    int act_B, act_T;
    int B, T;            /* shape of the last forward */
    float *logits;       /* (B, T, V) of the last forward, inside acts */
} gkd_model;

/** Check a config: a known arch, positive bounded sizes, C divisible by
 *  NH; GPT-2 leaves the Llama fields zero; Llama has NKV dividing NH, hs
 *  even, F >= 1, norm_eps in (0, 1), rope_theta >= 1. */
int gkd_model_config_validate(const gkd_model_config *cfg);

/** A Llama config's unset fields as llama2.c has them: n_kv_head = n_head,
 *  ffn_dim = 8C/3 rounded up to a multiple of 32, norm_eps 1e-5,
 *  rope_theta 10000 (rope_style 0 is its interleaved pairs). Other
 *  architectures are left as they are. */
void gkd_model_config_fill_defaults(gkd_model_config *cfg);

/** Key/value heads (NKV) and MLP hidden width (F) of a valid config. */
int gkd_config_kv_heads(const gkd_model_config *cfg);
int gkd_config_ffn_dim(const gkd_model_config *cfg);
/** Rows of one dimension of the descriptor for this config. */
size_t gkd_config_dim(const gkd_model_config *cfg, gkd_dim d);
/** Floats of tensor i of the config's descriptor (0 if the config leaves
 *  it out); the parameter count is their sum. */
size_t gkd_config_tensor_size(const gkd_model_config *cfg, int i);
size_t gkd_config_num_params(const gkd_model_config *cfg);
/** "arch=llama vocab_size=... n_kv_head=..." for messages. */
void gkd_config_describe(char *buf, size_t n, const gkd_model_config *cfg);
/** 1 when the two configs describe the same model. */
int gkd_config_equal(const gkd_model_config *a, const gkd_model_config *b);

/** Index of the tensor named name in m's descriptor, or -1; the tensor
 *  itself (NULL if absent) and its float count. */
int gkd_model_tensor_index(const gkd_model *m, const char *name);
float *gkd_model_tensor(gkd_model *m, const char *name, size_t *numel);
/** Name of tensor i of m's descriptor. */
const char *gkd_model_tensor_name(const gkd_model *m, int i);
/** Layer l's slice of tensor i (the whole tensor if it has no layer
 *  dimension); NULL when i is -1 or the config leaves the tensor out. */
float *gkd_model_slice(const gkd_model *m, int i, int l);

/** Allocate a model (parameters and gradients; activations lazily). */
int gkd_model_new(gkd_model **out, const gkd_model_config *cfg);
void gkd_model_free(gkd_model *m);

/** GPT-2 init (the descriptor's rules): N(0, 0.02) weights, residual
 *  projections scaled by 1/sqrt(2L), zero biases, unit norm gains. Uses
 *  stream gkd_rng_derive(seed, GKD_RNG_INIT, 0, 0), in table order. */
void gkd_model_init_weights(gkd_model *m, uint64_t seed);

/** Forward over tokens (B, T), T <= maxT, positions 0..T-1; fills m->logits
 *  (B, T, V) and caches what backward needs. Right padding needs no mask: the
 *  attention is causal, so padding never influences earlier positions. */
int gkd_model_forward(gkd_model *m, const int *tokens, int B, int T);

/** gkd_model_forward without the head: stops at the final norm's output,
 *  the rows gkd_model_logits_rows reads, and sets m->logits to NULL. It
 *  never allocates the (B, T, V) logits, so a model only ever run this way
 *  (a teacher scored a chunk of rows at a time) never holds them; a later
 *  gkd_model_forward allocates them as usual. Same checks and errors. */
int gkd_model_forward_hidden(gkd_model *m, const int *tokens, int B, int T);

/** The head's logits of rows row0 .. row0 + n - 1 (row b T + t) of the last
 *  forward of either kind, into out (n, V); GKD_ESTATE without a forward,
 *  GKD_EINVAL for rows outside its B T. In the reproducible products mode
 *  (gkd/products.h) each logit is one chain over the channels, so any
 *  chunking gives the bits of gkd_model_forward's m->logits rows, with any
 *  number of threads. In the OpenBLAS mode the tiles depend on n and the
 *  bits may differ from the whole batch's. */
int gkd_model_logits_rows(const gkd_model *m, int row0, int n, float *out);

void gkd_model_zero_grad(gkd_model *m);

/** Backward from dL/dlogits (B, T, V) of the last forward; accumulates (+=)
 *  into m->grads. Any loss (cross-entropy, a divergence) can drive it. */
int gkd_model_backward(gkd_model *m, const float *dlogits);

/* ---- incremental decoding with a per-layer KV cache ---- */

typedef struct gkd_kv_cache gkd_kv_cache;

/** A cache for up to B sequences of up to maxT positions each. On CPUs
 *  with AVX-512 it also holds a copy of the model's weights in the layout
 *  its products read, taken whenever a call starts a sequence (feeds a
 *  position 0): a model whose weights change (a training step) must start
 *  its sequences again, as the cached keys and values came from the old
 *  weights anyway. */
int gkd_kv_cache_new(gkd_kv_cache **out, const gkd_model *m, int B);
void gkd_kv_cache_free(gkd_kv_cache *c);

/** Feed one token per sequence: tokens[b] goes at position pos[b] of
 *  sequence b (keys/values of positions < pos[b] must already be cached).
 *  Sequences with active[b] == 0 are skipped (active may be NULL = all).
 *  Writes next-token logits (B, V) to logits_out. */
int gkd_model_decode_step(gkd_model *m, gkd_kv_cache *c, const int *tokens, const int *pos,
                          const unsigned char *active, int B, float *logits_out);

#ifdef __cplusplus
}
#endif

#endif
