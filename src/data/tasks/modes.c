/* modes: a task with a known output distribution, for measuring mode
 * coverage versus mode seeking.
 *
 * The prompt is a random string over cfg.alphabet (length in [min_len,
 * max_len]). Each prompt has modes_k valid continuations of modes_len
 * characters: the prompt transformed by modes_k distinct shift patterns
 * drawn once per task (see make_dist). A seeded permutation gives pattern k
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

static void dist_free(task_dist *d) {
    for (size_t k = 0; k < d->k; k++) free(d->text[k]);
    free(d->text);
    free(d->prob);
    memset(d, 0, sizeof *d);
}

/* Index of the code point at s[*at] in the alphabet (offsets aoff[0..an]). */
static size_t alphabet_index(const char *alphabet, const size_t *aoff, size_t an, const char *cp, size_t cplen) {
    for (size_t a = 0; a < an; a++)
        if (aoff[a + 1] - aoff[a] == cplen && memcmp(alphabet + aoff[a], cp, cplen) == 0) return a;
    return 0; /* prompts are drawn from the alphabet, so this is not reached */
}

/* The known distribution of one prompt. Continuation k applies the k-th
 * shift pattern to the prompt: character j is the prompt's character
 * j mod |prompt| moved shift_k[j] places along the alphabet (cyclically).
 * Patterns and their Zipf ranks are drawn once per task, so every prompt
 * follows the same rules with the same probabilities: a student can learn
 * the distribution and be judged on prompts it never saw. */
static int make_dist(const gkd_task *t, const char *prompt, task_dist *d) {
    memset(d, 0, sizeof *d);
    const size_t K = (size_t)t->cfg.modes_k, L = (size_t)t->cfg.modes_len;
    size_t *aoff = NULL, *poff = NULL, an = 0, pn = 0;
    int *rank = malloc(K * sizeof *rank);
    unsigned *shift = calloc(K * L, sizeof *shift);
    d->text = calloc(K, sizeof *d->text);
    d->prob = malloc(K * sizeof *d->prob);
    int rc = 0;
    if (!rank || !shift || !d->text || !d->prob) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    if ((rc = utf8_offsets(t->cfg.alphabet, &aoff, &an)) || (rc = utf8_offsets(prompt, &poff, &pn))) goto done;
    if (pn == 0) { rc = gkd_error(GKD_EINVAL, "modes: empty prompt"); goto done; }
    /* K distinct shift patterns from the task's own stream. */
    gkd_rng rng = gkd_rng_derive(t->cfg.seed, GKD_RNG_DATA, MODES_STREAM, 0);
    for (size_t k = 0, tries = 0; k < K;) {
        unsigned *v = shift + k * L;
        for (size_t j = 0; j < L; j++) v[j] = gkd_rng_below(&rng, (uint32_t)an);
        int dup = 0;
        for (size_t i = 0; i < k && !dup; i++) dup = memcmp(shift + i * L, v, L * sizeof *v) == 0;
        if (!dup) k++;
        else if (++tries > 1000 * K) { rc = gkd_error(GKD_EINVAL, "modes: could not draw %zu distinct patterns", K); goto done; }
    }
    for (size_t k = 0; k < K; k++) rank[k] = (int)k + 1;
    for (size_t k = K - 1; k > 0; k--) {
        size_t j = gkd_rng_below(&rng, (uint32_t)(k + 1));
        int tmp = rank[k];
        rank[k] = rank[j];
        rank[j] = tmp;
    }
    for (size_t k = 0; k < K; k++) {
        strbuf b = {0};
        for (size_t j = 0; j < L && !rc; j++) {
            size_t c = j % pn, cplen = poff[c + 1] - poff[c];
            size_t a = (alphabet_index(t->cfg.alphabet, aoff, an, prompt + poff[c], cplen) + shift[k * L + j]) % an;
            rc = strbuf_append(&b, t->cfg.alphabet + aoff[a], aoff[a + 1] - aoff[a]);
        }
        if (rc) { free(b.s); goto done; }
        d->text[d->k++] = b.s;
    }
    /* Normalizer summed in rank order so it does not depend on the permutation. */
    double z = 0;
    for (size_t r = 1; r <= K; r++) z += pow((double)r, -t->cfg.zipf_s);
    for (size_t k = 0; k < K; k++) d->prob[k] = pow((double)rank[k], -t->cfg.zipf_s) / z;
done:
    free(rank);
    free(shift);
    free(aoff);
    free(poff);
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
        return gkd_error(GKD_EINVAL, "modes: length must be in [1, 64], got %d", t->cfg.modes_len);
    if (t->cfg.modes_k < 1 || t->cfg.modes_k > MAX_K)
        return gkd_error(GKD_EINVAL, "modes: k must be in [1, %d], got %d", MAX_K, t->cfg.modes_k);
    if (!isfinite(t->cfg.zipf_s) || t->cfg.zipf_s < 0 || t->cfg.zipf_s > 20)
        return gkd_error(GKD_EINVAL, "modes: zipf must be in [0, 20], got %g", t->cfg.zipf_s);
    /* K distinct strings must exist: K <= |alphabet|^modes_len. */
    double space = pow((double)utf8_length(t->cfg.alphabet), (double)t->cfg.modes_len);
    if ((double)t->cfg.modes_k > space)
        return gkd_error(GKD_EINVAL, "modes: k=%d exceeds the %.0f strings of length %d", t->cfg.modes_k,
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

const gkd_task_ops gkd_task_modes_ops = {"modes", build, score, 0, NULL};
