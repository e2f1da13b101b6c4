/* libFuzzer target for byte-level BPE files (GPT-2): an input with a NUL
 * byte is vocab.json (before it) + merges.txt (after it), one without is
 * a tokenizer.json. Loading must be refused with one line, or give a
 * tokenizer whose encoding of a fixed text and of the input itself keeps
 * every id in the vocabulary and decodes back to the same bytes.
 *
 * Seeds: fuzz/seeds/bpe_vocab (small vocabularies of the 256 bytes and a
 * few merges in both layouts, written by hand). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/subword_internal.h"
#include "fuzz.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_bpe_vocab: %s\n", what);
        abort();
    }
}

static void round_trip(const gkd_subword *t, const char *text, size_t n) {
    int cap = (int)n + 16, *ids = malloc((size_t)cap * sizeof *ids), k = 0;
    char *out = malloc(n + 1);
    size_t len = 0;
    check(ids && out, "out of memory");
    check(gkd_subword_encode(t, text, n, ids, cap, &k) == 0, "encode failed");
    check(k <= (int)n, "more ids than bytes");
    for (int i = 0; i < k; i++) check(ids[i] >= 0 && ids[i] < gkd_subword_vocab_size(t), "an id outside the vocabulary");
    check(gkd_subword_decode(t, ids, k, out, n + 1, &len) == 0, "decode failed");
    check(len == n && !memcmp(out, text, n), "decode(encode(x)) != x");
    free(ids);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char a[512], b[512];
    const uint8_t *nul = memchr(data, 0, size);
    const char *path;
    if (nul) {
        fuzz_write(fuzz_path(a, sizeof a, "vocab.json"), data, (size_t)(nul - data));
        fuzz_write(fuzz_path(b, sizeof b, "merges.txt"), nul + 1, size - (size_t)(nul - data) - 1);
        path = a;
    } else {
        fuzz_write(fuzz_path(a, sizeof a, "tokenizer.json"), data, size);
        path = a;
    }
    gkd_subword *t = NULL;
    int rc = gkd_subword_load_bytelevel(&t, path);
    if (rc) {
        fuzz_check_error(rc, "gkd_subword_load_bytelevel");
        check(t == NULL, "a failed load left a tokenizer");
        return 0;
    }
    check(gkd_subword_kind_of(t) == GKD_SUBWORD_BYTELEVEL, "wrong kind");
    static const char text[] = "Hello world's  \t\n 123 ab\xff\xc3 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87!!";
    round_trip(t, text, sizeof text - 1);
    round_trip(t, (const char *)data, size);
    gkd_subword_free(t);
    return 0;
}
