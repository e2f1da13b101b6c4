/* Incremental decoding with a per-layer KV cache.
 *
 * Dimensions as in model.h: B sequences in the cache, n rows in one call,
 * C channels, NH heads, NKV key/value heads, hs = C/NH, KV = NKV hs, L
 * layers, maxT context, V vocabulary, F the MLP's hidden width. The cache
 * holds, per layer, K transposed in blocks of TVEC positions,
 * (B, Tp/TVEC, KV, TVEC), so the scores of a block of positions are one
 * vector operation per channel and a query reads a sequence's keys, all
 * heads, as one contiguous run of memory, and V position-major,
 * (B, maxT, KV), so one query's weighted sum runs over all heads at once.
 * Tp is maxT rounded up to a whole vector of positions.
 *
 * Each layer runs the descriptor's block operations (arch.h) in order, as
 * gkd_model_forward does, row by row, so the logits of position p equal those of a full
 * forward over the same prefix up to float rounding. Matrix products batch
 * the rows of a range into one call per weight matrix, with a fixed
 * summation order per element, unlike sgemm, so a row's logits do not
 * depend on the other rows of the batch: one fused multiply-add chain on
 * the cache's copy of the weights (decode_matmul.c, the arithmetic of
 * gkd_gemm) on every instruction set. Every stage writes each output
 * from one thread, so results do not depend on how threads share a call
 * (gkd_decode_rows) or on their number. Every vectorized loop here
 * (LayerNorm statistics, attention scores, softmax scans, weighted sums,
 * exp via vexpf.c) performs, per
 * output element, the same operations in the same order as the plain
 * scalar loops it replaced; tests/test_decode.c pins the logits bits. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "decode_matmul.h"
#include "decode_rows.h"
#include "kernels/hugepage.h"
#include "kernels/vexpf.h"
#include "gkd/error.h"
#include "gkd/layers.h"
#include "gkd/model.h"

#define LN_EPS 1e-5
/* Below this many multiply-adds in the QKV product a call runs on one
 * thread: at tiny sizes starting the team costs more than the work. Only
 * speed depends on it. */
#define PAR_WORK 65536
/* Most ranges one call is split into (threads that share the rows). */
#define MAX_PARTS GKD_PACE_MAX
/* Rows are shared among threads by sequence when each thread gets at
 * least this many rows, or the layers' weights take at most
 * SMALL_WEIGHTS bytes (see gkd_decode_rows). Only speed depends on them. */
#define ROWS_PER_THREAD 64
#define SMALL_WEIGHTS ((size_t)4 << 20)
/* How far ahead (floats: 8 KiB) attention prefetches the keys and values.
 * A step's keys and values mostly come from DRAM; the prefetch made a
 * row's attention about 20% faster there (5.3 against 6.5 us over 96
 * positions) and costs about 10% when they are in cache. */
#define KV_AHEAD 2048
/* Positions per vector in the attention scores. */
#define TVEC 16

struct gkd_kv_cache {
    int arch, B, L, NH, NKV, maxT, hs, C, V;
    int KV, QKV, F; /* key/value channels, q-k-v product width, MLP width */
    gkd_dm_layout lo; /* where the weights' copy keeps each matrix */
    int Tp;   /* maxT rounded up to a multiple of TVEC */
    float *k; /* (L, B, Tp/TVEC, KV, TVEC) keys, transposed per block */
    float *v; /* (L, B, maxT, KV) values */
    /* Row scratch, grown on demand to cap_rows rows. */
    int cap_rows;
    float *x;    /* (n, C) residual stream */
    float *xn;   /* (n, C) norm output */
    float *qkv;  /* (n, QKV) */
    float *atty; /* (n, C) attention output before projection */
    float *tmp;  /* (n, C) projection output */
    float *h;    /* (n, F) MLP hidden */
    float *gu;   /* (n, 2F) SwiGLU gate and up (NULL for GELU MLPs) */
    int swiglu;  /* the block has a SwiGLU MLP */
    float *att;  /* (threads, NH, Tp) attention weights of the row a thread attends */
    int att_threads;
    float *lg;   /* (n, V) logits of rows that want them */
    int *out_idx;/* (n) rows that want logits */
    int one_row_per_seq; /* this call has at most one row per sequence */
    /* The model's weights in panels (decode_matmul.h), taken when a call
     * starts a sequence, and one row scratch per thread. */
    float *wt;
    int wt_ready;
    float *xp;
    int xp_threads;
    size_t xp_floats; /* per thread */
    /* Each thread's measured speed (pace.h): rows per second in calls
     * split by rows, and shares of each stage in calls run by stages. */
    gkd_pace row_pace, pace;
};

int gkd_kv_cache_batch(const gkd_kv_cache *c) { return c->B; }

int gkd_kv_cache_new(gkd_kv_cache **out, const gkd_model *m, int B) {
    *out = NULL;
    if (!m || B <= 0) return gkd_error(GKD_EINVAL, "kv cache: need a model and B > 0 (got %d)", B);
    const gkd_model_config *cfg = &m->config;
    gkd_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return gkd_error(GKD_ENOMEM, "kv cache: out of memory");
    c->arch = cfg->arch;
    c->B = B;
    c->L = cfg->n_layer;
    c->NH = cfg->n_head;
    c->NKV = gkd_config_kv_heads(cfg);
    c->maxT = cfg->max_seq_len;
    c->C = cfg->n_embd;
    c->hs = cfg->n_embd / cfg->n_head;
    c->KV = c->NKV * c->hs;
    c->QKV = (int)gkd_config_dim(cfg, GKD_DIM_QKV);
    c->F = gkd_config_ffn_dim(cfg);
    for (int k = 0; k < m->arch->n_block_ops; k++)
        if (m->arch->block[k].kind == GKD_OP_MLP_SWIGLU) c->swiglu = 1;
    c->V = cfg->vocab_size;
    c->Tp = (c->maxT + TVEC - 1) / TVEC * TVEC;
    size_t n = (size_t)c->L * B * c->Tp * c->KV;
    /* What a step reads (keys, values, weights in panels), on 2 MiB pages. */
    c->k = gkd_huge_calloc(n * sizeof(float));
    c->v = gkd_huge_calloc(n * sizeof(float));
    if (!c->k || !c->v) {
        gkd_kv_cache_free(c);
        return gkd_error(GKD_ENOMEM, "kv cache: out of memory for %zu floats", 2 * n);
    }
    gkd_dm_layout_of(&c->lo, cfg);
    c->wt = gkd_huge_calloc(c->lo.floats * sizeof(float));
    if (!c->wt) {
        gkd_kv_cache_free(c);
        return gkd_error(GKD_ENOMEM, "kv cache: out of memory for the decoding weights (%zu floats)",
                         c->lo.floats);
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
    free(c->gu);
    free(c->lg);
    free(c->out_idx);
    c->x = c->xn = c->qkv = c->atty = c->tmp = c->h = c->gu = c->lg = NULL;
    c->out_idx = NULL;
    c->cap_rows = 0;
}

void gkd_kv_cache_free(gkd_kv_cache *c) {
    if (!c) return;
    free_scratch(c);
    free(c->k);
    free(c->v);
    free(c->wt);
    free(c->xp);
    free(c->att);
    free(c);
}

static int ensure_rows(gkd_kv_cache *c, int n) {
    if (n <= c->cap_rows) return 0;
    free_scratch(c);
    size_t r = (size_t)n, C = (size_t)c->C;
    c->x = malloc(r * C * sizeof(float));
    c->xn = malloc(r * C * sizeof(float));
    c->qkv = malloc(r * (size_t)c->QKV * sizeof(float));
    c->atty = malloc(r * C * sizeof(float));
    c->tmp = malloc(r * C * sizeof(float));
    c->h = malloc(r * (size_t)c->F * sizeof(float));
    if (c->swiglu) c->gu = malloc(r * 2 * (size_t)c->F * sizeof(float));
    c->lg = malloc(r * (size_t)c->V * sizeof(float));
    c->out_idx = malloc(r * sizeof(int));
    if (!c->x || !c->xn || !c->qkv || !c->atty || !c->tmp || !c->h || !c->lg ||
        !c->out_idx || (c->swiglu && !c->gu)) {
        free_scratch(c);
        return gkd_error(GKD_ENOMEM, "kv cache: out of memory for %d rows", n);
    }
    c->cap_rows = n;
    return 0;
}

/* *buf: one block of `floats` floats (whole cache lines, 64-byte aligned)
 * for each of up to `threads` threads, *have of them held; grown on
 * demand. */
static int per_thread_buffer(float **buf, int *have, int threads, size_t floats, const char *what) {
    if (threads <= *have) return 0;
    free(*buf);
    *buf = aligned_alloc(64, (size_t)threads * floats * sizeof(float));
    *have = *buf ? threads : 0;
    return *buf ? 0 : gkd_error(GKD_ENOMEM, "kv cache: out of memory for %d threads' %s", threads, what);
}

/* Attention weights of one row per thread: a thread attends its rows one
 * after another, so its weights stay in cache (NH Tp floats: Tp is whole
 * vectors of 16). */
static int ensure_att(gkd_kv_cache *c, int threads) {
    return per_thread_buffer(&c->att, &c->att_threads, threads, (size_t)c->NH * c->Tp, "attention");
}

/* One product row scratch per thread (decode_matmul.h). */
static int ensure_thread_scratch(gkd_kv_cache *c, int threads) {
    const int widest = c->F > c->C ? c->F : c->C; /* inputs of the widest product */
    c->xp_floats = (gkd_dm_scratch_floats(widest) + 15) / 16 * 16; /* whole cache lines */
    return per_thread_buffer(&c->xp, &c->xp_threads, threads, c->xp_floats, "product scratch");
}

typedef double v8d __attribute__((vector_size(64)));

#define ROWS8(x, i) \
    {x[0][i], x[1][i], x[2][i], x[3][i], x[4][i], x[5][i], x[6][i], x[7][i]}

/* Mean and 1/std of eight rows at once, lane j being row x[j]: each lane
 * runs the serial double sums of the one-row form (as in layers.c), so the
 * bits are the same while eight dependency chains overlap. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
layernorm_stats8(float *mean, float *rstd, const float *const *x, int C) {
    v8d s = {0};
    for (int i = 0; i < C; i++) {
        v8d xi = ROWS8(x, i);
        s += xi;
    }
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = (float)(s[j] / C);
    v8d mv = {m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]};
    v8d var = {0};
    for (int i = 0; i < C; i++) {
        v8d xi = ROWS8(x, i);
        v8d d = xi - mv;
        var += d * d;
    }
    for (int j = 0; j < 8; j++) {
        mean[j] = m[j];
        rstd[j] = (float)(1.0 / sqrt(var[j] / C + LN_EPS));
    }
}

/* x = the token's embedding plus, with learned positions, the position's. */
static void embed_row(float *x, const float *wte, const float *wpe, int tok, int pos, int C) {
    const float *a = wte + (size_t)tok * C;
    if (!wpe) {
        memcpy(x, a, (size_t)C * sizeof(float));
        return;
    }
    const float *b = wpe + (size_t)pos * C;
    for (int i = 0; i < C; i++) x[i] = a[i] + b[i];
}

/* LayerNorm of rows [8g, 8g + 8) (fewer in the last group). */
static void layernorm_group(float *out, const float *inp, const float *w, const float *b, int n,
                            int C, int g) {
    const float *x[8];
    float mean[8], rstd[8];
    int r0 = 8 * g, nr = n - r0 < 8 ? n - r0 : 8;
    /* Missing rows of the last group repeat its first row. */
    for (int j = 0; j < 8; j++) x[j] = inp + (size_t)(r0 + (j < nr ? j : 0)) * C;
    layernorm_stats8(mean, rstd, x, C);
    for (int j = 0; j < nr; j++) {
        float *o = out + (size_t)(r0 + j) * C;
        const float *xr = x[j], m = mean[j], rs = rstd[j];
        for (int i = 0; i < C; i++) o[i] = (xr[i] - m) * rs * w[i] + b[i];
    }
}

/* LayerNorm of n rows; team: shared by the enclosing team, whose pace
 * ends the stage. */
static void layernorm_rows(float *out, const float *inp, const float *w, const float *b, int n,
                           int C, gkd_pace *team) {
    int ng = (n + 7) / 8;
    if (team) {
#pragma omp for schedule(static) nowait
        for (int g = 0; g < ng; g++) layernorm_group(out, inp, w, b, n, C, g);
        gkd_pace_stage_end(team);
    } else {
        for (int g = 0; g < ng; g++) layernorm_group(out, inp, w, b, n, C, g);
    }
}


typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

#define LOADV(p) (*(const v8u *)(p))

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LOAD16(p) (*(const v16u *)(p))
#define SPLAT16(f) ((v16){f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f})

/* y (hs) = sum_t a[t] v[t] (v rows ldv apart), each y[i] accumulated from
 * 0 in order t = 0..T-1 whatever the chunking; the accumulators stay in
 * registers rather than round-tripping through y. */
static inline __attribute__((always_inline)) void weighted_sum(float *restrict y, const float *restrict a, const float *restrict v, int T,
                         int hs, int ldv) {
    int i = 0;
    for (; i + 32 <= hs; i += 32) {
        v8 y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0};
        for (int t = 0; t < T; t++) {
            const float *vt = v + (size_t)t * ldv + i;
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
            y0 += wv * LOADV(v + (size_t)t * ldv + i);
        }
        *(v8u *)(y + i) = y0;
    }
    for (; i < hs; i++) {
        float acc = 0.0f;
        for (int t = 0; t < T; t++) acc += a[t] * v[(size_t)t * ldv + i];
        y[i] = acc;
    }
}

/* Scores of one query against positions 0..T-1 of every head, kt the
 * sequence's keys (Tp/TVEC, KV, TVEC), query head h reading key head
 * h / group, block by block so the keys are read
 * in order: a_h[t] (at att + h Tp) = dot(q_h, k_{h,t}) * scale, where dot
 * is eight lane sums over i = j (mod 8), the tree
 * ((s0+s4)+(s2+s6))+((s1+s5)+(s3+s7)), then the tail in order. Vector
 * lanes are positions, so each lane does exactly that sequence; a_h is
 * written up to T rounded up to TVEC. */
static inline __attribute__((always_inline)) void scores(float *att, const float *q, const float *kt, int T, int NH,
                                                        int hs, int Tp, float scale, int KV, int group) {
    const int K8 = hs & ~7;
    for (int t0 = 0; t0 < T; t0 += TVEC)
        for (int h = 0; h < NH; h++) {
            const float *qh = q + h * hs;
            v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
            const float *k = kt + (size_t)t0 * KV + (size_t)(h / group) * hs * TVEC;
            for (int i = 0; i < K8; i += 8, k += 8 * TVEC) {
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) __builtin_prefetch(k + KV_AHEAD + j * TVEC);
                s0 += SPLAT16(qh[i]) * LOAD16(k);
                s1 += SPLAT16(qh[i + 1]) * LOAD16(k + TVEC);
                s2 += SPLAT16(qh[i + 2]) * LOAD16(k + 2 * TVEC);
                s3 += SPLAT16(qh[i + 3]) * LOAD16(k + 3 * TVEC);
                s4 += SPLAT16(qh[i + 4]) * LOAD16(k + 4 * TVEC);
                s5 += SPLAT16(qh[i + 5]) * LOAD16(k + 5 * TVEC);
                s6 += SPLAT16(qh[i + 6]) * LOAD16(k + 6 * TVEC);
                s7 += SPLAT16(qh[i + 7]) * LOAD16(k + 7 * TVEC);
            }
            v16 s = ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7));
            for (int i = K8; i < hs; i++, k += TVEC) s += SPLAT16(qh[i]) * LOAD16(k);
            *(v16u *)(att + (size_t)h * Tp + t0) = s * SPLAT16(scale);
        }
}

typedef int v8i __attribute__((vector_size(32)));

#define HEADS8(p, t) {p[0][t], p[1][t], p[2][t], p[3][t], p[4][t], p[5][t], p[6][t], p[7][t]}

/* A two-vector shuffle by constant lanes (0-7 from a, 8-15 from b), in the
 * builtin both GCC (12 and later) and clang accept; older GCC has only
 * __builtin_shuffle, which takes the same lanes as a vector. */
#if defined(__clang__) || __GNUC__ >= 12
#define SHUFFLE8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE8(a, b, ...) __builtin_shuffle(a, b, (v8i){__VA_ARGS__})
#endif

/* c[i] lane j = r[j] lane i: eight positions of eight heads become eight
 * vectors of heads, one per position (an 8 x 8 transpose). */
static inline __attribute__((always_inline)) void transpose8(v8 *c, const v8 *r) {
#define LO 0, 8, 1, 9, 4, 12, 5, 13
#define HI 2, 10, 3, 11, 6, 14, 7, 15
#define LO2 0, 1, 8, 9, 4, 5, 12, 13
#define HI2 2, 3, 10, 11, 6, 7, 14, 15
#define LO4 0, 1, 2, 3, 8, 9, 10, 11
#define HI4 4, 5, 6, 7, 12, 13, 14, 15
    v8 t[8], u[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = SHUFFLE8(r[j], r[j + 1], LO);
        t[j + 1] = SHUFFLE8(r[j], r[j + 1], HI);
    }
    for (int j = 0; j < 8; j += 4) {
        u[j] = SHUFFLE8(t[j], t[j + 2], LO2);
        u[j + 1] = SHUFFLE8(t[j], t[j + 2], HI2);
        u[j + 2] = SHUFFLE8(t[j + 1], t[j + 3], LO2);
        u[j + 3] = SHUFFLE8(t[j + 1], t[j + 3], HI2);
    }
    for (int i = 0; i < 4; i++) {
        c[i] = SHUFFLE8(u[i], u[i + 4], LO4);
        c[i + 4] = SHUFFLE8(u[i], u[i + 4], HI4);
    }
#undef LO
#undef HI
#undef LO2
#undef HI2
#undef LO4
#undef HI4
}

/* Positions [t, t + 8) of the eight heads p[0..7], one vector of heads per
 * position. */
static inline __attribute__((always_inline)) void heads_at(v8 *c, float *const *p, int t) {
    v8 r[8];
    for (int j = 0; j < 8; j++) r[j] = LOADV(p[j] + t);
    transpose8(c, r);
}

/* mx = x where x > mx (the serial scan's "if (x > max) max = x"). */
#define MAX_STEP(mx, x)                                    \
    do {                                                   \
        v8 x_ = (x);                                       \
        v8i gt_ = x_ > (mx);                               \
        (mx) = (v8)(((v8i)x_ & gt_) | ((v8i)(mx) & ~gt_)); \
    } while (0)

/* Softmax over a_h[0..T-1] in place for the heads of one row, a_h at
 * att + h Tp. Each head's max and sum are serial scans in t as in the
 * one-head form; eight heads share a vector (lane = head) so the scans'
 * dependency chains overlap, and eight positions at a time come in by
 * one transpose. The elementwise steps run 16 positions per vector. */
static inline __attribute__((always_inline)) void softmax_heads(float *att, int NH, int T, int Tp) {
    for (int h0 = 0; h0 < NH; h0 += 8) {
        int nh = NH - h0 < 8 ? NH - h0 : 8;
        float *p[8];
        /* Missing heads of the last group repeat its first head. */
        for (int j = 0; j < 8; j++) p[j] = att + (size_t)(h0 + (j < nh ? j : 0)) * Tp;
        v8 mx = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        int t = 0;
        for (; t + 8 <= T; t += 8) {
            v8 c[8];
            heads_at(c, p, t);
            for (int i = 0; i < 8; i++) MAX_STEP(mx, c[i]);
        }
        for (; t < T; t++) MAX_STEP(mx, (v8)HEADS8(p, t));
        for (int j = 0; j < nh; j++) {
            float *a = p[j], m = mx[j];
            for (t = 0; t + 16 <= T; t += 16) *(v16u *)(a + t) = LOAD16(a + t) - SPLAT16(m);
            for (; t < T; t++) a[t] -= m;
            gkd_vexpf(a, a, T);
        }
        v8 sum = {0};
        for (t = 0; t + 8 <= T; t += 8) {
            v8 c[8];
            heads_at(c, p, t);
            for (int i = 0; i < 8; i++) sum += c[i];
        }
        for (; t < T; t++) sum += (v8)HEADS8(p, t);
        for (int j = 0; j < nh; j++) {
            float *a = p[j], inv = sum[j] == 0.0f ? 0.0f : 1.0f / sum[j];
            for (t = 0; t + 16 <= T; t += 16) *(v16u *)(a + t) = LOAD16(a + t) * SPLAT16(inv);
            for (; t < T; t++) a[t] *= inv;
        }
    }
}

/* y[i0 .. i0 + 16 nv) = sum_t a_h[t] v[t][i], each lane accumulated from 0
 * in order t = 0..T-1, a_h the head of the lane (att + h Tp; hs a multiple
 * of 16); nv is a constant, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void weighted_vectors(float *y, const float *att,
                                                                   const float *v, int T, int hs,
                                                                   int Tp, int C, int i0,
                                                                   const int nv) {
    const float *a[16];
    v16 acc[16];
#pragma GCC unroll 16
    for (int j = 0; j < nv; j++) {
        a[j] = att + (size_t)((i0 + 16 * j) / hs) * Tp;
        acc[j] = (v16){0};
    }
    const float *vt = v + i0;
    for (int t = 0; t < T; t++, vt += C) {
#pragma GCC unroll 16
        for (int j = 0; j < nv; j++) __builtin_prefetch(vt + KV_AHEAD + 16 * j);
#pragma GCC unroll 16
        for (int j = 0; j < nv; j++) acc[j] += SPLAT16(a[j][t]) * LOAD16(vt + 16 * j);
    }
#pragma GCC unroll 16
    for (int j = 0; j < nv; j++) *(v16u *)(y + i0 + 16 * j) = acc[j];
}

/* One query row against its sequence's cache: y (C) over all heads, query
 * head h reading key/value head h / group (KV channels per position).
 * Compiled for AVX-512, AVX2 and generic x86-64; all do the same per-lane
 * operations (ISO C mode: no FMA contraction), so the bits agree. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
attend_row(float *y, float *att, const float *q, const float *kt, const float *v, int T, int NH,
           int hs, int Tp, float scale, int KV, int group) {
    const int C = NH * hs;
    scores(att, q, kt, T, NH, hs, Tp, scale, KV, group);
    softmax_heads(att, NH, T, Tp);
    if (hs % 16 || group > 1) {
        for (int h = 0; h < NH; h++)
            weighted_sum(y + h * hs, att + (size_t)h * Tp, v + (h / group) * hs, T, hs, KV);
        return;
    }
    /* Heads are whole vectors: every lane of y[i0 .. i0+15] has weight
     * a_h[t] of one head. Sixteen vectors per pass read each row of V
     * (C = 256) in one run, in order t = 0..T-1; eight keep the adds of
     * independent lanes in flight. */
    int i0 = 0;
    for (; i0 + 256 <= C; i0 += 256) weighted_vectors(y, att, v, T, hs, Tp, C, i0, 16);
    for (; i0 + 128 <= C; i0 += 128) weighted_vectors(y, att, v, T, hs, Tp, C, i0, 8);
    for (; i0 < C; i0 += 16) weighted_vectors(y, att, v, T, hs, Tp, C, i0, 1);
}

/* Rotates row r's query and key heads (when the model uses rotary
 * positions), then writes its key and value into the cache. */
static void cache_row(gkd_kv_cache *c, const gkd_model *m, int l, int r, const int *seq,
                      const int *pos) {
    const int C = c->C, KV = c->KV, Tp = c->Tp, p = pos[r];
    float *row = c->qkv + (size_t)r * c->QKV;
    if (m->arch->rope) {
        const size_t half = (size_t)c->hs / 2;
        gkd_rope_row(row, m->rope_cos + p * half, m->rope_sin + p * half, c->NH + c->NKV, c->hs,
                     m->config.rope_style);
    }
    const float *key = row + C;
    /* Position p: block p / TVEC, lane p % TVEC of every channel. */
    float *kt = c->k + ((size_t)l * c->B + seq[r]) * Tp * KV + (size_t)(p / TVEC) * KV * TVEC + p % TVEC;
    for (int i = 0; i < KV; i++) kt[(size_t)i * TVEC] = key[i];
    memcpy(c->v + (((size_t)l * c->B + seq[r]) * c->maxT + p) * KV, key + KV,
           (size_t)KV * sizeof(float));
}

static void attend_cached(gkd_kv_cache *c, int l, int r, const int *seq, const int *pos) {
    const int NH = c->NH, hs = c->hs, C = c->C, KV = c->KV, Tp = c->Tp;
    attend_row(c->atty + (size_t)r * C, c->att + (size_t)omp_get_thread_num() * NH * Tp,
               c->qkv + (size_t)r * c->QKV,
               c->k + ((size_t)l * c->B + seq[r]) * Tp * KV,
               c->v + ((size_t)l * c->B + seq[r]) * c->maxT * KV, pos[r] + 1, NH, hs, Tp,
               1.0f / sqrtf((float)hs), KV, NH / c->NKV);
}

/* Attention of rows [r0, r1) of layer l. Every row's key and value go into
 * the cache first, so rows of one prefill see each other. When no two rows
 * share a sequence (a decode step), a row reads only what it wrote itself
 * and earlier calls wrote, so each thread caches and attends its own rows
 * with no barrier in between. */
static void attention_rows(gkd_kv_cache *c, const gkd_model *m, int l, int r0, int r1,
                           const int *seq, const int *pos, gkd_pace *team) {
    if (team) {
        int i0, i1;
        gkd_pace_range(team, r1 - r0, omp_get_num_threads(), omp_get_thread_num(), &i0, &i1);
        if (c->one_row_per_seq) {
            for (int r = r0 + i0; r < r0 + i1; r++) {
                cache_row(c, m, l, r, seq, pos);
                attend_cached(c, l, r, seq, pos);
            }
        } else {
            for (int r = r0 + i0; r < r0 + i1; r++) cache_row(c, m, l, r, seq, pos);
            gkd_pace_stage_end(team);
            for (int r = r0 + i0; r < r0 + i1; r++) attend_cached(c, l, r, seq, pos);
        }
        gkd_pace_stage_end(team);
    } else {
        for (int r = r0; r < r1; r++) cache_row(c, m, l, r, seq, pos);
        for (int r = r0; r < r1; r++) attend_cached(c, l, r, seq, pos);
    }
}

/* The stages below run either shared by the enclosing team (team: its
 * pace, which splits each stage's items by the threads' measured speeds
 * and ends each stage with a barrier) or on the calling thread alone
 * (team NULL), which cannot use a worksharing loop inside the row-split
 * region: it would bind to that region's team. A team of one per range
 * (a nested parallel region) avoids the duplicated loops but measured 10%
 * slower on the tiny decode benchmark. A product reads the weights' copy
 * in panels (wt). */
static void matmul(gkd_kv_cache *c, float *out, const float *inp, const float *wt, const float *bias,
                   int n, int IC, int OC, gkd_dm_epilogue ep, float *res, gkd_pace *team) {
    gkd_dm_matmul(out, inp, wt, bias, n, IC, OC, ep, res, team != NULL, team,
                  c->xp + (size_t)omp_get_thread_num() * c->xp_floats);
    if (team) gkd_pace_stage_end(team);
}

/* RMSNorm of rows [r0, r1) by gkd_rmsnorm_forward, whose arithmetic is
 * each row's own (inside a team its parallel loop runs on one thread). */
static void rmsnorm_range(float *out, const float *inp, const float *w, float eps, int r0, int r1,
                          int C) {
    if (r1 > r0)
        gkd_rmsnorm_forward(out + (size_t)r0 * C, NULL, inp + (size_t)r0 * C, w, eps, r1 - r0, C);
}

/* The norm op `op` of layer l (or the final norm) on n rows. */
static void norm_rows(float *out, const float *inp, const gkd_model *m, const gkd_block_op *op,
                      int l, int n, gkd_pace *team) {
    const int C = m->config.n_embd;
    const float *w = gkd_model_slice(m, op->w, l);
    if (op->kind == GKD_OP_LAYERNORM) {
        layernorm_rows(out, inp, w, gkd_model_slice(m, op->b, l), n, C, team);
        return;
    }
    const float eps = m->config.norm_eps;
    if (team) {
        int i0, i1;
        gkd_pace_range(team, n, omp_get_num_threads(), omp_get_thread_num(), &i0, &i1);
        rmsnorm_range(out, inp, w, eps, i0, i1, C);
        gkd_pace_stage_end(team);
    } else {
        rmsnorm_range(out, inp, w, eps, 0, n, C);
    }
}

/* h (n, F) = silu(gate) * up of gu (n, 2F), as gkd_swiglu_forward. */
static void swiglu_rows(float *h, const float *gu, int n, int F, gkd_pace *team) {
    if (team) {
        int i0, i1;
        gkd_pace_range(team, n, omp_get_num_threads(), omp_get_thread_num(), &i0, &i1);
        if (i1 > i0) gkd_swiglu_forward(h + (size_t)i0 * F, gu + (size_t)i0 * 2 * F, i1 - i0, F);
        gkd_pace_stage_end(team);
    } else {
        gkd_swiglu_forward(h, gu, n, F);
    }
}

/* Rows [r0, r1) through every layer and, for the nout rows listed in
 * out_idx[r0 ..], the LM head. team: the enclosing team shares every stage
 * by the cache's pace (a barrier between stages); otherwise the calling
 * thread does it all,
 * and the range must hold whole sequences, so that no other thread touches
 * the cache entries it reads and writes. */
static void decode_range(gkd_kv_cache *c, const gkd_model *m, int r0, int r1, int nout,
                         const int *seq, const int *pos, const int *tok, const int *out_row,
                         float *logits, int by_stages) {
    const gkd_arch *arch = m->arch;
    const float *wte = m->params[arch->wte], *wpe = arch->wpe < 0 ? NULL : m->params[arch->wpe];
    const int C = c->C, V = c->V, L = c->L, F = c->F, n = r1 - r0;
    const size_t o = (size_t)r0 * C; /* offset of row r0 in (rows, C) scratch */
    gkd_pace *team = by_stages ? &c->pace : NULL;
    if (team) {
        gkd_pace_start(team);
#pragma omp for schedule(static) nowait
        for (int r = r0; r < r1; r++) embed_row(c->x + (size_t)r * C, wte, wpe, tok[r], pos[r], C);
        gkd_pace_stage_end(team);
    } else {
        for (int r = r0; r < r1; r++) embed_row(c->x + (size_t)r * C, wte, wpe, tok[r], pos[r], C);
    }
    const int *idx = c->out_idx + r0;
    /* Past the last layer's keys and values, a row matters only if it
     * wants logits. When one thread runs the range (a prefill), the rest
     * of the last layer runs on those rows alone, moved to rows r0 ..
     * r0 + nout - 1 (each row's arithmetic is its own, so their bits do
     * not change). */
    const int trim = nout < n && (!team || omp_get_num_threads() == 1);
    int rows = n; /* rows the stages carry */
#define WT(tensor) gkd_dm_matrix(c->wt, &c->lo, l, tensor)
#define SL(tensor) gkd_model_slice(m, tensor, l)
    for (int l = 0; l < L; l++)
        for (int k = 0; k < arch->n_block_ops; k++) {
            const gkd_block_op *op = &arch->block[k];
            switch (op->kind) {
            case GKD_OP_LAYERNORM:
            case GKD_OP_RMSNORM:
                norm_rows(c->xn + o, c->x + o, m, op, l, rows, team);
                break;
            case GKD_OP_ATTENTION:
                matmul(c, c->qkv + (size_t)r0 * c->QKV, c->xn + o, WT(op->w), SL(op->b), n, C, c->QKV,
                       GKD_DM_STORE, NULL, team);
                if (trim && l == L - 1) {
                    for (int r = r0; r < r1; r++) cache_row(c, m, l, r, seq, pos);
                    if (nout == 0) return;
                    for (int j = 0; j < nout; j++) {
                        attend_cached(c, l, idx[j], seq, pos);
                        /* idx ascends, so row idx[j] >= r0 + j is not yet overwritten. */
                        if (idx[j] == r0 + j) continue;
                        memcpy(c->x + o + (size_t)j * C, c->x + (size_t)idx[j] * C, (size_t)C * sizeof(float));
                        memcpy(c->atty + o + (size_t)j * C, c->atty + (size_t)idx[j] * C, (size_t)C * sizeof(float));
                    }
                    rows = nout;
                } else {
                    attention_rows(c, m, l, r0, r1, seq, pos, team);
                }
                /* Residual adds (and GELU) run in the products' epilogues. */
                matmul(c, c->tmp + o, c->atty + o, WT(op->w2), SL(op->b2), rows, C, C,
                       GKD_DM_RESIDUAL, c->x + o, team);
                break;
            case GKD_OP_MLP_GELU:
                matmul(c, c->h + (size_t)r0 * F, c->xn + o, WT(op->w), SL(op->b), rows, C, F,
                       GKD_DM_GELU, NULL, team);
                matmul(c, c->tmp + o, c->h + (size_t)r0 * F, WT(op->w2), SL(op->b2), rows, F, C,
                       GKD_DM_RESIDUAL, c->x + o, team);
                break;
            case GKD_OP_MLP_SWIGLU:
                matmul(c, c->gu + (size_t)r0 * 2 * F, c->xn + o, WT(op->w), NULL, rows, C, 2 * F,
                       GKD_DM_STORE, NULL, team);
                swiglu_rows(c->h + (size_t)r0 * F, c->gu + (size_t)r0 * 2 * F, rows, F, team);
                matmul(c, c->tmp + o, c->h + (size_t)r0 * F, WT(op->w2), NULL, rows, F, C,
                       GKD_DM_RESIDUAL, c->x + o, team);
                break;
            }
        }
#undef SL
    if (nout == 0) return;
    /* Only rows that want logits pay for the final norm and LM head;
     * they are gathered into rows r0 .. r0 + nout - 1 of the scratch
     * (when trimmed they already are rows r0 .. of x). */
    float *lg = c->lg + (size_t)r0 * V;
    const float *head_in = trim ? c->x + o : c->tmp + o;
    if (!trim && team) {
#pragma omp for schedule(static) nowait
        for (int j = 0; j < nout; j++)
            memcpy(c->tmp + o + (size_t)j * C, c->x + (size_t)idx[j] * C, (size_t)C * sizeof(float));
        gkd_pace_stage_end(team);
    } else if (!trim) {
        for (int j = 0; j < nout; j++)
            memcpy(c->tmp + o + (size_t)j * C, c->x + (size_t)idx[j] * C, (size_t)C * sizeof(float));
    }
    norm_rows(c->xn + o, head_in, m, &arch->final_norm, 0, nout, team);
    const int l = L; /* the LM head follows the layers in the copy */
    matmul(c, lg, c->xn + o, WT(0), NULL, nout, C, V, GKD_DM_STORE, NULL, team);
#undef WT
    if (team) {
#pragma omp for schedule(static)
        for (int j = 0; j < nout; j++)
            memcpy(logits + (size_t)out_row[idx[j]] * V, lg + (size_t)j * V, (size_t)V * sizeof(float));
    } else {
        for (int j = 0; j < nout; j++)
            memcpy(logits + (size_t)out_row[idx[j]] * V, lg + (size_t)j * V, (size_t)V * sizeof(float));
    }
}

/* Splits rows [0, n) into at most max_parts ranges of whole sequences:
 * cut k sits at the sequence boundary nearest row n share_k (the later one
 * on a tie), where share_k is the sum of weight[0 .. k-1] over the sum of
 * all weights (even shares when weight is NULL); cut[0] = 0,
 * cut[parts] = n. Unless the rows are grouped by sequence (scan_rows),
 * everything is one range. */
static int split_rows(int *cut, int max_parts, int n, const int *seq, int grouped,
                      const double *weight) {
    cut[0] = 0;
    cut[1] = n;
    if (max_parts < 2 || n < 2 || !grouped) return 1;
    double total = 0.0, before = 0.0;
    for (int k = 0; k < max_parts; k++) total += weight ? weight[k] : 1.0;
    int parts = 1;
    for (int k = 1; k < max_parts; k++) {
        before += weight ? weight[k - 1] : 1.0;
        const double target = n * (before / total);
        int r = (int)target;
        if (r <= cut[parts - 1]) r = cut[parts - 1] + 1;
        int down = r, up = r;
        while (up < n && seq[up] == seq[up - 1]) up++;
        while (down > cut[parts - 1] + 1 && seq[down] == seq[down - 1]) down--;
        r = seq[down] != seq[down - 1] && target - down < up - target ? down : up;
        if (r >= n) break;
        cut[parts++] = r;
    }
    cut[parts] = n;
    return parts;
}

void gkd_kv_cache_set_stage_rates(gkd_kv_cache *c, int threads, const double *rate) {
    gkd_pace_set_rates(&c->pace, threads, rate);
}

void gkd_kv_cache_set_part_speeds(gkd_kv_cache *c, int parts, const double *speed) {
    gkd_pace_set_rates(&c->row_pace, parts, speed);
}

/* How the n rows use the cache's sequences: grouped, each sequence one run
 * of rows (a sequence that reappears after another breaks it); distinct,
 * no sequence twice (a decode step). Both 0 when the scratch cannot be
 * had: the general paths are always right. */
static void scan_rows(int n, const int *seq, int B, int *grouped, int *distinct) {
    *grouped = *distinct = 0;
    unsigned char *seen = calloc((size_t)B, 1);
    if (!seen) return;
    int g = 1, d = 1;
    for (int r = 0; r < n && g; r++) {
        if (seen[seq[r]]) {
            d = 0;
            g = seq[r] == seq[r - 1]; /* seen, so r > 0 */
        }
        seen[seq[r]] = 1;
    }
    free(seen);
    *grouped = g;
    *distinct = d;
}

int gkd_decode_rows(gkd_model *m, gkd_kv_cache *c, int n, const int *seq, const int *pos,
                    const int *tok, const int *out_row, float *logits) {
    if (n == 0) return 0;
    const gkd_model_config *cfg = &m->config;
    if (cfg->n_layer != c->L || cfg->n_embd != c->C || cfg->n_head != c->NH ||
        cfg->max_seq_len != c->maxT || cfg->vocab_size != c->V ||
        gkd_config_kv_heads(cfg) != c->NKV || gkd_config_ffn_dim(cfg) != c->F || cfg->arch != c->arch)
        return gkd_error(GKD_EMISMATCH, "decode: the KV cache was made for another model shape");
    const int C = c->C, V = c->V;
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
    if (!rc) rc = ensure_att(c, omp_get_max_threads());
    if (rc) return rc;
    if ((rc = ensure_thread_scratch(c, omp_get_max_threads()))) return rc;
    /* The weights are taken when a sequence starts: the keys and values
     * cached before came from the weights of then. */
    int starts = !c->wt_ready;
    for (int r = 0; r < n && !starts; r++) starts = pos[r] == 0;
    if (starts) gkd_dm_pack(c->wt, m);
    c->wt_ready = 1;
    int grouped;
    scan_rows(n, seq, c->B, &grouped, &c->one_row_per_seq);
    const int threads = (size_t)n * C * c->QKV >= PAR_WORK ? omp_get_max_threads() : 1;
    /* Two ways to share a call among threads, with the same bits. By rows:
     * each thread takes whole sequences through the whole model, one join
     * per call instead of a barrier per stage, but every thread reads all
     * the weights. By stages: threads split each product's outputs, so
     * the weights are read once, with a barrier per stage. Rows win when
     * each thread has many rows (a prefill) or the weights are small. */
    const size_t weight_bytes = (size_t)cfg->n_layer * c->lo.weights * sizeof(float);
    const int by_rows = threads > 1 && (n / threads >= ROWS_PER_THREAD || weight_bytes <= SMALL_WEIGHTS);
    int cut[MAX_PARTS + 1];
    const int want_parts = by_rows ? (threads < MAX_PARTS ? threads : MAX_PARTS) : 1;
    const int parts =
        split_rows(cut, want_parts, n, seq, grouped, gkd_pace_rates(&c->row_pace, want_parts));
    /* Rows that want logits, listed from the start of their range. */
    int nout[MAX_PARTS];
    for (int k = 0; k < parts; k++) {
        nout[k] = 0;
        for (int r = cut[k]; r < cut[k + 1]; r++)
            if (out_row && out_row[r] >= 0) c->out_idx[cut[k] + nout[k]++] = r;
    }
    if (parts > 1) {
        double seconds[MAX_PARTS];
#pragma omp parallel for schedule(static, 1) num_threads(parts)
        for (int k = 0; k < parts; k++) {
            const double t0 = omp_get_wtime();
            decode_range(c, m, cut[k], cut[k + 1], nout[k], seq, pos, tok, out_row, logits, 0);
            seconds[k] = omp_get_num_threads() == parts ? omp_get_wtime() - t0 : 0.0;
        }
        /* The cores of a shared machine often run at different speeds (one
         * measured 25% slower than the other for minutes at a time), so
         * even shares leave the faster thread waiting; a prefill comes once
         * per rollout, so each measurement weighs 1/2. Only speed depends
         * on it: a row's arithmetic is its own whatever range it is in. */
        if (parts == want_parts) {
            double rows[MAX_PARTS];
            for (int k = 0; k < parts; k++) rows[k] = cut[k + 1] - cut[k];
            gkd_pace_note(&c->row_pace, parts, rows, seconds, 0.5);
        }
    } else {
        gkd_pace_begin(&c->pace, threads);
#pragma omp parallel if (threads > 1)
        decode_range(c, m, 0, n, nout[0], seq, pos, tok, out_row, logits, 1);
        gkd_pace_end(&c->pace);
    }
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
