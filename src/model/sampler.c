/* Batched rollouts with KV caches (see sampler.h).
 *
 * Every sequence advances at its own position: prompts of different lengths
 * are prefilled in one decoder call, then each step feeds the last token of
 * every live sequence. A sequence draws only from its own stream, at most
 * one uniform per generated token, and the decoder's rows do not depend on
 * each other (decode_matmul.c), so a rollout is the same alone or in any batch and
 * with any thread count.
 *
 * Choices the header leaves open:
 * - stream_ids == NULL means stream id b for sequence b.
 * - Greedy (temperature 0) without mixing takes the argmax (lowest id on
 *   ties) and draws nothing; with mixing each model's distribution is the
 *   one-hot of its argmax and the mixture is sampled as usual.
 * - top-k keeps exactly k tokens, top-p the smallest prefix (by decreasing
 *   probability, ties by lower id) reaching cumulative probability >= p of
 *   the top-k-renormalized distribution (sample_filter.c).
 * - A sequence stops after EOS, after max_new_tokens generated tokens, or
 *   at min(cap, context length) tokens; the rest of its row becomes PAD. A
 *   prompt already at that limit generates nothing.
 * - With a mix context (gkd_sampler_set_mix_context), the mix model decodes
 *   rows of its own: row b's tokens before `at`, its c_b context tokens,
 *   then the rest of the row, so row position t >= at is its position
 *   t + c_b, and a sequence also stops at the mix model's context length
 *   minus c_b. Without one (or when it is not used) both models decode the
 *   same rows. */
#include <stdlib.h>
#include <string.h>

#include "decode_rows.h"
#include "gkd/error.h"
#include "gkd/rng.h"
#include "gkd/sampler.h"
#include "gkd/tokenizer.h"
#include "sample_filter.h"

int gkd_seqbatch_new(gkd_seqbatch *b, int B, int cap) {
    memset(b, 0, sizeof *b);
    if (B <= 0 || cap <= 0)
        return gkd_error(GKD_EINVAL, "seqbatch: B and cap must be positive (got %d, %d)", B, cap);
    b->B = B;
    b->cap = cap;
    b->tokens = calloc((size_t)B * cap, sizeof(int)); /* PAD is 0 */
    b->prompt_len = calloc((size_t)B, sizeof(int));
    b->len = calloc((size_t)B, sizeof(int));
    b->eos = calloc((size_t)B, 1);
    if (!b->tokens || !b->prompt_len || !b->len || !b->eos) {
        gkd_seqbatch_free(b);
        return gkd_error(GKD_ENOMEM, "seqbatch: out of memory for %d x %d tokens", B, cap);
    }
    return 0;
}

void gkd_seqbatch_free(gkd_seqbatch *b) {
    if (!b) return;
    free(b->tokens);
    free(b->prompt_len);
    free(b->len);
    free(b->eos);
    memset(b, 0, sizeof *b);
}

void gkd_seqbatch_targets(const gkd_seqbatch *b, int *targets, float *mask) {
    for (int i = 0; i < b->B; i++) {
        const int *tok = b->tokens + (size_t)i * b->cap;
        int *tg = targets + (size_t)i * b->cap;
        float *mk = mask + (size_t)i * b->cap;
        for (int t = 0; t < b->cap; t++) {
            tg[t] = t + 1 < b->cap ? tok[t + 1] : GKD_TOK_PAD;
            mk[t] = (t + 1 >= b->prompt_len[i] && t + 1 < b->len[i]) ? 1.0f : 0.0f;
        }
    }
}

struct gkd_sampler {
    gkd_model *model, *mix;
    int max_B, V, max_rows;
    gkd_kv_cache *kv, *kv_mix;
    float *logits, *logits_mix; /* (max_B, V) */
    double *p, *p_mix, *p_draw; /* (max_B, V) */
    int *sort_idx;              /* (max_B, 2V) */
    int *seq, *pos, *tok, *out; /* (max_rows) decoder rows */
    int *mseq, *mpos, *mtok, *mout; /* (max_rows) the mix model's rows, with a mix context */
    const int *const *ctx;      /* the next generate call's mix contexts, or NULL */
    const int *ctx_len;
    int ctx_at;
    int *shift;                 /* (max_B) c_b of the current call, 0 without contexts */
    int *limit;                 /* (max_B) length at which a sequence stops */
    unsigned char *live;        /* (max_B) */
    gkd_rng *rng;               /* (max_B) */
};

void gkd_sampler_free(gkd_sampler *s) {
    if (!s) return;
    gkd_kv_cache_free(s->kv);
    gkd_kv_cache_free(s->kv_mix);
    free(s->logits);
    free(s->logits_mix);
    free(s->p);
    free(s->p_mix);
    free(s->p_draw);
    free(s->sort_idx);
    free(s->seq);
    free(s->pos);
    free(s->tok);
    free(s->out);
    free(s->mseq);
    free(s->mpos);
    free(s->mtok);
    free(s->mout);
    free(s->shift);
    free(s->limit);
    free(s->live);
    free(s->rng);
    free(s);
}

int gkd_sampler_new(gkd_sampler **out, gkd_model *model, gkd_model *mix, int max_B) {
    *out = NULL;
    if (!model || max_B <= 0)
        return gkd_error(GKD_EINVAL, "sampler: need a model and max_B > 0 (got %d)", max_B);
    if (mix && mix->config.vocab_size != model->config.vocab_size)
        return gkd_error(GKD_EMISMATCH, "sampler: mix model vocabulary %d differs from the model's %d",
                         mix->config.vocab_size, model->config.vocab_size);
    gkd_sampler *s = calloc(1, sizeof *s);
    if (!s) return gkd_error(GKD_ENOMEM, "sampler: out of memory");
    s->model = model;
    s->mix = mix;
    s->max_B = max_B;
    s->V = model->config.vocab_size;
    int maxT = model->config.max_seq_len;
    if (mix && mix->config.max_seq_len > maxT) maxT = mix->config.max_seq_len;
    s->max_rows = max_B * maxT;
    size_t BV = (size_t)max_B * s->V;
    int rc = gkd_kv_cache_new(&s->kv, model, max_B);
    if (!rc && mix) rc = gkd_kv_cache_new(&s->kv_mix, mix, max_B);
    if (rc) {
        gkd_sampler_free(s);
        return rc;
    }
    s->logits = malloc(BV * sizeof(float));
    s->logits_mix = malloc(BV * sizeof(float));
    s->p = malloc(BV * sizeof(double));
    s->p_mix = malloc(BV * sizeof(double));
    s->p_draw = malloc(BV * sizeof(double));
    s->sort_idx = malloc(2 * BV * sizeof(int));
    s->seq = malloc((size_t)s->max_rows * sizeof(int));
    s->pos = malloc((size_t)s->max_rows * sizeof(int));
    s->tok = malloc((size_t)s->max_rows * sizeof(int));
    s->out = malloc((size_t)s->max_rows * sizeof(int));
    if (mix) {
        s->mseq = malloc((size_t)s->max_rows * sizeof(int));
        s->mpos = malloc((size_t)s->max_rows * sizeof(int));
        s->mtok = malloc((size_t)s->max_rows * sizeof(int));
        s->mout = malloc((size_t)s->max_rows * sizeof(int));
    }
    s->shift = malloc((size_t)max_B * sizeof(int));
    s->limit = malloc((size_t)max_B * sizeof(int));
    s->live = malloc((size_t)max_B);
    s->rng = malloc((size_t)max_B * sizeof(gkd_rng));
    if (!s->logits || !s->logits_mix || !s->p || !s->p_mix || !s->p_draw || !s->sort_idx ||
        !s->seq || !s->pos || !s->tok || !s->out || !s->limit || !s->live || !s->rng || !s->shift ||
        (mix && (!s->mseq || !s->mpos || !s->mtok || !s->mout))) {
        gkd_sampler_free(s);
        return gkd_error(GKD_ENOMEM, "sampler: out of memory for %d sequences", max_B);
    }
    *out = s;
    return 0;
}

int gkd_sampler_set_mix_context(gkd_sampler *s, int at, const int *const *ctx, const int *ctx_len) {
    if (!s) return gkd_error(GKD_EINVAL, "sampler: NULL sampler");
    s->ctx = NULL;
    s->ctx_len = NULL;
    if (!ctx && !ctx_len) return 0;
    if (!s->mix) return gkd_error(GKD_EINVAL, "sampler: a mix context needs a mix model");
    if (!ctx || !ctx_len) return gkd_error(GKD_EINVAL, "sampler: a mix context needs both tokens and lengths");
    if (at < 0) return gkd_error(GKD_EINVAL, "sampler: mix context position %d must be >= 0", at);
    s->ctx = ctx;
    s->ctx_len = ctx_len;
    s->ctx_at = at;
    return 0;
}

/* Row b's mix context against the vocabulary and the mix model's window. */
static int check_context(const gkd_sampler *s, const gkd_seqbatch *batch, int b) {
    const int c = s->ctx_len[b], pl = batch->prompt_len[b], window = s->mix->config.max_seq_len;
    if (c < 0 || (c > 0 && !s->ctx[b]))
        return gkd_error(GKD_EINVAL, "sampler: sequence %d: mix context of %d tokens%s", b, c,
                         c < 0 ? " (must be >= 0)" : " without tokens");
    if (pl < s->ctx_at)
        return gkd_error(GKD_EINVAL, "sampler: sequence %d: prompt length %d is before the mix context's "
                                     "position %d", b, pl, s->ctx_at);
    if (pl + c > window)
        return gkd_error(GKD_EINVAL, "sampler: sequence %d: prompt (%d tokens) and mix context (%d) exceed the "
                                     "mix model's context %d", b, pl, c, window);
    for (int j = 0; j < c; j++)
        if (s->ctx[b][j] < 0 || s->ctx[b][j] >= s->V)
            return gkd_error(GKD_EINVAL, "sampler: sequence %d: mix context token %d at %d outside the vocabulary "
                                         "(V=%d)", b, s->ctx[b][j], j, s->V);
    return 0;
}

static int check_args(const gkd_sampler *s, const gkd_seqbatch *batch, const gkd_sample_options *o,
                      float mix_alpha, int use_mix, int use_ctx) {
    if (!batch || !o) return gkd_error(GKD_EINVAL, "sampler: NULL batch or options");
    if (batch->B > s->max_B)
        return gkd_error(GKD_EINVAL, "sampler: batch of %d exceeds the sampler's %d", batch->B, s->max_B);
    if (!(o->temperature >= 0.0f))
        return gkd_error(GKD_EINVAL, "sampler: temperature %g must be >= 0", (double)o->temperature);
    if (o->top_k < 0) return gkd_error(GKD_EINVAL, "sampler: top_k %d must be >= 0", o->top_k);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return gkd_error(GKD_EINVAL, "sampler: top_p %g must be in (0, 1]", (double)o->top_p);
    if (o->max_new_tokens < 0)
        return gkd_error(GKD_EINVAL, "sampler: max_new_tokens %d must be >= 0", o->max_new_tokens);
    if (o->eos_token < 0 || o->eos_token >= s->V)
        return gkd_error(GKD_EINVAL, "sampler: eos_token %d outside the vocabulary (V=%d)", o->eos_token, s->V);
    if (!(mix_alpha >= 0.0f && mix_alpha <= 1.0f))
        return gkd_error(GKD_EINVAL, "sampler: mix_alpha %g must be in [0, 1]", (double)mix_alpha);
    if (mix_alpha > 0.0f && !s->mix)
        return gkd_error(GKD_EINVAL, "sampler: mix_alpha %g needs a mix model", (double)mix_alpha);
    int maxT = s->model->config.max_seq_len;
    if (use_mix && !use_ctx && s->mix->config.max_seq_len < maxT) maxT = s->mix->config.max_seq_len;
    for (int b = 0; b < batch->B; b++) {
        int pl = batch->prompt_len[b];
        if (pl < 1 || pl > batch->cap || pl > maxT)
            return gkd_error(GKD_EINVAL, "sampler: sequence %d: prompt length %d outside 1..%d", b, pl,
                             batch->cap < maxT ? batch->cap : maxT);
        for (int t = 0; t < pl; t++) {
            int v = batch->tokens[(size_t)b * batch->cap + t];
            if (v < 0 || v >= s->V)
                return gkd_error(GKD_EINVAL, "sampler: sequence %d: token %d at %d outside the vocabulary (V=%d)",
                                 b, v, t, s->V);
        }
        if (use_ctx) {
            int rc = check_context(s, batch, b);
            if (rc) return rc;
        }
    }
    return 0;
}

/* Run the decoder rows on the model, and on the mix model if used: its own
 * nm rows with a mix context, else the model's. */
static int run_rows(gkd_sampler *s, int n, int nm, int use_mix, int use_ctx) {
    int rc = gkd_decode_rows(s->model, s->kv, n, s->seq, s->pos, s->tok, s->out, s->logits);
    if (!rc && use_mix && use_ctx)
        rc = gkd_decode_rows(s->mix, s->kv_mix, nm, s->mseq, s->mpos, s->mtok, s->mout, s->logits_mix);
    else if (!rc && use_mix)
        rc = gkd_decode_rows(s->mix, s->kv_mix, n, s->seq, s->pos, s->tok, s->out, s->logits_mix);
    return rc;
}

/* Append the mix model's row: token v at position p of sequence b. */
static void mix_row(gkd_sampler *s, int *nm, int b, int p, int v, int out) {
    s->mseq[*nm] = b;
    s->mpos[*nm] = p;
    s->mtok[*nm] = v;
    s->mout[*nm] = out;
    (*nm)++;
}

int gkd_sampler_generate(gkd_sampler *s, gkd_seqbatch *batch, const gkd_sample_options *opt,
                         float mix_alpha, uint64_t seed, const uint64_t *stream_ids, float *iw) {
    if (!s) return gkd_error(GKD_EINVAL, "sampler: NULL sampler");
    int use_mix = s->mix && mix_alpha > 0.0f;
    const int use_ctx = use_mix && s->ctx != NULL;
    int rc = check_args(s, batch, opt, mix_alpha, use_mix, use_ctx);
    /* A mix context serves one call. */
    const int *const *ctx = s->ctx;
    const int at = s->ctx_at;
    s->ctx = NULL;
    if (rc) {
        s->ctx_len = NULL;
        return rc;
    }
    const int B = batch->B, cap = batch->cap, V = s->V;
    for (int b = 0; b < B; b++) s->shift[b] = use_ctx ? s->ctx_len[b] : 0;
    s->ctx_len = NULL;
    int maxT = s->model->config.max_seq_len;
    if (use_mix && !use_ctx && s->mix->config.max_seq_len < maxT) maxT = s->mix->config.max_seq_len;

    if (iw)
        for (size_t i = 0; i < (size_t)B * cap; i++) iw[i] = 1.0f;
    int n = 0, nm = 0;
    for (int b = 0; b < B; b++) {
        int pl = batch->prompt_len[b];
        int *tok = batch->tokens + (size_t)b * cap;
        for (int t = pl; t < cap; t++) tok[t] = GKD_TOK_PAD;
        batch->len[b] = pl;
        batch->eos[b] = 0;
        int lim = pl + opt->max_new_tokens;
        if (lim > cap) lim = cap;
        if (lim > maxT) lim = maxT;
        if (use_ctx && lim > s->mix->config.max_seq_len - s->shift[b]) lim = s->mix->config.max_seq_len - s->shift[b];
        s->limit[b] = lim;
        s->live[b] = pl < lim;
        s->rng[b] = gkd_rng_derive(seed, GKD_RNG_SAMPLE, stream_ids ? stream_ids[b] : (uint64_t)b, 0);
        if (!s->live[b]) continue;
        for (int t = 0; t < pl; t++) {
            s->seq[n] = b;
            s->pos[n] = t;
            s->tok[n] = tok[t];
            s->out[n] = t == pl - 1 ? b : -1;
            n++;
        }
        if (!use_ctx) continue;
        const int c = s->shift[b];
        for (int t = 0; t < at; t++) mix_row(s, &nm, b, t, tok[t], c == 0 && t == pl - 1 ? b : -1);
        for (int j = 0; j < c; j++) mix_row(s, &nm, b, at + j, ctx[b][j], j == c - 1 && at == pl ? b : -1);
        for (int t = at; t < pl; t++) mix_row(s, &nm, b, t + c, tok[t], t == pl - 1 ? b : -1);
    }
    if (n == 0) return 0;
    rc = run_rows(s, n, nm, use_mix, use_ctx);
    if (rc) return gkd_error_wrap(rc, "sampler: prefill");

    const float alpha = mix_alpha;
    for (;;) {
        /* One token for every live sequence; each b touches only its own
         * row of every buffer, so the loop is order-free. */
#pragma omp parallel for schedule(static) if ((size_t)B * V >= 8192)
        for (int b = 0; b < B; b++) {
            if (!s->live[b]) continue;
            const float *lg = s->logits + (size_t)b * V;
            double *p = s->p + (size_t)b * V;
            int *idx = s->sort_idx + (size_t)b * 2 * V;
            int y;
            float w = 1.0f;
            if (!use_mix) {
                if (opt->temperature == 0.0f) {
                    y = gkd_sample_argmax(lg, V);
                } else {
                    gkd_sample_filter(p, lg, V, opt->temperature, opt->top_k, opt->top_p, idx);
                    y = gkd_sample_draw(p, V, &s->rng[b]);
                }
            } else {
                double *pm = s->p_mix + (size_t)b * V, *pd = s->p_draw + (size_t)b * V;
                gkd_sample_filter(p, lg, V, opt->temperature, opt->top_k, opt->top_p, idx);
                gkd_sample_filter(pm, s->logits_mix + (size_t)b * V, V, opt->temperature, opt->top_k,
                                  opt->top_p, idx);
                for (int i = 0; i < V; i++) pd[i] = (double)alpha * pm[i] + (1.0 - (double)alpha) * p[i];
                y = gkd_sample_draw(pd, V, &s->rng[b]);
                w = (float)(p[y] / pd[y]);
            }
            int *tok = batch->tokens + (size_t)b * cap;
            int t = batch->len[b];
            tok[t] = y;
            if (iw) iw[(size_t)b * cap + t] = w;
            batch->len[b] = t + 1;
            if (y == opt->eos_token) batch->eos[b] = 1;
            if (y == opt->eos_token || t + 1 >= s->limit[b]) s->live[b] = 0;
        }
        n = nm = 0;
        for (int b = 0; b < B; b++) {
            if (!s->live[b]) continue;
            int t = batch->len[b] - 1;
            s->seq[n] = b;
            s->pos[n] = t;
            s->tok[n] = batch->tokens[(size_t)b * cap + t];
            s->out[n] = b;
            n++;
            if (use_ctx) mix_row(s, &nm, b, t >= at ? t + s->shift[b] : t, s->tok[n - 1], b);
        }
        if (n == 0) break;
        rc = run_rows(s, n, nm, use_mix, use_ctx);
        if (rc) return gkd_error_wrap(rc, "sampler: decode");
    }
    return 0;
}
