/* Sparse (top-k) teacher rows and the divergences against them.
 *
 * Both tail modes reduce one row to a distribution over m "buckets": the k
 * ids (renorm, m = k) or the k ids and the rest of the vocabulary (tail,
 * m = k + 1; at k = V the rest is empty and m = k). Per bucket b, in double:
 *   log P_b  the stored teacher row renormalised: logp_b - lse(stored row)
 *   log Q_b  renorm: x_b - lse_S(x),  tail: x_b - lse(x) and, for the rest,
 *            lse_{j not in S}(x) - lse(x)            (x = z_S / tau)
 * Q is a softmax of "bucket logits" eta, so the dense rule (*) of
 * divergence.c gives, with g_b = dF/dQ_b,
 *     d_b = dF/deta_b = Q_b (g_b - sum_c Q_c g_c),
 * the same per-divergence expressions as there with (P, Q) for (p, q):
 *   fkl  d = Q - P                 rkl  d = Q (log Q - log P - F)
 *   jsd  d = (1-b) Q (log Q - log M - KL(Q||M)),  M = b P + (1-b) Q
 *   skl  d = (1-a) (Q S - W),  W = Q P / M, S = sum W,  M = a P + (1-a) Q
 *   srkl d = Q (h - H),  h = log Q - log M - a Q / M, H = sum Q h,
 *        M = (1-a) P + a Q
 *   tvd  d = Q (g - G),  g = sign(Q - P) / 2, G = sum Q g
 * Back to the student logits (dx_j/dz_j = 1/tau):
 *   renorm  dF/dz_j = d_j / tau for j in S, 0 elsewhere (q~ = softmax_S(x));
 *   tail    dF/dz_j = d_j / tau for j in S and, for j outside S,
 *           dF/dz_j = (q_j / Q_rest) d_rest / tau, since
 *           dQ_rest/dz_j = (q_j - Q_rest q_j) / tau there; q_j / Q_rest =
 *           exp(x_j - lse_{not S}(x)) <= 1, so nothing overflows even when
 *           Q_rest underflows.
 * Keep these in step with row_divergence in divergence.c when a divergence
 * is added. The rest of the vocabulary is walked in id order beside the
 * row's ascending ids, so no row needs a mask or any scratch. */
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
    return gkd_sparse_rows_from_logit_rows(rows, 0, rows->N, teacher_logits);
}

/* A row is built from its own logits only, so the chunks of a batch give
 * the rows its whole array gives. */
int gkd_sparse_rows_from_logit_rows(gkd_sparse_rows *rows, int row0, int n, const float *teacher_logits) {
    assert(rows && rows->ids && rows->logp && rows->log_tail && (teacher_logits || n == 0));
    assert(rows->k >= 1 && rows->k <= rows->V && rows->tau > 0.0f);
    assert(row0 >= 0 && n >= 0 && row0 <= rows->N - n);
    const int V = rows->V, k = rows->k, end = row0 + n;
    const double it = 1.0 / (double)rows->tau;
    int bad = end;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int r = row0; r < end; r++)
        if (build_row(rows->ids + (size_t)r * k, rows->logp + (size_t)r * k, rows->log_tail + r,
                      teacher_logits + (size_t)(r - row0) * V, V, k, it) != 0 &&
            r < bad)
            bad = r;
    if (bad < end)
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

/* ---- divergences ---- */

/* log(exp(a) + exp(b)), exact when one side is -inf. */
static inline double lse2(double a, double b) {
    double m = a > b ? a : b;
    if (m == -INFINITY) return -INFINITY;
    return m + log(exp(a - m) + exp(b - m));
}

/* One row as m buckets; bucket k (tail mode, k < V) is the rest. */
typedef struct {
    const int32_t *ids;
    const float *logp, *zs;
    int k, m;
    double it;
    double lp0;   /* lse of the stored row (its k log-probabilities and tail) */
    double lq0;   /* student lse over S (renorm) or over the vocabulary (tail) */
    double lrest; /* tail: log P_rest (stored, unnormalised), log Q_rest */
    double lqrest;
    double lse_rest; /* tail: lse over the ids outside S of x */
} bucket_row;

static inline double LP(const bucket_row *r, int b) {
    return (b < r->k ? (double)r->logp[b] : r->lrest) - r->lp0;
}
static inline double LQ(const bucket_row *r, int b) {
    return b < r->k ? (double)r->zs[r->ids[b]] * r->it - r->lq0 : r->lqrest;
}

/* The value of D over the buckets and the one per-row constant its d_b
 * needs (F for rkl, KL(Q||M) for jsd, S for skl, H for srkl, G for tvd). */
static double bucket_value(gkd_divergence_kind kind, double param, const bucket_row *r, double *aux) {
    double val = 0.0, A = 0.0;
    switch (kind) {
    case GKD_DIV_FKL:
        for (int b = 0; b < r->m; b++) {
            double lp = LP(r, b), p = exp(lp);
            if (p > 0.0) val += p * (lp - LQ(r, b));
        }
        break;
    case GKD_DIV_RKL:
        for (int b = 0; b < r->m; b++) {
            double lq = LQ(r, b), q = exp(lq);
            if (q > 0.0) val += q * (lq - LP(r, b));
        }
        A = val;
        break;
    case GKD_DIV_JSD: {
        const double be = param, lb = log(be), l1b = log1p(-be);
        double kl_pm = 0.0, kl_qm = 0.0;
        for (int b = 0; b < r->m; b++) {
            double lp = LP(r, b), lq = LQ(r, b), lm = lse2(lb + lp, l1b + lq);
            double p = exp(lp), q = exp(lq);
            if (p > 0.0) kl_pm += p * (lp - lm);
            if (q > 0.0) kl_qm += q * (lq - lm);
        }
        val = be * kl_pm + (1.0 - be) * kl_qm;
        A = kl_qm;
        break;
    }
    case GKD_DIV_SKL: {
        const double a = param, la = log(a), l1a = log1p(-a);
        for (int b = 0; b < r->m; b++) {
            double lp = LP(r, b), lq = LQ(r, b), lm = lse2(la + lp, l1a + lq), p = exp(lp);
            if (p > 0.0) val += p * (lp - lm);
            A += exp(lq + lp - lm);
        }
        break;
    }
    case GKD_DIV_SRKL: {
        const double a = param, la = log(a), l1a = log1p(-a);
        for (int b = 0; b < r->m; b++) {
            double lp = LP(r, b), lq = LQ(r, b), lm = lse2(l1a + lp, la + lq), q = exp(lq);
            if (q > 0.0) {
                val += q * (lq - lm);
                A += q * (lq - lm - a * exp(lq - lm));
            }
        }
        break;
    }
    case GKD_DIV_TVD:
        for (int b = 0; b < r->m; b++) {
            double p = exp(LP(r, b)), q = exp(LQ(r, b));
            val += 0.5 * fabs(p - q);
            A += q * 0.5 * ((q > p) - (q < p));
        }
        break;
    default: /* unreachable: the caller admits fkl..tvd only */
        break;
    }
    *aux = A;
    return val;
}

/* d_b = dD/deta_b of bucket b (see the top of the file). */
static double bucket_grad(gkd_divergence_kind kind, double param, const bucket_row *r, int b,
                          double aux) {
    const double lp = LP(r, b), lq = LQ(r, b);
    switch (kind) {
    case GKD_DIV_FKL:
        return exp(lq) - exp(lp);
    case GKD_DIV_RKL:
        return exp(lq) * (lq - lp - aux);
    case GKD_DIV_JSD: {
        const double be = param, lm = lse2(log(be) + lp, log1p(-be) + lq);
        return (1.0 - be) * exp(lq) * (lq - lm - aux);
    }
    case GKD_DIV_SKL: {
        const double a = param, lm = lse2(log(a) + lp, log1p(-a) + lq);
        return (1.0 - a) * (exp(lq) * aux - exp(lq + lp - lm));
    }
    case GKD_DIV_SRKL: {
        const double a = param, lm = lse2(log1p(-a) + lp, log(a) + lq);
        return exp(lq) * (lq - lm - a * exp(lq - lm) - aux);
    }
    case GKD_DIV_TVD: {
        const double p = exp(lp), q = exp(lq);
        return q * (0.5 * ((q > p) - (q < p)) - aux);
    }
    default:
        return 0.0;
    }
}

/* Value of D for row n; if drow != NULL adds c * dD/dz_S to it. */
static double sparse_row(gkd_divergence_kind kind, double param, gkd_sparse_mode mode,
                         const float *zs, const int32_t *ids, const float *logp, float log_tail,
                         int V, int k, double it, double c, float *drow) {
    if (kind == GKD_DIV_SKL && param == 0.0) kind = GKD_DIV_FKL;
    if (kind == GKD_DIV_SRKL && param == 0.0) kind = GKD_DIV_RKL;
    const int tail = mode == GKD_SPARSE_TAIL && k < V;
    bucket_row r = {.ids = ids, .logp = logp, .zs = zs, .k = k, .m = k + tail, .it = it};

    /* The stored row's normaliser (over the ids, plus the tail in tail mode). */
    double m = tail ? (double)log_tail : -INFINITY;
    for (int i = 0; i < k; i++)
        if ((double)logp[i] > m) m = (double)logp[i];
    double s = tail ? exp((double)log_tail - m) : 0.0;
    for (int i = 0; i < k; i++) s += exp((double)logp[i] - m);
    r.lp0 = m + log(s);
    r.lrest = (double)log_tail;

    /* The student's normaliser(s). */
    double ms = -INFINITY, mr = -INFINITY;
    if (mode == GKD_SPARSE_RENORM) {
        for (int i = 0; i < k; i++) {
            double x = (double)zs[ids[i]] * it;
            if (x > ms) ms = x;
        }
        double ss = 0.0;
        for (int i = 0; i < k; i++) ss += exp((double)zs[ids[i]] * it - ms);
        r.lq0 = ms + log(ss);
    } else {
        for (int j = 0, i = 0; j < V; j++) {
            double x = (double)zs[j] * it;
            if (x > ms) ms = x;
            if (i < k && ids[i] == j) i++;
            else if (x > mr) mr = x;
        }
        double ss = 0.0, sr = 0.0;
        for (int j = 0, i = 0; j < V; j++) {
            double x = (double)zs[j] * it;
            ss += exp(x - ms);
            if (i < k && ids[i] == j) i++;
            else sr += exp(x - mr);
        }
        r.lq0 = ms + log(ss);
        if (tail) {
            r.lse_rest = mr + log(sr);
            r.lqrest = r.lse_rest - r.lq0;
        }
    }

    double aux;
    const double val = bucket_value(kind, param, &r, &aux);
    if (drow) {
        const double gc = c * it;
        if (!tail) {
            for (int i = 0; i < k; i++) drow[ids[i]] += (float)(gc * bucket_grad(kind, param, &r, i, aux));
        } else {
            const double drest = bucket_grad(kind, param, &r, k, aux);
            for (int j = 0, i = 0; j < V; j++) {
                if (i < k && ids[i] == j) {
                    drow[j] += (float)(gc * bucket_grad(kind, param, &r, i, aux));
                    i++;
                } else {
                    drow[j] += (float)(gc * exp((double)zs[j] * it - r.lse_rest) * drest);
                }
            }
        }
    }
    return val;
}

/* Rows in chunks, per-row values summed serially in row order: the same
 * bits for any thread count, without heap scratch (as divergence.c). */
enum { CHUNK = 512 };

double gkd_sparse_divergence_eval(const gkd_divergence *d, gkd_sparse_mode mode,
                                  const float *student_logits, const gkd_sparse_rows *teacher,
                                  const float *weight, float scale, float *values,
                                  float *dstudent) {
    /* Preconditions: d and tau checked (gkd_divergence_check), rows well
     * formed (built here or gkd_sparse_rows_check), buffers the caller's. */
    assert(d && teacher && student_logits && d->kind <= GKD_DIV_TVD);
    assert(mode == GKD_SPARSE_RENORM || mode == GKD_SPARSE_TAIL);
    assert(teacher->N >= 0 && teacher->k >= 1 && teacher->k <= teacher->V && teacher->tau > 0.0f);
    const int N = teacher->N, V = teacher->V, k = teacher->k;
    const double it = 1.0 / (double)teacher->tau;
    double total = 0.0;
    double rowval[CHUNK];
    for (int n0 = 0; n0 < N; n0 += CHUNK) {
        int n1 = n0 + CHUNK < N ? n0 + CHUNK : N;
#pragma omp parallel for schedule(static)
        for (int n = n0; n < n1; n++) {
            double w = weight ? (double)weight[n] : 1.0, v = 0.0;
            if (w != 0.0) {
                float *drow = dstudent ? dstudent + (size_t)n * V : NULL;
                v = sparse_row(d->kind, d->param, mode, student_logits + (size_t)n * V,
                               teacher->ids + (size_t)n * k, teacher->logp + (size_t)n * k,
                               teacher->log_tail[n], V, k, it, (double)scale * w, drow);
            }
            if (values) values[n] = (float)v;
            rowval[n - n0] = w * v;
        }
        for (int n = n0; n < n1; n++) total += rowval[n - n0];
    }
    return total;
}
