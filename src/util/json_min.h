/* A small, strict JSON parser for headers of binary files (the safetensors
 * header): objects, arrays, strings and integers only. Everything else
 * (true, false, null, fractions, exponents), duplicate keys in an object,
 * a string with a NUL (\u0000), a lone surrogate, malformed UTF-8 and
 * nesting deeper than the caller's limit are refused with one line naming
 * the byte offset. gkd_json_parse_full also takes true, false, null and
 * numbers with fractions and exponents (a Hugging Face config.json), with
 * the same strictness otherwise. Private to src/model/. */
#ifndef GKD_MODEL_JSON_MIN_H
#define GKD_MODEL_JSON_MIN_H

#include <stddef.h>
#include <stdint.h>

enum {
    GKD_JSON_OBJECT = 1, GKD_JSON_ARRAY, GKD_JSON_STRING, GKD_JSON_INT,
    GKD_JSON_REAL, GKD_JSON_BOOL, GKD_JSON_NULL /* gkd_json_parse_full only */
};

/* The document is its values in pre-order: a container's children follow
 * it, the first at index i + 1, each next one at the previous one's end. */
typedef struct {
    int type;          /* GKD_JSON_* */
    int neg;           /* INT: 1 if the value is below zero */
    uint64_t num;      /* INT: magnitude (at most 2^64 - 1); BOOL: 0 or 1 */
    double real;       /* INT, REAL (gkd_json_parse_full): the value as a finite double */
    const char *str;   /* STRING: decoded UTF-8, NUL-terminated */
    size_t len;        /* STRING: bytes; OBJECT, ARRAY: number of children */
    const char *key;   /* a member of an object: its key; else NULL */
    size_t end;        /* index one past the last value of this subtree */
    size_t pos;        /* byte offset of the value in the text */
} gkd_json_value;

typedef struct {
    gkd_json_value *v; /* v[0] is the root */
    size_t n;
    char *arena;       /* decoded strings and keys */
} gkd_json_doc;

/** Parse text[0..len) (not NUL-terminated) into doc; whitespace may
 *  surround the root value. max_depth: the deepest nesting of containers
 *  allowed (1: the root may not contain a container). On failure doc is
 *  empty and the message is "byte N: <problem>" (GKD_EFORMAT) or
 *  GKD_ENOMEM. */
int gkd_json_parse(gkd_json_doc *doc, const char *text, size_t len, int max_depth);
/** The same grammar plus true, false, null (GKD_JSON_BOOL, GKD_JSON_NULL)
 *  and numbers with a fraction or an exponent (GKD_JSON_REAL; RFC 8259's
 *  grammar, at most 64 characters, finite as a double). */
int gkd_json_parse_full(gkd_json_doc *doc, const char *text, size_t len, int max_depth);
void gkd_json_free(gkd_json_doc *doc);

/** The name of a value's type for messages: "object", "array", ... */
const char *gkd_json_type_name(int type);

/** s as a message may quote it (DESIGN.md: one line): control bytes as
 *  '?', cut at whole characters to fit out[0..cap) with "..." (cap >= 8). */
void gkd_json_shown(char *out, size_t cap, const char *s);

#endif
