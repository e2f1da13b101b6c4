/* The serialized form of a subword tokenizer (checkpoints store it): the
 * source files it was parsed from, byte for byte, so deserializing parses
 * them again with the same parsers and gives the same tokenizer.
 * Little-endian, no padding (docs/checkpoint-format.md):
 *
 *   u32 format version (1), u32 kind, u32 number of files (1 or 2), then
 *   per file: u32 name length, the name (one of the known file names),
 *   u64 length, the bytes.
 *
 * Equality and the hash are of this form: two tokenizers are equal when
 * they were parsed from the same files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "subword_internal.h"
#include "util/blob.h"

#define SUBWORD_BLOB_VERSION 1u
#define SUBWORD_MAX_NAME 32u

/* Where serialized bytes go: a buffer (or none, to count) and the running
 * FNV-1a 64 of them. */
typedef struct {
    blob_writer w;
    uint64_t hash;
} sink;

static void put(sink *s, const void *p, size_t n) {
    blob_put(&s->w, p, n);
    s->hash = blob_fnv1a64_update(s->hash, p, n);
}

static void put_u32(sink *s, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    put(s, b, 4);
}

static void put_u64(sink *s, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    put(s, b, 8);
}

static void emit(const gkd_subword *t, sink *s) {
    put_u32(s, SUBWORD_BLOB_VERSION);
    put_u32(s, (uint32_t)t->kind);
    put_u32(s, (uint32_t)t->n_src);
    for (int i = 0; i < t->n_src; i++) {
        size_t k = strlen(t->src[i].name);
        put_u32(s, (uint32_t)k);
        put(s, t->src[i].name, k);
        put_u64(s, (uint64_t)t->src[i].len);
        put(s, t->src[i].data, t->src[i].len);
    }
}

size_t gkd_subword_serialized_size(const gkd_subword *t) {
    sink s = {{NULL, 0}, BLOB_FNV1A64_OFFSET};
    emit(t, &s);
    return s.w.n;
}

void gkd_subword_serialize(const gkd_subword *t, unsigned char *buf) {
    sink s = {{buf, 0}, BLOB_FNV1A64_OFFSET};
    emit(t, &s);
}

uint64_t gkd_subword_hash(const gkd_subword *t) {
    sink s = {{NULL, 0}, BLOB_FNV1A64_OFFSET};
    emit(t, &s);
    return s.hash;
}

int gkd_subword_equal(const gkd_subword *a, const gkd_subword *b) {
    if (a == b) return 1;
    if (!a || !b || a->kind != b->kind || a->n_src != b->n_src) return 0;
    for (int i = 0; i < a->n_src; i++)
        if (strcmp(a->src[i].name, b->src[i].name) || a->src[i].len != b->src[i].len ||
            memcmp(a->src[i].data, b->src[i].data, a->src[i].len))
            return 0;
    return 1;
}

int gkd_subword_deserialize(gkd_subword **out, const unsigned char *buf, size_t n) {
    if (!out || (!buf && n)) return gkd_error(GKD_EINVAL, "checkpoint tokenizer: NULL argument");
    *out = NULL;
    blob_reader r = {buf, buf + n, 0};
    uint32_t version = blob_get_u32(&r), kind = blob_get_u32(&r), count = blob_get_u32(&r);
    if (r.short_read) return gkd_error(GKD_ECORRUPT, "checkpoint tokenizer: %zu bytes, need at least 12", n);
    if (version != SUBWORD_BLOB_VERSION)
        return gkd_error(GKD_EVERSION, "checkpoint tokenizer: format version %u, this build reads version %u",
                         (unsigned)version, SUBWORD_BLOB_VERSION);
    if (kind != GKD_SUBWORD_BYTELEVEL && kind != GKD_SUBWORD_SPM)
        return gkd_error(GKD_EFORMAT, "checkpoint tokenizer: unknown kind %u", (unsigned)kind);
    if (count < 1 || count > GKD_SUBWORD_MAX_SOURCES)
        return gkd_error(GKD_EFORMAT, "checkpoint tokenizer: %u files, a tokenizer has 1 or %d", (unsigned)count,
                         GKD_SUBWORD_MAX_SOURCES);
    gkd_subword_source src[GKD_SUBWORD_MAX_SOURCES] = {{0}};
    char labels[GKD_SUBWORD_MAX_SOURCES][64];
    int rc = 0;
    for (uint32_t i = 0; i < count && !rc; i++) {
        uint32_t k = blob_get_u32(&r);
        if (r.short_read || k > (size_t)(r.end - r.p)) {
            rc = gkd_error(GKD_ECORRUPT, "checkpoint tokenizer: truncated in the name of file %u", (unsigned)i + 1);
            break;
        }
        src[i].name = k <= SUBWORD_MAX_NAME ? gkd_subword_file_name((const char *)r.p, k) : NULL;
        if (!src[i].name) {
            rc = gkd_error(GKD_EFORMAT, "checkpoint tokenizer: file %u has no tokenizer file's name", (unsigned)i + 1);
            break;
        }
        r.p += k;
        uint64_t len = blob_get_u64(&r);
        if (r.short_read || len > (uint64_t)(r.end - r.p)) {
            rc = gkd_error(GKD_ECORRUPT, "checkpoint tokenizer: truncated: %s holds %llu bytes, %zu are left",
                           src[i].name, (unsigned long long)len, (size_t)(r.end - r.p));
            break;
        }
        if (len > GKD_SUBWORD_MAX_FILE) {
            rc = gkd_error(GKD_EFORMAT, "checkpoint tokenizer: %s has %llu bytes, more than the 256 MiB allowed",
                           src[i].name, (unsigned long long)len);
            break;
        }
        src[i].data = malloc((size_t)len + 1);
        if (!src[i].data) {
            rc = gkd_error(GKD_ENOMEM, "checkpoint tokenizer: out of memory");
            break;
        }
        memcpy(src[i].data, r.p, (size_t)len);
        src[i].data[len] = '\0';
        src[i].len = (size_t)len;
        r.p += len;
        snprintf(labels[i], sizeof labels[i], "%s from a checkpoint", src[i].name);
        src[i].label = labels[i];
    }
    if (!rc && r.p != r.end)
        rc = gkd_error(GKD_ECORRUPT, "checkpoint tokenizer: %zu bytes after the last file", (size_t)(r.end - r.p));
    if (rc) {
        for (int i = 0; i < GKD_SUBWORD_MAX_SOURCES; i++) free(src[i].data);
        return rc;
    }
    return gkd_subword_from_sources(out, (gkd_subword_kind)kind, src, (int)count);
}
