/* libFuzzer target for checkpoint files: the input is written to a file
 * and read with gkd_checkpoint_read_config and gkd_checkpoint_load (into a
 * new model, then into that model again). Any input must load or fail with
 * one line; what loads must save and load back to the same contents.
 *
 * Seeds are real checkpoints from gkd_checkpoint_save (fuzz/seeds.c). A
 * CRC-32 covers every byte of a checkpoint, so random mutations would
 * almost never get past it: the custom mutator rewrites the envelope of
 * most mutants (payload size after magic and version, CRC trailer) so they
 * reach the parser, and leaves the rest as mutated to test the envelope
 * checks themselves. Nothing else here knows the layout: a new section in
 * the format only changes what the seeds hold (format version 2 added the
 * task record: the full seed carries one, and a loaded record must survive
 * the round trip byte for byte). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/checkpoint.h"
#include "gkd/task.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static char in_path[300], out_path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(in_path, sizeof in_path, "in.ckpt");
    fuzz_path(out_path, sizeof out_path, "again.ckpt");
    return 0;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    const size_t header = 20, trailer = 4; /* magic 8, version 4, payload size 8 | CRC-32 */
    if (seed % 8 != 0 && size >= header + trailer && memcmp(data, GKD_CHECKPOINT_MAGIC, 8) == 0) {
        put_le(data + 12, size - header - trailer, 8);
        put_le(data + size - trailer, gkd_crc32(0, data, size - trailer), 4);
    }
    return size;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", what);
        abort();
    }
}

static int same_floats(const float *a, const float *b, size_t n) {
    return (a == NULL) == (b == NULL) && (!a || memcmp(a, b, n * sizeof *a) == 0);
}

/* Both absent, or both present with the same serialized bytes. */
static int same_records(const gkd_task_record *a, const gkd_task_record *b) {
    if (!a || !b) return a == b;
    size_t n = gkd_task_record_serialized_size(a);
    if (n != gkd_task_record_serialized_size(b)) return 0;
    unsigned char *x = malloc(n ? n : 1), *y = malloc(n ? n : 1);
    check(x && y, "out of memory");
    gkd_task_record_serialize(a, x);
    gkd_task_record_serialize(b, y);
    int same = memcmp(x, y, n) == 0;
    free(x);
    free(y);
    return same;
}

/* Save what was loaded, load it back, compare. */
static void round_trip(const gkd_checkpoint_data *d) {
    gkd_checkpoint c = {0};
    c.model = d->model;
    c.tokenizer = d->tokenizer;
    c.opt_m = d->opt_m;
    c.opt_v = d->opt_v;
    c.opt_t = d->opt_t;
    c.step = d->step;
    c.rngs = d->rngs;
    c.n_rngs = d->n_rngs;
    c.extra = d->extra;
    c.extra_len = d->extra_len;
    c.task_record = d->task_record;
    if (gkd_checkpoint_save(out_path, &c) != 0) {
        fprintf(stderr, "fuzz_checkpoint: cannot save a loaded checkpoint: %s\n", gkd_last_error());
        abort();
    }
    gkd_checkpoint_data e;
    if (gkd_checkpoint_load(&e, out_path, NULL) != 0) {
        fprintf(stderr, "fuzz_checkpoint: a saved checkpoint does not load: %s\n", gkd_last_error());
        abort();
    }
    const gkd_model *m = d->model, *n = e.model;
    check(memcmp(&m->config, &n->config, sizeof m->config) == 0, "config changed in the round trip");
    check(m->num_params == n->num_params, "parameter count changed");
    check(same_floats(m->params_memory, n->params_memory, m->num_params), "parameters changed");
    check(same_floats(d->opt_m, e.opt_m, m->num_params) && same_floats(d->opt_v, e.opt_v, m->num_params),
          "optimizer state changed");
    check(d->opt_t == e.opt_t && d->step == e.step, "steps changed");
    check((d->tokenizer == NULL) == (e.tokenizer == NULL) &&
              (!d->tokenizer || gkd_tokenizer_equal(d->tokenizer, e.tokenizer)),
          "tokenizer changed");
    check(d->n_rngs == e.n_rngs && (!d->n_rngs || memcmp(d->rngs, e.rngs, d->n_rngs * sizeof *d->rngs) == 0),
          "rng states changed");
    check(d->extra_len == e.extra_len && (!d->extra_len || memcmp(d->extra, e.extra, d->extra_len) == 0),
          "extra data changed");
    check(same_records(d->task_record, e.task_record), "task record changed");
    gkd_checkpoint_data_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(in_path, data, size);
    gkd_model_config cfg;
    int rc_cfg = gkd_checkpoint_read_config(&cfg, in_path);
    if (rc_cfg) fuzz_check_error(rc_cfg, "gkd_checkpoint_read_config");
    gkd_checkpoint_data d;
    int rc = gkd_checkpoint_load(&d, in_path, NULL);
    if (rc) {
        fuzz_check_error(rc, "gkd_checkpoint_load");
        return 0;
    }
    check(rc_cfg == 0 && memcmp(&cfg, &d.model->config, sizeof cfg) == 0,
          "read_config disagrees with a successful load");
    /* Loading into the model it made: same config, so it must succeed. */
    gkd_checkpoint_data again;
    rc = gkd_checkpoint_load(&again, in_path, d.model);
    if (rc) {
        fprintf(stderr, "fuzz_checkpoint: load into its own model failed: %s\n", gkd_last_error());
        abort();
    }
    check(again.model == d.model && !again.owns_model, "load into a model made another");
    gkd_checkpoint_data_free(&again);
    round_trip(&d);
    gkd_checkpoint_data_free(&d);
    return 0;
}
