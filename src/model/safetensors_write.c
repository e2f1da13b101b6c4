/* Writing a safetensors file (F32 tensors) as the format's reference
 * writer lays it out: an 8-byte little-endian header size N, N bytes of
 * JSON padded with spaces to a multiple of 8 (so the data is aligned), and
 * the tensors' bytes in the order of the header, which lists
 * "__metadata__" first and then the tensors sorted by name. The JSON has
 * no whitespace, as Python's json.dumps(separators=(",", ":")). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "model/model_io_internal.h"

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t k) {
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + k + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, k);
    b->n += k;
    b->s[b->n] = '\0';
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void put_string(sbuf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(b, esc);
        } else
            put(b, (const char *)&c, 1);
    }
    puts_(b, "\"");
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const gkd_st_entry *const *)a)->name, (*(const gkd_st_entry *const *)b)->name);
}

int gkd_safetensors_build(unsigned char **out, size_t *len, const gkd_st_entry *t, size_t n) {
    *out = NULL;
    *len = 0;
    const gkd_st_entry **order = malloc((n ? n : 1) * sizeof *order);
    sbuf h = {0};
    unsigned char *file = NULL;
    int rc = 0;
    if (!order) return gkd_error(GKD_ENOMEM, "out of memory for the safetensors header");
    for (size_t i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, n, sizeof *order, by_name);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name)) {
            rc = gkd_error(GKD_EINVAL, "safetensors: two tensors named %s", order[i]->name);
            goto done;
        }
    puts_(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (size_t k = 0; k < n; k++) {
        const gkd_st_entry *e = order[k];
        char num[64];
        uint64_t numel = 1;
        puts_(&h, ",");
        put_string(&h, e->name);
        puts_(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->rank; d++) {
            snprintf(num, sizeof num, "%s%llu", d ? "," : "", (unsigned long long)e->shape[d]);
            puts_(&h, num);
            numel *= e->shape[d];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + 4 * numel));
        puts_(&h, num);
        off += 4 * numel;
    }
    puts_(&h, "}");
    while (h.n % 8) puts_(&h, " ");
    if (h.oom) {
        rc = gkd_error(GKD_ENOMEM, "out of memory for the safetensors header");
        goto done;
    }
    size_t total = 8 + h.n + (size_t)off;
    if (!(file = malloc(total))) {
        rc = gkd_error(GKD_ENOMEM, "out of memory for a safetensors file of %zu bytes", total);
        goto done;
    }
    for (int k = 0; k < 8; k++) file[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    memcpy(file + 8, h.s, h.n);
    unsigned char *p = file + 8 + h.n;
    for (size_t k = 0; k < n; k++) {
        const gkd_st_entry *e = order[k];
        uint64_t numel = 1;
        for (int d = 0; d < e->rank; d++) numel *= e->shape[d];
        for (uint64_t i = 0; i < numel; i++) {
            uint32_t bits;
            memcpy(&bits, &e->data[i], 4);
            p[0] = (unsigned char)bits;
            p[1] = (unsigned char)(bits >> 8);
            p[2] = (unsigned char)(bits >> 16);
            p[3] = (unsigned char)(bits >> 24);
            p += 4;
        }
    }
    *out = file;
    *len = total;
    file = NULL;
done:
    free(order);
    free(h.s);
    free(file);
    return rc;
}
