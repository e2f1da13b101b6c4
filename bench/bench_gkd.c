/* One full GKD step with random-init models: student rollouts for B = 16
 * prompts (KV cache, temperature 1), teacher scoring (one forward, no grad),
 * student forward and backward with jsd(0.5), clip and AdamW — the parts of
 * gkd_distill_step, driven through src/distill/distill_step.h with the prompts
 * written directly into the batch. EOS is made impossible for the student
 * (a constant channel after the final LayerNorm times a large negative EOS
 * embedding entry), so every rollout generates exactly G tokens and every
 * run does the same work. Prints generated tokens/s (median over steps) and
 * the share of time per phase, in the format of bench/peer_torch_gkd.py;
 * best_tokens_per_s is the fastest step (the least disturbed on a shared
 * machine) and gflops the useful FLOP rate at the median.
 *
 * What bounds it: a step is matmul work (teacher forward + about four
 * student forwards), so tokens/s <= peak FLOP/s * B * G / step FLOPs.
 * `make bench` prints that bound as ratios to the peer at two rates
 * measured in the same run: OpenBLAS's sgemm and the CPU's vector
 * multiply-add peak (bench/ratios.awk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/distill/distill_step.h"
#include "../src/util/clock.h"
#include "gkd/error.h"
#include "gkd/rng.h"

typedef struct {
    const char *name;
    int V, maxT;
    int tL, tC, tNH; /* teacher */
    int sL, sC, sNH; /* student */
    int B, P, G;     /* batch, prompt tokens (BOS .. SEP), generated tokens */
    int steps;
} shape;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Forward FLOPs of a (B, T) batch: matmuls (QKV, projection, MLP: 12 C^2
 * per token and layer; LM head C V) and causal attention (QK^T and AV). */
static double forward_flops(int L, int C, int V, int B, int T) {
    return 2.0 * B * T * (12.0 * L * C * C + (double)C * V) + 2.0 * L * B * (double)T * T * C;
}

static gkd_model *random_model(int V, int maxT, int L, int C, int NH, uint64_t seed) {
    gkd_model_config cfg = {.vocab_size = V, .max_seq_len = maxT, .n_layer = L, .n_embd = C, .n_head = NH};
    gkd_model *m = NULL;
    if (gkd_model_new(&m, &cfg)) return NULL;
    gkd_model_init_weights(m, seed);
    return m;
}

/* h_0 = lnfb[0] = 1 for every position, and wte[EOS][0] = -100: the EOS
 * logit is about -100 below the others. */
static void forbid_eos(gkd_model *m) {
    const int C = m->config.n_embd;
    m->params[GKD_GPT2_LNFW][0] = 0.0f;
    m->params[GKD_GPT2_LNFB][0] = 1.0f;
    m->params[GKD_GPT2_WTE][(size_t)GKD_TOK_EOS * C] = -100.0f;
}

/* Row b := BOS, P-2 random non-special tokens, SEP. */
static void write_prompts(gkd_seqbatch *bt, int P, int V, long step) {
    gkd_rng r = gkd_rng_derive(7, GKD_RNG_DATA, (uint64_t)step, 0);
    for (int b = 0; b < bt->B; b++) {
        int *tok = bt->tokens + (size_t)b * bt->cap;
        for (int t = 0; t < bt->cap; t++) tok[t] = GKD_TOK_PAD;
        tok[0] = GKD_TOK_BOS;
        for (int t = 1; t < P - 1; t++) tok[t] = GKD_TOK_NSPECIAL + (int)gkd_rng_below(&r, (uint32_t)(V - GKD_TOK_NSPECIAL));
        tok[P - 1] = GKD_TOK_SEP;
        bt->prompt_len[b] = P;
        bt->len[b] = P;
        bt->eos[b] = 0;
    }
}

static int run_shape(const shape *sh) {
    int rc = 1;
    gkd_model *teacher = random_model(sh->V, sh->maxT, sh->tL, sh->tC, sh->tNH, 1);
    gkd_model *student = random_model(sh->V, sh->maxT, sh->sL, sh->sC, sh->sNH, 2);
    gkd_task *task = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_distill_state s;
    int have_state = 0;
    double *tps = calloc((size_t)sh->steps, sizeof(double));
    uint64_t *streams = calloc((size_t)sh->B, sizeof(uint64_t));
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.train = 100;
    tc.eval = 10;
    if (!teacher || !student || !tps || !streams) goto done;
    forbid_eos(student);
    /* The task only satisfies the state's checks; the prompts are synthetic. */
    if (gkd_task_new(&task, &tc) || gkd_task_tokenizer(task, &tok)) goto done;
    gkd_distill_options o = GKD_DISTILL_OPTIONS_INIT;
    o.batch = sh->B;
    o.steps = sh->steps + 1;
    o.lr = 1e-4;
    o.schedule.lambda = 1.0;
    o.sample.max_new_tokens = sh->G;
    if (gkd_divergence_parse(&o.divergence, "jsd(0.5)")) goto done;
    if (gkd_distill_state_init(&s, student, teacher, tok, task, &o)) goto done;
    have_state = 1;
    double phase[4] = {0, 0, 0, 0};
    long generated = 0;
    for (long step = 0; step <= sh->steps; step++) { /* step 0 warms up */
        gkd_step_stats st = {0};
        double t0 = gkd_now();
        write_prompts(&s.batch, sh->P, sh->V, step);
        for (int b = 0; b < sh->B; b++) streams[b] = (uint64_t)step * sh->B + b;
        if (gkd_sampler_generate(s.student_sampler, &s.batch, &o.sample, 0.0f, o.seed, streams, NULL)) goto done;
        gkd_distill_layout(&s, &st);
        double t1 = gkd_now();
        if (gkd_distill_loss_grad(&s, step + 1, &st) || gkd_distill_update(&s, step + 1, &st)) goto done;
        double t2 = gkd_now();
        long gen = 0;
        for (int b = 0; b < sh->B; b++) gen += s.batch.len[b] - s.batch.prompt_len[b];
        if (gen != (long)sh->B * sh->G) {
            fprintf(stderr, "bench_gkd %s: %ld tokens generated, expected %d\n", sh->name, gen, sh->B * sh->G);
            goto done;
        }
        if (step == 0) continue;
        tps[step - 1] = gen / (t2 - t0);
        generated += gen;
        phase[0] += t1 - t0;
        phase[1] += st.time_teacher;
        phase[2] += st.time_student;
        phase[3] += st.time_update;
    }
    qsort(tps, (size_t)sh->steps, sizeof(double), cmp_double);
    double total = phase[0] + phase[1] + phase[2] + phase[3];
    /* Useful work of a step: teacher forward, student rollout (about one
     * forward) and student forward + backward (three). */
    const int T = sh->P + sh->G;
    double flops = forward_flops(sh->tL, sh->tC, sh->V, sh->B, T) + 4 * forward_flops(sh->sL, sh->sC, sh->V, sh->B, T);
    printf("bench gkd %s tokens_per_s=%.0f best_tokens_per_s=%.0f step_ms=%.2f gflops=%.1f sample=%.1f%% "
           "teacher=%.1f%% student_fwdbwd=%.1f%% update=%.1f%% generated=%ld\n",
           sh->name, tps[sh->steps / 2], tps[sh->steps - 1], 1e3 * total / sh->steps,
           1e-9 * flops * tps[sh->steps / 2] / ((double)sh->B * sh->G), 100 * phase[0] / total,
           100 * phase[1] / total, 100 * phase[2] / total, 100 * phase[3] / total, generated / sh->steps);
    rc = 0;
done:
    if (rc) fprintf(stderr, "bench_gkd %s: %s\n", sh->name, gkd_last_error());
    if (have_state) gkd_distill_state_free(&s);
    gkd_model_free(teacher);
    gkd_model_free(student);
    gkd_tokenizer_free(tok);
    gkd_task_free(task);
    free(tps);
    free(streams);
    return rc;
}

int main(void) {
    const shape shapes[2] = {
        {"tiny", 64, 64, 4, 128, 4, 2, 64, 2, 16, 16, 48, 20},
        {"small", 256, 128, 6, 256, 8, 4, 128, 4, 16, 32, 96, 6},
    };
    for (int i = 0; i < 2; i++)
        if (run_shape(&shapes[i])) return 1;
    return 0;
}
