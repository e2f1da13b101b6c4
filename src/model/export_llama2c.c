/* A gkd Llama model as a llama2.c .bin file: export.py's version 1
 * ("ak42", 256-byte header, norms first) or the legacy layout run.c reads
 * (7 int32, a negative vocab_size for a separate classifier, the RoPE
 * tables after rms_final). The layouts are in src/model/llama2c.c.
 *
 * llama2.c computes RMSNorm with eps 1e-5 and RoPE with theta 10000 on
 * interleaved pairs, whatever the file says, so a model with another eps
 * or theta is refused (its function would change), and a model with
 * rotate-half pairs (Hugging Face) has its q and k rows permuted back to
 * interleaved order (the inverse of export.py's permute), which keeps the
 * function. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "model/model_io_internal.h"

#define LLAMA2C_MAGIC 0x616b3432u

typedef struct {
    unsigned char *p;
    size_t n;
} out_buf;

static void put_u32(out_buf *b, uint32_t v) {
    for (int k = 0; k < 4; k++) b->p[b->n++] = (unsigned char)(v >> (8 * k));
}

static void put_floats(out_buf *b, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        put_u32(b, bits);
    }
}

/* Tensor t of every layer, layer 0 first; rows [r0, r0 + rows) of each
 * layer's slice. */
static void put_layers(out_buf *b, const gkd_model *m, int t, size_t r0, size_t rows, size_t cols) {
    for (int l = 0; l < m->config.n_layer; l++) put_floats(b, gkd_model_slice(m, t, l) + r0 * cols, rows * cols);
}

int gkd_export_llama2c(const gkd_model *src, const char *path, int legacy) {
    const gkd_model_config *c = &src->config;
    gkd_model *m = NULL;
    out_buf b = {NULL, 0};
    int rc = 0;
    if (c->arch != GKD_ARCH_LLAMA)
        return gkd_error(GKD_EINVAL, "%s: llama2.c files hold Llama models, this one is %s", path, gkd_arch_name(c->arch));
    if (c->norm_eps != 1e-5f || c->rope_theta != 10000.0f)
        return gkd_error(GKD_EINVAL,
                         "%s: llama2.c computes RMSNorm eps 1e-05 and RoPE theta 10000, this model has eps %g and theta %g",
                         path, (double)c->norm_eps, (double)c->rope_theta);
    /* A copy with interleaved q and k rows. */
    if ((rc = gkd_model_new(&m, c))) return rc;
    memcpy(m->params_memory, src->params_memory, src->num_params * sizeof(float));
    if (c->rope_style == GKD_ROPE_HALF && (rc = gkd_rope_permute_qk(m, 0))) goto done;
    const size_t C = (size_t)c->n_embd, V = (size_t)c->vocab_size, F = (size_t)c->ffn_dim;
    const size_t KV = (size_t)gkd_config_kv_heads(c) * (C / (size_t)c->n_head);
    const size_t hs = C / (size_t)c->n_head, T = (size_t)c->max_seq_len;
    const size_t header = legacy ? 28 : 256;
    const size_t tables = legacy ? 2 * T * (hs / 2) : 0;
    const size_t total = header + 4 * (src->num_params + tables);
    if (!(b.p = calloc(1, total))) {
        rc = gkd_error(GKD_ENOMEM, "%s: out of memory for %zu bytes", path, total);
        goto done;
    }
    const int32_t dims[7] = {c->n_embd, c->ffn_dim, c->n_layer, c->n_head, gkd_config_kv_heads(c),
                             legacy && c->untied_head ? -c->vocab_size : c->vocab_size, c->max_seq_len};
    if (!legacy) {
        put_u32(&b, LLAMA2C_MAGIC);
        put_u32(&b, 1);
    }
    for (int k = 0; k < 7; k++) put_u32(&b, (uint32_t)dims[k]);
    if (!legacy) b.p[b.n++] = (unsigned char)!c->untied_head;
    b.n = header;
    const float *wte = m->params[GKD_LLAMA_WTE], *normf = m->params[GKD_LLAMA_NORMF];
    if (legacy) {
        put_floats(&b, wte, V * C);
        put_layers(&b, m, GKD_LLAMA_ATTNORM, 0, 1, C);
    } else {
        put_layers(&b, m, GKD_LLAMA_ATTNORM, 0, 1, C);
        put_layers(&b, m, GKD_LLAMA_FFNNORM, 0, 1, C);
        put_floats(&b, normf, C);
        put_floats(&b, wte, V * C);
    }
    put_layers(&b, m, GKD_LLAMA_WQKV, 0, C, C);      /* wq */
    put_layers(&b, m, GKD_LLAMA_WQKV, C, KV, C);     /* wk */
    put_layers(&b, m, GKD_LLAMA_WQKV, C + KV, KV, C); /* wv */
    put_layers(&b, m, GKD_LLAMA_WO, 0, C, C);
    if (legacy) put_layers(&b, m, GKD_LLAMA_FFNNORM, 0, 1, C);
    put_layers(&b, m, GKD_LLAMA_WGU, 0, F, C);   /* w1 */
    put_layers(&b, m, GKD_LLAMA_WDOWN, 0, C, F); /* w2 */
    put_layers(&b, m, GKD_LLAMA_WGU, F, F, C);   /* w3 */
    if (legacy) {
        put_floats(&b, normf, C);
        /* freq_cis_real, freq_cis_imag: cos and sin of pos * 10000^(-2i/hs),
         * (seq_len, hs/2). run.c skips them; written as model.py does. */
        for (int part = 0; part < 2; part++)
            for (size_t t = 0; t < T; t++)
                for (size_t i = 0; i < hs / 2; i++) {
                    double ang = (double)t * pow(10000.0, -(double)(2 * i) / (double)hs);
                    float v = (float)(part ? sin(ang) : cos(ang));
                    put_floats(&b, &v, 1);
                }
    }
    if (c->untied_head) put_floats(&b, m->params[GKD_LLAMA_LMHEAD], V * C);
    if (b.n != total) {
        rc = gkd_error(GKD_EINVAL, "%s: wrote %zu of %zu bytes (layout bug)", path, b.n, total);
        goto done;
    }
    rc = gkd_file_write_atomic(path, (const char *)b.p, b.n);
done:
    free(b.p);
    gkd_model_free(m);
    return rc;
}
