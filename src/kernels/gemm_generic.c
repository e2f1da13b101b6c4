/* The portable micro-kernel of gkd_gemm (see gemm_kernel.h): plain C with
 * fmaf, which C99 defines as the exactly rounded a b + c on every CPU
 * (with the instruction where there is one, in software where not), so it
 * gives the bits of the vector kernels, more slowly. */
#include "gemm_kernel.h"

#include <math.h>

#define MR GEMM_MR
#define NR GEMM_NR

void gkd_gemm_kernel_generic(const float *a, size_t ars, size_t aks, const float *b, size_t bks,
                             size_t b_half, int K, float *C, int ldc, int rows, int cols, float beta,
                             const float *bias, float *save, int resume, int more) {
    float acc[MR][NR];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) acc[i][j] = resume ? save[i * NR + j] : 0.0f;
    const int lo = cols < 16 ? cols : 16; /* columns in the first half */
    for (int k = 0; k < K; k++, a += aks, b += bks)
        for (int i = 0; i < rows; i++) {
            const float av = a[i * ars];
            for (int j = 0; j < lo; j++) acc[i][j] = fmaf(av, b[j], acc[i][j]);
            for (int j = 16; j < cols; j++) acc[i][j] = fmaf(av, b[b_half + j - 16], acc[i][j]);
        }
    for (int i = 0; i < rows; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < cols; j++) {
            if (more) save[i * NR + j] = acc[i][j];
            else c[j] = beta != 0.0f ? c[j] + acc[i][j] : bias ? acc[i][j] + bias[j] : acc[i][j];
        }
    }
}
