/* The products mode and instruction set (see gkd/products.h). Both are
 * read from the environment once, at first use; the CLI reads them at
 * start with gkd_products_from_env so that a bad value is an error. */
#include "gkd/products.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static gkd_isa isa_now;
static gkd_products_mode mode_now;

gkd_isa gkd_isa_best(void) {
    if (__builtin_cpu_supports("avx512f")) return GKD_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GKD_ISA_AVX2;
    return GKD_ISA_GENERIC;
}

const char *gkd_isa_name(gkd_isa isa) {
    return isa == GKD_ISA_AVX512 ? "avx512" : isa == GKD_ISA_AVX2 ? "avx2" : "generic";
}

const char *gkd_products_name(gkd_products_mode mode) {
    return mode == GKD_PRODUCTS_OPENBLAS ? "openblas" : "gkd";
}

int gkd_products_parse(gkd_products_mode *out, const char *s) {
    if (s && strcmp(s, "gkd") == 0) *out = GKD_PRODUCTS_GKD;
    else if (s && strcmp(s, "openblas") == 0) *out = GKD_PRODUCTS_OPENBLAS;
    else return gkd_error(GKD_EINVAL, "products must be gkd or openblas, not '%s'", s ? s : "");
    return 0;
}

static int parse_isa(gkd_isa *out, const char *s) {
    for (int i = GKD_ISA_GENERIC; i <= GKD_ISA_AVX512; i++)
        if (strcmp(s, gkd_isa_name((gkd_isa)i)) == 0) {
            if (i > (int)gkd_isa_best())
                return gkd_error(GKD_EINVAL, "GKD_ISA=%s: this CPU has no %s (best: %s)", s, s,
                                 gkd_isa_name(gkd_isa_best()));
            *out = (gkd_isa)i;
            return 0;
        }
    return gkd_error(GKD_EINVAL, "GKD_ISA must be avx512, avx2 or generic, not '%s'", s);
}

static int read_env(void) {
    gkd_isa isa = gkd_isa_best();
    gkd_products_mode mode = GKD_PRODUCTS_GKD;
    const char *s = getenv("GKD_ISA"), *p = getenv("GKD_PRODUCTS");
    int rc = s && *s ? parse_isa(&isa, s) : 0;
    if (!rc && p && *p && gkd_products_parse(&mode, p))
        rc = gkd_error_wrap(GKD_EINVAL, "GKD_PRODUCTS");
    if (rc) return rc; /* what was in force stays */
    isa_now = isa;
    mode_now = mode;
    return 0;
}

/* First use: the defaults, then the environment if it is valid. */
static void read_env_once(void) {
    isa_now = gkd_isa_best();
    mode_now = GKD_PRODUCTS_GKD;
    read_env();
}

static void choose(void) { pthread_once(&env_once, read_env_once); }

int gkd_products_from_env(void) {
    choose();
    return read_env();
}

gkd_isa gkd_isa_active(void) {
    choose();
    return isa_now;
}

int gkd_isa_set(gkd_isa isa) {
    choose();
    if (isa > gkd_isa_best())
        return gkd_error(GKD_EINVAL, "this CPU has no %s (best: %s)", gkd_isa_name(isa),
                         gkd_isa_name(gkd_isa_best()));
    isa_now = isa;
    return 0;
}

gkd_products_mode gkd_products(void) {
    choose();
    return mode_now;
}

void gkd_products_set(gkd_products_mode mode) {
    choose();
    mode_now = mode;
}
