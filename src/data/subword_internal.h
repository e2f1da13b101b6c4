/* Private: how the kinds of subword tokenizer plug into gkd_subword
 * (include/gkd/subword.h). subword.c holds the common part and the
 * dispatch by file contents; each kind's file fills the struct. */
#ifndef GKD_SUBWORD_INTERNAL_H
#define GKD_SUBWORD_INTERNAL_H

#include <stddef.h>

#include "gkd/subword.h"

struct gkd_subword {
    gkd_subword_kind kind;
    int vocab_size;
    int bos, eos; /* -1: none */
    void *impl;   /* the kind's own data */
    int (*encode)(const void *impl, const char *text, size_t len, int *ids, int cap, int *n_out);
    int (*decode)(const void *impl, const int *ids, int n, char *out, size_t cap, size_t *len_out);
    void (*free_impl)(void *impl);
};

/** Byte-level BPE (subword_bytelevel.c): path is a directory or one of
 *  vocab.json, merges.txt, encoder.json, vocab.bpe, tokenizer.json. */
int gkd_subword_load_bytelevel(gkd_subword **out, const char *path);

/** SentencePiece-style BPE (subword_spm.c): path is a directory or a
 *  tokenizer.bin or tokenizer.json file. */
int gkd_subword_load_spm(gkd_subword **out, const char *path);

#endif
