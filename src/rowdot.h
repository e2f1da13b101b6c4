/* Private: a matrix product whose every output element is computed with one
 * fixed summation order, whatever the number of rows, the row's position
 * or the thread count. OpenBLAS sgemm picks kernels by shape and tile
 * position, so the same row can round differently in a batch of 16 than
 * alone; rollouts must not depend on batch composition, so decoding uses
 * this instead. */
#ifndef GKD_ROWDOT_H
#define GKD_ROWDOT_H

/** out (n, OC) = inp (n, IC) @ w^T + bias, w is (OC, IC), bias may be NULL.
 *  out[r, o] depends only on inp row r, w row o and bias[o]. */
void gkd_rowdot_matmul(float *out, const float *inp, const float *w, const float *bias, int n,
                       int IC, int OC);

#endif
