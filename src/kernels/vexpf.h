/* Private: expf over an array, vectorized where that gives exactly the
 * bits of the C library's scalar expf. */
#ifndef GKD_VEXPF_H
#define GKD_VEXPF_H

/** y[i] = expf(x[i]) for i < n, bit-identical to libm's expf (y may be x). */
void gkd_vexpf(float *y, const float *x, int n);

#endif
