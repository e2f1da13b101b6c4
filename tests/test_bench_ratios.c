/* bench/ratios.awk, which turns a `make bench` log into the ratios the
 * speed targets are judged by: paired rounds give the median of the
 * rounds' ratios (not the ratio of medians), a round without both sides
 * is left out, untagged lines are single runs, and the ceilings are the
 * median over rounds. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 14];

/* Runs ratios.awk on `log`; the output in `out`. */
static void ratios(const char *log) {
    const char *root = getenv("GKD_ROOT");
    ck_assert_msg(root != NULL, "GKD_ROOT is not set (run through make test)");
    char dir[] = "/tmp/gkd-ratios-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/bench.txt", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(log, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "awk -f '%s/bench/ratios.awk' '%s' > '%s/out.txt'", root, path, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* The output line of key `k` (e.g. "decode small"), or fail. */
static const char *line_of(const char *k) {
    static char line[1024];
    char want[64];
    snprintf(want, sizeof want, "  %s ", k);
    const char *p = strstr(out, want);
    ck_assert_msg(p != NULL, "no line for '%s' in:\n%s", k, out);
    size_t n = strcspn(p, "\n");
    memcpy(line, p, n < sizeof line - 1 ? n : sizeof line - 1);
    line[n < sizeof line - 1 ? n : sizeof line - 1] = '\0';
    return line;
}

static void has(const char *line, const char *text) {
    ck_assert_msg(strstr(line, text) != NULL, "'%s' not in: %s", text, line);
}

START_TEST(test_paired_rounds) {
    ratios("bench sgemm n=1024 gflops=100.0 round=1\n"
           "bench peak gflops=400.0 threads=2 round=1\n"
           "bench sgemm n=1024 gflops=300.0 round=2\n"
           "bench peak gflops=200.0 threads=2 round=2\n"
           "bench sgemm n=1024 gflops=200.0 round=3\n"
           "bench peak gflops=300.0 threads=2 round=3\n"
           /* ratios 5.0, 8.0 and 4.0: median 5.0 */
           "bench decode small tokens_per_s=9000 ms_per_rollout=1 gflops=150.0 round=1\n"
           "bench peer_torch small decode tokens_per_s=1800 ms_per_iter=1 round=1\n"
           "bench peer_torch small decode tokens_per_s=1000 ms_per_iter=1 round=2\n"
           "bench decode small tokens_per_s=8000 ms_per_rollout=1 gflops=100.0 round=2\n"
           "bench decode small tokens_per_s=10000 ms_per_rollout=1 gflops=200.0 round=3\n"
           "bench peer_torch small decode tokens_per_s=2500 ms_per_iter=1 round=3\n"
           /* round 4 has no peer run: left out */
           "bench decode small tokens_per_s=99999 ms_per_rollout=1 gflops=1.0 round=4\n"
           /* ratios 3.0, 1.0 and 1.0: median 1.0, where the ratio of the
            * two sides' medians (200 / 100) would say 2.0 */
           "bench decode tiny tokens_per_s=300 ms_per_rollout=1 gflops=10.0 round=1\n"
           "bench peer_torch tiny decode tokens_per_s=100 ms_per_iter=1 round=1\n"
           "bench decode tiny tokens_per_s=100 ms_per_rollout=1 gflops=10.0 round=2\n"
           "bench peer_torch tiny decode tokens_per_s=100 ms_per_iter=1 round=2\n"
           "bench decode tiny tokens_per_s=200 ms_per_rollout=1 gflops=10.0 round=3\n"
           "bench peer_torch tiny decode tokens_per_s=200 ms_per_iter=1 round=3\n");
    const char *s = line_of("decode small");
    has(s, "gkd      9000");
    has(s, "torch      1800");
    has(s, " 5.00x");
    /* at sgemm: ratio 5 x sgemm median 200 / gkd GFLOP/s median 150 */
    has(s, "at sgemm  6.67x");
    has(s, "at peak 10.00x");
    has(s, "target >= 5x: met");
    has(s, "(median of 3 paired rounds: 4.00x to 8.00x)");
    const char *t = line_of("decode tiny");
    has(t, "gkd       200");
    has(t, "torch       100");
    has(t, " 1.00x");
    has(t, "target >= 5x: NOT met");
    has(t, "1.00x to 3.00x");
}
END_TEST

START_TEST(test_single_runs) {
    ratios("bench model tiny fwdbwd tokens_per_s=30000 gflops=100.0 ms_per_iter=1\n"
           "bench peer_torch tiny fwdbwd tokens_per_s=15000 gflops=50.0 ms_per_iter=1\n"
           "bench gkd small tokens_per_s=7000 best_tokens_per_s=8000 step_ms=1 gflops=100.0\n"
           "bench peer_torch_gkd threads=2 torch=1.13.0a0\n"
           "bench peer_torch_gkd small tokens_per_s=2000 best_tokens_per_s=2100 step_ms=1\n");
    const char *f = line_of("fwd tiny fwdbwd");
    has(f, " 2.00x");
    has(f, "target >= 2x: met");
    ck_assert_ptr_null(strstr(f, "paired rounds"));
    const char *g = line_of("gkd small");
    has(g, " 3.50x");
    has(g, "target >= 5x: NOT met");
    /* No sgemm or peak line: no ceilings. */
    ck_assert_ptr_null(strstr(g, "at sgemm"));
    ck_assert_ptr_null(strstr(out, "  decode small"));
}
END_TEST

/* The memory cases' peaks are printed as measured, gkd's and the peer's,
 * and are not speed ratios; without them there is no memory section. */
START_TEST(test_peak_memory) {
    ratios("bench gkd v50k-dense tokens_per_s=120 B=16 T=256 V=50257 teacher_topk=0 peak_rss_mib=3786\n"
           "bench gkd v50k-topk64 tokens_per_s=167 B=16 T=256 V=50257 teacher_topk=64 peak_rss_mib=3788\n"
           "bench peer_torch_gkd v50k-dense tokens_per_s=50 B=16 T=256 peak_rss_mib=12000\n");
    has(out, "peak memory of one GKD step at V = 50257, B = 16, T = 256 (MiB):");
    has(line_of("gkd v50k-dense"), "3786");
    has(line_of("gkd v50k-topk64"), "3788");
    has(line_of("peer_torch_gkd v50k-dense"), "12000");
    ck_assert_ptr_null(strstr(out, "x  ")); /* no ratio line */
    ratios("bench gkd tiny tokens_per_s=9000 gflops=1.0\n");
    ck_assert_ptr_null(strstr(out, "peak memory"));
}
END_TEST

Suite *bench_ratios_suite(void) {
    Suite *s = suite_create("bench_ratios");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_paired_rounds);
    tcase_add_test(tc, test_single_runs);
    tcase_add_test(tc, test_peak_memory);
    suite_add_tcase(s, tc);
    return s;
}
