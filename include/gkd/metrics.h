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

/* ---- string metrics (column names in brackets) ---- */

/** [exact_match] Share of i < n with outputs[i] == refs[i] byte for byte. */
double gkd_metric_exact_match(const char *const *outputs, const char *const *refs, size_t n);

/** Levenshtein distance in code points (insert, delete, substitute cost 1). */
size_t gkd_metric_edit_distance(const char *a, const char *b);

/** [char_accuracy] Mean over i of max(0, 1 - lev(out_i, ref_i) / len(ref_i))
 *  with lengths in code points; an empty reference scores 1 if the output is
 *  empty, else 0. */
double gkd_metric_char_accuracy(const char *const *outputs, const char *const *refs, size_t n);

/** [bleu] Corpus BLEU exactly as nltk.translate.bleu_score.corpus_bleu with
 *  default weights (0.25 x 4), no smoothing (NLTK's method0: a zero n-gram
 *  precision becomes DBL_MIN, so the score is ~1e-77 rather than 0, and it is
 *  0 when no unigram matches) and the corpus brevity penalty. Hypothesis i
 *  has the refs_per[i] references refs[off_i .. off_i + refs_per[i]) where
 *  off_i is the sum of the earlier refs_per; refs_per NULL = one each. */
double gkd_metric_corpus_bleu(const char *const *hyps, const char *const *refs, const size_t *refs_per,
                              size_t n, gkd_metric_unit unit);

/** Sentence BLEU as nltk sentence_bleu(refs, hyp) with 4-gram uniform
 *  weights; smoothing 0 = none (method0), 1 = NLTK's method1 (epsilon 0.1
 *  added to zero numerators). */
double gkd_metric_sentence_bleu(const char *hyp, const char *const *refs, size_t n_refs,
                                gkd_metric_unit unit, int smoothing);

/** [self_bleu] Mean over i of sentence BLEU (method1 smoothing, as Texygen)
 *  of samples[i] against all other samples as references. Higher = less
 *  diverse. NAN if n < 2. */
double gkd_metric_self_bleu(const char *const *samples, size_t n, gkd_metric_unit unit);

/** [chrf] Corpus chrF exactly as nltk.translate.chrf_score.corpus_chrf with
 *  min_len 1, max_len 6, ignore_whitespace (whitespace removed) and the
 *  given beta (the column uses 2): the mean over n-gram orders and sentences
 *  of the per-sentence F_beta; NLTK's epsilon 1e-16 replaces an undefined F
 *  (no n-grams of that order on one side, or no match). */
double gkd_metric_corpus_chrf(const char *const *hyps, const char *const *refs, size_t n, double beta);
/** Sentence chrF = gkd_metric_corpus_chrf of one pair (nltk sentence_chrf). */
double gkd_metric_sentence_chrf(const char *hyp, const char *ref, double beta);

/** [rouge_l] Mean over i of ROUGE-L F1 on words: LCS = longest common
 *  subsequence length, P = LCS/|out|, R = LCS/|ref|, F1 = 2PR/(P+R); 0 when
 *  either side has no words (as Google's rouge-score). */
double gkd_metric_rouge_l(const char *const *outputs, const char *const *refs, size_t n);
/** ROUGE-L F1 of one pair. */
double gkd_metric_rouge_l_pair(const char *output, const char *ref);

/** [distinct_1], [distinct_2] Distinct-n over a set of samples: the number of
 *  distinct n-grams divided by the total number of n-grams, pooled over all
 *  samples (n-grams do not cross samples). 0 if there is no n-gram. */
double gkd_metric_distinct_n(const char *const *samples, size_t n, int order, gkd_metric_unit unit);

/** [mean_len] Mean length of the outputs in code points. */
double gkd_metric_mean_len(const char *const *outputs, size_t n);

/** [eos_rate] Share of sequences that ended with EOS (eos[i] != 0). */
double gkd_metric_eos_rate(const unsigned char *eos, size_t n);

/* ---- model-based metrics over logits ----
 * logits are rows of V floats, one per position n < N; mask[n] != 0 selects
 * the positions that count (mask NULL = all). Softmaxes are computed in double
 * with the max subtracted. Each returns the mean over selected positions
 * (0 if none). */

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

/** log q(continuation | prompt of example) under the student, in nats. */
typedef double (*gkd_logprob_fn)(void *ctx, size_t example, const char *continuation);

/** [kl_data] Mean over examples i < n_examples of the exact
 *  KL(p_data || q_student) = sum_k p_k (log p_k - logprob(ctx, i, c_k)),
 *  enumerating the valid continuations c_k (the student's mass on invalid
 *  strings makes no term of its own: KL from the data only needs the
 *  support of p). */
double gkd_metric_kl_data(const gkd_task *t, gkd_split split, size_t n_examples, gkd_logprob_fn logprob,
                          void *ctx);

#ifdef __cplusplus
}
#endif

#endif
