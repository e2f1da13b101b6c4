/* Private to gkd: the OpenBLAS library gkd links, which computes training's
 * products in products mode openblas (gkd/products.h). Outside src/kernels
 * and the model's OpenBLAS path, nothing needs to know it is OpenBLAS. */
#ifndef GKD_KERNELS_BLAS_H
#define GKD_KERNELS_BLAS_H

/** Threads OpenBLAS may use from now on (a process's gkd loops take
 *  omp_set_num_threads; this is the same for the BLAS). */
void gkd_blas_set_threads(int n);

/** How the BLAS was built ("OpenBLAS 0.3.21 DYNAMIC_ARCH ..."), for run
 *  records. */
const char *gkd_blas_config(void);

#endif
