/* Task dispatch by name and the examples of the two splits. The helpers
 * the task files share are in tasks/splits.c. */
#include "gkd/task.h"

#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "tasks/task_impl.h"

static const gkd_task_ops *const all_ops[] = {&gkd_task_arith_ops, &gkd_task_reverse_ops,
                                              &gkd_task_sort_ops,  &gkd_task_modes_ops,
                                              &gkd_task_pairs_ops, &gkd_task_text_ops};
#define N_OPS (sizeof all_ops / sizeof all_ops[0])

static const char *split_name(gkd_split s) {
    return s == GKD_SPLIT_EVAL ? "eval" : s == GKD_SPLIT_RATIONALE ? "rationale" : "train";
}
static int dup_field(gkd_task *t, int slot, const char **field) {
    if (!*field) return 0;
    t->owned[slot] = strdup(*field);
    if (!t->owned[slot]) return gkd_error(GKD_ENOMEM, "out of memory");
    *field = t->owned[slot];
    return 0;
}

int gkd_task_new(gkd_task **out, const gkd_task_config *cfg) {
    *out = NULL;
    if (!cfg->name) return gkd_error(GKD_EINVAL, "task: no name");
    const gkd_task_ops *ops = NULL;
    for (size_t i = 0; i < N_OPS; i++)
        if (strcmp(all_ops[i]->name, cfg->name) == 0) ops = all_ops[i];
    if (!ops)
        return gkd_error(GKD_EINVAL,
                         "task: unknown task '%s' (one of arith, reverse, sort, modes, pairs, text)",
                         cfg->name);
    if (cfg->train < 0 || cfg->train > 100000000 || cfg->eval < 0 || cfg->eval > 100000000)
        return gkd_error(GKD_EINVAL, "%s: train and eval must be in [0, 100000000]", cfg->name);
    gkd_task *t = calloc(1, sizeof *t);
    if (!t) return gkd_error(GKD_ENOMEM, "out of memory");
    t->cfg = *cfg;
    t->ops = ops;
    int rc;
    if ((rc = dup_field(t, 0, &t->cfg.name)) || (rc = dup_field(t, 1, &t->cfg.op)) ||
        (rc = dup_field(t, 2, &t->cfg.alphabet)) || (rc = dup_field(t, 3, &t->cfg.path)) ||
        (rc = dup_field(t, 4, &t->cfg.eval_path)) || (rc = dup_field(t, 5, &t->cfg.tokenizer)) ||
        (rc = dup_field(t, 6, &t->cfg.context)) || (rc = dup_field(t, 7, &t->cfg.context_path)) ||
        (rc = dup_field(t, 8, &t->cfg.teacher_context)) || (rc = ops->build(t)) || (rc = task_apply_contexts(t)) ||
        (rc = task_apply_targets(t)) || (rc = task_apply_train_fraction(t))) {
        gkd_task_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void free_dists(task_dist *d, size_t n) {
    if (!d) return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < d[i].k; k++) free(d[i].text[k]);
        free(d[i].text);
        free(d[i].prob);
    }
    free(d);
}

void gkd_task_free(gkd_task *t) {
    if (!t) return;
    /* train_fraction keeps the rest of the split allocated */
    for (int s = 0; s < 3; s += 2)
        if (t->train_all > t->split[s].n && t->split[s].n) t->split[s].n = t->train_all;
    for (int s = 0; s < 3; s++) {
        free_dists(t->dist[s], t->split[s].n);
        task_split_free(&t->split[s]);
    }
    for (size_t i = 0; i < sizeof t->owned / sizeof t->owned[0]; i++) free(t->owned[i]);
    free(t);
}

const char *gkd_task_name(const gkd_task *t) { return t->ops->name; }

const gkd_task_config *gkd_task_config_of(const gkd_task *t) { return &t->cfg; }

size_t gkd_task_size(const gkd_task *t, gkd_split split) { return t->split[split].n; }

const gkd_example *gkd_task_example(const gkd_task *t, gkd_split split, size_t i) {
    return i < t->split[split].n ? &t->split[split].ex[i] : NULL;
}

size_t gkd_task_dropped_overlap(const gkd_task *t) { return t->dropped_overlap; }

int gkd_task_tokenizer(const gkd_task *t, gkd_tokenizer **out) {
    *out = NULL;
    if (t->cfg.tokenizer) return gkd_tokenizer_new_subword(out, t->cfg.tokenizer);
    if (t->ops->byte_vocab) return gkd_tokenizer_new_byte(out);
    /* Over every training example, whatever train_fraction keeps, so all
     * fractions (and the teacher, trained on the whole split) share it. */
    size_t all[3];
    for (int s = 0; s < 3; s++) all[s] = s != GKD_SPLIT_EVAL && t->train_all > t->split[s].n && t->split[s].n
                                             ? t->train_all : t->split[s].n;
    size_t n = 0;
    for (int s = 0; s < 3; s++) {
        n += 3 * all[s];
        if (t->dist[s])
            for (size_t i = 0; i < all[s]; i++) n += t->dist[s][i].k;
    }
    const char **texts = malloc((n + 1) * sizeof *texts);
    if (!texts) return gkd_error(GKD_ENOMEM, "out of memory");
    size_t m = 0;
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < all[s]; i++) {
            texts[m++] = t->split[s].ex[i].prompt;
            texts[m++] = t->split[s].ex[i].reference;
            if (t->split[s].ex[i].context) texts[m++] = t->split[s].ex[i].context; /* the teacher reads it */
            if (t->dist[s])
                for (size_t k = 0; k < t->dist[s][i].k; k++) texts[m++] = t->dist[s][i].text[k];
        }
    int rc = gkd_tokenizer_new_char(out, texts, m);
    free(texts);
    if (rc) return gkd_error_wrap(rc, "%s: building the vocabulary", t->cfg.name);
    return 0;
}

int gkd_task_check_model_tokenizer(const gkd_task *t, const gkd_tokenizer *tok, const char *what,
                                   const char *path) {
    if (!t->cfg.tokenizer) return 0;
    gkd_tokenizer *own;
    int rc = gkd_task_tokenizer(t, &own);
    if (rc) return gkd_error_wrap(rc, "task.tokenizer");
    const int same = gkd_tokenizer_equal(own, tok);
    gkd_tokenizer_free(own);
    if (same) return 0;
    return gkd_error(GKD_EMISMATCH, "%s: %s has a tokenizer of its own that is not task.tokenizer %s", what, path,
                     t->cfg.tokenizer);
}

double gkd_task_score(const gkd_task *t, const gkd_example *ex, const char *output) {
    return t->ops->score(t, ex, output);
}

size_t gkd_task_num_continuations(const gkd_task *t, gkd_split split, size_t i) {
    if (!t->dist[split] || i >= t->split[split].n) return 0;
    return t->dist[split][i].k;
}

const char *gkd_task_continuation(const gkd_task *t, gkd_split split, size_t i, size_t k, double *prob) {
    if (prob) *prob = 0;
    if (k >= gkd_task_num_continuations(t, split, i)) return NULL;
    if (prob) *prob = t->dist[split][i].prob[k];
    return t->dist[split][i].text[k];
}

int gkd_task_example_error(const gkd_task *t, gkd_split split, size_t i, int rc) {
    const task_split *s = &t->split[split];
    if (s->file[i]) return gkd_error_wrap(rc, "%s:%d", s->file[i], s->line[i]);
    return gkd_error_wrap(rc, "%s %s example %zu", t->cfg.name, split_name(split), i);
}

int gkd_task_has_context(const gkd_task *t) {
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < t->split[s].n; i++)
            if (t->split[s].ex[i].context && t->split[s].ex[i].context[0]) return 1;
    return 0;
}

static int check_index(const gkd_task *t, gkd_split split, size_t i) {
    if (i < t->split[split].n) return 0;
    return gkd_error(GKD_EINVAL, "%s: %s example %zu out of range (%zu examples)", t->cfg.name, split_name(split), i,
                     t->split[split].n);
}

int gkd_task_encode_context(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i, int *ids,
                            int cap, int *n) {
    *n = 0;
    int rc = check_index(t, split, i);
    if (rc) return rc;
    const char *c = t->split[split].ex[i].context;
    if (!c || !c[0]) return 0;
    if ((rc = gkd_tokenizer_encode(tok, c, ids, cap, n))) {
        *n = 0;
        return gkd_task_example_error(t, split, i, gkd_error_wrap(rc, "its context"));
    }
    return 0;
}

int gkd_task_encode_with_context(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                                 int with_reference, int *ids, int cap, int *context_len, int *prompt_len,
                                 int *len) {
    *context_len = *prompt_len = *len = 0;
    int rc = check_index(t, split, i);
    if (rc) return rc;
    const gkd_example *ex = &t->split[split].ex[i];
    int plain_prompt = 0, plain_len = 0, c = 0;
    if ((rc = gkd_tokenizer_encode_pair(tok, ex->prompt, with_reference ? ex->reference : NULL, ids, cap,
                                        &plain_prompt, &plain_len)))
        return gkd_task_example_error(t, split, i, rc);
    const int head = gkd_tokenizer_bos(tok) >= 0; /* BOS stays first */
    if (ex->context && ex->context[0]) {
        int *ctx = malloc(sizeof(int) * (size_t)cap);
        if (!ctx) return gkd_error(GKD_ENOMEM, "out of memory");
        rc = gkd_task_encode_context(t, tok, split, i, ctx, cap, &c);
        if (!rc && plain_len + c > cap)
            rc = gkd_task_example_error(t, split, i,
                                        gkd_error(GKD_EINVAL, "its context and sequence take %d tokens, more than %d",
                                                  plain_len + c, cap));
        if (!rc) {
            memmove(ids + head + c, ids + head, sizeof(int) * (size_t)(plain_len - head));
            memcpy(ids + head, ctx, sizeof(int) * (size_t)c);
        }
        free(ctx);
        if (rc) return rc;
    }
    *context_len = c;
    *prompt_len = plain_prompt + c;
    *len = plain_len + c;
    return 0;
}

static int encode_example(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                          int with_reference, int *ids, int cap, int *prompt_len, int *len) {
    *prompt_len = *len = 0;
    int rc = check_index(t, split, i);
    if (rc) return rc;
    if (t->cfg.with_context) {
        int c;
        return gkd_task_encode_with_context(t, tok, split, i, with_reference, ids, cap, &c, prompt_len, len);
    }
    const gkd_example *ex = &t->split[split].ex[i];
    rc = gkd_tokenizer_encode_pair(tok, ex->prompt, with_reference ? ex->reference : NULL, ids, cap, prompt_len,
                                   len);
    return rc ? gkd_task_example_error(t, split, i, rc) : 0;
}

int gkd_task_encode_example(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                            int *ids, int cap, int *prompt_len, int *len) {
    return encode_example(t, tok, split, i, 1, ids, cap, prompt_len, len);
}

int gkd_task_encode_prompt(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                           int *ids, int cap, int *prompt_len, int *len) {
    return encode_example(t, tok, split, i, 0, ids, cap, prompt_len, len);
}

int gkd_task_example_source(const gkd_task *t, gkd_split split, size_t i, const char **file, int *line) {
    *file = NULL;
    *line = 0;
    if (i >= t->split[split].n) return gkd_error(GKD_EINVAL, "example %zu out of range", i);
    *file = t->split[split].file[i];
    *line = t->split[split].line[i];
    return 0;
}
