/* The shape of the source tree: the layer rule of docs/architecture.md
 * (scripts/check_layers.sh) and no circle of files (scripts/check_cycles.sh),
 * each on the real tree and on a small tree that breaks it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "helpers.h"

static const char *root(void) {
    const char *r = getenv("GKD_ROOT");
    return r && *r ? r : ".";
}

/* Runs cmd, its output into out; returns its exit status. */
static int run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void write_in(const char *dir, const char *rel, const char *text) {
    char path[512], sub[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(sub, sizeof sub, "%s", path);
    for (char *s = sub + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(sub, 0755);
        *s = '/';
    }
    th_write_file(path, text);
}

START_TEST(test_tree_keeps_the_layer_rule) {
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "'%s/scripts/check_layers.sh' '%s' 2>&1", root(), root());
    int rc = run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0, "layer rule broken:\n%s", out);
}
END_TEST

START_TEST(test_an_include_from_above_is_refused) {
    char dir[128], cmd[1024], out[8192];
    th_make_tmpdir(dir, sizeof dir, "gkd-layers");
    write_in(dir, "docs/architecture.md", "# map\n\nlayers: util model cli\n");
    write_in(dir, "src/util/rng.c", "#include \"gkd/rng.h\"\n");
    write_in(dir, "src/model/model.c", "#include \"gkd/rng.h\"\n#include \"gkd/model.h\"\n");
    write_in(dir, "src/cli/main.c", "#include \"gkd/gkd.h\"\n");
    snprintf(cmd, sizeof cmd, "'%s/scripts/check_layers.sh' '%s' 2>&1", root(), dir);
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);

    /* util may not use the model, nor a private header of the model's. */
    write_in(dir, "src/model/tile.h", "\n");
    write_in(dir, "src/util/rng.c", "#include \"gkd/rng.h\"\n#include <stdio.h>\n#include \"gkd/model.h\"\n"
                                    "#include \"model/tile.h\"\n");
    ck_assert_int_eq(run(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "src/util/rng.c:3: includes \"gkd/model.h\" of layer model, above util"), "%s", out);
    ck_assert_msg(strstr(out, "src/util/rng.c:4: includes \"model/tile.h\" of layer model, above util"), "%s", out);

    /* A folder the rule does not name, and a header without a module. */
    write_in(dir, "src/util/rng.c", "#include \"gkd/nowhere.h\"\n");
    write_in(dir, "src/extra/x.c", "\n");
    ck_assert_int_eq(run(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "src/extra/x.c: folder src/extra is not a layer"), "%s", out);
    ck_assert_msg(strstr(out, "src/util/rng.c:1: \"gkd/nowhere.h\" has no module"), "%s", out);
    th_remove_tmpdir(dir);
}
END_TEST

START_TEST(test_library_has_no_circle_of_files) {
    const char *lib = getenv("GKD_LIB");
    if (!lib || !*lib) return; /* run outside `make test` */
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "'%s/scripts/check_cycles.sh' '%s' 2>&1", root(), lib);
    int rc = run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
}
END_TEST

START_TEST(test_a_circle_of_files_is_found) {
    char dir[128], cmd[2048], out[8192];
    th_make_tmpdir(dir, sizeof dir, "gkd-cycles");
    write_in(dir, "a.c", "int b(int);\nint a(int x) { return x ? b(x - 1) : 0; }\n");
    write_in(dir, "b.c", "int c(int);\nint b(int x) { return c(x); }\n");
    write_in(dir, "c.c", "int c(int x) { return x; }\n");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && cc -c a.c b.c c.c && ar rcs lib.a a.o b.o c.o && '%s/scripts/check_cycles.sh' lib.a 2>&1",
             dir, root());
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);

    /* c now calls back into a: a -> b -> c -> a. */
    write_in(dir, "c.c", "int a(int);\nint c(int x) { return a(x); }\n");
    ck_assert_int_eq(run(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "a circle of files") && strstr(out, "a.o") && strstr(out, "b.o") &&
                      strstr(out, "c.o"),
                  "%s", out);
    th_remove_tmpdir(dir);
}
END_TEST

/* gkd.h, "one include for everything", includes every public header. */
START_TEST(test_umbrella_header_includes_every_header) {
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd,
             "cd '%s/include/gkd' && for h in *.h; do [ \"$h\" = gkd.h ] || grep -q \"#include \\\"gkd/$h\\\"\" gkd.h "
             "|| echo \"gkd.h lacks $h\"; done",
             root());
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);
    ck_assert_msg(out[0] == '\0', "%s", out);
}
END_TEST

Suite *architecture_suite(void) {
    Suite *s = suite_create("architecture");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tree_keeps_the_layer_rule);
    tcase_add_test(tc, test_an_include_from_above_is_refused);
    tcase_add_test(tc, test_library_has_no_circle_of_files);
    tcase_add_test(tc, test_a_circle_of_files_is_found);
    tcase_add_test(tc, test_umbrella_header_includes_every_header);
    suite_add_tcase(s, tc);
    return s;
}
