/* libFuzzer target for CSV files (gkd_csv_parse, gkd_csv_read and
 * gkd_csv_truncate_after_step, which a resume runs on metrics.csv): the
 * input is parsed from memory and read from a file, which must agree; a
 * parsed file written back with gkd_csv_buf must parse to the same header
 * and cells; truncating must leave a file that parses to the kept rows.
 * Seeds: the CSV files of tests/fixtures/results and results/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/csv.h"

static char path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(path, sizeof path, "in.csv");
    return 0;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_csv: %s\n", what);
        abort();
    }
}

static int same_csv(const gkd_csv *a, const gkd_csv *b) {
    if (a->ncols != b->ncols || a->nrows != b->nrows) return 0;
    for (int j = 0; j < a->ncols; j++)
        if (strcmp(a->header[j], b->header[j])) return 0;
    for (size_t i = 0; i < a->nrows; i++)
        for (int j = 0; j < a->ncols; j++)
            if (strcmp(gkd_csv_get(a, i, j), gkd_csv_get(b, i, j))) return 0;
    return 1;
}

/* Header and rows written back as gkd writes CSV. */
static void write_back(gkd_csv_buf *b, const gkd_csv *c) {
    for (int j = 0; j < c->ncols; j++) check(gkd_csv_buf_str(b, c->header[j]) == 0, "buf_str");
    check(gkd_csv_buf_end_row(b) == 0, "end_row");
    for (size_t i = 0; i < c->nrows; i++) {
        for (int j = 0; j < c->ncols; j++) check(gkd_csv_buf_str(b, gkd_csv_get(c, i, j)) == 0, "buf_str");
        check(gkd_csv_buf_end_row(b) == 0, "end_row");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_csv *c = NULL, *f = NULL;
    int rc = gkd_csv_parse(&c, (const char *)data, size, "in.csv");
    if (rc) fuzz_check_error(rc, "gkd_csv_parse");
    fuzz_write(path, data, size);
    int rf = gkd_csv_read(&f, path);
    if (rf) fuzz_check_error(rf, "gkd_csv_read");
    check((rc == 0) == (rf == 0), "parse and read disagree");
    if (!rc) check(same_csv(c, f), "parse and read give different cells");
    if (!rc) {
        check(c->ncols >= 1, "no columns");
        for (size_t i = 0; i < c->nrows; i++) check(c->lines[i] >= 2, "row line before the header");
        gkd_csv_buf b = GKD_CSV_BUF_INIT;
        write_back(&b, c);
        gkd_csv *again = NULL;
        if (gkd_csv_parse(&again, b.data, b.len, "again.csv") != 0) {
            fprintf(stderr, "fuzz_csv: written back CSV does not parse: %s\n", gkd_last_error());
            abort();
        }
        check(same_csv(c, again), "written back CSV parses to other cells");
        gkd_csv_free(again);
        gkd_csv_buf_free(&b);
    }
    gkd_csv_free(c);
    gkd_csv_free(f);

    /* A resume at step 5: what is kept still parses, and no kept row is later. */
    rc = gkd_csv_truncate_after_step(path, 5);
    if (rc) {
        fuzz_check_error(rc, "gkd_csv_truncate_after_step");
        return 0;
    }
    gkd_csv *t = NULL;
    rc = gkd_csv_read(&t, path);
    if (rc) {
        fprintf(stderr, "fuzz_csv: a truncated file does not parse: %s\n", gkd_last_error());
        abort();
    }
    {
        int col = -1; /* the last one, as truncation takes it */
        for (int j = 0; j < t->ncols; j++)
            if (!strcmp(t->header[j], "step")) col = j;
        check(col >= 0, "truncated file lost its step column");
        for (size_t i = 0; i < t->nrows; i++) check(strtol(gkd_csv_get(t, i, col), NULL, 10) <= 5, "kept a later row");
        gkd_csv_free(t);
    }
    return 0;
}
