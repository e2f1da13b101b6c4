/* Distilling step-by-step (Hsieh et al. 2023): the rationale task's term of
 * a multitask run's loss (see docs/distillation.md).
 *
 * The step's batch is the label task: its rows follow the run's schedule
 * (data, student or teacher rollouts, replay) like any run. This term adds
 * supervised cross-entropy on the rationale task of the same examples
 * ("[rationale] " prompt -> rationale), laid out in a batch of its own and
 * normalized over its own loss tokens, so
 *
 *     loss = label loss + w * rationale loss,
 *
 * each the run's reduction (distill.reduction) over its own tokens. At w = 0
 * the term is not computed: the step is the label task's alone, the same
 * bits as a run on the label examples without rationales. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill_step.h"
#include "gkd/error.h"

int gkd_rationale_term_active(const gkd_distill_state *s) {
    return gkd_task_size(s->task, GKD_SPLIT_RATIONALE) > 0 && s->o.rationale_weight > 0;
}

int gkd_rationale_term_init(gkd_distill_state *s) {
    const gkd_distill_options *o = &s->o;
    if (!(o->rationale_weight >= 0 && isfinite(o->rationale_weight)))
        return gkd_error(GKD_EINVAL, "distill: rationale_weight %g must be a finite number >= 0",
                         (double)o->rationale_weight);
    if (o->rationale_source != GKD_RATIONALE_DATA && o->rationale_source != GKD_RATIONALE_TEACHER)
        return gkd_error(GKD_EINVAL, "distill: rationale_source %d is not data (0) or teacher (1)", o->rationale_source);
    if (!gkd_rationale_term_active(s)) return 0;
    if (o->rationale_source == GKD_RATIONALE_TEACHER && !s->teacher_sampler)
        return gkd_error(GKD_EINVAL, "distill: rationale_source teacher needs a teacher (gkd train has none; "
                                     "use rationale_source data)");
    const int B = o->batch, cap = s->student->config.max_seq_len;
    int rc;
    if ((rc = gkd_seqbatch_new(&s->rationale, B, cap)) || (rc = gkd_batch_layout_new(&s->rationale_layout, B, cap)))
        return rc;
    if (o->rationale_source == GKD_RATIONALE_TEACHER) {
        s->rationale_cache_n = gkd_task_size(s->task, GKD_SPLIT_RATIONALE);
        s->rationale_cache = calloc(s->rationale_cache_n, sizeof *s->rationale_cache);
        if (!s->rationale_cache) return gkd_error(GKD_ENOMEM, "distill: out of memory for the rationale cache");
    }
    return 0;
}

void gkd_rationale_term_free(gkd_distill_state *s) {
    gkd_seqbatch_free(&s->rationale);
    gkd_batch_layout_free(&s->rationale_layout);
    if (s->rationale_cache) {
        for (size_t i = 0; i < s->rationale_cache_n; i++) free(s->rationale_cache[i]);
        free(s->rationale_cache);
    }
    s->rationale_cache = NULL;
    s->rationale_cache_n = 0;
}

static void clear_row(gkd_seqbatch *b, int row) {
    int *t = b->tokens + (size_t)row * b->cap;
    for (int i = 0; i < b->cap; i++) t[i] = GKD_TOK_PAD;
}

/* Row `row` of b := BOS "[rationale] " prompt SEP [rationale EOS] of example ex. */
static int encode_rationale(gkd_distill_state *s, gkd_seqbatch *b, int row, size_t ex, int with_target) {
    clear_row(b, row);
    int *ids = b->tokens + (size_t)row * b->cap;
    int rc = with_target ? gkd_task_encode_example(s->task, s->tok, GKD_SPLIT_RATIONALE, ex, ids, b->cap,
                                                   &b->prompt_len[row], &b->len[row])
                         : gkd_task_encode_prompt(s->task, s->tok, GKD_SPLIT_RATIONALE, ex, ids, b->cap,
                                                  &b->prompt_len[row], &b->len[row]);
    b->eos[row] = with_target && rc == 0;
    return rc;
}

static void row_to_cache(int *c, const gkd_seqbatch *b, int r) {
    c[0] = b->prompt_len[r];
    c[1] = b->len[r];
    c[2] = b->eos[r];
    memcpy(c + 3, b->tokens + (size_t)r * b->cap, sizeof(int) * (size_t)b->cap);
}

static void cache_to_row(gkd_seqbatch *b, int r, const int *c) {
    b->prompt_len[r] = c[0];
    b->len[r] = c[1];
    b->eos[r] = (unsigned char)c[2];
    memcpy(b->tokens + (size_t)r * b->cap, c + 3, sizeof(int) * (size_t)b->cap);
}

/* The teacher's rationales of the batch's examples: each generated once,
 * greedily, from its own stream (gkd_seqkd_stream), as long as the context
 * allows, and reused whenever the example comes again. */
static int teacher_rationales(gkd_distill_state *s) {
    const int B = s->o.batch;
    int m = 0, rc;
    for (int r = 0; r < B; r++) {
        size_t ex = s->examples[r];
        if (s->rationale_cache[ex]) {
            cache_to_row(&s->rationale, r, s->rationale_cache[ex]);
            continue;
        }
        if ((rc = encode_rationale(s, &s->gathered, m, ex, 0))) return rc;
        s->rows[m] = r;
        s->stream_ids[m] = gkd_seqkd_stream(ex);
        m++;
    }
    if (m == 0) return 0;
    gkd_seqbatch sub = s->gathered;
    sub.B = m;
    gkd_sample_options greedy = s->o.sample;
    greedy.temperature = 0;
    greedy.max_new_tokens = s->rationale.cap;
    if ((rc = gkd_sampler_generate(s->teacher_sampler, &sub, &greedy, 0, s->o.seed, s->stream_ids, NULL)))
        return gkd_error_wrap(rc, "teacher rationales");
    for (int j = 0; j < m; j++) {
        const int r = s->rows[j];
        const size_t ex = s->examples[r];
        if (!s->rationale_cache[ex]) {
            int *c = malloc(sizeof(int) * (size_t)(sub.cap + 3));
            if (!c) return gkd_error(GKD_ENOMEM, "rationale cache: out of memory");
            row_to_cache(c, &sub, j);
            s->rationale_cache[ex] = c;
        }
        cache_to_row(&s->rationale, r, s->rationale_cache[ex]);
    }
    return 0;
}

int gkd_rationale_term(gkd_distill_state *s, long step, double *loss) {
    const int B = s->o.batch, V = s->student->config.vocab_size;
    int rc = 0;
    if (s->rationale_cache) {
        if ((rc = teacher_rationales(s))) return rc;
    } else {
        for (int b = 0; b < B; b++)
            if ((rc = encode_rationale(s, &s->rationale, b, s->examples[b], 1))) return rc;
    }
    gkd_batch_layout_fill(&s->rationale_layout, &s->rationale, NULL, s->o.per_sequence);
    const gkd_batch_layout *l = &s->rationale_layout;
    if ((rc = gkd_model_forward(s->student, l->tokens, B, l->T))) return rc;
    const int N = B * l->T;
    memset(s->dlogits, 0, sizeof(float) * (size_t)N * V);
    *loss = gkd_weighted_ce(s->dlogits, s->ce_row_loss, s->student->logits, l->targets, l->weight, N, V,
                            s->o.rationale_weight);
    if (!isfinite(*loss)) return gkd_error(GKD_ENAN, "step %ld: the rationale loss is not finite", step);
    return gkd_model_backward(s->student, s->dlogits);
}
