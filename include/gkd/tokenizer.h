/* Tokenizers: a character vocabulary (UTF-8 code points seen in a task's
 * data) or a byte vocabulary (all 256 bytes, for arbitrary text). Ids 0..3
 * are the special tokens; the vocabulary is stored in checkpoints so a
 * checkpoint decodes its own outputs.
 *
 * A training/eval sequence is laid out as
 *     BOS prompt SEP reference EOS PAD ...
 * and the loss covers reference and EOS only. */
#ifndef GKD_TOKENIZER_H
#define GKD_TOKENIZER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GKD_TOK_PAD = 0, GKD_TOK_BOS = 1, GKD_TOK_EOS = 2, GKD_TOK_SEP = 3, GKD_TOK_NSPECIAL = 4 };

typedef enum { GKD_TOKENIZER_CHAR = 1, GKD_TOKENIZER_BYTE = 2 } gkd_tokenizer_kind;

typedef struct gkd_tokenizer gkd_tokenizer;

/** Character vocabulary: the sorted set of code points in texts[0..n). */
int gkd_tokenizer_new_char(gkd_tokenizer **out, const char *const *texts, size_t n);
/** Byte vocabulary: 4 specials + 256 bytes. */
int gkd_tokenizer_new_byte(gkd_tokenizer **out);
void gkd_tokenizer_free(gkd_tokenizer *t);

gkd_tokenizer_kind gkd_tokenizer_kind_of(const gkd_tokenizer *t);
int gkd_tokenizer_vocab_size(const gkd_tokenizer *t);
int gkd_tokenizer_equal(const gkd_tokenizer *a, const gkd_tokenizer *b);

/** Encode UTF-8 text (no specials added). A character outside a char
 *  vocabulary or invalid UTF-8 is GKD_EINVAL with a message naming the
 *  character and its byte offset (callers wrap it with file:line). */
int gkd_tokenizer_encode(const gkd_tokenizer *t, const char *text, int *ids, int cap, int *n_out);

/** Decode ids to UTF-8, skipping special tokens; always NUL-terminates.
 *  Returns the number of bytes written (excluding NUL). */
size_t gkd_tokenizer_decode(const gkd_tokenizer *t, const int *ids, int n, char *out, size_t cap);

/** BOS prompt SEP [reference EOS]; reference may be NULL (prompt only).
 *  *prompt_len counts BOS..SEP; *len the whole sequence. GKD_EINVAL if it
 *  does not fit in cap. */
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
