/* libFuzzer target for llama2.c model files: the input is written to a file
 * and opened with gkd_llama2c_open. It must be refused with one line, or
 * give a config that keeps its rules (positive sizes, n_heads dividing dim,
 * n_kv_heads dividing n_heads, even head size) and tensors that lie inside
 * the file without overlapping, can each be found by name, and read.
 *
 * Seeds: the .bin files of tests/fixtures/tensors (tools/make_tensor_fixtures.py). A
 * file holds exactly what its header implies, so a mutated header almost
 * never fits its length: after most mutations the custom mutator computes
 * the length the header implies (here, from the format's description) and
 * resizes the input to it when that fits, so mutants of the config get
 * past the length check and exercise the layout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/llama2c.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static char in_path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(in_path, sizeof in_path, "in.bin");
    return 0;
}

static int32_t get32(const uint8_t *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

/* Bytes the header at data implies, or 0 if it is not a plausible config
 * or the size does not fit max. */
static size_t implied_size(const uint8_t *data, size_t size, size_t max) {
    if (size < 28) return 0;
    int v1 = (uint32_t)get32(data) == 0x616b3432u;
    if (v1 && size < 256) return 0;
    const uint8_t *h = data + (v1 ? 8 : 0);
    int64_t c[7];
    for (int k = 0; k < 7; k++) {
        c[k] = get32(h + 4 * k);
        if (k == 5 && c[k] < 0 && !v1) c[k] = -c[k];
        if (c[k] <= 0 || c[k] > 4096) return 0;
    }
    int shared = v1 ? data[36] == 1 : get32(h + 20) > 0;
    if (c[0] % c[3] || c[3] % c[4]) return 0;
    int64_t hs = c[0] / c[3], D = c[0], H = c[1], L = c[2], V = c[5];
    int64_t per_layer = 2 * D + 2 * (c[3] * hs) * D + 2 * (c[4] * hs) * D + 3 * H * D;
    int64_t floats = V * D + L * per_layer + D + (v1 ? 0 : c[6] * (hs / 2) * 2) + (shared ? 0 : V * D);
    int64_t bytes = (v1 ? 256 : 28) + 4 * floats;
    return bytes > 0 && (uint64_t)bytes <= max ? (size_t)bytes : 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 4 == 0) return size;
    size_t want = implied_size(data, size, max_size);
    if (want > size) memset(data + size, 0x3f, want - size);
    return want ? want : size;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_llama2c: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(in_path, data, size);
    gkd_llama2c *m = (gkd_llama2c *)1;
    int rc = gkd_llama2c_open(&m, in_path);
    if (rc) {
        fuzz_check_error(rc, "gkd_llama2c_open");
        check(m == NULL, "failed open left a handle");
        return 0;
    }
    const gkd_llama2c_config *c = gkd_llama2c_config_of(m);
    check(c->dim > 0 && c->hidden_dim > 0 && c->n_layers > 0 && c->n_heads > 0 && c->n_kv_heads > 0 &&
              c->vocab_size > 0 && c->seq_len > 0,
          "a config size is not positive");
    check(c->dim % c->n_heads == 0 && c->n_heads % c->n_kv_heads == 0, "heads do not divide");
    check(c->head_size * c->n_heads == c->dim && c->head_size % 2 == 0, "head size");
    size_t count = gkd_llama2c_count(m);
    check(count == 2 + 9 * (size_t)c->n_layers + !c->shared_classifier, "tensor count");
    uint64_t total = 0;
    uint64_t header = c->version == 1 ? 256 : 28;
    for (size_t i = 0; i < count; i++) {
        const gkd_llama2c_tensor *t = gkd_llama2c_tensor_at(m, i);
        check(t != NULL, "tensor_at(i < count) is NULL");
        uint64_t bytes = 4 * t->numel;
        check(t->offset >= header && t->offset <= size && bytes <= size - t->offset, "tensor outside the file");
        check(t->numel == (uint64_t)t->shape[0] * (uint64_t)(t->rank == 2 ? t->shape[1] : 1), "numel");
        /* No overlap: tensors are disjoint if their bytes add up within the
         * file and no two start at the same place (checked pairwise below
         * for small tables). */
        total += bytes;
        size_t j = (size_t)-1;
        check(gkd_llama2c_find(&j, m, t->name) == 0 && j == i, "a tensor is not found by its name");
        float *out = malloc(bytes + 1);
        check(out != NULL, "out of memory");
        rc = gkd_llama2c_read(out, (size_t)t->numel, m, i);
        check(rc == 0, "a tensor of a valid file does not read");
        rc = gkd_llama2c_read(out, (size_t)t->numel + 1, m, i);
        check(rc == GKD_EMISMATCH, "a wrong count is not refused");
        fuzz_check_error(rc, "gkd_llama2c_read");
        free(out);
    }
    uint64_t rope = c->version == 0 ? 8 * (uint64_t)c->seq_len * (uint64_t)(c->head_size / 2) : 0;
    check(header + total + rope == size, "the tensors and RoPE tables do not fill the file");
    for (size_t i = 0; i < count && count < 64; i++)
        for (size_t j = i + 1; j < count; j++) {
            const gkd_llama2c_tensor *a = gkd_llama2c_tensor_at(m, i), *b = gkd_llama2c_tensor_at(m, j);
            check(a->offset + 4 * a->numel <= b->offset || b->offset + 4 * b->numel <= a->offset,
                  "two tensors overlap");
        }
    gkd_llama2c_close(m);
    return 0;
}
