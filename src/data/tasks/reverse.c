/* reverse: a random string over cfg.alphabet with a length uniform in
 * [min_len, max_len]; the reference is the string reversed character by
 * character (code points). Prompt "abcd", reference "dcba". Score: exact
 * match (character accuracy and chrF come from the metrics). */
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "task_impl.h"

static int gen(const gkd_task *t, gkd_rng *rng, char **prompt, char **reference) {
    int len = t->cfg.min_len + (int)gkd_rng_below(rng, (uint32_t)(t->cfg.max_len - t->cfg.min_len + 1));
    char *p;
    int rc = task_random_string(t, rng, len, &p);
    if (rc) return rc;
    size_t *off, n;
    if ((rc = utf8_offsets(p, &off, &n))) {
        free(p);
        return rc;
    }
    char *r = malloc(off[n] + 1);
    if (!r) {
        free(p);
        free(off);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    size_t w = 0;
    for (size_t i = n; i-- > 0;) {
        memcpy(r + w, p + off[i], off[i + 1] - off[i]);
        w += off[i + 1] - off[i];
    }
    r[w] = '\0';
    free(off);
    *prompt = p;
    *reference = r;
    return 0;
}

static int build(gkd_task *t) {
    int rc;
    if ((rc = task_check_alphabet(t)) || (rc = task_check_lengths(t))) return rc;
    return task_generate_splits(t, 2, gen);
}

const gkd_task_ops gkd_task_reverse_ops = {"reverse", build, task_score_exact, 0, NULL};
