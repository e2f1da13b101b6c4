/* llama2.c model files (include/gkd/llama2c.h).
 *
 * Layout followed: karpathy/llama2.c master as of its grouped-query
 * attention support (run.c: read_checkpoint and memory_map_weights, which
 * size wq/wo by n_heads * head_size and wk/wv by n_kv_heads * head_size and
 * skip seq_len * head_size / 2 floats of each RoPE table; export.py:
 * legacy_export (version 0) and version1_export). The legacy file is
 *   7 x int32 config (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *   vocab_size, seq_len; vocab_size < 0: separate classifier), then float32
 *   tok_embeddings, rms_att (all layers), wq, wk, wv, wo, rms_ffn, w1, w2,
 *   w3, rms_final, freq_cis_real, freq_cis_imag, [wcls]
 * and version 1 is
 *   uint32 magic 0x616b3432 ("ak42"), int32 version 1, the same 7 int32
 *   (vocab_size > 0), uint8 shared_classifier, zeros up to byte 256, then
 *   rms_att, rms_ffn, rms_final, tok_embeddings, wq, wk, wv, wo, w1, w2,
 *   w3, [wcls]
 * every per-layer tensor being stored for all layers, layer 0 first.
 *
 * Dimensions: V vocabulary, D dim, H hidden_dim, L layers, NH query heads,
 * NKV key/value heads, HS head size. */
#include "gkd/llama2c.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"

#define LLAMA2C_MAGIC 0x616b3432u
#define LLAMA2C_V1_HEADER 256
/* Far above any real model (Llama 3 405B has 126 layers); bounds the
 * tensor table a lying header could make us allocate. */
#define LLAMA2C_MAX_LAYERS 4096

/* The per-layer tensors, in the order of the tensor table. */
enum { K_RMS_ATT, K_WQ, K_WK, K_WV, K_WO, K_RMS_FFN, K_W1, K_W2, K_W3, K_PER_LAYER };
static const char *const kind_names[K_PER_LAYER] = {"rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3"};

struct gkd_llama2c {
    char *path;
    FILE *fp;
    gkd_llama2c_config cfg;
    gkd_llama2c_tensor *t; /* tok_embeddings, L x K_PER_LAYER, rms_final, [wcls] */
    size_t n;
};

static int l2_fail(const char *path, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int l2_fail(const char *path, int code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gkd_error(code, "llama2.c %s: %s", path, msg);
}

static int read_at(const char *path, FILE *fp, void *buf, size_t n, uint64_t off) {
    int fd = fileno(fp);
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return l2_fail(path, GKD_EIO, "read at byte %llu: %s", (unsigned long long)off, strerror(errno));
        if (r == 0)
            return l2_fail(path, GKD_EIO, "file ended at byte %llu: it changed since it was opened",
                           (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int32_t le32(const unsigned char *b) {
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    int32_t i;
    memcpy(&i, &u, sizeof i);
    return i;
}

/* a * b and a + b on sizes, with *ok cleared on overflow. */
static uint64_t mul(uint64_t a, uint64_t b, int *ok) {
    if (b && a > UINT64_MAX / b) *ok = 0;
    return *ok ? a * b : 0;
}
static uint64_t add(uint64_t a, uint64_t b, int *ok) {
    if (a > UINT64_MAX - b) *ok = 0;
    return *ok ? a + b : 0;
}

/* The config's own consistency (not yet the file's length). */
static int check_config(const char *path, const int32_t h[7], gkd_llama2c_config *c) {
    static const char *const names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int k = 0; k < 7; k++) {
        if (k == 5 && c->version == 0 && h[k] < 0 && h[k] != INT32_MIN) continue; /* separate classifier */
        if (h[k] <= 0)
            return l2_fail(path, GKD_EFORMAT, "%s is %d, not a positive number (not a llama2.c model file?)", names[k],
                           (int)h[k]);
    }
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab_size = h[5] < 0 ? -h[5] : h[5];
    c->seq_len = h[6];
    if (c->version == 0) c->shared_classifier = h[5] > 0;
    if (c->n_layers > LLAMA2C_MAX_LAYERS)
        return l2_fail(path, GKD_EFORMAT, "n_layers is %d, beyond the %d this reader accepts", c->n_layers,
                       LLAMA2C_MAX_LAYERS);
    if (c->dim % c->n_heads)
        return l2_fail(path, GKD_EFORMAT, "n_heads %d does not divide dim %d", c->n_heads, c->dim);
    if (c->n_heads % c->n_kv_heads)
        return l2_fail(path, GKD_EFORMAT, "n_kv_heads %d does not divide n_heads %d", c->n_kv_heads, c->n_heads);
    c->head_size = c->dim / c->n_heads;
    if (c->head_size % 2)
        return l2_fail(path, GKD_EFORMAT, "head size %d (dim %d / n_heads %d) is odd; rotary embeddings rotate pairs",
                       c->head_size, c->dim, c->n_heads);
    return 0;
}

static void set_tensor(gkd_llama2c_tensor *t, const char *name, int64_t rows, int64_t cols, uint64_t offset) {
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (uint64_t)rows * (uint64_t)(cols ? cols : 1);
    t->offset = offset;
}

int gkd_llama2c_open(gkd_llama2c **out, const char *path) {
    *out = NULL;
    gkd_llama2c *m = calloc(1, sizeof *m);
    int rc = 0;
    if (!m || !(m->path = strdup(path))) {
        rc = gkd_error(GKD_ENOMEM, "llama2.c %s: out of memory", path);
        goto done;
    }
    if ((rc = gkd_fopen_read(&m->fp, path))) {
        rc = gkd_error_wrap(rc, "llama2.c %s", path);
        goto done;
    }
    struct stat st;
    if (fstat(fileno(m->fp), &st) != 0) {
        rc = l2_fail(path, GKD_EIO, "cannot stat: %s", strerror(errno));
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char hb[LLAMA2C_V1_HEADER];
    size_t have = size < sizeof hb ? (size_t)size : sizeof hb;
    if (have < 28) {
        rc = l2_fail(path, GKD_ECORRUPT, "truncated: %llu bytes, less than the 28 of a header",
                     (unsigned long long)size);
        goto done;
    }
    if ((rc = read_at(path, m->fp, hb, have, 0))) goto done;
    gkd_llama2c_config *c = &m->cfg;
    int32_t h[7];
    uint64_t header;
    if ((uint32_t)le32(hb) == LLAMA2C_MAGIC) {
        int32_t version = le32(hb + 4);
        if (version == 2) {
            rc = l2_fail(path, GKD_EVERSION, "export version 2 (Q8_0 int8 weights) is not supported; "
                                             "export float32 weights (export.py --version 0 or 1)");
            goto done;
        }
        if (version != 1) {
            rc = l2_fail(path, GKD_EVERSION, "export version %d, this build reads the legacy format and version 1",
                         (int)version);
            goto done;
        }
        if (have < LLAMA2C_V1_HEADER) {
            rc = l2_fail(path, GKD_ECORRUPT, "truncated: %llu bytes, less than the %d of a version 1 header",
                         (unsigned long long)size, LLAMA2C_V1_HEADER);
            goto done;
        }
        c->version = 1;
        for (int k = 0; k < 7; k++) h[k] = le32(hb + 8 + 4 * k);
        if (hb[36] > 1) {
            rc = l2_fail(path, GKD_EFORMAT, "shared_classifier flag is %d, not 0 or 1", hb[36]);
            goto done;
        }
        c->shared_classifier = hb[36];
        for (int k = 37; k < LLAMA2C_V1_HEADER; k++)
            if (hb[k]) {
                rc = l2_fail(path, GKD_EFORMAT, "header byte %d is %d; version 1 pads its header with zeros", k, hb[k]);
                goto done;
            }
        header = LLAMA2C_V1_HEADER;
    } else {
        c->version = 0;
        for (int k = 0; k < 7; k++) h[k] = le32(hb + 4 * k);
        header = 28;
    }
    if ((rc = check_config(path, h, c))) goto done;

    /* Floats per tensor, then the whole file's length, all in 64 bits with
     * overflow checks (each factor is below 2^31). */
    int ok = 1;
    uint64_t D = (uint64_t)c->dim, H = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers, V = (uint64_t)c->vocab_size;
    uint64_t q = (uint64_t)c->n_heads * (uint64_t)c->head_size, kv = (uint64_t)c->n_kv_heads * (uint64_t)c->head_size;
    uint64_t per[K_PER_LAYER];
    per[K_RMS_ATT] = per[K_RMS_FFN] = D;
    per[K_WQ] = per[K_WO] = mul(q, D, &ok);
    per[K_WK] = per[K_WV] = mul(kv, D, &ok);
    per[K_W1] = per[K_W2] = per[K_W3] = mul(H, D, &ok);
    uint64_t emb = mul(V, D, &ok);
    uint64_t rope = mul((uint64_t)c->seq_len, (uint64_t)c->head_size / 2, &ok);
    uint64_t floats = add(emb, D, &ok); /* embedding, final norm */
    for (int k = 0; k < K_PER_LAYER; k++) floats = add(floats, mul(L, per[k], &ok), &ok);
    if (c->version == 0) floats = add(floats, mul(2, rope, &ok), &ok);
    if (!c->shared_classifier) floats = add(floats, emb, &ok);
    uint64_t expect = add(header, mul(floats, 4, &ok), &ok);
    if (!ok) {
        rc = l2_fail(path, GKD_EFORMAT, "the config's tensor sizes overflow 64 bits (dim %d, hidden_dim %d, n_layers %d, vocab_size %d, seq_len %d)",
                     c->dim, c->hidden_dim, c->n_layers, c->vocab_size, c->seq_len);
        goto done;
    }
    if (size < expect) {
        rc = l2_fail(path, GKD_ECORRUPT, "truncated: the header implies %llu bytes, the file has %llu",
                     (unsigned long long)expect, (unsigned long long)size);
        goto done;
    }
    if (size > expect) {
        rc = l2_fail(path, GKD_EFORMAT, "%llu bytes after the last tensor (the header implies %llu bytes%s)",
                     (unsigned long long)(size - expect), (unsigned long long)expect,
                     c->shared_classifier && size - expect == 4 * emb ? "; a separate classifier needs a negative vocab_size"
                                                                      : "");
        goto done;
    }
    if (emb > SIZE_MAX / 4 || per[K_WQ] > SIZE_MAX / 4 || per[K_WK] > SIZE_MAX / 4 || per[K_W1] > SIZE_MAX / 4) {
        rc = l2_fail(path, GKD_EFORMAT, "a tensor is larger than this machine can address");
        goto done;
    }

    /* Every size is now known to fit in the file: lay out the table. */
    m->n = 2 + (size_t)L * K_PER_LAYER + !c->shared_classifier;
    m->t = calloc(m->n, sizeof *m->t);
    if (!m->t) {
        rc = l2_fail(path, GKD_ENOMEM, "out of memory for %zu tensors", m->n);
        goto done;
    }
    const int64_t rows[K_PER_LAYER] = {(int64_t)D, (int64_t)q, (int64_t)kv, (int64_t)kv, (int64_t)D,
                                       (int64_t)D, (int64_t)H, (int64_t)D, (int64_t)H};
    const int64_t cols[K_PER_LAYER] = {0, (int64_t)D, (int64_t)D, (int64_t)D, (int64_t)q,
                                       0, (int64_t)D, (int64_t)H, (int64_t)D};
    gkd_llama2c_tensor *t_emb = &m->t[0], *t_final = &m->t[m->n - 1 - !c->shared_classifier];
    uint64_t at = header;
    /* Start of kind k's block of L tensors. */
    uint64_t base[K_PER_LAYER];
    if (c->version == 0) {
        set_tensor(t_emb, "tok_embeddings", (int64_t)V, (int64_t)D, at);
        at += 4 * emb;
        static const int order[K_PER_LAYER] = {K_RMS_ATT, K_WQ, K_WK, K_WV, K_WO, K_RMS_FFN, K_W1, K_W2, K_W3};
        for (int j = 0; j < K_PER_LAYER; j++) {
            base[order[j]] = at;
            at += 4 * L * per[order[j]];
        }
        set_tensor(t_final, "rms_final", (int64_t)D, 0, at);
        at += 4 * D + 8 * rope; /* skip freq_cis_real, freq_cis_imag */
    } else {
        base[K_RMS_ATT] = at;
        at += 4 * L * D;
        base[K_RMS_FFN] = at;
        at += 4 * L * D;
        set_tensor(t_final, "rms_final", (int64_t)D, 0, at);
        at += 4 * D;
        set_tensor(t_emb, "tok_embeddings", (int64_t)V, (int64_t)D, at);
        at += 4 * emb;
        static const int order[7] = {K_WQ, K_WK, K_WV, K_WO, K_W1, K_W2, K_W3};
        for (int j = 0; j < 7; j++) {
            base[order[j]] = at;
            at += 4 * L * per[order[j]];
        }
    }
    for (uint64_t l = 0; l < L; l++)
        for (int k = 0; k < K_PER_LAYER; k++) {
            char name[32];
            snprintf(name, sizeof name, "layers.%d.%s", (int)l, kind_names[k]);
            set_tensor(&m->t[1 + l * K_PER_LAYER + (uint64_t)k], name, rows[k], cols[k], base[k] + 4 * l * per[k]);
        }
    if (!c->shared_classifier) {
        set_tensor(&m->t[m->n - 1], "wcls", (int64_t)V, (int64_t)D, at);
        at += 4 * emb;
    }
    if (at != expect) { /* a bug, not bad input */
        rc = l2_fail(path, GKD_ESTATE, "internal error: layout ends at %llu, expected %llu", (unsigned long long)at,
                     (unsigned long long)expect);
        goto done;
    }
done:
    if (rc) gkd_llama2c_close(m);
    else *out = m;
    return rc;
}

void gkd_llama2c_close(gkd_llama2c *m) {
    if (!m) return;
    if (m->fp) fclose(m->fp);
    free(m->t);
    free(m->path);
    free(m);
}

const gkd_llama2c_config *gkd_llama2c_config_of(const gkd_llama2c *m) { return &m->cfg; }
size_t gkd_llama2c_count(const gkd_llama2c *m) { return m ? m->n : 0; }
const gkd_llama2c_tensor *gkd_llama2c_tensor_at(const gkd_llama2c *m, size_t i) {
    return m && i < m->n ? &m->t[i] : NULL;
}

int gkd_llama2c_find(size_t *index, const gkd_llama2c *m, const char *name) {
    size_t i = SIZE_MAX;
    if (!strcmp(name, "tok_embeddings")) i = 0;
    else if (!strcmp(name, "rms_final")) i = m->n - 1 - !m->cfg.shared_classifier;
    else if (!strcmp(name, "wcls") && !m->cfg.shared_classifier) i = m->n - 1;
    else if (!strncmp(name, "layers.", 7)) {
        /* layers.L.KIND, L in decimal without leading zeros */
        const char *p = name + 7;
        long l = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 6) l = l * 10 + (*p++ - '0'), digits++;
        if (digits && *p == '.' && !(digits > 1 && name[7] == '0') && l < m->cfg.n_layers)
            for (int k = 0; k < K_PER_LAYER; k++)
                if (!strcmp(p + 1, kind_names[k])) i = 1 + (size_t)l * K_PER_LAYER + (size_t)k;
    }
    if (i == SIZE_MAX) {
        char shown[72];
        size_t j = 0;
        for (; name[j] && j < 64; j++) shown[j] = (unsigned char)name[j] < 0x20 ? '?' : name[j];
        shown[j] = '\0';
        return l2_fail(m->path, GKD_EINVAL, "no tensor \"%s\"%s", shown,
                       !strcmp(name, "wcls") ? " (the classifier is shared with tok_embeddings)" : "");
    }
    *index = i;
    return 0;
}

int gkd_llama2c_read(float *out, size_t n, gkd_llama2c *m, size_t index) {
    if (index >= m->n) return l2_fail(m->path, GKD_EINVAL, "tensor index %zu out of range (%zu tensors)", index, m->n);
    const gkd_llama2c_tensor *t = &m->t[index];
    if (t->numel != (uint64_t)n)
        return l2_fail(m->path, GKD_EMISMATCH, "tensor %s has %llu elements, the caller expects %zu", t->name,
                       (unsigned long long)t->numel, n);
    int rc = read_at(m->path, m->fp, out, n * sizeof(float), t->offset);
    if (rc) return rc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        memcpy(b, &out[i], 4);
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&out[i], &u, 4);
    }
#endif
    return 0;
}
