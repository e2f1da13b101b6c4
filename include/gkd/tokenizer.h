/* Tokenizers: a character vocabulary (UTF-8 code points seen in a task's
 * data), a byte vocabulary (all 256 bytes, for arbitrary text), or a
 * subword tokenizer read from a pretrained model's files (subword.h: GPT-2
 * byte-level BPE, SentencePiece BPE). The vocabulary is stored in
 * checkpoints so a checkpoint decodes its own outputs.
 *
 * Char and byte vocabularies reserve ids 0..3 for PAD, BOS, EOS and SEP,
 * and lay a training/eval sequence out as
 *     BOS prompt SEP reference EOS PAD ...
 * A subword tokenizer has the special tokens its files define and no SEP:
 *     [BOS] prompt reference EOS PAD ...
 * (BOS when the files define one; the reference is encoded as text that
 * continues the prompt, so the split between them is a split of the text).
 * PAD is id 0 for every kind: padding positions are never attended to nor
 * scored, so any id serves. The loss covers reference and EOS only. */
#ifndef GKD_TOKENIZER_H
#define GKD_TOKENIZER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GKD_TOK_PAD = 0, GKD_TOK_BOS = 1, GKD_TOK_EOS = 2, GKD_TOK_SEP = 3, GKD_TOK_NSPECIAL = 4 };

typedef enum { GKD_TOKENIZER_CHAR = 1, GKD_TOKENIZER_BYTE = 2, GKD_TOKENIZER_SUBWORD = 3 } gkd_tokenizer_kind;

typedef struct gkd_tokenizer gkd_tokenizer;

/** Character vocabulary: the sorted set of code points in texts[0..n). */
int gkd_tokenizer_new_char(gkd_tokenizer **out, const char *const *texts, size_t n);
/** Byte vocabulary: 4 specials + 256 bytes. */
int gkd_tokenizer_new_byte(gkd_tokenizer **out);
/** A subword tokenizer from a model's files (a directory or a file, as
 *  gkd_subword_load reads them). GKD_EFORMAT if the files define no
 *  end-of-text token: sequences need one to end. */
int gkd_tokenizer_new_subword(gkd_tokenizer **out, const char *path);
void gkd_tokenizer_free(gkd_tokenizer *t);

gkd_tokenizer_kind gkd_tokenizer_kind_of(const gkd_tokenizer *t);
int gkd_tokenizer_vocab_size(const gkd_tokenizer *t);
int gkd_tokenizer_equal(const gkd_tokenizer *a, const gkd_tokenizer *b);

/** The subword tokenizer inside t (NULL for char and byte kinds). */
const struct gkd_subword *gkd_tokenizer_subword(const gkd_tokenizer *t);

/** The id a sequence starts with (-1: none; a subword tokenizer whose
 *  files define no beginning-of-text token) and the id that ends it. */
int gkd_tokenizer_bos(const gkd_tokenizer *t);
int gkd_tokenizer_eos(const gkd_tokenizer *t);

/** What counts as one token, for messages and results: "char (37 tokens)",
 *  "byte (260 tokens)", "byte-level BPE (50257 tokens)". */
void gkd_tokenizer_describe(const gkd_tokenizer *t, char *buf, size_t cap);

/** Encode UTF-8 text (no specials added). A character outside a char
 *  vocabulary or invalid UTF-8 is GKD_EINVAL with a message naming the
 *  character and its byte offset (callers wrap it with file:line). */
int gkd_tokenizer_encode(const gkd_tokenizer *t, const char *text, int *ids, int cap, int *n_out);

/** Decode ids to UTF-8, skipping special tokens and ids outside the
 *  vocabulary; always NUL-terminates, never splits a character. Returns
 *  the number of bytes written (excluding NUL). The ids are taken as text
 *  that continues earlier text (a generated continuation keeps the space
 *  SentencePiece would strip at the start of a text). */
size_t gkd_tokenizer_decode(const gkd_tokenizer *t, const int *ids, int n, char *out, size_t cap);

/** The same, into a new NUL-terminated string of the whole text (free it);
 *  NULL when out of memory. */
char *gkd_tokenizer_decode_alloc(const gkd_tokenizer *t, const int *ids, int n);

/** BOS prompt SEP [reference EOS] (subword: [BOS] prompt [reference EOS]);
 *  reference may be NULL (prompt only). *prompt_len counts the tokens
 *  before the reference; *len the whole sequence. GKD_EINVAL if it does
 *  not fit in cap, or if the prompt gives no token to start from. */
int gkd_tokenizer_encode_pair(const gkd_tokenizer *t, const char *prompt, const char *reference,
                              int *ids, int cap, int *prompt_len, int *len);

/* Serialization (used by checkpoints). */
size_t gkd_tokenizer_serialized_size(const gkd_tokenizer *t);
void gkd_tokenizer_serialize(const gkd_tokenizer *t, unsigned char *buf);
int gkd_tokenizer_deserialize(gkd_tokenizer **out, const unsigned char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
