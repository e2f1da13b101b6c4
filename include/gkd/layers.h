/* Forward/backward pairs of the GPT layers, in the style of llm.c: outputs
 * first, forward caches what backward needs, backward accumulates (+=) into
 * its gradient outputs (callers zero them when they want a plain gradient).
 *
 * Dimensions: N rows (= B*T tokens), B batch, T time, C channels (input
 * width), OC output channels, NH heads, hs = C/NH head size, V vocabulary.
 * All arrays are row-major float32.
 *
 * Determinism: every function parallelizes (OpenMP) over independent output
 * elements or over independent blocks, and every sum is evaluated in a fixed
 * order, so results are bit-identical for any OMP_NUM_THREADS
 * (tests/test_model.c checks this bit for bit). Matrix products are gkd's
 * own fused multiply-add chains, the same bits on every x86-64 CPU
 * (gkd/products.h), or OpenBLAS's in the OpenBLAS mode. */
#ifndef GKD_LAYERS_H
#define GKD_LAYERS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Row-major C (M,N) = alpha op(A) op(B) + beta C, op = transpose if trans_*:
 *  the product every layer uses. It runs gkd's kernel (src/kernels/gemm.h,
 *  which has no alpha and only beta 0 or 1: this adds the rest) or, in the
 *  OpenBLAS mode, cblas_sgemm.
 *  Each element: the fused multiply-add chain of op(A) op(B) over k in
 *  order, then times alpha (unless 1), then + beta C (+ C when beta is 1):
 *  thread-count and CPU independent. In the OpenBLAS mode
 *  (gkd/products.h), single-threaded cblas_sgemm calls on a fixed tile
 *  grid (thread-count independent on one machine). Safe to call inside an
 *  OpenMP parallel region. */
void gkd_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

/** out (B,T,C) = wte[inp[b,t]] + wpe[t] (wpe NULL: no position term, as
 *  with rotary positions). Tokens must be in [0, V). */
void gkd_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B,
                         int T, int C);
/** dwte (V,C) += scatter of dout by token; dwpe (maxT,C) += sum over b
 *  (dwpe may be NULL). */
void gkd_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B,
                          int T, int C);

/** LayerNorm over the last axis (eps 1e-5, biased variance, as PyTorch) of
 *  N rows. mean/rstd (N) may be NULL (inference). */
void gkd_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
/** dinp (N,C), dw (C), db (C) += gradients, from the cached mean/rstd. */
void gkd_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean, const float *rstd,
                            int N, int C);

/** out (N,OC) = inp (N,C) @ w^T + bias, w is (OC,C) (nn.Linear layout);
 *  bias may be NULL. */
void gkd_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC);
/** dinp (N,C) = dout @ w (overwritten: no caller needs to add to it, and
 *  skipping the zeroing pass saves a sweep of memory); dw (OC,C) += dout^T @
 *  inp; dbias (OC) += column sums of dout. Any of dinp, dw, dbias may be NULL
 *  (not needed). */
void gkd_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC);

/** Causal multi-head self-attention. qkv (B,T,3C) holds q, k, v side by side,
 *  head h in channels [h*hs, (h+1)*hs) of each; out (B,T,C); att
 *  (B,NH,T,T) receives the softmax probabilities (zeros above the diagonal),
 *  which backward needs. Scores are scaled by 1/sqrt(hs). */
void gkd_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/** dqkv (B,T,3C) = gradient (overwritten). datt (B,NH,T,T) is scratch. */
void gkd_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH);

/** tanh-approximated GELU (GPT-2, PyTorch approximate='tanh'), n elements. */
void gkd_gelu_forward(float *out, const float *inp, size_t n);
/** dinp = gelu'(inp) * dout (overwritten). */
void gkd_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/** Training variants: forward also stores th (n) = the tanh term, so backward
 *  need not recompute it (th NULL: recompute). Same results as the plain
 *  pair. */
void gkd_gelu_forward_cache(float *out, float *th, const float *inp, size_t n);
void gkd_gelu_backward_cache(float *dinp, const float *inp, const float *th, const float *dout,
                             size_t n);

/** out = a + b (out may alias a or b). */
void gkd_residual_forward(float *out, const float *a, const float *b, size_t n);
/** da += dout; db += dout. */
void gkd_residual_backward(float *da, float *db, const float *dout, size_t n);

/** Row-wise softmax of N rows of V logits (max-subtracted; probs may alias
 *  logits). */
void gkd_softmax_forward(float *probs, const float *logits, int N, int V);

/** Masked mean cross-entropy of N rows: losses[i] = -log softmax(logits[i])
 *  [targets[i]] where mask is NULL or mask[i] != 0, else 0; returns their
 *  mean over masked-in rows (0 if none), summed in double in row order. If
 *  dlogits is not NULL it is written (not accumulated) with d(mean)/dlogits:
 *  (softmax - onehot) / count on masked-in rows, 0 elsewhere. A masked-in
 *  target outside [0, V) makes that row's loss, and so the result, NaN. */
double gkd_crossentropy_forward_backward(float *dlogits, float *losses, const float *logits,
                                         const int *targets, const float *mask, int N, int V);

/* ---- Llama-family layers (src/model/rmsnorm.c, rope.c, swiglu.c; the
 * grouped-query attention in layers.c). Same conventions as above. ---- */

/** RMSNorm of N rows: out = inp / sqrt(mean(inp^2) + eps) * w; rstd (N) may
 *  be NULL (inference). The sum of squares is taken in double. */
void gkd_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps,
                         int N, int C);
/** dinp (N,C) += and dw (C) += gradients, from the cached rstd. */
void gkd_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int N, int C);

/** Rotary tables: cos/sin (maxT, hs/2) of angle pos * theta^(-2i/hs),
 *  computed in double and rounded to float. */
void gkd_rope_table(float *cos_t, float *sin_t, int maxT, int hs, float theta);
/** Rotates, in place, the first nheads heads (hs channels each) of one row at
 *  the position whose table rows are cos_p, sin_p (hs/2 each); style 0 =
 *  interleaved pairs (2i, 2i+1) (llama2.c), 1 = half pairs (i, i+hs/2)
 *  (Hugging Face rotate_half). (a,b) -> (a cos - b sin, a sin + b cos). */
void gkd_rope_row(float *x, const float *cos_p, const float *sin_p, int nheads, int hs,
                  int style);
/** qkv (B,T,(NH+2NKV)hs): rotates q (NH heads) and k (NKV heads) of each row
 *  at position t = 0..T-1, in place. */
void gkd_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                      int NKV, int hs, int style);
/** The transpose: dqkv in place (rotation by -angle), the same rows. */
void gkd_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                       int NKV, int hs, int style);

/** SwiGLU: gu (N, 2F) = [gate | up]; out (N, F) = silu(gate) * up,
 *  silu(g) = g / (1 + exp(-g)). */
void gkd_swiglu_forward(float *out, const float *gu, int N, int F);
/** dgu (N, 2F) = gradient (overwritten). */
void gkd_swiglu_backward(float *dgu, const float *gu, const float *dout, int N, int F);

/** Causal grouped-query attention: qkv (B,T,C+2KV), KV = NKV hs, rows q (NH
 *  heads), k (NKV heads), v (NKV heads); query head h reads kv head
 *  h / (NH/NKV). out (B,T,C), att (B,NH,T,T). NKV divides NH; with
 *  NKV == NH, gkd_attention_forward (the same bits). */
void gkd_attention_gqa_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                               int NH, int NKV);
/** dqkv (B,T,C+2KV) overwritten; datt (B,NH,T,T) scratch. A kv head's dk and
 *  dv sum its group's heads in head order. */
void gkd_attention_gqa_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int C, int NH, int NKV);

#ifdef __cplusplus
}
#endif

#endif
