/* Sparse teacher distributions: per position, only the teacher's top-k
 * token ids with their log-probabilities and the log of the mass outside
 * them, and the divergences of gkd_divergence_eval against such rows.
 *
 * A batch of rows (gkd_sparse_rows) is the unit that is built from dense
 * teacher logits, cached and passed to the loss: N = B*T rows of k ids,
 * k log-probabilities and one tail, k*8 + 4 bytes a row instead of V*4.
 *
 * Two ways to compare a student q = softmax(z_S / tau) with a row
 * (S = the row's ids, p_i its probabilities, t = its tail mass):
 *   renorm  D(p~, q~) on the k outcomes S: p~_i = p_i / sum_S p,
 *           q~_i = q_i / sum_S q (the student renormalised over the same
 *           ids); the gradient is 0 outside S.
 *   tail    D(P, Q) on k + 1 outcomes: P = (p_i for i in S, t),
 *           Q = (q_i for i in S, sum_{j not in S} q_j).
 * With k = V both are the dense divergence of gkd_divergence_eval. Formulas
 * and gradients: docs/divergences.md, "Sparse teacher distributions". */
#ifndef GKD_SPARSE_TEACHER_H
#define GKD_SPARSE_TEACHER_H

#include <stdint.h>

#include "gkd/divergence.h"

#ifdef __cplusplus
extern "C" {
#endif

/** N rows of a teacher's top-k distribution over a vocabulary of V, at the
 *  temperature tau they were built at (the loss temperature). Row n holds
 *  ids[n*k .. n*k+k) in strictly ascending order (the top-k SET: a
 *  canonical form, whose distinctness is checked in one pass),
 *  logp[n*k + i] = log p(ids[n*k + i]) of the full teacher softmax, and
 *  log_tail[n] = log(1 - sum of the row's p) = log of the mass outside the
 *  ids, finite for k < V and -inf for k = V. Log-probabilities rather than
 *  probabilities: a float probability underflows to 0 below 1.4e-45 (a
 *  logit gap of 103 at the temperature), which would make rkl infinite;
 *  a float log-probability keeps the same 2^-24 relative precision where
 *  p matters (|log p| <= 1) and never underflows.
 *  The arrays may also be the caller's (a cache); then do not free them. */
typedef struct {
    int N, V, k;
    float tau;
    int32_t *ids;     /* (N, k) */
    float *logp;      /* (N, k) */
    float *log_tail;  /* (N) */
} gkd_sparse_rows;

/** Allocate the arrays of N >= 0 rows of k ids, 1 <= k <= V; GKD_EINVAL
 *  for a shape or a tau (finite, > 0) out of range, GKD_ENOMEM. The rows
 *  are zeroed (not valid rows until built). */
int gkd_sparse_rows_alloc(gkd_sparse_rows *out, int N, int V, int k, float tau);
/** Free what gkd_sparse_rows_alloc allocated (NULL and zeroed are fine). */
void gkd_sparse_rows_free(gkd_sparse_rows *rows);

/** Fill rows (shape and tau already set) from dense teacher logits
 *  (rows->N, rows->V): p = softmax(z_T / tau) in double, the k largest
 *  logits with ties broken by the lower id, log_tail from the logits
 *  outside the ids (not 1 - sum, so a tail of 1e-30 keeps its digits).
 *  A non-finite logit is GKD_EINVAL naming its row (nothing else is
 *  reported; the rows are then unspecified). Parallel over rows. */
int gkd_sparse_rows_from_logits(gkd_sparse_rows *rows, const float *teacher_logits);
/** The same for rows row0 .. row0 + n - 1 of `rows` alone (within rows->N),
 *  from those rows' teacher logits (n, V), e.g. a teacher's head computed a
 *  chunk at a time (gkd_model_logits_rows): each row is built from its own
 *  logits, so the chunks give gkd_sparse_rows_from_logits's rows bit for
 *  bit. A non-finite logit is GKD_EINVAL naming its row (of `rows`); the
 *  chunk's rows are then unspecified, the others untouched. */
int gkd_sparse_rows_from_logit_rows(gkd_sparse_rows *rows, int row0, int n, const float *teacher_logits);

/** 0 if every row is well formed, else GKD_EINVAL naming the first bad row:
 *  ids strictly ascending in [0, V); logp finite and <= 0; log_tail <= 0,
 *  finite for k < V and -inf for k = V; and sum p + tail within 1e-4 of 1.
 *  For rows read from outside (a cache file): the evaluation takes well
 *  formed rows as a precondition and does not check them. */
int gkd_sparse_rows_check(const gkd_sparse_rows *rows);

/** How the mass outside a row's ids enters the divergence. */
typedef enum {
    GKD_SPARSE_RENORM = 0, /* both sides renormalised over the k ids */
    GKD_SPARSE_TAIL        /* one extra outcome: the mass outside the ids */
} gkd_sparse_mode;

/** The divergence of every row of `teacher` against the student's logits
 *  (teacher->N, teacher->V), at the rows' temperature, with the semantics
 *  of gkd_divergence_eval: values[n] (may be NULL; 0 where weight[n] is 0),
 *  returns sum_n weight[n] * values[n] (weight NULL = all 1), and if
 *  dstudent is not NULL ACCUMULATES scale * weight[n] * dD/dz_S into it
 *  (in renorm mode only the k ids of a row are touched). The stored row is
 *  renormalised in double (its float values sum to 1 only within
 *  rounding). Kinds fkl..tvd (pg_rkl and ce have no sparse form);
 *  preconditions as gkd_divergence_eval (gkd_divergence_check) and well
 *  formed rows. Parallel over rows, bit-identical for any thread count. */
double gkd_sparse_divergence_eval(const gkd_divergence *d, gkd_sparse_mode mode,
                                  const float *student_logits, const gkd_sparse_rows *teacher,
                                  const float *weight, float scale, float *values,
                                  float *dstudent);

#ifdef __cplusplus
}
#endif

#endif
