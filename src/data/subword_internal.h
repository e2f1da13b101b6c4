/* Private: how the kinds of subword tokenizer plug into gkd_subword
 * (include/gkd/subword.h). A tokenizer is parsed from the bytes of its
 * source files, which it keeps, so that it can be serialized as those
 * files and parsed again from a checkpoint:
 *
 *   subword_files.c    finds and reads the files of a path (gkd_subword_load)
 *   subword_blob.c     the serialized form, equality and hash
 *   subword_sources.c  checks a set of files and hands it to its kind's parser
 *   subword_bytelevel.c, subword_spm.c   the kinds: parsers, encode, decode
 *   subword.c          the public calls every kind answers */
#ifndef GKD_SUBWORD_INTERNAL_H
#define GKD_SUBWORD_INTERNAL_H

#include <stddef.h>

#include "gkd/subword.h"

/* Bytes of one source file at most (the larger of the kinds' limits). */
#define GKD_SUBWORD_MAX_FILE ((size_t)256 << 20)
/* At most this many files make one tokenizer (vocabulary + merges). */
#define GKD_SUBWORD_MAX_SOURCES 2

/* One source file: which one (a name of the known set, static), its bytes
 * with a NUL after them (owned), and how messages name it (the path, or
 * "checkpoint tokenizer (merges.txt)"; borrowed while parsing only). */
typedef struct {
    const char *name;
    char *data;
    size_t len;
    const char *label;
} gkd_subword_source;

struct gkd_subword {
    gkd_subword_kind kind;
    int vocab_size;
    int bos, eos; /* -1: none */
    int unk, pad; /* -1: none */
    void *impl;   /* the kind's own data */
    /* continuation: text that continues earlier text (no SentencePiece
     * dummy prefix) */
    int (*encode)(const void *impl, const char *text, size_t len, int continuation, int *ids, int cap, int *n_out);
    /* continuation: keep the leading space SentencePiece strips at the
     * start of a text */
    int (*decode)(const void *impl, const int *ids, int n, int continuation, char *out, size_t cap,
                  size_t *len_out);
    void (*free_impl)(void *impl);
    gkd_subword_source src[GKD_SUBWORD_MAX_SOURCES]; /* what it was parsed from; label NULL */
    int n_src;
};

/** The known file name equal to name[0..n) (a static string), or NULL. */
const char *gkd_subword_file_name(const char *name, size_t n);

/** Parse a tokenizer of kind from src[0..n), which must be one of the sets
 *  of files the kind reads, in this order: byte-level {vocab.json,
 *  merges.txt}, {encoder.json, vocab.bpe} or {tokenizer.json};
 *  SentencePiece {tokenizer.bin} or {tokenizer.json}. Takes the sources'
 *  data in every case: kept by the tokenizer, or freed on failure. */
int gkd_subword_from_sources(gkd_subword **out, gkd_subword_kind kind, gkd_subword_source *src, int n);

/** Byte-level BPE (subword_bytelevel.c) from vocabulary and merges files
 *  (merges NULL: vocab is a tokenizer.json). Borrows the bytes. */
int gkd_subword_parse_bytelevel(gkd_subword **out, const gkd_subword_source *vocab, const gkd_subword_source *merges);

/** SentencePiece-style BPE (subword_spm.c) from a tokenizer.bin or
 *  tokenizer.json (told by src->name). Borrows the bytes. */
int gkd_subword_parse_spm(gkd_subword **out, const gkd_subword_source *src);

/** Byte-level BPE from files (subword_files.c): path is a directory or one
 *  of vocab.json, merges.txt, encoder.json, vocab.bpe, tokenizer.json. */
int gkd_subword_load_bytelevel(gkd_subword **out, const char *path);

/** SentencePiece-style BPE from files (subword_files.c): path is a
 *  directory or a tokenizer.bin or tokenizer.json file. */
int gkd_subword_load_spm(gkd_subword **out, const char *path);

#endif
