/* SentencePiece-style BPE (include/gkd/subword.h, kind GKD_SUBWORD_SPM),
 * read from either of the files Llama-family models ship:
 *
 * - llama2.c's tokenizer.bin (karpathy/llama2.c, tokenizer.py writes it,
 *   run.c reads it): int32 max_token_length, then for each token a float32
 *   score, an int32 byte length and the piece's bytes, little-endian, to
 *   the end of the file (the vocabulary size is not in the file; run.c
 *   takes it from the model, here it is the number of records). tokenizer.py
 *   writes SentencePiece's "▁" as a plain space and <s>, </s> as "\n<s>\n",
 *   "\n</s>\n". Merging follows run.c: the adjacent pair whose joined piece
 *   has the highest score (leftmost on ties) while one scores above -1e10.
 * - a Hugging Face tokenizer.json of Llama 2's layout: model.type "BPE"
 *   with byte_fallback, normalizer Sequence[Prepend "▁", Replace " " →
 *   "▁"], no pre-tokenizer; merges applied by rank (lowest first, leftmost
 *   on ties) as the tokenizers library does.
 *
 * Both: a space is prepended to non-empty text (SentencePiece's dummy
 * prefix, run.c's " " token), each character is looked up as a piece, a
 * character without one becomes its bytes' <0xNN> pieces (<unk> if one is
 * missing). Pieces are kept with "▁" as a space, so decoding is
 * concatenation: <0xNN> gives its raw byte, control pieces (<unk>, <s>,
 * </s>, Hugging Face's special added tokens) give nothing, and one space
 * at the start of the output is removed (run.c strips it after BOS, the
 * Hugging Face decoder's Strip at the start).
 *
 * Differences from the references, on purpose (docs/tokenizers.md):
 * byte pieces and control pieces are never merge results (run.c would
 * join "<", "0x41", ">" into the byte piece if the text spelled it; the
 * SentencePiece models it exports never do); invalid UTF-8 follows run.c
 * for tokenizer.bin (a malformed sequence goes byte by byte to <0xNN>) and
 * for tokenizer.json becomes U+FFFD per maximal subpart, as a Python or
 * JavaScript string decoded with replacement gives the tokenizers library;
 * added tokens spelled in the text are not split out (SentencePiece and
 * llama2.c do not either). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "subword_internal.h"
#include "util/json_min.h"

/* Limits on what is read: a file of at most 64 MiB, at most 1M pieces of
 * at most 1 KiB each. */
#define SPM_MAX_FILE ((size_t)64 << 20)
#define SPM_MAX_PIECES (1 << 20)
#define SPM_MAX_PIECE 1024
/* run.c starts its search for the best pair at -1e10 with a strict >. */
#define SPM_MIN_SCORE (-1e10f)

enum { PIECE_NORMAL = 0, PIECE_BYTE = 1, PIECE_CONTROL = 2 };

typedef struct {
    uint64_t key; /* (left id << 32 | right id) + 1; 0: empty slot */
    int rank, id;
} spm_pair;

typedef struct {
    int n;            /* pieces */
    char **piece;     /* (n) NUL-terminated, "▁" as ' ' */
    int *plen;        /* (n) */
    unsigned char *type; /* (n) PIECE_* */
    unsigned char *byteval; /* (n) the byte of a PIECE_BYTE */
    float *score;     /* (n) tokenizer.bin; NULL for tokenizer.json */
    int *slot;        /* piece hash table: ids, -1 empty */
    size_t nslot;
    spm_pair *pairs;  /* tokenizer.json: merges by (left, right) */
    size_t npairs;
    int byte_id[256]; /* <0xNN> piece, -1 if none */
    int unk;          /* -1 if none */
    int json;         /* 1: tokenizer.json rules (ranks, U+FFFD), 0: tokenizer.bin */
    int byte_fallback;
    int fuse_unk;
} spm;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static int lookup(const spm *t, const char *s, size_t n) {
    if (!t->nslot) return -1;
    for (size_t i = fnv(s, n) & (t->nslot - 1);; i = (i + 1) & (t->nslot - 1)) {
        int id = t->slot[i];
        if (id < 0) return -1;
        if ((size_t)t->plen[id] == n && !memcmp(t->piece[id], s, n)) return id;
    }
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static const spm_pair *pair_find(const spm *t, int a, int b) {
    if (!t->npairs) return NULL;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (size_t i = mix(key) & (t->npairs - 1);; i = (i + 1) & (t->npairs - 1)) {
        if (!t->pairs[i].key) return NULL;
        if (t->pairs[i].key == key) return &t->pairs[i];
    }
}

static void spm_free(void *impl) {
    spm *t = impl;
    if (!t) return;
    if (t->piece)
        for (int i = 0; i < t->n; i++) free(t->piece[i]);
    free(t->piece);
    free(t->plen);
    free(t->type);
    free(t->byteval);
    free(t->score);
    free(t->slot);
    free(t->pairs);
    free(t);
}

static spm *spm_new(int n, int with_scores) {
    spm *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n = n;
    t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    t->piece = calloc((size_t)n, sizeof *t->piece);
    t->plen = calloc((size_t)n, sizeof *t->plen);
    t->type = calloc((size_t)n, 1);
    t->byteval = calloc((size_t)n, 1);
    t->score = with_scores ? calloc((size_t)n, sizeof *t->score) : NULL;
    if (!t->piece || !t->plen || !t->type || !t->byteval || (with_scores && !t->score)) {
        spm_free(t);
        return NULL;
    }
    return t;
}

/* The byte of a piece spelled <0xNN> (two upper-case hex digits, as
 * SentencePiece writes them), or -1. */
static int byte_piece(const char *s, int n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Index every piece; a piece spelled twice is refused (the second id named). */
static int index_pieces(spm *t, const char *path) {
    size_t ns = 16;
    while (ns < 2 * (size_t)t->n) ns *= 2;
    t->slot = malloc(ns * sizeof *t->slot);
    if (!t->slot) return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
    memset(t->slot, 0xff, ns * sizeof *t->slot);
    t->nslot = ns;
    for (int id = 0; id < t->n; id++) {
        size_t i = fnv(t->piece[id], (size_t)t->plen[id]) & (ns - 1);
        for (; t->slot[i] >= 0; i = (i + 1) & (ns - 1)) {
            int o = t->slot[i];
            if (t->plen[o] == t->plen[id] && !memcmp(t->piece[o], t->piece[id], (size_t)t->plen[id])) {
                char shown[64];
                gkd_json_shown(shown, sizeof shown, t->piece[id]);
                return gkd_error(GKD_EFORMAT, "tokenizer %s: piece %d \"%s\" repeats piece %d", path, id, shown, o);
            }
        }
        t->slot[i] = id;
        int b = t->type[id] == PIECE_CONTROL ? -1 : byte_piece(t->piece[id], t->plen[id]);
        if (b >= 0) {
            t->type[id] = PIECE_BYTE;
            t->byteval[id] = (unsigned char)b;
            t->byte_id[b] = id;
        }
    }
    return 0;
}

/* ---- encoding ---- */

typedef struct {
    double key; /* higher merges first */
    int pos, left, right, id;
} cand;

typedef struct {
    cand *h;
    size_t n, cap;
} heap;

static int cand_before(const cand *a, const cand *b) {
    return a->key > b->key || (a->key == b->key && a->pos < b->pos);
}

static int heap_push(heap *q, cand c) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        cand *h = realloc(q->h, cap * sizeof *h);
        if (!h) return -1;
        q->h = h;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &q->h[p])) break;
        q->h[i] = q->h[p];
        i = p;
    }
    q->h[i] = c;
    return 0;
}

static cand heap_pop(heap *q) {
    cand top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < q->n && cand_before(&q->h[l], best)) m = l, best = &q->h[l];
        if (r < q->n && cand_before(&q->h[r], best)) m = r;
        if (m == i) break;
        q->h[i] = q->h[m];
        i = m;
    }
    if (q->n) q->h[i] = last;
    return top;
}

/* The merge of pieces a and b, if there is one: its id and key. */
static int merge_of(const spm *t, int a, int b, char *buf, int *id, double *key) {
    if (t->json) {
        const spm_pair *p = pair_find(t, a, b);
        if (!p) return 0;
        *id = p->id;
        *key = -(double)p->rank;
        return 1;
    }
    if (t->type[a] == PIECE_CONTROL || t->type[b] == PIECE_CONTROL) return 0;
    size_t n = (size_t)t->plen[a] + (size_t)t->plen[b];
    if (n > SPM_MAX_PIECE) return 0;
    memcpy(buf, t->piece[a], (size_t)t->plen[a]);
    memcpy(buf + t->plen[a], t->piece[b], (size_t)t->plen[b]);
    int m = lookup(t, buf, n);
    if (m < 0 || t->type[m] != PIECE_NORMAL || !(t->score[m] > SPM_MIN_SCORE)) return 0;
    *id = m;
    *key = t->score[m];
    return 1;
}

/* Length of the UTF-8 sequence at s[0..n) as run.c groups bytes: a byte
 * that is not a continuation byte starts a group, which takes the
 * continuation bytes after it up to 4 bytes in all. */
static size_t group_llama2c(const unsigned char *s, size_t n) {
    size_t k = 1;
    while (k < n && k < 4 && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is malformed;
 * then *bad is the length of its maximal subpart (at least 1), which
 * WHATWG and Python replace by one U+FFFD. */
static size_t utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0];
    *bad = 1;
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    for (size_t k = 1; k < len; k++) {
        if (k >= n) return 0;
        unsigned b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
        *bad = k + 1;
    }
    return len;
}

typedef struct {
    int *id;
    size_t n, cap;
} idvec;

static int push_id(idvec *v, int id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        int *p = realloc(v->id, cap * sizeof *p);
        if (!p) return -1;
        v->id = p;
        v->cap = cap;
    }
    v->id[v->n++] = id;
    return 0;
}

/* The pieces of one character s[0..n): its own piece, or its bytes. */
static int push_char(const spm *t, idvec *v, const char *s, size_t n) {
    int id = lookup(t, s, n);
    if (id >= 0 && t->type[id] == PIECE_NORMAL) return push_id(v, id);
    int all = t->byte_fallback;
    for (size_t k = 0; k < n && all; k++) all = t->byte_id[(unsigned char)s[k]] >= 0;
    if (all) {
        for (size_t k = 0; k < n; k++)
            if (push_id(v, t->byte_id[(unsigned char)s[k]])) return -1;
        return 0;
    }
    if (t->unk < 0) return 1;
    if (t->fuse_unk && v->n && v->id[v->n - 1] == t->unk) return 0;
    return push_id(v, t->unk);
}

static int spm_encode(const void *impl, const char *text, size_t len, int continuation, int *ids, int cap,
                      int *n_out) {
    const spm *t = impl;
    *n_out = 0;
    if (len == 0) return 0;
    idvec v = {0};
    heap q = {0};
    int *next = NULL, *prev = NULL, rc = 0;
    char buf[2 * SPM_MAX_PIECE];
    const unsigned char *s = (const unsigned char *)text;
    static const char fffd[] = "\xEF\xBF\xBD";
    /* The dummy prefix marks the start of a text; a continuation has none. */
    if (!continuation && push_char(t, &v, " ", 1) < 0) goto oom;
    for (size_t i = 0; i < len;) {
        size_t k, bad;
        int r;
        if (!t->json) {
            k = group_llama2c(s + i, len - i);
            r = push_char(t, &v, text + i, k);
        } else if ((k = utf8_valid(s + i, len - i, &bad)) > 0) {
            r = push_char(t, &v, text + i, k);
        } else {
            k = bad;
            r = push_char(t, &v, fffd, 3);
        }
        if (r < 0) goto oom;
        if (r > 0) {
            rc = gkd_error(GKD_EINVAL, "tokenizer encode: byte %zu has no piece and the vocabulary no <unk>", i);
            goto done;
        }
        i += k;
    }
    size_t n = v.n;
    if (n > (size_t)INT32_MAX - 1) {
        rc = gkd_error(GKD_EINVAL, "tokenizer encode: text too long");
        goto done;
    }
    next = malloc(n * sizeof *next);
    prev = malloc(n * sizeof *prev);
    if (!next || !prev) goto oom;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int)i + 1 : -1;
        prev[i] = (int)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        cand c = {0, (int)i, v.id[i], v.id[i + 1], 0};
        if (merge_of(t, c.left, c.right, buf, &c.id, &c.key) && heap_push(&q, c)) goto oom;
    }
    while (q.n) {
        cand c = heap_pop(&q);
        int r = next[c.pos];
        if (v.id[c.pos] != c.left || r < 0 || v.id[r] != c.right) continue; /* stale */
        v.id[c.pos] = c.id;
        v.id[r] = -1;
        next[c.pos] = next[r];
        if (next[r] >= 0) prev[next[r]] = c.pos;
        int l = prev[c.pos];
        cand d = {0, 0, 0, 0, 0};
        if (l >= 0) {
            d.pos = l, d.left = v.id[l], d.right = c.id;
            if (merge_of(t, d.left, d.right, buf, &d.id, &d.key) && heap_push(&q, d)) goto oom;
        }
        if (next[c.pos] >= 0) {
            d.pos = c.pos, d.left = c.id, d.right = v.id[next[c.pos]];
            if (merge_of(t, d.left, d.right, buf, &d.id, &d.key) && heap_push(&q, d)) goto oom;
        }
    }
    int count = 0;
    for (int i = 0; i >= 0; i = next[i]) {
        if (count < cap) ids[count] = v.id[i];
        count++;
    }
    *n_out = count;
    if (count > cap) rc = gkd_error(GKD_EINVAL, "tokenizer encode: %d ids do not fit in %d", count, cap);
    goto done;
oom:
    rc = gkd_error(GKD_ENOMEM, "tokenizer encode: out of memory");
done:
    free(v.id);
    free(q.h);
    free(next);
    free(prev);
    return rc;
}

static int spm_decode(const void *impl, const int *ids, int n, int continuation, char *out, size_t cap,
                      size_t *len_out) {
    const spm *t = impl;
    size_t len = 0;
    /* the first piece that gives bytes: its leading space goes, unless the
     * ids continue a text */
    int first = !continuation;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        const char *p = t->piece[id];
        size_t pl = (size_t)t->plen[id];
        char b;
        if (t->type[id] == PIECE_CONTROL) continue;
        if (t->type[id] == PIECE_BYTE) {
            b = (char)t->byteval[id];
            p = &b;
            pl = 1;
        }
        if (first && p[0] == ' ') p++, pl--;
        first = 0;
        for (size_t k = 0; k < pl; k++, len++)
            if (len + 1 < cap) out[len] = p[k];
    }
    *len_out = len;
    if (cap) out[len < cap ? len : cap - 1] = '\0';
    if (len >= cap) return gkd_error(GKD_EINVAL, "tokenizer decode: %zu bytes do not fit in %zu", len, cap);
    return 0;
}

static int finish(gkd_subword **out, spm *t, int bos, int eos, int pad) {
    gkd_subword *w = calloc(1, sizeof *w);
    if (!w) {
        spm_free(t);
        return gkd_error(GKD_ENOMEM, "tokenizer: out of memory");
    }
    w->kind = GKD_SUBWORD_SPM;
    w->vocab_size = t->n;
    w->bos = bos;
    w->eos = eos;
    w->unk = t->unk;
    w->pad = pad;
    w->impl = t;
    w->encode = spm_encode;
    w->decode = spm_decode;
    w->free_impl = spm_free;
    *out = w;
    return 0;
}

/* ---- llama2.c tokenizer.bin ---- */

static int32_t get32(const unsigned char *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

/* A source of at most SPM_MAX_FILE bytes. */
static int check_size(const gkd_subword_source *src) {
    if (src->len > SPM_MAX_FILE)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: larger than %zu MiB", src->label, SPM_MAX_FILE >> 20);
    return 0;
}

static int parse_bin(gkd_subword **out, const gkd_subword_source *src) {
    const char *path = src->label;
    size_t len = src->len;
    spm *t = NULL;
    int rc = check_size(src);
    if (rc) return rc;
    const unsigned char *b = (const unsigned char *)src->data;
    if (len < 4) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: %zu bytes, too short for a llama2.c tokenizer.bin", path, len);
        goto done;
    }
    int32_t maxlen = get32(b);
    if (maxlen <= 0 || maxlen > SPM_MAX_PIECE) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: max_token_length %d outside 1..%d", path, (int)maxlen,
                       SPM_MAX_PIECE);
        goto done;
    }
    /* First pass: count and check the records. */
    int n = 0;
    size_t at = 4;
    while (at < len) {
        if (len - at < 8) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: truncated: token %d at byte %zu has %zu of 8 header bytes",
                           path, n, at, len - at);
            goto done;
        }
        float score;
        memcpy(&score, b + at, 4);
        int32_t pl = get32(b + at + 4);
        if (!isfinite(score)) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: token %d has a non-finite score", path, n);
            goto done;
        }
        if (pl <= 0 || pl > maxlen) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: token %d has length %d outside 1..max_token_length %d", path,
                           n, (int)pl, (int)maxlen);
            goto done;
        }
        if ((size_t)pl > len - at - 8) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: truncated: token %d needs %d bytes, %zu left", path, n,
                           (int)pl, len - at - 8);
            goto done;
        }
        if (memchr(b + at + 8, '\0', (size_t)pl)) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: token %d holds a NUL byte", path, n);
            goto done;
        }
        at += 8 + (size_t)pl;
        if (++n > SPM_MAX_PIECES) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: more than %d tokens", path, SPM_MAX_PIECES);
            goto done;
        }
    }
    if (n == 0) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: no tokens", path);
        goto done;
    }
    t = spm_new(n, 1);
    if (!t) {
        rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
        goto done;
    }
    t->byte_fallback = 1;
    int bos = -1, eos = -1, pad = -1;
    at = 4;
    for (int id = 0; id < n; id++) {
        int32_t pl = get32(b + at + 4);
        memcpy(&t->score[id], b + at, 4);
        t->piece[id] = malloc((size_t)pl + 1);
        if (!t->piece[id]) {
            rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
            goto done;
        }
        memcpy(t->piece[id], b + at + 8, (size_t)pl);
        t->piece[id][pl] = '\0';
        t->plen[id] = pl;
        at += 8 + (size_t)pl;
        /* tokenizer.py writes <s> and </s> between newlines; <unk> as is. */
        const char *p = t->piece[id];
        if (!strcmp(p, "\n<s>\n") || !strcmp(p, "<s>")) {
            t->type[id] = PIECE_CONTROL;
            if (bos < 0) bos = id;
        } else if (!strcmp(p, "\n</s>\n") || !strcmp(p, "</s>")) {
            t->type[id] = PIECE_CONTROL;
            if (eos < 0) eos = id;
        } else if (!strcmp(p, "<unk>")) {
            t->type[id] = PIECE_CONTROL;
            if (t->unk < 0) t->unk = id;
        } else if (!strcmp(p, "<pad>")) { /* SentencePiece's spelling, when a model has one */
            t->type[id] = PIECE_CONTROL;
            if (pad < 0) pad = id;
        }
    }
    rc = index_pieces(t, path);
    if (rc) goto done;
    rc = finish(out, t, bos, eos, pad);
    t = NULL;
done:
    spm_free(t);
    return rc;
}

/* ---- Hugging Face tokenizer.json ---- */

static const gkd_json_value *member(const gkd_json_doc *d, size_t obj, const char *key) {
    const gkd_json_value *o = &d->v[obj];
    if (o->type != GKD_JSON_OBJECT) return NULL;
    for (size_t i = obj + 1; i < o->end; i = d->v[i].end)
        if (!strcmp(d->v[i].key, key)) return &d->v[i];
    return NULL;
}

static size_t idx(const gkd_json_doc *d, const gkd_json_value *v) { return (size_t)(v - d->v); }

static int is_string(const gkd_json_value *v, const char *s) {
    return v && v->type == GKD_JSON_STRING && v->len == strlen(s) && !memcmp(v->str, s, v->len);
}

/* The normalizer of Llama 2's tokenizer.json: Sequence[Prepend "▁",
 * Replace {String: " "} → "▁"] (either order gives the same text). */
static int llama_normalizer(const gkd_json_doc *d, const gkd_json_value *nz) {
    if (!nz || nz->type != GKD_JSON_OBJECT || !is_string(member(d, idx(d, nz), "type"), "Sequence")) return 0;
    const gkd_json_value *list = member(d, idx(d, nz), "normalizers");
    if (!list || list->type != GKD_JSON_ARRAY || list->len != 2) return 0;
    int prepend = 0, replace = 0;
    for (size_t i = idx(d, list) + 1; i < list->end; i = d->v[i].end) {
        const gkd_json_value *ty = member(d, i, "type");
        if (is_string(ty, "Prepend") && is_string(member(d, i, "prepend"), "\xE2\x96\x81")) prepend++;
        else if (is_string(ty, "Replace")) {
            const gkd_json_value *pat = member(d, i, "pattern");
            if (pat && pat->type == GKD_JSON_OBJECT && is_string(member(d, idx(d, pat), "String"), " ") &&
                is_string(member(d, i, "content"), "\xE2\x96\x81"))
                replace++;
        }
    }
    return prepend == 1 && replace == 1;
}

/* s with every "▁" (E2 96 81) as a space, malloc'd; *n its length. */
static char *unmark(const char *s, size_t len, int *n) {
    char *p = malloc(len + 1);
    if (!p) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        if (i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            p[k++] = ' ';
            i += 3;
        } else p[k++] = s[i++];
    }
    p[k] = '\0';
    *n = (int)k;
    return p;
}

static int parse_json(gkd_subword **out, const gkd_subword_source *src) {
    const char *path = src->label;
    spm *t = NULL;
    gkd_json_doc d = {0};
    char shown[64];
    int rc = check_size(src);
    if (rc) return rc;
    rc = gkd_json_parse_full(&d, src->data, src->len, 16);
    if (rc) {
        rc = gkd_error_wrap(rc, "tokenizer %s", path);
        goto done;
    }
#define BAD(fmt, ...)                                                      \
    do {                                                                   \
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: " fmt, path, __VA_ARGS__); \
        goto done;                                            \
    } while (0)
    if (d.v[0].type != GKD_JSON_OBJECT) BAD("%s", "not a JSON object");
    const gkd_json_value *model = member(&d, 0, "model");
    if (!model || model->type != GKD_JSON_OBJECT) BAD("%s", "no \"model\" object");
    size_t mi = idx(&d, model);
    if (!is_string(member(&d, mi, "type"), "BPE")) BAD("%s", "model.type is not \"BPE\"");
    const gkd_json_value *pre = member(&d, 0, "pre_tokenizer");
    if (pre && pre->type != GKD_JSON_NULL)
        BAD("%s", "has a pre_tokenizer; only Llama 2's layout (no pre_tokenizer) is read");
    if (!llama_normalizer(&d, member(&d, 0, "normalizer")))
        BAD("%s", "normalizer is not Llama 2's Sequence[Prepend \"\xE2\x96\x81\", Replace \" \" -> \"\xE2\x96\x81\"]");
    static const char *const unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix", "dropout"};
    for (size_t k = 0; k < 3; k++) {
        const gkd_json_value *u = member(&d, mi, unsupported[k]);
        if (u && u->type != GKD_JSON_NULL && !(u->type == GKD_JSON_STRING && u->len == 0))
            BAD("model.%s is set; not supported", unsupported[k]);
    }
    const gkd_json_value *vocab = member(&d, mi, "vocab");
    if (!vocab || vocab->type != GKD_JSON_OBJECT || vocab->len == 0) BAD("%s", "model.vocab is not a non-empty object");
    const gkd_json_value *added = member(&d, 0, "added_tokens");
    if (added && added->type != GKD_JSON_ARRAY && added->type != GKD_JSON_NULL)
        BAD("%s", "added_tokens is not an array");
    size_t nadded = added && added->type == GKD_JSON_ARRAY ? added->len : 0;
    if (vocab->len + nadded > SPM_MAX_PIECES) BAD("more than %d pieces", SPM_MAX_PIECES);
    /* Ids: the vocab's must be 0..n-1; added tokens may repeat a vocab
     * entry (same id, same text) or extend it. */
    int n = (int)vocab->len;
    for (size_t i = nadded ? idx(&d, added) + 1 : 0; nadded && i < added->end; i = d.v[i].end) {
        const gkd_json_value *id = member(&d, i, "id");
        if (!id || id->type != GKD_JSON_INT || id->neg || id->num >= SPM_MAX_PIECES)
            BAD("added token at byte %zu has no id in 0..%d", d.v[i].pos, SPM_MAX_PIECES - 1);
        if ((int)id->num + 1 > n) n = (int)id->num + 1;
    }
    t = spm_new(n, 0);
    if (!t) {
        rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
        goto done;
    }
    t->json = 1;
    for (size_t i = idx(&d, vocab) + 1; i < vocab->end; i = d.v[i].end) {
        const gkd_json_value *v = &d.v[i];
        gkd_json_shown(shown, sizeof shown, v->key);
        if (v->type != GKD_JSON_INT || v->neg || v->num >= vocab->len)
            BAD("model.vocab \"%s\": id is not an integer in 0..%zu", shown, vocab->len - 1);
        int id = (int)v->num;
        if (t->piece[id]) BAD("model.vocab \"%s\": id %d given twice", shown, id);
        size_t kl = strlen(v->key);
        if (kl == 0 || kl > SPM_MAX_PIECE) BAD("model.vocab \"%s\": length %zu outside 1..%d", shown, kl, SPM_MAX_PIECE);
        t->piece[id] = unmark(v->key, kl, &t->plen[id]);
        if (!t->piece[id]) {
            rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
            goto done;
        }
    }
    int bos = -1, eos = -1, pad = -1;
    for (size_t i = nadded ? idx(&d, added) + 1 : 0; nadded && i < added->end; i = d.v[i].end) {
        int id = (int)member(&d, i, "id")->num;
        const gkd_json_value *c = member(&d, i, "content"), *sp = member(&d, i, "special");
        if (!c || c->type != GKD_JSON_STRING || c->len == 0 || c->len > SPM_MAX_PIECE || strlen(c->str) != c->len)
            BAD("added token %d has no content of 1..%d bytes", id, SPM_MAX_PIECE);
        gkd_json_shown(shown, sizeof shown, c->str);
        int pl;
        char *p = unmark(c->str, c->len, &pl);
        if (!p) {
            rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
            goto done;
        }
        if (t->piece[id] && (t->plen[id] != pl || memcmp(t->piece[id], p, (size_t)pl))) {
            free(p);
            BAD("added token %d \"%s\" differs from model.vocab's piece %d", id, shown, id);
        }
        if (!t->piece[id]) t->piece[id] = p, t->plen[id] = pl;
        else free(p);
        if (sp && sp->type == GKD_JSON_BOOL && sp->num) {
            t->type[id] = PIECE_CONTROL;
            if (!strcmp(c->str, "<s>") && bos < 0) bos = id;
            if (!strcmp(c->str, "</s>") && eos < 0) eos = id;
            if (!strcmp(c->str, "<pad>") && pad < 0) pad = id;
        }
    }
    for (int id = 0; id < n; id++)
        if (!t->piece[id]) BAD("id %d is neither in model.vocab nor in added_tokens", id);
    rc = index_pieces(t, path);
    if (rc) goto done;
    const gkd_json_value *bf = member(&d, mi, "byte_fallback"), *fu = member(&d, mi, "fuse_unk");
    t->byte_fallback = bf && bf->type == GKD_JSON_BOOL && bf->num;
    t->fuse_unk = fu && fu->type == GKD_JSON_BOOL && fu->num;
    const gkd_json_value *unk = member(&d, mi, "unk_token");
    if (unk && unk->type == GKD_JSON_STRING) {
        gkd_json_shown(shown, sizeof shown, unk->str);
        if ((t->unk = lookup(t, unk->str, unk->len)) < 0) BAD("unk_token \"%s\" is not in the vocabulary", shown);
    } else if (unk && unk->type != GKD_JSON_NULL) BAD("%s", "model.unk_token is not a string");
    /* Merges: "left right" strings or [left, right] pairs, ranked by place. */
    const gkd_json_value *merges = member(&d, mi, "merges");
    if (!merges || merges->type != GKD_JSON_ARRAY) BAD("%s", "model.merges is not an array");
    size_t np = 16;
    while (np < 2 * merges->len) np *= 2;
    t->pairs = calloc(np, sizeof *t->pairs);
    if (!t->pairs) {
        rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
        goto done;
    }
    t->npairs = np;
    int rank = 0;
    char joined[2 * SPM_MAX_PIECE + 1];
    for (size_t i = idx(&d, merges) + 1; i < merges->end; i = d.v[i].end, rank++) {
        const gkd_json_value *m = &d.v[i];
        const char *a = NULL, *bb = NULL;
        size_t al = 0, bl = 0;
        if (m->type == GKD_JSON_STRING) {
            const char *sp = memchr(m->str, ' ', m->len);
            if (sp && !memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) {
                a = m->str, al = (size_t)(sp - m->str), bb = sp + 1, bl = m->len - al - 1;
            }
        } else if (m->type == GKD_JSON_ARRAY && m->len == 2 && d.v[i + 1].type == GKD_JSON_STRING &&
                   d.v[d.v[i + 1].end].type == GKD_JSON_STRING) {
            a = d.v[i + 1].str, al = d.v[i + 1].len, bb = d.v[d.v[i + 1].end].str, bl = d.v[d.v[i + 1].end].len;
        }
        if (!a || !al || !bl || al > SPM_MAX_PIECE || bl > SPM_MAX_PIECE)
            BAD("merge %d is not two pieces (\"a b\" or [\"a\", \"b\"])", rank);
        int la, lb, lj;
        char *pa = unmark(a, al, &la), *pb = unmark(bb, bl, &lb);
        int ia = pa ? lookup(t, pa, (size_t)la) : -1, ib = pb ? lookup(t, pb, (size_t)lb) : -1, ij = -1;
        if (pa && pb) {
            memcpy(joined, pa, (size_t)la);
            memcpy(joined + la, pb, (size_t)lb);
            lj = la + lb;
            ij = lookup(t, joined, (size_t)lj);
        }
        free(pa);
        free(pb);
        if (ia < 0 || ib < 0 || ij < 0)
            BAD("merge %d: %s is not in the vocabulary", rank, ia < 0 ? "its left piece" : ib < 0 ? "its right piece" : "the joined piece");
        uint64_t key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
        size_t s = mix(key) & (np - 1);
        for (; t->pairs[s].key; s = (s + 1) & (np - 1))
            if (t->pairs[s].key == key) BAD("merge %d repeats merge %d", rank, t->pairs[s].rank);
        t->pairs[s] = (spm_pair){key, rank, ij};
    }
    /* The padding object names the pad token (pad_id must agree). */
    const gkd_json_value *padding = member(&d, 0, "padding");
    if (padding && padding->type == GKD_JSON_OBJECT) {
        const gkd_json_value *pt = member(&d, idx(&d, padding), "pad_token"), *pi = member(&d, idx(&d, padding), "pad_id");
        if (!pt || pt->type != GKD_JSON_STRING) BAD("%s", "padding has no pad_token string");
        gkd_json_shown(shown, sizeof shown, pt->str);
        int pl;
        char *p = unmark(pt->str, pt->len, &pl);
        if (!p) {
            rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
            goto done;
        }
        pad = lookup(t, p, (size_t)pl);
        free(p);
        if (pad < 0) BAD("padding.pad_token \"%s\" is not in the vocabulary", shown);
        if (pi && !(pi->type == GKD_JSON_INT && !pi->neg && pi->num == (uint64_t)pad))
            BAD("padding.pad_token \"%s\" is piece %d, not padding.pad_id", shown, pad);
    } else if (padding && padding->type != GKD_JSON_NULL) BAD("%s", "padding is not an object");
#undef BAD
    rc = finish(out, t, bos, eos, pad);
    t = NULL;
done:
    spm_free(t);
    gkd_json_free(&d);
    return rc;
}

int gkd_subword_parse_spm(gkd_subword **out, const gkd_subword_source *src) {
    *out = NULL;
    return strcmp(src->name, "tokenizer.json") ? parse_bin(out, src) : parse_json(out, src);
}
