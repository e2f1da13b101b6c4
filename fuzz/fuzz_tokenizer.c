/* libFuzzer target for the serialized tokenizer that checkpoints carry:
 * the input goes to gkd_tokenizer_deserialize as is. It must be refused
 * with one line, or give a tokenizer that serializes back to the same
 * bytes and decodes and encodes its whole vocabulary consistently.
 * Seeds: char and byte vocabularies from gkd_tokenizer_new_char/_byte
 * (fuzz/seeds.c). A subword tokenizer (kind 3) must round-trip too; its
 * contents are fuzz_subword_blob's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/tokenizer.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_tokenizer *t = NULL;
    int rc = gkd_tokenizer_deserialize(&t, data, size);
    if (rc) {
        fuzz_check_error(rc, "gkd_tokenizer_deserialize");
        check(t == NULL, "failed deserialize left a tokenizer");
        return 0;
    }
    size_t n = gkd_tokenizer_serialized_size(t);
    check(n == size, "serialized size differs from the input's");
    unsigned char *buf = malloc(n);
    check(buf != NULL, "out of memory");
    gkd_tokenizer_serialize(t, buf);
    check(memcmp(buf, data, n) == 0, "serialize(deserialize(x)) != x");
    free(buf);

    /* A subword tokenizer (kind 3) is the subword blob's, which
     * fuzz_subword_blob checks; the rest is about char and byte ids. */
    if (gkd_tokenizer_kind_of(t) == GKD_TOKENIZER_SUBWORD) {
        gkd_tokenizer_free(t);
        return 0;
    }
    /* Every id decodes to one character that encodes back to that id. */
    int V = gkd_tokenizer_vocab_size(t);
    check(V >= GKD_TOK_NSPECIAL, "vocabulary smaller than the specials");
    int *ids = malloc(sizeof(int) * (size_t)V), *back = malloc(sizeof(int) * (size_t)V);
    char *text = malloc(4 * (size_t)V + 1);
    check(ids && back && text, "out of memory");
    int m = 0;
    for (int id = GKD_TOK_NSPECIAL; id < V; id++) {
        char one[8];
        size_t len = gkd_tokenizer_decode(t, &id, 1, one, sizeof one);
        check(len >= 1 && len <= 4, "an id decodes to no character");
        /* Byte 0 ends a C string: it cannot be encoded from text. */
        if (one[0] == '\0') continue;
        ids[m++] = id;
    }
    size_t len = gkd_tokenizer_decode(t, ids, m, text, 4 * (size_t)V + 1);
    check(len == strlen(text), "decode length");
    int nb = 0;
    rc = gkd_tokenizer_encode(t, text, back, V, &nb);
    if (rc) {
        fprintf(stderr, "fuzz_tokenizer: its own vocabulary does not encode: %s\n", gkd_last_error());
        abort();
    }
    check(nb == m && memcmp(ids, back, sizeof(int) * (size_t)m) == 0, "encode(decode(ids)) != ids");
    free(ids);
    free(back);
    free(text);
    gkd_tokenizer_free(t);
    return 0;
}
