/* libFuzzer target for the task record that checkpoints of format version
 * 2 carry (the data split a model was trained on): the input goes to
 * gkd_task_record_deserialize as is. It must be refused with one line, or
 * give a record that serializes back to the same bytes. A record of a
 * generated task small enough to build quickly is then rebuilt and
 * compared with a fixed eval split, as gkd eval does with the record of a
 * checkpoint (gkd_task_record_overlap: gkd_task_new on the recorded
 * configuration); records naming data files are not rebuilt, since their
 * absolute paths point anywhere on the machine.
 * Seeds: records of each task made by gkd_task_record_new (fuzz/seeds.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/task.h"

/* Largest recorded split rebuilt per input: enough to exercise a rebuild,
 * small enough to keep thousands of inputs a second. */
#define REBUILD_MAX 64

static gkd_task *eval_task;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.train = 16;
    c.eval = 16;
    if (gkd_task_new(&eval_task, &c)) {
        fprintf(stderr, "fuzz_task_record: %s\n", gkd_last_error());
        abort();
    }
    return 0;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_task_record: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_task_record *r = NULL;
    int rc = gkd_task_record_deserialize(&r, data, size);
    if (rc) {
        fuzz_check_error(rc, "gkd_task_record_deserialize");
        check(r == NULL, "failed deserialize left a record");
        return 0;
    }
    check(r != NULL && r->cfg.name != NULL, "a record without a task name");
    size_t n = gkd_task_record_serialized_size(r);
    check(n == size, "serialized size differs from the input's");
    unsigned char *out = malloc(n ? n : 1);
    check(out != NULL, "out of memory");
    gkd_task_record_serialize(r, out);
    check(memcmp(out, data, n) == 0, "serialize(deserialize(x)) != x");
    free(out);

    const gkd_task_config *c = &r->cfg;
    if (!c->path && !c->eval_path && c->train >= 0 && c->train <= REBUILD_MAX && c->eval >= 0 &&
        c->eval <= REBUILD_MAX) {
        gkd_task_overlap ov;
        rc = gkd_task_record_overlap(&ov, r, eval_task, 0);
        if (rc) fuzz_check_error(rc, "gkd_task_record_overlap");
        else {
            check(memchr(ov.why, '\0', sizeof ov.why) && memchr(ov.diff, '\0', sizeof ov.diff), "unterminated text");
            check(!strchr(ov.why, '\n') && !strchr(ov.diff, '\n'), "a reason on more than one line");
            check(!ov.checked || ov.overlap <= ov.eval_n, "more overlapping examples than compared");
        }
    }
    gkd_task_record_free(r);
    return 0;
}
