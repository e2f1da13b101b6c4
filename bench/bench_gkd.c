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
 * multiply-add peak (bench/ratios.awk).
 *
 * Shapes: tiny and small distil a GPT-2 student from a larger GPT-2
 * teacher. stories15m is a Llama of llama2.c's stories15M size on both
 * sides (vocabulary 32000, context 256, 6 layers x 288 channels, 6 heads,
 * SwiGLU width 768, tied head, interleaved RoPE; random weights, teacher
 * seed 1, student seed 2), B = 4, a 32-token prompt and 224 generated
 * tokens (T = 256). `bench_gkd [--batch B] [--steps N] [SHAPE...]` runs
 * some shapes, with another batch or step count.
 *
 * Memory (issue 14): peak_rss_mib is the process's peak resident memory
 * so far (getrusage), so run one shape alone to read it. At B = 16,
 * T = 256, V = 32000, one step of the stories15m shape,
 *   /usr/bin/time -v build/bench/bench_gkd --batch 16 --steps 1 stories15m
 * printed "Maximum resident set size (kbytes): 3560284" (3477 MiB, as
 * peak_rss_mib; at B = 4 1234 MiB, so about 187 MiB per sequence). 1500
 * MiB of it were three (B, T, V) float arrays of 500 MiB: the teacher's
 * logits, the student's logits and dL/dlogits; the rest is the two
 * models' activations (the teacher's forward caches them too),
 * parameters, gradients, Adam moments and the sampler's KV caches.
 * The PyTorch peer in the same setting (peer_torch_gkd.py --batch 16
 * --steps 1 stories15m) peaked at 8151 MiB. Since, the teacher's head
 * runs a chunk of rows (64 MiB of logits) at a time and its logits are
 * never held whole.
 *
 * v50k-dense and v50k-topk64 (run only when named, each in its own
 * process: `bench_gkd v50k-dense`) are one step of the stories15m shape at
 * GPT-2's vocabulary, V = 50257, B = 16, T = 256, the teacher dense and
 * as its top-64 rows: peak_rss_mib 3801 and 3803 (4522 and 4524 while the
 * teacher's (B, T, V) logits, 785 MiB, were held); the PyTorch peer's
 * dense step (peer_torch_gkd.py v50k-dense) peaked at 11832 MiB.
 * docs/divergences.md, "In a distillation". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../src/distill/distill_step.h"
#include "../src/util/clock.h"
#include "gkd/error.h"
#include "gkd/parse.h"
#include "gkd/rng.h"

typedef struct {
    const char *name;
    gkd_model_config teacher, student;
    int B, P, G; /* batch, prompt tokens (BOS .. SEP), generated tokens */
    int steps;
    int teacher_topk; /* distill.teacher_topk: 0 = the dense teacher */
    /* Run only when named: its peak_rss_mib is the figure, and the peak of
     * a process is that of everything it ran before. */
    int alone;
} shape;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Weights one token multiplies in one layer (as bench_model.c): 12 C^2 for
 * GPT-2 (QKV, projection, MLP); C (C + 2KV) + C^2 + 3 C F for Llama (QKV,
 * output, gate and up, down). */
static double layer_weights(const gkd_model_config *cfg) {
    double C = cfg->n_embd;
    if (cfg->arch != GKD_ARCH_LLAMA) return 12.0 * C * C;
    double KV = C / cfg->n_head * gkd_config_kv_heads(cfg), F = gkd_config_ffn_dim(cfg);
    return C * (C + 2.0 * KV) + C * C + 3.0 * C * F;
}

/* Forward FLOPs of a (B, T) batch: matmuls (layer weights per token and
 * layer; LM head C V) and causal attention (QK^T and AV). */
static double forward_flops(const gkd_model_config *cfg, int B, int T) {
    double L = cfg->n_layer, C = cfg->n_embd, V = cfg->vocab_size;
    return 2.0 * B * T * (L * layer_weights(cfg) + C * V) + 2.0 * L * B * (double)T * T * C;
}

static gkd_model *random_model(const gkd_model_config *cfg, uint64_t seed) {
    gkd_model *m = NULL;
    if (gkd_model_new(&m, cfg)) return NULL;
    gkd_model_init_weights(m, seed);
    return m;
}

/* GPT-2: h_0 = lnfb[0] = 1 for every position, and wte[EOS][0] = -100:
 * the EOS logit is about -100 below the others.
 * Llama has no bias after its final RMSNorm, so channel 0 of the residual
 * stream is made constant instead: wte[v][0] = 1 for every token, and row 0
 * of every layer's wo and wdown zero, so no block writes to it. After the
 * final RMSNorm it is 1 / rms(x) > 0, which adds the same amount to every
 * logit but EOS's, whose head entry wte[EOS][0] = -100 (EOS is never an
 * input, so its embedding does not matter otherwise). */
static void forbid_eos(gkd_model *m) {
    const int C = m->config.n_embd;
    if (m->config.arch != GKD_ARCH_LLAMA) {
        m->params[GKD_GPT2_LNFW][0] = 0.0f;
        m->params[GKD_GPT2_LNFB][0] = 1.0f;
        m->params[GKD_GPT2_WTE][(size_t)GKD_TOK_EOS * C] = -100.0f;
        return;
    }
    const int F = gkd_config_ffn_dim(&m->config);
    for (int v = 0; v < m->config.vocab_size; v++) m->params[GKD_LLAMA_WTE][(size_t)v * C] = 1.0f;
    m->params[GKD_LLAMA_WTE][(size_t)GKD_TOK_EOS * C] = -100.0f;
    for (int l = 0; l < m->config.n_layer; l++) {
        memset(gkd_model_slice(m, GKD_LLAMA_WO, l), 0, sizeof(float) * C);
        memset(gkd_model_slice(m, GKD_LLAMA_WDOWN, l), 0, sizeof(float) * F);
    }
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
    const int V = sh->student.vocab_size;
    gkd_model *teacher = random_model(&sh->teacher, 1);
    gkd_model *student = random_model(&sh->student, 2);
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
    o.teacher_topk = sh->teacher_topk;
    if (gkd_divergence_parse(&o.divergence, "jsd(0.5)")) goto done;
    if (gkd_distill_state_init(&s, student, teacher, tok, task, &o)) goto done;
    have_state = 1;
    double phase[4] = {0, 0, 0, 0};
    long generated = 0;
    for (long step = 0; step <= sh->steps; step++) { /* step 0 warms up */
        gkd_step_stats st = {0};
        double t0 = gkd_now();
        write_prompts(&s.batch, sh->P, V, step);
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
    double flops = forward_flops(&sh->teacher, sh->B, T) + 4 * forward_flops(&sh->student, sh->B, T);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench gkd %s tokens_per_s=%.0f best_tokens_per_s=%.0f step_ms=%.2f gflops=%.1f sample=%.1f%% "
           "teacher=%.1f%% student_fwdbwd=%.1f%% update=%.1f%% generated=%ld B=%d T=%d V=%d teacher_topk=%d peak_rss_mib=%.0f\n",
           sh->name, tps[sh->steps / 2], tps[sh->steps - 1], 1e3 * total / sh->steps,
           1e-9 * flops * tps[sh->steps / 2] / ((double)sh->B * sh->G), 100 * phase[0] / total,
           100 * phase[1] / total, 100 * phase[2] / total, 100 * phase[3] / total, generated / sh->steps, sh->B,
           T, V, sh->teacher_topk, ru.ru_maxrss / 1024.0);
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

#define GPT2(V, maxT, L, C, NH) {.vocab_size = V, .max_seq_len = maxT, .n_layer = L, .n_embd = C, .n_head = NH}
/* llama2.c's stories15M (random weights): tied head, interleaved RoPE;
 * its vocabulary is 32000 */
#define STORIES15M_V(V)                                                                                  \
    {.vocab_size = V, .max_seq_len = 256, .n_layer = 6, .n_embd = 288, .n_head = 6,                      \
     .arch = GKD_ARCH_LLAMA, .n_kv_head = 6, .ffn_dim = 768, .untied_head = 0,                           \
     .rope_style = GKD_ROPE_INTERLEAVED, .norm_eps = 1e-5f, .rope_theta = 10000.0f}
#define STORIES15M STORIES15M_V(32000)
/* GPT-2's vocabulary, for the memory cases */
#define V_GPT2 50257

/* bench_gkd [--batch B] [--steps N] [SHAPE...]: the shapes named (default
 * all), with their batch and step count unless given. */
int main(int argc, char **argv) {
    shape shapes[] = {
        {"tiny", GPT2(64, 64, 4, 128, 4), GPT2(64, 64, 2, 64, 2), 16, 16, 48, 20, 0, 0},
        {"small", GPT2(256, 128, 6, 256, 8), GPT2(256, 128, 4, 128, 4), 16, 32, 96, 6, 0, 0},
        /* teacher and student both of stories15M's shape (seeds 1 and 2) */
        {"stories15m", STORIES15M, STORIES15M, 4, 32, 224, 3, 0, 0},
        /* Peak memory of one step at GPT-2's vocabulary, B = 16, T = 256:
         * the teacher dense and as its top-64 rows, one process each. */
        {"v50k-dense", STORIES15M_V(V_GPT2), STORIES15M_V(V_GPT2), 16, 32, 224, 1, 0, 1},
        {"v50k-topk64", STORIES15M_V(V_GPT2), STORIES15M_V(V_GPT2), 16, 32, 224, 1, 64, 1},
    };
    const int n = (int)(sizeof(shapes) / sizeof(shapes[0]));
    int batch = 0, steps = 0, named = 0;
    for (int a = 1; a < argc; a++) {
        if ((strcmp(argv[a], "--batch") == 0 || strcmp(argv[a], "--steps") == 0) && a + 1 < argc) {
            long v;
            if (gkd_parse_long(&v, argv[a + 1], 1, 4096, argv[a])) {
                fprintf(stderr, "bench_gkd: %s\n", gkd_last_error());
                return 2;
            }
            *(argv[a][2] == 'b' ? &batch : &steps) = (int)v;
            a++;
            continue;
        }
        int found = 0;
        for (int i = 0; i < n; i++) found |= strcmp(argv[a], shapes[i].name) == 0;
        if (!found) {
            fprintf(stderr, "usage: bench_gkd [--batch B] [--steps N] "
                            "[tiny|small|stories15m|v50k-dense|v50k-topk64 ...]\n");
            return 2;
        }
        named = 1;
    }
    for (int i = 0; i < n; i++) {
        int wanted = !named && !shapes[i].alone;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], shapes[i].name) == 0;
        if (!wanted) continue;
        if (batch) shapes[i].B = batch;
        if (steps) shapes[i].steps = steps;
        if (run_shape(&shapes[i])) return 1;
    }
    return 0;
}
