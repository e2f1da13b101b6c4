/* libFuzzer target for Hugging Face safetensors files: the input is written
 * to a file and opened with gkd_safetensors_open. It must be refused with
 * one line, or give tensors that tile the data buffer exactly, can each be
 * found by name, and (F32, F16, BF16) read as floats; metadata entries
 * must be found by key.
 *
 * Seeds: the .safetensors files of tests/fixtures/tensors (tools/make_tensor_fixtures.py).
 * The first 8 bytes give the header's length, which a random mutation
 * rarely keeps right: the custom mutator re-measures the JSON object after
 * most mutations (up to the brace that closes the first '{', strings
 * skipped) and rewrites the length, so mutants reach the header's parser
 * and the checks of shapes and offsets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/safetensors.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static char in_path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(in_path, sizeof in_path, "in.safetensors");
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8 == 0 || size < 10 || data[8] != '{') return size;
    int depth = 0, in_str = 0;
    for (size_t i = 8; i < size; i++) {
        uint8_t c = data[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') depth++;
        else if ((c == '}' || c == ']') && --depth == 0) {
            uint64_t n = i + 1 - 8;
            for (int k = 0; k < 8; k++) data[k] = (uint8_t)(n >> (8 * k));
            break;
        }
    }
    return size;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(in_path, data, size);
    gkd_safetensors *f = (gkd_safetensors *)1;
    int rc = gkd_safetensors_open(&f, in_path);
    if (rc) {
        fuzz_check_error(rc, "gkd_safetensors_open");
        check(f == NULL, "failed open left a handle");
        return 0;
    }
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = n << 8 | data[k];
    uint64_t at = 8 + n;
    size_t count = gkd_safetensors_count(f);
    for (size_t i = 0; i < count; i++) {
        const gkd_safetensors_tensor *t = gkd_safetensors_tensor_at(f, i);
        check(t != NULL, "tensor_at(i < count) is NULL");
        check(t->offset == at, "tensors do not follow each other");
        check(t->nbytes <= size - at, "tensor beyond the file");
        at += t->nbytes;
        check(t->rank >= 0 && t->rank <= GKD_SAFETENSORS_MAX_RANK, "rank out of range");
        uint64_t numel = 1;
        for (int k = 0; k < t->rank; k++) numel *= t->shape[k];
        check(numel == t->numel, "numel is not the product of the shape");
        size_t j = (size_t)-1;
        check(gkd_safetensors_find(&j, f, t->name) == 0 && j == i, "a tensor is not found by its name");
        if (t->float_readable) {
            check(t->nbytes == t->numel * (strcmp(t->dtype, "F32") ? 2 : 4), "float tensor size");
            float *out = malloc(sizeof(float) * (size_t)t->numel + 1);
            check(out != NULL, "out of memory");
            rc = gkd_safetensors_read_f32(out, (size_t)t->numel, f, i);
            if (rc) fprintf(stderr, "%s\n", gkd_last_error());
            check(rc == 0, "a float tensor of a valid file does not read");
            if (t->numel) {
                rc = gkd_safetensors_read_f32(out, (size_t)t->numel - 1, f, i);
                check(rc == GKD_EMISMATCH, "a wrong count is not refused");
                fuzz_check_error(rc, "gkd_safetensors_read_f32");
            }
            free(out);
        } else {
            rc = gkd_safetensors_read_f32(NULL, (size_t)t->numel, f, i);
            check(rc == GKD_EFORMAT, "a non-float dtype is read as float");
            fuzz_check_error(rc, "gkd_safetensors_read_f32");
        }
    }
    check(at == size, "the tensors do not end at the end of the file");
    check(gkd_safetensors_tensor_at(f, count) == NULL, "tensor_at(count) is not NULL");
    for (size_t i = 0; i < gkd_safetensors_metadata_count(f); i++) {
        const char *k = NULL, *v = NULL;
        check(gkd_safetensors_metadata_at(&k, &v, f, i) == 0 && k && v, "metadata_at");
        check(gkd_safetensors_metadata(f, k) == v, "a metadata entry is not found by its key");
    }
    gkd_safetensors_close(f);
    return 0;
}
