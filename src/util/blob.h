/* Little-endian byte-blob writing and bounds-checked reading, shared by the
 * serialized replay buffer and schedule state (internal, not installed). */
#ifndef GKD_SRC_BLOB_H
#define GKD_SRC_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    unsigned char *p; /* NULL: only count bytes (first sizing pass) */
    size_t n;
} blob_writer;

static inline void blob_put(blob_writer *w, const void *src, size_t n) {
    if (w->p) memcpy(w->p + w->n, src, n);
    w->n += n;
}

static inline void blob_u64(blob_writer *w, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    blob_put(w, b, 8);
}

static inline void blob_u32(blob_writer *w, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    blob_put(w, b, 4);
}

static inline void blob_f64(blob_writer *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    blob_u64(w, u);
}

typedef struct {
    const unsigned char *p, *end;
    int short_read; /* set once a read ran past the end */
} blob_reader;

static inline uint64_t blob_get_u64(blob_reader *r) {
    if (r->end - r->p < 8) {
        r->short_read = 1;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}

static inline uint32_t blob_get_u32(blob_reader *r) {
    if (r->end - r->p < 4) {
        r->short_read = 1;
        r->p = r->end;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}

static inline double blob_get_f64(blob_reader *r) {
    uint64_t u = blob_get_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

#define BLOB_FNV1A64_OFFSET 0xcbf29ce484222325ull

/* FNV-1a 64 continued from h (BLOB_FNV1A64_OFFSET to start), so several
 * pieces hash as one run of bytes. */
static inline uint64_t blob_fnv1a64_update(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* FNV-1a 64: enough to catch truncation and bit flips in a checkpoint. */
static inline uint64_t blob_fnv1a64(const unsigned char *p, size_t n) {
    return blob_fnv1a64_update(BLOB_FNV1A64_OFFSET, p, n);
}

#endif
