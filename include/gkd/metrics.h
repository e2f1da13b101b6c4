/* Evaluation metrics as pure functions over strings and arrays; the
 * model-driven evaluation loop that produces their inputs lives elsewhere.
 * docs/metrics.md gives every formula, its direction and its CSV column.
 *
 * Strings are UTF-8; an invalid byte counts as one character of its own (so
 * byte-vocabulary outputs never fail). "Words" are maximal runs of
 * non-whitespace, with whitespace as Python's str.isspace (as str.split()).
 * BLEU, chrF and ROUGE-L are in [0, 1] (like NLTK), not x100. */
#ifndef GKD_METRICS_H
#define GKD_METRICS_H

#include <stddef.h>

#include "gkd/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What BLEU n-grams, Self-BLEU and distinct-n are made of. */
typedef enum {
    GKD_UNIT_WORDS = 0, /* whitespace tokens, as NLTK's str.split() inputs */
    GKD_UNIT_CHARS = 1  /* code points, as NLTK's list(str) inputs */
} gkd_metric_unit;

/** BLEU smoothing: NLTK 3.8's SmoothingFunction methods (defaults epsilon
 *  0.1, k 5), numbered as NLTK numbers them. docs/metrics.md gives each. */
typedef enum {
    GKD_BLEU_METHOD0 = 0, /* none (NLTK's default): a zero precision becomes DBL_MIN */
    GKD_BLEU_METHOD1 = 1, /* epsilon 0.1 added to a zero numerator */
    GKD_BLEU_METHOD2 = 2, /* 1 added to numerator and denominator of orders 2..4 */
    GKD_BLEU_METHOD3 = 3, /* NIST: the k-th zero precision becomes 1 / (2^k den) */
    GKD_BLEU_METHOD4 = 4, /* the k-th zero precision becomes ln(len) / (2^k 5 den) */
    GKD_BLEU_METHOD5 = 5, /* mean of the n-1, n, n+1 precisions (sentence BLEU only) */
    GKD_BLEU_METHOD7 = 7  /* method4, then method5 (sentence BLEU only) */
} gkd_bleu_smoothing;

/* The names gkd_bleu_smoothing_parse accepts, as it lists them. NLTK's
 * method5 and method7 read the n-gram counts of the corpus's last sentence
 * in corpus_bleu, so they exist for sentence BLEU and Self-BLEU only;
 * method6 is left out (NLTK fails on outputs without a trigram match). */
#define GKD_BLEU_SMOOTHING_CORPUS_NAMES "method0, method1, method2, method3, method4"
#define GKD_BLEU_SMOOTHING_NAMES GKD_BLEU_SMOOTHING_CORPUS_NAMES ", method5, method7"

/** Smoothing from its NLTK name ("method0".."method5", "method7"); with
 *  corpus != 0 only the methods defined for corpus BLEU (method0..method4).
 *  An unknown or unsupported name is GKD_EINVAL with a one-line message
 *  that lists the valid names. */
int gkd_bleu_smoothing_parse(gkd_bleu_smoothing *out, const char *name, int corpus);
/** NLTK name of a smoothing method ("method1"), NULL if it is not one. */
const char *gkd_bleu_smoothing_name(gkd_bleu_smoothing smoothing);

/* ---- string metrics (column names in brackets) ----
 * Functions that can fail (out of memory, bad arguments) return 0 or a
 * negative GKD_E* code with a message (gkd_last_error) and write their
 * result through the first argument only on success. A NaN result is a
 * value, never an error: it means the metric is undefined (Self-BLEU of
 * fewer than 2 samples, a metric over non-finite logits). */

/** [exact_match] Share of i < n with outputs[i] == refs[i] byte for byte. */
double gkd_metric_exact_match(const char *const *outputs, const char *const *refs, size_t n);

/** *out = Levenshtein distance in code points (insert, delete, substitute
 *  cost 1). GKD_ENOMEM. */
int gkd_metric_edit_distance(size_t *out, const char *a, const char *b);

/** [char_accuracy] *out = mean over i of max(0, 1 - lev(out_i, ref_i) /
 *  len(ref_i)) with lengths in code points; an empty reference scores 1 if
 *  the output is empty, else 0 (0 for n = 0). GKD_ENOMEM. */
int gkd_metric_char_accuracy(double *out, const char *const *outputs, const char *const *refs, size_t n);

/** [bleu] *out = corpus BLEU exactly as nltk.translate.bleu_score.corpus_bleu
 *  with default weights (0.25 x 4), the corpus brevity penalty and the given
 *  smoothing (GKD_BLEU_METHOD0, no smoothing, is NLTK's default: a zero
 *  n-gram precision becomes DBL_MIN, so the score is ~1e-77 rather than 0).
 *  0 when no unigram matches, whatever the smoothing. Hypothesis i has the
 *  refs_per[i] references refs[off_i .. off_i + refs_per[i]) where off_i is
 *  the sum of the earlier refs_per; refs_per NULL = one each.
 *  GKD_EINVAL: a bad unit, a hypothesis without reference, or a smoothing
 *  that is not method0..method4; GKD_ENOMEM. */
int gkd_metric_corpus_bleu(double *out, const char *const *hyps, const char *const *refs, const size_t *refs_per,
                           size_t n, gkd_metric_unit unit, gkd_bleu_smoothing smoothing);

/** *out = sentence BLEU as nltk sentence_bleu(refs, hyp) with 4-gram uniform
 *  weights and the given smoothing (every method of gkd_bleu_smoothing; with
 *  method5 and method7 it can exceed 1, as in NLTK). GKD_EINVAL: a bad unit
 *  or smoothing, n_refs = 0; GKD_ENOMEM. */
int gkd_metric_sentence_bleu(double *out, const char *hyp, const char *const *refs, size_t n_refs,
                             gkd_metric_unit unit, gkd_bleu_smoothing smoothing);

/** [self_bleu] *out = mean over i of sentence BLEU (the column uses
 *  GKD_BLEU_METHOD1, as Texygen) of samples[i] against all other samples as
 *  references. Higher = less diverse. NAN (undefined) if n < 2.
 *  GKD_EINVAL: a bad unit or smoothing; GKD_ENOMEM. */
int gkd_metric_self_bleu(double *out, const char *const *samples, size_t n, gkd_metric_unit unit,
                         gkd_bleu_smoothing smoothing);

/** [chrf] *out = corpus chrF exactly as nltk.translate.chrf_score.corpus_chrf
 *  with min_len 1, max_len 6, ignore_whitespace (whitespace removed) and the
 *  given beta (the column uses 2): the mean over n-gram orders and sentences
 *  of the per-sentence F_beta; NLTK's epsilon 1e-16 replaces an undefined F
 *  (no n-grams of that order on one side, or no match). 0 for n = 0.
 *  GKD_EINVAL: beta not finite and >= 0; GKD_ENOMEM. */
int gkd_metric_corpus_chrf(double *out, const char *const *hyps, const char *const *refs, size_t n, double beta);
/** Sentence chrF = gkd_metric_corpus_chrf of one pair (nltk sentence_chrf). */
int gkd_metric_sentence_chrf(double *out, const char *hyp, const char *ref, double beta);

/** [rouge_l] *out = mean over i of ROUGE-L F1 on words: LCS = longest common
 *  subsequence length, P = LCS/|out|, R = LCS/|ref|, F1 = 2PR/(P+R); 0 when
 *  either side has no words (as Google's rouge-score), 0 for n = 0.
 *  GKD_ENOMEM. */
int gkd_metric_rouge_l(double *out, const char *const *outputs, const char *const *refs, size_t n);
/** ROUGE-L F1 of one pair. GKD_ENOMEM. */
int gkd_metric_rouge_l_pair(double *out, const char *output, const char *ref);

/** [distinct_1], [distinct_2] *out = distinct-n over a set of samples: the
 *  number of distinct n-grams divided by the total number of n-grams, pooled
 *  over all samples (n-grams do not cross samples); 0 if there is no n-gram.
 *  GKD_EINVAL: order < 1 or a bad unit; GKD_ENOMEM. */
int gkd_metric_distinct_n(double *out, const char *const *samples, size_t n, int order, gkd_metric_unit unit);

/** [mean_len] Mean length of the outputs in code points. */
double gkd_metric_mean_len(const char *const *outputs, size_t n);

/** [eos_rate] Share of sequences that ended with EOS (eos[i] != 0). */
double gkd_metric_eos_rate(const unsigned char *eos, size_t n);

/* ---- model-based metrics over logits ----
 * logits are rows of V floats, one per position n < N; mask[n] != 0 selects
 * the positions that count (mask NULL = all). Softmaxes are computed in double
 * with the max subtracted. Each returns the mean over selected positions
 * (0 if none). They cannot fail. Non-finite logits make the NLL NaN but
 * can vanish from the KL and acceptance sums (terms of probability 0 are
 * skipped), so a caller that may see them checks first (eval.c does). */

/** [nll_ref], [teacher_nll] Mean of -log softmax(logits[n])[targets[n]]. */
double gkd_metric_nll(const float *logits, const int *targets, const float *mask, int N, int V);

/** [token_accuracy] Share of selected positions where argmax(logits[n]) ==
 *  targets[n] (teacher forcing; the lowest index wins ties). */
double gkd_metric_token_accuracy(const float *logits, const int *targets, const float *mask, int N, int V);

/** [fkl_*] Mean exact KL(p_teacher || q_student); [rkl_*] with reverse = 1,
 *  mean KL(q_student || p_teacher). Exact divergences (not cross-entropies). */
double gkd_metric_kl(const float *teacher_logits, const float *student_logits, const float *mask, int N,
                     int V, int reverse);

/** [accept_rate] Mean over selected positions of sum_v min(p_student(v),
 *  p_teacher(v)): the probability that speculative decoding with the student
 *  as drafter accepts a token (Leviathan et al. 2023, DistillSpec). */
double gkd_metric_accept_rate(const float *teacher_logits, const float *student_logits, const float *mask,
                              int N, int V);

/** [accept_tokens] Expected tokens produced per draft block of gamma tokens
 *  at acceptance rate a, bonus token included: (1 - a^(gamma+1)) / (1 - a),
 *  gamma + 1 at a = 1 (Leviathan et al. 2023, eq. 1). The column uses the
 *  mean accept_rate and gamma = 4. */
double gkd_metric_expected_accepted(double a, int gamma);

/* ---- known distribution (modes task) ---- */

/** [precision], [coverage] For examples i < n_examples of `split`, with m
 *  samples each (samples[i * m + j]): precision = share of all samples that
 *  are valid continuations; coverage = mean over examples of the total true
 *  probability of the distinct continuations among its m samples. */
void gkd_metric_modes(const gkd_task *t, gkd_split split, size_t n_examples, const char *const *samples,
                      size_t m, double *precision, double *coverage);

/** *out = log q(continuation | prompt of example) under the student, in
 *  nats; returns 0 or a negative GKD_E* code with a message. */
typedef int (*gkd_logprob_fn)(double *out, void *ctx, size_t example, const char *continuation);

/** [kl_data] *out = mean over examples i < n_examples of the exact
 *  KL(p_data || q_student) = sum_k p_k (log p_k - log q(c_k)), enumerating
 *  the valid continuations c_k with p_k > 0 (the student's mass on invalid
 *  strings makes no term of its own: KL from the data only needs the
 *  support of p); 0 for n_examples = 0. A failing logprob stops it: its
 *  code is returned, its message prefixed with the example and
 *  continuation. */
int gkd_metric_kl_data(double *out, const gkd_task *t, gkd_split split, size_t n_examples, gkd_logprob_fn logprob,
                       void *ctx);

#ifdef __cplusplus
}
#endif

#endif
