/* Context distillation: the teacher scores and generates the batch's
 * sequences with each example's context after BOS, the student sees them
 * plain (docs/distillation.md, "Context distillation").
 *
 * Alignment: the teacher's row of sequence b is the student's row with c_b
 * context tokens inserted after BOS, so the token at student position
 * t >= 1 is at teacher position t + c_b, and the teacher's distribution for
 * student position t (the next token after t) is its row t + c_b. Those rows
 * are contiguous per sequence, so the teacher's head runs on them directly.
 *
 * Shapes: B rows, T the student's step length, Tt = max_b (len_b + c_b) the
 * teacher's, V the vocabulary. */
#include "distill_step.h"

#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

void gkd_teacher_view_free(gkd_distill_state *s) {
    free(s->ctx_tokens);
    free(s->ctx_off);
    free(s->ctx_n);
    free(s->tv_tokens);
    free(s->tv_shift);
    free(s->tv_logits);
    free(s->mix_ctx);
    free(s->mix_ctx_n);
    gkd_seqbatch_free(&s->tv_batch);
}

/* 1 if every train example has the same context tokens. */
static int one_context(const gkd_distill_state *s, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (s->ctx_n[i] != s->ctx_n[0] ||
            memcmp(s->ctx_tokens + s->ctx_off[i], s->ctx_tokens, sizeof(int) * (size_t)s->ctx_n[0]))
            return 0;
    return 1;
}

/* Every train example's context, prompt and longest sequence fit the
 * teacher's window: its reference, or a rollout of max_new_tokens (at most
 * to the student's context). */
static int check_window(gkd_distill_state *s, size_t n, int *ids) {
    const int cap = s->student->config.max_seq_len, window = s->teacher->config.max_seq_len;
    for (size_t i = 0; i < n; i++) {
        int pl = 0, len = 0, rc = gkd_task_encode_example(s->task, s->tok, GKD_SPLIT_TRAIN, i, ids, cap, &pl, &len);
        if (rc) return rc;
        int rollout = pl + s->o.sample.max_new_tokens;
        if (rollout > cap) rollout = cap;
        const int longest = len > rollout ? len : rollout;
        if (s->ctx_n[i] + longest > window)
            return gkd_task_example_error(
                s->task, GKD_SPLIT_TRAIN, i,
                gkd_error(GKD_EINVAL,
                          "its context (%d tokens) and sequences of up to %d tokens take %d; the teacher's context "
                          "is %d",
                          s->ctx_n[i], longest, s->ctx_n[i] + longest, window));
    }
    return 0;
}

int gkd_teacher_view_init(gkd_distill_state *s) {
    if (!s->teacher || !gkd_task_has_context(s->task)) return 0;
    const gkd_distill_options *o = &s->o;
    if (o->teacher_cache)
        return gkd_error(GKD_EINVAL, "distill: a teacher cache holds rows scored without contexts; the task "
                                     "has contexts, so run without teacher_cache");
    const size_t n = gkd_task_size(s->task, GKD_SPLIT_TRAIN);
    const int B = o->batch, cap = s->student->config.max_seq_len, window = s->teacher->config.max_seq_len;
    const int V = s->student->config.vocab_size;
    int *ids = malloc(sizeof(int) * (size_t)window);
    s->ctx_off = calloc(n + 1, sizeof *s->ctx_off);
    s->ctx_n = calloc(n ? n : 1, sizeof *s->ctx_n);
    s->tv_tokens = calloc((size_t)B * window, sizeof(int));
    s->tv_shift = calloc(B, sizeof(int));
    if (!ids || !s->ctx_off || !s->ctx_n || !s->tv_tokens || !s->tv_shift) {
        free(ids);
        return gkd_error(GKD_ENOMEM, "distill: out of memory for the teacher's contexts");
    }
    int rc = 0;
    size_t total = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if ((rc = gkd_task_encode_context(s->task, s->tok, GKD_SPLIT_TRAIN, i, ids, window, &s->ctx_n[i]))) break;
        s->ctx_off[i] = total;
        total += (size_t)s->ctx_n[i];
        int *grown = realloc(s->ctx_tokens, sizeof(int) * (total ? total : 1));
        if (!grown) { rc = gkd_error(GKD_ENOMEM, "distill: out of memory for the teacher's contexts"); break; }
        s->ctx_tokens = grown;
        memcpy(s->ctx_tokens + s->ctx_off[i], ids, sizeof(int) * (size_t)s->ctx_n[i]);
    }
    if (!rc) rc = check_window(s, n, ids);
    free(ids);
    if (rc) return gkd_error_wrap(rc, "distill: teacher context");
    /* A replayed sequence's example is not kept: its context must not matter. */
    if (o->schedule.replay != GKD_REPLAY_OFF && !one_context(s, n))
        return gkd_error(GKD_EINVAL, "distill: replay with contexts that differ per example is not supported "
                                     "(a replayed sequence's example is not kept); set replay off");
    if ((rc = gkd_seqbatch_new(&s->tv_batch, B, window))) return rc;
    if (o->schedule.teacher_mix > 0 &&
        (!(s->mix_ctx = calloc(B, sizeof *s->mix_ctx)) || !(s->mix_ctx_n = calloc(B, sizeof *s->mix_ctx_n))))
        return gkd_error(GKD_ENOMEM, "distill: out of memory for the mixed rollouts' contexts");
    /* The whole teacher logits are aligned into a buffer of their own when
     * they are held (OpenBLAS products, pg_rkl). */
    if (!(s->tv_logits = malloc(sizeof(float) * (size_t)B * cap * (size_t)V)))
        return gkd_error(GKD_ENOMEM, "distill: out of memory for the teacher's aligned logits");
    return 0;
}

int gkd_teacher_view_tokens(gkd_distill_state *s) {
    const gkd_batch_layout *l = &s->layout;
    const int B = l->B, T = l->T, head = gkd_tokenizer_bos(s->tok) >= 0;
    const int window = s->teacher->config.max_seq_len;
    int Tt = 1;
    for (int b = 0; b < B; b++) {
        s->tv_shift[b] = s->ctx_n[s->examples[b]];
        const int need = s->batch.len[b] + s->tv_shift[b];
        if (need > window)
            return gkd_error(GKD_EINVAL, "teacher context: row %d's context and sequence take %d tokens, more than "
                                         "the teacher's %d", b, need, window);
        if (need > Tt) Tt = need;
    }
    s->tv_T = Tt;
    for (int b = 0; b < B; b++) {
        const int c = s->tv_shift[b], len = s->batch.len[b];
        const int *src = l->tokens + (size_t)b * T;
        int *dst = s->tv_tokens + (size_t)b * Tt;
        for (int t = 0; t < Tt; t++) dst[t] = GKD_TOK_PAD;
        memcpy(dst, src, sizeof(int) * (size_t)head);
        memcpy(dst + head, s->ctx_tokens + s->ctx_off[s->examples[b]], sizeof(int) * (size_t)c);
        if (len > head) memcpy(dst + head + c, src + head, sizeof(int) * (size_t)(len - head));
    }
    return 0;
}

int gkd_teacher_view_logit_rows(gkd_distill_state *s, int r0, int n, float *out) {
    const int T = s->layout.T, Tt = s->tv_T;
    const size_t V = (size_t)s->student->config.vocab_size;
    for (int j = r0; j < r0 + n;) {
        const int b = j / T, t = j % T, c = s->tv_shift[b];
        int seg = T - t < r0 + n - j ? T - t : r0 + n - j;
        int valid = Tt - c - t < seg ? Tt - c - t : seg;
        if (valid < 0) valid = 0;
        float *dst = out + (size_t)(j - r0) * V;
        if (valid) {
            int rc = gkd_model_logits_rows(s->teacher, b * Tt + c + t, valid, dst);
            if (rc) return rc;
        }
        memset(dst + (size_t)valid * V, 0, sizeof(float) * V * (size_t)(seg - valid));
        j += seg;
    }
    return 0;
}

const float *gkd_teacher_view_gather(gkd_distill_state *s) {
    const int B = s->layout.B, T = s->layout.T, Tt = s->tv_T;
    const size_t V = (size_t)s->student->config.vocab_size;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *dst = s->tv_logits + ((size_t)b * T + t) * V;
            const int tt = t + s->tv_shift[b];
            if (tt < Tt) memcpy(dst, s->teacher->logits + ((size_t)b * Tt + tt) * V, sizeof(float) * V);
            else memset(dst, 0, sizeof(float) * V);
        }
    return s->tv_logits;
}

int gkd_teacher_view_generate(gkd_distill_state *s, const int *rows, int n, const uint64_t *streams) {
    gkd_seqbatch *tb = &s->tv_batch, *sb = &s->batch;
    const int head = gkd_tokenizer_bos(s->tok) >= 0;
    for (int j = 0; j < n; j++) {
        const int r = rows[j];
        const size_t ex = s->examples[r];
        const int c = s->ctx_n[ex], pl = sb->prompt_len[r];
        const int *src = sb->tokens + (size_t)r * sb->cap;
        int *dst = tb->tokens + (size_t)j * tb->cap;
        for (int t = 0; t < tb->cap; t++) dst[t] = GKD_TOK_PAD;
        memcpy(dst, src, sizeof(int) * (size_t)head);
        memcpy(dst + head, s->ctx_tokens + s->ctx_off[ex], sizeof(int) * (size_t)c);
        memcpy(dst + head + c, src + head, sizeof(int) * (size_t)(pl - head));
        tb->prompt_len[j] = pl + c;
        tb->len[j] = pl + c;
        tb->eos[j] = 0;
    }
    gkd_seqbatch sub = *tb;
    sub.B = n;
    /* The continuation must fit the student's row as well as the teacher's. */
    gkd_sample_options so = s->o.sample;
    int rc = gkd_sampler_generate(s->teacher_sampler, &sub, &so, 0, s->o.seed, streams, NULL);
    if (rc) return gkd_error_wrap(rc, "rollouts");
    for (int j = 0; j < n; j++) {
        const int r = rows[j], c = s->ctx_n[s->examples[r]];
        const int *src = tb->tokens + (size_t)j * tb->cap;
        int *dst = sb->tokens + (size_t)r * sb->cap;
        int len = sub.len[j] - c, eos = sub.eos[j];
        if (len > sb->cap) len = sb->cap, eos = 0;
        for (int t = 0; t < sb->cap; t++) dst[t] = GKD_TOK_PAD;
        memcpy(dst, src, sizeof(int) * (size_t)head);
        memcpy(dst + head, src + head + c, sizeof(int) * (size_t)(len - head));
        sb->len[r] = len;
        sb->eos[r] = (unsigned char)(eos && dst[len - 1] == s->o.sample.eos_token);
    }
    return 0;
}

int gkd_teacher_view_mix_context(gkd_distill_state *s, const int *rows, int n) {
    for (int j = 0; j < n; j++) {
        const size_t ex = s->examples[rows[j]];
        s->mix_ctx[j] = s->ctx_tokens + s->ctx_off[ex];
        s->mix_ctx_n[j] = s->ctx_n[ex];
    }
    const int at = gkd_tokenizer_bos(s->tok) >= 0;
    return gkd_sampler_set_mix_context(s->mixed_sampler, at, s->mix_ctx, s->mix_ctx_n);
}
