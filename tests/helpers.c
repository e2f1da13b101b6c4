/* Helpers shared by the test suites (helpers.h). */
#include "helpers.h"

#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "gkd/error.h"
#include "gkd/rng.h"

void th_make_tmpdir(char *buf, size_t cap, const char *prefix) {
    ck_assert_int_lt(snprintf(buf, cap, "/tmp/%s-XXXXXX", prefix), (int)cap);
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

void th_remove_tmpdir(const char *dir) {
    char cmd[4200];
    ck_assert_int_lt(snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir), (int)sizeof cmd);
    ck_assert_int_eq(system(cmd), 0);
}

void th_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

void th_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    if (n) ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

unsigned char *th_read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    b[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return b;
}

const char *th_fixture_path(const char *dir, const char *name) {
    static char buf[4200];
    const char *root = getenv("GKD_ROOT");
    ck_assert_int_lt(snprintf(buf, sizeof buf, "%s/tests/fixtures/%s/%s", root && *root ? root : ".", dir, name),
                     (int)sizeof buf);
    return buf;
}

gkd_model *th_make_model(int V, int max_seq_len, int L, int C, int NH, uint64_t seed, float jitter,
                         uint64_t jitter_tag) {
    gkd_model_config cfg = {.vocab_size = V, .max_seq_len = max_seq_len, .n_layer = L, .n_embd = C,
                            .n_head = NH};
    return th_make_model_cfg(&cfg, seed, jitter, jitter_tag);
}

gkd_model *th_make_model_cfg(const gkd_model_config *cfg, uint64_t seed, float jitter,
                             uint64_t jitter_tag) {
    gkd_model *m = NULL;
    ck_assert_msg(gkd_model_new(&m, cfg) == 0, "%s", gkd_last_error());
    gkd_model_init_weights(m, seed);
    if (jitter > 0) {
        gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, jitter_tag, 0);
        for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += jitter * gkd_rng_normal(&r);
    }
    return m;
}

void th_check_logits_rows(const gkd_model_config *cfg, uint64_t seed, int B, int T) {
    const int V = cfg->vocab_size, N = B * T;
    gkd_model *whole = th_make_model_cfg(cfg, seed, 0.05f, 1), *rows = th_make_model_cfg(cfg, seed, 0.05f, 1);
    int *tok = malloc(sizeof(int) * (size_t)N);
    float *out = malloc(sizeof(float) * (size_t)N * V), *ref = malloc(sizeof(float) * (size_t)N * V);
    ck_assert(tok && out && ref);
    gkd_rng r = gkd_rng_derive(seed, GKD_RNG_DATA, 7, 0);
    for (int i = 0; i < N; i++) tok[i] = (int)gkd_rng_below(&r, (uint32_t)V);
    ck_assert_int_eq(gkd_model_logits_rows(rows, 0, 1, out), GKD_ESTATE);
    ck_assert_int_eq(gkd_model_forward(whole, tok, B, T), 0);
    memcpy(ref, whole->logits, sizeof(float) * (size_t)N * V);
    const int saved = omp_get_max_threads();
    const int chunks[] = {1, 5, 16, N};
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        ck_assert_int_eq(gkd_model_forward_hidden(rows, tok, B, T), 0);
        ck_assert_ptr_null(rows->logits);
        for (int c = 0; c < 4; c++) {
            memset(out, 0xff, sizeof(float) * (size_t)N * V); /* NaN: a row left out shows */
            for (int r0 = 0; r0 < N; r0 += chunks[c]) {
                const int n = N - r0 < chunks[c] ? N - r0 : chunks[c];
                ck_assert_int_eq(gkd_model_logits_rows(rows, r0, n, out + (size_t)r0 * V), 0);
            }
            ck_assert_msg(!memcmp(out, ref, sizeof(float) * (size_t)N * V), "chunks of %d rows, %d threads differ",
                          chunks[c], threads);
        }
    }
    omp_set_num_threads(saved);
    /* The rows of a whole forward are its logits too. */
    ck_assert_int_eq(gkd_model_logits_rows(whole, N - 3, 3, out), 0);
    ck_assert(!memcmp(out, ref + (size_t)(N - 3) * V, sizeof(float) * 3 * (size_t)V));
    ck_assert_int_eq(gkd_model_logits_rows(rows, -1, 2, out), GKD_EINVAL);
    ck_assert_int_eq(gkd_model_logits_rows(rows, 0, 0, out), GKD_EINVAL);
    ck_assert_int_eq(gkd_model_logits_rows(rows, N - 2, 3, out), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "outside"));
    /* A whole forward after hidden ones allocates and fills the logits. */
    ck_assert_int_eq(gkd_model_forward(rows, tok, B, T), 0);
    ck_assert(!memcmp(rows->logits, ref, sizeof(float) * (size_t)N * V));
    free(tok), free(out), free(ref);
    gkd_model_free(whole);
    gkd_model_free(rows);
}

double th_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

double th_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int th_read_floats(FILE *f, float **out, size_t n) {
    *out = malloc(n * sizeof(float));
    return *out && fread(*out, sizeof(float), n, f) == n;
}

double th_fd_rel_err(th_objective f, void *ctx, float *x, const float *grad, size_t n, float step) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = saved + step;
        double fp = f(ctx);
        x[i] = saved - step;
        double fm = f(ctx);
        x[i] = saved;
        /* the actual step in float may differ from `step` by rounding */
        double h2 = (double)(saved + step) - (double)(saved - step);
        double g = (fp - fm) / h2;
        num += (g - grad[i]) * (g - grad[i]);
        den += (double)grad[i] * grad[i];
    }
    ck_assert_msg(den > 0, "zero analytic gradient: test is vacuous");
    return sqrt(num / den);
}

uint64_t th_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int th_gkd(const char *dir, const char *fmt, ...) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set (run through make test)");
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 '%s' %s > out.txt 2> err.txt", dir, bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void th_bytes_put(th_bytes *o, const void *p, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = 2 * (o->n + n) + 64;
        o->b = realloc(o->b, o->cap);
        ck_assert_ptr_nonnull(o->b);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

void th_bytes_u32(th_bytes *o, uint32_t v) {
    unsigned char b[4];
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(v >> (8 * k));
    th_bytes_put(o, b, 4);
}

void th_bytes_f32(th_bytes *o, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    th_bytes_u32(o, u);
}

void th_bytes_piece(th_bytes *o, float score, const char *s) {
    th_bytes_f32(o, score);
    th_bytes_u32(o, (uint32_t)strlen(s));
    th_bytes_put(o, s, strlen(s));
}

th_bytes th_llama2c_tokenizer(const char *const *pieces, const float *scores, int n) {
    th_bytes o = {0};
    th_bytes_u32(&o, 16); /* max piece length */
    th_bytes_piece(&o, 0, "<unk>");
    th_bytes_piece(&o, 0, "\n<s>\n");
    th_bytes_piece(&o, 0, "\n</s>\n");
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        th_bytes_piece(&o, 0, s);
    }
    for (int i = 0; i < n; i++) th_bytes_piece(&o, scores[i], pieces[i]);
    return o;
}

void th_write_small_llama2c_tokenizer(const char *path) {
    static const char *const pieces[] = {" ", "a", "b", "c", "ab", "bc", " ab", "abc", "\xC3\xA9", " \xC3\xA9"};
    static const float scores[] = {-100, -101, -102, -103, -1, -2, -3, -4, -104, -5};
    th_bytes o = th_llama2c_tokenizer(pieces, scores, 10);
    th_write_bytes(path, o.b, o.n);
    free(o.b);
}

const char *th_llama2_file(const char *name, const char *suite) {
    static char p[4096];
    const char *b = getenv("GKD_BUILD");
    struct stat st;
    snprintf(p, sizeof p, "%s/tokenizers/llama2/%s", b && *b ? b : "build", name);
    if (stat(p, &st) == 0) return p;
    /* CI sets GKD_REQUIRE_NPM: there a missing vocabulary is a failure,
     * not a skip. */
    const char *req = getenv("GKD_REQUIRE_NPM");
    ck_assert_msg(!(req && *req && strcmp(req, "0")), "%s not there and GKD_REQUIRE_NPM is set", p);
    fprintf(stderr,
            "%s: %s not there (make test writes it with npm from tools/tokenizer_oracles_llama); Llama 2 checks "
            "skipped\n",
            suite, p);
    return NULL;
}
