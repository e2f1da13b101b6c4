/* Strict JSON (RFC 8259) restricted to objects, arrays, strings and
 * integers, or (gkd_json_parse_full) all of JSON: see json_min.h. Recursive descent, depth bounded by the
 * caller; strings are decoded into one arena as large as the text (a
 * decoded string, with its NUL, never takes more bytes than its quoted
 * form). */
#include "util/json_min.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

typedef struct {
    const unsigned char *s;
    size_t len, i;
    int max_depth;
    int full;     /* true, false, null and real numbers allowed */
    gkd_json_doc *doc;
    size_t cap;   /* of doc->v */
    size_t used;  /* of doc->arena */
} parser;

const char *gkd_json_type_name(int type) {
    switch (type) {
    case GKD_JSON_OBJECT: return "object";
    case GKD_JSON_ARRAY: return "array";
    case GKD_JSON_STRING: return "string";
    case GKD_JSON_INT: return "integer";
    case GKD_JSON_REAL: return "number";
    case GKD_JSON_BOOL: return "boolean";
    case GKD_JSON_NULL: return "null";
    default: return "value";
    }
}

static int fail(const parser *p, size_t at, const char *what) {
    (void)p;
    return gkd_error(GKD_EFORMAT, "byte %zu: %s", at, what);
}

void gkd_json_shown(char *out, size_t cap, const char *s) {
    size_t n = strlen(s), max = cap - 4, k = n < max ? n : max;
    if (k < n)
        while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--; /* whole characters */
    for (size_t j = 0; j < k; j++) {
        unsigned char c = (unsigned char)s[j];
        out[j] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    strcpy(out + k, k < n ? "..." : "");
}

static void skip_ws(parser *p) {
    while (p->i < p->len) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int new_value(parser *p, size_t *out, int type) {
    if (p->doc->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        gkd_json_value *v = realloc(p->doc->v, cap * sizeof *v);
        if (!v) return gkd_error(GKD_ENOMEM, "out of memory for the JSON header");
        p->doc->v = v;
        p->cap = cap;
    }
    gkd_json_value *v = &p->doc->v[p->doc->n];
    memset(v, 0, sizeof *v);
    v->type = type;
    v->pos = p->i;
    *out = p->doc->n++;
    return 0;
}

static int hex4(parser *p, unsigned *out) {
    if (p->len - p->i < 4) return fail(p, p->i, "\\u escape needs four hex digits");
    unsigned u = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p->s[p->i + (size_t)k];
        unsigned d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10u;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10u;
        else return fail(p, p->i + (size_t)k, "\\u escape needs four hex digits");
        u = u * 16 + d;
    }
    p->i += 4;
    *out = u;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t k;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) k = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (n < k) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t j = 2; j < k; j++)
        if (s[j] < 0x80 || s[j] > 0xbf) return 0;
    return k;
}

/* A string at p->i (the opening quote), decoded into the arena. */
static int parse_string(parser *p, const char **out, size_t *outlen) {
    size_t start = p->i;
    p->i++;
    char *o = p->doc->arena + p->used, *o0 = o;
    for (;;) {
        if (p->i >= p->len) return fail(p, start, "string not closed");
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) return fail(p, p->i, "control byte in a string (write it as an escape)");
        if (c == '\\') {
            size_t at = p->i;
            if (p->i + 1 >= p->len) return fail(p, at, "string not closed");
            unsigned char e = p->s[p->i + 1];
            p->i += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                unsigned cp;
                int rc = hex4(p, &cp);
                if (rc) return rc;
                if (cp >= 0xdc00 && cp <= 0xdfff) return fail(p, at, "lone low surrogate in a \\u escape");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (p->len - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return fail(p, at, "high surrogate not followed by a low one");
                    p->i += 2;
                    rc = hex4(p, &lo);
                    if (rc) return rc;
                    if (lo < 0xdc00 || lo > 0xdfff) return fail(p, at, "high surrogate not followed by a low one");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp == 0) return fail(p, at, "\\u0000 in a string");
                o += put_utf8(o, cp);
                break;
            }
            default: return fail(p, at, "unknown escape in a string");
            }
            continue;
        }
        if (c < 0x80) {
            *o++ = (char)c;
            p->i++;
            continue;
        }
        size_t k = utf8_len(p->s + p->i, p->len - p->i);
        if (!k) return fail(p, p->i, "malformed UTF-8 in a string");
        memcpy(o, p->s + p->i, k);
        o += k;
        p->i += k;
    }
    *o++ = '\0';
    *out = o0;
    *outlen = (size_t)(o - o0) - 1;
    p->used += (size_t)(o - o0);
    return 0;
}

static int digits(parser *p) {
    size_t s0 = p->i;
    while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    return p->i > s0;
}

/* The rest of a number whose integer part ends at p->i: a fraction and
 * an exponent as RFC 8259 writes them, converted by strtod. */
static int parse_real(parser *p, gkd_json_value *v, size_t start) {
    if (p->s[p->i] == '.') {
        p->i++;
        if (!digits(p)) return fail(p, start, "number with a '.' and no digits after it");
    }
    if (p->i < p->len && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->len && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (!digits(p)) return fail(p, start, "number with an exponent and no digits in it");
    }
    char buf[65];
    size_t n = p->i - start;
    if (n >= sizeof buf) return fail(p, start, "number longer than 64 characters");
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d)) return fail(p, start, "number beyond the range of a double");
    v->type = GKD_JSON_REAL;
    v->real = d;
    v->neg = d < 0;
    return 0;
}

static int parse_int(parser *p, gkd_json_value *v) {
    size_t start = p->i;
    int neg = 0;
    if (p->s[p->i] == '-') {
        neg = 1;
        p->i++;
    }
    if (p->i >= p->len || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, start, "'-' without digits");
    if (p->s[p->i] == '0' && p->i + 1 < p->len && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return fail(p, start, "number with a leading zero");
    uint64_t u = 0;
    while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = p->s[p->i] - '0';
        if (u > (UINT64_MAX - d) / 10) return fail(p, start, "integer beyond 2^64 - 1");
        u = u * 10 + d;
        p->i++;
    }
    if (p->i < p->len && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        if (!p->full) return fail(p, start, "number with a fraction or exponent (only integers are allowed)");
        return parse_real(p, v, start);
    }
    v->num = u;
    v->neg = neg && u > 0;
    v->real = neg ? -(double)u : (double)u;
    return 0;
}

static int parse_value(parser *p, int depth);

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuse an object with two members of the same key (sorting their keys). */
static int check_duplicates(parser *p, size_t obj) {
    gkd_json_value *v = p->doc->v;
    size_t m = v[obj].len;
    if (m < 2) return 0;
    const char **keys = malloc(m * sizeof *keys);
    if (!keys) return gkd_error(GKD_ENOMEM, "out of memory for the JSON header");
    size_t k = 0;
    for (size_t c = obj + 1; c < v[obj].end; c = v[c].end) keys[k++] = v[c].key;
    qsort(keys, m, sizeof *keys, key_cmp);
    int rc = 0;
    for (size_t j = 1; j < m && !rc; j++)
        if (!strcmp(keys[j - 1], keys[j])) {
            char shown[80];
            gkd_json_shown(shown, sizeof shown, keys[j]);
            rc = gkd_error(GKD_EFORMAT, "byte %zu: duplicate key \"%s\" in an object", v[obj].pos, shown);
        }
    free(keys);
    return rc;
}

static int parse_container(parser *p, int depth, int type) {
    if (depth > p->max_depth) return fail(p, p->i, "nesting deeper than this header's grammar allows");
    size_t idx;
    int rc = new_value(p, &idx, type);
    if (rc) return rc;
    char close = type == GKD_JSON_OBJECT ? '}' : ']';
    p->i++;
    skip_ws(p);
    size_t count = 0;
    if (p->i < p->len && p->s[p->i] == close) {
        p->i++;
    } else {
        for (;;) {
            const char *key = NULL;
            if (type == GKD_JSON_OBJECT) {
                if (p->i >= p->len) return fail(p, p->doc->v[idx].pos, "object not closed");
                if (p->s[p->i] != '"') return fail(p, p->i, "expected a string key");
                size_t klen;
                rc = parse_string(p, &key, &klen);
                if (rc) return rc;
                skip_ws(p);
                if (p->i >= p->len || p->s[p->i] != ':') return fail(p, p->i, "expected ':' after a key");
                p->i++;
                skip_ws(p);
            }
            size_t child = p->doc->n;
            rc = parse_value(p, depth);
            if (rc) return rc;
            p->doc->v[child].key = key;
            count++;
            skip_ws(p);
            if (p->i >= p->len)
                return fail(p, p->doc->v[idx].pos, type == GKD_JSON_OBJECT ? "object not closed" : "array not closed");
            if (p->s[p->i] == ',') {
                p->i++;
                skip_ws(p);
                continue;
            }
            if (p->s[p->i] == close) {
                p->i++;
                break;
            }
            return fail(p, p->i, type == GKD_JSON_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    p->doc->v[idx].len = count;
    p->doc->v[idx].end = p->doc->n;
    return type == GKD_JSON_OBJECT ? check_duplicates(p, idx) : 0;
}

/* depth: containers enclosing this value. */
static int parse_value(parser *p, int depth) {
    if (p->i >= p->len) return fail(p, p->i, "value expected, end of header");
    unsigned char c = p->s[p->i];
    size_t idx;
    int rc;
    if (c == '{') return parse_container(p, depth + 1, GKD_JSON_OBJECT);
    if (c == '[') return parse_container(p, depth + 1, GKD_JSON_ARRAY);
    if (c == '"') {
        if ((rc = new_value(p, &idx, GKD_JSON_STRING))) return rc;
        const char *s;
        size_t n;
        if ((rc = parse_string(p, &s, &n))) return rc;
        p->doc->v[idx].str = s;
        p->doc->v[idx].len = n;
        p->doc->v[idx].end = idx + 1;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if ((rc = new_value(p, &idx, GKD_JSON_INT))) return rc;
        if ((rc = parse_int(p, &p->doc->v[idx]))) return rc;
        p->doc->v[idx].end = idx + 1;
        return 0;
    }
    if (c == 't' || c == 'f' || c == 'n') {
        if (!p->full) return fail(p, p->i, "true, false and null are not part of this header's grammar");
        static const char *const lit[3] = {"true", "false", "null"};
        int k = c == 't' ? 0 : c == 'f' ? 1 : 2;
        size_t n = strlen(lit[k]);
        if (p->len - p->i < n || memcmp(p->s + p->i, lit[k], n))
            return fail(p, p->i, "unexpected byte (not true, false or null)");
        if ((rc = new_value(p, &idx, k == 2 ? GKD_JSON_NULL : GKD_JSON_BOOL))) return rc;
        p->doc->v[idx].num = k == 0;
        p->doc->v[idx].end = idx + 1;
        p->i += n;
        return 0;
    }
    return fail(p, p->i, p->full ? "unexpected byte (not the start of a JSON value)"
                                 : "unexpected byte (a value must be an object, array, string or integer)");
}

static int parse_doc(gkd_json_doc *doc, const char *text, size_t len, int max_depth, int full) {
    memset(doc, 0, sizeof *doc);
    parser p = {(const unsigned char *)text, len, 0, max_depth, full, doc, 0, 0};
    doc->arena = malloc(len + 1);
    if (!doc->arena) return gkd_error(GKD_ENOMEM, "out of memory for the JSON header");
    skip_ws(&p);
    int rc = parse_value(&p, 0);
    if (!rc) {
        skip_ws(&p);
        if (p.i != len) rc = fail(&p, p.i, "bytes after the end of the root value");
    }
    if (rc) gkd_json_free(doc);
    return rc;
}

int gkd_json_parse(gkd_json_doc *doc, const char *text, size_t len, int max_depth) {
    return parse_doc(doc, text, len, max_depth, 0);
}

int gkd_json_parse_full(gkd_json_doc *doc, const char *text, size_t len, int max_depth) {
    return parse_doc(doc, text, len, max_depth, 1);
}

void gkd_json_free(gkd_json_doc *doc) {
    if (!doc) return;
    free(doc->v);
    free(doc->arena);
    memset(doc, 0, sizeof *doc);
}
