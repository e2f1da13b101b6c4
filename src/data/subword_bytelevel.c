/* Byte-level BPE, GPT-2's tokenizer (include/gkd/subword.h).
 *
 * Encoding splits the text with GPT-2's pre-tokenizer regex
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * matched by hand on code points (classes from unicode_classes.h), then
 * merges each piece's bytes by rank: each pass finds the adjacent pair of
 * lowest rank and merges every occurrence of it from left to right, as
 * GPT-2's encoder.py does. Short pieces are merged by scanning; long ones
 * with a linked list and a heap, so a piece of n bytes costs O(n log n).
 * Special tokens in the text are ordinary text (as tiktoken's
 * encode_ordinary and gpt-3-encoder). A byte that does not start valid
 * UTF-8 is one code point of no class (as U+FFFD would be), so any byte
 * string is encoded and decodes back to itself.
 *
 * Tokens are kept as the bytes they stand for: the files' strings map
 * printable code points to bytes (GPT-2's bytes_to_unicode), undone at
 * load. Merges are kept as (left id, right id) -> (rank, merged id). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "subword_internal.h"
#include "unicode_classes.h"
#include "util/json_min.h"

#define BL_MAX_FILE ((size_t)256 << 20) /* bytes of one file */
#define BL_MAX_VOCAB (1 << 22)          /* ids */
#define BL_MAX_TOKEN 4096               /* bytes of one token */
#define BL_SHORT 24                     /* pieces up to this many bytes are merged by scanning */
#define BL_EMPTY UINT64_MAX

typedef struct {
    int n;               /* tokens: ids 0 .. n-1 */
    uint32_t *off, *len; /* (n) each token's bytes in pool */
    unsigned char *special;
    char *pool;
    int byte_id[256];
    uint32_t *vslot; /* vocabulary hash: id + 1, 0 empty */
    size_t vmask;
    uint64_t *mkey;  /* merges hash: left << 32 | right, BL_EMPTY empty */
    uint32_t *mrank;
    int32_t *mid;
    size_t mmask;
    int ignore_merges; /* tokenizer.json: a piece that is a token is that token */
} bl_impl;

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdu;
    k ^= k >> 33;
    return k;
}

static size_t table_size(size_t n) {
    size_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

static int vocab_find(const bl_impl *t, const char *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & t->vmask;; i = (i + 1) & t->vmask) {
        uint32_t v = t->vslot[i];
        if (!v) return -1;
        int id = (int)v - 1;
        if (t->len[id] == n && !memcmp(t->pool + t->off[id], s, n)) return id;
    }
}

/* The merge of (a, b): its rank and the merged id, or 0 if none. */
static inline int merge_find(const bl_impl *t, int a, int b, uint32_t *rank, int *id) {
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = hash_pair(k) & t->mmask;; i = (i + 1) & t->mmask) {
        uint64_t s = t->mkey[i];
        if (s == k) {
            *rank = t->mrank[i];
            *id = t->mid[i];
            return 1;
        }
        if (s == BL_EMPTY) return 0;
    }
}

/* ---- code points and the pre-tokenizer ---- */

/* Strict UTF-8: the length of the sequence at s[0..n) (1..4), *cp its
 * code point; a byte that starts no valid sequence is length 1 with
 * *cp = UINT32_MAX (no class). */
static inline int utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    *cp = UINT32_MAX;
    int k;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) k = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) k = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) k = 4, v = c & 0x07, min = 0x10000;
    else return 1;
    if ((size_t)k > n) return 1;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 1;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 1;
    *cp = v;
    return k;
}

static inline int cp_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return GKD_UC_LETTER;
        if (cp >= '0' && cp <= '9') return GKD_UC_NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return GKD_UC_SPACE;
        return GKD_UC_OTHER;
    }
    if (cp == UINT32_MAX) return GKD_UC_OTHER;
    size_t lo = 0, hi = sizeof gkd_unicode_classes / sizeof gkd_unicode_classes[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp > gkd_unicode_classes[mid].hi) lo = mid + 1;
        else if (cp < gkd_unicode_classes[mid].lo) hi = mid;
        else return gkd_unicode_classes[mid].cls;
    }
    return GKD_UC_OTHER;
}

/* The class of the code point at s[i] (i < n) and its length. */
static inline int class_at(const unsigned char *s, size_t n, size_t i, int *k) {
    uint32_t cp;
    *k = utf8_next(s + i, n - i, &cp);
    return cp_class(cp);
}

/* The end of the pre-token that starts at i < n. */
static size_t pretoken_end(const unsigned char *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        unsigned c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return i + 3;
        }
    }
    int k, cls = class_at(s, n, i, &k);
    size_t j = i;
    if (s[i] == ' ' && i + 1 < n) {
        int k2, c2 = class_at(s, n, i + 1, &k2);
        if (c2 != GKD_UC_SPACE) cls = c2, j = i + 1, k = k2;
    }
    if (cls != GKD_UC_SPACE) { /* ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` */
        j += (size_t)k;
        while (j < n && class_at(s, n, j, &k) == cls) j += (size_t)k;
        return j;
    }
    /* \s+(?!\S) takes the run but its last character when something
     * follows; a single white space before a non-space is \s+. */
    size_t last = i;
    while (j < n && class_at(s, n, j, &k) == GKD_UC_SPACE) last = j, j += (size_t)k;
    if (j == n || last == i) return j;
    return last;
}

/* ---- merging one piece ---- */

typedef struct {
    uint32_t rank;
    int32_t pos, a, b;
} bl_pair;

typedef struct {
    int *sym, *next, *prev; /* (cap) */
    bl_pair *heap, *pend;   /* (3 cap), (2 cap): stale pairs stay in the heap */
    size_t cap;
} bl_scratch;

static int scratch_grow(bl_scratch *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t c = w->cap ? w->cap : 64;
    while (c < n) c *= 2;
    int *s = realloc(w->sym, c * sizeof *s), *nx = NULL, *pv = NULL;
    if (s) w->sym = s;
    nx = s ? realloc(w->next, c * sizeof *nx) : NULL;
    if (nx) w->next = nx;
    pv = nx ? realloc(w->prev, c * sizeof *pv) : NULL;
    if (pv) w->prev = pv;
    bl_pair *h = pv ? realloc(w->heap, 3 * c * sizeof *h) : NULL;
    if (h) w->heap = h;
    bl_pair *p = h ? realloc(w->pend, 2 * c * sizeof *p) : NULL;
    if (p) w->pend = p;
    if (!p) return gkd_error(GKD_ENOMEM, "tokenizer encode: out of memory");
    w->cap = c;
    return 0;
}

static void scratch_free(bl_scratch *w) {
    free(w->sym);
    free(w->next);
    free(w->prev);
    free(w->heap);
    free(w->pend);
}

static inline int pair_less(const bl_pair *x, const bl_pair *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(bl_pair *h, size_t *n, bl_pair p) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_less(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static bl_pair heap_pop(bl_pair *h, size_t *n) {
    bl_pair top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c])) c++;
        if (!pair_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Short pieces: GPT-2's passes, literally. sym[0..m) in, *m out. */
static void merge_scan(const bl_impl *t, int *sym, int *m) {
    int n = *m;
    for (;;) {
        uint32_t best = UINT32_MAX, r;
        int bi = -1, id, nid = 0;
        for (int i = 0; i + 1 < n; i++)
            if (merge_find(t, sym[i], sym[i + 1], &r, &id) && r < best) best = r, bi = i, nid = id;
        if (bi < 0) break;
        int a = sym[bi], b = sym[bi + 1], w = bi;
        for (int i = bi; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) sym[w++] = nid, i += 2;
            else sym[w++] = sym[i++];
        }
        n = w;
    }
    *m = n;
}

/* Long pieces: the same result with a linked list and a heap ordered by
 * (rank, position). Pairs a merge creates with a rank below the one being
 * merged wait (pend) until every occurrence of that rank is merged, as
 * they would wait for GPT-2's next pass. */
static void merge_heap(const bl_impl *t, bl_scratch *w, int *m) {
    int n = *m, *sym = w->sym, *next = w->next, *prev = w->prev;
    bl_pair *heap = w->heap, *pend = w->pend;
    size_t nh = 0, np = 0;
    uint32_t r;
    int id;
    for (int i = 0; i < n; i++) next[i] = i + 1 < n ? i + 1 : -1, prev[i] = i - 1;
    for (int i = 0; i + 1 < n; i++)
        if (merge_find(t, sym[i], sym[i + 1], &r, &id)) heap_push(heap, &nh, (bl_pair){r, i, sym[i], sym[i + 1]});
    uint32_t cur = 0;
    for (;;) {
        if (!nh || heap[0].rank != cur) {
            for (size_t k = 0; k < np; k++) heap_push(heap, &nh, pend[k]);
            np = 0;
            if (!nh) break;
            cur = heap[0].rank;
        }
        bl_pair p = heap_pop(heap, &nh);
        int i = p.pos, j = next[i];
        if (sym[i] != p.a || j < 0 || sym[j] != p.b) continue; /* stale */
        merge_find(t, p.a, p.b, &r, &id);
        sym[i] = id;
        sym[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        int nb[2][2] = {{prev[i], i}, {i, next[i]}};
        for (int k = 0; k < 2; k++) {
            int x = nb[k][0], y = nb[k][1];
            if (x < 0 || y < 0 || !merge_find(t, sym[x], sym[y], &r, &id)) continue;
            bl_pair q = {r, x, sym[x], sym[y]};
            if (r < cur) pend[np++] = q;
            else heap_push(heap, &nh, q);
        }
    }
    int o = 0;
    for (int i = 0; i >= 0; i = next[i]) sym[o++] = sym[i];
    *m = o;
}

/* The ids of one piece: *got points at them (small[] for a short piece,
 * w->sym for a long one), *m of them. */
static int bpe_piece(const bl_impl *t, bl_scratch *w, int *small, const unsigned char *s, size_t n, const int **got,
                     int *m) {
    int *sym = small;
    if (n > BL_SHORT) {
        int rc = scratch_grow(w, n);
        if (rc) return rc;
        sym = w->sym;
    }
    *got = sym;
    if (t->ignore_merges) {
        int id = vocab_find(t, (const char *)s, n);
        if (id >= 0 && !t->special[id]) {
            sym[0] = id;
            *m = 1;
            return 0;
        }
    }
    for (size_t i = 0; i < n; i++) sym[i] = t->byte_id[s[i]];
    *m = (int)n;
    if (n <= BL_SHORT) merge_scan(t, sym, m);
    else merge_heap(t, w, m);
    return 0;
}

/* A cache of pieces within one call (so the tokenizer stays read-only and
 * safe to share between threads): piece bytes -> ids in a pool. */
typedef struct {
    const unsigned char **key;
    uint32_t *klen, *first, *count;
    size_t mask, used;
    int *ids;
    size_t nids, capids;
} bl_cache;

#define BL_CACHE_MIN_TEXT 2048 /* shorter texts go without */
#define BL_CACHE_MAX_PIECE 64

static void cache_free(bl_cache *c) {
    free(c->key);
    free(c->klen);
    free(c->first);
    free(c->count);
    free(c->ids);
}

static int cache_init(bl_cache *c, size_t len) {
    memset(c, 0, sizeof *c);
    size_t slots = table_size(len / 8 < 65536 ? len / 8 : 65536);
    c->key = calloc(slots, sizeof *c->key);
    c->klen = malloc(slots * sizeof *c->klen);
    c->first = malloc(slots * sizeof *c->first);
    c->count = malloc(slots * sizeof *c->count);
    if (!c->key || !c->klen || !c->first || !c->count) {
        cache_free(c);
        memset(c, 0, sizeof *c);
        return 0; /* no cache; encoding goes on without */
    }
    c->mask = slots - 1;
    return 0;
}

/* Byte-level BPE adds nothing before the text: a continuation encodes as
 * any text does. */
static int bl_encode(const void *impl, const char *text, size_t len, int continuation, int *ids, int cap, int *n_out) {
    (void)continuation;
    const bl_impl *t = impl;
    const unsigned char *s = (const unsigned char *)text;
    bl_scratch w = {0};
    bl_cache c = {0};
    int small[BL_SHORT];
    size_t total = 0;
    int rc = 0;
    if (len >= BL_CACHE_MIN_TEXT) cache_init(&c, len);
    for (size_t i = 0; i < len;) {
        size_t e = pretoken_end(s, len, i), n = e - i;
        const int *got;
        int m;
        size_t slot = 0;
        int cached = 0;
        if (n == 1) {
            m = 1;
            got = &t->byte_id[s[i]];
            goto emit;
        }
        if (c.mask && n <= BL_CACHE_MAX_PIECE) {
            for (slot = hash_bytes(text + i, n) & c.mask; c.key[slot]; slot = (slot + 1) & c.mask)
                if (c.klen[slot] == n && !memcmp(c.key[slot], s + i, n)) {
                    cached = 1;
                    break;
                }
            if (cached) {
                m = (int)c.count[slot];
                got = c.ids + c.first[slot];
                goto emit;
            }
        }
        if ((rc = bpe_piece(t, &w, small, s + i, n, &got, &m))) goto done;
        if (c.mask && n <= BL_CACHE_MAX_PIECE && c.used * 2 < c.mask) {
            if (c.nids + (size_t)m > c.capids) {
                size_t nc = c.capids ? c.capids * 2 : 4096;
                while (nc < c.nids + (size_t)m) nc *= 2;
                int *p = realloc(c.ids, nc * sizeof *p);
                if (p) c.ids = p, c.capids = nc;
            }
            if (c.nids + (size_t)m <= c.capids) {
                memcpy(c.ids + c.nids, got, (size_t)m * sizeof *got);
                c.key[slot] = s + i;
                c.klen[slot] = (uint32_t)n;
                c.first[slot] = (uint32_t)c.nids;
                c.count[slot] = (uint32_t)m;
                c.nids += (size_t)m;
                c.used++;
            }
        }
    emit:
        for (int k = 0; k < m; k++, total++)
            if (total < (size_t)cap) ids[total] = got[k];
        if (total > INT32_MAX) {
            rc = gkd_error(GKD_EINVAL, "tokenizer encode: more than %d ids", INT32_MAX);
            goto done;
        }
        i = e;
    }
    *n_out = (int)total;
    if (total > (size_t)cap)
        rc = gkd_error(GKD_EINVAL, "tokenizer encode: %zu ids do not fit in room for %d", total, cap);
done:
    scratch_free(&w);
    cache_free(&c);
    return rc;
}

static int bl_decode(const void *impl, const int *ids, int n, int continuation, char *out, size_t cap,
                     size_t *len_out) {
    (void)continuation; /* byte-level BPE decodes every text alike */
    const bl_impl *t = impl;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (t->special[id]) continue;
        size_t k = t->len[id];
        if (len + k < cap) memcpy(out + len, t->pool + t->off[id], k);
        else if (len < cap) memcpy(out + len, t->pool + t->off[id], cap - len);
        len += k;
    }
    *len_out = len;
    if (cap) out[len < cap ? len : cap - 1] = '\0';
    if (len >= cap) return gkd_error(GKD_EINVAL, "tokenizer decode: %zu bytes do not fit in room for %zu", len, cap);
    return 0;
}

static void bl_free(void *impl) {
    bl_impl *t = impl;
    if (!t) return;
    free(t->off);
    free(t->len);
    free(t->special);
    free(t->pool);
    free(t->vslot);
    free(t->mkey);
    free(t->mrank);
    free(t->mid);
    free(t);
}

/* ---- loading ---- */

/* GPT-2's bytes_to_unicode, undone: the byte a code point stands for, or
 * -1. Printable Latin-1 stands for itself; the other 68 bytes are
 * U+0100 + n in byte order. */
static int cp_byte(uint32_t cp) {
    if ((cp >= '!' && cp <= '~') || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff)) return (int)cp;
    if (cp < 0x100 || cp >= 0x144) return -1;
    uint32_t n = cp - 0x100; /* the other bytes in order: 0x00-0x20, 0x7f-0xa0, 0xad */
    return n < 33 ? (int)n : n < 67 ? (int)(0x7f + n - 33) : 0xad;
}

/* The bytes a byte-level string stands for, into out (room for n bytes,
 * as many as s has). -1 if a character is not one of the 256. */
static int unmap(const char *s, size_t n, char *out, size_t *out_n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = utf8_next(u + i, n - i, &cp), b = cp == UINT32_MAX ? -1 : cp_byte(cp);
        if (b < 0) return -1;
        out[o++] = (char)b;
        i += (size_t)k;
    }
    *out_n = o;
    return 0;
}

typedef struct {
    const char *path; /* for messages: the file being read */
    bl_impl *t;
    int cap;         /* slots of off/len/special */
    unsigned char *set;
    size_t pool_len, pool_cap;
} builder;

static int shown_err(int code, const char *path, const char *what, const char *s, const char *rest) {
    char q[96];
    gkd_json_shown(q, sizeof q, s);
    return gkd_error(code, "tokenizer %s: %s \"%s\"%s", path, what, q, rest);
}

/* Put token bytes b[0..n) at id (key: the file's string, for messages). */
static int put_token(builder *B, int id, const char *b, size_t n, const char *key, int special) {
    bl_impl *t = B->t;
    if (id < 0 || id >= B->cap) {
        char rest[96];
        snprintf(rest, sizeof rest, " has id %d, outside 0..%d (the number of tokens)", id, B->cap - 1);
        return shown_err(GKD_EFORMAT, B->path, "token", key, rest);
    }
    if (n == 0) return shown_err(GKD_EFORMAT, B->path, "token", key, " is empty");
    if (n > BL_MAX_TOKEN) return shown_err(GKD_EFORMAT, B->path, "token", key, " is longer than 4096 bytes");
    if (B->set[id]) {
        if (t->len[id] == n && !memcmp(t->pool + t->off[id], b, n)) {
            t->special[id] |= (unsigned char)special;
            return 0;
        }
        char rest[96];
        snprintf(rest, sizeof rest, " has id %d, which another token has too", id);
        return shown_err(GKD_EFORMAT, B->path, "token", key, rest);
    }
    if (B->pool_len + n > B->pool_cap) {
        size_t c = B->pool_cap ? B->pool_cap : 1 << 16;
        while (c < B->pool_len + n) c *= 2;
        char *p = realloc(t->pool, c);
        if (!p) return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", B->path);
        t->pool = p;
        B->pool_cap = c;
    }
    memcpy(t->pool + B->pool_len, b, n);
    t->off[id] = (uint32_t)B->pool_len;
    t->len[id] = (uint32_t)n;
    t->special[id] = (unsigned char)special;
    B->set[id] = 1;
    B->pool_len += n;
    return 0;
}

static size_t child_next(const gkd_json_doc *d, size_t c) { return d->v[c].end; }

/* The member of object o named key, or 0. */
static size_t member(const gkd_json_doc *d, size_t o, const char *key) {
    if (d->v[o].type != GKD_JSON_OBJECT) return 0;
    for (size_t c = o + 1; c < d->v[o].end; c = child_next(d, c))
        if (!strcmp(d->v[c].key, key)) return c;
    return 0;
}

/* A source of at most BL_MAX_FILE bytes (a deserialized one can be
 * larger than the file reader allows only by lying). */
static int check_size(const gkd_subword_source *src) {
    if (src->len > BL_MAX_FILE)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %zu bytes, more than the 256 MiB allowed", src->label, src->len);
    return 0;
}

static int parse_json(gkd_json_doc *d, const char *path, const char *text, size_t len) {
    int rc = gkd_json_parse_full(d, text, len, 16);
    if (rc) return gkd_error_wrap(rc, "tokenizer %s", path);
    return 0;
}

/* The vocabulary object vo of doc d (from path) into B, allocating room for
 * extra more ids (added tokens). */
static int load_vocab(builder *B, const gkd_json_doc *d, size_t vo, int extra) {
    if (d->v[vo].type != GKD_JSON_OBJECT)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: the vocabulary is a %s, not an object", B->path,
                         gkd_json_type_name(d->v[vo].type));
    size_t n = d->v[vo].len;
    if (n + (size_t)extra > BL_MAX_VOCAB)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %zu tokens, more than the %d allowed", B->path,
                         n + (size_t)extra, BL_MAX_VOCAB);
    bl_impl *t = B->t;
    B->cap = (int)n + extra;
    size_t c = B->cap ? (size_t)B->cap : 1;
    t->off = calloc(c, sizeof *t->off);
    t->len = calloc(c, sizeof *t->len);
    t->special = calloc(c, 1);
    B->set = calloc(c, 1);
    char *buf = malloc(BL_MAX_TOKEN * 4 + 4);
    if (!t->off || !t->len || !t->special || !B->set || !buf) {
        free(buf);
        return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", B->path);
    }
    int rc = 0;
    for (size_t i = vo + 1; i < d->v[vo].end; i = child_next(d, i)) {
        const gkd_json_value *v = &d->v[i];
        if (v->type != GKD_JSON_INT || v->neg || v->num >= (uint64_t)B->cap) {
            char rest[96];
            if (v->type != GKD_JSON_INT) snprintf(rest, sizeof rest, " has a %s, not an id", gkd_json_type_name(v->type));
            else snprintf(rest, sizeof rest, " has id %s%llu, outside 0..%d (the number of tokens)", v->neg ? "-" : "",
                          (unsigned long long)v->num, B->cap - 1);
            rc = shown_err(GKD_EFORMAT, B->path, "token", v->key, rest);
            break;
        }
        size_t kl = strlen(v->key), bn;
        if (kl > BL_MAX_TOKEN * 4) {
            rc = shown_err(GKD_EFORMAT, B->path, "token", v->key, " is longer than 4096 bytes");
            break;
        }
        int special = !strcmp(v->key, "<|endoftext|>");
        if (unmap(v->key, kl, buf, &bn)) {
            /* Not byte-level text: only a special token may be (tokenizer.json
             * lists those in added_tokens, checked later). */
            if ((rc = put_token(B, (int)v->num, v->key, kl, v->key, 2))) break;
            continue;
        }
        if ((rc = put_token(B, (int)v->num, buf, bn, v->key, special))) break;
    }
    free(buf);
    return rc;
}

/* Add a merge of left and right (byte-level strings, as the file has them)
 * with rank; where: "line N" or "merge N" for messages. */
static int add_merge(builder *B, const char *left, size_t ln, const char *right, size_t rn, uint32_t rank,
                     const char *where, char *buf) {
    bl_impl *t = B->t;
    size_t a_n, b_n;
    const char *bad = NULL;
    if (ln > BL_MAX_TOKEN * 4 || rn > BL_MAX_TOKEN * 4)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %s: a token longer than 4096 bytes", B->path, where);
    if (unmap(left, ln, buf, &a_n)) bad = left;
    else if (unmap(right, rn, buf + a_n, &b_n)) bad = right;
    char tmp[96];
    if (bad) {
        snprintf(tmp, sizeof tmp, "%.*s", (int)(bad == left ? (ln < 80 ? ln : 80) : (rn < 80 ? rn : 80)), bad);
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %s: \"%s\" is not byte-level text", B->path, where, tmp);
    }
    int a = vocab_find(t, buf, a_n), b = vocab_find(t, buf + a_n, b_n), ab = vocab_find(t, buf, a_n + b_n);
    if (a < 0 || b < 0 || ab < 0) {
        const char *s = a < 0 ? left : b < 0 ? right : NULL;
        size_t sn = a < 0 ? ln : rn;
        if (s) snprintf(tmp, sizeof tmp, "%.*s", (int)(sn < 80 ? sn : 80), s);
        else snprintf(tmp, sizeof tmp, "%.*s%.*s", (int)(ln < 40 ? ln : 40), left, (int)(rn < 40 ? rn : 40), right);
        char q[96];
        gkd_json_shown(q, sizeof q, tmp);
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %s: token \"%s\" is not in the vocabulary", B->path, where, q);
    }
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = hash_pair(k) & t->mmask;
    for (; t->mkey[i] != BL_EMPTY; i = (i + 1) & t->mmask)
        if (t->mkey[i] == k)
            return gkd_error(GKD_EFORMAT, "tokenizer %s: %s repeats merge %u", B->path, where, t->mrank[i] + 1);
    t->mkey[i] = k;
    t->mrank[i] = rank;
    t->mid[i] = ab;
    return 0;
}

static int alloc_merges(builder *B, size_t n) {
    bl_impl *t = B->t;
    if (n > (size_t)BL_MAX_VOCAB * 4)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %zu merges, more than the %d allowed", B->path, n,
                         BL_MAX_VOCAB * 4);
    size_t s = table_size(n);
    t->mkey = malloc(s * sizeof *t->mkey);
    t->mrank = malloc(s * sizeof *t->mrank);
    t->mid = malloc(s * sizeof *t->mid);
    if (!t->mkey || !t->mrank || !t->mid) return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", B->path);
    for (size_t i = 0; i < s; i++) t->mkey[i] = BL_EMPTY;
    t->mmask = s - 1;
    return 0;
}

/* Once every token is in: the ids are 0..n-1 without a hole, the hash of
 * the vocabulary, the byte tokens, the special ones. */
static int finish_vocab(builder *B, gkd_subword *sw) {
    bl_impl *t = B->t;
    int n = 0;
    for (int i = 0; i < B->cap; i++)
        if (B->set[i]) n = i + 1;
    for (int i = 0; i < n; i++)
        if (!B->set[i]) return gkd_error(GKD_EFORMAT, "tokenizer %s: no token has id %d (ids go up to %d)", B->path, i, n - 1);
    for (int i = 0; i < n; i++)
        if (t->special[i] == 2)
            return gkd_error(GKD_EFORMAT, "tokenizer %s: token %d is not byte-level text and not a special token", B->path, i);
    t->n = n;
    size_t s = table_size((size_t)n);
    t->vslot = calloc(s, sizeof *t->vslot);
    if (!t->vslot) return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", B->path);
    t->vmask = s - 1;
    for (int id = 0; id < n; id++) {
        size_t i = hash_bytes(t->pool + t->off[id], t->len[id]) & t->vmask;
        while (t->vslot[i]) {
            int o = (int)t->vslot[i] - 1;
            if (t->len[o] == t->len[id] && !memcmp(t->pool + t->off[o], t->pool + t->off[id], t->len[id]))
                return gkd_error(GKD_EFORMAT, "tokenizer %s: tokens %d and %d are the same bytes", B->path, o, id);
            i = (i + 1) & t->vmask;
        }
        t->vslot[i] = (uint32_t)id + 1;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int id = vocab_find(t, &c, 1);
        if (id < 0 || t->special[id])
            return gkd_error(GKD_EFORMAT, "tokenizer %s: no token for byte 0x%02x (a byte-level vocabulary has all 256)",
                             B->path, b);
        t->byte_id[b] = id;
    }
    sw->vocab_size = n;
    sw->bos = sw->eos = sw->unk = sw->pad = -1;
    for (int id = 0; id < n; id++) {
        if (!t->special[id]) continue;
        const char *p = t->pool + t->off[id];
        size_t k = t->len[id];
        if (k == 13 && !memcmp(p, "<|endoftext|>", 13)) sw->bos = sw->eos = id;
        else if (k == 3 && !memcmp(p, "<s>", 3)) sw->bos = id;
        else if (k == 4 && !memcmp(p, "</s>", 4)) sw->eos = id;
    }
    return 0;
}

/* merges.txt / vocab.bpe: an optional "#version" line, then "left right"
 * per line. */
static int parse_merges_txt(builder *B, const gkd_subword_source *src) {
    const char *text = src->data, *path = src->label;
    size_t len = src->len;
    char *buf = malloc(BL_MAX_TOKEN * 8 + 8);
    int rc = buf ? check_size(src) : gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
    if (rc) goto done;
    const char *saved = B->path;
    B->path = path;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if ((rc = alloc_merges(B, lines + 1))) goto out;
    uint32_t rank = 0;
    size_t lineno = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        lineno++;
        size_t end = e;
        if (end > i && text[end - 1] == '\r') end--;
        char where[48];
        snprintf(where, sizeof where, "line %zu", lineno);
        if (lineno == 1 && end - i >= 8 && !memcmp(text + i, "#version", 8)) {
        } else if (end == i) {
            if (e + 1 < len) {
                rc = gkd_error(GKD_EFORMAT, "tokenizer %s: line %zu is empty", path, lineno);
                goto out;
            }
        } else {
            const char *sp = memchr(text + i, ' ', end - i);
            if (!sp || sp == text + i || sp + 1 == text + end || memchr(sp + 1, ' ', (size_t)(text + end - sp - 1))) {
                rc = gkd_error(GKD_EFORMAT, "tokenizer %s: line %zu is not two tokens separated by one space", path,
                               lineno);
                goto out;
            }
            if ((rc = add_merge(B, text + i, (size_t)(sp - text - i), sp + 1, (size_t)(text + end - sp - 1), rank++,
                                where, buf)))
                goto out;
        }
        i = e + 1;
    }
out:
    B->path = saved;
done:
    free(buf);
    return rc;
}

static int parse_vocab_file(builder *B, const gkd_subword_source *src) {
    gkd_json_doc d = {0};
    int rc = check_size(src);
    if (!rc) rc = parse_json(&d, src->label, src->data, src->len);
    if (!rc) rc = load_vocab(B, &d, 0, 0);
    gkd_json_free(&d);
    return rc;
}

/* A member that must be null, absent or one of the allowed strings. */
static int check_str(builder *B, const gkd_json_doc *d, size_t o, const char *key, const char *ok) {
    size_t m = member(d, o, key);
    if (!m || d->v[m].type == GKD_JSON_NULL) return 0;
    if (d->v[m].type == GKD_JSON_STRING && !strcmp(d->v[m].str, ok)) return 0;
    return gkd_error(GKD_EFORMAT, "tokenizer %s: %s other than \"%s\" is not supported", B->path, key, ok);
}

static int check_bool(builder *B, const gkd_json_doc *d, size_t o, const char *key, int want) {
    size_t m = member(d, o, key);
    if (!m || d->v[m].type == GKD_JSON_NULL) return 0;
    if (d->v[m].type == GKD_JSON_BOOL && (int)d->v[m].num == want) return 0;
    return gkd_error(GKD_EFORMAT, "tokenizer %s: %s other than %s is not supported", B->path, key,
                     want ? "true" : "false");
}

/* The pre-tokenizer: ByteLevel with GPT-2's regex and no prefix space,
 * alone or as the only step of a Sequence. */
static int check_pretok(builder *B, const gkd_json_doc *d, size_t p) {
    size_t ty = member(d, p, "type");
    if (ty && d->v[ty].type == GKD_JSON_STRING && !strcmp(d->v[ty].str, "Sequence")) {
        size_t a = member(d, p, "pretokenizers");
        if (a && d->v[a].type == GKD_JSON_ARRAY && d->v[a].len == 1) return check_pretok(B, d, a + 1);
    } else if (ty && d->v[ty].type == GKD_JSON_STRING && !strcmp(d->v[ty].str, "ByteLevel")) {
        int rc = check_bool(B, d, p, "add_prefix_space", 0);
        if (!rc) rc = check_bool(B, d, p, "use_regex", 1);
        return rc;
    }
    return gkd_error(GKD_EFORMAT,
                     "tokenizer %s: pre_tokenizer is not supported (only ByteLevel with GPT-2's regex, alone)", B->path);
}

/* The id of the token a tokenizer.json string names: an added token's
 * text as is, a vocabulary entry's as the bytes it stands for; -1 if none. */
static int token_named(const bl_impl *t, const char *s, size_t n, char *buf) {
    int id = vocab_find(t, s, n);
    size_t bn;
    if (id < 0 && n <= BL_MAX_TOKEN * 4 && !unmap(s, n, buf, &bn)) id = vocab_find(t, buf, bn);
    return id;
}

/* <unk> and padding, when the file names them: model.unk_token, and the
 * padding object's pad_token (with pad_id, which must agree). */
static int special_ids(builder *B, const gkd_json_doc *d, size_t model, gkd_subword *sw) {
    char *buf = malloc(BL_MAX_TOKEN * 4 + 4);
    int rc = 0;
    if (!buf) return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", B->path);
    size_t unk = member(d, model, "unk_token"), pad = member(d, 0, "padding");
    if (unk && d->v[unk].type == GKD_JSON_STRING) {
        sw->unk = token_named(B->t, d->v[unk].str, d->v[unk].len, buf);
        if (sw->unk < 0) rc = shown_err(GKD_EFORMAT, B->path, "model.unk_token", d->v[unk].str, " is not a token");
    } else if (unk && d->v[unk].type != GKD_JSON_NULL) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: model.unk_token is not a string", B->path);
    }
    if (!rc && pad && d->v[pad].type == GKD_JSON_OBJECT) {
        size_t tok = member(d, pad, "pad_token"), id = member(d, pad, "pad_id");
        if (!tok || d->v[tok].type != GKD_JSON_STRING) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: padding has no pad_token string", B->path);
        } else if ((sw->pad = token_named(B->t, d->v[tok].str, d->v[tok].len, buf)) < 0) {
            rc = shown_err(GKD_EFORMAT, B->path, "padding.pad_token", d->v[tok].str, " is not a token");
        } else if (id && !(d->v[id].type == GKD_JSON_INT && !d->v[id].neg && d->v[id].num == (uint64_t)sw->pad)) {
            char rest[64];
            snprintf(rest, sizeof rest, " is token %d, not padding.pad_id", sw->pad);
            rc = shown_err(GKD_EFORMAT, B->path, "padding.pad_token", d->v[tok].str, rest);
        }
    } else if (!rc && pad && d->v[pad].type != GKD_JSON_NULL) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: padding is not an object", B->path);
    }
    free(buf);
    return rc;
}

static int parse_tokenizer_json(builder *B, gkd_subword *sw, const gkd_subword_source *src) {
    char *buf = malloc(BL_MAX_TOKEN * 8 + 8);
    gkd_json_doc d = {0};
    int rc = buf ? check_size(src) : gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", B->path);
    if (!rc) rc = parse_json(&d, B->path, src->data, src->len);
    if (rc) goto done;
    size_t model = member(&d, 0, "model");
    if (!model || d.v[model].type != GKD_JSON_OBJECT) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: no \"model\" object", B->path);
        goto done;
    }
    size_t ty = member(&d, model, "type");
    if (ty && (d.v[ty].type != GKD_JSON_STRING || strcmp(d.v[ty].str, "BPE"))) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: model type is not BPE", B->path);
        goto done;
    }
    size_t pt = member(&d, 0, "pre_tokenizer"), nm = member(&d, 0, "normalizer");
    if (!pt || d.v[pt].type != GKD_JSON_OBJECT) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: no ByteLevel pre_tokenizer", B->path);
        goto done;
    }
    if ((rc = check_pretok(B, &d, pt))) goto done;
    if (nm && d.v[nm].type != GKD_JSON_NULL) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: a normalizer is not supported", B->path);
        goto done;
    }
    size_t dr = member(&d, model, "dropout");
    if (dr && d.v[dr].type != GKD_JSON_NULL && !(d.v[dr].type == GKD_JSON_INT && d.v[dr].num == 0)) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: BPE dropout is not supported", B->path);
        goto done;
    }
    if ((rc = check_str(B, &d, model, "continuing_subword_prefix", "")) ||
        (rc = check_str(B, &d, model, "end_of_word_suffix", "")))
        goto done;
    size_t im = member(&d, model, "ignore_merges");
    B->t->ignore_merges = im && d.v[im].type == GKD_JSON_BOOL && d.v[im].num;
    size_t added = member(&d, 0, "added_tokens");
    if (added && d.v[added].type != GKD_JSON_ARRAY && d.v[added].type != GKD_JSON_NULL) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: added_tokens is not an array", B->path);
        goto done;
    }
    int n_added = added && d.v[added].type == GKD_JSON_ARRAY ? (int)(d.v[added].len > BL_MAX_VOCAB ? BL_MAX_VOCAB : d.v[added].len) : 0;
    size_t vo = member(&d, model, "vocab");
    if (!vo) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: model has no vocab", B->path);
        goto done;
    }
    if ((rc = load_vocab(B, &d, vo, n_added))) goto done;
    for (size_t a = added + 1; n_added && a < d.v[added].end; a = child_next(&d, a)) {
        size_t id = member(&d, a, "id"), ct = member(&d, a, "content"), sp = member(&d, a, "special");
        if (!id || !ct || d.v[id].type != GKD_JSON_INT || d.v[ct].type != GKD_JSON_STRING) {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: an added token (byte %zu) lacks an integer id or a content",
                           B->path, d.v[a].pos);
            goto done;
        }
        int special = sp && d.v[sp].type == GKD_JSON_BOOL && d.v[sp].num;
        long long idv = d.v[id].neg ? -1 : d.v[id].num > (uint64_t)BL_MAX_VOCAB ? BL_MAX_VOCAB : (long long)d.v[id].num;
        /* An added token's content is text, not byte-level; a non-special
         * one is then ordinary text to this encoder. */
        if ((rc = put_token(B, (int)idv, d.v[ct].str, d.v[ct].len, d.v[ct].str, special ? 1 : 0))) goto done;
        B->t->special[idv] = special ? 1 : (B->t->special[idv] == 2 ? 2 : 0);
    }
    if ((rc = finish_vocab(B, sw))) goto done;
    size_t mg = member(&d, model, "merges");
    if (!mg || d.v[mg].type != GKD_JSON_ARRAY) {
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: model has no merges array", B->path);
        goto done;
    }
    if ((rc = alloc_merges(B, d.v[mg].len))) goto done;
    uint32_t rank = 0;
    for (size_t m = mg + 1; m < d.v[mg].end; m = child_next(&d, m), rank++) {
        char where[48];
        snprintf(where, sizeof where, "merge %u", rank + 1);
        const gkd_json_value *v = &d.v[m];
        if (v->type == GKD_JSON_STRING) {
            const char *sp = memchr(v->str, ' ', v->len);
            if (!sp || sp == v->str || sp + 1 == v->str + v->len || memchr(sp + 1, ' ', v->len - (size_t)(sp - v->str) - 1)) {
                rc = gkd_error(GKD_EFORMAT, "tokenizer %s: merge %u is not two tokens separated by one space", B->path,
                               rank + 1);
                goto done;
            }
            rc = add_merge(B, v->str, (size_t)(sp - v->str), sp + 1, v->len - (size_t)(sp - v->str) - 1, rank, where,
                           buf);
        } else if (v->type == GKD_JSON_ARRAY && v->len == 2 && d.v[m + 1].type == GKD_JSON_STRING &&
                   d.v[m + 2].type == GKD_JSON_STRING) {
            rc = add_merge(B, d.v[m + 1].str, d.v[m + 1].len, d.v[m + 2].str, d.v[m + 2].len, rank, where, buf);
        } else {
            rc = gkd_error(GKD_EFORMAT, "tokenizer %s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", B->path, rank + 1);
        }
        if (rc) goto done;
    }
    if ((rc = special_ids(B, &d, model, sw))) goto done;
done:
    gkd_json_free(&d);
    free(buf);
    return rc;
}

int gkd_subword_parse_bytelevel(gkd_subword **out, const gkd_subword_source *vocab, const gkd_subword_source *merges) {
    *out = NULL;
    gkd_subword *sw = calloc(1, sizeof *sw);
    bl_impl *t = calloc(1, sizeof *t);
    builder B = {.path = vocab->label, .t = t};
    int rc = 0;
    if (!sw || !t) {
        rc = gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", vocab->label);
        goto done;
    }
    if (!merges) {
        rc = parse_tokenizer_json(&B, sw, vocab);
    } else {
        rc = parse_vocab_file(&B, vocab);
        if (!rc) rc = finish_vocab(&B, sw);
        if (!rc) rc = parse_merges_txt(&B, merges);
    }
    if (rc) goto done;
    sw->kind = GKD_SUBWORD_BYTELEVEL;
    sw->impl = t;
    sw->encode = bl_encode;
    sw->decode = bl_decode;
    sw->free_impl = bl_free;
    *out = sw;
    sw = NULL;
    t = NULL;
done:
    free(B.set);
    bl_free(t);
    free(sw);
    return rc;
}
