/* Token-level divergences between teacher p = softmax(z_T / tau) and student
 * q = softmax(z_S / tau), with value and gradient w.r.t. the student logits
 * z_S (the teacher gets no gradient). Values are exact divergences (not
 * cross-entropies offset by the teacher's entropy).
 *
 *   fkl       KL(p || q)                     rkl       KL(q || p)
 *   jsd(b)    b KL(p||m) + (1-b) KL(q||m),   m = b p + (1-b) q,  0 < b < 1
 *   skl(a)    KL(p || a p + (1-a) q)         srkl(a)   KL(q || (1-a) p + a q)
 *   tvd       1/2 sum |p - q|
 */
#ifndef GKD_DIVERGENCE_H
#define GKD_DIVERGENCE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_DIV_FKL = 0,
    GKD_DIV_RKL,
    GKD_DIV_JSD,
    GKD_DIV_SKL,
    GKD_DIV_SRKL,
    GKD_DIV_TVD,
    GKD_DIV_CE,     /* cross-entropy on ground-truth tokens (no teacher) */
    GKD_DIV_PG_RKL  /* sampled-token reverse KL as a reward (student rollouts only) */
} gkd_divergence_kind;

typedef struct {
    gkd_divergence_kind kind;
    double param; /* beta for jsd, alpha for skl/srkl; unused otherwise */
} gkd_divergence;

/** Parse "fkl", "rkl", "jsd(0.5)", "skl(0.1)", "srkl", "tvd", "ce", "pg_rkl"
 *  ("skl"/"srkl" default alpha 0.1; "jsd" default beta 0.5). jsd with
 *  beta <= 0 or >= 1 is an error pointing to fkl/rkl. */
int gkd_divergence_parse(gkd_divergence *out, const char *s);
/** 0 if `d` is a divergence of this library with its parameter in range
 *  (what gkd_divergence_parse accepts) and, for every kind but ce, the
 *  loss temperature tau is finite and > 0; else GKD_EINVAL with a message.
 *  The functions below take these as preconditions (assertions): check a
 *  divergence built by hand once, before them. */
int gkd_divergence_check(const gkd_divergence *d, float tau);
/** Canonical spelling, e.g. "jsd(0.9)"; returns buf. */
char *gkd_divergence_format(const gkd_divergence *d, char *buf, size_t cap);

/** Per position n < N (rows of V logits) with weight[n] != 0 (weight may be
 *  NULL = all 1): values[n] = D(p_n, q_n) (0 where weight is 0). Returns the
 *  sum over n of weight[n] * values[n]. If dstudent is not NULL, ACCUMULATES
 *  scale * weight[n] * dD/dz_S into dstudent (N, V) (chain rule through tau
 *  included). values may be NULL. Kinds fkl..tvd only; numerically safe for
 *  logits of +-80 and (near) one-hot distributions. Parallel over n. */
double gkd_divergence_eval(const gkd_divergence *d, const float *student_logits,
                           const float *teacher_logits, const float *weight, int N, int V,
                           float tau, float scale, float *values, float *dstudent);

/** gkd_divergence_eval continuing a sum: returns total plus the rows'
 *  weighted values, added one row at a time in row order (the same per-row
 *  values and gradients). Rows evaluated in consecutive pieces, each call
 *  given the return of the one before (the first 0), add up in the order,
 *  and so to the bits, of one gkd_divergence_eval over all of them: a
 *  teacher's logits can be computed a chunk of rows at a time. */
double gkd_divergence_eval_continue(double total, const gkd_divergence *d, const float *student_logits,
                                    const float *teacher_logits, const float *weight, int N, int V,
                                    float tau, float scale, float *values, float *dstudent);

/* ---- pg_rkl: sampled-token reverse KL as a policy-gradient reward ----
 * On student rollouts y ~ q, KL(q || p) of the sequence is the expectation of
 * sum_t [log q(y_t) - log p(y_t)], so the per-token reward is
 *   r_t = log p(y_t) - log q(y_t)   (p, q at the loss temperature tau)
 * and the student maximizes E[sum_t A_t] with the REINFORCE surrogate
 *   L = -sum_t w_t A_t log q(y_t),   A_t held constant (no gradient),
 *   dL/dz_j = -w_t A_t (onehot(y_t)_j - q_j) / tau.
 * Rows are positions n = b*T + t of B sequences of T steps; y_n is the
 * next-token target at position n. */

/** Advantage estimator for pg_rkl. */
typedef enum {
    GKD_PG_PER_TOKEN = 0,   /* A_t = r_t (lowest variance, myopic) */
    GKD_PG_REWARD_TO_GO     /* A_t = sum_{s >= t, w_s != 0} r_s within the sequence */
} gkd_pg_advantage;

/** rewards[n] = log p(y_n) - log q(y_n) where weight[n] != 0 (weight may be
 *  NULL = all 1), 0 elsewhere; y_n = targets[n] in [0, V). Returns the sum of
 *  weight[n] * rewards[n] (minus the sampled-token estimate of the summed
 *  reverse KL). Parallel over n, deterministic. */
double gkd_pg_rkl_rewards(float *rewards, const float *student_logits, const float *teacher_logits,
                          const int *targets, const float *weight, int N, int V, float tau);

/** advantages (B, T) from rewards (B, T): per token, or reward-to-go summed
 *  backwards over positions with weight != 0 of the same sequence (weight may
 *  be NULL). Positions with weight 0 get 0. */
void gkd_pg_advantages(float *advantages, const float *rewards, const float *weight, int B, int T,
                       gkd_pg_advantage kind);

/** Surrogate L = -sum_n weight[n] advantages[n] log q_n(y_n); returns L. If
 *  dstudent is not NULL, ACCUMULATES scale * dL/dz_S (advantages held
 *  constant) into dstudent (N, V). Parallel over n, deterministic. */
double gkd_pg_loss(const float *student_logits, const int *targets, const float *advantages,
                   const float *weight, int N, int V, float tau, float scale, float *dstudent);

#ifdef __cplusplus
}
#endif

#endif
