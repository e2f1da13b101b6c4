/* Which code computes gkd's matrix products, and on which instruction set.
 *
 * Reproducible mode (the default, "gkd"): every product whose result reaches
 * a checkpoint, a CSV or a sample is gkd's own, and each output element is
 * one chain of fused multiply-adds over k in order from zero, then + bias or
 * + the old value. A fused multiply-add is exactly rounded, so that chain
 * gives the same bits on AVX-512 (16 lanes), AVX2 (8 lanes) and in portable
 * C (fmaf): the instruction set changes only the speed.
 *
 * OpenBLAS mode ("openblas"): training's products (layers and attention)
 * go through OpenBLAS, whose kernels, chosen by CPU model, round
 * differently on different CPUs. Results are then reproducible on one
 * machine only. Decoding always uses gkd's products: a rollout must not
 * depend on the other rows of its batch.
 *
 * The environment chooses at first use: GKD_ISA=avx512|avx2|generic forces
 * an instruction set (the CPU must have it), GKD_PRODUCTS=gkd|openblas the
 * mode. */
#ifndef GKD_PRODUCTS_H
#define GKD_PRODUCTS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_ISA_GENERIC = 0, /* portable C, fmaf */
    GKD_ISA_AVX2 = 1,    /* AVX2 + FMA, 8 lanes */
    GKD_ISA_AVX512 = 2,  /* AVX-512F, 16 lanes */
} gkd_isa;

typedef enum {
    GKD_PRODUCTS_GKD = 0,      /* gkd's own: the same bits on every x86-64 CPU */
    GKD_PRODUCTS_OPENBLAS = 1, /* training through OpenBLAS: one machine only */
} gkd_products_mode;

/** The best instruction set this CPU runs. */
gkd_isa gkd_isa_best(void);
/** The instruction set products run on now. */
gkd_isa gkd_isa_active(void);
/** "avx512", "avx2" or "generic". */
const char *gkd_isa_name(gkd_isa isa);
/** Run products on isa from now on. GKD_EINVAL if this CPU cannot. Not
 *  thread-safe: call outside parallel work. */
int gkd_isa_set(gkd_isa isa);

/** The products mode now. */
gkd_products_mode gkd_products(void);
/** "gkd" or "openblas". */
const char *gkd_products_name(gkd_products_mode mode);
/** Parse "gkd" or "openblas"; GKD_EINVAL otherwise. */
int gkd_products_parse(gkd_products_mode *out, const char *s);
/** Use mode from now on. Not thread-safe: call outside parallel work. */
void gkd_products_set(gkd_products_mode mode);

/** Read GKD_ISA and GKD_PRODUCTS now (they are otherwise read at first
 *  use, where a bad value falls back to the default). GKD_EINVAL, with a
 *  message naming the variable, for a value that is not known or an
 *  instruction set this CPU does not have. */
int gkd_products_from_env(void);

#ifdef __cplusplus
}
#endif

#endif
