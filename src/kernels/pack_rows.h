/* Private: up to sixteen rows of a matrix, transposed into a k-major
 * panel, for products that broadcast a row's values (decode_matmul.c) or
 * read sixteen columns of op(B) at a time (gemm.c). A copy: no rounding. */
#ifndef GKD_PACK_ROWS_H
#define GKD_PACK_ROWS_H
#include <stddef.h>

/* xp[k ldx + i] = inp[i ld + k] for k < IC and i < rows, and 0 for
 * rows <= i < 16. Needs AVX-512F. */
void gkd_pack_rows16(float *xp, size_t ldx, const float *inp, size_t ld, int rows, int IC);

/* The same, in plain C, on any CPU. */
void gkd_pack_rows16_plain(float *xp, size_t ldx, const float *inp, size_t ld, int rows, int IC);

#endif
