/* Private: the decoder's tanh-GELU, shared by the decoder and the fused
 * epilogue of the row-wise matrix product so both round identically. */
#ifndef GKD_GELU_H
#define GKD_GELU_H

/* tanh-GELU via 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)): the same function
 * as the forward's tanhf form up to rounding, at a fraction of the cost.
 * Per element, in this order: u = s (v + 0.044715 v v v) with
 * s = sqrtf(2 / pi), e = expf(-2 u) (libm's bits, vexpf.h), then
 * v / (1 + e). x[i] becomes that of x[i], for i < n. */
void gkd_gelu_exp_array(float *x, int n);

#endif
