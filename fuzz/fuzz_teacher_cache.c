/* libFuzzer target for the offline teacher cache (docs/teacher-cache-format.md):
 * the input goes to gkd_teacher_cache_parse as is. It must be refused with
 * one line, or give a cache whose every sequence can be read into a batch
 * of its context with tokens inside the vocabulary, and whose rows can be
 * copied to the positions of that sequence's loss mask. Seeds: caches of
 * both sources written by gkd_teacher_cache_build (fuzz/seeds.c). The file
 * ends in a CRC-32 of the bytes before it; the custom mutator recomputes
 * it for most mutants so they reach the fields behind it.
 *
 * The parser allocates only after a first pass has bounded every count by
 * the bytes left, so an input of n bytes never asks for more than a
 * multiple of n. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/checkpoint.h"
#include "gkd/teacher_cache.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8 != 0 && size >= 16) {
        uint32_t crc = gkd_crc32(0, data, size - 4);
        for (int i = 0; i < 4; i++) data[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    return size;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_teacher_cache: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_teacher_cache *c = NULL;
    int rc = gkd_teacher_cache_parse(&c, data, size);
    if (rc) {
        fuzz_check_error(rc, "gkd_teacher_cache_parse");
        check(c == NULL, "failed parse left a cache");
        return 0;
    }
    const gkd_teacher_cache_header *h = gkd_teacher_cache_header_of(c);
    const size_t n = gkd_teacher_cache_size(c);
    check(n <= h->train_n, "more sequences than examples");
    gkd_seqbatch b;
    gkd_sparse_rows rows;
    int *targets = malloc(sizeof(int) * (size_t)h->cap);
    float *mask = malloc(sizeof(float) * (size_t)h->cap);
    check(targets && mask && gkd_seqbatch_new(&b, 1, h->cap) == 0, "out of memory");
    check(gkd_sparse_rows_alloc(&rows, h->cap, h->V, h->k, h->tau) == 0, "rows");
    size_t seen = 0, total = 0;
    /* Examples are probed in order, at most 4097 of them: a sparse cache of
     * a huge split is not walked to its end. */
    uint64_t probed = 0;
    for (uint64_t ex = 0; ex < h->train_n && seen < n && ex <= 4096; ex++, probed++) {
        if (gkd_teacher_cache_sequence(c, (size_t)ex, &b, 0) != 0) continue;
        seen++;
        check(b.prompt_len[0] >= 1 && b.prompt_len[0] <= b.len[0] && b.len[0] <= b.cap, "sequence lengths");
        for (int t = 0; t < b.len[0]; t++) check(b.tokens[t] >= 0 && b.tokens[t] < h->V, "a token outside V");
        gkd_seqbatch_targets(&b, targets, mask);
        rows.N = h->cap;
        check(gkd_teacher_cache_rows(c, (size_t)ex, mask, b.len[0], &rows, 0) == 0, "rows of the sequence's mask");
        for (int t = 0; t < b.len[0]; t++) total += mask[t] != 0;
    }
    if (probed == h->train_n) check(seen == n || seen > 0, "no sequence found by its example");
    if (seen == n) check(total == gkd_teacher_cache_rows_total(c), "rows do not add up");
    gkd_sparse_rows_free(&rows);
    gkd_seqbatch_free(&b);
    free(targets);
    free(mask);
    gkd_teacher_cache_free(c);
    return 0;
}
