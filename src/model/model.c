/* Model parameters (one block), forward over (B, T) and backward from
 * dL/dlogits, driven by the architecture descriptor (arch.h): the
 * embedding, each layer's block operations in order, the final norm and
 * the head. Dimensions as in include/gkd/model.h; N = B*T rows, QKV the
 * width of the attention's input product. The KV-cache decode lives in
 * src/model/decode.c. */
#include "gkd/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/layers.h"
#include "gkd/rng.h"

/* The activations of one block operation of one layer (the buffers its
 * kind uses; the rest stay NULL). */
typedef struct {
    const float *in; /* what it read: x for a norm, xn for attention and MLP */
    float *out;      /* norm: xn (N, C); attention, MLP: the stream after it (N, C) */
    float *s1, *s2;  /* LayerNorm: mean, rstd (N); RMSNorm: rstd (N) */
    float *a;        /* attention: qkv (N, QKV), rotated; MLP: pre-activation (N, F or 2F) */
    float *b;        /* attention: probabilities (B, NH, T, T); MLP: activation (N, F) */
    float *c;        /* attention: heads' output (N, C); GELU: its tanh term (N, F) */
    float *proj;     /* attention, MLP: the projection added to the stream (N, C) */
} op_acts;

/* Activations of one forward, sized for (act_B, act_T); each buffer is
 * indexed with the stride of the current (B, T), which never exceeds the
 * allocation. Backward scratch lives here too. */
struct gkd_activations {
    float *memory;
    int *tokens;      /* (B, T) copy of the last input */
    float *encoded;   /* (B, T, C) */
    op_acts *ops;     /* (L, n_block_ops) */
    op_acts final;    /* the final norm */
    float *logits;    /* (B, T, V) */
    /* backward scratch */
    float *dres;      /* (N, C) dL/d(residual stream) */
    float *dxn;       /* (N, C) dL/d(normalized stream) */
    float *dy;        /* (N, C) dL/d(heads' output) */
    float *dqkv;      /* (N, QKV) */
    float *datt;      /* (B, NH, T, T) */
    float *dpre;      /* (N, 2F) MLP pre-activation */
    float *dact;      /* (N, F) MLP activation */
};

int gkd_model_tensor_index(const gkd_model *m, const char *name) {
    for (int i = 0; m && name && i < m->num_tensors; i++)
        if (!strcmp(m->arch->tensors[i].name, name)) return i;
    return -1;
}

float *gkd_model_tensor(gkd_model *m, const char *name, size_t *numel) {
    int i = gkd_model_tensor_index(m, name);
    if (numel) *numel = i < 0 ? 0 : m->param_sizes[i];
    return i < 0 || !m->param_sizes[i] ? NULL : m->params[i];
}

const char *gkd_model_tensor_name(const gkd_model *m, int i) {
    return i >= 0 && i < m->num_tensors ? m->arch->tensors[i].name : "?";
}

static void point_tensors(float **views, float *mem, const size_t *sizes, int n) {
    for (int i = 0; i < n; i++) {
        views[i] = sizes[i] ? mem : NULL;
        mem += sizes[i];
    }
}

int gkd_model_new(gkd_model **out, const gkd_model_config *cfg) {
    int rc = 0;
    gkd_model *m = NULL;
    if (!out) return gkd_error(GKD_EINVAL, "gkd_model_new: out is NULL");
    *out = NULL;
    if ((rc = gkd_model_config_validate(cfg)) < 0) goto done;
    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = gkd_error(GKD_ENOMEM, "model: out of memory");
        goto done;
    }
    m->config = *cfg;
    m->arch = gkd_arch_get(cfg->arch);
    m->num_tensors = m->arch->n_tensors;
    m->num_params = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        m->param_sizes[i] = gkd_config_tensor_size(cfg, i);
        m->num_params += m->param_sizes[i];
    }
    m->params_memory = calloc(m->num_params, sizeof(float));
    m->grads_memory = calloc(m->num_params, sizeof(float));
    if (!m->params_memory || !m->grads_memory) {
        rc = gkd_error(GKD_ENOMEM, "model: out of memory for %zu parameters", m->num_params);
        goto done;
    }
    point_tensors(m->params, m->params_memory, m->param_sizes, m->num_tensors);
    point_tensors(m->grads, m->grads_memory, m->param_sizes, m->num_tensors);
    if (m->arch->rope) {
        const int hs = cfg->n_embd / cfg->n_head;
        const size_t n = (size_t)cfg->max_seq_len * (hs / 2);
        m->rope_cos = malloc(n * sizeof(float));
        m->rope_sin = malloc(n * sizeof(float));
        if (!m->rope_cos || !m->rope_sin) {
            rc = gkd_error(GKD_ENOMEM, "model: out of memory for the rotary tables");
            goto done;
        }
        gkd_rope_table(m->rope_cos, m->rope_sin, cfg->max_seq_len, hs, cfg->rope_theta);
    }
    *out = m;
    m = NULL;
done:
    gkd_model_free(m);
    return rc;
}

static void free_acts(gkd_activations *a) {
    if (!a) return;
    free(a->memory);
    free(a->tokens);
    free(a->ops);
    free(a);
}

void gkd_model_free(gkd_model *m) {
    if (!m) return;
    free(m->params_memory);
    free(m->grads_memory);
    free(m->rope_cos);
    free(m->rope_sin);
    free_acts(m->acts);
    free(m);
}

void gkd_model_init_weights(gkd_model *m, uint64_t seed) {
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_INIT, 0, 0);
    const float std = 0.02f;
    const float proj_std = 0.02f / sqrtf(2.0f * (float)m->config.n_layer);
    /* Table order; only the normal rules draw from the stream. */
    for (int i = 0; i < m->num_tensors; i++) {
        float *p = m->params[i];
        const size_t n = m->param_sizes[i];
        switch (m->arch->tensors[i].init) {
        case GKD_INIT_RESIDUAL:
            for (size_t j = 0; j < n; j++) p[j] = proj_std * gkd_rng_normal(&r);
            break;
        case GKD_INIT_NORMAL:
            for (size_t j = 0; j < n; j++) p[j] = std * gkd_rng_normal(&r);
            break;
        case GKD_INIT_ONE:
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
            break;
        case GKD_INIT_ZERO:
            if (n) memset(p, 0, n * sizeof(float));
            break;
        }
    }
}

/* Floats of each buffer of one op's activations (op_acts order: out, s1,
 * s2, a, b, c, proj). */
static void op_act_sizes(size_t *n, gkd_op_kind kind, size_t N, size_t C, size_t QKV, size_t F,
                         size_t TT) {
    memset(n, 0, 7 * sizeof(size_t));
    n[0] = N * C;
    switch (kind) {
    case GKD_OP_LAYERNORM: n[1] = N; n[2] = N; break;
    case GKD_OP_RMSNORM: n[1] = N; break;
    case GKD_OP_ATTENTION: n[3] = N * QKV; n[4] = TT; n[5] = N * C; n[6] = N * C; break;
    case GKD_OP_MLP_GELU: n[3] = N * F; n[4] = N * F; n[5] = N * F; n[6] = N * C; break;
    case GKD_OP_MLP_SWIGLU: n[3] = 2 * N * F; n[4] = N * F; n[6] = N * C; break;
    }
}

static void point_op(op_acts *s, float **p, const size_t *n) {
    float **slot[7] = {&s->out, &s->s1, &s->s2, &s->a, &s->b, &s->c, &s->proj};
    for (int i = 0; i < 7; i++) {
        *slot[i] = n[i] ? *p : NULL;
        *p += n[i];
    }
}

/* Activations for (B, T), reallocated only to grow; the (B, T, V) logits
 * only when with_logits (a model whose forwards all stop before the head
 * never holds them). */
static int ensure_acts(gkd_model *m, int B, int T, int with_logits) {
    if (m->acts && B <= m->act_B && T <= m->act_T && (m->acts->logits || !with_logits)) return 0;
    with_logits = with_logits || (m->acts && m->acts->logits);
    const gkd_model_config *cfg = &m->config;
    const gkd_arch *arch = m->arch;
    int nB = m->acts && m->act_B > B ? m->act_B : B;
    int nT = m->acts && m->act_T > T ? m->act_T : T;
    const size_t L = cfg->n_layer, C = cfg->n_embd, NH = cfg->n_head, V = cfg->vocab_size;
    const size_t QKV = gkd_config_dim(cfg, GKD_DIM_QKV), F = gkd_config_dim(cfg, GKD_DIM_F);
    const size_t N = (size_t)nB * nT, TT = (size_t)nB * NH * nT * nT, nops = arch->n_block_ops;
    gkd_activations *a = calloc(1, sizeof(*a));
    if (!a) return gkd_error(GKD_ENOMEM, "model: out of memory for activations");
    size_t sizes[GKD_MAX_BLOCK_OPS][7], fin[7], total = 0;
    for (size_t k = 0; k < nops; k++) {
        op_act_sizes(sizes[k], arch->block[k].kind, N, C, QKV, F, TT);
        for (int i = 0; i < 7; i++) total += L * sizes[k][i];
    }
    op_act_sizes(fin, arch->final_norm.kind, N, C, QKV, F, TT);
    for (int i = 0; i < 7; i++) total += fin[i];
    float **flat[] = {&a->encoded, &a->logits, &a->dres, &a->dxn, &a->dy,
                      &a->dqkv,    &a->datt,   &a->dpre, &a->dact};
    const size_t flat_n[] = {N * C, with_logits ? N * V : 0, N * C, N * C, N * C, N * QKV, TT, 2 * N * F, N * F};
    for (size_t i = 0; i < sizeof(flat_n) / sizeof(flat_n[0]); i++) total += flat_n[i];
    a->memory = malloc(total * sizeof(float));
    a->tokens = malloc(N * sizeof(int));
    a->ops = calloc(L * nops, sizeof(op_acts));
    if (!a->memory || !a->tokens || !a->ops) {
        free_acts(a);
        return gkd_error(GKD_ENOMEM, "model: out of memory for activations (B=%d, T=%d)", nB, nT);
    }
    float *p = a->memory;
    for (size_t i = 0; i < sizeof(flat_n) / sizeof(flat_n[0]); i++) {
        *flat[i] = flat_n[i] ? p : NULL;
        p += flat_n[i];
    }
    for (size_t l = 0; l < L; l++)
        for (size_t k = 0; k < nops; k++) point_op(&a->ops[l * nops + k], &p, sizes[k]);
    point_op(&a->final, &p, fin);
    free_acts(m->acts);
    m->acts = a;
    m->act_B = nB;
    m->act_T = nT;
    return 0;
}

/* Layer l's slice of tensor t (NULL when t is -1: no such tensor). */
static float *slice(float *const *views, const gkd_model *m, int t, int l) {
    if (t < 0 || !views[t]) return NULL;
    const gkd_tensor_spec *s = &m->arch->tensors[t];
    return s->per_layer ? views[t] + (size_t)l * (m->param_sizes[t] / (size_t)m->config.n_layer)
                        : views[t];
}

float *gkd_model_slice(const gkd_model *m, int i, int l) {
    return i < m->num_tensors ? slice(m->params, m, i, l) : NULL;
}
#define P(t, l) slice(m->params, m, t, l)
#define G(t, l) slice(m->grads, m, t, l)

/* The output head: the token embedding unless the config unties it. */
static int head_tensor(const gkd_model *m) {
    return m->config.untied_head ? m->arch->head_untied : m->arch->wte;
}

/* Forward of one norm op: s->out = norm(x). */
static void norm_forward(const gkd_model *m, op_acts *s, const gkd_block_op *op, int l,
                         const float *x, int N) {
    const int C = m->config.n_embd;
    s->in = x;
    if (op->kind == GKD_OP_LAYERNORM)
        gkd_layernorm_forward(s->out, s->s1, s->s2, x, P(op->w, l), P(op->b, l), N, C);
    else
        gkd_rmsnorm_forward(s->out, s->s1, x, P(op->w, l), m->config.norm_eps, N, C);
}

static void norm_backward(gkd_model *m, const op_acts *s, const gkd_block_op *op, int l,
                          float *dres, const float *dxn, int N) {
    const int C = m->config.n_embd;
    if (op->kind == GKD_OP_LAYERNORM)
        gkd_layernorm_backward(dres, G(op->w, l), G(op->b, l), dxn, s->in, P(op->w, l), s->s1,
                               s->s2, N, C);
    else
        gkd_rmsnorm_backward(dres, G(op->w, l), dxn, s->in, P(op->w, l), s->s1, N, C);
}

/* The forward up to the final norm (a->final.out, (N, C)); the head's
 * logits are allocated, and left to the caller, only when with_logits. */
static int forward_to_final_norm(gkd_model *m, const int *tokens, int B, int T, int with_logits) {
    int rc;
    if (!m || !tokens) return gkd_error(GKD_EINVAL, "model forward: NULL argument");
    const gkd_model_config *cfg = &m->config;
    const gkd_arch *arch = m->arch;
    const int V = cfg->vocab_size, L = cfg->n_layer, C = cfg->n_embd, NH = cfg->n_head;
    const int NKV = gkd_config_kv_heads(cfg), hs = C / NH;
    const int QKV = (int)gkd_config_dim(cfg, GKD_DIM_QKV), F = gkd_config_ffn_dim(cfg);
    if (B < 1 || T < 1 || T > cfg->max_seq_len)
        return gkd_error(GKD_EINVAL, "model forward: shape (B=%d, T=%d) invalid (maxT %d)", B, T,
                         cfg->max_seq_len);
    for (long i = 0; i < (long)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return gkd_error(GKD_EINVAL, "model forward: token %d at %ld out of range [0, %d)",
                             tokens[i], i, V);
    if ((rc = ensure_acts(m, B, T, with_logits)) < 0) return rc;
    gkd_activations *a = m->acts;
    const int N = B * T;
    const size_t NC = (size_t)N * C;
    memcpy(a->tokens, tokens, (size_t)N * sizeof(int));

    gkd_encoder_forward(a->encoded, tokens, m->params[arch->wte],
                        arch->wpe < 0 ? NULL : m->params[arch->wpe], B, T, C);
    const float *x = a->encoded, *xn = NULL;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < arch->n_block_ops; k++) {
            const gkd_block_op *op = &arch->block[k];
            op_acts *s = &a->ops[l * arch->n_block_ops + k];
            switch (op->kind) {
            case GKD_OP_LAYERNORM:
            case GKD_OP_RMSNORM:
                norm_forward(m, s, op, l, x, N);
                xn = s->out;
                break;
            case GKD_OP_ATTENTION:
                s->in = xn;
                gkd_matmul_forward(s->a, xn, P(op->w, l), P(op->b, l), N, C, QKV);
                if (arch->rope) {
                    gkd_rope_forward(s->a, m->rope_cos, m->rope_sin, B, T, NH, NKV, hs,
                                     cfg->rope_style);
                    gkd_attention_gqa_forward(s->c, s->b, s->a, B, T, C, NH, NKV);
                } else {
                    gkd_attention_forward(s->c, s->b, s->a, B, T, C, NH);
                }
                gkd_matmul_forward(s->proj, s->c, P(op->w2, l), P(op->b2, l), N, C, C);
                gkd_residual_forward(s->out, x, s->proj, NC);
                x = s->out;
                break;
            case GKD_OP_MLP_GELU:
                s->in = xn;
                gkd_matmul_forward(s->a, xn, P(op->w, l), P(op->b, l), N, C, F);
                gkd_gelu_forward_cache(s->b, s->c, s->a, (size_t)N * F);
                gkd_matmul_forward(s->proj, s->b, P(op->w2, l), P(op->b2, l), N, F, C);
                gkd_residual_forward(s->out, x, s->proj, NC);
                x = s->out;
                break;
            case GKD_OP_MLP_SWIGLU:
                s->in = xn;
                gkd_matmul_forward(s->a, xn, P(op->w, l), NULL, N, C, 2 * F);
                gkd_swiglu_forward(s->b, s->a, N, F);
                gkd_matmul_forward(s->proj, s->b, P(op->w2, l), NULL, N, F, C);
                gkd_residual_forward(s->out, x, s->proj, NC);
                x = s->out;
                break;
            }
        }
    norm_forward(m, &a->final, &arch->final_norm, 0, x, N);
    m->B = B;
    m->T = T;
    m->logits = NULL; /* until the head has run */
    return 0;
}

int gkd_model_forward(gkd_model *m, const int *tokens, int B, int T) {
    int rc = forward_to_final_norm(m, tokens, B, T, 1);
    if (rc < 0) return rc;
    const int C = m->config.n_embd, V = m->config.vocab_size;
    gkd_matmul_forward(m->acts->logits, m->acts->final.out, m->params[head_tensor(m)], NULL, B * T, C, V);
    m->logits = m->acts->logits;
    return 0;
}

int gkd_model_forward_hidden(gkd_model *m, const int *tokens, int B, int T) {
    return forward_to_final_norm(m, tokens, B, T, 0);
}

/* Each logit is one chain over the C channels of its row (gkd/products.h),
 * so the head of a row chunk has the bits of the whole batch's head. */
int gkd_model_logits_rows(const gkd_model *m, int row0, int n, float *out) {
    if (!m || !out) return gkd_error(GKD_EINVAL, "model logits rows: NULL argument");
    if (!m->acts || m->B < 1)
        return gkd_error(GKD_ESTATE, "model logits rows: no forward pass to take the rows from");
    const int N = m->B * m->T;
    if (row0 < 0 || n < 1 || row0 > N - n)
        return gkd_error(GKD_EINVAL, "model logits rows: rows [%d, %d) outside the %d of the last forward",
                         row0, row0 + n, N);
    const int C = m->config.n_embd, V = m->config.vocab_size;
    gkd_matmul_forward(out, m->acts->final.out + (size_t)row0 * C, m->params[head_tensor(m)], NULL, n, C, V);
    return 0;
}

void gkd_model_zero_grad(gkd_model *m) { memset(m->grads_memory, 0, m->num_params * sizeof(float)); }

int gkd_model_backward(gkd_model *m, const float *dlogits) {
    if (!m || !dlogits) return gkd_error(GKD_EINVAL, "model backward: NULL argument");
    if (!m->acts || m->B < 1)
        return gkd_error(GKD_ESTATE, "model backward: no forward pass to differentiate");
    const gkd_model_config *cfg = &m->config;
    const gkd_arch *arch = m->arch;
    const int B = m->B, T = m->T, V = cfg->vocab_size, L = cfg->n_layer, C = cfg->n_embd;
    const int NH = cfg->n_head, NKV = gkd_config_kv_heads(cfg), hs = C / NH;
    const int QKV = (int)gkd_config_dim(cfg, GKD_DIM_QKV), F = gkd_config_ffn_dim(cfg);
    gkd_activations *a = m->acts;
    const int n = B * T;

    /* dres carries dL/d(residual stream) down through the layers; an
     * attention or MLP op passes it through unchanged (its output is the
     * stream plus its projection) and leaves dL/d(its input) in dxn for
     * the norm before it, which adds its part to dres. */
    float *dres = a->dres, *dxn = a->dxn;
    const int head = head_tensor(m);
    gkd_matmul_backward(dxn, m->grads[head], NULL, dlogits, a->final.out, m->params[head], n, C, V);
    memset(dres, 0, (size_t)n * C * sizeof(float));
    norm_backward(m, &a->final, &arch->final_norm, 0, dres, dxn, n);
    for (int l = L - 1; l >= 0; l--)
        for (int k = arch->n_block_ops - 1; k >= 0; k--) {
            const gkd_block_op *op = &arch->block[k];
            const op_acts *s = &a->ops[l * arch->n_block_ops + k];
            switch (op->kind) {
            case GKD_OP_LAYERNORM:
            case GKD_OP_RMSNORM:
                norm_backward(m, s, op, l, dres, dxn, n);
                break;
            case GKD_OP_ATTENTION:
                gkd_matmul_backward(a->dy, G(op->w2, l), G(op->b2, l), dres, s->c, P(op->w2, l), n,
                                    C, C);
                if (arch->rope) {
                    gkd_attention_gqa_backward(a->dqkv, a->datt, a->dy, s->a, s->b, B, T, C, NH, NKV);
                    gkd_rope_backward(a->dqkv, m->rope_cos, m->rope_sin, B, T, NH, NKV, hs,
                                      cfg->rope_style);
                } else {
                    gkd_attention_backward(a->dqkv, a->datt, a->dy, s->a, s->b, B, T, C, NH);
                }
                gkd_matmul_backward(dxn, G(op->w, l), G(op->b, l), a->dqkv, s->in, P(op->w, l), n,
                                    C, QKV);
                break;
            case GKD_OP_MLP_GELU:
                gkd_matmul_backward(a->dact, G(op->w2, l), G(op->b2, l), dres, s->b, P(op->w2, l),
                                    n, F, C);
                gkd_gelu_backward_cache(a->dpre, s->a, s->c, a->dact, (size_t)n * F);
                gkd_matmul_backward(dxn, G(op->w, l), G(op->b, l), a->dpre, s->in, P(op->w, l), n,
                                    C, F);
                break;
            case GKD_OP_MLP_SWIGLU:
                gkd_matmul_backward(a->dact, G(op->w2, l), NULL, dres, s->b, P(op->w2, l), n, F, C);
                gkd_swiglu_backward(a->dpre, s->a, a->dact, n, F);
                gkd_matmul_backward(dxn, G(op->w, l), NULL, a->dpre, s->in, P(op->w, l), n, C,
                                    2 * F);
                break;
            }
        }
    gkd_encoder_backward(m->grads[arch->wte], arch->wpe < 0 ? NULL : m->grads[arch->wpe], dres,
                         a->tokens, B, T, C);
    return 0;
}
