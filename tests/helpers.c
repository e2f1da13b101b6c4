/* Helpers shared by the test suites (helpers.h). */
#include "helpers.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

void th_make_tmpdir(char *buf, size_t cap, const char *prefix) {
    ck_assert_int_lt(snprintf(buf, cap, "/tmp/%s-XXXXXX", prefix), (int)cap);
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

void th_remove_tmpdir(const char *dir) {
    char cmd[4200];
    ck_assert_int_lt(snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir), (int)sizeof cmd);
    ck_assert_int_eq(system(cmd), 0);
}

void th_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}
