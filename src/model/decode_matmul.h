/* Private: the decoder's matrix products.
 *
 * The KV cache keeps a copy of the model's weight matrices in panels of
 * 16 outputs, input-major (gkd_gemm_panels), so a product reads one
 * vector of outputs per input from one contiguous run, and every output element is one chain of fused multiply-adds
 * over the inputs in order from zero, then + bias: the arithmetic of
 * gkd_gemm (gemm.c). A prefill's many rows go through gkd_gemm and a
 * decode step's few rows through a 16-row kernel here; both give the same
 * bits for a row, whatever the other rows, the thread count or the path. */
#ifndef GKD_DECODE_MATMUL_H
#define GKD_DECODE_MATMUL_H

#include <stddef.h>

#include "gkd/model.h"
#include "kernels/pace.h"

/** What a product does with each finished element, inside its parallel
 *  loop (no separate pass, no extra barrier). */
typedef enum {
    GKD_DM_STORE,    /* out = product */
    GKD_DM_GELU,     /* out = gelu(product) (gelu.h) */
    GKD_DM_RESIDUAL, /* out = product, then res += out */
} gkd_dm_epilogue;

/** Epilogue ep on rows [r0, r1) x outputs [o0, o1) of out (row stride
 *  OC), as the products do on each finished tile. */
void gkd_dm_apply_epilogue(float *out, int r0, int r1, int o0, int o1, int OC, gkd_dm_epilogue ep,
                           float *res);

/* The matrices of the copy: per layer, the descriptor's tensors marked
 * decode_panels, in table order (GPT-2: qkvw, attprojw, fcw, fcprojw),
 * then the LM head. */

/** Where the copy keeps each matrix, worked out once per config (the
 *  decoder looks a matrix up for every product of every step). */
typedef struct {
    int n_layer;
    size_t layer;                   /* floats of one layer's matrices in the copy */
    size_t offset[GKD_MAX_TENSORS]; /* of each decode_panels tensor within a layer */
    size_t weights;                 /* floats of one layer's matrices, unpadded */
    size_t floats;                  /* of the whole copy, the LM head included */
} gkd_dm_layout;

void gkd_dm_layout_of(gkd_dm_layout *out, const gkd_model_config *cfg);

/** Layer l's slice of tensor `tensor` (a decode_panels tensor of the
 *  config's descriptor) in the copy wt; the LM head when l == n_layer
 *  (tensor ignored): V outputs of C inputs. */
static inline float *gkd_dm_matrix(float *wt, const gkd_dm_layout *lo, int l, int tensor) {
    return wt + (size_t)l * lo->layer + (l == lo->n_layer ? 0 : lo->offset[tensor]);
}

/** Floats of the copy for a model of this shape. */
size_t gkd_dm_floats(const gkd_model_config *cfg);

/** gkd_dm_matrix with the layout of cfg. */
float *gkd_dm_matrix_at(float *wt, const gkd_model_config *cfg, int l, int tensor);

/** Fill wt with the weights of m (own parallel region). */
void gkd_dm_pack(float *wt, const gkd_model *m);

/** Floats of one thread's row scratch for products with IC inputs. */
size_t gkd_dm_scratch_floats(int IC);

/** out (n, OC) = inp (n, IC) w^T + bias (bias may be NULL), with w's
 *  panels wt from gkd_dm_pack, then epilogue ep (res (n, OC) for the residual one).
 *  team: called by every thread of an enclosing parallel region, which
 *  share the tiles by shares' split (even when NULL), with no barrier: the
 *  output is complete once every thread has returned; otherwise the calling
 *  thread does it all. scratch: the calling thread's
 *  gkd_dm_scratch_floats(IC) floats, 64-byte aligned. */
void gkd_dm_matmul(float *out, const float *inp, const float *wt, const float *bias, int n, int IC,
                   int OC, gkd_dm_epilogue ep, float *res, int team, const gkd_pace *shares,
                   float *scratch);

#endif
