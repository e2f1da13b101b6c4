/* Model-driven evaluation (include/gkd/eval.h): three passes over the eval
 * split, each in batches.
 *   1. references, teacher-forced: nll_ref, token_accuracy, fkl_ref,
 *      rkl_ref, val_loss;
 *   2. one decode per prompt (greedy by default): the task score and the
 *      string metrics against the references, mean_len, eos_rate;
 *   3. `samples` sampled completions per prompt: diversity, and the
 *      teacher's view of what the student says (teacher_nll, fkl/rkl on
 *      samples, speculative-decoding acceptance); the modes metrics.
 * Sampling streams live in their own range, so evaluating never changes what
 * training draws. */
#include "gkd/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/metrics.h"
#include "gkd/sampler.h"

static const char *const metric_names[GKD_M_COUNT] = {
    "exact_match", "char_accuracy", "token_accuracy", "bleu",       "chrf",        "rouge_l",
    "nll_ref",     "teacher_nll",   "fkl_ref",        "rkl_ref",    "fkl_samples", "rkl_samples",
    "accept_rate", "accept_tokens", "distinct_1",     "distinct_2", "self_bleu",   "mean_len",
    "eos_rate",    "precision",     "coverage",       "kl_data",    "val_loss"};

const char *gkd_metric_name(gkd_metric_id id) {
    return id >= 0 && id < GKD_M_COUNT ? metric_names[id] : "?";
}

#define DECODE_STREAM_BASE (UINT64_C(1) << 61)
#define SAMPLE_STREAM_BASE (UINT64_C(3) << 61)
#define SPEC_GAMMA 4

typedef struct {
    gkd_model *student, *teacher;
    const gkd_tokenizer *tok;
    const gkd_task *task;
    const gkd_eval_options *o;
    int B, cap, V;
    gkd_seqbatch batch;
    int *targets_cap, *tokens_bt, *targets_bt;
    float *mask_cap, *mask_bt;
    int T;
    gkd_sampler *sampler;
    /* Context distillation: the teacher scores each row on its own view,
     * the example's context after BOS (gkd_task_encode_with_context). */
    int contexts;                /* 1: some eval example has a context */
    size_t first;                /* eval example of the batch's row 0 */
    int *ctx_tokens;             /* the eval examples' context tokens, encoded once, concatenated */
    size_t *ctx_off;             /* (n + 1) example i's are ctx_tokens[ctx_off[i] .. ctx_off[i + 1]) */
    int *view_tokens;            /* (B, teacher context) */
    float *view_logits;          /* (B, cap, V) the teacher's rows aligned on the student's */
} evaluator;

/* Compact the batch's first `rows` rows to (rows, T) with loss mask. */
static void layout(evaluator *e, int rows) {
    const gkd_seqbatch *b = &e->batch;
    int T = 1;
    for (int r = 0; r < rows; r++)
        if (b->len[r] > T) T = b->len[r];
    e->T = T;
    gkd_seqbatch_targets(b, e->targets_cap, e->mask_cap);
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)r * e->cap + t, j = (size_t)r * T + t;
            e->tokens_bt[j] = b->tokens[i];
            e->targets_bt[j] = e->targets_cap[i];
            e->mask_bt[j] = e->mask_cap[i];
        }
}

static double mask_count(const float *mask, int N) {
    double c = 0;
    for (int n = 0; n < N; n++) c += mask[n] != 0;
    return c;
}

/* 1 if every logit of the rows with mask != 0 is finite. The divergences
 * skip terms whose probability is not > 0, which a NaN never is, so
 * non-finite logits must be caught here to surface as a NaN metric: the
 * metric of such a model is undefined (a value, not an error). */
static int masked_rows_finite(const float *z, const float *mask, int N, int V) {
    for (int n = 0; n < N; n++) {
        if (mask[n] == 0) continue;
        for (int v = 0; v < V; v++)
            if (!isfinite(z[(size_t)n * V + v])) return 0;
    }
    return 1;
}

/* The teacher's logits for the student's rows of the batch (rows, T):
 * with contexts, row r is scored as [BOS] context_r tokens[1..T) (the
 * context first when the tokenizer has no BOS) and its position t + c_r
 * gathered at t, so every column compares the same prediction; without,
 * the teacher's forward over the same tokens. */
static int teacher_rows(evaluator *e, int rows, const float **zt) {
    const int T = e->T;
    if (!e->contexts) {
        int rc = gkd_model_forward(e->teacher, e->tokens_bt, rows, T);
        *zt = e->teacher->logits;
        return rc;
    }
    const int maxT = e->teacher->config.max_seq_len;
    int c[rows], Tv = T;
    for (int r = 0; r < rows; r++) {
        const size_t i = e->first + (size_t)r;
        c[r] = (int)(e->ctx_off[i + 1] - e->ctx_off[i]);
        if (T + c[r] > maxT)
            return gkd_error(GKD_EINVAL,
                             "evaluate: eval example %zu's context (%d tokens) and sequence of %d take %d tokens; "
                             "the teacher's context is %d",
                             e->first + (size_t)r, c[r], T, T + c[r], maxT);
        if (T + c[r] > Tv) Tv = T + c[r];
    }
    for (int r = 0; r < rows; r++) {
        int *v = e->view_tokens + (size_t)r * Tv;
        const int *t = e->tokens_bt + (size_t)r * T;
        const int n = c[r];
        /* BOS stays first; a tokenizer without one gets the context first. */
        const int head = gkd_tokenizer_bos(e->tok) >= 0;
        memcpy(v, t, sizeof(int) * (size_t)head);
        memcpy(v + head, e->ctx_tokens + e->ctx_off[e->first + (size_t)r], sizeof(int) * (size_t)n);
        memcpy(v + head + n, t + head, sizeof(int) * (size_t)(T - head));
        for (int k = T + n; k < Tv; k++) v[k] = GKD_TOK_PAD; /* after the sequence: never read */
    }
    int rc = gkd_model_forward(e->teacher, e->view_tokens, rows, Tv);
    if (rc) return rc;
    const size_t V = (size_t)e->V;
    for (int r = 0; r < rows; r++)
        memcpy(e->view_logits + (size_t)r * T * V, e->teacher->logits + ((size_t)r * Tv + (size_t)c[r]) * V,
               sizeof(float) * (size_t)T * V);
    *zt = e->view_logits;
    return 0;
}

/* Sums over masked tokens, turned into means at the end. */
typedef struct {
    double count, nll, acc, fkl, rkl, val, accept;
} token_sums;

/* Teacher-forced scores of the batch's first `rows` rows. With
 * teacher_nll_only, the student's own NLL is not wanted (samples). */
static int score_rows(evaluator *e, int rows, token_sums *s, int student_metrics) {
    layout(e, rows);
    const int N = rows * e->T, V = e->V;
    double c = mask_count(e->mask_bt, N);
    if (c == 0) return 0;
    int rc = gkd_model_forward(e->student, e->tokens_bt, rows, e->T);
    if (rc) return rc;
    if (student_metrics) {
        s->nll += c * gkd_metric_nll(e->student->logits, e->targets_bt, e->mask_bt, N, V);
        s->acc += c * gkd_metric_token_accuracy(e->student->logits, e->targets_bt, e->mask_bt, N, V);
    }
    if (e->teacher) {
        const float *zt = NULL;
        if ((rc = teacher_rows(e, rows, &zt))) return rc;
        const float *zs = e->student->logits;
        if (!student_metrics) s->nll += c * gkd_metric_nll(zt, e->targets_bt, e->mask_bt, N, V);
        s->fkl += c * gkd_metric_kl(zt, zs, e->mask_bt, N, V, 0);
        s->rkl += c * gkd_metric_kl(zt, zs, e->mask_bt, N, V, 1);
        s->accept += c * gkd_metric_accept_rate(zt, zs, e->mask_bt, N, V);
        const gkd_divergence *d = &e->o->val_divergence;
        if (student_metrics && d->kind <= GKD_DIV_TVD)
            s->val += gkd_divergence_eval(d, zs, zt, e->mask_bt, N, V, e->o->tau, 0.0f, NULL, NULL);
        if (!masked_rows_finite(zt, e->mask_bt, N, V) || !masked_rows_finite(zs, e->mask_bt, N, V))
            s->val = s->fkl = s->rkl = NAN;
    }
    s->count += c;
    return 0;
}

/* The text a row generated after its prompt (specials dropped). */
static char *row_text(evaluator *e, int row) {
    const gkd_seqbatch *b = &e->batch;
    int n = b->len[row] - b->prompt_len[row];
    return gkd_tokenizer_decode_alloc(e->tok, b->tokens + (size_t)row * b->cap + b->prompt_len[row], n > 0 ? n : 0);
}

/* Generate for eval examples [first, first + rows): one stream each. */
static int generate(evaluator *e, size_t first, int rows, int copies, int copy, float temperature,
                    uint64_t stream_base) {
    gkd_seqbatch *b = &e->batch;
    uint64_t streams[rows];
    for (int r = 0; r < rows; r++) {
        size_t ex = first + (size_t)r;
        int *ids = b->tokens + (size_t)r * b->cap;
        for (int t = 0; t < b->cap; t++) ids[t] = GKD_TOK_PAD;
        int rc = gkd_task_encode_prompt(e->task, e->tok, GKD_SPLIT_EVAL, ex, ids, b->cap, &b->prompt_len[r],
                                        &b->len[r]);
        if (rc) return rc;
        streams[r] = stream_base + ex * (uint64_t)copies + (uint64_t)copy;
    }
    gkd_sample_options so = GKD_SAMPLE_OPTIONS_INIT;
    so.temperature = temperature;
    so.max_new_tokens = e->o->max_new_tokens;
    so.eos_token = gkd_tokenizer_eos(e->tok);
    int B = b->B;
    b->B = rows;
    int rc = gkd_sampler_generate(e->sampler, b, &so, 0.0f, e->o->seed, streams, NULL);
    b->B = B;
    return rc;
}

typedef struct {
    evaluator *e;
    int *ids;
    float *mask;
    int *targets;
} logprob_ctx;

/* log q(continuation EOS | prompt) under the student. */
static int student_logprob(double *out, void *vctx, size_t example, const char *continuation) {
    logprob_ctx *c = vctx;
    evaluator *e = c->e;
    const gkd_example *ex = gkd_task_example(e->task, GKD_SPLIT_EVAL, example);
    int prompt_len, len;
    int rc = gkd_tokenizer_encode_pair(e->tok, ex->prompt, continuation, c->ids, e->cap, &prompt_len, &len);
    if (rc || (rc = gkd_model_forward(e->student, c->ids, 1, len))) return rc;
    double lp = 0;
    const int V = e->V;
    for (int t = prompt_len - 1; t < len - 1; t++) {
        const float *z = e->student->logits + (size_t)t * V;
        double mx = z[0], sum = 0;
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
        lp += z[c->ids[t + 1]] - mx - log(sum);
    }
    *out = lp;
    return 0;
}

static gkd_metric_unit text_unit(const evaluator *e) {
    /* Word n-grams for natural text; characters for the built-in string tasks,
     * whose outputs have no spaces to split on. */
    const char *name = gkd_task_name(e->task);
    return (!strcmp(name, "pairs") || !strcmp(name, "text")) ? GKD_UNIT_WORDS : GKD_UNIT_CHARS;
}

int gkd_evaluate(gkd_eval_result *out, gkd_model *student, gkd_model *teacher, const gkd_tokenizer *tok,
                 const gkd_task *task, const gkd_eval_options *opt) {
    for (int m = 0; m < GKD_M_COUNT; m++) out->v[m] = NAN;
    size_t n = gkd_task_size(task, GKD_SPLIT_EVAL);
    if ((size_t)opt->n < n) n = (size_t)opt->n;
    if (n == 0) return gkd_error(GKD_EINVAL, "evaluate: the task has no eval examples");
    /* The bleu column is corpus BLEU: refuse a smoothing it does not define
     * before any decoding. */
    const char *smoothing = gkd_bleu_smoothing_name(opt->bleu_smoothing);
    gkd_bleu_smoothing parsed;
    if (!smoothing)
        return gkd_error(GKD_EINVAL, "evaluate: unknown BLEU smoothing %d (valid: %s)", (int)opt->bleu_smoothing,
                         GKD_BLEU_SMOOTHING_CORPUS_NAMES);
    int rc = gkd_bleu_smoothing_parse(&parsed, smoothing, 1);
    if (rc) return gkd_error_wrap(rc, "evaluate");
    /* val_loss evaluates this divergence: its preconditions are asserted
     * inside, so a caller's options are checked here. */
    if (teacher && (rc = gkd_divergence_check(&opt->val_divergence, opt->tau)))
        return gkd_error_wrap(rc, "evaluate: val_divergence");
    evaluator e = {.student = student, .teacher = teacher, .tok = tok, .task = task, .o = opt};
    e.B = opt->batch > 0 ? opt->batch : 32;
    e.cap = student->config.max_seq_len;
    e.V = student->config.vocab_size;
    const size_t m = opt->samples > 0 ? (size_t)opt->samples : 0;
    char **outputs = calloc(n, sizeof *outputs), **samples = calloc(n * (m ? m : 1), sizeof *samples);
    const char **refs = calloc(n, sizeof *refs);
    unsigned char *eos = calloc(n, 1);
    double score = 0;
    token_sums ref = {0}, smp = {0};
    logprob_ctx lctx = {.e = &e};
    rc = gkd_seqbatch_new(&e.batch, e.B, e.cap);
    size_t BC = (size_t)e.B * e.cap;
    e.targets_cap = malloc(BC * sizeof(int));
    e.tokens_bt = malloc(BC * sizeof(int));
    e.targets_bt = malloc(BC * sizeof(int));
    e.mask_cap = malloc(BC * sizeof(float));
    e.mask_bt = malloc(BC * sizeof(float));
    lctx.ids = malloc((size_t)e.cap * sizeof(int));
    if (rc || !outputs || !samples || !refs || !eos || !e.targets_cap || !e.tokens_bt || !e.targets_bt ||
        !e.mask_cap || !e.mask_bt || !lctx.ids) {
        rc = rc ? rc : gkd_error(GKD_ENOMEM, "evaluate: out of memory");
        goto done;
    }
    if ((rc = gkd_sampler_new(&e.sampler, student, NULL, e.B))) goto done;
    /* A task laid out as the teacher sees it (with_context: the teacher's
     * own evaluation) already holds the contexts in its sequences. */
    const int viewed = gkd_task_config_of(task)->with_context;
    for (size_t i = 0; teacher && !viewed && i < n && !e.contexts; i++) {
        const char *c = gkd_task_example(task, GKD_SPLIT_EVAL, i)->context;
        e.contexts = c && c[0];
    }
    if (e.contexts) {
        const size_t Tt = (size_t)teacher->config.max_seq_len;
        e.ctx_tokens = malloc(n * Tt * sizeof(int)); /* at most a window each; trimmed below */
        e.ctx_off = malloc((n + 1) * sizeof(size_t));
        e.view_tokens = malloc((size_t)e.B * Tt * sizeof(int));
        e.view_logits = malloc(BC * (size_t)e.V * sizeof(float));
        if (!e.ctx_tokens || !e.ctx_off || !e.view_tokens || !e.view_logits) {
            rc = gkd_error(GKD_ENOMEM, "evaluate: out of memory for the teacher's view");
            goto done;
        }
        e.ctx_off[0] = 0;
        for (size_t i = 0; i < n; i++) {
            int c = 0;
            if ((rc = gkd_task_encode_context(task, tok, GKD_SPLIT_EVAL, i, e.ctx_tokens + e.ctx_off[i], (int)Tt, &c)))
                goto done;
            e.ctx_off[i + 1] = e.ctx_off[i] + (size_t)c;
        }
        int *trimmed = realloc(e.ctx_tokens, (e.ctx_off[n] ? e.ctx_off[n] : 1) * sizeof(int));
        if (trimmed) e.ctx_tokens = trimmed;
    }

    /* 1. references, teacher-forced */
    for (size_t first = 0; first < n; first += (size_t)e.B) {
        int rows = (int)(n - first < (size_t)e.B ? n - first : (size_t)e.B);
        for (int r = 0; r < rows; r++) {
            int *ids = e.batch.tokens + (size_t)r * e.cap;
            for (int t = 0; t < e.cap; t++) ids[t] = GKD_TOK_PAD;
            if ((rc = gkd_task_encode_example(task, tok, GKD_SPLIT_EVAL, first + r, ids, e.cap,
                                              &e.batch.prompt_len[r], &e.batch.len[r])))
                goto done;
        }
        e.first = first;
        if ((rc = score_rows(&e, rows, &ref, 1))) goto done;
    }
    if (ref.count > 0) {
        out->v[GKD_M_NLL_REF] = ref.nll / ref.count;
        out->v[GKD_M_TOKEN_ACCURACY] = ref.acc / ref.count;
        if (teacher) {
            out->v[GKD_M_FKL_REF] = ref.fkl / ref.count;
            out->v[GKD_M_RKL_REF] = ref.rkl / ref.count;
        }
        out->v[GKD_M_VAL_LOSS] = teacher && opt->val_divergence.kind <= GKD_DIV_TVD ? ref.val / ref.count
                                                                                  : out->v[GKD_M_NLL_REF];
    }

    /* 2. one decode per prompt */
    for (size_t first = 0; first < n; first += (size_t)e.B) {
        int rows = (int)(n - first < (size_t)e.B ? n - first : (size_t)e.B);
        if ((rc = generate(&e, first, rows, 1, 0, opt->greedy ? 0.0f : opt->temperature, DECODE_STREAM_BASE)))
            goto done;
        for (int r = 0; r < rows; r++) {
            size_t i = first + (size_t)r;
            const gkd_example *ex = gkd_task_example(task, GKD_SPLIT_EVAL, i);
            if (!(outputs[i] = row_text(&e, r))) { rc = gkd_error(GKD_ENOMEM, "evaluate: out of memory"); goto done; }
            refs[i] = ex->reference;
            eos[i] = e.batch.eos[r];
            score += gkd_task_score(task, ex, outputs[i]);
        }
    }
    out->v[GKD_M_EXACT_MATCH] = score / (double)n;
    const char *const *outs = (const char *const *)outputs;
    if ((rc = gkd_metric_char_accuracy(&out->v[GKD_M_CHAR_ACCURACY], outs, refs, n)) ||
        (rc = gkd_metric_corpus_bleu(&out->v[GKD_M_BLEU], outs, refs, NULL, n, GKD_UNIT_WORDS, opt->bleu_smoothing)) ||
        (rc = gkd_metric_corpus_chrf(&out->v[GKD_M_CHRF], outs, refs, n, 2.0)) ||
        (rc = gkd_metric_rouge_l(&out->v[GKD_M_ROUGE_L], outs, refs, n))) {
        rc = gkd_error_wrap(rc, "evaluate");
        goto done;
    }
    out->v[GKD_M_MEAN_LEN] = gkd_metric_mean_len(outs, n);
    out->v[GKD_M_EOS_RATE] = gkd_metric_eos_rate(eos, n);

    /* 3. sampled completions */
    if (m > 0) {
        for (size_t j = 0; j < m; j++)
            for (size_t first = 0; first < n; first += (size_t)e.B) {
                int rows = (int)(n - first < (size_t)e.B ? n - first : (size_t)e.B);
                if ((rc = generate(&e, first, rows, (int)m, (int)j, opt->temperature, SAMPLE_STREAM_BASE)))
                    goto done;
                for (int r = 0; r < rows; r++)
                    if (!(samples[(first + r) * m + j] = row_text(&e, r))) {
                        rc = gkd_error(GKD_ENOMEM, "evaluate: out of memory");
                        goto done;
                    }
                e.first = first;
                if (teacher && (rc = score_rows(&e, rows, &smp, 0))) goto done;
            }
        const char *const *all = (const char *const *)samples;
        gkd_metric_unit unit = text_unit(&e);
        if ((rc = gkd_metric_distinct_n(&out->v[GKD_M_DISTINCT_1], all, n * m, 1, unit)) ||
            (rc = gkd_metric_distinct_n(&out->v[GKD_M_DISTINCT_2], all, n * m, 2, unit)) ||
            (rc = gkd_metric_self_bleu(&out->v[GKD_M_SELF_BLEU], all, n * m, unit, GKD_BLEU_METHOD1))) {
            rc = gkd_error_wrap(rc, "evaluate");
            goto done;
        }
        if (teacher && smp.count > 0) {
            out->v[GKD_M_TEACHER_NLL] = smp.nll / smp.count;
            out->v[GKD_M_FKL_SAMPLES] = smp.fkl / smp.count;
            out->v[GKD_M_RKL_SAMPLES] = smp.rkl / smp.count;
            out->v[GKD_M_ACCEPT_RATE] = smp.accept / smp.count;
            out->v[GKD_M_ACCEPT_TOKENS] = gkd_metric_expected_accepted(out->v[GKD_M_ACCEPT_RATE], SPEC_GAMMA);
        }
        if (gkd_task_num_continuations(task, GKD_SPLIT_EVAL, 0) > 0)
            gkd_metric_modes(task, GKD_SPLIT_EVAL, n, all, m, &out->v[GKD_M_PRECISION], &out->v[GKD_M_COVERAGE]);
    }
    if (gkd_task_num_continuations(task, GKD_SPLIT_EVAL, 0) > 0 &&
        (rc = gkd_metric_kl_data(&out->v[GKD_M_KL_DATA], task, GKD_SPLIT_EVAL, n, student_logprob, &lctx)))
        rc = gkd_error_wrap(rc, "evaluate");
done:
    if (outputs)
        for (size_t i = 0; i < n; i++) free(outputs[i]);
    if (samples)
        for (size_t i = 0; i < n * (m ? m : 1); i++) free(samples[i]);
    free(outputs);
    free(samples);
    free(refs);
    free(eos);
    free(e.targets_cap);
    free(e.tokens_bt);
    free(e.ctx_tokens);
    free(e.ctx_off);
    free(e.view_tokens);
    free(e.view_logits);
    free(e.targets_bt);
    free(e.mask_cap);
    free(e.mask_bt);
    free(lctx.ids);
    gkd_sampler_free(e.sampler);
    gkd_seqbatch_free(&e.batch);
    return rc;
}
