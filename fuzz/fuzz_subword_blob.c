/* libFuzzer target for the serialized subword tokenizer that checkpoints
 * carry: the input goes to gkd_subword_deserialize as is. It must be
 * refused with one line, or give a tokenizer that serializes back to the
 * same bytes (hash: their FNV-1a 64) and whose encodings, plain and
 * continued, of a fixed text and of the input itself keep every id in
 * the vocabulary and decode; byte-level BPE decodes back to the bytes.
 *
 * Seeds (fuzz/seeds.c): tiny tokenizer.bin and tokenizer.json of the
 * SentencePiece kind and the byte-level files of fuzz/seeds/bpe_vocab,
 * loaded and serialized. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/subword.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_subword_blob: %s\n", what);
        abort();
    }
}

static void encode_decode(const gkd_subword *t, const char *text, size_t n) {
    int cap = 2 * (int)n + 16, *ids = malloc((size_t)cap * sizeof *ids);
    size_t room = 8 * n + 16, len = 0;
    char *out = malloc(room);
    check(ids && out, "out of memory");
    for (int cont = 0; cont < 2; cont++) {
        int k = 0, rc = cont ? gkd_subword_encode_continuation(t, text, n, ids, cap, &k)
                             : gkd_subword_encode(t, text, n, ids, cap, &k);
        if (rc) { /* a vocabulary without byte fallback or <unk> cannot encode everything */
            fuzz_check_error(rc, "gkd_subword_encode");
            continue;
        }
        for (int i = 0; i < k; i++) check(ids[i] >= 0 && ids[i] < gkd_subword_vocab_size(t), "an id outside the vocabulary");
        check(gkd_subword_decode(t, ids, k, out, room, &len) == 0, "decode failed");
        if (gkd_subword_kind_of(t) == GKD_SUBWORD_BYTELEVEL)
            check(len == n && !memcmp(out, text, n), "byte-level decode(encode(x)) != x");
    }
    free(ids);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_subword *t = NULL;
    int rc = gkd_subword_deserialize(&t, data, size);
    if (rc) {
        fuzz_check_error(rc, "gkd_subword_deserialize");
        check(t == NULL, "a failed deserialize left a tokenizer");
        return 0;
    }
    size_t n = gkd_subword_serialized_size(t);
    check(n == size, "serialized size differs from the input's");
    unsigned char *buf = malloc(n);
    check(buf != NULL, "out of memory");
    gkd_subword_serialize(t, buf);
    check(memcmp(buf, data, n) == 0, "serialize(deserialize(x)) != x");
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ data[i]) * 0x100000001b3ull;
    check(gkd_subword_hash(t) == h, "hash is not the FNV-1a 64 of the serialized form");
    gkd_subword *u = NULL;
    check(gkd_subword_deserialize(&u, buf, n) == 0 && gkd_subword_equal(t, u), "a second load is not equal");
    gkd_subword_free(u);
    free(buf);
    static const char text[] = "Hello world's  \t\n 123 ab\xff\xc3 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87!!";
    encode_decode(t, text, sizeof text - 1);
    encode_decode(t, (const char *)data, size < 512 ? size : 512);
    gkd_subword_free(t);
    return 0;
}
