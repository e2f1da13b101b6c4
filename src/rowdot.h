/* Private: a matrix product whose every output element is computed with one
 * fixed summation order, whatever the number of rows, the row's position
 * or the thread count. OpenBLAS sgemm picks kernels by shape and tile
 * position, so the same row can round differently in a batch of 16 than
 * alone; rollouts must not depend on batch composition, so decoding uses
 * this instead. */
#ifndef GKD_ROWDOT_H
#define GKD_ROWDOT_H

#include "pace.h"

/** out (n, OC) = inp (n, IC) @ w^T + bias, w is (OC, IC), bias may be NULL.
 *  out[r, o] depends only on inp row r, w row o and bias[o]. */
void gkd_rowdot_matmul(float *out, const float *inp, const float *w, const float *bias, int n,
                       int IC, int OC);

/** What gkd_rowdot_matmul_ep does with each finished element, inside the
 *  parallel loop (no separate pass, no extra barrier). */
typedef enum {
    GKD_ROWDOT_STORE,    /* out = product */
    GKD_ROWDOT_GELU,     /* out = gelu(product) (gelu.h) */
    GKD_ROWDOT_RESIDUAL, /* out = product, then res += out */
} gkd_rowdot_epilogue;

/** Epilogue ep on rows [r0, r1) x outputs [o0, o1) of out (row stride
 *  OC), as the fused products do on each finished tile;
 *  other products (decode_matmul.c) use it so every path rounds alike. */
void gkd_rowdot_apply_epilogue(float *out, int r0, int r1, int o0, int o1, int OC,
                               gkd_rowdot_epilogue ep, float *res);

/** gkd_rowdot_matmul followed by epilogue ep on each element; res (n, OC)
 *  is used by GKD_ROWDOT_RESIDUAL only. */
void gkd_rowdot_matmul_ep(float *out, const float *inp, const float *w, const float *bias, int n,
                          int IC, int OC, gkd_rowdot_epilogue ep, float *res);

/** gkd_rowdot_matmul_ep shared by a team: called by every thread of an
 *  enclosing parallel region, each taking a contiguous share of the tiles
 *  (by shares' split, even when NULL), or outside any region (one thread).
 *  No barrier: the output is complete once every thread has returned. */
void gkd_rowdot_matmul_team(float *out, const float *inp, const float *w, const float *bias, int n,
                            int IC, int OC, gkd_rowdot_epilogue ep, float *res,
                            const gkd_pace *shares);

/** gkd_rowdot_matmul_ep on the calling thread alone, inside or outside a
 *  parallel region (same bits as the team form). */
void gkd_rowdot_matmul_here(float *out, const float *inp, const float *w, const float *bias, int n,
                            int IC, int OC, gkd_rowdot_epilogue ep, float *res);
/** Tests only: off != 0 makes later products use the 8-lane kernel even on
 *  AVX-512 CPUs, so both kernels can be checked against the same hashes.
 *  Not thread-safe; call outside parallel work. */
void gkd_rowdot_disable_avx512(int off);

#endif
