/* Hugging Face safetensors reader (include/gkd/safetensors.h).
 *
 * Validation follows the format's reference implementation
 * (huggingface/safetensors, tensor.rs: header size limit of 100 MB, header
 * within the file, tensors sorted by offsets must start at 0, follow each
 * other without gap or overlap and end exactly at the end of the file,
 * shape product times dtype size equal to each byte range, computed
 * without overflow), with a stricter header grammar of our own
 * (util/json_min.h): unknown fields of a tensor entry, duplicate keys and
 * anything but objects, arrays, strings and integers are refused. */
#include "gkd/safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "util/json_min.h"

/* Dtypes of the format, with their size in bits (F4 and F6 pack below a
 * byte; a tensor of them must fill whole bytes). */
static const struct {
    const char *name;
    unsigned bits;
} dtypes[] = {
    {"BOOL", 8},     {"U8", 8},       {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},
    {"U16", 16},     {"F16", 16},     {"BF16", 16}, {"I32", 32},   {"U32", 32},    {"F32", 32},    {"F64", 64},
    {"I64", 64},     {"U64", 64},     {"C64", 64}, {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6},
};
enum { KIND_OTHER, KIND_F32, KIND_F16, KIND_BF16 };

typedef struct {
    gkd_safetensors_tensor t;
    uint64_t begin, end; /* data_offsets, relative to the data buffer */
    int kind;
} entry;

struct gkd_safetensors {
    char *path;
    FILE *fp;
    uint64_t file_size;
    gkd_json_doc doc;   /* owns the strings */
    entry *e;           /* in data order */
    size_t n;
    size_t *by_name;    /* indices into e, sorted by name */
    const gkd_json_value *meta; /* the "__metadata__" object, or NULL */
};

static int st_fail(const char *path, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int st_fail(const char *path, int code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gkd_error(code, "safetensors %s: %s", path, msg);
}

float gkd_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float gkd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); /* infinity, or NaN with its payload */
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    } else if (man == 0) {
        u = sign; /* +-0 */
    } else {
        /* Subnormal: man * 2^-24. Normalize: shift until the implicit bit
         * (0x400) is set; each shift lowers the exponent by one. */
        uint32_t e = 113; /* 2^-14 as a float exponent field (127 - 14) */
        while (!(man & 0x400)) {
            man <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* qsort has no context argument in C11: the tensors being sorted are
 * passed through this (the open in progress is single-threaded per
 * thread). */
static _Thread_local const entry *sort_entries;
static int by_name_cmp(const void *a, const void *b) {
    return strcmp(sort_entries[*(const size_t *)a].t.name, sort_entries[*(const size_t *)b].t.name);
}
static int by_offset_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

/* Read exactly n bytes at offset off (a file that shrank: GKD_EIO). */
static int read_at(const gkd_safetensors *f, void *buf, size_t n, uint64_t off) {
    int fd = fileno(f->fp);
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return st_fail(f->path, GKD_EIO, "read at byte %llu: %s", (unsigned long long)off, strerror(errno));
        if (r == 0)
            return st_fail(f->path, GKD_EIO, "file ended at byte %llu: it changed since it was opened",
                           (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* One tensor entry {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static int parse_entry(entry *out, const gkd_json_value *v, size_t i, const char *path) {
    const gkd_json_value *obj = &v[i];
    char shown[80];
    gkd_json_shown(shown, sizeof shown, obj->key);
    memset(out, 0, sizeof *out);
    out->t.name = obj->key;
    if (obj->type != GKD_JSON_OBJECT)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": its entry is a%s %s, not an object", shown,
                       obj->type == GKD_JSON_ARRAY || obj->type == GKD_JSON_INT ? "n" : "",
                       gkd_json_type_name(obj->type));
    const gkd_json_value *dtype = NULL, *shape = NULL, *offs = NULL;
    for (size_t c = i + 1; c < obj->end; c = v[c].end) {
        const char *k = v[c].key;
        if (!strcmp(k, "dtype")) dtype = &v[c];
        else if (!strcmp(k, "shape")) shape = &v[c];
        else if (!strcmp(k, "data_offsets")) offs = &v[c];
        else {
            char ks[80];
            gkd_json_shown(ks, sizeof ks, k);
            return st_fail(path, GKD_EFORMAT, "tensor \"%s\": unknown field \"%s\" (dtype, shape, data_offsets)",
                           shown, ks);
        }
    }
    if (!dtype || !shape || !offs)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": no \"%s\" field", shown,
                       !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (dtype->type != GKD_JSON_STRING)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": dtype is not a string", shown);
    unsigned bits = 0;
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        if (!strcmp(dtype->str, dtypes[d].name)) {
            bits = dtypes[d].bits;
            out->t.dtype = dtypes[d].name;
        }
    if (!bits) {
        char ds[40];
        gkd_json_shown(ds, sizeof ds, dtype->str);
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": unknown dtype \"%s\"", shown, ds);
    }
    out->kind = !strcmp(out->t.dtype, "F32")    ? KIND_F32
                : !strcmp(out->t.dtype, "F16")  ? KIND_F16
                : !strcmp(out->t.dtype, "BF16") ? KIND_BF16
                                                : KIND_OTHER;
    out->t.float_readable = out->kind != KIND_OTHER;

    if (shape->type != GKD_JSON_ARRAY)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": shape is not an array", shown);
    if (shape->len > GKD_SAFETENSORS_MAX_RANK)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": %zu dimensions, more than the %d this reader supports",
                       shown, shape->len, GKD_SAFETENSORS_MAX_RANK);
    int r = 0, zero = 0;
    for (size_t c = (size_t)(shape - v) + 1; c < shape->end; c = v[c].end) {
        if (v[c].type != GKD_JSON_INT || v[c].neg)
            return st_fail(path, GKD_EFORMAT, "tensor \"%s\": shape[%d] is not a non-negative integer", shown, r);
        zero |= v[c].num == 0;
        out->t.shape[r++] = v[c].num;
    }
    out->t.rank = r;
    /* A zero dimension makes the product 0, whatever the others are. */
    uint64_t numel = zero ? 0 : 1;
    for (int k = 0; k < r && !zero; k++) {
        if (numel > UINT64_MAX / out->t.shape[k])
            return st_fail(path, GKD_EFORMAT, "tensor \"%s\": the product of its shape overflows 64 bits", shown);
        numel *= out->t.shape[k];
    }
    out->t.numel = numel;

    if (offs->type != GKD_JSON_ARRAY || offs->len != 2)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": data_offsets is not an array [begin, end]", shown);
    const gkd_json_value *b = &v[(offs - v) + 1], *e = &v[b->end];
    if (b->type != GKD_JSON_INT || b->neg || e->type != GKD_JSON_INT || e->neg)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": data_offsets are not two non-negative integers", shown);
    out->begin = b->num;
    out->end = e->num;
    if (out->end < out->begin)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": data_offsets [%llu, %llu] end before they begin", shown,
                       (unsigned long long)out->begin, (unsigned long long)out->end);
    if (numel > UINT64_MAX / bits)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": its size in bytes overflows 64 bits", shown);
    uint64_t nbits = numel * bits;
    if (nbits % 8)
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": %llu elements of %s do not fill whole bytes", shown,
                       (unsigned long long)numel, out->t.dtype);
    out->t.nbytes = nbits / 8;
    if (out->t.nbytes != out->end - out->begin) {
        char dims[160];
        size_t at = 0;
        dims[0] = '\0';
        for (int k = 0; k < r && at < sizeof dims - 24; k++)
            at += (size_t)snprintf(dims + at, sizeof dims - at, "%s%llu", k ? ", " : "",
                                   (unsigned long long)out->t.shape[k]);
        return st_fail(path, GKD_EFORMAT, "tensor \"%s\": shape [%s] of %s is %llu bytes, its data_offsets [%llu, %llu] hold %llu",
                       shown, dims, out->t.dtype, (unsigned long long)out->t.nbytes, (unsigned long long)out->begin,
                       (unsigned long long)out->end, (unsigned long long)(out->end - out->begin));
    }
    return 0;
}

static int parse_header(gkd_safetensors *f, uint64_t data_size) {
    const gkd_json_value *v = f->doc.v;
    const char *path = f->path;
    if (v[0].type != GKD_JSON_OBJECT)
        return st_fail(path, GKD_EFORMAT, "header: the root is a%s %s, not an object",
                       v[0].type == GKD_JSON_ARRAY || v[0].type == GKD_JSON_INT ? "n" : "", gkd_json_type_name(v[0].type));
    size_t ntensors = v[0].len;
    for (size_t c = 1; c < v[0].end; c = v[c].end)
        if (!strcmp(v[c].key, "__metadata__")) {
            ntensors--;
            f->meta = &v[c];
            if (v[c].type != GKD_JSON_OBJECT) return st_fail(path, GKD_EFORMAT, "__metadata__ is not an object");
            for (size_t m = c + 1; m < v[c].end; m = v[m].end)
                if (v[m].type != GKD_JSON_STRING) {
                    char ks[80];
                    gkd_json_shown(ks, sizeof ks, v[m].key);
                    return st_fail(path, GKD_EFORMAT, "__metadata__ \"%s\" is not a string", ks);
                }
        }
    f->e = calloc(ntensors ? ntensors : 1, sizeof *f->e);
    f->by_name = calloc(ntensors ? ntensors : 1, sizeof *f->by_name);
    if (!f->e || !f->by_name) return st_fail(path, GKD_ENOMEM, "out of memory for %zu tensors", ntensors);
    for (size_t c = 1; c < v[0].end; c = v[c].end) {
        if (&v[c] == f->meta) continue;
        entry *e = &f->e[f->n];
        int rc = parse_entry(e, v, c, path);
        if (rc) return rc;
        if (e->end > data_size) {
            char shown[80];
            gkd_json_shown(shown, sizeof shown, e->t.name);
            return st_fail(path, GKD_EFORMAT, "tensor \"%s\": data_offsets [%llu, %llu] beyond the data buffer (%llu bytes)",
                           shown, (unsigned long long)e->begin, (unsigned long long)e->end,
                           (unsigned long long)data_size);
        }
        f->n++;
    }

    /* The byte ranges, in order, must tile the buffer [0, data_size). */
    qsort(f->e, f->n, sizeof *f->e, by_offset_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        entry *e = &f->e[i];
        char shown[80];
        gkd_json_shown(shown, sizeof shown, e->t.name);
        if (e->begin < at) {
            char prev[80];
            gkd_json_shown(prev, sizeof prev, f->e[i - 1].t.name);
            return st_fail(path, GKD_EFORMAT, "tensor \"%s\": data_offsets [%llu, %llu] overlap tensor \"%s\", which ends at %llu",
                           shown, (unsigned long long)e->begin, (unsigned long long)e->end, prev, (unsigned long long)at);
        }
        if (e->begin > at)
            return st_fail(path, GKD_EFORMAT, "bytes [%llu, %llu) of the data buffer, before tensor \"%s\", belong to no tensor",
                           (unsigned long long)at, (unsigned long long)e->begin, shown);
        at = e->end;
        e->t.offset = f->file_size - data_size + e->begin;
    }
    if (at != data_size)
        return st_fail(path, GKD_EFORMAT, "bytes [%llu, %llu) at the end of the data buffer belong to no tensor",
                       (unsigned long long)at, (unsigned long long)data_size);

    for (size_t i = 0; i < f->n; i++) f->by_name[i] = i;
    sort_entries = f->e;
    qsort(f->by_name, f->n, sizeof *f->by_name, by_name_cmp);
    sort_entries = NULL;
    return 0;
}

int gkd_safetensors_open(gkd_safetensors **out, const char *path) {
    *out = NULL;
    gkd_safetensors *f = calloc(1, sizeof *f);
    char *header = NULL;
    int rc = 0;
    if (!f || !(f->path = strdup(path))) {
        rc = gkd_error(GKD_ENOMEM, "safetensors %s: out of memory", path);
        goto done;
    }
    if ((rc = gkd_fopen_read(&f->fp, path))) {
        rc = gkd_error_wrap(rc, "safetensors %s", path);
        goto done;
    }
    struct stat st;
    if (fstat(fileno(f->fp), &st) != 0) {
        rc = st_fail(path, GKD_EIO, "cannot stat: %s", strerror(errno));
        goto done;
    }
    f->file_size = (uint64_t)st.st_size;
    if (f->file_size < 8) {
        rc = st_fail(path, GKD_ECORRUPT, "truncated: %llu bytes, less than the 8 of the header size",
                     (unsigned long long)f->file_size);
        goto done;
    }
    unsigned char nb[8];
    if ((rc = read_at(f, nb, 8, 0))) goto done;
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = n << 8 | nb[k];
    if (n > GKD_SAFETENSORS_MAX_HEADER) {
        rc = st_fail(path, GKD_EFORMAT, "header size %llu is beyond the limit of %u bytes (not a safetensors file?)",
                     (unsigned long long)n, GKD_SAFETENSORS_MAX_HEADER);
        goto done;
    }
    if (n > f->file_size - 8) {
        rc = st_fail(path, GKD_ECORRUPT, "truncated: the header size says %llu bytes, the file has %llu after the first 8",
                     (unsigned long long)n, (unsigned long long)(f->file_size - 8));
        goto done;
    }
    header = malloc((size_t)n + 1);
    if (!header) {
        rc = st_fail(path, GKD_ENOMEM, "out of memory for a %llu-byte header", (unsigned long long)n);
        goto done;
    }
    if ((rc = read_at(f, header, (size_t)n, 8))) goto done;
    /* Depth 3: the root, a tensor entry (or __metadata__), a shape. */
    if ((rc = gkd_json_parse(&f->doc, header, (size_t)n, 3))) {
        rc = gkd_error_wrap(rc, "safetensors %s: header", path);
        goto done;
    }
    rc = parse_header(f, f->file_size - 8 - n);
done:
    free(header);
    if (rc) gkd_safetensors_close(f);
    else *out = f;
    return rc;
}

void gkd_safetensors_close(gkd_safetensors *f) {
    if (!f) return;
    if (f->fp) fclose(f->fp);
    gkd_json_free(&f->doc);
    free(f->e);
    free(f->by_name);
    free(f->path);
    free(f);
}

size_t gkd_safetensors_count(const gkd_safetensors *f) { return f ? f->n : 0; }

const gkd_safetensors_tensor *gkd_safetensors_tensor_at(const gkd_safetensors *f, size_t i) {
    return f && i < f->n ? &f->e[i].t : NULL;
}

int gkd_safetensors_find(size_t *index, const gkd_safetensors *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->e[f->by_name[mid]].t.name, name);
        if (c == 0) {
            *index = f->by_name[mid];
            return 0;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    char shown[80];
    gkd_json_shown(shown, sizeof shown, name);
    return st_fail(f->path, GKD_EINVAL, "no tensor \"%s\"", shown);
}

int gkd_safetensors_read_f32(float *out, size_t n, gkd_safetensors *f, size_t index) {
    if (index >= f->n) return st_fail(f->path, GKD_EINVAL, "tensor index %zu out of range (%zu tensors)", index, f->n);
    const entry *e = &f->e[index];
    char shown[80];
    gkd_json_shown(shown, sizeof shown, e->t.name);
    if (e->kind == KIND_OTHER)
        return st_fail(f->path, GKD_EFORMAT, "tensor \"%s\": dtype %s cannot be read as float (F32, F16 and BF16 can)",
                       shown, e->t.dtype);
    if (e->t.numel != (uint64_t)n)
        return st_fail(f->path, GKD_EMISMATCH, "tensor \"%s\" has %llu elements, the caller expects %zu", shown,
                       (unsigned long long)e->t.numel, n);
    enum { CHUNK = 16384 };
    unsigned char buf[CHUNK * 4];
    size_t size = e->kind == KIND_F32 ? 4 : 2;
    uint64_t off = e->t.offset;
    for (size_t i = 0; i < n;) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        int rc = read_at(f, buf, m * size, off);
        if (rc) return rc;
        off += (uint64_t)(m * size);
        for (size_t j = 0; j < m; j++) {
            const unsigned char *b = buf + j * size;
            if (e->kind == KIND_F32) {
                uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
                memcpy(&out[i + j], &u, 4);
            } else {
                uint16_t h = (uint16_t)(b[0] | b[1] << 8);
                out[i + j] = e->kind == KIND_F16 ? gkd_f16_to_f32(h) : gkd_bf16_to_f32(h);
            }
        }
        i += m;
    }
    return 0;
}

int gkd_safetensors_read_f32_named(float *out, size_t n, gkd_safetensors *f, const char *name) {
    size_t i;
    int rc = gkd_safetensors_find(&i, f, name);
    return rc ? rc : gkd_safetensors_read_f32(out, n, f, i);
}

const char *gkd_safetensors_metadata(const gkd_safetensors *f, const char *key) {
    if (!f || !f->meta) return NULL;
    const gkd_json_value *v = f->doc.v;
    for (size_t m = (size_t)(f->meta - v) + 1; m < f->meta->end; m = v[m].end)
        if (!strcmp(v[m].key, key)) return v[m].str;
    return NULL;
}

size_t gkd_safetensors_metadata_count(const gkd_safetensors *f) { return f && f->meta ? f->meta->len : 0; }

int gkd_safetensors_metadata_at(const char **key, const char **value, const gkd_safetensors *f, size_t i) {
    if (!f || i >= gkd_safetensors_metadata_count(f))
        return gkd_error(GKD_EINVAL, "safetensors: metadata index %zu out of range", i);
    const gkd_json_value *v = f->doc.v;
    size_t m = (size_t)(f->meta - v) + 1;
    while (i--) m = v[m].end;
    *key = v[m].key;
    *value = v[m].str;
    return 0;
}
