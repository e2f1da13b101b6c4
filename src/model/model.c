/* GPT parameters (one block), forward over (B, T) and backward from
 * dL/dlogits. Dimensions as in include/gkd/model.h; N = B*T rows. The
 * KV-cache decode lives in src/model/decode.c. */
#include "gkd/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/layers.h"
#include "gkd/rng.h"

const char *const gkd_param_names[GKD_NUM_PARAM_TENSORS] = {
    "wte",  "wpe",     "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b",    "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};

/* Activations of one forward, sized for (act_B, act_T); per-layer tensors
 * are indexed with the stride of the current (B, T), which never exceeds
 * the allocation. Backward scratch lives here too. */
struct gkd_activations {
    float *memory;
    int *tokens;        /* (B, T) copy of the last input */
    float *encoded;     /* (B, T, C) */
    float *ln1;         /* (L, B, T, C) */
    float *ln1_mean;    /* (L, B, T) */
    float *ln1_rstd;    /* (L, B, T) */
    float *qkv;         /* (L, B, T, 3C) */
    float *atty;        /* (L, B, T, C) */
    float *att;         /* (L, B, NH, T, T) */
    float *attproj;     /* (L, B, T, C) */
    float *residual2;   /* (L, B, T, C) */
    float *ln2;         /* (L, B, T, C) */
    float *ln2_mean;    /* (L, B, T) */
    float *ln2_rstd;    /* (L, B, T) */
    float *fch;         /* (L, B, T, 4C) */
    float *fch_gelu;    /* (L, B, T, 4C) */
    float *fch_tanh;    /* (L, B, T, 4C) tanh term of the GELU, for backward */
    float *fcproj;      /* (L, B, T, C) */
    float *residual3;   /* (L, B, T, C) */
    float *lnf;         /* (B, T, C) */
    float *lnf_mean;    /* (B, T) */
    float *lnf_rstd;    /* (B, T) */
    float *logits;      /* (B, T, V) */
    /* backward scratch */
    float *dresidual;   /* (B, T, C) */
    float *dbtc;        /* (B, T, C) */
    float *dbtc2;       /* (B, T, C) */
    float *dqkv;        /* (B, T, 3C) */
    float *datt;        /* (B, NH, T, T) */
    float *dfch;        /* (B, T, 4C) */
    float *dfch_gelu;   /* (B, T, 4C) */
};

int gkd_model_config_validate(const gkd_model_config *cfg) {
    if (!cfg) return gkd_error(GKD_EINVAL, "model config is NULL");
    if (cfg->vocab_size < 1 || cfg->vocab_size > (1 << 20))
        return gkd_error(GKD_EINVAL, "vocab_size %d out of range [1, %d]", cfg->vocab_size, 1 << 20);
    if (cfg->max_seq_len < 1 || cfg->max_seq_len > 8192)
        return gkd_error(GKD_EINVAL, "max_seq_len %d out of range [1, 8192]", cfg->max_seq_len);
    if (cfg->n_layer < 1 || cfg->n_layer > 256)
        return gkd_error(GKD_EINVAL, "n_layer %d out of range [1, 256]", cfg->n_layer);
    if (cfg->n_embd < 1 || cfg->n_embd > 16384)
        return gkd_error(GKD_EINVAL, "n_embd %d out of range [1, 16384]", cfg->n_embd);
    if (cfg->n_head < 1 || cfg->n_head > cfg->n_embd)
        return gkd_error(GKD_EINVAL, "n_head %d out of range [1, n_embd=%d]", cfg->n_head,
                         cfg->n_embd);
    if (cfg->n_embd % cfg->n_head != 0)
        return gkd_error(GKD_EINVAL, "n_embd %d is not divisible by n_head %d", cfg->n_embd,
                         cfg->n_head);
    return 0;
}

static void fill_param_sizes(size_t *s, const gkd_model_config *cfg) {
    size_t V = cfg->vocab_size, maxT = cfg->max_seq_len, L = cfg->n_layer, C = cfg->n_embd;
    s[0] = V * C;
    s[1] = maxT * C;
    s[2] = L * C;
    s[3] = L * C;
    s[4] = L * 3 * C * C;
    s[5] = L * 3 * C;
    s[6] = L * C * C;
    s[7] = L * C;
    s[8] = L * C;
    s[9] = L * C;
    s[10] = L * 4 * C * C;
    s[11] = L * 4 * C;
    s[12] = L * C * 4 * C;
    s[13] = L * C;
    s[14] = C;
    s[15] = C;
}

static void point_params(gkd_params *p, float *mem, const size_t *sizes) {
    float **ptrs[GKD_NUM_PARAM_TENSORS] = {
        &p->wte,  &p->wpe,  &p->ln1w, &p->ln1b,    &p->qkvw,    &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw,  &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb};
    for (int i = 0; i < GKD_NUM_PARAM_TENSORS; i++) {
        *ptrs[i] = mem;
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
    fill_param_sizes(m->param_sizes, cfg);
    m->num_params = 0;
    for (int i = 0; i < GKD_NUM_PARAM_TENSORS; i++) m->num_params += m->param_sizes[i];
    m->params_memory = calloc(m->num_params, sizeof(float));
    m->grads_memory = calloc(m->num_params, sizeof(float));
    if (!m->params_memory || !m->grads_memory) {
        rc = gkd_error(GKD_ENOMEM, "model: out of memory for %zu parameters", m->num_params);
        goto done;
    }
    point_params(&m->params, m->params_memory, m->param_sizes);
    point_params(&m->grads, m->grads_memory, m->param_sizes);
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
    free(a);
}

void gkd_model_free(gkd_model *m) {
    if (!m) return;
    free(m->params_memory);
    free(m->grads_memory);
    free_acts(m->acts);
    free(m);
}

void gkd_model_init_weights(gkd_model *m, uint64_t seed) {
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_INIT, 0, 0);
    const float std = 0.02f;
    const float proj_std = 0.02f / sqrtf(2.0f * (float)m->config.n_layer);
    float *p = m->params_memory;
    /* Layout order; only weight matrices draw from the stream. */
    for (int i = 0; i < GKD_NUM_PARAM_TENSORS; i++) {
        const char *name = gkd_param_names[i];
        size_t n = m->param_sizes[i];
        if (!strcmp(name, "attprojw") || !strcmp(name, "fcprojw")) {
            for (size_t j = 0; j < n; j++) p[j] = proj_std * gkd_rng_normal(&r);
        } else if (!strcmp(name, "wte") || !strcmp(name, "wpe") || !strcmp(name, "qkvw") ||
                   !strcmp(name, "fcw")) {
            for (size_t j = 0; j < n; j++) p[j] = std * gkd_rng_normal(&r);
        } else if (!strcmp(name, "ln1w") || !strcmp(name, "ln2w") || !strcmp(name, "lnfw")) {
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
        } else {
            memset(p, 0, n * sizeof(float));
        }
        p += n;
    }
}

static int ensure_acts(gkd_model *m, int B, int T) {
    if (m->acts && B <= m->act_B && T <= m->act_T) return 0;
    int nB = m->acts && m->act_B > B ? m->act_B : B;
    int nT = m->acts && m->act_T > T ? m->act_T : T;
    size_t L = m->config.n_layer, C = m->config.n_embd, NH = m->config.n_head;
    size_t V = m->config.vocab_size, N = (size_t)nB * nT, TT = (size_t)nB * NH * nT * nT;
    gkd_activations *a = calloc(1, sizeof(*a));
    if (!a) return gkd_error(GKD_ENOMEM, "model: out of memory for activations");
    struct {
        float **ptr;
        size_t n;
    } t[] = {
        {&a->encoded, N * C},       {&a->ln1, L * N * C},       {&a->ln1_mean, L * N},
        {&a->ln1_rstd, L * N},      {&a->qkv, L * N * 3 * C},   {&a->atty, L * N * C},
        {&a->att, L * TT},          {&a->attproj, L * N * C},   {&a->residual2, L * N * C},
        {&a->ln2, L * N * C},       {&a->ln2_mean, L * N},      {&a->ln2_rstd, L * N},
        {&a->fch, L * N * 4 * C},   {&a->fch_gelu, L * N * 4 * C}, {&a->fch_tanh, L * N * 4 * C},
        {&a->fcproj, L * N * C},
        {&a->residual3, L * N * C}, {&a->lnf, N * C},           {&a->lnf_mean, N},
        {&a->lnf_rstd, N},          {&a->logits, N * V},        {&a->dresidual, N * C},
        {&a->dbtc, N * C},          {&a->dbtc2, N * C},         {&a->dqkv, N * 3 * C},
        {&a->datt, TT},             {&a->dfch, N * 4 * C},      {&a->dfch_gelu, N * 4 * C},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) total += t[i].n;
    a->memory = malloc(total * sizeof(float));
    a->tokens = malloc(N * sizeof(int));
    if (!a->memory || !a->tokens) {
        free_acts(a);
        return gkd_error(GKD_ENOMEM, "model: out of memory for activations (B=%d, T=%d)", nB, nT);
    }
    float *p = a->memory;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        *t[i].ptr = p;
        p += t[i].n;
    }
    free_acts(m->acts);
    m->acts = a;
    m->act_B = nB;
    m->act_T = nT;
    return 0;
}

int gkd_model_forward(gkd_model *m, const int *tokens, int B, int T) {
    int rc;
    if (!m || !tokens) return gkd_error(GKD_EINVAL, "model forward: NULL argument");
    const int V = m->config.vocab_size, L = m->config.n_layer, C = m->config.n_embd;
    const int NH = m->config.n_head;
    if (B < 1 || T < 1 || T > m->config.max_seq_len)
        return gkd_error(GKD_EINVAL, "model forward: shape (B=%d, T=%d) invalid (maxT %d)", B, T,
                         m->config.max_seq_len);
    for (long i = 0; i < (long)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return gkd_error(GKD_EINVAL, "model forward: token %d at %ld out of range [0, %d)",
                             tokens[i], i, V);
    if ((rc = ensure_acts(m, B, T)) < 0) return rc;
    gkd_activations *a = m->acts;
    const gkd_params *p = &m->params;
    const size_t N = (size_t)B * T, NC = N * C, TT = (size_t)B * NH * T * T;
    memcpy(a->tokens, tokens, N * sizeof(int));

    gkd_encoder_forward(a->encoded, tokens, p->wte, p->wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + l * TT, *attproj = a->attproj + l * NC;
        float *residual2 = a->residual2 + l * NC, *ln2 = a->ln2 + l * NC;
        float *fch = a->fch + l * 4 * NC, *fch_gelu = a->fch_gelu + l * 4 * NC;
        float *fch_tanh = a->fch_tanh + l * 4 * NC;
        float *fcproj = a->fcproj + l * NC, *residual3 = a->residual3 + l * NC;
        gkd_layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, residual,
                              p->ln1w + l * C, p->ln1b + l * C, (int)N, C);
        gkd_matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, (int)N,
                           C, 3 * C);
        gkd_attention_forward(atty, att, qkv, B, T, C, NH);
        gkd_matmul_forward(attproj, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C,
                           (int)N, C, C);
        gkd_residual_forward(residual2, residual, attproj, NC);
        gkd_layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, residual2,
                              p->ln2w + l * C, p->ln2b + l * C, (int)N, C);
        gkd_matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, (int)N, C,
                           4 * C);
        gkd_gelu_forward_cache(fch_gelu, fch_tanh, fch, 4 * NC);
        gkd_matmul_forward(fcproj, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C,
                           p->fcprojb + l * C, (int)N, 4 * C, C);
        gkd_residual_forward(residual3, residual2, fcproj, NC);
    }
    gkd_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual3 + (L - 1) * NC, p->lnfw,
                          p->lnfb, (int)N, C);
    gkd_matmul_forward(a->logits, a->lnf, p->wte, NULL, (int)N, C, V);
    m->B = B;
    m->T = T;
    m->logits = a->logits;
    return 0;
}

void gkd_model_zero_grad(gkd_model *m) { memset(m->grads_memory, 0, m->num_params * sizeof(float)); }

int gkd_model_backward(gkd_model *m, const float *dlogits) {
    if (!m || !dlogits) return gkd_error(GKD_EINVAL, "model backward: NULL argument");
    if (!m->acts || m->B < 1)
        return gkd_error(GKD_ESTATE, "model backward: no forward pass to differentiate");
    const int B = m->B, T = m->T, V = m->config.vocab_size, L = m->config.n_layer;
    const int C = m->config.n_embd, NH = m->config.n_head;
    gkd_activations *a = m->acts;
    const gkd_params *p = &m->params;
    const gkd_params *g = &m->grads;
    const size_t N = (size_t)B * T, NC = N * C, TT = (size_t)B * NH * T * T;
    const int n = (int)N;

    /* dresidual carries dL/d(residual stream) down through the layers. */
    float *dres = a->dresidual, *dlnf = a->dbtc;
    gkd_matmul_backward(dlnf, g->wte, NULL, dlogits, a->lnf, p->wte, n, C, V);
    memset(dres, 0, NC * sizeof(float));
    gkd_layernorm_backward(dres, g->lnfw, g->lnfb, dlnf, a->residual3 + (L - 1) * NC, p->lnfw,
                           a->lnf_mean, a->lnf_rstd, n, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        const float *att = a->att + l * TT, *residual2 = a->residual2 + l * NC;
        const float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC;
        const float *fch_gelu = a->fch_gelu + l * 4 * NC, *fch_tanh = a->fch_tanh + l * 4 * NC;
        /* residual3 = residual2 + fcproj: dres is d(residual3) = d(fcproj) */
        gkd_matmul_backward(a->dfch_gelu, g->fcprojw + (size_t)l * 4 * C * C, g->fcprojb + l * C,
                            dres, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, n, 4 * C, C);
        gkd_gelu_backward_cache(a->dfch, fch, fch_tanh, a->dfch_gelu, 4 * NC);
        float *dln2 = a->dbtc;
        gkd_matmul_backward(dln2, g->fcw + (size_t)l * 4 * C * C, g->fcb + l * 4 * C, a->dfch, ln2,
                            p->fcw + (size_t)l * 4 * C * C, n, C, 4 * C);
        /* now dres becomes d(residual2) */
        gkd_layernorm_backward(dres, g->ln2w + l * C, g->ln2b + l * C, dln2, residual2,
                               p->ln2w + l * C, a->ln2_mean + l * N, a->ln2_rstd + l * N, n, C);
        float *datty = a->dbtc;
        gkd_matmul_backward(datty, g->attprojw + (size_t)l * C * C, g->attprojb + l * C, dres, atty,
                            p->attprojw + (size_t)l * C * C, n, C, C);
        gkd_attention_backward(a->dqkv, a->datt, datty, qkv, att, B, T, C, NH);
        float *dln1 = a->dbtc2;
        gkd_matmul_backward(dln1, g->qkvw + (size_t)l * 3 * C * C, g->qkvb + l * 3 * C, a->dqkv,
                            ln1, p->qkvw + (size_t)l * 3 * C * C, n, C, 3 * C);
        /* now dres becomes d(residual) of this layer's input */
        gkd_layernorm_backward(dres, g->ln1w + l * C, g->ln1b + l * C, dln1, residual,
                               p->ln1w + l * C, a->ln1_mean + l * N, a->ln1_rstd + l * N, n, C);
    }
    gkd_encoder_backward(g->wte, g->wpe, dres, a->tokens, B, T, C);
    return 0;
}
