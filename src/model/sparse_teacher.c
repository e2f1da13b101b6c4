/* Sparse (top-k) teacher rows: built from dense teacher logits (a heap of
 * the k best in place in the row's ids, then sorted by id) and checked. */
#include "gkd/sparse_teacher.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

/* ---- rows ---- */

int gkd_sparse_rows_alloc(gkd_sparse_rows *out, int N, int V, int k, float tau) {
    memset(out, 0, sizeof *out);
    if (N < 0 || V < 1 || k < 1 || k > V)
        return gkd_error(GKD_EINVAL, "sparse teacher: need N >= 0 and 1 <= k <= V, got N %d, k %d, V %d",
                         N, k, V);
    if (!(isfinite(tau) && tau > 0.0f))
        return gkd_error(GKD_EINVAL, "sparse teacher: the temperature must be > 0 and finite, got %g",
                         (double)tau);
    size_t nk = (size_t)N * (size_t)k;
    gkd_sparse_rows r = {.N = N, .V = V, .k = k, .tau = tau};
    r.ids = calloc(nk ? nk : 1, sizeof *r.ids);
    r.logp = calloc(nk ? nk : 1, sizeof *r.logp);
    r.log_tail = calloc(N ? (size_t)N : 1, sizeof *r.log_tail);
    if (!r.ids || !r.logp || !r.log_tail) {
        gkd_sparse_rows_free(&r);
        return gkd_error(GKD_ENOMEM, "sparse teacher: out of memory for %d rows of %d ids", N, k);
    }
    *out = r;
    return 0;
}

void gkd_sparse_rows_free(gkd_sparse_rows *rows) {
    if (!rows) return;
    free(rows->ids), free(rows->logp), free(rows->log_tail);
    rows->ids = NULL, rows->logp = NULL, rows->log_tail = NULL;
}

/* a ranks before b: larger logit, or the same logit and the lower id. */
static inline int ranks_before(const float *z, int32_t a, int32_t b) {
    return z[a] > z[b] || (z[a] == z[b] && a < b);
}

/* Sift heap[i] down a heap whose root ranks last (the first to drop). */
static void sift_down(int32_t *heap, int n, int i, const float *z) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, last = i;
        if (l < n && ranks_before(z, heap[last], heap[l])) last = l;
        if (r < n && ranks_before(z, heap[last], heap[r])) last = r;
        if (last == i) return;
        int32_t t = heap[i];
        heap[i] = heap[last], heap[last] = t;
        i = last;
    }
}

static int cmp_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* One row: the top-k ids (ascending) of z, their log-probabilities at
 * 1/it and the log tail. Returns 0, or -1 for a non-finite logit. */
static int build_row(int32_t *ids, float *logp, float *log_tail, const float *z, int V, int k,
                     double it) {
    double m = -INFINITY;
    for (int j = 0; j < V; j++) {
        if (!isfinite(z[j])) return -1;
        double x = (double)z[j] * it;
        if (x > m) m = x;
    }
    double s = 0.0;
    for (int j = 0; j < V; j++) s += exp((double)z[j] * it - m);
    const double lse = m + log(s);

    if (k == V) {
        for (int j = 0; j < V; j++) ids[j] = j;
    } else {
        /* A heap of the k best so far, rooted at the one that ranks last,
         * built in place in ids. */
        for (int j = 0; j < k; j++) ids[j] = j;
        for (int i = k / 2 - 1; i >= 0; i--) sift_down(ids, k, i, z);
        for (int j = k; j < V; j++)
            if (ranks_before(z, j, ids[0])) {
                ids[0] = j;
                sift_down(ids, k, 0, z);
            }
        qsort(ids, (size_t)k, sizeof *ids, cmp_id);
    }
    for (int i = 0; i < k; i++) logp[i] = (float)((double)z[ids[i]] * it - lse);

    if (k == V) {
        *log_tail = -INFINITY;
        return 0;
    }
    /* lse over the ids not kept, walked in id order beside the sorted ids. */
    double mt = -INFINITY;
    for (int j = 0, i = 0; j < V; j++) {
        if (i < k && ids[i] == j) {
            i++;
            continue;
        }
        double x = (double)z[j] * it;
        if (x > mt) mt = x;
    }
    double st = 0.0;
    for (int j = 0, i = 0; j < V; j++) {
        if (i < k && ids[i] == j) {
            i++;
            continue;
        }
        st += exp((double)z[j] * it - mt);
    }
    *log_tail = (float)(mt + log(st) - lse);
    return 0;
}

int gkd_sparse_rows_from_logits(gkd_sparse_rows *rows, const float *teacher_logits) {
    assert(rows && rows->ids && rows->logp && rows->log_tail && teacher_logits);
    assert(rows->k >= 1 && rows->k <= rows->V && rows->tau > 0.0f);
    const int N = rows->N, V = rows->V, k = rows->k;
    const double it = 1.0 / (double)rows->tau;
    int bad = N;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int n = 0; n < N; n++)
        if (build_row(rows->ids + (size_t)n * k, rows->logp + (size_t)n * k, rows->log_tail + n,
                      teacher_logits + (size_t)n * V, V, k, it) != 0 &&
            n < bad)
            bad = n;
    if (bad < N)
        return gkd_error(GKD_EINVAL, "sparse teacher: row %d of the teacher logits has a non-finite value",
                         bad);
    return 0;
}

int gkd_sparse_rows_check(const gkd_sparse_rows *rows) {
    const int N = rows->N, V = rows->V, k = rows->k;
    if (N < 0 || V < 1 || k < 1 || k > V)
        return gkd_error(GKD_EINVAL, "sparse teacher: bad shape N %d, k %d, V %d", N, k, V);
    if (!(isfinite(rows->tau) && rows->tau > 0.0f))
        return gkd_error(GKD_EINVAL, "sparse teacher: bad temperature %g", (double)rows->tau);
    for (int n = 0; n < N; n++) {
        const int32_t *ids = rows->ids + (size_t)n * k;
        const float *lp = rows->logp + (size_t)n * k;
        for (int i = 0; i < k; i++) {
            if (ids[i] < 0 || ids[i] >= V)
                return gkd_error(GKD_EINVAL, "sparse teacher: row %d: id %d outside [0, %d)", n,
                                 (int)ids[i], V);
            if (i > 0 && ids[i] <= ids[i - 1])
                return gkd_error(GKD_EINVAL, "sparse teacher: row %d: ids not strictly ascending (%d after %d)",
                                 n, (int)ids[i], (int)ids[i - 1]);
            if (!(isfinite(lp[i]) && lp[i] <= 0.0f))
                return gkd_error(GKD_EINVAL, "sparse teacher: row %d: log-probability %g of id %d is not finite and <= 0",
                                 n, (double)lp[i], (int)ids[i]);
        }
        float lt = rows->log_tail[n];
        if (k == V ? lt != -INFINITY : !(isfinite(lt) && lt <= 0.0f))
            return gkd_error(GKD_EINVAL, "sparse teacher: row %d: log tail %g (must be %s)", n, (double)lt,
                             k == V ? "-inf when k = V" : "finite and <= 0 when k < V");
        double mass = k < V ? exp((double)lt) : 0.0;
        for (int i = 0; i < k; i++) mass += exp((double)lp[i]);
        if (!(fabs(mass - 1.0) <= 1e-4))
            return gkd_error(GKD_EINVAL, "sparse teacher: row %d: probabilities and tail sum to %.9g, not 1", n,
                             mass);
    }
    return 0;
}
