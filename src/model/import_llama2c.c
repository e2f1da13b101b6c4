/* A gkd Llama model from a llama2.c .bin file (read by llama2c.c): llama2.c
 * computes RMSNorm with eps 1e-5 and rotates interleaved channel pairs
 * (2i, 2i+1) with theta 10000 (run.c), so the model gets those. wq, wk and
 * wv are the rows of wqkv, w1 (gate) and w3 (up) those of wgu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/llama2c.h"
#include "model/model_io_internal.h"

int gkd_import_llama2c(gkd_model **out, const char *path, gkd_model_import_info *info) {
    gkd_llama2c *f = NULL;
    gkd_model *m = NULL;
    *out = NULL;
    int rc = gkd_llama2c_open(&f, path);
    if (rc) return rc;
    const gkd_llama2c_config *lc = gkd_llama2c_config_of(f);
    gkd_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = GKD_ARCH_LLAMA;
    c.vocab_size = lc->vocab_size;
    c.max_seq_len = lc->seq_len;
    c.n_layer = lc->n_layers;
    c.n_embd = lc->dim;
    c.n_head = lc->n_heads;
    c.n_kv_head = lc->n_kv_heads;
    c.ffn_dim = lc->hidden_dim;
    c.untied_head = !lc->shared_classifier;
    c.rope_style = GKD_ROPE_INTERLEAVED;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    if ((rc = gkd_model_new(&m, &c))) {
        rc = gkd_error_wrap(rc == GKD_ENOMEM ? rc : GKD_EINVAL, "llama2.c %s: not a model gkd can build", path);
        goto done;
    }
    const size_t C = (size_t)c.n_embd, KV = (size_t)gkd_config_kv_heads(&c) * (C / (size_t)c.n_head);
    const size_t F = (size_t)c.ffn_dim;
    for (size_t i = 0; i < gkd_llama2c_count(f); i++) {
        const gkd_llama2c_tensor *t = gkd_llama2c_tensor_at(f, i);
        int layer = 0, tensor = -1;
        size_t row0 = 0;
        char kind[32] = "";
        if (!strcmp(t->name, "tok_embeddings")) tensor = GKD_LLAMA_WTE;
        else if (!strcmp(t->name, "rms_final")) tensor = GKD_LLAMA_NORMF;
        else if (!strcmp(t->name, "wcls")) tensor = GKD_LLAMA_LMHEAD;
        else if (sscanf(t->name, "layers.%d.%31s", &layer, kind) == 2) {
            if (!strcmp(kind, "rms_att")) tensor = GKD_LLAMA_ATTNORM;
            else if (!strcmp(kind, "wq")) tensor = GKD_LLAMA_WQKV;
            else if (!strcmp(kind, "wk")) tensor = GKD_LLAMA_WQKV, row0 = C;
            else if (!strcmp(kind, "wv")) tensor = GKD_LLAMA_WQKV, row0 = C + KV;
            else if (!strcmp(kind, "wo")) tensor = GKD_LLAMA_WO;
            else if (!strcmp(kind, "rms_ffn")) tensor = GKD_LLAMA_FFNNORM;
            else if (!strcmp(kind, "w1")) tensor = GKD_LLAMA_WGU;
            else if (!strcmp(kind, "w3")) tensor = GKD_LLAMA_WGU, row0 = F;
            else if (!strcmp(kind, "w2")) tensor = GKD_LLAMA_WDOWN;
        }
        /* The reader's table is fixed by its header: anything else is a bug. */
        if (tensor < 0 || layer < 0 || layer >= c.n_layer) {
            rc = gkd_error(GKD_EINVAL, "llama2.c %s: tensor %s has no place in the model", path, t->name);
            goto done;
        }
        size_t width = tensor == GKD_LLAMA_WDOWN ? F : C;
        size_t cols = t->rank == 2 ? (size_t)t->shape[1] : 1;
        size_t rows = (size_t)t->shape[0];
        if (cols != (t->rank == 2 ? width : 1) ||
            (row0 + rows) * cols > gkd_config_tensor_size(&c, tensor) / (m->arch->tensors[tensor].per_layer ? (size_t)c.n_layer : 1)) {
            rc = gkd_error(GKD_EMISMATCH, "llama2.c %s: tensor %s has a shape that does not fit the model", path, t->name);
            goto done;
        }
        float *dst = gkd_model_slice(m, tensor, layer) + row0 * cols;
        if ((rc = gkd_llama2c_read(dst, (size_t)t->numel, f, i))) goto done;
        if ((rc = gkd_import_check_values(dst, (size_t)t->numel, path, t->name))) goto done;
    }
    if (info) {
        memset(info, 0, sizeof *info);
        info->format = GKD_MODEL_FORMAT_LLAMA2C;
        snprintf(info->detail, sizeof info->detail, "llama2.c %s, %s classifier",
                 lc->version ? "version 1" : "legacy (version 0)", lc->shared_classifier ? "shared" : "separate");
        snprintf(info->weights, sizeof info->weights, "%s", path);
        info->n_tensors = (int)gkd_llama2c_count(f);
        info->n_shards = 1;
    }
    *out = m;
    m = NULL;
done:
    gkd_model_free(m);
    gkd_llama2c_close(f);
    return rc;
}
