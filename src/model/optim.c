/* AdamW, global-norm clipping, learning-rate schedule (include/gkd/optim.h). */
#include "gkd/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

int gkd_adamw_new(gkd_adamw **out, const gkd_model *model, const gkd_adamw_config *cfg) {
    int rc = 0;
    gkd_adamw *o = NULL;
    if (!out || !model || !cfg) return gkd_error(GKD_EINVAL, "adamw: NULL argument");
    *out = NULL;
    if (!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) || !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
        return gkd_error(GKD_EINVAL, "adamw: betas (%g, %g) must be in [0, 1)", cfg->beta1,
                         cfg->beta2);
    if (!(cfg->eps > 0.0f) || !(cfg->weight_decay >= 0.0f))
        return gkd_error(GKD_EINVAL, "adamw: eps %g must be > 0 and weight_decay %g >= 0",
                         cfg->eps, cfg->weight_decay);
    o = calloc(1, sizeof(*o));
    if (!o) {
        rc = gkd_error(GKD_ENOMEM, "adamw: out of memory");
        goto done;
    }
    o->config = *cfg;
    o->num_params = model->num_params;
    o->m = calloc(o->num_params, sizeof(float));
    o->v = calloc(o->num_params, sizeof(float));
    if (!o->m || !o->v) {
        rc = gkd_error(GKD_ENOMEM, "adamw: out of memory for %zu moments", o->num_params);
        goto done;
    }
    o->num_segments = model->num_tensors;
    for (int i = 0; i < model->num_tensors; i++) {
        o->segment_sizes[i] = model->param_sizes[i];
        o->segment_decay[i] = (unsigned char)model->arch->tensors[i].decay;
    }
    *out = o;
    o = NULL;
done:
    gkd_adamw_free(o);
    return rc;
}

void gkd_adamw_free(gkd_adamw *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    free(o);
}

int gkd_adamw_step(gkd_adamw *o, float *params, const float *grads, size_t n, float lr) {
    if (!o || !params || !grads) return gkd_error(GKD_EINVAL, "adamw step: NULL argument");
    if (n != o->num_params)
        return gkd_error(GKD_EMISMATCH, "adamw step: %zu parameters, optimizer has %zu", n,
                         o->num_params);
    o->t++;
    const float b1 = o->config.beta1, b2 = o->config.beta2, eps = o->config.eps;
    /* Bias corrections in double, like PyTorch's Python-side scalars. */
    const double bc1 = 1.0 - pow(b1, (double)o->t);
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)o->t));
    const float step_size = (float)(lr / bc1);
    size_t off = 0;
    for (int s = 0; s < o->num_segments; s++) {
        const size_t len = o->segment_sizes[s];
        const float decay = o->segment_decay[s] ? 1.0f - lr * o->config.weight_decay : 1.0f;
        float *p = params + off, *m = o->m + off, *v = o->v + off;
        const float *g = grads + off;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < len; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            p[i] = p[i] * decay - step_size * mi / denom;
        }
        off += len;
    }
    return 0;
}

/* Sum of squares in fixed-size chunks, chunk sums added in order: the
 * result depends only on n, and the double accumulator keeps the rounding
 * error far below float resolution. */
#define NORM_CHUNK 16384

double gkd_clip_grad_norm(float *grads, size_t n, double max_norm) {
    double total = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += NORM_CHUNK) {
        size_t i1 = i0 + NORM_CHUNK < n ? i0 + NORM_CHUNK : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)grads[i] * grads[i];
        total += s;
    }
    double norm = sqrt(total);
    /* PyTorch clips whenever max_norm / (norm + 1e-6) < 1. */
    if (max_norm > 0.0 && isfinite(norm) && max_norm / (norm + 1e-6) < 1.0) {
        float coef = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) grads[i] *= coef;
    }
    return norm;
}

double gkd_lr_at(const gkd_lr_schedule *s, long step) {
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return s->lr_max * (double)(step + 1) / (double)s->warmup_steps;
    long span = s->total_steps - s->warmup_steps;
    if (span <= 0 || step >= s->total_steps) return s->lr_min;
    double r = (double)(step - s->warmup_steps) / (double)span;
    return s->lr_min + (s->lr_max - s->lr_min) * 0.5 * (1.0 + cos(M_PI * r));
}
