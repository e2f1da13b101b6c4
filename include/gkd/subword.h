/* Subword tokenizers read from the files other tools ship: GPT-2's
 * byte-level BPE (vocab.json + merges.txt, encoder.json + vocab.bpe, or a
 * Hugging Face tokenizer.json with a ByteLevel pre-tokenizer) and
 * SentencePiece-style BPE (llama2.c's tokenizer.bin, or a Hugging Face
 * tokenizer.json with the "▁" space marker and <0xNN> byte fallback).
 * Special tokens come from the files, never assumed. Everything read is
 * untrusted: sizes bounded, every error one line naming the file. */
#ifndef GKD_SUBWORD_H
#define GKD_SUBWORD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_SUBWORD_BYTELEVEL = 1, /* GPT-2: bytes mapped to printable code points, merges by rank */
    GKD_SUBWORD_SPM = 2,       /* SentencePiece BPE: "▁" for spaces, merges by score or rank, byte fallback */
} gkd_subword_kind;

typedef struct gkd_subword gkd_subword;

/** Load a tokenizer from path: a directory holding vocab.json + merges.txt,
 *  encoder.json + vocab.bpe, tokenizer.json or tokenizer.bin, or one of
 *  those files (with its partner beside it). The kind is told by the
 *  files' contents. GKD_EFORMAT naming the path if nothing fits. */
int gkd_subword_load(gkd_subword **out, const char *path);
void gkd_subword_free(gkd_subword *t);

gkd_subword_kind gkd_subword_kind_of(const gkd_subword *t);
/** A short name of a kind for messages and tables: "byte-level BPE",
 *  "SentencePiece BPE" ("unknown" for any other value). */
const char *gkd_subword_kind_name(gkd_subword_kind kind);
/** Ids are 0 .. vocab_size - 1. */
int gkd_subword_vocab_size(const gkd_subword *t);
/** The files' beginning- and end-of-text tokens, -1 when they define none
 *  (GPT-2 has one, <|endoftext|>, for both). */
int gkd_subword_bos(const gkd_subword *t);
int gkd_subword_eos(const gkd_subword *t);
/** The files' unknown and padding tokens, -1 when they define none: <unk>
 *  and <pad> pieces of SentencePiece files (tokenizer.json: special added
 *  tokens), a tokenizer.json's model.unk_token and padding.pad_token.
 *  GPT-2 and Llama 2 define no padding token. */
int gkd_subword_unk(const gkd_subword *t);
int gkd_subword_pad(const gkd_subword *t);

/** Token ids of text[0..len) exactly as the reference tokenizer of the
 *  files gives them (no BOS/EOS added; for SentencePiece, the leading
 *  space marker the reference adds is added). Invalid UTF-8 is handled as
 *  the reference does. GKD_EINVAL if more than cap ids would be needed
 *  (*n_out then says how many). */
int gkd_subword_encode(const gkd_subword *t, const char *text, size_t len, int *ids, int cap, int *n_out);

/** Token ids of text that continues earlier text (a reference after its
 *  prompt, split on text): as gkd_subword_encode, but SentencePiece adds
 *  no dummy-prefix space marker before it (so for non-empty x,
 *  encode_continuation(" " + x) gives encode(x), but for llama2.c's
 *  tokenizer.bin when x starts with UTF-8 continuation bytes: run.c groups
 *  them with the space; docs/tokenizers.md). Byte-level BPE adds nothing
 *  before a text, so there it is gkd_subword_encode. */
int gkd_subword_encode_continuation(const gkd_subword *t, const char *text, size_t len, int *ids, int cap,
                                    int *n_out);

/** The bytes of ids[0..n) (special tokens give nothing), NUL-terminated
 *  when cap > 0; *len_out is the full length even if it did not fit
 *  (GKD_EINVAL then). An id out of range is GKD_EINVAL. */
int gkd_subword_decode(const gkd_subword *t, const int *ids, int n, char *out, size_t cap, size_t *len_out);

/** The same for ids that continue earlier text: SentencePiece keeps the
 *  leading space it strips at the start of a text, so decoding a
 *  reference encoded by gkd_subword_encode_continuation gives it back
 *  (byte-level BPE: the same as gkd_subword_decode). */
int gkd_subword_decode_continuation(const gkd_subword *t, const int *ids, int n, char *out, size_t cap,
                                    size_t *len_out);

/** Write the files t was read from into directory dir (which must exist),
 *  so another tool, or gkd importing a model from dir, reads the same
 *  tokenizer. A file of that name already in dir with the same bytes is
 *  left as it is; with other bytes it is GKD_EMISMATCH naming it, and nothing
 *  is replaced. Each file is written atomically. */
int gkd_subword_write_files(const gkd_subword *t, const char *dir);

/* Serialization (checkpoints store a tokenizer so they decode their own
 * outputs): the bytes of the files the tokenizer was parsed from, which
 * deserializing parses again (layout: docs/checkpoint-format.md). */
size_t gkd_subword_serialized_size(const gkd_subword *t);
/** Write gkd_subword_serialized_size(t) bytes to buf. */
void gkd_subword_serialize(const gkd_subword *t, unsigned char *buf);
/** A tokenizer from buf[0..n), which is untrusted: every count and length
 *  is checked against n, file names against the known ones, and the files
 *  are parsed as gkd_subword_load parses them. GKD_ECORRUPT (truncated,
 *  bytes left over), GKD_EVERSION, GKD_EFORMAT (unknown kind or file, or
 *  the parser's refusal naming the file "NAME from a checkpoint"), one
 *  line each; *out NULL then. */
int gkd_subword_deserialize(gkd_subword **out, const unsigned char *buf, size_t n);

/** 1 if a and b are of one kind and were parsed from the same files, byte
 *  for byte (the same vocabulary written in another layout compares
 *  unequal), else 0. */
int gkd_subword_equal(const gkd_subword *a, const gkd_subword *b);
/** FNV-1a 64 of the serialized form: equal tokenizers hash alike. */
uint64_t gkd_subword_hash(const gkd_subword *t);

#ifdef __cplusplus
}
#endif

#endif
