/* Loading an experiment file: libyaml document -> settings per schema key ->
 * axes -> every cell built and checked. Nothing is kept from an invalid file. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "experiment_internal.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"

#define MAX_FILE_BYTES (1 << 20)
/* Deepest nesting of [ ] and { } accepted: an experiment needs 3 or 4;
 * libyaml takes time quadratic in the depth (100,000 levels: 23 s). */
#define MAX_FLOW_DEPTH 64

void gkd_experiment_free(gkd_experiment *e) {
    if (!e) return;
    for (size_t i = 0; i < e->num_allocs; i++) free(e->allocs[i]);
    free(e->allocs);
    if (e->set)
        for (int k = 0; k < exp_num_keys; k++) free(e->set[k].values);
    free(e->set);
    for (size_t v = 0; v < e->num_variants; v++) free(e->variants[v].set);
    free(e->variants);
    free(e->labels);
    free(e->defaults);
    free(e->file);
    free(e->dir);
    free(e);
}

/* Prefix the current message with the 1-based position. Control characters
 * (a quoted value may hold line breaks) become '?' to keep it one line. */
static int at(const gkd_experiment *e, int rc, int line, int col) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", gkd_last_error());
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return gkd_error(rc, "%s:%d:%d: %s", e->file, line, col, msg);
}

static int at_mark(const gkd_experiment *e, int rc, yaml_mark_t m) {
    return at(e, rc, (int)m.line + 1, (int)m.column + 1);
}

static const char *node_kind(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

static const char *expected(const exp_key *k) {
    switch (k->kind) {
    case K_INT: case K_U64: case K_SEEDS: return "an integer";
    case K_DOUBLE: return "a number";
    case K_BOOL: return "true or false";
    case K_ENUM: case K_ENUM_STR: return k->choices;
    case K_DIV: return "a divergence";
    case K_PATH: return "a path";
    case K_INIT: return "sft, random or a checkpoint path";
    default: return "a string";
    }
}

/* Scalar text; embedded NULs (from "\0" escapes) are rejected because C
 * strings would silently truncate them. */
static int scalar_text(const gkd_experiment *e, const yaml_node_t *n, const char **out) {
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return at_mark(e, gkd_error(GKD_EFORMAT, "value contains a NUL character"), n->start_mark);
    *out = s;
    return 0;
}

static int add_axis(gkd_experiment *e, int ki, yaml_mark_t m) {
    if (e->num_axes == GKD_CELL_MAX_AXES)
        return at_mark(e, gkd_error(GKD_EINVAL, "%s: more than %d axes (lists)", exp_keys[ki].path, GKD_CELL_MAX_AXES), m);
    e->axes[e->num_axes++].key = ki;
    return 0;
}

/* 1 if position i begins a scalar: a quote there opens a quoted string
 * (an apostrophe inside "don't" does not). */
static int starts_scalar(const char *s, size_t i) {
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t')) i--;
    if (i == 0) return 1;
    const char p = s[i - 1];
    return p == '\n' || p == ':' || p == '[' || p == '{' || p == ',' || p == '-' || p == '?';
}

/* Refuse flow nesting deeper than MAX_FLOW_DEPTH before libyaml sees the
 * file. Brackets inside quotes and comments do not count. */
static int check_flow_depth(gkd_experiment *e, const char *s, size_t len) {
    int depth = 0, line = 1, col = 0;
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        const char c = s[i];
        col++;
        if (c == '\n') {
            line++, col = 0;
            if (quote == 0) continue;
        }
        if (quote == '"') {
            if (c == '\\' && i + 1 < len) i++, col++;
            else if (c == '"') quote = 0;
        } else if (quote == '\'') {
            if (c == '\'' && i + 1 < len && s[i + 1] == '\'') i++, col++;
            else if (c == '\'') quote = 0;
        } else if ((c == '"' || c == '\'') && starts_scalar(s, i)) {
            quote = c;
        } else if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\n')) {
            while (i + 1 < len && s[i + 1] != '\n') i++;
        } else if (c == '[' || c == '{') {
            if (++depth > MAX_FLOW_DEPTH)
                return at(e, gkd_error(GKD_EINVAL, "nesting deeper than %d levels of [ ] and { }", MAX_FLOW_DEPTH),
                          line, col);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* A list entry and its position, sorted by text then position. */
typedef struct {
    const char *s;
    size_t i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* For every position, the earliest earlier position with the same string
 * (or n): sorting makes this O(n log n), so a list of 100,000 seeds loads
 * in milliseconds instead of minutes. */
static int first_equal(size_t *earlier, const char *const *strs, size_t n) {
    keyed *kv = malloc(n * sizeof *kv);
    if (!kv) return gkd_error(GKD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) kv[i] = (keyed){strs[i], i}, earlier[i] = n;
    qsort(kv, n, sizeof *kv, cmp_keyed);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && !strcmp(kv[b].s, kv[a].s)) earlier[kv[b++].i] = kv[a].i;
        a = b;
    }
    free(kv);
    return 0;
}

/* No two values of a list may be equal or give the same cell name; the
 * error names the first value (in list order) that repeats an earlier one. */
static int check_distinct(gkd_experiment *e, const exp_key *k, const exp_setting *st, yaml_document_t *doc,
                          yaml_node_item_t *items) {
    const size_t n = st->n;
    int rc = 0;
    const char **texts = malloc(n * sizeof *texts), **names = malloc(n * sizeof *names);
    char (*name_buf)[GKD_CELL_NAME_MAX] = malloc(n * sizeof *name_buf);
    size_t *same_text = malloc(n * sizeof *same_text), *same_name = malloc(n * sizeof *same_name);
    if (!texts || !names || !name_buf || !same_text || !same_name) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        texts[i] = st->values[i].text;
        exp_sanitize(name_buf[i], sizeof name_buf[i], exp_value_label(k, &st->values[i]));
        names[i] = name_buf[i];
    }
    if ((rc = first_equal(same_text, texts, n)) || (rc = first_equal(same_name, names, n))) goto done;
    for (size_t i = 0; i < n; i++) {
        if (same_text[i] == n && same_name[i] == n) continue;
        const yaml_node_t *item = items ? yaml_document_get_node(doc, items[i]) : NULL;
        const yaml_mark_t mark = item ? item->start_mark : (yaml_mark_t){0};
        const exp_value *v = &st->values[i];
        if (same_text[i] <= same_name[i]) {
            const exp_value *w = &st->values[same_text[i]];
            rc = at_mark(e, gkd_error(GKD_EINVAL, "%s: duplicate value '%s' in the list (first at %d:%d)", k->path,
                                      v->raw, w->line, w->col), mark);
        } else {
            const exp_value *w = &st->values[same_name[i]];
            rc = at_mark(e, gkd_error(GKD_EINVAL, "%s: values '%s' and '%s' give the same cell name '%s'", k->path,
                                      w->raw, v->raw, name_buf[i]), mark);
        }
        break;
    }
done:
    free(texts);
    free(names);
    free(name_buf);
    free(same_text);
    free(same_name);
    return rc;
}

static int set_leaf(gkd_experiment *e, yaml_document_t *doc, int ki, yaml_node_t *key, yaml_node_t *val) {
    const exp_key *k = &exp_keys[ki];
    exp_setting *st = &e->set[ki];
    int rc = 0;
    /* The same key reached twice: "distill.lambda:" beside "distill: {lambda:}"
     * are siblings of different mappings, so the sibling check misses it. */
    if (st->key_line)
        return at_mark(e, gkd_error(GKD_EINVAL, "duplicate key '%s' (first at %d:%d)", k->path, st->key_line,
                                    st->key_col),
                       key->start_mark);
    st->key_line = (int)key->start_mark.line + 1;
    st->key_col = (int)key->start_mark.column + 1;
    if (val->type == YAML_MAPPING_NODE)
        return at_mark(e, gkd_error(GKD_EINVAL, "%s: expected %s, got a mapping", k->path, expected(k)), val->start_mark);
    if (val->type == YAML_SEQUENCE_NODE && (k->flags & F_NO_AXIS))
        return at_mark(e, gkd_error(GKD_EINVAL, "%s: expected %s, got a list (only task, teacher, student, distill "
                                                "and eval keys can be grid axes)", k->path, expected(k)),
                       val->start_mark);
    yaml_node_item_t *items = NULL;
    size_t n = 1;
    if (val->type == YAML_SEQUENCE_NODE) {
        items = val->data.sequence.items.start;
        n = (size_t)(val->data.sequence.items.top - items);
        if (n == 0)
            return at_mark(e, gkd_error(GKD_EINVAL, "%s: empty list (a grid axis needs at least one value)", k->path),
                           val->start_mark);
        if (n > GKD_EXPERIMENT_MAX_CELLS)
            return at_mark(e, gkd_error(GKD_EINVAL, "%s: more than %d values", k->path, GKD_EXPERIMENT_MAX_CELLS),
                           val->start_mark);
    }
    st->values = calloc(n, sizeof *st->values);
    if (!st->values) return gkd_error(GKD_ENOMEM, "out of memory");
    st->n = n;
    st->is_list = items != NULL || k->kind == K_SEEDS;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = items ? yaml_document_get_node(doc, items[i]) : val;
        if (!item) return at_mark(e, gkd_error(GKD_EFORMAT, "%s: invalid list item", k->path), val->start_mark);
        if (item->type != YAML_SCALAR_NODE)
            return at_mark(e, gkd_error(GKD_EINVAL, "%s: list items must be scalars, got %s", k->path, node_kind(item)),
                           item->start_mark);
        const char *s = "";
        if ((rc = scalar_text(e, item, &s))) return rc;
        exp_value *v = &st->values[i];
        if ((rc = exp_parse_value(e, k, s, v))) return at_mark(e, rc, item->start_mark);
        v->line = (int)item->start_mark.line + 1;
        v->col = (int)item->start_mark.column + 1;
    }
    if (n > 1 && (rc = check_distinct(e, k, st, doc, items))) return rc;
    if (st->is_list) return add_axis(e, ki, val->start_mark);
    return 0;
}

static int record_section(gkd_experiment *e, const char *path, yaml_mark_t m) {
    if (e->num_sections == (int)(sizeof e->sections / sizeof e->sections[0])) return 0;
    exp_section_mark *s = &e->sections[e->num_sections++];
    size_t n = strnlen(path, sizeof s->path - 1);
    memcpy(s->path, path, n);
    s->path[n] = '\0';
    s->line = (int)m.line + 1;
    s->col = (int)m.column + 1;
    return 0;
}

/* Variants may set keys of these sections only. */
static int variant_section(const char *name) {
    static const char *const ok[] = {"task", "teacher", "student", "distill", "eval"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, ok[i])) return 1;
    return 0;
}

/* `where` names the mapping in the message (NULL: the top level); at the top
 * of a variant (sections_only) only the variant sections are suggested. */
static int unknown_key(gkd_experiment *e, const char *prefix, const char *where_name, int sections_only,
                       const char *name, yaml_mark_t m) {
    const char *cands[128];
    char words[128][32];
    int n = 0;
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < exp_num_keys && n < 128; i++) {
        const char *p = exp_keys[i].path;
        if (prefix) {
            if (strncmp(p, prefix, pl) || p[pl] != '.') continue;
            p += pl + 1;
        }
        size_t len = strcspn(p, ".");
        if (len >= sizeof words[0]) continue;
        if (sections_only) {
            char sec[32];
            snprintf(sec, sizeof sec, "%.*s", (int)len, p);
            if (!variant_section(sec)) continue;
        }
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= strlen(words[j]) == len && !strncmp(words[j], p, len);
        if (dup) continue;
        memcpy(words[n], p, len);
        words[n][len] = '\0';
        cands[n] = words[n];
        n++;
    }
    char shown[64];
    size_t len = 0;
    for (; name[len] && len < 48; len++) shown[len] = (unsigned char)name[len] < 0x20 ? '?' : name[len];
    shown[len] = '\0';
    const char *hint = exp_suggest(name, cands, n);
    char where[256] = "";
    if (where_name) snprintf(where, sizeof where, " in %.200s", where_name);
    if (hint) return at_mark(e, gkd_error(GKD_EINVAL, "unknown key '%s'%s (did you mean '%s'?)", shown, where, hint), m);
    return at_mark(e, gkd_error(GKD_EINVAL, "unknown key '%s'%s", shown, where), m);
}

static int is_null_scalar(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int parse_variants(gkd_experiment *e, yaml_document_t *doc, int ki, yaml_node_t *key, yaml_node_t *val);
static int parse_labels(gkd_experiment *e, yaml_document_t *doc, int ki, yaml_node_t *key, yaml_node_t *val);
static int set_variant_leaf(gkd_experiment *e, exp_variant *var, yaml_document_t *doc, int ki, yaml_node_t *val);

/* Walks a mapping of the top level (var NULL) or of variant `var`; prefix
 * is the schema path of the mapping (NULL at the top). */
static int walk_map(gkd_experiment *e, yaml_document_t *doc, yaml_node_t *map, const char *prefix, exp_variant *var) {
    int rc = 0;
    char where[192];
    const char *where_name = prefix;
    if (var) {
        if (prefix) snprintf(where, sizeof where, "variants.%s.%s", var->name, prefix);
        else snprintf(where, sizeof where, "variants.%s", var->name);
        where_name = where;
    }
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    size_t n = (size_t)(map->data.mapping.pairs.top - pairs);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key = yaml_document_get_node(doc, pairs[i].key);
        yaml_node_t *val = yaml_document_get_node(doc, pairs[i].value);
        if (!key || !val) return at_mark(e, gkd_error(GKD_EFORMAT, "invalid mapping"), map->start_mark);
        if (key->type != YAML_SCALAR_NODE)
            return at_mark(e, gkd_error(GKD_EINVAL, "expected a key name, got %s", node_kind(key)), key->start_mark);
        const char *name = "";
        if ((rc = scalar_text(e, key, &name))) return rc;
        for (size_t j = 0; j < i; j++) {
            yaml_node_t *prev = yaml_document_get_node(doc, pairs[j].key);
            if (prev && prev->type == YAML_SCALAR_NODE && !strcmp((const char *)prev->data.scalar.value, name))
                return at_mark(e, gkd_error(GKD_EINVAL, "duplicate key '%s'%s%s (first at %d:%d)", name,
                                            where_name ? " in " : "", where_name ? where_name : "",
                                            (int)prev->start_mark.line + 1, (int)prev->start_mark.column + 1),
                               key->start_mark);
        }
        char full[128];
        int ki = -1, section = 0;
        if (strlen(name) + (prefix ? strlen(prefix) + 1 : 0) < 64) {
            if (prefix) snprintf(full, sizeof full, "%s.%s", prefix, name);
            else snprintf(full, sizeof full, "%s", name);
            ki = exp_key_find(full);
            section = ki < 0 && exp_is_section(full);
        }
        if (var && !prefix && (ki >= 0 || section) && !variant_section(full))
            return at_mark(e, gkd_error(GKD_EINVAL, "%s: '%s' cannot be set by a variant (only task, teacher, "
                                                    "student, distill and eval keys)", where_name, full),
                           key->start_mark);
        if (ki >= 0 && var) {
            if ((rc = set_variant_leaf(e, var, doc, ki, val))) return rc;
        } else if (ki >= 0 && exp_keys[ki].kind == K_VARIANTS) {
            if ((rc = parse_variants(e, doc, ki, key, val))) return rc;
        } else if (ki >= 0 && exp_keys[ki].kind == K_LABELS) {
            if ((rc = parse_labels(e, doc, ki, key, val))) return rc;
        } else if (ki >= 0) {
            if ((rc = set_leaf(e, doc, ki, key, val))) return rc;
        } else if (section) {
            if (!var) record_section(e, full, key->start_mark);
            else if (!strcmp(full, "teacher.model"))
                var->model_line = (int)key->start_mark.line + 1, var->model_col = (int)key->start_mark.column + 1;
            else if (!strcmp(full, "teacher.train"))
                var->train_line = (int)key->start_mark.line + 1, var->train_col = (int)key->start_mark.column + 1;
            if (val->type == YAML_MAPPING_NODE) {
                if ((rc = walk_map(e, doc, val, full, var))) return rc;
            } else if (!is_null_scalar(val)) {
                char shown[256];
                if (var) snprintf(shown, sizeof shown, "variants.%s.%s", var->name, full);
                else snprintf(shown, sizeof shown, "%s", full);
                return at_mark(e, gkd_error(GKD_EINVAL, "%s: expected a mapping, got %s", shown, node_kind(val)),
                               val->start_mark);
            }
        } else {
            return unknown_key(e, prefix, where_name, var && !prefix, name, key->start_mark);
        }
    }
    return 0;
}

#define MAX_VARIANTS 10000

/* Messages of exp_parse_value start with the key path; inside a variant
 * the path is qualified with the variant, like every other message there. */
static int in_variant(const exp_variant *var, const exp_key *k, int rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", gkd_last_error());
    size_t n = strlen(k->path);
    if (!strncmp(msg, k->path, n) && msg[n] == ':') return gkd_error(rc, "variants.%s.%s", var->name, msg);
    return gkd_error(rc, "variants.%s.%s: %s", var->name, k->path, msg);
}

static int set_variant_leaf(gkd_experiment *e, exp_variant *var, yaml_document_t *doc, int ki, yaml_node_t *val) {
    (void)doc;
    const exp_key *k = &exp_keys[ki];
    int rc = 0;
    if (val->type == YAML_SEQUENCE_NODE)
        return at_mark(e, gkd_error(GKD_EINVAL, "variants.%s.%s: lists are not allowed inside a variant (make it a "
                                                "top-level axis)", var->name, k->path), val->start_mark);
    if (val->type != YAML_SCALAR_NODE)
        return at_mark(e, gkd_error(GKD_EINVAL, "variants.%s.%s: expected %s, got %s", var->name, k->path,
                                    expected(k), node_kind(val)), val->start_mark);
    if (var->n == var->cap) {
        size_t cap = var->cap ? 2 * var->cap : 8;
        exp_variant_setting *set = realloc(var->set, cap * sizeof *set);
        if (!set) return gkd_error(GKD_ENOMEM, "out of memory");
        var->set = set;
        var->cap = cap;
    }
    for (size_t i = 0; i < var->n; i++)
        if (var->set[i].key == ki)
            return at_mark(e, gkd_error(GKD_EINVAL, "variants.%s: duplicate key '%s' (first at %d:%d)", var->name,
                                        k->path, var->set[i].value.line, var->set[i].value.col),
                           val->start_mark);
    const char *s = "";
    if ((rc = scalar_text(e, val, &s))) return rc;
    exp_variant_setting *st = &var->set[var->n];
    if ((rc = exp_parse_value(e, k, s, &st->value))) return at_mark(e, in_variant(var, k, rc), val->start_mark);
    st->key = ki;
    st->value.line = (int)val->start_mark.line + 1;
    st->value.col = (int)val->start_mark.column + 1;
    var->n++;
    return 0;
}

static int valid_variant_name(const char *s) {
    if (!*s || strlen(s) > 100) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-'))
            return 0;
    return 1;
}

/* variants: {name: {section: {...}}, ...} -> one axis whose values are the
 * names (file order); each variant keeps the keys it sets. */
static int parse_variants(gkd_experiment *e, yaml_document_t *doc, int ki, yaml_node_t *key, yaml_node_t *val) {
    int rc = 0;
    exp_setting *st = &e->set[ki];
    st->key_line = (int)key->start_mark.line + 1;
    st->key_col = (int)key->start_mark.column + 1;
    if (val->type != YAML_MAPPING_NODE)
        return at_mark(e, gkd_error(GKD_EINVAL, "variants: expected a mapping of variant names to settings, got %s",
                                    node_kind(val)), val->start_mark);
    yaml_node_pair_t *pairs = val->data.mapping.pairs.start;
    size_t n = (size_t)(val->data.mapping.pairs.top - pairs);
    if (n == 0)
        return at_mark(e, gkd_error(GKD_EINVAL, "variants: empty mapping (the variant axis needs at least one "
                                                "variant)"), val->start_mark);
    if (n > MAX_VARIANTS)
        return at_mark(e, gkd_error(GKD_EINVAL, "variants: more than %d variants", MAX_VARIANTS), val->start_mark);
    e->variants = calloc(n, sizeof *e->variants);
    st->values = calloc(n, sizeof *st->values);
    if (!e->variants || !st->values) return gkd_error(GKD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *name_node = yaml_document_get_node(doc, pairs[i].key);
        yaml_node_t *body = yaml_document_get_node(doc, pairs[i].value);
        if (!name_node || !body) return at_mark(e, gkd_error(GKD_EFORMAT, "invalid mapping"), val->start_mark);
        if (name_node->type != YAML_SCALAR_NODE)
            return at_mark(e, gkd_error(GKD_EINVAL, "variants: expected a variant name, got %s", node_kind(name_node)),
                           name_node->start_mark);
        const char *name = "";
        if ((rc = scalar_text(e, name_node, &name))) return rc;
        int line = (int)name_node->start_mark.line + 1, col = (int)name_node->start_mark.column + 1;
        if (!valid_variant_name(name)) {
            char shown[64];
            size_t len = 0;
            for (; name[len] && len < 48; len++)
                shown[len] = (unsigned char)name[len] < 0x20 || name[len] == 0x7f ? '?' : name[len];
            shown[len] = '\0';
            return at_mark(e, gkd_error(GKD_EINVAL, "variants: variant name '%s%s' must match [A-Za-z0-9_.-]+ "
                                                    "(at most 100 characters)", shown, name[len] ? "..." : ""),
                           name_node->start_mark);
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(e->variants[j].name, name))
                return at_mark(e, gkd_error(GKD_EINVAL, "variants: duplicate variant '%s' (first at %d:%d)", name,
                                            e->variants[j].line, e->variants[j].col), name_node->start_mark);
        exp_variant *var = &e->variants[i];
        var->name = exp_strdup(e, name);
        if (!var->name) return gkd_error(GKD_ENOMEM, "out of memory");
        var->line = line, var->col = col;
        e->num_variants = i + 1;
        exp_value *v = &st->values[i];
        v->text = v->raw = var->name;
        v->line = line, v->col = col;
        st->n = i + 1;
        if (body->type == YAML_MAPPING_NODE) {
            if ((rc = walk_map(e, doc, body, NULL, var))) return rc;
        } else if (!is_null_scalar(body)) {
            return at_mark(e, gkd_error(GKD_EINVAL, "variants.%s: expected a mapping of settings, got %s", name,
                                        node_kind(body)), body->start_mark);
        }
    }
    st->is_list = 1;
    e->variants_key = ki;
    return add_axis(e, ki, val->start_mark);
}

#define MAX_LABEL_KEY 200
#define MAX_LABEL_TEXT 1024

/* labels: {KEY: TEXT, ...} -> display names for gkd table, in file order.
 * Both sides are strings (scalars); nothing here reaches a cell. */
static int parse_labels(gkd_experiment *e, yaml_document_t *doc, int ki, yaml_node_t *key, yaml_node_t *val) {
    int rc = 0;
    exp_setting *st = &e->set[ki];
    st->key_line = (int)key->start_mark.line + 1;
    st->key_col = (int)key->start_mark.column + 1;
    if (is_null_scalar(val)) return 0;
    if (val->type != YAML_MAPPING_NODE)
        return at_mark(e, gkd_error(GKD_EINVAL, "labels: expected a mapping of KEY: TEXT (a metric, an axis or "
                                                "AXIS:VALUE to its LaTeX name), got %s", node_kind(val)),
                       val->start_mark);
    yaml_node_pair_t *pairs = val->data.mapping.pairs.start;
    size_t n = (size_t)(val->data.mapping.pairs.top - pairs);
    e->labels = calloc(n ? n : 1, sizeof *e->labels);
    if (!e->labels) return gkd_error(GKD_ENOMEM, "out of memory");
    int *lines = calloc(n ? n : 1, 2 * sizeof *lines); /* each key's position, for duplicates */
    if (!lines) return gkd_error(GKD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        yaml_node_t *k = yaml_document_get_node(doc, pairs[i].key);
        yaml_node_t *v = yaml_document_get_node(doc, pairs[i].value);
        const char *name = "", *text = "";
        if (!k || !v) {
            rc = at_mark(e, gkd_error(GKD_EFORMAT, "invalid mapping"), val->start_mark);
        } else if (k->type != YAML_SCALAR_NODE) {
            rc = at_mark(e, gkd_error(GKD_EINVAL, "labels: expected a key (a metric, an axis or AXIS:VALUE), got %s",
                                      node_kind(k)), k->start_mark);
        } else if (!(rc = scalar_text(e, k, &name))) {
            lines[2 * i] = (int)k->start_mark.line + 1;
            lines[2 * i + 1] = (int)k->start_mark.column + 1;
            if (is_null_scalar(k) || !*name)
                rc = at_mark(e, gkd_error(GKD_EINVAL, "labels: empty key"), k->start_mark);
            else if (strlen(name) > MAX_LABEL_KEY)
                rc = at_mark(e, gkd_error(GKD_EINVAL, "labels: key longer than %d characters", MAX_LABEL_KEY),
                             k->start_mark);
            for (size_t j = 0; j < i && !rc; j++)
                if (!strcmp(e->labels[j].key, name))
                    rc = at_mark(e, gkd_error(GKD_EINVAL, "labels: duplicate key '%s' (first at %d:%d)", name,
                                              lines[2 * j], lines[2 * j + 1]), k->start_mark);
            if (rc) break;
            if (v->type != YAML_SCALAR_NODE || is_null_scalar(v) || !v->data.scalar.length)
                rc = at_mark(e, gkd_error(GKD_EINVAL, "labels.%s: expected LaTeX text (a string), got %s", name,
                                          v->type == YAML_SCALAR_NODE ? "nothing" : node_kind(v)), v->start_mark);
            else if (!(rc = scalar_text(e, v, &text)) && strlen(text) > MAX_LABEL_TEXT)
                rc = at_mark(e, gkd_error(GKD_EINVAL, "labels.%s: text longer than %d characters", name,
                                          MAX_LABEL_TEXT), v->start_mark);
            if (!rc) {
                exp_label *l = &e->labels[e->num_labels];
                if (!(l->key = exp_strdup(e, name)) || !(l->text = exp_strdup(e, text)))
                    rc = gkd_error(GKD_ENOMEM, "out of memory");
                else e->num_labels++;
            }
        }
    }
    free(lines);
    return rc;
}

/* Checks between the variants and the top level, once the whole file is read. */
static int check_variants(gkd_experiment *e) {
    int ck = exp_key_find("teacher.checkpoint");
    int top_model = 0, top_train = 0;
    for (int s = 0; s < e->num_sections; s++) {
        top_model |= !strcmp(e->sections[s].path, "teacher.model");
        top_train |= !strcmp(e->sections[s].path, "teacher.train");
    }
    int tk = exp_key_find("task.name");
    e->task_name_varies = e->set[tk].is_list;
    for (size_t v = 0; v < e->num_variants; v++) {
        const exp_variant *var = &e->variants[v];
        const exp_value *vck = NULL;
        for (size_t j = 0; j < var->n; j++) {
            int k = var->set[j].key;
            const exp_value *val = &var->set[j].value;
            if (k == tk) e->task_name_varies = 1;
            if (k == ck) vck = val;
            if (e->set[k].is_list)
                return at(e, gkd_error(GKD_EINVAL, "%s is both a grid axis and set by variant '%s'",
                                       exp_keys[k].path, var->name),
                          val->line, val->col);
        }
        /* A checkpoint teacher is loaded, not built: no model or train
         * settings may apply to that variant, nor a model to a variant
         * of a top-level checkpoint. */
        int has_ck = vck != NULL || e->set[ck].n > 0;
        if (has_ck && var->model_line)
            return at(e, gkd_error(GKD_EINVAL, "teacher: give either checkpoint or model, not both (variant '%s')",
                                   var->name), var->model_line, var->model_col);
        if (has_ck && var->train_line)
            return at(e, gkd_error(GKD_EINVAL, "teacher.train: not used with teacher.checkpoint (the teacher is "
                                               "loaded, not trained) (variant '%s')", var->name),
                      var->train_line, var->train_col);
        if (vck && (top_model || top_train))
            return at(e, gkd_error(GKD_EINVAL, "variants.%s.teacher.checkpoint: the top level sets teacher.%s, which "
                                               "a checkpoint teacher does not use", var->name,
                                   top_model ? "model" : "train"), vck->line, vck->col);
    }
    return 0;
}

/* Short axis names: the shortest dotted suffix of the key that is not a
 * suffix of another axis's key (the seeds axis counts as "seed"). */
static int name_axes(gkd_experiment *e) {
    const char *paths[GKD_CELL_MAX_AXES];
    for (int a = 0; a < e->num_axes; a++) {
        const exp_key *k = &exp_keys[e->axes[a].key];
        paths[a] = k->kind == K_SEEDS ? "seed" : k->kind == K_VARIANTS ? "variant" : k->path;
    }
    for (int a = 0; a < e->num_axes; a++) {
        const char *p = paths[a], *best = p;
        size_t len = strlen(p);
        for (size_t i = len; i-- > 0;) {
            if (i != 0 && p[i - 1] != '.') continue;
            const char *suffix = p + i;
            size_t sl = len - i;
            int clash = 0;
            for (int b = 0; b < e->num_axes && !clash; b++) {
                if (b == a) continue;
                size_t ol = strlen(paths[b]);
                if (ol >= sl && !strcmp(paths[b] + ol - sl, suffix) && (ol == sl || paths[b][ol - sl - 1] == '.'))
                    clash = 1;
            }
            if (!clash) { best = suffix; break; }
        }
        e->axes[a].name = best;
    }
    return 0;
}

static int yaml_syntax_error(gkd_experiment *e, const yaml_parser_t *p, const char *data, size_t len) {
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (data[i] == '\n') line++, col = 1;
            else col++;
        }
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        gkd_error(GKD_EFORMAT, "YAML syntax error: %s (%s at %d:%d)", problem, p->context,
                  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        gkd_error(GKD_EFORMAT, "YAML syntax error: %s", problem);
    return at(e, GKD_EFORMAT, line, col);
}

static int set_dir(gkd_experiment *e, const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], cwd[PATH_MAX];
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    if (dir[0] == '/') {
        e->dir = strdup(dir);
    } else {
        if (!getcwd(cwd, sizeof cwd)) return gkd_error(GKD_EIO, "getcwd: %s", strerror(errno));
        size_t n = strlen(cwd) + strlen(dir) + 2;
        e->dir = malloc(n);
        if (e->dir) {
            if (!strcmp(dir, ".")) snprintf(e->dir, n, "%s", cwd);
            else snprintf(e->dir, n, "%s/%s", cwd, dir);
        }
    }
    return e->dir ? 0 : gkd_error(GKD_ENOMEM, "out of memory");
}

int gkd_experiment_load_buffer(gkd_experiment **out, const char *data, size_t len, const char *path) {
    int rc = 0;
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int parser_ok = 0, doc_ok = 0, extra_ok = 0;
    gkd_experiment *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e) return gkd_error(GKD_ENOMEM, "out of memory");
    e->file = strdup(path);
    e->set = calloc((size_t)exp_num_keys, sizeof *e->set);
    e->defaults = calloc((size_t)exp_num_keys, sizeof *e->defaults);
    e->root_line = e->root_col = 1;
    if (!e->file || !e->set || !e->defaults) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    if ((rc = set_dir(e, path))) goto done;
    for (int k = 0; k < exp_num_keys; k++) {
        if (!exp_keys[k].def) continue;
        if ((rc = exp_parse_value(e, &exp_keys[k], exp_keys[k].def, &e->defaults[k]))) goto done;
    }
    if (len > MAX_FILE_BYTES) {
        rc = at(e, gkd_error(GKD_EINVAL, "file is larger than %d bytes", MAX_FILE_BYTES), 1, 1);
        goto done;
    }
    if ((rc = check_flow_depth(e, data, len))) goto done;
    if (!yaml_parser_initialize(&parser)) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    parser_ok = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) { rc = yaml_syntax_error(e, &parser, data, len); goto done; }
    doc_ok = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) { rc = at(e, gkd_error(GKD_EINVAL, "empty experiment file (expected a mapping with 'name')"), 1, 1); goto done; }
    e->root_line = (int)root->start_mark.line + 1;
    e->root_col = (int)root->start_mark.column + 1;
    if (root->type != YAML_MAPPING_NODE) {
        rc = at_mark(e, gkd_error(GKD_EINVAL, "expected a mapping at the top level, got %s", node_kind(root)),
                     root->start_mark);
        goto done;
    }
    if (!yaml_parser_load(&parser, &extra)) { rc = yaml_syntax_error(e, &parser, data, len); goto done; }
    extra_ok = 1;
    yaml_node_t *second = yaml_document_get_root_node(&extra);
    if (second) {
        rc = at_mark(e, gkd_error(GKD_EINVAL, "only one YAML document is allowed"), second->start_mark);
        goto done;
    }
    if ((rc = walk_map(e, &doc, root, NULL, NULL))) goto done;

    for (int k = 0; k < exp_num_keys; k++)
        if ((exp_keys[k].flags & F_REQUIRED) && e->set[k].n == 0) {
            rc = at(e, gkd_error(GKD_EINVAL, "missing required key '%s'", exp_keys[k].path), e->root_line, e->root_col);
            goto done;
        }
    int ck = exp_key_find("teacher.checkpoint");
    if (e->set[ck].n) {
        for (int s = 0; s < e->num_sections; s++) {
            if (!strcmp(e->sections[s].path, "teacher.model")) {
                rc = at(e, gkd_error(GKD_EINVAL, "teacher: give either checkpoint or model, not both"),
                        e->sections[s].line, e->sections[s].col);
                goto done;
            }
            if (!strcmp(e->sections[s].path, "teacher.train")) {
                rc = at(e, gkd_error(GKD_EINVAL, "teacher.train: not used with teacher.checkpoint (the teacher is "
                                                 "loaded, not trained)"),
                        e->sections[s].line, e->sections[s].col);
                goto done;
            }
        }
    }
    if ((rc = check_variants(e))) goto done;
    int sk = exp_key_find("seeds");
    if (e->set[sk].n == 0) {
        yaml_mark_t m = {0, 0, 0};
        if ((rc = add_axis(e, sk, m))) goto done;
    }
    name_axes(e);
    e->num_cells = 1;
    for (int a = 0; a < e->num_axes; a++) {
        int k = e->axes[a].key;
        size_t n = e->set[k].n ? e->set[k].n : 1;
        if (e->num_cells > GKD_EXPERIMENT_MAX_CELLS / n) {
            int line = e->set[k].n ? e->set[k].values[0].line : e->root_line;
            int col = e->set[k].n ? e->set[k].values[0].col : e->root_col;
            rc = at(e, gkd_error(GKD_EINVAL, "%s: the grid has more than %d cells", exp_keys[k].path,
                                 GKD_EXPERIMENT_MAX_CELLS), line, col);
            goto done;
        }
        e->num_cells *= n;
    }
    size_t *choice = malloc((size_t)exp_num_keys * sizeof *choice);
    if (!choice) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < e->num_cells && rc == 0; i++) {
        gkd_cell_config c;
        rc = exp_build_cell(e, i, &c, choice);
        if (rc == 0) rc = exp_check_cell(e, &c, choice);
    }
    free(choice);
    if (rc) goto done;
    *out = e;
    e = NULL;
done:
    if (extra_ok) yaml_document_delete(&extra);
    if (doc_ok) yaml_document_delete(&doc);
    if (parser_ok) yaml_parser_delete(&parser);
    gkd_experiment_free(e);
    return rc;
}

int gkd_experiment_load(gkd_experiment **out, const char *path) {
    *out = NULL;
    int rc = 0;
    char *buf = NULL;
    FILE *f = NULL;
    if ((rc = gkd_fopen_read(&f, path))) return rc;
    buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f)) { rc = gkd_error(GKD_EIO, "%s: read failed: %s", path, strerror(errno)); goto done; }
    rc = gkd_experiment_load_buffer(out, buf, n, path);
done:
    free(buf);
    fclose(f);
    return rc;
}

const char *gkd_experiment_name(const gkd_experiment *e) {
    return e->set[exp_key_find("name")].values[0].text;
}

size_t gkd_experiment_num_cells(const gkd_experiment *e) { return e->num_cells; }

int gkd_experiment_num_axes(const gkd_experiment *e) { return e->num_axes; }

size_t gkd_experiment_num_labels(const gkd_experiment *e) { return e->num_labels; }

void gkd_experiment_label(const gkd_experiment *e, size_t i, const char **key, const char **text) {
    *key = e->labels[i].key;
    *text = e->labels[i].text;
}

void gkd_experiment_axis(const gkd_experiment *e, int i, const char **key, const char **name, size_t *num_values) {
    int k = e->axes[i].key;
    if (key) *key = exp_keys[k].path;
    if (name) *name = e->axes[i].name;
    if (num_values) *num_values = e->set[k].n ? e->set[k].n : 1;
}
