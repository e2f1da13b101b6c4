/* The helpers the task files share: a split's example list, disjoint
 * seeded generation of the two splits, splitting a fixed example list by
 * prompt, and exact-match scoring. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/rng.h"
#include "strmap.h"
#include "task_impl.h"

/* Redraws allowed per training example before the prompt space counts as
 * exhausted by the eval set. */
#define MAX_REDRAWS 1000

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
    s->ex[s->n] = (gkd_example){prompt, reference, NULL, NULL};
    s->line[s->n] = line;
    s->file[s->n] = file;
    s->n++;
    return 0;
}

void task_split_free(task_split *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->ex[i].prompt);
        free(s->ex[i].reference);
        free(s->ex[i].context);
        free(s->ex[i].rationale);
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
        /* The example's other texts move with it. */
        gkd_example *moved = &dst->ex[dst->n - 1];
        moved->context = all->ex[i].context;
        moved->rationale = all->ex[i].rationale;
        all->ex[i].context = all->ex[i].rationale = NULL;
    }
done:
    task_split_free(all);
    strmap_free(&groups);
    free(group_of);
    free(order);
    free(is_eval);
    return rc;
}

double task_score_exact(const gkd_task *t, const gkd_example *ex, const char *output) {
    (void)t;
    return strcmp(ex->reference, output) == 0 ? 1.0 : 0.0;
}
