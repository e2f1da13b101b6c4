/* KV-cache decode throughput: B = 16 sequences, a prompt of T/2 tokens
 * prefilled in one decoder call, then T/2 greedy steps (argmax, no EOS stop,
 * so every run does the same work). Reports generated tokens per second
 * over prefill + generation, the median of 7 runs after a warm-up. Shapes:
 * tiny and small (GPT-2) and stories15m (a Llama of llama2.c's stories15M
 * size, random weights: T = 256, so 128 prompt and 128 generated tokens).
 * Optional arguments name the shapes to run (default all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/model/decode_rows.h"
#include "../src/model/sample_filter.h"
#include "gkd/error.h"
#include "gkd/model.h"
#include "gkd/rng.h"

typedef struct {
    const char *name;
    gkd_model_config cfg;
    int B;
} shape;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Weights one token multiplies in one layer (as bench_model.c): 12 C^2 for
 * GPT-2; C (C + 2KV) + C^2 + 3 C F for Llama. */
static double layer_weights(const gkd_model_config *cfg) {
    double C = cfg->n_embd;
    if (cfg->arch != GKD_ARCH_LLAMA) return 12.0 * C * C;
    double KV = C / cfg->n_head * gkd_config_kv_heads(cfg), F = gkd_config_ffn_dim(cfg);
    return C * (C + 2.0 * KV) + C * C + 3.0 * C * F;
}

/* Useful FLOPs of one rollout: every prompt and generated token but the
 * last goes once through the layers (layer_weights multiply-adds per
 * layer, plus attention over its prefix: 2 (t + 1) C per layer), except
 * that a prompt token other than the last needs only the QKV product of
 * the last layer for its keys and values (3 C^2 for GPT-2, C (C + 2KV)
 * for Llama); B rows per step and the prefill's last rows go through the
 * LM head (C V). */
static double rollout_flops(const gkd_model_config *cfg, int B, int P, int G) {
    double L = cfg->n_layer, C = cfg->n_embd, V = cfg->vocab_size, f = 0.0;
    double qkv = cfg->arch != GKD_ARCH_LLAMA ? 3.0 * C * C
                                            : C * (C + 2.0 * C / cfg->n_head * gkd_config_kv_heads(cfg));
    for (int t = 0; t < P + G - 1; t++) {
        double layer = layer_weights(cfg) + 2.0 * (t + 1) * C;
        f += B * 2.0 * (t < P - 1 ? (L - 1) * layer + qkv : L * layer);
    }
    return f + B * (double)G * 2.0 * C * V;
}

/* One rollout; returns seconds (negative on error). */
static double run_once(gkd_model *m, gkd_kv_cache *c, int B, const int *prompt, int P, int G,
                       int *seq, int *pos, int *tok, int *out, float *logits, int *next) {
    const int V = m->config.vocab_size;
    double t0 = now();
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) {
            seq[n] = b;
            pos[n] = t;
            tok[n] = prompt[b * P + t];
            out[n] = t == P - 1 ? b : -1;
            n++;
        }
    if (gkd_decode_rows(m, c, n, seq, pos, tok, out, logits)) return -1;
    for (int g = 0; g < G; g++) {
        for (int b = 0; b < B; b++) {
            next[b] = gkd_sample_argmax(logits + (size_t)b * V, V);
            pos[b] = P + g;
        }
        if (g == G - 1) break; /* the last token needs no further step */
        if (gkd_model_decode_step(m, c, next, pos, NULL, B, logits)) return -1;
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    const shape shapes[3] = {
        {"tiny", {.vocab_size = 64, .max_seq_len = 64, .n_layer = 4, .n_embd = 128, .n_head = 4}, 16},
        {"small", {.vocab_size = 256, .max_seq_len = 128, .n_layer = 6, .n_embd = 256, .n_head = 8}, 16},
        /* llama2.c's stories15M: random weights, tied head, interleaved RoPE */
        {"stories15m",
         {.vocab_size = 32000, .max_seq_len = 256, .n_layer = 6, .n_embd = 288, .n_head = 6,
          .arch = GKD_ARCH_LLAMA, .n_kv_head = 6, .ffn_dim = 768, .untied_head = 0,
          .rope_style = GKD_ROPE_INTERLEAVED, .norm_eps = 1e-5f, .rope_theta = 10000.0f},
         16},
    };
    for (int s = 0; s < 3; s++) {
        const shape *sh = &shapes[s];
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], sh->name) == 0;
        if (!wanted) continue;
        gkd_model *m = NULL;
        gkd_kv_cache *c = NULL;
        if (gkd_model_new(&m, &sh->cfg) || gkd_kv_cache_new(&c, m, sh->B)) {
            fprintf(stderr, "bench_decode: %s\n", gkd_last_error());
            return 1;
        }
        gkd_model_init_weights(m, 1);
        const int B = sh->B, T = sh->cfg.max_seq_len, P = T / 2, G = T / 2;
        int *prompt = malloc(sizeof(int) * B * P), *seq = malloc(sizeof(int) * B * P),
            *pos = malloc(sizeof(int) * B * P), *tok = malloc(sizeof(int) * B * P),
            *out = malloc(sizeof(int) * B * P), *next = malloc(sizeof(int) * B);
        float *logits = malloc(sizeof(float) * B * sh->cfg.vocab_size);
        gkd_rng r = gkd_rng_derive(1, GKD_RNG_DATA, 0, 0);
        for (int i = 0; i < B * P; i++)
            prompt[i] = (int)gkd_rng_below(&r, (uint32_t)sh->cfg.vocab_size);
        enum { RUNS = 7 };
        double times[RUNS];
        /* Warm-up: at least two rollouts and one second, as the peer. */
        double w0 = now();
        for (int warm = 0; warm < 2 || now() - w0 < 1.0; warm++)
            if (run_once(m, c, B, prompt, P, G, seq, pos, tok, out, logits, next) < 0) {
                fprintf(stderr, "bench_decode: %s\n", gkd_last_error());
                return 1;
            }
        for (int k = 0; k < RUNS; k++) {
            times[k] = run_once(m, c, B, prompt, P, G, seq, pos, tok, out, logits, next);
            if (times[k] < 0) {
                fprintf(stderr, "bench_decode: %s\n", gkd_last_error());
                return 1;
            }
        }
        qsort(times, RUNS, sizeof(double), cmp_double);
        double med = times[RUNS / 2];
        printf("bench decode %s tokens_per_s=%.0f ms_per_rollout=%.2f gflops=%.1f B=%d prompt=%d "
               "generate=%d\n",
               sh->name, B * G / med, 1e3 * med, rollout_flops(&sh->cfg, B, P, G) / med * 1e-9, B, P,
               G);
        free(prompt);
        free(seq);
        free(pos);
        free(tok);
        free(out);
        free(next);
        free(logits);
        gkd_kv_cache_free(c);
        gkd_model_free(m);
    }
    return 0;
}
