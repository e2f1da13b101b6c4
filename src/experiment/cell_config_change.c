/* What changed in a cell's config (cell_dir.h): the saved config.yaml and
 * the current cell, both read through the schema, compared key by key on
 * their typed values in the schema's order (that of config.yaml). */
#define _GNU_SOURCE /* open_memstream */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_dir.h"
#include "experiment_internal.h"
#include "run_path.h"

/* Keys outside the config hash (name, description, labels, slurm.*, and
 * variants, whose values a cell holds resolved) change no result. */
static int in_config(const exp_key *k) { return !(k->flags & F_NO_AXIS) && k->kind != K_VARIANTS; }

static const char *str_field(const gkd_cell_config *c, const exp_key *k) {
    const char *s;
    memcpy(&s, (const char *)c + k->offset, sizeof s);
    return s ? s : "";
}

static int int_field(const gkd_cell_config *c, const exp_key *k) {
    int i;
    memcpy(&i, (const char *)c + k->offset, sizeof i);
    return i;
}

static int same_value(const exp_key *k, const gkd_cell_config *a, const gkd_cell_config *b) {
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->kind) {
    case K_INT: case K_BOOL: case K_ENUM: return int_field(a, k) == int_field(b, k);
    case K_INIT:
        return a->student_init == b->student_init &&
               (a->student_init != GKD_INIT_CHECKPOINT ||
                !strcmp(a->student_checkpoint ? a->student_checkpoint : "",
                        b->student_checkpoint ? b->student_checkpoint : ""));
    case K_U64: case K_SEEDS: {
        uint64_t x, y;
        memcpy(&x, fa, sizeof x);
        memcpy(&y, fb, sizeof y);
        return x == y;
    }
    case K_DOUBLE: {
        double x, y;
        memcpy(&x, fa, sizeof x);
        memcpy(&y, fb, sizeof y);
        return x == y;
    }
    default: return !strcmp(str_field(a, k), str_field(b, k));
    }
}

/* The value as config.yaml writes it. */
static void value_text(char *out, size_t cap, const exp_key *k, const gkd_cell_config *c) {
    const char *field = (const char *)c + k->offset;
    switch (k->kind) {
    case K_INT: snprintf(out, cap, "%d", int_field(c, k)); break;
    case K_BOOL: snprintf(out, cap, "%s", int_field(c, k) ? "true" : "false"); break;
    case K_ENUM: {
        const char *p = k->choices;
        for (int j = 0; j < int_field(c, k) && p; j++)
            if ((p = strchr(p, '|'))) p++;
        snprintf(out, cap, "%.*s", p ? (int)strcspn(p, "|") : 0, p ? p : "");
        break;
    }
    case K_U64: case K_SEEDS: {
        uint64_t u;
        memcpy(&u, field, sizeof u);
        snprintf(out, cap, k->kind == K_SEEDS ? "[%llu]" : "%llu", (unsigned long long)u);
        break;
    }
    case K_DOUBLE: {
        double d;
        memcpy(&d, field, sizeof d);
        exp_format_double(out, cap, d);
        break;
    }
    case K_INIT:
        if (c->student_init == GKD_INIT_CHECKPOINT)
            snprintf(out, cap, "\"%s\"", c->student_checkpoint ? c->student_checkpoint : "");
        else snprintf(out, cap, "%s", c->student_init == GKD_INIT_SFT ? "sft" : "random");
        break;
    case K_ENUM_STR: case K_DIV: snprintf(out, cap, "%s", str_field(c, k)); break;
    default: snprintf(out, cap, "\"%s\"", str_field(c, k)); break;
    }
}

/* The current cell as config.yaml would hold it, read back: which keys it
 * writes is then known the same way as for the saved one. */
static int load_current(gkd_experiment **out, const gkd_cell_config *c, const char *path) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return gkd_error(GKD_ENOMEM, "out of memory");
    int rc = gkd_cell_config_write_yaml(c, f);
    if (fclose(f) != 0 && !rc) rc = gkd_error(GKD_EIO, "writing the cell config failed");
    if (!rc) rc = gkd_experiment_load_buffer(out, text, len, path);
    free(text);
    return rc;
}

void cell_config_change(char *out, size_t cap, const char *dir, const gkd_cell_config *c) {
    char path[RUN_PATH_CAP], was[256], now[256];
    gkd_experiment *old_exp = NULL, *now_exp = NULL;
    gkd_cell_config old_cell, now_cell;
    out[0] = '\0';
    /* A hint to an error the caller reports: when it cannot be told (a
     * config.yaml this gkd cannot read), the error goes without it. */
    if (run_path_join(path, dir, "config.yaml") || gkd_experiment_load(&old_exp, path) ||
        gkd_experiment_cell(old_exp, 0, &old_cell) || load_current(&now_exp, c, path) ||
        gkd_experiment_cell(now_exp, 0, &now_cell))
        goto done;
    for (int i = 0; i < exp_num_keys; i++) {
        const exp_key *k = &exp_keys[i];
        int in_old = old_exp->set[i].n > 0, in_now = now_exp->set[i].n > 0;
        if (!in_config(k) || (!in_old && !in_now) || (in_old && in_now && same_value(k, &old_cell, &now_cell)))
            continue;
        if (in_old) value_text(was, sizeof was, k, &old_cell);
        else snprintf(was, sizeof was, "not in the old config");
        if (in_now) value_text(now, sizeof now, k, &now_cell);
        else snprintf(now, sizeof now, "not set");
        snprintf(out, cap, "%s: %s -> %s", k->path, was, now);
        break;
    }
done:
    gkd_experiment_free(old_exp);
    gkd_experiment_free(now_exp);
}
