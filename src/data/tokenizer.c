/* Character, byte and subword tokenizers.
 *
 * Char and byte: ids 0..3 are PAD, BOS, EOS, SEP. A char vocabulary maps
 * the i-th smallest code point to id 4 + i; a byte vocabulary maps byte b
 * to id 4 + b. Subword: the ids and special tokens of its files
 * (subword.h), wrapped.
 *
 * Serialized form (all fields little-endian uint32):
 *     kind (1 = char, 2 = byte, 3 = subword), count, then
 *     char:    count code points (strictly increasing, valid Unicode
 *              scalar values)
 *     byte:    nothing (count 0)
 *     subword: count bytes of gkd_subword_serialize */
#include "gkd/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/subword.h"

struct gkd_tokenizer {
    gkd_tokenizer_kind kind;
    size_t n;       /* code points (char kind); 0 for bytes */
    uint32_t *cps;  /* (n) sorted, unique */
    gkd_subword *sw; /* subword kind */
    int bos, eos;    /* subword kind: the files' ids (bos -1: none) */
};

/* Strict UTF-8 decoding (no overlongs, no surrogates, <= U+10FFFF).
 * Returns the sequence length (1..4) or 0 if s does not start a valid one. */
static int utf8_decode(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int valid_scalar(uint32_t cp) { return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF); }

static int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Invalid UTF-8 error with the offending byte and its offset. */
static int invalid_utf8(const char *text, size_t off) {
    return gkd_error(GKD_EINVAL, "invalid UTF-8 (byte 0x%02X) at byte offset %zu",
                     (unsigned)(unsigned char)text[off], off);
}

int gkd_tokenizer_new_char(gkd_tokenizer **out, const char *const *texts, size_t n) {
    *out = NULL;
    int rc = 0;
    uint32_t *cps = NULL;
    size_t count = 0, cap = 0;
    /* Mark ASCII cheaply; collect the rest and sort/unique afterwards. */
    unsigned char seen_ascii[128] = {0};
    for (size_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)texts[i];
        if (!s) continue;
        size_t off = 0;
        while (s[off]) {
            uint32_t cp;
            int len = utf8_decode(s + off, &cp);
            if (len == 0) {
                rc = gkd_error_wrap(invalid_utf8(texts[i], off), "text %zu", i);
                goto done;
            }
            off += (size_t)len;
            if (cp < 128) { seen_ascii[cp] = 1; continue; }
            if (count == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                uint32_t *p = realloc(cps, ncap * sizeof *p);
                if (!p) { rc = gkd_error(GKD_ENOMEM, "tokenizer: out of memory"); goto done; }
                cps = p;
                cap = ncap;
            }
            cps[count++] = cp;
            /* Unique every so often so repeated non-ASCII text stays small. */
            if (count == cap && cap >= 4096) {
                qsort(cps, count, sizeof *cps, cmp_u32);
                size_t u = 0;
                for (size_t k = 0; k < count; k++)
                    if (u == 0 || cps[u - 1] != cps[k]) cps[u++] = cps[k];
                count = u;
            }
        }
    }
    size_t n_ascii = 0;
    for (int c = 0; c < 128; c++) n_ascii += seen_ascii[c];
    gkd_tokenizer *t = calloc(1, sizeof *t);
    uint32_t *all = malloc((n_ascii + count + 1) * sizeof *all);
    if (!t || !all) {
        free(t);
        free(all);
        rc = gkd_error(GKD_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    size_t m = 0;
    for (uint32_t c = 0; c < 128; c++)
        if (seen_ascii[c]) all[m++] = c;
    if (count) {
        qsort(cps, count, sizeof *cps, cmp_u32);
        for (size_t k = 0; k < count; k++)
            if (m == n_ascii || all[m - 1] != cps[k]) all[m++] = cps[k];
    }
    t->kind = GKD_TOKENIZER_CHAR;
    t->n = m;
    t->cps = all;
    *out = t;
done:
    free(cps);
    return rc;
}

int gkd_tokenizer_new_byte(gkd_tokenizer **out) {
    *out = NULL;
    gkd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return gkd_error(GKD_ENOMEM, "tokenizer: out of memory");
    t->kind = GKD_TOKENIZER_BYTE;
    *out = t;
    return 0;
}

/* Wrap a loaded subword tokenizer (taken over, freed on error); `what`
 * names its source in messages. */
static int wrap_subword(gkd_tokenizer **out, gkd_subword *sw, const char *what) {
    if (gkd_subword_eos(sw) < 0) {
        gkd_subword_free(sw);
        return gkd_error(GKD_EFORMAT, "tokenizer %s: the files define no end-of-text token, which sequences need",
                         what);
    }
    gkd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        gkd_subword_free(sw);
        return gkd_error(GKD_ENOMEM, "tokenizer: out of memory");
    }
    t->kind = GKD_TOKENIZER_SUBWORD;
    t->sw = sw;
    t->bos = gkd_subword_bos(sw);
    t->eos = gkd_subword_eos(sw);
    *out = t;
    return 0;
}

int gkd_tokenizer_new_subword(gkd_tokenizer **out, const char *path) {
    *out = NULL;
    gkd_subword *sw;
    int rc = gkd_subword_load(&sw, path);
    return rc ? rc : wrap_subword(out, sw, path);
}

void gkd_tokenizer_free(gkd_tokenizer *t) {
    if (!t) return;
    free(t->cps);
    gkd_subword_free(t->sw);
    free(t);
}

gkd_tokenizer_kind gkd_tokenizer_kind_of(const gkd_tokenizer *t) { return t->kind; }

const struct gkd_subword *gkd_tokenizer_subword(const gkd_tokenizer *t) { return t->sw; }

int gkd_tokenizer_vocab_size(const gkd_tokenizer *t) {
    if (t->kind == GKD_TOKENIZER_SUBWORD) return gkd_subword_vocab_size(t->sw);
    return GKD_TOK_NSPECIAL + (t->kind == GKD_TOKENIZER_BYTE ? 256 : (int)t->n);
}

int gkd_tokenizer_equal(const gkd_tokenizer *a, const gkd_tokenizer *b) {
    if (a->kind != b->kind || a->n != b->n) return 0;
    if (a->kind == GKD_TOKENIZER_SUBWORD) return gkd_subword_equal(a->sw, b->sw);
    return a->n == 0 || memcmp(a->cps, b->cps, a->n * sizeof *a->cps) == 0;
}

int gkd_tokenizer_bos(const gkd_tokenizer *t) { return t->kind == GKD_TOKENIZER_SUBWORD ? t->bos : GKD_TOK_BOS; }
int gkd_tokenizer_eos(const gkd_tokenizer *t) { return t->kind == GKD_TOKENIZER_SUBWORD ? t->eos : GKD_TOK_EOS; }

void gkd_tokenizer_describe(const gkd_tokenizer *t, char *buf, size_t cap) {
    const char *kind = t->kind == GKD_TOKENIZER_CHAR   ? "char"
                       : t->kind == GKD_TOKENIZER_BYTE ? "byte"
                                                        : gkd_subword_kind_name(gkd_subword_kind_of(t->sw));
    snprintf(buf, cap, "%s (%d tokens)", kind, gkd_tokenizer_vocab_size(t));
}

/* Id of a code point, or -1 if it is not in the vocabulary. */
static int char_id(const gkd_tokenizer *t, uint32_t cp) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->cps[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n && t->cps[lo] == cp ? GKD_TOK_NSPECIAL + (int)lo : -1;
}

/* Printable form of a code point for messages: the character itself unless it
 * is a control character, which would garble the message line. */
static void describe_char(uint32_t cp, char *buf) {
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
        strcpy(buf, "?");
        return;
    }
    int len = utf8_encode(cp, buf);
    buf[len] = '\0';
}

/* Append-or-count: writes ids[n] when room remains, always counts. */
static int encode_into(const gkd_tokenizer *t, const char *text, int *ids, int cap, int *n_out) {
    const unsigned char *s = (const unsigned char *)text;
    int n = 0;
    size_t off = 0;
    while (s[off]) {
        int id;
        if (t->kind == GKD_TOKENIZER_BYTE) {
            id = GKD_TOK_NSPECIAL + s[off];
            off++;
        } else {
            uint32_t cp;
            int len = utf8_decode(s + off, &cp);
            if (len == 0) return invalid_utf8(text, off);
            id = char_id(t, cp);
            if (id < 0) {
                char shown[8];
                describe_char(cp, shown);
                return gkd_error(GKD_EINVAL,
                                 "character '%s' (U+%04X) at byte offset %zu is not in the vocabulary",
                                 shown, (unsigned)cp, off);
            }
            off += (size_t)len;
        }
        if (n == cap)
            return gkd_error(GKD_EINVAL, "text does not fit in %d tokens", cap);
        ids[n++] = id;
    }
    *n_out = n;
    return 0;
}

/* Subword: the ids of text, as the start of a text or as its continuation;
 * the same "does not fit" message as the char and byte kinds. */
static int encode_subword(const gkd_tokenizer *t, const char *text, int continuation, int *ids, int cap,
                          int *n_out) {
    int n = 0;
    const size_t len = strlen(text);
    int rc = continuation ? gkd_subword_encode_continuation(t->sw, text, len, ids, cap, &n)
                          : gkd_subword_encode(t->sw, text, len, ids, cap, &n);
    if (rc == GKD_EINVAL && n > cap) return gkd_error(GKD_EINVAL, "text does not fit in %d tokens", cap);
    if (rc) return rc;
    *n_out = n;
    return 0;
}

int gkd_tokenizer_encode(const gkd_tokenizer *t, const char *text, int *ids, int cap, int *n_out) {
    *n_out = 0;
    int n;
    int rc = t->kind == GKD_TOKENIZER_SUBWORD ? encode_subword(t, text, 0, ids, cap, &n)
                                              : encode_into(t, text, ids, cap, &n);
    if (rc) return rc;
    *n_out = n;
    return 0;
}

/* Length of a UTF-8 prefix of s[0..n) that ends on a character boundary. */
static size_t utf8_boundary(const char *s, size_t n) {
    size_t k = n;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80) k--; /* continuation bytes */
    if (k == 0) return n;
    unsigned lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (k - 1) >= need ? n : k - 1;
}

/* Subword: the text of the ids that are in the vocabulary and not BOS/EOS,
 * decoded as a continuation, into a new string; NULL when out of memory. */
static char *decode_subword(const gkd_tokenizer *t, const int *ids, int n, size_t *len) {
    const int V = gkd_subword_vocab_size(t->sw);
    int *kept = malloc(sizeof *kept * (size_t)(n > 0 ? n : 1));
    if (!kept) return NULL;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < V && ids[i] != t->bos && ids[i] != t->eos) kept[m++] = ids[i];
    /* Sized first (a token is up to hundreds of bytes); a call with no room
     * only reports the length. */
    size_t need = 0;
    char probe[1];
    (void)gkd_subword_decode_continuation(t->sw, kept, m, probe, 0, &need);
    char *text = malloc(need + 1);
    if (text && gkd_subword_decode_continuation(t->sw, kept, m, text, need + 1, len)) {
        free(text);
        text = NULL;
    }
    free(kept);
    return text;
}

size_t gkd_tokenizer_decode(const gkd_tokenizer *t, const int *ids, int n, char *out, size_t cap) {
    if (cap == 0) return 0;
    if (t->kind == GKD_TOKENIZER_SUBWORD) {
        size_t len = 0;
        char *text = decode_subword(t, ids, n, &len);
        size_t w = 0;
        if (text) w = len < cap ? len : utf8_boundary(text, cap - 1);
        if (w) memcpy(out, text, w);
        out[w] = '\0';
        free(text);
        return w;
    }
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < GKD_TOK_NSPECIAL || id >= gkd_tokenizer_vocab_size(t)) continue;
        char buf[4];
        int len;
        if (t->kind == GKD_TOKENIZER_BYTE) {
            buf[0] = (char)(unsigned char)(id - GKD_TOK_NSPECIAL);
            len = 1;
        } else {
            len = utf8_encode(t->cps[id - GKD_TOK_NSPECIAL], buf);
        }
        /* Never split a character: stop when it does not fit with the NUL. */
        if (w + (size_t)len + 1 > cap) break;
        memcpy(out + w, buf, (size_t)len);
        w += (size_t)len;
    }
    out[w] = '\0';
    return w;
}

char *gkd_tokenizer_decode_alloc(const gkd_tokenizer *t, const int *ids, int n) {
    if (t->kind == GKD_TOKENIZER_SUBWORD) {
        size_t len;
        return decode_subword(t, ids, n, &len);
    }
    size_t cap = 4 * (size_t)(n > 0 ? n : 0) + 1; /* a char or byte token is at most 4 bytes */
    char *s = malloc(cap);
    if (s) gkd_tokenizer_decode(t, ids, n, s, cap);
    return s;
}

/* Subword layout: [BOS] prompt [reference EOS], the reference encoded as
 * the prompt's continuation. */
static int encode_pair_subword(const gkd_tokenizer *t, const char *prompt, const char *reference, int *ids,
                               int cap, int *prompt_len, int *len) {
    int p = 0, n_prompt = 0, n_ref = 0;
    const int reserve = reference ? 1 : 0; /* EOS */
    if (t->bos >= 0) {
        if (cap < 1 + reserve) return gkd_error(GKD_EINVAL, "sequence does not fit in %d tokens", cap);
        ids[p++] = t->bos;
    }
    int rc = encode_subword(t, prompt, 0, ids + p, cap - p - reserve, &n_prompt);
    if (rc) return gkd_error_wrap(rc, "prompt");
    p += n_prompt;
    if (p == 0)
        return gkd_error(GKD_EINVAL, "prompt: empty, and the tokenizer has no beginning-of-text token to start from");
    if (reference) {
        rc = encode_subword(t, reference, 1, ids + p, cap - p - 1, &n_ref);
        if (rc) return gkd_error_wrap(rc, "reference");
        ids[p + n_ref] = t->eos;
    }
    *prompt_len = p;
    *len = reference ? p + n_ref + 1 : p;
    return 0;
}

int gkd_tokenizer_encode_pair(const gkd_tokenizer *t, const char *prompt, const char *reference,
                              int *ids, int cap, int *prompt_len, int *len) {
    *prompt_len = 0;
    *len = 0;
    if (t->kind == GKD_TOKENIZER_SUBWORD) return encode_pair_subword(t, prompt, reference, ids, cap, prompt_len, len);
    /* Room for BOS + prompt + SEP, then reference + EOS. */
    int extra = reference ? 3 : 2;
    if (cap < extra) return gkd_error(GKD_EINVAL, "sequence does not fit in %d tokens", cap);
    int n_prompt, n_ref = 0;
    int rc = encode_into(t, prompt, ids + 1, cap - extra, &n_prompt);
    if (rc) return gkd_error_wrap(rc, "prompt");
    ids[0] = GKD_TOK_BOS;
    ids[1 + n_prompt] = GKD_TOK_SEP;
    int p = n_prompt + 2;
    if (reference) {
        rc = encode_into(t, reference, ids + p, cap - p - 1, &n_ref);
        if (rc) return gkd_error_wrap(rc, "reference");
        ids[p + n_ref] = GKD_TOK_EOS;
    }
    *prompt_len = p;
    *len = reference ? p + n_ref + 1 : p;
    return 0;
}

size_t gkd_tokenizer_serialized_size(const gkd_tokenizer *t) {
    return t->kind == GKD_TOKENIZER_SUBWORD ? 8 + gkd_subword_serialized_size(t->sw) : 8 + 4 * t->n;
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void gkd_tokenizer_serialize(const gkd_tokenizer *t, unsigned char *buf) {
    put_u32(buf, (uint32_t)t->kind);
    if (t->kind == GKD_TOKENIZER_SUBWORD) {
        put_u32(buf + 4, (uint32_t)gkd_subword_serialized_size(t->sw));
        gkd_subword_serialize(t->sw, buf + 8);
        return;
    }
    put_u32(buf + 4, (uint32_t)t->n);
    for (size_t i = 0; i < t->n; i++) put_u32(buf + 8 + 4 * i, t->cps[i]);
}

int gkd_tokenizer_deserialize(gkd_tokenizer **out, const unsigned char *buf, size_t n) {
    *out = NULL;
    if (n < 8) return gkd_error(GKD_ECORRUPT, "tokenizer: %zu bytes, need at least 8", n);
    uint32_t kind = get_u32(buf), count = get_u32(buf + 4);
    if (kind == GKD_TOKENIZER_SUBWORD) {
        if (n - 8 != count)
            return gkd_error(GKD_ECORRUPT, "tokenizer: %zu bytes, expected %zu for a subword tokenizer of %u", n,
                             8 + (size_t)count, (unsigned)count);
        gkd_subword *sw;
        int rc = gkd_subword_deserialize(&sw, buf + 8, count);
        return rc ? rc : wrap_subword(out, sw, "in the checkpoint");
    }
    if (kind != GKD_TOKENIZER_CHAR && kind != GKD_TOKENIZER_BYTE)
        return gkd_error(GKD_EFORMAT, "tokenizer: unknown kind %u", (unsigned)kind);
    if (kind == GKD_TOKENIZER_BYTE && count != 0)
        return gkd_error(GKD_EFORMAT, "tokenizer: byte vocabulary with %u code points", (unsigned)count);
    if (count > 0x110000u)
        return gkd_error(GKD_EFORMAT, "tokenizer: %u code points is more than Unicode has",
                         (unsigned)count);
    if (n != 8 + 4 * (size_t)count)
        return gkd_error(GKD_ECORRUPT, "tokenizer: %zu bytes, expected %zu for %u code points", n,
                         8 + 4 * (size_t)count, (unsigned)count);
    uint32_t *cps = NULL;
    if (count) {
        cps = malloc(count * sizeof *cps);
        if (!cps) return gkd_error(GKD_ENOMEM, "tokenizer: out of memory");
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t cp = get_u32(buf + 8 + 4 * (size_t)i);
        if (!valid_scalar(cp) || cp == 0) {
            free(cps);
            return gkd_error(GKD_EFORMAT, "tokenizer: code point %u (0x%X) is not a valid character",
                             (unsigned)i, (unsigned)cp);
        }
        if (i > 0 && cp <= cps[i - 1]) {
            free(cps);
            return gkd_error(GKD_EFORMAT, "tokenizer: code points not strictly increasing at %u",
                             (unsigned)i);
        }
        cps[i] = cp;
    }
    gkd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(cps);
        return gkd_error(GKD_ENOMEM, "tokenizer: out of memory");
    }
    t->kind = (gkd_tokenizer_kind)kind;
    t->n = count;
    t->cps = cps;
    *out = t;
    return 0;
}
