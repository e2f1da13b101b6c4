/* Sparse teacher distributions: per position, only the teacher's top-k
 * token ids with their log-probabilities and the log of the mass outside
 * them.
 *
 * A batch of rows (gkd_sparse_rows) is the unit that is built from dense
 * teacher logits, cached and passed to the loss: N = B*T rows of k ids,
 * k log-probabilities and one tail, k*8 + 4 bytes a row instead of V*4. */
#ifndef GKD_SPARSE_TEACHER_H
#define GKD_SPARSE_TEACHER_H

#include <stdint.h>

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

/** 0 if every row is well formed, else GKD_EINVAL naming the first bad row:
 *  ids strictly ascending in [0, V); logp finite and <= 0; log_tail <= 0,
 *  finite for k < V and -inf for k = V; and sum p + tail within 1e-4 of 1.
 *  For rows read from outside (a cache file). */
int gkd_sparse_rows_check(const gkd_sparse_rows *rows);

#ifdef __cplusplus
}
#endif

#endif
