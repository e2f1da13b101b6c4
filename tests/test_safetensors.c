/* safetensors reader: the values of tests/fixtures/tensors/values.safetensors
 * against values.tsv (both from tools/make_tensor_fixtures.py: F32, F16 and
 * BF16 incl. subnormals, infinities, NaN, -0; metadata with escapes), and
 * every refusal: truncated files, header sizes that lie, each violation of
 * the header's JSON grammar, duplicate names, offsets that overlap, leave
 * gaps or run past the buffer, shapes that disagree with their bytes,
 * unknown dtypes. Each refusal is one line naming the file. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/safetensors.h"

#include "helpers.h"

static char dir[128];
static char path[256];

static void setup(void) {
    th_make_tmpdir(dir, sizeof dir, "gkd_st");
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
}
static void teardown(void) { th_remove_tmpdir(dir); }

/* A file of header size N = strlen(json), the JSON, then ndata bytes
 * (0, 1, 2, ...). */
static void write_st(const char *json, size_t ndata) {
    size_t n = strlen(json);
    unsigned char *b = malloc(8 + n + ndata + 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)n >> (8 * k));
    memcpy(b + 8, json, n);
    for (size_t i = 0; i < ndata; i++) b[8 + n + i] = (unsigned char)i;
    th_write_bytes(path, b, 8 + n + ndata);
    free(b);
}

/* The file at path is refused with `code`, one line naming the file and
 * containing `what`. */
static void refused_as(int code, const char *what) {
    gkd_safetensors *f = (gkd_safetensors *)1;
    int rc = gkd_safetensors_open(&f, path);
    const char *msg = gkd_last_error();
    ck_assert_msg(rc == code, "expected %d for [%s], got %d: %s", code, what, rc, msg);
    ck_assert_ptr_null(f);
    ck_assert_msg(strncmp(msg, "safetensors ", 12) == 0 && strstr(msg, path), "message does not name the file: %s", msg);
    ck_assert_msg(strstr(msg, what) != NULL, "message [%s] does not say [%s]", msg, what);
    ck_assert_msg(!strchr(msg, '\n') && !strchr(msg, '\r'), "message is not one line: %s", msg);
}

static void header_refused(const char *json, size_t ndata, const char *what) {
    write_st(json, ndata);
    refused_as(GKD_EFORMAT, what);
}

static size_t unhex(char *out, const char *hex) {
    size_t n = 0;
    if (!strcmp(hex, "-")) {
        out[0] = '\0';
        return 0;
    }
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex, "%2x", &v), 1);
        out[n++] = (char)v;
    }
    out[n] = '\0';
    return n;
}

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

START_TEST(test_fixture_values) {
    gkd_safetensors *f = NULL;
    ck_assert_msg(gkd_safetensors_open(&f, th_fixture_path("tensors", "values.safetensors")) == 0, "%s", gkd_last_error());
    FILE *tsv = fopen(th_fixture_path("tensors", "values.tsv"), "r");
    ck_assert_ptr_nonnull(tsv);
    char line[4096];
    int ntensors = 0, nmeta = 0, nvalues = 0;
    while (fgets(line, sizeof line, tsv)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = '\0';
        char *rest = line, *kind = strsep(&rest, "\t");
        char name[256];
        if (!strcmp(kind, "meta")) {
            char value[256];
            unhex(name, strsep(&rest, "\t"));
            unhex(value, strsep(&rest, "\t"));
            const char *got = gkd_safetensors_metadata(f, name);
            ck_assert_msg(got && !strcmp(got, value), "metadata %s: [%s], expected [%s]", name, got ? got : "(none)", value);
            nmeta++;
            continue;
        }
        ck_assert_str_eq(kind, "tensor");
        unhex(name, strsep(&rest, "\t"));
        const char *dtype = strsep(&rest, "\t"), *shape = strsep(&rest, "\t");
        unsigned long long numel = strtoull(strsep(&rest, "\t"), NULL, 10);
        unsigned long long offset = strtoull(strsep(&rest, "\t"), NULL, 10);
        unsigned long long nbytes = strtoull(strsep(&rest, "\t"), NULL, 10);
        char *values = strsep(&rest, "\t");
        ck_assert_ptr_nonnull(values);

        size_t i = 99;
        ck_assert_msg(gkd_safetensors_find(&i, f, name) == 0, "%s", gkd_last_error());
        const gkd_safetensors_tensor *t = gkd_safetensors_tensor_at(f, i);
        ck_assert_str_eq(t->name, name);
        ck_assert_str_eq(t->dtype, dtype);
        ck_assert_uint_eq(t->numel, numel);
        ck_assert_uint_eq(t->offset, offset);
        ck_assert_uint_eq(t->nbytes, nbytes);
        char dims[128] = "";
        for (int k = 0; k < t->rank; k++)
            snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%s%llu", k ? "," : "", (unsigned long long)t->shape[k]);
        ck_assert_str_eq(t->rank ? dims : "-", shape);

        float *out = malloc(sizeof(float) * (numel + 1));
        if (!strcmp(values, "-")) {
            ck_assert_int_eq(t->float_readable, 0);
            ck_assert_int_eq(gkd_safetensors_read_f32(out, numel, f, i), GKD_EFORMAT);
            ck_assert_msg(strstr(gkd_last_error(), dtype) && strstr(gkd_last_error(), "cannot be read as float"), "%s",
                          gkd_last_error());
        } else {
            ck_assert_int_eq(t->float_readable, 1);
            ck_assert_msg(gkd_safetensors_read_f32_named(out, numel, f, name) == 0, "%s", gkd_last_error());
            char *tok, *vs = values;
            unsigned long long k = 0;
            while ((tok = strsep(&vs, " ")) && *tok) {
                ck_assert_uint_lt(k, numel);
                if (!strcmp(tok, "nan"))
                    ck_assert_msg(isnan(out[k]), "%s[%llu] = %08x, expected NaN", name, k, bits(out[k]));
                else
                    ck_assert_msg(bits(out[k]) == (uint32_t)strtoul(tok, NULL, 16), "%s[%llu] = %08x, expected %s", name,
                                  k, bits(out[k]), tok);
                k++;
                nvalues++;
            }
            ck_assert_uint_eq(k, numel);
            if (numel) ck_assert_int_eq(gkd_safetensors_read_f32(out, numel - 1, f, i), GKD_EMISMATCH);
        }
        free(out);
        ntensors++;
    }
    fclose(tsv);
    ck_assert_int_eq(ntensors, 8);
    ck_assert_int_eq(nmeta, 4);
    ck_assert_int_eq(nvalues, 37); /* 9 BF16, 12 F32, 14 F16, 2 single values */
    ck_assert_uint_eq(gkd_safetensors_count(f), 8);
    ck_assert_uint_eq(gkd_safetensors_metadata_count(f), 4);
    ck_assert_ptr_null(gkd_safetensors_metadata(f, "absent"));
    const char *k, *v;
    ck_assert_int_eq(gkd_safetensors_metadata_at(&k, &v, f, 0), 0);
    ck_assert_ptr_nonnull(gkd_safetensors_metadata(f, k));
    ck_assert_int_eq(gkd_safetensors_metadata_at(&k, &v, f, 4), GKD_EINVAL);
    /* Data order, each tensor where the previous ended. */
    for (size_t i = 1; i < gkd_safetensors_count(f); i++) {
        const gkd_safetensors_tensor *a = gkd_safetensors_tensor_at(f, i - 1), *b = gkd_safetensors_tensor_at(f, i);
        ck_assert_uint_eq(a->offset + a->nbytes, b->offset);
    }
    ck_assert_ptr_null(gkd_safetensors_tensor_at(f, 8));
    size_t i;
    ck_assert_int_eq(gkd_safetensors_find(&i, f, "f3"), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no tensor \"f3\""));
    ck_assert_int_eq(gkd_safetensors_read_f32(NULL, 0, f, 8), GKD_EINVAL);
    gkd_safetensors_close(f);
}
END_TEST

/* Every binary16 pattern against the value it encodes, computed another
 * way: (-1)^s * 2^(e-15) * (1 + m/1024), or 2^-14 * m/1024 if e = 0. */
START_TEST(test_f16_all_patterns) {
    for (uint32_t h = 0; h < 65536; h++) {
        float got = gkd_f16_to_f32((uint16_t)h);
        unsigned s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            ck_assert(m ? isnan(got) : isinf(got));
            ck_assert_int_eq(!!signbit(got), (int)s);
            continue;
        }
        double want = e ? ldexp(1.0 + m / 1024.0, (int)e - 15) : ldexp(m / 1024.0, -14);
        if (s) want = -want;
        ck_assert_msg((double)got == want && !!signbit(got) == (int)s, "f16 %04x: %a, expected %a", h, (double)got, want);
    }
    for (uint32_t b = 0; b < 65536; b++) ck_assert_uint_eq(bits(gkd_bf16_to_f32((uint16_t)b)), b << 16);
}
END_TEST

START_TEST(test_minimal_files) {
    gkd_safetensors *f = NULL;
    /* No tensors at all, with padding spaces as the reference writer makes. */
    write_st("{}      ", 0);
    ck_assert_msg(gkd_safetensors_open(&f, path) == 0, "%s", gkd_last_error());
    ck_assert_uint_eq(gkd_safetensors_count(f), 0);
    ck_assert_uint_eq(gkd_safetensors_metadata_count(f), 0);
    ck_assert_ptr_null(gkd_safetensors_metadata(f, "format"));
    gkd_safetensors_close(f);
    /* Zero-size tensors, a zero dimension beside a huge one, F4 packed
     * two to a byte (readable as bytes only). */
    write_st("{\"a\":{\"dtype\":\"F4\",\"shape\":[2,2],\"data_offsets\":[0,2]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0,18446744073709551615],\"data_offsets\":[2,2]},"
             "\"e\":{\"shape\":[],\"data_offsets\":[2,6],\"dtype\":\"I32\"}}",
             6);
    ck_assert_msg(gkd_safetensors_open(&f, path) == 0, "%s", gkd_last_error());
    ck_assert_uint_eq(gkd_safetensors_count(f), 3);
    size_t i;
    ck_assert_int_eq(gkd_safetensors_find(&i, f, "z"), 0);
    ck_assert_uint_eq(gkd_safetensors_tensor_at(f, i)->numel, 0);
    ck_assert_int_eq(gkd_safetensors_read_f32(NULL, 0, f, i), 0);
    ck_assert_int_eq(gkd_safetensors_find(&i, f, "a"), 0);
    float x[4];
    ck_assert_int_eq(gkd_safetensors_read_f32(x, 4, f, i), GKD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "dtype F4"));
    gkd_safetensors_close(f);
    gkd_safetensors_close(NULL);
}
END_TEST

START_TEST(test_truncated_and_lying_sizes) {
    th_write_bytes(path, "", 0);
    refused_as(GKD_ECORRUPT, "truncated: 0 bytes");
    th_write_bytes(path, "\x02\0\0\0\0\0\0", 7);
    refused_as(GKD_ECORRUPT, "truncated: 7 bytes");
    /* Header size beyond the file. */
    th_write_bytes(path, "\x40\0\0\0\0\0\0\0{}", 10);
    refused_as(GKD_ECORRUPT, "header size says 64 bytes, the file has 2");
    th_write_bytes(path, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    refused_as(GKD_EFORMAT, "beyond the limit of 100000000 bytes");
    th_write_bytes(path, "\x01\xe1\xf5\x05\0\0\0\0{}", 10); /* 100000001 */
    refused_as(GKD_EFORMAT, "beyond the limit");
    /* A valid file cut short anywhere is refused. */
    write_st("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    FILE *fp = fopen(path, "rb");
    unsigned char whole[256];
    size_t n = fread(whole, 1, sizeof whole, fp);
    fclose(fp);
    for (size_t cut = 0; cut < n; cut++) {
        th_write_bytes(path, whole, cut);
        gkd_safetensors *f = (gkd_safetensors *)1;
        int rc = gkd_safetensors_open(&f, path);
        ck_assert_msg(rc < 0, "cut at %zu accepted", cut);
        ck_assert_ptr_null(f);
        ck_assert_ptr_nonnull(strstr(gkd_last_error(), path));
    }
    /* Missing file, a directory. */
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    refused_as(GKD_EIO, "absent.safetensors");
    snprintf(path, sizeof path, "%s", dir);
    gkd_safetensors *f = (gkd_safetensors *)1;
    ck_assert_int_lt(gkd_safetensors_open(&f, path), 0);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), dir));
}
END_TEST

START_TEST(test_json_grammar) {
    header_refused("", 0, "value expected");
    header_refused("   ", 0, "value expected");
    header_refused("[]", 0, "the root is an array");
    header_refused("\"x\"", 0, "the root is a string");
    header_refused("7", 0, "the root is an integer");
    header_refused("{\"a\":1", 0, "object not closed");
    header_refused("{", 0, "object not closed");
    header_refused("{\"a\" 1}", 0, "expected ':'");
    header_refused("{a:1}", 0, "expected a string key");
    header_refused("{\"a\":{},}", 0, "expected a string key");
    header_refused("{\"a\":{} \"b\":{}}", 0, "expected ',' or '}'");
    header_refused("{\"a\":true}", 0, "true, false and null");
    header_refused("{\"a\":false}", 0, "true, false and null");
    header_refused("{\"__metadata__\":null}", 0, "true, false and null");
    header_refused("{\"a\":1.5}", 0, "fraction or exponent");
    header_refused("{\"a\":1e3}", 0, "fraction or exponent");
    header_refused("{\"a\":01}", 0, "leading zero");
    header_refused("{\"a\":-}", 0, "'-' without digits");
    header_refused("{\"a\":+1}", 0, "unexpected byte");
    header_refused("{\"a\":@}", 0, "unexpected byte");
    header_refused("{\"a\":18446744073709551616}", 0, "beyond 2^64 - 1");
    header_refused("{\"a\":\"x\x01y\"}", 0, "control byte in a string");
    header_refused("{\"a\":\"tab\there\"}", 0, "control byte in a string");
    header_refused("{\"a\":\"\\q\"}", 0, "unknown escape");
    header_refused("{\"a\":\"\\u12\"}", 0, "four hex digits");
    header_refused("{\"a\":\"\\u12g4\"}", 0, "four hex digits");
    header_refused("{\"a\":\"\\ud800\"}", 0, "high surrogate not followed by a low one");
    header_refused("{\"a\":\"\\ud800\\u0041\"}", 0, "high surrogate not followed by a low one");
    header_refused("{\"a\":\"\\udc00\"}", 0, "lone low surrogate");
    header_refused("{\"a\":\"\\u0000\"}", 0, "\\u0000 in a string");
    header_refused("{\"a\":\"\xc3\x28\"}", 0, "malformed UTF-8");
    header_refused("{\"a\":\"\xc0\xaf\"}", 0, "malformed UTF-8");     /* overlong '/' */
    header_refused("{\"a\":\"\xed\xa0\x80\"}", 0, "malformed UTF-8"); /* a surrogate */
    header_refused("{\"a\":\"\xf4\x90\x80\x80\"}", 0, "malformed UTF-8"); /* beyond U+10FFFF */
    header_refused("{\"a\":\"\xe2\x98\"}", 0, "malformed UTF-8");     /* cut short */
    header_refused("{\"\xff\":{}}", 0, "malformed UTF-8");
    header_refused("{\"a\":\"abc", 0, "string not closed");
    header_refused("{\"a\":\"abc\\", 0, "string not closed");
    header_refused("{} x", 0, "bytes after the end of the root value");
    header_refused("{}{}", 0, "bytes after the end of the root value");
    th_write_bytes(path, "\x03\0\0\0\0\0\0\0{}\0", 11); /* NUL padding is not whitespace */
    refused_as(GKD_EFORMAT, "byte 2: bytes after the end of the root value");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", 4, "nesting deeper");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1 2],\"data_offsets\":[0,8]}}", 8, "expected ',' or ']'");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,2", 0, "array not closed");
    /* Escapes that are fine: a name with every escape, and its lookup. */
    write_st("{\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    gkd_safetensors *f = NULL;
    ck_assert_msg(gkd_safetensors_open(&f, path) == 0, "%s", gkd_last_error());
    size_t i;
    ck_assert_int_eq(gkd_safetensors_find(&i, f, "\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80"), 0);
    gkd_safetensors_close(f);
}
END_TEST

START_TEST(test_header_schema) {
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8, "duplicate key \"t\"");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                   "duplicate key \"dtype\"");
    header_refused("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, "duplicate key \"a\"");
    header_refused("{\"t\":[1]}", 0, "tensor \"t\": its entry is an array, not an object");
    header_refused("{\"t\":\"F32\"}", 0, "its entry is a string");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offsets\":[0,4]}}", 4,
                   "unknown field \"offsets\"");
    header_refused("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"t\": no \"dtype\" field");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "no \"shape\" field");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "no \"data_offsets\" field");
    header_refused("{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string");
    header_refused("{\"t\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"F31\"");
    header_refused("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\"");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape is not an array");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                   "shape[0] is not a non-negative integer");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", 8,
                   "shape[1] is not a non-negative integer");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                   "9 dimensions, more than the 8");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                   "data_offsets is not an array [begin, end]");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4, "data_offsets is not an array");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "not two non-negative integers");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4, "not two non-negative");
    header_refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "end before they begin");
    header_refused("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    header_refused("{\"__metadata__\":{\"n\":1}}", 0, "__metadata__ \"n\" is not a string");
    header_refused("{\"__metadata__\":{\"n\":{}}}", 0, "__metadata__ \"n\" is not a string");
    /* Names quoted in a message stay on one line. */
    header_refused("{\"a\\nb\":[]}", 0, "tensor \"a?b\"");
}
END_TEST

START_TEST(test_offsets_and_sizes) {
    /* Overlap. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12, "tensor \"b\": data_offsets [4, 12] overlap tensor \"a\", which ends at 8");
    /* The same range twice. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                   4, "overlap");
    /* A gap between two tensors, and one before the first. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   12, "bytes [4, 8) of the data buffer, before tensor \"b\", belong to no tensor");
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "bytes [0, 4)");
    /* Bytes after the last tensor. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5,
                   "bytes [4, 5) at the end of the data buffer belong to no tensor");
    header_refused("{}", 1, "bytes [0, 1) at the end");
    /* Out of range: past the buffer, and near 2^64. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                   "data_offsets [0, 8] beyond the data buffer (4 bytes)");
    header_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551614,18446744073709551615]}}", 4,
                   "beyond the data buffer");
    /* Shape and bytes disagree. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12,
                   "tensor \"a\": shape [2, 2] of F32 is 16 bytes, its data_offsets [0, 12] hold 12");
    header_refused("{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4, "is 6 bytes");
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 0, "shape [] of F32 is 4 bytes");
    /* Products that overflow 64 bits. */
    header_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                   "the product of its shape overflows 64 bits");
    header_refused("{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0,
                   "its size in bytes overflows 64 bits");
    header_refused("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1, "3 elements of F4 do not fill whole bytes");
}
END_TEST

START_TEST(test_file_changed_after_open) {
    write_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    gkd_safetensors *f = NULL;
    ck_assert_int_eq(gkd_safetensors_open(&f, path), 0);
    ck_assert_int_eq(truncate(path, 20), 0);
    float x[4];
    ck_assert_int_eq(gkd_safetensors_read_f32(x, 4, f, 0), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "changed since it was opened"));
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), path));
    gkd_safetensors_close(f);
}
END_TEST

Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fixture_values);
    tcase_add_test(tc, test_f16_all_patterns);
    tcase_add_test(tc, test_minimal_files);
    tcase_add_test(tc, test_truncated_and_lying_sizes);
    tcase_add_test(tc, test_json_grammar);
    tcase_add_test(tc, test_header_schema);
    tcase_add_test(tc, test_offsets_and_sizes);
    tcase_add_test(tc, test_file_changed_after_open);
    suite_add_tcase(s, tc);
    return s;
}
