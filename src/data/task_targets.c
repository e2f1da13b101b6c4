/* What a model learns to produce from a task's examples (student.targets,
 * distilling step-by-step) and how much of the training split it sees
 * (task.train_fraction). Both rewrite a built task in place, so every
 * command that trains, evaluates or builds a vocabulary from the task
 * sees the same examples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "tasks/task_impl.h"

static const char *const targets_names[] = {"reference", "answer", "rationale+answer", "multitask"};
#define N_TARGETS (int)(sizeof targets_names / sizeof targets_names[0])

const char *gkd_targets_name(int targets) {
    return targets >= 0 && targets < N_TARGETS ? targets_names[targets] : NULL;
}

int gkd_targets_parse(const char *s, int *out, const char *what) {
    for (int i = 0; i < N_TARGETS; i++)
        if (s && !strcmp(s, targets_names[i])) {
            *out = i;
            return 0;
        }
    return gkd_error(GKD_EINVAL, "%s: '%s' is not reference, answer, rationale+answer or multitask", what,
                     s ? s : "");
}

const char *gkd_task_answer(const gkd_task *t, const char *reference) {
    return t->ops->answer ? t->ops->answer(t, reference) : reference;
}

int task_references_marked(const gkd_task *t) {
    if (t->cfg.targets == GKD_TARGETS_RATIONALE_ANSWER) return 1;
    return t->cfg.targets == GKD_TARGETS_REFERENCE && t->cfg.rationale;
}

/* a followed by b (malloc'd), or NULL. */
static char *concat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    return s;
}

/* Example i of split sp rewritten for targets tg. */
static int rewrite(gkd_task *t, gkd_split sp, size_t i, int tg) {
    gkd_example *ex = &t->split[sp].ex[i];
    const char *answer = gkd_task_answer(t, ex->reference);
    if (!answer)
        return gkd_error(GKD_EINVAL, "%s %s example %zu: reference '%s' has no answer", t->cfg.name,
                         sp == GKD_SPLIT_EVAL ? "eval" : "train", i, ex->reference);
    char *ref = NULL, *prompt = NULL;
    if (tg == GKD_TARGETS_RATIONALE_ANSWER) {
        char *steps = concat(ex->rationale, " ->");
        ref = steps ? concat(steps, answer) : NULL;
        free(steps);
    } else {
        ref = strdup(answer);
    }
    if (tg == GKD_TARGETS_MULTITASK) prompt = concat(GKD_LABEL_PREFIX, ex->prompt);
    if (!ref || (tg == GKD_TARGETS_MULTITASK && !prompt)) {
        free(ref);
        free(prompt);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    free(ex->reference);
    ex->reference = ref;
    if (prompt) {
        free(ex->prompt);
        ex->prompt = prompt;
    }
    return 0;
}

int task_apply_targets(gkd_task *t) {
    const int tg = t->cfg.targets;
    if (!gkd_targets_name(tg))
        return gkd_error(GKD_EINVAL, "%s: targets %d is not one of reference, answer, rationale+answer, multitask",
                         t->cfg.name, tg);
    if (tg == GKD_TARGETS_REFERENCE) return 0;
    int rc = 0;
    /* answer is the reference itself on a task without rationales; the
     * other targets need every example's rationale. */
    for (int sp = 0; sp < 2 && tg != GKD_TARGETS_ANSWER; sp++)
        for (size_t i = 0; i < t->split[sp].n; i++)
            if (!t->split[sp].ex[i].rationale)
                return gkd_error(GKD_EINVAL, "targets %s: %s examples have no rationale (arith has them)",
                                 targets_names[tg], t->cfg.name);
    /* The rationale task first: it reads the prompts before they take the label prefix. */
    const task_split *train = &t->split[GKD_SPLIT_TRAIN];
    for (size_t i = 0; i < train->n && tg == GKD_TARGETS_MULTITASK; i++) {
        char *prompt = concat(GKD_RATIONALE_PREFIX, train->ex[i].prompt);
        char *ref = prompt ? strdup(train->ex[i].rationale) : NULL;
        if (!ref) {
            free(prompt);
            return gkd_error(GKD_ENOMEM, "out of memory");
        }
        if ((rc = task_split_push(&t->split[GKD_SPLIT_RATIONALE], prompt, ref, train->file[i], train->line[i])))
            return rc;
    }
    for (int sp = 0; sp < 2; sp++)
        for (size_t i = 0; i < t->split[sp].n; i++)
            if ((rc = rewrite(t, (gkd_split)sp, i, tg))) return rc;
    return 0;
}

int task_apply_train_fraction(gkd_task *t) {
    double f = t->cfg.train_fraction;
    if (f == 0) f = t->cfg.train_fraction = 1.0; /* unset: the whole split */
    if (!(f > 0 && f <= 1))
        return gkd_error(GKD_EINVAL, "%s: train_fraction must be in (0, 1], got %g", t->cfg.name, f);
    const size_t n = t->split[GKD_SPLIT_TRAIN].n;
    t->train_all = n;
    if (f == 1.0) return 0;
    /* A prefix, so a smaller fraction's examples are a larger one's. */
    const size_t keep = (size_t)llround(f * (double)n);
    if (keep == 0)
        return gkd_error(GKD_EINVAL, "%s: train_fraction %g keeps none of the %zu training examples", t->cfg.name,
                         f, n);
    t->split[GKD_SPLIT_TRAIN].n = keep;
    if (t->split[GKD_SPLIT_RATIONALE].n) t->split[GKD_SPLIT_RATIONALE].n = keep;
    return 0;
}
