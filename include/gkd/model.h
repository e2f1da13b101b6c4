/* GPT-2-style decoder: token + learned position embeddings, pre-LayerNorm
 * blocks (causal multi-head attention, tanh-GELU MLP of width 4C), final
 * LayerNorm, LM head tied to the token embedding.
 *
 * Dimensions: B batch, T time (sequence length), C channels, V vocabulary,
 * NH heads, hs = C/NH head size, L layers, maxT the context length.
 *
 * Memory follows llm.c: parameters, gradients and the two Adam moments each
 * live in one contiguous block with the same layout, so zeroing, clipping,
 * saving and the optimizer are flat loops over num_params floats. */
#ifndef GKD_MODEL_H
#define GKD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int vocab_size;  /* V */
    int max_seq_len; /* maxT */
    int n_layer;     /* L */
    int n_embd;      /* C */
    int n_head;      /* NH */
} gkd_model_config;

#define GKD_NUM_PARAM_TENSORS 16
typedef struct {
    float *wte;      /* (V, C) token embedding, also the LM head */
    float *wpe;      /* (maxT, C) */
    float *ln1w;     /* (L, C) */
    float *ln1b;     /* (L, C) */
    float *qkvw;     /* (L, 3C, C) */
    float *qkvb;     /* (L, 3C) */
    float *attprojw; /* (L, C, C) */
    float *attprojb; /* (L, C) */
    float *ln2w;     /* (L, C) */
    float *ln2b;     /* (L, C) */
    float *fcw;      /* (L, 4C, C) */
    float *fcb;      /* (L, 4C) */
    float *fcprojw;  /* (L, C, 4C) */
    float *fcprojb;  /* (L, C) */
    float *lnfw;     /* (C) */
    float *lnfb;     /* (C) */
} gkd_params;

/** Names of the parameter tensors in layout order ("wte", "wpe", ...). */
extern const char *const gkd_param_names[GKD_NUM_PARAM_TENSORS];

typedef struct gkd_activations gkd_activations; /* private to model.c */

typedef struct gkd_model {
    gkd_model_config config;
    size_t param_sizes[GKD_NUM_PARAM_TENSORS];
    size_t num_params;
    gkd_params params;   /* views into params_memory */
    float *params_memory;
    gkd_params grads;    /* views into grads_memory (same layout) */
    float *grads_memory;
    /* Activations of the last forward, sized for (act_B, act_T). */
    gkd_activations *acts;
    int act_B, act_T;
    int B, T;            /* shape of the last forward */
    float *logits;       /* (B, T, V) of the last forward, inside acts */
} gkd_model;

/** Check a config: positive sizes, C divisible by NH, bounded sizes. */
int gkd_model_config_validate(const gkd_model_config *cfg);

/** Allocate a model (parameters and gradients; activations lazily). */
int gkd_model_new(gkd_model **out, const gkd_model_config *cfg);
void gkd_model_free(gkd_model *m);

/** GPT-2 init: N(0, 0.02) weights, residual projections scaled by
 *  1/sqrt(2L), zero biases, unit LayerNorm gains. Uses stream
 *  gkd_rng_derive(seed, GKD_RNG_INIT, 0, 0). */
void gkd_model_init_weights(gkd_model *m, uint64_t seed);

/** Forward over tokens (B, T), T <= maxT, positions 0..T-1; fills m->logits
 *  (B, T, V) and caches what backward needs. Right padding needs no mask: the
 *  attention is causal, so padding never influences earlier positions. */
int gkd_model_forward(gkd_model *m, const int *tokens, int B, int T);

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
