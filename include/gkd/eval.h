/* Model-driven evaluation: decode the eval split with the student, score it
 * against the references and against the teacher. Every metric has a fixed
 * name (the eval.csv column, see docs/metrics.md); a metric that does not
 * apply to a run (no teacher, not the modes task) or is undefined (Self-BLEU
 * of one sample, non-finite logits) is NaN and written empty. Failures are
 * error codes, never NaN. */
#ifndef GKD_EVAL_H
#define GKD_EVAL_H

#include <stdint.h>

#include "gkd/divergence.h"
#include "gkd/metrics.h"
#include "gkd/model.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GKD_M_EXACT_MATCH = 0, GKD_M_CHAR_ACCURACY, GKD_M_TOKEN_ACCURACY, GKD_M_BLEU, GKD_M_CHRF,
    GKD_M_ROUGE_L, GKD_M_NLL_REF, GKD_M_TEACHER_NLL, GKD_M_FKL_REF, GKD_M_RKL_REF,
    GKD_M_FKL_SAMPLES, GKD_M_RKL_SAMPLES, GKD_M_ACCEPT_RATE, GKD_M_ACCEPT_TOKENS,
    GKD_M_DISTINCT_1, GKD_M_DISTINCT_2, GKD_M_SELF_BLEU, GKD_M_MEAN_LEN, GKD_M_EOS_RATE,
    GKD_M_PRECISION, GKD_M_COVERAGE, GKD_M_KL_DATA, GKD_M_VAL_LOSS,
    GKD_M_COUNT
} gkd_metric_id;

/** Column name of a metric ("exact_match", ...). */
const char *gkd_metric_name(gkd_metric_id id);

typedef struct {
    int n;                  /* eval examples (clamped to the split size) */
    int greedy;             /* 1: task metrics from greedy decoding, 0: from one sample */
    int samples;            /* sampled completions per prompt for the sample metrics (0 = skip) */
    float temperature;      /* of the sampled completions */
    int max_new_tokens;
    int batch;              /* sequences per forward/decode batch */
    uint64_t seed;          /* sampling streams: (seed, GKD_RNG_EVAL, ...) */
    gkd_divergence val_divergence; /* val_loss: this divergence teacher-forced on references */
    float tau;
    gkd_bleu_smoothing bleu_smoothing; /* of the bleu column: method0 (none, NLTK's default)
                                          .. method4; self_bleu always uses method1 */
} gkd_eval_options;

#define GKD_EVAL_OPTIONS_INIT                                                                   \
    {.n = 200, .greedy = 1, .samples = 1, .temperature = 1.0f, .max_new_tokens = 16,           \
     .batch = 32, .seed = 1, .val_divergence = {GKD_DIV_FKL, 0}, .tau = 1.0f,                  \
     .bleu_smoothing = GKD_BLEU_METHOD0}

typedef struct {
    double v[GKD_M_COUNT]; /* NaN where not measured or undefined */
} gkd_eval_result;

/** Evaluate `student` (and, if teacher is not NULL, the teacher-based
 *  metrics) on the task's eval split. GKD_EINVAL for an empty eval split or
 *  a bleu_smoothing that corpus BLEU does not define (not method0..method4),
 *  checked before any decoding; errors of decoding and of the metrics pass
 *  through with their messages. */
int gkd_evaluate(gkd_eval_result *out, gkd_model *student, gkd_model *teacher,
                 const gkd_tokenizer *tok, const gkd_task *task, const gkd_eval_options *opt);

#ifdef __cplusplus
}
#endif

#endif
