/* UTF-8 and growable-string helpers shared by the task generators. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/fsutil.h"
#include "gkd/error.h"
#include "task_impl.h"

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. Strict:
 * no overlongs, no surrogates, nothing above U+10FFFF. */
static int seq_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    return len;
}

long utf8_length(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        int len = seq_len(p);
        if (!len) return -1;
        p += len;
        n++;
    }
    return n;
}

int utf8_offsets(const char *s, size_t **off, size_t *n) {
    *off = NULL;
    *n = 0;
    long len = utf8_length(s);
    if (len < 0) return gkd_error(GKD_EINVAL, "invalid UTF-8");
    size_t *o = malloc(((size_t)len + 1) * sizeof *o);
    if (!o) return gkd_error(GKD_ENOMEM, "out of memory");
    size_t pos = 0;
    for (long i = 0; i < len; i++) {
        o[i] = pos;
        pos += (size_t)seq_len((const unsigned char *)s + pos);
    }
    o[len] = pos;
    *off = o;
    *n = (size_t)len;
    return 0;
}

int strbuf_append(strbuf *b, const char *s, size_t len) {
    if (b->n + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 32;
        while (ncap < b->n + len + 1) ncap *= 2;
        char *p = realloc(b->s, ncap);
        if (!p) return gkd_error(GKD_ENOMEM, "out of memory");
        b->s = p;
        b->cap = ncap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
    return 0;
}

int strbuf_printf(strbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof tmp) return gkd_error(GKD_EINVAL, "formatted text too long");
    return strbuf_append(b, tmp, (size_t)len);
}

int task_check_alphabet(const gkd_task *t) {
    const char *a = t->cfg.alphabet;
    if (!a || !*a) return gkd_error(GKD_EINVAL, "%s: alphabet is empty", t->cfg.name);
    size_t *off, n;
    if (utf8_offsets(a, &off, &n)) return gkd_error(GKD_EINVAL, "%s: alphabet is not valid UTF-8", t->cfg.name);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t j = 0; j < i && !rc; j++)
            if (off[i + 1] - off[i] == off[j + 1] - off[j] && !memcmp(a + off[i], a + off[j], off[i + 1] - off[i]))
                rc = gkd_error(GKD_EINVAL, "%s: alphabet repeats the character '%.*s'", t->cfg.name,
                               (int)(off[i + 1] - off[i]), a + off[i]);
    free(off);
    return rc;
}

int task_check_lengths(const gkd_task *t) {
    if (t->cfg.min_len < 1 || t->cfg.max_len < t->cfg.min_len || t->cfg.max_len > 4096)
        return gkd_error(GKD_EINVAL, "%s: need 1 <= min_len <= max_len <= 4096, got min_len=%d max_len=%d",
                         t->cfg.name, t->cfg.min_len, t->cfg.max_len);
    return 0;
}

int task_random_string(const gkd_task *t, gkd_rng *rng, int len, char **out) {
    *out = NULL;
    const char *a = t->cfg.alphabet;
    size_t *off, n;
    int rc = utf8_offsets(a, &off, &n);
    if (rc) return rc;
    strbuf b = {0};
    rc = strbuf_append(&b, "", 0);
    for (int i = 0; i < len && !rc; i++) {
        size_t k = gkd_rng_below(rng, (uint32_t)n);
        rc = strbuf_append(&b, a + off[k], off[k + 1] - off[k]);
    }
    free(off);
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return 0;
}

int task_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *f = NULL;
    int rc_open = gkd_fopen_read(&f, path);
    if (rc_open) return rc_open;
    strbuf b = {0};
    int rc = strbuf_append(&b, "", 0);
    char chunk[65536];
    size_t got;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0) rc = strbuf_append(&b, chunk, got);
    if (!rc && ferror(f)) rc = gkd_error(GKD_EIO, "%s: read failed: %s", path, strerror(errno));
    fclose(f);
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    *len = b.n;
    return 0;
}

size_t utf8_invalid_at(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] == 0) return i;
        int n = seq_len(p + i);
        if (!n || i + (size_t)n > len) return i;
        i += (size_t)n;
    }
    return len;
}
