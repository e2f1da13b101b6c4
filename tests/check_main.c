/* The one Check runner: every suite declared in tests/test_*.c (collected into
 * suites.h by the Makefile). An optional argument runs only the suite whose
 * name it matches. TAP goes to build/tests.tap. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define X(fn) Suite *fn(void);
#include "suites.h"
#undef X

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    SRunner *sr = NULL;
#define X(fn)                                                          \
    if (!only || strncmp(#fn, only, strlen(only)) == 0) {              \
        if (!sr) sr = srunner_create(fn());                            \
        else srunner_add_suite(sr, fn());                              \
    }
#include "suites.h"
#undef X
    if (!sr) { fprintf(stderr, "no suite matches '%s'\n", only); return 2; }
    srunner_set_tap(sr, "build/tests.tap");
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
