/* libFuzzer target for the schedule state blob a resume reads from a
 * checkpoint's extra data: the input goes to gkd_schedule_load of a
 * schedule with replay off, fixed and adaptive (fuzz.h). It must be refused
 * with one line leaving the schedule as it was, or restore a state that
 * saves back, steps and replays. Seeds: states saved by gkd_schedule_save
 * of those schedules after a few steps (fuzz/seeds.c). The blob ends in an
 * FNV-1a 64 checksum; the custom mutator recomputes it for most mutants. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/schedule.h"
#include "util/blob.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8 != 0 && size >= 16) {
        blob_writer w = {data + size - 8, 0};
        blob_u64(&w, blob_fnv1a64(data, size - 8));
    }
    return size;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_schedule: %s\n", what);
        abort();
    }
}

static void one(int k, const uint8_t *data, size_t size) {
    gkd_schedule_options o = fuzz_schedule_options(k);
    gkd_schedule *s = NULL;
    check(gkd_schedule_new(&s, &o, FUZZ_SCHEDULE_SEED) == 0, "schedule_new");
    unsigned char *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    check(gkd_schedule_save(s, &before, &nb) == 0, "save");
    int rc = gkd_schedule_load(s, data, size, FUZZ_VOCAB);
    if (rc) {
        fuzz_check_error(rc, "gkd_schedule_load");
        check(gkd_schedule_save(s, &after, &na) == 0, "save");
        check(na == nb && memcmp(before, after, na) == 0, "a failed load changed the schedule");
    } else {
        /* Saving again is canonical: load(save(s)) saves the same bytes. */
        check(gkd_schedule_save(s, &after, &na) == 0, "save of a loaded schedule");
        gkd_schedule *t = NULL;
        check(gkd_schedule_new(&t, &o, FUZZ_SCHEDULE_SEED) == 0, "schedule_new");
        if (gkd_schedule_load(t, after, na, FUZZ_VOCAB) != 0) {
            fprintf(stderr, "fuzz_schedule: a saved state does not load: %s\n", gkd_last_error());
            abort();
        }
        unsigned char *third = NULL;
        size_t n3 = 0;
        check(gkd_schedule_save(t, &third, &n3) == 0 && n3 == na && memcmp(third, after, na) == 0,
              "save(load(save)) differs");
        free(third);
        gkd_schedule_free(t);
        /* Go on from the restored state. */
        long step = gkd_schedule_next_step(s);
        gkd_schedule_choice ch[3];
        double th = gkd_schedule_threshold(s);
        check(th >= 0.0 && th <= 1.0, "threshold out of [0, 1]");
        if (step < 0x7fffffffL && gkd_schedule_step(s, step, 3, ch) != 0) {
            fprintf(stderr, "fuzz_schedule: cannot step a restored schedule: %s\n", gkd_last_error());
            abort();
        }
        check(gkd_schedule_validation(s, 1.0, NULL) == 0, "validation");
        gkd_replay *buf = gkd_schedule_buffer(s);
        if (buf && gkd_replay_count(buf) > 0) {
            gkd_seqbatch b;
            check(gkd_seqbatch_new(&b, 2, o.seq_cap) == 0, "seqbatch");
            check(gkd_schedule_replay(s, step, &b, NULL) == 0, "replay from a restored buffer");
            gkd_seqbatch_free(&b);
        }
    }
    free(before);
    free(after);
    gkd_schedule_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int k = 0; k < FUZZ_NSCHEDULES; k++) one(k, data, size);
    return 0;
}
