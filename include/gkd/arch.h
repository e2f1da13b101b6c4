/* Model architectures as descriptors: a table of parameter tensors and an
 * ordered list of block operations. The training forward and backward
 * (model.c), the KV-cache decoder (decode.c), checkpoints, the optimizer's
 * weight-decay mask and the parameter count all read the descriptor, so an
 * architecture is data, and a new block type is one forward/backward pair
 * and one decode step (docs/models.md).
 *
 * Dimensions: V vocabulary, maxT context, L layers, C channels, NH query
 * heads, NKV key/value heads, hs = C / NH head size, KV = NKV hs, F the
 * MLP's hidden width (4C for GPT-2, ffn_dim for Llama). */
#ifndef GKD_ARCH_H
#define GKD_ARCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_ARCH_GPT2 = 0,  /* learned positions, LayerNorm, GELU MLP, biases, tied head */
    GKD_ARCH_LLAMA = 1, /* RoPE, RMSNorm, SwiGLU MLP, grouped-query attention, no biases */
} gkd_arch_id;

#define GKD_ARCH_COUNT 2

/** How rotary embedding pairs the channels of a head (hs even), pair i of
 *  hs/2 turning by angle pos * theta^(-2i/hs). */
typedef enum {
    GKD_ROPE_INTERLEAVED = 0, /* channels (2i, 2i+1): llama2.c, Meta's checkpoints */
    GKD_ROPE_HALF = 1,        /* channels (i, i + hs/2): Hugging Face's rotate_half */
} gkd_rope_style;

/** Symbolic tensor dimensions, resolved from a config. */
typedef enum {
    GKD_DIM_1 = 0, /* absent dimension */
    GKD_DIM_V,
    GKD_DIM_MAXT,
    GKD_DIM_C,
    GKD_DIM_QKV,  /* C + 2 KV: query, key and value rows of one product */
    GKD_DIM_F,    /* MLP hidden width */
    GKD_DIM_2F,   /* gate and up rows of the SwiGLU product */
} gkd_dim;

/** Initial values of a tensor (gkd_model_init_weights). */
typedef enum {
    GKD_INIT_ZERO,
    GKD_INIT_ONE,
    GKD_INIT_NORMAL,   /* N(0, 0.02) */
    GKD_INIT_RESIDUAL, /* N(0, 0.02 / sqrt(2L)): projections into the residual stream */
} gkd_init_rule;

/** Whether a tensor exists for a given config. */
typedef enum {
    GKD_WHEN_ALWAYS,
    GKD_WHEN_UNTIED, /* only with a separate output head (config.untied_head) */
} gkd_tensor_when;

typedef struct {
    const char *name;   /* "wte", "qkvw", ...: checkpoints and errors use it */
    int per_layer;      /* a leading L dimension */
    gkd_dim rows, cols; /* (rows, cols) of one layer's slice; a vector has cols GKD_DIM_1 */
    gkd_init_rule init;
    int decay;          /* AdamW weight decay applies */
    gkd_tensor_when when;
    int decode_panels;  /* a weight matrix the decoder keeps in panels (decode_matmul.h) */
} gkd_tensor_spec;

/** Block operations, each reading the residual stream x or the normalized
 *  stream xn and writing one of them. */
typedef enum {
    GKD_OP_LAYERNORM,  /* xn = LayerNorm(x; w, b), eps 1e-5 */
    GKD_OP_RMSNORM,    /* xn = RMSNorm(x; w), eps config.norm_eps */
    GKD_OP_ATTENTION,  /* x += proj(attention(rope?(qkv(xn)))): w qkv, b its bias, w2 proj, b2 its bias */
    GKD_OP_MLP_GELU,   /* x += w2 gelu_tanh(w xn + b) + b2 */
    GKD_OP_MLP_SWIGLU, /* x += w2 (silu(gate) * up), [gate; up] = w xn */
} gkd_op_kind;

typedef struct {
    gkd_op_kind kind;
    int w, b, w2, b2; /* tensor indices into the descriptor's table; -1 = none */
} gkd_block_op;

#define GKD_MAX_TENSORS 16
#define GKD_MAX_BLOCK_OPS 8

typedef struct {
    const char *name;          /* "gpt2", "llama" */
    int n_tensors;
    gkd_tensor_spec tensors[GKD_MAX_TENSORS];
    int wte;                   /* token embedding */
    int wpe;                   /* learned position embedding, or -1 (RoPE) */
    int n_block_ops;
    gkd_block_op block[GKD_MAX_BLOCK_OPS]; /* one layer, in order */
    gkd_block_op final_norm;   /* before the head */
    int head_untied;           /* the separate output head when config.untied_head; else wte */
    int rope;                  /* attention rotates q and k (config.rope_style, rope_theta) */
} gkd_arch;

/* Tensor indices of the two descriptors (layout order). */
enum {
    GKD_GPT2_WTE, GKD_GPT2_WPE, GKD_GPT2_LN1W, GKD_GPT2_LN1B, GKD_GPT2_QKVW, GKD_GPT2_QKVB,
    GKD_GPT2_ATTPROJW, GKD_GPT2_ATTPROJB, GKD_GPT2_LN2W, GKD_GPT2_LN2B, GKD_GPT2_FCW,
    GKD_GPT2_FCB, GKD_GPT2_FCPROJW, GKD_GPT2_FCPROJB, GKD_GPT2_LNFW, GKD_GPT2_LNFB,
};
enum {
    GKD_LLAMA_WTE,      /* (V, C) */
    GKD_LLAMA_ATTNORM,  /* (L, C) */
    GKD_LLAMA_WQKV,     /* (L, C + 2KV, C): rows of q (head-major), then k, then v */
    GKD_LLAMA_WO,       /* (L, C, C) */
    GKD_LLAMA_FFNNORM,  /* (L, C) */
    GKD_LLAMA_WGU,      /* (L, 2F, C): gate rows (w1), then up rows (w3) */
    GKD_LLAMA_WDOWN,    /* (L, C, F) (w2) */
    GKD_LLAMA_NORMF,    /* (C) */
    GKD_LLAMA_LMHEAD,   /* (V, C), only when untied */
};

/** The descriptor of an architecture, or NULL for an unknown id. */
const gkd_arch *gkd_arch_get(int arch);
/** Its name ("gpt2", "llama"), or "unknown". */
const char *gkd_arch_name(int arch);
/** The id named name, or -1. */
int gkd_arch_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
