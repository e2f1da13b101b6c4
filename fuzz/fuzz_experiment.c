/* libFuzzer harness for experiment files: any input must either load or
 * fail with one located line; a loaded experiment's cells must round-trip
 * through their canonical YAML with the same config hash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/experiment.h"

static void round_trip(const gkd_cell_config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    if (gkd_cell_config_write_yaml(c, f) != 0) abort();
    fclose(f);
    gkd_experiment *again = NULL;
    if (gkd_experiment_load_buffer(&again, text, len, "cell/config.yaml") != 0) {
        fprintf(stderr, "written cell does not load: %s\n%s", gkd_last_error(), text);
        abort();
    }
    gkd_cell_config r;
    if (gkd_experiment_num_cells(again) != 1 || gkd_experiment_cell(again, 0, &r) != 0) abort();
    char h1[GKD_HASH_HEX_LEN + 1], h2[GKD_HASH_HEX_LEN + 1];
    gkd_cell_config_hash(c, h1);
    gkd_cell_config_hash(&r, h2);
    if (strcmp(h1, h2) != 0) {
        fprintf(stderr, "config hash changed in the round trip\n%s", text);
        abort();
    }
    gkd_experiment_free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_experiment *e = NULL;
    if (gkd_experiment_load_buffer(&e, (const char *)data, size, "fuzz.yaml") != 0) {
        const char *msg = gkd_last_error();
        if (!*msg || strchr(msg, '\n')) abort(); /* one non-empty line */
        return 0;
    }
    size_t n = gkd_experiment_num_cells(e);
    /* The first and last few cells cover every axis value's extremes. */
    for (size_t i = 0; i < n; i++) {
        if (i == 3 && n > 6) i = n - 3;
        gkd_cell_config c;
        if (gkd_experiment_cell(e, i, &c) != 0) abort();
        char h[GKD_HASH_HEX_LEN + 1];
        gkd_cell_teacher_hash(&c, h);
        gkd_cell_student_init_hash(&c, h);
        round_trip(&c);
    }
    gkd_experiment_free(e);
    return 0;
}
