/* llama2.c reader: the four files of tests/fixtures/tensors (tied and
 * untied, legacy and version 1, one tiny model with n_kv_heads < n_heads)
 * against llama2c.tsv (both from tools/make_tensor_fixtures.py), and every
 * refusal: truncated files and trailing bytes, non-positive and
 * overflowing dimensions, n_heads not dividing dim, n_kv_heads not
 * dividing n_heads, odd head sizes, unknown versions, the Q8_0 version 2,
 * a malformed version 1 header. Each refusal is one line naming the file. */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/llama2c.h"

#include "helpers.h"

static char dir[128];
static char path[256];

static void setup(void) {
    th_make_tmpdir(dir, sizeof dir, "gkd_l2c");
    snprintf(path, sizeof path, "%s/m.bin", dir);
}
static void teardown(void) { th_remove_tmpdir(dir); }

/* The file under test (path) := b[0..n). */
static void write_bytes(const unsigned char *b, size_t n) { th_write_bytes(path, b, n); }

static void put32(unsigned char *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(u >> (8 * k));
}

static void refused_as(int code, const char *what) {
    gkd_llama2c *m = (gkd_llama2c *)1;
    int rc = gkd_llama2c_open(&m, path);
    const char *msg = gkd_last_error();
    ck_assert_msg(rc == code, "expected %d for [%s], got %d: %s", code, what, rc, msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strncmp(msg, "llama2.c ", 9) == 0 && strstr(msg, path), "message does not name the file: %s", msg);
    ck_assert_msg(strstr(msg, what) != NULL, "message [%s] does not say [%s]", msg, what);
    ck_assert_msg(!strchr(msg, '\n'), "message is not one line: %s", msg);
}

/* The legacy tied fixture with header int k (0 dim ... 6 seq_len) set to v. */
static void legacy_with(int k, int32_t v) {
    size_t n;
    unsigned char *b = th_read_bytes(th_fixture_path("tensors", "tied_v0.bin"), &n);
    put32(b + 4 * k, v);
    write_bytes(b, n);
    free(b);
}

START_TEST(test_fixtures) {
    FILE *tsv = fopen(th_fixture_path("tensors", "llama2c.tsv"), "r");
    ck_assert_ptr_nonnull(tsv);
    static char line[1 << 14];
    char files[4][64];
    int fmeta[4][4], cfg[4][8], nfiles = 0, ntensors = 0;
    char names[64][32], shapes[64][32];
    static char values[64][1024];
    while (fgets(line, sizeof line, tsv)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = '\0';
        char *rest = line, *kind = strsep(&rest, "\t");
        if (!strcmp(kind, "file")) {
            ck_assert_int_lt(nfiles, 4);
            snprintf(files[nfiles], sizeof files[0], "%s", strsep(&rest, "\t"));
            for (int k = 0; k < 3; k++) fmeta[nfiles][k] = atoi(strsep(&rest, "\t"));
            char *dims = strsep(&rest, "\t");
            for (int k = 0; k < 8; k++) cfg[nfiles][k] = atoi(strsep(&dims, ","));
            nfiles++;
        } else {
            ck_assert_str_eq(kind, "tensor");
            ck_assert_int_lt(ntensors, 64);
            snprintf(names[ntensors], 32, "%s", strsep(&rest, "\t"));
            snprintf(shapes[ntensors], 32, "%s", strsep(&rest, "\t"));
            snprintf(values[ntensors], 1024, "%s", strsep(&rest, "\t"));
            ntensors++;
        }
    }
    fclose(tsv);
    ck_assert_int_eq(nfiles, 4);
    ck_assert_int_eq(ntensors, 2 + 2 * 9 + 1);

    for (int fi = 0; fi < nfiles; fi++) {
        gkd_llama2c *m = NULL;
        ck_assert_msg(gkd_llama2c_open(&m, th_fixture_path("tensors", files[fi])) == 0, "%s", gkd_last_error());
        const gkd_llama2c_config *c = gkd_llama2c_config_of(m);
        ck_assert_int_eq(c->version, fmeta[fi][0]);
        ck_assert_int_eq(c->shared_classifier, fmeta[fi][1]);
        int got[8] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len, c->head_size};
        for (int k = 0; k < 8; k++) ck_assert_int_eq(got[k], cfg[fi][k]);
        int shared = c->shared_classifier;
        ck_assert_uint_eq(gkd_llama2c_count(m), (size_t)(ntensors - shared));
        for (int t = 0; t < ntensors - shared; t++) {
            const gkd_llama2c_tensor *x = gkd_llama2c_tensor_at(m, (size_t)t);
            ck_assert_str_eq(x->name, names[t]);
            size_t idx;
            ck_assert_msg(gkd_llama2c_find(&idx, m, names[t]) == 0, "%s", gkd_last_error());
            ck_assert_uint_eq(idx, (size_t)t);
            char sh[32];
            if (x->rank == 1) snprintf(sh, sizeof sh, "%lld", (long long)x->shape[0]);
            else snprintf(sh, sizeof sh, "%lld,%lld", (long long)x->shape[0], (long long)x->shape[1]);
            ck_assert_str_eq(sh, shapes[t]);
            float *out = malloc(sizeof(float) * x->numel);
            ck_assert_msg(gkd_llama2c_read(out, x->numel, m, (size_t)t) == 0, "%s", gkd_last_error());
            static char copy[1024];
            memcpy(copy, values[t], sizeof copy);
            char *vs = copy, *tok;
            uint64_t k = 0;
            while ((tok = strsep(&vs, " ")) && *tok) {
                ck_assert_uint_lt(k, x->numel);
                uint32_t u;
                memcpy(&u, &out[k], 4);
                ck_assert_msg(u == (uint32_t)strtoul(tok, NULL, 16), "%s %s[%llu] = %08x, expected %s", files[fi],
                              names[t], (unsigned long long)k, u, tok);
                k++;
            }
            ck_assert_uint_eq(k, x->numel);
            ck_assert_int_eq(gkd_llama2c_read(out, x->numel + 1, m, (size_t)t), GKD_EMISMATCH);
            free(out);
        }
        size_t idx;
        if (shared) {
            ck_assert_int_eq(gkd_llama2c_find(&idx, m, "wcls"), GKD_EINVAL);
            ck_assert_ptr_nonnull(strstr(gkd_last_error(), "shared with tok_embeddings"));
        }
        const char *bad[] = {"layers.2.wq", "layers.01.wq", "layers.0.wx", "layers.0.", "layers..wq", "layers.0",
                             "tok_embedding", "layers.-1.wq", "layers.0.wq.", "", "layers.99999999999.wq"};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            ck_assert_msg(gkd_llama2c_find(&idx, m, bad[k]) == GKD_EINVAL, "found %s", bad[k]);
            ck_assert_ptr_nonnull(strstr(gkd_last_error(), "no tensor"));
        }
        ck_assert_int_eq(gkd_llama2c_read(NULL, 0, m, gkd_llama2c_count(m)), GKD_EINVAL);
        ck_assert_ptr_null(gkd_llama2c_tensor_at(m, gkd_llama2c_count(m)));
        gkd_llama2c_close(m);
    }
    gkd_llama2c_close(NULL);
}
END_TEST

START_TEST(test_truncated_and_trailing) {
    for (int fi = 0; fi < 4; fi++) {
        const char *name[] = {"tied_v0.bin", "untied_v0.bin", "tied_v1.bin", "untied_v1.bin"};
        size_t n;
        unsigned char *b = th_read_bytes(th_fixture_path("tensors", name[fi]), &n);
        /* Cuts in the header, at its edges and through the tensors are
         * refused, naming what is missing. */
        size_t edges[] = {27, 28, 29, 255, 256, 257, n - 5, n - 4, n - 1};
        for (size_t j = 0; j < 60 + sizeof edges / sizeof edges[0]; j++) {
            size_t cut = j < 60 ? j * n / 60 : edges[j - 60];
            write_bytes(b, cut);
            gkd_llama2c *m = (gkd_llama2c *)1;
            int rc = gkd_llama2c_open(&m, path);
            ck_assert_msg(rc == GKD_ECORRUPT, "%s cut at %zu: %d %s", name[fi], cut, rc, gkd_last_error());
            ck_assert_ptr_null(m);
            ck_assert_ptr_nonnull(strstr(gkd_last_error(), "truncated"));
        }
        unsigned char *more = calloc(n + 4, 1);
        memcpy(more, b, n);
        write_bytes(more, n + 4);
        refused_as(GKD_EFORMAT, "4 bytes after the last tensor");
        free(more);
        free(b);
    }
    /* The tied file with a classifier appended: the sign of vocab_size says it is tied. */
    size_t n;
    unsigned char *b = th_read_bytes(th_fixture_path("tensors", "untied_v0.bin"), &n);
    put32(b + 20, 3);
    write_bytes(b, n);
    refused_as(GKD_EFORMAT, "a separate classifier needs a negative vocab_size");
    free(b);
    unsigned char small[27] = {0};
    write_bytes(small, sizeof small);
    refused_as(GKD_ECORRUPT, "truncated: 27 bytes");
    snprintf(path, sizeof path, "%s/absent.bin", dir);
    refused_as(GKD_EIO, "absent.bin");
}
END_TEST

START_TEST(test_bad_dimensions) {
    static const char *const field[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    char what[64];
    for (int k = 0; k < 7; k++) {
        if (k != 5) {
            legacy_with(k, -4);
            snprintf(what, sizeof what, "%s is -4, not a positive number", field[k]);
            refused_as(GKD_EFORMAT, what);
        }
        legacy_with(k, 0);
        snprintf(what, sizeof what, "%s is 0, not a positive number", field[k]);
        refused_as(GKD_EFORMAT, what);
        legacy_with(k, INT32_MIN);
        snprintf(what, sizeof what, "%s is %d", field[k], INT32_MIN);
        refused_as(GKD_EFORMAT, what);
    }
    legacy_with(3, 3); /* dim 4 */
    refused_as(GKD_EFORMAT, "n_heads 3 does not divide dim 4");
    legacy_with(4, 4); /* n_heads 2 */
    refused_as(GKD_EFORMAT, "n_kv_heads 4 does not divide n_heads 2");
    legacy_with(3, 4); /* head size 1 */
    refused_as(GKD_EFORMAT, "head size 1 (dim 4 / n_heads 4) is odd");
    legacy_with(2, 4097);
    refused_as(GKD_EFORMAT, "n_layers is 4097, beyond the 4096");
    /* Sizes of a plausible shape that the file does not hold. */
    legacy_with(6, 1 << 30);
    refused_as(GKD_ECORRUPT, "truncated: the header implies");
    /* Products beyond 64 bits. */
    size_t n;
    unsigned char *b = th_read_bytes(th_fixture_path("tensors", "tied_v0.bin"), &n);
    int32_t huge[7] = {1 << 30, INT32_MAX, 4096, 2, 1, INT32_MAX, INT32_MAX};
    for (int k = 0; k < 7; k++) put32(b + 4 * k, huge[k]);
    write_bytes(b, n);
    refused_as(GKD_EFORMAT, "the config's tensor sizes overflow 64 bits");
    free(b);
}
END_TEST

START_TEST(test_versions) {
    size_t n;
    unsigned char *b = th_read_bytes(th_fixture_path("tensors", "untied_v1.bin"), &n);
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    put32(c + 4, 2);
    write_bytes(c, n);
    refused_as(GKD_EVERSION, "export version 2 (Q8_0 int8 weights) is not supported");
    put32(c + 4, 3);
    write_bytes(c, n);
    refused_as(GKD_EVERSION, "export version 3, this build reads");
    put32(c + 4, 1);
    write_bytes(c, 100);
    refused_as(GKD_ECORRUPT, "less than the 256 of a version 1 header");
    c[36] = 2;
    write_bytes(c, n);
    refused_as(GKD_EFORMAT, "shared_classifier flag is 2");
    c[36] = 0;
    c[200] = 7;
    write_bytes(c, n);
    refused_as(GKD_EFORMAT, "header byte 200 is 7");
    c[200] = 0;
    put32(c + 28, -3); /* vocab_size: version 1 has a flag for that */
    write_bytes(c, n);
    refused_as(GKD_EFORMAT, "vocab_size is -3, not a positive number");
    /* Unchanged, it opens. */
    memcpy(c, b, n);
    write_bytes(c, n);
    gkd_llama2c *m = NULL;
    ck_assert_msg(gkd_llama2c_open(&m, path) == 0, "%s", gkd_last_error());
    gkd_llama2c_close(m);
    free(c);
    free(b);
}
END_TEST

START_TEST(test_file_changed_after_open) {
    size_t n;
    unsigned char *b = th_read_bytes(th_fixture_path("tensors", "untied_v0.bin"), &n);
    write_bytes(b, n);
    free(b);
    gkd_llama2c *m = NULL;
    ck_assert_int_eq(gkd_llama2c_open(&m, path), 0);
    ck_assert_int_eq(truncate(path, 100), 0);
    size_t i;
    ck_assert_int_eq(gkd_llama2c_find(&i, m, "wcls"), 0);
    float x[12];
    ck_assert_int_eq(gkd_llama2c_read(x, 12, m, i), GKD_EIO);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "changed since it was opened"));
    gkd_llama2c_close(m);
}
END_TEST

Suite *llama2c_suite(void) {
    Suite *s = suite_create("llama2c");
    TCase *tc = tcase_create("llama2c");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fixtures);
    tcase_add_test(tc, test_truncated_and_trailing);
    tcase_add_test(tc, test_bad_dimensions);
    tcase_add_test(tc, test_versions);
    tcase_add_test(tc, test_file_changed_after_open);
    suite_add_tcase(s, tc);
    return s;
}
