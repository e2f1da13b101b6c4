/* The gkd program: dispatches to the subcommands in src/cli/cmd_*.c
 * (collected into commands.h by the Makefile). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/products.h"

#define X(name) int cmd_##name(int argc, char **argv);
#include "commands.h"
#undef X

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
#define X(name) {#name, cmd_##name},
#include "commands.h"
#undef X
    {NULL, NULL}};

static void usage(FILE *f) {
    fprintf(f, "usage: gkd <command> [options]   (gkd <command> --help for its options)\ncommands:\n");
    for (int i = 0; commands[i].name; i++) fprintf(f, "  %s\n", commands[i].name);
    fprintf(f, "  version\n");
}

int main(int argc, char **argv) {
    /* OpenMP threads that spin between parallel regions stall each other as
     * soon as the machine is shared (a 4x slowdown measured on 2 busy cores),
     * so gkd sleeps instead unless told otherwise. libgomp reads the variable
     * when it loads, hence the re-exec; if exec fails we simply go on. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    if (argc < 2) { usage(stderr); return 2; }
    /* GKD_ISA and GKD_PRODUCTS: a bad value stops here, before any work. */
    if (gkd_products_from_env()) {
        fprintf(stderr, "gkd: %s\n", gkd_last_error());
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("gkd %s (%s)\n", GKD_VERSION, GKD_GIT_COMMIT);
        printf("products: %s on %s (best on this CPU: %s)\n", gkd_products_name(gkd_products()),
               gkd_isa_name(gkd_isa_active()), gkd_isa_name(gkd_isa_best()));
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { usage(stdout); return 0; }
    for (int i = 0; commands[i].name; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "gkd: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
