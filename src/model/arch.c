/* The architecture descriptors (include/gkd/arch.h) and the shapes they
 * give a config. GPT-2's table lists its tensors in the layout order of
 * every checkpoint written before descriptors existed, so those files and
 * their bits stay as they were. */
#include "gkd/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/model.h"

#define ALWAYS GKD_WHEN_ALWAYS
/* name, per_layer, rows, cols, init, decay, when, decode_panels */
static const gkd_arch gpt2 = {
    .name = "gpt2",
    .n_tensors = 16,
    .tensors = {
        {"wte", 0, GKD_DIM_V, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 0},
        {"wpe", 0, GKD_DIM_MAXT, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 0},
        {"ln1w", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ONE, 0, ALWAYS, 0},
        {"ln1b", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
        {"qkvw", 1, GKD_DIM_QKV, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 1},
        {"qkvb", 1, GKD_DIM_QKV, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
        {"attprojw", 1, GKD_DIM_C, GKD_DIM_C, GKD_INIT_RESIDUAL, 1, ALWAYS, 1},
        {"attprojb", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
        {"ln2w", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ONE, 0, ALWAYS, 0},
        {"ln2b", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
        {"fcw", 1, GKD_DIM_F, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 1},
        {"fcb", 1, GKD_DIM_F, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
        {"fcprojw", 1, GKD_DIM_C, GKD_DIM_F, GKD_INIT_RESIDUAL, 1, ALWAYS, 1},
        {"fcprojb", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
        {"lnfw", 0, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ONE, 0, ALWAYS, 0},
        {"lnfb", 0, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ZERO, 0, ALWAYS, 0},
    },
    .wte = GKD_GPT2_WTE,
    .wpe = GKD_GPT2_WPE,
    .n_block_ops = 4,
    .block = {
        {GKD_OP_LAYERNORM, GKD_GPT2_LN1W, GKD_GPT2_LN1B, -1, -1},
        {GKD_OP_ATTENTION, GKD_GPT2_QKVW, GKD_GPT2_QKVB, GKD_GPT2_ATTPROJW, GKD_GPT2_ATTPROJB},
        {GKD_OP_LAYERNORM, GKD_GPT2_LN2W, GKD_GPT2_LN2B, -1, -1},
        {GKD_OP_MLP_GELU, GKD_GPT2_FCW, GKD_GPT2_FCB, GKD_GPT2_FCPROJW, GKD_GPT2_FCPROJB},
    },
    .final_norm = {GKD_OP_LAYERNORM, GKD_GPT2_LNFW, GKD_GPT2_LNFB, -1, -1},
    .head_untied = -1,
    .rope = 0,
};

static const gkd_arch llama = {
    .name = "llama",
    .n_tensors = 9,
    .tensors = {
        {"wte", 0, GKD_DIM_V, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 0},
        {"attn_norm", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ONE, 0, ALWAYS, 0},
        {"wqkv", 1, GKD_DIM_QKV, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 1},
        {"wo", 1, GKD_DIM_C, GKD_DIM_C, GKD_INIT_RESIDUAL, 1, ALWAYS, 1},
        {"ffn_norm", 1, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ONE, 0, ALWAYS, 0},
        {"wgu", 1, GKD_DIM_2F, GKD_DIM_C, GKD_INIT_NORMAL, 1, ALWAYS, 1},
        {"wdown", 1, GKD_DIM_C, GKD_DIM_F, GKD_INIT_RESIDUAL, 1, ALWAYS, 1},
        {"norm_f", 0, GKD_DIM_C, GKD_DIM_1, GKD_INIT_ONE, 0, ALWAYS, 0},
        {"lm_head", 0, GKD_DIM_V, GKD_DIM_C, GKD_INIT_NORMAL, 1, GKD_WHEN_UNTIED, 0},
    },
    .wte = GKD_LLAMA_WTE,
    .wpe = -1,
    .n_block_ops = 4,
    .block = {
        {GKD_OP_RMSNORM, GKD_LLAMA_ATTNORM, -1, -1, -1},
        {GKD_OP_ATTENTION, GKD_LLAMA_WQKV, -1, GKD_LLAMA_WO, -1},
        {GKD_OP_RMSNORM, GKD_LLAMA_FFNNORM, -1, -1, -1},
        {GKD_OP_MLP_SWIGLU, GKD_LLAMA_WGU, -1, GKD_LLAMA_WDOWN, -1},
    },
    .final_norm = {GKD_OP_RMSNORM, GKD_LLAMA_NORMF, -1, -1, -1},
    .head_untied = GKD_LLAMA_LMHEAD,
    .rope = 1,
};

static const gkd_arch *const archs[GKD_ARCH_COUNT] = {&gpt2, &llama};

const gkd_arch *gkd_arch_get(int arch) {
    return arch >= 0 && arch < GKD_ARCH_COUNT ? archs[arch] : NULL;
}

const char *gkd_arch_name(int arch) {
    const gkd_arch *a = gkd_arch_get(arch);
    return a ? a->name : "unknown";
}

int gkd_arch_from_name(const char *name) {
    for (int i = 0; name && i < GKD_ARCH_COUNT; i++)
        if (!strcmp(name, archs[i]->name)) return i;
    return -1;
}

void gkd_model_config_fill_defaults(gkd_model_config *m) {
    if (m->arch != GKD_ARCH_LLAMA) return;
    if (m->n_kv_head == 0) m->n_kv_head = m->n_head;
    if (m->ffn_dim == 0) m->ffn_dim = (8 * m->n_embd / 3 + 31) / 32 * 32;
    if (m->norm_eps == 0.0f) m->norm_eps = 1e-5f;
    if (m->rope_theta == 0.0f) m->rope_theta = 10000.0f;
}

int gkd_config_kv_heads(const gkd_model_config *cfg) {
    return cfg->n_kv_head > 0 ? cfg->n_kv_head : cfg->n_head;
}

int gkd_config_ffn_dim(const gkd_model_config *cfg) {
    return cfg->arch == GKD_ARCH_GPT2 ? 4 * cfg->n_embd : cfg->ffn_dim;
}

size_t gkd_config_dim(const gkd_model_config *cfg, gkd_dim d) {
    const size_t C = (size_t)cfg->n_embd;
    const size_t KV = (size_t)gkd_config_kv_heads(cfg) * (C / (size_t)cfg->n_head);
    switch (d) {
    case GKD_DIM_1: return 1;
    case GKD_DIM_V: return (size_t)cfg->vocab_size;
    case GKD_DIM_MAXT: return (size_t)cfg->max_seq_len;
    case GKD_DIM_C: return C;
    case GKD_DIM_QKV: return C + 2 * KV;
    case GKD_DIM_F: return (size_t)gkd_config_ffn_dim(cfg);
    case GKD_DIM_2F: return 2 * (size_t)gkd_config_ffn_dim(cfg);
    }
    return 0;
}

size_t gkd_config_tensor_size(const gkd_model_config *cfg, int i) {
    const gkd_arch *a = gkd_arch_get(cfg->arch);
    if (!a || i < 0 || i >= a->n_tensors) return 0;
    const gkd_tensor_spec *t = &a->tensors[i];
    if (t->when == GKD_WHEN_UNTIED && !cfg->untied_head) return 0;
    size_t n = gkd_config_dim(cfg, t->rows) * gkd_config_dim(cfg, t->cols);
    return t->per_layer ? n * (size_t)cfg->n_layer : n;
}

size_t gkd_config_num_params(const gkd_model_config *cfg) {
    const gkd_arch *a = gkd_arch_get(cfg->arch);
    size_t n = 0;
    for (int i = 0; a && i < a->n_tensors; i++) n += gkd_config_tensor_size(cfg, i);
    return n;
}

void gkd_config_describe(char *buf, size_t n, const gkd_model_config *c) {
    int k = snprintf(buf, n, "vocab_size=%d max_seq_len=%d n_layer=%d n_embd=%d n_head=%d",
                     c->vocab_size, c->max_seq_len, c->n_layer, c->n_embd, c->n_head);
    if (c->arch != GKD_ARCH_GPT2 && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k,
                 " arch=%s n_kv_head=%d ffn_dim=%d untied_head=%d rope_style=%s norm_eps=%g "
                 "rope_theta=%g",
                 gkd_arch_name(c->arch), c->n_kv_head, c->ffn_dim, c->untied_head,
                 c->rope_style == GKD_ROPE_HALF ? "half" : "interleaved", (double)c->norm_eps,
                 (double)c->rope_theta);
}

int gkd_config_equal(const gkd_model_config *a, const gkd_model_config *b) {
    return a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len &&
           a->n_layer == b->n_layer && a->n_embd == b->n_embd && a->n_head == b->n_head &&
           a->arch == b->arch && a->n_kv_head == b->n_kv_head && a->ffn_dim == b->ffn_dim &&
           a->untied_head == b->untied_head && a->rope_style == b->rope_style &&
           a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta;
}

int gkd_model_config_validate(const gkd_model_config *cfg) {
    if (!cfg) return gkd_error(GKD_EINVAL, "model config is NULL");
    if (!gkd_arch_get(cfg->arch)) return gkd_error(GKD_EINVAL, "arch %d is not known", cfg->arch);
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
    if (cfg->arch == GKD_ARCH_GPT2) {
        if (cfg->n_kv_head || cfg->ffn_dim || cfg->untied_head || cfg->rope_style ||
            cfg->norm_eps != 0.0f || cfg->rope_theta != 0.0f)
            return gkd_error(GKD_EINVAL, "a gpt2 config sets no n_kv_head, ffn_dim, untied_head, "
                                         "rope_style, norm_eps or rope_theta");
        return 0;
    }
    const int hs = cfg->n_embd / cfg->n_head;
    if (cfg->n_kv_head < 1 || cfg->n_kv_head > cfg->n_head || cfg->n_head % cfg->n_kv_head)
        return gkd_error(GKD_EINVAL, "n_kv_head %d must divide n_head %d", cfg->n_kv_head,
                         cfg->n_head);
    if (hs % 2) return gkd_error(GKD_EINVAL, "head size %d must be even for rotary positions", hs);
    if (cfg->ffn_dim < 1 || cfg->ffn_dim > 65536)
        return gkd_error(GKD_EINVAL, "ffn_dim %d out of range [1, 65536]", cfg->ffn_dim);
    if (cfg->untied_head != 0 && cfg->untied_head != 1)
        return gkd_error(GKD_EINVAL, "untied_head %d must be 0 or 1", cfg->untied_head);
    if (cfg->rope_style != GKD_ROPE_INTERLEAVED && cfg->rope_style != GKD_ROPE_HALF)
        return gkd_error(GKD_EINVAL, "rope_style %d is not known", cfg->rope_style);
    if (!(cfg->norm_eps > 0.0f && cfg->norm_eps < 1.0f))
        return gkd_error(GKD_EINVAL, "norm_eps %g out of range (0, 1)", (double)cfg->norm_eps);
    if (!(cfg->rope_theta >= 1.0f && isfinite(cfg->rope_theta)))
        return gkd_error(GKD_EINVAL, "rope_theta %g must be finite and >= 1", (double)cfg->rope_theta);
    return 0;
}
