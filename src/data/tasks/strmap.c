#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

void strmap_init(strmap *m) { memset(m, 0, sizeof *m); }

void strmap_free(strmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t slot_of(const strmap *m, const char *key) {
    size_t mask = m->cap - 1, i = (size_t)hash_str(key) & mask;
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & mask;
    return i;
}

size_t *strmap_get(const strmap *m, const char *key) {
    if (m->cap == 0) return NULL;
    size_t i = slot_of(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

static int grow(strmap *m) {
    size_t ncap = m->cap ? 2 * m->cap : 64;
    strmap g = {calloc(ncap, sizeof *g.keys), malloc(ncap * sizeof *g.vals), ncap, 0};
    if (!g.keys || !g.vals) {
        free(g.keys);
        free(g.vals);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = slot_of(&g, m->keys[i]);
        g.keys[j] = m->keys[i];
        g.vals[j] = m->vals[i];
        g.n++;
    }
    strmap_free(m);
    *m = g;
    return 0;
}

int strmap_put(strmap *m, const char *key, size_t val, int *found) {
    if (2 * (m->n + 1) > m->cap) {
        int rc = grow(m);
        if (rc) return rc;
    }
    size_t i = slot_of(m, key);
    *found = m->keys[i] != NULL;
    if (!*found) {
        m->keys[i] = key;
        m->vals[i] = val;
        m->n++;
    }
    return 0;
}
