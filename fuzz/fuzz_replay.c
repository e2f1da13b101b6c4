/* libFuzzer target for the replay buffer blob a resume reads back (inside
 * the schedule state of a checkpoint's extra data): the input goes to
 * gkd_replay_load as is. It must be refused with one line, or give a
 * buffer that saves back to the same bytes and whose items can be drawn.
 * Seeds: buffers saved by gkd_replay_save (fuzz/seeds.c). The blob ends in
 * an FNV-1a 64 checksum of the bytes before it; the custom mutator
 * recomputes it for most mutants so they reach the fields behind it.
 *
 * A header may ask for any shape the loader accepts, up to 2^28 tokens
 * (1 GiB), and the loader allocates it before reading the items: such
 * inputs held the target to 1,500 inputs a second, in the allocator and
 * in padding every item to its seq_cap. Shapes the loader would accept
 * that hold more than FUZZ_REPLAY_TOKENS tokens are skipped here; shapes
 * it refuses still reach it, and that it refuses the largest ones is
 * test_replay_load_refuses_huge_shape (schedule suite). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/replay.h"
#include "util/blob.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8 != 0 && size >= 16) {
        blob_writer w = {data + size - 8, 0};
        blob_u64(&w, blob_fnv1a64(data, size - 8));
    }
    return size;
}

/* The loader's bounds (src/distill/replay.c) and the harness's own. */
#define LOADER_MAX_DIM (1u << 24)
#define LOADER_MAX_TOKENS (1ull << 28)
#define FUZZ_REPLAY_TOKENS (1ull << 16)

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* 1 if the header asks for a shape the loader accepts and that is larger
 * than this target allocates (magic 8, version 4, capacity 4, seq_cap 4). */
static int too_large(const uint8_t *data, size_t size) {
    if (size < 20) return 0;
    uint32_t capacity = get_u32(data + 12), seq_cap = get_u32(data + 16);
    uint64_t tokens = (uint64_t)capacity * seq_cap;
    return capacity <= LOADER_MAX_DIM && seq_cap <= LOADER_MAX_DIM && tokens <= LOADER_MAX_TOKENS &&
           tokens > FUZZ_REPLAY_TOKENS;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_replay: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (too_large(data, size)) return -1; /* not added to the corpus */
    gkd_replay *r = NULL;
    int rc = gkd_replay_load(&r, data, size, FUZZ_VOCAB);
    if (rc) {
        fuzz_check_error(rc, "gkd_replay_load");
        check(r == NULL, "failed load left a buffer");
        return 0;
    }
    unsigned char *blob = NULL;
    size_t n = 0;
    check(gkd_replay_save(r, &blob, &n) == 0, "cannot save a loaded buffer");
    check(n == size && memcmp(blob, data, n) == 0, "save(load(x)) != x");
    free(blob);
    /* Draw every item into a batch as the schedule does. */
    int count = gkd_replay_count(r);
    if (count > 0) {
        gkd_seqbatch b;
        check(gkd_seqbatch_new(&b, 3, gkd_replay_seq_cap(r)) == 0, "seqbatch");
        for (int i = 0; i < count; i++) {
            check(gkd_replay_get(r, i, &b, i % 3) == 0, "an item does not fit its own seq_cap");
            check(b.prompt_len[i % 3] <= b.len[i % 3] && b.len[i % 3] <= b.cap, "item lengths");
            for (int t = 0; t < b.len[i % 3]; t++) {
                int v = b.tokens[(i % 3) * b.cap + t];
                check(v >= 0 && v < FUZZ_VOCAB, "a loaded token is outside the vocabulary");
            }
        }
        check(gkd_replay_sample(r, 7, 3, &b, NULL) == 0, "sample");
        gkd_seqbatch_free(&b);
    }
    gkd_replay_free(r);
    return 0;
}
