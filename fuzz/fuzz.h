/* Helpers shared by the libFuzzer targets fuzz/fuzz_*.c and the seed
 * program fuzz/seeds.c: a scratch directory, writing an input to a file for
 * readers that take a path, the one-line rule for error messages, and the
 * schedule options the schedule target and its seeds agree on. */
#ifndef GKD_FUZZ_H
#define GKD_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/schedule.h"

/* A fresh directory under /dev/shm (else $TMPDIR or /tmp), removed at exit.
 * A crash leaves it behind; it holds a few small files. */
static char fuzz_dir_path[256];
static inline void fuzz_dir_remove(void) {
    if (fuzz_dir_path[0]) gkd_remove_tree(fuzz_dir_path);
}
static inline const char *fuzz_dir(void) {
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/gkd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fuzz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* dir/name (static buffer per call site is the caller's: out, cap). */
static inline const char *fuzz_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fuzz_dir(), name);
    return out;
}

/* Replace path with exactly the n bytes of data (a harness failure aborts). */
static inline void fuzz_write(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            fprintf(stderr, "fuzz: write %s: %s\n", path, strerror(errno));
            abort();
        }
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

/* DESIGN.md: bad input gets one clear line. A reader that failed must have
 * said something, on one line. */
static inline void fuzz_check_error(int rc, const char *what) {
    const char *msg = gkd_last_error();
    if (rc >= 0) {
        fprintf(stderr, "fuzz: %s returned %d, not a negative error code\n", what, rc);
        abort();
    }
    if (!msg || !*msg || strchr(msg, '\n') || strchr(msg, '\r')) {
        fprintf(stderr, "fuzz: %s failed (%d) without a one-line message: [%s]\n", what, rc, msg ? msg : "(null)");
        abort();
    }
}

/* The schedules the schedule target loads blobs into; fuzz/seeds.c saves
 * states of the same ones. A blob made for other options or another seed is
 * refused (GKD_EMISMATCH) before its state is read. */
#define FUZZ_NSCHEDULES 3
#define FUZZ_SCHEDULE_SEED 42u
/* The vocabulary replayed tokens are checked against (the seeds' tokens
 * are below 13). */
#define FUZZ_VOCAB 16
static inline gkd_schedule_options fuzz_schedule_options(int k) {
    gkd_schedule_options o = GKD_SCHEDULE_OPTIONS_INIT;
    o.lambda = 0.5;
    o.seqkd = 0.25;
    o.capacity = 4;
    o.seq_cap = 8;
    if (k == 1) {
        o.replay = GKD_REPLAY_FIXED;
        o.p_replay = 0.5;
        o.replay_min = 1;
    } else if (k == 2) {
        o.replay = GKD_REPLAY_ADAPTIVE;
        o.total_steps = 20;
        o.per_example = 1;
    }
    return o;
}

#endif
