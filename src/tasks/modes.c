/* modes: a task with a known output distribution, for measuring mode
 * coverage versus mode seeking.
 *
 * The prompt is a random string over cfg.alphabet (length in [min_len,
 * max_len]). Each distinct prompt has modes_k valid continuations: distinct
 * random strings of modes_len characters over the same alphabet, drawn from
 * a stream seeded by (seed, hash of the prompt), so a prompt has the same
 * continuations wherever it occurs. A seeded permutation gives continuation k
 * the rank r_k in 1..K and the probability p_k = r_k^-s / sum_j j^-s (Zipf
 * with exponent zipf_s).
 *
 * Every example's reference (train and eval) is one continuation SAMPLED
 * from p(. | prompt) with the example's own stream, so the training data
 * follows the distribution. Score: validity (the output is one of the K). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "task_impl.h"

#define MODES_STREAM 0x6d6f646573ULL /* "modes" */
#define MAX_K 1024

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static void dist_free(task_dist *d) {
    for (size_t k = 0; k < d->k; k++) free(d->text[k]);
    free(d->text);
    free(d->prob);
    memset(d, 0, sizeof *d);
}

/* The known distribution of one prompt. */
static int make_dist(const gkd_task *t, const char *prompt, task_dist *d) {
    memset(d, 0, sizeof *d);
    size_t K = (size_t)t->cfg.modes_k;
    gkd_rng rng = gkd_rng_derive(t->cfg.seed, GKD_RNG_DATA, MODES_STREAM, hash_str(prompt));
    int *rank = malloc(K * sizeof *rank);
    d->text = calloc(K, sizeof *d->text);
    d->prob = malloc(K * sizeof *d->prob);
    if (!rank || !d->text || !d->prob) {
        free(rank);
        dist_free(d);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    int rc = 0;
    size_t tries = 0;
    while (d->k < K) {
        char *s;
        if ((rc = task_random_string(t, &rng, t->cfg.modes_len, &s))) goto done;
        int dup = 0;
        for (size_t j = 0; j < d->k && !dup; j++) dup = strcmp(d->text[j], s) == 0;
        if (dup) {
            free(s);
            if (++tries > 1000 * K) {
                rc = gkd_error(GKD_EINVAL, "modes: could not draw %zu distinct continuations", K);
                goto done;
            }
            continue;
        }
        d->text[d->k++] = s;
    }
    for (size_t k = 0; k < K; k++) rank[k] = (int)k + 1;
    for (size_t k = K - 1; k > 0; k--) {
        size_t j = gkd_rng_below(&rng, (uint32_t)(k + 1));
        int tmp = rank[k];
        rank[k] = rank[j];
        rank[j] = tmp;
    }
    /* Normalizer summed in rank order so it does not depend on the permutation. */
    double z = 0;
    for (size_t r = 1; r <= K; r++) z += pow((double)r, -t->cfg.zipf_s);
    for (size_t k = 0; k < K; k++) d->prob[k] = pow((double)rank[k], -t->cfg.zipf_s) / z;
done:
    free(rank);
    if (rc) dist_free(d);
    return rc;
}

static int gen(const gkd_task *t, gkd_rng *rng, char **prompt, char **reference) {
    int len = t->cfg.min_len + (int)gkd_rng_below(rng, (uint32_t)(t->cfg.max_len - t->cfg.min_len + 1));
    char *p;
    int rc = task_random_string(t, rng, len, &p);
    if (rc) return rc;
    task_dist d;
    if ((rc = make_dist(t, p, &d))) {
        free(p);
        return rc;
    }
    double u = gkd_rng_double(rng), cum = 0;
    size_t pick = d.k - 1; /* if rounding leaves u above the last partial sum */
    for (size_t k = 0; k < d.k; k++) {
        cum += d.prob[k];
        if (u < cum) {
            pick = k;
            break;
        }
    }
    char *r = strdup(d.text[pick]);
    dist_free(&d);
    if (!r) {
        free(p);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    *prompt = p;
    *reference = r;
    return 0;
}

static int build(gkd_task *t) {
    int rc;
    if ((rc = task_check_alphabet(t)) || (rc = task_check_lengths(t))) return rc;
    if (t->cfg.modes_len < 1 || t->cfg.modes_len > 64)
        return gkd_error(GKD_EINVAL, "modes: modes_len must be in [1, 64], got %d", t->cfg.modes_len);
    if (t->cfg.modes_k < 1 || t->cfg.modes_k > MAX_K)
        return gkd_error(GKD_EINVAL, "modes: modes_k must be in [1, %d], got %d", MAX_K, t->cfg.modes_k);
    if (!isfinite(t->cfg.zipf_s) || t->cfg.zipf_s < 0 || t->cfg.zipf_s > 20)
        return gkd_error(GKD_EINVAL, "modes: zipf_s must be in [0, 20], got %g", t->cfg.zipf_s);
    /* K distinct strings must exist: K <= |alphabet|^modes_len. */
    double space = pow((double)utf8_length(t->cfg.alphabet), (double)t->cfg.modes_len);
    if ((double)t->cfg.modes_k > space)
        return gkd_error(GKD_EINVAL, "modes: modes_k=%d exceeds the %.0f strings of length %d", t->cfg.modes_k,
                         space, t->cfg.modes_len);
    if ((rc = task_generate_splits(t, 4, gen))) return rc;
    for (int s = 0; s < 2; s++) {
        size_t n = t->split[s].n;
        t->dist[s] = calloc(n + 1, sizeof *t->dist[s]);
        if (!t->dist[s]) return gkd_error(GKD_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            if ((rc = make_dist(t, t->split[s].ex[i].prompt, &t->dist[s][i]))) return rc;
    }
    return 0;
}

static int valid_in(const task_dist *d, const char *output) {
    for (size_t k = 0; k < d->k; k++)
        if (strcmp(d->text[k], output) == 0) return 1;
    return 0;
}

static double score(const gkd_task *t, const gkd_example *ex, const char *output) {
    for (int s = 0; s < 2; s++) {
        const task_split *sp = &t->split[s];
        if (t->dist[s] && sp->n && ex >= sp->ex && ex < sp->ex + sp->n)
            return valid_in(&t->dist[s][ex - sp->ex], output);
    }
    /* An example not stored in the task: rebuild its distribution. */
    task_dist d;
    if (make_dist(t, ex->prompt, &d)) return 0.0;
    int ok = valid_in(&d, output);
    dist_free(&d);
    return ok;
}

const gkd_task_ops gkd_task_modes_ops = {"modes", build, score, 0};
