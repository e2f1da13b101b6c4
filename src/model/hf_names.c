/* Hugging Face tensor names and where each goes in a gkd model.
 *
 * GPT2LMHeadModel (names as the hub's gpt2 file, optionally prefixed
 * "transformer."): wte.weight (V, C), wpe.weight (maxT, C),
 * h.N.ln_1.{weight,bias}, h.N.attn.c_attn.{weight (C, 3C), bias (3C)},
 * h.N.attn.c_proj.{weight (C, C), bias}, h.N.ln_2.{weight,bias},
 * h.N.mlp.c_fc.{weight (C, 4C), bias (4C)}, h.N.mlp.c_proj.{weight (4C, C),
 * bias}, ln_f.{weight,bias}. Conv1D stores weights (in, out), so each is
 * the transpose of gkd's (out, in) slice; c_attn's outputs are q | k | v
 * as gkd's qkvw rows.
 *
 * LlamaForCausalLM ("model." prefix, lm_head.weight without it):
 * embed_tokens.weight (V, C), layers.N.input_layernorm.weight,
 * layers.N.self_attn.{q_proj (C, C), k_proj (KV, C), v_proj (KV, C),
 * o_proj (C, C)}.weight, layers.N.post_attention_layernorm.weight,
 * layers.N.mlp.{gate_proj (F, C), up_proj (F, C), down_proj (C, F)}.weight,
 * norm.weight, lm_head.weight (V, C) when untied. q, k, v are rows of
 * gkd's wqkv in that order, gate and up rows of wgu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "model/model_io_internal.h"

typedef struct {
    gkd_hf_tensor *t;
    size_t n, cap;
    const gkd_model_config *cfg;
} list;

static int add(list *l, const char *name, int layer, int tensor, size_t row0, uint64_t rows, uint64_t cols,
               int transpose) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        gkd_hf_tensor *t = realloc(l->t, cap * sizeof *t);
        if (!t) return gkd_error(GKD_ENOMEM, "out of memory for the tensor table");
        l->t = t;
        l->cap = cap;
    }
    gkd_hf_tensor *e = &l->t[l->n++];
    memset(e, 0, sizeof *e);
    if (layer >= 0) snprintf(e->name, sizeof e->name, name, layer);
    else snprintf(e->name, sizeof e->name, "%s", name);
    e->tensor = tensor;
    e->layer = layer;
    e->row0 = row0;
    e->transpose = transpose;
    e->rank = cols ? 2 : 1;
    e->shape[0] = rows;
    e->shape[1] = cols;
    return 0;
}

static int gpt2_tensors(list *l) {
    const gkd_model_config *c = l->cfg;
    const uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->vocab_size, T = (uint64_t)c->max_seq_len;
    int rc = 0;
    rc = rc ? rc : add(l, "wte.weight", -1, GKD_GPT2_WTE, 0, V, C, 0);
    rc = rc ? rc : add(l, "wpe.weight", -1, GKD_GPT2_WPE, 0, T, C, 0);
    for (int i = 0; i < c->n_layer && !rc; i++) {
        rc = rc ? rc : add(l, "h.%d.ln_1.weight", i, GKD_GPT2_LN1W, 0, C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.ln_1.bias", i, GKD_GPT2_LN1B, 0, C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.attn.c_attn.weight", i, GKD_GPT2_QKVW, 0, C, 3 * C, 1);
        rc = rc ? rc : add(l, "h.%d.attn.c_attn.bias", i, GKD_GPT2_QKVB, 0, 3 * C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.attn.c_proj.weight", i, GKD_GPT2_ATTPROJW, 0, C, C, 1);
        rc = rc ? rc : add(l, "h.%d.attn.c_proj.bias", i, GKD_GPT2_ATTPROJB, 0, C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.ln_2.weight", i, GKD_GPT2_LN2W, 0, C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.ln_2.bias", i, GKD_GPT2_LN2B, 0, C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.mlp.c_fc.weight", i, GKD_GPT2_FCW, 0, C, 4 * C, 1);
        rc = rc ? rc : add(l, "h.%d.mlp.c_fc.bias", i, GKD_GPT2_FCB, 0, 4 * C, 0, 0);
        rc = rc ? rc : add(l, "h.%d.mlp.c_proj.weight", i, GKD_GPT2_FCPROJW, 0, 4 * C, C, 1);
        rc = rc ? rc : add(l, "h.%d.mlp.c_proj.bias", i, GKD_GPT2_FCPROJB, 0, C, 0, 0);
    }
    rc = rc ? rc : add(l, "ln_f.weight", -1, GKD_GPT2_LNFW, 0, C, 0, 0);
    rc = rc ? rc : add(l, "ln_f.bias", -1, GKD_GPT2_LNFB, 0, C, 0, 0);
    /* Some writers store the tied head; it must then be wte. */
    rc = rc ? rc : add(l, "lm_head.weight", -1, GKD_GPT2_WTE, 0, V, C, 0);
    if (!rc) l->t[l->n - 1].tied_copy = 1;
    return rc;
}

static int llama_tensors(list *l) {
    const gkd_model_config *c = l->cfg;
    const uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->vocab_size;
    const uint64_t KV = (uint64_t)gkd_config_kv_heads(c) * (C / (uint64_t)c->n_head);
    const uint64_t F = (uint64_t)c->ffn_dim;
    int rc = 0;
    rc = rc ? rc : add(l, "embed_tokens.weight", -1, GKD_LLAMA_WTE, 0, V, C, 0);
    for (int i = 0; i < c->n_layer && !rc; i++) {
        rc = rc ? rc : add(l, "layers.%d.input_layernorm.weight", i, GKD_LLAMA_ATTNORM, 0, C, 0, 0);
        rc = rc ? rc : add(l, "layers.%d.self_attn.q_proj.weight", i, GKD_LLAMA_WQKV, 0, C, C, 0);
        rc = rc ? rc : add(l, "layers.%d.self_attn.k_proj.weight", i, GKD_LLAMA_WQKV, C, KV, C, 0);
        rc = rc ? rc : add(l, "layers.%d.self_attn.v_proj.weight", i, GKD_LLAMA_WQKV, C + KV, KV, C, 0);
        rc = rc ? rc : add(l, "layers.%d.self_attn.o_proj.weight", i, GKD_LLAMA_WO, 0, C, C, 0);
        rc = rc ? rc : add(l, "layers.%d.post_attention_layernorm.weight", i, GKD_LLAMA_FFNNORM, 0, C, 0, 0);
        rc = rc ? rc : add(l, "layers.%d.mlp.gate_proj.weight", i, GKD_LLAMA_WGU, 0, F, C, 0);
        rc = rc ? rc : add(l, "layers.%d.mlp.up_proj.weight", i, GKD_LLAMA_WGU, F, F, C, 0);
        rc = rc ? rc : add(l, "layers.%d.mlp.down_proj.weight", i, GKD_LLAMA_WDOWN, 0, C, F, 0);
    }
    rc = rc ? rc : add(l, "norm.weight", -1, GKD_LLAMA_NORMF, 0, C, 0, 0);
    if (c->untied_head) {
        rc = rc ? rc : add(l, "lm_head.weight", -1, GKD_LLAMA_LMHEAD, 0, V, C, 0);
    } else {
        rc = rc ? rc : add(l, "lm_head.weight", -1, GKD_LLAMA_WTE, 0, V, C, 0);
        if (!rc) l->t[l->n - 1].tied_copy = 1;
    }
    return rc;
}

int gkd_hf_tensors(gkd_hf_tensor **out, size_t *n, const gkd_model_config *cfg) {
    *out = NULL;
    *n = 0;
    int rc = gkd_model_config_validate(cfg);
    if (rc) return rc;
    list l = {NULL, 0, 0, cfg};
    rc = cfg->arch == GKD_ARCH_LLAMA ? llama_tensors(&l) : gpt2_tensors(&l);
    if (rc) {
        free(l.t);
        return rc;
    }
    *out = l.t;
    *n = l.n;
    return 0;
}

void gkd_hf_file_name(char *out, size_t cap, const gkd_model_config *cfg, const char *name) {
    int prefixed = cfg->arch == GKD_ARCH_LLAMA && strcmp(name, "lm_head.weight");
    snprintf(out, cap, "%s%s", prefixed ? "model." : "", name);
}

const char *gkd_hf_strip_prefix(const char *name, int arch) {
    const char *p = arch == GKD_ARCH_LLAMA ? "model." : "transformer.";
    size_t k = strlen(p);
    return strncmp(name, p, k) ? name : name + k;
}

/* name is PRE<digits>SUF. */
static int layer_name(const char *name, const char *pre, const char *suf) {
    size_t a = strlen(pre), b = strlen(suf), n = strlen(name);
    if (n <= a + b || strncmp(name, pre, a) || strcmp(name + n - b, suf)) return 0;
    for (size_t i = a; i < n - b; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return 1;
}

int gkd_hf_ignored(const char *s, int arch) {
    if (arch == GKD_ARCH_GPT2) return layer_name(s, "h.", ".attn.bias") || layer_name(s, "h.", ".attn.masked_bias");
    return layer_name(s, "layers.", ".self_attn.rotary_emb.inv_freq");
}

/* The stored tensor's rows x cols, and the gkd slice it maps to. */
static float *slice_of(const gkd_model *m, const gkd_hf_tensor *t, size_t *rows, size_t *cols) {
    *rows = (size_t)t->shape[0];
    *cols = t->rank == 2 ? (size_t)t->shape[1] : 1;
    float *s = gkd_model_slice(m, t->tensor, t->layer < 0 ? 0 : t->layer);
    /* The slice's rows are (out, in); a Conv1D tensor's are (in, out). */
    size_t width = t->transpose ? *rows : *cols;
    return s + t->row0 * width;
}

void gkd_hf_put(gkd_model *m, const gkd_hf_tensor *t, const float *stored) {
    size_t rows, cols;
    float *s = slice_of(m, t, &rows, &cols);
    if (!t->transpose) {
        memcpy(s, stored, rows * cols * sizeof(float));
        return;
    }
    for (size_t i = 0; i < rows; i++)
        for (size_t o = 0; o < cols; o++) s[o * rows + i] = stored[i * cols + o];
}

void gkd_hf_get(float *stored, const gkd_model *m, const gkd_hf_tensor *t) {
    size_t rows, cols;
    const float *s = slice_of(m, t, &rows, &cols);
    if (!t->transpose) {
        memcpy(stored, s, rows * cols * sizeof(float));
        return;
    }
    for (size_t i = 0; i < rows; i++)
        for (size_t o = 0; o < cols; o++) stored[i * cols + o] = s[o * rows + i];
}

/* Rows of n_heads heads of hs rows each, C wide, at w: interleaved row
 * h*hs + 2i + j is rotate-half row h*hs + j*hs/2 + i (llama2.c export.py's
 * permute: view(heads, hs/2, 2, C).transpose(1, 2)). */
static void permute_heads(float *w, float *tmp, int heads, int hs, size_t C, int to_half) {
    if (hs < 2) return;
    for (int h = 0; h < heads; h++) {
        float *head = w + (size_t)h * hs * C;
        memcpy(tmp, head, (size_t)hs * C * sizeof(float));
        for (int i = 0; i < hs / 2; i++)
            for (int j = 0; j < 2; j++) {
                size_t inter = (size_t)(2 * i + j), half = (size_t)(j * (hs / 2) + i);
                if (to_half) memcpy(head + half * C, tmp + inter * C, C * sizeof(float));
                else memcpy(head + inter * C, tmp + half * C, C * sizeof(float));
            }
    }
}

int gkd_rope_permute_rows(float *w, int heads, int hs, size_t cols, int to_half) {
    float *tmp = malloc((size_t)hs * cols * sizeof(float));
    if (!tmp) return gkd_error(GKD_ENOMEM, "out of memory for one head's rows");
    permute_heads(w, tmp, heads, hs, cols, to_half);
    free(tmp);
    return 0;
}

int gkd_rope_permute_qk(gkd_model *m, int to_half) {
    const gkd_model_config *c = &m->config;
    const int hs = c->n_embd / c->n_head, nkv = gkd_config_kv_heads(c);
    const size_t C = (size_t)c->n_embd;
    float *tmp = malloc((size_t)hs * C * sizeof(float));
    if (!tmp) return gkd_error(GKD_ENOMEM, "out of memory for one head's rows");
    for (int l = 0; l < c->n_layer; l++) {
        float *w = gkd_model_slice(m, GKD_LLAMA_WQKV, l);
        permute_heads(w, tmp, c->n_head, hs, C, to_half);
        permute_heads(w + C * C, tmp, nkv, hs, C, to_half);
    }
    free(tmp);
    return 0;
}
