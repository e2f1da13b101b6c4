/* Byte-level BPE encoding speed on the tokenizer corpus: MB of input per
 * second, the median of 7 runs after a warm-up, encoding the whole file as
 * one text and line by line (one call per line, as `gkd tokenize` does).
 * bench/peer_tokenize.js measures the JavaScript references on the same
 * file. Arguments: [TOKENIZER [CORPUS]] (defaults: the GPT-2 fixtures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/subword.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds to encode text whole (lines = 0) or line by line; -1 on error. */
static double run_once(const gkd_subword *t, const char *text, size_t n, int lines, int *ids, int cap, long *count) {
    double t0 = now();
    long total = 0;
    int k;
    if (!lines) {
        if (gkd_subword_encode(t, text, n, ids, cap, &k)) return -1;
        total = k;
    } else {
        for (size_t i = 0; i < n;) {
            const char *e = memchr(text + i, '\n', n - i);
            size_t len = e ? (size_t)(e - text - i) : n - i;
            if (gkd_subword_encode(t, text + i, len, ids, cap, &k)) return -1;
            total += k;
            i += len + 1;
        }
    }
    *count = total;
    return now() - t0;
}

int main(int argc, char **argv) {
    const char *tok = argc > 1 ? argv[1] : "tests/fixtures/tokenizers/gpt2";
    const char *corpus = argc > 2 ? argv[2] : "tests/fixtures/tokenizers/corpus.txt";
    gkd_subword *t = NULL;
    char *text = NULL;
    size_t n = 0;
    if (gkd_subword_load(&t, tok) || gkd_file_read(&text, &n, corpus)) {
        fprintf(stderr, "bench_tokenize: %s\n", gkd_last_error());
        return 1;
    }
    int cap = (int)n + 16, *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return 1;
    for (int lines = 0; lines < 2; lines++) {
        double s[7];
        long count = 0;
        if (run_once(t, text, n, lines, ids, cap, &count) < 0) {
            fprintf(stderr, "bench_tokenize: %s\n", gkd_last_error());
            return 1;
        }
        for (int r = 0; r < 7; r++) s[r] = run_once(t, text, n, lines, ids, cap, &count);
        qsort(s, 7, sizeof s[0], cmp_double);
        printf("bench tokenize gpt2 %s mb_per_s=%.2f ms=%.1f bytes=%zu ids=%ld\n", lines ? "lines" : "whole",
               n / s[3] * 1e-6, s[3] * 1e3, n, count);
    }
    free(ids);
    free(text);
    gkd_subword_free(t);
    return 0;
}
