/* sort: a random string over cfg.alphabet with a length uniform in
 * [min_len, max_len]; the reference is its characters sorted by code point
 * (ascending, duplicates kept). Prompt "dbca", reference "abcd". Score:
 * exact match. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "task_impl.h"

typedef struct {
    const char *s;
    size_t len;
} piece;

/* UTF-8 byte order equals code point order, so memcmp sorts by code point. */
static int cmp_piece(const void *a, const void *b) {
    const piece *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, m);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

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
    piece *pc = malloc((n + 1) * sizeof *pc);
    char *r = malloc(off[n] + 1);
    if (!pc || !r) {
        free(p);
        free(off);
        free(pc);
        free(r);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) pc[i] = (piece){p + off[i], off[i + 1] - off[i]};
    qsort(pc, n, sizeof *pc, cmp_piece);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(r + w, pc[i].s, pc[i].len);
        w += pc[i].len;
    }
    r[w] = '\0';
    free(off);
    free(pc);
    *prompt = p;
    *reference = r;
    return 0;
}

static int build(gkd_task *t) {
    int rc;
    if ((rc = task_check_alphabet(t)) || (rc = task_check_lengths(t))) return rc;
    return task_generate_splits(t, 3, gen);
}

const gkd_task_ops gkd_task_sort_ops = {"sort", build, task_score_exact, 0, NULL};
