/* The ways a product can be computed, for tests that must hold under each:
 * gkd's own products on every instruction set this CPU has (the same bits
 * on all), and the OpenBLAS mode. */
#ifndef GKD_TEST_PRODUCT_VARIANTS_H
#define GKD_TEST_PRODUCT_VARIANTS_H

#include "gkd/products.h"

/* Variants 0 .. 2: gkd on generic, avx2, avx512; 3: OpenBLAS. */
#define PRODUCT_VARIANTS 4

/* Switch to variant v; 0 when this CPU cannot run it. */
static inline int product_variant_begin(int v) {
    if (v == 3) {
        gkd_products_set(GKD_PRODUCTS_OPENBLAS);
        return 1;
    }
    if (v > (int)gkd_isa_best()) return 0;
    gkd_products_set(GKD_PRODUCTS_GKD);
    return gkd_isa_set((gkd_isa)v) == 0;
}

/* Back to the defaults: gkd's products on the best instruction set. */
static inline void product_variant_end(void) {
    gkd_products_set(GKD_PRODUCTS_GKD);
    gkd_isa_set(gkd_isa_best());
}

static inline const char *product_variant_name(int v) {
    return v == 3 ? "openblas" : gkd_isa_name((gkd_isa)v);
}

#endif
