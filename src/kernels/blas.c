/* The linked BLAS (blas.h). */
#include "kernels/blas.h"

#include <cblas.h>

void gkd_blas_set_threads(int n) { openblas_set_num_threads(n); }

const char *gkd_blas_config(void) { return openblas_get_config(); }
