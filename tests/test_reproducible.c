/* The same bits on every x86-64 CPU (gkd/products.h), end to end: a short
 * train and a short distillation (lambda 0.5, teacher-mixed sampling) run
 * by the gkd program under every instruction set this CPU has, under
 * OpenBLAS's kernels for other CPUs, with 1 and 2 threads, give
 * byte-identical checkpoints and CSVs, and those bytes are pinned: a hash
 * of each is committed below, so a run on any x86-64 machine detects a
 * change of bits. Changing a pinned hash is a deliberate act: the commit
 * says why the bits moved, and the shipped results are regenerated with
 * it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/products.h"

/* Files of a run whose bytes must not depend on the machine. */
static const char *const outputs[] = {
    "teacher/final.ckpt", "teacher/metrics.csv", "teacher/eval.csv",
    "student/final.ckpt", "student/metrics.csv", "student/eval.csv",
};
#define NOUT ((int)(sizeof outputs / sizeof outputs[0]))

/* sha256 of each output, made by this code on an AMD EPYC (AVX-512) and
 * checked under avx2 and generic there. */
static const char *const pinned[NOUT] = {
    "9129ace28f8525cd8e4c4fb6d478ee91acf2971fefe3225bb3b29007c17c8971",
    "47a77a55aaad41ffe05fcaf1ff3bc793d9f7b7524c972ee6f8b8ae7a63424b6d",
    "fb65ef606a2d32457186b71e0f125bfe2213540692570e46e3710c3f2023db54",
    "329477db1e4d9c9b8d5a9c1100ba641a7c3f35cf7b7c8d66d8dd5afde335bae4",
    "23d5a4ebe9cfa41c8794da38d750231275fb1d951c23c732a0da857d5dce3bb9",
    "a68fe52c1f696a7ff85625749c4bd3e2fb0512317d6ed430a2c9b1d30911e0bf",
};

typedef struct {
    char sha[NOUT][65];
} run_hashes;

static char root[64];

static void setup(void) {
    snprintf(root, sizeof root, "/tmp/gkd-repro-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}

/* Train a teacher and distil a student in root/name with the environment
 * env (VAR=value words), and hash the outputs. */
static void run(run_hashes *h, const char *name, const char *env) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set (run through make test)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/%s' && cd '%s/%s' && env %s '%s' train --task arith --data-seed 1 --digits 2 --layers 2 "
             "--d-model 32 --heads 2 --context 32 --steps 60 --lr 1e-2 --eval-every 30 --eval-n 40 "
             "--out teacher > log.txt 2>&1 && env %s '%s' distill --teacher teacher/final.ckpt "
             "--task arith --data-seed 1 --digits 2 --layers 1 --d-model 16 --heads 2 --divergence 'jsd(0.5)' "
             "--lambda 0.5 --teacher-mix 0.3 --sft-steps 10 --steps 20 --eval-every 10 --eval-n 50 "
             "--max-new-tokens 8 --out student >> log.txt 2>&1",
             root, name, root, name, env, bin, env, bin);
    ck_assert_msg(system(cmd) == 0, "%s: the run failed (see %s/%s/log.txt)", env, root, name);
    for (int i = 0; i < NOUT; i++) {
        snprintf(cmd, sizeof cmd, "sha256sum '%s/%s/%s'", root, name, outputs[i]);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(fscanf(p, "%64s", h->sha[i]) == 1, "no hash of %s", outputs[i]);
        pclose(p);
    }
}

static void expect_same(const run_hashes *a, const run_hashes *b, const char *what) {
    for (int i = 0; i < NOUT; i++)
        ck_assert_msg(!strcmp(a->sha[i], b->sha[i]), "%s: %s differs (%.16s vs %.16s)", what, outputs[i],
                      b->sha[i], a->sha[i]);
}

/* OpenBLAS core types this CPU can run (it executes their instructions). */
static int can_run_coretype(const char *t) {
    if (!strcmp(t, "Haswell") || !strcmp(t, "Zen"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int x = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    return !strcmp(t, "Cooperlake") ? x && __builtin_cpu_supports("avx512bf16") : x;
}

START_TEST(test_same_bytes_everywhere) {
    run_hashes ref, h;
    run(&ref, "ref", "OMP_NUM_THREADS=1");
    for (int i = 0; i < NOUT; i++)
        if (getenv("GKD_PRINT_HASHES")) fprintf(stderr, "%s %s\n", ref.sha[i], outputs[i]);
    for (int i = 0; i < NOUT; i++)
        ck_assert_msg(!strcmp(ref.sha[i], pinned[i]),
                      "%s: sha256 %s, pinned %s: the bits moved (see the comment on top)", outputs[i],
                      ref.sha[i], pinned[i]);
    char env[128], name[64];
    for (int isa = GKD_ISA_GENERIC; isa <= (int)gkd_isa_best(); isa++)
        for (int threads = 1; threads <= 2; threads++) {
            snprintf(env, sizeof env, "GKD_ISA=%s OMP_NUM_THREADS=%d", gkd_isa_name((gkd_isa)isa), threads);
            snprintf(name, sizeof name, "isa%d-t%d", isa, threads);
            run(&h, name, env);
            expect_same(&ref, &h, env);
        }
    static const char *const coretypes[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake"};
    for (int i = 0; i < 4; i++) {
        if (!can_run_coretype(coretypes[i])) continue;
        snprintf(env, sizeof env, "OPENBLAS_CORETYPE=%s OMP_NUM_THREADS=2", coretypes[i]);
        snprintf(name, sizeof name, "core-%s", coretypes[i]);
        run(&h, name, env);
        expect_same(&ref, &h, env);
    }
}
END_TEST

/* The OpenBLAS mode runs, and says so; bad settings stop the program with
 * one line before any work. */
START_TEST(test_modes_and_bad_settings) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_ptr_nonnull(bin);
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd, "GKD_PRODUCTS=openblas GKD_ISA=generic '%s' version 2>&1", bin);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int seen = 0;
    while (fgets(line, sizeof line, p)) seen |= strstr(line, "products: openblas on generic") != NULL;
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(seen, "gkd version does not report the products mode");
    run_hashes h;
    run(&h, "openblas", "GKD_PRODUCTS=openblas OMP_NUM_THREADS=2");
    static const char *const bad[] = {"GKD_ISA=avx1024", "GKD_PRODUCTS=mkl"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' train --task arith --out bad > out.txt 2> err.txt",
                 root, bad[i], bin);
        int st = system(cmd);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: exit status %d", bad[i], st);
        snprintf(cmd, sizeof cmd, "%s/err.txt", root);
        FILE *f = fopen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        int lines = 0;
        while (fgets(line, sizeof line, f)) lines++;
        fclose(f);
        ck_assert_int_eq(lines, 1);
        snprintf(cmd, sizeof cmd, "%s/bad", root);
        ck_assert_msg(access(cmd, F_OK) != 0, "%s: output written despite the error", bad[i]);
    }
}
END_TEST

Suite *reproducible_suite(void) {
    Suite *s = suite_create("reproducible");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_same_bytes_everywhere);
    tcase_add_test(tc, test_modes_and_bad_settings);
    suite_add_tcase(s, tc);
    return s;
}
