/* The common part of the subword tokenizers (include/gkd/subword.h): the
 * calls every kind answers through subword_internal.h. Loading from files
 * is subword_files.c; the serialized form subword_blob.c. */
#include <stdlib.h>

#include "gkd/error.h"
#include "subword_internal.h"

void gkd_subword_free(gkd_subword *t) {
    if (!t) return;
    if (t->free_impl) t->free_impl(t->impl);
    for (int i = 0; i < t->n_src; i++) free(t->src[i].data);
    free(t);
}

const char *gkd_subword_kind_name(gkd_subword_kind kind) {
    switch (kind) {
    case GKD_SUBWORD_BYTELEVEL: return "byte-level BPE";
    case GKD_SUBWORD_SPM: return "SentencePiece BPE";
    }
    return "unknown";
}

gkd_subword_kind gkd_subword_kind_of(const gkd_subword *t) { return t->kind; }
int gkd_subword_vocab_size(const gkd_subword *t) { return t->vocab_size; }
int gkd_subword_bos(const gkd_subword *t) { return t->bos; }
int gkd_subword_eos(const gkd_subword *t) { return t->eos; }
int gkd_subword_unk(const gkd_subword *t) { return t->unk; }
int gkd_subword_pad(const gkd_subword *t) { return t->pad; }

static int encode(const gkd_subword *t, const char *text, size_t len, int continuation, int *ids, int cap,
                  int *n_out) {
    if (!t || (!text && len) || (!ids && cap) || cap < 0 || !n_out)
        return gkd_error(GKD_EINVAL, "tokenizer encode: bad argument");
    return t->encode(t->impl, text, len, continuation, ids, cap, n_out);
}

int gkd_subword_encode(const gkd_subword *t, const char *text, size_t len, int *ids, int cap, int *n_out) {
    return encode(t, text, len, 0, ids, cap, n_out);
}

int gkd_subword_encode_continuation(const gkd_subword *t, const char *text, size_t len, int *ids, int cap,
                                    int *n_out) {
    return encode(t, text, len, 1, ids, cap, n_out);
}

static int decode(const gkd_subword *t, const int *ids, int n, char *out, size_t cap, size_t *len_out,
                  int continuation) {
    if (!t || (!ids && n) || n < 0 || (!out && cap) || !len_out)
        return gkd_error(GKD_EINVAL, "tokenizer decode: bad argument");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return gkd_error(GKD_EINVAL, "tokenizer decode: id %d at %d outside the vocabulary (%d)", ids[i], i,
                             t->vocab_size);
    return t->decode(t->impl, ids, n, continuation, out, cap, len_out);
}

int gkd_subword_decode(const gkd_subword *t, const int *ids, int n, char *out, size_t cap, size_t *len_out) {
    return decode(t, ids, n, out, cap, len_out, 0);
}

int gkd_subword_decode_continuation(const gkd_subword *t, const int *ids, int n, char *out, size_t cap,
                                    size_t *len_out) {
    return decode(t, ids, n, out, cap, len_out, 1);
}
