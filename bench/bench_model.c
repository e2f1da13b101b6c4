/* Model throughput: forward and forward+backward tokens/s and achieved
 * GFLOP/s for three shapes (two GPT-2 and a Llama of stories15M's size),
 * next to the OpenBLAS sgemm rate and the CPU's
 * vector multiply-add peak measured in the same run. Lines are greppable:
 *   bench sgemm n=1024 gflops=...
 *   bench peak gflops=...
 *   bench model <shape> <fwd|fwdbwd> tokens_per_s=... gflops=... ms_per_iter=...
 * bench/peer_torch.py prints the same lines with `peer_torch` for PyTorch. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gkd/error.h"
#include "gkd/layers.h"
#include "gkd/model.h"
#include "gkd/rng.h"

typedef struct {
    const char *name;
    gkd_model_config cfg;
    int B, T;
} shape;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Weights one token multiplies in one layer: GPT-2's QKV (3C x C),
 * projection (C x C) and MLP (4C x C twice): 12 C^2; Llama's QKV
 * ((C + 2KV) x C), output (C x C), gate and up (2F x C) and down (C x F). */
static double layer_weights(const gkd_model_config *cfg) {
    double C = cfg->n_embd;
    if (cfg->arch != GKD_ARCH_LLAMA) return 12.0 * C * C;
    double KV = C / cfg->n_head * gkd_config_kv_heads(cfg), F = gkd_config_ffn_dim(cfg);
    return C * (C + 2.0 * KV) + C * C + 3.0 * C * F;
}

/* Matmul FLOPs of one forward per token: 2 * (weights used per token) plus
 * attention scores and weighted sums over the full T x T square (what both
 * gkd and the PyTorch peer compute). Backward costs twice the forward. */
static double forward_flops(const shape *s) {
    double L = s->cfg.n_layer, C = s->cfg.n_embd, V = s->cfg.vocab_size, T = s->T;
    double per_token = 2.0 * (L * layer_weights(&s->cfg) + C * V) + L * 4.0 * T * C;
    return per_token * s->B * s->T;
}

static void bench_sgemm(void) {
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    printf("bench sgemm n=%d gflops=%.1f\n", n, 2.0 * n * n * n / best * 1e-9);
    free(a), free(b), free(c);
}

/* The CPU's vector multiply-then-add rate on all threads: 16 independent
 * chains a = a * m + c per thread (two FLOPs per lane, no FMA: the file is
 * ISO C), compiled for the widest vectors the CPU has. The sgemm line
 * above is OpenBLAS's kernel for the core type it detects, which may use
 * narrower vectors than the CPU offers, so gkd's own kernels can pass it. */
typedef float fv16 __attribute__((vector_size(64)));

__attribute__((target_clones("avx512f", "avx2", "default"))) static float peak_chains(long iters) {
    fv16 a[16];
    for (int j = 0; j < 16; j++)
        for (int l = 0; l < 16; l++) a[j][l] = (float)(j + l) * 1e-3f;
    const float m = 0.999f, c = 1e-3f;
    const fv16 mv = {m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m};
    const fv16 cv = {c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c};
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) a[j] = a[j] * mv + cv;
    }
    float sum = 0.0f;
    for (int j = 0; j < 16; j++)
        for (int l = 0; l < 16; l++) sum += a[j][l];
    return sum;
}

static void bench_peak(void) {
    const long iters = 20000000;
    double best = 1e30;
    volatile float sink = 0.0f;
    int threads = 1;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
#pragma omp parallel
        {
            float v = peak_chains(iters);
#pragma omp atomic
            sink += v;
#pragma omp single
            threads = omp_get_num_threads();
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    printf("bench peak gflops=%.1f threads=%d\n", 2.0 * 16 * 16 * iters * threads / best * 1e-9,
           threads);
}

static int bench_shape(const shape *s) {
    int rc = 0;
    gkd_model *m = NULL;
    int *tok = NULL, *tgt = NULL;
    float *dl = NULL, *losses = NULL;
    size_t BT = (size_t)s->B * s->T, V = s->cfg.vocab_size;
    if ((rc = gkd_model_new(&m, &s->cfg)) < 0) goto done;
    gkd_model_init_weights(m, 1);
    tok = malloc(BT * sizeof(int)), tgt = malloc(BT * sizeof(int));
    dl = malloc(BT * V * sizeof(float)), losses = malloc(BT * sizeof(float));
    if (!tok || !tgt || !dl || !losses) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    gkd_rng r = gkd_rng_derive(1, GKD_RNG_DATA, 0, 0);
    for (size_t i = 0; i < BT; i++) {
        tok[i] = (int)gkd_rng_below(&r, (uint32_t)V);
        tgt[i] = (int)gkd_rng_below(&r, (uint32_t)V);
    }
    const double fl = forward_flops(s);
    for (int mode = 0; mode < 2; mode++) {
        int iters = 0;
        double t0 = 0;
        /* one warm-up iteration, then at least 3 iterations and 1.5 s */
        for (int it = -1;; it++) {
            if (it == 0) t0 = now();
            if ((rc = gkd_model_forward(m, tok, s->B, s->T)) < 0) goto done;
            if (mode == 1) {
                gkd_crossentropy_forward_backward(dl, losses, m->logits, tgt, NULL, (int)BT, (int)V);
                gkd_model_zero_grad(m);
                if ((rc = gkd_model_backward(m, dl)) < 0) goto done;
            }
            if (it >= 0) iters++;
            if (iters >= 3 && now() - t0 >= 1.5) break;
        }
        double dt = (now() - t0) / iters;
        printf("bench model %s %s tokens_per_s=%.0f gflops=%.1f ms_per_iter=%.2f\n", s->name,
               mode ? "fwdbwd" : "fwd", BT / dt, (mode ? 3.0 : 1.0) * fl / dt * 1e-9, dt * 1e3);
    }
done:
    free(tok), free(tgt), free(dl), free(losses);
    gkd_model_free(m);
    return rc;
}

/* Optional arguments name the shapes to run (default: all). */
int main(int argc, char **argv) {
    static const shape shapes[] = {
        {"tiny", {.vocab_size = 64, .max_seq_len = 64, .n_layer = 4, .n_embd = 128, .n_head = 4}, 16, 64},
        {"small", {.vocab_size = 256, .max_seq_len = 128, .n_layer = 6, .n_embd = 256, .n_head = 8}, 16, 128},
        /* llama2.c's stories15M: random weights, tied head, interleaved RoPE */
        {"stories15m",
         {.vocab_size = 32000, .max_seq_len = 256, .n_layer = 6, .n_embd = 288, .n_head = 6,
          .arch = GKD_ARCH_LLAMA, .n_kv_head = 6, .ffn_dim = 768, .untied_head = 0,
          .rope_style = GKD_ROPE_INTERLEAVED, .norm_eps = 1e-5f, .rope_theta = 10000.0f},
         4, 256},
    };
    printf("bench model threads=%d\n", omp_get_max_threads());
    bench_sgemm();
    bench_peak();
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], shapes[i].name) == 0;
        if (!wanted) continue;
        if (bench_shape(&shapes[i]) < 0) {
            fprintf(stderr, "bench_model: %s\n", gkd_last_error());
            return 1;
        }
    }
    return 0;
}
