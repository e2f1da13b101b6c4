/* Grid expansion: cell index -> one value per key -> a resolved cell.
 * Axes are in file order and the LAST axis varies fastest, so the cells
 * enumerate like nested loops written in file order. */
#include <stdio.h>
#include <string.h>

#include "experiment_internal.h"
#include "gkd/error.h"

_Static_assert(sizeof(gkd_student_init) == sizeof(int) && sizeof(gkd_replay_mode) == sizeof(int) &&
                   sizeof(gkd_reduction) == sizeof(int) && sizeof(gkd_decode) == sizeof(int),
               "enum fields are written as int");

#define MAX_KEYS 128

static char safe_char(char ch) {
    int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '_' || ch == '(' || ch == ')' || ch == '+' || ch == '-';
    return ok ? ch : '_';
}

void exp_sanitize(char *dst, size_t cap, const char *s) {
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++) dst[n] = safe_char(s[n]);
    dst[n] = '\0';
}

const char *exp_value_label(const exp_key *k, const exp_value *v) {
    return k->kind == K_PATH || (k->kind == K_INIT && v->l == GKD_INIT_CHECKPOINT) ? v->raw : v->text;
}

static void apply(gkd_cell_config *c, const exp_key *k, const exp_value *v) {
    char *field = (char *)c + k->offset;
    int i = (int)v->l;
    uint64_t u = (uint64_t)v->l;
    switch (k->kind) {
    case K_INT: case K_BOOL: case K_ENUM: memcpy(field, &i, sizeof i); break;
    case K_U64: case K_SEEDS: memcpy(field, &u, sizeof u); break;
    case K_DOUBLE: memcpy(field, &v->d, sizeof v->d); break;
    case K_INIT:
        memcpy(field, &i, sizeof i);
        c->student_checkpoint = i == GKD_INIT_CHECKPOINT ? v->text : NULL;
        break;
    case K_VARIANTS: break; /* its settings are applied by exp_build_cell */
    case K_LABELS: break;   /* presentation, not part of a cell */
    default: memcpy(field, &v->text, sizeof v->text); break;
    }
}

/* Cell directory name: "axis=value,..." with values sanitized; names that
 * would exceed the limit keep a prefix and end with a hash of the full,
 * unsanitized name, so distinct cells keep distinct names. */
static void cell_name(gkd_cell_config *c) {
    char buf[GKD_CELL_NAME_MAX];
    size_t n = 0, total = 0;
    uint64_t h = EXP_FNV_OFFSET;
    for (int a = 0; a < c->num_axes; a++) {
        const char *parts[4] = {a ? "," : "", c->axes[a].name, "=", c->axes[a].value};
        for (int p = 0; p < 4; p++) {
            h = exp_fnv1a(h, parts[p], strlen(parts[p]));
            for (const char *q = parts[p]; *q; q++, total++)
                if (n + 1 < sizeof buf) buf[n++] = p == 3 ? safe_char(*q) : *q;
        }
    }
    buf[n] = '\0';
    if (total < GKD_CELL_NAME_MAX) {
        memcpy(c->name, buf, n + 1);
        return;
    }
    size_t keep = GKD_CELL_NAME_MAX - 1 - 17;
    memcpy(c->name, buf, keep);
    snprintf(c->name + keep, GKD_CELL_NAME_MAX - keep, "-%016llx", (unsigned long long)h);
}

const exp_variant *exp_cell_variant(const gkd_experiment *e, const size_t *choice) {
    if (!e->num_variants) return NULL;
    size_t i = choice ? choice[e->variants_key] : 0;
    return i < e->num_variants ? &e->variants[i] : NULL;
}

const exp_value *exp_variant_value(const gkd_experiment *e, const size_t *choice, int k) {
    const exp_variant *var = exp_cell_variant(e, choice);
    if (!var) return NULL;
    for (size_t j = 0; j < var->n; j++)
        if (var->set[j].key == k) return &var->set[j].value;
    return NULL;
}

int exp_build_cell(const gkd_experiment *e, size_t idx, gkd_cell_config *c, size_t *choice) {
    size_t local[MAX_KEYS];
    if (exp_num_keys > MAX_KEYS) return gkd_error(GKD_ESTATE, "schema has too many keys");
    if (!choice) choice = local;
    if (idx >= e->num_cells) return gkd_error(GKD_EINVAL, "cell %zu out of range (%zu cells)", idx, e->num_cells);
    memset(c, 0, sizeof *c);
    /* Unset lr_min (no default) means lr / 10 and stays out of the hashes. */
    c->teacher_train.lr_min = c->student_sft.lr_min = c->distill.opt.lr_min = -1;
    for (int k = 0; k < exp_num_keys; k++) choice[k] = 0;
    size_t rem = idx;
    for (int a = e->num_axes - 1; a >= 0; a--) {
        int k = e->axes[a].key;
        size_t n = e->set[k].n ? e->set[k].n : 1;
        choice[k] = rem % n;
        rem /= n;
    }
    for (int k = 0; k < exp_num_keys; k++) {
        const exp_value *v = e->set[k].n ? &e->set[k].values[choice[k]] : exp_keys[k].def ? &e->defaults[k] : NULL;
        if (v) apply(c, &exp_keys[k], v);
    }
    /* A variant overrides the top-level values (the defaults of the others). */
    const exp_variant *var = exp_cell_variant(e, choice);
    for (size_t j = 0; var && j < var->n; j++) apply(c, &exp_keys[var->set[j].key], &var->set[j].value);
    if (c->teacher_checkpoint) {
        /* The checkpoint defines the teacher; its shape is read by the runner. */
        memset(&c->teacher_model, 0, sizeof c->teacher_model);
        memset(&c->teacher_train, 0, sizeof c->teacher_train);
        c->teacher_seed = 0;
    }
    /* A Llama model gets llama2.c's values for what the file leaves out. */
    gkd_model_config_fill_defaults(&c->teacher_model);
    gkd_model_config_fill_defaults(&c->student_model);
    int sctx = exp_key_find("student.model.context");
    if (!e->set[sctx].n && !exp_variant_value(e, choice, sctx)) c->student_model.max_seq_len = c->teacher_model.max_seq_len;
    c->index = idx;
    c->num_axes = e->num_axes;
    for (int a = 0; a < e->num_axes; a++) {
        int k = e->axes[a].key;
        const exp_value *v = e->set[k].n ? &e->set[k].values[choice[k]] : &e->defaults[k];
        c->axes[a].key = exp_keys[k].path;
        c->axes[a].name = e->axes[a].name;
        c->axes[a].value = exp_value_label(&exp_keys[k], v);
    }
    cell_name(c);
    return 0;
}

int gkd_experiment_cell(const gkd_experiment *e, size_t i, gkd_cell_config *out) {
    return exp_build_cell(e, i, out, NULL);
}
