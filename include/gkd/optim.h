/* AdamW over a flat parameter block, global-norm gradient clipping and the
 * learning-rate schedule (linear warmup, cosine decay to a minimum).
 *
 * Weight decay rule (as nanoGPT/llm.c): decoupled decay applies to the weight
 * matrices only (wte, wpe, qkvw, attprojw, fcw, fcprojw: the tensors that
 * are matrices per layer), never to biases or LayerNorm gains/shifts. */
#ifndef GKD_OPTIM_H
#define GKD_OPTIM_H

#include <stddef.h>

#include "gkd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float beta1;        /* first-moment decay */
    float beta2;        /* second-moment decay */
    float eps;          /* added to sqrt of the bias-corrected second moment */
    float weight_decay; /* decoupled: p -= lr * wd * p, on decayed tensors only */
} gkd_adamw_config;

#define GKD_ADAMW_CONFIG_INIT {0.9f, 0.95f, 1e-8f, 0.1f}

/** AdamW state. m and v share the parameter layout; t counts steps taken.
 *  The fields are public so checkpoints can save and restore them. */
typedef struct gkd_adamw {
    gkd_adamw_config config;
    size_t num_params;
    float *m;     /* (num_params) first moments */
    float *v;     /* (num_params) second moments */
    long t;       /* steps taken (bias correction uses t after increment) */
    int num_segments;
    size_t segment_sizes[GKD_MAX_TENSORS];
    unsigned char segment_decay[GKD_MAX_TENSORS];
} gkd_adamw;

/** Optimizer for `model`'s parameter block (zero moments, t = 0); the decay
 *  mask is the descriptor's (arch.h: weight matrices and embeddings). */
int gkd_adamw_new(gkd_adamw **out, const gkd_model *model, const gkd_adamw_config *cfg);
void gkd_adamw_free(gkd_adamw *o);

/** One AdamW step (PyTorch's formula): t += 1;
 *  p *= 1 - lr*wd (decayed tensors); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *  p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps).
 *  Returns GKD_EMISMATCH if n != o->num_params. */
int gkd_adamw_step(gkd_adamw *o, float *params, const float *grads, size_t n, float lr);

/** Global L2 norm of grads (n), computed in double in a fixed order
 *  (thread-count independent). If max_norm > 0 and max_norm / (norm + 1e-6)
 *  < 1, scales grads by that factor (PyTorch's clip_grad_norm_). Returns the pre-clip norm (may be inf/nan: callers
 *  should check). */
double gkd_clip_grad_norm(float *grads, size_t n, double max_norm);

typedef struct {
    double lr_max;      /* peak learning rate, reached at the end of warmup */
    double lr_min;      /* floor of the cosine decay */
    long warmup_steps;  /* linear warmup length (0 = none) */
    long total_steps;   /* step at which the cosine reaches lr_min */
} gkd_lr_schedule;

/** Learning rate for 0-based `step`: lr_max * (step+1) / warmup_steps while
 *  step < warmup_steps; then lr_min + (lr_max - lr_min) * (1 + cos(pi * r)) / 2
 *  with r = (step - warmup) / (total - warmup) clamped to [0, 1]; lr_min
 *  from total_steps on. */
double gkd_lr_at(const gkd_lr_schedule *s, long step);

#ifdef __cplusplus
}
#endif

#endif
