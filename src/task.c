/* Task dispatch by name, example storage, the two splits, and the helpers
 * the task files share (disjoint seeded generation, grouping by prompt). */
#include "gkd/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/rng.h"
#include "tasks/strmap.h"
#include "tasks/task_impl.h"

static const gkd_task_ops *const all_ops[] = {&gkd_task_arith_ops, &gkd_task_reverse_ops,
                                              &gkd_task_sort_ops,  &gkd_task_modes_ops,
                                              &gkd_task_pairs_ops, &gkd_task_text_ops};
#define N_OPS (sizeof all_ops / sizeof all_ops[0])

/* Redraws allowed per training example before the prompt space counts as
 * exhausted by the eval set. */
#define MAX_REDRAWS 1000

static const char *split_name(gkd_split s) { return s == GKD_SPLIT_EVAL ? "eval" : "train"; }

int task_split_push(task_split *s, char *prompt, char *reference, const char *file, int line) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 64;
        gkd_example *ex = realloc(s->ex, ncap * sizeof *ex);
        if (ex) s->ex = ex;
        int *ln = ex ? realloc(s->line, ncap * sizeof *ln) : NULL;
        if (ln) s->line = ln;
        const char **fl = ln ? realloc(s->file, ncap * sizeof *fl) : NULL;
        if (fl) s->file = fl;
        if (!fl) {
            free(prompt);
            free(reference);
            return gkd_error(GKD_ENOMEM, "out of memory");
        }
        s->cap = ncap;
    }
    s->ex[s->n] = (gkd_example){prompt, reference};
    s->line[s->n] = line;
    s->file[s->n] = file;
    s->n++;
    return 0;
}

void task_split_free(task_split *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->ex[i].prompt);
        free(s->ex[i].reference);
    }
    free(s->ex);
    free(s->line);
    free(s->file);
    memset(s, 0, sizeof *s);
}

int task_generate_splits(gkd_task *t, uint64_t tag, task_gen_fn gen) {
    int rc = 0;
    strmap eval_prompts;
    strmap_init(&eval_prompts);
    for (int i = 0; i < t->cfg.eval; i++) {
        gkd_rng rng = gkd_rng_derive(t->cfg.seed, GKD_RNG_DATA, tag * 2 + GKD_SPLIT_EVAL, (uint64_t)i);
        char *p = NULL, *r = NULL;
        if ((rc = gen(t, &rng, &p, &r))) goto done;
        if ((rc = task_split_push(&t->split[GKD_SPLIT_EVAL], p, r, NULL, 0))) goto done;
        int found;
        if ((rc = strmap_put(&eval_prompts, p, 0, &found))) goto done;
    }
    for (int i = 0; i < t->cfg.train; i++) {
        gkd_rng rng = gkd_rng_derive(t->cfg.seed, GKD_RNG_DATA, tag * 2 + GKD_SPLIT_TRAIN, (uint64_t)i);
        int tries = 0;
        for (;;) {
            char *p = NULL, *r = NULL;
            if ((rc = gen(t, &rng, &p, &r))) goto done;
            if (!strmap_get(&eval_prompts, p)) {
                if ((rc = task_split_push(&t->split[GKD_SPLIT_TRAIN], p, r, NULL, 0))) goto done;
                break;
            }
            free(p);
            free(r);
            if (++tries == MAX_REDRAWS) {
                rc = gkd_error(GKD_EINVAL,
                               "%s: %d draws of training example %d all hit eval prompts; the "
                               "task has too few distinct prompts for eval=%d (use fewer eval "
                               "examples or longer inputs)",
                               t->cfg.name, MAX_REDRAWS, i, t->cfg.eval);
                goto done;
            }
        }
    }
done:
    strmap_free(&eval_prompts);
    return rc;
}

int task_split_by_prompt(gkd_task *t, task_split *all, uint64_t tag) {
    int rc = 0;
    strmap groups;
    strmap_init(&groups);
    size_t *group_of = malloc((all->n + 1) * sizeof *group_of);
    size_t *order = NULL;
    unsigned char *is_eval = NULL;
    if (!group_of) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < all->n; i++) {
        int found;
        if ((rc = strmap_put(&groups, all->ex[i].prompt, groups.n, &found))) goto done;
        group_of[i] = *strmap_get(&groups, all->ex[i].prompt);
    }
    size_t G = groups.n;
    if (G < 2) {
        rc = gkd_error(GKD_EINVAL, "%s: need at least 2 distinct prompts to split train/eval, found %zu",
                       t->cfg.name, G);
        goto done;
    }
    order = malloc(G * sizeof *order);
    is_eval = calloc(G, 1);
    if (!order || !is_eval) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    for (size_t g = 0; g < G; g++) order[g] = g;
    gkd_rng rng = gkd_rng_derive(t->cfg.seed, GKD_RNG_DATA, tag * 2, 0);
    for (size_t g = G - 1; g > 0; g--) { /* Fisher-Yates */
        size_t j = gkd_rng_below(&rng, (uint32_t)(g + 1));
        size_t tmp = order[g];
        order[g] = order[j];
        order[j] = tmp;
    }
    double want = floor(t->cfg.eval_fraction * (double)G + 0.5);
    size_t n_eval = want < 1 ? 1 : want > (double)(G - 1) ? G - 1 : (size_t)want;
    for (size_t g = 0; g < n_eval; g++) is_eval[order[g]] = 1;
    for (size_t i = 0; i < all->n; i++) {
        task_split *dst = &t->split[is_eval[group_of[i]] ? GKD_SPLIT_EVAL : GKD_SPLIT_TRAIN];
        rc = task_split_push(dst, all->ex[i].prompt, all->ex[i].reference, all->file[i], all->line[i]);
        all->ex[i].prompt = all->ex[i].reference = NULL;
        if (rc) goto done;
    }
done:
    task_split_free(all);
    strmap_free(&groups);
    free(group_of);
    free(order);
    free(is_eval);
    return rc;
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
        (rc = dup_field(t, 4, &t->cfg.eval_path)) || (rc = ops->build(t))) {
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
    for (int s = 0; s < 2; s++) {
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
    if (t->ops->byte_vocab) return gkd_tokenizer_new_byte(out);
    size_t n = 0;
    for (int s = 0; s < 2; s++) {
        n += 2 * t->split[s].n;
        if (t->dist[s])
            for (size_t i = 0; i < t->split[s].n; i++) n += t->dist[s][i].k;
    }
    const char **texts = malloc((n + 1) * sizeof *texts);
    if (!texts) return gkd_error(GKD_ENOMEM, "out of memory");
    size_t m = 0;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < t->split[s].n; i++) {
            texts[m++] = t->split[s].ex[i].prompt;
            texts[m++] = t->split[s].ex[i].reference;
            if (t->dist[s])
                for (size_t k = 0; k < t->dist[s][i].k; k++) texts[m++] = t->dist[s][i].text[k];
        }
    int rc = gkd_tokenizer_new_char(out, texts, m);
    free(texts);
    if (rc) return gkd_error_wrap(rc, "%s: building the vocabulary", t->cfg.name);
    return 0;
}

double task_score_exact(const gkd_task *t, const gkd_example *ex, const char *output) {
    (void)t;
    return strcmp(ex->reference, output) == 0 ? 1.0 : 0.0;
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

static int encode_example(const gkd_task *t, const gkd_tokenizer *tok, gkd_split split, size_t i,
                          int with_reference, int *ids, int cap, int *prompt_len, int *len) {
    *prompt_len = *len = 0;
    if (i >= t->split[split].n)
        return gkd_error(GKD_EINVAL, "%s: %s example %zu out of range (%zu examples)", t->cfg.name,
                         split_name(split), i, t->split[split].n);
    const gkd_example *ex = &t->split[split].ex[i];
    int rc = gkd_tokenizer_encode_pair(tok, ex->prompt, with_reference ? ex->reference : NULL, ids,
                                       cap, prompt_len, len);
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
