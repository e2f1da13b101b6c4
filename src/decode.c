/* Incremental decoding with a per-layer KV cache.
 *
 * Dimensions as in model.h: B sequences in the cache, n rows in one call,
 * C channels, NH heads, hs = C/NH, L layers, maxT context, V vocabulary.
 * The cache holds, per layer, K and V of shape (B, NH, maxT, hs).
 *
 * The arithmetic mirrors gkd_model_forward (pre-LN blocks, tanh GELU, tied
 * LM head) row by row, so the logits of position p equal those of a full
 * forward over the same prefix up to float rounding. Matrix products batch
 * all rows into one call per weight matrix (rowdot.c: a fixed summation
 * order per element, unlike sgemm, so a row's logits do not depend on the
 * other rows of the batch); the rest is parallel over rows and heads, each
 * output written by one thread, so results do not depend on the thread
 * count either. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode_rows.h"
#include "rowdot.h"
#include "gkd/error.h"
#include "gkd/model.h"

#define LN_EPS 1e-5
/* Below this many elements a loop runs on one thread: at decode sizes an
 * OpenMP barrier costs more than the work. Only speed depends on it. */
#define PAR_MIN 32768

struct gkd_kv_cache {
    int B, L, NH, maxT, hs, C, V;
    float *k; /* (L, B, NH, maxT, hs) */
    float *v; /* (L, B, NH, maxT, hs) */
    /* Row scratch, grown on demand to cap_rows rows. */
    int cap_rows;
    float *x;    /* (n, C) residual stream */
    float *xn;   /* (n, C) LayerNorm output */
    float *qkv;  /* (n, 3C) */
    float *atty; /* (n, C) attention output before projection */
    float *tmp;  /* (n, C) projection output */
    float *h;    /* (n, 4C) MLP hidden */
    float *att;  /* (n, NH, maxT) attention weights */
    float *lg;   /* (n, V) logits of rows that want them */
    int *out_idx;/* (n) rows that want logits */
};

int gkd_kv_cache_batch(const gkd_kv_cache *c) { return c->B; }

int gkd_kv_cache_new(gkd_kv_cache **out, const gkd_model *m, int B) {
    *out = NULL;
    if (!m || B <= 0) return gkd_error(GKD_EINVAL, "kv cache: need a model and B > 0 (got %d)", B);
    const gkd_model_config *cfg = &m->config;
    gkd_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return gkd_error(GKD_ENOMEM, "kv cache: out of memory");
    c->B = B;
    c->L = cfg->n_layer;
    c->NH = cfg->n_head;
    c->maxT = cfg->max_seq_len;
    c->C = cfg->n_embd;
    c->hs = cfg->n_embd / cfg->n_head;
    c->V = cfg->vocab_size;
    size_t n = (size_t)c->L * B * c->NH * c->maxT * c->hs;
    c->k = calloc(n, sizeof(float));
    c->v = calloc(n, sizeof(float));
    if (!c->k || !c->v) {
        gkd_kv_cache_free(c);
        return gkd_error(GKD_ENOMEM, "kv cache: out of memory for %zu floats", 2 * n);
    }
    *out = c;
    return 0;
}

static void free_scratch(gkd_kv_cache *c) {
    free(c->x);
    free(c->xn);
    free(c->qkv);
    free(c->atty);
    free(c->tmp);
    free(c->h);
    free(c->att);
    free(c->lg);
    free(c->out_idx);
    c->x = c->xn = c->qkv = c->atty = c->tmp = c->h = c->att = c->lg = NULL;
    c->out_idx = NULL;
    c->cap_rows = 0;
}

void gkd_kv_cache_free(gkd_kv_cache *c) {
    if (!c) return;
    free_scratch(c);
    free(c->k);
    free(c->v);
    free(c);
}

static int ensure_rows(gkd_kv_cache *c, int n) {
    if (n <= c->cap_rows) return 0;
    free_scratch(c);
    size_t r = (size_t)n, C = (size_t)c->C;
    c->x = malloc(r * C * sizeof(float));
    c->xn = malloc(r * C * sizeof(float));
    c->qkv = malloc(r * 3 * C * sizeof(float));
    c->atty = malloc(r * C * sizeof(float));
    c->tmp = malloc(r * C * sizeof(float));
    c->h = malloc(r * 4 * C * sizeof(float));
    c->att = malloc(r * (size_t)c->NH * c->maxT * sizeof(float));
    c->lg = malloc(r * (size_t)c->V * sizeof(float));
    c->out_idx = malloc(r * sizeof(int));
    if (!c->x || !c->xn || !c->qkv || !c->atty || !c->tmp || !c->h || !c->att || !c->lg ||
        !c->out_idx) {
        free_scratch(c);
        return gkd_error(GKD_ENOMEM, "kv cache: out of memory for %d rows", n);
    }
    c->cap_rows = n;
    return 0;
}

static void layernorm_rows(float *out, const float *inp, const float *w, const float *b, int n,
                           int C) {
#pragma omp parallel for schedule(static) if ((size_t)n * C >= PAR_MIN)
    for (int r = 0; r < n; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        /* Double accumulation, as in the full forward (layers.c). */
        double s = 0.0;
        for (int i = 0; i < C; i++) s += x[i];
        float mean = (float)(s / C);
        double var = 0.0;
        for (int i = 0; i < C; i++) {
            double d = (double)x[i] - mean;
            var += d * d;
        }
        float rstd = (float)(1.0 / sqrt(var / C + LN_EPS));
        for (int i = 0; i < C; i++) o[i] = (x[i] - mean) * rstd * w[i] + b[i];
    }
}

/* out (n, OC) = inp (n, IC) @ w^T (w is (OC, IC)) + bias */
static void matmul_rows(float *out, const float *inp, const float *w, const float *bias, int n,
                        int IC, int OC) {
    gkd_rowdot_matmul(out, inp, w, bias, n, IC, OC);
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

/* Dot product with eight lane sums and a fixed reduction order. */
static inline float dot(const float *a, const float *b, int n) {
    v8 acc = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8) acc += *(const v8u *)(a + k) * *(const v8u *)(b + k);
    float s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

#define LOADV(p) (*(const v8u *)(p))

/* y (hs) = sum_t a[t] v[t] (v is (T, hs)), each y[i] accumulated from 0 in
 * order t = 0..T-1 whatever the chunking; the accumulators stay in
 * registers rather than round-tripping through y. */
static inline void weighted_sum(float *restrict y, const float *restrict a, const float *restrict v, int T,
                         int hs) {
    int i = 0;
    for (; i + 32 <= hs; i += 32) {
        v8 y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0};
        for (int t = 0; t < T; t++) {
            const float *vt = v + (size_t)t * hs + i;
            float w = a[t];
            v8 wv = {w, w, w, w, w, w, w, w};
            y0 += wv * LOADV(vt);
            y1 += wv * LOADV(vt + 8);
            y2 += wv * LOADV(vt + 16);
            y3 += wv * LOADV(vt + 24);
        }
        *(v8u *)(y + i) = y0;
        *(v8u *)(y + i + 8) = y1;
        *(v8u *)(y + i + 16) = y2;
        *(v8u *)(y + i + 24) = y3;
    }
    for (; i + 8 <= hs; i += 8) {
        v8 y0 = {0};
        for (int t = 0; t < T; t++) {
            float w = a[t];
            v8 wv = {w, w, w, w, w, w, w, w};
            y0 += wv * LOADV(v + (size_t)t * hs + i);
        }
        *(v8u *)(y + i) = y0;
    }
    for (; i < hs; i++) {
        float acc = 0.0f;
        for (int t = 0; t < T; t++) acc += a[t] * v[(size_t)t * hs + i];
        y[i] = acc;
    }
}

/* One query against T cached positions of one head: y (hs), weights a (T).
 * Compiled for AVX2 and generic x86-64; both do the same per-lane
 * operations (ISO C mode: no FMA contraction), so the bits agree. */
__attribute__((target_clones("avx2", "default"))) static void
attend_head(float *y, float *a, const float *q, const float *kh, const float *vh, int T, int hs,
            float scale) {
    float maxv = -INFINITY;
    for (int t = 0; t < T; t++) {
        float sc = dot(q, kh + (size_t)t * hs, hs) * scale;
        a[t] = sc;
        if (sc > maxv) maxv = sc;
    }
    float sum = 0.0f;
    for (int t = 0; t < T; t++) {
        a[t] = expf(a[t] - maxv);
        sum += a[t];
    }
    float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
    for (int t = 0; t < T; t++) a[t] *= inv;
    weighted_sum(y, a, vh, T, hs);
}

static void attention_rows(gkd_kv_cache *c, int l, int n, const int *seq, const int *pos) {
    const int NH = c->NH, hs = c->hs, C = c->C, maxT = c->maxT;
    const float scale = 1.0f / sqrtf((float)hs);
    float *kl = c->k + (size_t)l * c->B * NH * maxT * hs;
    float *vl = c->v + (size_t)l * c->B * NH * maxT * hs;
    /* Cache every row's key and value first so rows of one prefill see
     * each other. */
#pragma omp parallel for schedule(static) if ((size_t)n * C >= PAR_MIN)
    for (int r = 0; r < n; r++) {
        const float *q = c->qkv + (size_t)r * 3 * C;
        for (int h = 0; h < NH; h++) {
            size_t off = (((size_t)seq[r] * NH + h) * maxT + pos[r]) * hs;
            memcpy(kl + off, q + C + h * hs, (size_t)hs * sizeof(float));
            memcpy(vl + off, q + 2 * C + h * hs, (size_t)hs * sizeof(float));
        }
    }
    size_t work = 0;
    for (int r = 0; r < n; r++) work += (size_t)(pos[r] + 1) * C;
#pragma omp parallel for collapse(2) schedule(static) if (work >= PAR_MIN)
    for (int r = 0; r < n; r++) {
        for (int h = 0; h < NH; h++) {
            const float *q = c->qkv + (size_t)r * 3 * C + h * hs;
            const float *kh = kl + ((size_t)seq[r] * NH + h) * maxT * hs;
            const float *vh = vl + ((size_t)seq[r] * NH + h) * maxT * hs;
            float *a = c->att + ((size_t)r * NH + h) * maxT;
            int T = pos[r] + 1;
            attend_head(c->atty + (size_t)r * C + h * hs, a, q, kh, vh, T, hs, scale);
        }
    }
}

/* tanh-GELU via 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)): the same function
 * as the forward's tanhf form up to rounding, at a fraction of the cost. */
static void gelu_rows(float *x, size_t n) {
    const float s2pi = sqrtf(2.0f / (float)M_PI);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = s2pi * (v + 0.044715f * v * v * v);
        x[i] = v / (1.0f + expf(-2.0f * u));
    }
}

static void residual_add(float *x, const float *d, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] += d[i];
}

int gkd_decode_rows(gkd_model *m, gkd_kv_cache *c, int n, const int *seq, const int *pos,
                    const int *tok, const int *out_row, float *logits) {
    if (n == 0) return 0;
    const gkd_model_config *cfg = &m->config;
    if (cfg->n_layer != c->L || cfg->n_embd != c->C || cfg->n_head != c->NH ||
        cfg->max_seq_len != c->maxT || cfg->vocab_size != c->V)
        return gkd_error(GKD_EMISMATCH, "decode: the KV cache was made for another model shape");
    const int C = c->C, V = c->V, L = c->L;
    for (int r = 0; r < n; r++) {
        if (seq[r] < 0 || seq[r] >= c->B)
            return gkd_error(GKD_EINVAL, "decode: sequence %d outside the cache (B=%d)", seq[r], c->B);
        if (pos[r] < 0 || pos[r] >= c->maxT)
            return gkd_error(GKD_EINVAL, "decode: position %d outside the context (maxT=%d)", pos[r],
                             c->maxT);
        if (tok[r] < 0 || tok[r] >= V)
            return gkd_error(GKD_EINVAL, "decode: token %d outside the vocabulary (V=%d)", tok[r], V);
    }
    int rc = ensure_rows(c, n);
    if (rc) return rc;
    const gkd_params *p = &m->params;

#pragma omp parallel for schedule(static) if ((size_t)n * C >= PAR_MIN)
    for (int r = 0; r < n; r++) {
        const float *te = p->wte + (size_t)tok[r] * C, *pe = p->wpe + (size_t)pos[r] * C;
        float *x = c->x + (size_t)r * C;
        for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
    }
    for (int l = 0; l < L; l++) {
        size_t lc = (size_t)l * C;
        layernorm_rows(c->xn, c->x, p->ln1w + lc, p->ln1b + lc, n, C);
        matmul_rows(c->qkv, c->xn, p->qkvw + lc * 3 * C, p->qkvb + lc * 3, n, C, 3 * C);
        attention_rows(c, l, n, seq, pos);
        matmul_rows(c->tmp, c->atty, p->attprojw + lc * C, p->attprojb + lc, n, C, C);
        residual_add(c->x, c->tmp, (size_t)n * C);
        layernorm_rows(c->xn, c->x, p->ln2w + lc, p->ln2b + lc, n, C);
        matmul_rows(c->h, c->xn, p->fcw + lc * 4 * C, p->fcb + lc * 4, n, C, 4 * C);
        gelu_rows(c->h, (size_t)n * 4 * C);
        matmul_rows(c->tmp, c->h, p->fcprojw + lc * 4 * C, p->fcprojb + lc, n, 4 * C, C);
        residual_add(c->x, c->tmp, (size_t)n * C);
    }
    /* Only rows that want logits pay for the final LayerNorm and LM head. */
    int nout = 0;
    for (int r = 0; r < n; r++)
        if (out_row && out_row[r] >= 0) c->out_idx[nout++] = r;
    if (nout == 0) return 0;
    for (int j = 0; j < nout; j++)
        memcpy(c->tmp + (size_t)j * C, c->x + (size_t)c->out_idx[j] * C, (size_t)C * sizeof(float));
    layernorm_rows(c->xn, c->tmp, p->lnfw, p->lnfb, nout, C);
    matmul_rows(c->lg, c->xn, p->wte, NULL, nout, C, V);
    for (int j = 0; j < nout; j++)
        memcpy(logits + (size_t)out_row[c->out_idx[j]] * V, c->lg + (size_t)j * V,
               (size_t)V * sizeof(float));
    return 0;
}

int gkd_model_decode_step(gkd_model *m, gkd_kv_cache *c, const int *tokens, const int *pos,
                          const unsigned char *active, int B, float *logits_out) {
    if (!m || !c || !tokens || !pos || !logits_out)
        return gkd_error(GKD_EINVAL, "decode step: NULL argument");
    if (B <= 0 || B > c->B)
        return gkd_error(GKD_EINVAL, "decode step: B=%d outside 1..%d (the cache's batch)", B, c->B);
    int *idx = malloc((size_t)B * 3 * sizeof(int));
    if (!idx) return gkd_error(GKD_ENOMEM, "decode step: out of memory");
    int *seq = idx, *tk = idx + B, *ps = idx + 2 * B;
    int n = 0;
    for (int b = 0; b < B; b++) {
        if (active && !active[b]) continue;
        seq[n] = b;
        tk[n] = tokens[b];
        ps[n] = pos[b];
        n++;
    }
    /* out_row = sequence index, so logits land in row b of logits_out. */
    int rc = gkd_decode_rows(m, c, n, seq, ps, tk, seq, logits_out);
    free(idx);
    return rc;
}
