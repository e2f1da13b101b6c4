/* The decoder's products (see decode_matmul.h).
 *
 * More than 16 rows (a prefill) go through gkd_gemm_panels, which reads
 * the weight panels in place. With AVX-512, up to 16 rows (a decode step)
 * go through a 16 x 16 tile (8 x 32 for up to 8 rows): the rows, packed
 * input-major, are broadcast one value at a time against a register of 16
 * outputs, so each weight is read once per step however many rows there
 * are; on other instruction sets they go through gkd_gemm_panels too, the
 * threads sharing the outputs. All keep one fused multiply-add chain per
 * element, from zero over the inputs in order, then + bias. */
#include "decode_matmul.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "kernels/gelu.h"
#include "kernels/gemm.h"
#include "gkd/products.h"
#include "kernels/pack_rows.h"

#define TILE 16 /* rows and outputs of the small-row tile */
/* Below this many rows a product runs on tiles; above, on gkd_gemm. Only
 * speed depends on it. */
#define GEMM_FROM_ROWS 16

/* How far ahead of its loads the small-row tile prefetches weights: 8 KiB,
 * tuned on the small decode benchmark. A prefetch past the copy's end
 * is harmless (a hint, never a fault). */
#define PREFETCH_FLOATS 2048

#define AVX512_TARGET __attribute__((target("avx512f")))

/* Outputs of a matrix rounded up to whole pairs of panels (gkd_gemm_panels
 * reads two at a time). */
static size_t padded(size_t OC) { return (OC + 31) / 32 * 32; }

/* A layer's matrices follow one another in table order, each IC inputs by
 * its outputs padded to whole pairs of panels; the LM head follows the
 * layers. */
void gkd_dm_layout_of(gkd_dm_layout *out, const gkd_model_config *cfg) {
    const gkd_arch *a = gkd_arch_get(cfg->arch);
    memset(out, 0, sizeof *out);
    out->n_layer = cfg->n_layer;
    for (int i = 0; i < a->n_tensors; i++) {
        if (!a->tensors[i].decode_panels) continue;
        const size_t OC = gkd_config_dim(cfg, a->tensors[i].rows), IC = gkd_config_dim(cfg, a->tensors[i].cols);
        out->offset[i] = out->layer;
        out->layer += IC * padded(OC);
        out->weights += IC * OC;
    }
    out->floats = (size_t)cfg->n_layer * out->layer + (size_t)cfg->n_embd * padded((size_t)cfg->vocab_size);
}

size_t gkd_dm_floats(const gkd_model_config *cfg) {
    gkd_dm_layout lo;
    gkd_dm_layout_of(&lo, cfg);
    return lo.floats;
}

float *gkd_dm_matrix_at(float *wt, const gkd_model_config *cfg, int l, int tensor) {
    gkd_dm_layout lo;
    gkd_dm_layout_of(&lo, cfg);
    return gkd_dm_matrix(wt, &lo, l, tensor);
}

void gkd_dm_pack(float *wt, const gkd_model *m) {
    const gkd_model_config *cfg = &m->config;
    const gkd_arch *arch = m->arch;
    const int L = cfg->n_layer, C = cfg->n_embd, V = cfg->vocab_size;
    /* Jobs: one panel each, layer by layer (the matrices in table order),
     * the LM head last. */
    int mat[GKD_MAX_TENSORS], panels[GKD_MAX_TENSORS], nmat = 0, per_layer = 0;
    for (int i = 0; i < arch->n_tensors; i++)
        if (arch->tensors[i].decode_panels) {
            mat[nmat] = i;
            panels[nmat] = (int)padded(gkd_config_dim(cfg, arch->tensors[i].rows)) / 16;
            per_layer += panels[nmat++];
        }
    const float *head = m->params[cfg->untied_head ? arch->head_untied : arch->wte];
    gkd_dm_layout lo;
    gkd_dm_layout_of(&lo, cfg);
    const int jobs = L * per_layer + (int)padded(V) / 16;
    const int vector = gkd_isa_active() == GKD_ISA_AVX512;
#pragma omp parallel for schedule(static) if ((size_t)L * C * C >= 65536)
    for (int j = 0; j < jobs; j++) {
        const int l = j / per_layer < L ? j / per_layer : L;
        int r = j - l * per_layer;
        const float *src = head;
        int which = 0, IC = C, OC = V;
        if (l < L) {
            int k = 0;
            while (r >= panels[k]) r -= panels[k++];
            which = mat[k];
            const gkd_tensor_spec *t = &arch->tensors[which];
            OC = (int)gkd_config_dim(cfg, t->rows);
            IC = (int)gkd_config_dim(cfg, t->cols);
            src = m->params[which] + (size_t)l * OC * IC;
        }
        /* Panel r: outputs 16 r .. 16 r + 15 of src, input-major, as the
         * rows of a product are packed. */
        const int o0 = r * TILE, outs = OC - o0 < TILE ? (OC - o0 > 0 ? OC - o0 : 0) : TILE;
        float *panel = gkd_dm_matrix(wt, &lo, l, which) + (size_t)r * TILE * IC;
        if (vector) gkd_pack_rows16(panel, TILE, src + (size_t)o0 * IC, IC, outs, IC);
        else gkd_pack_rows16_plain(panel, TILE, src + (size_t)o0 * IC, IC, outs, IC);
    }
}

void gkd_dm_apply_epilogue(float *out, int r0, int r1, int o0, int o1, int OC, gkd_dm_epilogue ep,
                           float *res) {
    if (ep == GKD_DM_STORE) return;
    for (int r = r0; r < r1; r++) {
        float *q = out + (size_t)r * OC;
        if (ep == GKD_DM_GELU) {
            gkd_gelu_exp_array(q + o0, o1 - o0);
        } else {
            float *x = res + (size_t)r * OC;
#pragma omp simd
            for (int o = o0; o < o1; o++) x[o] += q[o];
        }
    }
}

size_t gkd_dm_scratch_floats(int IC) { return (size_t)TILE * IC; }

/* out rows [0, rows) (rows <= R) x outputs [o, o + cols) (cols <= 16 P)
 * from the packed rows xp and P consecutive panels from b. */
AVX512_TARGET static inline __attribute__((always_inline)) void
tile(float *out, int ldo, const float *xp, const float *b, int K, const float *bias, int rows,
     int cols, const int R, const int P) {
    __mmask16 mask[2];
    for (int p = 0; p < P; p++) {
        const int c = cols - 16 * p;
        mask[p] = c >= 16 ? 0xFFFF : c <= 0 ? 0 : (__mmask16)((1u << c) - 1);
    }
    const size_t panel = (size_t)TILE * K;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int a = 0; a < R * P; a++) acc[a] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, b += TILE, xp += TILE) {
        __m512 w[2];
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            /* The panels are read once per step, mostly from memory: ask
             * for the line PREFETCH_FLOATS ahead (the next panel near the
             * end). */
            _mm_prefetch((const char *)(b + p * panel + PREFETCH_FLOATS), _MM_HINT_T0);
            w[p] = _mm512_maskz_loadu_ps(mask[p], b + p * panel);
        }
#pragma GCC unroll 16
        for (int i = 0; i < R; i++) {
            const __m512 x = _mm512_set1_ps(xp[i]);
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) acc[i * P + p] = _mm512_fmadd_ps(x, w[p], acc[i * P + p]);
        }
    }
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask[p], bias + 16 * p) : _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int i = 0; i < R; i++) {
            if (i >= rows) break;
            const __m512 v = bias ? _mm512_add_ps(acc[i * P + p], bv) : acc[i * P + p];
            _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16 * p, mask[p], v);
        }
    }
}

/* 16 rows x 16 outputs, or (few rows) 8 rows x 32 outputs, so that every
 * tile keeps 16 accumulators busy. */
AVX512_TARGET static void tile_16x16(float *out, int ldo, const float *xp, const float *b, int K,
                                     const float *bias, int rows, int cols) {
    tile(out, ldo, xp, b, K, bias, rows, cols, 16, 1);
}

AVX512_TARGET static void tile_8x32(float *out, int ldo, const float *xp, const float *b, int K,
                                    const float *bias, int rows, int cols) {
    tile(out, ldo, xp, b, K, bias, rows, cols, 8, 2);
}

/* Outputs per tile for a product of n rows. */
static int tile_width(int n) { return n <= 8 ? 32 : 16; }

/* Tiles [t0, t1) of the (row blocks) x (output blocks) grid, row blocks
 * outer, so consecutive tiles share their packed rows. */
static void run_tiles(float *out, const float *inp, const float *wt, const float *bias, int n,
                      int IC, int OC, gkd_dm_epilogue ep, float *res, float *xp, int t0, int t1) {
    const int W = tile_width(n), nob = (OC + W - 1) / W;
    int packed = -1;
    /* The epilogue runs on up to 64 finished outputs of a row block at a
     * time (while in L1): the GELU's exponentials cost less per element
     * in longer calls. */
    int ep_r0 = 0, ep_rows = 0, ep_o0 = 0, ep_o1 = 0;
    for (int t = t0; t < t1; t++) {
        const int rb = t / nob, r0 = rb * TILE, o0 = t % nob * W;
        const int rows = n - r0 < TILE ? n - r0 : TILE, cols = OC - o0 < W ? OC - o0 : W;
        if (ep_o1 > ep_o0 && (r0 != ep_r0 || o0 != ep_o1 || ep_o1 - ep_o0 + cols > 64)) {
            gkd_dm_apply_epilogue(out, ep_r0, ep_r0 + ep_rows, ep_o0, ep_o1, OC, ep, res);
            ep_o0 = ep_o1 = 0;
        }
        if (ep_o1 == ep_o0) ep_r0 = r0, ep_rows = rows, ep_o0 = ep_o1 = o0;
        ep_o1 = o0 + cols;
        if (rb != packed) gkd_pack_rows16(xp, TILE, inp + (size_t)r0 * IC, IC, rows, IC);
        packed = rb;
        float *dst = out + (size_t)r0 * OC + o0;
        const float *b = wt + (size_t)o0 * IC, *bs = bias ? bias + o0 : NULL;
        if (W == 32)
            tile_8x32(dst, OC, xp, b, IC, bs, rows, cols);
        else
            tile_16x16(dst, OC, xp, b, IC, bs, rows, cols);
    }
    if (ep_o1 > ep_o0) gkd_dm_apply_epilogue(out, ep_r0, ep_r0 + ep_rows, ep_o0, ep_o1, OC, ep, res);
}

/* Rows [r0, r1) x outputs [o0, o1) (o0 a multiple of 32) through
 * gkd_gemm_panels, then the epilogue, 64 outputs at a time. */
static void gemm_block(float *out, const float *inp, const float *wt, const float *bias, int r0,
                       int r1, int o0, int o1, int IC, int OC, gkd_dm_epilogue ep, float *res) {
    if (r1 <= r0 || o1 <= o0) return;
    gkd_gemm_panels(r1 - r0, o1 - o0, IC, inp + (size_t)r0 * IC, IC, wt + (size_t)o0 * IC,
                    out + (size_t)r0 * OC + o0, OC, bias ? bias + o0 : NULL);
    for (int o = o0; o < o1; o += 64)
        gkd_dm_apply_epilogue(out, r0, r1, o, o + 64 < o1 ? o + 64 : o1, OC, ep, res);
}

void gkd_dm_matmul(float *out, const float *inp, const float *wt, const float *bias, int n, int IC,
                   int OC, gkd_dm_epilogue ep, float *res, int team, const gkd_pace *shares,
                   float *scratch) {
    const int nth = team ? omp_get_num_threads() : 1, me = team ? omp_get_thread_num() : 0;
    if (n > GEMM_FROM_ROWS) {
        /* Each thread its share of the rows, in whole 12-row panels. */
        int p0, p1;
        gkd_pace_range(shares, (n + 11) / 12, nth, me, &p0, &p1);
        gemm_block(out, inp, wt, bias, 12 * p0 < n ? 12 * p0 : n, 12 * p1 < n ? 12 * p1 : n, 0, OC,
                   IC, OC, ep, res);
    } else if (gkd_isa_active() != GKD_ISA_AVX512) {
        /* Each thread a contiguous share of the outputs, in pairs of panels. */
        int b0, b1;
        gkd_pace_range(shares, (OC + 31) / 32, nth, me, &b0, &b1);
        gemm_block(out, inp, wt, bias, 0, n, 32 * b0, 32 * b1 < OC ? 32 * b1 : OC, IC, OC, ep, res);
    } else {
        /* Each thread a contiguous share of the output blocks. */
        const int W = tile_width(n);
        int t0, t1;
        gkd_pace_range(shares, (n + TILE - 1) / TILE * ((OC + W - 1) / W), nth, me, &t0, &t1);
        run_tiles(out, inp, wt, bias, n, IC, OC, ep, res, scratch, t0, t1);
    }
}
