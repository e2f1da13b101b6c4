/* Rotary position embeddings (Llama): each pair (a, b) of a head's channels
 * at position t is rotated by the angle t theta^(-2i/hs) of its pair index
 * i. Two pairings are in use: interleaved channels (2i, 2i+1), as in
 * Meta's and llama2.c's code, and halves (i, i + hs/2), as in Hugging
 * Face's rotate_half (its checkpoints' q and k weights are permuted to
 * match). Elementwise, so any number of OpenMP threads gives the same
 * bits. */
#include "gkd/layers.h"

#include <math.h>
#include <stddef.h>

/* Loops with less work than this run on one thread (as in layers.c). */
#define PAR_MIN_WORK ((size_t)1 << 15)

void gkd_rope_table(float *cos_t, float *sin_t, int maxT, int hs, float theta) {
    const int half = hs / 2;
    for (int i = 0; i < half; i++) {
        const double freq = pow((double)theta, -2.0 * i / hs);
        for (int t = 0; t < maxT; t++) {
            const double angle = (double)t * freq;
            cos_t[(size_t)t * half + i] = (float)cos(angle);
            sin_t[(size_t)t * half + i] = (float)sin(angle);
        }
    }
}

/* (a, b) -> (a c - b s, a s + b c); the inverse rotation is the same with
 * -s, which gives a c + b s and -a s + b c bit for bit (negation is
 * exact). */
static void rotate_row(float *x, const float *cos_p, const float *sin_p, int nheads, int hs,
                       int style, float sign) {
    const int half = hs / 2;
    /* the channel of pair i's second element, relative to its first */
    const int step = style == 0 ? 1 : half;
    const int stride = style == 0 ? 2 : 1;
    for (int h = 0; h < nheads; h++) {
        float *xh = x + (size_t)h * hs;
#pragma omp simd
        for (int i = 0; i < half; i++) {
            float *p = xh + (size_t)i * stride;
            const float a = p[0], b = p[step], c = cos_p[i], s = sign * sin_p[i];
            p[0] = a * c - b * s;
            p[step] = a * s + b * c;
        }
    }
}

void gkd_rope_row(float *x, const float *cos_p, const float *sin_p, int nheads, int hs,
                  int style) {
    rotate_row(x, cos_p, sin_p, nheads, hs, style, 1.0f);
}

/* q (NH heads) and k (NKV heads) sit side by side at the start of each row:
 * one rotation of NH + NKV heads; v is left alone. */
static void rope_rows(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                      int NKV, int hs, int style, float sign) {
    const size_t W = (size_t)(NH + 2 * NKV) * hs;
    const int half = hs / 2;
#pragma omp parallel for schedule(static) if(parallel: (size_t)B * T * (NH + NKV) * hs >= PAR_MIN_WORK)
    for (int bt = 0; bt < B * T; bt++) {
        const size_t t = (size_t)(bt % T);
        rotate_row(qkv + (size_t)bt * W, cos_t + t * half, sin_t + t * half, NH + NKV, hs, style,
                   sign);
    }
}

void gkd_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                      int NKV, int hs, int style) {
    rope_rows(qkv, cos_t, sin_t, B, T, NH, NKV, hs, style, 1.0f);
}

void gkd_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                       int NKV, int hs, int style) {
    rope_rows(dqkv, cos_t, sin_t, B, T, NH, NKV, hs, style, -1.0f);
}
