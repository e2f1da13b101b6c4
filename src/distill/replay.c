/* FIFO replay buffer of token sequences, stored as a ring of fixed-size
 * slots (capacity, seq_cap). */
#include "gkd/replay.h"

#include <stdlib.h>
#include <string.h>

#include "util/blob.h"
#include "gkd/error.h"
#include "gkd/tokenizer.h"

#define REPLAY_MAGIC "GKDRPLB"  /* 8 bytes with the NUL */
#define REPLAY_VERSION 1u
#define REPLAY_MAX_DIM (1 << 24) /* sanity bound on capacity and seq_cap */
#define REPLAY_MAX_TOKENS (1 << 28) /* and on capacity x seq_cap (1 GiB of tokens) */

struct gkd_replay {
    int capacity, seq_cap;
    int head;  /* slot of the oldest item */
    int count;
    uint64_t pushed;
    int *tokens;       /* (capacity, seq_cap) */
    int *prompt_len;   /* (capacity) */
    int *len;          /* (capacity) */
    unsigned char *eos;/* (capacity) */
};

int gkd_replay_new(gkd_replay **out, int capacity, int seq_cap) {
    *out = NULL;
    if (capacity < 1 || capacity > REPLAY_MAX_DIM || seq_cap < 1 || seq_cap > REPLAY_MAX_DIM)
        return gkd_error(GKD_EINVAL, "replay buffer: capacity %d and sequence length %d must be in [1, %d]",
                         capacity, seq_cap, REPLAY_MAX_DIM);
    if ((int64_t)capacity * seq_cap > REPLAY_MAX_TOKENS)
        return gkd_error(GKD_EINVAL, "replay buffer: capacity %d x sequence length %d is more than %d tokens",
                         capacity, seq_cap, REPLAY_MAX_TOKENS);
    gkd_replay *r = calloc(1, sizeof *r);
    if (!r) return gkd_error(GKD_ENOMEM, "replay buffer: out of memory");
    r->capacity = capacity;
    r->seq_cap = seq_cap;
    r->tokens = calloc((size_t)capacity * seq_cap, sizeof *r->tokens);
    r->prompt_len = calloc((size_t)capacity, sizeof *r->prompt_len);
    r->len = calloc((size_t)capacity, sizeof *r->len);
    r->eos = calloc((size_t)capacity, 1);
    if (!r->tokens || !r->prompt_len || !r->len || !r->eos) {
        gkd_replay_free(r);
        return gkd_error(GKD_ENOMEM, "replay buffer: out of memory for %d x %d tokens", capacity, seq_cap);
    }
    *out = r;
    return 0;
}

void gkd_replay_free(gkd_replay *r) {
    if (!r) return;
    free(r->tokens);
    free(r->prompt_len);
    free(r->len);
    free(r->eos);
    free(r);
}

int gkd_replay_count(const gkd_replay *r) { return r->count; }
int gkd_replay_capacity(const gkd_replay *r) { return r->capacity; }
int gkd_replay_seq_cap(const gkd_replay *r) { return r->seq_cap; }
uint64_t gkd_replay_pushed(const gkd_replay *r) { return r->pushed; }

static int slot_of(const gkd_replay *r, int i) { return (r->head + i) % r->capacity; }

int gkd_replay_push(gkd_replay *r, const gkd_seqbatch *b, int row) {
    if (row < 0 || row >= b->B) return gkd_error(GKD_EINVAL, "replay push: row %d out of [0, %d)", row, b->B);
    int pl = b->prompt_len[row], len = b->len[row];
    if (pl < 0 || len < pl || len > b->cap)
        return gkd_error(GKD_EINVAL, "replay push: row %d has prompt_len %d, len %d, cap %d", row, pl, len, b->cap);
    if (len > r->seq_cap)
        return gkd_error(GKD_EINVAL, "replay push: sequence of %d tokens exceeds the buffer's %d", len,
                         r->seq_cap);
    int slot;
    if (r->count < r->capacity) {
        slot = slot_of(r, r->count);
        r->count++;
    } else { /* full: overwrite the oldest, which makes the next one oldest */
        slot = r->head;
        r->head = (r->head + 1) % r->capacity;
    }
    int *dst = r->tokens + (size_t)slot * r->seq_cap;
    memcpy(dst, b->tokens + (size_t)row * b->cap, (size_t)len * sizeof *dst);
    for (int t = len; t < r->seq_cap; t++) dst[t] = GKD_TOK_PAD;
    r->prompt_len[slot] = pl;
    r->len[slot] = len;
    r->eos[slot] = b->eos ? b->eos[row] : 0;
    r->pushed++;
    return 0;
}

int gkd_replay_push_batch(gkd_replay *r, const gkd_seqbatch *b) {
    for (int i = 0; i < b->B; i++) {
        int rc = gkd_replay_push(r, b, i);
        if (rc) return rc;
    }
    return 0;
}

int gkd_replay_get(const gkd_replay *r, int i, gkd_seqbatch *dst, int row) {
    if (i < 0 || i >= r->count) return gkd_error(GKD_EINVAL, "replay get: item %d out of [0, %d)", i, r->count);
    if (row < 0 || row >= dst->B) return gkd_error(GKD_EINVAL, "replay get: row %d out of [0, %d)", row, dst->B);
    int slot = slot_of(r, i), len = r->len[slot];
    if (len > dst->cap)
        return gkd_error(GKD_EINVAL, "replay get: item of %d tokens does not fit %d", len, dst->cap);
    int *out = dst->tokens + (size_t)row * dst->cap;
    memcpy(out, r->tokens + (size_t)slot * r->seq_cap, (size_t)len * sizeof *out);
    for (int t = len; t < dst->cap; t++) out[t] = GKD_TOK_PAD;
    dst->prompt_len[row] = r->prompt_len[slot];
    dst->len[row] = len;
    if (dst->eos) dst->eos[row] = r->eos[slot];
    return 0;
}

int gkd_replay_pick(const gkd_replay *r, gkd_rng *rng, int *index) {
    if (r->count == 0) return gkd_error(GKD_ESTATE, "replay buffer is empty");
    *index = (int)gkd_rng_below(rng, (uint32_t)r->count);
    return 0;
}

int gkd_replay_sample(const gkd_replay *r, uint64_t seed, uint64_t step, gkd_seqbatch *dst, int *items) {
    if (r->count == 0) return gkd_error(GKD_ESTATE, "replay buffer is empty");
    for (int i = 0; i < dst->B; i++) {
        gkd_rng rng = gkd_rng_derive(seed, GKD_RNG_REPLAY, step, (uint64_t)i);
        int k = 0;
        int rc = gkd_replay_pick(r, &rng, &k);
        if (!rc) rc = gkd_replay_get(r, k, dst, i);
        if (rc) return rc;
        if (items) items[i] = k;
    }
    return 0;
}

/* ---- serialization ----
 * magic[8] u32 version u32 capacity u32 seq_cap u32 count u64 pushed
 * count x { u32 prompt_len u32 len u32 eos  len x u32 token }   (oldest first)
 * u64 FNV-1a of everything before it. */

static void write_replay(const gkd_replay *r, blob_writer *w) {
    blob_put(w, REPLAY_MAGIC, 8);
    blob_u32(w, REPLAY_VERSION);
    blob_u32(w, (uint32_t)r->capacity);
    blob_u32(w, (uint32_t)r->seq_cap);
    blob_u32(w, (uint32_t)r->count);
    blob_u64(w, r->pushed);
    for (int i = 0; i < r->count; i++) {
        int s = slot_of(r, i);
        blob_u32(w, (uint32_t)r->prompt_len[s]);
        blob_u32(w, (uint32_t)r->len[s]);
        blob_u32(w, r->eos[s]);
        const int *tok = r->tokens + (size_t)s * r->seq_cap;
        for (int t = 0; t < r->len[s]; t++) blob_u32(w, (uint32_t)tok[t]);
    }
}

int gkd_replay_save(const gkd_replay *r, unsigned char **blob, size_t *size) {
    *blob = NULL;
    *size = 0;
    blob_writer w = {NULL, 0};
    write_replay(r, &w);
    size_t n = w.n + 8;
    unsigned char *p = malloc(n);
    if (!p) return gkd_error(GKD_ENOMEM, "replay save: out of memory for %zu bytes", n);
    w = (blob_writer){p, 0};
    write_replay(r, &w);
    blob_u64(&w, blob_fnv1a64(p, w.n));
    *blob = p;
    *size = n;
    return 0;
}

int gkd_replay_saved_shape(int *capacity, int *seq_cap, const unsigned char *blob, size_t size) {
    if (size < 8 || memcmp(blob, REPLAY_MAGIC, 8) != 0)
        return gkd_error(GKD_EFORMAT, "replay buffer: bad magic (not a replay buffer blob)");
    if (size < 8 + 4 * 3) return gkd_error(GKD_ECORRUPT, "replay buffer: truncated (%zu bytes)", size);
    blob_reader rd = {blob + 8, blob + size, 0};
    uint32_t version = blob_get_u32(&rd);
    if (version != REPLAY_VERSION)
        return gkd_error(GKD_EVERSION, "replay buffer: version %u (this build reads %u)", version, REPLAY_VERSION);
    uint32_t c = blob_get_u32(&rd), s = blob_get_u32(&rd);
    if (c < 1 || c > REPLAY_MAX_DIM || s < 1 || s > REPLAY_MAX_DIM)
        return gkd_error(GKD_EFORMAT, "replay buffer: bad header (capacity %u, seq_cap %u)", c, s);
    *capacity = (int)c;
    *seq_cap = (int)s;
    return 0;
}

int gkd_replay_load(gkd_replay **out, const unsigned char *blob, size_t size, int vocab_size) {
    *out = NULL;
    gkd_replay *r = NULL;
    int rc = 0;
    const size_t header = 8 + 4 * 4 + 8;
    if (vocab_size < 1)
        return gkd_error(GKD_EINVAL, "replay buffer: vocabulary size %d must be positive", vocab_size);
    if (size < 8 || memcmp(blob, REPLAY_MAGIC, 8) != 0)
        return gkd_error(GKD_EFORMAT, "replay buffer: bad magic (not a replay buffer blob)");
    if (size < header + 8) return gkd_error(GKD_ECORRUPT, "replay buffer: truncated (%zu bytes)", size);
    blob_reader rd = {blob + 8, blob + size - 8, 0};
    uint32_t version = blob_get_u32(&rd);
    if (version != REPLAY_VERSION)
        return gkd_error(GKD_EVERSION, "replay buffer: version %u (this build reads %u)", version, REPLAY_VERSION);
    blob_reader ck = {blob + size - 8, blob + size, 0};
    if (blob_get_u64(&ck) != blob_fnv1a64(blob, size - 8))
        return gkd_error(GKD_ECORRUPT, "replay buffer: checksum mismatch (truncated or damaged)");
    uint32_t capacity = blob_get_u32(&rd), seq_cap = blob_get_u32(&rd), count = blob_get_u32(&rd);
    uint64_t pushed = blob_get_u64(&rd);
    if (capacity < 1 || capacity > REPLAY_MAX_DIM || seq_cap < 1 || seq_cap > REPLAY_MAX_DIM ||
        (uint64_t)capacity * seq_cap > REPLAY_MAX_TOKENS || count > capacity || pushed < count)
        return gkd_error(GKD_EFORMAT, "replay buffer: bad header (capacity %u, seq_cap %u, count %u)",
                         capacity, seq_cap, count);
    rc = gkd_replay_new(&r, (int)capacity, (int)seq_cap);
    if (rc) goto done;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t pl = blob_get_u32(&rd), len = blob_get_u32(&rd), eos = blob_get_u32(&rd);
        if (rd.short_read || len > seq_cap || pl > len || eos > 1) {
            rc = gkd_error(GKD_EFORMAT, "replay buffer: item %u has prompt_len %u, len %u, eos %u", i, pl,
                           len, eos);
            goto done;
        }
        int *tok = r->tokens + (size_t)i * seq_cap;
        for (uint32_t t = 0; t < len; t++) {
            uint32_t v = blob_get_u32(&rd);
            /* The items go to a model of vocab_size tokens on resume. */
            if (!rd.short_read && v >= (uint32_t)vocab_size) {
                rc = gkd_error(GKD_EFORMAT,
                               "replay buffer: item %u has token %u at position %u, outside the vocabulary of %d", i,
                               v, t, vocab_size);
                goto done;
            }
            tok[t] = (int)v;
        }
        for (uint32_t t = len; t < seq_cap; t++) tok[t] = GKD_TOK_PAD;
        r->prompt_len[i] = (int)pl;
        r->len[i] = (int)len;
        r->eos[i] = (unsigned char)eos;
    }
    if (rd.short_read || rd.p != rd.end) {
        rc = gkd_error(GKD_EFORMAT, "replay buffer: %s", rd.short_read ? "items run past the end" : "trailing bytes");
        goto done;
    }
    r->count = (int)count;
    r->head = 0;
    r->pushed = pushed;
    *out = r;
    r = NULL;
done:
    gkd_replay_free(r);
    return rc;
}
