/* Helpers shared by the test suites: temporary directories and files,
 * small models, hashes. */
#ifndef GKD_TEST_HELPERS_H
#define GKD_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gkd/model.h"

/** Create a fresh directory /tmp/<prefix>-XXXXXX into buf (fails the test
 *  if it cannot). */
void th_make_tmpdir(char *buf, size_t cap, const char *prefix);
/** rm -r dir (fails the test if it cannot). */
void th_remove_tmpdir(const char *dir);
/** Write text to path, replacing it (fails the test if it cannot). */
void th_write_file(const char *path, const char *text);
/** Write n bytes to path, replacing it (fails the test if it cannot). */
void th_write_bytes(const char *path, const void *data, size_t n);
/** The whole file, malloc'd with a NUL after its n bytes (fails the test
 *  if it cannot be read). */
unsigned char *th_read_bytes(const char *path, size_t *n);
/** GKD_ROOT/tests/fixtures/<dir>/<name> (GKD_ROOT unset: the current
 *  directory), in a static buffer that the next call overwrites. */
const char *th_fixture_path(const char *dir, const char *name);

/** A model of the given shape with GPT-2 initial weights from `seed`; with
 *  jitter > 0, N(0, jitter) noise from RNG stream (seed, data, jitter_tag)
 *  is added to every parameter, for peaked next-token distributions and
 *  non-trivial biases and gains. Fails the test if it cannot be made. */
gkd_model *th_make_model(int V, int max_seq_len, int L, int C, int NH, uint64_t seed, float jitter,
                         uint64_t jitter_tag);

/** The same for any config (a Llama one, say). */
gkd_model *th_make_model_cfg(const gkd_model_config *cfg, uint64_t seed, float jitter,
                             uint64_t jitter_tag);

/** The head in row chunks against the whole forward: a model of cfg
 *  (weights from seed) run by gkd_model_forward_hidden gives, through
 *  gkd_model_logits_rows, gkd_model_forward's logits bit for bit, for
 *  chunks of 1, 5, 16 and all B T rows, with 1 and 2 threads, and never
 *  sets m->logits; also the rows' range errors. Needs the reproducible
 *  products mode. */
void th_check_logits_rows(const gkd_model_config *cfg, uint64_t seed, int B, int T);

/** sum of a[i] * b[i], in double. */
double th_dot(const float *a, const float *b, size_t n);
/** ||a - b|| / ||b|| (||a - b|| when b is zero), in double. */
double th_rel_err(const float *a, const float *b, size_t n);
/** n floats from f into a new *out; 1 if all were read. */
int th_read_floats(FILE *f, float **out, size_t n);

/** An objective f(ctx) of the current inputs (e.g. sum(out * R)). */
typedef double (*th_objective)(void *ctx);
/** Relative error between grad (n) and central finite differences of f
 *  with respect to x (n), step `step` (the step actually taken in float
 *  is used); fails the test if grad is all zero (a vacuous check). */
double th_fd_rel_err(th_objective f, void *ctx, float *x, const float *grad, size_t n, float step);

/** FNV-1a 64 of p[0..n), continuing from h (start with TH_FNV_BASIS). */
#define TH_FNV_BASIS 0xcbf29ce484222325ull
uint64_t th_fnv1a(uint64_t h, const void *p, size_t n);

/** Run `GKD_BIN ARGS` (printf-style) in dir with one thread, stdout to
 *  dir/out.txt and stderr to dir/err.txt; its exit status (-1 if it did
 *  not exit). Fails the test if GKD_BIN is not set. */
int th_gkd(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Growable little-endian bytes (a file under construction). */
typedef struct {
    unsigned char *b;
    size_t n, cap;
} th_bytes;
void th_bytes_put(th_bytes *o, const void *p, size_t n);
void th_bytes_u32(th_bytes *o, uint32_t v);
void th_bytes_f32(th_bytes *o, float f);
/** One llama2.c piece: its score, its length and its bytes. */
void th_bytes_piece(th_bytes *o, float score, const char *s);

/** The bytes of a llama2.c tokenizer.bin (free .b): max piece length 16,
 *  <unk>, <s>, </s>, the 256 byte pieces <0x00>..<0xFF> (ids 3..258), then
 *  pieces[0..n) with their scores (ids 259...). */
th_bytes th_llama2c_tokenizer(const char *const *pieces, const float *scores, int n);

/** $GKD_BUILD/tokenizers/llama2/name (the Llama 2 vocabulary `make test`
 *  fetches with npm), in a static buffer; NULL with a notice naming suite
 *  when it is not there, a failure instead when GKD_REQUIRE_NPM is set
 *  (CI). */
const char *th_llama2_file(const char *name, const char *suite);

/** Write a small llama2.c tokenizer.bin (269 pieces) to path: the above
 *  with " " (259), "a" (260), "b" (261), "c" (262), "ab" (263, score -1),
 *  "bc" (264, -2), " ab" (265, -3), "abc" (266, -4), "é" (267), " é" (268,
 *  -5); single characters score -100 and below. Any text encodes (byte
 *  fallback). */
void th_write_small_llama2c_tokenizer(const char *path);

#endif
